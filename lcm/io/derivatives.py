"""Derivative tables shared by several stages: what "included" means, the file lists in a QC
table's cells and why runs were left out.

The connectome stage writes a QC table per dataset (and ingest a manifest), the store reads it
to pick the runs it keeps, and the report and error messages summarise the runs left out. They
parse the ``included`` column and the comma-separated cells and phrase the exclusion reasons
here, once, so that a run the report calls included is a run the store keeps. The QC table's
columns and its reader are :mod:`lcm.io.qc_table`'s.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from lcm.exceptions import InputDataError

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def included_mask(values: pd.Series, source: str) -> pd.Series:
    """The ``included`` column of a manifest or QC table as booleans.

    Parameters
    ----------
    values : pandas.Series
        The column as read (booleans, or the strings ``true``/``false``, ``1``/``0``).
    source : str
        The table's path, named in the error.

    Raises
    ------
    InputDataError
        A value other than true/false (a hand-edited ``yes`` is refused, not guessed).
    """
    text = values.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - _TRUE - _FALSE)
    if bad:
        raise InputDataError(
            f"{source}: column 'included' must be true or false, got {bad[:3]}.",
            hint="Rewrite the table with LCM (rerun the stage that wrote it).",
        )
    return text.isin(_TRUE)


def exclusion_reasons(table: pd.DataFrame, limit: int = 3, named: int = 3) -> str:
    """Why the runs of ``table`` were excluded, in one line: runs counted per reason.

    ``table`` is a manifest or a QC table (``included``, ``reason``; optional ``reason_code``,
    ``run_key``, ``subject``). Runs are counted per code where there is one, else per reason
    text; each reason names its first runs and gives an example message (absolute paths
    shortened to file names when it is long), e.g. ``confounds_missing_columns: 3 runs
    (sub-01_task-rest_run-1, sub-02_task-rest_run-1, +1 more), e.g. "confounds lack ..."``.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per run.
    limit : int
        Reasons detailed; the others are counted.
    named : int
        Runs named per reason; the others are counted.
    """
    left_out = ~included_mask(table["included"], "table")
    excluded = table[left_out]
    if excluded.empty:
        return "no run listed"
    reasons = excluded["reason"].fillna("").astype(str).str.replace("\n", " ")
    codes = excluded["reason_code"].fillna("").astype(str) if "reason_code" in excluded else None
    keys = codes.where(codes != "", reasons) if codes is not None else reasons
    keys = keys.where(keys != "", "no reason recorded")
    labels = _run_labels(table)[left_out]
    counts = keys.value_counts()
    parts = []
    for key, count in counts.head(limit).items():
        hit = keys == key
        runs = labels[hit].tolist()
        more = f", +{len(runs) - named} more" if len(runs) > named else ""
        listed = ", ".join(runs[:named]) + more
        part = f"{_short(key)}: {count} run{'' if count == 1 else 's'} ({listed})"
        example = reasons[hit].iloc[0]
        if example not in ("", key):
            part += f', e.g. "{_short(example)}"'
        parts.append(part)
    rest = counts.iloc[limit:]
    if len(rest):
        parts.append(f"and {len(rest)} other reason(s) for {int(rest.sum())} run(s)")
    return "; ".join(parts)


# A reason longer than this is shortened in one-line summaries (the table keeps it whole).
_SHORT_REASON = 160
# A cut is moved past the last file name that ends before this: the names of a run's missing
# files are the useful part of a long reason.
_LONGEST_REASON = 360
# A shortened reason keeps its last clauses up to this long: the fix ("convert them with
# numpy.tanh, then ..."), which a cut at the end lost.
_FIX_REASON = 220
# The end kept of a reason whose last clause is longer than that.
_END_REASON = 80
# Where a clause starts: after ". ", "; " or ": ".
_CLAUSE = re.compile(r"(?<=[.;:])\s+(?=\S)")
# One character of a file or folder name in free text: a separator (";", ":", ",") only when
# it does not end a clause, and no bracket or double quote (a quote as in "study's" is one).
_NAME_CHAR = r"""(?:[^\s/;:,"()\[\]<>|]|[;:,](?=[^\s/]))"""
# A name: words, a space between two when the next one reaches a "/" ("raw study's/"), so that
# a folder with a space stays one name while a sentence after a path does not join it.
_NAME = rf"{_NAME_CHAR}+(?:\s(?={_NAME_CHAR}+/){_NAME_CHAR}+)*"
# An absolute path in free text, whole: "/" after no word character, names joined by "/".
ABSOLUTE_PATH = re.compile(rf"(?<![\w.~/])/(?:{_NAME}/)*{_NAME}")


def path_name(path: str) -> str:
    """The last name of an absolute path found in text (``/a/b c/x.tsv`` -> ``x.tsv``); a path
    of one name (``/tmp``) is kept whole.

    Parameters
    ----------
    path : str
        An absolute path as :data:`ABSOLUTE_PATH` finds it in a message.

    Returns
    -------
    str
        Its last name, or ``path`` itself when it has no folder above ``/``.
    """
    head, _, name = path.rpartition("/")
    return name if head else path


def _short(text: str) -> str:
    """``text``, or, when longer than :data:`_SHORT_REASON`, with its absolute paths by their
    file names (folders with spaces and quotes included) and, still too long, cut in the
    middle: its start up to :data:`_SHORT_REASON` (or past its last file name, when that ends
    later, before :data:`_LONGEST_REASON`), ``...``, then its last clauses (what to do),
    :data:`_FIX_REASON` characters at most, or the last :data:`_END_REASON` of one longer."""
    if len(text) <= _SHORT_REASON:
        return text
    short, names_end, start = "", 0, 0
    for match in ABSOLUTE_PATH.finditer(text):
        short += text[start : match.start()] + path_name(match.group())
        start = match.end()
        if len(short) <= _LONGEST_REASON:
            names_end = len(short)
    short += text[start:]
    if len(short) <= _SHORT_REASON:
        return short
    # The fix: the last clauses that fit, else the end of the last one from a word (what a
    # list of columns was "needed by").
    fits = [m.end() for m in _CLAUSE.finditer(short) if len(short) - m.end() <= _FIX_REASON]
    tail = fits[0] if fits else len(short) - len(short[-_END_REASON:].split(" ", 1)[-1])
    head = max(names_end, _SHORT_REASON)
    if tail <= head:
        return short  # the start and the fix meet: nothing to cut between them
    start = short[:names_end] if names_end > _SHORT_REASON else _cut_at_word(short)
    return f"{start.rstrip()} ... {short[tail:]}"


def _cut_at_word(text: str) -> str:
    """The start of ``text`` up to :data:`_SHORT_REASON` characters, ending with a word."""
    cut = text[:_SHORT_REASON]
    return cut.rsplit(" ", 1)[0] if " " in cut[_SHORT_REASON // 2 :] else cut


def _run_labels(table: pd.DataFrame) -> pd.Series:
    """A name per run: its ``run_key``, else ``sub-<subject>``, else its row number (from 1)."""
    empty = pd.Series("", index=table.index)
    keys = table["run_key"].fillna("").astype(str) if "run_key" in table else empty
    subjects = table["subject"].fillna("").astype(str) if "subject" in table else empty
    rows = pd.Series([f"row {i + 1}" for i in range(len(table))], index=table.index)
    return keys.where(keys != "", ("sub-" + subjects).where(subjects != "", rows))


def list_cell(value: object) -> list[str]:
    """The items of a list cell: a list (QC JSON) or comma-separated text (QC TSV).

    Empty, missing (None, NaN) and ``n/a`` cells give ``[]``.

    Parameters
    ----------
    value : object
        A cell of a QC table's list column (``reasons``, ``empty_rois``).

    Returns
    -------
    list of str
        The items, empty ones dropped.
    """
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v)]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    text = str(value).strip()
    if text in ("", "n/a"):
        return []
    return [item for item in text.split(",") if item]
