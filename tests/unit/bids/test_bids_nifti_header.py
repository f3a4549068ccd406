"""lcm.bids.nifti_header: the 540-byte header reader agrees with nibabel."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcm.bids.nifti_header import UnreadableHeader, read_bold_header


def _save(img: nib.spatialimages.SpatialImage, path: Path) -> Path:
    nib.save(img, path)
    return path


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
@pytest.mark.parametrize("kind", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize(("unit", "zoom"), [("sec", 0.72), ("msec", 2000.0), ("unknown", 1.5)])
def test_header_matches_nibabel(tmp_path: Path, ext: str, kind, unit: str, zoom: float) -> None:
    img = kind(np.zeros((3, 4, 5, 6), np.int16), np.eye(4))
    img.header.set_xyzt_units("mm", unit)
    img.header.set_zooms((2.0, 2.0, 2.0, zoom))
    path = _save(img, tmp_path / f"bold{ext}")
    got = read_bold_header(path)
    ref = nib.load(path)
    assert got.ndim == 4 and got.shape == ref.shape == (3, 4, 5, 6)
    assert got.pixdim_t == pytest.approx(ref.header.get_zooms()[3])  # as written
    seconds = {"sec": 1.0, "msec": 1e-3}.get(ref.header.get_xyzt_units()[1])
    if seconds is None:  # a number of unknown unit is no TR in seconds
        assert got.t_r is None
    else:
        assert got.t_r == pytest.approx(zoom * seconds)


def test_big_endian_and_3d(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.dtype(">i2")), np.eye(4))
    img.header.set_data_dtype(">i2")
    big = img.header.as_byteswapped(">")
    path = _save(nib.Nifti1Image(np.zeros((3, 4, 5), ">i2"), np.eye(4), big), tmp_path / "b.nii")
    got = read_bold_header(path)
    assert got.ndim == 3 and got.shape == (3, 4, 5) and got.t_r is None


def test_zero_tr_is_none(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((3, 4, 5, 2), np.int16), np.eye(4))
    img.header.set_zooms((1.0, 1.0, 1.0, 0.0))
    assert read_bold_header(_save(img, tmp_path / "z.nii.gz")).t_r is None


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.nii.gz", b"", "empty file"),
        ("text.nii", b"not a nifti at all" * 40, "not a NIfTI header"),
        ("text.nii.gz", b"not gzip" * 40, "incorrect header check"),
        # mtime=0: the same bytes, so the same test id, in every process (pytest -n).
        ("short.nii.gz", gzip.compress(b"\x5c\x01", mtime=0), "not a NIfTI header"),
    ],
)
def test_unreadable_headers_raise(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableHeader, match=match):
        read_bold_header(path)
