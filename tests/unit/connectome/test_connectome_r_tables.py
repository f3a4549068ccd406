"""Series and matrices as R's ``write.table`` writes them: a header of the column names alone
(quoted), each row led by its quoted row name, so every row has one cell more than the header.

R's ``read.table`` and pandas' ``read_csv`` both read such a first column as row names. A TSV
series was read with the row numbers as its first ROI and its last ROI dropped, silently (the
names still matched the atlas's); a CSV or a matrix was refused as unreadable, to be re-copied.
Its missing value ``NA`` was text: a run refused. R is not installed here: :func:`_write_table`
writes the bytes ``write.table`` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcm.connectome.roi_formats import read_matrix, read_roi_series
from lcm.exceptions import ExcludedRunError

NAMES = ["Precentral_L", "Precentral_R", "Frontal_Sup_L", "Frontal_Sup_R", "Insula_L"]


def _series(n_vol: int = 17) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n_vol, len(NAMES)))


def _write_table(
    path: Path, values: np.ndarray, sep: str, rows: list[str], eol: str = "\n", bom: str = ""
) -> None:
    """``write.table(df, file, sep=sep)``: quoted names, quoted row names, ``NA`` as missing;
    R writes 15 significant digits."""
    lines = [sep.join(f'"{n}"' for n in NAMES)]
    lines += [
        sep.join([f'"{name}"', *("NA" if np.isnan(v) else f"{v:.15g}" for v in row)])
        for name, row in zip(rows, values, strict=True)
    ]
    path.write_bytes((bom + eol.join(lines) + eol).encode())


@pytest.mark.parametrize(("sep", "ext"), [("\t", ".tsv"), (",", ".csv")])
@pytest.mark.parametrize(("eol", "bom"), [("\n", ""), ("\r\n", "\ufeff")], ids=["lf", "crlf_bom"])
def test_r_row_names_of_a_series_are_no_roi(
    tmp_path: Path, sep: str, ext: str, eol: str, bom: str
) -> None:
    series = _series()
    path = tmp_path / f"sub-01_timeseries{ext}"
    _write_table(path, series, sep, [str(i + 1) for i in range(len(series))], eol, bom)
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES
    np.testing.assert_allclose(table.to_numpy(float), series, rtol=1e-12)


@pytest.mark.parametrize(("sep", "ext"), [("\t", ".tsv"), (",", ".csv")])
def test_r_row_names_of_a_matrix_are_its_roi_names(tmp_path: Path, sep: str, ext: str) -> None:
    fc = np.corrcoef(_series().T)
    path = tmp_path / f"sub-01_relmat{ext}"
    _write_table(path, fc, sep, NAMES)
    names, matrix = read_matrix(path)
    assert names == NAMES
    np.testing.assert_allclose(matrix, fc, rtol=1e-12)
    # Row names in another order than the columns': refused, not read misaligned.
    _write_table(path, fc, sep, NAMES[::-1])
    with pytest.raises(ExcludedRunError, match=r"row names .* differ from column names"):
        read_matrix(path)


@pytest.mark.parametrize(("sep", "ext"), [("\t", ".tsv"), (",", ".csv")])
def test_r_na_is_a_missing_value(tmp_path: Path, sep: str, ext: str) -> None:
    """R's ``NA`` was text: a CSV refused ('not a number'), a TSV's ROI of no signal (XCP-D's
    n/a throughout) excluded the run instead of being an empty ROI."""
    series = _series()
    series[:, 2] = np.nan
    path = tmp_path / f"ts{ext}"
    _write_table(path, series, sep, [str(i + 1) for i in range(len(series))])
    assert '\n"1"' + sep in path.read_text() and sep + "NA" + sep in path.read_text()
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES
    assert table[NAMES[2]].isna().all() and table.drop(columns=NAMES[2]).notna().all().all()
    np.testing.assert_allclose(table.to_numpy(float), series, rtol=1e-12)


def test_a_headerless_first_row_one_cell_short_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    """Numbers on the first line, one fewer than below: no header, a value lost; never read
    with the first row shifted one ROI to the right."""
    path = tmp_path / "ts.csv"
    rows = _series(4)
    lines = [",".join(map(str, rows[0, 1:]))] + [",".join(map(str, r)) for r in rows[1:]]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ExcludedRunError, match=r"ts\.csv: its second row has 5 cells") as info:
        read_roi_series(path, NAMES)
    assert "as many cells as the first row" in info.value.hint
