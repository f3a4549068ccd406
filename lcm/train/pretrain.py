"""Pretraining: BEI multitask learning plus masked-ROI reconstruction on the pretraining cohort.

Outputs in ``out_dir``: ``model.safetensors`` + ``model.json`` (the checkpoint), ``history.tsv``
(one row per epoch) and ``bei_eval.tsv`` (held-out metrics beside baselines), kept only together,
with their provenance records when given a ``record``
(:func:`lcm.io.output_set.written_together`: after a failed write, the last run's). In the history,
``loss_total`` is the training objective (uncertainty-weighted BEI losses plus the weighted
self-supervised loss, on masked batches in train mode) and ``loss_<variable>``, ``loss_ssl`` its
parts; ``train_eval_loss`` and ``val_loss`` are one other quantity, the unweighted mean of the
last layer's per-variable BEI losses in eval mode, on a fixed sample of training runs and on the
held-out runs: these two are the curves to compare, not ``val_loss`` and ``loss_total``. Like
``bei_eval.tsv`` they leave out the ``n/a`` class (rows whose dataset does not record a
variable, and its query: cross-entropy over the variable's own levels), which the training
objective keeps. With ``select_epoch: heldout`` the epoch of the lowest ``val_loss`` is chosen
on half the held-out subjects and ``bei_eval.tsv`` reports the other half only
(:func:`lcm.train.heldout.selection_split`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from lcm.catalogue import Catalogue
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.atomic import write_tsv
from lcm.io.output_set import written_together
from lcm.io.provenance import provenance_path
from lcm.model.checkpoint import save_checkpoint
from lcm.model.checkpoint_meta import META_NAME, WEIGHTS_NAME
from lcm.model.config import config_from_settings
from lcm.model.lcm import LCM
from lcm.model.losses import variable_losses
from lcm.model.targets import (
    QueryLayout,
    Targets,
    encode_bei_targets,
    fit_standardisation,
    layout_from_catalogue,
)
from lcm.model.training_data import training_data
from lcm.store.cohort import Cohort, StreamedCohort
from lcm.train import distributed
from lcm.train.graphed import GraphedPretrainStep
from lcm.train.heldout import COLUMNS as BEI_COLUMNS
from lcm.train.heldout import (
    HOLDOUT_FRACTION,
    bei_metrics,
    holdout_split,
    own_levels,
    selection_split,
)
from lcm.train.loop import (
    DeviceConnectomes,
    Resumable,
    autocast,
    compile_model,
    history_frame,
    pick_device,
    scope_options,
    seed_everything,
    train_epochs,
)
from lcm.train.objective import PretrainObjective, PretrainStep
from lcm.train.outputs import BEI_EVAL_NAME, HISTORY_NAME, PRETRAIN_FILES, STATE_DIR
from lcm.train.settings import BOOKKEEPING_SETTINGS, resolve_settings
from lcm.train.streamed import (
    Scan,
    StreamedConnectomes,
    check_same_runs,
    cohort_stream,
    scan_cohort,
    shuffle_runs,
)

log = logging.getLogger(__name__)

# Writes the provenance records of the model's files (given them and the data parallel
# processes), returning the records' paths: ``lcm pretrain``'s, called inside their set.
Recorder = Callable[[list[Path], dict[str, Any]], list[Path]]

EVAL_BATCH = 256
# Training runs of history's train_eval_loss (at least; as many as the hold-out when it is
# larger), drawn from a random stream of their own.
MONITOR_RUNS = 256
MONITOR_STREAM = 2


def run_fields(
    data: str, model_settings: dict[str, Any], settings: dict[str, Any], seed: int, world: int
) -> dict[str, Any]:
    """What identifies a training run (stored with its state, to name what differs).

    Parameters
    ----------
    data : str
        Data fingerprint of the pretraining cohort.
    model_settings : dict
        The config's ``model`` section.
    settings : dict
        The ``pretrain`` settings; :data:`BOOKKEEPING_SETTINGS` are left out.
    seed : int
        The run's seed.
    world : int
        Number of data parallel processes.

    Returns
    -------
    dict
        ``data``, ``model``, ``settings``, ``seed`` and ``world``.
    """
    kept = {k: v for k, v in settings.items() if k not in BOOKKEEPING_SETTINGS}
    return {"data": data, "model": model_settings, "settings": kept, "seed": seed, "world": world}


def run_fingerprint(
    data: str, model_settings: dict[str, Any], settings: dict[str, Any], seed: int, world: int
) -> str:
    """Identity of a training run: a saved state is resumed only by the same run.

    The hash of :func:`run_fields` (bookkeeping settings such as ``checkpoint_every`` left out).

    Parameters
    ----------
    data, model_settings, settings, seed, world
        As :func:`run_fields`.

    Returns
    -------
    str
        Hex sha256.
    """
    record = run_fields(data, model_settings, settings, seed, world)
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


class BestEpoch:
    """The epoch with the lowest held-out loss so far, its weights and task weights.

    Carried with the training state (:class:`lcm.train.loop.Carried`): a run resumed after a
    kill chooses among every epoch, as the uninterrupted run does, not only those after it.
    The task weighting's state is kept with the weights, so that the ``task_weights`` that
    ``model.json`` records are those of the chosen epoch, not of the last one.

    Parameters
    ----------
    weighting : torch.nn.Module, optional
        The task weighting (:class:`lcm.model.losses.UncertaintyWeighting`) trained beside
        the model.
    """

    def __init__(self, weighting: torch.nn.Module | None = None) -> None:
        self.weighting = weighting
        self.loss = float("inf")
        self.epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.weighting_state: dict[str, torch.Tensor] | None = None

    def offer(self, loss: float, epoch: int, model: torch.nn.Module) -> None:
        """Keep ``model``'s weights and the task weighting's state (copies on the CPU) if
        ``loss`` is the lowest so far.

        Parameters
        ----------
        loss : float
            The epoch's selection loss; NaN or infinite is never kept.
        epoch : int
            The epoch that gave it.
        model : torch.nn.Module
            The model just trained for that epoch.
        """
        if np.isfinite(loss) and loss < self.loss:
            self.loss, self.epoch, self.state = loss, epoch, _cpu_copy(model)
            if self.weighting is not None:
                self.weighting_state = _cpu_copy(self.weighting)

    def restore(self, model: torch.nn.Module) -> bool:
        """Load the kept weights into ``model``, and the kept task weighting's state into the
        weighting; False (nothing loaded) when no epoch was kept.

        Parameters
        ----------
        model : torch.nn.Module
            Loaded in place.

        Returns
        -------
        bool
        """
        if self.state is None:
            return False
        model.load_state_dict(self.state)
        if self.weighting is not None:
            if self.weighting_state is not None:
                self.weighting.load_state_dict(self.weighting_state)
            else:  # a state saved by an earlier version: the weights alone were kept
                log.warning(
                    "pretraining: the resumed state kept no task weights of epoch %s; "
                    "model.json records the last epoch's",
                    self.epoch,
                )
        return True

    def carried_tensors(self) -> dict[str, torch.Tensor]:
        """The selection as tensors (none before the first epoch ends)."""
        if self.state is None or self.epoch is None:
            return {}
        return {
            "best.loss": torch.tensor(self.loss, dtype=torch.float64),
            "best.epoch": torch.tensor(self.epoch, dtype=torch.int64),
            **{f"best.weights.{k}": v for k, v in self.state.items()},
            **{f"best.task_weights.{k}": v for k, v in (self.weighting_state or {}).items()},
        }

    def restore_carried(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back a selection saved by :meth:`carried_tensors`.

        Parameters
        ----------
        tensors : dict of str to torch.Tensor
            The carried tensors of a saved state; nothing is taken without ``best.loss``.
        """
        if "best.loss" not in tensors:
            return
        self.loss = float(tensors["best.loss"])
        self.epoch = int(tensors["best.epoch"])
        self.state = _prefixed(tensors, "best.weights.")
        self.weighting_state = _prefixed(tensors, "best.task_weights.") or None


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, named without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def check_connectomes(fc: np.ndarray, what: str) -> None:
    """Raise :class:`InputDataError` unless ``fc`` is a finite ``[n, R, R]`` array with n >= 1.

    Parameters
    ----------
    fc : numpy.ndarray
        The connectomes.
    what : str
        What they are, opening the error message.
    """
    if not isinstance(fc, np.ndarray) or fc.ndim != 3 or fc.shape[1] != fc.shape[2]:
        shape = getattr(fc, "shape", type(fc).__name__)
        raise InputDataError(
            f"{what}: expected connectomes of shape (n, R, R), got {shape}.",
            hint="Pass square FC matrices stacked along the first axis.",
        )
    if fc.shape[0] == 0:
        raise InputDataError(f"{what}: no connectomes.", hint="Check the datasets selected.")
    if not np.isfinite(fc).all():
        bad = int((~np.isfinite(fc)).reshape(len(fc), -1).any(1).sum())
        raise InputDataError(
            f"{what}: {bad} connectome(s) contain NaN or infinite values.",
            hint="Exclude runs with constant ROI signals (zero variance) in the connectome stage.",
        )


def predict_outputs(model: LCM, fc: np.ndarray, device: torch.device) -> torch.Tensor:
    """Last-layer outputs ``[n, Q]`` (CPU, float32) in eval mode, without gradients.

    Parameters
    ----------
    model : LCM
        Put in eval mode.
    fc : numpy.ndarray, shape (n, R, R)
        Correlation matrices, read in batches of :data:`EVAL_BATCH`.
    device : torch.device
        Where the model's parameters are; autocast there as in training.
    """
    model.eval()
    parts = []
    with torch.no_grad(), autocast(device):
        for start in range(0, len(fc), EVAL_BATCH):
            x = torch.as_tensor(fc[start : start + EVAL_BATCH], dtype=torch.float32, device=device)
            parts.append(model.predict(x).float().cpu())
    return torch.cat(parts)


def _mean_loss(
    model: LCM, fc: np.ndarray, targets: Targets, layout: QueryLayout, device: torch.device
) -> float:
    """Unweighted mean of the last layer's per-variable losses over a set (monitoring only).

    History's ``val_loss`` and ``train_eval_loss``, and the loss ``select_epoch: heldout``
    minimises. Scored as :func:`lcm.train.heldout.bei_metrics` scores: a categorical or
    diagnostic variable only on the rows whose dataset records it, its cross-entropy over its
    own levels (:func:`lcm.train.heldout.own_levels`), so that an epoch is not chosen for
    answering ``n/a`` well (telling the datasets apart). Training still learns ``n/a``.
    """
    outputs = predict_outputs(model, fc, device)  # [n, Q]
    outputs, targets, layout = own_levels(outputs, targets, layout)
    losses = variable_losses(outputs.unsqueeze(0), targets, layout)  # [1, n, Q'] in
    return float(np.mean([float(v) for v in losses.values()])) if losses else float("nan")


def _monitor_sample(n_train: int, n_held: int, seed: int) -> np.ndarray:
    """Training rows on which history's ``train_eval_loss`` is computed every epoch.

    As many as the held-out runs of ``val_loss``, at least :data:`MONITOR_RUNS` (fewer only
    when training has fewer), drawn once from a stream of their own and sorted.
    """
    size = min(n_train, max(n_held, MONITOR_RUNS))
    rng = np.random.default_rng([seed, MONITOR_STREAM])
    return np.sort(rng.choice(n_train, size=size, replace=False))


def check_objective(settings: dict[str, Any]) -> None:
    """Refuse pretraining settings that would learn nothing: ``bei_weight`` 0 with the
    self-supervised loss off. ``lcm pretrain`` calls it before the data load and the output
    folder's claim (a refusal then left an empty folder of its own).

    Parameters
    ----------
    settings : dict
        The resolved pretraining settings (:func:`lcm.train.settings.resolve_settings`).

    Raises
    ------
    ConfigError
        Naming the settings and the fix.
    """
    ssl_on = settings["ssl_weight"] > 0 and settings["ssl_mask_ratio"] > 0
    if not ssl_on and settings["bei_weight"] == 0:
        raise ConfigError(
            "pretrain: bei_weight is 0 and the self-supervised loss is off (ssl_weight "
            f"{settings['ssl_weight']}, ssl_mask_ratio {settings['ssl_mask_ratio']}): "
            "nothing would be learned.",
            hint="Set pretrain.bei_weight > 0, or ssl_weight and ssl_mask_ratio > 0.",
        )


def pretrain(
    cohort: Cohort | StreamedCohort,
    catalogue: Catalogue,
    model_settings: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    *,
    device: str | None = None,
    record: Recorder | None = None,
) -> dict[str, Any]:
    """Pretrain an LCM on ``cohort`` and write its checkpoint, history and held-out metrics.

    Parameters
    ----------
    cohort : Cohort or StreamedCohort
        Pretraining runs (FC ``[n, R, R]`` and catalogue variables); a
        :class:`~lcm.store.cohort.StreamedCohort` (``data_loading: stream``) has its
        connectomes streamed from the store instead (:mod:`lcm.train.streamed`).
    catalogue : Catalogue
        Defines the query tokens: one group per variable observed in the training split.
    model_settings : dict
        Config ``model`` section: ``{"preset": ..., "overrides": {...}}``.
    settings : dict
        Config ``pretrain`` section (epochs, batch_size, lr, weight_decay, ssl_mask_ratio,
        ssl_weight); missing keys take the schema defaults.
    seed : int
        Seeds initialisation, the hold-out split, shuffling, masking and dropout (a stream
        of each data parallel process's own).
    out_dir : path-like
    device : str, optional
        ``"cpu"``, ``"cuda"`` ...; default CUDA when available.
    record : callable, optional
        Writes the provenance records of the files, given them and the data parallel
        processes (the ``data_parallel`` of the summary), returning the records; called inside
        the files' set, so that the records are kept only with them (``lcm pretrain``'s).

    Returns
    -------
    dict
        Summary: sizes, final losses, paths, data fingerprint, parameter count, seconds.
    """
    started = time.perf_counter()
    settings = resolve_settings("pretrain", settings)
    streamed = isinstance(cohort, StreamedCohort)
    if streamed != (settings["data_loading"] == "stream"):
        raise ConfigError(
            f"pretrain.data_loading is {settings['data_loading']!r} but the cohort given is "
            f"{'streamed' if streamed else 'loaded in memory'}.",
            hint="Load it with lcm.store.read.load_streamed_cohort for data_loading: stream, "
            "with load_cohort for memory.",
        )
    n_fc = len(cohort.ids) if isinstance(cohort, StreamedCohort) else len(cohort.fc)
    if not isinstance(cohort, StreamedCohort):  # a streamed cohort's are checked as read
        check_connectomes(cohort.fc, f"pretraining cohort ({cohort.atlas})")
    if len(cohort.variables) != len(cohort.ids) or len(cohort.ids) != n_fc:
        raise InputDataError(
            f"Pretraining cohort: {len(cohort.ids)} ids, {n_fc} connectomes and "
            f"{len(cohort.variables)} variable rows; expected the same number.",
            hint="Build the Cohort with lcm.store.read.load_cohort.",
        )
    out = Path(out_dir)
    ctx = distributed.setup(pick_device(device))
    dev = ctx.device
    distributed.check_global_batch(settings["batch_size"], ctx.world)
    if settings["compile_scope"] == "step" and settings["gradient_checkpointing"]:
        raise ConfigError(
            "pretrain.compile_scope: step does not combine with gradient_checkpointing: the "
            "recomputation saves and restores the GPU's random state, which a captured CUDA "
            "graph cannot do.",
            hint="Use compile_scope: blocks (or model) with gradient_checkpointing: true.",
        )
    if ctx.enabled and settings["compile_scope"] == "step":
        raise ConfigError(
            f"pretrain.compile_scope: step captures one process's whole training step, and "
            f"this run has {ctx.world} data parallel processes (their gradients are averaged "
            "between backward and the update).",
            hint="Use compile_scope: model (or blocks) for data parallel pretraining.",
        )
    ranks = distributed.gather_ranks(ctx)
    generator = seed_everything(seed)

    train_idx, val_idx = holdout_split(cohort.groups, HOLDOUT_FRACTION, seed)
    train, val = cohort.subset(train_idx), cohort.subset(val_idx)
    held_out = val  # every held-out run (the stream leaves their subjects out)
    # Early stopping on the pretraining hold-out (never downstream data): keep the weights of
    # the epoch with the lowest held-out BEI loss. Not for self-supervised-only pretraining,
    # whose BEI heads are untrained. The subjects that choose the epoch are not those that
    # bei_eval.tsv reports on: the hold-out is split by subject, half and half.
    select = settings["select_epoch"] == "heldout" and settings["bei_weight"] > 0
    choose = val  # the subjects of history's val_loss (and of the choice)
    if select:
        choose_idx, report_idx = selection_split(val.groups, seed)
        choose, val = val.subset(choose_idx), val.subset(report_idx)
        if len(val) and not len(choose):
            log.warning(
                "pretrain.select_epoch: heldout: one held-out subject, kept for reporting; "
                "no epoch is selected (the last is kept)."
            )
    layout = layout_from_catalogue(catalogue, train.variables, train.ids["dataset"])
    stats = fit_standardisation(train.variables, layout, train.groups)  # per subject
    targets = encode_bei_targets(train.variables, layout, stats, train.ids["dataset"], catalogue)
    n_rois = len(cohort.roi_names) if isinstance(cohort, StreamedCohort) else cohort.fc.shape[1]
    if layout.n_queries == 0:
        raise InputDataError(
            # Said as it is: a cohort of one subject (every value a single one) was told it
            # had no observed values.
            f"Pretraining cohort ({len(train)} training runs of {len(set(train.groups))} "
            "subject(s)): no catalogue variable has two different values there (each is "
            "missing or constant: the warning above names each), so the model would have no "
            "BEI queries.",
            hint="Check the datasets' phenotype files and their columns in the catalogue, or "
            "pretrain on more subjects.",
        )
    config = config_from_settings(model_settings, n_rois, layout.n_queries)
    model = LCM(config)
    model.gradient_checkpointing = bool(settings["gradient_checkpointing"])
    objective = PretrainObjective(
        model, layout, settings["ssl_weight"], bei_weight=settings["bei_weight"]
    ).to(dev)
    # On CUDA by default; CPU stays eager. Compiled, every step has the batch's shape.
    compiled = compile_model(objective, settings["compile"], dev, settings["compile_scope"])
    trained: torch.nn.Module = objective
    if ctx.enabled:
        # Some task weights see no target in a batch: DDP must not wait for their gradients.
        trained = DistributedDataParallel(objective, find_unused_parameters=True)
    # val_loss's very quantity on training runs (eval mode, unmasked, unweighted mean of the
    # last layer's per-variable losses): the training objective (weighted sum + SSL, on
    # masked batches in train mode) is no curve to set a validation loss beside. A fixed
    # sample bounds the cost; its own random stream leaves training's draws as they were.
    sample = _monitor_sample(len(train), len(choose), seed)
    scan: Scan | None = None
    fc: DeviceConnectomes | StreamedConnectomes
    if isinstance(cohort, StreamedCohort):
        # One pass in the store's order (rank 0): fingerprint, digests, the finite check, and
        # the held-out and monitoring runs put aside in a temporary file, each set contiguous
        # there (the cohorts are slices of it: nothing copied). The others take the fingerprint.
        parts = [val_idx[choose_idx], val_idx[report_idx]] if select else [val_idx]
        rows = np.concatenate([*parts, train_idx[sample]])
        scan = scan_cohort(cohort, catalogue, rows) if ctx.is_main else None
        fingerprint = distributed.broadcast_text(ctx, scan.fingerprint if scan else None)
        if scan is not None:
            n_held = len(val_idx)
            monitor = scan.cohort(cohort, rows, slice(n_held, None))
            choose = val = scan.cohort(cohort, rows, slice(0, n_held))
            if select:
                n_choose = len(choose_idx)
                choose = scan.cohort(cohort, rows, slice(0, n_choose))
                val = scan.cohort(cohort, rows, slice(n_choose, n_held))
        stream = cohort_stream(
            cohort,
            exclude=held_out.ids,
            shuffle=True,
            shuffle_buffer=shuffle_runs(n_rois, settings["batch_size"]),
            seed=seed,
            rank=ctx.rank,
            world_size=ctx.world,
            batch_size=settings["batch_size"] // ctx.world,
            drop_last=True,
        )
        check_same_runs(stream, train.ids, f"pretraining cohort ({cohort.atlas})")
        fc = StreamedConnectomes(stream, dev)
    else:
        fingerprint = cohort.fingerprint(catalogue)
        monitor = train.subset(sample)
        # Upper triangles; on a GPU, kept there where they fit.
        fc = DeviceConnectomes(train.fc, dev)
    check_objective(settings)
    ssl_on = settings["ssl_weight"] > 0 and settings["ssl_mask_ratio"] > 0
    log.info(
        "pretraining %s (%d parameters) on %d runs (%d held out), %d queries: %s",
        "LCM",
        sum(p.numel() for p in model.parameters()),
        len(train),
        len(val),
        layout.n_queries,
        layout.names,
    )

    mask_ratio = settings["ssl_mask_ratio"] if ssl_on else 0.0
    step: PretrainStep | GraphedPretrainStep
    if settings["compile_scope"] == "step":  # the update too: one CUDA graph on a GPU
        options = scope_options(settings["compile"], dev, "step")
        step = GraphedPretrainStep(
            objective, fc, targets, mask_ratio, generator, settings["batch_size"], None, options
        )
    else:
        # Streamed in data parallel, each process has batches of its own (a share of the
        # global batch), normalised by the world's counts.
        own = isinstance(fc, StreamedConnectomes) and ctx.enabled
        batch = settings["batch_size"] // ctx.world if own else settings["batch_size"]
        step = PretrainStep(
            trained,
            fc,
            targets,
            mask_ratio,
            generator,
            rank=ctx.rank,
            world=ctx.world,
            pad_to=batch if compiled else None,
            own_batches=distributed.global_counts(ctx) if own else None,
        )

    def held_targets(part: Cohort) -> Targets | None:
        if not len(part):
            return None
        return encode_bei_targets(part.variables, layout, stats, part.ids["dataset"], catalogue)

    val_targets = held_targets(val)
    choose_targets = held_targets(choose) if select else val_targets
    monitor_targets = {k: t.take(torch.from_numpy(sample)) for k, t in targets.items()}

    # Only the main process selects; it alone writes (and saves the selection with its state).
    best = BestEpoch(objective.weighting)

    def on_epoch_end(epoch: int) -> dict[str, float]:
        if choose_targets is None or not ctx.is_main:
            return {}
        loss = _mean_loss(model, choose.fc, choose_targets, layout, dev)
        if select:
            best.offer(loss, epoch, model)
        train_loss = _mean_loss(model, monitor.fc, monitor_targets, layout, dev)
        return {"train_eval_loss": train_loss, "val_loss": loss}

    resumable = Resumable(
        out / STATE_DIR,
        settings["checkpoint_every"],
        run_fingerprint(fingerprint, model_settings, settings, seed, ctx.world),
        fields=run_fields(fingerprint, model_settings, settings, seed, ctx.world),
        writer=ctx.is_main,
        carry=best if select else None,
    )
    # Dropout: a stream of each process's own (the shuffling and masking generator is shared).
    distributed.seed_process(ctx, seed)
    history = train_epochs(
        [trained],
        len(train),
        settings["epochs"],
        settings["batch_size"],
        settings["lr"],
        settings["weight_decay"],
        generator,
        step,
        "pretrain",
        on_epoch_end,
        resumable=resumable,
        min_batch=ctx.world,
        quiet=not ctx.is_main,
        batches_of=fc.batches if isinstance(fc, StreamedConnectomes) else None,
        steps_per_epoch=len(fc.stream) if isinstance(fc, StreamedConnectomes) else None,
    )
    # Each process logged its share of every batch: the history of the whole batches is the mean.
    history = distributed.mean_over_ranks(ctx, history)
    # The last collective: every process leaves the group now. The rest (held-out metrics,
    # checkpoint) is rank 0's alone and may outlast the group's timeout, which the
    # others, waiting for it in a barrier, would reach and abort the job mid-write.
    distributed.teardown(ctx)
    if not ctx.is_main:
        return {"rank": ctx.rank, "final": history[-1]}
    if best.restore(model):  # its task weights too: model.json's task_weights are the epoch's
        log.info(
            "pretraining: kept epoch %s (lowest held-out BEI loss %.4f)", best.epoch, best.loss
        )
    model.eval()
    weighting = objective.weighting

    parts = [*[f"loss_{n}" for n in layout.names], "loss_ssl", "train_eval_loss", "val_loss"]
    evaluation = (
        bei_metrics(
            predict_outputs(model, val.fc, dev), val_targets, targets, layout, val.groups, seed
        )
        if val_targets is not None
        else pd.DataFrame(columns=BEI_COLUMNS)
    )
    meta = {
        "kind": "pretrained",
        "atlas": cohort.atlas,
        "n_rois": n_rois,
        "roi_names": list(cohort.roi_names),
        "catalogue": catalogue.to_dict(),
        "standardisation": stats,
        "model_settings": model_settings,
        "training": settings,
        "task_weights": weighting.weights(),
        "selected_epoch": best.epoch,
        "seed": seed,
        "world_size": ctx.world,
        # The jobs that trained it: more than one when a killed run was resumed.
        "training_sessions": resumable.sessions,
        "data_fingerprint": fingerprint,
        # Every run this checkpoint saw, by content (evaluate refuses to test on one), and up
        # to rounding: the same runs exported with fewer digits.
        "data": training_data(
            cohort.groups,
            None if scan is not None else cohort.fc,
            val.groups,
            digests=scan.digests if scan is not None else None,
            sketches=scan.sketches if scan is not None else None,
        ),
    }
    if select:  # bei_eval.tsv reports on heldout_subjects; these chose the epoch
        meta["data"]["selection_subjects"] = sorted(np.unique(choose.groups).tolist())
    model_cpu = model.to("cpu")
    # All four or none: a full disk at the history left new weights beside the last run's
    # model.json (refused later on its checksum; without a saved state, training again).
    files = [out / name for name in PRETRAIN_FILES]
    parallel = {"world_size": ctx.world, "ranks": ranks}
    # Their records in the set too: a full disk or a kill between the files and the records
    # left this run's model beside the last run's records (or none).
    records = [provenance_path(f) for f in files] if record is not None else []
    with written_together([*files, *records]) as written:
        # The fingerprint its state resumes by: lcm prune-states removes that state beside it.
        # (Weights written, model.json not: written_together finds the weights replaced.)
        save_checkpoint(out, model_cpu, layout, meta, run_fingerprint=resumable.fingerprint)
        written += [out / WEIGHTS_NAME, out / META_NAME]
        write_tsv(out / HISTORY_NAME, history_frame(history, parts))
        written.append(out / HISTORY_NAME)
        write_tsv(out / BEI_EVAL_NAME, evaluation)
        written.append(out / BEI_EVAL_NAME)
        if record is not None:
            written += record(files, parallel)
    # The state (at the final step) is kept: a job killed after this point (Snakemake's wrapper
    # still running at the time limit) is retried with these outputs deleted, and the retry
    # writes them again from it. A run with other settings removes it (train_epochs).
    summary = {
        "out_dir": str(out),
        "n_runs_train": len(train),
        "n_runs_heldout": len(val),
        **({"n_runs_selection": len(choose)} if select else {}),
        "n_parameters": sum(p.numel() for p in model_cpu.parameters()),
        "queries": layout.names,
        "final": {k: v for k, v in history[-1].items() if k != "epoch"},
        "data_fingerprint": fingerprint,
        "data_parallel": parallel,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("pretraining done in %.1f s: %s", summary["seconds"], out)
    return summary
