"""Connectivity matrices and ROI time series as TSV files (XCP-D's ``relmat`` layout).

The one reader and writer of these derivative files: the connectome stage writes them, the
store and the tests read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lcm.exceptions import InputDataError
from lcm.io.atomic import write_tsv

NODE_COLUMN = "Node"


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

    Parameters
    ----------
    path : str or pathlib.Path
        A ``..._relmat.tsv`` file: a ``Node`` column of ROI names, then one column per ROI.

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
        # ROI names are text: "001" stays "001" (read as the integer 1 before, so that the
        # row names no longer matched the header's).
        df = pd.read_csv(
            path, sep="\t", na_values=["n/a"], keep_default_na=False, dtype={NODE_COLUMN: str}
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(
            f"Cannot read connectivity matrix {path}: {exc}",
            hint="Re-run the connectome stage of this dataset; its QC table lists this file.",
        ) from exc
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
    """Write ROI time series: header = ROI names, one row per volume (atomically).

    Parameters
    ----------
    path : str or pathlib.Path
        ``..._stat-mean_timeseries.tsv``; written atomically.
    names : list of str
        ROI names, in column order.
    signals : numpy.ndarray, shape (n_volumes, R)
        One row per volume.

    Raises
    ------
    ValueError
        When ``signals`` is not 2-D with one column per name; nothing is written.
    """
    signals = np.asarray(signals)
    if signals.ndim != 2 or signals.shape[1] != len(names):
        raise ValueError(f"signals {signals.shape} do not match {len(names)} ROI names")
    write_tsv(path, pd.DataFrame(signals, columns=list(names)))
