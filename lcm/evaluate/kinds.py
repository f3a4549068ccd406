"""A task's kind, binary or continuous: as ``lcm evaluate`` recorded it.

The report chooses AUC or Pearson r, and whether head motion alone is scored as a classifier,
by it. The record (:mod:`lcm.evaluate.record`) says; the values of ``y_true`` cannot (an
ordinal task whose test subjects score 0 or 1 looked binary), so they are read only for a
table that carries no record.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from lcm.exceptions import InputDataError

# The kinds of task lcm evaluate records (lcm.evaluate.tasks.Task.kind).
TASK_KINDS = ("binary", "continuous")


def recorded_kinds(records: Mapping[str, dict]) -> dict[str, str]:
    """Each task's kind (``binary`` or ``continuous``) as its evaluation record says.

    The one reading of it: the report's tables and checks choose AUC or Pearson r by it, not
    by the labels' values (an ordinal task whose test subjects score 0 or 1 looked binary).

    Parameters
    ----------
    records : mapping of str to dict
        ``task -> record`` (:func:`lcm.evaluate.record.read_evaluation_records`).

    Returns
    -------
    dict of str to str
        ``task -> kind``; a task whose record names no kind is left out (readers then guess).

    Raises
    ------
    InputDataError
        A record names a kind LCM does not write (an edited table).
    """
    kinds = {}
    for task, record in records.items():
        kind = record.get("kind")
        if kind is None:
            continue
        if kind not in TASK_KINDS:
            raise InputDataError(
                f"The evaluation record of task {task!r} names kind {kind!r}; "
                f"expected one of {', '.join(TASK_KINDS)}.",
                hint="Rerun lcm evaluate for this task; its tables were edited or not LCM's.",
            )
        kinds[str(task)] = str(kind)
    return kinds


def task_kind(predictions: pd.DataFrame, recorded: str | None = None) -> str:
    """The task's kind: ``recorded`` (its evaluation record's), else guessed from ``y_true``.

    The values cannot tell: a continuous (ordinal) task whose test subjects score 0 or 1 was
    read as binary, and the report showed AUCs of a regression. The guess (``binary`` when
    every ``y_true`` is 0 or 1) serves only tables that carry no record.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table of one task.
    recorded : str, optional
        The kind ``lcm evaluate`` recorded (:func:`recorded_kinds`).

    Returns
    -------
    str
        ``binary`` or ``continuous``.
    """
    if recorded is not None:
        return recorded
    return "binary" if predictions["y_true"].isin([0.0, 1.0]).all() else "continuous"
