"""Bad inputs, each with a clear message: what stops a dataset, what excludes a run, what is
only reported. The BIDS validator runs for real (bids-validator-deno)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import cli, make_raw_bids, save_nifti, write_json

from lcm.bids.ingest import ingest, ingest_dataset
from lcm.bids.selection import Selection
from lcm.commands import ingest as ingest_cmd
from lcm.exceptions import BIDSError, ConfigError


def _row(df, name_part: str):
    hit = df[df["path"].str.contains(name_part, regex=False)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def test_no_dataset_description_stops_the_dataset(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw")
    (root / "dataset_description.json").unlink()
    with pytest.raises(BIDSError, match=r"raw has no dataset_description\.json") as info:
        ingest("tiny", "bids", root, tmp_path / "out" / "manifest.parquet")
    assert "BIDSVersion" in info.value.hint
    assert not (tmp_path / "out" / "manifest.parquet").exists()


@pytest.mark.parametrize(
    "text",
    [
        b'\xef\xbb\xbf{"Name": "tiny", "BIDSVersion": "1.10.0"}',
        b'{"Name": "tiny", "Authors": ["M\xfcller"], "BIDSVersion": "1.10.0"}',
    ],
    ids=["byte-order-mark", "latin-1"],
)
def test_a_dataset_description_with_a_bom_or_latin1_bytes_is_read_as_the_validator_reads_it(
    tmp_path: Path, text: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A Windows editor's byte-order mark stopped the dataset ('not valid JSON: Unexpected UTF-8
    BOM'), and an author saved in Latin-1 crashed with a UnicodeDecodeError traceback; the
    BIDS validator and fMRIPrep read both."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    (root / "dataset_description.json").write_bytes(text)
    with caplog.at_level(logging.WARNING, logger="lcm.bids.dataset"):
        df = ingest_dataset("tiny", "bids", root, validate=True).manifest
    assert df["included"].tolist() == [True]
    latin = b"\xfc" in text
    assert ("is not UTF-8 (byte 0xfc at offset" in caplog.text) is latin


def test_a_dataset_description_not_fetched_names_datalad_get(tmp_path: Path) -> None:
    """A git-annex link to absent content was told 'has no dataset_description.json: point the
    path at the dataset's top folder', although the path was the top folder."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    desc = root / "dataset_description.json"
    desc.unlink()
    desc.symlink_to(".git/annex/objects/Xx/Yy/MD5E-s60--0f.json/MD5E-s60--0f.json")
    with pytest.raises(
        BIDSError, match=r"dataset_description\.json is a symlink to content"
    ) as info:
        ingest("tiny", "bids", root, tmp_path / "out" / "manifest.parquet")
    assert f"datalad get {desc}" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_non_bids_names_get_the_validators_messages_and_exclude_only_that_file(
    tmp_path: Path,
) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    func = root / "sub-01" / "func"
    save_nifti(func / "sub-01_task-rest_bogus_bold.nii.gz", np.zeros((4, 5, 6, 7), np.int16))
    result = ingest_dataset("tiny", "bids", root, validate=True)
    # The validator's own codes and file locations, e.g. ENTITY_NOT_IN_RULE at /sub-01/...
    errors = result.summary["validator"]["errors"]
    assert "ENTITY_NOT_IN_RULE" in {e["code"] for e in errors}
    assert all(
        e["locations"] == ["/sub-01/func/sub-01_task-rest_bogus_bold.nii.gz"] for e in errors
    )
    # The error names the bogus file, which keeps its own reason; the subject's run goes on.
    df = result.manifest
    bad = _row(df, "bogus")
    assert not bad["included"] and bad["reason_code"] == "invalid_name"
    assert "not a valid BIDS file name" in bad["reason"]
    assert _row(df, "run-1")["included"]
    # Trusted data (validator off): the same verdicts.
    df = ingest_dataset("tiny", "bids", root, validate=False).manifest
    assert _row(df, "bogus")["reason_code"] == "invalid_name" and _row(df, "run-1")["included"]


def test_the_invalid_name_fix_shows_bidss_func_entities_in_order(tmp_path: Path) -> None:
    """The fix's pattern stopped at acq and run: a name with rec, dir, echo or part (valid
    BIDS) read as if those made it invalid. The pattern now lists BIDS's func entities in its
    order, and a name written by it, every entity filled, is indexed as valid."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), sessions=("a",))
    func = root / "sub-01" / "ses-a" / "func"
    save_nifti(func / "sub-01_ses-a_task-rest_bogus_bold.nii.gz", np.zeros((4, 5, 6, 7)))
    df = ingest_dataset("tiny", "bids", root, validate=False).manifest
    reason = _row(df, "bogus")["reason"]
    pattern = re.search(r"rename it (sub-\S+_bold\.nii\[\.gz\])", reason).group(1)
    order = ["sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part"]
    assert re.findall(r"([a-z]+)-<", pattern) == order
    filled = pattern.replace("sub-<label>", "sub-01").replace("task-<label>", "task-rest")
    filled = filled.replace("<label>", "a").replace("<index>", "2").replace("[.gz]", ".gz")
    filled = filled.replace("<mag|phase|real|imag>", "mag").replace("[", "").replace("]", "")
    assert filled == (
        "sub-01_ses-a_task-rest_acq-a_ce-a_rec-a_dir-a_run-2_echo-2_part-mag_bold.nii.gz"
    )
    save_nifti(func / filled, np.zeros((4, 5, 6, 7)))
    df = ingest_dataset("tiny", "bids", root, validate=False).manifest
    assert _row(df, "part-mag")["reason_code"] != "invalid_name"
    assert _row(df, "run-1")["included"]


def test_dataset_level_validator_errors_stop_the_dataset(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    (root / "README").write_text("")  # EMPTY_FILE: fMRIPrep's validation stops for it too
    with pytest.raises(BIDSError, match=r"BIDS validator found \d+ error") as info:
        ingest_dataset("tiny", "bids", root, validate=True)
    assert re.search(r"\n  EMPTY_FILE x1: .*\[/README\]", str(info.value))
    # ingest_dataset's caller named no option: the config's key, which lcm run's
    # --skip-bids-validation sets too (one form, not the key and two options at once).
    assert info.value.hint.endswith("or set ingest.validate: false for trusted data.")


def test_errors_fmriprep_ignores_are_warnings_that_stop_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A subject folder not in participants.tsv (PARTICIPANT_ID_MISMATCH at /participants.tsv)
    stopped the dataset, even with that subject left out by the selection, and an acq_time
    that is no date in scans.tsv (TSV_VALUE_INCORRECT_TYPE) excluded its subject: fMRIPrep's
    validation ignores both. They are warnings now, marked downgraded in the summary and named
    in the log."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    (root / "sub-999" / "anat").mkdir(parents=True)
    scans = root / "sub-01" / "sub-01_scans.tsv"
    scans.write_text("filename\tacq_time\nfunc/sub-01_task-rest_run-1_bold.nii.gz\tyesterday\n")
    selection = Selection.from_config({"participants": {"include": ["01"]}})
    with caplog.at_level(logging.WARNING, logger="lcm.bids.validator"):
        result = ingest_dataset("tiny", "bids", root, selection=selection, validate=True)
    df = result.manifest.set_index("subject")
    assert df["included"].to_dict() == {"01": True, "02": False}
    validator = result.summary["validator"]
    assert validator["n_errors"] == 0 and validator["errors"] == []
    downgraded = {w["code"]: w["locations"] for w in validator["warnings"] if w.get("downgraded")}
    assert downgraded["PARTICIPANT_ID_MISMATCH"] == ["/participants.tsv"]
    assert downgraded["TSV_VALUE_INCORRECT_TYPE"] == ["/sub-01/sub-01_scans.tsv"]
    assert validator["n_downgraded"] == sum(
        w["count"] for w in validator["warnings"] if w.get("downgraded")
    )
    assert "PARTICIPANT_ID_MISMATCH x1 [/participants.tsv]" in caplog.text
    assert "fMRIPrep's own validation ignores" in caplog.text


def test_bold_without_repetition_time(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    write_json(root / "task-rest_bold.json", {"TaskName": "rest"})  # no RepetitionTime anywhere
    write_json(
        root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.json", {"RepetitionTime": 2.0}
    )
    df = ingest_dataset("tiny", "bids", root).manifest
    bad = _row(df, "sub-01_")
    assert not bad["included"] and bad["reason_code"] == "no_repetition_time"
    assert bad["reason"] == (
        "RepetitionTime missing from the JSON sidecar of sub-01_task-rest_run-1_bold.nii.gz. "
        'Fix: set "RepetitionTime" (seconds, a positive number) in the run\'s JSON sidecar, '
        "or in one it inherits (e.g. task-<task>_bold.json at the dataset's top)"
    )
    assert _row(df, "sub-02_")["included"]
    result = ingest_dataset("tiny", "bids", root, validate=True)
    errors = result.summary["validator"]["errors"]
    assert ("SIDECAR_KEY_REQUIRED", "RepetitionTime") in {
        (e["code"], e["sub_code"]) for e in errors
    }
    pd.testing.assert_frame_equal(result.manifest, df)  # sub-01 keeps its own reason


def test_same_run_as_nii_and_nii_gz(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    save_nifti(
        root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii",
        np.zeros((4, 5, 6, 7), np.int16),
        t_r=2.0,
    )
    df = ingest_dataset("tiny", "bids", root).manifest
    assert df["included"].tolist() == [True, False]
    dup = df.iloc[1]
    assert dup["path"].endswith(".nii.gz") and dup["reason_code"] == "duplicate"
    assert dup["reason"].startswith(
        "duplicate of sub-01_task-rest_run-1_bold.nii for run sub-01_task-rest_run-1"
    )


@pytest.mark.parametrize(
    ("subject", "label"),
    [
        ("01;rm", "'sub' label '01;rm'"),
        ("01 x", "'sub' label '01 x'"),
        ("01..x", "'sub' label '01..x'"),
        ("01$(id)", "'sub' label '01$(id)'"),
        # Not subject 02 (the real one beside it): a prefix is stripped only from config.
        ("sub-02", "'sub' label 'sub-02'"),
    ],
)
def test_unsafe_labels_are_excluded_with_the_label_named(
    tmp_path: Path, subject: str, label: str
) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("02",), t_r=2.0)
    save_nifti(
        root / f"sub-{subject}" / "func" / f"sub-{subject}_task-rest_run-1_bold.nii.gz",
        np.zeros((4, 5, 6, 7), np.int16),
        t_r=2.0,
    )
    df = ingest_dataset("tiny", "bids", root).manifest
    bad = df[~df["included"]]
    assert len(bad) == 1 and bad.iloc[0]["reason_code"] == "invalid_label"
    assert label in bad.iloc[0]["reason"] and bad.iloc[0]["run_key"] == ""
    # The manifest's reason carries the fix, as the connectome QC's reasons do.
    assert "Fix: Rename the participant" in bad.iloc[0]["reason"]
    assert df["included"].sum() == 1


@pytest.mark.parametrize("entry", ["fmriprep", "roi_timeseries"])
def test_a_doubled_entity_prefix_is_an_invalid_label_not_another_subject(
    tmp_path: Path, entry: str
) -> None:
    """``sub-sub-01`` has the label ``sub-01``: refused, never a second ``sub-01``."""
    from helpers.connectome import SPACE, make_fmriprep_run

    root = tmp_path / "deriv"
    for sub in ("01", "sub-01"):
        if entry == "fmriprep":
            make_fmriprep_run(root, f"sub-{sub}_task-rest_run-1", n_vol=40)
        else:
            write_json(root / f"sub-{sub}_task-rest_run-1_timeseries.json", {"RepetitionTime": 2})
            (root / f"sub-{sub}_task-rest_run-1_timeseries.tsv").write_text("a\tb\n1\t2\n")
    df = ingest_dataset("tiny", entry, root, space=SPACE if entry == "fmriprep" else None).manifest
    good = df[df["included"]]
    assert good["run_key"].tolist() == ["sub-01_task-rest_run-1"]
    assert "sub-sub-01" not in good["path"].iloc[0]
    (bad,) = df[~df["included"]].itertuples()
    assert bad.reason_code == "invalid_label" and "'sub' label 'sub-01'" in bad.reason
    assert bad.run_key == "" and "sub-sub-01_task-rest_run-1" in bad.reason


@pytest.mark.parametrize("entry", ["bids", "fmriprep"])
def test_a_surface_space_is_refused_for_a_voxel_entry(tmp_path: Path, entry: str) -> None:
    """fMRIPrep's CIFTI output (space-fsLR .dtseries.nii) beside its volumes: a voxel-level
    entry asked for fsLR is refused at ingest, naming the setting, instead of every run being
    excluded later (after fMRIPrep, for raw BIDS)."""
    from helpers.connectome import make_fmriprep_run

    if entry == "bids":
        root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    else:
        root = tmp_path / "deriv"
        make_fmriprep_run(root, "sub-01_task-rest_run-1", n_vol=40)
        func = root / "sub-01" / "func"
        (func / "sub-01_task-rest_run-1_space-fsLR_den-91k_bold.dtseries.nii").write_bytes(b"")
        write_json(
            func / "sub-01_task-rest_run-1_space-fsLR_den-91k_bold.json", {"RepetitionTime": 2}
        )
    # Named by its config key: no option was given (lcm ingest --space names its option).
    match = r"fmriprep.output_space 'fsLR' is a surface space"
    with pytest.raises(ConfigError, match=match) as caught:
        ingest_dataset("tiny", entry, root, space="fsLR")
    assert "fmriprep.output_space" in caught.value.hint


def test_participants_tsv_mismatch_is_reported_not_fatal(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-09\t41\n")
    out = tmp_path / "out" / "manifest.parquet"
    rc = cli(
        ingest_cmd,
        [
            "ingest",
            "--dataset",
            "tiny",
            "--entry",
            "bids",
            "--path",
            str(root),
            "--out",
            str(out),
            "--no-validate",
        ],
    )
    assert rc == 0
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["participants"] == {
        "participants_tsv": True,
        "without_data": ["09"],
        "not_listed": ["02"],
    }
    assert summary["n_included"] == 2


def test_a_validator_error_in_a_runs_own_sidecar_excludes_that_run_only(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    side = root / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.json"
    write_json(side, {"RepetitionTime": 2.0, "EchoTime": "thirty"})  # a number is required
    df = ingest_dataset("tiny", "bids", root, validate=True).manifest
    bad = _row(df, "sub-01_task-rest_run-2")
    assert not bad["included"] and bad["reason_code"] == "validator:JSON_SCHEMA_VALIDATION_ERROR"
    assert "(EchoTime) at /sub-01/func/sub-01_task-rest_run-2_bold.json" in bad["reason"]
    assert df["included"].sum() == 3 and _row(df, "sub-01_task-rest_run-1")["included"]


@pytest.mark.parametrize("where", ["manifest.parquet", "sub-01/new/manifest.parquet"])
def test_a_manifest_inside_the_raw_dataset_is_refused_before_anything_is_written(
    tmp_path: Path, where: str
) -> None:
    """--out in the dataset's own tree wrote the manifest, summaries and cache into it, and the
    next ingest stopped on them (the validator's NOT_INCLUDED on LCM's own files)."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(ConfigError, match=r"inside the raw dataset it indexes") as info:
        ingest("tiny", "bids", root, root / where)
    assert str(root / "derivatives") in info.value.hint
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    # derivatives/ is where BIDS puts outputs: accepted, and a second ingest is still valid.
    out = root / "derivatives" / "lcm" / "manifest.parquet"
    for _ in range(2):
        assert ingest("tiny", "bids", root, out)["included"].tolist() == [True]


def test_a_sidecar_with_a_byte_order_mark_is_told_to_lose_the_mark(tmp_path: Path) -> None:
    """A sidecar saved by a Windows editor (UTF-8 with BOM): the validator's "JSON files must
    be valid UTF-8 encoded text" and "correct it as the validator says" sent the user after
    text that is valid UTF-8; the mark is what the validator refuses."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    side = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.json"
    side.write_bytes(b"\xef\xbb\xbf" + json.dumps({"RepetitionTime": 2.0}).encode())
    df = ingest_dataset("tiny", "bids", root, validate=True).manifest
    bad = _row(df, "sub-01_task-rest_run-1")
    assert not bad["included"] and bad["reason_code"] == "validator:INVALID_JSON_ENCODING"
    location = "/sub-01/func/sub-01_task-rest_run-1_bold.json"
    assert f"Fix: remove the byte-order mark (BOM) that {location} begins with" in bad["reason"]
    assert _row(df, "sub-02_task-rest_run-1")["included"]


def test_a_validator_exclusion_says_what_the_validator_found_wrong(tmp_path: Path) -> None:
    """The reason kept only the first line of the code's generic message ("Invalid JSON sidecar
    file ..."): the issue's own words ("must be number") were dropped, so it never said why."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    side = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.json"
    write_json(side, {"RepetitionTime": 2.0, "EchoTime": "thirty"})
    df = ingest_dataset("tiny", "bids", root, validate=True).manifest
    reason = _row(df, "sub-01_task-rest_run-1")["reason"]
    assert "(EchoTime) at /sub-01/func/sub-01_task-rest_run-1_bold.json" in reason
    assert "not formatted according the schema: must be number" in reason
    assert "Field description" not in reason


def test_a_dataset_level_validator_error_says_what_each_issue_found_wrong(tmp_path: Path) -> None:
    """The error listed the first line of each code's generic message only, without the
    issues' own words."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    write_json(root / "task-rest_bold.json", {"RepetitionTime": 2.0, "EchoTime": "thirty"})
    with pytest.raises(BIDSError, match=r"BIDS validator found \d+ error") as info:
        ingest_dataset("tiny", "bids", root, validate=True)
    line = next(x for x in str(info.value).splitlines() if "JSON_SCHEMA_VALIDATION_ERROR" in x)
    assert "(must be number; must be array" in line and "[/task-rest_bold.json" in line
