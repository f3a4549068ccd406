"""The runs each task left out before evaluation, with the reason, counts and IDs.

``lcm evaluate`` records them in the metrics' metadata (``runs_dropped``: a run without a value
of the task's label never enters a fold); metrics written before the IDs were recorded give
only ``n_runs_dropped_no_label``, shown as a count.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pandas as pd

# IDs shown per task and reason; the rest are counted ("and N more").
MAX_LISTED_IDS = 20
# The section's heading, which the protocol table's "not scored" cell points to.
DROPPED_TITLE = "Runs dropped before evaluation"
_NOT_RECORDED = "not recorded (metrics of an older LCM: rerun lcm evaluate to name them)"


def _ids(ids: list[str], total: int) -> str:
    """The first :data:`MAX_LISTED_IDS` of ``ids``, then how many more there are of ``total``."""
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    more = total - min(len(ids), MAX_LISTED_IDS)
    return shown + (f" and {more} more" if more > 0 else "") if shown else _NOT_RECORDED


def dropped_rows(task_meta: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per task and reason: ``task, reason, runs, subjects, subject IDs, run IDs``.

    Parameters
    ----------
    task_meta : dict of str to dict
        Each task's metrics metadata (``runs_dropped``, or an older LCM's
        ``n_runs_dropped_no_label``), by task name.

    Returns
    -------
    pandas.DataFrame
        Tasks in name order; ``n/a`` where a count was not recorded, and at most
        :data:`MAX_LISTED_IDS` IDs listed per cell, then ``and N more``.
    """
    rows = []
    for task, meta in sorted(task_meta.items()):
        entries = meta.get("runs_dropped")
        if entries is None and meta.get("n_runs_dropped_no_label"):
            # Metrics of an older LCM: the count alone.
            entries = [
                {
                    "reason": f"no {meta.get('label', 'label')!r} value",
                    "n_runs": meta["n_runs_dropped_no_label"],
                }
            ]
        for entry in entries or []:
            n_subjects = entry.get("n_subjects")
            rows.append(
                {
                    "task": task,
                    "reason": entry.get("reason") or entry.get("reason_code") or "n/a",
                    "runs": entry.get("n_runs", "n/a"),
                    "subjects": n_subjects if n_subjects is not None else "n/a",
                    "subject IDs": _ids(list(entry.get("subjects") or []), n_subjects or 0),
                    "run IDs": "one run per subject"
                    if entry.get("runs") and entry.get("n_runs") == n_subjects
                    else _ids(list(entry.get("runs") or []), entry.get("n_runs") or 0),
                }
            )
    return pd.DataFrame(
        rows, columns=["task", "reason", "runs", "subjects", "subject IDs", "run IDs"]
    )


def dropped_note(meta: dict[str, Any]) -> str:
    """What one task dropped before evaluation, in a few words for the protocol table.

    Parameters
    ----------
    meta : dict
        The task's metrics metadata (``runs_dropped``, or an older LCM's
        ``n_runs_dropped_no_label``).

    Returns
    -------
    str
        ``""`` when no run was dropped, else the runs (and subjects, where recorded) per
        reason, pointing to the section that names them, e.g. ``4 runs of 3 subjects (no 'age'
        value) dropped before evaluation (see Runs dropped before evaluation)``.
    """
    rows = dropped_rows({"": meta})
    if rows.empty:
        return ""
    counts = []
    for row in rows.itertuples(index=False):
        runs = f"{row.runs} run{'' if row.runs == 1 else 's'}"
        if row.subjects != "n/a":
            runs += f" of {row.subjects} subject{'' if row.subjects == 1 else 's'}"
        counts.append(f"{runs} ({row.reason})")
    return f"{', '.join(counts)} dropped before evaluation (see {DROPPED_TITLE})"


def dropped_section(task_meta: dict[str, dict[str, Any]], table_html: Callable[..., str]) -> str:
    """The runs and subjects each task dropped before its splits, and why.

    Parameters
    ----------
    task_meta : dict of str to dict
        Each task's metrics metadata, by task name.
    table_html : callable
        Renders ``(frame, caption)`` as an HTML table (:func:`lcm.report.html.table_html`).

    Returns
    -------
    str
        An HTML fragment: a heading, then the table and the tasks that dropped nothing; ``""``
        when there is no task.
    """
    if not task_meta:
        return ""
    parts = [f'<h3 id="dropped">{DROPPED_TITLE}</h3>']
    rows = dropped_rows(task_meta)
    clean = sorted(set(task_meta) - set(rows["task"]))
    if len(rows):
        parts.append(
            '<p class="note">Runs of the task\'s dataset that passed QC but entered no fold: '
            "they count in no metric. (Runs excluded by ingestion or QC are listed under "
            "Quality control.)</p>"
        )
        parts.append(table_html(rows, "Runs dropped before evaluation, per task and reason"))
    if clean:
        parts.append(
            f"<p>No run was dropped before evaluation in {html.escape(', '.join(clean))}.</p>"
        )
    return "\n".join(parts)
