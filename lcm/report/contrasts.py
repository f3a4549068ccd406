"""LCM against its own ablations (pretraining and pseudo-label gains, the gap over head motion):
the table as shown, the sentence naming every clear contrast, and the section.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lcm.docstrings import fill_doc
from lcm.report.boxes import box
from lcm.report.tables import metric_name, p_clause, p_text
from lcm.report.wording import P_HOLM, at_labels, gain_text


def contrast_display(
    contrasts: pd.DataFrame, task_meta: dict[str, dict[str, Any]] | None = None
) -> pd.DataFrame:
    """The ablation contrasts as shown: one row per task, label fraction and contrast.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        :func:`lcm.evaluate.compare.contrast_table`.
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate``: a pseudo-label gain where no diagnosis
        pseudo-label exists (:func:`no_diagnosis_pseudo_labels`) is named as the BEI
        pseudo-targets alone, as the statement above the table names it.

    Returns
    -------
    pandas.DataFrame
        Text cells, the task, label fraction and contrast first.
    """
    rows = []
    for r in contrasts.itertuples(index=False):
        name = str(r.contrast)
        if name == "pseudo-label gain" and no_diagnosis_pseudo_labels(
            task_meta, str(r.task), float(r.label_fraction)
        ):
            name = "BEI pseudo-target gain (no diagnosis pseudo-labels here)"
        rows.append(
            {
                "task": r.task,
                "label fraction": f"{r.label_fraction:g}",
                "contrast": f"{name} ({r.model_a} − {r.model_b})",
                "metric": metric_name(r.metric),
                "difference [95% CI]": gain_text(r),
                "p": p_text(r.p_value),
                P_HOLM: p_text(getattr(r, "p_holm", np.nan)),
                "fits": r.n,
                "verdict": r.verdict,
            }
        )
    shown = pd.DataFrame(rows)
    # One metric is named in the header; an AUC task beside a Pearson r one keeps one
    # difference column (two, each n/a on the other's rows, were read past the verdict).
    if len(shown) and shown["metric"].nunique() == 1:
        header = f"{shown['metric'].iloc[0]} difference [95% CI]"
        shown = shown.drop(columns="metric").rename(columns={"difference [95% CI]": header})
    return shown


# What each contrast measures, as the subject of "helped" or "hurt".
CONTRAST_SUBJECTS = {
    "pretraining gain": "pretraining",
    "pretraining gain without pseudo-labels": "pretraining without pseudo-labels",
    "pseudo-label gain": "pseudo-labels",
    "BEI over self-supervised pretraining": "BEI pretraining over self-supervised pretraining",
    "over head motion alone": "LCM over head motion alone",
}


def _holm_clause(p_holm: float, family: int) -> str:
    """``, Holm-adjusted over the k contrasts p = ...`` (and whether it survives), or ``""``."""
    if not np.isfinite(p_holm):
        return ""
    verdict = "" if p_holm < 0.05 else ": <b>not significant after Holm's adjustment</b>"
    return f" (Holm-adjusted over the {family} contrasts listed: {p_clause(p_holm)}{verdict})"


@fill_doc
def no_diagnosis_pseudo_labels(
    task_meta: dict[str, dict[str, Any]] | None, task: str, fraction: float
) -> bool:
    """Whether every lcm fit of ``task`` at ``fraction`` had no unlabelled training subject
    (status ``no_unlabeled``: at label fraction 1.0 every one is labelled), so that
    lcm − lcm-no-pseudo there measures the BEI pseudo-targets alone.

    Parameters
    ----------
    task_meta : dict or None
        ``task -> record`` of ``lcm evaluate`` (its ``pseudo_labels`` statuses).
    %(task)s
    fraction : float
        The label fraction.

    Returns
    -------
    bool
        False too where no lcm fit at ``fraction`` is recorded.
    """
    fits = [
        r
        for r in ((task_meta or {}).get(task) or {}).get("pseudo_labels") or []
        if r.get("model") == "lcm" and np.isclose(float(r.get("label_fraction", -1)), fraction)
    ]
    statuses = {str((r.get("diagnosis") or {}).get("status")) for r in fits}
    return bool(fits) and statuses == {"no_unlabeled"}


# The pseudo-label contrast's subject where no diagnosis pseudo-label exists.
BEI_ONLY = (
    "BEI pseudo-targets alone (no diagnosis pseudo-labels exist here: every training subject "
    "is labelled)"
)


def contrast_statement(
    contrasts: pd.DataFrame, task_meta: dict[str, dict[str, Any]] | None = None
) -> str:
    """Every clear ``loss`` and ``gain`` of every contrast, in words, losses first.

    The first sentence reads the pretraining gain at few labels only; a pseudo-label loss at
    1.0, say, would otherwise be a table cell alone. A loss makes the paragraph a warning.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        :func:`lcm.evaluate.compare.contrast_table`.
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate`` (its ``pseudo_labels`` statuses).

    Returns
    -------
    str
        An HTML paragraph (a warning when a contrast lost); one saying that every interval
        crosses 0 when none excludes it.
    """
    clear = contrasts[contrasts["verdict"].isin(["loss", "gain"])]
    if clear.empty:
        return (
            "<p>No contrast shows a clear gain or loss: every interval crosses 0 (or none "
            "could be computed).</p>"
        )
    said = []
    for verdict, verb in (("loss", "hurt"), ("gain", "helped")):
        at = clear[clear["verdict"] == verdict].sort_values(["contrast", "task", "label_fraction"])
        for r in at.itertuples(index=False):
            subject = html.escape(CONTRAST_SUBJECTS.get(str(r.contrast), str(r.contrast)))
            if r.contrast == "pseudo-label gain" and no_diagnosis_pseudo_labels(
                task_meta, str(r.task), float(r.label_fraction)
            ):
                subject = BEI_ONLY
            said.append(
                f"{subject} ({html.escape(f'{r.model_a} − {r.model_b}')}) "
                f"<b>{verb}</b> {html.escape(str(r.task))} {at_labels(r.label_fraction)} "
                f"({verdict}): {metric_name(r.metric)} {gain_text(r)}, {p_clause(r.p_value)}"
                + _holm_clause(getattr(r, "p_holm", np.nan), len(contrasts))
            )
    cls = "warn" if (clear["verdict"] == "loss").any() else "note"
    return box("Every contrast whose interval excludes 0:", said, cls=cls)


def contrast_section(
    contrasts: pd.DataFrame | None,
    table_html: Callable[..., str],
    task_meta: dict[str, dict[str, Any]] | None = None,
    summary: pd.DataFrame | None = None,
) -> str:
    """LCM against its own ablations: what pretraining and pseudo-labels buy.

    Parameters
    ----------
    contrasts : pandas.DataFrame or None
        :func:`lcm.evaluate.compare.contrast_table`; None or empty: a warning that the
        ablations were not evaluated.
    table_html : callable
        Renders ``(frame, caption, row_headers=...)`` as an HTML table
        (:func:`lcm.report.html.table_html`).
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate`` (its ``pseudo_labels`` statuses).
    summary : pandas.DataFrame, optional
        :func:`lcm.evaluate.metrics.summarise`: the models each task evaluated, to name the
        tasks without a contrast and what they lack (lcm itself, or its ablations).

    Returns
    -------
    str
        An HTML fragment: the statement, how to read it, the table.
    """
    missing = _unablated(contrasts, summary)
    if contrasts is None or contrasts.empty:
        return missing or (
            '<p class="warn">LCM was not evaluated beside its ablations (lcm-scratch, '
            "lcm-no-pseudo): the report cannot say what pretraining or pseudo-labels buy.</p>"
        )
    return "\n".join(
        [
            "<h3>What pretraining and pseudo-labels buy (LCM against its ablations)</h3>",
            *([missing] if missing else []),
            contrast_statement(contrasts, task_meta),
            '<p class="note">Paired differences on the same test subjects, one per seed &times; '
            "fold fit; the interval is the corrected resampled t of Nadeau &amp; Bengio (2003), "
            "which includes training variance (different training folds, label subsets and "
            "initialisations) and the overlap of training sets between folds. <i>gain</i>: "
            "interval above 0; <i>loss</i>: below 0 (each interval at 95 %, unadjusted; the "
            "table's p is given as is and Holm-adjusted over all its rows, the family of "
            "contrasts the report lists). The pretraining gain compares LCM with "
            "lcm-scratch, which trains on no pseudo-labels: it holds what self-training adds "
            "too; lcm-no-pseudo against lcm-scratch is pretraining alone.</p>",
            table_html(
                contrast_display(contrasts, task_meta),
                "LCM against its ablations, per task, label fraction and contrast",
                row_headers=3,
            ),
        ]
    )


def _unablated(contrasts: pd.DataFrame | None, summary: pd.DataFrame | None) -> str:
    """A warning naming the tasks of ``summary`` without a contrast row and what each lacks
    (lcm was not evaluated at all, or its ablations were not), or ``""``."""
    if summary is None or summary.empty:
        return ""
    measured = set(contrasts["task"]) if contrasts is not None and len(contrasts) else set()
    said: dict[str, list[str]] = {}
    for task, at in summary.groupby("task", sort=True):
        if task in measured:
            continue
        models = set(at["model"].astype(str)) - {""}
        if "lcm" not in models:
            ran = ", ".join(sorted(models))
            what = f"LCM was not evaluated on {{}} (its models: {html.escape(ran)})"
        else:
            lacking = [m for m in ("lcm-scratch", "lcm-no-pseudo") if m not in models]
            if not lacking:
                continue
            verb = "was" if len(lacking) == 1 else "were"
            what = (
                "LCM was not evaluated beside its ablations on {} "
                f"({' and '.join(lacking)} {verb} not evaluated)"
            )
        said.setdefault(what, []).append(html.escape(str(task)))
    if not said:
        return ""
    parts = [what.format(", ".join(tasks)) for what, tasks in said.items()]
    return box("The report cannot say what pretraining or pseudo-labels buy where", parts)
