"""The evaluation protocol of a task: seeds x outer folds x label fractions x models.

Outer folds are subject-level and stratified (``split: subject``), or leave-one-site-out
(``split: site``) where every run names a site. In each training fold a stratified subset of
subjects keeps its targets (the rest become unlabeled: ``y = -1``, or NaN for a continuous
target); every model is built fresh from :mod:`~lcm.evaluate.registry`, fitted on the training
fold only — its own hyper-parameters chosen by inner cross-validation inside that fold — and
scored on the test fold. Nothing about the test fold — rows, labels, statistics — reaches
``fit``, and an LCM checkpoint pretrained on the task's dataset is refused.

Windowed stores (one row per window of a run) and subjects with several runs: every training
window and run is a sample, and the test predictions of a subject's windows and runs are
averaged (:mod:`~lcm.evaluate.windows`) so that each test subject counts once in the metrics
and the predictions table. Folds are subject-level, so a subject's rows never straddle them.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from lcm.catalogue import Catalogue
from lcm.evaluate.baselines import N_PERMUTATIONS
from lcm.evaluate.compare import HEADLINE_METRIC
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    regression_metrics,
    tidy,
)
from lcm.evaluate.parallel import FitJob, run_fits
from lcm.evaluate.registry import (
    _REGISTRY,
    BASELINE_MODELS,
    CONTROL_MODELS,
    DEFAULT_MODELS,
    LCM_MODELS,
    ModelContext,
    available_models,
    largest_fraction_only,
    make_model,
    maps_models,
    model_kinds,
    models_needing_checkpoint,
    register_model,
    seed_dependent,
    unregister_model,
)
from lcm.evaluate.resume import FitState
from lcm.evaluate.splits import (
    Fold,
    check_distinct_repeats,
    labeled_subsets,
    outer_folds,
    strata,
    subject_labels,
)
from lcm.evaluate.tasks import (
    Task,
    run_names,
    target_values,
    task_from_catalogue,
    task_targets,
    unlabelled_runs,
)
from lcm.evaluate.windows import mean_per_run, run_groups, subject_groups
from lcm.exceptions import CheckpointError, ConfigError, InputDataError, LCMError
from lcm.io.run_digests import connectome_digests, decode_digests, matching_sketches
from lcm.model.checkpoint_meta import meta_path as meta_path_of
from lcm.model.checkpoint_meta import read_meta, read_meta_fields
from lcm.store.cohort import Cohort

if TYPE_CHECKING:
    from lcm.train.bei_maps import BEIMaps

log = logging.getLogger(__name__)

SPLITS = ("subject", "site")
# Re-exported: the protocol's public names in one place.
__all__ = [
    "BASELINE_MODELS",
    "CONTROL_MODELS",
    "DEFAULT_MODELS",
    "LCM_MODELS",
    "SPLITS",
    "EvaluationResult",
    "EvaluationSettings",
    "ModelContext",
    "Task",
    "available_models",
    "evaluate_task",
    "make_model",
    "models_needing_checkpoint",
    "register_model",
    "task_from_catalogue",
    "task_targets",
    "unregister_model",
]


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``evaluate`` section of the configuration.

    Attributes
    ----------
    n_folds : int
    seeds : tuple of int
        Split seeds; each gives a full cross-validation.
    label_fractions : tuple of float
        Fractions in (0, 1] of each training fold's subjects that keep their labels.
    models : tuple of str
        Registered model names.
    finetune : dict
        Passed to the LCM models.
    split : {"subject", "site"}
        Outer folds: stratified subject-level K-fold, or leave-one-site-out where every run
        names a site (else subject-level, with a warning).
    control_permutations : int
        Permuted refits per fit of the ``shuffled-labels`` control.
    """

    n_folds: int = 5
    seeds: tuple[int, ...] = (0,)
    label_fractions: tuple[float, ...] = (0.1, 1.0)
    models: tuple[str, ...] = DEFAULT_MODELS
    finetune: dict[str, Any] = field(default_factory=dict)
    split: str = "subject"
    control_permutations: int = N_PERMUTATIONS

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "--settings") -> EvaluationSettings:
        """Validate a settings mapping (defaults for absent keys).

        Parameters
        ----------
        raw : dict
            The ``evaluate`` section of the config.
        source : str, optional
            Where ``raw`` came from (a file or ``--settings``), named in errors.

        Returns
        -------
        EvaluationSettings

        Raises
        ------
        ConfigError
            Naming the key, what was expected and what was received.
        """
        allowed = {
            "n_folds",
            "seeds",
            "label_fractions",
            "models",
            "finetune",
            "split",
            "control_permutations",
        }
        unknown = sorted(set(raw) - allowed)
        if unknown:
            # As the config's schema errors say (lcm.schema_errors): each with its likely key.
            said = []
            for name in unknown:
                close = difflib.get_close_matches(str(name), sorted(allowed), n=1)
                said.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
            plural = "s" if len(said) > 1 else ""
            raise ConfigError(
                f"{source}: unknown evaluate key{plural} {', '.join(said)}.",
                hint=f"Allowed: {sorted(allowed)}.",
            )
        n_folds = raw.get("n_folds", cls.n_folds)
        if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
            raise ConfigError(f"{source}: n_folds must be an integer >= 2, got {n_folds!r}.")
        seeds = _sequence(raw, "seeds", cls.seeds, source)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ConfigError(f"{source}: seeds must be integers >= 0, got {list(seeds)}.")
        check_distinct_repeats(
            seeds,
            f"{source}: seeds",  # source names the section (evaluate) or --settings
            hint="List each seed once; add different seeds for more repeats.",
        )
        fractions = _sequence(raw, "label_fractions", cls.label_fractions, source)
        if not all(
            isinstance(f, int | float) and not isinstance(f, bool) and 0 < f <= 1 for f in fractions
        ):
            raise ConfigError(
                f"{source}: label_fractions must be numbers in (0, 1], got {list(fractions)}."
            )
        # Refused, not deduplicated: a fraction listed twice is a typo (0.1 for 0.01) as often
        # as a copy, and dropping it silently ran fewer fractions than the config says.
        distinct = sorted({float(f) for f in fractions})  # 1 and 1.0 are one fraction
        check_distinct_repeats(
            [float(f) for f in fractions],
            f"{source}: label_fractions",
            hint=f"List each fraction once, e.g. label_fractions: {distinct}.",
        )
        models = _sequence(raw, "models", cls.models, source)
        unknown_models = [m for m in models if m not in _REGISTRY]
        if unknown_models or len(set(models)) != len(models):
            raise ConfigError(
                f"{source}: models must be distinct registered names, got {list(models)}.",
                hint=f"Registered: {available_models()}.",
            )
        finetune = raw.get("finetune", {})
        if not isinstance(finetune, dict):
            raise ConfigError(f"{source}: finetune must be a mapping, got {finetune!r}.")
        split = raw.get("split", cls.split)
        if split not in SPLITS:
            raise ConfigError(f"{source}: split must be one of {list(SPLITS)}, got {split!r}.")
        permutations = raw.get("control_permutations", cls.control_permutations)
        if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
            raise ConfigError(
                f"{source}: control_permutations must be an integer >= 1, got {permutations!r}."
            )
        return cls(
            n_folds=n_folds,
            seeds=tuple(seeds),
            label_fractions=tuple(sorted(float(f) for f in fractions)),
            models=tuple(models),
            finetune=dict(finetune),
            split=split,
            control_permutations=permutations,
        )


def _sequence(raw: dict[str, Any], key: str, default: tuple, source: str) -> tuple:
    value = raw.get(key, default)
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty list, got {value!r}.")
    return tuple(value)


@dataclass
class EvaluationResult:
    """Tidy tables of one task's evaluation and what the protocol decided on the way.

    Attributes
    ----------
    metrics, predictions : pandas.DataFrame
    n_runs : int
        Runs evaluated (a run cut into windows counts once, as in every count here).
    n_dropped : int
        Runs dropped for a missing target.
    runs_dropped : list of dict
        The runs and subjects dropped before any split, by reason
        (:func:`lcm.evaluate.tasks.unlabelled_runs`): counts and IDs.
    split : str
        Outer split actually used (``subject`` or ``site``).
    models : list of str
        Models evaluated; ``skipped`` maps the others to the reason.
    n_runs_tested : int
        Runs in a test fold of at least one seed (leave-site-out may skip a site).
    sites_not_tested : dict
        ``site -> {"subjects": n, "runs": n}`` of the sites no fold tested (leave-site-out
        skips a site whose removal leaves a class without training subjects).
    n_fits_not_repeated : int
        Fits of models that ignore their seed (registry's ``seed_dependent`` False: CPM) left
        out because an earlier seed had the same training fold, test fold and labelled subset
        at the same label fraction (leave-site-out folds do not change with the seed): their
        refit would be identical. A model whose fit depends on its seed is refitted with each
        seed there, its spread the training variance. Two fractions of one seed and fold that
        label the same subjects (each class keeps at least 2) are not left out: the one fit
        gives both fractions their rows.
    models_not_repeated : list of str
        The models whose fits ``n_fits_not_repeated`` counts (in the order of ``models``).
    folds_one_class : list of dict
        ``{"seed", "fold", "sites", "subjects", "label"}`` of each test fold of a binary task
        that holds one class only: its AUC is undefined, so summaries average the AUC of the
        other folds (a leave-site-out site of controls only).
    control_permutations : dict
        ``model -> n`` of each shuffled-label control: the permutations whose metrics each
        of its fold values averages (counted from its fits' prediction rows), while the
        predictions table keeps the first only.
    permutation_scores : list of dict
        ``{"task", "model", "label_fraction", "seed", "fold", "metric", "values"}`` of every
        fit of a shuffled-label control, one per row key of the tables: ``values`` holds the
        headline metric (AUC, Pearson r) of each permuted model on the fold's test subjects,
        in permutation order (NaN as None), the null distribution behind
        :func:`lcm.evaluate.compare.permutation_tests`.
    labelled_subjects : list of dict
        ``{"seed", "fold", "label_fraction", "labelled", "training"}`` of every training fold
        and label fraction with rows in the tables: ``labelled`` and ``training`` map each class
        (a binary task's level, a continuous one's half) to its subjects that kept their label
        and to all its subjects of the training fold. Each class keeps at least 2, so in small
        folds the fraction labelled is larger than the nominal one.
    pseudo_labels : list of dict
        ``{"task", "model", "label_fraction", "seed", "fold", "diagnosis",
        "bei_targets_filled"}`` of every fit of a model that reports its pseudo-labels (the
        LCM variants: :meth:`lcm.train.finetuned.FinetunedLCM.pseudo_label_record`), one per
        row key of the tables: ``diagnosis`` is what its confident diagnosis pseudo-labelling
        did (``status``: ``made`` or why not; ``threshold``, ``thresholds`` per level,
        ``threshold_source``, ``inner_validation_subjects``, ``n_unlabeled`` and
        ``n_pseudo_labelled`` subjects, ``pseudo_labelled_subjects`` per level: a report can
        show them by class), ``bei_targets_filled`` the training rows per
        BEI variable whose missing value was pseudo-filled (None: off). The pseudo-label gain
        (lcm − lcm-no-pseudo) measures nothing where ``n_pseudo_labelled`` is 0.
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    n_runs: int = 0
    n_dropped: int = 0
    runs_dropped: list[dict[str, Any]] = field(default_factory=list)
    split: str = "subject"
    models: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    n_runs_tested: int = 0
    sites_not_tested: dict[str, dict[str, int]] = field(default_factory=dict)
    n_fits_not_repeated: int = 0
    models_not_repeated: list[str] = field(default_factory=list)
    folds_one_class: list[dict[str, Any]] = field(default_factory=list)
    control_permutations: dict[str, int] = field(default_factory=dict)
    permutation_scores: list[dict[str, Any]] = field(default_factory=list)
    labelled_subjects: list[dict[str, Any]] = field(default_factory=list)
    pseudo_labels: list[dict[str, Any]] = field(default_factory=list)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers (master seed, split seed, fold ...).

    Parameters
    ----------
    *parts : int
        The integers, in order (each order gives another seed).

    Returns
    -------
    int
    """
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)


def _skip_without_maps(
    task: Task,
    models: list[str],
    skipped: dict[str, str],
    checkpoint: str | Path | None,
    cohort: Cohort,
) -> tuple[list[str], BEIMaps | None]:
    """``models`` less the readers of the BEI ridge maps when the maps map no variable, each
    added to ``skipped`` with the reason (:func:`lcm.evaluate.bei_linear.no_maps_reason`),
    and the maps the readers kept are to use (``None`` without a reader or a checkpoint).

    The maps are loaded and checked here, once, before any fold: maps of other data or ROIs
    stop the task at once rather than at its first fit, and every fit reads the same maps
    (without a checkpoint, the readers' own factories refuse).
    """
    readers = maps_models(models)
    if not readers or checkpoint is None:
        return models, None
    from lcm.evaluate.bei_linear import MAPS_FILE, load_maps, no_maps_reason

    maps = load_maps(checkpoint, atlas=cohort.atlas, roi_names=list(cohort.roi_names))
    reason = no_maps_reason(maps, Path(checkpoint) / MAPS_FILE)
    if reason is None:
        return models, maps
    log.warning("task %s: skipping %s: %s", task.name, ", ".join(readers), reason)
    skipped.update(dict.fromkeys(readers, reason))
    kept = [m for m in models if m not in readers]
    if not kept:
        raise ConfigError(
            f"Task {task.name!r}: evaluate.models {list(models)} leaves nothing to evaluate: "
            f"{', '.join(readers)} skipped, as {reason}.",
            hint="Add a model that needs no ridge maps (logreg or ridge) to evaluate.models.",
        )
    return kept, None


def check_pretraining_excludes(
    checkpoint: str | Path, datasets: list[str], cohort: Cohort | None = None
) -> None:
    """Refuse a checkpoint whose pretraining data include a downstream dataset, or (given the
    task's ``cohort``) any of its runs, found by content whatever the dataset was called:
    the same bytes (``run_digests``) or the same values to within rounding (``run_sketches``,
    :func:`lcm.io.run_digests.matching_sketches`).

    Parameters
    ----------
    checkpoint : path-like
        The pretraining checkpoint folder (its ``model.json`` records the data it saw).
    datasets : list of str
        The task's dataset names.
    cohort : Cohort, optional
        The task's runs, compared by content with the checkpoint's recorded runs; without it,
        the dataset names only.

    Raises
    ------
    ConfigError
        When ``model.json`` lists one of ``datasets`` among its training datasets, or when it
        is missing or names no datasets: what the checkpoint saw cannot be told, and its
        ridge maps (``bei-linear``) were used without the check. Also when the checkpoint is
        a finetuned one, or (given ``cohort``) was pretrained on any of its runs.
    """
    meta_path = meta_path_of(checkpoint)
    try:
        meta = read_meta_fields(checkpoint, missing_ok=True)
        damage = ""
    except CheckpointError as exc:
        meta, damage = None, f" ({exc.message})"
    if meta is not None and meta.get("kind") == "finetuned":
        # A finetuned checkpoint records its pretraining folder, not the data: evaluation
        # finetunes from a pretrained one itself, fold by fold.
        source = meta.get("pretrained_from")
        raise ConfigError(
            f"Checkpoint {checkpoint} is a finetuned checkpoint (lcm finetune); lcm evaluate "
            "finetunes from a pretrained one in every fold.",
            hint="Pass the folder `lcm pretrain` wrote"
            + (f" (this one was finetuned from {source})" if isinstance(source, str) else "")
            + ".",
        )
    try:
        seen = meta["data"]["datasets"]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Checkpoint {checkpoint}: {meta_path} is missing, unreadable or names no "
            "pretraining datasets, so it cannot be checked that pretraining never saw this "
            f"task's test subjects{damage}.",
            hint="Use the folder `lcm pretrain` wrote (model.json beside model.safetensors "
            "and bei_linear.npz).",
        ) from None
    overlap = sorted(set(seen) & set(datasets))
    if overlap:
        raise ConfigError(
            f"Checkpoint {checkpoint} was pretrained on {overlap}, the dataset of this task: "
            "its test subjects were seen in pretraining.",
            hint="Give the task's dataset role: downstream in the config, so pretraining never "
            f"reads it; or, from the CLI, pretrain without {' '.join(overlap)} in "
            "`lcm pretrain --datasets`.",
        )
    data = meta["data"] if isinstance(meta["data"], dict) else {}
    recorded = data.get("run_digests")
    if cohort is None or not recorded:  # checkpoints before run digests: the names only
        return
    shared = np.isin(connectome_digests(cohort.fc), decode_digests(recorded))
    how = "the same connectomes"
    sketches = data.get("run_sketches")  # checkpoints before sketches: exact copies only
    if not shared.any() and isinstance(sketches, dict):
        shared = matching_sketches(cohort.fc, sketches)
        how = "the same connectomes up to rounding (written out and read back, e.g. as TSV)"
    if shared.any():
        subjects = sorted(set(cohort.groups[shared].tolist()))
        raise ConfigError(
            f"Checkpoint {checkpoint} was pretrained on {int(shared.sum())} run(s) of this "
            f"task's {len(subjects)} subject(s) (e.g. {subjects[:3]}): {how}, "
            f"under the dataset name(s) {seen}.",
            hint="A dataset is in the config twice (under two names, two paths to the same "
            "files, or its connectomes exported and imported again): keep the task's copy "
            "role: downstream only, and pretrain again.",
        )


def check_checkpoint_fits(
    checkpoint: str | Path,
    cohort: Cohort,
    catalogue: Catalogue | None = None,
    data: str | None = None,
) -> None:
    """Refuse, before any fit, a checkpoint of another atlas, ROI count, ROI order or catalogue.

    The checks are :func:`lcm.model.checkpoint.check_fits`, the same as ``lcm finetune`` and
    ``lcm embed`` run; only ``model.json`` is read (not the weights).

    Parameters
    ----------
    checkpoint : path-like
        A pretraining checkpoint folder.
    cohort : Cohort
        The task's runs: its ``atlas``, ROI count and ``roi_names``.
    catalogue : Catalogue, optional
        The task's catalogue: each variable the checkpoint has queries for must mean the same
        there (kind, levels, units). Not checked when omitted.
    data : str, optional
        Where the cohort's connectomes come from (``store results/store``), named in the
        errors about the atlas and the ROIs (:func:`lcm.model.checkpoint.check_fits`).

    Raises
    ------
    CheckpointError
        A mismatch, or a ``model.json`` that cannot be read.
    """
    # Imported here: the baselines run without torch, which the checkpoint module imports.
    from lcm.model.checkpoint import check_fits

    check_fits(
        checkpoint,
        read_meta(checkpoint),
        atlas=cohort.atlas,
        n_rois=cohort.fc.shape[1],
        roi_names=list(cohort.roi_names),
        catalogue=catalogue,
        data=data,
    )


def choose_folds(
    y_strata: np.ndarray,
    groups: np.ndarray,
    sites: np.ndarray,
    settings: EvaluationSettings,
    seed: int,
    splits: pd.DataFrame | None = None,
    repeat: int = 0,
    names: Mapping[str, str] | None = None,
) -> tuple[str, list[Fold]]:
    """The outer folds: leave-one-site-out when asked and possible, else subject-level.

    Read from the task's ``splits`` table (``lcm splits``) when given, else computed the same
    way (:func:`lcm.evaluate.splits.outer_folds`).

    Parameters
    ----------
    y_strata, groups, sites : numpy.ndarray, shape (n_runs,)
        Strata (:func:`lcm.evaluate.splits.strata`), subject key and site per run.
    settings : EvaluationSettings
        Gives ``split`` and ``n_folds``.
    seed : int
        Shuffle seed of this repeat, used without a table.
    splits : pandas.DataFrame, optional
        The task's splits table; its ``attrs["source"]`` names it in errors.
    repeat : int, default 0
        The ``evaluate.seeds`` entry, selecting the table's rows.
    names : mapping of str to str, optional
        How the user gave the evaluate settings (:func:`lcm.evaluate.splits.setting_names`:
        ``lcm evaluate`` names the keys of its ``--settings``), named in the fold errors; None
        names their config keys (a workflow rule's job).

    Returns
    -------
    (str, list of Fold)
        The split used (``subject`` or ``site``) and the folds.

    Raises
    ------
    InputDataError
        When the splits table does not fit the runs or ``settings``.
    """
    source = splits.attrs.get("source", "splits table") if splits is not None else ""
    return outer_folds(
        y_strata,
        groups,
        sites,
        settings.split,
        settings.n_folds,
        seed,
        splits,
        repeat,
        source,
        names,
    )


class FitProgress:
    """Log each finished fit of an evaluation at INFO: ``fit k of N (model, seed, fold, fraction)``.

    tqdm's bar is off outside a terminal, so a batch job's log of hours of fits read "fit lcm
    on 396 runs (40 labeled) in 66.79 s" forty times with no way to tell how many remained.
    """

    def __init__(
        self,
        task: str,
        jobs: list[FitJob],
        entries: list[tuple[int, dict]],
        bar: Any,
        todo: list[int] | None = None,
    ) -> None:
        # ``todo``: the indices of the fits to run (the others reused), all by default.
        self.task, self.bar = task, bar
        self.total = len(jobs) if todo is None else len(todo)
        self.keys: dict[int, dict] = {}
        for index, key in entries:
            self.keys.setdefault(index, key)
        self.done, self.start = 0, time.perf_counter()
        log.info("task %s: %d fit(s) to run", task, self.total)

    def __call__(self, index: int) -> None:
        self.done += 1
        self.bar.update(1)
        key = self.keys.get(index, {})
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.done * (self.total - self.done)
        log.info(
            "task %s: fit %d of %d (%s, seed %s, fold %s, fraction %g) done; %.0f s elapsed, "
            "~%.0f s left",
            self.task,
            self.done,
            self.total,
            key.get("model", "?"),
            key.get("seed", "?"),
            key.get("fold", "?"),
            float(key.get("label_fraction", float("nan"))),
            elapsed,
            left,
        )


def evaluate_task(
    cohort: Cohort,
    task: Task,
    settings: EvaluationSettings,
    master_seed: int,
    checkpoint: str | Path | None = None,
    ssl_checkpoint: str | Path | None = None,
    splits: pd.DataFrame | None = None,
    workers: int = 1,
    catalogue: Catalogue | None = None,
    state: FitState | None = None,
    names: Mapping[str, str] | None = None,
    data: str | None = None,
) -> EvaluationResult:
    """Run the protocol on one task.

    Parameters
    ----------
    cohort : Cohort
        Runs of the task's dataset; runs without a target are dropped.
    task : Task
    settings : EvaluationSettings
    master_seed : int
        Workflow seed; split, subset and model seeds derive from it and the split seed.
    checkpoint : path-like, optional
        Pretrained LCM checkpoint (needed by the LCM models).
    ssl_checkpoint : path-like, optional
        Self-supervised-only checkpoint (needed by ``lcm-ssl``).
    splits : pandas.DataFrame, optional
        The task's splits table (``lcm splits``, :func:`lcm.store.splits.read_splits`): outer
        folds are read from it, repeat ``seed`` per ``settings.seeds`` entry.
    workers : int, default 1
        Processes fitting models side by side (:func:`lcm.evaluate.parallel.run_fits`); each
        fit is single-threaded, so the results do not depend on ``workers``.
    catalogue : Catalogue, optional
        The catalogue the cohort was loaded with: a checkpoint whose variables mean something
        else there (kind, levels, units) is refused before any fit, and the LCM models give a
        BEI variable that a subject's dataset does not record the ``n/a`` class, as in
        pretraining. When omitted, neither: such variables are pseudo-labelled as missing.
    state : FitState, optional
        Saved fits of this evaluation (:func:`lcm.evaluate.resume.open_state`): each fit saved
        there is reused, not run again, and each fit run is saved as it finishes, so that the
        same evaluation killed and run again fits only the rest (with the same results).
    names : mapping of str to str, optional
        How the user gave the evaluate settings (:func:`lcm.evaluate.splits.setting_names`:
        ``lcm evaluate`` names the keys of its ``--settings``), named in the fold errors; None
        names their config keys (a workflow rule's job).
    data : str, optional
        Where the cohort's connectomes come from (``store results/store``), named when a
        checkpoint of another atlas or ROI count is refused (:func:`check_checkpoint_fits`).

    Returns
    -------
    EvaluationResult
        ``metrics`` with :data:`~lcm.evaluate.metrics.METRIC_COLUMNS` and ``predictions`` with
        :data:`~lcm.evaluate.metrics.PREDICTION_COLUMNS`.
    """
    present, y = target_values(cohort.variables, task)
    if not present.any():
        # Not "one class only (subjects {})", which sent users to the positive level.
        raise InputDataError(
            f"Task {task.name!r}: no labelled subject: none of the {len(present)} run(s) has a "
            f"value of {task.label!r}.",
            hint="Check the phenotype file's subject IDs against the scans and the catalogue's "
            f"column for {task.label!r}, then rerun lcm store.",
        )
    # Named, not only counted: the report lists the runs no label let in.
    dropped = [unlabelled_runs(cohort.ids, present, task)] if not present.all() else []
    cohort = cohort.subset(present)
    models = [m for m in settings.models if task.kind in model_kinds(m)]
    skipped = {
        m: f"does not handle {task.kind} targets" for m in settings.models if m not in models
    }
    if skipped:
        log.info("task %s: skipping %s", task.name, skipped)
    if not models:
        raise ConfigError(
            f"Task {task.name!r} ({task.kind}): none of evaluate.models {list(settings.models)} "
            f"handles {task.kind} targets.",
            hint="Add ridge or cpm for continuous tasks, logreg for binary ones.",
        )
    datasets = sorted(cohort.ids["dataset"].unique().tolist())
    for ckpt_path in (checkpoint, ssl_checkpoint):
        if ckpt_path is not None and models_needing_checkpoint(models):
            check_pretraining_excludes(ckpt_path, datasets, cohort)
            check_checkpoint_fits(ckpt_path, cohort, catalogue, data)
    models, maps = _skip_without_maps(task, models, skipped, checkpoint, cohort)
    also_hidden = _hidden_with_label(task.label, cohort.variables.columns, catalogue)[1:]
    if also_hidden and min(settings.label_fractions) < 1:
        log.info(
            "task %s: training runs a label fraction leaves unlabeled lose their clinical "
            "variables too (%s), as an undiagnosed subject would",
            task.name,
            ", ".join(also_hidden),
        )
    groups = cohort.groups
    sites = cohort.ids["site"].astype(str).to_numpy() if "site" in cohort.ids else None
    sites = sites if sites is not None else np.full(len(cohort), "", dtype=object)
    y_strata = strata(y)
    binary = task.kind == "binary"
    metric_rows: list[dict[str, Any]] = []
    pred_frames: list[pd.DataFrame] = []
    split_used = settings.split
    # Every fit first (cheap: indices and masks), then the fits, one after another or across
    # ``workers`` processes, then the tables in this same order: the result never depends on
    # how the fits were scheduled.
    jobs: list[FitJob] = []
    # The rows of the tables, in order: (index of the fit in ``jobs``, its key). A fraction
    # whose labelled subset is that of a smaller fraction of the same seed and fold (each
    # class keeps at least 2 subjects, so small folds repeat subsets) points at that fit: the
    # same data and model seed give the same fit, so its predictions serve both fractions.
    entries: list[tuple[int, dict[str, Any]]] = []
    tested = np.zeros(len(cohort), dtype=bool)
    # (fraction, train, test, labelled) of every fit scheduled. A seed that changes none of
    # them (the leave-site-out folds at a fraction keeping every label) refits only the models
    # whose fit depends on its seed (registry's ``seed_dependent``: the LCM variants' init and
    # dropout, the tuned baselines' inner folds), each seeded from this seed: those refits are
    # the training variance the intervals must hold. A model that ignores its seed (CPM) would
    # only copy its earlier fit, which the summary would count as new evidence: it is not
    # repeated, and compare pairs its one fit with each seed of the other model (see
    # lcm.evaluate.compare._paired_keys).
    seen: set[tuple[float, bytes, bytes, bytes]] = set()
    n_repeated = 0
    not_repeated: set[str] = set()
    labelled_subjects: list[dict[str, Any]] = []
    class_names = task.levels or (f"lower half of {task.label}", f"upper half of {task.label}")
    for split_seed in settings.seeds:
        split_used, folds = choose_folds(
            y_strata,
            groups,
            sites,
            settings,
            derived_seed(master_seed, split_seed),
            splits,
            split_seed,
            names,
        )
        for index, pair in enumerate(folds):
            train, test = pair
            # The splits table's number (the metrics' and predictions' ``fold``, and a part of
            # the fold's seeds): a site left out does not renumber the others. A plain pair
            # (a caller's own list of folds) is numbered in order.
            fold = getattr(pair, "fold", index)
            tested[test] = True
            masks = labeled_subsets(
                # The training runs' own halves: strata of the whole cohort would let the test
                # fold's values of a continuous target move the median that picks them.
                strata(y[train]),
                groups[train],
                list(settings.label_fractions),
                seed=derived_seed(master_seed, split_seed, fold, 0),
                task=task.name,
                class_names=class_names,
                n_folds=settings.n_folds if split_used == "subject" else None,
                names=names,
            )
            context = ModelContext(
                label=task.label,
                levels=task.levels,
                finetune=settings.finetune,
                seed=derived_seed(master_seed, split_seed, fold, 1),
                control_permutations=settings.control_permutations,
                checkpoint=Path(checkpoint) if checkpoint is not None else None,
                kind=task.kind,
                ssl_checkpoint=Path(ssl_checkpoint) if ssl_checkpoint is not None else None,
                atlas=cohort.atlas,
                roi_names=tuple(cohort.roi_names),
                catalogue=catalogue,
                maps=maps,
            )
            # labelled subset -> {model: index in jobs} of this seed and fold's fits
            by_subset: dict[bytes, dict[str, int]] = {}
            for fraction, mask in masks.items():
                data_key = (np.asarray(train).tobytes(), np.asarray(test).tobytes(), mask.tobytes())
                # an expensive control is fitted at the largest fraction only
                fit_models = [
                    m for m in models if not (largest_fraction_only(m) and fraction < max(masks))
                ]
                if (fraction, *data_key) in seen:
                    n_repeated += sum(not seed_dependent(m) for m in fit_models)
                    not_repeated.update(m for m in fit_models if not seed_dependent(m))
                    fit_models = [m for m in fit_models if seed_dependent(m)]
                    if not fit_models:
                        continue
                seen.add((fraction, *data_key))
                labelled_subjects.append(
                    {
                        "seed": split_seed,
                        "fold": fold,
                        "label_fraction": fraction,
                        **_labelled_counts(strata(y[train]), groups[train], mask, class_names),
                    }
                )
                same = by_subset.setdefault(mask.tobytes(), {})
                if same:
                    log.info(
                        "seed %d fold %d: label fraction %g labels the same subjects as a "
                        "smaller fraction; its fits serve both",
                        split_seed,
                        fold,
                        fraction,
                    )
                y_fit = np.where(mask, y[train], -1 if binary else np.nan)
                variables = _hide_unlabeled(
                    cohort.variables.iloc[train], task.label, mask, catalogue
                )
                log.debug(
                    "seed %d fold %d fraction %g: %d of %d training runs labeled",
                    split_seed,
                    fold,
                    fraction,
                    int(mask.sum()),
                    len(mask),
                )
                for name in fit_models:
                    key = {
                        "task": task.name,
                        "model": name,
                        "label_fraction": fraction,
                        "seed": split_seed,
                        "fold": fold,
                    }
                    if name not in same:
                        same[name] = len(jobs)
                        jobs.append(
                            FitJob(
                                name,
                                context,
                                np.asarray(train),
                                np.asarray(test),
                                y_fit,
                                variables,
                                groups[train],
                            )
                        )
                    entries.append((same[name], key))
    if n_repeated:
        log.warning(
            "task %s: %d fit(s) of models that ignore their seed not repeated: an earlier "
            "seed had the same training fold, test fold and labelled subset at the same label "
            "fraction, and their refit would be identical (with split: site, the folds do not "
            "change with the seed; only label fractions below 1 draw new subsets per seed); "
            "models whose fit depends on the seed were refitted with each seed",
            task.name,
            n_repeated,
        )
    fitted = _run_or_reuse(task.name, jobs, entries, cohort.fc, workers, state)
    fit_seconds: dict[str, float] = {}
    permutations: dict[str, int] = {}
    outputs = []  # per fit: its test subjects' rows, fold scores, predictions, null scores
    headline = HEADLINE_METRIC[task.kind]
    records = []  # per fit: its pseudo-label record (None for a model without one)
    for job, (preds, fit_s, record) in zip(jobs, fitted, strict=True):
        records.append(record)
        fit_seconds[job.name] = fit_seconds.get(job.name, 0.0) + fit_s
        # One prediction per test subject: the mean over its runs, each the mean over its
        # windows. Labels, sites and subjects are per subject, so these are the subject's.
        first, preds = mean_per_run(run_groups(cohort.ids.iloc[job.test]), preds)
        rows = job.test[first]
        first, preds = mean_per_run(subject_groups(cohort.ids.iloc[rows]), preds)
        rows = rows[first]
        # The predictions table keeps one genuine fit (a control's first permutation); the fold
        # metrics average all of them, and the report says how many (control_permutations).
        scores, per_permutation = _fold_scores(y[rows], preds, binary)
        # Each permutation's own headline metric: the null distribution of a permutation p.
        null = per_permutation[headline] if job.name in CONTROL_MODELS else None
        outputs.append((rows, scores, preds[0], null))
        if job.name in CONTROL_MODELS:
            permutations[job.name] = max(permutations.get(job.name, 0), len(preds))
    pseudo_labels = []
    permutation_scores = []
    for index, key in entries:
        if records[index] is not None:
            pseudo_labels.append({**key, **records[index]})
        rows, scores, pred, null = outputs[index]
        if null is not None:
            values = [v if np.isfinite(v) else None for v in null]
            permutation_scores.append({**key, "metric": headline, "values": values})
        for metric, value in scores.items():
            metric_rows.append({**key, "metric": metric, "value": value})
        pred_frames.append(
            pd.DataFrame(
                {
                    **key,
                    "dataset": cohort.ids["dataset"].to_numpy()[rows],
                    "subject": cohort.ids["subject"].to_numpy()[rows],
                    "site": sites[rows],
                    "y_true": y[rows],
                    "prediction": pred,
                }
            )
        )
    for name, seconds in fit_seconds.items():
        log.info("task %s: %s fits took %.1f s in all", task.name, name, seconds)
    metrics = tidy(pd.DataFrame(metric_rows), METRIC_COLUMNS, METRIC_DTYPES)
    predictions = tidy(
        pd.concat(pred_frames, ignore_index=True), PREDICTION_COLUMNS, PREDICTION_DTYPES
    )
    _log_overview(task, metrics)
    return EvaluationResult(
        metrics,
        predictions,
        n_runs=len(run_names(cohort.ids)),
        n_dropped=dropped[0]["n_runs"] if dropped else 0,
        runs_dropped=dropped,
        split=split_used,
        models=models,
        skipped=skipped,
        n_runs_tested=len(run_names(cohort.ids.loc[tested])),
        sites_not_tested=_untested_sites(sites[~tested], groups[~tested]),
        n_fits_not_repeated=n_repeated,
        models_not_repeated=[m for m in models if m in not_repeated],
        folds_one_class=_one_class_folds(predictions) if binary else [],
        control_permutations=permutations,
        permutation_scores=permutation_scores,
        labelled_subjects=labelled_subjects,
        pseudo_labels=pseudo_labels,
    )


def _run_or_reuse(
    task: str,
    jobs: list[FitJob],
    entries: list[tuple[int, dict[str, Any]]],
    fc: np.ndarray,
    workers: int,
    state: FitState | None,
) -> list[tuple[Any, ...]]:
    """What each fit returned, in the order of ``jobs``: read from ``state`` where it saved the
    fit, run otherwise (each run saved there as it finishes)."""
    reused = state.load(jobs) if state is not None else {}
    todo = [i for i in range(len(jobs)) if i not in reused]
    if state is not None:
        log.info(
            "task %s: %d of %d fit(s) reused from %s, %d to run",
            task,
            len(reused),
            len(jobs),
            state.folder,
            len(todo),
        )
    bar = tqdm(total=len(todo), desc=f"evaluate {task}", disable=not sys.stderr.isatty())
    progress = FitProgress(task, jobs, entries, bar, todo)

    def save(k: int, result: tuple[Any, ...]) -> None:
        if state is not None:
            state.save(jobs[todo[k]], result)

    with bar:
        fitted = run_fits(
            [jobs[i] for i in todo],
            fc,
            _fit_predict_timed,
            workers,
            lambda k: progress(todo[k]),
            save,
        )
    results: dict[int, tuple[Any, ...]] = {**reused, **dict(zip(todo, fitted, strict=True))}
    return [results[i] for i in range(len(jobs))]


def _labelled_counts(
    y_strata: np.ndarray, groups: np.ndarray, mask: np.ndarray, class_names: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """Subjects of each class of a training fold, and those keeping their label.

    Parameters
    ----------
    y_strata : numpy.ndarray of int, shape (n_runs,)
        Class per training run (:func:`~lcm.evaluate.splits.strata`).
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per training run.
    mask : numpy.ndarray of bool, shape (n_runs,)
        Runs that keep their label (whole subjects).
    class_names : tuple of str
        Name of each class index.

    Returns
    -------
    dict
        ``{"labelled": {class: n}, "training": {class: n}}``, subjects counted once.
    """
    labels = subject_labels(y_strata, groups)
    kept = set(np.asarray(groups)[mask].tolist())
    out: dict[str, dict[str, int]] = {"labelled": {}, "training": {}}
    for cls in range(len(class_names)):
        members = labels.index[labels == cls]
        out["labelled"][class_names[cls]] = int(sum(m in kept for m in members))
        out["training"][class_names[cls]] = len(members)
    return out


def _one_class_folds(predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Test folds whose subjects hold one class (AUC undefined), with their sites; logged."""
    out = []
    for (seed, fold), rows in predictions.groupby(["seed", "fold"], sort=True):
        if rows["y_true"].nunique() < 2:
            entry = {
                "seed": int(seed),
                "fold": int(fold),
                "sites": sorted(rows["site"].astype(str).unique().tolist()),
                "subjects": int(rows.drop_duplicates(["dataset", "subject"]).shape[0]),
                "label": int(rows["y_true"].iloc[0]),
            }
            log.warning(
                "seed %d fold %d (sites %s): its %d test subject(s) hold one class only: no "
                "AUC; summaries average the other folds'",
                entry["seed"],
                entry["fold"],
                ", ".join(entry["sites"]) or "none",
                entry["subjects"],
            )
            out.append(entry)
    return out


def _untested_sites(sites: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, int]]:
    """``site -> {"subjects": n, "runs": n}`` of runs that no test fold held."""
    frame = pd.DataFrame({"site": np.asarray(sites).astype(str), "group": groups})
    return {
        str(site): {"subjects": int(part["group"].nunique()), "runs": len(part)}
        for site, part in frame.groupby("site", sort=True)
    }


def _hide_unlabeled(
    variables: pd.DataFrame,
    label: str,
    labeled: np.ndarray,
    catalogue: Catalogue | None = None,
) -> pd.DataFrame:
    """Training variables with the task label, and every clinical variable, blanked where the
    run is unlabeled.

    Without this a model could read the withheld target back from ``variables``. A clinical
    score (ADOS, MMSE, CDR: ``domain: clinical`` in the catalogue) is collected with the
    diagnosis, so a subject the label-fraction sweep treats as undiagnosed has none either:
    kept, it would hand the LCM models (whose BEI targets it is) what the baselines never see.
    """
    out = variables.reset_index(drop=True).copy()
    for name in _hidden_with_label(label, out.columns, catalogue):
        out[name] = out[name].astype(object).where(labeled, None)
    return out


def _hidden_with_label(label: str, columns: Any, catalogue: Catalogue | None) -> list[str]:
    """The variables a run whose task label is withheld loses: the label and the catalogue's
    clinical variables among ``columns`` (only the label without a catalogue).

    Parameters
    ----------
    label : str
        The task's catalogue variable.
    columns : iterable of str
        The variables table's columns.
    catalogue : Catalogue or None
        The catalogue the cohort was loaded with.

    Returns
    -------
    list of str
        ``label`` first, then the clinical variables in column order.
    """
    clinical = (
        {name for name, var in catalogue.variables.items() if var.domain == "clinical"}
        if catalogue is not None
        else set()
    )
    return [label] + [c for c in columns if c in clinical and c != label]


def _fit_predict_timed(
    name: str,
    context: ModelContext,
    fc_train: np.ndarray,
    y_fit: np.ndarray,
    variables: pd.DataFrame,
    groups: np.ndarray,
    fc_test: np.ndarray,
) -> tuple[np.ndarray, float, dict[str, Any] | None]:
    """Fit a fresh model ``name`` on the training fold; its test predictions, fit seconds and
    pseudo-label record.

    Predictions are ``(P, n_test)``: P(positive) or predicted values, one row per fitted model — one
    row, or one per permutation for a model with ``permutation_predictions`` (the control). The
    record is the model's ``pseudo_label_record()`` (the LCM variants), None for a model
    without one; it travels back from a worker with the predictions.
    """
    model = make_model(name, context)
    start = time.perf_counter()
    if accepts_groups(model):
        # Every inner split (hyper-parameters, pseudo-label threshold) keeps a subject whole.
        model.fit(fc_train, y_fit, variables, groups=groups)
    else:
        model.fit(fc_train, y_fit, variables)
    fit_s = time.perf_counter() - start
    n_labeled = int(np.isfinite(y_fit).sum() if context.kind != "binary" else (y_fit >= 0).sum())
    binary = context.kind == "binary"
    expected: tuple[int, ...] = (len(fc_test), 2) if binary else (len(fc_test),)
    if hasattr(model, "permutation_predictions"):
        proba = np.asarray(model.permutation_predictions(fc_test), dtype=float)
        expected = (len(proba), *expected)
    elif binary:
        proba = np.asarray(model.predict_proba(fc_test), dtype=float)[None]  # type: ignore[attr-defined]
        expected = (1, *expected)
    else:
        proba = np.asarray(model.predict(fc_test), dtype=float)[None]  # type: ignore[attr-defined]
        expected = (1, *expected)
    if proba.shape != expected or not np.isfinite(proba).all():
        raise LCMError(
            f"Model {name!r}: prediction of shape {proba.shape} (finite: "
            f"{bool(np.isfinite(proba).all())}), expected finite {expected}.",
            hint="A registered model returns class probabilities (column 1 the positive) for a "
            "binary task, one value per run for a continuous one.",
        )
    log.info("fit %s on %d runs (%d labeled) in %.2f s", name, len(y_fit), n_labeled, fit_s)
    report = getattr(model, "pseudo_label_record", None)
    record = report() if callable(report) else None
    return (proba[..., 1] if binary else proba), fit_s, record


def accepts_groups(model: object) -> bool:
    """Whether ``model.fit`` takes ``groups=`` (declared by ``uses_groups`` or its signature).

    Parameters
    ----------
    model : object
        A protocol model.

    Returns
    -------
    bool
    """
    if getattr(model, "uses_groups", False):
        return True
    try:
        return "groups" in inspect.signature(model.fit).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False


def _fold_scores(
    y_true: np.ndarray, preds: np.ndarray, binary: bool
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics of one fit, averaged over its prediction rows (the control's permutations),
    and each metric's value per row.

    Averaging the metric (not the predictions) keeps each permutation a genuine null model;
    an average of random models' predictions is not itself a draw from the null.
    """
    per_row = [
        binary_metrics(y_true, p) if binary else regression_metrics(y_true, p) for p in preds
    ]
    out, rows = {}, {}
    for metric in per_row[0]:
        values = np.array([r[metric] for r in per_row], dtype=float)
        finite = values[np.isfinite(values)]
        out[metric] = float(finite.mean()) if finite.size else float("nan")
        rows[metric] = values.tolist()
    return out, rows


def _log_overview(task: Task, metrics: pd.DataFrame) -> None:
    main = "auc" if task.kind == "binary" else "pearson_r"
    means = metrics[metrics["metric"] == main].groupby(["model", "label_fraction"])["value"]
    for (model, fraction), value in means.mean().items():
        log.info(
            "task %s: %s at label fraction %g: mean %s %.3f",
            task.name,
            model,
            fraction,
            main,
            value,
        )
