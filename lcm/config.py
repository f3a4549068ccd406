"""Configuration: load ``config.yaml``, fill defaults and validate against the JSON Schema.

The schema (``lcm/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) is the single
source of truth; Snakemake's ``validate`` and the CLI use the same file.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lcm.exceptions import ConfigError


def schema() -> dict[str, Any]:
    """The configuration JSON Schema as a dict."""
    text = resources.files("lcm.schemas").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that validation also fills ``default`` values."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` (a copy, defaults filled) and return it.

    Raises
    ------
    ConfigError
        Naming the offending key, what was expected and what was received.
    """
    config = copy.deepcopy(config)
    validator = _Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(_describe(errors[0], source), hint=_hint(errors[0]))
    _check_cross_references(config, source)
    return config


def validate_partial(config: dict[str, Any], source: str = "--config-json") -> dict[str, Any]:
    """Validate a subset of the configuration (the sections one workflow job uses).

    Rules pass only the config values a job uses, so that changing any other value does not
    rerun it; such a subset lacks the required top-level keys but must otherwise be valid.
    """
    config = copy.deepcopy(config)
    partial_schema = {k: v for k, v in schema().items() if k != "required"}
    errors = sorted(
        _Validator(partial_schema).iter_errors(config), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise ConfigError(_describe(errors[0], source), hint=_hint(errors[0]))
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file and return it validated, defaults filled."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Config file not found: {path}", hint="Pass --config config/config.yaml."
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(raw).__name__}.")
    return validate_config(raw, source=str(path))


def parse_settings(text: str, what: str) -> dict[str, Any]:
    """Parse a ``--settings`` JSON argument of a CLI verb."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--{what}: not valid JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--{what}: expected a JSON object, got {type(value).__name__}.")
    return value


def _describe(error: jsonschema.ValidationError, source: str) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    got = json.dumps(error.instance, default=str)
    if len(got) > 120:
        got = got[:117] + "..."
    return f"{source}: invalid value at key '{key}': {error.message} (received {got})"


def _hint(error: jsonschema.ValidationError) -> str:
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"Allowed keys here: {allowed}." if allowed else "Remove the unknown key."
    if error.validator == "enum":
        return f"Expected one of {error.validator_value}."
    return desc or "See workflow/schemas/config.schema.yaml for the expected form."


def _check_cross_references(config: dict[str, Any], source: str) -> None:
    datasets = config["datasets"]
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
    runner = config["fmriprep"]["runner"]
    for name, ds in datasets.items():
        if ds["entry"] == "bids" and runner == "existing" and not ds.get("derivatives"):
            raise ConfigError(
                f"{source}: datasets.{name} enters as raw BIDS and fmriprep.runner is 'existing', "
                "but datasets.{name}.derivatives is not set.".replace("{name}", name),
                hint="Point derivatives at the fMRIPrep output, or set fmriprep.runner to "
                "docker or apptainer to run fMRIPrep.",
            )
        if runner != "existing" and ds["entry"] == "bids" and not config["fmriprep"]["fs_license"]:
            raise ConfigError(
                f"{source}: fmriprep.runner is {runner!r} but fmriprep.fs_license is not set.",
                hint="fMRIPrep needs a FreeSurfer license file: set fmriprep.fs_license.",
            )
    synth = config.get("synth", {})
    if synth.get("enabled"):
        for name, cons in synth.get("consortia", {}).items():
            entry = datasets.get(name, {}).get("entry")
            want = {"roi": "roi_timeseries", "voxel": "bids"}[cons["tier"]]
            if entry is not None and entry != want and not (want == "bids" and entry == "fmriprep"):
                raise ConfigError(
                    f"{source}: datasets.{name}.entry is {entry!r} but synth.consortia.{name} "
                    f"has tier {cons['tier']!r}, which writes {want!r} data.",
                    hint=f"Set datasets.{name}.entry: {want}.",
                )
