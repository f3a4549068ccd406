"""What pretraining and finetuning share: seeding, device, optimiser, schedule, batches, the loop.

The loop is deliberately plain: a fixed number of epochs, AdamW, linear warm-up then cosine decay
per step, gradient clipping, and no epoch selection (the last weights are the result).

On GPUs the step never waits for the device: logged losses are summed on the device and read
back only when the state is saved and at the end of an epoch; AdamW is the fused kernel; the
model's blocks may be compiled (:func:`compile_model`); :class:`DeviceConnectomes` expands
upper triangles on the device, kept there where they fit, else with the next batch's copy in
flight.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from lcm.exceptions import ConfigError, LCMError
from lcm.model.losses import UncertaintyWeighting
from lcm.model.transfer import to_device
from lcm.signals import SigtermExit
from lcm.train.state import LoopPosition, gather_processes, load_state, remove_state, save_state

log = logging.getLogger(__name__)

GRAD_CLIP_NORM = 1.0
WARMUP_FRACTION = 0.1
# Parameters that are embeddings rather than weights: no weight decay, as in nanoGPT/BERT.
_NO_DECAY_NAMES = ("queries", "pos", "mask_token", "log_vars")

StepFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator for shuffling and masking.

    Alike in every data parallel process; pretraining then gives each process's dropout a
    stream of its own (:func:`lcm.train.distributed.seed_process`).

    Parameters
    ----------
    seed : int
        The run's seed (NumPy's global state takes it modulo ``2**32``).

    Returns
    -------
    torch.Generator
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (global state also seeded for third-party code)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU threads (default: the CPUs this process may use); return it.

    Snakemake passes a rule's ``threads``; oversubscribing a shared node with OpenMP threads
    slows small models down many times over.

    Parameters
    ----------
    threads : int or None
        Threads wanted; None or 0: the CPUs in this process's affinity mask.

    Returns
    -------
    int
        The threads set, at least 1.
    """
    n = threads if threads else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, n))
    return max(1, n)


# Where the NVIDIA driver lists a node's GPUs, whatever torch was built for.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
# What says a job was granted GPUs: SLURM's variables (the executor's job step drops the job's,
# srun sets the step's) and the devices SLURM (or the user) makes visible.
GPU_GRANTS = ("SLURM_GPUS_ON_NODE", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")
_warned_grants: set[str] = set()


def granted_gpus() -> str | None:
    """``NAME=value`` of the first variable saying this process was given GPUs, or None.

    ``CUDA_VISIBLE_DEVICES`` empty, ``-1`` or SLURM's ``NoDevFiles`` hides them: none given.
    """
    for name in GPU_GRANTS:
        value = os.environ.get(name, "").strip()
        # SLURM_GPUS_ON_NODE counts GPUs; the others list them (0 is the first).
        none = ("", "0") if name == "SLURM_GPUS_ON_NODE" else ("", "-1", "NoDevFiles")
        if value not in none:
            return f"{name}={value}"
    return None


def _nvidia_gpus_present() -> bool:
    """True where the NVIDIA driver lists GPUs on this node."""
    try:
        return NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    except OSError:
        return False


def _check_granted_gpus() -> None:
    """Refuse to train on the CPU, unasked, on the GPUs of an NVIDIA node that torch can't use.

    A CPU-only torch (a conda env solved on a login node without a GPU picks the CPU build)
    on a GPU node would train on the CPU, hours later and without a word. Refused where the
    job was given GPUs (:func:`granted_gpus`) and the NVIDIA driver lists some; where it lists
    none (a GPU SLURM counts that no driver backs, as the SLURM test's), a warning.
    """
    grant = granted_gpus()
    if grant is None or torch.cuda.is_available():
        return
    if torch.version.cuda is None and torch.version.hip is None:
        build = f"torch {torch.__version__} is a CPU-only build"
    else:
        build = (
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU "
            "(a driver older than the CUDA it was built for?)"
        )
    fix = (
        "Install a CUDA build of torch where the rule runs: with conda, build the envs with "
        "CONDA_OVERRIDE_CUDA=12.6 (the CUDA version the nodes' driver supports) set, since a "
        "login node without a GPU makes the solver pick the CPU build; to train on the CPU, "
        "ask no GPU (or pass --device cpu)."
    )
    what = f"this job was given GPUs ({grant}) but {build}"
    if _nvidia_gpus_present():
        raise ConfigError(f"{what}: it would train on the CPU.", hint=fix)
    if grant not in _warned_grants:
        _warned_grants.add(grant)
        log.warning("%s, and no NVIDIA driver lists a GPU: training on the CPU. %s", what, fix)


def pick_device(device: str | None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU.

    Parameters
    ----------
    device : str or None
        A torch device string (``cpu``, ``cuda``, ``cuda:N``, ``mps``), or None / ``""``.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        ``device`` is no torch device, or names one this machine lacks (``cuda`` where torch
        has no CUDA or sees no GPU, ``cuda:3`` on a two-GPU node, ``mps`` off Apple silicon):
        a traceback from deep in training, after the data had loaded, before. Without
        ``device``: the job was given GPUs of an NVIDIA node that torch cannot use (a CPU-only
        build), where it would train on the CPU (:func:`_check_granted_gpus`).
    """
    if not device:
        _check_granted_gpus()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    fix = "use --device cpu, or leave it out (CUDA when there is one, else the CPU)"
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"--device {device!r} is not a torch device (cpu, cuda, cuda:N, mps).", hint=fix
        ) from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (chosen.index or 0) >= count:
            raise ConfigError(
                f"--device {device}: this machine has {count} CUDA device(s) usable by torch "
                f"{torch.__version__}.",
                hint=fix,
            )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: no MPS device on this machine.", hint=fix)
    if chosen.type not in ("cpu", "cuda", "mps"):
        # meta, xla, ...: torch names them, but no training runs there (meta holds no values).
        raise ConfigError(f"--device {device}: training runs on cpu, cuda or mps.", hint=fix)
    return chosen


def autocast(device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPUs; full precision on CPU (keeps CPU runs bit-reproducible).

    ``cache=False`` for work captured as a CUDA graph: autocast's cache of cast weights must
    not outlive the capture (torch's CUDA graphs notes).

    Parameters
    ----------
    device : torch.device
        Where the model runs.
    cache : bool, default True
        Autocast's weight cache (``cache_enabled``).

    Returns
    -------
    contextlib.AbstractContextManager
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def make_optimizer(
    modules: list[nn.Module],
    lr: float,
    weight_decay: float,
    lr_scales: dict[int, float] | None = None,
) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only (not biases, norms, embeddings, task weights).

    ``lr_scales`` maps ``id(parameter)`` to a factor of ``lr`` (layer-wise learning-rate
    decay, :func:`layer_lr_scales`); parameters not in it, or without it, learn at ``lr``.
    Fused (one kernel for all parameters) when they are all on CUDA; on CPU the default
    implementation, which keeps CPU runs bit-identical to earlier versions.

    Parameters
    ----------
    modules : list of nn.Module
        Their parameters that require gradients are optimised.
    lr : float
        Base learning rate.
    weight_decay : float
        Decay of the weight matrices.
    lr_scales : dict of int to float, optional
        Factor of ``lr`` by ``id(parameter)``.

    Returns
    -------
    torch.optim.AdamW
        One parameter group per (decays, scale) pair.
    """
    grouped: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            leaf = name.rsplit(".", 1)[-1]
            is_embedding = any(part in _NO_DECAY_NAMES for part in name.split("."))
            decays = p.dim() >= 2 and not is_embedding and leaf != "bias"
            scale = (lr_scales or {}).get(id(p), 1.0)
            grouped.setdefault((decays, scale), []).append(p)
    groups = [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": lr * scale}
        for (decays, scale), params in grouped.items()
        if params or scale == 1.0
    ]
    params = [p for group in groups for p in group["params"]]
    on_cuda = all(p.is_cuda for p in params)
    return torch.optim.AdamW(groups, lr=lr, fused=True if on_cuda and params else None)


def layer_lr_scales(model: nn.Module, decay: float) -> dict[int, float]:
    """Layer-wise learning-rate decay of an LCM: ``decay ** (top - depth)`` per parameter.

    Depths: the ROI tokenizer 0, encoder block ``i`` ``i + 1``, then the memory norm and the
    reconstruction head, decoder block ``j`` one deeper each, and the queries, output norm and
    head on top (factor 1). With ``decay`` < 1 the early, general layers move least while few
    labels finetune the model; ``decay`` 1 changes nothing.

    Parameters
    ----------
    model : nn.Module
        An :class:`~lcm.model.lcm.LCM` (its ``encoder`` and ``decoder`` block lists).
    decay : float
        Factor per layer of depth below the top.

    Returns
    -------
    dict of int to float
        ``id(parameter)`` to its factor, for :func:`make_optimizer`'s ``lr_scales``.
    """
    n_enc = len(model.encoder)
    top = n_enc + 1 + len(model.decoder)
    depth: dict[str, int] = {
        "tokenizer": 0,
        "norm_memory": n_enc + 1,
        "reconstruct_head": n_enc + 1,
    }
    scales = {}
    for name, p in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "encoder":
            d = int(parts[1]) + 1
        elif parts[0] == "decoder":
            d = n_enc + 1 + int(parts[1])
        else:
            d = depth.get(parts[0], top)
        scales[id(p)] = float(decay ** (top - d))
    return scales


# Values of the ``compile`` training setting besides the torch.compile modes.
COMPILE_AUTO = "auto"


def compile_options(setting: bool | str | None, device: torch.device) -> dict[str, str] | None:
    """``torch.compile`` options for the ``compile`` setting, or ``None`` for eager.

    Parameters
    ----------
    setting : bool, str or None
        ``"auto"`` / ``None``: compile on CUDA only (CPU runs stay eager and bit-reproducible);
        ``True`` / ``False``: always / never; a mode name (``"default"``, ``"reduce-overhead"``
        = CUDA graphs, ``"max-autotune"``, ``"max-autotune-no-cudagraphs"``): compile with it.
    device : torch.device
    """
    if setting is None or setting == COMPILE_AUTO:
        setting = device.type == "cuda"
    if setting is False:
        return None
    if setting is True:
        return {}
    return {"mode": str(setting)}


# Values of the ``compile_scope`` training setting: what one compiled graph holds ("step":
# the forward pass compiled whole, and the training step captured as one CUDA graph around it,
# lcm.train.graphed).
COMPILE_SCOPES = ("blocks", "model", "step")
# torch.compile modes without CUDA graphs of their own, for a model inside the step's graph.
_WITHOUT_GRAPHS = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


def scope_options(
    setting: bool | str | None, device: torch.device, scope: str, backend: str | None = None
) -> dict[str, str] | None:
    """``torch.compile`` options of ``scope``'s graphs (``None``: eager), as :func:`compile_model`
    compiles with them: :func:`compile_options`, without CUDA graphs of their own for the
    ``"step"`` scope (whose whole step is one), with ``backend`` where given.

    Parameters
    ----------
    setting : bool, str or None
        As :func:`compile_options`.
    device : torch.device
        Where the model runs.
    scope : {"blocks", "model", "step"}
        What is compiled as one graph (:func:`compile_model`).
    backend : str, optional
        ``torch.compile``'s backend.

    Returns
    -------
    dict of str to str or None

    Raises
    ------
    ConfigError
        ``scope`` is none of :data:`COMPILE_SCOPES`.
    """
    if scope not in COMPILE_SCOPES:
        raise ConfigError(
            f"compile_scope: expected one of {list(COMPILE_SCOPES)}, got {scope!r}.",
            hint="blocks (the default), model or step.",
        )
    options: dict[str, str] | None = compile_options(setting, device)
    if options is None:
        return None
    if scope == "step" and options.get("mode") in _WITHOUT_GRAPHS:
        options["mode"] = _WITHOUT_GRAPHS[options["mode"]]
    if backend:
        options["backend"] = backend
    return options


def compile_model(
    module: nn.Module,
    setting: bool | str | None,
    device: torch.device,
    scope: str = "blocks",
    backend: str | None = None,
) -> bool:
    """Compile every LCM inside ``module`` (an objective, a DDP wrapper) in place.

    ``setting`` as :func:`compile_options`; ``scope`` ``"blocks"``: each block its own graph
    (:meth:`LCM.compile_blocks`), ``"model"``: the forward pass one graph as well
    (:meth:`LCM.compile_whole`), ``"step"``: as ``"model"``, in a mode without CUDA graphs of
    its own (the training step is captured whole around it: :mod:`lcm.train.graphed`);
    ``backend``: ``torch.compile``'s (tests and benchmarks on CPU
    without a C compiler: ``"aot_eager"``). State dict keys do not change, so checkpoints and
    training states written by a compiled run load into an eager one and back. Returns whether
    anything was compiled.

    Parameters
    ----------
    module : nn.Module
        Holds the LCMs to compile (any module with ``compile_blocks``).
    setting : bool, str or None
        The ``compile`` setting (:func:`compile_options`).
    device : torch.device
        Where the model runs.
    scope : {"blocks", "model", "step"}, default "blocks"
        What is compiled as one graph.
    backend : str, optional
        ``torch.compile``'s backend; None: its default.
    """
    options = scope_options(setting, device, scope, backend)
    if options is None:
        return False
    models = [m for m in module.modules() if hasattr(m, "compile_blocks")]
    for model in models:
        if scope in ("model", "step"):
            model.compile_whole(**options)
        else:
            model.compile_blocks(**options)
    log.info("compiled %d model(s), scope %s (%s)", len(models), scope, options or "default mode")
    return bool(models)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = WARMUP_FRACTION
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to 0.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups' learning rates are scaled.
    total_steps : int
        Optimiser steps of the whole run.
    warmup_fraction : float, default :data:`WARMUP_FRACTION`
        At least one step warms up.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
        Stepped once per optimiser step.
    """
    warmup = max(1, round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batches(
    n: int, batch_size: int, generator: torch.Generator | None, min_size: int = 1
) -> Iterator[torch.Tensor]:
    """Index batches over ``n`` samples, shuffled when a generator is given.

    A last batch smaller than ``min_size`` is dropped (data parallel training needs one sample
    per process).

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch.
    generator : torch.Generator or None
        Shuffles the order; None: ``0 .. n - 1``.
    min_size : int, default 1
        A last batch with fewer samples is dropped.

    Yields
    ------
    torch.Tensor
        Sample indices, long.
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    yield from split_order(order, batch_size, min_size)


def split_order(order: torch.Tensor, batch_size: int, min_size: int = 1) -> list[torch.Tensor]:
    """Consecutive batches of ``order``; a last one smaller than ``min_size`` is dropped.

    Parameters
    ----------
    order : torch.Tensor
        Sample indices in training order.
    batch_size : int
        Samples per batch.
    min_size : int, default 1
        A last batch with fewer samples is dropped.

    Returns
    -------
    list of torch.Tensor
    """
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [c for c in chunks if len(c) >= min_size]


# Connectomes whose upper triangles take at most this share of the GPU's memory stay on it.
RESIDENT_SHARE = 0.25


class DeviceConnectomes:
    """Connectomes kept as upper triangles, expanded to full matrices on the device.

    Where the triangles of every sample fit in :data:`RESIDENT_SHARE` of the GPU's memory (116
    ROIs: 27 kB a sample, a million samples in 27 GB) they are copied to it once, and a batch
    is two gathers there: the host neither copies nor stages a batch (its gather and staging
    took ~1 ms a step of a host-bound LCM-Base step). Otherwise they stay on the host: a batch
    travels as ``R (R + 1) / 2`` values per sample (half the bytes of the full matrix), staged
    in pinned memory and copied without blocking, and :meth:`prefetch` starts the next
    batch's copy (on a side stream on CUDA) while the current step runs; :meth:`take` uses it
    when asked for the same indices. Either way one gather on the device rebuilds the
    symmetric ``[b, R, R]`` matrices, equal to ``fc[index]`` exactly (copies, no arithmetic).

    Parameters
    ----------
    fc : numpy.ndarray or torch.Tensor, shape (n, R, R)
        Symmetric matrices (only the upper triangle, diagonal included, is read).
    device : torch.device
    resident : bool, optional
        Keep every triangle on ``device``; by default on a GPU where they fit (see above).
    """

    def __init__(
        self, fc: np.ndarray | torch.Tensor, device: torch.device, resident: bool | None = None
    ) -> None:
        fc = torch.as_tensor(fc, dtype=torch.float32)
        n_rois = fc.shape[-1]
        rows, cols = torch.triu_indices(n_rois, n_rois)
        self.device = device
        self.n_rois = n_rois
        self.triangles = fc[:, rows, cols].contiguous()  # [n, R (R + 1) / 2]
        # Position of every full-matrix entry (i, j) in the triangle of (min(i, j), max(i, j)).
        lookup = torch.empty(n_rois, n_rois, dtype=torch.long)
        lookup[rows, cols] = torch.arange(len(rows))
        lookup[cols, rows] = torch.arange(len(rows))
        self.lookup = lookup.flatten().to(device)  # [R * R]
        if resident is None:
            resident = device.type == "cuda" and self.triangles.nbytes <= RESIDENT_SHARE * (
                torch.cuda.get_device_properties(device).total_memory
            )
        self.resident = resident
        if resident:  # once, before training: a plain copy, not a pinned staging of all of it
            self.triangles = self.triangles.to(device)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" and not resident else None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.triangles)

    @property
    def row_width(self) -> int:
        """Values a sample travels as: ``R (R + 1) / 2``."""
        return int(self.triangles.shape[1])

    def host_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Upper triangles ``[b, R (R + 1) / 2]`` of ``index`` on the host (not resident).

        Parameters
        ----------
        index : torch.Tensor
            Sample indices.
        """
        return self.triangles[index]

    def _copy(self, index: torch.Tensor) -> torch.Tensor:
        if self.resident:  # a gather queued on the device; only the indices travel
            return self.triangles[to_device(index, self.device)]
        rows = self.triangles[index]  # [b, R (R + 1) / 2], host
        if self.stream is None:
            return to_device(rows, self.device)
        rows = rows.pin_memory()
        with torch.cuda.stream(self.stream):
            return rows.to(self.device, non_blocking=True)

    def prefetch(self, index: torch.Tensor) -> None:
        """Start copying the triangles of ``index`` (CPU indices) to the device.

        Nothing to start where they are resident: :meth:`take` gathers them on the device.

        Parameters
        ----------
        index : torch.Tensor
            The next batch's sample indices.
        """
        if not self.resident:
            self._pending = (index.clone(), self._copy(index))

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Symmetric matrices ``[b, R, R]`` of the samples ``index`` on the device.

        Parameters
        ----------
        index : torch.Tensor
            Sample indices (CPU); a prefetched copy of the same indices is used.
        """
        pending, self._pending = self._pending, None
        rows = pending[1] if pending is not None and torch.equal(pending[0], index) else None
        if rows is None:
            rows = self._copy(index)
        if self.stream is not None:  # compute waits for the copy; memory kept until it is done
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
            rows.record_stream(torch.cuda.current_stream(self.device))
        return self.expand(rows)

    def expand(self, rows: torch.Tensor) -> torch.Tensor:
        """Upper triangles ``[b, R (R + 1) / 2]`` on the device -> symmetric ``[b, R, R]``.

        Parameters
        ----------
        rows : torch.Tensor, shape (b, R (R + 1) / 2)
            Upper triangles, diagonal included.
        """
        return rows[:, self.lookup].view(len(rows), self.n_rois, self.n_rois)


# Seconds between two INFO lines of the epochs of one training run (DEBUG has every epoch).
EPOCH_LOG_SECONDS = 60.0


def progress(iterable: range, desc: str, disable: bool = False) -> tqdm:
    """tqdm bar on a terminal; silent in batch jobs (logs carry the epoch summaries).

    Parameters
    ----------
    iterable : range
        What the bar counts.
    desc : str
        The bar's label.
    disable : bool, default False
        No bar even on a terminal.

    Returns
    -------
    tqdm
    """
    return tqdm(iterable, desc=desc, disable=disable or not sys.stderr.isatty(), leave=False)


class Carried(Protocol):
    """What a caller keeps across epochs, saved and restored with the training state.

    :func:`train_epochs` asks for its tensors at every save and gives them back on resume,
    so that a resumed run continues with it as an uninterrupted one would (e.g. the best
    epoch so far of ``pretrain.select_epoch: heldout``).
    """

    def carried_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to save (names without dots at either end)."""
        ...

    def restore_carried(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back the tensors of a saved state.

        Parameters
        ----------
        tensors : dict of str to torch.Tensor
            What :meth:`carried_tensors` returned at the save, under the same names.
        """
        ...


@dataclass
class Resumable:
    """Where and how often :func:`train_epochs` saves its state for exact resumption.

    Attributes
    ----------
    folder : pathlib.Path
        State folder (``train_state.step-<N>.safetensors`` + ``train_state.json``).
    every : int
        Save after every ``every`` optimiser steps (0: never).
    fingerprint : str
        Identity of the run (settings, seed, data); a saved state with another is ignored.
    writer : bool
        Whether this process writes the state (rank 0 in data parallel training).
    carry : Carried, optional
        The writer's state besides the loop's, saved and restored with it.
    fields : dict, optional
        What the fingerprint hashes, saved with the state: a state of another run is ignored
        with a warning naming the fields that differ.
    sessions : list of dict
        Filled by :func:`train_epochs`: the processes that trained the run, one per start or
        resumption (``from_step``, ``slurm_job_id``, ``host``, ``started``), for the model's
        provenance.
    """

    folder: Path
    every: int
    fingerprint: str
    writer: bool = True
    carry: Carried | None = None
    fields: dict[str, Any] | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)


# torch's warning of a learning-rate schedule advanced before the optimiser's first update.
_SCHEDULE_FIRST = r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"


def train_epochs(
    modules: list[nn.Module],
    n_samples: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    generator: torch.Generator,
    step: StepFn,
    desc: str,
    on_epoch_end: Callable[[int], dict[str, float]] | None = None,
    *,
    resumable: Resumable | None = None,
    min_batch: int = 1,
    quiet: bool = False,
    lr_scales: dict[int, float] | None = None,
    batches_of: Callable[[int, int], Iterator[torch.Tensor]] | None = None,
    steps_per_epoch: int | None = None,
) -> list[dict[str, float]]:
    """Run the optimisation and return one history row per epoch.

    Parameters
    ----------
    modules : list of nn.Module
        Everything trained (the model, the task weights); set to train mode here. With
        ``resumable`` a single module (the training objective) is expected.
    n_samples, epochs, batch_size, lr, weight_decay
    generator : torch.Generator
        Shuffles the samples each epoch.
    step : callable
        ``step(index) -> (loss, parts)`` for one batch of sample indices; ``parts`` are logged
        (mean over the batches where a part appears, weighted by batch size). A step with a
        ``prefetch(index)`` attribute is told the next batch after the current one's forward;
        one whose ``updates_parameters`` is true is given the optimiser (``step.bind``) and
        does backward, clipping, the update and the projection of the task weights
        (:meth:`UncertaintyWeighting.project_`) itself (:mod:`lcm.train.graphed`).
    desc : str
        Progress bar label.
    on_epoch_end : callable, optional
        ``f(epoch) -> dict`` of extra columns (e.g. a validation loss).
    resumable : Resumable, optional
        Save the state every ``resumable.every`` steps, and continue from a saved state of the
        same run: the result is then bitwise identical to an uninterrupted run on CPU. In data
        parallel training (the module a ``DistributedDataParallel``) every process calls this
        in step, and each one's random generator states and logs are saved and restored.
    min_batch : int
        Drop a last batch with fewer samples (data parallel: the number of processes).
    quiet : bool
        No progress bar (data parallel processes other than rank 0).
    lr_scales : dict, optional
        Per-parameter factors of ``lr`` (:func:`layer_lr_scales`).
    batches_of : callable, optional
        ``batches_of(epoch, skip)`` yields the epoch's batches of sample indices after its
        first ``skip`` (streamed data: :meth:`lcm.train.streamed.StreamedConnectomes.batches`),
        instead of ``generator`` shuffling ``n_samples``; give ``steps_per_epoch`` with it.
    steps_per_epoch : int, optional
        Batches per epoch of ``batches_of`` (the learning-rate schedule's length).

    Returns
    -------
    list of dict
        ``epoch, loss_total, <parts>..., lr`` per epoch.
    """
    if resumable is not None and len(modules) != 1:
        raise ValueError("train_epochs: resumable training takes exactly one module")
    if (batches_of is None) != (steps_per_epoch is None):
        raise ValueError("train_epochs: batches_of and steps_per_epoch go together")
    optimizer = make_optimizer(modules, lr, weight_decay, lr_scales)
    if steps_per_epoch is None:
        steps_per_epoch = len(split_order(torch.arange(n_samples), batch_size, min_batch))
    scheduler = warmup_cosine(optimizer, epochs * steps_per_epoch)
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    # Task weights whose log-variances are projected into their bounds after every update.
    bounded = [w for m in modules for w in m.modules() if isinstance(w, UncertaintyWeighting)]
    pos = LoopPosition()
    prefetch = getattr(step, "prefetch", None)
    total_steps = epochs * steps_per_epoch
    # A state this run resumed from is brought to the final step even with checkpoint_every
    # 0: left at its step, lcm prune-states kept it (GBs) as an unfinished run's.
    had_state = False
    if resumable is not None:
        args = (resumable.fingerprint, modules[0], optimizer, scheduler, generator)
        resumed = load_state(resumable.folder, *args, fields=resumable.fields)
        if resumed is None and resumable.writer:
            # Another run's state (ignored above, with a warning naming what differs): removed
            # now, not left to be mistaken for this run's or kept at its size.
            remove_state(resumable.folder)
        pos = resumed or pos
        had_state = resumed is not None
        if resumed is not None and pos.step >= total_steps:
            log.info(
                "%s: the training state in %s is at the final step %d: nothing left to train, "
                "the outputs are written from it",
                desc,
                resumable.folder,
                pos.step,
            )
        if resumable.carry is not None and pos.carried:
            resumable.carry.restore_carried(pos.carried)
        # Who trained from here: with the earlier sessions of a resumed state, the jobs that
        # made the model (a SLURM time limit splits one training over several).
        device = next(modules[0].parameters()).device.type
        session = _session(pos.step, device)
        if resumed is not None and pos.step < total_steps and pos.sessions:
            _warn_unlike_last_session(desc, pos.sessions[-1], session)
        pos.sessions = [*pos.sessions, session]
        resumable.sessions = pos.sessions
    # A step that updates the parameters itself (GraphedPretrainStep: its update is part of
    # one CUDA graph) takes the optimiser; the loop then only advances the schedule.
    updates = getattr(step, "updates_parameters", False)
    if updates:
        step.bind(optimizer)
    # SIGTERM (SLURM's time limit, scancel) ends the run with a line saying where it stopped
    # and what a rerun resumes from, and exit status 143 as before.
    stop = _SigtermStop(pos, resumable, pos.step if pos.step else None)
    started = last_info = time.perf_counter()
    first_epoch = pos.epoch
    with stop:
        for epoch in progress(range(pos.epoch, epochs + 1), desc, quiet):
            for module in modules:
                module.train()
            if pos.order is None or pos.epoch != epoch:  # a fresh epoch (not a resumed one)
                pos.epoch, pos.batches_done, pos.sums, pos.counts = epoch, 0, {}, {}
                if batches_of is None:
                    pos.order = torch.randperm(n_samples, generator=generator)
                else:  # the stream's order, drawn from the seed and epoch: nothing to keep
                    pos.order = torch.zeros(1, dtype=torch.long)
                pos.lr_epoch = optimizer.param_groups[0]["lr"]
            sums = _DeviceSums(pos)
            listed: list[torch.Tensor] = []
            if batches_of is None:
                listed = split_order(pos.order, batch_size, min_batch)[pos.batches_done :]
            todo = iter(listed) if batches_of is None else batches_of(epoch, pos.batches_done)
            for i, index in enumerate(todo):
                loss, parts = step(index)
                if prefetch is not None and i + 1 < len(listed):  # copy while backward runs
                    prefetch(listed[i + 1])
                if loss.requires_grad and not updates:  # False for a batch with no target at all
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
                    optimizer.step()
                    for weighting in bounded:
                        weighting.project_()
                with warnings.catch_warnings():
                    # A batch with nothing to learn advances the schedule without an update, on
                    # purpose (the schedule counts batches); torch warns of that as of a misuse.
                    warnings.filterwarnings("ignore", message=_SCHEDULE_FIRST)
                    scheduler.step()
                sums.add({"loss_total": loss, **parts}, len(index))
                pos.step += 1
                pos.batches_done += 1
                # Every `every` steps, and at the last step (kept after the outputs are written:
                # a job killed after that, whose outputs its retry deletes, writes them again
                # from it rather than train from step 0).
                if resumable is not None and (
                    (resumable.every and pos.step % resumable.every == 0)
                    or ((resumable.every or had_state) and pos.step == total_steps)
                ):
                    # Every process's generators and logs (a collective: all of them call it at
                    # this step), so that each resumes with its own dropout stream, not rank 0's.
                    sums.flush()
                    processes = gather_processes(modules[0], generator, pos)
                    # A SIGTERM between the state's rename and saved_step said "no state saved".
                    with stop.deferred():
                        if resumable.writer:
                            if resumable.carry is not None:
                                pos.carried = resumable.carry.carried_tensors()
                            save_state(
                                resumable.folder,
                                *args[:-1],
                                generator,
                                pos,
                                processes,
                                fields=resumable.fields,
                                total_steps=total_steps,
                            )
                        stop.saved_step = pos.step  # (written by rank 0 in data parallel runs)
            sums.flush()
            row = {
                "epoch": epoch,
                **{k: pos.sums[k] / pos.counts[k] for k in pos.sums},
                "lr": pos.lr_epoch,
            }
            _check_finite(desc, epoch, row, lr)
            if on_epoch_end is not None:
                row.update(on_epoch_end(epoch))
            pos.history.append(row)
            pos.order = None
            # At INFO the first epoch (its time tells the whole run's) and then one every
            # EPOCH_LOG_SECONDS: a batch log showed nothing for minutes between "pretraining"
            # and "final loss", and the per-epoch lines of short fits would flood it.
            now = time.perf_counter()
            heard = epoch == first_epoch or now - last_info >= EPOCH_LOG_SECONDS
            if heard and not quiet:
                last_info = now
            log.log(
                logging.INFO if heard and not quiet else logging.DEBUG,
                "%s epoch %d of %d: loss_total %.4f, %.0f s elapsed",
                desc,
                epoch,
                epochs,
                row.get("loss_total", float("nan")),
                now - started,
            )
            log.debug("%s epoch %d: %s", desc, epoch, row)
    history = pos.history
    log.info("%s: %d epochs, final loss_total %.4f", desc, epochs, history[-1]["loss_total"])
    return history


def _check_finite(desc: str, epoch: int, row: dict[str, Any], lr: float) -> None:
    """Stop a run whose epoch loss is not finite: it diverged, and its weights are NaN.

    Checked once per epoch, on the sums the history reads (no sync in the step). A diverged
    run was saved with exit 0, and finetuning and embedding took its NaN weights.

    Raises
    ------
    LCMError
        Naming the epoch, the loss and the fix; nothing of the run is written.
    """
    loss = row.get("loss_total", 0.0)
    if math.isfinite(loss):
        return
    raise LCMError(
        f"{desc}: training diverged: loss_total is {loss} in epoch {epoch} (the weights are no "
        "longer finite); no model was written.",
        hint=f"Lower the learning rate (lr {lr:g}), or check the inputs for extreme values: "
        "a rerun with other settings starts afresh, not from the saved training state.",
    )


def _session(step: int, device: str) -> dict[str, Any]:
    """This process's start (or resumption) of a training run, for its provenance."""
    return {
        "from_step": step,
        # Both change the floating-point sums (BLAS/OpenMP split them by thread): a resumed
        # run equals an uninterrupted one to the bit only with the same of each.
        "threads": torch.get_num_threads(),
        "device": device,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _warn_unlike_last_session(desc: str, last: dict[str, Any], now: dict[str, Any]) -> None:
    """Warn where a resumed run computes with other threads or another device than the session
    that saved its state: it goes on (hours of training are not thrown away for rounding), but
    its weights will not equal those of an uninterrupted run to the bit."""
    changes = [
        f"{key} {last[key]!r} -> {now[key]!r}"
        for key in ("threads", "device")
        if key in last and last[key] != now[key]  # (states of earlier versions record neither)
    ]
    if changes:
        log.warning(
            "%s: resumed with %s of the session that saved the state: training goes on, but "
            "the weights will differ in rounding from an uninterrupted run's (pass the same "
            "--threads, or the same --device, to resume to the bit)",
            desc,
            ", ".join(changes),
        )


class _SigtermStop(SigtermExit):
    """Within the block (main thread only), SIGTERM logs where training stopped and what the
    same command resumes from, then exits with status 143 (128 + SIGTERM, as the default
    action: SLURM and Snakemake still see the job fail)."""

    def __init__(
        self, position: LoopPosition, resumable: Resumable | None, saved_step: int | None
    ) -> None:
        super().__init__()
        self.position = position
        self.resumable = resumable
        self.saved_step = saved_step  # the step of the last state saved (or resumed from)

    def say(self) -> None:
        step = self.position.step
        if self.resumable is None or not self.resumable.every:
            saved = "no training state was saved (checkpoint_every is 0): a rerun starts over"
        elif self.saved_step is None:
            saved = (
                f"no training state was saved yet (checkpoint_every {self.resumable.every}): "
                "a rerun starts over"
            )
        else:
            saved = (
                f"the training state saved at step {self.saved_step} (checkpoint_every "
                f"{self.resumable.every}) in {self.resumable.folder} lets the same command resume"
            )
        log.error("stopped by SIGTERM at step %d; %s", step, saved)


class _DeviceSums:
    """Batch-size-weighted sums of the logged losses, kept where the losses are.

    Adding a loss is an asynchronous device operation (no ``.item()`` per step); :meth:`flush`
    reads the sums into ``position.sums`` (floats). The sum is a float64 accumulation in the
    same order as a Python float sum, so the logged values are bit-identical to summing
    ``float(loss) * batch`` step by step.
    """

    def __init__(self, position: LoopPosition) -> None:
        self.position = position
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, values: dict[str, torch.Tensor], n: int) -> None:
        """Add one step's logged losses, each weighted by the step's samples.

        Parameters
        ----------
        values : dict of str to torch.Tensor
            Scalar losses by logged name; a name first seen starts from its sum in
            ``position.sums`` (a resumed epoch's).
        n : int
            Samples of the step; added to ``position.counts`` of each name.
        """
        for name, value in values.items():
            value = value.detach()
            if name not in self.sums:
                start = self.position.sums.get(name, 0.0)
                # Filled on the device: torch.tensor(start, device=...) would be a host copy.
                self.sums[name] = torch.full((), start, dtype=torch.float64, device=value.device)
            self.sums[name] += value.to(torch.float64) * n
            self.position.counts[name] = self.position.counts.get(name, 0) + n

    def flush(self) -> None:
        for name, total in self.sums.items():
            self.position.sums[name] = float(total)


def history_frame(history: list[dict[str, float]], parts: list[str] | None = None) -> pd.DataFrame:
    """History rows as a table: ``epoch, loss_total, <parts>..., lr`` (``parts`` fixes the order
    and keeps columns of variables never seen, as n/a).

    Parameters
    ----------
    history : list of dict of str to float
        One row per epoch (:func:`train_epochs`).
    parts : list of str, optional
        The loss columns between ``loss_total`` and ``lr``; None: every other key, in order of
        appearance.

    Returns
    -------
    pandas.DataFrame
    """
    frame = pd.DataFrame(history)
    if parts is None:
        parts = [c for c in frame if c not in ("epoch", "loss_total", "lr")]
    return frame.reindex(columns=["epoch", "loss_total", *parts, "lr"])
