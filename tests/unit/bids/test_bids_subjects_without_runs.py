"""A subject folder with no run of the task (anat/ only, or other tasks' runs) gave the
manifest no row, so no summary said where it went: the ingest summary now lists it, with
reason code no_runs and the fixes, and the cohort goes on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import make_raw_bids, save_nifti

from lcm.bids.ingest import included_runs, ingest
from lcm.bids.selection import Selection
from lcm.commands.report import read_ingest_summaries
from lcm.reason_codes import CODES, NO_RUNS
from lcm.report.html import ingest_section


def _dataset(tmp_path: Path) -> Path:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    for sub in ("03", "05"):  # anatomical only
        save_nifti(root / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz", np.zeros((4, 5, 6)))
    other = root / "sub-04" / "func" / "sub-04_task-nback_bold.nii.gz"
    save_nifti(other, np.zeros((4, 5, 6, 10)), t_r=2.0)
    return root


def test_subjects_without_runs_are_listed_in_the_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _dataset(tmp_path)
    out = tmp_path / "out" / "manifest.parquet"
    sel = Selection.from_config({"participants": {"exclude": ["05"]}})  # left out on purpose
    with caplog.at_level(logging.WARNING, logger="lcm"):
        df = ingest("tiny", "bids", root, out, selection=sel, validate=False)
    assert int(df["included"].sum()) == 2  # the cohort goes on, nothing raised
    summary = json.loads((out.parent / "summary.json").read_text())
    listed = {s["subject"]: s for s in summary["subjects_without_runs"]}
    assert sorted(listed) == ["03", "04"] and summary["n_subjects_without_runs"] == 2
    assert NO_RUNS in CODES and {s["reason_code"] for s in listed.values()} == {NO_RUNS}
    anat, nback = listed["03"]["reason"], listed["04"]["reason"]
    assert "sub-03 has no run of task 'rest' (it holds anat/)" in anat
    assert "ingest.select.tiny.participants.exclude" in anat and "datasets.tiny.task" not in anat
    assert "its func/ files are of task(s) nback" in nback and "datasets.tiny.task" in nback
    table = pd.read_csv(out.parent / "summary.tsv", sep="\t", keep_default_na=False)
    row = table.set_index("reason_code").loc[NO_RUNS]
    assert row["n_runs"] == 0 and row["example_path"] == "sub-03"
    assert "2 subject(s) without a run (sub-03, sub-04)" in row["example"]
    (warned,) = [r.getMessage() for r in caplog.records if NO_RUNS in r.getMessage()]
    assert "2 subject folder(s) without a run of task 'rest'" in warned and "sub-03" in warned
    # Its consumers: the report's ingestion table shows the row; the plan's runs are the same.
    shown = ingest_section(read_ingest_summaries([str(out.parent / "summary.tsv")]))
    assert NO_RUNS in shown and "sub-03, sub-04" in shown
    runs = included_runs("tiny", "bids", root, selection=sel)
    assert sorted(r["sub"] for r in runs) == ["01", "02"]


def test_subjects_with_derivatives_but_no_raw_folder_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A raw dataset whose fMRIPrep folder holds subjects it lacks (raw folders not copied):
    they were left out of the cohort without a word. A selection of participants (which names
    raw subjects only) is the cohort asked for: nothing to say then."""
    from helpers.connectome import make_fmriprep_run

    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    deriv = tmp_path / "fmriprep"
    for sub in ("01", "02", "07", "08"):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1")
    out = tmp_path / "out" / "manifest.parquet"

    def warned(selection: Selection | None = None) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lcm"):
            df = ingest(
                "tiny", "bids", root, out, derivatives=deriv, selection=selection, validate=False
            )
        assert "01" in set(df.loc[df["included"], "subject"])
        return [r.getMessage() for r in caplog.records if "no folder in the raw" in r.getMessage()]

    said = warned()
    assert len(said) == 1, caplog.text
    assert f"fMRIPrep derivatives {deriv} have no folder in the raw dataset {root}" in said[0]
    assert ": sub-07, sub-08 are not in it" in said[0] and "entry: fmriprep" in said[0]
    assert warned(Selection.from_config({"participants": {"include": ["01"]}})) == []
