"""The configuration as the workflow validates it: :mod:`lcm.config`'s schema, the model
registry's names filled in.

:func:`lcm.config.schema` leaves the model names open, so that the code below the evaluation
(connectome, synth, ingest, store, pretraining), which reads its sections there, does not depend
on the list of models. Here the file's ``$defs.model_name`` (which every list of models shares)
gets the registered names as its enum, the built-in ones first, and ``evaluate.models`` the
registry's default models as its default; so a model added to the registry, built in or with
``register_model``, can be named in a config. The workflow (``workflow/rules/common.smk``) and
``lcm run`` validate a whole config with :func:`validate_config`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lcm.catalogue import load_catalogue
from lcm.config import read_yaml_mapping, task_models, validate_base, validate_partial
from lcm.config import schema as base_schema
from lcm.evaluate.metrics import METRIC_RANGE, METRICS
from lcm.evaluate.registry import DEFAULT_MODELS, checkpoint_models, model_family, model_names
from lcm.evaluate.tasks import task_from_catalogue
from lcm.exceptions import ConfigError
from lcm.train.bei_maps import MIN_TRAIN_VALUES


def schema() -> dict[str, Any]:
    """The configuration JSON Schema as a dict, its model names those of the model registry
    and ``evaluate.bei_linear_min_values``'s default that of :mod:`lcm.train.bei_maps`."""
    tree = base_schema()
    # One object, shared through the anchor by every place that names a model.
    tree["$defs"]["model_name"]["enum"] = model_names()
    evaluate = tree["properties"]["evaluate"]["properties"]
    evaluate["models"]["default"] = list(DEFAULT_MODELS)
    # The ridge maps' threshold: its default is the fit's (one owner), as lcm bei-maps's is.
    evaluate["bei_linear_min_values"]["default"] = MIN_TRAIN_VALUES
    return tree


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate a whole ``config`` (a copy, defaults filled) and return it.

    Every check of :func:`lcm.config.validate_base`, with the registered model names, the
    check that a task evaluating a model that reads a pretraining checkpoint has a
    ``role: pretrain`` dataset, and each task's label checked against the variable catalogue
    (a variable its dataset codes; ``positive`` one of its levels).

    Parameters
    ----------
    config : dict
        The configuration as read.
    source : str, default "config"
        Where it comes from, for messages.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        Naming the offending key, what was expected and what was received.
    """
    tree = schema()
    config = validate_base(config, source, tree=tree, checkpoint_models=checkpoint_models)
    metrics = _reference_node(tree)["properties"]["metric"]["enum"]
    for name, task in sorted((config.get("tasks") or {}).items()):
        if "reference" in task:
            # A task with a positive level is binary (the catalogue check below holds it to that).
            kind = "binary" if task.get("positive") is not None else "continuous"
            check_reference(task["reference"], kind, metrics, f"tasks.{name}.reference", source)
    _check_tasks_against_catalogue(config, source)
    return config


def check_reference(
    reference: dict[str, Any], kind: str, metrics: Sequence[str], key: str, source: str
) -> None:
    """Check a task's published reference range against the task's kind and its metric's bounds.

    The schema has checked its form (``metric``, ``range`` of two numbers, ``source``); this is
    what it cannot say: the metric is one of the task's kind, and ``low < high`` within the
    metric's bounds (:data:`lcm.evaluate.metrics.METRIC_RANGE`).

    Parameters
    ----------
    reference : dict
        ``{"metric": ..., "range": [low, high], "source": ...}``.
    kind : {"binary", "continuous"}
        The task's kind.
    metrics : sequence of str
        The metrics a range may be of, of either kind: the schema's enum of
        ``tasks.<name>.reference.metric`` (the caller's schema tree, read once).
    key : str
        Where the reference sits, for messages (``tasks.<name>.reference``).
    source : str
        Where the configuration comes from, for messages.

    Raises
    ------
    ConfigError
        Naming ``key``'s ``metric`` or ``range``, what was expected and what was received.
    """
    metric = reference["metric"]
    # The binary metrics are lcm.evaluate.metrics.METRICS; the others are continuous ones.
    allowed = sorted(m for m in metrics if (m in METRICS) == (kind == "binary"))
    if metric not in allowed:
        raise ConfigError(
            f"{source}: key '{key}.metric' is {metric!r}, which a {kind} task does not "
            f"measure (its metrics: {allowed}).",
            hint=f"Set {key}.metric to one of {allowed}, the metric the published range is of.",
        )
    low, high = reference["range"]
    lowest, highest = METRIC_RANGE[metric]
    if not (math.isfinite(low) and math.isfinite(high) and lowest <= low < high <= highest):
        raise ConfigError(
            f"{source}: key '{key}.range' is [{low}, {high}]; expected [low, high] with "
            f"low < high, both finite and within [{lowest:g}, {highest:g}] for {metric}.",
            hint=f"Set {key}.range to the published [low, high] of {metric}, e.g. [0.65, 0.72].",
        )


def _reference_node(tree: dict[str, Any]) -> dict[str, Any]:
    """``tasks.<name>.reference``'s node of the schema ``tree``: its form, and in its
    ``metric`` enum the metrics a range may be of (one list, the schema's)."""
    return tree["properties"]["tasks"]["additionalProperties"]["properties"]["reference"]


def validate_references(
    references: dict[str, Any], kinds: dict[str, str], source: str = "--references"
) -> dict[str, dict[str, Any]]:
    """Validate ``lcm report``'s references: ``{task: reference}`` as in ``tasks.<task>``.

    Parameters
    ----------
    references : dict
        ``task -> {"metric", "range", "source"}`` (the workflow passes each task's
        ``tasks.<task>.reference``).
    kinds : dict
        ``task -> "binary" | "continuous"`` of the tasks the report shows.
    source : str, default "--references"
        Where they come from, for messages.

    Returns
    -------
    dict
        ``references``, checked.

    Raises
    ------
    ConfigError
        When a task is not one the report shows, or a reference is malformed, names a metric
        of the other kind of task or a range outside the metric's bounds.
    """
    node = _reference_node(schema())
    tree = {"type": "object", "additionalProperties": node}
    references = validate_partial(references, source, tree=tree)
    metrics = node["properties"]["metric"]["enum"]
    for name, reference in sorted(references.items()):
        if name not in kinds:
            raise ConfigError(
                f"{source}: names task {name!r}, which has no metrics here (tasks: "
                f"{sorted(kinds)}).",
                hint="Pass the references of the tasks whose --metrics are given.",
            )
        check_reference(reference, kinds[name], metrics, name, source)
    return references


def _check_tasks_against_catalogue(config: dict[str, Any], source: str) -> None:
    """Each task's label is a catalogue variable its dataset codes, its positive a level.

    Checked when the config loads (and so in ``snakemake -n``), not hours later in the splits
    job after connectomes and store. A catalogue that cannot be read is left to the jobs that
    read it, which name it.
    """
    tasks = config.get("tasks") or {}
    path = Path(config["variables"])
    if not tasks or not path.is_file():
        return
    catalogue = load_catalogue(path)
    for name, task in sorted(tasks.items()):
        try:
            task_from_catalogue(name, task["label"], task.get("positive"), catalogue)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from None
        # A binary diagnosis gets a head of its own at finetuning, which needs the checkpoint
        # not to predict it already (a continuous target is read from the pretrained head).
        binary = catalogue.variables[task["label"]].kind == "binary"
        pretrained_on = sorted(
            n
            for n, ds in config["datasets"].items()
            if binary
            and ds["role"] == "pretrain"
            and task["label"] in getattr(catalogue.datasets.get(n), "columns", {})
        )
        reading = [
            m
            for m in checkpoint_models(task_models(config, name))
            if model_family(m) != "baseline"  # bei-linear reads the maps, finetunes nothing
        ]
        if pretrained_on and reading:
            raise ConfigError(
                f"{source}: tasks.{name} finetunes {reading} for {task['label']!r}, but the "
                f"pretraining datasets {pretrained_on} code {task['label']!r} in {path}: the "
                "checkpoint would hold it as a brain-environment variable, and finetuning "
                "refuses a diagnosis the checkpoint already predicts.",
                hint=f"Remove {task['label']} from "
                + ", ".join(f"datasets.{d}.columns" for d in pretrained_on)
                + f" in {path}, or evaluate baselines only for tasks.{name}.",
            )
        coding = catalogue.datasets.get(task["dataset"])
        if coding is not None and task["label"] not in coding.columns:
            raise ConfigError(
                f"{source}: tasks.{name} predicts {task['label']!r}, but the catalogue {path} "
                f"codes no {task['label']!r} column for dataset {task['dataset']!r} (it codes "
                f"{sorted(coding.columns)}): no subject would have a label.",
                hint=f"Add {task['label']}: {{column: <its phenotype column>}} under "
                f"datasets.{task['dataset']}.columns in {path}.",
            )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file and return it validated, defaults filled.

    Parameters
    ----------
    path : path-like
        The config file.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        When the file is missing or not a YAML mapping, or a setting is invalid (naming the key,
        what was expected and what was received).
    """
    return validate_config(read_yaml_mapping(path, "Config file"), source=str(path))
