"""The training loop keeps the task weights' log-variances within their bounds (issue: a task
weight pushed past -4 by AdamW's momentum stayed at e^4 for good, without a gradient)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lcm.model.losses import UncertaintyWeighting
from lcm.train.loop import train_epochs

pytestmark = pytest.mark.usefixtures("one_thread")


class _Objective(nn.Module):
    """Task weights inside a module, as in PretrainObjective (and under a DDP wrapper)."""

    def __init__(self) -> None:
        super().__init__()
        self.weighting = UncertaintyWeighting(["a"])


def test_a_task_weight_pushed_past_its_bound_comes_back_when_its_loss_rises() -> None:
    objective = _Objective()
    log_var = objective.weighting.log_vars["a"]
    trace: list[float] = []
    steps_low = 100  # loss 0.001 (optimum s = ln 0.001 = -6.9): momentum carries s past -4

    def step(index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        trace.append(float(log_var.detach()))
        loss = 1e-3 if len(trace) <= steps_low else 5.0  # then the task's loss rises to 5
        return objective.weighting({"a": torch.tensor(loss)}), {}

    generator = torch.Generator().manual_seed(0)
    train_epochs([objective], 10, 40, 1, 0.05, 0.01, generator, step, "t", quiet=True)
    trace.append(float(log_var.detach()))
    assert min(trace) == -4.0  # reached the bound, never past it
    # Back up towards ln 5 = 1.6 (weight 1/5) once the loss rose, instead of stuck at -4.
    assert trace[-1] > 0.0
