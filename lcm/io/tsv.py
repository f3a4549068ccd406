"""Tab-separated text of float tables, byte for byte what pandas writes, at a tenth of its cost.

pandas formats float64 with numpy's shortest round-trip repr, as Python's ``repr(float)`` does,
but spends most of ``DataFrame.to_csv`` on per-cell machinery: on the connectome stage's ROI
time series and matrices it was a third of the job. :func:`frame_tsv` gives the text of the
frames where the two are sure to agree (float64 columns, after at most one leading column of
names), and :func:`lcm.io.atomic.write_tsv` writes it; every other frame is left to pandas.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Characters that make pandas (the csv module) quote a field of a tab-separated file.
_QUOTED = re.compile(r'[\t"\r\n]')


def frame_tsv(df: pd.DataFrame) -> str | None:
    """The text ``df.to_csv(sep="\\t", index=False, na_rep="n/a")`` writes, or None.

    Parameters
    ----------
    df : pandas.DataFrame
        Float64 columns, optionally after one leading column of strings (ROI names).

    Returns
    -------
    str or None
        None where pandas must write the frame: other dtypes, missing values, or names (column
        names or leading strings) that are not plain non-empty strings free of quoting.
    """
    if isinstance(df.columns, pd.MultiIndex) or df.shape[1] == 0:
        return None
    header = list(df.columns)
    index = None
    values = df
    if df.dtypes.iloc[0] != np.float64:  # a column of names (checked to be strings below)
        index, values = df.iloc[:, 0].tolist(), df.iloc[:, 1:]
    if values.shape[1] == 0 or not all(dtype == np.float64 for dtype in values.dtypes):
        return None
    return float_tsv(header, values.to_numpy(dtype=np.float64), index)


def float_tsv(header: list, values: np.ndarray, index: list | None = None) -> str | None:
    """The text pandas writes for a float64 matrix under ``header``, or None.

    Parameters
    ----------
    header : list of str
        Column names (the ``index`` column's name first when ``index`` is given).
    values : numpy.ndarray, shape (n_rows, n_columns)
    index : list of str, optional
        A leading column of names, one per row.

    Returns
    -------
    str or None
        Byte for byte what ``DataFrame.to_csv(sep="\\t", index=False)`` gives; None for other
        dtypes, missing values (``n/a``) and names that need quoting.
    """
    names = [*header, *(index or [])]
    if values.dtype != np.float64 or not all(isinstance(n, str) for n in names):
        return None
    if not all(names) or any(_QUOTED.search(n) for n in names) or np.isnan(values).any():
        return None
    rows = _float_cells(values)
    if index is None:
        lines = ["\t".join(row) for row in rows]
    else:
        lines = ["\t".join([name, *row]) for name, row in zip(index, rows, strict=True)]
    return "\n".join(["\t".join(header), *lines]) + "\n"


def _float_cells(values: np.ndarray) -> list[list[str]]:
    """``repr`` of every value, row by row; a symmetric matrix formats its upper triangle only."""
    n = values.shape[0]
    bits = values.view(np.uint64)  # bit for bit: 0.0 and -0.0 compare equal but print apart
    if values.ndim != 2 or values.shape != (n, n) or not np.array_equal(bits, bits.T):
        return [list(map(repr, row)) for row in values.tolist()]
    upper = np.triu_indices(n)
    texts = list(map(repr, values[upper].tolist()))
    cells = np.empty((n, n), dtype=object)
    cells[upper] = texts
    cells.T[upper] = texts  # the lower triangle: equal values, equal text
    return cells.tolist()
