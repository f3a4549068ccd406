"""Pretraining's internal validation: a subject-level hold-out and per-variable metrics.

The subjects reported in ``bei_eval.tsv`` choose nothing. By default the whole hold-out is for
reporting only; with ``pretrain.select_epoch: heldout`` it is split by subject
(:func:`selection_split`): one half chooses the epoch, the other half alone is reported.
Every metric sits beside the baseline a model must beat (the training majority class for
binary/categorical variables, the training mean for continuous/ordinal ones), the chance level
of a constant guess on the held-out runs, and a bootstrap interval over held-out subjects; a
variable is scored only on the runs that carry it (never on its ``n/a`` class).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from lcm.model.targets import NA_LEVEL, QueryLayout, Target, Targets

HOLDOUT_FRACTION = 0.1
# Random stream of selection_split (any constant other than the hold-out's plain seed).
SELECTION_STREAM = 1
COLUMNS = [
    "variable",
    "kind",
    "metric",
    "model",
    "baseline",
    "chance",
    "ci_low",
    "ci_high",
    "n",
    "n_subjects",
]
# Bootstrap draws of the held-out intervals (over subjects; the hold-out is small).
BOOTSTRAP_DRAWS = 1000
# A metric of the held-out rows it is given (indices into the variable's scored rows).
Scorer = Callable[[np.ndarray], float]


def holdout_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices; all runs of a subject fall on the same side.

    Holds out ``round(fraction * n_subjects)`` subjects, none when fewer than 10 subjects exist
    (too few to report on, and too precious to train without).

    Parameters
    ----------
    groups : numpy.ndarray, shape (n,)
        The subject of each row.
    fraction : float
        Share of the subjects held out.
    seed : int
        Seed of the subjects' draw.

    Returns
    -------
    train, held : numpy.ndarray of int
        Row indices, each in row order.
    """
    unique = np.unique(groups)
    n_out = round(fraction * len(unique)) if len(unique) >= 10 else 0
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(unique)[:n_out])
    is_held = np.array([g in held for g in groups], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def selection_split(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the held-out subjects that choose the epoch, and of those reported.

    A subject-level split of the hold-out (``groups`` of its rows): ``n_subjects // 2``
    subjects select, the rest (never fewer) are reported. Deterministic in ``seed``, and drawn
    from a stream of its own, so the hold-out itself is that of :func:`holdout_split`.

    Parameters
    ----------
    groups : numpy.ndarray, shape (n,)
        The subject of each held-out row.
    seed : int
        The hold-out's seed.

    Returns
    -------
    select, report : numpy.ndarray of int
        Positions in ``groups``, each in row order.
    """
    unique = np.unique(groups)
    rng = np.random.default_rng([seed, SELECTION_STREAM])
    chosen = set(rng.permutation(unique)[: len(unique) // 2])
    selects = np.array([g in chosen for g in groups], dtype=bool)
    return np.flatnonzero(selects), np.flatnonzero(~selects)


def own_levels(
    outputs: torch.Tensor, targets: Targets, layout: QueryLayout
) -> tuple[torch.Tensor, Targets, QueryLayout]:
    """Outputs, targets and layout of the variables' own levels, the ``n/a`` class left out.

    A row whose target is ``n/a`` (its dataset does not record the variable) is no longer
    present, and the ``n/a`` query is dropped, so a class probability is the softmax over the
    variable's own levels: what :func:`bei_metrics` scores, and what pretraining's held-out
    loss (``val_loss``, ``select_epoch: heldout``) measures. Counted, the easy ``n/a`` rows
    (most rows of a diagnosis that one dataset records) chose the epoch that best told the
    datasets apart.

    Parameters
    ----------
    outputs : torch.Tensor, shape (..., Q)
        Model outputs, queries last.
    targets : dict of Target
        Targets of the layout's groups (hard labels: ``n/a`` rows hold a one-hot ``n/a``).
    layout : QueryLayout

    Returns
    -------
    (outputs, targets, layout)
        ``outputs`` without the ``n/a`` queries, ``targets`` without their ``n/a`` column and
        rows, and the layout of the remaining queries; groups without ``n/a`` are unchanged.
    """
    kept_queries: list[int] = []
    reduced = QueryLayout()
    kept: Targets = {}
    for group in layout.groups:
        queries = list(range(group.slice.start, group.slice.stop))
        levels = group.levels
        target = targets.get(group.name)
        if NA_LEVEL in levels:
            na = levels.index(NA_LEVEL)
            queries.pop(na)
            levels = tuple(level for level in levels if level != NA_LEVEL)
            if target is not None:
                own = [i for i in range(group.size) if i != na]
                present = target.present & (target.values[:, na] < 0.5)
                target = Target(target.values[:, own], present)
        kept_queries.extend(queries)
        reduced = reduced.append(group.name, group.kind, levels)
        if target is not None:
            kept[group.name] = target
    index = torch.tensor(kept_queries, dtype=torch.long, device=outputs.device)
    return outputs.index_select(-1, index), kept, reduced


def bei_metrics(
    outputs: torch.Tensor,
    targets: Targets,
    train_targets: Targets,
    layout: QueryLayout,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out metrics of each variable beside its training baseline, chance and interval.

    Each variable is scored only on the held-out runs that carry it: a missing value is not
    present, and the ``n/a`` class (the run's dataset does not define the variable) is no
    answer to predict, so those runs are left out and the prediction is the most likely of the
    variable's own levels. Scoring them made a diagnosis of one dataset look accurate on the
    runs of every other (40 of 46 'correct' as not applicable, balanced accuracy at chance).

    Parameters
    ----------
    outputs : torch.Tensor, shape (n, Q)
        Last-layer outputs on the held-out samples.
    targets : dict of Target
        Held-out targets (hard labels, standardised values).
    train_targets : dict of Target
        Training targets, for the baselines.
    layout : QueryLayout
    groups : numpy.ndarray, shape (n,), optional
        Subject of each held-out sample: the interval resamples subjects with all their runs
        (default: each sample is its own subject).
    seed : int
        Seed of the bootstrap (the table is reproducible).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`. Classification: accuracy and balanced accuracy (plus AUC for
        binary); regression: MSE in standardised units and R². ``baseline`` is the training
        majority class or mean; ``chance`` the best a constant guess reaches on these runs
        (their commonest class's share for accuracy, 1 / the number of classes present in them
        for balanced accuracy (not of the catalogue's levels), 0.5 for AUC,
        0 for R², their variance for MSE); ``ci_low``, ``ci_high`` a 95 % percentile
        bootstrap interval of ``model`` over held-out subjects; ``n`` and ``n_subjects`` the
        runs and subjects scored.
    """
    groups = np.arange(outputs.shape[0]) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    rows: list[list[Any]] = []
    for group in layout.groups:
        target, train = targets[group.name], train_targets[group.name]
        present = target.present.numpy().copy()
        train_present = train.present.numpy().copy()
        levels = np.arange(group.size)
        if NA_LEVEL in group.levels:  # not applicable is no class to predict or to score
            na = group.levels.index(NA_LEVEL)
            levels = levels[levels != na]
            present &= target.values.numpy()[:, na] < 0.5
            train_present &= train.values.numpy()[:, na] < 0.5
        if not present.any() or not train_present.any():
            continue
        out = outputs[:, group.slice].float().numpy()[present]
        truth = target.values.numpy()[present]
        train_values = train.values.numpy()[train_present]
        if group.is_numeric:
            scores = _regression_scores(out[:, 0], truth, float(train_values.mean()))
        else:
            majority = int(train_values[:, levels].sum(0).argmax())
            scores = _class_scores(out[:, levels], truth[:, levels].argmax(1), majority)
        subjects = groups[present]
        counts = [int(present.sum()), len(np.unique(subjects))]
        for metric, model, baseline, chance, score in scores:
            ci = _bootstrap(subjects, rng, score)
            rows.append([group.name, group.kind, metric, model, baseline, chance, *ci, *counts])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    numbers = ["model", "baseline", "chance", "ci_low", "ci_high"]
    frame[numbers] = frame[numbers].astype(float)
    return frame


# One metric: its name, the model's value, the baseline's, chance, and the model's scorer.
_Score = tuple[str, float, float, float, "Scorer"]


def _regression_scores(pred: np.ndarray, truth: np.ndarray, base: float) -> list[_Score]:
    """MSE (standardised units) and R² of ``pred`` and of the training mean ``base``."""

    def mse(rows: np.ndarray) -> float:
        return float(np.mean((pred[rows] - truth[rows]) ** 2))

    def r2(rows: np.ndarray) -> float:
        var = float(np.var(truth[rows]))
        return 1.0 - mse(rows) / var if var > 0 else np.nan

    every = np.arange(len(truth))
    var, mse_base = float(np.var(truth)), float(np.mean((base - truth) ** 2))
    scores: list[_Score] = [("mse_standardised", mse(every), mse_base, var, mse)]
    if var > 0:
        scores.append(("r2", r2(every), 1.0 - mse_base / var, 0.0, r2))
    return scores


def _class_scores(out: np.ndarray, y: np.ndarray, majority: int) -> list[_Score]:
    """Accuracy, balanced accuracy (and AUC of two classes) of the outputs ``out [n, K]``
    (the variable's own levels) and of always answering the training ``majority``."""
    k = out.shape[1]
    pred, base = out.argmax(1), np.full_like(y, majority)

    def accuracy(rows: np.ndarray, guess: np.ndarray = pred) -> float:
        return float(np.mean(guess[rows] == y[rows]))

    def balanced(rows: np.ndarray, guess: np.ndarray = pred) -> float:
        # sklearn's balanced_accuracy_score (mean recall over the classes present), in numpy:
        # the bootstrap calls it a thousand times per variable.
        truth, guessed = y[rows], guess[rows]
        return float(np.mean([np.mean(guessed[truth == c] == c) for c in np.unique(truth)]))

    every = np.arange(len(y))
    commonest = float(np.bincount(y, minlength=k).max() / len(y))
    n_present = len(np.unique(y))
    scores: list[_Score] = [
        ("accuracy", accuracy(every), accuracy(every, base), commonest, accuracy),
        # A constant guess recalls one class fully and the others not at all: 1 / the classes
        # present in these rows (balanced() averages over those), not 1 / the catalogue's levels.
        ("balanced_accuracy", balanced(every), balanced(every, base), 1.0 / n_present, balanced),
    ]
    if k == 2 and n_present == 2:
        score = torch.softmax(torch.from_numpy(out), -1)[:, 1].numpy()

        def auc(rows: np.ndarray) -> float:
            truth = y[rows]
            positives = int(truth.sum())
            if positives in (0, len(truth)):  # a draw of one class: undefined, skipped
                return np.nan
            # Mann-Whitney U over midranks: roc_auc_score's value, fast enough to bootstrap.
            ranks = rankdata(score[rows])
            u = ranks[truth == 1].sum() - positives * (positives + 1) / 2
            return float(u / (positives * (len(truth) - positives)))

        scores.append(("auc", auc(every), 0.5, 0.5, auc))
    return scores


def _bootstrap(
    subjects: np.ndarray, rng: np.random.Generator, metric: Scorer
) -> tuple[float, float]:
    """95 % percentile interval of ``metric(rows)`` over subjects drawn with replacement.

    ``metric`` takes the row indices of one draw (each drawn subject's runs, repeated as often
    as it is drawn). Draws where the metric is undefined (one class left) are skipped; NaN
    when fewer than 2 subjects or no draw is defined.
    """
    unique, inverse = np.unique(subjects, return_inverse=True)
    if len(unique) < 2:
        return np.nan, np.nan
    rows_of = [np.flatnonzero(inverse == j) for j in range(len(unique))]
    values = []
    for _ in range(BOOTSTRAP_DRAWS):
        drawn = rng.integers(0, len(unique), len(unique))
        value = metric(np.concatenate([rows_of[j] for j in drawn]))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return np.nan, np.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)
