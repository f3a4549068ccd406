"""Fold metrics (binary and continuous targets) and their bootstrap summary over folds x seeds.

The tidy tables written by ``lcm evaluate`` and ``lcm report`` have the columns listed here,
and nothing else, so that pandas, DuckDB or R read them without our code.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from sklearn.metrics import mean_absolute_error, r2_score

from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path

METRICS = ("auc", "balanced_accuracy", "accuracy", "f1", "sensitivity", "specificity")
METRIC_COLUMNS = ("task", "model", "label_fraction", "seed", "fold", "metric", "value")
# ``prediction``: P(positive) for a binary task, the predicted value for a continuous one.
PREDICTION_COLUMNS = (
    "task",
    "model",
    "label_fraction",
    "seed",
    "fold",
    "dataset",
    "subject",
    "site",
    "y_true",
    "prediction",
)
SUMMARY_COLUMNS = ("task", "model", "label_fraction", "metric", "mean", "ci_low", "ci_high", "n")
# Column dtypes of the tidy tables, so every writer produces the same Parquet schema.
METRIC_DTYPES = {
    "task": "str",
    "model": "str",
    "label_fraction": "float64",
    "seed": "int64",
    "fold": "int64",
    "metric": "str",
    "value": "float64",
}
PREDICTION_DTYPES = {
    "task": "str",
    "model": "str",
    "label_fraction": "float64",
    "seed": "int64",
    "fold": "int64",
    "dataset": "str",
    "subject": "str",
    "site": "str",
    "y_true": "float64",
    "prediction": "float64",
}


def binary_metrics(
    y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Metrics of one test fold.

    Parameters
    ----------
    y_true : numpy.ndarray of int, shape (n,)
        0 (negative) or 1 (positive).
    p_positive : numpy.ndarray of float, shape (n,)
        Predicted probability of the positive class.
    threshold : float, default 0.5
        Probability at or above which a run is called positive.

    Returns
    -------
    dict
        ``auc`` (NaN when the fold holds one class only), ``balanced_accuracy``, ``accuracy``,
        ``f1`` (of the positive class), ``sensitivity`` (recall of positives) and
        ``specificity`` (recall of negatives); NaN where a class is absent.
    """
    # Counted here rather than with sklearn.metrics: its input validation made the report's
    # per-site tables (hundreds of folds x models x sites) take most of the report's time.
    # Same definitions; tests/unit/evaluate/test_evaluate_metrics.py checks them against sklearn.
    y_true = np.asarray(y_true, dtype=int)
    p_positive = np.asarray(p_positive, dtype=float)
    pos, neg = y_true == 1, y_true == 0
    called = p_positive >= threshold
    tp, fn = int((called & pos).sum()), int((~called & pos).sum())
    fp, tn = int((called & neg).sum()), int((~called & neg).sum())
    n_pos, n_neg = tp + fn, fp + tn
    nan = float("nan")
    sensitivity = tp / n_pos if n_pos else nan
    specificity = tn / n_neg if n_neg else nan
    both = bool(n_pos and n_neg)
    return {
        "auc": _auc(p_positive, pos, n_pos, n_neg) if both else nan,
        "balanced_accuracy": (sensitivity + specificity) / 2 if both else nan,
        "accuracy": (tp + tn) / len(y_true) if len(y_true) else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def _auc(score: np.ndarray, pos: np.ndarray, n_pos: int, n_neg: int) -> float:
    """ROC AUC as the Mann-Whitney statistic: ties between classes count one half."""
    ranks = stats.rankdata(score)  # average ranks of ties
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of one test fold of a continuous target.

    Returns
    -------
    dict
        ``pearson_r`` (NaN when either side is constant), ``mae`` and ``r2`` (out-of-sample,
        against the test fold's own mean; negative when worse than predicting that mean).
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    varies = len(y_true) > 2 and np.std(y_true) > 0 and np.std(y_pred) > 0
    return {
        "pearson_r": float(np.corrcoef(y_true, y_pred)[0, 1]) if varies else float("nan"),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and expanded percentile bootstrap confidence interval of the mean.

    The plain percentile interval is too narrow for few values (five folds x one seed: about
    85 % coverage at a nominal 95 %, which put one shuffled-label cell in six "off chance").
    The expanded percentile interval (Hesterberg 2015, *What teachers should know about the
    bootstrap*, Am. Stat. 69:371) takes the bootstrap quantiles at ``alpha'`` where
    ``z_{alpha'/2} = sqrt(n / (n - 1)) t_{alpha/2, n-1}``; for many values it is the plain one.

    Parameters
    ----------
    values : numpy.ndarray
        One value per fold x seed; NaN values are ignored.
    n_boot : int, default 2000
        Bootstrap resamples.
    level : float, default 0.95
        Coverage of the interval.
    seed : int, default 0
        Seed of the resampling (fixed so a report is reproducible).

    Returns
    -------
    (mean, ci_low, ci_high)
        NaN for all three when no finite value is given; the interval collapses onto the mean
        for a single value.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if values.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    n = values.size
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    expanded = float(stats.norm.sf(np.sqrt(n / (n - 1)) * stats.t.ppf(1.0 - alpha, n - 1)))
    low, high = np.quantile(means, [expanded, 1.0 - expanded])
    return mean, float(low), float(high)


def summarise(metrics: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Summary of a tidy metrics table: mean and 95 % bootstrap CI over folds x seeds.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Columns :data:`METRIC_COLUMNS`.
    n_boot : int, default 2000
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per task, model, label fraction and metric;
        ``n`` counts the finite values behind the mean.
    """
    keys = ["task", "model", "label_fraction", "metric"]
    rows = []
    for key, group in metrics.groupby(keys, sort=True):
        values = group["value"].to_numpy(dtype=float)
        mean, low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        rows.append((*key, mean, low, high, int(np.isfinite(values).sum())))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def tidy(frame: pd.DataFrame, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    """``frame`` reduced to ``columns`` in that order and cast to ``dtypes``."""
    return frame.loc[:, list(columns)].astype(dtypes).reset_index(drop=True)


def write_tidy_parquet(
    path: str | os.PathLike[str], frame: pd.DataFrame, metadata: dict[str, Any] | None = None
) -> None:
    """Write a tidy table to Parquet atomically, ``metadata`` as JSON under the key ``lcm``."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[b"lcm"] = json.dumps(metadata, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_tidy_parquet(
    path: str | os.PathLike[str], columns: tuple[str, ...], dtypes: dict[str, str]
) -> pd.DataFrame:
    """Read a tidy table written by :func:`write_tidy_parquet`, checking its columns.

    Raises
    ------
    InputDataError
        When the file is missing, unreadable, or its columns differ from ``columns``.
    """
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise InputDataError(
            f"Cannot read Parquet table {path}: {exc}",
            hint="Rerun the stage that writes it (lcm evaluate).",
        ) from exc
    if list(frame.columns) != list(columns):
        raise InputDataError(
            f"{path}: expected columns {list(columns)}, got {list(frame.columns)}.",
            hint="Pass the tables written by 'lcm evaluate' (--out and --predictions).",
        )
    return tidy(frame, columns, dtypes)
