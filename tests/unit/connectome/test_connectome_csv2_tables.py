"""A ``.csv`` separated by semicolons with decimal commas (R ``write.csv2``, European Excel).

Read with commas as separators it was refused as ragged, or for a cell ``'123;0'`` with the
fix to "write numbers only", which it does. It is refused naming its dialect and how to
re-save it (:func:`lcm.io.csv_dialect.check_semicolons`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm import reason_codes
from lcm.connectome.roi_formats import read_matrix, read_roi_series
from lcm.exceptions import ExcludedRunError

NAMES = ["A", "B", "C", "D"]


def _values() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(12, len(NAMES)))


def _csv2(path: Path, values: np.ndarray, how: str) -> Path:
    """``values`` as each tool writes them with ``;`` and ``,`` decimals."""
    frame = pd.DataFrame(values, columns=NAMES)
    if how == "excel":  # Excel's "CSV (semicolon)": a bare header
        frame.to_csv(path, sep=";", decimal=",", index=False)
    elif how == "headerless":
        frame.to_csv(path, sep=";", decimal=",", index=False, header=False)
    else:  # R's write.csv2(x, file): quoted names, quoted row names "1", "2", ... (default)
        cells = [";".join(f"{v:.15g}".replace(".", ",") for v in row) for row in values]
        head = '"";' + ";".join(f'"{n}"' for n in NAMES)
        rows = [f'"{i + 1}";{line}' for i, line in enumerate(cells)]
        if how == "r_no_row_names":  # write.csv2(x, file, row.names = FALSE)
            head = ";".join(f'"{n}"' for n in NAMES)
            rows = cells
        path.write_text("\n".join([head, *rows]) + "\n")
    return path


@pytest.mark.parametrize("how", ["excel", "headerless", "r", "r_no_row_names"])
def test_a_write_csv2_series_is_refused_naming_its_dialect(tmp_path: Path, how: str) -> None:
    path = _csv2(tmp_path / "sub-01_timeseries.csv", _values(), how)
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, NAMES)
    said = caught.value.one_line()
    assert caught.value.code == reason_codes.FILE_UNREADABLE
    assert said.startswith(
        "sub-01_timeseries.csv is semicolon-separated with decimal commas (R write.csv2"
    ), said
    assert "write.csv(x, file, row.names = FALSE)" in said
    assert "pd.read_csv(file, sep=';', decimal=','" in said
    assert "numbers only" not in said


@pytest.mark.parametrize("how", ["excel", "r"])
def test_the_fix_it_offers_makes_a_file_that_reads_as_written(tmp_path: Path, how: str) -> None:
    """pandas' re-save, run as the fix words it, gives the values back (R's row names left
    out: index_col=0 is offered for a file that has them, else it became an ROI)."""
    values = _values()
    path = _csv2(tmp_path / "m.csv", values, how)
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, NAMES)
    call = re.search(r"pd\.read_csv\(file, ([^)]*)\)", caught.value.one_line())
    assert call is not None, caught.value.one_line()
    # The arguments exactly as the fix words them.
    pairs = (arg.split("=") for arg in call.group(1).split(", "))
    kwargs = {key: ast.literal_eval(value) for key, value in pairs}
    pd.read_csv(path, **kwargs).to_csv(path, sep=",", index=False)
    got = read_roi_series(path, NAMES)
    assert list(got.columns) == NAMES
    np.testing.assert_allclose(got.to_numpy(), values)


def test_a_write_csv2_matrix_is_refused_alike(tmp_path: Path) -> None:
    fc = np.corrcoef(_values().T)
    path = _csv2(tmp_path / "sub-01_relmat.csv", fc, "r")
    with pytest.raises(ExcludedRunError, match="semicolon-separated with decimal commas"):
        read_matrix(path)


def test_semicolons_with_decimal_points_are_named_without_decimal_commas(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.csv"
    pd.DataFrame(_values(), columns=NAMES).to_csv(path, sep=";", index=False)
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, NAMES)
    said = caught.value.one_line()
    assert "s.csv is semicolon-separated, not separated by commas" in said, said
    assert "decimal commas" not in said and "pd.read_csv(file, sep=';')" in said


def test_a_comma_csv_with_a_text_cell_keeps_its_own_reason(tmp_path: Path) -> None:
    """Only the semicolon shape is named: a comma CSV with a word among its numbers, or a
    semicolon in a header, is still told which cell is not a number."""
    path = tmp_path / "t.csv"
    frame = pd.DataFrame(_values(), columns=["A;x", "B", "C", "D"]).astype(object)
    frame.iat[3, 2] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(ExcludedRunError, match=r"is not a number \('oops'\)") as caught:
        read_roi_series(path, NAMES)
    assert "semicolon" not in caught.value.one_line()
