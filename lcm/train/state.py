"""Training state for exact resumption: written every N optimiser steps, read on restart.

Two files in the state folder: ``train_state.step-<N>.safetensors`` (weights, AdamW moments,
random generator states of every data parallel process, the current epoch's sample order, what
the caller carries across epochs) and ``train_state.json`` (step counters, scheduler, optimiser
hyper-parameters, partial epoch sums, history, the step training ends at, the name and sha256 of
the tensors file, and the sha256 of its own canonical content). As with checkpoints
nothing is unpickled. The JSON is written last and marks a complete state: a run killed after
writing a step's tensors but before its JSON resumes from the previous step, whose tensors are
removed only once the new JSON names the new file. A ``fingerprint`` (settings, seed, data)
must match, or the state is ignored; an edited JSON or tensors file is refused.

A state at its final step (:func:`progress`) is the state of a finished training: it is kept
after the model is written, for a retry of a job killed then, and ``lcm prune-states`` removes
it once its run's model is there (``model.json`` records the fingerprint: :func:`run_of`).

Data parallel processes draw different random numbers (dropout from a stream of each one's
own, :func:`lcm.train.distributed.seed_process`, on shards of different sizes) and log the
losses of different shares of each batch, so each one's generators and logs are saved
(:func:`gather_processes`, on every process at the same step) and each resumes with its own; a
state of another number of processes is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lcm.exceptions import CheckpointError, OutputOwnershipError
from lcm.io.atomic import write_json
from lcm.io.ownership import remove_owned
from lcm.io.provenance import sha256_file
from lcm.model.weights import check_shapes, read_header, save_tensors

log = logging.getLogger(__name__)

TENSORS_NAME = "train_state.safetensors"
# The tensors of one saved step (train_state.step-<N>.safetensors), or of a state written
# before steps named them (TENSORS_NAME).
_TENSORS_RE = re.compile(r"train_state(\.step-\d+)?\.safetensors")
META_NAME = "train_state.json"
# 2: the JSON carries the digest of its own content (states of version 1 are ignored).
FORMAT_VERSION = 2
DIGEST_KEY = "content_sha256"


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
    carried : dict of torch.Tensor
        What the caller keeps across epochs besides the loop (e.g. the weights of the best
        epoch so far, :class:`lcm.train.loop.Carried`), saved as ``carry.<key>`` tensors.
    sessions : list of dict
        The processes that trained so far, one per start or resumption: ``from_step``,
        ``slurm_job_id``, ``host``, ``started`` (a run resumed after a kill lists each job).
    """

    step: int = 0
    epoch: int = 1
    batches_done: int = 0
    order: torch.Tensor | None = None
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    lr_epoch: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    carried: dict[str, torch.Tensor] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)


# Tensors the caller carries across epochs (LoopPosition.carried).
CARRY_PREFIX = "carry."


def _unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)  # DistributedDataParallel keeps the model in .module


def _ranks(module: nn.Module) -> tuple[int, int]:
    """``(rank, world)`` of the processes training ``module`` together (``(0, 1)``: alone)."""
    if isinstance(module, DistributedDataParallel):
        return dist.get_rank(module.process_group), dist.get_world_size(module.process_group)
    return 0, 1


def _rng_key(rank: int, name: str) -> str:
    # Rank 0's (and a single process's) keys are those of states written before ranks had
    # their own: such a state still resumes.
    return f"rng.{name}" if rank == 0 else f"rng.rank-{rank}.{name}"


@dataclass
class ProcessState:
    """What one data parallel process keeps of its own: random generators and its logs.

    Attributes
    ----------
    rng : dict of torch.Tensor
        ``generator`` (shuffling and masks), ``torch`` (CPU: dropout) and, where there is CUDA,
        ``cuda`` (the current device's) generator states.
    sums, counts, history
        As :class:`LoopPosition`'s: each process logs its share of every batch.
    """

    rng: dict[str, torch.Tensor]
    sums: dict[str, float]
    counts: dict[str, int]
    history: list[dict[str, float]]


def gather_processes(
    module: nn.Module, generator: torch.Generator, position: LoopPosition
) -> list[ProcessState]:
    """The :class:`ProcessState` of every process training ``module``, in rank order.

    In data parallel training (``module`` a ``DistributedDataParallel``) a collective: every
    process calls it at the same step (its ``position`` sums read already), and each gets
    every state.

    Parameters
    ----------
    module : nn.Module
        The trained module.
    generator : torch.Generator
    position : LoopPosition
        This process's.

    Returns
    -------
    list of ProcessState
        One per process (one alone).
    """
    rng = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    own = ProcessState(rng, dict(position.sums), dict(position.counts), list(position.history))
    _, world = _ranks(module)
    if world == 1:
        return [own]
    states: list[ProcessState | None] = [None] * world
    dist.all_gather_object(states, own, group=module.process_group)
    return [s for s in states if s is not None]


def save_state(
    folder: Path,
    fingerprint: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    position: LoopPosition,
    processes: list[ProcessState] | None = None,
    *,
    fields: dict[str, Any] | None = None,
    total_steps: int | None = None,
) -> None:
    """Write the training state atomically (tensors first, then the JSON that completes it).

    ``processes``: every process's generators and logs (:func:`gather_processes`, called by
    all of them); required in data parallel training, where only one process writes. By
    default this process's own. ``position`` is the writer's (rank 0's). ``fields``: what
    ``fingerprint`` hashes, stored so that another run's :func:`load_state` names what differs.

    Parameters
    ----------
    folder : pathlib.Path
        The state folder.
    fingerprint : str
        Identity of the run (:class:`~lcm.train.loop.Resumable`).
    module : nn.Module
        The training objective (or its ``DistributedDataParallel`` wrapper).
    optimizer : torch.optim.Optimizer
        Its state is saved.
    scheduler : torch.optim.lr_scheduler.LRScheduler
        Its state is saved.
    generator : torch.Generator
        This process's shuffling and masking generator.
    position : LoopPosition
        Where the loop stands, with its carried tensors.
    processes : list of ProcessState, optional
        Every process's generators and logs, in rank order.
    fields : dict, optional
        What ``fingerprint`` hashes.
    total_steps : int, optional
        The step training ends at: a state at it is of a finished training (:func:`progress`).
        None: not known (such a state is never taken as finished).
    """
    if processes is None:
        if _ranks(module)[1] > 1:
            raise ValueError(
                "save_state: in data parallel training pass processes, the states that every "
                "process gathered with gather_processes"
            )
        processes = gather_processes(module, generator, position)
    tensors: dict[str, torch.Tensor] = {
        f"module.{k}": v.detach().cpu().contiguous()
        for k, v in _unwrap(module).state_dict().items()
    }
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().clone()
    for rank, process in enumerate(processes):
        for name, value in process.rng.items():
            tensors[_rng_key(rank, name)] = value
    if position.order is not None:
        tensors["loop.order"] = position.order.clone()
    for key, value in position.carried.items():
        tensors[f"{CARRY_PREFIX}{key}"] = value.detach().cpu().contiguous()
    # A file of this step's own: the JSON written last names it, so a run killed between the
    # two still has the previous pair to resume from (the tensors used to replace the file the
    # previous JSON described, and every rerun failed on the sha256).
    tensors_file = f"train_state.step-{position.step}.safetensors"
    save_tensors(tensors, folder / tensors_file)
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "fingerprint_fields": fields,
        "step": position.step,
        "total_steps": total_steps,
        "epoch": position.epoch,
        "batches_done": position.batches_done,
        "sums": position.sums,
        "counts": position.counts,
        "lr_epoch": position.lr_epoch,
        "history": position.history,
        "sessions": position.sessions,
        "param_groups": opt["param_groups"],
        "optim_slots": {str(i): sorted(s) for i, s in opt["state"].items()},
        "scheduler": scheduler_state,
        "tensors_file": tensors_file,
        "tensors_sha256": sha256_file(folder / tensors_file),
        "processes": len(processes),
        # The logs of the other processes (rank 0's are sums, counts and history above).
        "other_processes": [
            {"sums": p.sums, "counts": p.counts, "history": p.history} for p in processes[1:]
        ],
    }
    meta = _plain(meta)
    meta[DIGEST_KEY] = content_digest(meta)
    write_json(folder / META_NAME, meta)
    for name in os.listdir(folder):  # the previous steps' tensors, now superseded
        if name != tensors_file and _TENSORS_RE.fullmatch(name):
            (folder / name).unlink(missing_ok=True)
    log.info("training state saved at step %d (epoch %d)", position.step, position.epoch)


def _what_differs(meta: dict[str, Any], fields: dict[str, Any] | None) -> str:
    """The fields of this run that differ from those a saved state recorded, in words."""
    if meta.get("format_version") != FORMAT_VERSION:
        return f"written in state format {meta.get('format_version')!r}, not {FORMAT_VERSION}"
    saved = meta.get("fingerprint_fields")
    if fields is None or not isinstance(saved, dict):
        return "settings, seed, data or LCM version differ"
    now = _plain(fields)
    changes = []
    for key in sorted(set(saved) | set(now)):
        was, is_ = saved.get(key), now.get(key)
        if isinstance(was, dict) and isinstance(is_, dict):  # settings, model: by their keys
            changes += [
                f"{key}.{k} {was.get(k)!r} -> {is_.get(k)!r}"
                for k in sorted(set(was) | set(is_))
                if was.get(k) != is_.get(k)
            ]
        elif was != is_:
            changes.append("the training data" if key == "data" else f"{key} {was!r} -> {is_!r}")
    return "differs in " + ", ".join(changes) if changes else "the LCM version differs"


def load_state(
    folder: Path,
    fingerprint: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    *,
    fields: dict[str, Any] | None = None,
) -> LoopPosition | None:
    """Restore a saved state into the given objects; ``None`` when there is none to resume.

    A state of another run (different fingerprint) is ignored with a warning, so a changed
    configuration starts afresh instead of silently continuing an unrelated run (the warning
    names the ``fields`` that differ from those the state recorded); so is one
    written by another number of data parallel processes (a state of an older version that
    kept rank 0's generators and logs only, too). Each process restores its own generator
    states and logs.

    Parameters
    ----------
    folder : pathlib.Path
        The state folder.
    fingerprint : str
        Identity of the run; a state recorded with another is ignored.
    module : nn.Module
        The training objective (or its ``DistributedDataParallel`` wrapper), loaded in place.
    optimizer : torch.optim.Optimizer
        Loaded in place.
    scheduler : torch.optim.lr_scheduler.LRScheduler
        Loaded in place.
    generator : torch.Generator
        This process's shuffling and masking generator, restored in place.
    fields : dict, optional
        What ``fingerprint`` hashes, to name the differences in the warning.

    Returns
    -------
    LoopPosition or None

    Raises
    ------
    CheckpointError
        The state files are inconsistent (tensors replaced or truncated after saving).
    OutputOwnershipError
        The folder is a link (:func:`refuse_linked`).
    """
    refuse_linked(folder)
    meta_path = folder / META_NAME
    if not meta_path.is_file():
        return None
    fix = f"delete {folder} to restart training from step 0"
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{meta_path}: not valid JSON ({exc}).", hint=f"The state is corrupted; {fix}."
        ) from exc
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{meta_path}: expected a JSON object, got {type(meta).__name__}.",
            hint=f"The state is corrupted; {fix}.",
        )
    if meta.get("format_version") != FORMAT_VERSION or meta.get("fingerprint") != fingerprint:
        log.warning(
            "ignoring training state in %s: it belongs to another run (%s); training starts "
            "from step 0",
            folder,
            _what_differs(meta, fields),
        )
        return None
    # States written before step-named tensors used one file name.
    tensors_path = folder / str(meta.get("tensors_file", TENSORS_NAME))
    if not _TENSORS_RE.fullmatch(tensors_path.name) or not tensors_path.is_file():
        if meta.get(DIGEST_KEY) == content_digest(meta):
            raise CheckpointError(
                f"{meta_path} names {tensors_path.name}, which is missing.",
                hint=f"The state is incomplete; {fix}.",
            )
    if meta.get(DIGEST_KEY) != content_digest(meta):
        # Resuming an edited state (a step moved from 150 to 720) would silently skip training.
        raise CheckpointError(
            f"{meta_path}: content differs from its recorded {DIGEST_KEY} (edited after saving; "
            f"step {meta.get('step')!r}).",
            hint=f"The state cannot be trusted; {fix}.",
        )
    # The header and size first (cheap, and naming the tensor cut off), then the sha256.
    cut = _tensors_problem(tensors_path)
    if cut is not None:
        raise CheckpointError(
            f"{meta_path} (step {meta.get('step')!r}) names tensors that cannot be read: {cut}",
            hint=f"The state is unusable; {fix}.",
        )
    if sha256_file(tensors_path) != meta.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensors_path}: sha256 differs from the one recorded in {META_NAME}.",
            hint=f"The state is corrupted; {fix}.",
        )
    rank, world = _ranks(module)
    if meta.get("processes", 1) != world:
        log.warning(
            "ignoring training state in %s: it holds the random generators and logs of %s "
            "process(es), this run has %d; training starts from step 0",
            folder,
            meta.get("processes", 1),
            world,
        )
        return None
    # Header first: a non-safetensors file is refused and shapes checked before any allocation.
    header = read_header(tensors_path)
    expected = {f"module.{k}": tuple(v.shape) for k, v in _unwrap(module).state_dict().items()}
    module_header = {k: v for k, v in header.items() if k.startswith("module.")}
    check_shapes(tensors_path, module_header, expected, "the model being trained")
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
    generator.set_state(tensors[_rng_key(rank, "generator")])
    torch.set_rng_state(tensors[_rng_key(rank, "torch")])
    if _rng_key(rank, "cuda") in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors[_rng_key(rank, "cuda")])
    logs = meta if rank == 0 else meta["other_processes"][rank - 1]
    log.info("resuming from step %d (epoch %d) of %s", meta["step"], meta["epoch"], folder)
    return LoopPosition(
        step=meta["step"],
        epoch=meta["epoch"],
        batches_done=meta["batches_done"],
        order=tensors.get("loop.order"),
        sums=logs["sums"],
        counts=logs["counts"],
        lr_epoch=meta["lr_epoch"],
        history=logs["history"],
        sessions=meta.get("sessions", []),  # (absent from states of earlier versions)
        carried={
            k[len(CARRY_PREFIX) :]: v for k, v in tensors.items() if k.startswith(CARRY_PREFIX)
        },
    )


def progress(folder: Path) -> tuple[bool, str]:
    """Whether the state in ``folder`` is at its run's final step, read from its JSON alone.

    The rule :func:`lcm.train.loop.train_epochs` resumes by: a state at the step training ends
    at has nothing left to train. Only a state whose JSON is intact (its content digest holds)
    and records that step counts (states of LCM versions that did not record it never do);
    the tensors are not read.

    Parameters
    ----------
    folder : pathlib.Path
        A state folder (``train_state/`` of a pretraining's output folder).

    Returns
    -------
    bool
        Whether the run trained to its final step.
    str
        Where it stands, in words: ``"step 40 of 40"``, or why it is not known.
    """
    meta, problem = _intact_meta(folder)
    if meta is None:
        return False, problem
    step, total = meta.get("step"), meta.get("total_steps")
    if not isinstance(step, int) or not isinstance(total, int):
        return False, f"step {step!r}, its final step not recorded (an earlier LCM wrote it)"
    tensors = folder / str(meta.get("tensors_file", TENSORS_NAME))
    if not tensors.is_file():
        return False, f"step {step} of {total}, but {tensors.name} is missing"
    return step >= total, f"step {step} of {total}"


def unusable(folder: Path) -> str | None:
    """Why :func:`load_state` cannot resume from the state in ``folder``, though its JSON is
    intact: the tensors file it names missing, or not a whole safetensors file.

    Read from the file's header and size alone (no tensor is read): a file cut short (a full
    disk, a copy interrupted) declares tensors past its end. A file of the right size with
    other bytes is found by its sha256, only when resuming.

    Parameters
    ----------
    folder : pathlib.Path
        A state folder.

    Returns
    -------
    str or None
        The file and what is wrong with it; None when its tensors look whole, or when its
        JSON is missing, unreadable or edited (:func:`progress` says which).
    """
    meta, _ = _intact_meta(folder)
    if meta is None:
        return None
    return _tensors_problem(folder / str(meta.get("tensors_file", TENSORS_NAME)))


def _tensors_problem(path: Path) -> str | None:
    """What makes the tensors file ``path`` unreadable (its header or size), or None."""
    if not _TENSORS_RE.fullmatch(path.name):
        return f"{path.name!r} is not the name of a state's tensors file"
    if not path.is_file():
        return f"{path} is missing"
    try:
        read_header(path)
    except CheckpointError as exc:
        return exc.message
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    return None


def run_of(folder: Path) -> str | None:
    """The fingerprint of the run whose state is in ``folder`` (the one it resumes by).

    A model written by that run records the same (:func:`lcm.model.checkpoint.run_of`):
    ``lcm prune-states`` removes a finished state only beside its own run's model.

    Parameters
    ----------
    folder : pathlib.Path
        A state folder.

    Returns
    -------
    str or None
        None when its JSON is missing, unreadable or edited (its content digest differs).
    """
    meta, _ = _intact_meta(folder)
    value = meta.get("fingerprint") if meta is not None else None
    return value if isinstance(value, str) else None


def _intact_meta(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """The state's JSON when intact (its content digest holds), else None and why not."""
    meta_path = folder / META_NAME
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return None, f"no {META_NAME} (no step saved yet)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, f"its {META_NAME} cannot be read"
    if not isinstance(meta, dict) or meta.get(DIGEST_KEY) != content_digest(meta):
        return None, f"its {META_NAME} differs from its recorded {DIGEST_KEY}"
    return meta, ""


def own_entries(folder: Path) -> tuple[list[str], list[str]]:
    """The entries of a state folder LCM wrote there, and the others.

    Parameters
    ----------
    folder : pathlib.Path
        A state folder.

    Returns
    -------
    list of str
        The state's files and their temporaries (:func:`remove_state` deletes these), regular
        files, not links.
    list of str
        Anything else (a user's file put there): such a folder is never deleted whole.
    """
    names = sorted(os.listdir(folder))
    # (a link is not LCM's: it writes none)
    ours = [
        n for n in names if _is_ours(n) and (folder / n).is_file() and not (folder / n).is_symlink()
    ]
    return ours, [n for n in names if n not in ours]


def content_digest(meta: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``meta`` without its digest key.

    Parameters
    ----------
    meta : dict
        The state's JSON content (plain JSON types).

    Returns
    -------
    str
        Hex digest; the same before writing and after reading back.
    """
    body = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    # What the JSON file will read back as (tuples become lists, numpy scalars numbers), so
    # the digest computed now equals the one computed on the file's content.
    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "item"):
            return obj.item()
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")

    return json.loads(json.dumps(meta, default=default))


def _is_ours(name: str) -> bool:
    # The state files, and atomic-write temporaries of them left by a killed run.
    if name == META_NAME or _TENSORS_RE.fullmatch(name):
        return True
    # (".<name>.<random>.tmp..." or ".<name>.lcmtmp-...", whichever lcm.io.atomic names them).
    if name.startswith(".") and _TENSORS_RE.match(name[1:]):
        rest = name[1 + _TENSORS_RE.match(name[1:]).end() :]
        return rest.startswith(".") and "tmp" in rest
    return name.startswith(f".{META_NAME}.") and "tmp" in name[len(META_NAME) + 2 :]


def refuse_linked(folder: Path) -> None:
    """Refuse a state folder that is a link, before anything is read, written or deleted.

    LCM makes the folder itself; a link (to free space on a small disk) led a rerun of other
    settings to delete the state files in the link's target, a user's own ``train_state.json``
    there too, then fail on the link.

    Parameters
    ----------
    folder : pathlib.Path
        The state folder.

    Raises
    ------
    OutputOwnershipError
        When ``folder`` is a symbolic link.
    """
    if folder.is_symlink():
        raise OutputOwnershipError(
            f"{folder} is a link, not the training-state folder LCM makes; nothing was read, "
            "written or deleted.",
            hint=f"Remove the link {folder} (LCM never writes or deletes through one). To keep "
            "the training state on another disk, give the verb an --out-dir there.",
        )


def remove_state(folder: Path) -> None:
    """Delete the state files once the final checkpoint is written; keep anything else.

    Only LCM's state files (and their temporaries) are deleted, then the folder if it is empty;
    other files in it are left in place with a warning (never a recursive delete).

    Parameters
    ----------
    folder : pathlib.Path
        The state folder.
    """
    refuse_linked(folder)
    if not folder.is_dir():
        return
    # remove_owned warns about, and keeps, anything else (a user's file put there).
    remove_owned(folder, [n for n in os.listdir(folder) if _is_ours(n)])
