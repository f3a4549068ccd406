"""A BOLD header whose xyzt_units names no time unit is no TR in seconds.

nibabel's ``get_zooms()`` reports pixdim[4] as written, whatever the unit; fMRIPrep trusts the
sidecar's RepetitionTime, and the BIDS validator only warns when they differ. Ingest compares
a header of unknown time unit with the sidecar only where its value is a plausible TR in
seconds or in milliseconds, and says in every case that the header's unit is unknown.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.connectome import make_raw_bids

from lcm import reason_codes
from lcm.bids.ingest import ingest_dataset
from lcm.bids.nifti_header import read_bold_header
from lcm.bids.rows import TR_NOT_CHECKED

BOLD = Path("sub-01") / "func" / "sub-01_task-rest_run-1_bold.nii.gz"


def _set_header_tr(path: Path, pixdim: float, unit: str) -> None:
    """Rewrite ``path`` with ``pixdim[4] = pixdim`` and xyzt_units time unit ``unit``."""
    img = nib.load(path)
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = pixdim
    nib.save(img, path)


def _row(tmp_path: Path, pixdim: float, unit: str) -> dict:
    """The manifest row of a raw run whose sidecar says TR 2 s and whose header says ``pixdim``
    in ``unit``."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    _set_header_tr(root / BOLD, pixdim, unit)
    (row,) = ingest_dataset("tiny", "bids", root).manifest.to_dict("records")
    return row


@pytest.mark.parametrize("unit", ["unknown", "hz"])  # time bits 0; a code that is no time unit
def test_header_of_unknown_time_unit_gives_no_tr_in_seconds(tmp_path: Path, unit: str) -> None:
    path = tmp_path / "bold.nii.gz"
    img = nib.Nifti1Image(np.zeros((3, 4, 5, 6), np.int16), np.eye(4))
    img.header.set_xyzt_units("mm", unit)
    img.header.set_zooms((2.0, 2.0, 2.0, 2000.0))
    nib.save(img, path)
    got = read_bold_header(path)
    assert got.t_r is None and not got.t_unit_known
    assert got.pixdim_t == pytest.approx(float(nib.load(path).header.get_zooms()[3]))


@pytest.mark.parametrize("unit", ["unknown", "hz"])
def test_milliseconds_of_unknown_unit_do_not_blame_the_sidecar(tmp_path: Path, unit: str) -> None:
    """pixdim[4] 2000 with no time unit, sidecar 2 s: no TR mismatch; read as milliseconds the
    header agrees, and tr_check says the unit is unknown."""
    row = _row(tmp_path, 2000.0, unit)
    assert row["included"], row["reason"]
    assert row["t_r"] == 2.0
    assert row["tr_check"].startswith(TR_NOT_CHECKED)
    assert "no time unit" in row["tr_check"] and "milliseconds" in row["tr_check"]


def test_seconds_of_unknown_unit_are_no_confirmation(tmp_path: Path) -> None:
    row = _row(tmp_path, 2.0, "unknown")
    assert row["included"] and row["tr_check"] != "ok"
    assert row["tr_check"].startswith(TR_NOT_CHECKED)
    assert "no time unit" in row["tr_check"] and "seconds" in row["tr_check"]


@pytest.mark.parametrize(("pixdim", "read_as"), [(3.0, "seconds"), (2500.0, "milliseconds")])
def test_a_plausible_header_of_unknown_unit_that_disagrees_is_a_mismatch_saying_so(
    tmp_path: Path, pixdim: float, read_as: str
) -> None:
    row = _row(tmp_path, pixdim, "unknown")
    assert not row["included"] and row["reason_code"] == reason_codes.TR_MISMATCH
    assert BOLD.name in row["reason"] and f"{pixdim:g}" in row["reason"]
    assert "no time unit" in row["reason"] and read_as in row["reason"]
    # The fix names the unit the value was read in: t='sec' on 2500 would make the TR 2500 s.
    unit = {"seconds": "'sec'", "milliseconds": "'msec'"}[read_as]
    assert f"set_xyzt_units(xyz='mm', t={unit})" in row["reason"]
    assert row["reason"].count("set_xyzt_units") == 1


@pytest.mark.parametrize("pixdim", [45.0, 1.0])
def test_an_implausible_or_default_header_of_unknown_unit_is_not_compared(
    tmp_path: Path, pixdim: float
) -> None:
    """45 is no TR in seconds or milliseconds; 1 with no time unit is what nibabel (and other
    writers) leave when no TR is set: neither proves the sidecar wrong."""
    row = _row(tmp_path, pixdim, "unknown")
    assert row["included"], row["reason"]
    assert row["tr_check"].startswith(TR_NOT_CHECKED) and "no time unit" in row["tr_check"]


@pytest.mark.parametrize(("pixdim", "unit"), [(2000.0, "msec"), (2.0, "sec")])
def test_a_named_time_unit_is_still_checked(tmp_path: Path, pixdim: float, unit: str) -> None:
    assert _row(tmp_path, pixdim, unit)["tr_check"] == "ok"
    row = _row(tmp_path / "other", pixdim * 1.5, unit)
    assert row["reason_code"] == reason_codes.TR_MISMATCH
