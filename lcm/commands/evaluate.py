"""``lcm evaluate``: cross-validated evaluation of one task, baselines and a control beside LCM."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

import lcm
from lcm.catalogue import Catalogue, load_catalogue
from lcm.commands._arguments import (
    add_seed_and_threads,
    add_store_arguments,
    add_task_arguments,
)
from lcm.commands._outputs import check_output_folders, record_together
from lcm.commands._path_text import path_text
from lcm.commands._sources import existing, named_store, store_sources
from lcm.commands._stopped import WritingStopped
from lcm.commands._task import task_name
from lcm.config import parse_settings
from lcm.docstrings import fill_doc
from lcm.evaluate.metrics import write_tidy_parquet
from lcm.evaluate.protocol import (
    EvaluationResult,
    EvaluationSettings,
    Task,
    evaluate_task,
    task_from_catalogue,
)
from lcm.evaluate.record import evaluation_record
from lcm.evaluate.registry import checkpoint_models, maps_models, needs_torch
from lcm.evaluate.resume import open_state, run_fields, state_folder
from lcm.evaluate.splits import SETTING_KEYS
from lcm.evaluate.tasks import TASK_OPTION_NAMES
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.output_set import written_together
from lcm.io.paths import missingness_path, variables_path
from lcm.io.provenance import (
    invocation_code_sha256,
    provenance_path,
    read_record,
    sha256_file,
)
from lcm.io.run_digests import data_fingerprint
from lcm.signals import SigtermExit
from lcm.store.cohort import Cohort
from lcm.threads import apply_thread_budget, resolve_thread_budget
from lcm.train.outputs import MAPS_FILE, MODEL_FILES
from lcm.train.settings import resolve_settings

log = logging.getLogger(__name__)

# How this verb names the evaluate settings in its fold errors (lcm.evaluate.splits
# .setting_names): the keys of --settings; under a workflow rule, the config's evaluate keys.
SETTINGS_NAMES = {key: f"--settings' {key}" for key in SETTING_KEYS}

EXAMPLE = """example:
  lcm evaluate --store results/store --atlas aal116 --catalogue config/variables.yaml \\
      --task autism --dataset abidelike --label autism --positive autism \\
      --checkpoint results/models/pretrain --ssl-checkpoint results/models/pretrain-ssl \\
      --settings '{"n_folds": 5, "seeds": [0], "label_fractions": [0.1, 1.0], "split": "subject",
                   "models": ["logreg", "svm", "lcm", "lcm-ssl", "shuffled-labels"],
                   "finetune": {"epochs": 30}}' \\
      --seed 1 --splits results/splits/task-autism_splits.parquet \\
      --out results/metrics/task-autism_metrics.parquet \\
      --predictions results/metrics/task-autism_predictions.parquet

outputs:
  --out          tidy Parquet: task, model, label_fraction, seed, fold, metric, value
  --predictions  Parquet: task, model, label_fraction, seed, fold, dataset, subject, site,
                 y_true, prediction (P(positive), or the predicted value of a continuous
                 target; one row per test subject and fit: the mean over its runs and
                 windows)
  <out stem>_evaluate_state/  each finished fit, saved as it ends: the same command run
                 again after a kill reuses them and fits only the rest (kept; lcm
                 prune-states removes it once done). Locked from the start of a run: a second
                 run of the same --out is refused before any fit, naming the first's pid and
                 host
  --out and --predictions each with a JSON sidecar (same name, .json) recording settings and
                 sources, and (as does the Parquet metadata) what each LCM fit's
                 pseudo-labelling did (pseudo_labels)

A continuous --label (age, a score) takes no --positive; the LCM variants regress it (a
continuous query, MSE on the target standardised on each training fold) beside ridge and cpm;
models that do not handle it (logreg, svm, tangent-logreg) are skipped and listed in the metadata.
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "evaluate",
        help="Cross-validate LCM and baselines on one task.",
        description="Load the task's dataset from the feature store, drop runs without a label "
        "(lcm finetune keeps them as unlabelled; here only the subjects a label fraction hides "
        "are unlabelled), "
        "and for every seed run stratified subject-level K-fold (or leave-one-site-out) "
        "cross-validation; in each training fold keep the labels of a stratified fraction of "
        "subjects, fit every model on the training fold only (hyper-parameters by inner CV "
        "inside it), and score it on the test fold (AUC, balanced accuracy, accuracy, F1, "
        "sensitivity, specificity; Pearson r, MAE, R^2 for continuous targets).",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, type=task_name, help="Task name (the 'task' column).")
    p.add_argument(
        "--checkpoint",
        type=path_text,
        help="Pretrained LCM checkpoint folder (needed by the LCM models).",
    )
    p.add_argument(
        "--ssl-checkpoint",
        type=path_text,
        help="Checkpoint pretrained with the self-supervised loss only (needed by lcm-ssl).",
    )
    p.add_argument(
        "--settings", default="{}", help="JSON of the config's 'evaluate' section (default: {})."
    )
    p.add_argument(
        "--splits",
        type=path_text,
        help="The task's splits table (`lcm splits --task`): outer folds are read from it "
        "(default: computed the same way here).",
    )
    p.add_argument("--out", type=path_text, required=True, help="Metrics Parquet to write.")
    p.add_argument(
        "--predictions", type=path_text, required=True, help="Predictions Parquet to write."
    )
    add_store_arguments(p)
    add_task_arguments(p, continuous=True)
    add_seed_and_threads(p)
    p.set_defaults(func=run, recorded=("out", "predictions"))


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm evaluate``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    # A workflow rule (lcm --rule) passes its config's evaluate section: named so.
    source = "evaluate" if getattr(args, "rule", None) else "--settings"
    settings = EvaluationSettings.from_dict(parse_settings(args.settings, "settings"), source)
    # The LCM models' settings, checked now: each fit checked them after the data load, and
    # named them by the config's keys (evaluate.finetune.epochs).
    resolve_settings("finetune", settings.finetune, "lcm evaluate --settings' finetune")
    # The registry says which pretraining each model reads (the BEI one, the SSL-only one).
    bei = checkpoint_models(settings.models, "bei")
    if bei and not args.checkpoint:
        raise ConfigError(
            f"Models {bei} need --checkpoint, which was not given.",
            hint="Pass --checkpoint DIR (the pretrain stage's output) or drop them from "
            "--settings' models.",
        )
    ssl = ", ".join(checkpoint_models(settings.models, "ssl"))
    if ssl and not args.ssl_checkpoint:
        raise ConfigError(
            f"Model {ssl} needs --ssl-checkpoint, which was not given.",
            hint=f"Pass the pretrain_ssl stage's output folder or drop {ssl} from --settings' "
            "models.",
        )
    # The built-in models' factories: imported by the registry when first used, named here so
    # that this verb's code hash (lcm.workflow.hash) follows them.
    from lcm.evaluate import factories  # noqa: F401

    check_output_folders([args.out, args.predictions])
    catalogue = load_catalogue(args.catalogue)
    # Under a rule the label and positive level are the config's tasks.<task> keys.
    names = None if getattr(args, "rule", None) else TASK_OPTION_NAMES
    task = task_from_catalogue(args.task, args.label, args.positive, catalogue, names)
    # Imported here: the store reader is only needed once the arguments are valid.
    from lcm.store.read import load_cohort

    cohort = load_cohort(args.store, args.atlas, [args.dataset], catalogue)
    check_task_labelled(cohort, task, args.store, args.dataset)
    # The budget buys fits side by side, each single-threaded (lcm.evaluate.parallel): threads
    # inside each fit (OpenBLAS, torch) slowed them 30x on a shared node.
    workers = apply_thread_budget(resolve_thread_budget(args.threads))
    # SIGTERM (scancel, Snakemake) exits through every clean-up: workers, temporaries.
    with SigtermExit():
        _evaluate(args, cohort, task, settings, workers, catalogue)
    return 0


def check_task_labelled(cohort: Cohort, task: Task, store: str | Path, dataset: str) -> None:
    """Refuse a task none of whose runs has a value of its label, naming the likely cause.

    With phenotype IDs that match no scan, every run is stored without variables and this
    verb said "the labelled subjects are of one class only (subjects {})", naming neither the
    phenotype file nor the cause. The store's own record names the files it was written from.

    Parameters
    ----------
    cohort : lcm.store.cohort.Cohort
        The runs of ``dataset`` loaded from the store, with their variables.
    task : lcm.evaluate.tasks.Task
        The task to evaluate; its ``label`` is the variable looked for.
    store : path-like
        The feature store's root, whose variables record names the files it was written from.
    dataset : str
        The dataset evaluated (``--dataset``).

    Raises
    ------
    lcm.exceptions.InputDataError
        When the cohort has the label's column but no run has a value of it.
    """
    if task.label not in cohort.variables or cohort.variables[task.label].notna().any():
        return  # a missing column, or labelled runs: the protocol's own checks speak
    variables = cohort.variables.drop(columns=["dataset", "subject"], errors="ignore")
    with_any = int(variables.notna().any(axis=1).sum())
    side = provenance_path(variables_path(store, dataset))
    sources = (read_record(side) or {}).get("Sources") or []
    written = (
        f"; the store's variables of {dataset!r} were written from {sources}" if sources else ""
    )
    if with_any == 0:
        cause = (
            f"no run of {dataset!r} has any variable: the phenotype file's subject IDs most "
            "likely match no scanned subject (lcm store warned that the scanned subjects were "
            "absent from it)"
        )
    else:
        cause = f"{with_any} run(s) have other variables, none {task.label!r}"
    raise InputDataError(
        f"Task {task.name!r}: none of the {len(cohort)} run(s) of {dataset!r} in {store} has a "
        f"value of {task.label!r} ({cause}){written}.",
        hint="Check the phenotype file's subject IDs against the scans' subject labels and "
        f"the catalogue's id_column and column for {task.label!r} in {dataset!r}, then rerun "
        f"lcm store (its missingness report: {missingness_path(store, dataset)}).",
    )


def _evaluate(
    args: argparse.Namespace,
    cohort: Cohort,
    task: Task,
    settings: EvaluationSettings,
    workers: int = 1,
    catalogue: Catalogue | None = None,
) -> None:
    splits = None
    if args.splits:
        from lcm.store.splits import read_splits

        splits = read_splits(args.splits)
        splits.attrs["source"] = str(args.splits)
    evaluate_and_write(
        cohort,
        task,
        settings,
        master_seed=args.seed,
        checkpoint=args.checkpoint,
        ssl_checkpoint=args.ssl_checkpoint,
        out=args.out,
        predictions=args.predictions,
        splits=splits,
        sources=[
            *store_sources(args.store, args.atlas, [args.dataset]),
            args.catalogue,
            *([args.splits] if args.splits else []),
            *_checkpoint_files(args.checkpoint, maps=bool(maps_models(settings.models))),
            *_checkpoint_files(args.ssl_checkpoint),
        ],
        extra={"store": args.store, "atlas": args.atlas, "dataset": args.dataset},
        workers=workers,
        catalogue=catalogue,
        state_dir=state_folder(args.out),
        names=None if getattr(args, "rule", None) else SETTINGS_NAMES,
        data=named_store(args.store),
    )


def evaluate_and_write(
    cohort: Cohort,
    task: Task,
    settings: EvaluationSettings,
    *,
    master_seed: int,
    checkpoint: str | Path | None,
    ssl_checkpoint: str | Path | None = None,
    out: str | Path,
    predictions: str | Path,
    sources: list[str | Path] | None = None,
    extra: dict | None = None,
    splits: pd.DataFrame | None = None,
    workers: int = 1,
    catalogue: Catalogue | None = None,
    state_dir: str | Path | None = None,
    names: dict[str, str] | None = None,
    data: str | None = None,
) -> EvaluationResult:
    """Evaluate ``task`` on ``cohort`` and write the metrics and predictions tables atomically.

    Parameters
    ----------
    cohort, task, settings, master_seed, checkpoint, ssl_checkpoint
        As for :func:`lcm.evaluate.protocol.evaluate_task`.
    out, predictions : path-like
        Parquet files to write (with JSON sidecars).
    sources : list of path-like, optional
        Input files recorded in the sidecars.
    extra : dict, optional
        Further keys of the Parquet metadata and sidecars.
    splits : pandas.DataFrame, optional
        The task's splits table, passed to :func:`~lcm.evaluate.protocol.evaluate_task`.
    workers : int, default 1
        Single-threaded processes fitting side by side (results do not depend on it).
    catalogue : Catalogue, optional
        The catalogue the cohort was loaded with; a checkpoint whose variables it defines
        otherwise is refused (:func:`~lcm.evaluate.protocol.evaluate_task`).
    state_dir : path-like, optional
        Where each finished fit is saved (:mod:`lcm.evaluate.resume`; ``lcm evaluate`` gives
        :func:`~lcm.evaluate.resume.state_folder` of ``out``): the same call after a kill
        reuses them and fits only the rest. Kept once the tables are written. None: no state.
    names : dict of str to str, optional
        How the user gave the evaluate settings (:data:`SETTINGS_NAMES` on the command line),
        named in the fold errors; None names the config's evaluate keys.
    data : str, optional
        Where the cohort's connectomes come from (``store results/store``), named when a
        checkpoint of another atlas or ROI count is refused
        (:func:`~lcm.evaluate.protocol.evaluate_task`).

    Returns
    -------
    EvaluationResult
    """
    # The state's lock is held until the tables are written: a second run of this --out is
    # refused meanwhile (lcm.evaluate.resume).
    with contextlib.ExitStack() as stack:
        state = None
        if state_dir is not None:
            fields = _state_fields(
                cohort,
                task,
                settings,
                master_seed,
                catalogue,
                splits,
                sources,
                checkpoint,
                ssl_checkpoint,
            )
            state = stack.enter_context(open_state(state_dir, fields, fit_compute(settings)))
        result = evaluate_task(
            cohort,
            task,
            settings,
            master_seed,
            checkpoint,
            ssl_checkpoint,
            splits=splits,
            workers=workers,
            catalogue=catalogue,
            state=state,
            names=names,
            data=data,
        )
        meta = evaluation_record(
            task,
            settings,
            result,
            master_seed=master_seed,
            checkpoint=checkpoint,
            ssl_checkpoint=ssl_checkpoint,
            splits_table=splits.attrs.get("source") if splits is not None else None,
            extra=extra,
        )
        tables = [Path(out), Path(predictions)]
        # Both or neither, with their records (the fits stay in the state: the rerun writes
        # them at once): a full disk or a SIGTERM at a record (written after the set) left
        # this run's tables beside the earlier run's records, or a first run's without any.
        with (
            WritingStopped("lcm evaluate", tables),
            written_together([*tables, *map(provenance_path, tables)]) as written,
        ):
            for path, table in zip(tables, (result.metrics, result.predictions), strict=True):
                write_tidy_parquet(path, table, meta)
                written.append(path)
            # Each record names the other (lcm.commands._outputs).
            written += record_together(tables, list(sources or []), **meta)
        if state is not None:  # the table is this run's: lcm prune-states may remove the state
            state.wrote(out)
    log.info("wrote %s (%d rows) and %s", out, len(result.metrics), predictions)
    return result


def fit_compute(settings: EvaluationSettings) -> dict[str, str] | None:
    """What this evaluation's torch fits compute with, recorded in its resumption state.

    A fit on another GPU, or with another torch, differs by rounding: a resumption with
    another is warned (:func:`lcm.evaluate.resume.open_state`). The baselines do not depend
    on either.

    Parameters
    ----------
    settings : EvaluationSettings

    Returns
    -------
    dict or None
        ``{"torch": version, "device": "cpu" | "cuda (<GPU name>)"}``, the device the fits
        pick (:func:`lcm.train.loop.pick_device`); None when no model evaluated trains with
        torch.
    """
    if not any(needs_torch(name) for name in settings.models):
        return None
    import torch

    from lcm.train.loop import pick_device

    device = pick_device(None)
    name = device.type
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    return {"torch": torch.__version__, "device": name}


def _state_fields(
    cohort: Cohort,
    task: Task,
    settings: EvaluationSettings,
    master_seed: int,
    catalogue: Catalogue | None,
    splits: pd.DataFrame | None,
    sources: list[str | Path] | None,
    checkpoint: str | Path | None,
    ssl_checkpoint: str | Path | None,
) -> dict:
    """What every fit of this evaluation depends on (:func:`lcm.evaluate.resume.run_fields`)."""
    files = [
        *map(Path, sources or []),
        *_checkpoint_files(
            str(checkpoint) if checkpoint else None, maps=bool(maps_models(settings.models))
        ),
        *_checkpoint_files(str(ssl_checkpoint) if ssl_checkpoint else None),
    ]
    # Keyed by absolute path: the same files named relative to another folder (a job script
    # run from elsewhere) are the same inputs, and keep the saved fits.
    inputs = {os.path.abspath(p): sha256_file(p) for p in dict.fromkeys(files) if p.is_file()}
    table = None
    if splits is not None:
        rows = pd.util.hash_pandas_object(splits, index=False).to_numpy()
        table = hashlib.sha256(rows.tobytes() + ",".join(map(str, splits.columns)).encode())
    return run_fields(
        task={"name": task.name, "label": task.label, "levels": task.levels, "kind": task.kind},
        settings=dataclasses.asdict(settings),
        master_seed=master_seed,
        data=cohort.fingerprint(catalogue)
        if catalogue is not None
        else data_fingerprint(cohort.ids, cohort.fc, variables=cohort.variables),
        inputs=inputs,
        splits=table.hexdigest() if table is not None else None,
        code={"lcm_version": lcm.__version__, "code_sha256": invocation_code_sha256()},
    )


def _checkpoint_files(checkpoint: str | None, maps: bool = False) -> list[Path]:
    """The checkpoint's model files, recorded as sources of the metrics.

    Not the whole folder: its lock holds the last writer's pid, its sidecars and history
    change with every run, and ``provenance verify`` reported them as changed inputs. The
    ridge maps beside it (``bei_linear.npz``, rewritten on their own by ``lcm bei-maps``) only
    with ``maps``, when a model evaluated reads them.
    """
    if not checkpoint:
        return []
    path = Path(checkpoint)
    names = MODEL_FILES if maps else tuple(n for n in MODEL_FILES if n != MAPS_FILE)
    return existing(path, names) if path.is_dir() else [path]
