"""A relative ``lcm fmriprep --derivatives``: its record holds the paths as given, and
``lcm connectome run`` from another folder still finds the run's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids

from lcm.cli import main
from lcm.io.provenance import provenance_path

RUN = "sub-01_task-rest_run-1"
DENOISE = {"strategy": "24P", "fd_threshold": None, "min_volumes": 40, "min_dof": None}


def test_connectome_run_elsewhere_finds_a_record_made_with_a_relative_derivatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record named deriv/sub-01/... relative to the study folder, and a connectome run by
    hand from another folder excluded the run as an unreadable (truncated) BOLD."""
    study = tmp_path / "study"
    make_raw_bids(study / "raw", subjects=("01",))
    make_fmriprep_run(study / "deriv", RUN, n_vol=40)
    monkeypatch.chdir(study)
    argv = ["fmriprep", "--dataset", "tiny", "--bids", "raw", "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE, "--derivatives", "deriv"]
    assert main([*argv, "--out", "records/sub-01_fmriprep.json"]) == 0
    record = study / "records" / "sub-01_fmriprep.json"
    assert json.loads(record.read_text())["runs"][0]["bold"].startswith("deriv/")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = ["connectome", "run", "--dataset", "tiny", "--fmriprep-record", str(record)]
    argv += ["--run-key", RUN, "--atlas-name", "aal116", "--denoise", json.dumps(DENOISE)]
    assert main([*argv, "--out-dir", "out", "--qc-out", "qc/run.json"]) == 0
    qc = json.loads((elsewhere / "qc" / "run.json").read_text())
    assert qc["included"] is True and qc["reason"] == "", qc["reason"]
    series = sorted((elsewhere / "out").rglob("*_timeseries.tsv"))
    assert len(series) == 1
    # Its sidecar names the BOLD it read where it lies, so a trace reaches it from anywhere.
    sources = json.loads(provenance_path(series[0]).read_text())["Sources"]
    bold = next(s for s in sources if s.endswith("_desc-preproc_bold.nii.gz"))
    assert Path(bold).is_file() and Path(bold).is_relative_to(study / "deriv")
