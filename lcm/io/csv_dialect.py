"""Tables saved in another dialect than their name says: semicolons, decimal commas,
thousands separators: of ROI tables (:mod:`lcm.connectome.roi_formats`) and atlas labels
tables (:mod:`lcm.atlas.files`) alike.

R's ``write.csv2`` and Excel under a European locale save a ``.csv`` separated by semicolons,
with decimal commas (``0,123;0,456``). Read with commas as separators, such a file was
refused as ragged or for a cell like ``'123;0'`` that is not a number, with the fix to "write
numbers only", which it does. :func:`check_semicolons` says what the file is and how to
re-save it.

It is refused, not read: ``.csv`` is comma-separated for pandas, numpy and nilearn alike, and
a decimal-comma sheet from Excel may hold thousands separators (``1.234,5``) that no reading
tells from decimals (``1.234``); one re-save makes the file what its name says.
:func:`check_grouped_numbers` says so of a table in the right dialect whose numbers carry
thousands separators (Excel's "Use 1000 Separator": ``"1,234.5"`` quoted in a ``.csv``,
``1 234,5``) or decimal commas: read as text, each was refused as "not a number" with the fix
to write numbers only, which the file seems to do.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable
from pathlib import Path

from lcm import reason_codes
from lcm.exceptions import ExcludedRunError

# Lines looked at: enough to see the shape, never the whole of a long series.
_SAMPLE_LINES = 50
# Cells that are a missing value, as write.csv2 (NA) and others write it.
_MISSING = {"", "na", "nan", "n/a"}
# A number in groups of three digits (Excel's thousands separators: its locale's comma, point,
# space or no-break spaces), with an optional decimal part after the other mark.
_GROUPED = re.compile(
    r"[+-]?\d{1,3}(?P<group>[.,\u0020\u00a0\u202f])\d{3}(?:(?P=group)\d{3})*"
    r"(?:(?!(?P=group))(?P<decimal>[.,])\d*)?"
)
# A comma between digits: a decimal comma, or (one to three digits, a comma, three) either.
_COMMA_DECIMAL = re.compile(r"[+-]?\d*,\d+")
_EITHER = re.compile(r"[+-]?[1-9]\d{0,2},\d{3}")


def _number(cell: str) -> bool:
    """Whether ``cell`` is a number with a decimal point or comma, or a missing value."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return True
    try:
        float(text.replace(",", ".", 1))
    except ValueError:
        return _GROUPED.fullmatch(text) is not None
    return True


def _plain_number(cell: str) -> bool:
    """Whether ``cell`` reads as a number (or a missing value) as it is written."""
    text = cell.strip()
    try:
        float(text)
    except ValueError:
        return text.lower() in _MISSING
    return True


def _grouping(cell: str, integers: bool = False) -> str | None:
    """The thousands separator of a number that surely has one (``1,234.5``, ``1.234.567``,
    ``1 234``), else None: ``1,234`` and ``1.234`` may be decimals, unless the column holds
    ``integers`` (an atlas's label values), which a decimal would not be."""
    found = _GROUPED.fullmatch(cell.strip())
    if found is None:
        return None
    group = found["group"]
    if integers or found["decimal"] or group not in ".," or cell.count(group) > 1:
        return group
    return None


def check_semicolons(path: Path, sep: str) -> None:
    """Refuse a table meant to be ``sep``-separated whose cells are separated by semicolons.

    The table's first lines (less ``#`` comments) split on ``;`` into rows of one width (a
    header, or R's row names, may lead with one cell less or more), every cell of the rows
    below the first a number (``0,5`` or ``0.5``) or missing, the first a header or numbers.
    Anything else is left to the caller's own reason.

    Parameters
    ----------
    path : Path
        The table.
    sep : str
        The separator its name implies (``,`` for ``.csv``, a tab for ``.tsv``).

    Raises
    ------
    ExcludedRunError
        Naming the file, its dialect (decimal commas when it has them) and how to re-save it.
    """
    if sep == ";":
        return
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            lines = [
                line
                for line in itertools.islice(handle, _SAMPLE_LINES)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except (OSError, UnicodeDecodeError):
        return  # the caller says why it cannot be read
    if len(lines) < 2 or not all(";" in line for line in lines[1:]):
        return
    rows = list(csv.reader((line.rstrip("\r\n") for line in lines), delimiter=";"))
    body = rows[1:]
    width = len(body[0])
    if any(len(row) != width for row in body):
        return
    # R's write.csv2 leads each row with its quoted name ("1", "2", ...): not a value.
    start = 0 if all(_number(row[0]) for row in body) else 1
    if not all(_number(cell) for row in body for cell in row[start:]):
        return
    if abs(len(rows[0]) - width) > 1:
        return
    groups = {g for row in body for cell in row if (g := _grouping(cell)) is not None}
    decimal_commas = any("," in cell for row in body for cell in row) and "," not in groups
    kind = "semicolon-separated" + (" with decimal commas" if decimal_commas else "")
    name = {",": "commas", "\t": "tabs"}.get(sep, repr(sep))
    reread = "sep=';', decimal=','" if decimal_commas else "sep=';'"
    if groups:
        kind += " and thousands separators"
        reread += _thousands_args(groups)
    if len(rows[0]) == width > 1 and not rows[0][0].strip():  # write.csv2's row names: left out
        reread += ", index_col=0"
    if sep == ",":
        r_call, out = "write.csv(x, file, row.names = FALSE)", "sep=','"
    else:
        r_call = "write.table(x, file, sep = '\\t', row.names = FALSE, quote = FALSE)"
        out = "sep='\\t'"
    excel = " in Excel as 'CSV (Comma delimited)' with '.' as the decimal separator;" * (sep == ",")
    if decimal_commas:
        kind += " (R write.csv2 / European Excel)"
    if len(groups) > 1:
        reread += " after replacing each thousands separator by nothing"
    raise ExcludedRunError(
        f"{path.name} is {kind}, not separated by {name} as a {path.suffix} file is",
        hint=f"Re-save it with {name} and '.' decimals: in R {r_call};{excel} in pandas "
        f"pd.read_csv(file, {reread}).to_csv(file, {out}, index=False).",
        code=reason_codes.FILE_UNREADABLE,
    )


def _thousands_args(groups: set[str]) -> str:
    """pandas' arguments that read one thousands separator (its C parser: one byte only)."""
    if len(groups) != 1:
        return ""
    (group,) = groups
    return f", thousands={group!r}" + (", engine='python'" if not group.isascii() else "")


def is_grouped_number(cell: str) -> bool:
    """Whether ``cell`` is a number written with thousands separators or a decimal comma
    (``1,234.5``, ``1 234``, ``0,5``), as Excel writes them: text to a reader.

    Parameters
    ----------
    cell : str
        One cell's text, as read (surrounding whitespace is ignored).

    Returns
    -------
    bool
        True for a grouped number or a decimal comma.
    """
    text = cell.strip()
    return bool(_GROUPED.fullmatch(text) or _COMMA_DECIMAL.fullmatch(text))


def check_grouped_numbers(
    path: Path, sep: str, cells: Iterable[str], header: list[str] | None
) -> None:
    """Refuse a table whose non-numeric ``cells`` are all numbers with thousands separators
    (``1,234.5``, ``1 234.5``) or decimal commas (``0,5``), as Excel writes them.

    A table with one of these and no other text reads as the numbers it shows with pandas'
    ``thousands=`` (or ``decimal=``), which the fix gives; ``1,234`` alone (a decimal comma, or a
    thousand and some) is refused without one. A cell that is no number leaves the caller's
    reason. The reason is :func:`grouped_numbers_reason`'s.

    Parameters
    ----------
    path : Path
        The table.
    sep : str
        Its separator (``,`` for ``.csv``, a tab for ``.tsv``).
    cells : iterable of str
        The cells of the table read as neither a number nor a missing value.
    header : list of str or None
        The first row, when read as a header: numbers alone there (``"1,234.5"`` is text to a
        reader) make it a row of values, its own such cells judged too.

    Raises
    ------
    ExcludedRunError
        Naming the file, a cell, and how to re-save it.
    """
    reason = grouped_numbers_reason(path, sep, cells, header)
    if reason is not None:
        raise ExcludedRunError(reason[0], hint=reason[1], code=reason_codes.FILE_UNREADABLE)


def grouped_numbers_reason(
    path: Path,
    sep: str,
    cells: Iterable[str],
    header: list[str] | None,
    name: str | None = None,
    integers: bool = False,
) -> tuple[str, str] | None:
    """The message and hint of :func:`check_grouped_numbers`, or None: for a caller whose table
    is no run (an atlas's labels table), which raises its own error with them.

    Parameters
    ----------
    path, sep, cells, header
        As :func:`check_grouped_numbers`.
    name : str, optional
        How the message names the file (default its name, ``path.name``).
    integers : bool, default False
        Whether the cells are integers (an atlas's label values): ``1,001`` and ``1.001`` are
        then a thousand and one, never decimals, and re-saved as such.

    Returns
    -------
    tuple of str or None
        (message, hint), or None when some cell is no such number (the caller's reason).
    """
    title = path.name if name is None else name
    cells = [c.strip() for c in cells]
    if header is not None and all(_number(c) or _COMMA_DECIMAL.fullmatch(c) for c in header):
        cells += [c.strip() for c in header if not _plain_number(c)]
        header = None
    grouped = [c for c in cells if _GROUPED.fullmatch(c)]
    comma = [c for c in cells if _COMMA_DECIMAL.fullmatch(c)]
    if not cells or len(set(grouped) | set(comma)) != len(set(cells)):
        return None
    groups = {g for c in cells if (g := _grouping(c, integers)) is not None}
    decimals = {c for c in comma if not _EITHER.fullmatch(c)}  # 0,5 or 1234,5: no thousands
    sep_name = {",": "commas", "\t": "tabs"}.get(sep, repr(sep))
    excel = (
        "in Excel format the cells as Number with 'Use 1000 Separator' unticked and '.' as the "
        f"decimal separator, and save as {path.suffix}"
    )
    if len(groups) == 1 and not (decimals and "," in groups):
        (group,) = groups
        example = next(c for c in cells if _grouping(c, integers) == group)
        what = f"thousands separators ({example!r})"
        decimal = "," if group != "," and any("," in c for c in cells) else "."
    elif decimals and not groups:
        example, what, decimal = min(decimals), f"decimal commas ({min(decimals)!r})", ","
    else:
        # 1,234 alone: 1.234 or 1234, which no reading tells; or separators of several kinds.
        example = (cells if groups else comma)[0]
        return (
            f"{title} writes numbers with a comma or thousands separators ({example!r}) "
            f"that no reading tells from decimals, in a table separated by {sep_name}",
            f"Re-save it with '.' decimals and no thousands separators: {excel}.",
        )
    args = "" if sep == "," else f"sep={sep!r}, "
    args += f"decimal={decimal!r}, " * (decimal == ",")
    args += _thousands_args(groups)[2:] if groups else ""
    args = args.rstrip(", ")
    read = f"pd.read_csv(file, {args}" + (")" if header is not None else ", header=None)")
    out = ("" if sep == "," else f"sep={sep!r}, ") + "index=False"
    out += "" if header is not None else ", header=False"
    return (
        f"{title} writes its numbers with {what}, read as text in a table separated by {sep_name}",
        f"Re-save it with '.' decimals and no thousands separators: {excel}; in pandas "
        f"{read}.to_csv(file, {out}).",
    )
