"""The tuned baselines and the shuffled-label control share work across grid values and
permutations, and give bit-for-bit the scores of the straightforward fit: ``GridSearchCV``
over a fresh scaler + estimator pipeline, each permutation computing its own features."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.benchmarks import load_benchmark
from helpers.evaluate import TASK, make_cohort

from lcm.evaluate import baselines
from lcm.evaluate.baselines import (
    ConnectomeLogReg,
    ConnectomeRidge,
    ConnectomeRidgeClassifier,
    ConnectomeSVM,
    ShuffledLabels,
    TangentLogReg,
)
from lcm.evaluate.protocol import EvaluationSettings, Task, evaluate_task
from lcm.store.cohort import Cohort

# The fit before the work was shared (features per fit, GridSearchCV's own loop), kept in the
# benchmark that times the two.
reference_fit = load_benchmark("control_speed.py").reference_fit


def three_site_cohort(n_subjects: int = 36) -> Cohort:
    """The helpers' cohort with its subjects spread over three sites (both classes in each)."""
    cohort = make_cohort(n_subjects=n_subjects, n_unlabeled=2, seed=7)
    ids = cohort.ids.copy()
    number = ids["subject"].str[1:].astype(int)
    ids["site"] = "site" + (number // 2 % 3).astype(str)
    return Cohort(ids, cohort.fc, cohort.variables, cohort.roi_names, cohort.atlas)


@pytest.mark.parametrize(
    ("model", "continuous"),
    [
        (ConnectomeLogReg, False),
        (ConnectomeSVM, False),
        (ConnectomeRidgeClassifier, False),
        (TangentLogReg, False),
        (ConnectomeRidge, True),
    ],
)
def test_tuned_fit_equals_grid_search_bit_for_bit(model, continuous, monkeypatch):
    cohort = make_cohort(n_subjects=30, n_unlabeled=3, seed=2)
    labels = cohort.variables["autism"]
    if continuous:
        y = np.where(labels.notna(), cohort.fc[:, 0, 1] * 10 + np.arange(len(labels)) % 3, np.nan)
    else:
        y = np.where(labels.isna(), -1, (labels == "autism").astype(int))
    control = ShuffledLabels(model(seed=4), seed=9, n_permutations=4)
    control.fit(cohort.fc, y, None, groups=cohort.groups)
    ours = control.permutation_predictions(cohort.fc)
    params = [e.best_param_ for e in control.estimators_]
    monkeypatch.setattr(baselines._TunedLinear, "fit", reference_fit)
    reference = ShuffledLabels(model(seed=4), seed=9, n_permutations=4)
    reference.fit(cohort.fc, y, None, groups=cohort.groups)
    np.testing.assert_array_equal(ours, reference.permutation_predictions(cohort.fc))
    assert params == [e.best_param_ for e in reference.estimators_]
    # The shared scaler is fitted on the training runs only and left out of the fitted models.
    assert all(e._shared is None for e in control.estimators_)


@pytest.mark.parametrize("split", ["site", "subject"])
def test_control_scores_equal_the_reference_under_each_split(split, monkeypatch):
    """The same seeds give the same metrics and predictions as the reference fit."""
    cohort = three_site_cohort()
    settings = EvaluationSettings.from_dict(
        {
            "split": split,
            "n_folds": 3,
            "seeds": [0, 1],
            "label_fractions": [0.5, 1.0],
            "models": ["logreg", "shuffled-labels"],
            "control_permutations": 3,
        }
    )
    ours = evaluate_task(cohort, TASK, settings, master_seed=5)
    assert ours.split == split
    monkeypatch.setattr(baselines._TunedLinear, "fit", reference_fit)
    reference = evaluate_task(cohort, TASK, settings, master_seed=5)
    assert len(ours.metrics) > 0
    for a, b in ((ours.metrics, reference.metrics), (ours.predictions, reference.predictions)):
        assert a.equals(b)
    assert ours.permutation_scores == reference.permutation_scores
    assert len(ours.permutation_scores) == 12  # 2 seeds x 3 folds x 2 fractions


def test_control_for_a_continuous_target_equals_the_reference(monkeypatch):
    cohort = three_site_cohort()
    variables = cohort.variables.copy()
    variables["age"] = cohort.fc[:, 0, 1].astype(float) * 20 + 30
    cohort = Cohort(cohort.ids, cohort.fc, variables, cohort.roi_names, cohort.atlas)
    task = Task(name="age", label="age", kind="continuous")
    settings = EvaluationSettings.from_dict(
        {
            "split": "site",
            "seeds": [0, 1],
            "label_fractions": [1.0],
            "models": ["ridge", "shuffled-labels"],
            "control_permutations": 2,
        }
    )
    ours = evaluate_task(cohort, task, settings, master_seed=3)
    monkeypatch.setattr(baselines._TunedLinear, "fit", reference_fit)
    reference = evaluate_task(cohort, task, settings, master_seed=3)
    assert ours.metrics.equals(reference.metrics) and len(ours.metrics) > 0
    assert ours.predictions.equals(reference.predictions)
