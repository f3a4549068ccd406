"""Matrices and series as tools write them to text, and Fisher z matrices given for r.

A NaN in a headerless file's first row is a value (np.savetxt writes an empty ROI so), not a
header; a first column under a blank or ``Node`` header cell holds row names whatever they are
(pandas' 0..R-1, XCP-D's ``001``); pandas' column numbers (``to_csv(index=False)``) and
numpy.savetxt's ``# name,...`` are headers; a Fisher z matrix is refused with the conversion,
never told to set its diagonal alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.connectome.imported import check_connectome
from lcm.connectome.roi_formats import check_roi_names, read_matrix, read_roi_series
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
        with pytest.raises(ExcludedRunError, match=rf"(?s)z\.npy.*{convert}"):
            check_connectome(made, "z.npy", 5, "x")
    # NaN off the diagonal is no Fisher z sign; a diagonal of 0.5 no zeroed one.
    made = _fc()
    made[1, 2] = made[2, 1] = np.nan
    with pytest.raises(ExcludedRunError, match="Recompute the connectome"):
        check_connectome(made, "r.npy", 5, "x")
    made = _fc()
    np.fill_diagonal(made, 0.5)
    with pytest.raises(ExcludedRunError, match=r"diagonal value 0\.5") as refused:
        check_connectome(made, "r.npy", 5, "x")
    assert "Fisher" not in refused.value.message


def test_a_covariance_matrix_is_refused_with_its_conversion_to_r_not_tanh() -> None:
    """A covariance matrix (numpy.cov, nilearn's kind="covariance") brought as a connectome was
    told to take numpy.tanh as if Fisher z, or to set its diagonal to 1: both silently wrong r."""
    rng = np.random.default_rng(3)
    series = rng.standard_normal((60, 5)) * [0.9, 1.3, 2.0, 0.7, 1.1] + rng.standard_normal((60, 1))
    cov = np.cov(series.T)
    assert np.abs(cov).max() > 1  # past [-1, 1]: was read as Fisher z
    for matrix in (cov, cov / np.abs(cov).max()):  # and within it: was 'set the diagonal'
        with pytest.raises(ExcludedRunError, match=r"cov\.npy: diagonal value") as refused:
            check_connectome(matrix, "cov.npy", 5, "x")
        assert "covariance matrix" in refused.value.hint and "tanh" not in refused.value.hint
        assert "cov_to_corr" in refused.value.hint
    # Fisher z of r clipped below 1 (arctanh(1 - 1e-7) = 8.4 throughout) stays z, not covariance.
    z = np.arctanh(np.clip(np.corrcoef(series.T), -1 + 1e-7, 1 - 1e-7))
    with pytest.raises(ExcludedRunError, match="outside") as refused:
        check_connectome(z, "z.npy", 5, "x")
    assert "numpy.tanh" in refused.value.hint


# -- headers as pandas and numpy write them (a real-shaped run: 200 volumes x 94 ROIs) --------

AAL2_LIKE = [f"ROI_{i:02d}" for i in range(94)]


def _run(seed: int = 1) -> np.ndarray:
    """200 volumes x 94 ROIs sharing one signal, at a BOLD scale."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((200, 1))
    return 1000 + 10 * (shared * rng.uniform(0.5, 1.5, 94) + rng.standard_normal((200, 94)))


@pytest.mark.parametrize("sep, ext", [(",", ".csv"), ("\t", ".tsv")])
@pytest.mark.parametrize("start", [0, 1])
def test_pandas_column_numbers_are_a_header(tmp_path: Path, sep: str, ext: str, start) -> None:
    """``pd.DataFrame(x).to_csv(f, index=False)`` writes ``0,1,...,93`` first: a header of
    column numbers, not a volume (read as one, every ROI shared a spike: 201 volumes, mean r
    1.000 on HCP data) nor a 95th matrix row (95 x 94, refused as not square)."""
    series, columns = _run(), range(start, start + 94)
    pd.DataFrame(series, columns=columns).to_csv(tmp_path / f"ts{ext}", sep=sep, index=False)
    table = read_roi_series(tmp_path / f"ts{ext}", AAL2_LIKE)
    assert table.shape == (200, 94)
    assert list(table.columns) == [str(c) for c in columns]
    np.testing.assert_allclose(table.to_numpy(np.float64), series, rtol=1e-12)
    fc = np.corrcoef(series.T)
    pd.DataFrame(fc, columns=columns).to_csv(tmp_path / f"fc{ext}", sep=sep, index=False)
    names, matrix = read_matrix(tmp_path / f"fc{ext}")
    assert names == [str(c) for c in columns] and matrix.shape == (94, 94)
    np.testing.assert_allclose(check_connectome(matrix, f"fc{ext}", 94, "aal2"), fc, atol=1e-12)
    check_roi_names(names, AAL2_LIKE, f"fc{ext}", "aal2")  # numbers name no other atlas


def test_only_exact_column_numbers_are_a_header(tmp_path: Path) -> None:
    """A first row of numbers that are values stays a volume: the same numbers as floats
    (numpy.savetxt of 0..93), column numbers out of order, or a toy table's ``1,2``."""
    series = _run()
    first = np.arange(94.0)
    np.savetxt(tmp_path / "floats.csv", np.vstack([first, series]), delimiter=",")
    table = read_roi_series(tmp_path / "floats.csv", AAL2_LIKE)
    assert table.shape == (201, 94) and table.iloc[0].tolist() == first.tolist()
    shuffled = ",".join(map(str, [1, 0, *range(2, 94)]))
    body = "\n".join(",".join(map(str, row)) for row in series)
    (tmp_path / "shuffled.csv").write_text(f"{shuffled}\n{body}\n")
    assert read_roi_series(tmp_path / "shuffled.csv", AAL2_LIKE).shape == (201, 94)
    (tmp_path / "toy.csv").write_text("1,2\n3,4\n")
    assert read_roi_series(tmp_path / "toy.csv", ["A", "B"]).to_numpy().tolist() == [
        [1, 2],
        [3, 4],
    ]


@pytest.mark.parametrize("sep, ext", [(",", ".csv"), ("\t", ".tsv")])
def test_numpy_savetxt_header_is_read_without_its_mark(tmp_path: Path, sep: str, ext) -> None:
    """``np.savetxt(f, x, header=...)`` writes ``# Precentral_L,...``: the names with numpy's
    comment mark (refused as another parcellation's names, first ``'# Precentral_L'``). A
    ``#`` line of another width above it is a comment."""
    series, fc = _run(), np.corrcoef(_run().T)
    header = sep.join(AAL2_LIKE)
    np.savetxt(tmp_path / f"ts{ext}", series, delimiter=sep, header=header)
    assert (tmp_path / f"ts{ext}").read_text().startswith("# ROI_00")
    table = read_roi_series(tmp_path / f"ts{ext}", AAL2_LIKE)
    assert list(table.columns) == AAL2_LIKE and table.shape == (200, 94)
    np.testing.assert_allclose(table.to_numpy(np.float64), series, rtol=1e-12)
    check_roi_names(list(table.columns), AAL2_LIKE, f"ts{ext}", "aal2")
    described = f"FC of sub-01{sep} AAL2\n{header}"  # two lines, the first a comment
    np.savetxt(tmp_path / f"fc{ext}", fc, delimiter=sep, header=described)
    names, matrix = read_matrix(tmp_path / f"fc{ext}")
    assert names == AAL2_LIKE and np.allclose(matrix, fc)
    # A comment alone leaves a headerless table, its first row a volume.
    np.savetxt(tmp_path / f"bare{ext}", fc, delimiter=sep, header="made by numpy")
    names, matrix = read_matrix(tmp_path / f"bare{ext}")
    assert names is None and np.allclose(matrix, fc)
    # Column numbers behind the mark are a header of numbers, as without it.
    np.savetxt(tmp_path / f"num{ext}", fc, delimiter=sep, header=sep.join(map(str, range(94))))
    names, matrix = read_matrix(tmp_path / f"num{ext}")
    assert names == [str(i) for i in range(94)] and np.allclose(matrix, fc)


def _ending_each_line(text: str, sep: str, header: bool = True) -> str:
    """``text`` with ``sep`` ending each line (or each line but the header)."""
    lines = text.splitlines()
    return "".join(
        line + ("" if i == 0 and not header else sep) + "\n" for i, line in enumerate(lines)
    )


@pytest.mark.parametrize(
    ("sep", "ext", "header"), [("\t", ".tsv", True), ("\t", ".tsv", False), (",", ".csv", True)]
)
def test_a_delimiter_ending_each_line_is_no_roi(tmp_path: Path, sep: str, ext: str, header) -> None:
    """A tab or comma ending each line made an empty 'Unnamed: 5' column, the series excluded
    as another parcellation's; a header without it made the first ROI pandas' index, every
    other ROI read under the name of the one before."""
    series = _series()
    text = pd.DataFrame(series, columns=NAMES).to_csv(sep=sep, index=False)
    path = tmp_path / f"ts{ext}"
    path.write_text(_ending_each_line(text, sep, header))
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES
    np.testing.assert_allclose(table.to_numpy(float), series)
    # Headerless (a CSV) and a matrix: the same.
    path.write_text(_ending_each_line(pd.DataFrame(series).to_csv(sep=sep, index=False), sep))
    if ext == ".csv":
        np.testing.assert_allclose(read_roi_series(path, NAMES).to_numpy(float), series)
    fc = _fc()
    path = tmp_path / f"m{ext}"
    path.write_text(_ending_each_line(pd.DataFrame(fc).to_csv(sep=sep, index=False), sep))
    _, matrix = read_matrix(path)
    np.testing.assert_allclose(matrix, fc)


def test_a_blank_last_roi_of_a_headerless_file_stays_an_roi(tmp_path: Path) -> None:
    """A blank last column is a trailing delimiter only when the table is the atlas's width
    without it: pandas writes an empty ROI of a headerless file as blanks too."""
    series = _series()
    series[:, -1] = np.nan
    path = tmp_path / "ts.csv"
    pd.DataFrame(series).to_csv(path, header=False, index=False)
    assert path.read_text().splitlines()[0].endswith(",")
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES and table["E"].isna().all()


def test_a_nonfinite_matrix_is_told_how_to_leave_the_run_out_of_a_folder_or_a_listing() -> None:
    """The fix said "drop the run from the listing" to a folder dataset too, which has none."""
    fc = _fc()
    fc[1, 2] = fc[2, 1] = np.nan
    with pytest.raises(ExcludedRunError) as info:
        check_connectome(fc, "m.npy", 5, "x")
    assert info.value.code == "matrix_nonfinite"
    assert "row of the listing TSV" in info.value.hint
    assert "move its file out of the dataset's folder" in info.value.hint


def test_an_imported_matrixs_diagonal_and_nan_messages_name_the_roi_by_its_label() -> None:
    """The diagonal and NaN messages gave a 1-based ROI number alone: the user counted rows
    of the atlas's labels to find the ROI."""
    fc = _fc()
    fc[3, 3] = 0.0  # a Fisher z diagonal
    with pytest.raises(ExcludedRunError, match=r"diagonal value 0 at ROI 4 \(D\);"):
        check_connectome(fc, "m.npy", 5, "x", labels=NAMES)
    fc = _fc()
    fc[1, 2] = fc[2, 1] = np.nan
    with pytest.raises(ExcludedRunError, match=r"column 3: ROI 2 \(B\) with ROI 3 \(C\)\)"):
        check_connectome(fc, "m.npy", 5, "x", labels=NAMES)
    fc = _fc()
    np.fill_diagonal(fc, np.inf)  # Fisher z's arctanh(1)
    with pytest.raises(ExcludedRunError, match=r"first inf at ROI 1 \(A\)\)"):
        check_connectome(fc, "m.npy", 5, "x", labels=NAMES)


@pytest.mark.parametrize(("sep", "ext"), [(",", ".csv"), ("\t", ".tsv")])
def test_a_delimiter_ending_the_rows_but_not_the_header_is_no_roi(
    tmp_path: Path, sep: str, ext: str
) -> None:
    """A header without the comma (or tab) that ends each row was refused by pandas
    ('Expected 5 fields in line 2, saw 6'), the run excluded as unreadable and to be re-copied."""
    series = _series()
    path = tmp_path / f"ts{ext}"
    text = pd.DataFrame(series, columns=NAMES).to_csv(sep=sep, index=False)
    path.write_text(_ending_each_line(text, sep, header=False))
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES
    np.testing.assert_allclose(table.to_numpy(float), series)
    fc = _fc()
    path = tmp_path / f"m{ext}"
    text = pd.DataFrame(fc, index=NAMES, columns=NAMES).to_csv(sep=sep)  # row names too
    path.write_text(_ending_each_line(text, sep, header=False))
    names, matrix = read_matrix(path)
    assert names == NAMES
    np.testing.assert_allclose(matrix, fc)


def test_a_row_longer_than_the_header_is_said_to_be_so(tmp_path: Path) -> None:
    """A row with a cell more than the header (not a delimiter ending it) was told to re-copy
    the file, as if copying had damaged it."""
    path = tmp_path / "ts.csv"
    path.write_text("A,B,C,D,E\n" + "1,2,3,4,5\n" * 3 + "1,2,3,4,5,6\n")
    with pytest.raises(ExcludedRunError, match="Expected 5 fields in line 5") as refused:
        read_roi_series(path, NAMES)
    assert "as many cells as the first row" in refused.value.hint
    assert "Re-copy" not in refused.value.hint


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
@pytest.mark.parametrize("header", ["", " ".join(NAMES)], ids=["no_header", "header"])
def test_numpy_savetxts_default_space_delimiter_is_named_with_its_fix(
    tmp_path: Path, ext: str, header: str
) -> None:
    """np.savetxt('ts.csv', x) separates with spaces: refused as 'not a number' quoting a whole
    row (a CSV) or as another parcellation of one ROI (a TSV), neither the fix."""
    path = tmp_path / f"ts{ext}"
    np.savetxt(path, _series(), header=header)
    sep = {".csv": ",", ".tsv": "\t"}[ext]
    said = rf"ts\{ext} separates its values with spaces"
    with pytest.raises(ExcludedRunError, match=said):
        read_matrix(path)
    with pytest.raises(ExcludedRunError, match=said) as info:
        read_roi_series(path, NAMES)
    assert f"numpy.savetxt(file, values, delimiter={sep!r})" in info.value.hint
    assert ".1D" in info.value.hint


def test_a_tsv_row_longer_than_a_tab_ended_table_is_refused_not_cut(tmp_path: Path) -> None:
    """Rows ending with a tab, one with a value in that cell: pandas dropped the value with a
    warning alone; a TSV row longer than the header was told to re-copy the file."""
    series = _series(6)
    lines = ["\t".join(NAMES)] + ["\t".join(map(str, row)) + "\t" for row in series]
    lines[-1] += "7.5"
    path = tmp_path / "ts.tsv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ExcludedRunError, match=r"ts\.tsv: a row holds a value beyond") as info:
        read_roi_series(path, NAMES)
    assert "as many cells as the first row" in info.value.hint
    path.write_text("\t".join(NAMES) + "\n" + "1\t2\t3\t4\t5\n" * 3 + "1\t2\t3\t4\t5\t6\n")
    with pytest.raises(ExcludedRunError, match="Expected 5 fields in line 5") as info:
        read_roi_series(path, NAMES)
    assert "Re-copy" not in info.value.hint


@pytest.mark.parametrize("index", ["dummies_dropped", "seconds"])
def test_pandas_index_of_a_tsv_series_is_left_out_whatever_it_holds(
    tmp_path: Path, index: str
) -> None:
    """``to_csv(sep='\\t')`` of a frame less its first volumes (index 4..T+3), or indexed by
    time: only an index 0..T-1 was left out; these were read as one ROI more and the run
    excluded as another parcellation's. A CSV's blank first header cell was row names already."""
    series = _series(20)
    frame = pd.DataFrame(np.vstack([np.zeros((4, len(NAMES))), series]), columns=NAMES)
    frame = frame.iloc[4:]
    if index == "seconds":
        frame.index = 2.0 * np.arange(len(frame))
    for sep, ext in (("\t", ".tsv"), (",", ".csv")):
        path = tmp_path / f"ts{ext}"
        frame.to_csv(path, sep=sep)
        assert path.read_text().startswith(sep + NAMES[0])  # the blank index cell
        table = read_roi_series(path, NAMES)
        assert list(table.columns) == NAMES
        np.testing.assert_allclose(table.to_numpy(float), series)


def test_a_savetxt_header_over_rows_ending_with_a_comma_names_the_columns(
    tmp_path: Path,
) -> None:
    """numpy.savetxt with a row format ending in a comma (``fmt='%.8f,...,%.8f,'``) under its
    ``header=``: the header, one cell short of the rows, was taken for a comment and the columns
    given the atlas's names in the atlas's order, not the file's (here reversed): silently."""
    series = _series()
    path = tmp_path / "ts.csv"
    fmt = ",".join(["%.12f"] * len(NAMES)) + ","
    np.savetxt(path, series[:, ::-1], fmt=fmt, header=",".join(NAMES[::-1]))
    assert path.read_text().splitlines()[1].endswith(",")
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES[::-1]
    np.testing.assert_allclose(table[NAMES].to_numpy(float), series, atol=1e-11)


@pytest.mark.parametrize("writer", ["xcpd_tsv", "pandas_csv", "savetxt_csv", "savetxt_tsv"])
@pytest.mark.parametrize("bom", [False, True], ids=["utf8", "bom"])
def test_windows_line_endings_and_a_byte_order_mark_read_the_same(
    tmp_path: Path, writer: str, bom: bool
) -> None:
    """CRLF line endings (Windows, or a file passed through Excel) and a UTF-8 byte-order
    mark: the header stays a header (never ``\\ufeffA`` nor ``# A`` as a name, never a row)
    and the last ROI holds no ``\\r``; an XCP-D ``n/a`` ROI stays empty."""
    series = _series()
    series[:, 3] = np.nan
    frame = pd.DataFrame(series, columns=NAMES)
    encoding = "utf-8-sig" if bom else "utf-8"
    path = tmp_path / ("ts.tsv" if writer.endswith("tsv") else "ts.csv")
    if writer == "xcpd_tsv":
        frame.to_csv(
            path, sep="\t", index=False, na_rep="n/a", lineterminator="\r\n", encoding=encoding
        )
    elif writer == "pandas_csv":
        frame.to_csv(path, index=False, lineterminator="\r\n", encoding=encoding)
    else:
        sep = "\t" if writer.endswith("tsv") else ","
        np.savetxt(
            path, series, delimiter=sep, header=sep.join(NAMES), newline="\r\n", encoding=encoding
        )
    raw = path.read_bytes()
    assert b"\r\n" in raw and raw.startswith(b"\xef\xbb\xbf") == bom
    table = read_roi_series(path, NAMES)
    assert list(table.columns) == NAMES
    assert table["D"].isna().all()
    np.testing.assert_allclose(table.to_numpy(float), series, equal_nan=True)
