"""Incremental re-indexing from the cache, selection from config, and the summary files."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import make_raw_bids, write_json

from lcm.bids.ingest import ingest, ingest_dataset
from lcm.bids.selection import Selection, participants_kept
from lcm.exceptions import BIDSError, ConfigError


def _ingest(root: Path, out: Path, **kwargs) -> tuple[pd.DataFrame, dict]:
    df = ingest("tiny", "bids", root, out, validate=False, **kwargs)
    return df, json.loads((out.parent / "summary.json").read_text())["cache"]


def test_cache_reuses_unchanged_subjects_and_sees_every_change(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), t_r=2.0)
    out = tmp_path / "out" / "manifest.parquet"
    first, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 0, "subjects_indexed": 3}
    again, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 3, "subjects_indexed": 0}
    pd.testing.assert_frame_equal(again, first)
    # An in-place edit of one subject's sidecar: only that subject is indexed again.
    side = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.json"
    side.write_text(json.dumps({"RepetitionTime": 0.8}))
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 2, "subjects_indexed": 1}
    assert df.set_index("subject").loc["02", "reason_code"] == "tr_mismatch"
    # A new subject is indexed, a removed one disappears.
    (root / "sub-04" / "func").mkdir(parents=True)
    src = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
    (root / "sub-04" / "func" / "sub-04_task-rest_run-1_bold.nii.gz").write_bytes(src.read_bytes())
    for f in (root / "sub-03" / "func").iterdir():
        f.unlink()
    (root / "sub-03" / "func").rmdir()
    (root / "sub-03").rmdir()
    df, cache = _ingest(root, out)
    assert df["subject"].tolist() == ["01", "02", "04"]
    assert cache == {"subjects_reused": 2, "subjects_indexed": 1}
    # A changed top-level (inherited) sidecar re-indexes everyone.
    write_json(root / "task-rest_bold.json", {"RepetitionTime": 0.8, "TaskName": "rest"})
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 0, "subjects_indexed": 3}
    assert df["t_r"].tolist() == [0.8, 0.8, 0.8]
    assert ingest_dataset("tiny", "bids", root).manifest.equals(df)


def test_cache_follows_symlinks_and_in_place_image_rewrites(tmp_path: Path) -> None:
    # DataLad/git-annex datasets hold images as symlinks: their targets' stats are recorded,
    # so nothing is re-indexed while nothing changed; an image rewritten in place is seen.
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    image = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
    annexed = tmp_path / "annex" / "object.nii.gz"
    annexed.parent.mkdir()
    image.rename(annexed)
    image.symlink_to(annexed)
    out = tmp_path / "out" / "manifest.parquet"
    _ingest(root, out)
    _, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 2, "subjects_indexed": 0}
    other = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz"
    with open(other, "r+b") as fh:  # in place: the folder's mtime does not change
        fh.truncate(0)
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 1, "subjects_indexed": 1}
    assert "empty file" in df.set_index("subject").loc["02", "tr_check"]


def test_damaged_cache_only_costs_a_full_run(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    out = tmp_path / "out" / "manifest.parquet"
    first, _ = _ingest(root, out)
    (out.parent / "manifest.parquet.cache" / "stats.parquet").write_bytes(b"garbage")
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 0, "subjects_indexed": 1}
    pd.testing.assert_frame_equal(df, first)


def test_selection_excludes_with_reasons(tmp_path: Path) -> None:
    root = make_raw_bids(
        tmp_path / "raw", subjects=("01", "02", "03"), sessions=("a", "b"), runs=("01", "2")
    )
    sel = Selection.from_config(
        {
            "participants": {"exclude": ["sub-03"]},
            "sessions": {"include": ["a"]},
            "runs": {"include": ["1"]},  # run-01 is run 1
        }
    )
    df = ingest_dataset("tiny", "bids", root, selection=sel).manifest
    kept = df[df["included"]]
    assert kept["run_key"].tolist() == [
        "sub-01_ses-a_task-rest_run-01",
        "sub-02_ses-a_task-rest_run-01",
    ]
    out = df[~df["included"]]
    assert (out["reason_code"] == "not_selected").all() and len(out) == 10
    reasons = {r.split(". Fix: ")[0] for r in out["reason"]}
    assert "not selected: subject 03 is in ingest.select.tiny.participants.exclude" in reasons
    assert "not selected: session b is not in ingest.select.tiny.sessions.include" in reasons
    assert "not selected: run 2 is not in ingest.select.tiny.runs.include" in reasons
    # Each says how to keep the run.
    assert (
        "not selected: subject 03 is in ingest.select.tiny.participants.exclude. Fix: to keep "
        "it, remove 03 from ingest.select.tiny.participants.exclude"
    ) in set(out["reason"])
    # The participants the selection kept (lcm run adds them to the next call's labels): runs
    # left out by other keys keep theirs.
    assert participants_kept(df) == {"01", "02"}


def test_entity_filters(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    func = root / "sub-01" / "func"
    src = func / "sub-01_task-rest_run-1_bold.nii.gz"
    (func / "sub-01_task-rest_acq-mb8_run-1_bold.nii.gz").write_bytes(src.read_bytes())
    sel = Selection.from_config({"acq": {"include": ["mb8"]}})
    df = ingest_dataset("tiny", "bids", root, selection=sel).manifest
    assert df.loc[df["included"], "acq"].tolist() == ["mb8"]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"task": {"include": ["rest"]}}, "unknown selection key 'task'"),
        ({"participants": ["01"]}, r"expected \{include: \[...\], exclude: \[...\]\}"),
        ({"runs": {"include": "1"}}, "expected a list of labels"),
    ],
)
def test_bad_selection_config_names_the_key(config: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Selection.from_config(config, source="ingest.select.tiny")


def test_summary_files_say_what_was_kept_and_why(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), t_r=2.0)
    (root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz").write_bytes(b"")
    out = tmp_path / "out" / "manifest.parquet"
    sel = Selection.from_config({"participants": {"exclude": ["03"]}})
    ingest("tiny", "bids", root, out, selection=sel, validate=False)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["n_runs"] == 3 and summary["n_included"] == 2
    assert summary["excluded_by_reason"] == {"not_selected": 1}
    assert summary["n_tr_not_checked"] == 1
    assert summary["selection"] == {"participants": {"include": [], "exclude": ["03"]}}
    table = pd.read_csv(out.parent / "summary.tsv", sep="\t", keep_default_na=False)
    assert table["reason_code"].tolist() == ["included", "not_selected"]
    assert table["n_runs"].tolist() == [2, 1]
    assert not summary["validator"]["ran"]


def test_validator_warnings_reach_the_summary_and_are_cached(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    out = tmp_path / "out" / "manifest.parquet"
    ingest("tiny", "bids", root, out, validate=True)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["validator"]["ran"] and summary["validator"]["n_warnings"] > 0
    assert "README_FILE_MISSING" in {w["code"] for w in summary["validator"]["warnings"]}
    meta = json.loads((out.parent / "manifest.parquet.cache" / "meta.json").read_text())
    assert meta["validation"]["warnings"] == summary["validator"]["warnings"]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["Validated"] is True and side["NumberOfIncludedRuns"] == 1


def test_workflow_plan_lists_the_manifests_included_runs(tmp_path: Path) -> None:
    from lcm.evaluate.config_schema import validate_config
    from lcm.workflow.plan import WorkflowPlan

    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), sessions=("a",))
    write_json(
        root / "sub-02" / "ses-a" / "func" / "sub-02_ses-a_task-rest_run-1_bold.json",
        {"RepetitionTime": 0.5},
    )
    cfg = validate_config(
        {
            "results_dir": str(tmp_path / "results"),
            "fmriprep": {"runner": "docker", "fs_license": "license.txt"},
            "datasets": {
                "real": {
                    "entry": "bids",
                    "path": str(root),
                    "phenotype": "p.tsv",
                    "role": "pretrain",
                }
            },
            "ingest": {"select": {"real": {"participants": {"exclude": ["03"]}}}},
        }
    )
    runs = WorkflowPlan(cfg).runs("real")
    assert runs == [{"sub": "01", "ses": "a", "task": "rest", "run": "1"}]
    sel = Selection.from_config(cfg["ingest"]["select"]["real"])
    df = ingest_dataset("real", "bids", root, selection=sel).manifest
    assert df.loc[df["included"], "run_key"].tolist() == ["sub-01_ses-a_task-rest_run-1"]


def test_runs_told_apart_by_dir_or_acq_get_outputs_of_their_own(tmp_path: Path) -> None:
    """dir-AP and dir-PA of run 1 (an HCP-style pair) are two runs, not one output path."""
    from helpers.connectome import CROP_SHAPE, save_nifti

    from lcm.bids.ingest import included_runs
    from lcm.io.paths import run_location, run_qc_json

    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    func = root / "sub-01" / "func"
    (func / "sub-01_task-rest_run-1_bold.nii.gz").unlink()
    data = np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16)
    names = ["dir-AP_run-1", "dir-PA_run-1", "acq-mb4_run-2"]
    for name in names:
        save_nifti(func / f"sub-01_task-rest_{name}_bold.nii.gz", data, t_r=2.0)
    runs = included_runs("tiny", "bids", root, with_path=True)
    keys = [r["run_key"] for r in runs]
    assert sorted(keys) == sorted(f"sub-01_task-rest_{n}" for n in names)
    # Each run's output location is its own key (the plan, the QC JSON, the fMRIPrep record).
    assert [run_location(r)["run_key"] for r in runs] == keys
    qc = {run_qc_json("res", "tiny", run_location(r), "MNI", "aal116") for r in runs}
    assert len(qc) == 3
    # A dataset without such entities lists the same dicts as before (same listing hash).
    plain = make_raw_bids(tmp_path / "plain", subjects=("01",))
    assert included_runs("tiny", "bids", plain) == [
        {"sub": "01", "ses": None, "task": "rest", "run": "1"}
    ]


def _multi_echo_raw(root: Path) -> Path:
    """Raw BIDS whose run 1 has three echoes."""
    from helpers.connectome import CROP_SHAPE, save_nifti

    make_raw_bids(root, subjects=("01",))
    func = root / "sub-01" / "func"
    (func / "sub-01_task-rest_run-1_bold.nii.gz").unlink()
    data = np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16)
    for echo in (3, 1, 2):
        save_nifti(func / f"sub-01_task-rest_run-1_echo-{echo}_bold.nii.gz", data, t_r=2.0)
    return root


def test_a_multi_echo_raw_run_is_one_run_as_fmriprep_combines_it(tmp_path: Path) -> None:
    from lcm.bids.ingest import included_runs

    root = _multi_echo_raw(tmp_path / "raw")
    df = ingest_dataset("me", "bids", root).manifest.set_index("path")
    kept = df[df["included"]]
    assert kept["run_key"].tolist() == ["sub-01_task-rest_run-1"] and kept["echo"].tolist() == [""]
    assert Path(kept.index[0]).name == "sub-01_task-rest_run-1_echo-1_bold.nii.gz"
    others = df[~df["included"]]
    assert set(others["reason_code"]) == {"other_echo"} and len(others) == 2
    assert all("fMRIPrep combines the echoes" in r for r in others["reason"])
    assert included_runs("me", "bids", root) == [
        {"sub": "01", "ses": None, "task": "rest", "run": "1"}
    ]


@pytest.mark.parametrize("broken", [1, 2])
def test_a_multi_echo_run_with_an_echo_not_fetched_is_excluded_whole(
    tmp_path: Path, broken: int
) -> None:
    """With the validator off, a run whose echo 2 was a git-annex link not fetched was included
    by its echo 1 (or by echo 2 when echo 1 was missing): fMRIPrep reads every echo and failed."""
    from lcm.bids.ingest import included_runs

    root = _multi_echo_raw(tmp_path / "raw")
    bad = root / "sub-01" / "func" / f"sub-01_task-rest_run-1_echo-{broken}_bold.nii.gz"
    bad.unlink()
    bad.symlink_to("../../.git/annex/objects/Xx/Yy/MD5E-s9--00.nii.gz/MD5E-s9--00.nii.gz")
    df = ingest_dataset("me", "bids", root).manifest
    assert not df["included"].any()
    assert set(df["reason_code"]) == {"not_fetched"}
    others = df[df["path"] != str(bad)]
    assert len(others) == 2
    assert all(
        f"echo {broken} of multi-echo run sub-01_task-rest_run-1" in r
        and f"Fix: run `datalad get {bad}`" in r
        for r in others["reason"]
    )
    assert included_runs("me", "bids", root) == []
    # A second copy of an echo (.nii beside .nii.gz) still gives the run that echo.
    from helpers.connectome import CROP_SHAPE, save_nifti

    data = np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16)
    save_nifti(bad.with_name(bad.name.removesuffix(".gz")), data, t_r=2.0)
    kept = ingest_dataset("me", "bids", root).manifest
    assert kept["included"].sum() == 1


def test_per_echo_fmriprep_outputs_leave_the_combined_series_as_the_run(tmp_path: Path) -> None:
    from helpers.connectome import SPACE, make_fmriprep_run, save_nifti

    deriv = tmp_path / "deriv"
    files = make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    func = files["bold"].parent
    for echo in (1, 2):  # fMRIPrep --me-output-echos
        name = f"sub-01_task-rest_run-1_echo-{echo}_space-{SPACE}_desc-preproc_bold"
        save_nifti(func / f"{name}.nii.gz", np.zeros((4, 4, 3, 40), dtype=np.int16), t_r=2.0)
        write_json(func / f"{name}.json", {"RepetitionTime": 2.0})
    df = ingest_dataset("me", "fmriprep", deriv).manifest
    kept = df[df["included"]]
    assert kept["path"].tolist() == [str(files["bold"])]
    assert kept["run_key"].tolist() == ["sub-01_task-rest_run-1"]
    others = df[~df["included"]]
    assert set(others["reason_code"]) == {"other_echo"} and len(others) == 2
    assert all("per-echo series" in r for r in others["reason"])


def test_per_echo_fmriprep_outputs_without_the_combined_series_exclude_the_run(
    tmp_path: Path,
) -> None:
    """Derivatives copied with their per-echo series but not the combined one: every echo was
    excluded as other_echo, "none needed: the combined series is read", and the run was gone
    from the cohort without a word of what was missing."""
    from helpers.connectome import SPACE, make_fmriprep_run, save_nifti

    deriv = tmp_path / "deriv"
    files = make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    make_fmriprep_run(deriv, "sub-01_task-rest_run-2", n_vol=40)
    func = files["bold"].parent
    for run in (1, 2):
        for echo in (2, 1):
            name = f"sub-01_task-rest_run-{run}_echo-{echo}_space-{SPACE}_desc-preproc_bold"
            save_nifti(func / f"{name}.nii.gz", np.zeros((4, 4, 3, 40), dtype=np.int16), t_r=2.0)
            write_json(func / f"{name}.json", {"RepetitionTime": 2.0})
    for path in func.glob(f"sub-01_task-rest_run-1_space-{SPACE}_desc-preproc_bold.*"):
        path.unlink()
    df = ingest_dataset("me", "fmriprep", deriv).manifest.set_index("run_key")
    assert df.index[df["included"]].tolist() == ["sub-01_task-rest_run-2"]
    run = df.loc["sub-01_task-rest_run-1"]
    assert run["reason_code"] == "fmriprep_outputs_missing" and run["echo"] == ""
    assert Path(run["path"]).name.startswith("sub-01_task-rest_run-1_echo-1_")
    assert "not its combined series sub-01_task-rest_run-1_space-" in run["reason"]
    assert "none needed" not in run["reason"]
    echo = df.loc["sub-01_task-rest_run-1_echo-2"]
    assert echo["reason_code"] == "other_echo" and "see sub-01_task-rest_run-1" in echo["reason"]
    # Run 2 keeps its combined series: its echoes are other_echo, as before.
    assert "is the run, and is read" in df.loc["sub-01_task-rest_run-2_echo-1", "reason"]


def test_subjects_changed_since_the_cache_are_told_apart(tmp_path: Path) -> None:
    """What the workflow plan reruns with ingest: the subjects whose files changed since it ran.

    An edited BOLD marks its subject; a top-level sidecar (inherited by every run) marks all;
    an edited dataset_description.json marks none; without a cache nothing is known.
    """
    import os

    from lcm.bids.index_cache import cache_dir_for
    from lcm.bids.ingest import included_runs

    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"))
    out = tmp_path / "out" / "manifest.parquet"

    def changed(cache: bool = True) -> dict[str, bool]:
        cache_dir = cache_dir_for(out) if cache else None
        runs = included_runs("tiny", "bids", root, cache_dir=cache_dir, with_sources=True)
        return {str(r["sub"]): bool(r["changed"]) for r in runs}

    def later(file: Path) -> None:
        st = file.stat()
        os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    _ingest(root, out)
    assert changed() == {"01": False, "02": False, "03": False}
    later(root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz")
    assert changed() == {"01": False, "02": True, "03": False}
    assert changed(cache=False) == {"01": False, "02": False, "03": False}  # unknown
    _ingest(root, out)  # ingest reruns: its cache now holds the edit
    later(root / "dataset_description.json")
    assert changed() == {"01": False, "02": False, "03": False}
    later(root / "sub-03" / "func" / "sub-03_task-rest_run-1_bold.nii.gz")
    assert changed() == {"01": False, "02": False, "03": True}  # the cache set aside still tells
    later(root / "task-rest_bold.json")
    assert changed() == {"01": True, "02": True, "03": True}


def _later(file: Path, seconds: int = 1) -> None:
    """Give ``file`` a later modification time, as an edit in place does."""
    import os

    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def _edit_t1w(root: Path) -> None:
    _later(root / "sub-02" / "anat" / "sub-02_T1w.nii.gz")


def _add_fieldmap(root: Path) -> None:
    fmap = root / "sub-02" / "fmap"
    _later(fmap, seconds=-5)  # the folder's mtime as it was: only the new file tells
    stamp = fmap.stat().st_mtime_ns
    (fmap / "sub-02_dir-PA_epi.nii.gz").write_bytes(b"b" * 10)
    os.utime(fmap, ns=(stamp, stamp))


def _rename_in_anat(root: Path) -> None:
    anat = root / "sub-02" / "anat"
    (anat / "sub-02_T1w.nii.gz").rename(anat / "sub-02_run-1_T1w.nii.gz")


def _edit_scans(root: Path) -> None:
    scans = root / "sub-02" / "sub-02_scans.tsv"
    scans.write_text(scans.read_text() + "func/x_bold.nii.gz\t2020-01-02T00:00:00\n")


@pytest.mark.parametrize("edit", [_edit_t1w, _add_fieldmap, _rename_in_anat, _edit_scans])
def test_every_file_of_a_raw_subjects_tree_counts_not_only_func(tmp_path: Path, edit) -> None:
    """What the validator and fMRIPrep read of a subject is its whole folder: an anatomical
    image edited in place, a field map added to fmap/, a file renamed in anat/, scans.tsv
    edited each change that subject's digest (its fMRIPrep job's ``sources`` param) and mark
    it changed, and ingest indexes it (and validates it) again; the others are reused."""
    from lcm.bids.index_cache import cache_dir_for
    from lcm.bids.ingest import included_runs

    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"))
    for sub in ("01", "02", "03"):
        (root / f"sub-{sub}" / "anat").mkdir()
        (root / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz").write_bytes(b"t" * 10)
        (root / f"sub-{sub}" / "fmap").mkdir()
        (root / f"sub-{sub}" / "fmap" / f"sub-{sub}_dir-AP_epi.nii.gz").write_bytes(b"a" * 10)
        (root / f"sub-{sub}" / f"sub-{sub}_scans.tsv").write_text("filename\tacq_time\n")
    out = tmp_path / "out" / "manifest.parquet"

    def plan() -> dict[str, tuple[str, bool]]:
        runs = included_runs("tiny", "bids", root, cache_dir=cache_dir_for(out), with_sources=True)
        return {str(r["sub"]): (str(r["sources"]), bool(r["changed"])) for r in runs}

    _ingest(root, out)
    before = plan()
    assert not any(changed for _, changed in before.values())
    edit(root)
    after = plan()
    assert [sub for sub in after if after[sub] != before[sub]] == ["02"]
    assert after["02"][1]  # changed: its fMRIPrep job reruns with ingest, in one invocation
    _, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 2, "subjects_indexed": 1}


def test_a_phenotype_file_edited_in_place_reruns_the_validator(tmp_path: Path) -> None:
    """phenotype/ is the one top-level folder whose files the validator reads one by one: an
    edit in place (no folder's mtime changes) must not leave its old verdict standing."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    (root / "phenotype").mkdir()
    table = root / "phenotype" / "survey.tsv"
    table.write_text("participant_id\tscore\nsub-01\t1\nsub-02\t2\n")
    write_json(root / "phenotype" / "survey.json", {"score": {"Description": "a score"}})
    out = tmp_path / "out" / "manifest.parquet"
    ingest("tiny", "bids", root, out, validate=True)
    folder = table.parent.stat().st_mtime_ns
    (root / "phenotype" / "survey.json").write_text('{"score": ')  # cut short
    os.utime(table.parent, ns=(folder, folder))
    with pytest.raises(BIDSError, match=r"JSON_INVALID .*\[/phenotype/survey\.json\]"):
        ingest("tiny", "bids", root, out, validate=True)


def test_a_change_at_the_root_reruns_the_validator_not_the_indexing(tmp_path: Path) -> None:
    """participants.tsv, a root file, .bidsignore, README: none changes a run, all change what
    the validator says; the cached report was reused after each."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    out = tmp_path / "out" / "manifest.parquet"

    def validator() -> dict:
        ingest("tiny", "bids", root, out, validate=True)
        summary = json.loads((out.parent / "summary.json").read_text())
        assert summary["cache"]["subjects_indexed"] == 0  # the rows are reused
        return summary["validator"]

    ingest("tiny", "bids", root, out, validate=True)
    participants = (root / "participants.tsv").read_text()
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")  # sub-02 missing
    # An error fMRIPrep's validation ignores: a warning (downgraded), of the new report.
    warnings = validator()["warnings"]
    assert {w["code"] for w in warnings if w.get("downgraded")} == {"PARTICIPANT_ID_MISMATCH"}
    (root / "participants.tsv").write_text(participants)
    (root / "notes.txt").write_text("not a BIDS file\n")
    with pytest.raises(BIDSError, match=r"NOT_INCLUDED .*\[/notes\.txt\]"):
        validator()
    (root / ".bidsignore").write_text("notes.txt\n")
    assert "README_FILE_MISSING" in {w["code"] for w in validator()["warnings"]}
    (root / "README.md").write_text("A tiny dataset.\n")
    assert "README_FILE_MISSING" not in {w["code"] for w in validator()["warnings"]}


@pytest.mark.parametrize("name", ["summary.json", "summary.tsv"])
def test_a_users_summary_file_beside_the_manifest_is_never_replaced(
    tmp_path: Path, name: str
) -> None:
    """--out in a folder of the user's: its own summary.json/.tsv were replaced, unasked."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    out = tmp_path / "mine" / "manifest.parquet"
    out.parent.mkdir()
    mine = out.parent / name
    mine.write_text("my notes\n")
    with pytest.raises(ConfigError, match=rf"{name} exists and was not written by lcm ingest"):
        _ingest(root, out)
    assert mine.read_text() == "my notes\n"
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # nothing written
    # The files of an earlier ingest are its own: replaced.
    mine.unlink()
    _ingest(root, out)
    _ingest(root, out)


def test_no_run_of_the_task_names_the_tasks_the_files_have(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """task-restingstate datasets (common on OpenNeuro) under the default task rest: the
    warning said no run was found, not which tasks there are."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    for path in root.glob("sub-01/func/*task-rest_*"):
        path.rename(path.with_name(path.name.replace("task-rest_", "task-restingstate_")))
    with caplog.at_level("WARNING"):
        df, _ = _ingest(root, tmp_path / "out" / "manifest.parquet")
    assert not df["included"].any()
    assert "no usable run of task 'rest'" in caplog.text
    assert "its files name the task(s) restingstate: set datasets.tiny.task" in caplog.text


def _complex_raw(root: Path, echoes: tuple[str, ...] = ()) -> Path:
    """Raw BIDS whose run 1 is complex-valued: magnitude and phase (each multi-echo if asked)."""
    from helpers.connectome import CROP_SHAPE, save_nifti

    make_raw_bids(root, subjects=("01",))
    func = root / "sub-01" / "func"
    (func / "sub-01_task-rest_run-1_bold.nii.gz").unlink()
    data = np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16)
    for part in ("phase", "mag"):
        for echo in echoes or ("",):
            e = f"_echo-{echo}" if echo else ""
            name = f"sub-01_task-rest_run-1{e}_part-{part}_bold.nii.gz"
            save_nifti(func / name, data, t_r=2.0)
    return root


@pytest.mark.parametrize("echoes", [(), ("1", "2")])
def test_the_magnitude_of_a_complex_valued_run_is_the_run_named_as_fmriprep_names_it(
    tmp_path: Path, echoes: tuple[str, ...]
) -> None:
    """fMRIPrep reads part-mag only and keeps part-mag in its outputs' names: the phase is
    excluded (it was once the magnitude's 'duplicate', and the key lost part-, so no output
    of fMRIPrep was ever found for the run)."""
    from lcm.bids.ingest import included_runs

    root = _complex_raw(tmp_path / "raw", echoes)
    df = ingest_dataset("cx", "bids", root).manifest
    kept = df[df["included"]]
    assert kept["run_key"].tolist() == ["sub-01_task-rest_run-1_part-mag"]
    assert "_part-mag_bold" in kept["path"].iloc[0] and kept["part"].tolist() == ["mag"]
    phase = df[df["part"] == "phase"]
    assert len(phase) == len(echoes or ("",)) and not phase["included"].any()
    assert set(phase["reason_code"]) == {"other_part"}
    assert all("magnitude (part-mag)" in r for r in phase["reason"])
    if echoes:
        assert set(df.loc[~df["included"] & (df["part"] == "mag"), "reason_code"]) == {"other_echo"}
    assert included_runs("cx", "bids", root) == [
        {"sub": "01", "ses": None, "task": "rest", "run": "1", "part": "mag"}
    ]


def test_run_1_beside_run_01_is_a_duplicate_as_pybids_reads_it(tmp_path: Path) -> None:
    """Both were runs of their own, whose fMRIPrep outputs then matched both spellings: the
    fMRIPrep stage excluded both as ambiguous."""
    from helpers.connectome import CROP_SHAPE, save_nifti

    root = make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("01", "2"))
    data = np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16)
    save_nifti(root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz", data, t_r=2.0)
    df = ingest_dataset("pad", "bids", root).manifest.set_index("run_key")
    assert sorted(df.index[df["included"]]) == ["sub-01_task-rest_run-01", "sub-01_task-rest_run-2"]
    dup = df.loc["sub-01_task-rest_run-1"]
    assert not dup["included"] and dup["reason_code"] == "duplicate"
    assert "the same run as sub-01_task-rest_run-01 (indices compare as numbers)" in dup["reason"]


@pytest.mark.parametrize(
    ("select", "said", "meant"),
    [
        ({"participants": {"exclude": ["1"]}}, "names sub-1 (did you mean sub-01?)", "01"),
        (
            {"participants": {"include": ["sub-01", "2"]}},
            "names sub-2 (did you mean sub-02?)",
            "02",
        ),
        ({"runs": {"exclude": ["3"]}}, "runs names run-3", "1"),
        (
            {"sessions": {"include": ["Pre"]}},
            "sessions names ses-Pre (did you mean ses-pre?)",
            "pre",
        ),
    ],
)
def test_a_selection_label_no_file_has_is_refused(
    tmp_path: Path, select: dict, said: str, meant: str
) -> None:
    """As fMRIPrep's --participant-label: an exclude list's 1 for sub-01 kept the subject, an
    include list's 2 dropped sub-02, both silently."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), sessions=("pre",))
    (root / "sub-04" / "anat").mkdir(parents=True)  # no run of the task: still a subject
    with pytest.raises(ConfigError, match=re.escape(said)) as info:
        ingest_dataset("sel", "bids", root, selection=Selection.from_config(select))
    assert "ingest.select.sel." in str(info.value) and meant in (info.value.hint or "")
    # A subject folder without a run is a subject to select; a label with its prefix is one.
    ok = {"participants": {"exclude": ["sub-04", "03"]}, "runs": {"include": ["01"]}}
    df = ingest_dataset("sel", "bids", root, selection=Selection.from_config(ok)).manifest
    assert sorted(df.loc[df["included"], "subject"]) == ["01", "02"]


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_ingest_threads_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """LCM_INGEST_THREADS=abc raised a bare ValueError at import, in every ingest job."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    monkeypatch.setenv("LCM_INGEST_THREADS", value)
    with pytest.raises(ConfigError, match=rf"LCM_INGEST_THREADS='{re.escape(value)}': expected"):
        _ingest(root, tmp_path / "out" / "manifest.parquet")
    monkeypatch.setenv("LCM_INGEST_THREADS", " 2 ")
    assert _ingest(root, tmp_path / "out" / "manifest.parquet")[1]["subjects_indexed"] == 1


def test_a_second_datasets_ingest_into_the_same_folder_keeps_the_first_summary(
    tmp_path: Path,
) -> None:
    """Two datasets ingested to manifests of different names in one folder: the second
    silently replaced the first's summary.json/.tsv (its record of what was excluded)."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    folder = tmp_path / "out"
    _ingest(root, folder / "manifest.parquet")
    first = (folder / "summary.json").read_text()
    with pytest.raises(ConfigError, match=r"ingest summary of dataset 'tiny'.*'other'"):
        ingest("other", "bids", root, folder / "other.parquet", validate=False)
    assert (folder / "summary.json").read_text() == first
    assert not (folder / "other.parquet").exists()
    _ingest(root, folder / "manifest.parquet")  # the same dataset again: replaced
