"""Connectivity (Pearson, Ledoit-Wolf partial correlation and covariance, Fisher z, windows)
and the XCP-D-style TSV files that hold time series and matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lcm.exceptions import InputDataError
from lcm.io.atomic import write_tsv

NODE_COLUMN = "Node"


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


def fisher_z(matrix: np.ndarray, clip: float = 0.999999) -> np.ndarray:
    """Fisher z ``arctanh(r)`` of a correlation matrix; the (infinite) diagonal is set to 0."""
    z = np.arctanh(np.clip(np.asarray(matrix, dtype=np.float64), -clip, clip))
    np.fill_diagonal(z, 0.0)
    return z


def window_starts(n_volumes: int, length: int, step: int | None = None) -> list[int]:
    """First volume of each full window of ``length`` volumes, ``step`` apart.

    Returns ``[]`` when the run is shorter than one window. A trailing remainder shorter than
    ``length`` is dropped (as the official LCM code does with its 500-TR windows).
    """
    step = step or length
    return list(range(0, n_volumes - length + 1, step)) if n_volumes >= length else []


def _empty_mask(empty: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if empty is None else np.asarray(empty, dtype=bool)


def write_relmat(path: str | Path, names: list[str], matrix: np.ndarray) -> None:
    """Write a connectivity matrix: first column ``Node`` (ROI names), then one per ROI.

    Parameters
    ----------
    path : path-like
        ``..._stat-<statistic>_relmat.tsv``; written atomically.
    names : list of str
        ROI names, in matrix order.
    matrix : ndarray, shape (R, R)
    """
    matrix = np.asarray(matrix)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"matrix {matrix.shape} does not match {len(names)} ROI names")
    df = pd.DataFrame(matrix, columns=list(names))
    df.insert(0, NODE_COLUMN, list(names))
    write_tsv(path, df)  # float tables: lcm.io.tsv's fast, pandas-identical text


def read_relmat(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a matrix written by :func:`write_relmat` (or XCP-D).

    Returns
    -------
    names : list of str
    matrix : ndarray, shape (R, R), float64

    Raises
    ------
    InputDataError
        If the file is missing, lacks the ``Node`` column, is not square, or its row and
        column names differ.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"Cannot read connectivity matrix {path}: {exc}") from exc
    if df.columns[0] != NODE_COLUMN:
        raise InputDataError(
            f"{path}: first column must be {NODE_COLUMN!r}, received {df.columns[0]!r}.",
            hint="Relmat files list ROI names in a first 'Node' column (XCP-D layout).",
        )
    names = df[NODE_COLUMN].astype(str).tolist()
    columns = [str(c) for c in df.columns[1:]]
    if columns != names:
        raise InputDataError(
            f"{path}: row names {names[:3]}... and column names {columns[:3]}... differ "
            f"({len(names)} rows, {len(columns)} columns); a square matrix is expected.",
            hint="Rewrite the matrix with write_relmat.",
        )
    return names, df.iloc[:, 1:].to_numpy(np.float64)


def write_timeseries(path: str | Path, names: list[str], signals: np.ndarray) -> None:
    """Write ROI time series: header = ROI names, one row per volume (atomically)."""
    signals = np.asarray(signals)
    if signals.ndim != 2 or signals.shape[1] != len(names):
        raise ValueError(f"signals {signals.shape} do not match {len(names)} ROI names")
    write_tsv(path, pd.DataFrame(signals, columns=list(names)))
