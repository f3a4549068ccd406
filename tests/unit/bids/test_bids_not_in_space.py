"""fMRIPrep derivatives (entry fmriprep): a run without BOLD in the asked space is a row.

Its preprocessed BOLD in other spaces or resolutions only (``not_in_space``, naming them), or
only other fMRIPrep outputs of it (a mask, confounds: ``fmriprep_outputs_missing``), never a
run dropped without a word.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers.connectome import SPACE, make_fmriprep_run, save_nifti

from lcm.bids.ingest import ingest_dataset


def _tree(deriv: Path) -> None:
    make_fmriprep_run(deriv, "sub-01_task-rest", res="2")
    make_fmriprep_run(deriv, "sub-01_task-rest", n_vol=48)  # native resolution too
    make_fmriprep_run(deriv, "sub-02_ses-1_task-rest", res="2")
    make_fmriprep_run(deriv, "sub-03_task-rest_run-1")  # native resolution only
    make_fmriprep_run(deriv, "sub-03_task-rest_run-2", res="2")
    # fMRIPrep stopped after the mask: no preprocessed BOLD in any space.
    func = deriv / "sub-04" / "func"
    save_nifti(
        func / f"sub-04_task-rest_space-{SPACE}_res-2_desc-brain_mask.nii.gz",
        np.ones((2, 2, 2), np.uint8),
    )
    # Neither another task's outputs nor other files (a transform) make a row.
    make_fmriprep_run(deriv, "sub-01_task-nback", res="2")
    (deriv / "sub-05" / "func").mkdir(parents=True)
    (deriv / "sub-05" / "func" / "sub-05_task-rest_from-boldref_to-T1w_xfm.txt").write_text("")


def _codes(df) -> dict[str, str]:
    return dict(zip(df["run_key"], df["reason_code"], strict=True))


def test_runs_of_another_resolution_or_incomplete_are_excluded_with_a_code(
    tmp_path: Path,
) -> None:
    deriv = tmp_path / "fmriprep"
    _tree(deriv)
    df = ingest_dataset("ds", "fmriprep", deriv, space=f"{SPACE}:res-2").manifest
    codes = _codes(df)
    assert codes == {
        "sub-01_task-rest": "",
        "sub-02_ses-1_task-rest": "",
        "sub-03_task-rest_run-1": "not_in_space",
        "sub-03_task-rest_run-2": "",
        "sub-04_task-rest": "fmriprep_outputs_missing",
    }
    row = df.set_index("run_key").loc["sub-03_task-rest_run-1"]
    assert (row["subject"], row["run"], bool(row["included"])) == ("03", "1", False)
    # The space fMRIPrep wrote, spelled as the setting takes it, and the setting to change.
    assert f"fMRIPrep wrote this run's in {SPACE}:res-native." in row["reason"]
    assert "fmriprep.output_space" in row["reason"]
    missing = df.set_index("run_key").loc["sub-04_task-rest", "reason"]
    assert "no preprocessed BOLD" in missing and "desc-brain_mask" in missing


def test_a_run_with_only_cifti_outputs_says_so_instead_of_fmriprep_stopping(
    tmp_path: Path,
) -> None:
    """fMRIPrep run with --cifti-output and no volumetric space finished: the reason said it
    stopped and to read its log, not that the run only has grayordinate (CIFTI) outputs."""
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest")
    func = deriv / "sub-02" / "func"
    func.mkdir(parents=True)
    cifti = "sub-02_task-rest_space-fsLR_den-91k_bold.dtseries.nii"
    (func / cifti).write_bytes(b"")
    (func / "sub-02_task-rest_desc-confounds_timeseries.tsv").write_text("a\n0\n")
    df = ingest_dataset("ds", "fmriprep", deriv).manifest
    assert _codes(df) == {"sub-01_task-rest": "", "sub-02_task-rest": "fmriprep_outputs_missing"}
    reason = df.set_index("run_key").loc["sub-02_task-rest", "reason"]
    assert f"only CIFTI (grayordinate) outputs, e.g. {cifti}" in reason
    assert f"Fix: rerun fMRIPrep on sub-02 with --output-spaces {SPACE}" in reason
    assert "why it stopped" not in reason


def test_a_space_nobody_has_names_the_spaces_there_are(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deriv = tmp_path / "fmriprep"
    _tree(deriv)
    with caplog.at_level(logging.WARNING, logger="lcm.bids.ingest"):
        ingested = ingest_dataset("ds", "fmriprep", deriv, space=f"{SPACE}:res-3")
    codes = _codes(ingested.manifest)
    assert set(codes.values()) == {"not_in_space", "fmriprep_outputs_missing"}
    assert len(codes) == 5
    assert ingested.summary["excluded_by_reason"] == {
        "not_in_space": 4,
        "fmriprep_outputs_missing": 1,
    }
    row = ingested.manifest.set_index("run_key").loc["sub-01_task-rest"]
    assert f"in {SPACE}:res-2, {SPACE}:res-native." in row["reason"]
    said = caplog.text
    assert f"{SPACE}:res-2 (3 run(s))" in said and f"{SPACE}:res-native (2 run(s))" in said


def test_res_native_reads_the_file_without_res_and_excludes_runs_without_one(
    tmp_path: Path,
) -> None:
    deriv = tmp_path / "fmriprep"
    _tree(deriv)
    df = ingest_dataset("ds", "fmriprep", deriv, space=f"{SPACE}:res-native").manifest
    assert _codes(df) == {
        "sub-01_task-rest": "",
        "sub-02_ses-1_task-rest": "not_in_space",
        "sub-03_task-rest_run-1": "",
        "sub-03_task-rest_run-2": "not_in_space",
        "sub-04_task-rest": "fmriprep_outputs_missing",
    }
    included = df.loc[df["included"], "path"]
    assert not included.str.contains("_res-").any() and len(included) == 2
    row = df.set_index("run_key").loc["sub-02_ses-1_task-rest"]
    assert f"in {SPACE}:res-2." in row["reason"]
