"""Fold metrics, their summary intervals and the tidy table helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    METRICS,
    SUMMARY_COLUMNS,
    binary_metrics,
    corrected_t_interval,
    fold_test_train_ratio,
    mean_ci,
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
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))


def test_f1_is_undefined_without_a_positive_in_the_fold() -> None:
    """Recall is 0/0 then: sklearn's 0.0 made every control-only leave-site-out fold pull the
    mean F1 down, whatever the model called."""
    for p in ([0.1, 0.2, 0.3], [0.9, 0.2, 0.3]):
        m = binary_metrics(np.array([0, 0, 0]), np.array(p))
        assert np.isnan(m["f1"]) and np.isnan(m["sensitivity"])
    # One positive missed: F1 is 0, as it should be.
    assert binary_metrics(np.array([0, 1]), np.array([0.9, 0.1]))["f1"] == 0.0


def test_r2_is_undefined_for_a_constant_target() -> None:
    """sklearn's r2_score says 0.0 (1.0 when exact) for a fold whose targets are all equal: a
    fold 20 years off scored R² 0, hiding the error behind the summary's mean."""
    from lcm.evaluate.metrics import regression_metrics

    for pred in ([10.0, 10.0, 10.0], [30.0, 30.0, 30.0], [29.0, 30.0, 31.0]):
        m = regression_metrics(np.array([30.0, 30.0, 30.0]), np.array(pred))
        assert np.isnan(m["r2"]) and np.isnan(m["pearson_r"])
    assert regression_metrics(np.array([30.0] * 3), np.array([10.0] * 3))["mae"] == 20.0
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["r2"] == pytest.approx(1 - 1 / 2)


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


def test_mean_ci_is_the_corrected_t_interval():
    rng = np.random.default_rng(0)
    few = rng.normal(0.7, 0.05, size=6)
    mean, low, high = mean_ci(few, 0.25)
    assert low <= mean <= high and low < high
    assert mean == pytest.approx(few.mean())
    # By hand: t quantile x sqrt((1/J + n_test/n_train) s^2).
    half = stats.t.ppf(0.975, 5) * np.sqrt((1 / 6 + 0.25) * few.var(ddof=1))
    assert (low, high) == pytest.approx((mean - half, mean + half))
    assert (mean, low, high) == pytest.approx(corrected_t_interval(few, 0.25)[:3])
    # Correlated folds: more values of the same spread do not shrink it below the floor
    # 2 z sqrt(n_test / n_train) s that s^2 / J would.
    many = rng.normal(0.7, 0.05, size=200)
    _, low2, high2 = mean_ci(many, 0.25)
    assert high2 - low2 == pytest.approx(2 * 1.96 * np.sqrt(0.25) * many.std(ddof=1), rel=0.03)
    # One value: a degenerate interval on it; no finite value: NaN; NaN values are ignored.
    assert mean_ci(np.array([0.5]), 0.25) == (0.5, 0.5, 0.5)
    assert all(np.isnan(mean_ci(np.array([np.nan]), 0.25)))
    assert mean_ci(np.array([0.6, np.nan, 0.8]), 0.25)[0] == pytest.approx(0.7)
    # Clipped to the metric's range: an AUC interval does not reach past 1.
    assert mean_ci(np.array([0.99, 0.6, 1.0]), 0.25, metric="auc")[2] == 1.0
    assert mean_ci(np.array([0.99, 0.6, 1.0]), 0.25)[2] > 1.0


def test_folds_equal_up_to_rounding_have_no_interval():
    """An F1 of 0.4 in every fold, computed as 0.4000000000000001 in one, was summarised as
    0.4000000000000001 [0.3999999999999998, 0.40000000000000036]: a width of 1e-16 read as
    certainty, where the exactly equal folds have none."""
    noisy = np.array([0.4000000000000001, 0.39999999999999997, 0.4, 0.4])
    assert noisy.var(ddof=1) > 0  # the exact test let it through
    assert all(np.isnan(corrected_t_interval(noisy, 0.5)[1:]))
    rows = [("t", "m", 1.0, 0, fold, "f1", v) for fold, v in enumerate(noisy)]
    row = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS))).iloc[0]
    assert row["ci_low"] == row["ci_high"] == row["mean"] and row["n"] == 4
    # A small spread that is not rounding keeps its interval.
    _, low, high = mean_ci(np.array([0.4, 0.4 + 1e-9, 0.4 - 1e-9]), 0.5)
    assert low < 0.4 - 1e-9 and high > 0.4 + 1e-9


def test_equal_up_to_rounding_is_relative_to_the_values():
    from lcm.evaluate.metrics import all_equal

    noisy = np.array([0.4000000000000001, 0.39999999999999997, 0.4])
    assert all_equal(noisy) and all_equal(noisy * 1e4) and all_equal(np.array([0.4, np.nan]))
    assert not all_equal(np.array([0.4, 0.4 + 1e-9])) and not all_equal(np.array([3e4, 3e4 + 1]))


def test_summary_interval_covers_the_true_auc_however_many_seeds():
    """Every seed re-tests the same 80 subjects: the seeds x folds AUCs are not independent.
    A plain bootstrap of them covered the true AUC 43 % of the time at 10 seeds."""
    true_auc = stats.norm.cdf(1 / np.sqrt(2))  # score = y + N(0, 1)
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 40)
    rows = []
    for rep in range(100):
        score = y + rng.normal(size=80)
        for seed in range(10):
            folds = rng.permutation(80) % 5
            for fold in range(5):
                auc = binary_metrics(y[folds == fold], score[folds == fold])["auc"]
                rows.append((f"t{rep:03d}", "m", 1.0, seed, fold, "auc", auc))
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    covered = (summary["ci_low"] <= true_auc) & (true_auc <= summary["ci_high"])
    assert covered.mean() >= 0.88, covered.mean()


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
    summary = summarise(_metrics_table())
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 4
    assert (summary["n"] == 6).all()
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    row = summary.query("model == 'logreg' and metric == 'auc'").iloc[0]
    assert row["mean"] == pytest.approx(0.8 + 0.01 - 0.01)
    # 3 folds per seed: n_test / n_train = 1/2, the ratio the contrasts use too.
    values = _metrics_table().query("model == 'logreg' and metric == 'auc'")
    assert fold_test_train_ratio(values) == 0.5
    _, low, high, _ = corrected_t_interval(values["value"].to_numpy(), 0.5)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


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
