"""The LCM variants through the protocol, with the real LCMClassifier and a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.store.catalogue import Catalogue, Variable
from lcm.train.pretrain import pretrain

from test_evaluate_protocol import TASK, make_cohort  # isort: skip


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on a busy 2-core machine: one thread avoids oversubscription (10x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 2-epoch tiny LCM pretrained on a separate cohort with an age variable."""
    catalogue = Catalogue(
        variables={"age": Variable("age", "continuous", "sociodemographic", "years", (5, 100))},
        datasets={},
        path="<test>",
    )
    cohort = make_cohort(n_subjects=30, n_unlabeled=0, seed=5)
    cohort.variables = cohort.variables[["age"]].assign(age=20.0 + np.arange(len(cohort)) % 30)
    out = tmp_path_factory.mktemp("ckpt")
    pretrain(
        cohort, catalogue, {"preset": "tiny"}, {"epochs": 2, "batch_size": 8}, 0, out,
        device="cpu",
    )  # fmt: skip
    return out


def test_lcm_variants_run_in_protocol(checkpoint):
    models = ["lcm", "lcm-no-pseudo", "lcm-scratch", "logreg"]
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [0.5],
            "models": models,
            "finetune": {"epochs": 2, "batch_size": 8},
        }
    )
    result = evaluate_task(make_cohort(), TASK, settings, master_seed=1, checkpoint=checkpoint)
    assert set(result.metrics["model"]) == set(models)
    p = result.predictions
    assert p["p_positive"].between(0, 1).all()
    per_model = p.groupby("model")["subject"].count()
    assert (per_model == per_model.iloc[0]).all()
