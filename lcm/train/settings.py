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
from lcm.schema_errors import describe as describe_error
from lcm.schema_errors import hint as schema_hint

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


def resolve_settings(
    section: str, settings: dict[str, Any] | None, source: str | None = None
) -> dict[str, Any]:
    """``settings`` with the schema's defaults filled in, validated.

    Parameters
    ----------
    section : {"pretrain", "finetune"}
    settings : dict or None
    source : str, optional
        How the user gave ``settings``, named in errors: by default the config's section, its
        keys named as the config's (``pretrain.lr``) and the schema file in the hint; a verb
        passes its option (``lcm pretrain --settings``), its keys named within it.

    Raises
    ------
    ConfigError
        Unknown key or invalid value, naming the key as ``source`` says the user gave it, with
        the schema's description of the key or the keys allowed.
    """
    sub = section_schema(section)
    resolved = copy.deepcopy(settings or {})
    for key, prop in sub.get("properties", {}).items():
        if key not in resolved and "default" in prop:
            resolved[key] = copy.deepcopy(prop["default"])
    where = ".".join(SECTIONS[section])
    allowed = sorted(sub.get("properties", {}))
    if source is None:
        # Validated where it sits in the config, so that errors name the config's keys.
        tree, instance = sub, resolved
        for key in reversed(SECTIONS[section]):
            tree = {"type": "object", "properties": {key: tree}}
            instance = {key: instance}
        source = "config"
        fallback = f"Settings of {where} are {allowed}; see lcm/schemas/config.schema.yaml."
    else:
        tree, instance = sub, resolved
        fallback = f"{source} takes the keys {allowed} (the config's {where} section)."
    errors = sorted(
        jsonschema.Draft202012Validator(tree).iter_errors(instance),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        raise ConfigError(
            describe_error(errors[0], source), hint=schema_hint(errors[0], fallback, tree)
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
