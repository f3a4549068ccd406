"""``lcm run``'s BIDS_DIR: its entry in the configuration and the name it is stored under.

The name is the one the config file or an earlier run into OUTPUT_DIR gave the folder, else
one read from the folder (its parent's for ``study/rawdata``); it names OUTPUT_DIR's folders
and the store's partitions, so one dataset keeps one name.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from lcm.bids.dataset import is_derivative, read_dataset_description
from lcm.bids.nifti_header import sniff_image
from lcm.catalogue import RUN_MARK
from lcm.commands._run_config import config_section
from lcm.commands._run_snakemake import snakemake_hint
from lcm.exceptions import BIDSError, ConfigError, InputDataError

log = logging.getLogger(__name__)


def existing_folder(path: Path, what: str) -> Path:
    """``path`` resolved, or an error naming the argument (``what``) when it is no folder.

    Parameters
    ----------
    path : pathlib.Path
        The path given.
    what : str
        The argument that gave it (``BIDS_DIR``, ``--derivatives``).
    """
    if not path.is_dir():
        raise InputDataError(f"{what} {path} is not a folder.", hint="Check the path.")
    return path.resolve()


def dataset_entry(
    config: dict[str, Any], name: str, bids: Path, args: argparse.Namespace, source: str
) -> dict[str, Any]:
    """The config's ``datasets.<name>`` for BIDS_DIR: the config file's entry, if any, with
    ``entry: bids`` and ``path`` set, and ``--task`` / ``--role`` where given.
    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    name : str
        BIDS_DIR's name in the config.
    bids : pathlib.Path
        BIDS_DIR, resolved.
    args : argparse.Namespace
        ``lcm run``'s arguments.
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).


    Raises
    ------
    ConfigError
        When the config file's entry reads another folder, or no phenotype table exists.
    """
    dataset = dict(config_section(config, ["datasets", name], source))
    if dataset.get("path") and Path(dataset["path"]).resolve() != bids:
        raise ConfigError(
            f"--config-file: datasets.{name}.path is {dataset['path']}, but BIDS_DIR is {bids}.",
            hint=f"Remove datasets.{name}.path from the config file (BIDS_DIR sets it), or "
            "pass --dataset-name to add BIDS_DIR under another name.",
        )
    if dataset.get("entry", "bids") != "bids":
        raise ConfigError(
            f"--config-file: datasets.{name}.entry is {dataset['entry']!r}; lcm run reads "
            "BIDS_DIR as raw BIDS (entry: bids).",
            hint="Pass --dataset-name to add BIDS_DIR under another name. " + snakemake_hint(args),
        )
    dataset.update(entry="bids", path=str(bids))
    _check_bids_root(bids, args)
    dataset.setdefault("phenotype", str(bids / "participants.tsv"))
    dataset["role"] = args.role or dataset.get("role", "downstream")
    if args.task:
        dataset["task"] = args.task
    phenotype = Path(dataset["phenotype"])
    _check_fetched(phenotype)
    if not phenotype.is_file():
        raise ConfigError(
            f"No phenotype table: {phenotype} does not exist (BIDS only recommends "
            "participants.tsv, and the feature store reads each subject's row of it).",
            hint=f"Write {bids / 'participants.tsv'} (a participant_id column: sub-01, ...), or "
            f"give datasets.{name}.phenotype in a --config-file. " + snakemake_hint(args),
        )
    return dataset


def _check_fetched(phenotype: Path) -> None:
    """Refuse a phenotype table DataLad has not fetched, naming the ``datalad get`` to run: a
    dangling git-annex symlink was refused as not existing though ``ls`` lists it, and an
    unlocked file's pointer went on to be read as a table of one column."""
    if phenotype.is_symlink() and not phenotype.exists():
        state = "a symlink to content that is not present (a DataLad/git-annex file not fetched)"
    elif phenotype.is_file() and sniff_image(phenotype) == "annex_pointer":
        state = "a git-annex pointer file, not its content (an unlocked DataLad file not fetched)"
    else:
        return
    raise ConfigError(
        f"Phenotype table {phenotype} is {state}.",
        hint=f"Run `datalad get {shlex.quote(str(phenotype))}` and try again.",
    )


def _check_bids_root(bids: Path, args: argparse.Namespace) -> None:
    """Refuse a BIDS_DIR that holds no ``sub-*`` folder, naming the folder in it that looks
    like the dataset (``study/rawdata`` for ``study``): one level too high, it was refused for
    lacking ``participants.tsv``, with no word of where the dataset is. A derivative dataset
    (XCP-D's ROI time series) is refused too, pointing at Snakemake: read as raw BIDS, it
    failed for want of ``--derivatives``, or in the workflow, with the fix ``entry: fmriprep``."""
    if any(p.is_dir() for p in bids.glob("sub-*")):
        _check_not_derivative(bids, args)
        return

    def subjects(folder: Path) -> bool:
        return any(p.is_dir() for p in folder.glob("sub-*"))

    inner = sorted(
        (p for p in bids.iterdir() if p.is_dir() and subjects(p)),
        key=lambda p: (not (p / "dataset_description.json").is_file(), p.name),
    )
    said = f"BIDS_DIR {bids} holds no sub-* folder: it is not the root of a BIDS dataset"
    if inner:
        others = f" ({', '.join(p.name for p in inner[1:])} too)" if inner[1:] else ""
        raise ConfigError(
            f"{said}; {inner[0]} holds subject folders{others}.",
            hint=f"Pass {inner[0]} as BIDS_DIR (the folder with dataset_description.json, "
            "participants.tsv and sub-*/).",
        )
    raise ConfigError(
        f"{said} (dataset_description.json, participants.tsv and sub-*/ in one folder).",
        hint="Pass the dataset's root folder. " + snakemake_hint(args),
    )


def _check_not_derivative(bids: Path, args: argparse.Namespace) -> None:
    """Refuse a BIDS_DIR whose ``dataset_description.json`` declares a derivative dataset."""
    description = bids / "dataset_description.json"
    if not description.is_file():
        return  # the BIDS validator and ingest say what a raw dataset lacks
    try:
        declared = is_derivative(read_dataset_description(bids, "BIDS_DIR"))
    except BIDSError:
        return  # unreadable: ingest refuses it, naming the file and the fix
    if declared:
        raise ConfigError(
            f"BIDS_DIR {bids} is a derivative dataset ({description} declares DatasetType "
            "derivative): lcm run reads BIDS_DIR as raw BIDS.",
            hint="For fMRIPrep's outputs, pass the raw dataset as BIDS_DIR and this folder as "
            "--derivatives. " + snakemake_hint(args),
        )


def check_derivatives(derivatives: Path, bids: Path) -> None:
    """Refuse a --derivatives folder that holds no fMRIPrep subject folders, naming the one
    inside it that does (``derivatives/`` for ``derivatives/fmriprep``): each subject's
    fMRIPrep job reported its files missing instead.

    Parameters
    ----------
    derivatives : pathlib.Path
        The ``--derivatives`` folder, resolved.
    bids : pathlib.Path
        BIDS_DIR, resolved.
    """
    if derivatives == bids:
        raise ConfigError(
            f"--derivatives {derivatives} is BIDS_DIR itself, not fMRIPrep's output folder.",
            hint=f"Pass the fMRIPrep output folder, e.g. {bids / 'derivatives' / 'fmriprep'}.",
        )
    if any(p.is_dir() for p in derivatives.glob("sub-*")):
        return
    inner = sorted(p.parent for p in derivatives.glob("*/sub-*") if p.is_dir())
    hint = (
        f"Pass {inner[0]}, which holds subject folders."
        if inner
        else "Pass the folder fMRIPrep wrote (dataset_description.json and sub-*/ in it)."
    )
    raise ConfigError(f"--derivatives {derivatives} holds no sub-* folder.", hint=hint)


def check_dataset_name(given: str) -> None:
    """Refuse a ``--dataset-name`` that is no config name (letters and digits, at most 64).

    The schema's refusal named "key 'datasets'" only, not the option, and an empty name fell
    back to the folder's without a word.

    Parameters
    ----------
    given : str
        ``--dataset-name``'s value.
    """
    if re.fullmatch(r"[A-Za-z0-9]{1,64}", given):
        return
    cleaned = re.sub(r"[^A-Za-z0-9]", "", given)[:64]
    raise ConfigError(
        f"--dataset-name {given!r}: a dataset name is 1 to 64 letters and digits (it names "
        "the dataset's folders in OUTPUT_DIR and its partition of the store).",
        hint=f"Pass --dataset-name {cleaned}, say." if cleaned else "Pass letters and digits.",
    )


# Folder names that name no study (``study/rawdata``, BIDS' own layout beside ``derivatives/``).
COMMON_FOLDER_NAMES = frozenset({"rawdata", "raw", "bids", "input", "inputs", "data", "sourcedata"})


def _config_name(text: str) -> str:
    """Letters and digits of ``text``, at most 64 (config names allow nothing else)."""
    return re.sub(r"[^A-Za-z0-9]", "", text)[:64]


def listed_name(config: dict[str, Any], bids: Path, given: str | None, source: str) -> str | None:
    """The name the config file gives BIDS_DIR (``datasets.<name>.path``), else ``given``.

    Without it, BIDS_DIR was added a second time under the folder's name: the config file's
    entry, lacking what lcm run fills in, was refused for it ("'phenotype' is a required
    property" about a name the user never saw lcm run use), or the dataset was read twice.
    Parameters
    ----------
    config : dict
        The configuration being resolved (the config file's, as read so far).
    bids : pathlib.Path
        BIDS_DIR, resolved.
    given : str or None
        ``--dataset-name``'s value, if given.
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).


    Raises
    ------
    ConfigError
        When the config file lists BIDS_DIR under several names, or under another name than
        ``--dataset-name``.
    """
    datasets = config.get("datasets") or {}
    listed = [
        str(name)
        for name, ds in datasets.items()
        if isinstance(ds, dict)
        and ds.get("entry", "bids") == "bids"
        and isinstance(ds.get("path"), str)
        and ds["path"]
        and Path(ds["path"]).resolve() == bids
    ]
    if len(listed) > 1:
        raise ConfigError(
            f"{source}: BIDS_DIR {bids} is listed under several datasets "
            f"({', '.join(listed)}); its participants would be read once for each.",
            hint="Keep one of these entries in the config file.",
        )
    if listed and given is not None and given != listed[0]:
        raise ConfigError(
            f"--dataset-name {given}, but {source} lists BIDS_DIR {bids} as datasets."
            f"{listed[0]}; the dataset would be added twice.",
            hint=f"Pass --dataset-name {listed[0]}, or leave it out (the config file's name "
            "is used), or rename the entry in the config file.",
        )
    if listed and given is None:
        log.info("dataset %r (its name in %s; --dataset-name sets another)", listed[0], source)
    return listed[0] if listed else given


def dataset_name(bids: Path, out: Path) -> str:
    """The name of BIDS_DIR's dataset without ``--dataset-name``, logged with how it was chosen.

    The name an earlier ``lcm run`` into OUTPUT_DIR gave this folder (another would add its
    participants to the store a second time); else the folder's name in letters and digits,
    but for a common folder name (``rawdata``, ``bids`` ...: ``/data/abide/rawdata`` named
    every study so laid out 'rawdata') its parent folder's, or ``dataset_description.json``'s
    ``Name`` when that is a common name too. The name reaches OUTPUT_DIR's folders and the
    store's partitions.

    Parameters
    ----------
    bids : pathlib.Path
        BIDS_DIR, resolved.
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    """
    fix = "--dataset-name sets another"
    earlier = _earlier_names(out, bids)
    if len(earlier) == 1:
        log.info("dataset %r (its name in the earlier runs of %s; %s)", earlier[0], out, fix)
        return earlier[0]
    name = _config_name(bids.name)
    if name.lower() not in COMMON_FOLDER_NAMES:
        if name != bids.name:
            log.info("dataset %r (from folder %r; %s)", name, bids.name, fix)
        return name or "bids"
    parent = _config_name(bids.parent.name)
    source = "its parent folder's name"
    if not parent or parent.lower() in COMMON_FOLDER_NAMES:
        parent = _config_name(_description_name(bids))
        source = "the Name of its dataset_description.json"
    if parent:
        log.info(
            "dataset %r (from folder %s: %r names no study, so %s; %s)",
            parent,
            bids,
            bids.name,
            source,
            fix,
        )
        return parent
    log.info("dataset %r (from folder %s; %s)", name, bids, fix)
    return name


def _description_name(bids: Path) -> str:
    """``Name`` of BIDS_DIR's ``dataset_description.json``; empty if it has none."""
    try:
        name = json.loads((bids / "dataset_description.json").read_text()).get("Name")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def check_earlier_name(out: Path, bids: Path, name: str) -> None:
    """Refuse a name for BIDS_DIR other than the one the earlier runs of OUTPUT_DIR gave it.

    Its participants were then read again under the new name, beside the old one: the same
    subjects twice in the store, as two datasets.

    Parameters
    ----------
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    bids : pathlib.Path
        BIDS_DIR, resolved.
    name : str
        The name this call gives BIDS_DIR.
    """
    earlier = _earlier_names(out, bids)
    if earlier and name not in earlier:
        raise ConfigError(
            f"BIDS_DIR {bids} was dataset {earlier[0]!r} in the earlier runs of OUTPUT_DIR "
            f"{out}; as {name!r} its participants would be added to the store again.",
            hint=f"Pass --dataset-name {earlier[0]} (or rename the entry of the --config-file "
            "to it), or give a new OUTPUT_DIR to start afresh under the new name.",
        )


def _earlier_names(out: Path, bids: Path) -> list[str]:
    """Names the ``config.yaml`` an earlier ``lcm run`` wrote in OUTPUT_DIR gives ``bids``."""
    try:
        text = (out / "config.yaml").read_text()
        written = yaml.safe_load(text) if text.startswith(RUN_MARK) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    datasets = written.get("datasets") if isinstance(written, dict) else None
    return [
        name
        for name, ds in (datasets if isinstance(datasets, dict) else {}).items()
        if isinstance(ds, dict)
        and ds.get("entry") == "bids"
        and isinstance(ds.get("path"), str)
        and Path(ds["path"]) == bids
        and re.fullmatch(r"[A-Za-z0-9]{1,64}", str(name))
    ]
