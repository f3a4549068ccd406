"""The shuffled-label control's permutation p (Ojala & Garriga 2010, test 1; Phipson & Smyth
2010): ``(1 + #{null >= observed}) / (1 + m)`` for the model the control permutes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from helpers.evaluate import TASK, make_cohort
from sklearn.metrics import roc_auc_score

from lcm.commands.evaluate import evaluate_and_write
from lcm.evaluate.baselines import ShuffledLabels
from lcm.evaluate.compare import control_table, permutation_p, permutation_tests
from lcm.evaluate.metrics import summarise
from lcm.evaluate.protocol import (
    EvaluationSettings,
    evaluate_task,
    register_model,
    unregister_model,
)
from lcm.evaluate.record import evaluation_record, read_evaluation_records


def _settings(m: int, **more) -> EvaluationSettings:
    return EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [1.0],
            "models": ["logreg", "shuffled-labels"],
            "control_permutations": m,
            **more,
        }
    )


def _record(cohort, settings, master_seed: int) -> dict:
    result = evaluate_task(cohort, TASK, settings, master_seed=master_seed)
    return evaluation_record(
        TASK,
        settings,
        result,
        master_seed=master_seed,
        checkpoint=None,
        ssl_checkpoint=None,
        splits_table=None,
    )


def _noise_cohort(seed: int):
    """``make_cohort``'s runs with the subjects' labels shuffled: FC says nothing of them."""
    cohort = make_cohort(n_subjects=24, n_unlabeled=0, seed=seed)
    rng = np.random.default_rng(1000 + seed)
    subjects = cohort.ids["subject"].to_numpy()
    labels = cohort.variables["autism"].to_numpy()
    first = {s: labels[i] for i, s in reversed(list(enumerate(subjects)))}
    names = list(first)
    shuffled = dict(zip(names, rng.permutation([first[s] for s in names]), strict=True))
    cohort.variables["autism"] = pd.Series([shuffled[s] for s in subjects], dtype=object)
    return cohort


def test_permutation_p_counts_ties_and_never_reaches_zero():
    null = np.array([0.4, 0.5, 0.7, 0.5])
    assert permutation_p(0.9, null) == pytest.approx(1 / 5)  # the smallest: 1 / (m + 1)
    assert permutation_p(0.5, null) == pytest.approx(4 / 5)  # ties count against it
    assert permutation_p(0.7 - 1e-15, null) == pytest.approx(2 / 5)  # a tie up to rounding
    assert permutation_p(0.1, null) == 1.0
    assert permutation_p(0.9, np.array([0.4, np.nan])) == pytest.approx(2 / 3)  # NaN: not below
    assert np.isnan(permutation_p(np.nan, null)) and np.isnan(permutation_p(0.9, np.array([])))


def test_planted_signal_gets_the_smallest_p_and_the_report_table_says_which_model():
    m = 9
    record = _record(make_cohort(n_subjects=24, n_unlabeled=0, seed=1), _settings(m), 3)
    (test,) = record["permutation_tests"]
    assert test["model"] == "shuffled-labels" and test["permuted_model"] == "logreg"
    assert test["metric"] == "auc" and test["n_permutations"] == m and test["n_fits"] == 2
    assert test["observed"] > max(test["null"])  # logreg sees the planted signal
    assert test["p_value"] == pytest.approx(1 / (m + 1)) == test["p_min"]
    scores = record["permutation_scores"]
    assert len(scores) == 2 and all(len(s["values"]) == m for s in scores)
    # control_table puts the p beside the at-chance verdict, with the permutation count.
    summary = pd.DataFrame(
        [
            {
                "task": "autism",
                "model": "shuffled-labels",
                "label_fraction": 1.0,
                "metric": "auc",
                "mean": 0.5,
                "ci_low": 0.3,
                "ci_high": 0.7,
                "n": 2,
            }
        ]
    )
    predictions = pd.DataFrame({"task": ["autism"] * 2, "y_true": [0.0, 1.0]})
    row = control_table(summary, predictions, {"autism": record}).iloc[0]
    assert row["verdict"] == "at chance" and row["permuted_model"] == "logreg"
    assert row["n_permutations"] == m and row["p_permutation"] == pytest.approx(0.1)
    assert row["p_min"] == pytest.approx(0.1)
    old = control_table(summary, predictions, {"autism": {}}).iloc[0]  # an older record
    assert old["n_permutations"] == 0 and np.isnan(old["p_permutation"])


@pytest.mark.slow
def test_pure_noise_gives_roughly_uniform_p_over_30_seeds():
    """Labels unrelated to FC: p should spread over (0, 1], not pile up at 1/(m+1)."""
    m = 9
    p = np.array(
        [
            _record(_noise_cohort(seed), _settings(m), seed)["permutation_tests"][0]["p_value"]
            for seed in range(30)
        ]
    )
    assert np.all((p >= 1 / (m + 1) - 1e-12) & (p <= 1))
    # Uniform on {0.1, ..., 1.0}: mean 0.55, P(p = 0.1) = 0.1 (3 of 30 expected).
    assert 0.35 < p.mean() < 0.75, p
    assert np.sum(p <= 0.1 + 1e-12) <= 8, p
    assert np.sum(p > 0.5) >= 8, p
    assert len(np.unique(p.round(6))) >= 5, p


def test_p_recomputed_by_hand_with_sklearn_from_the_written_tables(tmp_path):
    """Two seeds, two label fractions: the written predictions give the same observed AUC
    (logreg, fold AUCs averaged over seeds x folds) and the same first null value (the
    control's first permutation, the one the predictions table keeps) as the record."""
    m = 6
    settings = _settings(m, seeds=[0, 1], label_fractions=[0.5, 1.0])
    out, pred = tmp_path / "metrics.parquet", tmp_path / "predictions.parquet"
    evaluate_and_write(
        make_cohort(n_subjects=24, n_unlabeled=0, seed=2),
        TASK,
        settings,
        master_seed=5,
        checkpoint=None,
        out=out,
        predictions=pred,
    )
    record = read_evaluation_records([out])["autism"]
    assert (
        read_evaluation_records([pred])["autism"]["permutation_tests"]
        == (record["permutation_tests"])
    )
    predictions = pd.read_parquet(pred)
    tests = {t["label_fraction"]: t for t in record["permutation_tests"]}
    assert sorted(tests) == [0.5, 1.0]

    def fold_mean_auc(model: str, fraction: float) -> tuple[float, dict]:
        rows = predictions[
            (predictions["model"] == model) & (predictions["label_fraction"] == fraction)
        ]
        by_fit = {
            (int(s), int(f)): roc_auc_score(g["y_true"].astype(int), g["prediction"])
            for (s, f), g in rows.groupby(["seed", "fold"])
        }
        return float(np.mean(list(by_fit.values()))), by_fit

    for fraction, test in tests.items():
        observed, _ = fold_mean_auc("logreg", fraction)
        first_null, by_fit = fold_mean_auc("shuffled-labels", fraction)
        assert test["n_fits"] == 4 == len(by_fit)
        assert test["observed"] == pytest.approx(observed, abs=1e-12)
        assert test["null"][0] == pytest.approx(first_null, abs=1e-12)
        for s in record["permutation_scores"]:
            if s["label_fraction"] == fraction:
                assert s["values"][0] == pytest.approx(by_fit[(s["seed"], s["fold"])], abs=1e-12)
        b = sum(v >= observed for v in test["null"])
        assert test["p_value"] == pytest.approx((1 + b) / (1 + m))
        assert test["p_min"] == pytest.approx(1 / (m + 1))
    # The observed value is the summary's mean of logreg, the headline tables' number.
    summary = summarise(pd.read_parquet(out))
    at = summary[(summary["model"] == "logreg") & (summary["metric"] == "auc")]
    for fraction, mean in zip(at["label_fraction"], at["mean"], strict=True):
        assert tests[fraction]["observed"] == pytest.approx(mean, abs=1e-12)


def test_permutation_tests_without_the_permuted_model_give_no_p():
    scores = [
        {
            "task": "autism",
            "model": "shuffled-labels",
            "label_fraction": 1.0,
            "seed": 0,
            "fold": f,
            "metric": "auc",
            "values": [0.4, 0.6, None],
        }
        for f in range(2)
    ]
    empty = pd.DataFrame(
        columns=["task", "model", "label_fraction", "seed", "fold", "metric", "value"]
    )
    (row,) = permutation_tests(empty, scores).to_dict("records")
    assert row["permuted_model"] == "logreg" and row["n_permutations"] == 3
    assert np.isnan(row["observed"]) and np.isnan(row["p_value"])
    assert row["null"][:2] == pytest.approx([0.4, 0.6]) and np.isnan(row["null"][2])


class _Spy:
    """Records what each permuted refit is given."""

    calls: ClassVar[list] = []
    uses_groups = True

    def fit(self, fc, y, variables, groups=None):
        _Spy.calls.append((np.asarray(fc).copy(), np.asarray(y).copy(), np.asarray(groups)))
        return self

    def predict_proba(self, fc):
        return np.full((len(fc), 2), 0.5)


def test_permutations_move_whole_subjects_within_the_training_fold_only():
    """No leakage: each permuted refit sees training runs only, its labels a permutation of
    the training fold's labelled subjects' (whole subjects), unlabelled runs left unlabelled."""
    _Spy.calls = []
    register_model(
        "spy-control",
        lambda ctx: ShuffledLabels(_Spy(), seed=ctx.seed, n_permutations=3),
        replace=True,
    )
    try:
        cohort = make_cohort(n_subjects=20, n_unlabeled=2)
        settings = EvaluationSettings.from_dict(
            {"n_folds": 2, "label_fractions": [0.5], "models": ["spy-control"]}
        )
        evaluate_task(cohort, TASK, settings, master_seed=0)
    finally:
        unregister_model("spy-control")
    run_subject = {cohort.fc[i].tobytes(): cohort.groups[i] for i in range(len(cohort))}
    truth = dict(zip(cohort.groups, cohort.variables["autism"], strict=True))
    assert len(_Spy.calls) == 2 * 3
    for fold in range(2):
        fits = _Spy.calls[3 * fold : 3 * fold + 3]
        training = {run_subject[m.tobytes()] for m in fits[0][0]}
        assert 0 < len(training) < len(set(cohort.groups))  # the test fold is never passed
        for fc, y, groups in fits:
            assert [run_subject[m.tobytes()] for m in fc] == list(groups)
            label = {}
            for g, v in zip(groups, y, strict=True):
                assert label.setdefault(g, v) == v  # a subject's runs share one label
            labelled = sorted(g for g, v in label.items() if v >= 0)
            # The labelled subjects keep their labels' multiset: permuted among themselves.
            true = sorted(int(truth[g] == "autism") for g in labelled)
            assert sorted(int(label[g]) for g in labelled) == true
        # The same subjects are labelled in each permutation; the labels move.
        masks = {
            tuple(sorted(g for g, v in zip(gr, yy, strict=True) if v >= 0)) for _, yy, gr in fits
        }
        assert len(masks) == 1
        assert len({yy.tobytes() for _, yy, _ in fits}) > 1


def _fold_scores(values_per_fold: list[list[float | None]]) -> list[dict]:
    return [
        {
            "task": "autism",
            "model": "shuffled-labels",
            "label_fraction": 1.0,
            "seed": 0,
            "fold": f,
            "metric": "auc",
            "values": values,
        }
        for f, values in enumerate(values_per_fold)
    ]


def _own(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": "autism",
            "model": "logreg",
            "label_fraction": 1.0,
            "seed": 0,
            "fold": range(len(values)),
            "metric": "auc",
            "value": values,
        }
    )


def test_a_fold_the_model_scored_nan_is_left_out_of_the_null_too():
    # logreg's fold 0 is NaN, so its headline (0.9) is fold 1's alone; permutation 1 scored
    # 0.95 on that fold, above it. Pooled over both folds (0.6 and 0.95: 0.775) it looked below,
    # and p came out 1/3 where the same fits give 2/3.
    table = permutation_tests(_own([np.nan, 0.9]), _fold_scores([[0.5, 0.6], [0.4, 0.95]]))
    (row,) = table.to_dict("records")
    assert row["observed"] == pytest.approx(0.9)
    assert row["null"] == pytest.approx([0.4, 0.95])
    assert row["p_value"] == pytest.approx(2 / 3)


def test_a_permutation_with_a_nan_fold_counts_against_the_model():
    # Permutation 0 has no score on fold 0: its mean over fold 1 alone (0.4) is not the same
    # statistic as the model's over both folds, so it is NaN and counts against the model, as
    # permutation_p documents for a NaN null value.
    table = permutation_tests(_own([0.8, 0.9]), _fold_scores([[None, 0.6], [0.4, 0.5]]))
    (row,) = table.to_dict("records")
    assert np.isnan(row["null"][0]) and row["null"][1] == pytest.approx(0.55)
    assert row["p_value"] == pytest.approx(2 / 3)
