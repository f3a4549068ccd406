"""``motion-fd``: head motion alone, scored out of sample on the folds the models were scored on.

A confound reference, not a baseline: a regression on one number per subject, the mean
framewise displacement (FD) of its included runs (the connectome QC table): logistic for a
binary task, linear (least squares) for a continuous one, since age and motion are often
confounded as much as a diagnosis and motion are. For every task,
label fraction, seed and fold of the predictions table it is fitted on that seed's other folds
(the fold's training subjects; with leave-site-out, a site no fold tested is left out of
training) and scored on the fold's test subjects, so its fold metrics pair
with every model's and the report's contrasts and tables take it like any model. At a label
fraction below 1 it is fitted on a stratified random draw of the training subjects with as many
subjects per class (a continuous target: per half, :func:`lcm.evaluate.splits.strata`) as the
models had labelled there (the evaluation record's ``labelled_subjects``; the same counts, not
the same subjects, which the record does not keep). The direction (which class moves more; a
continuous target: its slope on FD) is learned on the training subjects only.

Cheap: one one-feature regression per fit, in the report. A task whose test
subjects lack a mean FD (no QC table, or runs whose ``mean_fd`` is n/a) is not scored, and
:func:`motion_scores` says why, so the report can say so rather than stay silent; a table
without the ``mean_fd`` column is refused, as ``lcm report`` refuses it.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pandas as pd

from lcm.evaluate.kinds import recorded_kinds, task_kind
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    regression_metrics,
    tidy,
)
from lcm.evaluate.splits import strata
from lcm.io.qc_table import DATASET, INCLUDED, MEAN_FD, SUBJECT, check_qc_columns

MOTION_MODEL = "motion-fd"
# The QC table columns the motion checks read: a subject's mean FD over its included runs.
QC_NEEDED = (DATASET, SUBJECT, INCLUDED, MEAN_FD)


def subject_mean_fd(qc: pd.DataFrame | None) -> pd.Series:
    """Mean FD per ``(dataset, subject)``, averaged over the subject's included runs.

    The one reading of the QC tables' motion for the report's motion checks
    (:func:`motion_scores` and :func:`lcm.evaluate.compare.motion_confound`).

    Parameters
    ----------
    qc : pandas.DataFrame or None
        The connectome QC tables (:data:`QC_NEEDED`, ``included`` parsed to bool), or None
        when none was given (every subject's mean FD is then unknown).

    Raises
    ------
    InputDataError
        ``qc`` lacks one of :data:`QC_NEEDED` (it is no connectome QC table).
    """
    if qc is None:
        return pd.Series(dtype=float)
    check_qc_columns(qc, QC_NEEDED, "The QC table")
    runs = qc[qc[INCLUDED].to_numpy(dtype=bool)]
    fd = pd.to_numeric(runs[MEAN_FD], errors="coerce")
    return fd.groupby([runs[DATASET].astype(str), runs[SUBJECT].astype(str)]).mean().dropna()


def _fd_of(fd: pd.Series, rows: pd.DataFrame) -> np.ndarray:
    """The mean FD of each row's subject."""
    key = pd.MultiIndex.from_arrays([rows["dataset"].astype(str), rows["subject"].astype(str)])
    return fd.reindex(key).to_numpy(dtype=float)


def _labelled_counts(
    record: dict[str, Any] | None, seed: int, fold: int, fraction: float
) -> tuple[int, int] | None:
    """``(n_negative, n_positive)`` labelled subjects of a training fold (a continuous task:
    of its lower and upper half), or None."""
    if not record:
        return None
    levels = list(record.get("levels") or [])
    for entry in record.get("labelled_subjects") or []:
        if (
            int(entry.get("seed", -1)) == seed
            and int(entry.get("fold", -1)) == fold
            and np.isclose(float(entry.get("label_fraction", -1)), fraction)
        ):
            counts = entry.get("labelled") or {}
            if not levels:  # continuous: the protocol's halves, "lower half of <label>" first
                levels = sorted(counts, key=lambda name: not str(name).startswith("lower"))
            if len(levels) == 2 and all(lv in counts for lv in levels):
                return int(counts[levels[0]]), int(counts[levels[1]])
    return None


def _fit_predict(
    fd_train: np.ndarray, y_train: np.ndarray, fd_test: np.ndarray, binary: bool = True
) -> np.ndarray | None:
    """P(label 1) of the test subjects from a logistic regression on standardised FD; a
    continuous target's least-squares prediction from it. None when the training subjects
    hold one class (one value)."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    if len(np.unique(y_train)) < 2:
        return None
    mu, sd = float(fd_train.mean()), float(fd_train.std())
    sd = sd if sd > 0 else 1.0
    x_train, x_test = ((fd_train - mu) / sd)[:, None], ((fd_test - mu) / sd)[:, None]
    if not binary:
        return LinearRegression().fit(x_train, y_train).predict(x_test)
    model = LogisticRegression().fit(x_train, y_train)
    return model.predict_proba(x_test)[:, 1]


def motion_scores(
    qc: pd.DataFrame | None,
    predictions: pd.DataFrame,
    records: dict[str, dict[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The ``motion-fd`` fold metrics and predictions of every task (binary: logistic
    regression on mean FD; continuous: linear), and the tasks left out with why.

    Parameters
    ----------
    qc : pandas.DataFrame or None
        The connectome QC tables (:data:`QC_NEEDED`), or None.
    predictions : pandas.DataFrame
        The tidy predictions table of the evaluated models: its folds and test subjects.
    records : dict, optional
        ``task -> evaluation record`` (:func:`lcm.evaluate.record.read_evaluation_records`):
        its ``kind`` says which tasks are binary (guessed from ``y_true`` without one) and
        its ``labelled_subjects`` size the training draw at each label fraction; without it
        every training subject is used.

    Returns
    -------
    metrics : pandas.DataFrame
        Tidy fold metrics (:data:`~lcm.evaluate.metrics.METRIC_COLUMNS`), model ``motion-fd``.
    predictions : pandas.DataFrame
        Its test predictions (:data:`~lcm.evaluate.metrics.PREDICTION_COLUMNS`).
    not_scored : dict
        ``task -> reason`` for each task not scored (no mean FD for its subjects).
    """
    fd = subject_mean_fd(qc)
    metric_rows: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    not_scored: dict[str, str] = {}
    own = predictions[predictions["model"] != MOTION_MODEL]
    kinds = recorded_kinds(records or {})
    for task, at_task in own.groupby("task", sort=True):
        binary = task_kind(at_task, kinds.get(str(task))) == "binary"
        subjects = at_task.drop_duplicates(["dataset", "subject"])
        key = pd.MultiIndex.from_arrays(
            [subjects["dataset"].astype(str), subjects["subject"].astype(str)]
        )
        have = fd.reindex(key).notna().to_numpy() if len(fd) else np.zeros(len(key), bool)
        if not have.all():
            not_scored[str(task)] = (
                "no QC table with mean FD was given"
                if not len(fd)
                else f"{int((~have).sum())} of its {len(have)} test subjects have no mean FD "
                "in the QC tables"
            )
            continue
        record = (records or {}).get(str(task))
        # One model's rows are the fold's test subjects (every model is tested on the same).
        first_model = str(at_task["model"].iloc[0])
        rows = at_task[at_task["model"] == first_model]
        for (fraction, seed), by_seed in rows.groupby(["label_fraction", "seed"], sort=True):
            for fold, test in by_seed.groupby("fold", sort=True):
                train = by_seed[by_seed["fold"] != fold].drop_duplicates(["dataset", "subject"])
                y_train = train["y_true"].to_numpy().astype(int if binary else float)
                classes = y_train if binary else strata(y_train)
                idx = np.arange(len(train))
                counts = _labelled_counts(record, int(seed), int(fold), float(fraction))
                if counts is not None:
                    rng = np.random.default_rng(
                        zlib.crc32(f"{task}/{seed}/{fold}/{fraction:g}".encode())
                    )
                    picked = []
                    for cls, n in enumerate(counts):
                        members = idx[classes == cls]
                        picked.append(rng.choice(members, min(n, len(members)), replace=False))
                    idx = np.sort(np.concatenate(picked))
                p = _fit_predict(_fd_of(fd, train)[idx], y_train[idx], _fd_of(fd, test), binary)
                if p is None:
                    continue
                y_test = test["y_true"].to_numpy()
                scores = (
                    binary_metrics(y_test.astype(int), p)
                    if binary
                    else regression_metrics(y_test.astype(float), p)
                )
                fold_key = {
                    "task": task,
                    "model": MOTION_MODEL,
                    "label_fraction": float(fraction),
                    "seed": int(seed),
                    "fold": int(fold),
                }
                for metric, value in scores.items():
                    metric_rows.append({**fold_key, "metric": metric, "value": value})
                frames.append(
                    pd.DataFrame(
                        {
                            **fold_key,
                            "dataset": test["dataset"].to_numpy(),
                            "subject": test["subject"].to_numpy(),
                            "site": test["site"].to_numpy(),
                            "y_true": y_test,
                            "prediction": p,
                        }
                    )
                )
    metrics = tidy(
        pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS)), METRIC_COLUMNS, METRIC_DTYPES
    )
    preds = tidy(
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(PREDICTION_COLUMNS)),
        PREDICTION_COLUMNS,
        PREDICTION_DTYPES,
    )
    return metrics, preds, not_scored
