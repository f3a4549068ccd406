"""LCMRegressor: a continuous query head on the pretrained LCM, alone and in the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.model import TINY, make_catalogue, make_cohort, pretrain_cohort

from lcm.evaluate.metrics import regression_metrics
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.evaluate.tasks import Task
from lcm.exceptions import InputDataError
from lcm.train import finetune as finetune_mod
from lcm.train.pretrain import pretrain
from lcm.train.regress import LCMRegressor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("regress")
    settings = {"epochs": 6, "batch_size": 16, "lr": 0.003}
    pretrain(pretrain_cohort(40, seed=1), make_catalogue(tmp), TINY, settings, 3, tmp / "ckpt")
    return tmp / "ckpt"


def test_scaler_is_fitted_on_labelled_training_rows_only(checkpoint: Path, monkeypatch) -> None:
    cohort = make_cohort(40, seed=2)
    y = cohort.variables["bmi"].to_numpy(dtype=float)  # NaN where unlabeled (30 % missing)
    seen = []
    original = finetune_mod._Finetuning.__call__

    def spy(self, fc, yy):
        seen.append(self.targets(yy))  # the targets this training run's loss sees
        return original(self, fc, yy)

    monkeypatch.setattr(finetune_mod._Finetuning, "__call__", spy)
    variables = cohort.variables.drop(columns="bmi")
    reg = LCMRegressor(checkpoint, "bmi", {"epochs": 2, "batch_size": 8}, seed=0)
    reg.fit(cohort.fc, y, variables)
    labelled = np.isfinite(y)
    assert reg.mean_ == pytest.approx(y[labelled].mean())
    assert reg.scale_ == pytest.approx(y[labelled].std())
    # bmi is a pretrained BEI variable: its query is the task head, not a second BEI target.
    assert reg.layout_.names.count("bmi") == 1 and len(seen) == 1
    target = seen[0]["bmi"]
    np.testing.assert_array_equal(target.present.numpy(), labelled)
    standardised = target.values.numpy()[labelled]
    assert standardised.mean() == pytest.approx(0, abs=1e-5)
    assert standardised.std() == pytest.approx(1, abs=1e-4)
    pred = reg.predict(cohort.fc[:7])
    assert pred.shape == (7,) and np.isfinite(pred).all()


def test_regressor_learns_a_new_continuous_target(checkpoint: Path) -> None:
    cohort = make_cohort(90, seed=3)
    y = cohort.variables["age"].to_numpy(dtype=float) * 2.0 + 100.0  # a score not in pretraining
    train, test = np.arange(60), np.arange(60, 90)
    settings = {"epochs": 25, "batch_size": 16, "lr": 0.003}
    reg = LCMRegressor(checkpoint, "score", settings, seed=0)
    reg.fit(cohort.fc[train], y[train], cohort.variables.iloc[train].drop(columns="age"))
    assert reg.layout_.names[-1] == "score" and reg.layout_["score"].is_numeric
    scores = regression_metrics(y[test], reg.predict(cohort.fc[test]))
    assert scores["pearson_r"] > 0.5, scores
    assert abs(reg.predict(cohort.fc[test]).mean() - y[train].mean()) < 2 * y[train].std()


def test_regressor_rejects_bad_targets(checkpoint: Path) -> None:
    fc = make_cohort(6, seed=0).fc
    with pytest.raises(InputDataError, match="at least 3"):
        LCMRegressor(checkpoint, "score", {}, 0).fit(fc, np.array([1.0, 2] + [np.nan] * 4))
    with pytest.raises(InputDataError, match="expected 6 finite floats"):
        LCMRegressor(checkpoint, "score", {}, 0).fit(fc, np.ones(5))
    with pytest.raises(InputDataError, match=r"sex.*not a continuous"):
        LCMRegressor(checkpoint, "sex", {"epochs": 1}, 0).fit(fc, np.arange(6.0))


@pytest.mark.slow
def test_continuous_task_gets_lcm_rows_beside_baselines(checkpoint: Path) -> None:
    cohort = make_cohort(30, seed=4)
    cohort.ids["dataset"] = "beta"  # not the pretraining dataset
    task = Task(name="bmi", label="bmi", kind="continuous")
    models = ["lcm", "lcm-no-pseudo", "lcm-scratch", "ridge", "cpm", "shuffled-labels"]
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "label_fractions": [0.5, 1.0],
            "models": models,
            "finetune": {"epochs": 2, "batch_size": 8},
        }
    )
    result = evaluate_task(cohort, task, settings, master_seed=0, checkpoint=checkpoint)
    assert set(result.models) == set(models) and not result.skipped
    m = result.metrics
    for name in ("lcm", "lcm-no-pseudo", "lcm-scratch"):
        rows = m[m["model"] == name]
        assert set(rows["metric"]) == {"pearson_r", "mae", "r2"}
        assert len(rows) == 3 * 2 * 2  # metrics x folds x fractions
        assert np.isfinite(rows["value"]).all()
    preds = result.predictions
    lcm_pred = preds[preds["model"] == "lcm"]["prediction"]
    assert lcm_pred.between(10, 45).mean() > 0.9  # back in kg/m^2, not standardised units


def test_target_scaler_weighs_each_subject_once() -> None:
    cohort = make_cohort(8, seed=3, runs_per_subject=2)
    keep = np.r_[np.arange(10), [11, 13, 15]]  # subjects s000-s004 with 2 runs, s005-s007 with 1
    fc, groups = cohort.fc[keep], cohort.groups[keep]
    y = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, np.nan, np.nan, 10.0, 10.0, 10.0])
    reg = LCMRegressor(None, "score", {"epochs": 1, "batch_size": 4}, seed=0, init="scratch")
    reg.fit(fc, y, groups=groups)
    per_subject = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0])  # s004 unlabeled
    assert reg.mean_ == pytest.approx(per_subject.mean())
    assert reg.scale_ == pytest.approx(per_subject.std())
