"""``lcm connectome run``'s fix of a run in the wrong space names the settings as the user gave
them: the options of the verbs that set them on the command line, the config's keys when a
workflow rule runs it (``lcm --rule``). It said "Set fmriprep.output_space (lcm fmriprep
--output-space)" and "entry: roi_timeseries" to either user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import fmriprep_record, make_fmriprep_run

from lcm.cli import main, setup_logging

RUN = "sub-01_task-rest_run-1"
DENOISE = {"strategy": "24P", "fd_threshold": None, "min_volumes": 10, "min_dof": None}
HOW = {
    "command_line": (
        [],
        "lcm fmriprep --output-space",
        "lcm ingest --entry roi_timeseries",
    ),
    "rule": (
        ["--rule", "connectome_run"],
        "fmriprep.output_space",
        "datasets.tiny.entry: roi_timeseries",
    ),
}


def _qc(tmp: Path, how: str, space: str) -> dict:
    """QC of RUN by ``lcm [--rule connectome_run] connectome run``, its record in ``space``."""
    files = make_fmriprep_run(tmp / "fmriprep", RUN, n_vol=40)
    record = fmriprep_record(tmp / "rec.json", "tiny", [(RUN, files)])
    rec = json.loads(record.read_text())
    rec["output_space"] = space
    record.write_text(json.dumps(rec))
    argv = [*HOW[how][0], "connectome", "run", "--dataset", "tiny", "--fmriprep-record"]
    argv += [str(record), "--run-key", RUN, "--atlas", "aal116", "--denoise"]
    argv += [json.dumps(DENOISE), "--out-dir", str(tmp / "conn"), "--qc-out", str(tmp / "qc")]
    try:
        assert main(argv) == 0
    finally:
        setup_logging()
    return json.loads((tmp / "qc").read_text())


@pytest.mark.parametrize("how", sorted(HOW))
def test_bold_in_a_subject_s_own_space_names_the_settings_given(tmp_path: Path, how: str) -> None:
    qc = _qc(tmp_path, how, "T1w")
    _, setting, entry = HOW[how]
    assert qc["reason_code"] == "space_mismatch", qc
    assert qc["reason"].endswith(
        f"Fix: Set {setting} to the atlas's template, MNI152NLin2009cAsym, and run fMRIPrep "
        "with it in --output-spaces. An atlas in each subject's own space is not supported: "
        f"bring such parcellations as ROI time series ({entry})."
    ), qc["reason"]


@pytest.mark.parametrize("how", sorted(HOW))
def test_bold_in_another_template_names_the_space_setting_given(tmp_path: Path, how: str) -> None:
    qc = _qc(tmp_path, how, "MNI152NLin6Asym")
    assert qc["reason_code"] == "space_mismatch", qc
    assert qc["reason"].endswith(
        "Fix: Use an atlas in the BOLD's space (e.g. from TemplateFlow) or set "
        f"{HOW[how][1]} to the atlas's space."
    ), qc["reason"]
