"""Comparisons the report states: LCM against the best baseline, the control against chance,
the ablation contrasts, per-site performance and the motion confound check.

The paired test resamples test *subjects* (stratified by class for a binary task), one draw per
subject shared by every seed and fold that tests it, recomputes both models' fold metric on the
same resample, and averages the difference over folds and seeds — the same statistic as the
headline table's mean. The best
baseline is the one with the highest mean at that label fraction among those scored on the most
fits (:func:`best_baseline`), chosen after the fact, which favours the baselines: a win of LCM
against it is a win against each of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lcm.evaluate.factories import permuted_model
from lcm.evaluate.kinds import recorded_kinds, task_kind
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    corrected_t_interval,
    fold_test_train_ratio,
    summarise,
)
from lcm.evaluate.motion import MOTION_MODEL, subject_mean_fd
from lcm.evaluate.registry import BASELINE_MODELS, CONTROL_MODELS, seed_dependent

log = logging.getLogger(__name__)

HEADLINE_METRIC = {"binary": "auc", "continuous": "pearson_r"}
CHANCE = {"auc": 0.5, "pearson_r": 0.0}
# How far apart two models' values of a headline metric can be.
DIFFERENCE_BOUND = {"auc": 1.0, "pearson_r": 2.0}
HEADLINE_COLUMNS = (
    "task",
    "label_fraction",
    "metric",
    "model",
    "model_mean",
    "model_ci_low",
    "model_ci_high",
    "best_baseline",
    "baseline_mean",
    "baseline_ci_low",
    "baseline_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "p_value",
    "p_holm",
    "verdict",
    "set_aside",
)


def holm(p_values: np.ndarray | pd.Series) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` over the finite ones (NaN stays NaN).

    The family is every finite p given: the report adjusts over every row of its headline
    table, and over every row of its contrasts table, the rows it states.

    Parameters
    ----------
    p_values : numpy.ndarray or pandas.Series
        The family's p-values; NaN for a row without one.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, in the order given, at most 1.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if not len(finite):
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


# Bootstrap replicates weighed at once: bounds the per-fold weight copies to ~this x subjects.
_REPLICATE_BLOCK = 256


def _weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of ``scores`` under each row of subject weights ``(n_boot, n)``.

    Sort-based: the negatives are sorted once, and each positive's weight multiplies the
    cumulative weight of the negatives below its score plus half of those tied with it, so a
    replicate costs O(n), not the O(n_pos x n_neg) of the pairwise comparison matrix. With
    integer weights (bootstrap counts) every sum is a multiple of 0.5 and exact.
    """
    pos, neg = y == 1, y == 0
    order = np.argsort(scores[neg], kind="stable")
    sorted_neg = scores[neg][order]
    below = np.searchsorted(sorted_neg, scores[pos], side="left")
    upto = np.searchsorted(sorted_neg, scores[pos], side="right")
    w_pos, w_neg = weights[:, pos], weights[:, neg][:, order]
    cum = np.zeros((len(weights), len(sorted_neg) + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    num = (w_pos * (0.5 * (cum[:, below] + cum[:, upto]))).sum(axis=1)
    return num / (w_pos.sum(axis=1) * cum[:, -1])


def _weighted_r(pred: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of ``pred`` and ``y`` under each row of weights ``(n_boot, n)``."""
    w = weights / weights.sum(axis=1, keepdims=True)
    mp, my = w @ pred, w @ y
    dp, dy = pred[None, :] - mp[:, None], y[None, :] - my[:, None]
    cov = (w * dp * dy).sum(axis=1)
    var = np.sqrt((w * dp**2).sum(axis=1) * (w * dy**2).sum(axis=1))
    return np.divide(cov, var, out=np.full(len(w), np.nan), where=var > 0)


def _subject_weights(strata: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Subject weights ``(n_boot, n_subjects)``: how often each subject is drawn, per stratum.

    ``strata`` holds one stratum per subject; each stratum keeps its size in every replicate.
    The counts are whole numbers below 2**24, exact in float32 (half the memory of float64;
    callers widen a block of replicates at a time).
    """
    n = len(strata)
    counts = np.zeros((n_boot, n), dtype=np.float32)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        for start in range(0, n_boot, _REPLICATE_BLOCK):
            block = counts[start : start + _REPLICATE_BLOCK]
            flat = np.arange(len(block))[:, None] * n + members[draws[start : start + len(block)]]
            block += np.bincount(flat.ravel(), minlength=block.size).reshape(block.shape)
    return counts


@dataclass(frozen=True)
class PairedResult:
    """Mean difference ``a - b`` of a fold metric, its 95 % bootstrap CI and two-sided p.

    ``fold_differences`` holds the observed difference of each fold used (seed x fold);
    ``no_interval`` says why there is no interval when the reason is not the folds' (e.g.
    :data:`TOO_FEW_SUBJECTS`), else ``""``.
    """

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_folds: int
    fold_differences: tuple[float, ...] = ()
    no_interval: str = ""


# Distinct test subjects per class, pooled over the folds (a continuous task: per fold, whose
# r needs three points), below which the paired bootstrap cannot vary (see paired_bootstrap).
MIN_BOOTSTRAP_SUBJECTS = 3
# The headline's verdict when the observed difference stands without an interval for that.
TOO_FEW_SUBJECTS = "too few test subjects per class"
# Resamples of the paired bootstrap (the default of `lcm report --n-boot` too).
N_BOOT = 2000


def _rows_at(predictions: pd.DataFrame, task: str, fraction: float) -> pd.DataFrame:
    """The predictions of one task at one label fraction."""
    return predictions[
        (predictions["task"] == task) & np.isclose(predictions["label_fraction"], fraction)
    ]


FitKey = tuple[int, int]  # (seed, fold) of one fit in the tables


def _test_sets(rows: pd.DataFrame) -> dict[FitKey, frozenset[str]]:
    """The test subjects (``dataset/subject``) of each ``(seed, fold)`` of ``rows``.

    ``rows``: the predictions of one task at one label fraction, every model (the models of
    a ``(seed, fold)`` share its test fold).
    """
    if rows.empty or not {"dataset", "subject", "seed", "fold"} <= set(rows.columns):
        return {}
    subjects = rows["dataset"].astype(str) + "/" + rows["subject"].astype(str)
    return {
        (int(s), int(f)): frozenset(g)
        for (s, f), g in subjects.groupby([rows["seed"], rows["fold"]], sort=True)
    }


def _paired_keys(
    keys_a: Iterable[FitKey],
    keys_b: Iterable[FitKey],
    model_a: str,
    model_b: str,
    test_sets: Mapping[FitKey, frozenset[str]],
) -> list[tuple[FitKey, FitKey]]:
    """The ``(seed, fold)`` fits of ``model_a`` and ``model_b`` compared with each other, in order.

    Both models fitted at a ``(seed, fold)``: those two fits. A model whose fit ignores its seed
    (registry's ``seed_dependent`` False: CPM) was not refitted where a later seed repeated an
    earlier seed's data (split: site at label fraction 1, see
    :func:`lcm.evaluate.protocol.evaluate_task`): its one fit of that test fold, at the earliest
    seed, stands for every seed, so it pairs with each seed's fit of the other model. It is
    found by its test subjects (``test_sets``), not by its fold number: leave-site-out numbers
    the same site differently per seed. Pairing by fold only (seeds averaged first) would drop
    the other model's training variance from the difference, and leaving those seeds unpaired
    would drop its later seeds. Each pair holds at least one fit of its own ``(seed, fold)``,
    so two such models pair once per test fold, never once per seed: a fit is never counted
    twice against itself, and its own interval (:func:`lcm.evaluate.metrics.summarise`) has its
    one fit per fold. A model that depends on its seed (or is not registered) stands for no
    other seed: a missing fit of it is missing.

    Parameters
    ----------
    keys_a, keys_b : iterable of (int, int)
        The ``(seed, fold)`` of each fit of ``model_a`` and of ``model_b``.
    model_a, model_b : str
        The models' names.
    test_sets : mapping of (int, int) to frozenset of str
        The test subjects of each ``(seed, fold)`` (:func:`_test_sets`); a key without them
        gets no stand-in.

    Returns
    -------
    list of ((int, int), (int, int))
        ``(key of a, key of b)`` per compared pair, sorted by the pair's own ``(seed, fold)``.
    """
    a, b = set(keys_a), set(keys_b)

    def stand_in(keys: set[FitKey], model: str, key: FitKey) -> FitKey | None:
        test = test_sets.get(key)
        if seed_dependent(model) or test is None:
            return None
        return min((k for k in keys if test_sets.get(k) == test), default=None)

    pairs = []
    for key in sorted(a | b):
        key_a = key if key in a else stand_in(a, model_a, key)
        key_b = key if key in b else stand_in(b, model_b, key)
        if key_a is not None and key_b is not None:
            pairs.append((key_a, key_b))
    return pairs


def paired_bootstrap(
    predictions: pd.DataFrame,
    task: str,
    fraction: float,
    model_a: str,
    model_b: str,
    n_boot: int = N_BOOT,
    seed: int = 0,
    kind: str | None = None,
) -> PairedResult:
    """Paired bootstrap of ``metric(model_a) - metric(model_b)`` over test subjects.

    Each replicate draws every test subject once, with replacement (within its class for a
    binary task), and that one weight serves every seed and fold that tests the subject: the
    seeds re-test the same subjects, so drawing them again per seed would count each subject
    as several independent ones and narrow the interval as seeds are added. Both models' fold
    metric is recomputed under the weights and the difference averaged over seeds x folds,
    the statistic of the headline table's mean. The fitted models are held fixed: the
    interval is over test subjects only.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table.
    task : str
    fraction : float
        Label fraction.
    model_a, model_b : str
    n_boot : int, default N_BOOT
    seed : int, default 0
    kind : str, optional
        The task's recorded kind (:func:`task_kind`); guessed from ``y_true`` when None.

    Returns
    -------
    PairedResult
        NaN everywhere when the two models share no fold whose metric is defined (both
        classes among its test subjects; a continuous task: three subjects). With fewer than
        :data:`MIN_BOOTSTRAP_SUBJECTS` test subjects of a class over those folds, the observed
        difference without an interval (``no_interval`` is :data:`TOO_FEW_SUBJECTS`).

    Notes
    -----
    The minimum applies to the subjects pooled over folds, since each subject's weight is
    drawn from its class across every fold: with 5 folds and 10 positives, a fold's 2
    positives get weights 0, 1, 2, ... like the others. A replicate that draws none of a
    fold's positives (or negatives) leaves that fold's AUC undefined, and it averages the
    other folds; one with every fold undefined is dropped.
    """
    rows = _rows_at(predictions, task, fraction)
    kind = task_kind(rows, kind) if len(rows) or kind else "binary"
    stat = _weighted_auc if kind == "binary" else _weighted_r
    fits, observed = [], []  # per usable (seed, fold): its subjects, labels and both scores
    by_fit = {
        model: {
            (int(s), int(f)): g.reset_index(drop=True)
            for (s, f), g in rows[rows["model"] == model].groupby(["seed", "fold"], sort=True)
        }
        for model in (model_a, model_b)
    }
    # A model that ignores its seed pairs its one fit of a fold with each seed (_paired_keys).
    pairs = _paired_keys(by_fit[model_a], by_fit[model_b], model_a, model_b, _test_sets(rows))
    for key_a, key_b in pairs:
        a, b = by_fit[model_a][key_a], by_fit[model_b][key_b]
        if len(a) == 0 or len(a) != len(b) or not (a["subject"] == b["subject"]).all():
            continue
        y = a["y_true"].to_numpy()
        subjects = (a["dataset"] + "/" + a["subject"]).to_numpy()
        if kind == "binary" and len(np.unique(y)) < 2:
            continue  # AUC undefined on a one-class fold (leave-site-out)
        if kind != "binary" and len(np.unique(subjects)) < MIN_BOOTSTRAP_SUBJECTS:
            continue  # r of two subjects is +-1 whatever the model
        strata = y.astype(int) if kind == "binary" else np.zeros(len(y), dtype=int)
        sa, sb = a["prediction"].to_numpy(), b["prediction"].to_numpy()
        ones = np.ones((1, len(y)))
        observed.append(float(stat(sa, y, ones)[0] - stat(sb, y, ones)[0]))
        fits.append((subjects, strata, y, sa, sb))
    if not fits:  # no fold with two classes (or three subjects) to compare on
        nan = float("nan")
        return PairedResult(nan, nan, nan, nan, 0)
    every = np.concatenate([f[0] for f in fits])
    codes, first = np.unique(every, return_index=True)
    pooled = np.concatenate([f[1] for f in fits])[first]  # each subject's class, once
    nan = float("nan")
    # Resampling one or two subjects of a class always draws them again: a zero-width
    # interval and p = 1/n_boot, a 'worse' verdict from 6 subjects. The difference is kept.
    if np.bincount(pooled).min() < MIN_BOOTSTRAP_SUBJECTS:
        mean = float(np.mean(observed))
        return PairedResult(mean, nan, nan, nan, len(fits), tuple(observed), TOO_FEW_SUBJECTS)
    weights = _subject_weights(pooled, n_boot, np.random.default_rng(seed))
    diffs = []
    with np.errstate(invalid="ignore", divide="ignore"):  # a class drawn 0 times in a fold
        for subjects, _, y, sa, sb in fits:
            columns = np.searchsorted(codes, subjects)
            diff = np.empty(n_boot)
            for start in range(0, n_boot, _REPLICATE_BLOCK):
                w = weights[start : start + _REPLICATE_BLOCK, columns].astype(np.float64)
                diff[start : start + len(w)] = stat(sa, y, w) - stat(sb, y, w)
            diffs.append(diff)
    stacked = np.stack(diffs)
    usable = np.isfinite(stacked).any(axis=0)  # a replicate with every fold undefined: dropped
    if not usable.any():
        return PairedResult(float(np.mean(observed)), nan, nan, nan, len(fits), tuple(observed))
    boot = np.nanmean(stacked[:, usable], axis=0)
    low, high = np.quantile(boot, [0.025, 0.975])
    p = 2.0 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
    return PairedResult(
        difference=float(np.mean(observed)),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(min(1.0, max(p, 1.0 / n_boot))),
        n_folds=len(fits),
        fold_differences=tuple(observed),
    )


def headline_difference(
    predictions: pd.DataFrame,
    task: str,
    fraction: float,
    model_a: str,
    model_b: str,
    n_boot: int = N_BOOT,
    seed: int = 0,
    kind: str | None = None,
) -> PairedResult:
    """``metric(model_a) - metric(model_b)`` with an interval for both sources of variance.

    The paired bootstrap (:func:`paired_bootstrap`) holds the fitted models fixed: with
    models whose quality varies from fit to fit, its interval alone called a difference
    between equally good models in a quarter to a half of null simulations. The corrected
    resampled t over the same folds' differences (:func:`corrected_t_interval`) includes
    that training variance. The interval returned spans both (the lower of the two lows, the
    higher of the two highs) and ``p`` is the larger p, so a verdict needs both to agree.
    Without a t interval (fewer than two folds, or folds all equal) there is no interval.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table.
    task : str
        Task name.
    fraction : float
        Label fraction.
    model_a, model_b : str
        The models compared (registered names).
    n_boot : int, default N_BOOT
        Bootstrap replicates (:func:`paired_bootstrap`).
    seed : int, default 0
        Seed of the bootstrap.
    kind : str, optional
        The task's recorded kind (:func:`task_kind`); guessed from ``y_true`` when None.

    Returns
    -------
    PairedResult
        Interval and p NaN when there is no interval; ``no_interval`` as the bootstrap's.
    """
    boot = paired_bootstrap(predictions, task, fraction, model_a, model_b, n_boot, seed, kind)
    rows = _rows_at(predictions, task, fraction)
    _, t_low, t_high, t_p = corrected_t_interval(
        np.asarray(boot.fold_differences, dtype=float), fold_test_train_ratio(rows)
    )
    nan = float("nan")
    if not (np.isfinite(t_low) and np.isfinite(boot.ci_low)):
        return PairedResult(
            boot.difference,
            nan,
            nan,
            nan,
            boot.n_folds,
            boot.fold_differences,
            boot.no_interval,
        )
    return PairedResult(
        difference=boot.difference,
        ci_low=float(min(boot.ci_low, t_low)),
        ci_high=float(max(boot.ci_high, t_high)),
        p_value=float(max(boot.p_value, t_p)),
        n_folds=boot.n_folds,
        fold_differences=boot.fold_differences,
    )


def _summary_row(
    summary: pd.DataFrame, task: str, model: str, fraction: float, metric: str
) -> pd.Series | None:
    at = summary[
        (summary["task"] == task)
        & (summary["model"] == model)
        & np.isclose(summary["label_fraction"], fraction)
        & (summary["metric"] == metric)
    ]
    return at.iloc[0] if len(at) else None


def best_baseline(
    summary: pd.DataFrame,
    task: str,
    fraction: float,
    metric: str,
    baselines: list[str],
    fits: Mapping[str, int] | None = None,
) -> tuple[str | None, str]:
    """The baseline the headline compares with: the highest mean among those scored on the
    largest share of their fits (seeds x folds with a finite value, the summary's ``n``, of
    the fits each ran).

    A mean over fewer fits is not the same statistic: cpm's constant predictions have no
    Pearson r in 2 of 3 folds, and its mean over the one fold left was crowned above ridge's
    over all three. A baseline with a smaller share of usable fits than another is not
    crowned; one with a higher mean is set aside, and said so. The share, not the count: a
    model that ignores its seed runs one fit per fold where the others run one per seed and
    fold (:func:`lcm.evaluate.registry.seed_dependent`), every one of them usable.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` of the metrics.
    task : str
    fraction : float
        Label fraction.
    metric : str
        The task's headline metric.
    baselines : list of str
        The baselines evaluated on the task.
    fits : mapping of str to int, optional
        The fits each baseline ran (:func:`fits_run`); a baseline not in it (or None: every
        baseline) counts as having run as many as the most usable fits of any.

    Returns
    -------
    best : str or None
        The baseline crowned; None when no baseline has a finite mean.
    set_aside : str
        Each baseline with a higher mean on a smaller share of its fits, in words (``"cpm:
        mean 0.612 on 1 of 3 fits"``, joined by ``"; "``), or ``""``.
    """
    scored = {
        b: (float(r["mean"]), int(r["n"]))
        for b in baselines
        if (r := _summary_row(summary, task, b, fraction, metric)) is not None
        and np.isfinite(r["mean"])
    }
    if not scored:
        return None, ""
    most = max(n for _, n in scored.values())
    ran = {b: max(int((fits or {}).get(b, most)), n) for b, (_, n) in scored.items()}
    share = {b: n / ran[b] for b, (_, n) in scored.items()}
    top = max(share.values())
    full = {b: mean for b, (mean, _) in scored.items() if np.isclose(share[b], top)}
    best = max(full, key=full.get)
    aside = [
        f"{b}: mean {mean:.3f} on {n} of {ran[b]} fits"
        for b, (mean, n) in sorted(scored.items())
        if b not in full and mean > full[best]
    ]
    return best, "; ".join(aside)


def fits_run(predictions: pd.DataFrame, task: str, fraction: float) -> dict[str, int]:
    """The fits each model ran on a task at a label fraction: its distinct ``(seed, fold)``
    in the out-of-fold predictions, a fit whose metric is undefined (constant predictions)
    counted too.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Out-of-fold predictions (``task, model, label_fraction, seed, fold, ...``).
    task : str
    fraction : float
        Label fraction.

    Returns
    -------
    dict
        ``model -> fits``.
    """
    at = predictions[
        (predictions["task"] == task) & np.isclose(predictions["label_fraction"], fraction)
    ]
    pairs = at[["model", "seed", "fold"]].drop_duplicates()
    return {str(m): int(n) for m, n in pairs.groupby("model").size().items()}


def headline_table(
    summary: pd.DataFrame,
    predictions: pd.DataFrame,
    model: str = "lcm",
    n_boot: int = N_BOOT,
    seed: int = 0,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``model`` against the best baseline, per task and label fraction.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` of the metrics.
    predictions : pandas.DataFrame
    model : str, default "lcm"
        Falls back to the best model of a task when ``model`` was not evaluated on it
        (a baseline-only task): the row then compares nothing and says so.
    n_boot : int, default N_BOOT
        Bootstrap replicates of each row's difference (:func:`headline_difference`).
    seed : int, default 0
        Seed of the bootstrap.
    kinds : mapping of str to str, optional
        ``task -> kind`` as ``lcm evaluate`` recorded it
        (:func:`lcm.evaluate.kinds.recorded_kinds`); a task not in it is guessed
        (:func:`task_kind`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`HEADLINE_COLUMNS`; the difference's interval and p are those of
        :func:`headline_difference` (test subjects and training variance); ``verdict`` is
        ``better`` (difference CI above 0), ``worse`` (below 0), ``no clear difference``,
        ``too few test subjects per class`` (:data:`TOO_FEW_SUBJECTS`: fewer than
        :data:`MIN_BOOTSTRAP_SUBJECTS` of a class over all folds; the observed difference
        without an interval) or ``not evaluated`` (no difference, or no interval: fewer than
        two folds, or folds whose differences are all equal). ``p_holm`` is ``p_value``
        Holm-adjusted over every row of the table (:func:`holm`). ``best_baseline`` is
        :func:`best_baseline`'s, and ``set_aside`` names the baselines with a higher mean on
        fewer fits that it did not crown (``""``: none).
    """
    rows = []
    for task, at_task in summary.groupby("task", sort=True):
        kind = task_kind(predictions[predictions["task"] == task], (kinds or {}).get(task))
        metric = HEADLINE_METRIC[kind]
        models = set(at_task["model"])
        baselines = [m for m in BASELINE_MODELS if m in models]
        for fraction in sorted(at_task["label_fraction"].unique()):
            fits = fits_run(predictions, task, fraction)
            best, set_aside = best_baseline(summary, task, fraction, metric, baselines, fits)
            own = _summary_row(summary, task, model, fraction, metric)
            base = _summary_row(summary, task, best, fraction, metric) if best else None
            row: dict[str, Any] = {
                "task": task,
                "label_fraction": float(fraction),
                "metric": metric,
                "model": model if own is not None else "",
                "best_baseline": best or "",
                "set_aside": set_aside,
            }
            for prefix, r in (("model", own), ("baseline", base)):
                row[f"{prefix}_mean"] = r["mean"] if r is not None else np.nan
                row[f"{prefix}_ci_low"] = r["ci_low"] if r is not None else np.nan
                row[f"{prefix}_ci_high"] = r["ci_high"] if r is not None else np.nan
            if own is not None and best is not None:
                paired = headline_difference(
                    predictions, task, fraction, model, best, n_boot, seed, kind
                )
                # As in contrast_table: a difference of two AUCs cannot leave [-1, 1] (of two
                # r, [-2, 2]); with few folds the t interval did (-4.2 .. +4.8 AUC).
                bound = DIFFERENCE_BOUND[metric]
                row.update(
                    difference=paired.difference,
                    difference_ci_low=max(paired.ci_low, -bound),
                    difference_ci_high=min(paired.ci_high, bound),
                    p_value=paired.p_value,
                    verdict=_verdict(paired),
                )
            else:
                row.update(
                    difference=np.nan,
                    difference_ci_low=np.nan,
                    difference_ci_high=np.nan,
                    p_value=np.nan,
                    verdict="not evaluated",
                )
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
    out["p_holm"] = holm(out["p_value"]) if len(out) else []
    return out


def _verdict(paired: PairedResult) -> str:
    if not np.isfinite(paired.ci_low):
        return paired.no_interval or "not evaluated"
    if paired.ci_low > 0:
        return "better"
    if paired.ci_high < 0:
        return "worse"
    return "no clear difference"


PERMUTATION_COLUMNS = (
    "task",
    "label_fraction",
    "model",
    "permuted_model",
    "metric",
    "observed",
    "null_mean",
    "n_permutations",
    "n_fits",
    "p_value",
    "p_min",
    "null",
)


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p of ``observed`` against ``null``: ``(1 + b) / (1 + m)``.

    ``b`` counts the ``m`` null values at least as large as ``observed`` (ties, and a null
    value that is NaN, count against it), so p is never 0: its smallest value is
    ``1 / (m + 1)`` (Phipson & Smyth 2010). NaN when ``observed`` is NaN or ``null`` empty.

    Parameters
    ----------
    observed : float
        The statistic of the model fitted on the true labels.
    null : numpy.ndarray
        The same statistic of each of ``m`` refits on permuted labels.

    Returns
    -------
    float
    """
    null = np.asarray(null, dtype=float)
    if not np.isfinite(observed) or null.size == 0:
        return float("nan")
    # Both sides are means of the same fold metrics in the same order; the margin only keeps
    # a permutation that reproduced the true labels from losing its tie to rounding.
    margin = 1e-12 * max(1.0, abs(observed))
    b = int(np.sum(~(null < observed - margin)))
    return (1.0 + b) / (1.0 + null.size)


def permutation_tests(metrics: pd.DataFrame, scores: list[dict[str, Any]]) -> pd.DataFrame:
    """Permutation p of the model each shuffled-label control permutes (Ojala & Garriga 2010).

    Permutation ``i``'s statistic pools its test-fold metrics over every fit (seeds x folds)
    of the control at a label fraction, and is scored as the permuted model's headline value
    is (:func:`lcm.evaluate.metrics.summarise`'s mean of its fold metrics, on the same
    fits): ``m`` permutations give ``m`` null values. Each permutation refits the permuted
    model's estimator (same class and seed) on the training fold's labels permuted among its
    labelled subjects, subjects as units; the test fold keeps its true labels. A fit where the
    permuted model scored NaN is left out of the null as it is of the observed mean; a
    permutation that scored NaN on a fit kept is NaN (it counts against the model).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy fold metrics (columns :data:`lcm.evaluate.metrics.METRIC_COLUMNS`) holding the
        permuted model's rows.
    scores : list of dict
        ``lcm evaluate``'s per-fit permutation scores
        (:attr:`lcm.evaluate.protocol.EvaluationResult.permutation_scores`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PERMUTATION_COLUMNS`, one row per task, control and label fraction:
        ``permuted_model`` (``logreg`` for ``shuffled-labels`` on a binary task, ``ridge`` on
        a continuous one, ``lcm`` for ``shuffled-lcm``), its ``observed`` mean, the null's
        mean, ``n_permutations`` (m), ``n_fits``, ``p_value`` (:func:`permutation_p`; NaN
        when the permuted model was not evaluated), ``p_min`` = 1 / (m + 1), the smallest p
        m permutations can give, and ``null`` (the m values, a list).
    """
    by_cell: dict[tuple[str, str, float, str], list[dict[str, Any]]] = {}
    for entry in scores:
        key = (
            str(entry["task"]),
            str(entry["model"]),
            float(entry["label_fraction"]),
            str(entry["metric"]),
        )
        by_cell.setdefault(key, []).append(entry)
    kind_of = {metric: kind for kind, metric in HEADLINE_METRIC.items()}
    rows = []
    for (task, control, fraction, metric), entries in sorted(by_cell.items()):
        m = min(len(e["values"]) for e in entries)
        fits = {(int(e["seed"]), int(e["fold"])) for e in entries}
        permuted = permuted_model(control, kind_of.get(metric, "")) or ""
        own = metrics[
            (metrics["task"] == task)
            & (metrics["model"] == permuted)
            & np.isclose(metrics["label_fraction"], fraction)
            & (metrics["metric"] == metric)
        ]
        own = own[[(int(s), int(f)) in fits for s, f in zip(own["seed"], own["fold"], strict=True)]]
        # The null is scored on the fits the observed mean is: a fit where the model scored
        # NaN (left out of its mean) is left out of every permutation's too.
        scored = (
            {
                (int(s), int(f))
                for s, f, v in zip(own["seed"], own["fold"], own["value"], strict=True)
                if np.isfinite(float(v))
            }
            if len(own)
            else set()
        )
        kept = [e for e in entries if (int(e["seed"]), int(e["fold"])) in scored] or entries
        # Every permutation as a model of its own, summarised beside the permuted model.
        null_rows = [
            (task, f"permutation {i}", fraction, e["seed"], e["fold"], metric, e["values"][i])
            for e in kept
            for i in range(m)
        ]
        frame = pd.concat(
            [own, pd.DataFrame(null_rows, columns=list(METRIC_COLUMNS))], ignore_index=True
        )
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
        means = summarise(frame.astype(METRIC_DTYPES)).set_index("model")["mean"]
        observed = float(means.get(permuted, np.nan)) if len(own) else float("nan")
        null = np.array([means.get(f"permutation {i}", np.nan) for i in range(m)], dtype=float)
        # A permutation with no score on one of those fits is not the same statistic: NaN,
        # which permutation_p counts against the model.
        for i in range(m):
            if any(e["values"][i] is None or not np.isfinite(e["values"][i]) for e in kept):
                null[i] = np.nan
        rows.append(
            {
                "task": task,
                "label_fraction": fraction,
                "model": control,
                "permuted_model": permuted,
                "metric": metric,
                "observed": observed,
                "null_mean": float(np.nanmean(null)) if np.isfinite(null).any() else np.nan,
                "n_permutations": m,
                "n_fits": len(fits),
                "p_value": permutation_p(observed, null),
                "p_min": 1.0 / (m + 1),
                "null": null.tolist(),
            }
        )
    return pd.DataFrame(rows, columns=list(PERMUTATION_COLUMNS))


CONTROL_COLUMNS = (
    "task",
    "label_fraction",
    "model",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "chance",
    "verdict",
    "at_chance",
    "permuted_model",
    "n_permutations",
    "p_permutation",
    "p_min",
)


def control_table(
    summary: pd.DataFrame,
    predictions: pd.DataFrame,
    records: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Each shuffled-label control per task and label fraction, whether it sits at chance,
    and the permutation p it gives the model it permutes.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` of the metrics.
    predictions : pandas.DataFrame
        The predictions table (task kind only).
    records : dict, optional
        ``task -> lcm evaluate's record`` (:func:`lcm.evaluate.record.read_evaluation_records`),
        whose ``permutation_tests`` (:func:`permutation_tests`) give the p columns and whose
        ``kind`` the metric judged (guessed from ``y_true`` without a record).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONTROL_COLUMNS`, one row per control model (``shuffled-labels``,
        ``shuffled-lcm``, ...) and label fraction: ``n`` counts its fits (seeds x folds) and
        ``verdict`` is ``at chance`` (the 95 % CI contains the chance level), ``above
        chance``, ``below chance`` or ``too few fits`` (fewer than 2: the interval has no
        width, so nothing is judged); ``at_chance`` is ``verdict == "at chance"``.
        ``p_permutation`` is the permutation p of ``permuted_model`` against the control's
        ``n_permutations`` refits, ``p_min`` = 1 / (n_permutations + 1) the smallest it can
        be; NaN and ``""`` where not recorded (metrics of an older ``lcm evaluate``).
    """
    kinds = recorded_kinds(records or {})
    tests: dict[tuple[str, str, float], dict[str, Any]] = {}
    for task, record in (records or {}).items():
        for t in record.get("permutation_tests") or []:
            tests[(str(task), str(t["model"]), round(float(t["label_fraction"]), 9))] = t
    rows = []
    for task, at_task in summary.groupby("task", sort=True):
        recorded = kinds.get(str(task))
        metric = HEADLINE_METRIC[task_kind(predictions[predictions["task"] == task], recorded)]
        control = at_task[at_task["model"].isin(CONTROL_MODELS) & (at_task["metric"] == metric)]
        for _, r in control.sort_values(["label_fraction", "model"]).iterrows():
            chance = CHANCE[metric]
            n = int(r["n"])
            if n < 2 or not (np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"])):
                verdict = "too few fits"
            elif r["ci_low"] > chance:
                verdict = "above chance"
            elif r["ci_high"] < chance:
                verdict = "below chance"
            else:
                verdict = "at chance"
            test = tests.get((str(task), str(r["model"]), round(float(r["label_fraction"]), 9)))
            p = test.get("p_value") if test else None
            rows.append(
                {
                    "task": task,
                    "label_fraction": float(r["label_fraction"]),
                    "model": str(r["model"]),
                    "metric": metric,
                    "mean": r["mean"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "n": n,
                    "chance": chance,
                    "verdict": verdict,
                    "at_chance": verdict == "at chance",
                    "permuted_model": str(test.get("permuted_model") or "") if test else "",
                    "n_permutations": int(test["n_permutations"]) if test else 0,
                    "p_permutation": float(p) if p is not None else np.nan,
                    "p_min": float(test["p_min"]) if test else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=list(CONTROL_COLUMNS))


def site_table(
    predictions: pd.DataFrame,
    fraction: float | None = None,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per-site performance: the headline metric of each model on each site's test subjects.

    Out-of-fold predictions of a site are pooled over its folds (subject-level split: several
    folds; leave-site-out: its own fold), then averaged over seeds.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table (with its ``site`` column).
    fraction : float, optional
        Only this label fraction; every fraction when None.
    kinds : mapping of str to str, optional
        ``task -> kind`` as ``lcm evaluate`` recorded it
        (:func:`lcm.evaluate.kinds.recorded_kinds`); a task not in it is guessed
        (:func:`task_kind`).

    Returns
    -------
    pandas.DataFrame
        ``task, label_fraction, site, model, metric, value, n_subjects``; NaN where a site holds
        one class only.
    """
    from lcm.evaluate.metrics import binary_metrics, regression_metrics

    rows = []
    frame = predictions
    if fraction is not None:
        frame = frame[np.isclose(frame["label_fraction"], fraction)]
    for task, at_task in frame.groupby("task", sort=True):
        kind = task_kind(at_task, (kinds or {}).get(task))
        metric = HEADLINE_METRIC[kind]
        keys = ["label_fraction", "site", "model"]
        for (frac, site, model), group in at_task.groupby(keys, sort=True):
            values = []
            for _, by_seed in group.groupby("seed"):
                y, p = by_seed["y_true"].to_numpy(), by_seed["prediction"].to_numpy()
                scores = (
                    binary_metrics(y.astype(int), p)
                    if kind == "binary"
                    else (regression_metrics(y, p))
                )
                values.append(scores[metric])
            finite = [v for v in values if np.isfinite(v)]
            rows.append(
                {
                    "task": task,
                    "label_fraction": float(frac),
                    "site": site,
                    "model": model,
                    "metric": metric,
                    "value": float(np.mean(finite)) if finite else np.nan,
                    "n_subjects": int(len(group) / max(1, group["seed"].nunique())),
                }
            )
    return pd.DataFrame(
        rows, columns=["task", "label_fraction", "site", "model", "metric", "value", "n_subjects"]
    )


# The contrasts that are evidence for LCM's claim (DESIGN.md section 5): each against its own
# ablation on the same test subjects.
# "pretraining gain" (DESIGN's definition) also holds what self-training adds, since
# lcm-scratch uses no pseudo-labels; lcm-no-pseudo against lcm-scratch is pretraining alone.
CONTRASTS = (
    ("pretraining gain", "lcm", "lcm-scratch"),
    ("pretraining gain without pseudo-labels", "lcm-no-pseudo", "lcm-scratch"),
    ("pseudo-label gain", "lcm", "lcm-no-pseudo"),
    ("BEI over self-supervised pretraining", "lcm", "lcm-ssl"),
    # Head motion alone (mean FD, lcm.evaluate.motion), fitted on the same training folds: a
    # model that does not beat it may be reading motion rather than connectivity.
    ("over head motion alone", "lcm", MOTION_MODEL),
)
CONTRAST_COLUMNS = (
    "task",
    "label_fraction",
    "contrast",
    "model_a",
    "model_b",
    "metric",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "se",
    "n",
    "verdict",
)


def contrast_table(
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """LCM against its ablations per task and label fraction, with training variance.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy fold metrics (``task, model, label_fraction, seed, fold, metric, value``).
    predictions : pandas.DataFrame
        The predictions table (task kind only).
    kinds : mapping of str to str, optional
        ``task -> kind`` as ``lcm evaluate`` recorded it
        (:func:`lcm.evaluate.kinds.recorded_kinds`); a task not in it is guessed
        (:func:`task_kind`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CONTRAST_COLUMNS`: the mean paired difference of the headline metric
        over seeds x folds, its corrected-resampled-t 95 % interval (see
        :func:`lcm.evaluate.metrics.corrected_t_interval`), p, p Holm-adjusted over every row
        of the table (:func:`holm`), the corrected t's standard error ``se``, the number of
        paired fits and a verdict (``gain``: interval above 0, ``loss``: below 0,
        ``no clear difference``). A contrast is listed only where both models were evaluated.
    """
    rows = []
    for task, at_task in metrics.groupby("task", sort=True):
        kind = task_kind(predictions[predictions["task"] == task], (kinds or {}).get(task))
        metric = HEADLINE_METRIC[kind]
        at = at_task[at_task["metric"] == metric]
        for fraction in sorted(at["label_fraction"].unique()):
            here = at[np.isclose(at["label_fraction"], fraction)]
            wide = here.pivot_table(index=["seed", "fold"], columns="model", values="value")
            if wide.empty:
                continue
            ratio = fold_test_train_ratio(here)
            # A predictions table without fractions (task kind only) pairs by (seed, fold).
            has_fractions = {"task", "label_fraction"} <= set(predictions.columns)
            tests = _test_sets(_rows_at(predictions, task, fraction)) if has_fractions else {}
            for name, a, b in CONTRASTS:
                if a not in wide.columns or b not in wide.columns:
                    continue
                own = {m: wide[m].dropna() for m in (a, b)}
                # A model that ignores its seed pairs its one fit of a fold with each seed
                # of the other (_paired_keys); pairs by (seed, fold) otherwise.
                pairs = _paired_keys(own[a].index, own[b].index, a, b, tests)
                d = np.array([own[a][ka] - own[b][kb] for ka, kb in pairs], dtype=float)
                mean, low, high, p = corrected_t_interval(d, ratio)
                finite = d[np.isfinite(d)]
                # The corrected t's standard error (before the bounds are clipped): the
                # report compares two cohorts' gains with it (unpaired: other subjects).
                se = (
                    float(np.sqrt(finite.var(ddof=1) * (1.0 / len(finite) + ratio)))
                    if np.isfinite(low) and len(finite) > 1
                    else np.nan
                )
                # A difference of two metrics in [-1, 1] (AUC, r: [-2, 2]) cannot leave that
                # range; with few folds the t interval does (an AUC gain 'up to +1.6').
                bound = DIFFERENCE_BOUND[metric]
                low, high = max(low, -bound), min(high, bound)
                if not np.isfinite(low):
                    verdict = "not evaluated"
                elif low > 0:
                    verdict = "gain"
                elif high < 0:
                    verdict = "loss"
                else:
                    verdict = "no clear difference"
                rows.append(
                    {
                        "task": task,
                        "label_fraction": float(fraction),
                        "contrast": name,
                        "model_a": a,
                        "model_b": b,
                        "metric": metric,
                        "difference": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "p_value": p,
                        "se": se,
                        "n": int(np.isfinite(d).sum()),
                        "verdict": verdict,
                    }
                )
    out = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "p_holm"])
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", holm(out["p_value"]))
    return out


def motion_confound(
    qc: pd.DataFrame | None,
    predictions: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """AUC of mean framewise displacement alone for each binary task's diagnosis.

    A confound check: where one class moves more, a model can separate the classes by reading
    motion. The AUC scores higher FD as label 1, so it keeps the direction: above 0.5 the
    label-1 subjects (patients, for a diagnosis) move more, below 0.5 they move less, and
    ``max(auc, 1 - auc)`` is how far motion alone separates the classes either way (what
    :func:`lcm.report.motion.motion_fragment` reports). Each subject's mean FD is the mean
    over its included runs; each task's subjects and labels are those of its predictions
    table. Tasks without QC rows for their subjects are left out.

    Parameters
    ----------
    qc : pandas.DataFrame or None
        The connectome QC tables (:data:`lcm.evaluate.motion.QC_NEEDED`), or None when none
        was given (no AUC).
    predictions : pandas.DataFrame
        The tidy predictions table.
    kinds : mapping of str to str, optional
        ``task -> kind`` as ``lcm evaluate`` recorded it
        (:func:`lcm.evaluate.kinds.recorded_kinds`); a task not in it is guessed
        (:func:`task_kind`).

    Returns
    -------
    dict of str to float
        AUC by task; a task with fewer than four subjects with FD, or one class only, is left
        out.

    Raises
    ------
    InputDataError
        ``qc`` lacks a column the motion checks read (:func:`lcm.evaluate.motion.subject_mean_fd`).
    """
    from sklearn.metrics import roc_auc_score

    out = {}
    for task, y, values in _subjects_with_fd(qc, predictions, kinds, "binary"):
        if len(np.unique(y)) == 2:
            out[task] = float(roc_auc_score(y, values))
    return out


def motion_correlation(
    qc: pd.DataFrame | None,
    predictions: pd.DataFrame,
    kinds: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Pearson r of each continuous task's target with mean framewise displacement.

    The continuous counterpart of :func:`motion_confound`'s direction: above 0 the subjects
    with higher targets (older ones, for age) move more, below 0 they move less. In sample
    and descriptive, over the subjects of the task's predictions table (each subject's mean
    FD the mean over its included runs); how far motion predicts the target out of sample is
    ``motion-fd``'s Pearson r (:mod:`lcm.evaluate.motion`).

    Parameters
    ----------
    qc : pandas.DataFrame or None
        The connectome QC tables (:data:`lcm.evaluate.motion.QC_NEEDED`), or None when none
        was given (no r).
    predictions : pandas.DataFrame
        The tidy predictions table.
    kinds : mapping of str to str, optional
        ``task -> kind`` as ``lcm evaluate`` recorded it; a task not in it is guessed
        (:func:`task_kind`).

    Returns
    -------
    dict of str to float
        r by task; a task with fewer than four subjects with FD, or whose target or mean FD
        is constant over them, is left out.

    Raises
    ------
    InputDataError
        ``qc`` lacks a column the motion checks read (:func:`lcm.evaluate.motion.subject_mean_fd`).
    """
    out = {}
    for task, y, values in _subjects_with_fd(qc, predictions, kinds, "continuous"):
        y = y.astype(float)
        if np.ptp(y) > 0 and np.ptp(values) > 0:
            out[task] = float(np.corrcoef(y, values)[0, 1])
    return out


def _subjects_with_fd(
    qc: pd.DataFrame | None,
    predictions: pd.DataFrame,
    kinds: Mapping[str, str] | None,
    kind: str,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(task, y_true, mean FD)`` of each ``kind`` task's subjects with a mean FD, for the
    tasks with at least four of them (the in-sample motion direction checks)."""
    fd = subject_mean_fd(qc)
    if fd.empty or predictions.empty:
        return []
    out = []
    for task, rows in predictions.groupby("task", sort=True):
        if task_kind(rows, (kinds or {}).get(str(task))) != kind:
            continue
        subjects = rows.drop_duplicates(["dataset", "subject"])
        key = pd.MultiIndex.from_arrays(
            [subjects["dataset"].astype(str), subjects["subject"].astype(str)]
        )
        values = fd.reindex(key).to_numpy(dtype=float)
        y = subjects["y_true"].to_numpy()
        ok = np.isfinite(values)
        if ok.sum() >= 4:
            out.append((str(task), y[ok], values[ok]))
    return out
