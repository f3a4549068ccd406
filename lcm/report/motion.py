"""Head motion alone against the models (motion-fd): the rows where it matches or beats them,
the verdict above the headline, and each task's fragment.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from lcm.evaluate.compare import HEADLINE_METRIC
from lcm.evaluate.motion import MOTION_MODEL
from lcm.evaluate.registry import CONTROL_MODELS
from lcm.report.boxes import box
from lcm.report.tables import metric_name, summary_ci
from lcm.report.wording import at_labels


def motion_rows(summary: pd.DataFrame | None, task: str | None = None) -> list[dict[str, Any]]:
    """Where head motion alone (``motion-fd``) matches or beats LCM or every model.

    Per task and label fraction with a ``motion-fd`` headline metric (a binary task's AUC, a
    continuous task's Pearson r): its mean and interval, lcm's
    and the best other model's (controls left out), and whether motion alone reaches the
    best model's mean (``beats_all``) or lcm's (``beats_lcm``). Only rows where one of them
    holds are returned.

    Parameters
    ----------
    summary : pandas.DataFrame or None
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean,
        ci_low, ci_high, n``); None or empty finds nothing.
    task : str, optional
        Only this task; None for every task.

    Returns
    -------
    list of dict
        ``task, label_fraction, motion, best, lcm`` (summary rows; ``lcm`` None where lcm
        was not run), ``beats_all``, ``beats_lcm``; tasks and fractions in order.
    """
    if summary is None or summary.empty:
        return []
    # Each task has one headline metric: AUC (binary) or Pearson r (continuous).
    headline = summary["metric"].isin(tuple(HEADLINE_METRIC.values()))
    auc = summary[headline & (summary["model"].astype(str) != "")]
    if task is not None:
        auc = auc[auc["task"] == task]
    out = []
    for (name, fraction, _), at in auc.groupby(["task", "label_fraction", "metric"], sort=True):
        motion = at[at["model"] == MOTION_MODEL]
        others = at[(at["model"] != MOTION_MODEL) & ~at["model"].isin(CONTROL_MODELS)]
        others = others[np.isfinite(others["mean"])]
        if motion.empty or others.empty or not np.isfinite(motion["mean"].iloc[0]):
            continue
        m = motion.iloc[0]
        best = others.loc[others["mean"].idxmax()]
        lcm = others[others["model"] == "lcm"]
        beats_all = bool(m["mean"] >= best["mean"])
        beats_lcm = bool(len(lcm) and m["mean"] >= lcm["mean"].iloc[0])
        if beats_all or beats_lcm:
            out.append(
                {
                    "task": str(name),
                    "label_fraction": float(fraction),
                    "motion": m,
                    "best": best,
                    "lcm": lcm.iloc[0] if len(lcm) else None,
                    "beats_all": beats_all,
                    "beats_lcm": beats_lcm,
                }
            )
    return out


def motion_clause(row: dict[str, Any], with_task: bool = True) -> str:
    """One task and label fraction where motion alone matches or beats the models, in words.

    Parameters
    ----------
    row : dict
        One row of :func:`motion_rows`.
    with_task : bool, default True
        Whether the clause starts with the task's name.

    Returns
    -------
    str
        HTML.
    """
    who = f"{html.escape(row['task'])} {at_labels(row['label_fraction'])}"
    head = f"{who}: " if with_task else f"{at_labels(row['label_fraction'])}: "
    motion = f"motion-fd {metric_name(row['motion']['metric'])} {summary_ci(row['motion'])}"
    if row["beats_all"]:
        best = row["best"]
        return (
            f"{head}{motion} &ge; every model's, the best being "
            f"{html.escape(str(best['model']))} {summary_ci(best)}"
        )
    lcm = row["lcm"]
    return f"{head}{motion} &ge; lcm's {summary_ci(lcm)}"


MOTION_WHAT = (
    "head motion alone (motion-fd: logistic regression on each subject's mean framewise "
    "displacement, linear for a continuous target, fitted on the same training folds and "
    "scored on the same test subjects as the models)"
)


def motion_verdict(summary: pd.DataFrame | None, not_scored: dict[str, str] | None = None) -> str:
    """The page's first warning when head motion alone matches or beats LCM (or every model)
    on some task and label fraction; a note naming the binary tasks motion could not be scored
    on (no mean FD), so its absence is said; ``""`` otherwise.

    Parameters
    ----------
    summary : pandas.DataFrame or None
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean,
        ci_low, ci_high, n``); None or empty finds nothing.
    not_scored : dict, optional
        ``task -> why`` head motion alone could not be scored
        (:func:`lcm.evaluate.motion.motion_scores`).

    Returns
    -------
    str
        Zero, one or two HTML paragraphs, joined by newlines.
    """
    rows = motion_rows(summary)
    parts = []
    if rows:
        reach = (
            "every model's mean"
            if all(r["beats_all"] for r in rows)
            else "lcm's mean (every model's, where said)"
        )
        parts.append(
            box(
                f"<b>Head motion alone matches or beats the models</b>: {MOTION_WHAT} reaches "
                f"at least {reach} on",
                [motion_clause(r) for r in rows],
                "Where motion alone does as well, a model may be reading motion rather than "
                "connectivity: read its AUC or Pearson r, and any gain, against motion-fd first "
                "(the "
                "'over head motion alone' contrast).",
                box_id="motion-verdict",
            )
        )
    if not_scored:
        parts.append(
            box(
                "<b>Head motion alone was not scored</b> on",
                [
                    f"{html.escape(str(t))} ({html.escape(str(why))})"
                    for t, why in sorted(not_scored.items())
                ],
                "Whether mean FD alone separates the classes (predicts the target) as well as "
                "the models is unknown there.",
            )
        )
    return "\n".join(parts)


def motion_fragment(
    fd_auc: float | None,
    summary: pd.DataFrame | None = None,
    task: str | None = None,
    fd_r: float | None = None,
) -> str:
    """Head motion alone on one task: the out-of-sample ``motion-fd`` model beside the others
    (a warning where it matches or beats lcm or every model; a note naming the models it matches
    or beats otherwise), and which class (or end of a continuous target) moves more.

    ``fd_auc`` is :func:`lcm.evaluate.compare.motion_confound`'s in-sample AUC of higher FD for
    label 1, used here only to say which class moves more (descriptive: its direction is read
    on every subject); a continuous task's ``fd_r``
    (:func:`lcm.evaluate.compare.motion_correlation`) says whether higher targets move more.
    The comparison with the models is the ``motion-fd`` rows of ``summary``: fold-mean AUCs
    (Pearson r) on the same folds and test subjects, the direction learned on each training
    fold.

    Parameters
    ----------
    fd_auc : float or None
        The task's in-sample AUC of mean FD for label 1; None or NaN where unknown.
    summary : pandas.DataFrame, optional
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean,
        ci_low, ci_high, n``); None or empty finds nothing.
    task : str, optional
        The task's name; the ``motion-fd`` rows are read only with both it and ``summary``.
    fd_r : float, optional
        A continuous task's in-sample Pearson r of its target with mean FD (read where
        ``fd_auc`` is None or NaN); None or NaN where unknown.

    Returns
    -------
    str
        An HTML paragraph, or ``""`` when motion was neither described nor scored.
    """
    moves = _direction(fd_auc, fd_r)
    scored = (
        summary is not None
        and task is not None
        and ((summary["task"] == task) & (summary["model"] == MOTION_MODEL)).any()
    )
    if not moves and not scored:
        return ""
    rows = motion_rows(summary, task) if scored else []
    if rows:
        return box(
            f"<b>Motion confound check</b>: {MOTION_WHAT} matches or beats the models (the "
            "motion-fd rows of the table below)",
            [motion_clause(r, with_task=False) for r in rows],
            "A model at or below motion alone may be reading motion rather than connectivity."
            + moves,
        )
    if scored:
        # Below the best model and lcm is not below every model: a baseline-only task's weaker
        # baselines were said to be above motion when it beat them.
        below = _models_at_or_below(summary, task)
        if below:
            reach = (
                f"it matches or beats the mean {metric_name(_metric(summary, task))} of "
                + "; ".join(below)
                + ", though not the best model's"
                + (" nor lcm's" if _has_lcm(summary, task) else "")
            )
        else:
            reach = f"every model's mean {metric_name(_metric(summary, task))} here is above it"
        contrast = (
            ", and the 'over head motion alone' contrast says whether lcm's is clearly so"
            if _has_lcm(summary, task)
            else ""
        )
        return (
            f'<p class="note"><b>Motion confound check</b>: {MOTION_WHAT} is the motion-fd row '
            f"of the table below; {reach}{contrast}." + moves + "</p>"
        )
    return (
        f'<p class="note"><b>Motion confound check</b>: head motion alone was not scored out '
        f"of sample on this task.{moves}</p>"
    )


# Below a small effect, a direction is no finding: Cohen's small d (0.2) is an AUC of about
# 0.56, and his small correlation is r = 0.1. The demo's age task read "the subjects with higher
# targets move more" at r = 0.019.
NEGLIGIBLE_AUC = 0.06
NEGLIGIBLE_R = 0.1


def _direction(fd_auc: float | None, fd_r: float | None) -> str:
    """Which subjects move more, over all of a task's subjects, in words: by the AUC of higher
    FD for label 1 (a binary task) or else the target's Pearson r with FD (a continuous one);
    under a small effect (:data:`NEGLIGIBLE_AUC`, :data:`NEGLIGIBLE_R`) it says motion barely
    differs and which way it leans; ``""`` when neither is known."""
    where = (
        " Over all its subjects (in sample, descriptive only; each subject's mean FD "
        "averaged over its included runs) "
    )
    if fd_auc is not None and np.isfinite(fd_auc):
        if fd_auc == 0.5:
            who = "neither class moves more"
        else:
            who = (
                "the label-1 subjects (patients, for a diagnosis)"
                if fd_auc > 0.5
                else "the label-0 subjects (controls, for a diagnosis)"
            )
            who = (
                f"the classes move about alike ({who} slightly more, below a small effect)"
                if abs(fd_auc - 0.5) < NEGLIGIBLE_AUC
                else f"{who} move more"
            )
        return f"{where}{who}: the AUC of higher FD for label 1 is {fd_auc:.3f}."
    if fd_r is not None and np.isfinite(fd_r):
        if fd_r == 0:
            who = "motion does not rise or fall with the target"
        else:
            which = "higher" if fd_r > 0 else "lower"
            who = (
                f"motion barely follows the target (the subjects with {which} targets move "
                "slightly more, below a small effect)"
                if abs(fd_r) < NEGLIGIBLE_R
                else f"the subjects with {which} targets move more"
            )
        return f"{where}{who}: the Pearson r of the target with mean FD is {fd_r:.3f}."
    return ""


def _metric(summary: pd.DataFrame, task: str) -> str:
    """The headline metric ``motion-fd`` was scored by on ``task`` (AUC, or Pearson r)."""
    at = summary[(summary["task"] == task) & (summary["model"] == MOTION_MODEL)]
    scored = set(at["metric"].astype(str))
    return HEADLINE_METRIC["continuous"] if HEADLINE_METRIC["continuous"] in scored else "auc"


def _task_auc(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """The task's headline-metric rows of ``summary`` (AUC; Pearson r for a continuous
    task) with a finite mean."""
    auc = summary[(summary["task"] == task) & (summary["metric"] == _metric(summary, task))]
    return auc[np.isfinite(auc["mean"].astype(float))]


def _has_lcm(summary: pd.DataFrame, task: str) -> bool:
    """Whether lcm has a headline metric on ``task``."""
    return bool((_task_auc(summary, task)["model"] == "lcm").any())


def _models_at_or_below(summary: pd.DataFrame, task: str) -> list[str]:
    """Each model (controls aside) whose mean headline metric is at or below motion-fd's, per label
    fraction, in words (``logreg at 0.1 of the labels (0.553 [...] against motion-fd's ...)``)."""
    auc = _task_auc(summary, task)
    out = []
    for fraction, at in auc.groupby("label_fraction", sort=True):
        motion = at[at["model"] == MOTION_MODEL]
        if motion.empty:
            continue
        level = float(motion["mean"].iloc[0])
        others = at[(at["model"] != MOTION_MODEL) & ~at["model"].isin(CONTROL_MODELS)]
        for _, row in others[others["mean"] <= level].sort_values("model").iterrows():
            out.append(
                f"{html.escape(str(row['model']))} {at_labels(float(fraction))} "
                f"({summary_ci(row)} against motion-fd's {summary_ci(motion.iloc[0])})"
            )
    return out
