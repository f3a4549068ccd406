"""Training objectives: masked BEI losses, masked-ROI reconstruction and task weighting.

Every BEI loss is averaged over the samples where its variable is present; a variable absent
from a batch is left out of the dictionary altogether, so it adds neither loss nor gradient
(its task weight included). With deep supervision the loss is the mean over decoder layers.

Absent samples are zeroed with ``torch.where`` rather than removed by boolean indexing: the
losses never wait for the device (no data-dependent shapes), which keeps GPU steps asynchronous.
Targets stay on the host until a loss needs them: present counts are taken there, and the copy
to the device does not wait (:func:`lcm.model.transfer.to_device`). The BEI losses of all
variables are computed together (one tensor per input, a few kernels): a small model's GPU step
is bound by the host's launches, and one launch per variable and operation added up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lcm.model.targets import QueryGroup, QueryLayout, Targets
from lcm.model.transfer import to_device


@dataclass(frozen=True)
class LossPlan:
    """Where the BEI losses of a set of variables read: numeric groups first, then the others.

    Attributes
    ----------
    groups : tuple of QueryGroup
        The variables' query groups in the order of the losses.
    n_numeric : int
        How many of them (the first) are numeric.
    queries : torch.Tensor
        ``[C]`` long: the query of each column of :meth:`pack`'s values.
    """

    groups: tuple[QueryGroup, ...]
    n_numeric: int
    queries: torch.Tensor

    @classmethod
    def of(cls, layout: QueryLayout, names: list[str]) -> LossPlan:
        """The plan of the variables ``names`` of ``layout``.

        Parameters
        ----------
        layout : QueryLayout
            The model's query layout.
        names : list of str
            Variables of ``layout`` with targets in the batch.

        Returns
        -------
        LossPlan
        """
        groups = tuple(sorted((layout[n] for n in names), key=lambda g: not g.is_numeric))
        queries = torch.tensor([q for g in groups for q in range(g.slice.start, g.slice.stop)])
        return cls(groups, sum(g.is_numeric for g in groups), queries)

    @property
    def names(self) -> list[str]:
        """The variables in the order of the losses."""
        return [g.name for g in self.groups]

    def pack(self, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        """``targets`` as one block: values ``[B, C]`` (numeric values, then class
        probabilities) and present ``[B, G]`` (bool), where they are (the host).

        Parameters
        ----------
        targets : Targets
            Each variable's targets, by name; holds every variable of the plan.

        Returns
        -------
        values : torch.Tensor, shape (B, C)
        present : torch.Tensor, shape (B, G)
        """
        rows = len(targets[self.groups[0].name].present)
        values = torch.cat([targets[g.name].values.reshape(rows, -1) for g in self.groups], 1)
        present = torch.stack([targets[g.name].present for g in self.groups], 1)
        return values, present

    def losses(
        self,
        outputs: torch.Tensor,
        queries: torch.Tensor,
        values: torch.Tensor,
        present: torch.Tensor,
        count: torch.Tensor,
    ) -> torch.Tensor:
        """Every group's summed loss divided by ``count [G]``: ``[G]``, on the outputs' device.

        ``outputs [L, B, Q]``; ``queries``, ``values``, ``present`` as :attr:`queries` and
        :meth:`pack` gives them, on that device. A few kernels whatever the number of
        variables; absent rows add exact zeros.

        Parameters
        ----------
        outputs : torch.Tensor, shape (L, B, Q)
            Every decoder layer's outputs; the loss is the mean over layers.
        queries : torch.Tensor, shape (C,)
            :attr:`queries`.
        values : torch.Tensor, shape (B, C)
            :meth:`pack`'s values.
        present : torch.Tensor, shape (B, G)
            :meth:`pack`'s present.
        count : torch.Tensor, shape (G,)
            Each group's divisor: the rows with its target present, in the batch or, where
            pseudo-labels or several ranks share it, as the caller counts them.
        """
        block = outputs.float().index_select(-1, queries)  # [L, B, C]
        n_numeric = self.n_numeric
        per_sample = [(block[..., :n_numeric] - values[:, :n_numeric]) ** 2]  # [L, B, numeric]
        start = n_numeric
        for group in self.groups[n_numeric:]:  # cross-entropy, soft targets: [L, B, 1] each
            end = start + group.size
            log_probs = F.log_softmax(block[..., start:end], dim=-1)
            per_sample.append(-(values[:, start:end] * log_probs).sum(-1, keepdim=True))
            start = end
        per_group = torch.where(present, torch.cat(per_sample, -1), 0.0)  # [L, B, G]
        return per_group.sum(dim=1).mean(dim=0) / count


def variable_losses(
    outputs: torch.Tensor,
    targets: Targets,
    layout: QueryLayout,
    denominators: dict[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of each variable present in the batch.

    Parameters
    ----------
    outputs : torch.Tensor, shape (L, B, Q)
        Decoder outputs of the supervised layers.
    targets : dict of Target
        Targets of (a subset of) the layout's groups for the same B samples.
    layout : QueryLayout
    denominators : dict of str to float, optional
        Divide each variable's summed loss by this instead of its present count here. Data
        parallel training passes ``present count in the global batch / world size``, so that
        the replicas' averaged gradients equal one process's on the whole batch; a variable
        listed here but absent from this shard then contributes an exact zero (and its task
        weight still takes part, as it does in one process).

    Returns
    -------
    dict of str to scalar torch.Tensor
        Cross-entropy (soft targets allowed) for binary/categorical groups, MSE on standardised
        values for continuous/ordinal ones; only variables with at least one present sample.
    """
    names, counts = [], []
    for name, target in targets.items():
        if denominators is not None:
            if name not in denominators:
                continue
            counts.append(float(denominators[name]))
        elif bool(target.present.any()):  # counted where the targets are: on the host
            counts.append(float(target.present.sum()))
        else:
            continue
        names.append(name)
    if not names:
        return {}
    # All variables at once: a handful of kernels and four copies to the device whatever the
    # number of variables (one per variable and input before).
    plan = LossPlan.of(layout, names)
    device = outputs.device
    values, present = plan.pack(targets)
    count_of = dict(zip(names, counts, strict=True))
    count = torch.tensor([count_of[name] for name in plan.names])
    losses = plan.losses(
        outputs,
        to_device(plan.queries, device),
        to_device(values, device),
        to_device(present, device),
        to_device(count, device),
    ).unbind()  # [G]
    position = {name: i for i, name in enumerate(plan.names)}
    return {name: losses[position[name]] for name in names}  # in the targets' order


def masked_roi_loss(
    predicted: torch.Tensor,
    fc: torch.Tensor,
    roi_mask: torch.Tensor,
    denominator: float | None = None,
) -> torch.Tensor:
    """MSE between the predicted and true FC rows of the masked ROIs.

    Parameters
    ----------
    predicted, fc : torch.Tensor, shape (B, R, R)
    roi_mask : torch.Tensor, shape (B, R), bool
        True for the hidden ROIs.
    denominator : float, optional
        Divide the summed squared error by this instead of the number of masked entries
        (data parallel training: see :func:`variable_losses`).
    """
    hidden = roi_mask.unsqueeze(-1)  # [B, R, 1]: every entry of a masked ROI's row
    error = torch.where(hidden, predicted.float() - fc.float(), 0.0)  # [B, R, R]
    if denominator is None:
        return (error**2).sum() / (roi_mask.sum() * fc.shape[-1])
    return (error**2).sum() / denominator


def sample_roi_mask(
    batch: int, n_rois: int, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """``[batch, n_rois]`` bool mask hiding ``round(ratio * n_rois)`` (>= 1) random ROIs per row.

    Parameters
    ----------
    batch : int
        Rows.
    n_rois : int
        ROIs per row.
    ratio : float
        Fraction of the ROIs hidden.
    generator : torch.Generator
        A CPU generator; the mask is on the CPU.
    """
    k = max(1, round(ratio * n_rois))
    scores = torch.rand(batch, n_rois, generator=generator)
    idx = scores.topk(k, dim=1).indices
    mask = torch.zeros(batch, n_rois, dtype=torch.bool)
    mask.scatter_(1, idx, True)
    return mask


# Bound of each task's log-variance s_t: weights exp(-s_t) between e^-4 and e^4 (~54.6).
LOG_VAR_BOUND = 4.0


class UncertaintyWeighting(nn.Module):
    """Learned task weights of Kendall, Gal & Cipolla (CVPR 2018), homoscedastic uncertainty.

    Each task ``t`` has a learned ``s_t = log sigma_t^2`` and contributes
    ``exp(-s_t) * L_t + s_t``: a noisy or hard task earns a smaller weight, and the ``+ s_t``
    term stops all weights collapsing to zero. This is the common simplified form for both
    classification and regression. ``s_t`` is clamped to [-4, 4] so that a task whose loss
    reaches ~0 cannot take an unbounded weight, and projected into that range after every
    optimiser step (:meth:`project_`): outside it the clamp passes no gradient, so a
    parameter that AdamW's momentum carried past a bound would stay there, its weight fixed
    at ``e^4`` even once its task's loss rose again.

    Parameters
    ----------
    names : list of str
        The tasks.
    """

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.log_vars = nn.ParameterDict({n: nn.Parameter(torch.zeros(())) for n in names})

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted sum of ``losses`` (only the tasks present; zero when none).

        Parameters
        ----------
        losses : dict of str to torch.Tensor
            Scalar loss per task name.

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        if not losses:
            return torch.zeros(())
        return self.masked(torch.stack(list(losses.values())), list(losses))

    def masked(
        self, losses: torch.Tensor, names: list[str], active: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weighted sum of ``losses [G]`` of the tasks ``names``, those with ``active`` false
        left out (a fixed set of tasks every step, as a captured CUDA graph needs).

        Parameters
        ----------
        losses : torch.Tensor, shape (G,)
            One loss per task.
        names : list of str
            The tasks of ``losses``, in its order.
        active : torch.Tensor, shape (G,), optional
            Bool; None: every task counts.

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        bound = LOG_VAR_BOUND
        s = torch.stack([self.log_vars[name] for name in names]).clamp(-bound, bound)
        weighted = torch.exp(-s) * losses + s
        if active is not None:
            weighted = torch.where(active, weighted, 0.0)
        return weighted.sum()

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp every ``s_t`` into [-4, 4] in place; call after each optimiser step.

        The clamp in the forward pass passes the gradient at a bound (its range is closed), so
        a parameter put back on the bound learns again; one inside the range is left
        unchanged, bit for bit. In-place on the device, without a host sync: it can be part
        of a captured CUDA graph (:mod:`lcm.train.graphed`).
        """
        params = list(self.log_vars.values())
        if params:
            torch._foreach_clamp_min_(params, -LOG_VAR_BOUND)
            torch._foreach_clamp_max_(params, LOG_VAR_BOUND)

    def weights(self) -> dict[str, float]:
        """Current weight ``exp(-s_t)`` of each task."""
        bound = LOG_VAR_BOUND
        return {
            n: float(torch.exp(-p.detach().clamp(-bound, bound))) for n, p in self.log_vars.items()
        }
