"""Parcel coverage and the one policy for empty or poorly covered parcels.

Coverage of a parcel = the volume of its voxels on the BOLD grid that carry a signal (vary over
time; fMRIPrep writes a constant 0 outside its brain mask), divided by the parcel's volume in
the atlas image, capped at 1. A parcel outside the field of view, cut off by the brain mask or
all zero therefore has a low coverage.

Policy (as XCP-D's ``--min-coverage``): a parcel whose coverage is below the config's
``atlas.min_coverage`` (default ``MIN_COVERAGE`` = 0.5), or whose mean signal is constant, is
*empty*. Its time series column is 0,
its row and column of every connectivity matrix are 0 (diagonal included), it is listed in the
QC record's ``empty_rois`` and the sidecars' ``EmptyROIs``, and its coverage is reported. The
run is kept, so that every run of a cohort has the same ROIs in the same order; a run without
any covered parcel is excluded.
"""

from __future__ import annotations

import numpy as np

from lcm.atlas import Atlas

MIN_COVERAGE = 0.5


def parcel_coverage(live_counts: np.ndarray, atlas: Atlas, bold_affine: np.ndarray) -> np.ndarray:
    """Fraction of each parcel's atlas volume covered by live BOLD voxels.

    Parameters
    ----------
    live_counts : ndarray of int, shape (R,)
        Voxels of each parcel on the BOLD grid with a varying signal.
    atlas : Atlas
        The atlas (its own grid gives each parcel's volume).
    bold_affine : ndarray, shape (4, 4)
        Affine of the BOLD grid (its voxel volume).

    Returns
    -------
    ndarray, shape (R,)
        Values in [0, 1], in the atlas's label order.
    """
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(bold_affine)[:3, :3])))
    parcel_mm3 = atlas.parcel_volumes_mm3()
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.asarray(live_counts, dtype=np.float64) * voxel_mm3 / parcel_mm3
    return np.clip(np.nan_to_num(cover, nan=0.0, posinf=0.0), 0.0, 1.0)


def empty_parcels(
    coverage: np.ndarray, signals: np.ndarray, min_coverage: float = MIN_COVERAGE
) -> np.ndarray:
    """Parcels treated as empty: coverage below ``min_coverage`` or a constant mean signal.

    Parameters
    ----------
    coverage : ndarray, shape (R,)
        From :func:`parcel_coverage`.
    signals : ndarray, shape (T, R)
        Raw parcel means.
    min_coverage : float
        Threshold in [0, 1].

    Returns
    -------
    ndarray of bool, shape (R,)
    """
    return (np.asarray(coverage) < min_coverage) | (np.ptp(signals, axis=0) == 0)
