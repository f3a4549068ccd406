"""Deterministic NIfTI writing: same array, same bytes (gzip header without time or name)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from lcm.io.atomic import atomic_path

VOX_OFFSET = 352  # single-file NIfTI-1: 348-byte header + 4-byte extension flag


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


def write_bold_stream(
    path: str | Path,
    voxels: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    tr: float,
    *,
    compresslevel: int = 1,
) -> Path:
    """Write a 4D int16 ``.nii.gz`` volume by volume from brain voxels, atomically.

    The full (X, Y, Z, T) grid is never built: each volume is scattered into one 3D buffer and
    compressed as it goes. Same input, same bytes (gzip without time or file name).

    Parameters
    ----------
    path : path-like
        Destination ending in ``.nii.gz``.
    voxels : numpy.ndarray of int16, shape (n_volumes, n_brain_voxels)
        Intensities of the voxels where ``mask`` is true, in ``numpy.argwhere`` order.
    mask : numpy.ndarray of bool, shape (X, Y, Z)
    affine : numpy.ndarray, shape (4, 4)
    tr : float
        Repetition time in seconds (``pixdim[4]``).
    compresslevel : int, optional
        gzip level; 1 is several times faster than 6 and, on noisy data, barely larger.
    """
    header = nib.Nifti1Header()
    header.set_data_shape((*mask.shape, voxels.shape[0]))
    header.set_data_dtype(np.int16)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    header.set_zooms((*zooms, float(tr)))
    header.set_xyzt_units("mm", "sec")
    header.set_slope_inter(1.0, 0.0)
    header["vox_offset"] = VOX_OFFSET
    # np.argwhere order is C order over (x, y, z); NIfTI stores x fastest (Fortran order).
    flat = np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")
    volume = np.zeros(mask.size, dtype=np.int16)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        ) as gz:
            header.write_to(gz)  # 348 bytes, then nibabel's 4-byte "no extension" flag
            gz.write(b"\0" * (VOX_OFFSET - gz.tell()))
            for t in range(voxels.shape[0]):
                volume[flat] = voxels[t]
                gz.write(volume.tobytes())
    return Path(path)
