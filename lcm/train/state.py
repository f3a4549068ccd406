"""Training state for exact resumption: written every N optimiser steps, read on restart.

Two files in the state folder: ``train_state.safetensors`` (weights, AdamW moments, random
generator states, the current epoch's sample order) and ``train_state.json`` (step counters,
scheduler, optimiser hyper-parameters, partial epoch sums, history, and the sha256 of the
tensors file). As with checkpoints nothing is unpickled. The JSON is written last and marks a
complete state; a ``fingerprint`` (settings, seed, data) must match, or the state is ignored.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lcm.exceptions import CheckpointError
from lcm.io.atomic import atomic_path, write_json
from lcm.io.provenance import sha256_file

log = logging.getLogger(__name__)

TENSORS_NAME = "train_state.safetensors"
META_NAME = "train_state.json"
FORMAT_VERSION = 1


@dataclass
class LoopPosition:
    """Where the loop stands: enough, with the tensors, to continue bit for bit.

    Attributes
    ----------
    step : int
        Optimiser steps done (over all epochs).
    epoch : int
        Current epoch (1-based).
    batches_done : int
        Batches of the current epoch already trained on.
    order : torch.Tensor or None
        The current epoch's sample order.
    sums, counts : dict
        Running sums of the logged loss parts in the current epoch.
    lr_epoch : float
        Learning rate at the start of the current epoch (logged in the history).
    history : list of dict
        Rows of the finished epochs.
    """

    step: int = 0
    epoch: int = 1
    batches_done: int = 0
    order: torch.Tensor | None = None
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    lr_epoch: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel keeps the model in .module


def save_state(
    folder: Path,
    fingerprint: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    position: LoopPosition,
) -> None:
    """Write the training state atomically (tensors first, then the JSON that completes it)."""
    tensors: dict[str, torch.Tensor] = {
        f"module.{k}": v.detach().cpu().contiguous()
        for k, v in _unwrap(module).state_dict().items()
    }
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if position.order is not None:
        tensors["loop.order"] = position.order.clone()
    with atomic_path(folder / TENSORS_NAME) as tmp:
        save_file(tensors, str(tmp))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "step": position.step,
        "epoch": position.epoch,
        "batches_done": position.batches_done,
        "sums": position.sums,
        "counts": position.counts,
        "lr_epoch": position.lr_epoch,
        "history": position.history,
        "param_groups": opt["param_groups"],
        "optim_slots": {str(i): sorted(s) for i, s in opt["state"].items()},
        "scheduler": scheduler_state,
        "tensors_sha256": sha256_file(folder / TENSORS_NAME),
    }
    write_json(folder / META_NAME, meta)
    log.info("training state saved at step %d (epoch %d)", position.step, position.epoch)


def load_state(
    folder: Path,
    fingerprint: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> LoopPosition | None:
    """Restore a saved state into the given objects; ``None`` when there is none to resume.

    A state of another run (different fingerprint) is ignored with a warning, so a changed
    configuration starts afresh instead of silently continuing an unrelated run.

    Raises
    ------
    CheckpointError
        The state files are inconsistent (tensors replaced or truncated after saving).
    """
    meta_path, tensors_path = folder / META_NAME, folder / TENSORS_NAME
    if not meta_path.is_file() or not tensors_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION or meta.get("fingerprint") != fingerprint:
        log.warning(
            "ignoring training state in %s: it belongs to another run (settings, seed or data "
            "differ); training starts from step 0",
            folder,
        )
        return None
    if sha256_file(tensors_path) != meta.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensors_path}: sha256 differs from the one recorded in {META_NAME}.",
            hint=f"The state is corrupted; delete {folder} to restart training from step 0.",
        )
    tensors = load_file(str(tensors_path))
    prefix = "module."
    _unwrap(module).load_state_dict(
        {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True
    )
    state = {
        int(i): {key: tensors[f"optim.{i}.{key}"] for key in keys}
        for i, keys in meta["optim_slots"].items()
    }
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    lambdas = [None] * len(meta["param_groups"])
    scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": lambdas})
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    log.info("resuming from step %d (epoch %d) of %s", meta["step"], meta["epoch"], folder)
    return LoopPosition(
        step=meta["step"],
        epoch=meta["epoch"],
        batches_done=meta["batches_done"],
        order=tensors.get("loop.order"),
        sums=meta["sums"],
        counts=meta["counts"],
        lr_epoch=meta["lr_epoch"],
        history=meta["history"],
    )


def remove_state(folder: Path) -> None:
    """Delete the state folder once the final checkpoint is written."""
    if folder.is_dir():
        shutil.rmtree(folder)
