"""Matrices and series as tools write them to text, and Fisher z matrices given for r.

A NaN in a headerless file's first row is a value (np.savetxt writes an empty ROI so), not a
header; a first column under a blank or ``Node`` header cell holds row names whatever they are
(pandas' 0..R-1, XCP-D's ``001``); a Fisher z matrix is refused with the conversion, never
told to set its diagonal alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.connectome.imported import check_connectome
from lcm.connectome.roi_formats import read_matrix, read_roi_series
from lcm.exceptions import ExcludedRunError
from lcm.io.relmat import write_relmat

NAMES = ["A", "B", "C", "D", "E"]


def _series(n_vol: int = 23) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n_vol, len(NAMES)))


def _fc() -> np.ndarray:
    return np.corrcoef(_series().T)


def test_a_nan_in_a_headerless_first_row_is_a_value(tmp_path: Path) -> None:
    """An empty ROI (NaN row and column; NaN throughout a series' column) in a headerless
    CSV: its first row is data (it was taken for a header, leaving 4 x 5)."""
    fc = _fc()
    fc[0, :] = fc[:, 0] = np.nan
    np.savetxt(tmp_path / "m.csv", fc, delimiter=",")
    names, matrix = read_matrix(tmp_path / "m.csv")
    assert names is None and matrix.shape == (5, 5)
    out = check_connectome(matrix, "m.csv", 5, "x")
    assert not out[0].any() and np.allclose(out[1:, 1:], _fc()[1:, 1:])
    series = _series()
    series[:, 2] = np.nan
    np.savetxt(tmp_path / "ts.csv", series, delimiter=",")
    table = read_roi_series(tmp_path / "ts.csv", NAMES)
    assert list(table.columns) == NAMES and table.shape == (23, 5)
    assert table["C"].isna().all() and np.allclose(table["A"], series[:, 0])
    # pandas writes NaN as a blank cell: a value too.
    pd.DataFrame(series).to_csv(tmp_path / "blank.csv", header=False, index=False)
    assert read_roi_series(tmp_path / "blank.csv", NAMES).shape == (23, 5)


def test_a_first_column_under_a_blank_or_node_cell_is_row_names(tmp_path: Path) -> None:
    fc = _fc()
    pd.DataFrame(fc).to_csv(tmp_path / "pandas.csv")  # header ,0,1,..; index 0..4
    names, matrix = read_matrix(tmp_path / "pandas.csv")
    assert names == ["0", "1", "2", "3", "4"] and np.allclose(matrix, fc)
    pd.DataFrame(fc, columns=NAMES).to_csv(tmp_path / "named.csv")  # index 0..4 numbers rows
    names, matrix = read_matrix(tmp_path / "named.csv")
    assert names == NAMES and np.allclose(matrix, fc)
    codes = ["001", "002", "003", "004", "005"]  # XCP-D's numeric region names
    write_relmat(tmp_path / "relmat.tsv", codes, fc)
    names, matrix = read_matrix(tmp_path / "relmat.tsv")
    assert names == codes and np.allclose(matrix, fc)
    # Row names, numeric or not, are checked against the column names.
    table = pd.read_csv(tmp_path / "relmat.tsv", sep="\t", dtype=str)
    table["Node"] = ["001", "002", "003", "005", "004"]
    table.to_csv(tmp_path / "swapped.tsv", sep="\t", index=False)
    with pytest.raises(ExcludedRunError, match=r"swapped\.tsv: row names .* differ from column"):
        read_matrix(tmp_path / "swapped.tsv")


def test_fisher_z_matrices_are_refused_with_the_conversion() -> None:
    """arctanh(1) is inf; CONN writes a NaN diagonal; others zero it. 'Set the diagonal to 1'
    alone would take z (|z| <= 1 here) for r."""
    z = np.arctanh(_fc() * 0.5)
    convert = r"looks like a Fisher z matrix; convert it with numpy\.tanh, then set the diagonal"
    for diagonal in (np.inf, np.nan, 0.0):
        made = z.copy()
        np.fill_diagonal(made, diagonal)
        with pytest.raises(ExcludedRunError, match=rf"z\.npy.*{convert}"):
            check_connectome(made, "z.npy", 5, "x")
    # NaN off the diagonal is no Fisher z sign; a diagonal of 0.5 no zeroed one.
    made = _fc()
    made[1, 2] = made[2, 1] = np.nan
    with pytest.raises(ExcludedRunError, match="recompute the connectome"):
        check_connectome(made, "r.npy", 5, "x")
    made = _fc()
    np.fill_diagonal(made, 0.5)
    with pytest.raises(ExcludedRunError, match=r"diagonal value 0\.5") as refused:
        check_connectome(made, "r.npy", 5, "x")
    assert "Fisher" not in refused.value.message
