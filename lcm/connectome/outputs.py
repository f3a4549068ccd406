"""Provenance of the connectome stage's outputs (their paths come from :mod:`lcm.io.paths`)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lcm.bids.runs import run_ids_from_key
from lcm.exceptions import InputDataError, OutputOwnershipError
from lcm.io.atomic import TMP_TAG, remove_dead_temporaries, temporary_name, temporary_owner
from lcm.io.bids_names import RUN_ENTITIES, parse_entities
from lcm.io.paths import run_location
from lcm.io.provenance import (
    check_recordable,
    provenance_path,
    read_record,
    sha256_file,
    write_dataset_description,
    write_sidecar,
)

log = logging.getLogger(__name__)


def ensure_dataset_description(out_dir: str | Path, dataset: str) -> None:
    """Write ``OUTDIR/dataset_description.json`` (GeneratedBy LCM) unless it exists.

    Parameters
    ----------
    out_dir : str or Path
        The connectome derivatives folder.
    dataset : str
        Dataset name, in the description's ``Name``.
    """
    if not (Path(out_dir) / "dataset_description.json").is_file():
        write_dataset_description(out_dir, f"LCM connectomes of {dataset}")


def atlas_sources(name: str, path: str | None, labels: str | None) -> list[str]:
    """Files of the atlas, absolute as the BOLD's, for ``Sources`` in sidecars (package files
    for registry atlases; a loaded atlas's own are :attr:`lcm.atlas.Atlas.files`).

    Parameters
    ----------
    name : str
        The atlas name (``--atlas``); a registry atlas's files are looked up by it.
    path : str or None
        A user atlas's label image (``--atlas-path``).
    labels : str or None
        A user atlas's labels table (``--atlas-labels``).
    """
    if path is not None or labels is not None:
        # A user atlas, or a labels-only one: absolute, as typed relative to the folder run in.
        return [str(Path(p).resolve()) for p in (path, labels) if p]
    from lcm.atlas import atlas_files

    return [str(Path(p).resolve()) for p in atlas_files(name)]


def write_recorded(
    path: str | Path, write: Callable[[Path], None], sources: list[Any], **metadata: Any
) -> Path:
    """Write ``path`` (by ``write``) and its provenance record so that no kill leaves the file
    under its name without its record.

    Written one after the other, a kill between the two left a matrix nobody could tell LCM
    wrote: a rerun with other settings, which removes only files their record names
    (:func:`remove_stale_run_files`), kept it beside the new ones. Both are made in a hidden
    staging folder (:func:`lcm.io.atomic.temporary_name`, which a later write of ``path`` on
    this host removes once its writer is gone), then the record is renamed into place before
    the file: a kill in between leaves a record without its file, which a rerun replaces or
    removes. An earlier ``path`` is removed just before, once its successor is complete.

    Parameters
    ----------
    path : str or pathlib.Path
        The output.
    write : callable
        Writes the output to the path it is given (a file of the same name in the staging
        folder).
    sources : list
        Direct inputs, for the record's ``Sources``.
    **metadata
        Further record fields (:func:`lcm.io.provenance.write_sidecar`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ConfigError
        The record's place holds a file LCM did not write, or another output's record;
        nothing is written.
    OutputOwnershipError
        ``path`` is a folder; nothing is written.
    """
    path = Path(path)
    check_recordable([path])  # before the output, not after it as write_sidecar would
    if path.is_dir() and not path.is_symlink():
        raise OutputOwnershipError(
            f"Output {path} exists and is a folder; nothing was written.",
            hint=f"Move {path} away: the connectome stage writes a file there.",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    stage = temporary_name(path)
    stage.mkdir()
    try:
        staged = stage / path.name
        write(staged)
        staged_side = write_sidecar(staged, sources, **metadata)
        if path.is_file() or path.is_symlink():
            path.unlink()
        os.replace(staged_side, provenance_path(path))
        os.replace(staged, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return path


# The files of a run the connectome stage writes for an atlas (each with its JSON record).
_RUN_SUFFIXES = ("_timeseries.tsv", "_relmat.tsv")


def remove_stale_run_files(
    out_dir: str | Path, run_key: str, atlas: str, qc: Mapping[str, Any]
) -> list[Path]:
    """Remove the time series and matrices of run ``run_key`` and ``atlas`` that an earlier call
    wrote and this one did not (other kinds, windows or a space; a run now excluded).

    Snakemake knows a run's QC record only: without this, a rerun with other settings left
    the old files beside the new ones, read by anyone who globs the folder (XCP-D's layout).
    Only files LCM wrote and nobody changed since are removed: their record names them and
    their sha256 is the recorded one; any other file is left.

    Parameters
    ----------
    out_dir : path-like
        The dataset's connectome folder.
    run_key : str
        The run.
    atlas : str
        The atlas's name (the ``seg`` entity).
    qc : mapping
        The run's QC record: the files it names (``timeseries``, ``relmat``, ``relmats``,
        ``window_relmats``) are this call's, kept.

    Returns
    -------
    list of pathlib.Path
        The files removed (each with its record).
    """
    kept = {Path(str(p)).name for key in ("timeseries", "relmat") if qc.get(key) for p in [qc[key]]}
    kept |= {Path(str(p)).name for key in ("relmats", "window_relmats") for p in qc.get(key) or []}
    try:
        ids = run_ids_from_key(run_key)
        where = run_location(ids.entities)
    except InputDataError:
        return []  # a key ingest refused: nothing of it was written
    folder = Path(out_dir) / f"sub-{where['subject']}" / where["func_dir"]
    run = {k: ids.entities.get(k) for k in RUN_ENTITIES}
    removed = []
    names = sorted(os.listdir(folder)) if folder.is_dir() else []

    def this_runs(name: str) -> bool:
        if not name.startswith(f"{where['run_key']}_") or not name.endswith(_RUN_SUFFIXES):
            return False
        ents = parse_entities(name)
        # Not another atlas's, nor a run whose key merely starts the same.
        return ents.get("seg") == atlas and {k: ents.get(k) for k in RUN_ENTITIES} == run

    for name in names:
        # A writer killed here left its staging folder (write_recorded): gone once it is dead.
        if name.startswith(".") and temporary_owner(name):
            output = name[1:].rsplit(f".{TMP_TAG}-", 1)[0]
            if this_runs(output):
                remove_dead_temporaries(folder / output)
            continue
        # A record whose file is gone (a writer killed between the two): LCM's, removed.
        mine = name.startswith(f"{where['run_key']}_") and name.endswith(".json")
        record = read_record(folder / name) if mine else None
        output = str(record["Output"]) if record is not None else ""
        if (
            this_runs(output)
            and output not in kept
            and provenance_path(folder / output).name == name
            and not (folder / output).exists()
        ):
            (folder / name).unlink(missing_ok=True)
    for path in (folder / name for name in names):
        if path.name in kept or not this_runs(path.name) or not path.is_file():
            continue
        side = provenance_path(path)
        record = read_record(side) if side.is_file() else None
        if record is None or record.get("Output") != path.name:
            continue  # not LCM's
        if record.get("Sha256") != sha256_file(path):
            log.warning("%s: left in place, changed since LCM wrote it (stale otherwise)", path)
            continue
        path.unlink()
        side.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info(
            "%s: removed %d file(s) of an earlier run with other settings: %s",
            run_key,
            len(removed),
            ", ".join(p.name for p in removed[:4]) + (" ..." if len(removed) > 4 else ""),
        )
    return removed


def remove_stale_dataset_files(
    out_dir: str | Path, atlas: str, records: list[dict[str, Any]]
) -> list[Path]:
    """:func:`remove_stale_run_files` for each run of a dataset job's QC ``records``.

    A run may have several records (its file of another parcellation, a duplicate, excluded
    beside the one read): the files any of them names are kept.

    Parameters
    ----------
    out_dir : path-like
        The dataset's connectome folder.
    atlas : str
        The atlas's name.
    records : list of dict
        The job's QC records, one per manifest row.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    named: dict[str, list[Any]] = {}
    for record in records:
        if record.get("run_key"):
            files = named.setdefault(str(record["run_key"]), [])
            files += [record[k] for k in ("timeseries", "relmat") if record.get(k)]
            files += [*(record.get("relmats") or []), *(record.get("window_relmats") or [])]
    return [
        path
        for run_key, files in named.items()
        for path in remove_stale_run_files(out_dir, run_key, atlas, {"relmats": files})
    ]
