"""The lineage of a voxel-wise connectome goes on past fMRIPrep's derivatives: through the
subject's fMRIPrep record (with the image that ran) to the raw BIDS files it was made from."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids

from lcm.cli import main
from lcm.io import paths
from lcm.io.lineage import trace, verify
from lcm.io.ownership import claim_results
from lcm.io.paths import RESULTS_ENTRIES
from lcm.io.provenance import provenance_path, sha256_file

RUN = "sub-01_task-rest_run-1"
# A short run: under the denoise.min_dof floor (tested in tests/unit/connectome), kept here.
DENOISE = {"strategy": "24P", "fd_threshold": None, "min_volumes": 40, "min_dof": None}


def _run(tmp_path: Path, bids: Path, deriv: Path) -> tuple[Path, Path]:
    """``lcm fmriprep`` (runner existing) then ``lcm connectome run`` of one run, as the
    workflow calls them; returns the fMRIPrep record and the run's time series."""
    results = claim_results(tmp_path / "results", "the LCM workflow", RESULTS_ENTRIES)
    record = Path(paths.fmriprep_record(str(results), "tiny", "01"))
    argv = ["--rule", "fmriprep", "fmriprep", "--dataset", "tiny", "--bids", str(bids)]
    argv += ["--subject", "01", "--runner", "existing", "--output-space", SPACE]
    assert main([*argv, "--derivatives", str(deriv), "--out", str(record)]) == 0
    out = paths.connectome_dir(str(results), "tiny")
    location = paths.run_location({"sub": "01", "task": "rest", "run": "1"})
    qc = paths.run_qc_json(str(results), "tiny", location, SPACE, "aal116")
    argv = ["--rule", "connectome_run", "connectome", "run", "--dataset", "tiny"]
    argv += ["--fmriprep-record", str(record), "--run-key", RUN, "--atlas-name", "aal116"]
    argv += ["--denoise", json.dumps(DENOISE), "--out-dir", out, "--qc-out", qc]
    assert main(argv) == 0
    return record, paths.run_timeseries(out, location, SPACE, "aal116")


def test_trace_reaches_the_fmriprep_record_and_the_raw_bids_files(tmp_path: Path) -> None:
    """It ended at desc-preproc_bold.nii.gz [raw]: the record and the raw BOLD never shown."""
    bids = make_raw_bids(tmp_path / "bids", subjects=("01", "02"))
    files = make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=52)
    record, series = _run(tmp_path, bids, tmp_path / "deriv")
    sidecar = json.loads(provenance_path(record).read_text())
    raw_bold = bids / "sub-01" / "func" / f"{RUN}_bold.nii.gz"
    # The record's job: from the subject's raw files (hashed), to the derivatives it lists.
    raw = [bids / "dataset_description.json", raw_bold, bids / "task-rest_bold.json"]
    assert sidecar["Sources"] == [str(p) for p in raw]
    assert sidecar["SourcesSha256"][str(raw_bold)] == sha256_file(raw_bold)
    made = [files[k] for k in ("bold", "mask", "confounds", "sidecar")]
    assert sidecar["Products"] == [str(p) for p in made]
    assert sidecar["ProductsSha256"][str(files["bold"])] == sha256_file(files["bold"])
    lines = list(trace(series))
    maker = f"(product of rule=fmriprep, listed in {record})"
    bold = next(line for line in lines if line.startswith(f"  {files['bold']} "))
    assert bold.startswith(f"  {files['bold']} [ok] sha256=") and bold.endswith(maker)
    assert not any("[raw]" in line and str(tmp_path / "deriv") in line for line in lines)
    at = lines.index(next(line for line in lines if line.startswith(f"  {record} [ok]")))
    assert "rule=fmriprep" in lines[at]
    assert lines[at + 1 : at + 4] == [f"    {p} [raw] sha256={sha256_file(p)[:12]}" for p in raw]
    assert not any("sub-02" in line for line in lines)
    assert verify(tmp_path / "results") == []
    # A derivative edited after the record: the record's job and the series both say so.
    files["confounds"].write_text(files["confounds"].read_text().replace("0.", "1.", 1))
    problems = verify(tmp_path / "results")
    assert f"{files['confounds']}: changed since {provenance_path(record)} recorded it" in (
        "\n".join(problems)
    )
    assert any(p.startswith(f"{files['confounds']}: input of") for p in problems)


def test_a_dataset_entering_as_derivatives_has_no_raw_sources(tmp_path: Path) -> None:
    deriv = tmp_path / "deriv"
    files = make_fmriprep_run(deriv, RUN, n_vol=52)
    record, _ = _run(tmp_path, deriv, deriv)
    sidecar = json.loads(provenance_path(record).read_text())
    assert sidecar["Sources"] == [] and str(files["bold"]) in sidecar["Products"]
