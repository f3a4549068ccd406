"""ROI tables saved by Excel with thousands separators (``"1,234.5"``, ``1.234,5``, ``1 234,5``).

Read as text, each such number was refused as "not a number" with the fix to write numbers
only, which the file seems to do (a comma CSV, a TSV), or the semicolon sheet was called
ragged. They are refused naming the separators, with a re-save that reads the values back
(:mod:`lcm.io.csv_dialect`); ``"1,234"`` alone, a decimal comma or a thousand and
some, is refused without one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.pandas_fix import run_pandas_fix

from lcm import reason_codes
from lcm.connectome.roi_formats import read_matrix, read_roi_series
from lcm.exceptions import ExcludedRunError

NAMES = ["A", "B", "C", "D"]
NBSP = "\u00a0"


def _values() -> np.ndarray:
    """Raw BOLD-like signals, some above 1000 (grouped), some below (not): 12 x 4."""
    values = np.random.default_rng(5).normal(1200, 500, size=(12, len(NAMES)))
    values[0, 0] = -1234567.125  # two groups and a sign
    return np.round(values, 3)


def _cell(value: float, group: str, decimal: str) -> str:
    text = f"{value:,.3f}"  # 1,234.500
    return text.replace(",", "G").replace(".", decimal).replace("G", group)


def _write(path: Path, values: np.ndarray, sep: str, group: str, decimal: str, **kw) -> Path:
    quote = '"' if sep in (group, decimal) else ""  # Excel quotes a cell holding its separator
    lines = [sep.join(f"{quote}{_cell(v, group, decimal)}{quote}" for v in row) for row in values]
    head = [] if kw.get("headerless") else [sep.join(NAMES)]
    path.write_text("\n".join([*head, *lines]) + "\n", encoding="utf-8")
    return path


CASES = {
    # Excel "CSV (Comma delimited)", cells formatted with "Use 1000 Separator": "1,234.5"
    "comma_quoted": ("x.csv", ",", ",", ".", {}),
    "comma_quoted_headerless": ("x.csv", ",", ",", ".", {"headerless": True}),
    "comma_spaces": ("x.csv", ",", " ", ".", {}),
    "tab_commas": ("x.tsv", "\t", ",", ".", {}),
    # European Excel "CSV (semicolon)": 1.234,5 / 1 234,5 / French no-break spaces.
    "semicolon_points": ("x.csv", ";", ".", ",", {}),
    "semicolon_spaces": ("x.csv", ";", " ", ",", {}),
    "semicolon_nbsp": ("x.csv", ";", NBSP, ",", {}),
    "tab_points_decimal_commas": ("x.tsv", "\t", ".", ",", {}),
}


@pytest.mark.parametrize("case", CASES)
def test_thousands_separators_are_refused_with_a_fix_that_reads_back(
    tmp_path: Path, case: str
) -> None:
    name, sep, group, decimal, kw = CASES[case]
    values = _values()
    path = _write(tmp_path / f"sub-01_{name}", values, sep, group, decimal, **kw)
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, NAMES)
    said = caught.value.one_line()
    assert caught.value.code == reason_codes.FILE_UNREADABLE
    assert said.startswith(f"sub-01_{name} "), said
    assert "thousands separators" in said and "numbers only" not in said, said
    run_pandas_fix(path, said)
    got = read_roi_series(path, NAMES)
    assert list(got.columns) == NAMES
    np.testing.assert_allclose(got.to_numpy(np.float64), values, rtol=1e-12)


def test_a_matrix_with_thousands_separators_is_refused_alike(tmp_path: Path) -> None:
    path = _write(tmp_path / "sub-01_relmat.csv", _values()[:4], ",", ",", ".")
    with pytest.raises(ExcludedRunError, match=r"thousands separators \('-1,234,567\.125'\)"):
        read_matrix(path)


def test_decimal_commas_quoted_in_a_comma_csv_are_named_and_read_back(tmp_path: Path) -> None:
    values = np.round(np.random.default_rng(2).normal(size=(12, len(NAMES))), 4)
    path = tmp_path / "s.csv"
    lines = [",".join(f'"{v:.4f}"'.replace(".", ",") for v in row) for row in values]
    path.write_text("\n".join([",".join(NAMES), *lines]) + "\n")
    with pytest.raises(ExcludedRunError, match="with decimal commas") as caught:
        read_roi_series(path, NAMES)
    run_pandas_fix(path, caught.value.one_line())
    np.testing.assert_allclose(read_roi_series(path, NAMES).to_numpy(np.float64), values)


def test_a_comma_that_may_be_either_is_refused_without_a_guess(tmp_path: Path) -> None:
    """``"1,234"`` is 1.234 with a decimal comma or 1234 with a thousands separator: no
    pandas call is offered, since either reading may be wrong."""
    path = tmp_path / "s.csv"
    path.write_text('A,B,C,D\n"1,234",2.5,3.5,4.5\n"2,345",2.5,3.0,4.0\n5.5,6.5,7.5,8.5\n')
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, NAMES)
    said = caught.value.one_line()
    assert "s.csv writes numbers with a comma or thousands separators ('1,234')" in said, said
    assert "no reading tells" in said and "pd.read_csv" not in said


def test_a_text_cell_among_grouped_numbers_keeps_its_own_reason(tmp_path: Path) -> None:
    """A word among them: no re-save makes the file numbers, so no dialect is named."""
    path = _write(tmp_path / "t.csv", _values(), ",", ",", ".")
    path.write_text(path.read_text().replace('"1,', '"oops', 1))
    with pytest.raises(
        ExcludedRunError, match=r"t\.csv: cell \(row 1, column 1\) is not a"
    ) as caught:
        read_roi_series(path, NAMES)
    assert "thousands" not in caught.value.one_line()
