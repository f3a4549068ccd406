"""Label fractions whose labelled subsets coincide: every fraction keeps its rows."""

from __future__ import annotations

from typing import ClassVar

import pytest
from helpers.evaluate import TASK, PrevalenceModel, make_cohort

from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.evaluate.registry import register_model, unregister_model
from lcm.store.cohort import Cohort


class CountingModel(PrevalenceModel):
    """The prevalence model, counting its fits by name."""

    fits: ClassVar[dict[str, int]] = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, fc, y, variables):
        CountingModel.fits[self.name] = CountingModel.fits.get(self.name, 0) + 1
        return super().fit(fc, y, variables)


@pytest.fixture
def counting_models():
    """``counting`` and ``counting-largest`` (fitted at the largest fraction only)."""
    CountingModel.fits = {}
    register_model("counting", lambda ctx: CountingModel("counting"), replace=True)
    register_model(
        "counting-largest",
        lambda ctx: CountingModel("counting-largest"),
        replace=True,
        largest_fraction_only=True,
    )
    yield CountingModel
    unregister_model("counting")
    unregister_model("counting-largest")


def _cohort(n_subjects: int, positive_every: int) -> Cohort:
    """``make_cohort``'s runs with every ``positive_every``-th subject (from 1) positive."""
    base = make_cohort(n_subjects=n_subjects, n_unlabeled=0)
    number = base.ids["subject"].str[1:].astype(int)
    variables = base.variables.copy()
    variables["autism"] = ["autism" if n % positive_every == 1 else "control" for n in number]
    return Cohort(base.ids, base.fc, variables, base.roi_names, base.atlas)


def test_fractions_drawing_the_same_subset_each_keep_every_fold(counting_models):
    """5 positives / 15 negatives, 5 folds: fractions 0.1 and 0.17 both label 2 subjects per
    class in every training fold; the second fraction's fits were skipped as 'repeated by an
    earlier seed' and its folds were missing from the metrics."""
    cohort = _cohort(20, positive_every=4)
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 5,
            "seeds": [0],
            "label_fractions": [0.1, 0.17, 1.0],
            "models": ["counting", "counting-largest"],
        }
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0)
    auc = result.metrics[result.metrics["metric"] == "auc"]
    at = auc[auc["model"] == "counting"].groupby("label_fraction")["fold"].apply(sorted)
    assert at.to_dict() == {f: [0, 1, 2, 3, 4] for f in (0.1, 0.17, 1.0)}
    largest = auc[auc["model"] == "counting-largest"]
    assert set(largest["label_fraction"]) == {1.0} and sorted(largest["fold"]) == [0, 1, 2, 3, 4]
    # The same subset, the same fit: reused, not refitted (2 subsets x 5 folds).
    assert counting_models.fits == {"counting": 10, "counting-largest": 5}
    wide = auc[auc["model"] == "counting"].pivot(index="fold", columns="label_fraction")["value"]
    assert wide[0.1].equals(wide[0.17])
    pred = result.predictions
    assert pred.groupby(["model", "label_fraction"]).size().to_dict() == {
        ("counting", 0.1): 20,
        ("counting", 0.17): 20,
        ("counting", 1.0): 20,
        ("counting-largest", 1.0): 20,
    }
    assert result.n_fits_not_repeated == 0


def test_a_fraction_keeping_every_label_leaves_the_largest_fraction_its_fits(counting_models):
    """8 subjects, 2 folds: fraction 0.5 keeps the 2 training subjects of each class, the
    subset of fraction 1; fraction 1, where the largest-fraction-only control is fitted, was
    the one dropped."""
    cohort = _cohort(8, positive_every=2)
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [0.5, 1.0],
            "models": ["counting", "counting-largest"],
        }
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0)
    auc = result.metrics[result.metrics["metric"] == "auc"]
    keys = sorted(zip(auc["model"], auc["label_fraction"], auc["fold"], strict=True))
    assert keys == sorted(
        [("counting", f, k) for f in (0.5, 1.0) for k in (0, 1)]
        + [("counting-largest", 1.0, k) for k in (0, 1)]
    )
    assert counting_models.fits == {"counting": 2, "counting-largest": 2}
