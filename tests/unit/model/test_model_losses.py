"""Masked BEI losses, masked-ROI reconstruction and task weighting."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lcm.model.losses import (
    UncertaintyWeighting,
    masked_roi_loss,
    sample_roi_mask,
    variable_losses,
)
from lcm.model.targets import QueryLayout, encode_targets

L, B = 3, 5
LAYOUT = (
    QueryLayout()
    .append("sex", "binary", ("F", "M"))
    .append("age", "continuous")
    .append("hand", "categorical", ("left", "right", "mixed"))
    .append("bmi", "continuous")
)  # 7 queries
STATS = {"age": {"mean": 40.0, "std": 10.0}, "bmi": {"mean": 25.0, "std": 5.0}}


def _variables() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": pd.Series(["M", None, "F", "F", "M"], dtype=object),
            "age": [30.0, 50.0, float("nan"), 40.0, 60.0],
            "hand": pd.Series([None] * B, dtype=object),  # absent from the batch
            "bmi": [20.0, float("nan"), 30.0, float("nan"), 25.0],
        }
    )


def test_values_match_reference_formulas() -> None:
    torch.manual_seed(0)
    outputs = torch.randn(L, B, LAYOUT.n_queries)
    targets = encode_targets(_variables(), LAYOUT, STATS)
    losses = variable_losses(outputs, targets, LAYOUT)
    assert set(losses) == {"sex", "age", "bmi"}  # hand is missing everywhere
    keep = torch.tensor([0, 2, 3, 4])
    labels = torch.tensor([1, 0, 0, 1])
    ce = torch.stack([F.cross_entropy(outputs[i, keep, 0:2], labels) for i in range(L)]).mean()
    torch.testing.assert_close(losses["sex"], ce)
    z = torch.tensor([-1.0, 1.0, 0.0, 2.0])
    mse = ((outputs[:, [0, 1, 3, 4], 2] - z) ** 2).mean()
    torch.testing.assert_close(losses["age"], mse)


def test_missing_values_give_no_gradient() -> None:
    outputs = torch.randn(L, B, LAYOUT.n_queries, requires_grad=True)
    targets = encode_targets(_variables(), LAYOUT, STATS)
    weighting = UncertaintyWeighting(LAYOUT.names)
    total = weighting(variable_losses(outputs, targets, LAYOUT))
    total.backward()
    grad = outputs.grad
    assert grad[:, :, LAYOUT["hand"].slice].abs().sum() == 0  # absent variable
    assert grad[:, 1, 0:2].abs().sum() == 0  # subject 1 lacks sex
    assert grad[:, 2, 2].abs().sum() == 0  # subject 2 lacks age
    assert grad[:, [1, 3], 6].abs().sum() == 0  # subjects 1, 3 lack bmi
    assert grad[:, 0, 0:3].abs().sum() > 0 and grad[:, 4, 6].abs().sum() > 0
    assert weighting.log_vars["hand"].grad is None  # its task weight is untouched too
    assert weighting.log_vars["age"].grad is not None


def test_soft_targets_give_soft_cross_entropy() -> None:
    layout = QueryLayout().append("sex", "binary", ("F", "M"))
    outputs = torch.zeros(1, 2, 2)
    targets = encode_targets(pd.DataFrame({"sex": ["F", "M"]}), layout, {})
    targets["sex"].values[:] = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert float(variable_losses(outputs, targets, layout)["sex"]) == pytest.approx(math.log(2))


def test_masked_roi_loss_counts_only_masked_rows() -> None:
    fc = torch.randn(B, 13, 13)
    mask = sample_roi_mask(B, 13, 0.25, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [3] * B  # round(0.25 * 13) per sample
    pred = fc.clone()
    assert float(masked_roi_loss(pred, fc, mask)) == 0.0
    pred[~mask] += 5.0  # errors on visible ROIs do not count
    assert float(masked_roi_loss(pred, fc, mask)) == 0.0
    pred[mask] += 1.0
    assert float(masked_roi_loss(pred, fc, mask)) == pytest.approx(1.0)


def test_uncertainty_weighting_form() -> None:
    weighting = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        weighting.log_vars["a"].fill_(math.log(2.0))
    total = weighting({"a": torch.tensor(4.0)})
    assert float(total.detach()) == pytest.approx(4.0 / 2.0 + math.log(2.0))
    assert weighting.weights()["a"] == pytest.approx(0.5)
    assert float(weighting({})) == 0.0
