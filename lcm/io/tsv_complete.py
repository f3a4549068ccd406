"""Whether a TSV that LCM wrote is whole, or was cut short since: one check, one wording.

Every TSV LCM writes goes through :func:`lcm.io.atomic.write_tsv` (``DataFrame.to_csv`` or
:func:`lcm.io.tsv.frame_tsv`): every field of every row, and a final newline. A copy
interrupted or a full disk leaves a table cut mid-row, which pandas reads without a word as a
shorter table, the missing fields of its last row as empty cells: ``lcm report`` showed a
training curve cut short, or a QC table's last relmat path cut short, as if whole. The
readers of those tables (:mod:`lcm.io.qc_table`, :mod:`lcm.report.tables`) call
:func:`check_complete` after pandas has read the file.

A table cut exactly at the end of a row cannot be told from a shorter one; that is left to
the checks of its content.
"""

from __future__ import annotations

import csv
import os

from lcm.exceptions import InputDataError


def check_complete(path: str | os.PathLike[str], what: str, writer: str) -> None:
    """Refuse a TSV without a final newline, or with a row of fewer fields than its header.

    Parameters
    ----------
    path : path-like
        The table, already read by pandas (so it exists and is a TSV).
    what : str
        What the table is, named first in the error (``QC table``, ``pretraining history
        table``).
    writer : str
        What writes it again, completing ``Rerun ...`` in the hint (``lcm pretrain``).

    Raises
    ------
    InputDataError
        Naming the file, the first short line (or the missing final newline), how that
        happens, and the fix.
    """
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size:
            fh.seek(-1, os.SEEK_END)
        cut = bool(size) and fh.read(1) != b"\n"
    short = _first_short_line(path)
    if not cut and short is None:
        return
    where = f"line {short} has fewer fields than its header" if short else "no final newline"
    raise InputDataError(
        f"{what} {path} is cut short ({where}): it was truncated (a full disk or an "
        "interrupted copy).",
        hint=f"Rerun {writer}, which writes the table again; or copy it again from where it "
        "was written (a table you edited by hand: end its last row with a newline).",
    )


def _first_short_line(path: str | os.PathLike[str]) -> int | None:
    """The line where the first row shorter than the header ends, or None.

    Read as pandas reads it (the csv module's quoting: a quoted field may hold a tab or a
    newline); blank lines are skipped, as pandas skips them.
    """
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        try:
            header = next(rows, [])
            for row in rows:
                if row and len(row) < len(header):
                    return rows.line_num
        except csv.Error:
            # A field over the csv module's size limit (128 KiB), which pandas reads: the rows
            # are left to the final-newline check rather than the table refused.
            return None
    return None
