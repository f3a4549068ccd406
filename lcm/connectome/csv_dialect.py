"""Tables saved in another dialect than their name says: semicolons, decimal commas.

R's ``write.csv2`` and Excel under a European locale save a ``.csv`` separated by semicolons,
with decimal commas (``0,123;0,456``). Read with commas as separators, such a file was
refused as ragged or for a cell like ``'123;0'`` that is not a number, with the fix to "write
numbers only", which it does. :func:`check_semicolons` says what the file is and how to
re-save it.

It is refused, not read: ``.csv`` is comma-separated for pandas, numpy and nilearn alike, and
a decimal-comma sheet from Excel may hold thousands separators (``1.234,5``) that no reading
tells from decimals (``1.234``); one re-save makes the file what its name says.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from lcm import reason_codes
from lcm.exceptions import ExcludedRunError

# Lines looked at: enough to see the shape, never the whole of a long series.
_SAMPLE_LINES = 50
# Cells that are a missing value, as write.csv2 (NA) and others write it.
_MISSING = {"", "na", "nan", "n/a"}


def _number(cell: str) -> bool:
    """Whether ``cell`` is a number with a decimal point or comma, or a missing value."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return True
    try:
        float(text.replace(",", ".", 1))
    except ValueError:
        return False
    return True


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
    decimal_commas = any("," in cell for row in body for cell in row)
    kind = "semicolon-separated" + (" with decimal commas" if decimal_commas else "")
    name = {",": "commas", "\t": "tabs"}.get(sep, repr(sep))
    reread = "sep=';', decimal=','" if decimal_commas else "sep=';'"
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
    raise ExcludedRunError(
        f"{path.name} is {kind}, not separated by {name} as a {path.suffix} file is",
        hint=f"Re-save it with {name} and '.' decimals: in R {r_call};{excel} in pandas "
        f"pd.read_csv(file, {reread}).to_csv(file, {out}, index=False).",
        code=reason_codes.FILE_UNREADABLE,
    )
