"""Parcel coverage and the one policy for empty or poorly covered parcels.

Coverage of a parcel = the fraction of its voxels on the BOLD grid (the atlas resampled to it
by nearest neighbour) that are covered; 0 for a parcel without a voxel there (outside the field
of view, or too small for the BOLD voxels). Voxels are counted on the one grid: the volume of a
parcel in the atlas image would compare nearest-neighbour rounding with itself (a 5 mm sphere
falls on 1 to 7 voxels of 3.5 mm), and empty whole small parcels of which every voxel carries a
signal. With the run's brain mask (fMRIPrep's
``desc-brain_mask``, always in its record) a voxel is covered when it lies inside the mask and
its signal varies over time: fMRIPrep's ``desc-preproc_bold`` is not masked
(nipreps/fmriprep#1999), so background voxels vary too, and only the mask tells them apart
(XCP-D's ``--min-coverage`` counts the same way). Voxels outside the mask are left out of the
parcel's mean signal as well, as ``NiftiLabelsMasker(mask_img=...)`` does. Without a mask a
voxel is covered when its signal varies (a masked series holds a constant 0 outside the
brain); the QC record's ``coverage_rule`` names the rule used (:data:`COVERAGE_RULES`). A
parcel outside the field of view, outside the brain mask or all zero therefore has a low
coverage.

Policy (as XCP-D's ``--min-coverage``): a parcel whose coverage is below the config's
``atlas.min_coverage`` (default ``MIN_COVERAGE`` = 0.5), or whose mean signal is constant over
the volumes kept after scrubbing (or whose cleaned signal is), is *empty*: one that varies only
in scrubbed volumes has no signal left, and its correlations would be NaN. Its time series
column is 0,
its row and column of every connectivity matrix are 0 (diagonal included), it is listed in the
QC record's ``empty_rois`` and the sidecars' ``EmptyROIs``, and its coverage is reported. The
run is kept, so that every run of a cohort has the same ROIs in the same order; a run without
any covered parcel is excluded.
"""

from __future__ import annotations

import numpy as np

from lcm import reason_codes
from lcm.exceptions import ExcludedRunError

MIN_COVERAGE = 0.5
# The fix of a run whose every parcel or ROI is constant (flat_signals), voxel or ROI series.
FLAT_FIX = (
    "Check that the file holds the run's recorded signal and re-copy or regenerate it "
    "(fMRIPrep for a BOLD, the extraction for ROI time series); a run whose signal varies only "
    "in scrubbed volumes is rightly excluded."
)

# QC ``coverage_rule`` -> what the sidecars' ``ParcelCoverageRule`` says was counted.
COVERAGE_RULES = {
    "brain_mask": "voxels inside the run's brain mask whose signal varies over time",
    "live_voxels": "voxels whose signal varies over time (the run has no brain mask)",
}


def parcel_voxel_counts(labels: np.ndarray, label_ids: np.ndarray) -> np.ndarray:
    """Voxels of each label of ``label_ids`` in the label image ``labels`` (0 when absent).

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        Label image on the BOLD grid, before the brain mask is applied.
    label_ids : ndarray of int, shape (R,)
        Label values, in output column order.

    Returns
    -------
    ndarray of int, shape (R,)
    """
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return np.array([found.get(int(i), 0) for i in np.asarray(label_ids)], dtype=np.int64)


def parcel_coverage(covered_counts: np.ndarray, grid_counts: np.ndarray) -> np.ndarray:
    """Fraction of each parcel's voxels on the BOLD grid that are covered.

    Parameters
    ----------
    covered_counts : ndarray of int, shape (R,)
        Covered voxels of each parcel on the BOLD grid (inside the brain mask, when there is
        one, with a varying signal).
    grid_counts : ndarray of int, shape (R,)
        All voxels of each parcel on the BOLD grid (:func:`parcel_voxel_counts`).

    Returns
    -------
    ndarray, shape (R,)
        Values in [0, 1], in the atlas's label order; 0 for a parcel without BOLD voxels.
    """
    covered = np.asarray(covered_counts, dtype=np.float64)
    total = np.asarray(grid_counts, dtype=np.float64)
    cover = np.divide(covered, total, out=np.zeros_like(covered), where=total > 0)
    return np.clip(cover, 0.0, 1.0)


def empty_parcels(
    coverage: np.ndarray,
    signals: np.ndarray,
    min_coverage: float = MIN_COVERAGE,
    sample_mask: np.ndarray | None = None,
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
    sample_mask : ndarray of int, optional
        Kept volumes (:func:`lcm.connectome.denoise.scrub_mask`); constancy is judged on them
        alone (default: every volume).

    Returns
    -------
    ndarray of bool, shape (R,)
    """
    return (np.asarray(coverage) < min_coverage) | constant_columns(signals, sample_mask)


def constant_columns(signals: np.ndarray, sample_mask: np.ndarray | None = None) -> np.ndarray:
    """Columns of ``signals`` constant over the volumes of ``sample_mask`` (default: all).

    A column that varies only in scrubbed volumes is constant over the kept ones: cleaned, it
    is flat, and every correlation with it NaN. With no volume kept, every column is constant.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
    sample_mask : ndarray of int or bool, optional
        The kept volumes.

    Returns
    -------
    ndarray of bool, shape (R,)
    """
    signals = np.asarray(signals)
    kept = signals if sample_mask is None else signals[np.asarray(sample_mask)]
    if not kept.shape[0]:
        return np.ones(signals.shape[1], dtype=bool)
    return np.ptp(kept, axis=0) == 0


def cleaned_empty(
    signals: np.ndarray, empty: np.ndarray, names: list[str], source: str
) -> np.ndarray:
    """``empty`` plus the parcels whose *cleaned* signal is flat; non-finite signals refused.

    The last guard before correlation: a flat column (zero spread) is empty whatever made it
    so, and a NaN or infinite value would make NaN correlations, which the feature store
    refuses for the whole dataset; here only the run is excluded.

    Parameters
    ----------
    signals : ndarray, shape (T_kept, R)
        Cleaned signals.
    empty : ndarray of bool, shape (R,)
        Parcels already found empty (their values are ignored).
    names : list of str
        Parcel names, for the error.
    source : str
        The run's input file, for the error.

    Returns
    -------
    ndarray of bool, shape (R,)

    Raises
    ------
    ExcludedRunError
        A non-empty parcel's cleaned signal holds NaN or infinite values.
    """
    empty = np.asarray(empty, dtype=bool)
    bad = ~empty & ~np.isfinite(signals).all(axis=0)
    if bad.any():
        rois = [names[i] for i in np.flatnonzero(bad)][:5]
        raise ExcludedRunError(
            f"cleaning {source} gave NaN or infinite values in {int(bad.sum())} ROI(s) {rois}",
            hint="Check the run's time series and the denoise settings.",
            code=reason_codes.CLEANED_NONFINITE,
        )
    return empty | constant_columns(signals)
