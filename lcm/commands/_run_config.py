"""``lcm run``'s edits of the user's config file: its sections, and its paths made absolute.

The workflow runs inside OUTPUT_DIR, so a relative path of the user's (read from the folder
``lcm run`` is called from) would name another file there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lcm.config import DATASET_PATH_SETTINGS, PATH_SETTINGS
from lcm.entries import entry_type
from lcm.exceptions import ConfigError
from lcm.schema_errors import excerpt


def config_section(config: dict[str, Any], keys: list[str], source: str) -> dict[str, Any]:
    """The mapping at ``config[k0][k1]...``, each missing level made empty.

    ``lcm run`` adds to these sections of the user's config file: one that is not a mapping
    (``ingest: 3``, ``datasets:`` with nothing under it) stopped it with an AttributeError
    traceback, and a ``datasets.<name>`` that was none was silently replaced.
    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    keys : list of str
        The keys from the top (``['ingest', 'select', name]``).
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).


    Raises
    ------
    ConfigError
        Naming the key and what it holds, when a level is present but not a mapping.
    """
    node = config
    for depth, key in enumerate(keys):
        if key not in node:
            node[key] = {}
        elif not isinstance(node[key], dict):
            dotted = ".".join(keys[: depth + 1])
            raise ConfigError(
                f"{source}: invalid value at key {dotted!r}: expected a mapping (received "
                f"{excerpt(node[key])}); nothing was written.",
                hint=f"Put keys under {dotted} (config/README.md lists them), or remove it "
                "from the config file.",
            )
        node = node[key]
    return node


def drop_empty(section: dict, keys: list[str]) -> None:
    """Remove ``section[k0][k1]...`` and each parent left empty by it (made empty here).

    Parameters
    ----------
    section : dict
        The mapping ``keys`` are read from.
    keys : list of str
        The keys from ``section`` down.
    """
    if not keys or not isinstance(section.get(keys[0]), dict):
        return
    drop_empty(section[keys[0]], keys[1:])
    if not section[keys[0]]:
        del section[keys[0]]


# Config keys holding paths (lcm.config's list; results_dir is OUTPUT_DIR): made absolute
# against the folder `lcm run` is called from, since the workflow runs inside OUTPUT_DIR (where
# a relative path would otherwise point).
_PATH_KEYS = tuple(keys for keys in PATH_SETTINGS if keys != ("results_dir",))
DATASET_PATH_KEYS = DATASET_PATH_SETTINGS


def absolute_paths(config: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Make the config's relative paths absolute against ``cwd`` (where the user called).

    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    cwd : pathlib.Path
        The folder ``lcm run`` is called from: relative paths are read from it.
    """

    def absolute(value: Any) -> Any:
        return str(Path(cwd, value)) if isinstance(value, str) and value else value

    for section, *rest in _PATH_KEYS:
        if not rest:
            if section in config:
                config[section] = absolute(config[section])
        elif isinstance(config.get(section), dict) and rest[0] in config[section]:
            config[section][rest[0]] = absolute(config[section][rest[0]])
    for ds in (config.get("datasets") or {}).values():
        if isinstance(ds, dict):
            for key in DATASET_PATH_KEYS:
                if key in ds:
                    ds[key] = absolute(ds[key])
    # An apptainer image file (a URI, docker://..., is none; a docker runner's is a name).
    fmriprep = config.get("fmriprep")
    if isinstance(fmriprep, dict) and fmriprep.get("runner") == "apptainer":
        image = fmriprep.get("image")
        if isinstance(image, str) and "://" not in image:
            fmriprep["image"] = absolute(image)
    return config


# The schema's default synth.out_dir: relative to the folder the workflow runs in.
SYNTH_DEFAULT_OUT_DIR = "results/synth"


def synth_paths(config: dict[str, Any], cwd: Path, out: Path) -> dict[str, Any]:
    """Put ``synth.out_dir`` and the synthetic datasets' paths in one place.

    The synthetic consortia are the workflow's to write: without an ``out_dir`` of the user's
    they go to ``OUTPUT_DIR/synth`` (the schema's default, ``results/synth``, would be read
    from OUTPUT_DIR, where the workflow runs, while the datasets' ``results/synth/...`` paths
    were made absolute against the calling folder: the store found no input, or stale files
    of the calling folder). A synthetic dataset's relative path under ``out_dir`` as the file
    writes it (or under ``results/synth`` by default) follows ``out_dir``; a path elsewhere,
    where ``lcm synth`` writes nothing, is refused.

    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    cwd : pathlib.Path
        The folder ``lcm run`` is called from: relative paths are read from it.
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    """
    synth = config.get("synth")
    if not isinstance(synth, dict) or not synth.get("enabled"):
        return config
    consortia = synth.get("consortia")
    given = synth.get("out_dir")
    if not isinstance(consortia, dict) or not (given is None or isinstance(given, str)):
        return config  # the schema check names what is wrong
    base = Path(given or SYNTH_DEFAULT_OUT_DIR)
    resolved = Path(cwd, given) if given else out / "synth"
    synth["out_dir"] = str(resolved)
    for name, ds in (config.get("datasets") or {}).items():
        if name not in consortia or not isinstance(ds, dict):
            continue
        for key in DATASET_PATH_KEYS:
            value = ds.get(key)
            if not isinstance(value, str) or not value or Path(value).is_absolute():
                continue
            if Path(value).is_relative_to(base):
                ds[key] = str(resolved / Path(value).relative_to(base))
        written = resolved / name
        for key in DATASET_PATH_KEYS:
            value = ds.get(key)
            if not isinstance(value, str) or not value:
                continue
            path = Path(cwd, value)
            if not path.is_relative_to(written):
                raise ConfigError(
                    f"lcm run: datasets.{name}.{key} is {value!r} ({path}), outside "
                    f"{written}, where synth.consortia.{name} is written (synth.out_dir "
                    f"{'is ' + repr(given) if given else 'not set: OUTPUT_DIR/synth'}).",
                    hint=f"Point datasets.{name}.{key} into synth.out_dir/{name} (e.g. "
                    f"{SYNTH_DEFAULT_OUT_DIR}/{name}/... with no out_dir set), or set "
                    f"synth.out_dir to the folder its paths are in.",
                )
    return config


def check_container_files(config: dict[str, Any], cwd: Path, source: str) -> None:
    """A container run's licence file and TemplateFlow folder: refused now if missing.

    The workflow's dry run checks them too (:meth:`lcm.workflow.plan.WorkflowPlan.check_inputs`);
    said here, the error names the user's config file, not OUTPUT_DIR/config.yaml.

    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    cwd : pathlib.Path
        The folder ``lcm run`` is called from: relative paths are read from it.
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).
    """
    fmriprep = config["fmriprep"]
    raw = any(entry_type(ds["entry"]).raw for ds in config["datasets"].values())
    if fmriprep["runner"] == "existing" or not raw:
        return
    licence = fmriprep.get("fs_license")
    if licence and not Path(licence).is_file():
        raise ConfigError(
            f"{source}: fmriprep.fs_license is {licence!r}, which is not a file.",
            hint="Set fmriprep.fs_license to your FreeSurfer license.txt (free from "
            "https://surfer.nmr.mgh.harvard.edu/registration.html), absolute or relative to "
            "the folder lcm run is called from.",
        )
    if fmriprep["runner"] == "apptainer":
        from lcm.preprocess.container import templateflow_home

        templateflow_home(os.environ.get("TEMPLATEFLOW_HOME"), str(cwd))
