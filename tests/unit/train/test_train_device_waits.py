"""The training step never makes the host wait for the device (issue 17: no host syncs).

There is no GPU here, so the ``meta`` device stands in for it: every tensor that training puts on
the device lives there, and a dispatch mode records each operation that would stop the host
until a GPU caught up: reading a device value (``.item()``, ``float()``, ``bool()``), a
device-to-host copy, a host-to-device copy that is not queued (``non_blocking``), an operation
whose output shape depends on device values (``nonzero``, boolean indexing). Pretraining and
finetuning steps are driven by the real :func:`lcm.train.loop.train_epochs`; only the epoch's
end may read values (the logged losses), so the recorded waits must not grow with the steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lcm.model.config import PRESETS, LCMConfig
from lcm.model.lcm import LCM
from lcm.model.losses import variable_losses
from lcm.model.targets import QueryLayout, Target
from lcm.model.transfer import to_device
from lcm.train.finetune import FinetuneStep
from lcm.train.graphed import GraphedPretrainStep
from lcm.train.loop import DeviceConnectomes, train_epochs
from lcm.train.objective import PretrainObjective, PretrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

aten = torch.ops.aten
DEVICE = torch.device("meta")
# Operations whose output shape depends on the values of their input.
DATA_DEPENDENT = {
    aten.nonzero,
    aten.masked_select,
    aten._unique2,
    aten.unique_consecutive,
    aten.unique_dim,
    aten.equal,
    aten.is_nonzero,
}
LAYOUT = (
    QueryLayout()
    .append("sex", "binary", ("F", "M"))
    .append("age", "continuous")
    .append("education", "ordinal")
)
N_ROIS, BATCH = 12, 4


class DeviceWaits(TorchDispatchMode):
    """Records every operation that would make the host wait for the (meta) device."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_device = any(t.device == DEVICE for t in tensors)
        packet = func.overloadpacket
        if packet is aten._local_scalar_dense and on_device:
            self.waits.append("read a device value")
            return torch.zeros((), dtype=tensors[0].dtype).item()
        if packet in DATA_DEPENDENT and on_device:
            self.waits.append(f"{packet.__name__} on device values")
        if packet is aten._to_copy:
            self._copy(args[0].device, kwargs.get("device") or args[0].device, kwargs)
        elif packet is aten.copy_:
            blocking = {"non_blocking": args[2] if len(args) > 2 else kwargs.get("non_blocking")}
            self._copy(args[1].device, args[0].device, blocking)
        return func(*args, **kwargs)

    def _copy(self, source: torch.device, target: torch.device, kwargs: dict) -> None:
        if source == DEVICE and target.type == "cpu":
            self.waits.append("device-to-host copy")
        elif source.type == "cpu" and target == DEVICE and not kwargs.get("non_blocking"):
            self.waits.append("host-to-device copy that waits")


def _host_data(n: int) -> tuple[np.ndarray, dict[str, Target]]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, N_ROIS, N_ROIS)).astype(np.float32)
    fc = np.tanh(0.3 * (a + a.transpose(0, 2, 1)))
    present = torch.as_tensor(rng.random(n) < 0.7)
    sex = torch.eye(2)[torch.as_tensor(rng.integers(0, 2, n))]
    targets = {
        "sex": Target(sex * present[:, None], present),
        "age": Target(torch.as_tensor(rng.standard_normal(n), dtype=torch.float32), present),
        "education": Target(torch.zeros(n), torch.zeros(n, dtype=torch.bool)),  # never known
    }
    return fc, targets


def _meta_model() -> LCM:
    torch.manual_seed(0)
    config = LCMConfig(n_rois=N_ROIS, n_queries=LAYOUT.n_queries, **PRESETS["tiny"])
    with DEVICE:
        return LCM(config)


def _pretrain_waits(
    steps: int, resident: bool = False, graphed: bool = False
) -> tuple[list[str], list[dict[str, float]]]:
    fc, targets = _host_data(BATCH * steps)
    objective = PretrainObjective(_meta_model(), LAYOUT, ssl_weight=0.5).to(DEVICE)
    generator = torch.Generator().manual_seed(0)
    connectomes = DeviceConnectomes(fc, DEVICE, resident=resident)
    if graphed:  # the work a CUDA graph captures, run eagerly
        step = GraphedPretrainStep(objective, connectomes, targets, 0.15, generator, BATCH, False)
    else:
        step = PretrainStep(objective, connectomes, targets, 0.15, generator)
    with DeviceWaits() as audit:
        history = train_epochs(
            [objective], BATCH * steps, 1, BATCH, 1e-3, 0.01, generator, step, "t", quiet=True
        )
    return audit.waits, history


@pytest.mark.parametrize("graphed", [False, True], ids=["eager", "graphed"])
@pytest.mark.parametrize("resident", [False, True], ids=["host", "resident"])
def test_a_pretraining_step_never_waits_for_the_device(resident: bool, graphed: bool) -> None:
    """Connectomes staged from the host each step, or kept on the device and gathered there;
    the step as PretrainStep runs it, or as GraphedPretrainStep captures it."""
    two, history = _pretrain_waits(2, resident, graphed)
    six, _ = _pretrain_waits(6, resident, graphed)
    # Only the epoch's end reads the device: one value per logged loss, however many steps.
    logged = [k for k in history[0] if k.startswith("loss_")]
    assert "loss_ssl" in logged and "loss_age" in logged
    assert six == two == ["read a device value"] * len(logged)


@pytest.mark.parametrize("pseudo_weight", [0.5, 0.0], ids=["with-bei", "task-only"])
def test_a_finetuning_step_never_waits_for_the_device(pseudo_weight: float) -> None:
    """Finetuning's own step (``FinetuneStep``, as finetune builds it: device-resident
    connectomes, host targets), the task's loss with or without the BEI losses."""
    n, steps = BATCH * 5, 5
    fc, targets = _host_data(n)
    model = _meta_model()
    x_all = torch.as_tensor(fc, device=DEVICE)
    step = FinetuneStep(model, x_all, targets, LAYOUT, "sex", pseudo_weight)
    generator = torch.Generator().manual_seed(0)
    with DeviceWaits() as audit:
        history = train_epochs([model], n, 1, BATCH, 1e-3, 0.01, generator, step, "t", quiet=True)
    logged = [k for k in history[0] if k.startswith("loss_")]
    assert ("loss_bei" in logged) == (pseudo_weight > 0) and "loss_sex" in logged
    assert steps > 1 and audit.waits == ["read a device value"] * len(logged)


def test_the_audit_sees_what_waits() -> None:
    """The recorder is not blind: each kind of wait it looks for is recorded."""
    host = torch.ones(3)
    with DeviceWaits() as audit:
        device = host.to(DEVICE)  # blocking copy
        float(device.sum())
        # Recorded, then refused by the meta device (it has no values).
        with pytest.raises(NotImplementedError):
            device.nonzero()
        with pytest.raises(NotImplementedError):
            device.to("cpu")
        to_device(host, DEVICE)  # queued: not a wait
        variable_losses(
            torch.zeros(1, 3, LAYOUT.n_queries, device=DEVICE),
            {"age": Target(device, device > 0)},  # on the device: counted there (read as 0)
            LAYOUT,
        )
    assert audit.waits == [
        "host-to-device copy that waits",
        "read a device value",
        "nonzero on device values",
        "device-to-host copy",
        "read a device value",
    ]


class Dispatches(TorchDispatchMode):
    """Counts the device operations that compute (on a GPU: kernel launches); views do not."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_device = any(t.device == DEVICE for t in tensors)  # host-only work is not counted
        self.count += on_device and not func.is_view
        return func(*args, **(kwargs or {}))


def _eager_dispatches(n_numeric: int) -> int:
    """Operations of one pretraining step and its backward outside the model, whose compiled
    graphs are stood in for by one operation per output, with ``n_numeric`` numeric variables."""
    layout = QueryLayout().append("sex", "binary", ("F", "M"))
    for i in range(n_numeric):
        layout = layout.append(f"score{i}", "continuous")
    fc, targets = _host_data(BATCH)
    targets = {"sex": targets["sex"]} | {f"score{i}": targets["age"] for i in range(n_numeric)}
    model = LCM(LCMConfig(n_rois=N_ROIS, n_queries=layout.n_queries, **PRESETS["tiny"]))
    n_layers = model.config.n_layers
    outputs = torch.zeros(n_layers, BATCH, layout.n_queries, device=DEVICE, requires_grad=True)
    rebuilt = torch.zeros(BATCH, N_ROIS, N_ROIS, device=DEVICE, requires_grad=True)
    model.forward_and_reconstruct = lambda fc, mask: (outputs * 1, rebuilt * 1)
    objective = PretrainObjective(model, layout, ssl_weight=0.5).to(DEVICE)
    generator = torch.Generator().manual_seed(0)
    connectomes = DeviceConnectomes(fc, DEVICE, resident=True)
    step = PretrainStep(objective, connectomes, targets, 0.15, generator)
    with Dispatches() as seen:
        loss, _ = step(torch.arange(BATCH))
        loss.backward()
    return seen.count


def test_the_eager_part_of_a_step_does_not_grow_with_the_variables() -> None:
    """On a GPU the model runs as compiled graphs; what remains eager (the batch's gather, the
    losses, the task weighting and their backward) is launched op by op from the host, and a
    small model's step is bound by those launches: a few per step, not a few per variable.
    (66 here; 111 and 401 with the losses of 158038e, computed variable by variable.)"""
    few, many = _eager_dispatches(2), _eager_dispatches(12)
    assert few == many and few < 100
