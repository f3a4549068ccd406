"""A preprocessed BOLD whose JSON sidecar is missing, or names no RepetitionTime, takes the raw
run's TR (its sidecars by BIDS inheritance, as ingest resolves them), checked against the
BOLD header, logged and recorded; with no source of a TR the run stays excluded, named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.connectome import (
    CROP_SHAPE,
    SPACE,
    cli,
    make_fmriprep_run,
    make_raw_bids,
    save_nifti,
)
from helpers.fmriprep import fmriprep_request

from lcm import reason_codes
from lcm.bids.ingest import ingest
from lcm.commands import fmriprep as fmriprep_cmd
from lcm.io.provenance import provenance_path
from lcm.preprocess.derivatives import (
    TR_FROM_HEADER,
    TR_FROM_INHERITED,
    TR_FROM_PREPROC,
    TR_FROM_RAW,
)
from lcm.preprocess.fmriprep_run import run_fmriprep

RUN = "sub-01_task-rest_run-1"


def _layout(tmp_path: Path, deriv_tr: float = 2.0) -> dict[str, Path]:
    """Raw BIDS with an inherited top-level task-rest_bold.json (TR 2 s) beside fMRIPrep's
    derivatives of sub-01 as fMRIPrep writes them (sub-01/func/..._desc-preproc_bold.*)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",), t_r=2.0)
    return make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=40, t_r=deriv_tr)


@pytest.mark.parametrize("damage", ["remove", "no_key"])
def test_a_preproc_sidecar_without_tr_takes_the_raw_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    files = _layout(tmp_path)
    if damage == "remove":
        files["sidecar"].unlink()
    else:
        files["sidecar"].write_text(json.dumps({"SkullStripped": False}))
    with caplog.at_level(logging.WARNING, logger="lcm"):
        rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["excluded"] == []
    (run,) = rec["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_RAW
    raw_bold = tmp_path / "raw" / "sub-01" / "func" / f"{RUN}_bold.nii.gz"
    assert f"the raw BIDS sidecar(s) of {raw_bold} (BIDS inheritance)" in run["t_r_note"]
    assert "header of" in run["t_r_note"] and "agrees (pixdim[4] 2 s)" in run["t_r_note"]
    (warned,) = [r.getMessage() for r in caplog.records if "taken from" in r.getMessage()]
    assert str(files["sidecar"]) in warned and str(raw_bold) in warned
    assert run["sidecar"] == ("" if damage == "remove" else str(files["sidecar"]))


def test_the_cli_records_a_run_whose_sidecar_is_absent(tmp_path: Path) -> None:
    """`lcm fmriprep` lists each run's files as its products: an absent sidecar is none."""
    files = _layout(tmp_path)
    files["sidecar"].unlink()
    out = tmp_path / "rec.json"
    argv = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE]
    argv += ["--derivatives", str(tmp_path / "deriv"), "--out", str(out)]
    assert cli(fmriprep_cmd, argv) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["t_r_source"] == TR_FROM_RAW and run["sidecar"] == ""
    products = json.loads(provenance_path(out).read_text())["Products"]
    assert str(files["bold"]) in products and str(files["sidecar"]) not in products


def test_the_manifest_tr_is_the_fallback_in_the_workflow(tmp_path: Path) -> None:
    """The workflow's jobs read ingest's manifest: its TR of the raw run (inherited sidecar)."""
    files = _layout(tmp_path)
    files["sidecar"].unlink()
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("tiny", "bids", tmp_path / "raw", manifest, validate=False, use_cache=False)
    req = fmriprep_request(tmp_path, "existing", manifest=manifest)
    (run,) = run_fmriprep(req, tmp_path / "rec.json")["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_RAW
    assert "raw BIDS sidecar(s) of" in run["t_r_note"]


def test_derivatives_alone_take_the_tr_their_run_inherits(tmp_path: Path) -> None:
    """entry fmriprep: ingest resolved the run's TR from a top-level sidecar of the derivatives
    tree and included it; the fMRIPrep stage excluded it for its own missing sidecar."""
    files = make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=40)
    files["sidecar"].unlink()
    top = tmp_path / "deriv" / f"task-rest_space-{SPACE}_desc-preproc_bold.json"
    top.write_text(json.dumps({"RepetitionTime": 2.0}))
    manifest = tmp_path / "ingest" / "manifest.parquet"
    df = ingest("tiny", "fmriprep", tmp_path / "deriv", manifest, validate=False, use_cache=False)
    assert df["included"].tolist() == [True]
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv", manifest=manifest)
    (run,) = run_fmriprep(req, tmp_path / "rec.json")["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_INHERITED
    assert f"the JSON sidecar(s) ingest resolved for {files['bold']}" in run["t_r_note"]


def test_a_fallback_tr_the_header_contradicts_excludes_the_run(tmp_path: Path) -> None:
    files = _layout(tmp_path, deriv_tr=2.5)  # the preprocessed BOLD's header says 2.5 s
    files["sidecar"].unlink()
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["runs"] == []
    (ex,) = rec["excluded"]
    assert ex["reason_code"] == reason_codes.TR_MISMATCH
    assert str(files["bold"]) in ex["reason"] and "2.5" in ex["reason"]
    assert "Restore the preprocessed BOLD's JSON sidecar" in ex["reason"]


def test_a_complete_sidecar_is_read_as_before(tmp_path: Path) -> None:
    _layout(tmp_path)
    (run,) = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")["runs"]
    assert run["t_r_source"] == TR_FROM_PREPROC and run["t_r_note"] == ""


@pytest.mark.parametrize(("pixdim", "unit"), [(2.0, "sec"), (2000.0, "msec")])
def test_derivatives_alone_without_a_manifest_take_the_header_s_tr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pixdim: float, unit: str
) -> None:
    """`lcm fmriprep --runner existing` on derivatives a user brings, with no ingest manifest
    and no sidecar naming RepetitionTime: the BOLD header's pixdim[4] in the unit xyzt_units
    names, recorded as the manifest path records it (t_r_source header)."""
    files = _derivatives_without_tr(tmp_path, pixdim, unit)
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv")
    with caplog.at_level(logging.WARNING, logger="lcm"):
        rec = run_fmriprep(req, tmp_path / "rec.json")
    assert rec["excluded"] == []
    (run,) = rec["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_HEADER
    assert f"the NIfTI header (pixdim[4]) of {files['bold']}" in run["t_r_note"]
    assert any(str(files["bold"]) in r.getMessage() for r in caplog.records)


def test_derivatives_alone_without_a_manifest_take_the_tr_their_run_inherits(
    tmp_path: Path,
) -> None:
    files = make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=40)
    files["sidecar"].unlink()
    top = tmp_path / "deriv" / f"task-rest_space-{SPACE}_desc-preproc_bold.json"
    top.write_text(json.dumps({"RepetitionTime": 2.0}))
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv")
    (run,) = run_fmriprep(req, tmp_path / "rec.json")["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_INHERITED


@pytest.mark.parametrize(("pixdim", "unit"), [(2.0, "unknown"), (0.0, "sec")])
def test_derivatives_alone_without_any_tr_are_refused_naming_the_file_and_fix(
    tmp_path: Path, pixdim: float, unit: str
) -> None:
    """No sidecar TR and no header TR in a named time unit: the run is excluded as
    no_repetition_time, naming the BOLD and its sidecar and saying how to give a TR."""
    files = _derivatives_without_tr(tmp_path, pixdim, unit)
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv")
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (ex,) = rec["excluded"]
    assert rec["runs"] == [] and ex["reason_code"] == reason_codes.NO_REPETITION_TIME
    assert str(files["sidecar"]) in ex["reason"] and files["bold"].name in ex["reason"]
    assert "pixdim[4]" in ex["reason"] and "raw run" not in ex["reason"]
    assert "Fix: Add RepetitionTime" in ex["reason"] and "set_xyzt_units" in ex["reason"]


def test_the_cli_on_derivatives_alone_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README documents it for derivatives a user brings: relative paths, called from
    the folder holding them, outside the repository."""
    _derivatives_without_tr(tmp_path, 2.0, "sec")
    monkeypatch.chdir(tmp_path)
    argv = ["fmriprep", "--dataset", "tiny", "--bids", "deriv", "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE, "--derivatives", "deriv"]
    argv += ["--out", "rec.json"]
    assert cli(fmriprep_cmd, argv) == 0
    (run,) = json.loads((tmp_path / "rec.json").read_text())["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_HEADER


def test_a_raw_tr_the_raw_header_refuses_is_named_without_a_manifest(tmp_path: Path) -> None:
    """`--runner existing` without a manifest: the raw run's sidecar (2 s) disagrees with its
    header (2.5 s), so ingest has no TR to lend; the exclusion says so, as ingest does
    (tr_mismatch naming both values), not that fMRIPrep's outputs are missing."""
    files = _layout(tmp_path)
    files["sidecar"].unlink()
    raw_bold = tmp_path / "raw" / "sub-01" / "func" / f"{RUN}_bold.nii.gz"
    save_nifti(raw_bold, np.zeros((*CROP_SHAPE[:2], 3, 44), dtype=np.int16), t_r=2.5)
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    (ex,) = rec["excluded"]
    assert rec["runs"] == [] and ex["reason_code"] == reason_codes.TR_MISMATCH
    assert str(files["sidecar"]) in ex["reason"] and raw_bold.name in ex["reason"]
    assert "2 s" in ex["reason"] and "2.5 s" in ex["reason"]


def _derivatives_without_tr(tmp_path: Path, pixdim: float, unit: str) -> dict[str, Path]:
    """entry fmriprep: fMRIPrep outputs without raw BIDS, no sidecar naming RepetitionTime
    anywhere, the BOLD header's pixdim[4] ``pixdim`` in xyzt_units time unit ``unit``."""
    files = make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=40)
    files["sidecar"].unlink()
    img = nib.load(files["bold"])
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = pixdim
    nib.save(img, files["bold"])
    return files


@pytest.mark.parametrize(("pixdim", "unit"), [(2.0, "sec"), (2000.0, "msec")])
def test_derivatives_without_any_sidecar_tr_take_the_header_s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pixdim: float, unit: str
) -> None:
    """As nilearn and XCP-D read it: pixdim[4] in the unit xyzt_units names, in seconds."""
    files = _derivatives_without_tr(tmp_path, pixdim, unit)
    manifest = tmp_path / "ingest" / "manifest.parquet"
    with caplog.at_level(logging.WARNING, logger="lcm"):
        df = ingest(
            "tiny", "fmriprep", tmp_path / "deriv", manifest, validate=False, use_cache=False
        )
    assert df["included"].tolist() == [True] and df["t_r"].tolist() == [2.0]
    assert "NIfTI header" in df["tr_check"].iloc[0]
    (warned,) = [r.getMessage() for r in caplog.records if "pixdim[4]" in r.getMessage()]
    assert str(files["bold"]) in warned
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv", manifest=manifest)
    (run,) = run_fmriprep(req, tmp_path / "rec.json")["runs"]
    assert run["t_r"] == 2.0 and run["t_r_source"] == TR_FROM_HEADER
    assert str(files["bold"]) in run["t_r_note"] and "no sidecar to check it" in run["t_r_note"]


@pytest.mark.parametrize(
    ("pixdim", "unit", "said"),
    [(2.0, "unknown", "no time unit"), (0.0, "sec", "no positive number")],
)
def test_a_header_tr_of_unknown_unit_or_none_keeps_the_exclusion(
    tmp_path: Path, pixdim: float, unit: str, said: str
) -> None:
    files = _derivatives_without_tr(tmp_path, pixdim, unit)
    manifest = tmp_path / "ingest" / "manifest.parquet"
    df = ingest("tiny", "fmriprep", tmp_path / "deriv", manifest, validate=False, use_cache=False)
    (row,) = df.to_dict("records")
    assert not row["included"] and row["reason_code"] == reason_codes.NO_REPETITION_TIME
    assert files["bold"].name in row["reason"] and "pixdim[4]" in row["reason"]
    assert said in row["reason"]


def test_the_fix_a_derivatives_run_without_tr_is_given_is_one_that_works(tmp_path: Path) -> None:
    """The reason offered `datasets.<name>.repetition_time (lcm ingest --repetition-time)`,
    which ingest applies to ROI series only: following it left the run excluded with the same
    advice. The fixes it names are those that give such a run a TR: a sidecar, or the header's
    time unit."""
    files = _derivatives_without_tr(tmp_path, 2000.0, "unknown")
    manifest = tmp_path / "ingest" / "manifest.parquet"
    df = ingest(
        "tiny",
        "fmriprep",
        tmp_path / "deriv",
        manifest,
        validate=False,
        use_cache=False,
        repetition_time=2.0,  # the advice followed: ignored for this entry
    )
    (row,) = df.to_dict("records")
    assert not row["included"] and row["reason_code"] == reason_codes.NO_REPETITION_TIME
    assert "repetition_time" not in row["reason"] and "--repetition-time" not in row["reason"]
    assert files["bold"].name in row["reason"] and "RepetitionTime" in row["reason"]
    # pixdim[4] 2000 is milliseconds: t='sec' would make the TR 2000 s.
    assert "set_xyzt_units(xyz='mm', t='msec')" in row["reason"] and "t='sec'" not in row["reason"]
