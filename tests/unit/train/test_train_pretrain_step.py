"""PretrainStep pads an epoch's last, smaller batch to the batch size when blocks are compiled
(issue 17: static shapes for CUDA graphs) without changing what is learned from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcm.model.config import PRESETS, LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout, Target
from lcm.train.loop import DeviceConnectomes
from lcm.train.objective import PretrainObjective, PretrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUT = QueryLayout().append("sex", "binary", ("F", "M")).append("age", "continuous")
N, R = 10, 12


def _data() -> tuple[np.ndarray, dict[str, Target]]:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((N, R, R)).astype(np.float32)
    fc = np.tanh(0.3 * (a + a.transpose(0, 2, 1)))
    present = torch.as_tensor(rng.random(N) < 0.8)
    sex = torch.eye(2)[torch.as_tensor(rng.integers(0, 2, N))] * present[:, None]
    age = torch.as_tensor(rng.standard_normal(N), dtype=torch.float32) * present
    return fc, {"sex": Target(sex, present), "age": Target(age, present)}


def _step(pad_to: int | None) -> tuple[torch.Tensor, dict, dict, list[int]]:
    """Loss, parts and gradients of one step on a 5-sample batch, and the batch sizes run."""
    fc, targets = _data()
    torch.manual_seed(0)
    config = LCMConfig(n_rois=R, n_queries=LAYOUT.n_queries, **{**PRESETS["tiny"], "dropout": 0})
    objective = PretrainObjective(LCM(config), LAYOUT, ssl_weight=0.5)
    sizes: list[int] = []
    # The decoder's rows (the ROI mixer takes intact and masked connectomes as one batch).
    objective.model.decoder[0].register_forward_pre_hook(lambda _, a: sizes.append(len(a[0])))
    step = PretrainStep(
        objective,
        DeviceConnectomes(fc, torch.device("cpu")),
        targets,
        0.25,
        torch.Generator().manual_seed(1),
        pad_to=pad_to,
    )
    index = torch.tensor([7, 2, 9, 4, 0])
    step.prefetch(index)
    loss, parts = step(index)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in objective.named_parameters() if p.grad is not None}
    return loss, parts, grads, sizes


def test_a_padded_batch_trains_exactly_as_its_real_rows() -> None:
    loss, parts, grads, sizes = _step(None)
    padded_loss, padded_parts, padded_grads, padded_sizes = _step(8)
    # The model saw 8 rows (one shape for every step), the losses are those of the 5 real rows.
    assert sizes[0] == 5 and padded_sizes[0] == 8
    torch.testing.assert_close(padded_loss, loss, rtol=1e-6, atol=1e-7)
    assert parts.keys() == padded_parts.keys() and "loss_ssl" in parts
    for name in parts:
        torch.testing.assert_close(padded_parts[name], parts[name], rtol=1e-6, atol=1e-7)
    assert grads.keys() == padded_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(padded_grads[name], grad, rtol=1e-5, atol=1e-7)


def test_a_full_batch_is_not_padded_and_the_prefetch_matches_the_padded_rows() -> None:
    fc, targets = _data()
    step = PretrainStep(
        torch.nn.Identity(),
        DeviceConnectomes(fc, torch.device("cpu")),
        targets,
        0.0,
        torch.Generator(),
        rank=1,
        world=2,
        pad_to=8,
    )
    full = torch.arange(8)
    assert torch.equal(step._padded(full), full)
    step.prefetch(torch.tensor([5, 6, 7]))
    # Rank 1 of 2 holds rows 4-7 of the padded batch [5, 6, 7, 5, 5, 5, 5, 5].
    assert step.fc._pending is not None and step.fc._pending[0].tolist() == [5, 5, 5, 5]
