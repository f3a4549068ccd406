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
from lcm.model.targets import QueryLayout, Target, encode_targets

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


def test_projection_puts_a_log_variance_back_on_its_bound_where_it_learns_again() -> None:
    """Past a bound the clamp passes no gradient (the weight would stay at e^4 for good);
    projected onto it, the gradient passes again. Values inside are left bit for bit."""
    weighting = UncertaintyWeighting(["low", "high", "inside"])
    with torch.no_grad():
        for name, value in (("low", -4.5), ("high", 7.0), ("inside", -3.9999)):
            weighting.log_vars[name].fill_(value)
    inside = weighting.log_vars["inside"].detach().clone()
    weighting({"low": torch.tensor(5.0)}).backward()
    assert float(weighting.log_vars["low"].grad) == 0.0  # stuck: why the projection exists
    weighting.project_()
    projected = {n: float(p.detach()) for n, p in weighting.log_vars.items()}
    assert projected["low"] == -4.0 and projected["high"] == 4.0
    assert torch.equal(weighting.log_vars["inside"].detach(), inside)
    weighting.log_vars["low"].grad = None
    weighting({"low": torch.tensor(5.0)}).backward()
    # d/ds (e^-s L + s) = 1 - e^4 * 5 < 0: the task's weight falls as its loss rises.
    assert float(weighting.log_vars["low"].grad) == pytest.approx(1.0 - math.exp(4.0) * 5.0)


def _per_variable_losses(outputs, targets, layout, denominators=None):
    """The implementation before the losses were computed for all variables at once."""
    losses = {}
    for name, target in targets.items():
        if denominators is not None:
            if name not in denominators:
                continue
            denominator = float(denominators[name])
        elif bool(target.present.any()):
            denominator = float(target.present.sum())
        else:
            continue
        block = outputs[:, :, layout[name].slice].float()
        if layout[name].is_numeric:
            per_sample = (block[..., 0] - target.values) ** 2
        else:
            per_sample = -(target.values * F.log_softmax(block, dim=-1)).sum(-1)
        per_sample = torch.where(target.present, per_sample, 0.0)
        losses[name] = per_sample.sum(dim=1).mean() / denominator
    return losses


def _interleaved() -> tuple[QueryLayout, dict]:
    """Numeric and categorical groups interleaved, soft targets, a group absent from the batch."""
    layout = QueryLayout()
    for name, kind, levels in [
        ("site", "categorical", ("a", "b", "c", "d")),
        ("age", "continuous", ()),
        ("sex", "binary", ("F", "M")),
        ("score", "ordinal", ()),
        ("hand", "categorical", ("left", "right", "mixed")),
        ("bmi", "continuous", ()),
    ]:
        layout = layout.append(name, kind, levels)
    g = torch.Generator().manual_seed(5)
    targets = {}
    for group in reversed(layout.groups):  # not the layout's order
        present = torch.rand(B, generator=g, dtype=torch.float64) < 0.7
        if group.name == "hand":
            present[:] = False
        if group.is_numeric:
            values = torch.randn(B, generator=g, dtype=torch.float64)
        else:
            values = torch.rand(B, group.size, generator=g, dtype=torch.float64).softmax(-1)
        targets[group.name] = Target(values, present)
    return layout, targets


@pytest.mark.parametrize("distributed", [False, True], ids=["counts", "denominators"])
def test_all_variables_at_once_equal_one_at_a_time(distributed: bool) -> None:
    """Values and gradients (float64, 1e-12) of every variable, in the targets' order; an absent
    variable is left out, as before (its task weight then gets no gradient at all)."""
    layout, targets = _interleaved()
    outputs = torch.randn(L, B, layout.n_queries, dtype=torch.float64, requires_grad=True)
    denominators = None
    if distributed:  # global counts / world size; 'score' absent from this shard's dictionary
        denominators = {n: 1.5 + i for i, n in enumerate(targets) if n not in ("hand", "score")}
    got = variable_losses(outputs, targets, layout, denominators)
    want = _per_variable_losses(outputs, targets, layout, denominators)
    assert list(got) == list(want) and "hand" not in got and len(got) >= 4
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=0)
    weights = torch.arange(1.0, len(got) + 1, dtype=torch.float64)
    total = (torch.stack(list(got.values())) * weights).sum()
    (grad,) = torch.autograd.grad(total, outputs, retain_graph=True)
    (ref,) = torch.autograd.grad((torch.stack(list(want.values())) * weights).sum(), outputs)
    torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-15)
    weighting = UncertaintyWeighting(layout.names)
    weighting(got).backward()
    assert weighting.log_vars["hand"].grad is None
    assert all(weighting.log_vars[n].grad is not None for n in got)


def test_the_copies_to_the_device_do_not_grow_with_the_variables() -> None:
    """Targets travel to the device as one tensor per input (values, presence, denominators,
    query positions), not one per variable: a GPU step is short of host time, not of copies."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Copies(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func.overloadpacket is torch.ops.aten._to_copy and kwargs.get("device"):
                self.count += args[0].device.type == "cpu" and kwargs["device"].type == "meta"
            return func(*args, **kwargs)

    def copies(n_variables: int) -> int:
        layout = QueryLayout()
        targets = {}
        for i in range(n_variables):
            numeric = i % 3 != 0
            layout = layout.append(f"v{i}", "continuous" if numeric else "binary", ("a", "b"))
            values = torch.randn(B) if numeric else torch.eye(2)[torch.arange(B) % 2]
            targets[f"v{i}"] = Target(values, torch.ones(B, dtype=torch.bool))
        outputs = torch.zeros(L, B, layout.n_queries, device="meta")
        with Copies() as seen:
            losses = variable_losses(outputs, targets, layout)
        assert len(losses) == n_variables
        return seen.count

    assert copies(2) == copies(9) == 4
