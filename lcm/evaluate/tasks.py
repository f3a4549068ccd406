"""Downstream tasks: a catalogue variable of one dataset, binary (a diagnosis) or continuous."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lcm.catalogue import Catalogue
from lcm.exceptions import ConfigError, InputDataError
from lcm.store.cohort import Cohort

log = logging.getLogger(__name__)

CONTINUOUS_KINDS = ("continuous", "ordinal")
# How ``lcm evaluate`` and ``lcm splits --task`` name a task's settings to a command-line user
# (:func:`task_from_catalogue`); under a workflow rule they are the config's tasks.<name> keys.
TASK_OPTION_NAMES = {"label": "--label", "positive": "--positive"}


@dataclass(frozen=True)
class Task:
    """A task: ``label`` of the catalogue; binary (``positive`` against ``negative``) or
    continuous (``negative`` and ``positive`` are ``None``)."""

    name: str
    label: str
    negative: str | None = None
    positive: str | None = None
    kind: str = "binary"

    @property
    def levels(self) -> tuple[str, ...]:
        """``(negative, positive)`` for a binary task, ``()`` for a continuous one."""
        if self.kind != "binary":
            return ()
        return (str(self.negative), str(self.positive))


def task_from_catalogue(
    name: str,
    label: str,
    positive: str | None,
    catalogue: Catalogue,
    names: Mapping[str, str] | None = None,
) -> Task:
    """Build a :class:`Task` from the catalogue's variable ``label``.

    A binary variable needs ``positive`` (the negative level is the other one); a continuous or
    ordinal variable makes a continuous task and takes no ``positive``.

    Parameters
    ----------
    name : str
        Task name (``tasks`` key of the config).
    label : str
        Catalogue variable to predict.
    positive : str or None
        Level counted as positive (binary label only).
    catalogue : Catalogue
        The variable catalogue.
    names : mapping of str to str, optional
        How the user gave ``label`` and ``positive`` (:data:`TASK_OPTION_NAMES` on the command
        line), named in the fixes; None names the config's ``tasks.<name>`` keys, the task's
        name filled in (a config, or a workflow rule's job).

    Returns
    -------
    Task

    Raises
    ------
    ConfigError
        When ``label`` is not in the catalogue, is categorical (its kind and levels named, not
        ``positive``: no level fixes it), or ``positive`` is not a level of a binary label.
    """
    said = {"label": f"tasks.{name}.label", "positive": f"tasks.{name}.positive", **(names or {})}
    var = catalogue.variables.get(label)
    if var is None:
        raise ConfigError(
            f"Task {name!r}: label {label!r} is not in the variable catalogue {catalogue.path} "
            f"(has {sorted(catalogue.variables)}).",
            hint=f"Set {said['label']} to a binary or continuous variable of the catalogue.",
        )
    if var.kind in CONTINUOUS_KINDS:
        if positive is not None:
            raise ConfigError(
                f"Task {name!r}: label {label!r} is {var.kind} in {catalogue.path}, so it takes "
                f"no positive level (got {positive!r}).",
                hint=f"Remove {said['positive']}.",
            )
        return Task(name=name, label=label, kind="continuous")
    if var.kind != "binary":
        # A third level has no side: which positive is given does not matter here.
        raise ConfigError(
            f"Task {name!r}: label {label!r} is {var.kind} with {len(var.levels)} levels "
            f"{list(var.levels)} in the catalogue {catalogue.path}; a task needs a binary "
            "variable (two levels) or a continuous one.",
            hint=f"Declare a binary variable in the catalogue whose dataset column's `map:` "
            f"merges the levels into two or marks the others missing, and set "
            f"{said['label']} to it.",
        )
    if positive is None:
        raise ConfigError(
            f"Task {name!r}: {said['positive']} is missing: a binary label needs one of "
            f"{list(var.levels)} (label {label!r} in the catalogue {catalogue.path}).",
            hint=f"Set {said['positive']} to the level that counts as positive, one of "
            f"{list(var.levels)}.",
        )
    if positive not in var.levels:
        raise ConfigError(
            f"Task {name!r}: label {label!r} must be binary with {positive!r} among its levels; "
            f"the catalogue {catalogue.path} has kind {var.kind!r}, levels {list(var.levels)}.",
            hint=f"Set {said['positive']} to one of {list(var.levels)}.",
        )
    negative = next(level for level in var.levels if level != positive)
    return Task(name=name, label=label, negative=negative, positive=positive)


def task_targets(cohort: Cohort, task: Task) -> tuple[Cohort, np.ndarray]:
    """Runs with a target and the targets: 0/1 ints (binary) or floats (continuous).

    Runs with a missing target are dropped.

    Parameters
    ----------
    cohort : Cohort
        The task's runs, with their catalogue variables.
    task : Task
        The task (its label, kind and levels).

    Raises
    ------
    InputDataError
        When the label column is absent, or holds a value other than the two levels (binary)
        or a non-number (continuous).
    """
    present, y = target_values(cohort.variables, task)
    return cohort.subset(present), y


# Run and subject IDs kept in a task's metadata per reason: enough to name them on the page
# (which lists fewer); the counts stay exact beyond it.
MAX_RECORDED_IDS = 1000


def unlabelled_runs(ids: pd.DataFrame, present: np.ndarray, task: Task) -> dict[str, Any]:
    """The runs ``present`` leaves out (no value of ``task.label``), named for the report.

    Parameters
    ----------
    ids : pandas.DataFrame
        Run IDs (:attr:`lcm.store.cohort.Cohort.ids`), one row per sample: a run cut into
        windows has a row per window, counted here once.
    present : numpy.ndarray of bool
        Which rows have a target (:func:`target_values`).
    task : Task

    Returns
    -------
    dict
        ``{"reason_code": "no_label", "reason", "n_runs", "n_subjects", "runs", "subjects"}``;
        ``runs`` (``dataset/sub-X_ses-Y_task-Z_run-N``) and ``subjects`` (``dataset/subject``)
        sorted, the first :data:`MAX_RECORDED_IDS` of each.
    """
    gone = ids.loc[~np.asarray(present, dtype=bool)]
    runs = run_names(gone)
    subjects = sorted(set((gone["dataset"] + "/" + gone["subject"]).tolist()))
    return {
        "reason_code": "no_label",
        "reason": f"no {task.label!r} value",
        "n_runs": len(runs),
        "n_subjects": len(subjects),
        "runs": runs[:MAX_RECORDED_IDS],
        "subjects": subjects[:MAX_RECORDED_IDS],
    }


def run_names(ids: pd.DataFrame) -> list[str]:
    """The distinct runs of run IDs (``dataset/sub-X_ses-Y_task-Z_run-N``), sorted.

    A run cut into windows has a row per window: counts of runs are counts of these.

    Parameters
    ----------
    ids : pandas.DataFrame
        Run IDs (a cohort's ``ids``: ``dataset``, ``subject`` and the run's entities).

    Returns
    -------
    list of str
    """
    return sorted({f"{r['dataset']}/{_run_name(r)}" for _, r in ids.iterrows()})


def _run_name(row: pd.Series) -> str:
    """``sub-X[_ses-Y][_task-Z][_run-N]`` of one row of run IDs (empty entities left out)."""
    parts = [("sub", row["subject"])] + [
        (key, row.get(col)) for key, col in (("ses", "session"), ("task", "task"), ("run", "run"))
    ]
    return "_".join(f"{k}-{v}" for k, v in parts if v not in (None, "") and v == v)


def target_values(
    variables: pd.DataFrame, task: Task, log_dropped: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Which runs have a target, and the targets of those runs (see :func:`task_targets`).

    Parameters
    ----------
    variables : pandas.DataFrame
        Variables per run (:attr:`lcm.store.cohort.Cohort.variables`).
    task : Task
    log_dropped : bool
        Log the runs without a target as dropped (a caller that keeps them, as ``lcm
        finetune`` keeps them unlabelled, says so itself).

    Returns
    -------
    (numpy.ndarray of bool, numpy.ndarray)
        Mask over the runs, and 0/1 ints (binary) or floats (continuous) of the kept runs.
    """
    if task.label not in variables:
        raise InputDataError(
            f"Task {task.name!r}: the cohort has no variable {task.label!r} "
            f"(has {list(variables.columns)}).",
            hint="Check the catalogue maps this variable for the task's dataset.",
        )
    values = variables[task.label]
    present = values.notna().to_numpy()
    if task.kind == "binary":
        bad = sorted({str(v) for v in values[present] if v not in task.levels})
        expected = f"only {list(task.levels)} or missing"
    else:
        bad = sorted({str(v) for v in values[present] if not _is_number(v)})
        expected = "numbers or missing"
    if bad:
        raise InputDataError(
            f"Task {task.name!r}: variable {task.label!r} holds {bad[:5]}, expected {expected}.",
            hint="Fix the catalogue's map for this dataset's column.",
        )
    dropped = int((~present).sum())
    if dropped and log_dropped:
        log.info("task %s: dropped %d run(s) with no %r value", task.name, dropped, task.label)
    kept = values[present]
    if task.kind == "binary":
        return present, (kept == task.positive).to_numpy().astype(int)
    y = kept.to_numpy(dtype=float)
    if len(y) and np.unique(y).size < 2:
        raise InputDataError(
            f"Task {task.name!r}: the continuous target {task.label!r} is constant ({y[0]:g} "
            f"in all {len(y)} labelled runs); there is nothing to predict.",
            hint=f"Check the catalogue's map of {task.label!r} for this dataset, or drop the task.",
        )
    return present, y


def _is_number(value: object) -> bool:
    try:
        return bool(np.isfinite(float(value)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
