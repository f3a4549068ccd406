"""The report's first sentence: whether pretraining helped at few labels (LCM against the same
transformer trained from scratch), and the null check of the synthetic cohorts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lcm.report.boxes import box, listed
from lcm.report.findings import collapsed_fits, one_class_fits
from lcm.report.tables import metric_name, with_ci
from lcm.report.wording import LOW_LABELS, at_labels, fractions_text, gain_text


def _quote(task: str, rows: pd.DataFrame) -> str:
    """A task and the rows quoted for it: difference [interval] at each label fraction."""
    cited = " and ".join(
        f"{gain_text(r)} at {r.label_fraction:g}"
        for r in rows.sort_values("label_fraction").itertuples(index=False)
    )
    return f"{html.escape(str(task))} {cited}"


def _quote_open(task: str, rows: pd.DataFrame) -> str:
    """Rows whose interval crosses 0, each with its width and both bounds in words: the
    largest loss and the largest gain it leaves open (an interval of +-0.4 AUC is no evidence
    that pretraining does nothing, nor that it does no harm)."""
    cited = " and ".join(
        f"{gain_text(r)} at {r.label_fraction:g} ({_both_bounds(r.ci_low, r.ci_high)})"
        if np.isfinite(r.ci_low) and np.isfinite(r.ci_high)
        else f"{gain_text(r)} at {r.label_fraction:g}"
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
        where = fractions_text(at.loc[at["model"] == ran, "label_fraction"])
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
        lowest = pre[np.isclose(pre["label_fraction"], fractions[0])]
        few = _few_fits(task, lowest, metrics, fractions[:1])
        return (
            f"no label fraction &le; {low:g} was evaluated with both lcm and lcm-scratch "
            f"(label fractions: {done}), and at the lowest, {fractions[0]:g}: {few}"
        )
    # Named with the fractions tried: beside a task run at 1.0 only (or without lcm), a
    # sentence-wide "at <= 0.1" would say that one was tried there too.
    at = pre[pre["label_fraction"] <= low + 1e-9]
    few = _few_fits(task, at, metrics, tried)
    return f"at {', '.join(f'{f:g}' for f in tried)} of the labels, {few}"


def _few_fits(
    task: str,
    rows: pd.DataFrame,
    metrics: pd.DataFrame | None,
    fractions: Sequence[float] = (),
) -> str:
    """Why pretraining-gain ``rows`` without an interval have none, from the fits present:
    one paired fit (``1 seed x 1 fold``), fits whose test folds hold one class (no AUC), or
    fits all equal; :data:`_FEW_FITS` where the fold metrics do not say. Without ``rows``
    (no fit of the two gave a value: the contrasts list none) the ``fractions`` tried are
    read from the fold metrics alone."""
    need = {"task", "model", "label_fraction", "seed", "fold", "metric"}
    if metrics is None or not need <= set(metrics.columns):
        return _FEW_FITS
    if len(rows) and "n" in rows.columns:
        metric, n, fractions = (
            str(rows["metric"].iloc[0]),
            int(rows["n"].max()),
            rows["label_fraction"],
        )
    elif rows.empty and len(fractions):
        # Test folds of one class give lcm and lcm-scratch no AUC: no contrast row at all.
        names = set(metrics.loc[metrics["task"] == task, "metric"])
        metric, n = ("auc" if "auc" in names else "pearson_r"), 0
    else:
        return _FEW_FITS
    fits = metrics[
        (metrics["task"] == task)
        & (metrics["model"] == "lcm")
        & (metrics["metric"] == metric)
        & metrics["label_fraction"].isin(list(fractions))
    ]
    if fits.empty:
        return _FEW_FITS
    total = len(fits[["label_fraction", "seed", "fold"]].drop_duplicates())
    seeds = fits["seed"].nunique()
    folds = int(fits.groupby("seed")["fold"].nunique().max())
    shape = (
        f"{seeds} seed{'' if seeds == 1 else 's'} &times; {folds} fold{'' if folds == 1 else 's'}"
    )
    if n >= 2:
        return f"its {n} paired fits ({shape}) differ by the same amount: no interval"
    text = f"too few paired fits (seeds &times; folds) for an interval: {n} paired fit"
    text += "" if n == 1 else "s"
    article = "an" if metric == "auc" else "a"  # "an AUC", "a Pearson r"
    if n == 0:
        why = "holds one class" if metric == "auc" else "gives constant targets or predictions"
        return (
            f"none of its {total} fits ({shape}) gave {article} {metric_name(metric)}: every "
            f"test fold {why}"
        )
    if total > n:
        why = "hold one class" if metric == "auc" else "give constant targets or predictions"
        return (
            f"{text} with {article} {metric_name(metric)} of {total} ({shape}): the other test "
            f"folds {why}"
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
    headline: pd.DataFrame | None = None,
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
        The tidy fold metrics: a from-scratch comparator whose threshold collapsed (called no
        test subject positive, or every one, in most fits, :func:`collapsed_fits`) is named
        with its AUC; a contrast read in a threshold's metric there is no plain verdict.
    oracles : dict, optional
        ``task -> oracle`` (the report's oracle readouts): the null check flags cohorts whose
        oracle on the pipeline's own connectomes differs (not matched in difficulty).
    headline : pandas.DataFrame, optional
        :func:`lcm.evaluate.compare.headline_table`: where pretraining helped but lcm's mean
        is still below the best baseline's at that label fraction, the box says so and warns
        (a gain over its own ablation is no gain over the linear models); so it does, with
        the difference and its verdict, for every other task read where lcm's mean is below.

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
    gained: list[tuple[str, float]] = []  # (task, label fraction) of each gain read
    for task, at in rows.groupby("task", sort=True):
        gains, losses = at[at["verdict"] == "gain"], at[at["verdict"] == "loss"]
        if task not in null:
            gained += [(str(task), float(f)) for f in gains["label_fraction"]]
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
    collapsed, threshold_read = _collapsed_scratch(fold_metrics, rows)
    one_seed = _one_seed_warning(sorted(set(rows["task"]), key=str), task_meta or {}, fold_metrics)
    below = _below_baselines(gained, headline)
    below += _not_above_baselines(headline, set(gained), low)
    items += below + compared + [text for text in (collapsed, one_seed) if text]
    plain = helped and not hurt and not null_gain and not one_seed and not above and not below
    plain = plain and not threshold_read
    checked = " ".join(compared)
    plain = plain and "not distinguishable" not in checked and "does not separate" not in checked
    return box(lead, items, closing, cls="note" if plain else "warn", box_id="verdict")


def _below_baselines(gained: list[tuple[str, float]], headline: pd.DataFrame | None) -> list[str]:
    """Items for the gains over lcm-scratch where lcm's mean stays below the best baseline's
    (the headline's row of ``lcm`` at that task and label fraction).

    "Pretraining helped" opened the page as a plain note while lcm scored below the linear
    models it is measured against: the gain was over its own ablation only.
    """
    if headline is None or headline.empty or not gained:
        return []
    rows = headline[headline["model"] == "lcm"]
    items = []
    for task, fraction in gained:
        at = rows[(rows["task"].astype(str) == task) & np.isclose(rows["label_fraction"], fraction)]
        if at.empty:
            continue
        row = at.iloc[0]
        if pd.notna(row["baseline_mean"]) and row["model_mean"] < row["baseline_mean"]:
            items.append(
                f"{html.escape(task)} at label fraction {fraction:g}: lcm "
                f"({row['model_mean']:.3f} {html.escape(str(row['metric']))}) still scored "
                f"<b>below the best baseline</b>, {html.escape(str(row['best_baseline']))} "
                f"({row['baseline_mean']:.3f}): a gain over lcm-scratch, no gain over the "
                "linear models"
            )
    return items


def _not_above_baselines(
    headline: pd.DataFrame | None, gained: set[tuple[str, float]], low: float
) -> list[str]:
    """Items for lcm's rows at few labels (``<= low``, else a task's lowest fraction) whose
    mean is below the best baseline's, other than the gains :func:`_below_baselines` names.

    "No gain from pretraining was shown" opened the page while lcm was clearly worse than
    logistic regression (-0.067 AUC [-0.106, -0.029]): the first box read lcm against its
    own ablation only, and the loss to the linear model waited in the headline below.
    """
    need = {"difference", "difference_ci_low", "difference_ci_high", "verdict"}
    if headline is None or headline.empty or not need <= set(headline.columns):
        return []
    rows = headline[(headline["model"] == "lcm") & headline["baseline_mean"].notna()]
    items = []
    for task, at in rows.groupby("task", sort=True):
        few = at[at["label_fraction"] <= low + 1e-9]
        few = few if len(few) else at[at["label_fraction"] == at["label_fraction"].min()]
        for row in few.sort_values("label_fraction").itertuples(index=False):
            fraction = float(row.label_fraction)
            if (str(task), fraction) in gained or not row.model_mean < row.baseline_mean:
                continue
            said = "<b>worse</b>" if row.verdict == "worse" else html.escape(str(row.verdict))
            difference = (
                f"{row.difference:+.3f} [{row.difference_ci_low:+.3f}, "
                f"{row.difference_ci_high:+.3f}]"
                if np.isfinite(row.difference_ci_low)
                else f"{row.difference:+.3f}"
            )
            items.append(
                f"{html.escape(str(task))} at label fraction {fraction:g}: lcm "
                f"({row.model_mean:.3f} {metric_name(str(row.metric))}) scored <b>below the "
                f"best baseline</b>, {html.escape(str(row.best_baseline))} "
                f"({row.baseline_mean:.3f}), difference {difference}: {said}"
            )
    return items


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
        several), then each pair of cohorts not at matched scan-level difficulty, or whose
        difficulty could not be compared (an oracle missing); empty without a pair.
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
                    f"(shared_structure {shared[p_task]:g}) {gain_text(a)} against "
                    f"{html.escape(str(n_task))} (shared_structure 0) {gain_text(b)}, planted "
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
                if oracle_p is None or oracle_n is None:
                    # Silence here read as "matched": say the check could not be made.
                    lacking = [t for t, o in ((p_task, oracle_p), (n_task, oracle_n)) if o is None]
                    unmatched[(p_task, n_task)] = (
                        f"<b>Scan-level difficulty not checked</b>: "
                        f"{html.escape(str(p_task))} against {html.escape(str(n_task))} (no "
                        "oracle on the pipeline's connectomes for "
                        f"{', '.join(html.escape(str(t)) for t in lacking)}: give lcm report "
                        "--ground-truth and --store), so the comparison may also measure a "
                        "difference in difficulty"
                    )
                elif abs(oracle_p - oracle_n) > DIFFICULTY_TOLERANCE:
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


def _collapsed_scratch(metrics: pd.DataFrame | None, rows: pd.DataFrame) -> tuple[str, bool]:
    """An item of the verdict's list naming where the from-scratch comparator of the rows
    read collapsed (``""`` where it did not), and whether a contrast read there depends on
    its threshold (then no plain verdict stands).

    A collapse is of the 0.5 threshold: the comparator may still rank subjects (its AUC is
    given), so a contrast in AUC stands; one in balanced accuracy, sensitivity or specificity
    does not. It once said the comparator "learned no decision rule" beside fold AUCs of 0.6.
    """
    said, threshold_read = [], False
    for task, at in rows.groupby("task", sort=True):
        collapsed = collapsed_fits(metrics, str(task))
        for fraction in sorted(at["label_fraction"].unique()):
            c = collapsed.get(("lcm-scratch", float(fraction)))
            if not c:
                continue
            read = set(at.loc[at["label_fraction"] == fraction, "metric"].astype(str))
            threshold_read = threshold_read or bool(read - {"auc"})
            auc = _mean_metric(metrics, str(task), "lcm-scratch", float(fraction), "auc")
            ranks = f", its mean AUC {auc:.3f}" if auc is not None else ""
            said.append(
                f"{html.escape(str(task))} at {fraction:g} ({c['collapsed']} of its "
                f"{c['fits']} fits{one_class_fits(c)}{ranks})"
            )
    if not said:
        return "", False
    return (
        "<b>The from-scratch comparator's threshold collapsed</b> (it called no test subject "
        "positive, or every one) on " + "; ".join(said) + ": its scores may still rank "
        "subjects, so a gain in AUC over it stands, while its balanced accuracy, sensitivity "
        "and specificity there measure the threshold, not discrimination"
    ), threshold_read


def _mean_metric(
    metrics: pd.DataFrame | None, task: str, model: str, fraction: float, metric: str
) -> float | None:
    """The mean of ``metric`` over a model's fits (seeds x folds) at a label fraction, or None."""
    if metrics is None or not {"task", "model", "label_fraction", "metric"} <= set(metrics.columns):
        return None
    at = metrics[
        (metrics["task"] == task)
        & (metrics["model"] == model)
        & (metrics["label_fraction"] == fraction)
        & (metrics["metric"] == metric)
    ]["value"].dropna()
    return float(at.mean()) if len(at) else None
