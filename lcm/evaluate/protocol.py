"""The evaluation protocol of a task: seeds x subject-level folds x label fractions x models.

For each seed the runs are split into stratified subject-level folds; in each training fold a
stratified subset of subjects keeps its labels (the rest become unlabeled, ``y = -1``); every
model is built fresh from the registry, fitted on the training fold only and scored on the test
fold. Nothing about the test fold — rows, labels, statistics — reaches ``fit``.

Models come from a registry of factories (``name -> factory(ModelContext)``), so a test or a
user can add a cheap estimator with :func:`register_model`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from lcm.evaluate.baselines import ConnectomeLogReg, ShuffledLabels
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    tidy,
)
from lcm.evaluate.splits import labeled_subsets, subject_folds
from lcm.exceptions import ConfigError, InputDataError, LCMError
from lcm.store.catalogue import Catalogue
from lcm.store.cohort import Cohort

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("logreg", "lcm", "lcm-no-pseudo", "lcm-scratch", "shuffled-labels")
# Models that are not LCM: the report sets them beside every LCM number.
BASELINE_MODELS = ("logreg", "shuffled-labels")


class Classifier(Protocol):
    """What the protocol needs of a model."""

    def fit(self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame) -> Any:
        """Fit on ``fc (n, R, R)``; ``y`` is 0/1, or -1 for unlabeled runs."""

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """``(n, 2)`` class probabilities, column 1 the positive class."""


@dataclass(frozen=True)
class ModelContext:
    """Everything a model factory may use to build one model for one fit.

    Attributes
    ----------
    label : str
        Catalogue variable of the task.
    levels : tuple of str
        ``(negative, positive)`` levels of ``label``.
    finetune : dict
        The ``evaluate.finetune`` settings.
    seed : int
        Seed of this fit (derived from the master seed, split seed and fold).
    checkpoint : pathlib.Path or None
        Pretrained LCM checkpoint folder.
    """

    label: str
    levels: tuple[str, str]
    finetune: dict[str, Any]
    seed: int
    checkpoint: Path | None = None


ModelFactory = Callable[[ModelContext], Classifier]
_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory, *, replace: bool = False) -> None:
    """Add a model factory under ``name``.

    Parameters
    ----------
    name : str
        Model name used in settings and in the ``model`` column of the tables.
    factory : callable
        ``factory(ModelContext) -> Classifier``, called once per fit.
    replace : bool, default False
        Allow replacing an existing entry.
    """
    if name in _REGISTRY and not replace:
        raise ConfigError(
            f"A model named {name!r} is already registered.",
            hint="Choose another name or pass replace=True.",
        )
    _REGISTRY[name] = factory


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent)."""
    _REGISTRY.pop(name, None)


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(_REGISTRY)


def make_model(name: str, context: ModelContext) -> Classifier:
    """A fresh, unfitted model ``name`` built for ``context``."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"Unknown model {name!r} in evaluate.models (registered: {available_models()}).",
            hint=f"Use some of {list(DEFAULT_MODELS)}.",
        )
    return _REGISTRY[name](context)


def _logreg(context: ModelContext) -> Classifier:
    return ConnectomeLogReg(seed=context.seed)


def _shuffled_labels(context: ModelContext) -> Classifier:
    return ShuffledLabels(ConnectomeLogReg(seed=context.seed), seed=context.seed)


def _lcm_factory(init: str, pseudo_labels: bool | None) -> ModelFactory:
    """Factory of an LCM variant; ``pseudo_labels=None`` keeps the configured setting."""

    def factory(context: ModelContext) -> Classifier:
        if context.checkpoint is None:
            raise ConfigError(
                "LCM models need a pretrained checkpoint, but none was given.",
                hint="Pass --checkpoint DIR, or evaluate baselines only (evaluate.models).",
            )
        # Imported here so that baselines run (and tests pass) without the training stack.
        try:
            from lcm.train.finetune import LCMClassifier
        except ImportError as exc:
            raise ConfigError(
                f"LCM models need lcm.train.finetune.LCMClassifier, which failed to import: {exc}",
                hint="Install the complete lcm package, or evaluate baselines only.",
            ) from exc
        settings = dict(context.finetune)
        if pseudo_labels is not None:
            settings["pseudo_labels"] = pseudo_labels
        return LCMClassifier(
            context.checkpoint,
            context.label,
            levels=context.levels,
            settings=settings,
            seed=context.seed,
            init=init,
        )

    return factory


register_model("logreg", _logreg)
register_model("shuffled-labels", _shuffled_labels)
register_model("lcm", _lcm_factory("pretrained", None))
register_model("lcm-no-pseudo", _lcm_factory("pretrained", False))
register_model("lcm-scratch", _lcm_factory("scratch", None))


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
    """

    n_folds: int = 5
    seeds: tuple[int, ...] = (0,)
    label_fractions: tuple[float, ...] = (0.1, 1.0)
    models: tuple[str, ...] = DEFAULT_MODELS
    finetune: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "--settings") -> EvaluationSettings:
        """Validate a settings mapping (defaults for absent keys).

        Raises
        ------
        ConfigError
            Naming the key, what was expected and what was received.
        """
        allowed = {"n_folds", "seeds", "label_fractions", "models", "finetune"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ConfigError(
                f"{source}: unknown evaluate keys {unknown}.", hint=f"Allowed: {sorted(allowed)}."
            )
        n_folds = raw.get("n_folds", cls.n_folds)
        if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
            raise ConfigError(f"{source}: n_folds must be an integer >= 2, got {n_folds!r}.")
        seeds = _sequence(raw, "seeds", cls.seeds, source)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ConfigError(f"{source}: seeds must be integers >= 0, got {list(seeds)}.")
        fractions = _sequence(raw, "label_fractions", cls.label_fractions, source)
        if not all(
            isinstance(f, int | float) and not isinstance(f, bool) and 0 < f <= 1 for f in fractions
        ):
            raise ConfigError(
                f"{source}: label_fractions must be numbers in (0, 1], got {list(fractions)}."
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
        return cls(
            n_folds=n_folds,
            seeds=tuple(seeds),
            label_fractions=tuple(sorted(float(f) for f in set(fractions))),
            models=tuple(models),
            finetune=dict(finetune),
        )


def _sequence(raw: dict[str, Any], key: str, default: tuple, source: str) -> tuple:
    value = raw.get(key, default)
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty list, got {value!r}.")
    return tuple(value)


@dataclass(frozen=True)
class Task:
    """A binary disease task: ``label`` of the catalogue, ``positive`` against ``negative``."""

    name: str
    label: str
    negative: str
    positive: str

    @property
    def levels(self) -> tuple[str, str]:
        """``(negative, positive)``."""
        return (self.negative, self.positive)


def task_from_catalogue(name: str, label: str, positive: str, catalogue: Catalogue) -> Task:
    """Build a :class:`Task`, the negative level being the label's other catalogue level.

    Raises
    ------
    ConfigError
        When ``label`` is not a binary catalogue variable or ``positive`` not one of its levels.
    """
    var = catalogue.variables.get(label)
    if var is None:
        raise ConfigError(
            f"Task {name!r}: label {label!r} is not in the variable catalogue {catalogue.path} "
            f"(has {sorted(catalogue.variables)}).",
            hint="Set tasks.<name>.label to a binary clinical variable of the catalogue.",
        )
    if var.kind != "binary" or positive not in var.levels:
        raise ConfigError(
            f"Task {name!r}: label {label!r} must be binary with {positive!r} among its levels; "
            f"the catalogue {catalogue.path} has kind {var.kind!r}, levels {list(var.levels)}.",
            hint=f"Set tasks.{name}.positive to one of {list(var.levels)}.",
        )
    negative = next(level for level in var.levels if level != positive)
    return Task(name=name, label=label, negative=negative, positive=positive)


def task_targets(cohort: Cohort, task: Task) -> tuple[Cohort, np.ndarray]:
    """Runs with a label and their 0/1 targets; runs with a missing label are dropped.

    Raises
    ------
    InputDataError
        When the label column is absent or holds a value other than the two levels.
    """
    if task.label not in cohort.variables:
        raise InputDataError(
            f"Task {task.name!r}: the cohort has no variable {task.label!r} "
            f"(has {list(cohort.variables.columns)}).",
            hint="Check the catalogue maps this variable for the task's dataset.",
        )
    values = cohort.variables[task.label]
    present = values.notna().to_numpy()
    bad = sorted({str(v) for v in values[present] if v not in task.levels})
    if bad:
        raise InputDataError(
            f"Task {task.name!r}: variable {task.label!r} holds {bad}, expected only "
            f"{list(task.levels)} or missing.",
            hint="Fix the catalogue's map for this dataset's diagnosis column.",
        )
    dropped = int((~present).sum())
    if dropped:
        log.info("task %s: dropped %d run(s) with no %r label", task.name, dropped, task.label)
    kept = cohort.subset(present)
    y = (kept.variables[task.label] == task.positive).to_numpy().astype(int)
    return kept, y


@dataclass
class EvaluationResult:
    """Tidy tables of one task's evaluation."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    n_dropped: int = 0


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers (master seed, split seed, fold ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFFFFFF)


def evaluate_task(
    cohort: Cohort,
    task: Task,
    settings: EvaluationSettings,
    master_seed: int,
    checkpoint: str | Path | None = None,
) -> EvaluationResult:
    """Run the protocol on one task.

    Parameters
    ----------
    cohort : Cohort
        Runs of the task's dataset; runs without a label are dropped.
    task : Task
    settings : EvaluationSettings
    master_seed : int
        Workflow seed; split, subset and model seeds derive from it and the split seed.
    checkpoint : path-like, optional
        Pretrained LCM checkpoint (needed by the LCM models only).

    Returns
    -------
    EvaluationResult
        ``metrics`` with :data:`~lcm.evaluate.metrics.METRIC_COLUMNS` and ``predictions`` with
        :data:`~lcm.evaluate.metrics.PREDICTION_COLUMNS`.
    """
    n_before = len(cohort)
    cohort, y = task_targets(cohort, task)
    groups = cohort.groups
    ckpt = Path(checkpoint) if checkpoint is not None else None
    metric_rows: list[dict[str, Any]] = []
    pred_frames: list[pd.DataFrame] = []
    n_fits = len(settings.seeds) * settings.n_folds * len(settings.label_fractions)
    n_fits *= len(settings.models)
    bar = tqdm(total=n_fits, desc=f"evaluate {task.name}", disable=not sys.stderr.isatty())
    with bar:
        for split_seed in settings.seeds:
            folds = subject_folds(
                y, groups, settings.n_folds, derived_seed(master_seed, split_seed)
            )
            for fold, (train, test) in enumerate(folds):
                masks = labeled_subsets(
                    y[train],
                    groups[train],
                    list(settings.label_fractions),
                    seed=derived_seed(master_seed, split_seed, fold, 0),
                )
                context = ModelContext(
                    label=task.label,
                    levels=task.levels,
                    finetune=settings.finetune,
                    seed=derived_seed(master_seed, split_seed, fold, 1),
                    checkpoint=ckpt,
                )
                for fraction, mask in masks.items():
                    y_fit = np.where(mask, y[train], -1)
                    variables = _hide_unlabeled(cohort.variables.iloc[train], task.label, mask)
                    log.debug(
                        "seed %d fold %d fraction %g: %d of %d training runs labeled",
                        split_seed, fold, fraction, int(mask.sum()), len(mask),
                    )  # fmt: skip
                    for name in settings.models:
                        p_pos = _fit_predict(
                            name, context, cohort.fc[train], y_fit, variables, cohort.fc[test]
                        )
                        key = {
                            "task": task.name, "model": name, "label_fraction": fraction,
                            "seed": split_seed, "fold": fold,
                        }  # fmt: skip
                        for metric, value in binary_metrics(y[test], p_pos).items():
                            metric_rows.append({**key, "metric": metric, "value": value})
                        pred_frames.append(
                            pd.DataFrame(
                                {
                                    **key,
                                    "dataset": cohort.ids["dataset"].to_numpy()[test],
                                    "subject": cohort.ids["subject"].to_numpy()[test],
                                    "y_true": y[test],
                                    "p_positive": p_pos,
                                }
                            )
                        )
                        bar.update(1)
    metrics = tidy(pd.DataFrame(metric_rows), METRIC_COLUMNS, METRIC_DTYPES)
    predictions = tidy(
        pd.concat(pred_frames, ignore_index=True), PREDICTION_COLUMNS, PREDICTION_DTYPES
    )
    _log_overview(task, metrics)
    return EvaluationResult(metrics, predictions, n_dropped=n_before - len(cohort))


def _hide_unlabeled(variables: pd.DataFrame, label: str, labeled: np.ndarray) -> pd.DataFrame:
    """Training variables with the task label blanked where the run is unlabeled.

    Without this a model could read the withheld diagnosis back from ``variables``.
    """
    out = variables.reset_index(drop=True).copy()
    out[label] = out[label].astype(object).where(labeled, None)
    return out


def _fit_predict(
    name: str,
    context: ModelContext,
    fc_train: np.ndarray,
    y_fit: np.ndarray,
    variables: pd.DataFrame,
    fc_test: np.ndarray,
) -> np.ndarray:
    """Fit a fresh model ``name`` on the training fold and return P(positive) on the test fold."""
    model = make_model(name, context)
    start = time.perf_counter()
    model.fit(fc_train, y_fit, variables)
    fit_s = time.perf_counter() - start
    proba = np.asarray(model.predict_proba(fc_test), dtype=float)
    if proba.shape != (len(fc_test), 2) or not np.isfinite(proba).all():
        raise LCMError(
            f"Model {name!r}: predict_proba returned shape {proba.shape} (finite: "
            f"{bool(np.isfinite(proba).all())}), expected finite ({len(fc_test)}, 2).",
            hint="A registered model must return class probabilities, column 1 the positive.",
        )
    log.info(
        "fit %s on %d runs (%d labeled) in %.2f s",
        name, len(y_fit), int((y_fit >= 0).sum()), fit_s,
    )  # fmt: skip
    return proba[:, 1]


def _log_overview(task: Task, metrics: pd.DataFrame) -> None:
    auc = metrics[metrics["metric"] == "auc"].groupby(["model", "label_fraction"])["value"].mean()
    for (model, fraction), value in auc.items():
        log.info(
            "task %s: %s at label fraction %g: mean AUC %.3f", task.name, model, fraction, value
        )


def models_needing_checkpoint(models: Iterable[str]) -> list[str]:
    """The LCM variants among ``models`` (they need ``--checkpoint``)."""
    return [m for m in models if m.startswith("lcm")]
