"""Training settings: the config schema's sections, defaults filled and values checked.

The schema (``lcm/schemas/config.schema.yaml``) is the one source of defaults, so ``pretrain``
and ``LCMClassifier`` called from Python behave like the workflow.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from lcm.config import schema
from lcm.exceptions import ConfigError

# Where each section sits in the config schema.
SECTIONS = {
    "pretrain": ("pretrain",),
    "finetune": ("evaluate", "finetune"),
}

# Settings that cannot change the trained weights: how often the state is saved (a resumed run
# ends bitwise identical to an uninterrupted one). Left out of a run's identity, so changing
# them keeps a resumable state, and out of the workflow's params, so it reruns nothing.
# (gradient_checkpointing and compile stay in: recomputed and compiled kernels may round
# differently.)
BOOKKEEPING_SETTINGS = ("checkpoint_every",)

# Defaults of settings the code reads before the schema declares them (a config without the
# key works either way; once the schema has the key, its default and its checks apply).
# ``compile``: torch.compile of the model's blocks, "auto" = on CUDA only (lcm.train.loop);
# ``compile_scope``: what one compiled graph holds.
CODE_DEFAULTS: dict[str, Any] = {"compile": "auto", "compile_scope": "blocks"}


def section_schema(section: str) -> dict[str, Any]:
    """The JSON Schema of one settings section (``pretrain`` or ``finetune``).

    Parameters
    ----------
    section : {"pretrain", "finetune"}
        The settings section.

    Returns
    -------
    dict
        The schema's node of that section: its keys, defaults and checks.
    """
    node = schema()
    for key in SECTIONS[section]:
        node = node["properties"][key]
    return node


def resolve_settings(section: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    """``settings`` with the schema's defaults filled in, validated.

    Parameters
    ----------
    section : {"pretrain", "finetune"}
    settings : dict or None

    Raises
    ------
    ConfigError
        Unknown key or invalid value, naming the config key.
    """
    sub = section_schema(section)
    resolved = copy.deepcopy(settings or {})
    for key, prop in sub.get("properties", {}).items():
        if key not in resolved and "default" in prop:
            resolved[key] = copy.deepcopy(prop["default"])
    where = ".".join(SECTIONS[section])
    errors = list(jsonschema.Draft202012Validator(sub).iter_errors(resolved))
    if errors:
        err = errors[0]
        key = ".".join([where, *(str(p) for p in err.absolute_path)])
        allowed = sorted(sub.get("properties", {}))
        raise ConfigError(
            f"{key}: {err.message} (received {err.instance!r}).",
            hint=f"Settings of {where} are {allowed}; see lcm/schemas/config.schema.yaml.",
        )
    for key, value in CODE_DEFAULTS.items():
        resolved.setdefault(key, copy.deepcopy(value))
    return _whole_numbers(resolved, sub)


def _whole_numbers(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with each whole float where the schema asks an integer made an int.

    JSON Schema's ``integer`` takes ``2.0``; ``range(epochs)`` then failed after the data load.
    """
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if isinstance(value, float) and value.is_integer() and "integer" in types:
        return int(value)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _whole_numbers(v, props.get(k, {})) for k, v in value.items()}
    return value
