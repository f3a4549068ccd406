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

from pathlib import Path
from typing import Any

from lcm.config import read_yaml_mapping, validate_base
from lcm.config import schema as base_schema
from lcm.evaluate.registry import DEFAULT_MODELS, checkpoint_models, model_names


def schema() -> dict[str, Any]:
    """The configuration JSON Schema as a dict, its model names those of the model registry."""
    tree = base_schema()
    # One object, shared through the anchor by every place that names a model.
    tree["$defs"]["model_name"]["enum"] = model_names()
    tree["properties"]["evaluate"]["properties"]["models"]["default"] = list(DEFAULT_MODELS)
    return tree


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate a whole ``config`` (a copy, defaults filled) and return it.

    Every check of :func:`lcm.config.validate_base`, with the registered model names and the
    check that a task evaluating a model that reads a pretraining checkpoint has a
    ``role: pretrain`` dataset.

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
    return validate_base(config, source, tree=schema(), checkpoint_models=checkpoint_models)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file and return it validated, defaults filled."""
    return validate_config(read_yaml_mapping(path, "Config file"), source=str(path))
