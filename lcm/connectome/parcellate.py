"""Parcel mean signals of a 4D BOLD array under a label image (NiftiLabelsMasker's 'mean')."""

from __future__ import annotations

import numpy as np
from scipy import sparse

# Volumes averaged per block: bounds the float64 copy to (labelled voxels x block).
_BLOCK = 64


def parcel_means(
    data: np.ndarray, labels: np.ndarray, label_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean signal of each label's voxels, per volume.

    Equivalent to ``nilearn.maskers.NiftiLabelsMasker(strategy="mean")`` without cleaning,
    but reads each voxel once through a sparse averaging matrix and keeps labels that have no
    voxel in the image (their column is 0).

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z, T)
        BOLD data on the grid of ``labels`` (nibabel's Fortran order is kept as a view).
    labels : ndarray of int, shape (X, Y, Z)
        Label image resampled to the BOLD grid; 0 is background.
    label_ids : ndarray of int, shape (R,)
        Label values, in output column order.

    Returns
    -------
    signals : ndarray, shape (T, R)
        float64 parcel means.
    voxel_counts : ndarray of int, shape (R,)
        Voxels per label in this grid (0 for a label outside the field of view).
    """
    if data.ndim != 4 or data.shape[:3] != labels.shape:
        raise ValueError(f"data {data.shape} and labels {labels.shape} grids differ")
    n_t = data.shape[3]
    flat_labels = labels.reshape(-1, order="F")
    voxels = data.reshape(-1, n_t, order="F")
    label_ids = np.asarray(label_ids, dtype=np.int64)
    # Map each voxel's label to its output column (-1 for background and unknown labels).
    order = np.argsort(label_ids)
    pos = np.searchsorted(label_ids[order], flat_labels)
    pos = np.clip(pos, 0, len(label_ids) - 1)
    column = np.where(label_ids[order][pos] == flat_labels, order[pos], -1)
    idx = np.flatnonzero(column >= 0)
    cols = column[idx]
    counts = np.bincount(cols, minlength=len(label_ids))
    weights = 1.0 / np.maximum(counts[cols], 1)
    # averaging[r, k] = 1/count_r when labelled voxel k belongs to parcel r
    averaging = sparse.csr_matrix(
        (weights, (cols, np.arange(idx.size))), shape=(len(label_ids), idx.size)
    )
    signals = np.empty((n_t, len(label_ids)), dtype=np.float64)
    for start in range(0, n_t, _BLOCK):
        block = voxels[idx, start : start + _BLOCK].astype(np.float64)
        signals[start : start + _BLOCK] = (averaging @ block).T
    return signals, counts
