"""``lcm pretrain``: pretrain an LCM on the pretraining datasets of the feature store."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from lcm.catalogue import load_catalogue
from lcm.commands._arguments import add_seed_and_threads, add_store_arguments
from lcm.commands._outputs import record_together
from lcm.commands._path_text import path_text
from lcm.commands._sources import store_sources
from lcm.commands._stopped import Stopped, one_runs_set
from lcm.config import parse_settings
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError

log = logging.getLogger(__name__)

EXAMPLE = """example:
  lcm pretrain --store results/store --atlas aal116 --catalogue config/variables.yaml \\
      --datasets hcplike ukblike --model '{"preset": "tiny"}' \\
      --settings '{"epochs": 40, "batch_size": 32, "lr": 0.002}' --seed 1 \\
      --out-dir results/models/pretrain

outputs in --out-dir: model.safetensors, model.json (config, catalogue, atlas, standardisation,
settings, seed, data fingerprint, versions), history.tsv (per epoch: loss_total, the weighted
training objective, with its parts loss_<variable> and loss_ssl; train_eval_loss and val_loss,
the unweighted mean of the per-variable BEI losses in eval mode on training and on held-out
runs, each variable on the runs whose dataset records it, over its own levels (n/a left out):
the pair to compare), bei_eval.tsv (held-out metrics of every variable, scored on the
runs whose dataset records it, beside its training baseline, the chance level of a constant
guess on those runs (balanced accuracy: 1 / the classes present among them) and a 95 %
bootstrap interval over held-out subjects, with n runs and n_subjects). The bei-linear
baseline's ridge maps (bei_linear.npz) are `lcm bei-maps`'s, written into the same folder.

memory: "data_loading": "stream" in --settings reads the connectomes from the store a batch at a
time (the held-out and monitoring runs wait in a temporary file) instead of loading every one
(8 R^2 bytes a run, refused when the job's memory cannot hold them).

resuming: with "checkpoint_every": N in --settings the training state is saved every N
optimiser steps and at the last step in --out-dir/train_state/; the same command after a kill
resumes from it, exactly (the same weights as an uninterrupted run). The state is kept after
the model is written (about 3 to 4 times the weights' size: weights, AdamW's two moments, the
selected epoch's weights): the same command again, with the outputs deleted (a job retried
after its time limit struck once the model was written), writes them from it without training.
A run with other settings removes it; lcm prune-states removes it once its run's model is
written (model.json records the run fingerprint the state resumes by).
model.json's training_sessions lists each job that trained it (the step it started from, SLURM
job id, host, time). Only checkpoint_every may change in between; other settings, seed or data
start over, with a warning naming what differs. SIGTERM (a SLURM time limit, scancel) logs the
step reached and the state saved (before training, what was being done: the cohort's load),
and exits with status 143.
"""


# The model settings' keys as this verb takes them, named in hints (not the config's keys).
MODEL_OPTION_NAMES = {"preset": "--model's preset", "overrides": "--model's overrides"}


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "pretrain",
        help="Pretrain an LCM on brain-environment variables and masked-ROI reconstruction.",
        description="Load the datasets' connectomes and variables from the feature store, hold "
        "out 10% of subjects for reporting, and train the model's BEI queries (cross-entropy / "
        "standardised MSE, masked where missing, learned task weights) together with masked-ROI "
        "reconstruction. Writes a checkpoint that `lcm finetune` starts from.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--datasets", nargs="+", required=True, help="Pretraining datasets.")
    p.add_argument("--model", default="{}", help="JSON of the config 'model' section.")
    p.add_argument("--settings", default="{}", help="JSON of the config 'pretrain' section.")
    p.add_argument("--out-dir", required=True, type=path_text, help="Checkpoint folder to write.")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available).")
    # Deprecated: the maps are `lcm bei-maps`'s (a job of its own, so that adding bei-linear
    # to a task reruns no pretraining). `no` is what pretraining does now; `yes` is refused,
    # naming the command that writes them, rather than train for hours and write none.
    p.add_argument(
        "--bei-maps",
        choices=("yes", "no"),
        default=None,
        help="Deprecated, to be removed: pretraining writes no bei_linear.npz; `lcm bei-maps` "
        "does (no is accepted and changes nothing, yes is refused).",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="Save the training state every N optimiser steps (0 never); overrides --settings' "
        "checkpoint_every (the workflow passes it apart from the settings: changing it reruns "
        "nothing).",
    )
    add_store_arguments(p)
    add_seed_and_threads(p)
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm pretrain``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    # Installed first: the cohort's load takes minutes to hours, and a SIGTERM there (a SLURM
    # time limit) ended the job with status 143 and not a word in its log. Outside the training
    # steps (whose own handler names the step and the state saved): told what is being done.
    nothing = f"nothing was written in {args.out_dir}"
    with Stopped("lcm pretrain", "checking the settings", nothing) as stopped:
        return _run(args, stopped)


def _run(args: argparse.Namespace, stopped: Stopped) -> int:
    """:func:`run` within its SIGTERM handler, ``stopped`` told what is being done."""
    # Imported here: every `lcm` call builds all parsers, and torch takes seconds to import.
    from lcm.store.read import cohort_size, load_cohort, load_streamed_cohort
    from lcm.train.distributed import check_global_batch, launched_world
    from lcm.train.loop import pick_device, set_threads
    from lcm.train.outputs import (
        MAPS_FILE,
        PRETRAIN_FILES,
        PRETRAIN_VERB,
        STATE_DIR,
        check_out_dir,
        training_out_dir,
    )
    from lcm.train.pretrain import check_objective, pretrain
    from lcm.train.settings import resolve_settings
    from lcm.train.streamed import check_memory_load

    if args.bei_maps == "yes":
        raise ConfigError(
            "lcm pretrain --bei-maps yes: pretraining no longer writes the bei-linear "
            "baseline's ridge maps (bei_linear.npz).",
            hint="Drop --bei-maps and run `lcm bei-maps` with the same --store, --atlas, "
            "--catalogue, --datasets and --seed, and --out-dir the checkpoint's folder.",
        )
    if args.bei_maps == "no":
        log.warning("lcm pretrain --bei-maps is deprecated (no effect): drop it")
    model_settings = parse_settings(args.model, "model")
    # Before the data load: a model no config could build, or one too large to, said first.
    from lcm.model.config import check_model_settings

    check_model_settings(model_settings, "lcm pretrain --model", MODEL_OPTION_NAMES)
    settings = parse_settings(args.settings, "settings")
    if args.checkpoint_every is not None:
        settings["checkpoint_every"] = args.checkpoint_every
    # Refused before the data load and the output folder's claim: every rank would load the
    # store and leave an empty folder behind.
    resolved = resolve_settings("pretrain", settings, "lcm pretrain --settings")
    check_global_batch(resolved["batch_size"], launched_world())
    set_threads(args.threads)
    pick_device(args.device)  # a device this machine lacks, refused before the data load
    catalogue = load_catalogue(args.catalogue)
    check_objective(resolved)  # a refusal of the settings alone: before the load and the claim
    files = PRETRAIN_FILES
    # The ridge maps lcm bei-maps writes beside the checkpoint are neither replaced nor recorded.
    beside = (MAPS_FILE,)
    # Refused before the load too: a folder holding others' files, a record that could not be
    # written (a user's history.json).
    check_out_dir(args.out_dir, PRETRAIN_VERB, files, (STATE_DIR,), beside)
    # data_loading: stream leaves the connectomes in the store (read a batch at a time).
    load = load_streamed_cohort if resolved["data_loading"] == "stream" else load_cohort
    if load is load_cohort:  # refused before hours of loading end in the job's OOM kill
        n_runs, n_rois = cohort_size(args.store, args.atlas, list(args.datasets))
        # Under torchrun every process of the node loads it: LOCAL_WORLD_SIZE copies.
        local = launched_world("LOCAL_WORLD_SIZE")
        what = f"{' '.join(args.datasets)} ({args.atlas})"
        check_memory_load(n_runs, n_rois, what, processes=local)
    datasets = " ".join(args.datasets)
    stopped.doing = f"loading the cohort of {datasets} ({args.atlas}) from {args.store}"
    cohort = load(args.store, args.atlas, list(args.datasets), catalogue)
    # Outside the training steps (their handler says more): setting up, or the outputs'
    # writes, which leave one run's set (lcm.io.output_set).
    stopped.doing = "pretraining, outside its training steps (setting up or writing the model)"
    stopped.left = one_runs_set([Path(args.out_dir) / name for name in files])

    def record(outputs: list[Path], parallel: dict[str, Any]) -> list[Path]:
        sources = [*store_sources(args.store, args.atlas, list(args.datasets)), args.catalogue]
        # Each record names the others: nothing reads the history or the BEI table, so one
        # deleted with its record is still reported by lcm provenance verify. Every process's
        # host, pid and SLURM task: evidence that each rank took part. Written inside the
        # files' set (lcm.io.output_set): a full disk or a SIGTERM at a record leaves the
        # earlier run's files and records, never this run's model without its own.
        return record_together(outputs, sources, DataParallel=parallel)

    # Claimed (checked again) and locked against a concurrent run.
    with training_out_dir(args.out_dir, PRETRAIN_VERB, files, (STATE_DIR,), beside):
        summary = pretrain(
            cohort,
            catalogue,
            model_settings,
            settings,
            args.seed,
            args.out_dir,
            device=args.device,
            record=record,
        )
        log.info("summary: %s", json.dumps(summary, default=str))
    return 0
