"""Pretraining's internal validation: a subject-level hold-out and per-variable metrics.

The subjects reported in ``bei_eval.tsv`` choose nothing. By default the whole hold-out is for
reporting only; with ``pretrain.select_epoch: heldout`` it is split by subject
(:func:`selection_split`): one half chooses the epoch, the other half alone is reported.
Every metric sits beside the baseline a model must beat: the training majority class for
binary/categorical variables, the training mean for continuous/ordinal ones.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from lcm.model.targets import QueryLayout, Targets

HOLDOUT_FRACTION = 0.1
# Random stream of selection_split (any constant other than the hold-out's plain seed).
SELECTION_STREAM = 1
COLUMNS = ["variable", "kind", "metric", "model", "baseline", "n"]


def holdout_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices; all runs of a subject fall on the same side.

    Holds out ``round(fraction * n_subjects)`` subjects, none when fewer than 10 subjects exist
    (too few to report on, and too precious to train without).
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
    """
    unique = np.unique(groups)
    rng = np.random.default_rng([seed, SELECTION_STREAM])
    chosen = set(rng.permutation(unique)[: len(unique) // 2])
    selects = np.array([g in chosen for g in groups], dtype=bool)
    return np.flatnonzero(selects), np.flatnonzero(~selects)


def bei_metrics(
    outputs: torch.Tensor, targets: Targets, train_targets: Targets, layout: QueryLayout
) -> pd.DataFrame:
    """Held-out metrics of each variable against its training baseline.

    Parameters
    ----------
    outputs : torch.Tensor, shape (n, Q)
        Last-layer outputs on the held-out samples.
    targets : dict of Target
        Held-out targets (hard labels, standardised values).
    train_targets : dict of Target
        Training targets, for the baselines.
    layout : QueryLayout

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, kind, metric, model, baseline, n``. Classification: accuracy and
        balanced accuracy (plus AUC for binary); regression: MSE in standardised units and R².
    """
    rows = []
    for group in layout.groups:
        target, train = targets[group.name], train_targets[group.name]
        present = target.present.numpy()
        if not present.any() or not train.present.any():
            continue
        out = outputs[:, group.slice].float().numpy()[present]
        truth = target.values.numpy()[present]
        n = int(present.sum())
        if group.is_numeric:
            pred, base = out[:, 0], float(train.values.numpy()[train.present.numpy()].mean())
            mse, mse_base = float(np.mean((pred - truth) ** 2)), float(np.mean((base - truth) ** 2))
            var = float(np.var(truth))
            rows.append([group.name, group.kind, "mse_standardised", mse, mse_base, n])
            if var > 0:
                rows.append([group.name, group.kind, "r2", 1 - mse / var, 1 - mse_base / var, n])
            continue
        y = truth.argmax(1)
        pred = out.argmax(1)
        majority = int(train.values.numpy()[train.present.numpy()].sum(0).argmax())
        base_pred = np.full_like(y, majority)
        rows.append(
            [group.name, group.kind, "accuracy", np.mean(pred == y), np.mean(base_pred == y), n]
        )
        with warnings.catch_warnings():  # a small hold-out may lack a class: still defined
            warnings.simplefilter("ignore", UserWarning)
            balanced = balanced_accuracy_score(y, pred), balanced_accuracy_score(y, base_pred)
        rows.append([group.name, group.kind, "balanced_accuracy", *balanced, n])
        if group.kind == "binary" and len(np.unique(y)) == 2:
            score = torch.softmax(torch.from_numpy(out), -1)[:, 1].numpy()
            rows.append([group.name, group.kind, "auc", roc_auc_score(y, score), 0.5, n])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[["model", "baseline"]] = frame[["model", "baseline"]].astype(float)
    return frame
