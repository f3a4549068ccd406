"""`--runner existing` checks a preprocessed run's sidecar TR against its own BOLD header and
against the raw run's TR (ingest's manifest, or ingest's reading of the raw folder): fMRIPrep
copies the raw TR into both, so a disagreement means outputs resampled or edited by hand, or a
sidecar copied from another run. The run is excluded as ingest and the connectome stage exclude
it (tr_mismatch), naming the file, both values and the fix; the other runs go on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.connectome import SPACE, cli, make_fmriprep_run, make_raw_bids
from helpers.fmriprep import fmriprep_request

from lcm import reason_codes
from lcm.bids.ingest import ingest
from lcm.commands import fmriprep as fmriprep_cmd
from lcm.connectome.voxel_run import load_run_from_record
from lcm.exceptions import ExcludedRunError
from lcm.preprocess.derivatives import TR_FROM_PREPROC
from lcm.preprocess.fmriprep_run import run_fmriprep

BAD, GOOD = "sub-01_task-rest_run-1", "sub-01_task-rest_run-2"


def _two_runs(tmp_path: Path, bad_tr: float = 2.0) -> dict[str, Path]:
    """Raw BIDS of sub-01 (TR 2 s, runs 1 and 2) and fMRIPrep's outputs of both: run 2 as
    fMRIPrep writes it, run 1 with header and sidecar TR ``bad_tr``; run 1's files returned."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"), t_r=2.0)
    make_fmriprep_run(tmp_path / "deriv", GOOD, n_vol=40, t_r=2.0)
    return make_fmriprep_run(tmp_path / "deriv", BAD, n_vol=40, t_r=bad_tr)


def _set_header_tr(bold: Path, pixdim: float, unit: str) -> None:
    img = nib.load(bold)
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = pixdim
    nib.save(img, bold)


def _manifest(tmp_path: Path) -> Path:
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("tiny", "bids", tmp_path / "raw", manifest, validate=False, use_cache=False)
    return manifest


def _excluded_one(rec: dict) -> dict:
    """The record's one excluded run (run 1); run 2 goes on."""
    assert [r["run_key"] for r in rec["runs"]] == [GOOD]
    (ex,) = rec["excluded"]
    assert ex["run_key"] == BAD
    return ex


@pytest.mark.parametrize("with_manifest", [False, True])
def test_a_sidecar_tr_its_header_contradicts_excludes_the_run(
    tmp_path: Path, with_manifest: bool
) -> None:
    """The sidecar says 2 s (the raw run's TR), the preprocessed header 2.5 s (resampled or
    edited by hand): the run is excluded as tr_mismatch, naming the BOLD, its sidecar, both
    values and the fix, with or without ingest's manifest."""
    files = _two_runs(tmp_path)
    _set_header_tr(files["bold"], 2.5, "sec")
    manifest = _manifest(tmp_path) if with_manifest else None
    rec = run_fmriprep(
        fmriprep_request(tmp_path, "existing", manifest=manifest), tmp_path / "rec.json"
    )
    ex = _excluded_one(rec)
    assert ex["reason_code"] == reason_codes.TR_MISMATCH
    reason = ex["reason"]
    assert str(files["bold"]) in reason and str(files["sidecar"]) in reason
    assert "RepetitionTime is 2 s" in reason and "pixdim[4] says 2.5 s" in reason
    assert "Fix: " in reason and "fMRIPrep" in reason


@pytest.mark.parametrize("with_manifest", [False, True])
def test_a_preprocessed_tr_other_than_the_raw_runs_excludes_the_run(
    tmp_path: Path, with_manifest: bool
) -> None:
    """Sidecar and header agree on 2.5 s, the raw run (manifest, or ingest's reading of the
    raw folder) on 2 s: fMRIPrep keeps the raw TR, so one of the two is wrong."""
    files = _two_runs(tmp_path, bad_tr=2.5)
    manifest = _manifest(tmp_path) if with_manifest else None
    rec = run_fmriprep(
        fmriprep_request(tmp_path, "existing", manifest=manifest), tmp_path / "rec.json"
    )
    ex = _excluded_one(rec)
    assert ex["reason_code"] == reason_codes.TR_MISMATCH
    reason = ex["reason"]
    raw_bold = tmp_path / "raw" / "sub-01" / "func" / f"{BAD}_bold.nii.gz"
    assert str(files["sidecar"]) in reason and str(raw_bold) in reason
    assert "2.5 s" in reason and "2 s" in reason
    assert "Fix: " in reason and "lcm ingest" in reason


def test_runs_whose_trs_agree_are_recorded_as_before(tmp_path: Path) -> None:
    _two_runs(tmp_path)
    rec = run_fmriprep(
        fmriprep_request(tmp_path, "existing", manifest=_manifest(tmp_path)),
        tmp_path / "rec.json",
    )
    assert rec["excluded"] == [] and [r["run_key"] for r in rec["runs"]] == [BAD, GOOD]
    assert all(r["t_r_source"] == TR_FROM_PREPROC and r["t_r_note"] == "" for r in rec["runs"])


def test_a_header_of_unknown_time_unit_that_disagrees_is_read_as_ingest_reads_it(
    tmp_path: Path,
) -> None:
    """pixdim[4] 3 with no time unit, sidecar 2 s: a plausible TR in seconds that disagrees,
    excluded as ingest would, the reason saying the unit is unknown and how to name it."""
    files = _two_runs(tmp_path)
    _set_header_tr(files["bold"], 3.0, "unknown")
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    ex = _excluded_one(rec)
    assert ex["reason_code"] == reason_codes.TR_MISMATCH
    assert "names no time unit" in ex["reason"]
    assert "set_xyzt_units(xyz='mm', t='sec')" in ex["reason"]
    assert str(files["bold"]) in ex["reason"]


@pytest.mark.parametrize(("pixdim", "said"), [(2000.0, "if read as milliseconds"), (1.0, "")])
def test_a_header_of_unknown_time_unit_that_agrees_or_says_nothing_is_not_a_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pixdim: float, said: str
) -> None:
    """pixdim[4] 2000 of no unit agrees with 2 s read as milliseconds; nibabel's default 1 is
    no TR: neither excludes the run, and neither confirms its TR: the record's note says so."""
    files = _two_runs(tmp_path)
    _set_header_tr(files["bold"], pixdim, "unknown")
    with caplog.at_level(logging.INFO, logger="lcm"):
        rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["excluded"] == []
    run = next(r for r in rec["runs"] if r["run_key"] == BAD)
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_PREPROC
    assert run["t_r_note"].startswith("TR not checked: ")
    assert "names no time unit" in run["t_r_note"] and said in run["t_r_note"]
    assert any(files["bold"].name in r.getMessage() for r in caplog.records)


def test_the_cli_on_a_derivatives_folder_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lcm fmriprep --runner existing` as a user runs it, relative paths from the folder
    holding raw data and derivatives: the run whose header was edited is excluded, exit 0."""
    files = _two_runs(tmp_path)
    _set_header_tr(files["bold"], 1.0, "sec")
    monkeypatch.chdir(tmp_path)
    argv = ["fmriprep", "--dataset", "tiny", "--bids", "raw", "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE, "--derivatives", "deriv"]
    argv += ["--out", "rec.json"]
    assert cli(fmriprep_cmd, argv) == 0
    ex = _excluded_one(json.loads((tmp_path / "rec.json").read_text()))
    assert ex["reason_code"] == reason_codes.TR_MISMATCH
    assert files["bold"].name in ex["reason"] and "1 s" in ex["reason"]


def test_the_connectome_stage_gets_the_exclusion_with_its_own_code(tmp_path: Path) -> None:
    """The connectome job of the excluded run records the record's code and reason, the code
    its own header check gives (tr_mismatch), so QC tables count such runs in one place."""
    files = _two_runs(tmp_path)
    _set_header_tr(files["bold"], 2.5, "sec")
    run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    with pytest.raises(ExcludedRunError) as err:
        load_run_from_record(tmp_path / "rec.json", BAD)
    assert err.value.code == reason_codes.TR_MISMATCH
    assert "pixdim[4] says 2.5 s" in err.value.message
    deriv, _ = load_run_from_record(tmp_path / "rec.json", GOOD)
    assert deriv.t_r == 2.0
