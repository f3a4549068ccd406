"""Report sections that state findings: the headline comparison, the control, collapsed fits,
per-site performance, the oracle, ROC captions and the protocol actually run (protocol summary).

The first sentence (whether pretraining helped) is :mod:`lcm.report.verdict`'s, the ablation
contrasts :mod:`lcm.report.contrasts`', head motion alone :mod:`lcm.report.motion`'s; the
phrases they share are in :mod:`lcm.report.wording`. Each builder is a pure function of data
frames returning an HTML fragment, so tests check the wording without rendering figures.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lcm.docstrings import fill_doc
from lcm.evaluate.compare import HEADLINE_METRIC
from lcm.report.boxes import box
from lcm.report.dropped import dropped_note
from lcm.report.motion import motion_clause, motion_rows
from lcm.report.tables import (
    first_permutation,
    metric_name,
    model_kind,
    p_clause,
    p_text,
    summary_ci,
    with_ci,
)
from lcm.report.wording import LOW_LABELS, P_HEADLINE, P_HOLM, at_labels, fractions_text

SENS_SPEC = ("sensitivity", "specificity")


def headline_display(headline: pd.DataFrame) -> pd.DataFrame:
    """The headline table as shown: one row per task and label fraction, CIs in the cells.

    Parameters
    ----------
    headline : pandas.DataFrame
        :func:`lcm.evaluate.compare.headline_table`.

    Returns
    -------
    pandas.DataFrame
        Text cells, columns in the order shown; ``n/a`` where no model or baseline was
        fitted.
    """
    rows = []
    for r in headline.itertuples(index=False):
        rows.append(
            {
                "task": r.task,
                "label fraction": f"{r.label_fraction:g}",
                "metric": metric_name(r.metric),
                "model": r.model or "n/a",
                "model [95% CI]": with_ci(r.model_mean, r.model_ci_low, r.model_ci_high),
                "best baseline": r.best_baseline or "n/a",
                "baseline [95% CI]": with_ci(
                    r.baseline_mean, r.baseline_ci_low, r.baseline_ci_high
                ),
                "difference [95% CI]": with_ci(
                    r.difference, r.difference_ci_low, r.difference_ci_high, signed=True
                ),
                P_HEADLINE: p_text(r.p_value),
                P_HOLM: p_text(getattr(r, "p_holm", np.nan)),
                "verdict": r.verdict,
            }
        )
    return pd.DataFrame(rows)


def science_statements(
    headline: pd.DataFrame,
    shared: dict[str, float | None],
    low: float = LOW_LABELS,
    summary: pd.DataFrame | None = None,
    task_meta: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """One sentence per task: does LCM beat every baseline at ``<= low`` labels?

    A task that evaluated no label fraction ``<= low`` is read at its lowest, named (as the
    report's first sentence reads the pretraining gain).

    Parameters
    ----------
    headline : pandas.DataFrame
        :func:`lcm.evaluate.compare.headline_table`.
    shared : dict
        ``task -> shared_structure`` of its synthetic cohort (None when not synthetic).
    low : float, default LOW_LABELS
        The largest label fraction read (of a task that evaluated one ``<= low``).
    summary : pandas.DataFrame, optional
        :func:`lcm.evaluate.metrics.summarise`: where head motion alone (``motion-fd``)
        matches or beats lcm or every model, the task's sentence opens with that.
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate``: its ``pseudo_labels`` say whether the lcm
        fits read used diagnosis pseudo-labels (LCM is named without a claim when absent).
    """
    out = []
    for task, rows in headline.groupby("task", sort=True):
        motion = motion_rows(summary, str(task))
        warning = (
            "<b>head motion alone matches or beats the models</b> ("
            + "; ".join(motion_clause(r, with_task=False) for r in motion)
            + "). "
            if motion
            else ""
        )
        compared = rows[rows["verdict"] != "not evaluated"]
        at = compared[compared["label_fraction"] <= low + 1e-9]
        knob = shared.get(task)
        where = f" (synthetic, shared_structure = {knob:g})" if knob is not None else ""
        scope = f"at &le; {low:g} of the labels"
        if at.empty and not compared.empty and not (rows["label_fraction"] <= low + 1e-9).any():
            # A task run at no fraction <= low (a small cohort at 1.0 only) is read at its
            # lowest, named, as the first sentence reads it: a loss there is still said.
            lowest = compared["label_fraction"].min()
            at = compared[np.isclose(compared["label_fraction"], lowest)]
            scope = (
                f"{at_labels(lowest)} (the lowest label fraction evaluated: none "
                f"&le; {low:g}, where pretraining is meant to help, was evaluated)"
            )
        if at.empty:
            best = rows.sort_values("label_fraction").iloc[-1]
            interval = with_ci(
                best["baseline_mean"], best["baseline_ci_low"], best["baseline_ci_high"]
            )
            versus = (
                f"; best baseline {at_labels(best['label_fraction'])}: "
                f"{html.escape(str(best['best_baseline']))} {metric_name(best['metric'])} "
                f"{interval}"
                if best["best_baseline"]
                else ""
            )
            out.append(
                f"<b>{html.escape(task)}</b>{html.escape(where)}: {warning}"
                f"{_not_compared(rows, low, summary)}{versus}.{_set_aside(rows)}"
            )
            continue
        parts = []
        for r in at.sort_values("label_fraction").itertuples(index=False):
            parts.append(
                f"{at_labels(r.label_fraction)} {html.escape(r.model)} "
                f"{metric_name(r.metric)} "
                f"{with_ci(r.model_mean, r.model_ci_low, r.model_ci_high)} vs best "
                f"baseline {html.escape(r.best_baseline)} "
                f"{with_ci(r.baseline_mean, r.baseline_ci_low, r.baseline_ci_high)}, difference "
                f"{with_ci(r.difference, r.difference_ci_low, r.difference_ci_high, signed=True)} "
                f"({p_clause(r.p_value)}): <b>{html.escape(r.verdict)}</b>"
                + _r2_clause(summary, str(task), r.model, r.label_fraction, r.metric)
            )
        beats = bool((at["verdict"] == "better").all())
        claim = "beats every baseline" if beats else "does <b>not</b> beat every baseline"
        out.append(
            f"<b>{html.escape(task)}</b>{html.escape(where)}: {warning}"
            f"{_lcm_named(at, task_meta)} "
            f"{claim} {scope}; " + "; ".join(parts) + "." + _set_aside(rows)
        )
    return out


def _lcm_named(rows: pd.DataFrame, task_meta: dict[str, dict[str, Any]] | None = None) -> str:
    """LCM as a task's sentence names it, by what its fits at the fractions read used.

    A continuous task's fits have no pseudo-labels of their target (:mod:`lcm.train.regress`:
    the pretrained heads fill only the missing BEI variables). A binary task's are read from
    the evaluation record (``pseudo_labels``: each fit's diagnosis ``status``, ``off`` where
    ``finetune.diagnosis_pseudo_labels`` was): "LCM with pseudo-labels" was said of fits that
    ran with the setting off. Without a record, LCM is named without a claim either way.
    """
    if (rows["metric"] == HEADLINE_METRIC["continuous"]).any():
        return (
            "LCM (a continuous target has no pseudo-labels; the pretrained heads fill only "
            "missing BEI variables)"
        )
    task = str(rows["task"].iloc[0])
    models = set(rows["model"].astype(str))
    fits = [
        f
        for f in ((task_meta or {}).get(task) or {}).get("pseudo_labels") or []
        if str(f.get("model")) in models
        and np.isclose(float(f.get("label_fraction", -1)), rows["label_fraction"]).any()
    ]
    if not fits:
        return "LCM"
    off = sum(str((f.get("diagnosis") or {}).get("status")) == "off" for f in fits)
    if off == 0:
        return "LCM with pseudo-labels"
    if off == len(fits):
        return (
            "LCM without diagnosis pseudo-labels (its fits ran with "
            "finetune.diagnosis_pseudo_labels off)"
        )
    return (
        f"LCM (diagnosis pseudo-labels off in {off} of its {len(fits)} fits here: "
        "finetune.diagnosis_pseudo_labels differed between them)"
    )


def _set_aside(rows: pd.DataFrame) -> str:
    """The baselines a task's headline did not crown for fewer usable fits, in words, or
    ``""`` (:func:`lcm.evaluate.compare.best_baseline` decides; the page says so)."""
    if "set_aside" not in rows.columns:
        return ""
    said = [
        f"{at_labels(r.label_fraction)}, {html.escape(r.set_aside)}"
        for r in rows.sort_values("label_fraction").itertuples(index=False)
        if isinstance(r.set_aside, str) and r.set_aside
    ]
    if not said:
        return ""
    return (
        " Not taken as the best baseline despite a higher mean, as it rests on fewer usable "
        "fits (seeds &times; folds with a value) than the others', so it is not the same "
        "statistic: " + "; ".join(said) + "."
    )


def _r2_clause(
    summary: pd.DataFrame | None, task: str, model: str, fraction: float, metric: str
) -> str:
    """Beside a Pearson r: the model's R², and whether it is worse than predicting the
    training mean (R² below 0; a correlation can be positive while every prediction is off)."""
    if summary is None or metric != "pearson_r" or not model:
        return ""
    at = summary[
        (summary["task"] == task)
        & (summary["model"] == model)
        & np.isclose(summary["label_fraction"], fraction)
        & (summary["metric"] == "r2")
    ]
    if at.empty or not np.isfinite(at["mean"].iloc[0]):
        return ""
    r = at.iloc[0]
    text = f"; {html.escape(model)} R² {summary_ci(r)}"
    if r["mean"] < 0:
        below = "its whole interval" if np.isfinite(r["ci_high"]) and r["ci_high"] < 0 else "R²"
        text += (
            f" (<b>worse than predicting the training mean</b>: {below} below 0, whatever "
            "its Pearson r)"
        )
    return text


def _not_compared(rows: pd.DataFrame, low: float, summary: pd.DataFrame | None = None) -> str:
    """Why a task's headline has no LCM-vs-baseline verdict at ``<= low`` labels (or at its
    lowest label fraction, when it evaluated none ``<= low``), in words: what was not run
    (lcm, a baseline, a fraction) before what gave no interval."""
    has_lcm = rows["model"].astype(str) != ""
    has_base = rows["best_baseline"].astype(str) != ""
    if not has_lcm.any():
        # No lcm at any fraction: the missing fraction is not the reason.
        if summary is not None and "model" in summary.columns:
            at = summary[summary["task"] == rows["task"].iloc[0]]
            models = ", ".join(sorted(set(at["model"].astype(str)) - {""}))
            if models:
                return f"LCM was not evaluated (its models: {html.escape(models)})"
        return "LCM was not evaluated (the task's models are baselines only)"
    if not has_base.any():
        ran = _no_baseline(rows, summary)
        return f"LCM was not compared with a baseline ({ran or 'the task evaluates no baseline'})"
    at = rows[rows["label_fraction"] <= low + 1e-9]
    if at.empty:
        done = ", ".join(f"{f:g}" for f in sorted(rows["label_fraction"].unique()))
        lowest = rows[np.isclose(rows["label_fraction"], rows["label_fraction"].min())]
        return (
            "LCM was not compared with a baseline at any label fraction evaluated (label "
            f"fractions evaluated: {done}; none &le; {low:g}, where pretraining is meant to "
            f"help; at the lowest, {lowest['label_fraction'].iloc[0]:g}, "
            f"{_no_verdict(lowest, summary)})"
        )
    return (
        f"LCM was not compared with a baseline at a label fraction &le; {low:g} "
        f"({_no_verdict(at, summary)})"
    )


def _no_baseline(rows: pd.DataFrame, summary: pd.DataFrame | None) -> str:
    """The baselines that ran at the label fractions of headline rows naming none, in words
    (they gave no value of the headline metric), or ``""`` when none ran there.

    "The task evaluates no baseline" was said of a task whose logreg ran on every fold but,
    every test fold holding one class, gave no AUC.
    """
    if summary is None or not {"task", "model", "label_fraction"} <= set(summary.columns):
        return ""
    at = summary[
        (summary["task"] == rows["task"].iloc[0])
        & summary["label_fraction"].isin(rows["label_fraction"])
    ]
    run = sorted({str(m) for m in at["model"] if model_kind(str(m)) == "baseline"})
    if not run:
        return ""
    return (
        f"{html.escape(', '.join(run))} ran but gave no {metric_name(str(rows['metric'].iloc[0]))}"
        ": no test fold yielded one"
    )


def _no_verdict(at: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """Why headline rows of one task at some fractions have no verdict: the model or the
    baseline not run there, or (``summary`` saying so) a single fit of lcm's metric."""
    fractions = fractions_text(at["label_fraction"])
    if not (at["model"].astype(str) != "").any():
        return f"lcm was not evaluated at {fractions}"
    if not (at["best_baseline"].astype(str) != "").any():
        ran = _no_baseline(at, summary)
        return (
            f"no baseline was compared at {fractions} ({ran})"
            if ran
            else (f"no baseline was evaluated at {fractions}")
        )
    if summary is not None and {"task", "model", "label_fraction", "metric", "n"} <= set(
        summary.columns
    ):
        own = summary[
            (summary["task"] == at["task"].iloc[0])
            & (summary["model"] == "lcm")
            & (summary["metric"] == at["metric"].iloc[0])
            & summary["label_fraction"].isin(at["label_fraction"])
        ]
        if len(own) and int(own["n"].max()) < 2:
            n = int(own["n"].max())
            return (
                f"no interval: lcm's {metric_name(str(at['metric'].iloc[0]))} rests on {n} "
                f"fit{'' if n == 1 else 's'} (seeds &times; folds) at {fractions}, too few for "
                "the corrected resampled t"
            )
    return (
        "no interval: too few folds (or folds with equal differences) for the corrected "
        "resampled t, or no test fold holding both classes"
    )


def headline_section(
    headline: pd.DataFrame | None,
    shared: dict[str, float | None],
    table_html: Callable[..., str],
    summary: pd.DataFrame | None = None,
    task_meta: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The findings first: LCM against the best baseline per task and fraction, in words
    (each task's sentence opening with head motion alone where it matches the models).

    Parameters
    ----------
    headline : pandas.DataFrame or None
        :func:`lcm.evaluate.compare.headline_table`; None or empty: the section says no
        comparison could be made.
    shared : dict
        ``task -> shared_structure`` of its synthetic cohort (None when not synthetic).
    table_html : callable
        Renders ``(frame, caption, row_headers=...)`` as an HTML table
        (:func:`lcm.report.html.table_html`).
    summary : pandas.DataFrame, optional
        :func:`lcm.evaluate.metrics.summarise`, for the head-motion openings.
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate``, for whether LCM's fits used pseudo-labels.

    Returns
    -------
    str
        An HTML fragment: heading, how to read it, one sentence per task, the table.
    """
    parts = ['<h2 id="headline">Headline: LCM against the best baseline</h2>']
    if headline is None or headline.empty:
        parts.append('<p class="note">No comparison could be made.</p>')
        return "\n".join(parts)
    parts.append(
        '<p class="note">Mean over folds &times; seeds with 95 % corrected resampled t '
        "intervals (Nadeau &amp; Bengio; they include training variance). The best baseline is "
        "the one with the highest mean at that fraction among the baselines scored on the most "
        "fits (a mean over fewer fits, where some gave no value, is not crowned; the task's "
        "sentence names it), picked after the fact: that favours "
        "the baselines for a <i>better</i> verdict (a win against it is a win against each) but "
        "makes a <i>worse</i> verdict too easy (the winner of several baselines is flattered "
        "by chance). The difference's interval spans two: a paired bootstrap of test "
        "subjects (one draw per subject, shared by every seed and fold that tests it; the "
        "fitted models held fixed) and the corrected resampled t of the folds' differences "
        "(training variance); p is the larger of their two. <i>better</i> means the whole "
        "interval is above 0, so both agree (each interval at 95 %, unadjusted for the number "
        "of rows; the table gives p as is and Holm-adjusted over all its rows). <i>too few "
        "test subjects per class</i>: fewer than 3 test subjects of a class over all folds to "
        "resample, so the difference observed is given without an interval.</p>"
    )
    parts.append("<ul>")
    parts.extend(
        f"<li>{s}</li>"
        for s in science_statements(headline, shared, summary=summary, task_meta=task_meta)
    )
    parts.append("</ul>")
    parts.append(
        table_html(
            headline_display(headline),
            "LCM against the best baseline, per task and label fraction",
            row_headers=2,
        )
    )
    return "\n".join(parts)


def _control_fits(n: int, model: str, meta: dict[str, Any]) -> str:
    """What a control's mean averages, from the task's metadata: ``4 folds × 10
    permutations`` (one split seed), ``8 fits (seeds × folds) × 10 permutations`` (several);
    the fits alone when ``lcm evaluate`` did not record the permutations (older metrics)."""
    seeds = meta.get("settings", {}).get("seeds")
    if seeds is not None and len(seeds) == 1:
        fits = f"{n} fold" + ("" if n == 1 else "s")
    else:
        fits = f"{n} fit" + ("" if n == 1 else "s") + " (seeds &times; folds)"
    permutations = (meta.get("control_permutations") or {}).get(model)
    if permutations is None:
        return (
            f"{fits}, each the mean of its permutations (their number is not recorded in "
            "these metrics)"
        )
    return f"{fits} &times; {permutations} permutation" + ("" if permutations == 1 else "s")


def permutation_clause(row: Any) -> str:
    """The permutation p a control gives the model it permutes, for its sentence.

    ``; permutation p = 0.048 for logreg against its 20 permutations (...; with 20
    permutations p cannot go below 1/21 = 0.048)``; what is missing when there is none.

    Parameters
    ----------
    row : namedtuple
        A row of :func:`lcm.evaluate.compare.control_table`.
    """
    m = int(getattr(row, "n_permutations", 0) or 0)
    model = html.escape(str(getattr(row, "permuted_model", "") or ""))
    if not m:
        return "; no permutation p (not recorded by the lcm evaluate that wrote these metrics)"
    if not model:
        return "; no permutation p (the model this control permutes is not known)"
    p = float(row.p_permutation)
    if not np.isfinite(p):
        return f"; no permutation p: {model}, the model it permutes, was not evaluated"
    plural = "" if m == 1 else "s"
    return (
        f"; permutation {p_clause(p)} for {model} against its {m} permutation{plural} "
        f"(one-sided: {model}'s {metric_name(row.metric)} against each permutation's, pooled "
        f"over the same fits; with {m} permutation{plural} p cannot go below "
        f"1/{m + 1} = {p_text(row.p_min)})"
    )


def control_fragment(control: pd.DataFrame, task: str, meta: dict[str, Any] | None = None) -> str:
    """The shuffled-label controls of one task, each named, and whether each sits at chance.

    Parameters
    ----------
    control : pandas.DataFrame
        :func:`lcm.evaluate.compare.control_table`.
    task : str
    meta : dict, optional
        The task's ``lcm evaluate`` metadata: its ``settings.seeds`` and
        ``control_permutations`` (``model -> permutations per fit``) say what each mean
        averages.
    """
    rows = control[control["task"] == task]
    if rows.empty:
        return '<p class="warn">No shuffled-label control was evaluated for this task.</p>'
    states = {
        "at chance": "at chance",
        "above chance": "ABOVE chance: check for leakage",
        # anti-learning of permuted labels in small folds; leakage would lift it
        "below chance": "below chance (expected of permuted labels in small folds, where "
        "the training fold leans against the test fold's classes; leakage would lift it "
        "instead, but a large dip is worth a look)",
        "too few fits": "too few fits to judge",
    }
    items = []
    for r in rows.itertuples(index=False):
        fits = _control_fits(int(r.n), str(r.model), meta or {})
        items.append(
            f"{html.escape(str(r.model))} at label fraction {r.label_fraction:g}: "
            f"{metric_name(r.metric)} "
            f"{with_ci(r.mean, r.ci_low, r.ci_high)} over {fits} (chance {r.chance:g}) "
            f"&mdash; {states[r.verdict]}{permutation_clause(r)}"
        )
    cls = "note" if rows["at_chance"].all() else "warn"
    return box("<b>Shuffled-label control</b> (fitted on permuted labels):", items, cls=cls)


@fill_doc
def collapsed_fits(metrics: pd.DataFrame | None, task: str) -> dict[tuple[str, float], dict]:
    """Each model and label fraction of a binary task whose classifier collapsed in at least
    half of its fits (seeds x folds).

    A fit collapsed when it called no test subject positive (sensitivity 0, specificity 1) or
    every one (1, 0); the direction may differ from fold to fold (a from-scratch model
    alternating between the two has learned no decision rule either).

    Parameters
    ----------
    metrics : pandas.DataFrame or None
        The tidy fold metrics (``task, model, label_fraction, seed, fold, metric, value``);
        None, or a table without ``task`` and ``metric``, finds nothing.
    %(task)s

    Returns
    -------
    dict
        ``(model, label_fraction) -> {"collapsed": k, "fits": n, "none": a, "every": b,
        "one_class": c}``: ``fits`` counts the fits whose test fold holds both classes,
        ``one_class`` the others (left out).
    """
    if metrics is None or not {"task", "metric"} <= set(metrics.columns):
        return {}
    rows = metrics[(metrics["task"] == task) & metrics["metric"].isin(SENS_SPEC)]
    if rows.empty:
        return {}
    wide = rows.pivot_table(
        index=["model", "label_fraction", "seed", "fold"], columns="metric", values="value"
    )
    if not set(SENS_SPEC) <= set(wide.columns):
        return {}
    # A test fold of one class says nothing of the other's calls; it is counted apart.
    one_class = wide[wide.isna().any(axis=1)].groupby(level=["model", "label_fraction"]).size()
    wide = wide.dropna()
    out = {}
    for (model, fraction), at in wide.groupby(level=["model", "label_fraction"], sort=True):
        sens, spec = at["sensitivity"], at["specificity"]
        none = int(((sens == 0) & (spec == 1)).sum())
        every = int(((sens == 1) & (spec == 0)).sum())
        if len(at) and 2 * (none + every) >= len(at):
            out[(str(model), float(fraction))] = {
                "collapsed": none + every,
                "fits": len(at),
                "none": none,
                "every": every,
                "one_class": int(one_class.get((model, fraction), 0)),
            }
    return out


def one_class_fits(c: dict) -> str:
    """``" with test subjects of both classes (its 2 other fits tested one class only)"``,
    or ``""``: the fits a collapse is counted over are not all of the model's fits.

    Parameters
    ----------
    c : dict
        One entry of :func:`collapsed_fits` (``one_class``: its fits whose test fold held one
        class only).

    Returns
    -------
    str
    """
    k = c.get("one_class", 0)
    if not k:
        return ""
    other = "fit" if k == 1 else "fits"
    return f" with test subjects of both classes (its {k} other {other} tested one class only)"


@fill_doc
def collapse_fragment(metrics: pd.DataFrame, task: str) -> str:
    """A warning naming each model of a binary task whose classifier collapsed (called no test
    subject positive, or every one, in either direction fold by fold) in at least half of its
    fits, and each regressor of a continuous task that predicted one value in any fit
    (:func:`constant_fits`), or ``""``.

    Such a classifier scores balanced accuracy 0.5 on those folds: that is the threshold's
    collapse, not chance-level discrimination, and its AUC ranks scores that never cross the
    threshold.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The tidy fold metrics (``task, model, label_fraction, seed, fold, metric, value``).
    %(task)s
    """
    found = []
    for (model, fraction), c in collapsed_fits(metrics, task).items():
        ways = []
        if c["none"]:
            ways.append(f"no test subject positive in {c['none']}")
        if c["every"]:
            ways.append(f"every test subject positive in {c['every']}")
        found.append(
            f"{html.escape(model)} at label fraction {fraction:g} collapsed in {c['collapsed']} "
            f"of its {c['fits']} fit(s) (seeds &times; folds){one_class_fits(c)}: it called "
            + " and ".join(ways)
        )
    constant = _constant_fragment(metrics, task)
    if not found:
        return constant
    return (
        box(
            "<b>Collapsed classifier</b>:",
            found,
            "Such a classifier's balanced accuracy is 0.5 by construction on those folds, not "
            "chance-level discrimination; its AUC ranks scores that never cross the 0.5 "
            "threshold, so a contrast in AUC against it stands, while one in balanced accuracy, "
            "sensitivity or specificity measures its threshold.",
        )
        + constant
    )


@fill_doc
def constant_fits(metrics: pd.DataFrame | None, task: str) -> dict[tuple[str, float], dict]:
    """Each model and label fraction of a continuous task that predicted one value for every
    test subject in some of its fits (seeds x folds).

    Such a fit (cpm selecting no edge on a few labelled subjects predicts the training mean)
    has no Pearson r, while its R² exists (the test targets vary): its mean Pearson r rests on
    its other fits only, and was once picked as the headline's best baseline on one fit of
    three, with nothing on the page saying why.

    Parameters
    ----------
    metrics : pandas.DataFrame or None
        The tidy fold metrics (``task, model, label_fraction, seed, fold, metric, value``);
        None, or a table without ``task`` and ``metric``, finds nothing.
    %(task)s

    Returns
    -------
    dict
        ``(model, label_fraction) -> {"constant": k, "fits": n}``: ``fits`` counts the fits
        whose test targets vary (an R²).
    """
    if metrics is None or not {"task", "metric"} <= set(metrics.columns):
        return {}
    rows = metrics[(metrics["task"] == task) & metrics["metric"].isin(("pearson_r", "r2"))]
    if rows.empty:
        return {}
    wide = rows.pivot_table(
        index=["model", "label_fraction", "seed", "fold"],
        columns="metric",
        values="value",
        dropna=False,
    )
    if not {"pearson_r", "r2"} <= set(wide.columns):
        return {}
    wide = wide[np.isfinite(wide["r2"].astype(float))]
    out = {}
    for (model, fraction), at in wide.groupby(level=["model", "label_fraction"], sort=True):
        k = int((~np.isfinite(at["pearson_r"].astype(float))).sum())
        if k:
            out[(str(model), float(fraction))] = {"constant": k, "fits": len(at)}
    return out


def _constant_fragment(metrics: pd.DataFrame, task: str) -> str:
    """A warning naming each regressor of :func:`constant_fits`, or ``""``."""
    found = [
        f"{html.escape(model)} at label fraction {fraction:g} predicted one value for every "
        f"test subject in {c['constant']} of its {c['fits']} fit(s) (seeds &times; folds): its "
        f"mean Pearson r rests on the other {c['fits'] - c['constant']}"
        for (model, fraction), c in constant_fits(metrics, task).items()
    ]
    if not found:
        return ""
    return box(
        "<b>Constant regressor</b>:",
        found,
        "A constant prediction has no Pearson r, so those fits are left out of its mean (the "
        "table's n), not counted as r = 0: that mean flatters the model (the headline does "
        "not crown a baseline scored on fewer fits than another); read its MAE and R², which "
        "count every fit.",
    )


def site_fragment(
    sites: pd.DataFrame,
    task: str,
    table_html: Callable[..., str],
    meta: dict[str, Any] | None = None,
) -> str:
    """Per-site performance of one task: sites x models at each label fraction.

    Every site keeps its row: one whose metric is n/a everywhere (a site of one class) and,
    from the task's metadata, one that no test fold held (leave-site-out skips a site whose
    fold would train on one class), named with its subjects below the table. A shuffled-label
    control's column is labelled ``(first permutation)``: the predictions table keeps one
    permutation per fit (:func:`lcm.evaluate.protocol.evaluate_task`).

    Parameters
    ----------
    sites : pandas.DataFrame
        :func:`lcm.evaluate.compare.site_table`.
    task : str
    table_html : callable
    meta : dict, optional
        The task's ``lcm evaluate`` metadata: its ``sites_not_tested`` and ``split_used``.
    """
    meta = meta or {}
    rows = sites[sites["task"] == task]
    untested = {str(k): v for k, v in (meta.get("sites_not_tested") or {}).items()}
    named = set(rows["site"].astype(str)) | set(untested)
    if rows.empty and not untested:
        return '<p class="note">Per-site performance: no out-of-fold predictions to split.</p>'
    if len(named) < 2:
        where = "the dataset names" if "sites_not_tested" in meta else "the test folds hold"
        return f'<p class="note">Per-site performance: {where} fewer than two sites.</p>'
    metric = str(rows["metric"].iloc[0]) if len(rows) else ""
    shown = metric_name(metric) if metric else "not tested"
    parts = [f"<h3>Per-site performance ({html.escape(shown)})</h3>"]
    missing: dict[str, int] = {}  # site with no value -> its test subjects
    for fraction, at in rows.groupby("label_fraction", sort=True):
        # dropna=False: a site whose metric is n/a for every model (one class) keeps its row.
        wide = at.pivot_table(
            index="site", columns="model", values="value", aggfunc="first", dropna=False
        )
        counts = at.groupby("site")["n_subjects"].max()
        for site in wide.index[wide.isna().all(axis=1)]:
            missing[str(site)] = int(counts.get(site, 0))
        wide.insert(0, "test subjects", counts)
        absent = sorted(set(untested) - set(wide.index.astype(str)))
        if absent:  # object columns: a number beside "not tested"
            wide = wide.astype(object)
            for site in absent:
                wide.loc[site] = [0] + ["not tested"] * (wide.shape[1] - 1)
        wide = wide.rename(columns=first_permutation).reset_index()
        wide.columns.name = None
        caption = f"{task} per site at label fraction {fraction:g}: {shown}"
        parts.append(table_html(wide, caption, row_headers=1))
    parts.append(f'<p class="note">{_site_notes(metric, missing, untested, meta)}</p>')
    return "\n".join(parts)


def _site_notes(
    metric: str, missing: dict[str, int], untested: dict[str, Any], meta: dict[str, Any]
) -> str:
    """What the per-site table pools, and why a site has no number: too few test subjects,
    one class, or no fold."""
    notes = ["Out-of-fold predictions of each site pooled over its folds"]
    by_reason: dict[str, list[str]] = {}
    for site, n in sorted(missing.items()):
        by_reason.setdefault(_site_na_reason(metric, n), []).append(site)
    for why, sites in by_reason.items():
        listed = ", ".join(html.escape(s) for s in sites)
        notes.append(f"site{'s' if len(sites) > 1 else ''} {listed}: n/a, {why}")
    for site, counts in sorted(untested.items()):
        of = "a class" if metric == "auc" else "a half of the target's values"
        why = (
            "leave-site-out skipped its fold, as training on the other sites would leave too "
            f"few subjects of {of} (see the task's evaluate log)"
            if meta.get("split_used") == "site"
            else "no test fold held its runs"
        )
        notes.append(
            f"site {html.escape(site)} not tested ({counts.get('subjects', '?')} subjects): {why}"
        )
    return "; ".join(notes) + "."


def _site_na_reason(metric: str, n_subjects: int) -> str:
    """Why a site with ``n_subjects`` test subjects has no value of ``metric``.

    A one-subject site was said to have constant targets or predictions: true, but the
    reason is the one subject (:func:`lcm.evaluate.metrics.regression_metrics` needs three
    for a Pearson r; an AUC both classes)."""
    if n_subjects == 1:
        return "one test subject only (no " + ("AUC" if metric == "auc" else "Pearson r") + ")"
    if metric == "auc":
        return "its test subjects hold one class only (no AUC)"
    if n_subjects == 2:
        return "two test subjects only (a Pearson r needs three)"
    return "its targets or predictions are constant"


def no_auc_warning(metrics: pd.DataFrame, task_meta: dict[str, dict[str, Any]]) -> str:
    """A warning naming each binary task of which no fold yielded an AUC, or ``""``.

    Such a task's job succeeds and every AUC cell of it reads n/a; the reason (test folds of
    one class, sites no fold tested) was said only in the protocol summary at the page's
    bottom.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy fold metrics of every task.
    task_meta : dict
        ``task -> metadata`` of ``lcm evaluate``: ``folds_one_class``, ``sites_not_tested``
        and ``split_used`` say why.
    """
    if not {"task", "metric", "value"} <= set(metrics.columns):
        return ""
    auc = metrics[metrics["metric"] == "auc"]
    found = []
    for task, at in auc.groupby("task", sort=True):
        if np.isfinite(at["value"].to_numpy(dtype=float)).any():
            continue
        meta = task_meta.get(task) or {}
        why = []
        why += [_one_class_folds(meta)] if meta.get("folds_one_class") else []
        why += [
            f"site {site} not tested ({counts.get('subjects', '?')} subjects)"
            for site, counts in sorted((meta.get("sites_not_tested") or {}).items())
        ]
        text = (
            f"{html.escape(str(task))}: none of its folds yielded one"
            + (f" ({html.escape('; '.join(why))})" if why else "")
            + ", so every AUC of this task below is n/a and none of its models is judged on "
            "discrimination"
        )
        if meta.get("split_used") == "site":
            text += (
                ". Leave-site-out needs both classes in each tested site and in the sites it "
                "trains on; <code>evaluate.split: subject</code> stratifies its folds by class"
            )
        found.append(text)
    if not found:
        return ""
    return box("<b>No AUC</b> for", found, box_id="no-auc")


def oracle_fragment(oracle: dict[str, Any] | None) -> str:
    """The ceiling of a synthetic task (what the true connectivity allows) and, when measured,
    the same readout on the pipeline's own connectomes (what the scans kept of it).

    Parameters
    ----------
    oracle : dict or None
        :func:`lcm.synth.oracle.ceiling` of the task's cohort (``consortium``,
        ``shared_structure``, ``auc``), with ``scan``: its readout on the pipeline's
        connectomes (``auc``, ``n_subjects``) or why there is none (``note``). None or no ``auc``
        gives ``""``.

    Returns
    -------
    str
        An HTML paragraph, or ``""``.
    """
    if not oracle or oracle.get("auc") is None:
        return ""
    text = (
        f'<p class="note"><b>Oracle ceiling</b> (synthetic ground truth of '
        f"{html.escape(str(oracle['consortium']))}, shared_structure "
        f"{oracle.get('shared_structure')}): AUC {float(oracle['auc']):.3f} from the true "
        "connectivity matrices; a model above it exploits something other than the simulated "
        "effects (e.g. motion)."
    )
    scan = oracle.get("scan")
    if scan and scan.get("auc") is not None:
        text += (
            f" The same readout on the pipeline's own connectomes of the {scan['n_subjects']} "
            f"tested subjects: AUC {float(scan['auc']):.3f} (what finite scans, motion and "
            "denoising left of the simulated effects; a model near it uses what the scans hold)."
        )
    elif scan:
        text += f" On the pipeline's own connectomes: {html.escape(str(scan.get('note')))}."
    return text + "</p>"


def _not_scored(meta: dict[str, Any]) -> str:
    """What the task's means leave out: runs dropped before any fold (a missing label), sites
    no fold tested, test folds of one class (no AUC: the mean is over the other folds)."""
    # "none" beside a dropped-runs table would say every run was scored.
    dropped = dropped_note(meta)
    parts = [dropped] if dropped else []
    parts += [
        f"site {site} not tested ({counts.get('subjects', '?')} subjects)"
        for site, counts in sorted((meta.get("sites_not_tested") or {}).items())
    ]
    if meta.get("folds_one_class"):
        parts.append(_one_class_folds(meta, ", no AUC"))
    return "; ".join(parts) or "none"


def _one_class_folds(meta: dict[str, Any], detail: str = "") -> str:
    """``"2 test fold(s) of one class<detail> (sites A, B)"`` from a task's ``folds_one_class``."""
    folds = meta.get("folds_one_class") or []
    sites = sorted({site for f in folds for site in f.get("sites", [])})
    where = f" (site{'s' if len(sites) > 1 else ''} {', '.join(sites)})" if sites else ""
    return f"{len(folds)} test fold(s) of one class{detail}{where}"


def provenance_summary(
    task_meta: dict[str, dict[str, Any]],
    table_html: Callable[..., str],
    metrics: pd.DataFrame | None = None,
) -> str:
    """The protocol each task actually ran: split, folds, seeds, fractions, models.

    Parameters
    ----------
    task_meta : dict
        ``task -> metadata`` of ``lcm evaluate``.
    table_html : callable
    metrics : pandas.DataFrame, optional
        Tidy fold metrics: the folds each seed actually used (a leave-site-out fold skipped
        is not counted). Without them, the folds asked (``evaluate.n_folds``).
    """
    parts = ['<h2 id="protocol">Protocol summary</h2>']
    if not task_meta:
        parts.append('<p class="note">The metrics tables carry no protocol metadata.</p>')
        return "\n".join(parts)
    rows = []
    for task, meta in sorted(task_meta.items()):
        settings = meta.get("settings", {})
        skipped = meta.get("models_skipped") or {}
        rows.append(
            {
                "task": task,
                "dataset": meta.get("dataset", "n/a"),
                "target": f"{meta.get('label', '?')} ({meta.get('kind', 'binary')})",
                "split": _split_used(meta, settings),
                "folds x seeds": _folds_used(task, meta, settings, metrics),
                "label fractions": ", ".join(f"{f:g}" for f in settings.get("label_fractions", [])),
                "models": ", ".join(meta.get("models_evaluated", settings.get("models", []))),
                "skipped": ", ".join(sorted(skipped)) or "none",
                "runs": meta.get("n_runs", "n/a"),
                "not scored": _not_scored(meta),
                "checkpoint": meta.get("checkpoint") or "n/a",
            }
        )
    parts.append(
        "<p>Every choice of a model (regularisation by inner subject-level cross-validation "
        "on the training fold; fixed epoch budgets; threshold 0.5) is made without the test "
        "fold; scalers and the tangent reference are fitted on training runs only; the LCM "
        "checkpoints were pretrained on datasets with role <code>pretrain</code> only, which "
        "<code>lcm evaluate</code> checks.</p>"
    )
    parts.append(table_html(pd.DataFrame(rows), "The protocol each task ran", row_headers=1))
    parts.extend(_skipped_notes(task_meta))
    parts.extend(_not_repeated_notes(task_meta))
    return "\n".join(parts)


def _not_repeated_notes(task_meta: dict[str, dict[str, Any]]) -> list[str]:
    """A note per task whose later seeds did not repeat a fit (``n_fits_not_repeated``): the
    table's ``folds x seeds`` alone did not say that some models have one fit per fold.

    ``lcm evaluate`` repeats a fit for a later seed with the same data (split: site at label
    fraction 1) only for the models whose fit depends on the seed; the ones it does not repeat
    (``models_not_repeated``: those that ignore their seed, CPM) would refit identically, so
    their intervals need no initialisation variance. A record of an older ``lcm evaluate``
    names no models: it skipped those refits for every model, LCM's included, and the note says
    those intervals lack the training variance.
    """
    notes = []
    for task, meta in sorted(task_meta.items()):
        n = int(meta.get("n_fits_not_repeated") or 0)
        if not n:
            continue
        models = meta.get("models_not_repeated")
        if models is None:
            notes.append(
                f'<p class="note">{html.escape(task)}: {n} fit(s) not repeated for later '
                "seeds (split: site keeps the folds, and a label fraction of 1 the labelled "
                "subjects, whatever the seed): each ran once, so the intervals of those fits "
                "hold no variance of the models' initialisation, only of the test folds. "
                "Rerun <code>lcm evaluate</code> to refit the models that depend on their "
                "seed with each seed.</p>"
            )
            continue
        names = ", ".join(html.escape(str(m)) for m in models)
        notes.append(
            f'<p class="note">{html.escape(task)}: {n} fit(s) of {names} not repeated for '
            "later seeds (split: site keeps the folds, and a label fraction of 1 the labelled "
            "subjects, whatever the seed): these models ignore their seed, so a refit would be "
            "identical; their intervals need no initialisation variance, and their one fit of "
            "a fold is paired with each seed of the model it is compared with. Every other "
            "model was refitted with each seed.</p>"
        )
    return notes


def _skipped_notes(task_meta: dict[str, dict[str, Any]]) -> list[str]:
    """One note per reason a model was skipped, naming the models and tasks it skipped: the
    table's ``skipped`` column names the models only (bei-linear's maps of no variable, a
    model that does not handle the task's kind of target)."""
    by_reason: dict[str, dict[str, list[str]]] = {}
    for task, meta in sorted(task_meta.items()):
        for model, reason in sorted((meta.get("models_skipped") or {}).items()):
            by_reason.setdefault(str(reason), {}).setdefault(model, []).append(task)
    notes = []
    for reason, models in by_reason.items():
        which = "; ".join(
            f"{model} in task{'s' if len(tasks) > 1 else ''} {', '.join(tasks)}"
            for model, tasks in models.items()
        )
        notes.append(
            f'<p class="note">Not evaluated: {html.escape(which)}: {html.escape(reason)}.</p>'
        )
    return notes


def _folds_used(
    task: str, meta: dict[str, Any], settings: dict[str, Any], metrics: pd.DataFrame | None
) -> str:
    """``folds x seeds`` of a task: the folds of each seed in its metrics (``3–5`` when the
    seeds differ), with the ``evaluate.n_folds`` asked beside a subject split that used
    fewer; the folds asked without metrics."""
    seeds = len(settings.get("seeds", []))
    asked = settings.get("n_folds", "?")
    at = None
    if metrics is not None and {"task", "seed", "fold"} <= set(metrics.columns):
        at = metrics[metrics["task"] == task]
    if at is None or at.empty:
        return f"{asked} x {seeds}"
    per_seed = at.groupby("seed")["fold"].nunique()
    low, high = int(per_seed.min()), int(per_seed.max())
    used = f"{low}" if low == high else f"{low}–{high}"
    note = ""
    if meta.get("split_used", settings.get("split", "subject")) == "subject" and (
        low != high or low != asked
    ):
        note = f" ({asked} asked)"
    return f"{used} x {seeds}{note}"


def _split_used(meta: dict[str, Any], settings: dict[str, Any]) -> str:
    """The split a task ran, saying so where it is not the one asked for (leave-site-out on
    runs naming fewer than two sites, or with a subject naming none, falls back to subject
    folds; evaluate's log names which)."""
    asked = settings.get("split", "subject")
    used = meta.get("split_used", asked)
    if used == asked:
        return used
    return f"{used} ({asked} asked: the runs name fewer than two sites, or some name none)"


# A pooled AUC this far from the fold mean is named under the ROC curves.
POOLED_GAP = 0.05


@fill_doc
def roc_caption(predictions: pd.DataFrame, summary: pd.DataFrame, task: str) -> str:
    """The visible caption of a task's ROC curves: they pool each seed's folds, so the area
    under a curve (the pooled AUC) is not the table's fold-mean AUC; each model and label
    fraction where the two differ by :data:`POOLED_GAP` or more is named with both.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Out-of-fold predictions (``task, model, label_fraction, seed, fold, dataset, subject,
        y_true, prediction``).
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise`, for the fold-mean AUCs.
    %(task)s

    Returns
    -------
    str
        An HTML paragraph.
    """
    from sklearn.metrics import roc_auc_score

    rows = predictions[predictions["task"] == task]
    gaps = []
    for (fraction, model), at in rows.groupby(["label_fraction", "model"], sort=True):
        pooled = [
            roc_auc_score(g["y_true"], g["prediction"])
            for _, g in at.groupby("seed")
            if g["y_true"].nunique() == 2
        ]
        mean = summary[
            (summary["task"] == task)
            & (summary["model"] == model)
            & np.isclose(summary["label_fraction"], fraction)
            & (summary["metric"] == "auc")
        ]["mean"]
        if pooled and len(mean) and abs(np.mean(pooled) - mean.iloc[0]) >= POOLED_GAP:
            gaps.append(
                f"{html.escape(first_permutation(str(model)))} at {fraction:g}: pooled "
                f"{np.mean(pooled):.3f}, fold mean {mean.iloc[0]:.3f}"
            )
    named = (
        " They differ by " + f"{POOLED_GAP:g} or more for " + "; ".join(gaps) + "." if gaps else ""
    )
    return (
        '<p class="note">ROC curves <b>pool</b> each seed\'s out-of-fold predictions over its '
        "folds (then average the curves over seeds): the area under a curve is the pooled "
        "AUC, not the fold-mean AUC of the table above. A model whose scores shift from fold "
        "to fold (a collapsed or poorly calibrated one) can rank subjects well within each "
        "fold and poorly pooled, so its curve can sit below its table value." + named + "</p>"
    )


@fill_doc
def test_subjects_note(
    predictions: pd.DataFrame, task: str, levels: list[str] | tuple[str, ...] = ()
) -> str:
    """The test subjects per class behind a binary task's numbers: over each seed's folds and
    per fold (min–max), so the reader sees how many subjects an AUC rests on (the tables' n
    counts fold values, not subjects).

    Parameters
    ----------
    predictions : pandas.DataFrame
        Out-of-fold predictions (``task, model, label_fraction, seed, fold, dataset, subject,
        y_true, prediction``).
    %(task)s
    levels : sequence of str
        The class names, label 0 first; anything but two gives ``label 0`` and ``label 1``.

    Returns
    -------
    str
        An HTML paragraph; ``""`` for a task with no predictions or one that is not binary.
    """
    rows = predictions[predictions["task"] == task]
    if rows.empty or not rows["y_true"].isin([0.0, 1.0]).all():
        return ""
    one = rows[rows["model"] == rows["model"].iloc[0]]
    one = one[np.isclose(one["label_fraction"], one["label_fraction"].max())]
    names = list(levels) if len(levels) == 2 else ["label 0", "label 1"]
    per_fold = one.groupby(["seed", "fold"])["y_true"].agg(
        positive=lambda y: int((y == 1).sum()), negative=lambda y: int((y == 0).sum())
    )
    first_seed = one[one["seed"] == one["seed"].min()].drop_duplicates(["dataset", "subject"])
    n_pos, n_neg = int((first_seed["y_true"] == 1).sum()), int((first_seed["y_true"] == 0).sum())

    def span(col: str) -> str:
        lo, hi = int(per_fold[col].min()), int(per_fold[col].max())
        return f"{lo}" if lo == hi else f"{lo}&ndash;{hi}"

    return (
        f'<p class="note">Test subjects: {n_pos} {html.escape(names[1])} / {n_neg} '
        f"{html.escape(names[0])} over a seed's folds; per fold {span('positive')} / "
        f"{span('negative')} ({len(per_fold)} fold(s) &times; seeds). Each AUC below rests on "
        "one fold's subjects.</p>"
    )
