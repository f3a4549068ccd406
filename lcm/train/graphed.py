"""The whole pretraining step as one CUDA graph: forward, backward, clipping and AdamW.

A small model's GPU step is bound by the host: LCM-Base at batch 128 on an H200 queued ~12 ms
of kernels in a ~21 ms step, with its blocks compiled as CUDA graphs, because the losses,
their backward, the gradient clipping and the optimiser were still launched op by op, and
every compiled region replayed with host work of its own. Here the step is captured once and
then replayed: the host only copies the batch in (one copy: sample indices, ROI mask,
targets, learning rates) and launches one graph.

A graph replays fixed shapes and fixed memory, so the step works on static buffers: every
batch is padded to the batch size (as compiled training already does), every variable's loss
is computed in every step and those absent from a batch are masked (a present count of zero
gives a zero loss with zero weight), and the AdamW update of an absent variable's task
weight is undone inside the graph (its parameter and optimiser state kept as they were, as
an eager step, which leaves it without a gradient, does). On CPU (and wherever there is no
CUDA) the same step runs eagerly: that is how it is tested against :class:`PretrainStep`.

Only for one process: data parallel training keeps :class:`PretrainStep` (its gradients are
averaged between backward and the optimiser, outside any one process's graph).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from lcm.exceptions import ConfigError
from lcm.model.losses import LossPlan, masked_roi_loss, sample_roi_mask
from lcm.model.targets import Targets
from lcm.train.loop import GRAD_CLIP_NORM, DeviceConnectomes, autocast
from lcm.train.objective import PretrainObjective

log = logging.getLogger(__name__)

# Eager steps before the capture: they compile the model and create the optimiser's state
# (on a side stream, as CUDA graph capture asks); they are real training steps.
WARMUP_STEPS = 3
# Byte alignment of each field in the one host-to-device copy of a step's inputs.
_ALIGN = 16


@dataclass(frozen=True)
class _Field:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class StepInputs:
    """A step's inputs as views of one byte buffer: filled on the host, copied in at once.

    Parameters
    ----------
    fields : list of (name, dtype, shape)
    device : torch.device
    """

    def __init__(
        self, fields: list[tuple[str, torch.dtype, tuple[int, ...]]], device: torch.device
    ) -> None:
        self.fields: dict[str, _Field] = {}
        offset = 0
        for name, dtype, shape in fields:
            field = _Field(name, dtype, shape, offset)
            self.fields[name] = field
            offset += -(-field.nbytes // _ALIGN) * _ALIGN
        self.nbytes = offset
        self.device = device
        self.buffer = torch.zeros(offset, dtype=torch.uint8, device=device)
        self.on_device = {name: self._view(self.buffer, f) for name, f in self.fields.items()}

    @staticmethod
    def _view(buffer: torch.Tensor, field: _Field) -> torch.Tensor:
        return (
            buffer[field.offset : field.offset + field.nbytes].view(field.dtype).view(field.shape)
        )

    def __getitem__(self, name: str) -> torch.Tensor:
        """The device tensor of a field (the same memory every step)."""
        return self.on_device[name]

    def load(self, values: dict[str, torch.Tensor]) -> None:
        """Copy host ``values`` (every field) into the device buffer: one queued copy.

        Parameters
        ----------
        values : dict of str to torch.Tensor
            One host tensor per field, by name, of the field's shape.
        """
        pinned = self.device.type == "cuda"
        host = torch.empty(self.nbytes, dtype=torch.uint8, pin_memory=pinned)
        for name, field in self.fields.items():
            self._view(host, field).copy_(values[name])
        self.buffer.copy_(host, non_blocking=True)


class GraphedPretrainStep:
    """The pretraining step on a global batch, optimiser update included, as one CUDA graph.

    Called as :class:`PretrainStep` (``step(index) -> (loss, parts)``) by
    :func:`lcm.train.loop.train_epochs`, which sees :attr:`updates_parameters` and leaves
    backward, clipping and AdamW to it, after handing it the optimiser (:meth:`bind`). The same
    ROI masks (one host generator, drawn for the real rows) and the same losses as
    :class:`PretrainStep` on one process; on CUDA its first :data:`WARMUP_STEPS` steps run
    eagerly, then the step is captured and replayed.

    Parameters
    ----------
    objective : PretrainObjective
        Its model may be compiled, but not as CUDA graphs of its own (``compile_scope: step``
        compiles the forward pass whole, without them).
    fc : DeviceConnectomes
    targets : dict of Target
        Targets of every training sample, on the host.
    mask_ratio : float
        Fraction of ROIs hidden for reconstruction; 0 draws no mask.
    generator : torch.Generator
        Host generator of the masks.
    batch_size : int
        Every batch is padded to this many samples.
    capture : bool, optional
        Capture and replay a CUDA graph; by default where ``fc`` is on CUDA.
    compile_options : dict, optional
        ``torch.compile`` options for the losses (their few dozen small operations fused, as
        the model's are; :func:`lcm.train.loop.scope_options`); ``None``: eager.
    """

    updates_parameters = True

    def __init__(
        self,
        objective: PretrainObjective,
        fc: DeviceConnectomes,
        targets: Targets,
        mask_ratio: float,
        generator: torch.Generator,
        batch_size: int,
        capture: bool | None = None,
        compile_options: dict[str, str] | None = None,
    ) -> None:
        self.objective, self.fc, self.generator = objective, fc, generator
        self.batch_size = batch_size
        self.device = fc.device
        self.capture = self.device.type == "cuda" if capture is None else capture
        self.plan = LossPlan.of(objective.layout, list(targets)) if targets else None
        self.names = list(targets)  # logged in the targets' order, as PretrainStep does
        self.mask_ratio = mask_ratio if objective.ssl_weight > 0 else 0.0
        self.optimizer: torch.optim.Optimizer | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.steps = 0
        if self.plan is not None:
            values, present = self.plan.pack(targets)
            self.values, self.present = values.float(), present  # [n, C], [n, G] on the host
            self.position = {name: i for i, name in enumerate(self.plan.names)}
            self.queries = self.plan.queries.to(self.device)
        self.terms = self._terms
        if compile_options is not None:
            self.terms = torch.compile(self._terms, **compile_options)
        # Outputs of the step (the graph's, when captured): the total and each group's loss.
        self.total: torch.Tensor | None = None
        self.losses: torch.Tensor | None = None
        self.ssl: torch.Tensor | None = None

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the optimiser (after a resumed state is loaded into it).

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The optimiser of the objective's parameters; its groups' learning rates become inputs
            of the captured step.
        """
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        weighting = self.objective.weighting
        self.task_params = [weighting.log_vars[n] for n in self.plan.names] if self.plan else []
        b, fc = self.batch_size, self.fc
        fields = [
            ("index", torch.long, (b,)),
            ("lr", torch.float32, (len(optimizer.param_groups),)),
            ("ssl_denominator", torch.float32, ()),
        ]
        if not fc.resident:
            fields.append(("rows", torch.float32, (b, fc.row_width)))
        if self.mask_ratio > 0:
            fields.append(("mask", torch.bool, (b, fc.n_rois)))
        if self.plan is not None:
            fields.append(("values", torch.float32, (b, self.values.shape[1])))
            fields.append(("present", torch.bool, (b, len(self.plan.groups))))
        self.inputs = StepInputs(fields, self.device)

    def __call__(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step on the global batch ``index`` (padded to the captured size): the loss and
        its logged parts, as :class:`lcm.train.objective.PretrainStep` returns them."""
        if self.optimizer is None:
            raise RuntimeError("GraphedPretrainStep: bind(optimizer) before the first step")
        real, b, n_rois = len(index), self.batch_size, self.fc.n_rois
        padded = torch.cat([index, index[:1].expand(b - real)])  # rows that repeat the first
        host = {
            "index": padded,
            "lr": torch.tensor([g["lr"] for g in self.optimizer.param_groups]),
            "ssl_denominator": torch.tensor(1.0),
        }
        if self.mask_ratio > 0:  # drawn for the real rows, as PretrainStep draws them
            mask = sample_roi_mask(real, n_rois, self.mask_ratio, self.generator)
            host["mask"] = torch.cat([mask, mask.new_zeros(b - real, n_rois)])
            host["ssl_denominator"] = torch.tensor(float(mask.sum()) * n_rois)
        if not self.fc.resident:
            host["rows"] = self.fc.host_rows(padded)
        self.active: list[bool] = []
        seen: list[str] = []
        if self.plan is not None:
            present = self.present[padded]
            present[real:] = False  # the padding has no target
            host.update(values=self.values[padded], present=present)
            self.active = present.any(0).tolist()
            seen = [name for name in self.names if self.active[self.position[name]]]
        if not seen and self.mask_ratio == 0:  # nothing to learn from: no update, as PretrainStep
            return torch.zeros((), device=self.device), {}
        self.inputs.load(host)
        self._run()
        self.steps += 1
        parts = {f"loss_{name}": self.losses[self.position[name]] for name in seen}
        if self.ssl is not None:
            parts["loss_ssl"] = self.ssl
        return self.total, parts

    def _run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif not self.capture:
            self._body(captured=False)
        elif self.steps < WARMUP_STEPS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._body(captured=False)
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            self._capture()

    def _capture(self) -> None:
        """Capture the step; its first replay is this step's update."""
        log.info("capturing the pretraining step as a CUDA graph (batch %d)", self.batch_size)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._body(captured=True)
        except RuntimeError as error:  # an operation that a graph cannot hold, named by torch
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ConfigError(
                f"pretrain.compile_scope: step: capturing the training step as a CUDA graph "
                f"failed after {self.steps} eager steps: {reason}",
                hint="Use compile_scope: model (or blocks), which compile the model without "
                "capturing the whole step.",
            ) from error
        self.graph = graph
        graph.replay()

    def _body(self, captured: bool) -> None:
        """Forward, backward, clipping and AdamW on the static inputs (the captured work)."""
        objective, inputs = self.objective, self.inputs
        if self.fc.resident:  # gathered on the device from the indices
            rows = self.fc.triangles.index_select(0, inputs["index"])
        else:
            rows = inputs["rows"]
        fc = self.fc.expand(rows)  # [B, R, R]
        mask = inputs["mask"] if self.mask_ratio > 0 else None
        # No cast cache where a graph is captured, in the eager steps before it too: one
        # autocast state for every call of the compiled model (dynamo guards on it; a
        # recompilation during the capture would fail it).
        with autocast(self.device, cache=not self.capture):
            reconstructed = None
            if mask is not None:
                outputs, reconstructed = objective.model.forward_and_reconstruct(fc, mask)
            else:
                outputs = objective.model(fc)
            present = inputs["present"] if self.plan is not None else None
            values = inputs["values"] if self.plan is not None else None
            total, losses, active, ssl = self.terms(
                outputs, reconstructed, fc, mask, values, present, inputs["ssl_denominator"]
            )
        self.total = total.detach()
        self.losses = losses.detach() if losses is not None else None
        self.ssl = ssl.detach() if ssl is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(self.params, GRAD_CLIP_NORM)
        self._update(active, captured)

    def _terms(
        self,
        outputs: torch.Tensor,
        reconstructed: torch.Tensor | None,
        fc: torch.Tensor,
        mask: torch.Tensor | None,
        values: torch.Tensor | None,
        present: torch.Tensor | None,
        ssl_denominator: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The objective on the static inputs: ``(total, losses [G], active [G], ssl)``."""
        objective = self.objective
        total = torch.zeros((), device=outputs.device)
        losses = active = ssl = None
        if present is not None and values is not None:
            count = present.sum(0)  # [G]
            active = count > 0
            losses = self.plan.losses(outputs, self.queries, values, present, count.clamp(1))
            weighted = objective.weighting.masked(losses, self.plan.names, active)
            total = objective.bei_weight * weighted
        if reconstructed is not None and mask is not None:
            ssl = masked_roi_loss(reconstructed, fc, mask, ssl_denominator)
            total = total + objective.ssl_weight * ssl
        return total, losses, active, ssl

    def _update(self, active: torch.Tensor | None, captured: bool) -> None:
        """AdamW, then the task weights of absent variables (and their state) put back, then
        every task weight projected into its bounds (as the eager loop does after AdamW)."""
        optimizer, params = self.optimizer, self.task_params
        kept: list[tuple[int, torch.Tensor]] = []  # (task, tensor) to put back where absent
        if active is not None:
            _ensure_state(optimizer, params)
            keys = ("exp_avg", "exp_avg_sq", "step")
            kept = [(i, p) for i, p in enumerate(params)]
            kept += [(i, optimizer.state[p][k]) for k in keys for i, p in enumerate(params)]
            # Step counts kept on the host (an AdamW that is not fused) are put back there.
            here = [(i, t) for i, t in kept if t.device == active.device]
            there = [(i, t) for i, t in kept if t.device != active.device]
            before_here = torch._foreach_mul([t for _, t in here], 1.0)
            before_there = [t.clone() for _, t in there]
        groups = optimizer.param_groups
        saved = [(g["lr"], g.get("capturable", False)) for g in groups]
        if captured:  # the graph reads the learning rates from its inputs at each replay
            for group, rate in zip(groups, self.inputs["lr"].unbind(), strict=True):
                group["lr"], group["capturable"] = rate, True
        try:
            optimizer.step()
        finally:
            for group, (rate, capturable) in zip(groups, saved, strict=True):
                group["lr"], group["capturable"] = rate, capturable
        if kept:
            with torch.no_grad():
                # lerp with weight 1 gives its end exactly, with weight 0 its start.
                undo = (~active).to(torch.float32)
                weights = [undo[i] for i, _ in here]
                torch._foreach_lerp_([t for _, t in here], before_here, weights)
                for (i, t), old in zip(there, before_there, strict=True):
                    if not self.active[i]:
                        t.copy_(old)
        # In place on the device: captured with the rest of the step, replayed every step.
        self.objective.weighting.project_()


def _ensure_state(optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
    """Give ``params`` the fresh AdamW state a first update would create (zeros, step 0).

    A captured step must not create state (its zero fill would replay every step); an eager
    AdamW creates a parameter's state at its first gradient, with these same values.
    """
    for p in params:
        state = optimizer.state[p]
        if state:
            continue
        group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
        on_device = group.get("fused") or group.get("capturable")
        state["step"] = torch.zeros(
            (), dtype=torch.float32, device=p.device if on_device else "cpu"
        )
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
