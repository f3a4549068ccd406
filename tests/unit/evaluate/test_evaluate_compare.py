"""Paired comparison of LCM with the best baseline, the control check, per-site table, oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers.report import control_summary

from lcm.evaluate.compare import (
    TOO_FEW_SUBJECTS,
    _subject_weights,
    _weighted_auc,
    contrast_table,
    control_table,
    headline_table,
    paired_bootstrap,
    site_table,
)
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    summarise,
)

SIGNAL = {"lcm": 3.0, "logreg": 1.0, "svm": 0.8, "shuffled-labels": 0.0}


def _tables(signal: dict[str, float], n: int = 60, seeds=(0, 1)) -> tuple:
    """Predictions of 3 folds x ``seeds`` with model-dependent signal, and their metrics."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    preds, metrics = [], []
    for seed in seeds:
        folds = rng.permutation(n) % 3
        noise = rng.normal(size=n)  # shared by models: the pairing the test exploits
        for model, s in signal.items():
            p = 1 / (1 + np.exp(-(s * (y - 0.5) + noise + 0.3 * rng.normal(size=n))))
            for fold in range(3):
                at = np.flatnonzero(folds == fold)
                key = ("autism", model, 0.1, seed, fold)
                preds += [(*key, "ds", f"s{i:02d}", f"site{i % 3}", y[i], p[i]) for i in at]
                metrics += [(*key, m, v) for m, v in binary_metrics(y[at], p[at]).items()]
    pred = pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)
    return pred, pd.DataFrame(metrics, columns=list(METRIC_COLUMNS))


def test_paired_bootstrap_finds_a_real_difference_and_none_for_a_copy():
    pred, _ = _tables(SIGNAL)
    better = paired_bootstrap(pred, "autism", 0.1, "lcm", "logreg", n_boot=500)
    assert better.difference > 0.1 and better.ci_low > 0 and better.p_value < 0.01
    assert better.n_folds == 6
    copy = pred[pred["model"] == "logreg"].assign(model="twin")
    same = paired_bootstrap(pd.concat([pred, copy]), "autism", 0.1, "twin", "logreg", 300)
    assert same.difference == 0 and same.ci_low == 0 == same.ci_high and same.p_value == 1.0
    missing = paired_bootstrap(pred, "autism", 0.1, "lcm", "absent", 100)
    assert missing.n_folds == 0 and np.isnan(missing.difference)


def test_seeds_retesting_the_same_subjects_do_not_narrow_the_paired_interval():
    """Every seed re-tests the same subjects: drawn afresh per seed, each subject counted as
    ten independent ones and ten seeds narrowed the interval about threefold (equal models:
    53 % 'better'/'worse' verdicts at 10 seeds instead of 5 %)."""
    pred, _ = _tables({"lcm": 1.0, "logreg": 1.0}, seeds=(0,))
    one = paired_bootstrap(pred, "autism", 0.1, "lcm", "logreg", n_boot=400)
    # Ten seeds identical to the first (same folds, same predictions): the same evidence.
    copies = pd.concat([pred.assign(seed=s) for s in range(10)], ignore_index=True)
    ten = paired_bootstrap(copies, "autism", 0.1, "lcm", "logreg", n_boot=400)
    assert ten.n_folds == 10 * one.n_folds
    assert (ten.difference, ten.ci_low, ten.ci_high, ten.p_value) == pytest.approx(
        (one.difference, one.ci_low, one.ci_high, one.p_value), abs=1e-12
    )
    # Ten seeds with new fold partitions of the same subjects and predictions: averaging over
    # partitions may narrow the interval a little, never by sqrt(10).
    rng = np.random.default_rng(5)
    parts = []
    for s in range(10):
        fold_of = dict(zip(pred["subject"].unique(), rng.permutation(60) % 3, strict=True))
        parts.append(pred.assign(seed=s, fold=pred["subject"].map(fold_of)))
    shuffled = pd.concat(parts, ignore_index=True).sort_values(["seed", "fold", "model"])
    varied = paired_bootstrap(shuffled, "autism", 0.1, "lcm", "logreg", n_boot=400)
    assert varied.ci_high - varied.ci_low > 0.6 * (one.ci_high - one.ci_low)  # old: 0.37


def test_too_few_subjects_of_a_class_give_the_difference_without_a_verdict():
    """6 test subjects in 3 folds, one fold holding both classes: one subject per class to
    resample, which the bootstrap redrew every time (a zero-width interval and p = 0.005 made a
    'worse' verdict). The observed difference stands, named for what it lacks."""
    pred, metrics = _tables(SIGNAL, n=6, seeds=(0,))
    tiny = paired_bootstrap(pred, "autism", 0.1, "lcm", "logreg", n_boot=500)
    assert tiny.n_folds == 1 and np.isfinite(tiny.difference) and np.isnan(tiny.ci_low)
    assert tiny.no_interval == TOO_FEW_SUBJECTS
    row = headline_table(summarise(metrics), pred).iloc[0]
    assert row["verdict"] == "too few test subjects per class" and np.isnan(row["p_value"])
    assert row["difference"] == pytest.approx(tiny.difference)


def _two_positives_per_fold(n_folds: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n_folds`` test folds of 2 positives and 6 negatives: lcm near perfect, logreg random."""
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(n_folds):
        y = np.array([1, 1] + [0] * 6)
        for model, p in (("lcm", y + rng.normal(0, 0.3, 8)), ("logreg", rng.normal(0, 1, 8))):
            key = ("t", model, 0.1, 0, fold)
            rows += [(*key, "d", f"s{fold}_{i}", "", y[i], p[i]) for i in range(8)]
    pred = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)
    return pred, _fold_metrics(pred)


def test_folds_of_two_positives_are_compared_on_the_pooled_subjects():
    """5 folds of 2 positives each (10 of 40 subjects): every fold was skipped for holding
    fewer than 3 subjects of a class, and the difference, its interval and p were all NaN,
    'not evaluated'. The minimum is over the subjects pooled across folds, as the bootstrap's
    draws are."""
    pred, metrics = _two_positives_per_fold()
    boot = paired_bootstrap(pred, "t", 0.1, "lcm", "logreg", n_boot=500)
    assert boot.n_folds == 5 and boot.no_interval == ""
    assert boot.ci_low < boot.difference < boot.ci_high and 0 < boot.ci_high - boot.ci_low < 1
    row = headline_table(summarise(metrics), pred, n_boot=500).iloc[0]
    auc = metrics[metrics["metric"] == "auc"].groupby("model")["value"].mean()
    assert row["difference"] == pytest.approx(auc["lcm"] - auc["logreg"])
    assert np.isfinite(row["difference_ci_low"]) and np.isfinite(row["p_value"])
    assert row["verdict"] in ("better", "no clear difference")


def test_contrast_intervals_stay_within_the_metrics_range():
    """Three folds of wildly different AUC gaps: the t interval ran to -2.9 .. +1.6."""
    rows = [
        ("autism", model, 1.0, 0, fold, "auc", value)
        for fold, (a, b) in enumerate([(0.9, 0.1), (0.1, 0.9), (0.95, 0.2)])
        for model, value in (("lcm", a), ("lcm-scratch", b))
    ]
    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    pred, _ = _tables({"lcm": 1.0}, n=12, seeds=(0,))
    table = contrast_table(metrics, pred)
    assert len(table) == 1 and table["ci_low"].iloc[0] == -1.0 and table["ci_high"].iloc[0] == 1.0
    assert table["verdict"].iloc[0] == "no clear difference"


def test_headline_difference_interval_stays_within_the_metrics_range():
    """Folds where lcm and logreg swap between perfect and inverted: the headline's t interval
    ran to -4.1 .. +4.8 AUC (the contrasts' was clipped, the headline's was not)."""
    rows = []
    for fold, lcm_wins in enumerate((True, False, True)):
        for i, y in enumerate((0, 0, 1, 1)):
            good = 0.2 + 0.6 * y  # ranks the positives first: AUC 1
            for model, wins in (("lcm", lcm_wins), ("logreg", not lcm_wins)):
                score = good if wins else 1 - good
                rows.append(("autism", model, 0.1, 0, fold, "ds", f"s{fold}{i}", "a", y, score))
    pred = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)
    row = headline_table(summarise(_fold_metrics(pred)), pred, n_boot=200).iloc[0]
    assert row["difference"] == pytest.approx(1 / 3)
    assert row["difference_ci_low"] == -1.0 and row["difference_ci_high"] == 1.0
    assert row["verdict"] == "no clear difference"


def test_headline_picks_best_baseline_and_states_verdict():
    pred, metrics = _tables(SIGNAL)
    summary = summarise(metrics)
    head = headline_table(summary, pred, n_boot=300)
    row = head.iloc[0]
    assert row["best_baseline"] == "logreg" and row["verdict"] == "better"
    assert row["model_mean"] == pytest.approx(
        metrics.query("model == 'lcm' and metric == 'auc'")["value"].mean()
    )
    null_pred, null_metrics = _tables({**SIGNAL, "lcm": 1.0})
    null = headline_table(summarise(null_metrics), null_pred, n_boot=300)
    assert null.iloc[0]["verdict"] in ("no clear difference", "worse")


def test_control_table_checks_chance():
    pred, metrics = _tables(SIGNAL)
    control = control_table(summarise(metrics), pred)
    assert list(control["task"]) == ["autism"] and bool(control.iloc[0]["at_chance"])
    leaky = metrics.copy()
    leaky.loc[leaky["model"] == "shuffled-labels", "value"] = 0.9
    assert not bool(control_table(summarise(leaky), pred).iloc[0]["at_chance"])


def test_site_table_per_site_and_model():
    pred, _ = _tables(SIGNAL, seeds=(0,))
    sites = site_table(pred)
    assert set(sites["site"]) == {"site0", "site1", "site2"}
    assert (sites["n_subjects"] == 20).all()
    lcm0 = sites.query("model == 'lcm' and site == 'site0'")["value"].iloc[0]
    at = pred.query("model == 'lcm' and site == 'site0'")
    assert lcm0 == pytest.approx(binary_metrics(at["y_true"].astype(int), at["prediction"])["auc"])


def test_control_table_names_each_control_and_gives_no_verdict_from_one_fit():
    """Two controls at one fraction are two named rows; one fit has no interval to judge."""
    summary = control_summary()
    control = control_table(summary, pd.DataFrame({"task": "t", "y_true": [0.0, 1.0]}))
    by_model = control.set_index(["model", "label_fraction"])["verdict"].to_dict()
    assert by_model == {
        ("shuffled-labels", 0.1): "too few fits",
        ("shuffled-labels", 1.0): "at chance",
        ("shuffled-lcm", 1.0): "above chance",
    }
    assert list(control["at_chance"]) == [False, True, False]


def _null_with_training_variance(rng: np.random.Generator, fit_sd: float) -> pd.DataFrame:
    """Two equally good models on 160 subjects, 4 folds, 1 seed; each fit's signal strength
    varies around the same mean (training variance), as refits of a network do."""
    n, y = 160, np.arange(160) % 2
    folds = rng.permutation(n) % 4
    rows = []
    for model in ("lcm", "logreg"):
        for fold in range(4):
            at = np.flatnonzero(folds == fold)
            strength = 1.0 + fit_sd * rng.normal()
            score = strength * (y[at] - 0.5) + rng.normal(size=len(at))
            key = ("autism", model, 0.1, 0, fold)
            rows += [(*key, "ds", f"s{i:03d}", "a", y[i], score[j]) for j, i in enumerate(at)]
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)


def test_the_headline_verdict_includes_training_variance():
    """Equally good models whose fits vary: the paired bootstrap alone (models held fixed)
    called a difference in about a quarter of such cohorts; the headline must stay near 5 %."""
    rng = np.random.default_rng(11)
    boot_calls = headline_calls = 0
    for _ in range(40):
        pred = _null_with_training_variance(rng, fit_sd=0.8)
        boot = paired_bootstrap(pred, "autism", 0.1, "lcm", "logreg", n_boot=300)
        boot_calls += bool(boot.ci_low > 0 or boot.ci_high < 0)
        pred = pred.assign(label_fraction=0.1)
        summary = summarise(_fold_metrics(pred))
        row = headline_table(summary, pred, n_boot=300).iloc[0]
        assert row["best_baseline"] == "logreg"
        assert row["difference_ci_low"] <= min(boot.ci_low, row["difference"])
        headline_calls += row["verdict"] in ("better", "worse")
    assert boot_calls >= 8  # the case is one where the bootstrap alone over-calls
    assert headline_calls <= 3, headline_calls


def _fold_metrics(pred: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, model, frac, seed, fold), g in pred.groupby(
        ["task", "model", "label_fraction", "seed", "fold"]
    ):
        scores = binary_metrics(g["y_true"].to_numpy().astype(int), g["prediction"].to_numpy())
        rows += [(task, model, frac, seed, fold, m, v) for m, v in scores.items()]
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def test_folds_with_equal_differences_give_no_verdict():
    """Two folds whose AUC differences are equal (small test folds quantise AUC): no spread is
    no evidence, not a gain with p = 0."""
    rows = []
    for fold in range(2):
        for model, value in (("lcm", 0.8), ("lcm-scratch", 0.8 - 1 / 9)):
            rows.append(("autism", model, 0.1, 0, fold, "auc", value))
    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    pred = _tables({"lcm": 1.0})[0]
    table = contrast_table(metrics, pred)
    row = table[table["contrast"] == "pretraining gain"].iloc[0]
    assert row["difference"] == pytest.approx(1 / 9)
    assert row["verdict"] == "not evaluated" and np.isnan(row["p_value"])


def _pairwise_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The former weighted AUC: the full positives x negatives comparison matrix."""
    pos, neg = y == 1, y == 0
    cmp = (scores[pos][:, None] > scores[neg][None, :]).astype(float)
    cmp += 0.5 * (scores[pos][:, None] == scores[neg][None, :])
    w_pos, w_neg = weights[:, pos], weights[:, neg]
    num = np.einsum("bi,ij,bj->b", w_pos, cmp, w_neg)
    return num / (w_pos.sum(axis=1) * w_neg.sum(axis=1))


@pytest.mark.parametrize("n", [2, 7, 40, 301])
def test_sorted_weighted_auc_equals_the_pairwise_one_with_ties_and_zero_weights(n):
    rng = np.random.default_rng(n)
    y = np.resize([0, 1], n)
    rng.shuffle(y)
    scores = rng.integers(0, 5, n) / 4  # few distinct values: many ties within and across
    counts = _subject_weights(y, 50, rng)  # bootstrap counts: zeros and repeats
    with np.errstate(invalid="ignore", divide="ignore"):  # a class drawn 0 times
        np.testing.assert_array_equal(
            _weighted_auc(scores, y, counts), _pairwise_auc(scores, y, counts)
        )
        ones = np.ones((1, n))
        np.testing.assert_array_equal(
            _weighted_auc(scores, y, ones), _pairwise_auc(scores, y, ones)
        )
        real = rng.random((20, n)) * (rng.random((20, n)) > 0.3)
        np.testing.assert_allclose(
            _weighted_auc(scores, y, real), _pairwise_auc(scores, y, real), rtol=1e-12
        )


def test_every_bootstrap_default_is_compare_n_boot() -> None:
    # 2000 was spelled in three signatures here and in `lcm report --n-boot`: one constant now.
    import argparse
    import inspect

    from lcm.commands import report
    from lcm.evaluate import compare

    for function in (compare.paired_bootstrap, compare.headline_difference, compare.headline_table):
        assert inspect.signature(function).parameters["n_boot"].default == compare.N_BOOT
    sub = argparse.ArgumentParser().add_subparsers()
    report.register(sub)
    assert sub.choices["report"].get_default("n_boot") == compare.N_BOOT


def _site_split_tables(models_seeds: dict[str, tuple[int, ...]], n: int = 60) -> tuple:
    """Predictions and metrics of 3 test folds that every seed repeats (leave-site-out at label
    fraction 1), numbered differently per seed as the splits table does; ``models_seeds``:
    the seeds each model has fits at (a model that ignores its seed: the first only)."""
    rng = np.random.default_rng(3)
    y = np.arange(n) % 2
    site = np.arange(n) % 3
    preds, metrics = [], []
    for model, seeds in models_seeds.items():
        for seed in seeds:
            p = 1 / (1 + np.exp(-(2.0 * (y - 0.5) + rng.normal(size=n))))
            for s in range(3):
                at = np.flatnonzero(site == s)
                key = ("autism", model, 1.0, seed, (s + seed) % 3)  # the site's number this seed
                preds += [(*key, "ds", f"s{i:02d}", f"site{s}", y[i], p[i]) for i in at]
                metrics += [(*key, m, v) for m, v in binary_metrics(y[at], p[at]).items()]
    pred = pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)
    return pred, pd.DataFrame(metrics, columns=list(METRIC_COLUMNS))


def test_a_seed_free_fit_pairs_with_each_seed_by_its_test_fold(monkeypatch):
    """cpm ignores its seed, so a later seed with the same folds does not refit it: its one
    fit of a site pairs with lcm's fit of that site at every seed (by test subjects: the fold
    numbers differ per seed), in the paired bootstrap and the contrasts alike. A model that
    depends on its seed (logreg) stands for no other seed, and a model compared with itself
    counts its one fit per fold once."""
    from lcm.evaluate import compare

    pred, metrics = _site_split_tables({"lcm": (0, 1), "cpm": (0,), "logreg": (0,)})
    auc = metrics[metrics["metric"] == "auc"].set_index(["model", "seed", "fold"])["value"]
    site_fold = {(seed, s): (s + seed) % 3 for seed in (0, 1) for s in range(3)}
    expected = [
        auc[("lcm", seed, site_fold[seed, s])] - auc[("cpm", 0, site_fold[0, s])]
        for seed in (0, 1)
        for s in sorted(range(3), key=lambda s: site_fold[seed, s])
    ]
    paired = paired_bootstrap(pred, "autism", 1.0, "lcm", "cpm", n_boot=200)
    assert paired.n_folds == 6
    np.testing.assert_allclose(paired.fold_differences, expected)
    assert paired_bootstrap(pred, "autism", 1.0, "lcm", "logreg", n_boot=200).n_folds == 3
    assert paired_bootstrap(pred, "autism", 1.0, "cpm", "cpm", n_boot=200).n_folds == 3
    monkeypatch.setattr(compare, "CONTRASTS", (("over cpm", "lcm", "cpm"),))
    row = contrast_table(metrics, pred).iloc[0]
    assert row["n"] == 6
    assert row["difference"] == pytest.approx(np.mean(expected))
