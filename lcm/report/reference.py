"""A task's published reference range beside its results (``tasks.<name>.reference``).

On real data a result above what published studies of the task reach usually means leakage,
not a better model: site or scanner effects with classes unbalanced across sites, the same
subject in training and test, head motion. The report compares every model's mean of the
range's metric (``summary.tsv``'s, the numbers the tables show) with the range: one neutral
sentence above the task's table, a warning in the task's section for each mean above it, and
a line at the top of the page for an LCM model or the best baseline above it. The mean alone
is compared; whether its interval overlaps the range is said, nothing is claimed significant.

Each builder is a pure function of data frames returning an HTML fragment (``""`` when the
task has no range), every text from the config escaped.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from lcm.evaluate.motion import MOTION_MODEL
from lcm.report.boxes import box
from lcm.report.tables import metric_name, model_kind, summary_ci

# What to check when a mean is above the range: the checks the report already has.
LEAKAGE_CHECKS = (
    "On real data a result above the published range usually means leakage, not a better "
    "model: site or scanner effects with classes unbalanced across sites, the same subject "
    "twice (once in training, once in test), or head motion. Check the shuffled-label "
    f"control (it must sit at chance), <code>{MOTION_MODEL}</code> (head motion alone) and the "
    "per-site table, and rerun with leave-site-out splits (<code>evaluate.split: site</code>)."
)


def reference_rows(summary: pd.DataFrame, task: str, reference: dict[str, Any]) -> pd.DataFrame:
    """Every model's mean of the range's metric on ``task``, placed against the range.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean,
        ci_low, ci_high, n``).
    task : str
        The task's name.
    reference : dict
        ``{"metric", "range": [low, high], "source"}`` (``tasks.<task>.reference``).

    Returns
    -------
    pandas.DataFrame
        The summary's rows of the task and metric with ``position`` (``above``, ``within``,
        ``below``, or ``n/a`` for a mean that is not finite) and ``overlaps`` (the interval
        reaches into the range), ordered by label fraction and model.
    """
    low, high = (float(v) for v in reference["range"])
    at = summary[(summary["task"] == task) & (summary["metric"] == reference["metric"])]
    rows = at.sort_values(["label_fraction", "model"]).reset_index(drop=True)
    mean = rows["mean"].to_numpy(dtype=float)
    position = np.select(
        [~np.isfinite(mean), mean > high, mean < low], ["n/a", "above", "below"], "within"
    )
    ci_low = rows["ci_low"].to_numpy(dtype=float)
    ci_high = rows["ci_high"].to_numpy(dtype=float)
    # A missing interval (NaN bounds) overlaps nothing: only the mean is placed then.
    overlaps = (ci_low <= high) & (ci_high >= low)
    return rows.assign(position=position, overlaps=overlaps)


def _range_text(reference: dict[str, Any]) -> str:
    """``[0.650, 0.720] (source)``, the source escaped."""
    low, high = (float(v) for v in reference["range"])
    return f"[{low:.3f}, {high:.3f}] ({html.escape(str(reference['source']))})"


def _interval_clause(row: pd.Series) -> str:
    """Whether a mean outside the range has an interval reaching into it (``""``: no interval,
    or a mean within it)."""
    if row["position"] not in ("above", "below") or not row["ci_low"] < row["ci_high"]:
        return ""
    return (
        " (its interval overlaps the range)"
        if row["overlaps"]
        else " (its interval does not overlap it)"
    )


def _placed(row: pd.Series) -> str:
    """``lcm 0.610 [0.550, 0.670], below it (its interval overlaps the range)``."""
    text = f"{html.escape(str(row['model']))} {summary_ci(row)}"
    if row["position"] == "n/a":
        return f"{text}, not compared"
    return f"{text}, {row['position']} it{_interval_clause(row)}"


def reference_fragment(summary: pd.DataFrame, task: str, reference: dict[str, Any] | None) -> str:
    """The task's range and where each model's mean sits, and a warning for a mean above it.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise`.
    task : str
        The task's name.
    reference : dict or None
        ``tasks.<task>.reference``; None: no range, nothing said.

    Returns
    -------
    str
        A note naming the range and placing every model at the largest label fraction (the
        setting a published result is closest to), then, where any mean at any label fraction
        is above the range, a warning listing those and what usually causes them; ``""``
        without a range.
    """
    if not reference:
        return ""
    rows = reference_rows(summary, task, reference)
    name = html.escape(metric_name(reference["metric"]))
    if rows.empty:
        return (
            f'<p class="note">Published range for {name}: {_range_text(reference)}; this task '
            f"has no {name} to compare with it.</p>"
        )
    largest = rows["label_fraction"].max()
    placed = "; ".join(_placed(r) for _, r in rows[rows["label_fraction"] == largest].iterrows())
    parts = [
        f'<p class="note">Published range for {name}: {_range_text(reference)}; mean at label '
        f"fraction {largest:g}: {placed}. The means are compared with it, not tested against "
        "it.</p>"
    ]
    above = rows[rows["position"] == "above"]
    if len(above):
        items = [
            f"{html.escape(str(r['model']))} at label fraction {r['label_fraction']:g}: "
            f"{summary_ci(r)}{_interval_clause(r)}"
            for _, r in above.iterrows()
        ]
        lead = (
            f"<b>Above the published range</b> of {name} for this task, {_range_text(reference)}:"
        )
        parts.append(box(lead, items, LEAKAGE_CHECKS))
    return "\n".join(parts)


def reference_verdict(
    summary: pd.DataFrame,
    references: dict[str, dict[str, Any]],
    headline: pd.DataFrame | None = None,
) -> str:
    """The page's opening warning: an LCM model or the best baseline above a task's range.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise`.
    references : dict
        ``task -> tasks.<task>.reference`` of the tasks that set one.
    headline : pandas.DataFrame, optional
        :func:`lcm.evaluate.compare.headline_table`: its ``best_baseline`` per task and label
        fraction is the best baseline (without it, LCM models alone are looked at).

    Returns
    -------
    str
        A warning listing each such mean (task, model, label fraction, range and source), or
        ``""`` when none is above its range.
    """
    best: set[tuple[str, float, str]] = set()
    if headline is not None and len(headline):
        best = {
            (str(t), float(f), str(b))
            for t, f, b in zip(
                headline["task"], headline["label_fraction"], headline["best_baseline"], strict=True
            )
        }
    items = []
    for task, reference in sorted(references.items()):
        rows = reference_rows(summary, task, reference)
        for _, r in rows[rows["position"] == "above"].iterrows():
            key = (task, float(r["label_fraction"]), str(r["model"]))
            if model_kind(str(r["model"])) != "LCM" and key not in best:
                continue
            who = "the best baseline" if key in best else "an LCM model"
            items.append(
                f"{html.escape(task)}: "
                f"{html.escape(str(r['model']))} ({who}) at label fraction "
                f"{r['label_fraction']:g}, {summary_ci(r)}, "
                f"above the published {html.escape(metric_name(reference['metric']))} range "
                f"{_range_text(reference)}"
            )
    if not items:
        return ""
    lead = (
        "<b>Above a published range</b>: results on real data this high usually mean leakage "
        "(site or scanner effects, the same subject twice, head motion); each task's section "
        "names the checks to run."
    )
    return box(lead, items, box_id="reference-range")
