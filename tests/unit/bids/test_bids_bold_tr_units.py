"""A BOLD run whose TR is 2000 (milliseconds written as seconds) is excluded at ingest.

A hand-made sidecar, or a converter, writes ``RepetitionTime: 2000``; nibabel writes the
header it is told, so its ``pixdim[4]`` is 2000 with ``xyzt_units`` ``sec`` (the two then
"agree"), ``msec`` (2 s: a legitimate header, the sidecar alone is wrong) or no time unit.
A raw run of the first kind was included with a TR of 2000 s, which made every band-pass
filter and duration absurd downstream; the others were excluded as a "TR mismatch" whose fix
did not say which is wrong. The raw-BIDS and fMRIPrep-derivatives ways in now refuse such a TR
as the XCP-D and file-listing ones do (:func:`lcm.repetition_time.implausible_tr`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids

from lcm import reason_codes
from lcm.bids.ingest import ingest_dataset
from lcm.bids.timing import set_unit_fix

RUN = "sub-01_task-rest_run-1"


def _converted(path: Path, pixdim: float, unit: str) -> None:
    """Rewrite ``path`` as a converter built on nibabel would: ``pixdim[4] = pixdim`` and the
    time unit ``unit`` named in ``xyzt_units``."""
    img = nib.load(path)
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", unit)
    zooms = img.header.get_zooms()
    img.header.set_zooms((*zooms[:3], pixdim))
    nib.save(img, path)


def _raw(tmp_path: Path, sidecar: float, pixdim: float, unit: str) -> dict:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=sidecar)
    _converted(root / "sub-01" / "func" / f"{RUN}_bold.nii.gz", pixdim, unit)
    (row,) = ingest_dataset("tiny", "bids", root).manifest.to_dict("records")
    return row


def _fmriprep(tmp_path: Path, sidecar: float | None, pixdim: float, unit: str) -> dict:
    root = tmp_path / "deriv"
    files = make_fmriprep_run(root, RUN, n_vol=40, t_r=2.0)
    _converted(files["bold"], pixdim, unit)
    files["sidecar"].write_text(json.dumps({} if sidecar is None else {"RepetitionTime": sidecar}))
    df = ingest_dataset("tiny", "fmriprep", root, space=SPACE).manifest
    (row,) = df[df["path"] == str(files["bold"])].to_dict("records")
    return row


def _refused(row: dict, what: str) -> None:
    assert not row["included"], row
    assert row["reason_code"] == reason_codes.NO_REPETITION_TIME, row["reason"]
    assert row["t_r"] is None or np.isnan(row["t_r"])
    assert row["reason"].startswith(f"{what} is 2000"), row["reason"]
    assert "above 30 s" in row["reason"] and "in milliseconds it is 2 s" in row["reason"]


# sec: header and sidecar "agree" on 2000 s; msec: the header says 2 s, rightly; unknown:
# the header's 2000 reads as milliseconds. The sidecar is wrong in each.
@pytest.mark.parametrize("unit", ["sec", "msec", "unknown"])
@pytest.mark.parametrize("how", [_raw, _fmriprep])
def test_a_sidecar_tr_of_2000_is_refused_naming_the_sidecar(tmp_path: Path, unit: str, how) -> None:
    row = how(tmp_path, 2000.0, 2000.0, unit)
    preproc = f"{RUN}_space-{SPACE}_desc-preproc_bold.json"
    sidecar = "task-rest_bold.json" if how is _raw else preproc
    what = f"RepetitionTime of {sidecar}"
    _refused(row, what)
    assert f"set {what} to the repetition time in seconds, e.g. 2.0" in row["reason"]
    # Only a header that says 2000 s is wrong too: its fix names the unit it is in.
    assert ("t='msec'" in row["reason"]) == (unit == "sec"), row["reason"]


def test_a_header_tr_of_2000_seconds_is_refused_where_no_sidecar_gives_one(
    tmp_path: Path,
) -> None:
    """fMRIPrep outputs without a sidecar TR take the header's: 2000 s is no TR either."""
    row = _fmriprep(tmp_path, None, 2000.0, "sec")
    name = f"{RUN}_space-{SPACE}_desc-preproc_bold.nii.gz"
    _refused(row, f"pixdim[4] of the NIfTI header of {name} (xyzt_units: sec)")
    assert "img.header.set_xyzt_units(xyz='mm', t='msec')" in row["reason"]
    assert "RepetitionTime (seconds)" in row["reason"]


@pytest.mark.parametrize("how", [_raw, _fmriprep])
def test_a_header_in_milliseconds_with_a_sidecar_in_seconds_is_taken(tmp_path: Path, how) -> None:
    """pixdim[4] 2000 with xyzt_units msec is 2 s: legitimate, and agrees with a 2 s sidecar."""
    row = how(tmp_path, 2.0, 2000.0, "msec")
    assert row["included"], row["reason"]
    assert row["t_r"] == 2.0


def test_a_header_in_milliseconds_gives_the_tr_where_no_sidecar_does(tmp_path: Path) -> None:
    row = _fmriprep(tmp_path, None, 2000.0, "msec")
    assert row["included"], row["reason"]
    assert row["t_r"] == pytest.approx(2.0)


@pytest.mark.parametrize(("pixdim", "unit"), [(2000.0, "msec"), (2.0, "sec")])
def test_the_unit_fix_run_as_written_keeps_the_spatial_unit(pixdim: float, unit: str) -> None:
    # nibabel's set_xyzt_units(t=...) alone resets the spatial unit to unknown: the call the
    # fix offers names both, so following it mends the time unit and loses nothing.
    call = re.search(r"img\.header\.set_xyzt_units\([^)]*\)", set_unit_fix(pixdim)).group(0)
    img = nib.Nifti1Image(np.zeros((2, 2, 2, 3), dtype="float32"), np.eye(4))
    img.header.set_xyzt_units("mm", "unknown")
    eval(call, {"img": img})
    assert img.header.get_xyzt_units() == ("mm", unit)
