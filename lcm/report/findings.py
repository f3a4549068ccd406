"""Report sections that state findings: the headline comparison, the control, per-site
performance and the protocol actually run (protocol summary).

Each builder is a pure function of data frames returning an HTML fragment, so tests check the
wording without rendering figures.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lcm.docstrings import fill_doc
from lcm.evaluate.motion import MOTION_MODEL
from lcm.evaluate.registry import CONTROL_MODELS
from lcm.report.boxes import box, listed
from lcm.report.dropped import dropped_note
from lcm.report.tables import (
    first_permutation,
    metric_name,
    p_clause,
    p_text,
    summary_ci,
    with_ci,
)

LOW_LABELS = 0.1  # "≤ 10 % labels": where pretraining and pseudo-labels are meant to help
SENS_SPEC = ("sensitivity", "specificity")


# The headline's p: the larger of the paired bootstrap's and the corrected resampled t's
# (lcm.evaluate.compare.headline_difference), so both must agree for a small one.
P_HEADLINE = "p (larger of bootstrap and corrected t)"
# Each table's p values Holm-adjusted over its rows (lcm.evaluate.compare.holm): the verdicts
# rest on the unadjusted 95 % intervals, so the adjusted p says what survives their number.
P_HOLM = "p, Holm-adjusted over the table's rows"


def at_labels(fraction: float) -> str:
    """Where a label fraction is read, in words: ``at 0.1 of the labels``, ``with every
    label`` for 1 (``at 1 of the labels`` read as one label).

    Parameters
    ----------
    fraction : float
        A label fraction in (0, 1].

    Returns
    -------
    str
    """
    if np.isclose(fraction, 1.0):
        return "with every label"
    return f"at {fraction:g} of the labels"


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
    """
    out = []
    for task, rows in headline.groupby("task", sort=True):
        motion = motion_rows(summary, str(task))
        warning = (
            "<b>head motion alone matches or beats the models</b> ("
            + "; ".join(_motion_clause(r, with_task=False) for r in motion)
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
                f"{_not_compared(rows, low, summary)}{versus}."
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
            f"<b>{html.escape(task)}</b>{html.escape(where)}: {warning}LCM with pseudo-labels "
            f"{claim} {scope}; " + "; ".join(parts) + "."
        )
    return out


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
        return "LCM was not compared with a baseline (the task evaluates no baseline)"
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


def _no_verdict(at: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """Why headline rows of one task at some fractions have no verdict: the model or the
    baseline not run there, or (``summary`` saying so) a single fit of lcm's metric."""
    fractions = _fractions_text(at["label_fraction"])
    if not (at["model"].astype(str) != "").any():
        return f"lcm was not evaluated at {fractions}"
    if not (at["best_baseline"].astype(str) != "").any():
        return f"no baseline was evaluated at {fractions}"
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
        "the one with the highest mean at that fraction, picked after the fact: that favours "
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
    parts.extend(f"<li>{s}</li>" for s in science_statements(headline, shared, summary=summary))
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


def _one_class_fits(c: dict) -> str:
    """``" with test subjects of both classes (its 2 other fits tested one class only)"``,
    or ``""``: the fits a collapse is counted over are not all of the model's fits."""
    k = c.get("one_class", 0)
    if not k:
        return ""
    other = "fit" if k == 1 else "fits"
    return f" with test subjects of both classes (its {k} other {other} tested one class only)"


@fill_doc
def collapse_fragment(metrics: pd.DataFrame, task: str) -> str:
    """A warning naming each model of a binary task whose classifier collapsed (called no test
    subject positive, or every one, in either direction fold by fold) in at least half of its
    fits, or ``""``.

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
            f"of its {c['fits']} fit(s) (seeds &times; folds){_one_class_fits(c)}: it called "
            + " and ".join(ways)
        )
    if not found:
        return ""
    return box(
        "<b>Collapsed classifier</b>:",
        found,
        "Such a classifier's balanced accuracy is 0.5 by construction on those folds, not "
        "chance-level discrimination; its AUC ranks scores that never cross the 0.5 "
        "threshold, and a contrast against it measures a gain over a model that learned no "
        "decision rule.",
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
    missing: set[str] = set()
    for fraction, at in rows.groupby("label_fraction", sort=True):
        # dropna=False: a site whose metric is n/a for every model (one class) keeps its row.
        wide = at.pivot_table(
            index="site", columns="model", values="value", aggfunc="first", dropna=False
        )
        missing |= {str(s) for s in wide.index[wide.isna().all(axis=1)]}
        wide.insert(0, "test subjects", at.groupby("site")["n_subjects"].max())
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
    metric: str, missing: set[str], untested: dict[str, Any], meta: dict[str, Any]
) -> str:
    """What the per-site table pools, and why a site has no number: one class, or no fold."""
    notes = ["Out-of-fold predictions of each site pooled over its folds"]
    if missing:
        why = (
            "its test subjects hold one class only (no AUC)"
            if metric == "auc"
            else "its targets or predictions are constant"
        )
        listed = ", ".join(html.escape(s) for s in sorted(missing))
        notes.append(f"site{'s' if len(missing) > 1 else ''} {listed}: n/a, {why}")
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
    return "\n".join(parts)


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
    runs naming fewer than two sites falls back to subject folds)."""
    asked = settings.get("split", "subject")
    used = meta.get("split_used", asked)
    if used == asked:
        return used
    return f"{used} ({asked} asked: the runs name fewer than two sites)"


def _gain(r: Any) -> str:
    return f"{with_ci(r.difference, r.ci_low, r.ci_high, signed=True)}"


def _quote(task: str, rows: pd.DataFrame) -> str:
    """A task and the rows quoted for it: difference [interval] at each label fraction."""
    cited = " and ".join(
        f"{_gain(r)} at {r.label_fraction:g}"
        for r in rows.sort_values("label_fraction").itertuples(index=False)
    )
    return f"{html.escape(str(task))} {cited}"


def _quote_open(task: str, rows: pd.DataFrame) -> str:
    """Rows whose interval crosses 0, each with its width and both bounds in words: the
    largest loss and the largest gain it leaves open (an interval of +-0.4 AUC is no evidence
    that pretraining does nothing, nor that it does no harm)."""
    cited = " and ".join(
        f"{_gain(r)} at {r.label_fraction:g} ({_both_bounds(r.ci_low, r.ci_high)})"
        if np.isfinite(r.ci_low) and np.isfinite(r.ci_high)
        else f"{_gain(r)} at {r.label_fraction:g}"
        for r in rows.sort_values("label_fraction").itertuples(index=False)
    )
    return f"{html.escape(str(task))} {cited}"


def _both_bounds(low: float, high: float) -> str:
    """An interval's two bounds in words, the loss bound as well as the gain bound."""

    def side(v: float) -> str:
        return f"a loss of {-v:.3f}" if v < 0 else f"a gain of {v:.3f}"

    return (
        f"width {high - low:.3f}: anything from {side(low)} to {side(high)} is compatible "
        "with these folds"
    )


def _one_seed_warning(
    tasks: list[str],
    task_meta: dict[str, dict[str, Any]],
    metrics: pd.DataFrame | None = None,
) -> str:
    """An item of the verdict's list naming the measured tasks evaluated with a single split
    seed, or ``""``.

    One seed is one partition into folds: its intervals rest on a handful of correlated
    fits, and DESIGN asks for several split seeds before a gain or its absence is read. The
    seeds are those of the task's fold metrics where given (metrics without an evaluation
    record, or a seed none of whose fits was written), else its record's ``evaluate.seeds``.
    """
    single: dict[str, str] = {}
    for task in tasks:
        asked = (task_meta.get(task) or {}).get("settings", {}).get("seeds")
        ran = _seeds_run(metrics, task)
        if ran is None or (asked is not None and sorted(asked) == ran):
            if asked is not None and len(asked) == 1:
                single[task] = f"evaluate.seeds: {list(asked)}"
        elif len(ran) == 1:
            recorded = f"; evaluate.seeds: {list(asked)}" if asked is not None else ""
            single[task] = f"seeds in the metrics: {ran[0]}{recorded}"
    if not single:
        return ""
    named = ", ".join(html.escape(str(t)) for t in sorted(single, key=str))
    values = sorted(set(single.values()))
    return (
        f"<b>Only one split seed was run</b> on {named} ("
        f"{html.escape('; '.join(values))}): each interval rests on the folds of a single "
        "partition; evaluate several split seeds before reading these intervals as a result"
    )


def _seeds_run(metrics: pd.DataFrame | None, task: str) -> list[int] | None:
    """The split seeds of ``task``'s fold metrics, sorted; None without them."""
    if metrics is None or not {"task", "seed"} <= set(metrics.columns):
        return None
    seeds = metrics.loc[metrics["task"] == task, "seed"]
    return sorted(int(s) for s in seeds.unique()) if len(seeds) else None


def _fractions_text(fractions: Any) -> str:
    """``label fraction 1`` or ``label fractions 0.1 and 1``."""
    done = sorted({float(f) for f in fractions})
    if len(done) == 1:
        return f"label fraction {done[0]:g}"
    return "label fractions " + ", ".join(f"{f:g}" for f in done[:-1]) + f" and {done[-1]:g}"


_SCRATCH = "lcm-scratch (the same transformer trained from scratch)"
_OPEN = "inconclusive: the interval crosses 0"


def _paired_fractions(
    task: str, contrasts: pd.DataFrame, summary: pd.DataFrame | None
) -> list[float] | None:
    """The label fractions ``task`` evaluated with both lcm and lcm-scratch, sorted; None when
    the summary names the task without one of them (or, without a summary, no contrast row)."""
    if summary is not None and (summary["task"] == task).any():
        at = summary[summary["task"] == task]
        models = set(at["model"].astype(str))
        if not {"lcm", "lcm-scratch"} <= models:
            return None
        return sorted(
            set(at.loc[at["model"] == "lcm", "label_fraction"])
            & set(at.loc[at["model"] == "lcm-scratch", "label_fraction"])
        )
    pre = contrasts[(contrasts["task"] == task) & (contrasts["contrast"] == "pretraining gain")]
    return sorted(pre["label_fraction"].unique()) if len(pre) else None


_FEW_FITS = "too few paired fits (seeds &times; folds), or fits all equal, for an interval"


def _unmeasured_reason(
    task: str,
    contrasts: pd.DataFrame,
    summary: pd.DataFrame | None,
    low: float,
    metrics: pd.DataFrame | None = None,
) -> str:
    """Why a task has no pretraining gain to read (at ``<= low`` labels, or at its lowest
    label fraction when it evaluated none ``<= low``), in words: what was run (the ablation
    that was, at its label fractions; the fractions and fits tried) and what was not."""
    fractions = _paired_fractions(task, contrasts, summary)
    if fractions is None and summary is not None and (summary["task"] == task).any():
        at = summary[summary["task"] == task]
        models = set(at["model"].astype(str))
        if "lcm" not in models and "lcm-scratch" not in models:
            return f"neither lcm nor {_SCRATCH} was evaluated"
        ran = "lcm-scratch" if "lcm" not in models else "lcm"
        where = _fractions_text(at.loc[at["model"] == ran, "label_fraction"])
        missing = "lcm" if ran == "lcm-scratch" else _SCRATCH
        return f"{missing} was not evaluated ({ran} was, at {where})"
    if fractions is None:
        return f"lcm or {_SCRATCH} was not evaluated"
    if not fractions:
        return f"no label fraction was evaluated with both lcm and {_SCRATCH}"
    pre = contrasts[(contrasts["task"] == task) & (contrasts["contrast"] == "pretraining gain")]
    tried = [f for f in fractions if f <= low + 1e-9]
    if not tried:
        done = ", ".join(f"{f:g}" for f in fractions)
        few = _few_fits(task, pre[np.isclose(pre["label_fraction"], fractions[0])], metrics)
        return (
            f"no label fraction &le; {low:g} was evaluated with both lcm and lcm-scratch "
            f"(label fractions: {done}), and at the lowest, {fractions[0]:g}: {few}"
        )
    # Named with the fractions tried: beside a task run at 1.0 only (or without lcm), a
    # sentence-wide "at <= 0.1" would say that one was tried there too.
    at = pre[pre["label_fraction"] <= low + 1e-9]
    return f"at {', '.join(f'{f:g}' for f in tried)} of the labels, {_few_fits(task, at, metrics)}"


def _few_fits(task: str, rows: pd.DataFrame, metrics: pd.DataFrame | None) -> str:
    """Why pretraining-gain ``rows`` without an interval have none, from the fits present:
    one paired fit (``1 seed x 1 fold``), fits whose test folds hold one class (no AUC), or
    fits all equal; :data:`_FEW_FITS` where the fold metrics do not say."""
    if rows.empty or "n" not in rows.columns or metrics is None:
        return _FEW_FITS
    need = {"task", "model", "label_fraction", "seed", "fold", "metric"}
    if not need <= set(metrics.columns):
        return _FEW_FITS
    metric = str(rows["metric"].iloc[0])
    fits = metrics[
        (metrics["task"] == task)
        & (metrics["model"] == "lcm")
        & (metrics["metric"] == metric)
        & metrics["label_fraction"].isin(rows["label_fraction"])
    ]
    if fits.empty:
        return _FEW_FITS
    n, total = int(rows["n"].max()), len(fits[["label_fraction", "seed", "fold"]].drop_duplicates())
    seeds = fits["seed"].nunique()
    folds = int(fits.groupby("seed")["fold"].nunique().max())
    shape = (
        f"{seeds} seed{'' if seeds == 1 else 's'} &times; {folds} fold{'' if folds == 1 else 's'}"
    )
    if n >= 2:
        return f"its {n} paired fits ({shape}) differ by the same amount: no interval"
    text = f"too few paired fits (seeds &times; folds) for an interval: {n} paired fit"
    text += "" if n == 1 else "s"
    if total > n:
        why = "hold one class" if metric == "auc" else "give constant targets or predictions"
        return (
            f"{text} with a {metric_name(metric)} of {total} ({shape}): the other test folds {why}"
        )
    return f"{text} ({shape})"


def _rows_read(
    contrasts: pd.DataFrame, summary: pd.DataFrame | None, low: float
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The pretraining-gain rows the first sentence reads, and the tasks read above ``low``.

    A task is read at its label fractions ``<= low``; one that evaluated none (a small cohort
    run at 1.0 only) is read at its lowest label fraction instead, so a gain or a loss measured
    there still reaches the first sentence. Rows without an interval are left out.

    Returns
    -------
    rows : pandas.DataFrame
        The contrast rows read.
    above : dict
        ``task -> fraction`` of the tasks read at their lowest label fraction, above ``low``.
    """
    pre = contrasts[contrasts["contrast"] == "pretraining gain"]
    parts, above = [pre.iloc[:0]], {}
    for task, at in pre.groupby("task", sort=True):
        fractions = _paired_fractions(task, contrasts, summary) or sorted(at["label_fraction"])
        if fractions[0] > low + 1e-9:
            at = at[np.isclose(at["label_fraction"], fractions[0])]
            if (at["verdict"] != "not evaluated").any():
                above[task] = float(fractions[0])
        else:
            at = at[at["label_fraction"] <= low + 1e-9]
        parts.append(at[at["verdict"] != "not evaluated"])
    return pd.concat(parts), above


def _where_read(above: dict[str, float], tasks: set[str], low: float) -> str:
    """Where the first sentence reads the gain: ``at <= low of the labels``, or, for tasks
    that evaluated no fraction ``<= low``, at their lowest fraction, named."""
    if not above:
        return f"at &le; {low:g} of the labels"
    none = f"none &le; {low:g}, where pretraining is meant to help, was evaluated"
    if set(above) >= tasks:
        fractions = sorted(set(above.values()))
        if len(fractions) == 1:
            return f"{at_labels(fractions[0])} (the lowest label fraction evaluated: {none})"
        return f"at each task's lowest label fraction evaluated ({none})"
    named = " and ".join(
        f"{html.escape(str(t))} ({f:g})" for t, f in sorted(above.items(), key=lambda i: str(i[0]))
    )
    return (
        f"at &le; {low:g} of the labels, and at the lowest label fraction evaluated on {named}, "
        f"which evaluated none &le; {low:g} (where pretraining is meant to help)"
    )


def pretraining_verdict(
    contrasts: pd.DataFrame | None,
    shared: dict[str, float | None],
    low: float = LOW_LABELS,
    summary: pd.DataFrame | None = None,
    task_meta: dict[str, dict[str, Any]] | None = None,
    metrics: pd.DataFrame | None = None,
    oracles: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The report's first sentence: did pretraining help (lcm − lcm-scratch) at few labels?

    A task counts as helped when the interval of its pretraining gain (training variance
    included) lies above 0 at some label fraction ``<= low``, as hurt when it lies below 0
    at one, and as inconclusive when every interval crosses 0. The sentence quotes the rows
    it rests on: the gains where it says "helped", every loss (first when pretraining did not
    help), both where a gain and a loss meet ("mixed"), and every row of an inconclusive task
    with its interval's width and the largest gain not ruled out. When no task gained, the
    sentence opens with that ("did not help" when one was hurt; "no gain was shown" and
    "inconclusive" when every interval crosses 0, which is no evidence of absence). Tasks
    whose synthetic cohort shares no structure with the environmental effects
    (``shared_structure`` 0) are the null: there a gain is not expected, and one is flagged.
    A task that evaluated no label fraction ``<= low`` (a small cohort run at 1.0 only) is
    read at its lowest label fraction instead, which the sentence names, and the paragraph is
    a warning: the gain is meant to show at few labels. A task without a pretraining gain to
    read is named with the reason, so the sentence exists even when no gain was measured.
    Measured tasks run with one split seed are named in a warning in the same box. Where the
    sentence rests on several items (tasks, then checks), its lead is followed by a list of
    them, one per task or check, and its closing sentence (:func:`lcm.report.boxes.box`).

    Null cohorts (``shared_structure`` 0) are not read as inconclusive evidence: their gain is
    compared with each planted cohort's at the same label fraction (:func:`null_comparison`),
    and where the null's gain is as large the sentence says the gain is not distinguishable
    from what the null shows.

    Parameters
    ----------
    contrasts : pandas.DataFrame or None
        :func:`lcm.evaluate.compare.contrast_table` (None: none was computed).
    shared : dict
        ``task -> shared_structure`` of its synthetic cohort (None when not synthetic).
    low : float, default LOW_LABELS
        The largest label fraction read (of a task that evaluated one ``<= low``).
    summary : pandas.DataFrame, optional
        :func:`lcm.evaluate.metrics.summarise`: the tasks, models and label fractions that
        were evaluated, to say which ablation or fraction a task without a gain lacks.
    task_meta : dict, optional
        ``task -> record`` of ``lcm evaluate``
        (:func:`lcm.evaluate.record.read_evaluation_records`): its
        ``settings.seeds`` say which measured tasks ran a single split seed.
    metrics : pandas.DataFrame, optional
        The tidy fold metrics: a from-scratch comparator that collapsed (called no test
        subject positive, or every one, in most fits, :func:`collapsed_fits`) is named, since
        a gain over it is a gain over a model that learned no decision rule.
    oracles : dict, optional
        ``task -> oracle`` (the report's oracle readouts): the null check flags cohorts whose
        oracle on the pipeline's own connectomes differs (not matched in difficulty).

    Returns
    -------
    str
        One HTML box, ``id="verdict"`` (a paragraph, or a ``<div>`` holding a list): a note
        where pretraining plainly helped, else a warning.
    """
    fold_metrics = metrics  # the name is reused below for the metrics' names
    if contrasts is None:
        contrasts = pd.DataFrame(columns=["task", "label_fraction", "contrast", "verdict"])
    rows, above = _rows_read(contrasts, summary, low)
    null = {t for t, s in shared.items() if s is not None and float(s) == 0.0}
    helped, hurt, flat, null_gain = [], [], [], []
    for task, at in rows.groupby("task", sort=True):
        gains, losses = at[at["verdict"] == "gain"], at[at["verdict"] == "loss"]
        if len(gains):
            # The task's other fractions are named too: a gain at one of several is weaker.
            quoted = _quote(task, gains)
            others = at[~at["verdict"].isin(["gain", "loss"])]["label_fraction"]
            if len(others):
                quoted += f" (no clear difference at {', '.join(f'{f:g}' for f in sorted(others))})"
            (null_gain if task in null else helped).append(quoted)
        if len(losses):
            hurt.append(_quote(task, losses))
        # A null cohort is a control, not evidence either way: null_comparison reads it.
        if gains.empty and losses.empty and task not in null:
            flat.append(_quote_open(task, at))
    tasks = set(contrasts["task"]) | (set(summary["task"]) if summary is not None else set())
    reasons: dict[str, list[str]] = {}
    for task in sorted(tasks - set(rows["task"]), key=str):
        reason = _unmeasured_reason(task, contrasts, summary, low, fold_metrics)
        reasons.setdefault(reason, []).append(html.escape(str(task)))
    unmeasured = "; ".join(f"{', '.join(t)}: {reason}" for reason, t in reasons.items())
    what = "(LCM minus the same transformer trained from scratch"
    if len(rows):
        # Binary tasks are read in AUC, continuous ones in Pearson r: name each metric present.
        metrics = sorted({metric_name(m) for m in rows["metric"]})
        metric = " (binary tasks) or ".join(metrics[:2]) if len(metrics) > 1 else metrics[0]
        if len(metrics) > 1:
            metric += " (continuous tasks)"
        what += f", in {metric}, 95 % corrected-resampled-t interval over seeds &times; folds"
    what += ")"
    at_low = _where_read(above, set(rows["task"]), low)
    # The verdict's lead, then its items (a task each, the checks after), then its closing.
    closing = ""
    if helped and hurt:
        lead = f"<b>Pretraining's effect was mixed</b> {at_low} {what}:"
        items = [f"it <b>hurt</b> on {q}" for q in hurt] + [f"it helped on {q}" for q in helped]
        items += [f"{_OPEN} on {q}" for q in flat]
    elif helped:
        n_gain = int((rows["verdict"] == "gain").sum())
        lead = f"<b>Pretraining helped</b> {at_low} {what} on"
        items = helped + [f"<b>no gain was shown</b> ({_OPEN}) on {q}" for q in flat]
        closing = (
            f"A gain in {n_gain} of the {len(rows)} comparisons (task &times; label "
            "fraction), each interval at 95 % with no correction for their number."
        )
    elif hurt:
        anywhere = "on any task where it was measured" if unmeasured else "on any task"
        lead = f"<b>Pretraining did not help</b> {at_low} {anywhere} {what}: it <b>hurt</b> on"
        items = hurt + [f"{_OPEN} on {q}" for q in flat]
    elif flat:
        # Every interval crosses 0: neither a gain nor its absence was shown, and saying
        # "did not help" would read a wide interval as evidence of no effect.
        anywhere = "on any task where it was measured" if unmeasured else "on any task"
        lead = (
            f"<b>No gain from pretraining was shown</b> {at_low} {anywhere} {what}: "
            "<b>inconclusive</b>, every interval crosses 0, on"
        )
        items = flat
        closing = (
            "An interval that crosses 0 is no evidence that pretraining does not help: read "
            "both of its bounds, the largest loss and the largest gain it leaves open."
        )
    elif null_gain:
        lead = f"<b>The pretraining gain was measured on the null cohort(s) only</b> {at_low}"
        lead += f" {what}" + (f"; it was not measured on {unmeasured}" if unmeasured else "")
        lead += "."
        items, unmeasured = [], ""
    else:
        # No "at <= 0.1 of the labels" for the sentence: a baseline-only run, or one at 1.0
        # only, was tried at no fraction; each reason names the fractions its task tried.
        lead = f"<b>The pretraining gain was not measured</b> {what}:"
        items = [f"{', '.join(t)}: {reason}" for reason, t in reasons.items()]
        items = items or ["no task was evaluated"]
        unmeasured = ""
    if null_gain:
        items.append(
            "On the null cohort(s), where pretraining cannot carry information about the "
            "diagnosis, it still 'gained' (" + "; ".join(null_gain) + "): read every gain with "
            "suspicion"
        )
    if unmeasured:
        items.append(f"The pretraining gain was not measured on {unmeasured}")
    labels = {t: str(m.get("label")) for t, m in (task_meta or {}).items() if m.get("label")}
    scan_auc = {
        t: float(o["scan"]["auc"])
        for t, o in (oracles or {}).items()
        if o and isinstance(o.get("scan"), dict) and o["scan"].get("auc") is not None
    }
    compared = null_comparison(rows, shared, labels, scan_auc)
    collapsed = _collapsed_scratch(fold_metrics, rows)
    one_seed = _one_seed_warning(sorted(set(rows["task"]), key=str), task_meta or {}, fold_metrics)
    items += compared + [text for text in (collapsed, one_seed) if text]
    plain = helped and not hurt and not null_gain and not one_seed and not above and not collapsed
    checked = " ".join(compared)
    plain = plain and "not distinguishable" not in checked and "does not separate" not in checked
    return box(lead, items, closing, cls="note" if plain else "warn", box_id="verdict")


# How far apart the pipeline-connectome oracles of a planted and a null cohort may be for the
# two to count as matched in scan-level difficulty.
DIFFICULTY_TOLERANCE = 0.05


def null_comparison(
    rows: pd.DataFrame,
    shared: dict[str, float | None],
    labels: dict[str, str] | None = None,
    scan_auc: dict[str, float] | None = None,
) -> str:
    """The pretraining gain of each planted cohort against each null cohort's (shared_structure
    0) at the same label fraction, in words, or ``""`` without both.

    The cohorts hold different subjects, so the comparison is unpaired: the difference of the
    two mean gains with standard error ``sqrt(se_1^2 + se_2^2)`` of their corrected-t
    standard errors (the contrasts table's ``se``) and t quantiles at the fewer fits' degrees
    of freedom. DESIGN asks the gain to rise with the planted structure and vanish without
    it: a null gain as large as the planted one means the check does not separate the two.
    ``labels`` (``task -> diagnosis``, from the evaluation records) pairs a null cohort only
    with planted cohorts of its own diagnosis where both are known. ``scan_auc``
    (``task -> oracle AUC on the pipeline's own connectomes``) flags a pair whose cohorts are
    not at matched scan-level difficulty (oracles more than :data:`DIFFICULTY_TOLERANCE`
    apart), which DESIGN asks of the comparison.

    Parameters
    ----------
    rows : pandas.DataFrame
        The pretraining-gain contrast rows :func:`pretraining_verdict` reads (``task,
        label_fraction, difference, se, n``); without ``se`` nothing is compared.
    shared : dict
        ``task -> shared_structure`` of its synthetic cohort (None when not synthetic).
    labels : dict, optional
        ``task -> diagnosis``.
    scan_auc : dict, optional
        ``task -> oracle AUC on the pipeline's own connectomes``.

    Returns
    -------
    list of str
        Items of the verdict's list: the null check (its pairs listed where there are
        several), then each pair of cohorts not at matched scan-level difficulty; empty
        without a pair.
    """
    from scipy import stats

    if rows.empty or "se" not in rows.columns:
        return []
    null = {t for t, v in shared.items() if v is not None and float(v) == 0.0}
    planted = {t for t, v in shared.items() if v is not None and float(v) > 0.0}
    said, unmatched = [], {}
    for fraction in sorted(rows["label_fraction"].unique()):
        at = rows[np.isclose(rows["label_fraction"], fraction)].set_index("task")
        for n_task in sorted(null & set(at.index), key=str):
            for p_task in sorted(planted & set(at.index), key=str):
                own, other = (labels or {}).get(n_task), (labels or {}).get(p_task)
                if own and other and own != other:
                    continue  # another diagnosis: not the null of this one
                a, b = at.loc[p_task], at.loc[n_task]
                d = float(a["difference"] - b["difference"])
                se = float(np.hypot(a["se"], b["se"]))
                dof = int(min(a["n"], b["n"])) - 1
                if np.isfinite(se) and se > 0 and dof >= 1:
                    q = float(stats.t.ppf(0.975, dof))
                    low, high = d - q * se, d + q * se
                    diff = with_ci(d, low, high, signed=True)
                else:
                    low = high = float("nan")
                    diff = with_ci(d, np.nan, np.nan, signed=True)
                pair = (
                    f"at {fraction:g}: {html.escape(str(p_task))} "
                    f"(shared_structure {shared[p_task]:g}) {_gain(a)} against "
                    f"{html.escape(str(n_task))} (shared_structure 0) {_gain(b)}, planted "
                    f"&minus; null {diff}"
                )
                if b["difference"] >= a["difference"]:
                    pair += (
                        ": the null cohort gains as much or more, so <b>the gain is not "
                        "distinguishable from what the null shows</b> (the null check does "
                        "not separate planted structure from none)"
                    )
                elif np.isfinite(low) and low > 0:
                    pair += ": the planted cohort gains clearly more than the null"
                else:
                    pair += (
                        ": the interval crosses 0, so <b>the gain is not distinguishable from "
                        "what the null shows</b>"
                    )
                oracle_p, oracle_n = (scan_auc or {}).get(p_task), (scan_auc or {}).get(n_task)
                if (
                    oracle_p is not None
                    and oracle_n is not None
                    and abs(oracle_p - oracle_n) > DIFFICULTY_TOLERANCE
                ):
                    # A property of the two cohorts, not of the fraction: said once.
                    unmatched[(p_task, n_task)] = (
                        f"<b>Not at matched scan-level difficulty</b>: "
                        f"{html.escape(str(p_task))} against {html.escape(str(n_task))} "
                        f"(oracle on the pipeline's connectomes {oracle_p:.3f} against "
                        f"{oracle_n:.3f}, more than {DIFFICULTY_TOLERANCE:g} apart), so the "
                        "comparison also measures the difference in difficulty"
                    )
                said.append(pair)
    if not said:
        return []
    lead = (
        "<b>Null check</b> (the gain must rise with the planted shared structure and vanish "
        "without it; unpaired, the cohorts hold different subjects):"
    )
    return [listed(lead, said), *unmatched.values()]


def _collapsed_scratch(metrics: pd.DataFrame | None, rows: pd.DataFrame) -> str:
    """An item of the verdict's list naming where the from-scratch comparator of the rows
    read collapsed, or ``""``."""
    said = []
    for task, at in rows.groupby("task", sort=True):
        collapsed = collapsed_fits(metrics, str(task))
        for fraction in sorted(at["label_fraction"].unique()):
            c = collapsed.get(("lcm-scratch", float(fraction)))
            if c:
                said.append(
                    f"{html.escape(str(task))} at {fraction:g} ({c['collapsed']} of its "
                    f"{c['fits']} fits{_one_class_fits(c)})"
                )
    if not said:
        return ""
    return (
        "<b>The from-scratch comparator collapsed</b> (called no test subject positive, or "
        "every one) on " + "; ".join(said) + ": the 'gain' there is over a model that learned "
        "no decision rule"
    )


def contrast_display(contrasts: pd.DataFrame) -> pd.DataFrame:
    """The ablation contrasts as shown: one row per task, label fraction and contrast.

    Parameters
    ----------
    contrasts : pandas.DataFrame
        :func:`lcm.evaluate.compare.contrast_table`.

    Returns
    -------
    pandas.DataFrame
        Text cells, the task, label fraction and contrast first.
    """
    rows = []
    for r in contrasts.itertuples(index=False):
        rows.append(
            {
                "task": r.task,
                "label fraction": f"{r.label_fraction:g}",
                "contrast": f"{r.contrast} ({r.model_a} − {r.model_b})",
                f"{metric_name(r.metric)} difference [95% CI]": _gain(r),
                "p": p_text(r.p_value),
                P_HOLM: p_text(getattr(r, "p_holm", np.nan)),
                "fits": r.n,
                "verdict": r.verdict,
            }
        )
    return pd.DataFrame(rows)


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
                f"({verdict}): {metric_name(r.metric)} {_gain(r)}, {p_clause(r.p_value)}"
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
                contrast_display(contrasts),
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


def motion_rows(summary: pd.DataFrame | None, task: str | None = None) -> list[dict[str, Any]]:
    """Where head motion alone (``motion-fd``) matches or beats LCM or every model.

    Per binary task and label fraction with a ``motion-fd`` AUC: its mean and interval, lcm's
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
    auc = summary[(summary["metric"] == "auc") & (summary["model"].astype(str) != "")]
    if task is not None:
        auc = auc[auc["task"] == task]
    out = []
    for (name, fraction), at in auc.groupby(["task", "label_fraction"], sort=True):
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


def _motion_clause(row: dict[str, Any], with_task: bool = True) -> str:
    """One task and label fraction where motion alone matches or beats the models, in words."""
    who = f"{html.escape(row['task'])} {at_labels(row['label_fraction'])}"
    head = f"{who}: " if with_task else f"{at_labels(row['label_fraction'])}: "
    motion = f"motion-fd AUC {summary_ci(row['motion'])}"
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
    "displacement, fitted on the same training folds and scored on the same test subjects as "
    "the models)"
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
            "every model's mean AUC"
            if all(r["beats_all"] for r in rows)
            else "lcm's mean AUC (every model's, where said)"
        )
        parts.append(
            box(
                f"<b>Head motion alone matches or beats the models</b>: {MOTION_WHAT} reaches "
                f"at least {reach} on",
                [_motion_clause(r) for r in rows],
                "Where motion alone does as well, a model may be reading motion rather than "
                "connectivity: read its AUC, and any gain, against motion-fd first (the "
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
                "Whether mean FD alone separates the classes as well as the models is unknown "
                "there.",
            )
        )
    return "\n".join(parts)


def motion_fragment(
    fd_auc: float | None, summary: pd.DataFrame | None = None, task: str | None = None
) -> str:
    """Head motion alone on one task: the out-of-sample ``motion-fd`` model beside the others
    (a warning where it matches or beats lcm or every model), and which class moves more.

    ``fd_auc`` is :func:`lcm.evaluate.compare.motion_confound`'s in-sample AUC of higher FD for
    label 1, used here only to say which class moves more (descriptive: its direction is read
    on every subject). The comparison with the models is the ``motion-fd`` rows of ``summary``:
    fold-mean AUCs on the same folds and test subjects, the direction learned on each training
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

    Returns
    -------
    str
        An HTML paragraph, or ``""`` when motion was neither described nor scored.
    """
    described = fd_auc is not None and np.isfinite(fd_auc)
    scored = (
        summary is not None
        and task is not None
        and ((summary["task"] == task) & (summary["model"] == MOTION_MODEL)).any()
    )
    if not described and not scored:
        return ""
    if described and fd_auc > 0.5:
        who = "the label-1 subjects (patients, for a diagnosis) move more"
    elif described and fd_auc < 0.5:
        who = "the label-0 subjects (controls, for a diagnosis) move more"
    else:
        who = "neither class moves more"
    moves = (
        f" Over all its subjects (in sample, descriptive only; each subject's mean FD "
        f"averaged over its included runs) {who}: the AUC of higher FD for label 1 is "
        f"{fd_auc:.3f}."
        if described
        else ""
    )
    rows = motion_rows(summary, task) if scored else []
    if rows:
        return box(
            f"<b>Motion confound check</b>: {MOTION_WHAT} matches or beats the models (the "
            "motion-fd rows of the table below)",
            [_motion_clause(r, with_task=False) for r in rows],
            "A model at or below motion alone may be reading motion rather than connectivity."
            + moves,
        )
    if scored:
        return (
            f'<p class="note"><b>Motion confound check</b>: {MOTION_WHAT} is the motion-fd row '
            "of the table below; every model's mean AUC here is above it, and the 'over head "
            "motion alone' contrast says whether lcm's is clearly so." + moves + "</p>"
        )
    return (
        f'<p class="note"><b>Motion confound check</b>: head motion alone was not scored out '
        f"of sample on this task.{moves}</p>"
    )


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
