"""Fold metrics (binary and continuous targets) and their summary over folds x seeds.

The summary's interval is the corrected resampled t of :func:`corrected_t_interval`, which the
contrasts of :mod:`lcm.evaluate.compare` use too.

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
        ``f1`` (of the positive class; NaN without positives), ``sensitivity`` (recall of
        positives) and ``specificity`` (recall of negatives); NaN where a class is absent.
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
        # No positive in the fold: its recall is undefined, and so its F1 (sklearn says 0.0,
        # which pulled a leave-site-out mean down by every control-only site).
        "f1": 2 * tp / (2 * tp + fp + fn) if n_pos else nan,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def _auc(score: np.ndarray, pos: np.ndarray, n_pos: int, n_neg: int) -> float:
    """ROC AUC as the Mann-Whitney statistic: ties between classes count one half."""
    # scipy.stats and sklearn.metrics are imported where used: the workflow's parse reads this
    # module's metric names, and they took most of a second of every `snakemake` start.
    from scipy import stats

    ranks = stats.rankdata(score)  # average ranks of ties
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of one test fold of a continuous target.

    Parameters
    ----------
    y_true : numpy.ndarray, shape (n,)
        Targets of the fold's test runs.
    y_pred : numpy.ndarray, shape (n,)
        The model's predictions of them.

    Returns
    -------
    dict
        ``pearson_r`` (NaN when either side is constant up to float rounding:
        :func:`all_equal`), ``mae`` and ``r2`` (out-of-sample,
        against the test fold's own mean; negative when worse than predicting that mean; NaN
        when the fold's targets are constant).
    """
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    # Up to rounding: the std of ten copies of 41.333333333333336 is 7e-15, and a model that
    # predicts the training mean (cpm with no edges) scored an r of -1e-16 in place of none.
    varies = len(y_true) > 2 and not all_equal(y_true) and not all_equal(y_pred)
    return {
        "pearson_r": float(np.corrcoef(y_true, y_pred)[0, 1]) if varies else float("nan"),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        # A constant target has no variance to explain: sklearn's r2_score says 0.0 (or 1.0),
        # which hid a fold's error behind a score of 0.
        "r2": float(r2_score(y_true, y_pred))
        if len(y_true) > 1 and not all_equal(y_true)
        else float("nan"),
    }


# The range of each metric: a mean's interval is clipped to it (with few folds the t interval
# of an AUC near 1 reaches past 1). Metrics not listed are left unclipped.
METRIC_RANGE = {
    **{m: (0.0, 1.0) for m in METRICS},
    "pearson_r": (-1.0, 1.0),
    "mae": (0.0, np.inf),
    "r2": (-np.inf, 1.0),
}


# Relative spread under which values are equal: fold metrics that differ by float rounding
# alone (an F1 of 0.4 computed as 0.4000000000000001 in one fold) have no spread to estimate.
EQUAL_RTOL = 1e-12


def all_equal(values: np.ndarray) -> bool:
    """Whether the finite ``values`` are all equal up to float rounding (fewer than two: True).

    The one test of "all folds equal" behind every interval (:func:`corrected_t_interval`, so
    the summary's, the contrasts' and the report's "no interval (all folds equal)"): an exact
    test let rounding noise through as intervals of width 1e-16, which read as certainty.

    Parameters
    ----------
    values : numpy.ndarray
        NaN values are ignored.

    Returns
    -------
    bool
        True when their range is at most :data:`EQUAL_RTOL` times their largest magnitude
        (at least 1).
    """
    d = np.asarray(values, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return True
    return float(np.ptp(d)) <= EQUAL_RTOL * max(1.0, float(np.abs(d).max()))


def corrected_t_interval(
    differences: np.ndarray, test_train_ratio: float, level: float = 0.95
) -> tuple[float, float, float, float]:
    """Mean, CI and two-sided p (against 0) of fold values, corrected resampled t.

    Nadeau & Bengio (2003): the folds of a cross-validation share training subjects (and every
    seed re-tests the same subjects), so their values are correlated; the variance of the mean
    is ``(1/J + n_test/n_train) s^2`` rather than ``s^2 / J``. The values are over seeds x folds
    (each a different training set and initialisation), so the interval includes training
    variance, unlike a bootstrap of test subjects with the fitted models held fixed; and unlike
    ``s^2 / J`` it does not shrink towards zero as seeds are added.

    Parameters
    ----------
    differences : numpy.ndarray
        One value per fit (seed x fold x draw): a paired difference ``metric(a) - metric(b)``
        or a metric itself; NaN values are ignored.
    test_train_ratio : float
        ``n_test / n_train`` of one fit (``1 / (K - 1)`` for K-fold; see
        :func:`fold_test_train_ratio`).
    level : float, default 0.95

    Returns
    -------
    (mean, low, high, p)
        ``low``, ``high`` and ``p`` are NaN when fewer than two finite values are given, or
        when they are all equal up to float rounding (:func:`all_equal`; the mean is still
        returned): values without spread (two folds whose AUC differences, quantised by small
        test folds, happen to match) estimate no variance, and a zero-width interval would
        read as certainty.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        nan = float("nan")
        return (float(d.mean()) if len(d) else nan), nan, nan, nan
    mean = float(d.mean())
    var = float(d.var(ddof=1)) * (1.0 / len(d) + test_train_ratio)
    if var <= 0 or all_equal(d):
        nan = float("nan")
        return mean, nan, nan, nan
    from scipy import stats

    se = np.sqrt(var)
    q = float(stats.t.ppf(0.5 + level / 2, len(d) - 1))
    p = float(2 * stats.t.sf(abs(mean) / se, len(d) - 1))
    return mean, mean - q * se, mean + q * se, p


def fold_test_train_ratio(metrics: pd.DataFrame) -> float:
    """``n_test / n_train`` of one fit of a tidy metrics table: ``1 / (K - 1)``.

    The metrics table carries no fold sizes; ``K`` is the largest number of folds of a seed
    (K-fold: the ratio of its fold sizes; leave-site-out: its sites, as if equal in size).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Rows of one task and label fraction of the tidy metrics (or predictions) table; its
        ``seed`` and ``fold`` columns are read.

    Returns
    -------
    float
        1 when the table is empty or has one fold.
    """
    k = int(metrics.groupby("seed")["fold"].nunique().max()) if len(metrics) else 1
    return 1.0 / max(1, k - 1)


def mean_ci(
    values: np.ndarray, test_train_ratio: float, level: float = 0.95, metric: str | None = None
) -> tuple[float, float, float]:
    """Mean of fold x seed values and its corrected resampled t interval.

    Parameters
    ----------
    values : numpy.ndarray
        One value per fold x seed; NaN values are ignored.
    test_train_ratio : float
        ``n_test / n_train`` of one fit (:func:`fold_test_train_ratio`).
    level : float, default 0.95
        Coverage of the interval.
    metric : str, optional
        Clips the interval to the metric's range (:data:`METRIC_RANGE`).

    Returns
    -------
    (mean, ci_low, ci_high)
        See :func:`corrected_t_interval`. NaN for all three when no finite value is given. A
        single value, or values all equal (up to float rounding: :func:`all_equal`), give a
        degenerate interval on the mean (``ci_low == ci_high == mean``): they have no spread
        to estimate, so the interval states no uncertainty at all and must not be read as a
        precise value (the report writes "no interval").
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    if finite.size == 1:
        mean = float(finite[0])
        return mean, mean, mean
    mean, low, high, _ = corrected_t_interval(finite, test_train_ratio, level)
    if not np.isfinite(low):  # values all equal: no spread
        return mean, mean, mean
    lowest, highest = METRIC_RANGE.get(metric or "", (-np.inf, np.inf))
    return mean, float(max(low, lowest)), float(min(high, highest))


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Summary of a tidy metrics table: mean and 95 % corrected resampled t CI over folds x seeds.

    The interval (:func:`mean_ci`) includes training variance: every seed re-tests the same
    subjects, so seeds x folds are not independent values; the Nadeau-Bengio correction keeps
    the interval from shrinking as seeds are added (a plain bootstrap of the values covered
    the true AUC 43 % of the time at 10 seeds). ``n_test / n_train`` is ``1 / (K - 1)`` with
    ``K`` the folds of a seed (:func:`fold_test_train_ratio`).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Columns :data:`METRIC_COLUMNS`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`, one row per task, model, label fraction and metric;
        ``n`` counts the finite values behind the mean. NaN mean and interval where no value
        is finite; a degenerate interval (``ci_low == ci_high == mean``) where one is, or where
        all are equal up to float rounding.
    """
    keys = ["task", "model", "label_fraction", "metric"]
    rows = []
    for key, group in metrics.groupby(keys, sort=True):
        values = group["value"].to_numpy(dtype=float)
        ratio = fold_test_train_ratio(group)
        mean, low, high = mean_ci(values, ratio, metric=str(key[3]))
        rows.append((*key, mean, low, high, int(np.isfinite(values).sum())))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def tidy(frame: pd.DataFrame, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    """``frame`` reduced to ``columns`` in that order and cast to ``dtypes``.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table holding at least ``columns``.
    columns : tuple of str
        The tidy table's columns, in order.
    dtypes : dict of str to str
        Column dtypes.

    Returns
    -------
    pandas.DataFrame
        With a fresh ``0..n-1`` index.
    """
    return frame.loc[:, list(columns)].astype(dtypes).reset_index(drop=True)


#: The Parquet schema metadata key of a tidy table's JSON record
#: (:mod:`lcm.evaluate.record` builds and reads ``lcm evaluate``'s).
METADATA_KEY = b"lcm"


def write_tidy_parquet(
    path: str | os.PathLike[str], frame: pd.DataFrame, metadata: dict[str, Any] | None = None
) -> None:
    """Write a tidy table to Parquet atomically, ``metadata`` as JSON under :data:`METADATA_KEY`.

    Parameters
    ----------
    path : path-like
        Destination.
    frame : pandas.DataFrame
        The table (its index is not written).
    metadata : dict, optional
        JSON-serialisable provenance (``lcm evaluate``'s evaluation record); none when None.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table_schema(path: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema (with key-value metadata) of a table ``lcm evaluate`` writes.

    Reading only the footer, as the evaluation records need, met a missing, empty or cut
    short file with pyarrow's traceback; it now fails as :func:`read_tidy_parquet` does.

    Parameters
    ----------
    path : path-like
        The Parquet file.

    Returns
    -------
    pyarrow.Schema

    Raises
    ------
    InputDataError
        When the file is missing, a folder, or not a readable Parquet file.
    """
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str | os.PathLike[str], exc: BaseException) -> InputDataError:
    # One wording for every reader of these tables: the file, pyarrow's reason, the fix.
    return InputDataError(
        f"Cannot read Parquet table {path}: {exc}",
        hint="Pass the --out or --predictions table of lcm evaluate, or rerun the "
        "stage that writes it (lcm evaluate).",
    )


def read_tidy_parquet(
    path: str | os.PathLike[str], columns: tuple[str, ...], dtypes: dict[str, str]
) -> pd.DataFrame:
    """Read a tidy table written by :func:`write_tidy_parquet`, checking its columns.

    Parameters
    ----------
    path : path-like
        The Parquet file.
    columns : tuple of str
        The columns it must hold, in order.
    dtypes : dict of str to str
        Column dtypes to cast to.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputDataError
        When the file is missing, unreadable, or its columns differ from ``columns``.
    """
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    if list(frame.columns) != list(columns):
        raise InputDataError(
            f"{path}: expected columns {list(columns)}, got {list(frame.columns)}.",
            hint="Pass the tables written by 'lcm evaluate' (--out and --predictions).",
        )
    return tidy(frame, columns, dtypes)
