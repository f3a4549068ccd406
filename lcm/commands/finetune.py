"""``lcm finetune``: finetune a checkpoint on one dataset's diagnosis (the model a user applies)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lcm.catalogue import Variable, load_catalogue
from lcm.commands._arguments import (
    add_seed_and_threads,
    add_store_arguments,
    add_task_arguments,
)
from lcm.commands._outputs import record_together
from lcm.commands._path_text import path_text
from lcm.commands._sources import existing, named_store, store_sources
from lcm.commands._stopped import Stopped, WritingStopped, one_runs_set
from lcm.config import parse_settings
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError, InputDataError, OutputOwnershipError
from lcm.model.checkpoint_meta import CHECKPOINT_NAMES

if TYPE_CHECKING:
    import pandas as pd

    from lcm.evaluate.tasks import Task

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  lcm finetune --checkpoint results/models/pretrain --store results/store --atlas aal116 \\
      --catalogue config/variables.yaml --dataset abidelike --label autism --positive autism \\
      --settings '{"epochs": 30, "lr": 0.001}' --seed 1 --out-dir results/models/autism

  # the same architecture trained from random initialisation (baseline)
  lcm finetune ... --init scratch --out-dir results/models/autism-scratch

outputs in --out-dir: model.safetensors, model.json (as pretraining, plus the label and its
levels), history.tsv. Subjects without a diagnosis contribute only the BEI (pseudo-label) loss.
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "finetune",
        help="Finetune a pretrained LCM on a binary diagnosis of one dataset.",
        description="Append two diagnosis queries to the checkpoint's model and train on every "
        "subject of the dataset: cross-entropy on labelled subjects plus the BEI loss on the "
        "subjects' own variables, filled with soft pseudo-labels from the pretrained model "
        "where missing (settings pseudo_labels, pseudo_weight).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint", type=path_text, required=True, help="Pretrained checkpoint folder."
    )
    p.add_argument("--settings", default="{}", help="JSON of the config 'evaluate.finetune'.")
    p.add_argument("--init", choices=("pretrained", "scratch"), default="pretrained")
    p.add_argument(
        "--out-dir", type=path_text, required=True, help="Finetuned checkpoint folder to write."
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available).")
    add_store_arguments(p)
    add_task_arguments(p)
    add_seed_and_threads(p)
    p.set_defaults(func=run)


def label_levels(catalogue_path: str, variable: Variable, positive: str) -> tuple[str, str]:
    """``(negative, positive)`` levels of a binary catalogue variable.

    Parameters
    ----------
    catalogue_path : str
        The catalogue the variable comes from (``--catalogue``), named in errors.
    variable : lcm.catalogue.Variable
        The variable ``--label`` names.
    positive : str
        The level of the positive class (``--positive``).

    Returns
    -------
    tuple of (str, str)
        The other level, then ``positive``.

    Raises
    ------
    lcm.exceptions.ConfigError
        When the variable is not binary, or ``positive`` is not one of its levels.
    """
    if variable.kind != "binary":
        raise ConfigError(
            f"{catalogue_path}: --label {variable.name!r} is {variable.kind}, expected binary.",
            # The hint said "Finetuning predicts a two-level diagnosis." with no way on: a
            # config's continuous task runs its LCM models in lcm evaluate, no finetune job.
            hint="lcm finetune trains a two-level classifier: pass a binary variable of the "
            "catalogue and its --positive level. A continuous target (age, a score) has no "
            "finetuned model: lcm evaluate regresses it with the LCM models (a config's task "
            "without positive), and the workflow finetunes its binary tasks only.",
        )
    if positive not in variable.levels:
        raise ConfigError(
            f"--positive {positive!r} is not a level of {variable.name!r} "
            f"(levels {list(variable.levels)} in {catalogue_path}).",
            hint="Use one of the catalogue's levels.",
        )
    negative = next(lv for lv in variable.levels if lv != positive)
    return negative, positive


def _refuse_out_dir_at_checkpoint(out_dir: str, checkpoint: str) -> None:
    """Refuse an ``--out-dir`` that is the ``--checkpoint`` folder: the finetuned model's files
    (model.safetensors, model.json, history.tsv) would replace the pretrained model's."""
    out, ckpt = Path(out_dir).resolve(), Path(checkpoint).resolve()
    same = out == ckpt or (out.exists() and ckpt.exists() and out.samefile(ckpt))
    if same:
        raise OutputOwnershipError(
            f"lcm finetune: --out-dir {out_dir} is the --checkpoint folder {checkpoint} "
            f"(both {ckpt}): the finetuned model would replace the pretrained one; "
            "nothing was written.",
            hint="Give --out-dir a folder of its own (e.g. a sibling such as "
            f"{ckpt.parent / (ckpt.name + '-finetuned')}).",
        )


def diagnosis_labels(variables: pd.DataFrame, task: Task) -> np.ndarray:
    """0/1 diagnosis of each run, -1 where missing: those runs are kept, unlabelled.

    Unlike ``lcm evaluate``, which drops them, finetuning trains on them through the BEI loss
    on their own variables and, with ``diagnosis_pseudo_labels``, confident pseudo-labels of
    the diagnosis; so the log says kept.

    Parameters
    ----------
    variables : pandas.DataFrame
        Variables per run (:attr:`lcm.store.cohort.Cohort.variables`).
    task : lcm.evaluate.tasks.Task
        The diagnosis: its label, negative and positive levels.

    Returns
    -------
    numpy.ndarray of int64
        One value per run: 1 for the positive level, 0 for the negative, -1 for no value.

    Raises
    ------
    lcm.exceptions.InputDataError
        When the variables have no column of the label, or a value that is neither level.
    """
    from lcm.evaluate.tasks import target_values

    present, labelled = target_values(variables, task, log_dropped=False)
    y = np.full(len(present), -1, dtype=np.int64)
    y[present] = labelled
    if not present.all():
        log.info(
            "task %s: kept %d run(s) with no %r value as unlabelled (for the BEI loss, and "
            "confident diagnosis pseudo-labels where enabled)",
            task.name,
            int((~present).sum()),
            task.label,
        )
    return y


# Fewest labelled subjects of each class: the rule `lcm evaluate` applies (its folds and label
# fractions keep at least 2 per class); one subject of a class is no diagnosis to learn.
MIN_SUBJECTS_PER_CLASS = 2


def check_label_classes(
    y: np.ndarray, groups: np.ndarray, levels: tuple[str, str], dataset: str, label: str
) -> None:
    """Refuse a diagnosis with fewer than :data:`MIN_SUBJECTS_PER_CLASS` subjects of a class.

    It trained on one positive among 437 labelled subjects and its log blamed "too few
    labelled subjects"; ``lcm evaluate`` refused the same store. Subjects are counted, not runs.

    Parameters
    ----------
    y : numpy.ndarray
        0/1 diagnosis per run, -1 unlabelled (:func:`diagnosis_labels`).
    groups : numpy.ndarray
        The subject of each run (:attr:`lcm.store.cohort.Cohort.groups`).
    levels : tuple of (str, str)
        The negative and positive levels, named in the error (:func:`label_levels`).
    dataset : str
        The dataset finetuned on, named in the error.
    label : str
        The diagnosis variable, named in the error's hint.

    Raises
    ------
    lcm.exceptions.InputDataError
        When a level has fewer labelled subjects than :data:`MIN_SUBJECTS_PER_CLASS`.
    """
    labelled = y >= 0
    groups = np.asarray(groups).astype(str)
    n_subjects = len(set(groups[labelled].tolist()))
    counts = {levels[k]: len(set(groups[y == k].tolist())) for k in (0, 1)}
    short = [lv for lv in levels if counts[lv] < MIN_SUBJECTS_PER_CLASS]
    if not short:
        return
    level = min(short, key=counts.get)
    other = levels[1 - levels.index(level)]
    if counts[level] == 0:
        # y is per run (or window): count the subjects too, not only the rows.
        message = (
            f"Dataset {dataset!r}: no labelled subject is {level!r} "
            f"({int(labelled.sum())} labelled run(s) of {n_subjects} subject(s), all "
            f"{other!r}); a diagnosis is learnt from both classes."
        )
    else:
        message = (
            f"Dataset {dataset!r}: {counts[level]} labelled subject is {level!r} "
            f"(labelled subjects per level {counts}, {int(labelled.sum())} labelled run(s)); "
            f"a diagnosis is learnt from at least {MIN_SUBJECTS_PER_CLASS} subjects of each "
            "class (lcm evaluate refuses it too)."
        )
    raise InputDataError(
        message,
        hint=f"Add {level!r} subjects with their {label!r} to the phenotype file and rerun "
        f"lcm store, or check the catalogue's map of {label!r} for {dataset!r}.",
    )


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm finetune``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    # Installed first, as lcm pretrain's: a SIGTERM at the cohort's or the checkpoint's load
    # (a SLURM time limit) ended the job at once, not a line in its log. The training steps'
    # own handler names the step; the outputs' writes have WritingStopped.
    nothing = f"nothing was written in {args.out_dir}"
    with Stopped("lcm finetune", "checking the settings", nothing) as stopped:
        return _run(args, stopped)


def _run(args: argparse.Namespace, stopped: Stopped) -> int:
    """:func:`run` within its SIGTERM handler, ``stopped`` told what is being done."""
    # Imported here: every `lcm` call builds all parsers, and torch takes seconds to import.
    from lcm.evaluate.tasks import Task
    from lcm.model.checkpoint import load_checkpoint
    from lcm.store.read import load_cohort
    from lcm.train.finetune import LCMClassifier
    from lcm.train.loop import pick_device, set_threads
    from lcm.train.outputs import CHECKPOINT_FILES, check_out_dir, training_out_dir
    from lcm.train.settings import resolve_settings

    settings = parse_settings(args.settings, "settings")
    # Checked now (fit checks them again): refused inside the output folder's claim, a setting
    # such as epochs: 0 left an empty folder owned by lcm finetune.
    resolve_settings("finetune", settings, "lcm finetune --settings")
    _refuse_out_dir_at_checkpoint(args.out_dir, args.checkpoint)
    set_threads(args.threads)
    pick_device(args.device)  # a device this machine lacks, refused before the data load
    catalogue = load_catalogue(args.catalogue)
    if args.label not in catalogue.variables:
        raise ConfigError(
            f"--label {args.label!r} is not a variable of {args.catalogue} "
            f"(have {sorted(catalogue.variables)}).",
            hint="Add the diagnosis to the catalogue with kind: binary.",
        )
    levels = label_levels(args.catalogue, catalogue.variables[args.label], args.positive)
    # Refused before the load too: a folder holding others' files, a record that could not be
    # written (a user's history.json).
    check_out_dir(args.out_dir, "lcm finetune", CHECKPOINT_FILES)
    stopped.doing = f"loading the cohort of {args.dataset} ({args.atlas}) from {args.store}"
    cohort = load_cohort(args.store, args.atlas, [args.dataset], catalogue)
    stopped.doing = f"loading the checkpoint {args.checkpoint}"
    # Refuse a checkpoint of another atlas, ROI count, ROI order or catalogue before any training,
    # naming the store (named_store).
    _, meta = load_checkpoint(
        args.checkpoint,
        atlas=args.atlas,
        n_rois=cohort.fc.shape[1],
        roi_names=list(cohort.roi_names),
        catalogue=catalogue,
        data=named_store(args.store),
    )
    stopped.doing = f"checking the {args.label!r} labels of {args.dataset}"
    if args.dataset in ((meta.get("data") or {}).get("datasets") or []):
        log.warning(
            "checkpoint %s was pretrained on %s: its subjects were seen in pretraining, so no "
            "result of this model on %s is independent of it (lcm evaluate refuses the pair)",
            args.checkpoint,
            args.dataset,
            args.dataset,
        )
    # The task's own checks: every stored value a level (a store written with another map,
    # or a level renamed since, would otherwise turn into the negative class).
    task = Task(name=args.label, label=args.label, negative=levels[0], positive=levels[1])
    y = diagnosis_labels(cohort.variables, task)
    if not (y >= 0).any():
        raise InputDataError(
            f"Dataset {args.dataset!r} has no subject with {args.label!r} in the store.",
            hint="Check the phenotype file and the catalogue's column for this variable.",
        )
    check_label_classes(y, cohort.groups, levels, args.dataset, args.label)
    clf = LCMClassifier(
        args.checkpoint,
        args.label,
        levels,
        settings,
        args.seed,
        args.init,
        device=args.device,
        atlas=args.atlas,
        roi_names=list(cohort.roi_names),
        catalogue=catalogue,
    )
    files = [Path(args.out_dir) / name for name in CHECKPOINT_FILES]
    # Outside the training steps (their handler says more): setting up (the pseudo-labels),
    # before the writes (WritingStopped), which leave one run's set (lcm.io.output_set).
    stopped.doing = "finetuning, outside its training steps (setting up)"
    stopped.left = one_runs_set(files)
    # Claimed (refused if it holds others' files) and locked against a concurrent run.
    with training_out_dir(args.out_dir, "lcm finetune", CHECKPOINT_FILES):
        # Subjects, not rows: the pseudo-label threshold and the probe's penalty are chosen on
        # validation subjects none of whose runs or windows trained the first model.
        clf.fit(cohort.fc, y, cohort.variables.drop(columns=[args.label]), groups=cohort.groups)

        def record(outputs: list[Path]) -> list[Path]:
            sources = [
                *existing(args.checkpoint, CHECKPOINT_NAMES),
                *store_sources(args.store, args.atlas, [args.dataset]),
                args.catalogue,
            ]
            # Each record names the others: nothing reads the history (see lcm pretrain).
            # Written inside the files' set (lcm.io.output_set): a full disk or a SIGTERM at a
            # record leaves the earlier run's files and records, never this run's model
            # without its own.
            return record_together(outputs, sources)

        # A SIGTERM here exits through the set (the training steps' handler is gone by now).
        with WritingStopped("lcm finetune", files):
            out = clf.save(args.out_dir, record=record)
    log.info(
        "finetuned %s on %d runs (%d labelled) -> %s",
        args.label,
        len(y),
        int((y >= 0).sum()),
        out,
    )
    return 0
