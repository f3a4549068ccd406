"""The ``dataset_description.json`` of a BIDS (or BIDS-derivative) folder."""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lcm.exceptions import BIDSError
from lcm.hints import is_option, set_to

log = logging.getLogger(__name__)

# The config's keys of a dataset's settings ({dataset}: its name), which the messages and hints
# of ingest and the fMRIPrep stage name unless told how the user gave them (lcm.commands.ingest
# and lcm.commands.fmriprep name their options): a command-line user wrote no
# datasets.<name>.path.
CONFIG_KEYS = {
    # The name itself: a key under datasets.
    "dataset": "datasets",
    "path": "datasets.{dataset}.path",
    "derivatives": "datasets.{dataset}.derivatives",
    "entry": "datasets.{dataset}.entry",
    "task": "datasets.{dataset}.task",
    "repetition_time": "datasets.{dataset}.repetition_time",
    "space": "fmriprep.output_space",
    "select": "ingest.select.{dataset}",
    # The space an ROI time-series dataset keeps: the workflow passes it no --space.
    "roi_space": "ingest.select.{dataset}.space.include",
    # The seg- label of the atlas's files (parcellated entries).
    "seg": "atlas.seg",
    # The fMRIPrep stage's (lcm fmriprep's options, lcm.commands.fmriprep.OPTION_NAMES).
    "subject": "ingest.select.{dataset}.participants.include",
    "extra_args": "fmriprep.extra_args",
    "work_dir": "fmriprep.work_dir",
    "fs_license": "fmriprep.fs_license",
    "image": "fmriprep.image",
    "runner": "fmriprep.runner",
    # On by default: its option is the flag that turns it off (lcm ingest --no-validate).
    "validate": "ingest.validate",
}


def setting_names(dataset: str, names: Mapping[str, str] | None = None) -> dict[str, str]:
    """``names`` over :data:`CONFIG_KEYS`: how each of a dataset's settings is named to the user.

    Parameters
    ----------
    dataset : str
        The dataset's name, in its config keys.
    names : mapping of str to str, optional
        Setting (a key of :data:`CONFIG_KEYS`: ``dataset``, ``path``, ``task``, ``space``,
        ``select`` ...) to the name the user gave it by (an option, ``--path``); None, or a
        setting left out, names it by its config key.

    Returns
    -------
    dict of str to str
    """
    keys = {key: name.format(dataset=dataset) for key, name in CONFIG_KEYS.items()}
    return {**keys, **(names or {})}


def part_of(name: str, key: str) -> str:
    """A key inside the setting ``name`` (a JSON option's or a config section's): ``--select's
    participants.exclude``, ``ingest.select.d.participants.exclude``.

    Parameters
    ----------
    name : str
        The setting's name, an option (``--select``, or another verb's, ``lcm ingest
        --select``) or a config key.
    key : str
        The key inside it, dotted.

    Returns
    -------
    str
    """
    return f"{name}'s {key}" if is_option(name) else f"{name}.{key}"


def turned_off(name: str) -> str:
    """A fix that turns the on/off setting ``name`` (:func:`setting_names`) off, as the user
    writes it: ``pass --no-validate`` on the command line (the flag that turns it off), ``set
    ingest.validate: false`` in the config.

    Parameters
    ----------
    name : str
        The setting's name: the option that turns it off (``--no-validate``) or a config key.

    Returns
    -------
    str
    """
    return f"pass {name}" if is_option(name) else f"set {set_to(name, 'false')}"


def read_dataset_description(root: str | Path, setting: str | None = None) -> dict[str, Any]:
    """Return the parsed ``dataset_description.json`` of ``root``.

    Parameters
    ----------
    root : path-like
        Top folder of a BIDS dataset or derivatives folder.
    setting : str, optional
        The setting that gave ``root`` (``--path``, ``datasets.<name>.derivatives``), named
        in the hints; by default the dataset's configured path.

    Raises
    ------
    BIDSError
        If the folder or its ``dataset_description.json`` is missing (or a git-annex link
        not fetched), unreadable, or not a JSON object. A byte-order mark, and bytes that are
        not UTF-8 (replaced, with a warning), are read as the BIDS validator reads them.
    """
    root = Path(root)
    if not root.is_dir():
        raise BIDSError(
            f"BIDS folder not found: {root}",
            hint=f"Check {setting}."
            if setting
            else "Check the dataset's path in config.yaml (datasets.<name>.path).",
        )
    desc_path = root / "dataset_description.json"
    if desc_path.is_symlink() and not desc_path.exists():
        raise BIDSError(
            f"{desc_path} is a symlink to content that is not present (a DataLad/git-annex "
            "file not fetched).",
            hint=f"Run `datalad get {shlex.quote(str(desc_path))}` and try again.",
        )
    if not desc_path.is_file():
        raise BIDSError(
            f"{root} has no dataset_description.json: expected a BIDS dataset root.",
            hint=f"Point {setting or 'the path'} at the dataset's top folder (the one holding "
            "sub-* folders), or "
            'add a dataset_description.json with at least {"Name": ..., "BIDSVersion": "1.10.0"}.',
        )
    try:
        desc = json.loads(_description_text(desc_path))
    except OSError as exc:
        raise BIDSError(
            f"{desc_path} cannot be read: {exc}",
            hint="Give the user running lcm read access to the dataset's files.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise BIDSError(
            f"{desc_path} is not valid JSON: {exc}",
            hint="Fix the file at the line and column named (a validator such as "
            "`python -m json.tool` shows where), or regenerate it.",
        ) from exc
    if not isinstance(desc, dict):
        raise BIDSError(
            f"{desc_path}: expected a JSON object, received {type(desc).__name__}.",
            hint="The file must hold an object with Name and BIDSVersion.",
        )
    return desc


def _description_text(path: Path) -> str:
    """The file's text read as the BIDS validator and fMRIPrep read it: UTF-8 whatever the
    locale, a byte-order mark skipped (Windows editors write one), and bytes that are not UTF-8
    (an author's name saved in Latin-1) replaced, with a warning: neither tool refuses them."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        log.warning(
            "%s is not UTF-8 (byte 0x%02x at offset %d): read with that byte replaced; BIDS "
            "asks for UTF-8, save the file as UTF-8",
            path,
            data[exc.start],
            exc.start,
        )
        return data.decode("utf-8-sig", errors="replace")


def is_derivative(desc: dict[str, Any]) -> bool:
    """Whether a dataset description declares a derivative dataset.

    Parameters
    ----------
    desc : dict
        The parsed ``dataset_description.json`` (:func:`read_dataset_description`); a missing
        ``DatasetType`` means ``raw``, as BIDS says, unless the description has the
        ``PipelineDescription`` of derivatives written before BIDS 1.4 named ``DatasetType``
        (fMRIPrep before 20.2: read as raw, every ``desc-preproc`` file was left out).
    """
    if "DatasetType" not in desc:
        return "PipelineDescription" in desc
    return str(desc["DatasetType"]).lower() == "derivative"
