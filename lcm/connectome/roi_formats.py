"""Read per-run ROI time series and connectivity matrices in the formats consortia publish.

Time series ``T x R``: XCP-D TSV (header = ROI names, optional ``framewise_displacement``),
CSV without a header or with one of ROI names or column numbers (pandas' ``0,1,...``), NumPy
``.npy``, MATLAB ``.mat`` (DPARSF / ABIDE-preprocessed: variable ``ROISignals``), AFNI
``.1D`` (ABIDE Preprocessed's ``<FILE_ID>_rois_<atlas>.1D``: whitespace columns under a ``#``
line of ROI codes). Matrices ``R x R``: our relmat TSV (``Node`` column), CSV or TSV with or
without names, ``.npy``, ``.mat``, ``.1D``. A CSV or TSV header may be numpy.savetxt's
(``# name,...``); rows one cell longer than it are led by row names (R's ``write.table``),
left out; ``nan``, ``n/a`` (XCP-D), ``NA`` (R) and blank cells are missing values. Formats
without ROI names (or numbering them only) take the atlas's labels, so their column count must
equal the atlas's ROI count.

Every problem with one file raises :class:`~lcm.exceptions.ExcludedRunError` whose message names
the file and the fix: the run is excluded, the cohort goes on.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lcm import reason_codes
from lcm.atlas.model import setting_names
from lcm.connectome.confounds import MISSING_CELLS
from lcm.exceptions import ExcludedRunError
from lcm.io.csv_dialect import check_grouped_numbers, check_semicolons

SERIES_MAT_VARIABLES = ("ROISignals", "ROISignal", "timeseries", "ts")
MATRIX_MAT_VARIABLES = ("connectome", "connectivity", "FC", "R", "r", "corr")
_V73_SIGNATURE = b"MATLAB 7.3"


def other_atlas_fix(names: Mapping[str, str] | None = None) -> str:
    """The fix of a file whose ROIs are another parcellation's (roi_count_mismatch,
    roi_names_mismatch): one wording for both, ROI time series and imported matrices alike.

    Parameters
    ----------
    names : mapping of str to str, optional
        How the user gave the atlas settings (:func:`lcm.atlas.model.setting_names`): the
        config's keys by default, ``lcm connectome``'s options where it was given those.

    Returns
    -------
    str
    """
    keys = setting_names(names)
    return (
        f"Set {keys['name']} (or {keys['path']} and {keys['labels']}) to the parcellation the "
        "file was computed with, or recompute it with the configured atlas."
    )


# As the config's keys name the atlas settings: the default of the readers' ``atlas_fix``.
OTHER_ATLAS_FIX = other_atlas_fix()
# The fixes of a file that cannot be read, or whose format is not one read here.
_UNREADABLE_FIX = (
    "Re-copy the file from its source (`datalad get` it where it is a symlink), or save it "
    "again as UTF-8 text (.tsv, .csv) or with numpy.save (.npy)."
)
_FORMATS_FIX = "Save it as .tsv, .csv, .npy, .mat (v7) or AFNI .1D."
# Re-saving a MATLAB file as v7 (scipy reads v7, not v7.3's HDF5), or converting it.
_MAT_FIX = "Re-save it in MATLAB with save(file, var, '-v7'), or convert it to .npy or .csv."
# The fix of a row with more (or fewer) cells than the first: no copy damaged it.
_RAGGED_FIX = (
    "Write each row with as many cells as the first row (a header included), each quote closed."
)
_EMPTY_FIX = "Write one row of numbers per volume (ROI time series) or ROI (matrix)."
_ONE_TABLE_FIX = "Store one run per file, as one 2D table (volumes x ROIs, or ROI x ROI)."
_TEXT_SEPARATORS = {".tsv": "\t", ".csv": ","}
# R's missing value, as write.table writes it: an ROI with no signal was refused as text.
_R_MISSING = "NA"
# Cells that are a missing value, not text: NumPy's 'nan', XCP-D's 'n/a', pandas' blank, R's.
_MISSING = ("nan", "n/a", "", _R_MISSING.lower())
# Fewest columns whose numbers 0..R-1 or 1..R alone make a first row a header.
_MIN_NUMBERED = 3


def read_roi_series(
    path: str | Path, names: list[str], atlas_fix: str = OTHER_ATLAS_FIX
) -> pd.DataFrame:
    """One run's ROI time series as a table, one column per ROI (plus FD when a TSV has it).

    Parameters
    ----------
    path : path-like
        ``.tsv`` (header required), ``.csv``, ``.npy``, ``.mat`` or ``.1D``.
    names : list of str
        Atlas ROI names, used as columns for formats without a header.
    atlas_fix : str, default OTHER_ATLAS_FIX
        The hint of a column count that is another parcellation's (:func:`other_atlas_fix`).

    Returns
    -------
    pandas.DataFrame
        Rows are volumes. TSV columns are kept as written (the caller checks them), less row
        names: under a blank first header cell (pandas' index), or the header one cell short
        (R's ``write.table``).

    Raises
    ------
    ExcludedRunError
        Unreadable file, not 2D, no volume (a header alone), or (headerless formats) a column
        count other than ``len(names)``.
    """
    path = Path(path)
    table = _read_series_table(path, names, atlas_fix)
    if table.shape[0] == 0:
        # A header alone (an extraction stopped before its first volume): nothing to correlate.
        raise ExcludedRunError(
            f"{path.name} holds no volumes (a header with no rows of numbers)",
            hint=f"Extract the series into {path.name} again: one row of numbers per volume.",
            code=reason_codes.FILE_EMPTY,
        )
    return table


def _read_series_table(path: Path, names: list[str], atlas_fix: str) -> pd.DataFrame:
    """:func:`read_roi_series` before its check for rows."""
    ext = path.suffix.lower()
    if ext == ".tsv":
        skip = _comment_lines(path, "\t")
        longer = _longer_rows(path, "\t", skip)
        # Rows one cell longer than the header: R's write.table puts a row name first (its
        # rule and pandas': the first column is then row names); otherwise a tab ends each line,
        # and index_col=False keeps the first ROI from becoming pandas' index, every other ROI
        # named as the one before it. Either misread gave row numbers as the first ROI.
        row_names = longer is not None and not longer.ending
        try:
            with warnings.catch_warnings():
                # index_col=False drops a cell beyond the header's width with this warning
                # alone: a value lost, every other read, silently.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                table = pd.read_csv(
                    path,
                    sep="\t",
                    na_values=[*MISSING_CELLS, _R_MISSING],
                    keep_default_na=False,
                    skiprows=skip,
                    index_col=0 if row_names else False,
                )
        except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
            check_semicolons(path, "\t")
            said = str(e).strip()
            if isinstance(e, pd.errors.ParserWarning):
                said = "a row holds a value beyond the header's last column"
            raise ExcludedRunError(
                f"cannot read ROI time series {path.name}: {said}",
                hint=_RAGGED_FIX,
                code=reason_codes.FILE_UNREADABLE,
            ) from e
        except (OSError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise ExcludedRunError(
                f"cannot read ROI time series {path.name}: {e}",
                hint=_UNREADABLE_FIX,
                code=reason_codes.FILE_UNREADABLE,
            ) from e
        if row_names:
            table = table.reset_index(drop=True)  # volume labels, not ROIs
        _check_grouped_cells(path, table)
        if table.shape[1] == 1 and table.shape[0]:
            _check_delimiter(path, "\t", str(table.iat[-1, 0]))
        if table.shape[1] > 1 and str(table.columns[0]) == "Unnamed: 0":
            # A blank first header cell: pandas' index (to_csv without index=False), row names
            # whatever they are, as in a CSV. Only 0..T-1 was left out: a frame less its first
            # volumes (5..T-1) was excluded as another parcellation's, one ROI too many.
            table = table.iloc[:, 1:]
        last = table.shape[1] - 1
        if last > 0 and str(table.columns[last]) == f"Unnamed: {last}":
            if table.iloc[:, last].isna().all():  # unnamed and empty: the line's ending tab
                table = table.iloc[:, :last]
        if table.shape[1]:
            first = str(table.columns[0])
            return table.rename(columns={table.columns[0]: _uncommented(first)})
        return table
    if ext == ".csv":
        header, _, values = _read_text_table(path, ",", width=len(names))
        if header is not None:
            return pd.DataFrame(values, columns=header)
    elif ext == ".npy":
        values = _load_npy(path)
    elif ext == ".mat":
        values = load_mat_array(path, SERIES_MAT_VARIABLES)
    elif ext == ".1d":
        header, values = read_afni_1d(path)
        if header is not None:
            return pd.DataFrame(values, columns=header)
    else:
        raise ExcludedRunError(
            f"{path.name}: unknown time-series format {ext!r}",
            hint=_FORMATS_FIX,
            code=reason_codes.UNKNOWN_FORMAT,
        )
    _check_series_shape(path, values, len(names), atlas_fix)
    return pd.DataFrame(values, columns=list(names))


def read_matrix(path: str | Path) -> tuple[list[str] | None, np.ndarray]:
    """One run's connectivity matrix and its ROI names when the file carries them.

    Parameters
    ----------
    path : str or Path
        The matrix file: ``.tsv``, ``.csv``, ``.npy``, ``.mat`` or ``.1D``, by its suffix.

    Returns
    -------
    names : list of str or None
        The ROI names of a text table's header or an AFNI header; None otherwise.
    values : numpy.ndarray
        The matrix.

    Raises
    ------
    ExcludedRunError
        Unreadable file, unknown format, or not 2D.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext in _TEXT_SEPARATORS:
        header, index, values = _read_text_table(path, _TEXT_SEPARATORS[ext])
        if (
            header is not None
            and index is not None
            and index != header
            and not roi_numbering(index)
        ):
            raise ExcludedRunError(
                f"{path.name}: row names {index[:3]}... differ from column names {header[:3]}...",
                hint="Write the matrix with the same ROI order on both axes.",
                code=reason_codes.ROW_COLUMN_NAMES_DIFFER,
            )
        names = header
    elif ext == ".npy":
        names, values = None, _load_npy(path)
    elif ext == ".mat":
        names, values = None, load_mat_array(path, MATRIX_MAT_VARIABLES)
    elif ext == ".1d":
        names, values = read_afni_1d(path)
    else:
        raise ExcludedRunError(
            f"{path.name}: unknown connectome format {ext!r}",
            hint=_FORMATS_FIX,
            code=reason_codes.UNKNOWN_FORMAT,
        )
    return names, values


def atlas_order(names: list[str] | None, atlas_names: list[str]) -> list[int] | None:
    """Where each atlas ROI is among a file's ``names``, when they are the atlas's in another
    order (each once; names compare after stripping spaces); ``None`` otherwise, and when the
    order is already the atlas's.

    A table is read by its names, as nilearn and XCP-D write them: a file whose columns are
    sorted otherwise (alphabetically, by network) is the same parcellation.

    Parameters
    ----------
    names : list of str or None
        The file's ROI names (:func:`read_matrix`); None when it has none.
    atlas_names : list of str
        The atlas's ROI names, in its order.
    """
    if names is None:
        return None
    got = [str(n).strip() for n in names]
    want = [str(n).strip() for n in atlas_names]
    if got == want or len(set(got)) != len(got) or sorted(got) != sorted(want):
        return None
    where = {n: i for i, n in enumerate(got)}
    return [where[n] for n in want]


def check_roi_names(
    names: list[str] | None,
    atlas_names: list[str],
    file: str,
    atlas: str,
    atlas_fix: str = OTHER_ATLAS_FIX,
) -> None:
    """Refuse a file whose ROI names say it is of another parcellation than the atlas.

    Files without names (``None``), or whose "names" only number the ROIs (``0..R-1``,
    ``1..R``), are accepted: their count was checked. Names compare after stripping spaces.

    Parameters
    ----------
    names : list of str or None
        ROI names the file carries (TSV header, relmat ``Node`` column).
    atlas_names : list of str
        The configured atlas's labels, in order.
    file, atlas : str
        File and atlas names, for the message.
    atlas_fix : str, default OTHER_ATLAS_FIX
        The hint of names that are another parcellation's (:func:`other_atlas_fix`).

    Raises
    ------
    ExcludedRunError
        Naming the first differing ROI and the fix.
    """
    if names is None:
        return
    got = [str(n).strip() for n in names]
    want = [str(n).strip() for n in atlas_names]
    if got == want or roi_numbering(got):
        return
    if all(_is_number(n) for n in got):
        raise ExcludedRunError(
            f"{file}: its first row holds numbers, not ROI names",
            hint="Give the TSV a header of ROI names (atlas labels), or save the series as a "
            "headerless .csv.",
            code=reason_codes.ROI_HEADER_MISSING,
        )
    if len(got) != len(want):
        missing = [n for n in want if n not in set(got)]
        extra = [n for n in got if n not in set(want)]
        detail = "; ".join(
            f"{what} {len(items)}: {_few(items)}"
            for what, items in (("lacks", missing), ("adds", extra))
            if items
        )
        raise ExcludedRunError(
            f"{file} names {len(got)} ROIs but atlas {atlas!r} has {len(want)} ({detail}): "
            "another parcellation, or ROIs dropped",
            hint=atlas_fix,
            code=reason_codes.ROI_COUNT_MISMATCH,
        )
    if sorted(got) == sorted(want):
        i = next(k for k, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        raise ExcludedRunError(
            f"{file} has atlas {atlas!r}'s ROIs in another order (ROI {i + 1} is {got[i]!r}, "
            f"the atlas's is {want[i]!r})",
            hint="Write the ROIs in the order of the atlas's labels.",
            code=reason_codes.ROI_ORDER_MISMATCH,
        )
    unknown = [n for n in got if n not in set(want)]
    raise ExcludedRunError(
        f"{file} is of another parcellation than atlas {atlas!r}: {len(unknown)} of its "
        f"{len(got)} ROI names are not atlas labels (first: {unknown[0]!r}; atlas's first: "
        f"{want[0]!r})",
        hint=atlas_fix,
        code=reason_codes.ROI_NAMES_MISMATCH,
    )


def _few(items: list[str], n: int = 5) -> str:
    """The first ``n`` items quoted, ``...`` when there are more."""
    return ", ".join(map(repr, items[:n])) + (", ..." if len(items) > n else "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def roi_numbering(names: list[str]) -> bool:
    """Whether ``names`` only number the ROIs 0..R-1 or 1..R (no parcellation identity).

    Parameters
    ----------
    names : list of str
        A file's ROI names (its header).

    Returns
    -------
    bool
        True for column numbers, which pandas and numpy write where names are missing.
    """
    n = len(names)
    return names in ([str(i) for i in range(n)], [str(i) for i in range(1, n + 1)])


def load_mat_array(path: str | Path, preferred: tuple[str, ...]) -> np.ndarray:
    """The 2D numeric array of a MATLAB file (v4 to v7): a preferred variable, else the only one.

    Parameters
    ----------
    path : str or Path
        The MATLAB file.
    preferred : tuple of str
        Variable names tried in order (:data:`SERIES_MAT_VARIABLES`,
        :data:`MATRIX_MAT_VARIABLES`); else the file's only 2D numeric variable is taken.

    Raises
    ------
    ExcludedRunError
        v7.3 (HDF5) files, unreadable files, or no single 2D numeric variable to pick.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    v73 = f"{path.name} is a MATLAB v7.3 (HDF5) file, which cannot be read here"
    try:
        with path.open("rb") as handle:
            head = handle.read(128)
    except OSError as exc:
        raise ExcludedRunError(
            f"cannot read {path.name}: {exc}",
            hint=_UNREADABLE_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    if head.startswith(_V73_SIGNATURE):
        raise ExcludedRunError(v73, hint=_MAT_FIX, code=reason_codes.MAT_V73)
    try:
        content = loadmat(path)
    except NotImplementedError as exc:  # scipy's answer to HDF5-based files
        raise ExcludedRunError(v73, hint=_MAT_FIX, code=reason_codes.MAT_V73) from exc
    except (MatReadError, OSError, ValueError, TypeError) as exc:
        raise ExcludedRunError(
            f"cannot read MATLAB file {path.name}: {exc}",
            hint=_MAT_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    arrays = {
        k: v
        for k, v in content.items()
        if not k.startswith("__")
        and isinstance(v, np.ndarray)
        and v.ndim == 2
        and np.issubdtype(v.dtype, np.number)
    }
    for name in preferred:
        if name in arrays:
            return np.asarray(arrays[name], dtype=np.float64)
    if len(arrays) == 1:
        return np.asarray(next(iter(arrays.values())), dtype=np.float64)
    found = sorted(k for k in content if not k.startswith("__"))
    raise ExcludedRunError(
        f"{path.name}: cannot tell which variable holds the data (2D numeric variables: "
        f"{sorted(arrays)}, all: {found})",
        hint=f"Save the data alone in the file, or as the variable {preferred[0]!r}.",
        code=reason_codes.MAT_VARIABLE_AMBIGUOUS,
    )


def read_afni_1d(path: str | Path) -> tuple[list[str] | None, np.ndarray]:
    """An AFNI ``.1D`` table: whitespace-separated numbers, ``#`` lines are comments.

    The first ``#`` line above the numbers names the columns when it has one word per column
    (ABIDE Preprocessed writes ``#2001  #2002 ...``, the AAL codes). Words that are all numbers
    are codes of the parcellation's labels, not names: ``None`` is returned, and the columns
    take the atlas's labels in order like any file without names.

    Parameters
    ----------
    path : str or Path
        The ``.1D`` file.

    Returns
    -------
    (list of str or None, ndarray)
        Column names (``None`` when absent or numeric) and the ``rows x columns`` values.

    Raises
    ------
    ExcludedRunError
        Unreadable, empty, ragged or non-numeric.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExcludedRunError(
            f"cannot read {path.name}: {exc}",
            hint=_UNREADABLE_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    header: list[str] | None = None
    rows: list[list[str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.startswith("#"):
            if header is None and not rows:
                header = text.replace("#", " ").split()
            continue
        if not text:
            continue
        cells = text.split()
        if rows and len(cells) != len(rows[0]):
            raise ExcludedRunError(
                f"{path.name}: line {number} has {len(cells)} values, the first row {len(rows[0])}",
                hint="Write one row of the same length per volume.",
                code=reason_codes.RAGGED_ROWS,
            )
        rows.append(cells)
    if not rows:
        raise ExcludedRunError(
            f"{path.name} holds no rows of numbers",
            hint=_EMPTY_FIX,
            code=reason_codes.FILE_EMPTY,
        )
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise ExcludedRunError(
            f"{path.name}: {exc}",
            hint="Write numbers only (an AFNI .1D table).",
            code=reason_codes.NON_NUMERIC_VALUES,
        ) from exc
    if header is not None and (len(header) != values.shape[1] or all(map(_is_number, header))):
        header = None
    return header, values


def _load_npy(path: Path) -> np.ndarray:
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ExcludedRunError(
            f"cannot read {path.name} as a NumPy array: {exc}",
            hint="Save it with numpy.save (one 2D numeric array, no pickled objects).",
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
        raise ExcludedRunError(
            f"{path.name} holds a {values.ndim}D {values.dtype} array; a 2D numeric array is "
            "expected",
            hint=_ONE_TABLE_FIX,
            code=reason_codes.NOT_2D,
        )
    return values.astype(np.float64, copy=False)


def _read_text_table(
    path: Path, sep: str, width: int | None = None
) -> tuple[list[str] | None, list[str] | None, np.ndarray]:
    """``(column names, row names, values)`` of a delimited table, names ``None`` when absent.

    A first row with a text cell (neither a number nor missing: ``nan``, ``n/a``, R's ``NA``,
    blank) is a header, and so are the column numbers pandas writes for an unnamed frame:
    ``0,1,...`` (``to_csv(index=False)``), ``,0,1,...`` (with its index) or ``1,2,...``. Leading
    ``#`` lines are comments, except a last one as wide as the table: numpy.savetxt's ``header=``,
    read without its ``#``. Under a header, a first column named ``Node`` (our relmat,
    XCP-D's) or left blank (pandas' index) holds row names, whatever they are (``001``, ``0``).
    A last column blank throughout is the delimiter ending each line, left out when the header
    leaves it unnamed or, without a header, when the table is ``width`` wide without it (its
    row count, a square matrix, when None): a blank ROI of a headerless file stays an ROI.
    So is one ending the rows but not the header, which pandas refused ("Expected N fields").
    Rows one cell longer than a header, not blank at their end, start with row names: R's
    ``write.table`` names only the columns (R and pandas read them so).
    """
    skip = _comment_lines(path, sep)
    # Widened to the rows' width when they are one cell longer than the first line: a
    # delimiter ending them (the first line's missing cell is then blank, as the rows' last),
    # or R's row names (write.table: the header names the columns after them).
    longer = _longer_rows(path, sep, skip)
    columns = None if longer is None else longer.width
    try:
        raw = pd.read_csv(
            path,
            sep=sep,
            header=None,
            names=None if columns is None else range(columns),
            dtype=str,
            keep_default_na=False,
            skiprows=skip,
        )
    except pd.errors.ParserError as exc:  # a row longer than the first, a quote left open
        check_semicolons(path, sep)  # R's write.csv2: '"a";"b"' is one cell, rows are more
        raise ExcludedRunError(
            f"cannot read {path.name}: {str(exc).strip()}",
            hint=_RAGGED_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    except (OSError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ExcludedRunError(
            f"cannot read {path.name}: {exc}",
            hint=_UNREADABLE_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    header = index = None
    if raw.shape[1] == 1 and raw.shape[0]:
        _check_delimiter(path, sep, str(raw.iat[-1, 0]))
    if raw.shape[0]:
        raw.iat[0, 0] = _uncommented(str(raw.iat[0, 0]))
    if longer is not None and longer.ending:
        raw.iat[0, -1] = ""  # the cell the first line lacks (read as NaN)
    elif longer is not None:
        # The row names' column, unnamed: the first line's cells name the columns after it.
        raw.iloc[0] = ["", *raw.iloc[0, :-1]]
        if not _is_header(raw.iloc[0]):  # numbers: no header, a row one cell short
            raise ExcludedRunError(
                f"cannot read {path.name}: its second row has {longer.width} cells, the "
                f"first {longer.width - 1}",
                hint=_RAGGED_FIX,
                code=reason_codes.FILE_UNREADABLE,
            )
    # A delimiter ending each line (the header's too) reads as one more column, blank throughout.
    blank = raw.shape[1] > 1 and raw.iloc[:, -1].str.strip().eq("").all()
    if raw.shape[0] and _is_header(raw.iloc[0, :-1] if blank else raw.iloc[0]):
        header = [str(c).strip() for c in raw.iloc[0]]
        raw = raw.iloc[1:]
    # Unnamed by a header, it is no ROI; without one, only when the table is the expected width
    # without it: pandas writes an empty ROI of a headerless file as blanks too.
    if blank and (header is not None or raw.shape[1] == (width or len(raw)) + 1):
        raw = raw.iloc[:, :-1]
        header = header[:-1] if header is not None else None
    if header is not None and header[0] in ("Node", ""):
        index = [str(c).strip() for c in raw.iloc[:, 0]]
        header, raw = header[1:], raw.iloc[:, 1:]
    values = raw.apply(_numeric).to_numpy(np.float64)
    bad = raw.apply(_is_text).to_numpy()
    if bad.any():
        check_semicolons(path, sep)  # '0,5;1,5' read as '0', '5;1', '5'
        # Excel's '"1,234.5"' (or '1 234.5'): one cell, a number a reader takes for text.
        check_grouped_numbers(path, sep, raw.to_numpy()[bad].tolist(), header)
        i, j = np.argwhere(bad)[0]
        raise ExcludedRunError(
            f"{path.name}: cell (row {i + 1}, column {j + 1}) is not a number ({raw.iat[i, j]!r})",
            hint="Write numbers only (a missing value as 'nan' or 'n/a').",
            code=reason_codes.NON_NUMERIC_VALUES,
        )
    return header, index, values


def _check_grouped_cells(path: Path, table: pd.DataFrame) -> None:
    """Refuse a TSV whose text cells are numbers with thousands separators or decimal commas
    (:func:`~lcm.io.csv_dialect.check_grouped_numbers`): read as text, each became a
    missing value, the run refused as holding non-numeric values with no word of why."""
    texts = table.select_dtypes(include=["object", "string"])
    if texts.empty:
        return
    cells = texts.stack().astype(str)
    cells = cells[pd.to_numeric(cells.str.strip(), errors="coerce").isna()]
    if len(cells):
        check_grouped_numbers(path, "\t", cells.tolist(), [str(c) for c in table.columns])


def _check_delimiter(path: Path, sep: str, cell: str) -> None:
    """Refuse a one-column table whose cells are numbers separated by whitespace:
    numpy.savetxt's default delimiter, a space, in a file named ``.csv`` or ``.tsv``. It was
    refused as 'not a number' (quoting a whole row) or as another parcellation's, one ROI.

    Raises
    ------
    ExcludedRunError
        Naming the file, the delimiter it lacks and how to save it.
    """
    check_semicolons(path, sep)  # '0.5;1.5', one cell
    words = cell.split()
    if len(words) < 2 or not all(map(_is_number, words)):
        return
    name = {",": "commas", "\t": "tabs"}.get(sep, repr(sep))
    raise ExcludedRunError(
        f"{path.name} separates its values with spaces, not with {name} as a "
        f"{path.suffix} file does",
        hint=f"Save it with numpy.savetxt(file, values, delimiter={sep!r}) (its default is a "
        "space), or rename it to .1D (whitespace-separated columns, as AFNI writes).",
        code=reason_codes.FILE_UNREADABLE,
    )


class _LongerRows(NamedTuple):
    """Rows one cell longer than a table's first line (:func:`_longer_rows`)."""

    width: int  # the rows' cell count
    ending: bool  # a delimiter ends them (their last cell blank); else R's row names lead


def _longer_rows(path: Path, sep: str, skip: list[int]) -> _LongerRows | None:
    """Whether a table's second row has one cell more than its first: a delimiter ending each
    row but the first (a header written without it), when that cell is blank; else the row
    name R's ``write.table`` writes first, under a header naming only the columns. None when
    the two rows are as wide (or differ otherwise: pandas says so)."""
    first = second = None
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle):
                if number in skip or not line.strip():
                    continue
                cells = next(csv.reader([line.rstrip("\r\n")], delimiter=sep))
                if first is None:
                    first = cells
                else:
                    second = cells
                    break
    except (OSError, UnicodeDecodeError):
        return None  # said by pandas' read, with its fix
    if first is None or second is None or len(second) != len(first) + 1:
        return None
    return _LongerRows(len(second), not second[-1].strip())


def _numeric(cells: pd.Series) -> pd.Series:
    return pd.to_numeric(cells.str.strip().replace({"n/a": "nan"}), errors="coerce")


def _is_text(cells: pd.Series) -> pd.Series:
    """Cells that are neither a number nor a missing value (:data:`_MISSING`, any case)."""
    return _numeric(cells).isna() & ~cells.str.strip().str.lower().isin(_MISSING)


def _is_header(first: pd.Series) -> bool:
    """Whether a table's first row names its columns: a text cell (a NaN cell is a value: a
    headerless file's first row may hold one), or column numbers ``0, 1, ...`` or ``1, 2, ...``
    (pandas' header of an unnamed frame), after a blank cell when pandas wrote its index.

    No volume of a series nor row of a correlation matrix is exactly 0, 1, ..., R-1: read as
    data, that row is a spike shared by every ROI, and every correlation comes out near 1.
    """
    if _is_text(first).any():
        return True
    cells = [str(c).strip() for c in first]
    if cells[:1] == [""]:
        return len(cells) > 1 and roi_numbering(cells[1:])
    # Three columns at least: a toy table's first row may be the integers 1, 2.
    return len(cells) >= _MIN_NUMBERED and roi_numbering(cells)


def _uncommented(cell: str) -> str:
    """A first header cell less numpy.savetxt's comment mark (``# Precentral_L``)."""
    return cell[1:].strip() if cell.startswith("#") else cell


def _comment_lines(path: Path, sep: str) -> list[int]:
    """The lines (0-based) of a delimited table's leading ``#`` lines that are comments.

    All of them, except a last one with as many cells as the first row below it: the header
    numpy.savetxt writes with ``header=`` (``# Precentral_L,Precentral_R,...``).

    Raises
    ------
    ExcludedRunError
        When the file cannot be read.
    """
    marked: dict[int, str] = {}
    first = None
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle):
                text = line.strip()
                if text.startswith("#"):
                    marked[number] = text
                elif text:
                    first = text
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise ExcludedRunError(
            f"cannot read {path.name}: {exc}",
            hint=_UNREADABLE_FIX,
            code=reason_codes.FILE_UNREADABLE,
        ) from exc
    lines = list(marked)
    if lines and first is not None:
        if _widths(marked[lines[-1]], sep) & _widths(first, sep):
            return lines[:-1]
    return lines


def _widths(line: str, sep: str) -> set[int]:
    """A line's cell count, and one less when its last cell is blank: a delimiter ending it
    (or a blank last value). A savetxt header without the comma ending each row below it was
    taken for a comment, the columns then given the atlas's names in its order, not theirs."""
    cells = line.split(sep)
    return {len(cells), len(cells) - 1} if not cells[-1].strip() else {len(cells)}


def _check_series_shape(path: Path, values: np.ndarray, n_rois: int, atlas_fix: str) -> None:
    if values.ndim != 2:
        raise ExcludedRunError(
            f"{path.name}: a 2D volumes x ROIs table is expected",
            hint=_ONE_TABLE_FIX,
            code=reason_codes.NOT_2D,
        )
    n_vol, n_col = values.shape
    if n_col == n_rois:
        return
    if n_vol == n_rois:
        fix = "It looks transposed: store volumes as rows and ROIs as columns."
    else:
        fix = atlas_fix
    raise ExcludedRunError(
        f"{path.name} has {n_col} ROI columns ({n_vol} rows) but the atlas has {n_rois} ROIs; "
        "files without a header take the atlas's labels in order",
        hint=fix,
        code=reason_codes.ROI_COUNT_MISMATCH,
    )
