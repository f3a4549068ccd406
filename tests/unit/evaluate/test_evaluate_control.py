"""The shuffled-label control is a proper permutation control, and inner fits get subjects."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from helpers.evaluate import TASK, make_cohort

from lcm.evaluate.baselines import ConnectomeLogReg, ShuffledLabels, permute_by_subject
from lcm.evaluate.compare import control_table
from lcm.evaluate.cpm import CPM
from lcm.evaluate.metrics import mean_ci, summarise
from lcm.evaluate.protocol import (
    EvaluationSettings,
    accepts_groups,
    evaluate_task,
    register_model,
    unregister_model,
)
from lcm.train.finetune import LCMClassifier
from lcm.train.regress import LCMRegressor


def test_permutation_moves_whole_subjects_and_keeps_unlabeled():
    y = np.array([1, 1, 0, 0, 0, -1, 1, 0, 1, 1])
    groups = np.array(["a", "a", "b", "c", "c", "d", "e", "f", "g", "g"])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        out = permute_by_subject(y, groups, rng)
        assert out[5] == -1  # unlabeled stays unlabeled
        for g in ("a", "c", "g"):  # a subject's runs share one (permuted) label
            assert len(set(out[groups == g])) == 1
        per_subject = [out[groups == g][0] for g in ("a", "b", "c", "e", "f", "g")]
        assert sorted(per_subject) == [0, 0, 0, 1, 1, 1]  # subject labels are permuted
        seen.add(tuple(per_subject))
    assert len(seen) > 5  # and really shuffled


def test_control_refits_one_model_per_permutation():
    cohort = make_cohort(n_subjects=24, n_unlabeled=0)
    y = (cohort.variables["autism"] == "autism").to_numpy().astype(int)
    control = ShuffledLabels(ConnectomeLogReg(seed=0), seed=3, n_permutations=4)
    control.fit(cohort.fc, y, None, groups=cohort.groups)
    preds = control.permutation_predictions(cohort.fc)
    assert preds.shape == (4, len(y), 2)
    assert len({p[:, 1].round(6).tobytes() for p in preds}) == 4  # four distinct null models
    np.testing.assert_allclose(control.predict_proba(cohort.fc), preds[0])


def test_summary_interval_covers_at_least_nominally_with_five_values():
    """Five fold values of one seed: the shuffled-label control's interval must not leave
    chance more often than 5 %. A plain percentile bootstrap covered ~85 % (one control cell
    in six "off chance"); the corrected t covers at least the nominal 95 %."""
    rng = np.random.default_rng(0)
    samples = rng.normal(0.5, 0.1, size=(1000, 5))
    ratio = 1 / (5 - 1)
    covered = [lo <= 0.5 <= hi for _, lo, hi in (mean_ci(s, ratio) for s in samples)]
    assert np.mean(covered) >= 0.95
    # Without the correction (independent values) it is Student's t, exact at 95 %.
    plain = [lo <= 0.5 <= hi for _, lo, hi in (mean_ci(s, 0.0) for s in samples)]
    assert np.mean(plain) == pytest.approx(0.95, abs=0.02)


@pytest.mark.slow
def test_control_sits_at_chance_on_synthetic_data_with_signal():
    """Real signal (logreg far above chance), yet the control's CI covers 0.5 at each fraction."""
    cohort = make_cohort(n_subjects=60, n_unlabeled=0, seed=4)
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 5,
            "seeds": [0, 1],
            "label_fractions": [0.2, 1.0],
            "models": ["logreg", "shuffled-labels"],
        }
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=11)
    summary = summarise(result.metrics)
    control = control_table(summary, result.predictions)
    assert len(control) == 2 and control["at_chance"].all(), control
    assert (control["mean"] - 0.5).abs().max() < 0.1
    auc = summary[(summary["model"] == "logreg") & (summary["metric"] == "auc")]
    assert (auc["ci_low"] > 0.6).all(), auc  # the data do carry signal


class _RecordsGroups:
    """A model whose ``fit`` takes ``groups`` by signature (no ``uses_groups`` attribute)."""

    calls: ClassVar[list] = []

    def fit(self, fc, y, variables, groups=None):
        _RecordsGroups.calls.append((fc.copy(), groups))
        return self

    def predict_proba(self, fc):
        return np.full((len(fc), 2), 0.5)


def test_protocol_passes_subject_groups_to_every_fit_that_takes_them():
    _RecordsGroups.calls = []
    register_model("records-groups", lambda ctx: _RecordsGroups(), replace=True)
    try:
        cohort = make_cohort(n_subjects=20, n_unlabeled=2)
        settings = EvaluationSettings.from_dict(
            {"n_folds": 2, "label_fractions": [1.0], "models": ["records-groups"]}
        )
        evaluate_task(cohort, TASK, settings, master_seed=0)
    finally:
        unregister_model("records-groups")
    subject_of = {cohort.fc[i].tobytes(): cohort.groups[i] for i in range(len(cohort))}
    assert len(_RecordsGroups.calls) == 2
    for fc, groups in _RecordsGroups.calls:
        assert groups is not None and len(groups) == len(fc)
        # Row-aligned with the training connectomes: subjects with two runs appear twice.
        assert [subject_of[m.tobytes()] for m in fc] == list(groups)
        assert len(set(groups)) < len(groups)
    assert accepts_groups(LCMClassifier(None, "dx", ("a", "b"), {}, 0, init="scratch"))
    assert accepts_groups(LCMRegressor(None, "age", {}, 0, init="scratch"))
    assert accepts_groups(CPM())  # subject means for its edge tests


def test_control_permutations_setting_reaches_the_control() -> None:
    from lcm.config import schema
    from lcm.evaluate.registry import CONTROL_PERMUTATIONS, ModelContext, make_model
    from lcm.exceptions import ConfigError

    default = schema()["properties"]["evaluate"]["properties"]["control_permutations"]
    assert default["default"] == CONTROL_PERMUTATIONS == EvaluationSettings().control_permutations
    settings = EvaluationSettings.from_dict({"control_permutations": 7})
    context = ModelContext(
        label="dx",
        levels=("control", "patient"),
        finetune={},
        seed=0,
        control_permutations=settings.control_permutations,
    )
    control = make_model("shuffled-labels", context)
    assert isinstance(control, ShuffledLabels) and control.n_permutations == 7
    for bad in (0, True, 2.5):
        with pytest.raises(ConfigError, match="control_permutations"):
            EvaluationSettings.from_dict({"control_permutations": bad})
