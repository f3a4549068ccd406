"""The pretraining objective as one module: model, learned task weights, masked-ROI loss.

One ``nn.Module`` holds every trained parameter, so data parallel training wraps it whole in
``DistributedDataParallel`` and a training state saves it in one piece. A step takes a *global*
batch of sample indices; each process trains on its contiguous share, and the losses are
normalised by global counts, so that averaging the processes' gradients gives the gradient of
one process on the whole batch (:func:`shard_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lcm.model.lcm import LCM
from lcm.model.losses import (
    UncertaintyWeighting,
    masked_roi_loss,
    sample_roi_mask,
    variable_losses,
)
from lcm.model.targets import QueryLayout, Target, Targets
from lcm.model.transfer import to_device
from lcm.train.loop import DeviceConnectomes, autocast


@dataclass
class Shard:
    """This process's share of a global batch.

    Attributes
    ----------
    rows : torch.Tensor
        Positions in the global batch (a contiguous block).
    targets : dict of Target
        Targets of those rows.
    denominators : dict of str to float
        Present count of each variable in the global batch divided by the world size.
    roi_mask : torch.Tensor or None
        ``[rows, R]`` ROIs hidden for reconstruction.
    ssl_denominator : float or None
        Masked FC entries in the global batch divided by the world size.
    """

    rows: torch.Tensor
    targets: Targets
    denominators: dict[str, float]
    roi_mask: torch.Tensor | None
    ssl_denominator: float | None


def shard_batch(
    targets: Targets,
    roi_mask: torch.Tensor | None,
    n_rois: int,
    rank: int = 0,
    world: int = 1,
) -> Shard:
    """Split a global batch's targets (and ROI mask) for process ``rank`` of ``world``.

    Parameters
    ----------
    targets : dict of Target
        Targets of the whole global batch (B rows).
    roi_mask : torch.Tensor or None, shape (B, R)
    n_rois : int
    rank, world : int

    Returns
    -------
    Shard
    """
    n = len(next(iter(targets.values())).present) if targets else len(roi_mask)
    rows = torch.arange(n).tensor_split(world)[rank]
    denominators = {
        name: float(t.present.sum()) / world for name, t in targets.items() if t.present.any()
    }
    ssl_denominator = None
    if roi_mask is not None:
        ssl_denominator = float(roi_mask.sum()) * n_rois / world
        roi_mask = roi_mask[rows]
    local = {name: t.take(rows) for name, t in targets.items()}
    return Shard(rows, local, denominators, roi_mask, ssl_denominator)


class PretrainObjective(nn.Module):
    """BEI losses with learned uncertainty weights, plus weighted masked-ROI reconstruction.

    Parameters
    ----------
    model : LCM
    layout : QueryLayout
        Query groups of the model; each is one task of the weighting.
    ssl_weight : float
        Weight of the reconstruction loss (0: off).
    bei_weight : float, default 1.0
        Weight of the BEI losses; 0 is self-supervised-only pretraining (the lcm-ssl ablation).
    """

    def __init__(
        self, model: LCM, layout: QueryLayout, ssl_weight: float, bei_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.model = model
        self.weighting = UncertaintyWeighting(layout.names)
        self.layout = layout
        self.ssl_weight = ssl_weight
        self.bei_weight = bei_weight

    def forward(
        self, fc: torch.Tensor, shard: Shard
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its logged parts for ``fc [b, R, R]``, the rows of ``shard``.

        Parameters
        ----------
        fc : torch.Tensor, shape (b, R, R)
            This process's connectomes of the batch.
        shard : Shard
            Their targets, denominators and ROI mask.

        Returns
        -------
        total : torch.Tensor
            A scalar, weighted (BEI and SSL weights, learned task weights).
        parts : dict of str to torch.Tensor
            ``loss_<variable>`` per variable with a target in the batch, and ``loss_ssl``
            where the masked-ROI loss is computed.
        """
        reconstructed = mask = None
        if shard.roi_mask is not None and self.ssl_weight > 0:
            mask = to_device(shard.roi_mask, fc.device)
            outputs, reconstructed = self.model.forward_and_reconstruct(fc, mask)
        else:
            outputs = self.model(fc)
        losses = variable_losses(outputs, shard.targets, self.layout, shard.denominators)
        total = self.bei_weight * self.weighting(losses).to(fc.device)
        parts = {f"loss_{k}": v for k, v in losses.items()}
        if reconstructed is not None:
            ssl = masked_roi_loss(reconstructed, fc, mask, shard.ssl_denominator)
            total = total + self.ssl_weight * ssl
            parts["loss_ssl"] = ssl
        return total, parts


class PretrainStep:
    """One pretraining step on a global batch of sample indices: ``step(index) -> (loss, parts)``.

    Every process draws the same ROI mask for the whole batch (one host generator), takes its
    rows (:func:`shard_batch`) and runs ``objective`` on their connectomes. Nothing here waits
    for the device: targets and masks stay on the host until a loss copies them
    (:func:`lcm.model.transfer.to_device`), present counts are host arithmetic, and the
    connectomes come from :class:`lcm.train.loop.DeviceConnectomes`, whose next batch
    :meth:`prefetch` starts copying while the current one trains.

    Parameters
    ----------
    objective : nn.Module
        A :class:`PretrainObjective` (or its data parallel wrapper).
    fc : DeviceConnectomes
        The training connectomes.
    targets : dict of Target
        Targets of every training sample, on the host.
    mask_ratio : float
        Fraction of ROIs hidden for reconstruction; 0 draws no mask (no self-supervised loss).
    generator : torch.Generator
        Host generator of the masks (part of the exact-resume state).
    rank, world : int
        This process and the number of data parallel processes.
    pad_to : int, optional
        Pad a smaller global batch (an epoch's last) to this many samples: rows that repeat
        the first sample with no target and no masked ROI, so the losses and gradients are
        those of the real rows while every step has one shape. Compiled blocks replay their
        CUDA graphs instead of capturing new ones for the odd size.
    own_batches : callable, optional
        Each process is given a batch of its own (streamed from its own row groups, not its
        share of one global batch): the ROI masks are drawn for the ``world`` batches alike
        (the generator stays the same everywhere) and this process's taken, and this callable
        turns the process's present counts into the global ones
        (:func:`lcm.train.distributed.global_counts`), so that the averaged gradients are
        those of the processes' batches together.
    """

    def __init__(
        self,
        objective: nn.Module,
        fc: DeviceConnectomes,
        targets: Targets,
        mask_ratio: float,
        generator: torch.Generator,
        rank: int = 0,
        world: int = 1,
        pad_to: int | None = None,
        own_batches: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.objective, self.fc, self.targets = objective, fc, targets
        self.mask_ratio, self.generator = mask_ratio, generator
        self.rank, self.world, self.pad_to = rank, world, pad_to
        self.own_batches = own_batches

    def __call__(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and logged parts of this process's rows of the global batch ``index`` (of
        this process's own batch ``index`` with ``own_batches``)."""
        if self.own_batches is not None:
            return self._own(index)
        n_rois, real = self.fc.n_rois, len(index)
        mask = None
        if self.mask_ratio > 0:  # drawn for the real rows: padding leaves the draws unchanged
            mask = sample_roi_mask(real, n_rois, self.mask_ratio, self.generator)
        targets = {name: t.take(index) for name, t in self.targets.items()}
        index, targets, mask = self._pad(index, targets, mask)
        shard = shard_batch(targets, mask, n_rois, self.rank, self.world)
        x = self.fc.take(index[shard.rows])  # [b, R, R]
        with autocast(self.fc.device):
            return self.objective(x, shard)

    def _own(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step on this process's own batch, normalised by the world's counts."""
        assert self.own_batches is not None
        n_rois, real = self.fc.n_rois, len(index)
        mask = None
        if self.mask_ratio > 0:  # the world's masks drawn alike, this process's rows taken
            drawn = sample_roi_mask(real * self.world, n_rois, self.mask_ratio, self.generator)
            mask = drawn[self.rank * real : (self.rank + 1) * real]
        targets = {name: t.take(index) for name, t in self.targets.items()}
        names = list(targets)
        local = [float(t.present.sum()) for t in targets.values()]
        local.append(float(mask.sum()) * n_rois if mask is not None else 0.0)
        total = self.own_batches(torch.tensor(local, dtype=torch.float64)).tolist()
        index, targets, mask = self._pad(index, targets, mask)
        shard = Shard(
            rows=torch.arange(len(index)),
            targets=targets,
            denominators={n: c / self.world for n, c in zip(names, total, strict=False) if c > 0},
            roi_mask=mask,
            ssl_denominator=total[-1] / self.world if mask is not None else None,
        )
        x = self.fc.take(index)
        with autocast(self.fc.device):
            return self.objective(x, shard)

    def _pad(
        self, index: torch.Tensor, targets: Targets, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, Targets, torch.Tensor | None]:
        """The batch padded to ``pad_to`` rows: no target and no masked ROI in the padding."""
        real, index = len(index), self._padded(index)
        extra = len(index) - real
        if extra:
            targets = {name: _pad_target(t, extra) for name, t in targets.items()}
            if mask is not None:
                mask = torch.cat([mask, mask.new_zeros(extra, mask.shape[1])])
        return index, targets, mask

    def prefetch(self, index: torch.Tensor) -> None:
        """Start copying this process's rows of the next global batch ``index``.

        Parameters
        ----------
        index : torch.Tensor
            Sample indices of the next global batch.
        """
        self.fc.prefetch(self._padded(index).tensor_split(self.world)[self.rank])

    def _padded(self, index: torch.Tensor) -> torch.Tensor:
        if self.pad_to is None or len(index) >= self.pad_to:
            return index
        return torch.cat([index, index[:1].expand(self.pad_to - len(index))])


def _pad_target(target: Target, extra: int) -> Target:
    """``target`` with ``extra`` absent rows appended (zero values, not present)."""
    values = torch.cat([target.values, target.values.new_zeros(extra, *target.values.shape[1:])])
    present = torch.cat([target.present, target.present.new_zeros(extra)])
    return Target(values, present)
