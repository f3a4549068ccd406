"""Deterministic NIfTI writing: same array, same bytes (gzip header without time or name)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from lcm.io.atomic import atomic_path


def write_nifti(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: type = np.int16,
    tr: float | None = None,
) -> Path:
    """Write ``data`` as ``.nii.gz`` atomically and reproducibly.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.nii.gz``.
    data : numpy.ndarray
        3D or 4D array.
    affine : numpy.ndarray, shape (4, 4)
    dtype : numpy dtype, optional
        On-disk type; float data stored as integers get nibabel's ``scl_slope``/``scl_inter``.
    tr : float, optional
        Repetition time for 4D data (``pixdim[4]``); units are set to mm and seconds.
    """
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(dtype)
    header = img.header
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    if data.ndim == 4:
        zooms = (*header.get_zooms()[:3], float(tr if tr is not None else 1.0))
        header.set_zooms(zooms)
    header.set_xyzt_units("mm", "sec")
    payload = gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)
