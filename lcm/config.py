"""Configuration: load ``config.yaml``, fill defaults and validate against the JSON Schema.

The schema (``lcm/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) is the single
source of truth; Snakemake's ``validate`` and the CLI use the same file. Model names are the
model registry's (:mod:`lcm.evaluate.registry`), which sits above this module: :func:`schema`
leaves them open, and :mod:`lcm.evaluate.config_schema` fills them in and validates a whole
config as the workflow does. Code below the evaluation (connectome, synth, ingest, store,
pretraining settings) reads its sections here, so that adding a model does not change its code
(:func:`lcm.workflow.hash.code_hash`) and rerun it.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import re
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

import jsonschema
import yaml

from lcm.entries import entry_type, names
from lcm.exceptions import ConfigError
from lcm.io.container_image import check_apptainer_image, check_output_layout
from lcm.io.file_kind import not_a_file
from lcm.io.output_space import check_volumetric_space
from lcm.io.paths import fmriprep_derivatives, fmriprep_work_dir, inside
from lcm.io.yaml_text import load_yaml_text
from lcm.repetition_time import implausible_tr, set_tr_fix
from lcm.schema_errors import describe as describe_error
from lcm.schema_errors import excerpt
from lcm.schema_errors import hint as schema_hint

# The hint of a schema error the schema has no more to say about.
_SCHEMA_HINT = "See workflow/schemas/config.schema.yaml for the expected form."

# ``checkpoint_models(models)``: those of ``models`` that read a pretraining checkpoint.
CheckpointModels = Callable[[list[str]], list[str]]


def schema() -> dict[str, Any]:
    """The configuration JSON Schema as a dict, its model names left open.

    Every key, default and check of the file. The model names are the registry's: here
    ``$defs.model_name`` (a YAML anchor that every list of models uses) accepts any name and
    ``evaluate.models`` has no default; :func:`lcm.evaluate.config_schema.schema` fills both in,
    and ``evaluate.bei_linear_min_values``'s default (:mod:`lcm.train.bei_maps`'s).
    """
    text = resources.files("lcm.schemas").joinpath("config.schema.yaml").read_text()
    tree = yaml.safe_load(text)
    # The entry types are lcm.entries' table (the file gives none: one owner).
    dataset = tree["properties"]["datasets"]["additionalProperties"]["properties"]
    dataset["entry"]["enum"] = names()
    # A dataset's denoise overrides: the denoise section's keys and checks, without its
    # defaults (filled in, they would replace the section's values the dataset leaves alone).
    dataset["denoise"] = {
        "type": "object",
        "additionalProperties": False,
        "description": "Keys of the denoise section that differ for this dataset's ROI time "
        "series (entry roi_timeseries): XCP-D's are already filtered and censored, so "
        "{high_pass: null, low_pass: null, detrend: false} leaves them as they are.",
        "properties": _without_defaults(tree["properties"]["denoise"]["properties"]),
    }
    return tree


def _without_defaults(node: Any) -> Any:
    """``node`` (a schema fragment) with every ``default`` key removed, at any depth."""
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def dataset_denoise(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The denoise settings of ``dataset``: the config's section with the dataset's overrides.

    Parameters
    ----------
    config : dict
        The validated configuration (its defaults filled), with ``denoise`` and ``datasets``.
    dataset : str
        A name under ``datasets:``.

    Returns
    -------
    dict
        The ``denoise`` keys, a key the dataset's own ``denoise:`` gives replacing the config's.

    Raises
    ------
    KeyError
        ``dataset`` is not under ``datasets:``.
    """
    return {**config["denoise"], **(config["datasets"][dataset].get("denoise") or {})}


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validation also fills ``default`` values."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(
        validator: Any, properties: dict[str, Any], instance: Any, sch: dict[str, Any]
    ) -> Iterator[Any]:
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    # JSON Schema's "integer" takes 2.0 (a number with no fraction): `n_folds: 2.0` passed
    # validation and the dry run, then failed in the splits job after the store was built.
    # A YAML float is refused where an integer is asked for, as --config's values are.
    types = validator_class.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return jsonschema.validators.extend(
        validator_class, {"properties": set_defaults}, type_checker=types
    )


_Validator = _with_defaults(jsonschema.Draft202012Validator)

# Bounds on a configuration before anything walks it in full. YAML aliases let a 1 kB file
# describe billions of values (an "alias bomb"): validation, copying or printing it would take
# all memory. Real configs are far below these (the 10,000-subject ones: ~10^5 values).
MAX_CONFIG_VALUES = 1_000_000
MAX_CONFIG_DEPTH = 64


def expanded_size(value: Any, source: str = "config") -> int:
    """Number of values ``value`` holds once its shared parts (YAML aliases) are expanded.

    Counted without expanding: each container is measured once (memoised by identity), so the
    cost follows the file, not the expansion.

    Parameters
    ----------
    value : Any
        A parsed YAML value (a configuration, or one of its sections).
    source : str
        Where it came from (the config file), named in the error.

    Returns
    -------
    int
        The number of values: 1 for a scalar, and a container counts its members' values.

    Raises
    ------
    ConfigError
        When a container contains itself (a recursive alias) or nesting exceeds
        ``MAX_CONFIG_DEPTH``.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, path: str, depth: int) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(
                f"{source}: the value at key '{path or '(top level)'}' contains itself "
                "(a recursive YAML alias).",
                hint="Write the value out instead of referring to an enclosing anchor.",
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(
                f"{source}: the value at key '{path}' is nested deeper than "
                f"{MAX_CONFIG_DEPTH} levels.",
                hint="No LCM setting nests this deep: check the file for a runaway structure.",
            )
        active.add(key)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1 + sum(size(v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in items)
        active.discard(key)
        sizes[key] = total
        return total

    return size(value, "", 0)


def _check_size(config: Any, source: str) -> None:
    """Refuse a configuration too large to validate (an alias bomb), naming its biggest key."""
    total = expanded_size(config, source)
    if total <= MAX_CONFIG_VALUES:
        return
    biggest = ""
    if isinstance(config, dict) and config:
        biggest = max(config, key=lambda k: expanded_size(config[k], source))
    raise ConfigError(
        f"{source}: the configuration expands to {total:,} values (the most under key "
        f"'{biggest}'), more than the {MAX_CONFIG_VALUES:,} accepted; YAML aliases (*name) "
        "repeating each other can make a small file this large.",
        hint="Write the values out without nested aliases, or remove the key.",
    )


# A number the YAML 1.1 reader keeps as text: an exponent without a dot (1e-3), or quoted.
_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_BOOLEAN_WORDS = "An unquoted yes, no, on, off, true or false is a boolean in YAML"


def _check_yaml_values(config: Any, source: str) -> None:
    """Refuse a mapping key that is not text, and a value that is NaN or infinite.

    YAML 1.1 (PyYAML's, and Snakemake's, reader) reads an unquoted ``on``, ``yes`` or ``no`` as
    a boolean and ``2019`` as a number, keys too: the schema's name patterns test text only, so
    ``datasets: {on: ...}`` passed validation and crashed the workflow's load with a TypeError
    traceback. ``.nan`` and ``.inf`` pass every bound (``lr: .nan`` is "above 0"), and no
    setting means anything as one (``null`` turns off those that can be off).
    """
    seen: set[int] = set()  # aliases: each container walked once (_check_size bounded depth)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(
                f"{source}: invalid value at key '{path or '(top level)'}': {node} is not a "
                "finite number (YAML reads .nan and .inf as such).",
                hint=f"Give {path or 'it'} a finite value, null where the setting can be off, or "
                "leave it out for the default.",
            )
        if not isinstance(node, dict | list) or id(node) in seen:
            return
        seen.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(node, dict) and not isinstance(key, str):
                if isinstance(key, bool):
                    spelled = f"{key} ({_BOOLEAN_WORDS[0].lower()}{_BOOLEAN_WORDS[1:]})"
                elif key is None:
                    spelled = "null (an empty key, or null or ~)"
                else:
                    kind = "number" if isinstance(key, int | float) else type(key).__name__
                    spelled = f"{key!r} (a {kind}, not text)"
                raise ConfigError(
                    f"{source}: the key {spelled} under '{path or '(top level)'}' is not a name.",
                    hint="Quote the key as you meant it, e.g. 'on': or '2019':; names are text.",
                )
            walk(value, f"{path}.{key}" if path else str(key))

    walk(config, "")


def _yaml_note(error: jsonschema.ValidationError) -> str:
    """What YAML made of a value ``error`` refuses, where that is likely the mistake, else "".

    ``lr: 1e-3`` reads as the text '1e-3' (YAML 1.1 wants 1.0e-3), refused as "not of
    type 'number'", which the value seems to be; ``standardize: no`` or ``positive: yes`` read
    as a boolean, refused as False or True where nothing of the file says so; ``source:
    2019-01-01`` as a date.
    """
    value = error.instance
    wanted = error.validator_value if error.validator == "type" else ()
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    if isinstance(value, str) and {"number", "integer"} & set(wanted):
        text = value.strip()
        if _NUMBER_TEXT.fullmatch(text) and "e" in text.lower():
            # YAML 1.1's float has a dot in its mantissa and a sign in its exponent.
            mantissa, _, exponent = text.lower().partition("e")
            mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
            exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
            return (
                f"YAML reads {text} as text, not a number (it needs a dot and a signed "
                f"exponent): write {mantissa}e{exponent}. "
            )
        if _NUMBER_TEXT.fullmatch(text):
            return f"{value!r} is quoted, so it is text: write {text} without quotes. "
    if isinstance(value, bool) and _wants_text(error):
        return f"{_BOOLEAN_WORDS}: quote the word ('yes', 'no') where text is meant. "
    if isinstance(value, datetime.date) and _wants_text(error):
        return f"YAML reads {value.isoformat()} as a date: quote it where text is meant. "
    return ""


def _wants_text(error: jsonschema.ValidationError) -> bool:
    """Whether the node ``error`` refuses a value at (or one of its anyOf/oneOf branches)
    takes text: a type ``string`` or an enum of words."""
    if error.validator == "type":
        wanted = error.validator_value
        return "string" in ([wanted] if isinstance(wanted, str) else wanted)
    if error.validator == "enum":
        return any(isinstance(v, str) for v in error.validator_value)
    if error.validator == "const":
        return isinstance(error.validator_value, str)
    return any(_wants_text(sub) for sub in error.context or ())


# The settings that name files or folders (each dataset's too, under DATASET_PATH_SETTINGS):
# checked for ~ and $VARIABLE here, made absolute by lcm run (lcm.commands._run_config).
PATH_SETTINGS = (
    ("results_dir",),
    ("variables",),
    ("synth", "out_dir"),
    ("atlas", "path"),
    ("atlas", "labels"),
    ("fmriprep", "fs_license"),
    ("fmriprep", "work_dir"),
)
DATASET_PATH_SETTINGS = ("path", "derivatives", "phenotype")
# $NAME or ${NAME} starting a folder's name ($SCRATCH/lcm, /home/$USER): a shell variable, left
# as written by every reader of the config. Elsewhere in a name a $ may be the folder's own.
_SHELL_VARIABLE = re.compile(r"(?:^|/)\$(\{?[A-Za-z_][A-Za-z0-9_]*)")


def _check_unexpanded_paths(config: dict[str, Any], source: str) -> None:
    """Refuse a path setting holding ``~`` or ``$VARIABLE``, which nothing expands.

    Neither YAML nor Snakemake expands them: ``results_dir: $SCRATCH/lcm`` or ``~/lcm`` wrote
    every result into a folder literally named ``$SCRATCH`` or ``~`` under the folder
    Snakemake runs in (``lcm run`` makes such a path absolute there: ``/cwd/~/lcm``).
    """
    found = [(".".join(keys), config.get(keys[0])) for keys in PATH_SETTINGS if len(keys) == 1]
    found += [
        (".".join(keys), (config.get(keys[0]) or {}).get(keys[1]))
        for keys in PATH_SETTINGS
        if len(keys) == 2
    ]
    found += [
        (f"datasets.{name}.{key}", ds.get(key))
        for name, ds in config["datasets"].items()
        for key in DATASET_PATH_SETTINGS
    ]
    for key, value in found:
        if not isinstance(value, str):
            continue
        variable = _SHELL_VARIABLE.search(value)
        tilde = any(part.startswith("~") for part in PurePath(value).parts)
        if not (variable or tilde):
            continue
        what = f"${variable.group(1).lstrip('{')}" if variable else "~"
        raise ConfigError(
            f"{source}: {key} is {value!r}: nothing expands {what} in the config (not YAML, "
            f"Snakemake or LCM), so it would name a folder called {what!r}.",
            hint=f"Write {key} out as an absolute path (`echo {what}` prints the folder the "
            "shell reads it as).",
        )


def validate_base(
    config: dict[str, Any],
    source: str = "config",
    *,
    tree: dict[str, Any] | None = None,
    checkpoint_models: CheckpointModels | None = None,
) -> dict[str, Any]:
    """Validate a whole ``config`` (a copy, defaults filled) and return it.

    :func:`lcm.evaluate.config_schema.validate_config` is this with the registry's schema and
    ``checkpoint_models``: the workflow's validation. Alone, it checks everything but the
    model names.

    Parameters
    ----------
    config : dict
        The configuration as read.
    source : str, default "config"
        Where it comes from, for messages.
    tree : dict, optional
        The schema; :func:`schema` (model names open) when omitted.
    checkpoint_models : callable, optional
        ``checkpoint_models(models)``, those of ``models`` that read a pretraining checkpoint:
        a task evaluating one needs a ``role: pretrain`` dataset. Not checked when omitted.

    Raises
    ------
    ConfigError
        Naming the offending key, what was expected and what was received.
    """
    _check_size(config, source)
    _check_yaml_values(config, source)
    config = copy.deepcopy(config)
    tree = schema() if tree is None else tree
    errors = sorted(_Validator(tree).iter_errors(config), key=lambda e: list(e.absolute_path))
    # datasets: {} (or every entry commented out), or no datasets key at all: what to add,
    # not "should be non-empty" or the key's schema description.
    first = list(errors[0].absolute_path) if errors else None
    if first == ["datasets"] and config["datasets"] in ({}, None):
        raise _no_dataset_error(source, "datasets is empty")
    if errors and "datasets" not in config and "datasets" in tree.get("required", ()):
        raise _no_dataset_error(source, "no datasets key")
    if errors:
        raise ConfigError(
            describe_error(errors[0], source),
            hint=_yaml_note(errors[0]) + schema_hint(errors[0], _SCHEMA_HINT, tree),
        )
    _check_unexpanded_paths(config, source)
    _check_repetition_times(config, source)
    _check_cross_references(config, source, checkpoint_models)
    return config


def _check_repetition_times(config: dict[str, Any], source: str) -> None:
    """Refuse a dataset's ``repetition_time`` in milliseconds (``2000`` for 2 s).

    The schema asks only for a positive number; ingest refuses a TR above
    :data:`lcm.repetition_time.PLAUSIBLE_TR_S` run by run, so such a value was accepted here
    and every run that took it was excluded as ``no_repetition_time`` at ingest, after
    fMRIPrep was planned. The same rule and words (:func:`lcm.repetition_time.implausible_tr`)
    now stop it at load.
    """
    for name, ds in (config.get("datasets") or {}).items():
        value = (ds or {}).get("repetition_time")
        if value is None:
            continue
        key = f"datasets.{name}.repetition_time"
        problem = implausible_tr(float(value), key, value)
        if problem:
            fix = set_tr_fix(key)
            raise ConfigError(
                f"{source}: {problem}.",
                hint=f"{fix[:1].upper()}{fix[1:]}: BIDS RepetitionTime is in seconds.",
            )


def _no_dataset_error(source: str, what: str) -> ConfigError:
    """The error of a config whose ``datasets`` is empty (``{}``, or ``datasets:`` with every
    entry commented out) or absent (``what`` says which): jsonschema said only "{} should be
    non-empty", or "'datasets' is a required property" with the key's description, not what
    to add."""
    return ConfigError(
        f"{source}: {what}: the workflow needs at least one dataset to run on.",
        # entry: fmriprep, as fmriprep.runner's default (existing) reads derivatives.
        hint="Add a dataset under datasets:, e.g. `datasets: {mystudy: {entry: fmriprep, path: "
        "/data/mystudy/derivatives/fmriprep, phenotype: /data/mystudy/participants.tsv, role: "
        "downstream}}` (and its id_column under datasets: in the variable catalogue); "
        'config/README.md, "Pointing the workflow at your data", has a complete example.',
    )


def retype_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the values Snakemake's ``--config`` read as text typed as the schema wants.

    Snakemake types a top-level ``--config key=5``, but reads nested values
    (``--config 'evaluate={n_folds: 5}'``) with YAML's base loader: every one a string, refused
    as "'5' is not of type 'integer'", so that no nested setting could be overridden. A
    string of ``overrides`` where the schema wants a number, a boolean or null is read as YAML
    and kept when it is one; a string the schema allows (a subject label ``01``) stays text.

    Parameters
    ----------
    config : dict
        The configuration as Snakemake merged it (config files, then ``overrides``).
    overrides : dict
        Snakemake's ``--config`` values (``workflow.config_settings.config``).

    Returns
    -------
    dict
        A copy of ``config``, those values typed.
    """
    config = copy.deepcopy(config)
    validator = jsonschema.Draft202012Validator(schema())
    retyped: set[tuple] = set()
    while True:
        for error in validator.iter_errors(config):
            fix = _retyped(error, overrides, retyped)
            if fix is not None:
                path, value = fix
                node = config
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = value
                retyped.add(path)
                break
        else:
            return config


_JSON_TYPES = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _retyped(
    error: jsonschema.ValidationError, overrides: dict[str, Any], done: set[tuple]
) -> tuple[tuple, Any] | None:
    """(path, value) of a text override that ``error`` (or one of its anyOf/oneOf branches)
    refuses as the wrong type, read as the YAML value the schema wants; None when none is."""
    stack = [error]
    while stack:
        err = stack.pop()
        stack.extend(err.context or ())
        if err.validator != "type" or not isinstance(err.instance, str):
            continue
        path = tuple(err.absolute_path)
        if path in done or not _overridden(overrides, path):
            continue
        try:
            value = yaml.safe_load(err.instance)
        except yaml.YAMLError:
            continue
        wanted = err.validator_value
        kinds = [wanted] if isinstance(wanted, str) else list(wanted)
        if any(kind in _JSON_TYPES and _JSON_TYPES[kind](value) for kind in kinds):
            return path, value
    return None


def _overridden(overrides: Any, path: tuple) -> bool:
    """Whether ``path`` names a value of ``overrides``."""
    node = overrides
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return False
    return True


def validate_partial(
    config: dict[str, Any], source: str = "--config-json", *, tree: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a subset of the configuration (the sections one workflow job uses).

    Rules pass only the config values a job uses, so that changing any other value does not
    rerun it; such a subset lacks the required top-level keys but must otherwise be valid
    (against ``tree``, :func:`schema` when omitted).

    Parameters
    ----------
    config : dict
        The sections one job was given (``--config-json``, or settings a verb builds from its
        options).
    source : str
        Where ``config`` came from, named in errors.
    tree : dict, optional
        The schema to validate against; its ``required`` keys are not required here.

    Returns
    -------
    dict
        A copy of ``config`` with the schema's defaults filled.

    Raises
    ------
    ConfigError
        When ``config`` is too large or nested too deep (see :func:`expanded_size`), or breaks a
        schema rule: naming ``source``, the key path and the rule.
    """
    _check_size(config, source)
    _check_yaml_values(config, source)
    config = copy.deepcopy(config)
    tree = schema() if tree is None else tree
    partial_schema = {k: v for k, v in tree.items() if k != "required"}
    errors = sorted(
        _Validator(partial_schema).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise ConfigError(
            describe_error(errors[0], source),
            hint=_yaml_note(errors[0]) + schema_hint(errors[0], _SCHEMA_HINT, partial_schema),
        )
    return config


def read_yaml_mapping(path: str | Path, what: str = "Config file") -> dict[str, Any]:
    """Read a YAML (or JSON) file that must hold a mapping; one-line errors naming ``what``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    what : str
        What the file is (``"Config file"``, ``"--config-file"``), first in messages.

    Returns
    -------
    dict
        The file's top-level mapping; an empty file gives an empty one.

    Raises
    ------
    ConfigError
        The file is missing, not valid YAML, gives a key twice in one mapping, or is not a
        mapping at top level.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {not_a_file(path)}: {path}", hint="Check the path.")
    try:
        raw = load_yaml_text(path.read_text(), f"{what} {path}") or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _yaml_error(exc, f"{what} {path}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{what} {path}: expected a mapping at top level, got {type(raw).__name__}."
        )
    return raw


def _yaml_error(exc: yaml.YAMLError | UnicodeDecodeError, source: str) -> ConfigError:
    """The one-line error of a file the YAML reader refuses: where it stopped and why.

    PyYAML's first line alone ("while scanning for the next token") said neither the line nor
    the cause (a tab indenting a key, which YAML does not allow).
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ConfigError(f"{source} is not valid YAML: {reason}")
    hint = (
        "YAML indents with spaces only: replace the tab with spaces."
        if "\\t" in problem
        else "Check that line and the one before: an unclosed quote or bracket, a key without "
        "': ' after it, or an indentation that does not line up."
    )
    return ConfigError(
        f"{source} is not valid YAML: line {mark.line + 1}, column {mark.column + 1}: {problem}",
        hint=hint,
    )


class _NonFinite:
    """Stand-in for a NaN or Infinity constant while parsing, to name its key afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name


def _find_non_finite(value: Any, path: str = "") -> tuple[str, str] | None:
    """(key path, constant) of the first NaN/Infinity stand-in in ``value``, or None."""
    if isinstance(value, _NonFinite):
        return path or "(top level)", value.name
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for k, v in children:
        found = _find_non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def parse_settings(text: str, what: str) -> dict[str, Any]:
    """Parse a ``--settings``-like JSON object argument of a CLI verb.

    Parameters
    ----------
    text : str
        The argument's JSON text.
    what : str
        The flag's name without dashes (``settings``, ``model``, ...), for messages.

    Returns
    -------
    dict
        The parsed object.

    Raises
    ------
    ConfigError
        When the text is not JSON, not an object, or holds NaN or Infinity (Python's JSON
        reader accepts them, but no setting is meaningful as one).
    """
    try:
        value = json.loads(text, parse_constant=_NonFinite)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ConfigError(
            f"--{what}: not valid JSON ({exc}): {excerpt(text)}",
            hint=f"Pass --{what} a JSON object, e.g. '{{\"lr\": 0.001}}'.",
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(
            f"--{what}: expected a JSON object, got {type(value).__name__}.",
            hint=f"Pass --{what} a JSON object, e.g. '{{\"lr\": 0.001}}'.",
        )
    found = _find_non_finite(value)
    if found:
        raise ConfigError(
            f"--{what}: key '{found[0]}' is {found[1]}; expected a finite number.",
            hint=f"Give {found[0]} a finite value (or leave it out for the default).",
        )
    return value


def _check_not_legacy_layout(folder: Path, setting: str) -> None:
    """Refuse existing fMRIPrep derivatives named by the folder above them, in fMRIPrep's
    legacy layout (``<out>/fmriprep/sub-<label>``: 20.2.x's default, every earlier version's).

    Every run of every subject was excluded as ``fmriprep_outputs_missing``, with a fix that
    did not say where the outputs were.
    """
    try:
        if any(p.name.startswith("sub-") for p in folder.iterdir()):
            return
        inner = folder / "fmriprep"
        if not (inner.is_dir() and any(p.name.startswith("sub-") for p in inner.iterdir())):
            return
    except OSError:
        return  # not there (yet): what reads it says so
    raise ConfigError(
        f"{setting} {folder} holds no sub-<label> folder, but {inner} does: fMRIPrep's legacy "
        "output layout (fMRIPrep before 21.0), whose derivatives are one folder down.",
        hint=f"Point {setting.rpartition(': ')[2]} at {inner}.",
    )


def _check_work_dir_outside(config: dict[str, Any], name: str, source: str) -> None:
    """Refuse a container run whose fMRIPrep work folder lies inside dataset ``name``.

    fmriprep-docker refuses such a folder (and LCM's fMRIPrep job, for apptainer too): each
    subject failed at its fMRIPrep job, after ingest, although the default work folder,
    ``<results_dir>/work/fmriprep``, is inside the BIDS folder only because results_dir is
    (``lcm run BIDS BIDS/derivatives/lcm``). Said here, when the config loads.
    """
    given = config["fmriprep"].get("work_dir")
    work = Path(fmriprep_work_dir(config["results_dir"], given)).resolve()
    bids = Path(config["datasets"][name]["path"]).resolve()
    ds = config["datasets"][name]
    derivatives = Path(
        ds.get("derivatives") or fmriprep_derivatives(config["results_dir"], name)
    ).resolve()
    # A subject's work folder <work>/sub-X is removed after a complete run: were it (or did it
    # hold) <derivatives>/sub-X, the outputs just recorded would go with it.
    below = derivatives.relative_to(work).parts if inside(derivatives, work) else ()
    if inside(work, derivatives) or (below and below[0].startswith("sub-")):
        raise ConfigError(
            f"{source}: fMRIPrep's work folder {work} and the derivatives folder {derivatives} "
            f"of datasets.{name} overlap: each subject's work folder is removed after a "
            "complete run, and with it any fMRIPrep outputs it holds.",
            hint="Set fmriprep.work_dir (lcm run: -w DIR) to a folder apart from the "
            f"derivatives (datasets.{name}.derivatives), e.g. on scratch space.",
        )
    if not inside(work, bids):
        return
    what = (
        f"fmriprep.work_dir {work}"
        if given
        else f"fMRIPrep's work folder {work} (fmriprep.work_dir unset: <results_dir>/work/fmriprep)"
    )
    raise ConfigError(
        f"{source}: {what} lies inside datasets.{name}.path {bids}, the BIDS folder fMRIPrep "
        f"reads (fmriprep.runner {config['fmriprep']['runner']!r}): fMRIPrep refuses a work "
        "folder there, so every subject would fail.",
        hint=f"Set fmriprep.work_dir (lcm run: -w DIR, as fMRIPrep's -w) to a folder outside "
        f"{bids}, e.g. on scratch space; or put results_dir (lcm run's OUTPUT_DIR) outside it.",
    )


def task_models(config: dict[str, Any], task: str) -> list[str]:
    """The models evaluated on ``task``: its own ``models``, else ``evaluate.models``.

    Parameters
    ----------
    config : dict
        A validated configuration (defaults filled).
    task : str
        A name under ``tasks``.

    Returns
    -------
    list of str
    """
    return list(config["tasks"][task].get("models", config["evaluate"]["models"]))


def _check_cross_references(
    config: dict[str, Any], source: str, checkpoint_models: CheckpointModels | None
) -> None:
    datasets = config["datasets"]
    atlas = config["atlas"]
    voxel = sorted(n for n, ds in datasets.items() if entry_type(ds["entry"]).voxel)
    if atlas["labels"] and not atlas["path"] and not atlas.get("templateflow") and voxel:
        raise ConfigError(
            f"{source}: atlas.labels is given without atlas.path, a labels-only atlas, but "
            f"datasets {voxel} are voxel-level and need an atlas image to parcellate.",
            hint="Set atlas.path to the atlas's label NIfTI, or use a registry atlas name.",
        )
    space = config["fmriprep"]["output_space"]
    if voxel:
        # Found here, before fMRIPrep runs for hours: the connectome stage would exclude every
        # run (no volumetric BOLD in that space, an atlas image in another).
        check_volumetric_space(
            space,
            f"{source}: fmriprep.output_space",
            f"datasets {voxel} are voxel-level: their runs are parcellated in a volume with the "
            "atlas image, so none of them could give a connectome",
            setting="fmriprep.output_space",
            roi_entry=", ".join(f"datasets.{name}.entry" for name in voxel) + ": roi_timeseries",
            roi_space=", ".join(f"ingest.select.{name}.space.include" for name in voxel),
        )
    unknown = sorted(set((config.get("ingest") or {}).get("select") or {}) - set(datasets))
    if unknown:
        raise ConfigError(
            f"{source}: ingest.select names {unknown}, not under datasets (have "
            f"{sorted(datasets)}): its selection would apply to no dataset.",
            hint="Key ingest.select by the names under datasets.",
        )
    for name, task in config.get("tasks", {}).items():
        ds = datasets.get(task["dataset"])
        if ds is None:
            raise ConfigError(
                f"{source}: tasks.{name}.dataset names {task['dataset']!r}, which is not under "
                f"datasets (have {sorted(datasets)}).",
                hint="Point the task at a configured dataset.",
            )
        if ds["role"] != "downstream":
            raise ConfigError(
                f"{source}: tasks.{name} uses dataset {task['dataset']!r}, whose role is "
                f"{ds['role']!r}; a disease task needs role: downstream.",
                hint="Pretraining must never see a task's test subjects: set role: downstream.",
            )
    if checkpoint_models is not None and not any(
        ds["role"] == "pretrain" for ds in datasets.values()
    ):
        for name in sorted(config.get("tasks", {})):
            wanted = checkpoint_models(task_models(config, name))
            if wanted:
                raise ConfigError(
                    f"{source}: tasks.{name} evaluates {wanted}, which need a pretrained "
                    "checkpoint, but no dataset has role: pretrain.",
                    hint=f"Add a dataset with role: pretrain, or evaluate baselines only, e.g. "
                    f"tasks.{name}.models: [logreg, svm] (or evaluate.models for every task).",
                )
    for name, ds in datasets.items():
        kind = entry_type(ds["entry"])
        if ds.get("denoise") and (kind.voxel or "denoise" not in kind.settings):
            raise ConfigError(
                f"{source}: datasets.{name}.denoise is given, but entry {ds['entry']!r} "
                + (
                    "is voxel-level: its runs are denoised with the denoise section, the same "
                    "for every such dataset."
                    if kind.voxel
                    else "reads no denoise settings."
                ),
                hint=f"Remove datasets.{name}.denoise (it applies to entry roi_timeseries).",
            )
    runner = config["fmriprep"]["runner"]
    for name, ds in datasets.items():
        kind = entry_type(ds["entry"])
        if kind.voxel and (runner == "existing" or not kind.raw):
            key = "derivatives" if ds.get("derivatives") or kind.raw else "path"
            if ds.get(key):
                _check_not_legacy_layout(Path(ds[key]), f"{source}: datasets.{name}.{key}")
        raw = kind.raw
        if raw and runner == "existing" and not ds.get("derivatives"):
            raise ConfigError(
                f"{source}: datasets.{name} enters as raw BIDS and fmriprep.runner is 'existing', "
                "but datasets.{name}.derivatives is not set.".replace("{name}", name),
                # The config's keys, to lcm run's users too: its --derivatives sets the runner
                # existing and the folder at once, so only a written config comes here.
                hint=f"Set datasets.{name}.derivatives to the fMRIPrep output folder, or set "
                "fmriprep.runner to docker or apptainer to run fMRIPrep.",
            )
        if runner != "existing" and raw and not config["fmriprep"]["fs_license"]:
            raise ConfigError(
                f"{source}: fmriprep.runner is {runner!r} but fmriprep.fs_license is not set.",
                hint="fMRIPrep needs a FreeSurfer license file: set fmriprep.fs_license.",
            )
        if runner != "existing" and raw:
            _check_work_dir_outside(config, name, source)
            fmriprep = config["fmriprep"]
            # The config's keys (check_output_layout's default) name the settings.
            check_output_layout(fmriprep["image"], list(fmriprep.get("extra_args") or []), source)
        if runner == "apptainer" and raw:
            check_apptainer_image(config["fmriprep"]["image"], f"{source}: fmriprep.image")
    synth = config.get("synth", {})
    if synth.get("enabled"):
        for name, cons in synth.get("consortia", {}).items():
            entry = datasets.get(name, {}).get("entry")
            # The entries that read the tier's data; the first is the one to name.
            readers = [e for e in names() if entry_type(e).synth_tier == cons["tier"]]
            want = readers[0]
            if entry is not None and entry not in readers:
                raise ConfigError(
                    f"{source}: datasets.{name}.entry is {entry!r} but synth.consortia.{name} "
                    f"has tier {cons['tier']!r}, which writes {want!r} data.",
                    hint=f"Set datasets.{name}.entry: {want}.",
                )
