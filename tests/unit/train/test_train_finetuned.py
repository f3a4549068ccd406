"""The finetuned classifier and regressor refuse the same bad set-ups the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcm.exceptions import ConfigError, InputDataError
from lcm.train.finetune import LCMClassifier
from lcm.train.regress import LCMRegressor

R = 6


def _fc(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    fc = rng.uniform(-0.5, 0.5, (n, R, R)).astype(np.float32)
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    fc[:, np.arange(R), np.arange(R)] = 1.0
    return fc


def _make(kind: str, checkpoint: str | None, init: str = "pretrained"):
    if kind == "classifier":
        return LCMClassifier(checkpoint, "dx", ("control", "case"), {"epochs": 1}, 0, init)
    return LCMRegressor(checkpoint, "score", {"epochs": 1}, 0, init)


def _targets(kind: str, n: int) -> np.ndarray:
    return np.arange(n) % 2 if kind == "classifier" else np.linspace(0.0, 1.0, n)


KINDS = ["classifier", "regressor"]


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_init_names_the_estimator(kind: str) -> None:
    est = _make(kind, None, init="imagenet")
    with pytest.raises(ConfigError, match=rf"LCM{kind.title()} init: expected one of"):
        est.fit(_fc(6), _targets(kind, 6))


@pytest.mark.parametrize("kind", KINDS)
def test_pretrained_init_needs_a_checkpoint(kind: str) -> None:
    with pytest.raises(ConfigError, match="checkpoint is None but init is 'pretrained'"):
        _make(kind, None).fit(_fc(6), _targets(kind, 6))


@pytest.mark.parametrize("kind", KINDS)
def test_variables_must_be_row_aligned(kind: str) -> None:
    est = _make(kind, None, init="scratch")
    with pytest.raises(InputDataError, match="5 rows for 6 connectomes"):
        est.fit(_fc(6), _targets(kind, 6), variables=pd.DataFrame({"age": np.ones(5)}))


@pytest.mark.parametrize("kind", KINDS)
def test_predicting_needs_a_fit_then_the_same_atlas(kind: str) -> None:
    est = _make(kind, None, init="scratch")
    predict = est.predict_proba if kind == "classifier" else est.predict
    with pytest.raises(InputDataError, match=rf"LCM{kind.title()} is not fitted"):
        predict(_fc(2))
    est.fit(_fc(8), _targets(kind, 8))
    assert est.model_.config.n_queries == (2 if kind == "classifier" else 1)
    assert predict(_fc(3)).shape[0] == 3
    with pytest.raises(InputDataError, match="7 ROIs, the model expects 6"):
        predict(np.tile(np.eye(7, dtype=np.float32), (2, 1, 1)))


def test_a_regression_records_its_unlabelled_subjects() -> None:
    """Its pseudo-label record had no count: the report said '0 unlabelled' at fraction 0.1."""
    y = np.linspace(0.0, 1.0, 8)
    y[[1, 6, 7]] = np.nan  # s0 has a labelled row left; s3 has none
    groups = np.array([f"d/s{i // 2}" for i in range(8)])
    est = _make("regressor", None, init="scratch").fit(_fc(8), y, groups=groups)
    assert est.pseudo_label_record()["diagnosis"] == {
        "status": "continuous",
        "n_unlabeled": 1,
        "n_unlabeled_rows": 2,
    }
