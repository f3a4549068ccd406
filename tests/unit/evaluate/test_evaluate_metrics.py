"""Fold metrics, bootstrap intervals and the tidy table helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    METRICS,
    SUMMARY_COLUMNS,
    binary_metrics,
    bootstrap_ci,
    read_tidy_parquet,
    summarise,
    write_tidy_parquet,
)
from lcm.exceptions import InputDataError


def test_binary_metrics_by_hand():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.3, 0.8, 0.4])
    m = binary_metrics(y, p)
    assert set(m) == set(METRICS)
    # predictions at 0.5: 0 1 0 1 0 -> TN=2 FP=1 TP=1 FN=1
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))
    # pairs (neg, pos): 0.8 beats all three; 0.4 beats 0.1 and 0.3 -> 5 of 6
    assert m["auc"] == pytest.approx(5 / 6)


def test_binary_metrics_one_class_gives_nan_auc():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]))
    assert np.isnan(m["auc"]) and np.isnan(m["specificity"])
    assert m["sensitivity"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(6))
def test_binary_metrics_equal_sklearn(seed: int) -> None:
    """The counted metrics match sklearn's, ties in the scores (AUC's half credit) included."""
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 60))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = np.round(rng.random(n), 1)  # rounded: many ties, some exactly at the threshold
    m = binary_metrics(y, p)
    called = (p >= 0.5).astype(int)
    assert m["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, called))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, called))
    assert m["f1"] == pytest.approx(sk.f1_score(y, called, zero_division=0.0))
    assert m["sensitivity"] == pytest.approx(sk.recall_score(y, called, pos_label=1))
    assert m["specificity"] == pytest.approx(sk.recall_score(y, called, pos_label=0))


def test_bootstrap_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(0)
    few = rng.normal(0.7, 0.05, size=6)
    many = rng.normal(0.7, 0.05, size=200)
    mean, low, high = bootstrap_ci(few)
    assert low <= mean <= high and low < high
    assert mean == pytest.approx(few.mean())
    _, low2, high2 = bootstrap_ci(many)
    assert high2 - low2 < high - low
    assert bootstrap_ci(np.array([0.5])) == (0.5, 0.5, 0.5)
    assert all(np.isnan(bootstrap_ci(np.array([np.nan]))))
    # NaN folds are ignored, not propagated
    assert bootstrap_ci(np.array([0.6, np.nan, 0.8]))[0] == pytest.approx(0.7)


def _metrics_table() -> pd.DataFrame:
    rows = []
    for model, level in (("logreg", 0.8), ("lcm", 0.7)):
        for seed in (0, 1):
            for fold in range(3):
                for metric in ("auc", "f1"):
                    value = level + 0.01 * fold - 0.02 * seed
                    rows.append(("t", model, 0.5, seed, fold, metric, value))
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).astype(METRIC_DTYPES)


def test_summarise_columns_and_counts():
    summary = summarise(_metrics_table(), n_boot=500)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 4
    assert (summary["n"] == 6).all()
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    row = summary.query("model == 'logreg' and metric == 'auc'").iloc[0]
    assert row["mean"] == pytest.approx(0.8 + 0.01 - 0.01)


def test_tidy_parquet_round_trip_and_column_check(tmp_path):
    table = _metrics_table()
    path = tmp_path / "m.parquet"
    write_tidy_parquet(path, table, {"task": "t"})
    back = read_tidy_parquet(path, METRIC_COLUMNS, METRIC_DTYPES)
    pd.testing.assert_frame_equal(back, table)
    write_tidy_parquet(path, table.drop(columns="fold"))
    with pytest.raises(InputDataError, match=r"m\.parquet: expected columns"):
        read_tidy_parquet(path, METRIC_COLUMNS, METRIC_DTYPES)
    with pytest.raises(InputDataError, match="Cannot read Parquet"):
        read_tidy_parquet(tmp_path / "absent.parquet", METRIC_COLUMNS, METRIC_DTYPES)
