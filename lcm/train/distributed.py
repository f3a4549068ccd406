"""Data parallel training under ``torchrun``: process group set-up from its environment.

``torchrun --nproc_per_node K -m lcm pretrain ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without them training runs in one process. CUDA uses NCCL with one GPU per
process (``cuda:LOCAL_RANK``), CPU uses gloo (how the tests run two processes here).

Every process leaves the group right after the last collective (:func:`teardown`, once the
history is averaged): what follows, evaluating, saving and fitting the ridge maps, is rank 0's
alone and may take longer than the group's timeout, which a rank kept waiting in a barrier
meanwhile would reach, aborting the job while rank 0 writes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lcm.exceptions import ConfigError

log = logging.getLogger(__name__)

# How long a process waits in a collective for the others (NCCL's default is 10 minutes).
# During training rank 0 alone evaluates the held-out runs at each epoch's end and writes the
# training state while the others wait in the next step's all-reduce: on a slow shared file
# system that can pass 10 minutes. A rank that dies is noticed by torchrun, not by this timeout.
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job.

    Attributes
    ----------
    rank, world, local_rank : int
    device : torch.device
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        """True with more than one process."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs (rank 0)."""
        return self.rank == 0


def launched_world(variable: str = "WORLD_SIZE") -> int:
    """The number of data parallel processes the launcher started (``WORLD_SIZE``; 1 alone),
    or on this node with ``variable="LOCAL_WORLD_SIZE"``.

    Parameters
    ----------
    variable : str, default "WORLD_SIZE"
        The launcher's environment variable to read; unset or not an integer reads as 1.

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, int(os.environ.get(variable, "1")))
    except ValueError:
        return 1


def check_global_batch(batch_size: int, world: int) -> None:
    """Refuse a global batch the ``world`` processes cannot split evenly.

    Parameters
    ----------
    batch_size : int
        The global batch (``pretrain.batch_size``).
    world : int
        The number of data parallel processes.

    Raises
    ------
    ConfigError
        Naming the batch size, the process count and the fix.
    """
    if batch_size % world:
        raise ConfigError(
            f"pretrain: batch_size {batch_size} is not divisible by the {world} data parallel "
            "processes (the global batch is split evenly).",
            hint="Set pretrain.batch_size to a multiple of procs_per_node x tasks.",
        )


def setup(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes, or run alone without one.

    Parameters
    ----------
    device : torch.device
        The device chosen for a single process; under ``torchrun`` CUDA becomes
        ``cuda:LOCAL_RANK``.

    Raises
    ------
    ConfigError
        ``WORLD_SIZE`` > 1 with CUDA requested but fewer GPUs than local processes.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun local rank {local_rank} but only {torch.cuda.device_count()} GPU(s).",
                hint="Start at most one process per GPU (--nproc_per_node).",
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=PROCESS_GROUP_TIMEOUT)
    log.info("data parallel process %d of %d on %s", rank, world, device)
    return Distributed(rank, world, local_rank, device)


def global_counts(ctx: Distributed) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function summing a host tensor of counts over the processes (every one calls it).

    Streamed pretraining gives each process a batch of its own; its losses are normalised by
    the world's present counts (:class:`lcm.train.objective.PretrainStep`'s ``own_batches``).
    The counts are host numbers: they are summed over a gloo group on the host, not through
    NCCL, which would make the host wait for the GPU at every step.

    Parameters
    ----------
    ctx : Distributed
        This process's place in the job; not enabled: the function returns its input.

    Returns
    -------
    callable
        ``counts -> total``: a copy of ``counts`` summed over the processes.
    """
    if not ctx.enabled:
        return lambda counts: counts
    group = None if dist.get_backend() == "gloo" else _host_group()

    def reduce(counts: torch.Tensor) -> torch.Tensor:
        total = counts.clone()
        dist.all_reduce(total, group=group)
        return total

    return reduce


_HOST_GROUP: list[Any] = []


def _host_group() -> Any:  # a torch ProcessGroup
    """A gloo group of every process, made once (a collective: every process calls it)."""
    if not _HOST_GROUP:
        _HOST_GROUP.append(dist.new_group(backend="gloo", timeout=PROCESS_GROUP_TIMEOUT))
    return _HOST_GROUP[0]


def broadcast_text(ctx: Distributed, text: str | None) -> str:
    """Rank 0's ``text`` on every process (a collective; the others pass None).

    Parameters
    ----------
    ctx : Distributed
        This process's place in the job.
    text : str or None
        Rank 0's text; the others' is ignored.

    Returns
    -------
    str
    """
    if not ctx.enabled:
        assert text is not None
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    assert box[0] is not None
    return box[0]


def seed_process(ctx: Distributed, seed: int) -> None:
    """Give this process's dropout a random stream of its own (torch's global generators).

    Every process seeds alike (:func:`lcm.train.loop.seed_everything`): the shuffling and
    masking generator must stay the same everywhere, since every process draws the same global
    batches. torch's global generators, which dropout draws from, must not: with one stream
    each process's shard would get the masks of every other's. Rank 0 keeps the stream the
    seed started (a one-process run's, the model's initialisation drawn from it); rank ``r``
    is reseeded from ``(seed, r)``. Call it after the model is built, before training.

    Parameters
    ----------
    ctx : Distributed
    seed : int
        The run's seed.
    """
    if ctx.rank:
        state = np.random.SeedSequence([seed, ctx.rank]).generate_state(1, np.uint64)
        torch.manual_seed(int(state[0]))


def gather_ranks(ctx: Distributed) -> list[dict[str, object]]:
    """Where every process of the job runs, gathered on all of them (rank order).

    Each process logs its own line; the list (rank, local rank, host, pid, device and the
    SLURM task that started it, if any) is what rank 0 records in the outputs' provenance:
    evidence that every rank took part.

    Parameters
    ----------
    ctx : Distributed
        This process's place in the job.

    Returns
    -------
    list of dict
        One per process: ``rank``, ``local_rank``, ``host``, ``pid``, ``device`` and
        ``slurm_task`` (``SLURM_PROCID``, None outside SLURM).
    """
    me: dict[str, object] = {
        "rank": ctx.rank,
        "local_rank": ctx.local_rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(ctx.device),
        "slurm_task": os.environ.get("SLURM_PROCID"),
    }
    log.info(
        "rank %d of %d: host %s, pid %d, %s",
        ctx.rank,
        ctx.world,
        me["host"],
        me["pid"],
        me["device"],
    )
    if not ctx.enabled:
        return [me]
    ranks: list[dict[str, object] | None] = [None] * ctx.world
    dist.all_gather_object(ranks, me)
    return [r for r in ranks if r is not None]


def mean_over_ranks(
    ctx: Distributed, history: list[dict[str, float]], prefix: str = "loss_"
) -> list[dict[str, float]]:
    """History rows with every ``prefix*`` value averaged over the processes.

    Each process logs the loss of its share of every global batch, divided by the global
    count over the world size (:func:`lcm.train.objective.shard_batch`): their mean is the loss
    of the whole batch, so the averaged history is the one-process history (up to the order of
    float summation). Every process must call this (a collective); others keys are kept.

    Parameters
    ----------
    ctx : Distributed
        This process's place in the job.
    history : list of dict of str to float
        This process's history rows, one per epoch (the same epochs on every process).
    prefix : str, default "loss_"
        Keys starting with it are averaged; a key a process lacks counts as 0 in the sum, and
        stays absent from a row where no process has it.

    Returns
    -------
    list of dict of str to float
        ``history`` itself where there is one process or no row.
    """
    if not ctx.enabled or not history:
        return history
    # Every key of every row: a variable whose labelled rows all fell in an epoch's dropped
    # last batch has no loss that epoch (the row lacks the key; it is not a KeyError).
    keys = sorted({k for row in history for k in row if k.startswith(prefix)})
    values = torch.tensor(
        [[row.get(k, 0.0) for k in keys] for row in history],
        dtype=torch.float64,
        device=ctx.device,
    )
    present = torch.tensor(
        [[k in row for k in keys] for row in history], dtype=torch.float64, device=ctx.device
    )
    dist.all_reduce(values)
    dist.all_reduce(present)
    values = (values / ctx.world).cpu().tolist()
    seen = (present > 0).cpu().tolist()
    return [
        {**row, **{k: x for k, x, there in zip(keys, v, s, strict=True) if there}}
        for row, v, s in zip(history, values, seen, strict=True)
    ]


def teardown(ctx: Distributed) -> None:
    """Leave the process group: every process calls it, after the last collective.

    Call it as soon as the processes have nothing more to exchange (in pretraining, once
    :func:`mean_over_ranks` has averaged the history), not after rank 0's writing: the
    others would wait for rank 0 in the barrier, up to :data:`PROCESS_GROUP_TIMEOUT`.

    Parameters
    ----------
    ctx : Distributed
        This process's place in the job; nothing to do unless enabled.
    """
    if ctx.enabled and dist.is_initialized():
        # NCCL's barrier on this process's own GPU (it would otherwise guess one).
        dist.barrier(device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        dist.destroy_process_group()
        _HOST_GROUP.clear()
