"""Connectivity: Pearson, Ledoit-Wolf partial correlation and covariance, Fisher z, windows.

The TSV files that hold time series and matrices are :mod:`lcm.io.relmat`'s.
"""

from __future__ import annotations

import numpy as np

from lcm.store.layout import fisher_z


def pearson_fc(signals: np.ndarray, empty: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation between parcel signals.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
        Cleaned signals.
    empty : ndarray of bool, shape (R,), optional
        Parcels without signal; their rows and columns (diagonal included) are set to 0.

    Returns
    -------
    ndarray, shape (R, R)
        Symmetric, float64; 1 on the diagonal of non-empty parcels.
    """
    signals = np.asarray(signals, dtype=np.float64)
    if empty is None:
        empty = np.zeros(signals.shape[1], dtype=bool)
    fc = np.zeros((signals.shape[1], signals.shape[1]))
    keep = np.flatnonzero(~empty)
    if keep.size:
        sub = np.corrcoef(signals[:, keep], rowvar=False)
        fc[np.ix_(keep, keep)] = np.atleast_2d(sub)
    fc = (fc + fc.T) / 2  # exact symmetry despite rounding
    fc[keep, keep] = 1.0
    return fc


def _embed(sub: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """``sub`` (over ``keep``) placed in an ``n x n`` zero matrix, symmetrised exactly."""
    out = np.zeros((n, n))
    out[np.ix_(keep, keep)] = np.atleast_2d(sub)
    return (out + out.T) / 2


def ledoit_wolf_covariance(signals: np.ndarray, empty: np.ndarray | None = None) -> np.ndarray:
    """Ledoit-Wolf shrunk covariance of parcel signals (``sklearn.covariance.LedoitWolf``).

    Shrinkage keeps the matrix positive definite when there are fewer volumes than parcels,
    which a tangent-space embedding (fitted later, on training folds only) requires.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
        Cleaned signals.
    empty : ndarray of bool, shape (R,), optional
        Parcels without signal; their rows and columns (diagonal included) are 0.

    Returns
    -------
    ndarray, shape (R, R)
        Symmetric, float64.
    """
    from sklearn.covariance import LedoitWolf

    signals = np.asarray(signals, dtype=np.float64)
    n = signals.shape[1]
    keep = np.flatnonzero(~_empty_mask(empty, n))
    if not keep.size:
        return np.zeros((n, n))
    cov = LedoitWolf(store_precision=False).fit(signals[:, keep]).covariance_
    return _embed(cov, keep, n)


def partial_correlation(signals: np.ndarray, empty: np.ndarray | None = None) -> np.ndarray:
    """Partial correlation from the inverse of the Ledoit-Wolf covariance.

    ``P_ij = -K_ij / sqrt(K_ii K_jj)`` with ``K`` the precision matrix, 1 on the diagonal:
    what nilearn's ``ConnectivityMeasure(kind="partial correlation",
    cov_estimator=LedoitWolf())`` computes.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
        Cleaned signals.
    empty : ndarray of bool, shape (R,), optional
        Parcels without signal; their rows and columns (diagonal included) are 0.

    Returns
    -------
    ndarray, shape (R, R)
        Symmetric, float64.
    """
    n = np.asarray(signals).shape[1]
    empty = _empty_mask(empty, n)
    keep = np.flatnonzero(~empty)
    cov = ledoit_wolf_covariance(signals, empty)[np.ix_(keep, keep)]
    if not keep.size:
        return np.zeros((n, n))
    precision = np.linalg.inv(cov)
    d = np.sqrt(np.diag(precision))
    partial = -precision / np.outer(d, d)
    np.fill_diagonal(partial, 1.0)
    return _embed(partial, keep, n)


def fisher_z_matrix(matrix: np.ndarray) -> np.ndarray:
    """Fisher z of a correlation matrix (:func:`lcm.store.layout.fisher_z`), diagonal set to 0.

    The diagonal (r = 1) would be infinite; a relmat keeps it at 0, as XCP-D does.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(R, R)`` correlation matrix.
    """
    z = fisher_z(matrix)
    np.fill_diagonal(z, 0.0)
    return z


def window_starts(n_volumes: int, length: int, step: int | None = None) -> list[int]:
    """First volume of each full window of ``length`` volumes, ``step`` apart.

    Returns ``[]`` when the run is shorter than one window. A trailing remainder shorter than
    ``length`` is dropped (as the official LCM code does with its 500-TR windows).

    Parameters
    ----------
    n_volumes : int
        Volumes of the run's cleaned signals (those kept after scrubbing).
    length : int
        Window length in volumes (``connectome.window.length``).
    step : int, optional
        Volumes between window starts; ``length`` (no overlap) when None or 0.
    """
    step = step or length
    return list(range(0, n_volumes - length + 1, step)) if n_volumes >= length else []


def _empty_mask(empty: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if empty is None else np.asarray(empty, dtype=bool)
