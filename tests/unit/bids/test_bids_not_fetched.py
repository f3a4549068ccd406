"""DataLad (git-annex) datasets whose content is not fetched: files are dangling symlinks.

Such a BOLD file or sidecar is no silent gap: its runs are excluded, the reason names the file
and ``datalad get``, and the cache indexes the subject again once the content is there (a
``datalad get`` changes no folder's modification time). The BIDS validator runs for real
(bids-validator-deno): an unfetched file of one subject excludes that subject, never the cohort.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import make_raw_bids, save_nifti, write_json

from lcm.bids.index_cache import cache_dir_for
from lcm.bids.ingest import included_runs, ingest, ingest_dataset
from lcm.bids.selection import Selection


def _ingest(root: Path, out: Path) -> tuple[pd.DataFrame, dict]:
    df = ingest("tiny", "bids", root, out, validate=False)
    return df.set_index("subject"), json.loads((out.parent / "summary.json").read_text())["cache"]


def _annex(file: Path, root: Path) -> tuple[Path, bytes]:
    """Replace ``file`` by a relative link to an absent annex object, as a clone of a DataLad
    dataset holds it; return the object and the content :func:`_fetch` puts there."""
    key = f"MD5E-s{file.stat().st_size}--{file.name}"
    obj = root / ".git" / "annex" / "objects" / "Xx" / "Yy" / key / key
    content = file.read_bytes()
    file.unlink()
    file.symlink_to(os.path.relpath(obj, file.parent))
    return obj, content


def _fetch(annexed: tuple[Path, bytes]) -> None:
    """What ``datalad get`` does: the object appears, the link and its folder stay as they are."""
    obj, content = annexed
    obj.parent.mkdir(parents=True)
    obj.write_bytes(content)


def test_unfetched_bold_is_excluded_then_indexed_once_fetched(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    bold = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz"
    obj = _annex(bold, root)
    out = tmp_path / "out" / "manifest.parquet"
    df, _ = _ingest(root, out)
    row = df.loc["02"]
    assert not row["included"] and row["reason_code"] == "not_fetched"
    assert str(bold) in row["reason"] and f"datalad get {bold}" in row["reason"]
    assert row["run_key"] == "sub-02_task-rest_run-1" and df.loc["01", "included"]
    # Still not fetched: nothing changed, the cache is reused as it is.
    again, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 2, "subjects_indexed": 0}
    pd.testing.assert_frame_equal(again, df)
    _fetch(obj)
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 1, "subjects_indexed": 1}
    assert df["included"].all() and df.loc["02", "t_r"] == 2.0


def test_unfetched_sidecar_excludes_its_runs_not_a_farther_tr(tmp_path: Path) -> None:
    """The run's own sidecar says TR 1.5: without it, the top-level 2.0 would be a wrong TR."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=1.5)
    write_json(root / "task-rest_bold.json", {"RepetitionTime": 2.0, "TaskName": "rest"})
    for sub in ("01", "02"):
        write_json(
            root / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_run-1_bold.json",
            {"RepetitionTime": 1.5},
        )
    side = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.json"
    obj = _annex(side, root)
    out = tmp_path / "out" / "manifest.parquet"
    df, _ = _ingest(root, out)
    row = df.loc["02"]
    assert not row["included"] and row["reason_code"] == "not_fetched"
    assert f"its sidecar {side}" in row["reason"] and f"datalad get {side}" in row["reason"]
    assert df.loc["01", "included"] and df.loc["01", "t_r"] == 1.5
    _fetch(obj)
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 1, "subjects_indexed": 1}
    assert df["included"].all() and df["t_r"].tolist() == [1.5, 1.5]


def test_unfetched_top_level_sidecar_excludes_every_run(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    obj = _annex(root / "task-rest_bold.json", root)
    out = tmp_path / "out" / "manifest.parquet"
    df, _ = _ingest(root, out)
    assert (df["reason_code"] == "not_fetched").all()
    assert df["reason"].str.contains("datalad get .*task-rest_bold.json", regex=True).all()
    _fetch(obj)
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 0, "subjects_indexed": 2}
    assert df["included"].all()


def test_an_unlocked_sidecar_not_fetched_names_datalad_get_not_a_json_fix(
    tmp_path: Path,
) -> None:
    """An unlocked git-annex sidecar holds its key until fetched: every run was excluded as
    bad_sidecar with 'correct that sidecar's JSON', an edit that would break the dataset."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    side = root / "task-rest_bold.json"
    content = side.read_bytes()
    side.write_bytes(b"/annex/objects/MD5E-s47--0123456789abcdef0123456789abcdef.json\n")
    out = tmp_path / "out" / "manifest.parquet"
    df, _ = _ingest(root, out)
    assert (df["reason_code"] == "not_fetched").all()
    assert df["reason"].str.contains(f"its sidecar {side} is a git-annex pointer file").all()
    assert df["reason"].str.contains(f"datalad get {side}", regex=False).all()
    assert not df["reason"].str.contains("JSON").any()
    side.write_bytes(content)  # `datalad get` puts the content in place of the pointer
    df, cache = _ingest(root, out)
    assert cache == {"subjects_reused": 0, "subjects_indexed": 2}
    assert df["included"].all()


def _listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_mtime_ns) for p in root.rglob("*"))


def test_an_unselected_subjects_unfetched_file_does_not_stop_the_validated_cohort(
    tmp_path: Path,
) -> None:
    """A partly fetched OpenNeuro dataset: sub-06's BOLD is a dangling annex link (the
    validator's SYMLINK_BROKEN). Selected participants are validated alone, as fMRIPrep does,
    and without a selection the error only excludes sub-06."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "06"), t_r=2.0)
    bold = root / "sub-06" / "func" / "sub-06_task-rest_run-1_bold.nii.gz"
    _annex(bold, root)
    before = _listing(root)
    out = tmp_path / "out" / "manifest.parquet"
    selection = Selection.from_config({"participants": {"include": ["01", "02"]}})
    df = ingest("tiny", "bids", root, out, selection=selection, validate=True)
    assert df.set_index("subject")["included"].to_dict() == {"01": True, "02": True, "06": False}
    assert df.set_index("subject").loc["06", "reason_code"] == "not_selected"
    validator = json.loads((out.parent / "summary.json").read_text())["validator"]
    assert validator["ran"] and validator["subjects_not_validated"] == ["sub-06"]
    assert validator["n_errors"] == 0
    assert _listing(root) == before  # nothing written into the dataset (no .bidsignore)
    # Every participant: the report of the selection is not reused; sub-06's error excludes
    # its run only, which keeps the indexer's more specific reason (datalad get).
    df = ingest("tiny", "bids", root, out, validate=True).set_index("subject")
    assert df["included"].to_dict() == {"01": True, "02": True, "06": False}
    assert df.loc["06", "reason_code"] == "not_fetched" and "datalad get" in df.loc["06", "reason"]
    validator = json.loads((out.parent / "summary.json").read_text())["validator"]
    assert [(e["code"], e["locations"]) for e in validator["errors"]] == [
        ("SYMLINK_BROKEN", ["/sub-06/func/sub-06_task-rest_run-1_bold.nii.gz"])
    ]
    assert validator["subjects_not_validated"] == []


def test_a_validator_error_in_a_subject_folder_excludes_that_subjects_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unfetched anatomical image: the indexer reads func/ only, the validator sees it."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "06"), t_r=2.0)
    anat = root / "sub-06" / "anat" / "sub-06_T1w.nii.gz"
    anat.parent.mkdir()
    anat.write_bytes(b"not fetched")
    _annex(anat, root)
    out = tmp_path / "out" / "manifest.parquet"
    with caplog.at_level(logging.WARNING, logger="lcm.bids.ingest"):
        df = ingest("tiny", "bids", root, out, validate=True).set_index("subject")
    assert df["included"].to_dict() == {"01": True, "02": True, "06": False}
    assert df.loc["06", "reason_code"] == "validator:SYMLINK_BROKEN"
    reason = df.loc["06", "reason"]
    assert "SYMLINK_BROKEN at /sub-06/anat/sub-06_T1w.nii.gz" in reason
    # ingest() named no option: the config's key, one way to turn the validator off.
    assert reason.endswith(" or set ingest.validate: false for trusted data"), reason
    assert f"excluded sub-06_task-rest_run-1_bold.nii.gz: {reason}" in caplog.text
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["excluded_by_reason"] == {"validator:SYMLINK_BROKEN": 1}
    # The workflow plan applies no validator verdict, not even a cached one: the DAG is the
    # same before ingest and after it, and sub-06's jobs record why it is excluded
    # (tests/unit/preprocess/test_preprocess_manifest_runs.py).
    runs = included_runs("tiny", "bids", root, cache_dir=cache_dir_for(out))
    assert [r["sub"] for r in runs] == ["01", "02", "06"]
    # Validation off (trusted data): the run is included.
    df = ingest("tiny", "bids", root, out, validate=False)
    assert df["included"].all()


def test_an_anatomical_image_fetched_since_clears_its_validator_verdict(tmp_path: Path) -> None:
    """``datalad get`` of sub-06's T1w (the link and every folder's mtime unchanged): the next
    ingest indexes and validates sub-06 again, and includes its run; its digest, the fMRIPrep
    job's ``sources`` param, changes and marks it changed, so the workflow reruns it. The old
    cache kept the SYMLINK_BROKEN verdict ("2 reused from the cache")."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "06"), t_r=2.0)
    anat = save_nifti(root / "sub-06" / "anat" / "sub-06_T1w.nii.gz", np.ones((5, 6, 7), np.int16))
    annexed = _annex(anat, root)
    out = tmp_path / "out" / "manifest.parquet"
    df = ingest("tiny", "bids", root, out, validate=True).set_index("subject")
    assert df.loc["06", "reason_code"] == "validator:SYMLINK_BROKEN"

    def plan() -> dict[str, tuple[str, bool]]:
        runs = included_runs("tiny", "bids", root, cache_dir=cache_dir_for(out), with_sources=True)
        return {str(r["sub"]): (str(r["sources"]), bool(r["changed"])) for r in runs}

    before = plan()
    _fetch(annexed)
    after = plan()
    assert after["01"] == before["01"]
    assert after["06"][0] != before["06"][0] and after["06"][1]
    df = ingest("tiny", "bids", root, out, validate=True).set_index("subject")
    assert df["included"].to_dict() == {"01": True, "06": True}
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["cache"] == {"subjects_reused": 1, "subjects_indexed": 1}
    assert summary["validator"]["ran"] and summary["validator"]["n_errors"] == 0


def test_the_datalad_get_command_is_shell_quoted(tmp_path: Path) -> None:
    """A dataset folder with a space and a quote: the command pastes as one path."""
    root = make_raw_bids(tmp_path / "my study's data", subjects=("01", "02"), t_r=2.0)
    bold = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz"
    _annex(bold, root)
    df, _ = _ingest(root, tmp_path / "out" / "manifest.parquet")
    command = re.search(r"`(datalad get [^`]*)`", df.loc["02", "reason"])[1]
    assert shlex.split(command) == ["datalad", "get", str(bold)]


def _series_folder(root: Path) -> Path:
    """Three ROI time-series runs with their sidecars (TR 1.5), as plain files."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for sub in ("01", "02", "03"):
        np.save(root / f"sub-{sub}_task-rest_timeseries.npy", rng.standard_normal((30, 7)))
        write_json(root / f"sub-{sub}_task-rest_timeseries.json", {"RepetitionTime": 1.5})
    return root


def test_an_roi_series_sidecar_not_fetched_is_not_fetched_not_a_bad_sidecar(
    tmp_path: Path,
) -> None:
    """An unlocked sidecar not fetched said `datalad get` but was coded `bad_sidecar`, where a
    BOLD run's is `not_fetched`; a locked one (a dangling link) took the dataset's TR."""
    root = _series_folder(tmp_path / "series")
    side = root / "sub-01_task-rest_timeseries.json"
    side.write_bytes(b"/annex/objects/MD5E-s24--0123456789abcdef0123456789abcdef.json\n")
    link = root / "sub-02_task-rest_timeseries.json"
    _annex(link, root)
    df = ingest_dataset("ds", "roi_timeseries", root, repetition_time=2.0).manifest
    df = df.set_index("subject")
    assert df["reason_code"].to_dict() == {"01": "not_fetched", "02": "not_fetched", "03": ""}
    assert f"datalad get {side}" in df.loc["01", "reason"]
    assert f"its sidecar {link}" in df.loc["02", "reason"]
    assert f"datalad get {link}" in df.loc["02", "reason"]
    assert df.loc["03", "t_r"] == 1.5


def test_an_roi_series_or_connectome_file_not_fetched_is_not_fetched(tmp_path: Path) -> None:
    """A run file not fetched was `missing_file`, its fix 'correct its path in' the file itself."""
    root = _series_folder(tmp_path / "series")
    data = root / "sub-02_task-rest_timeseries.npy"
    _annex(data, root)
    pointer = root / "sub-03_task-rest_timeseries.npy"
    pointer.write_bytes(b"/annex/objects/MD5E-s1808--0123456789abcdef0123456789abcdef.npy\n")
    df = ingest_dataset("ds", "roi_timeseries", root).manifest.set_index("subject")
    assert df["reason_code"].to_dict() == {"01": "", "02": "not_fetched", "03": "not_fetched"}
    assert f"datalad get {data}" in df.loc["02", "reason"]
    assert "git-annex pointer" in df.loc["03", "reason"]
    matrices = tmp_path / "matrices"
    matrices.mkdir()
    np.save(matrices / "sub-01_task-rest_relmat.npy", np.eye(7))
    _annex(matrices / "sub-01_task-rest_relmat.npy", matrices)
    df = ingest_dataset("ds", "connectome", matrices).manifest
    assert df["reason_code"].tolist() == ["not_fetched"] and "datalad get" in df["reason"][0]
