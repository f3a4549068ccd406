"""Which Snakemake records belong to a results folder: a marker at the top of ``results_dir``.

Snakemake decides what must rerun (a param, the code hash, the shell command changed) from its
records of each output, which it keeps in ``.snakemake/`` of the folder it runs in (the
working directory, or ``--directory``), while ``results_dir`` may be an absolute path anywhere.
Run from another folder, it finds no record of the results ("missing provenance/metadata") and
reruns nothing for a changed setting: stale results, and nothing said. The workflow therefore
notes, in ``results_dir``, the records folder of the runs that made the results
(:func:`write_records_marker`, before the first job), and refuses a run that would keep its
records elsewhere before any job (:func:`check_records`), with the fixes.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path

from lcm.exceptions import ConfigError, OutputOwnershipError
from lcm.io.atomic import write_json

log = logging.getLogger(__name__)

# At the top of results_dir, beside the ownership marker (lcm.io.ownership.MARKER_NAME): like
# it, outside the folders that hold outputs (lcm.io.paths.RESULTS_ENTRIES).
MARKER_NAME = ".lcm-snakemake.json"

OWNER = "the LCM workflow"
ADOPT_KEY = "adopt_snakemake_records"
_ABOUT = (
    "Snakemake keeps its records of these results (each job's params and code, which decide "
    "what reruns) in snakemake_records; a run that keeps them elsewhere is refused."
)


def records_marker(results: str) -> Path:
    """The marker naming the Snakemake records of ``results`` (the ``results_dir``).

    Parameters
    ----------
    results : str
        The ``results_dir``.

    Returns
    -------
    pathlib.Path
        ``results/.lcm-snakemake.json`` (:data:`MARKER_NAME`).
    """
    return Path(results, MARKER_NAME)


def check_records(
    results: str, records: str | os.PathLike[str], adopt: bool = False, source: str = "config"
) -> bool:
    """Refuse a run whose Snakemake records are not those of ``results``' earlier runs.

    The records are the same when the marker names ``records`` itself, or the same place
    relative to ``results`` (a project folder moved or copied whole, its records with it).

    Parameters
    ----------
    results : str
        The ``results_dir``.
    records : path-like
        This run's Snakemake records folder (``<working directory>/.snakemake``).
    adopt : bool
        ``adopt_snakemake_records``: take ``records`` as the results' records from now on; the
        marker is rewritten at once, by a dry run too (Snakemake runs no hook when it has
        nothing to do, and a run adopting records finds nothing to do when they were copied).
    source : str
        Where the config comes from, for messages.

    Returns
    -------
    bool
        Whether the marker is to be written before the first job (there is none yet).

    Raises
    ------
    ConfigError
        The marker names another records folder and ``adopt`` is false: naming
        ``results_dir``, the working directory of those runs and the fixes.
    OutputOwnershipError
        A file at the marker's path that LCM did not write.
    """
    marker = records_marker(results)
    if not (marker.exists() or marker.is_symlink()):
        return True
    recorded = _read_marker(marker)
    if _same_records(recorded, results, records):
        return False
    before = str(recorded["snakemake_records"])
    workdir = str(recorded.get("working_directory") or Path(before).parent)
    if adopt:
        write_records_marker(results, records)
        log.warning(
            "%s: %s are the records of results_dir %s from now on (%s were, of runs from %s); "
            "%s says so",
            ADOPT_KEY,
            records,
            results,
            before,
            workdir,
            marker,
        )
        return False
    here = os.getcwd()
    raise ConfigError(
        f"{source}: results_dir {results} holds results of runs from {workdir}, whose Snakemake "
        f"records (each job's params and code, which decide what reruns) are in {before}; run "
        f"from {here}, Snakemake would keep them in {records}, which has none of them, and "
        "rerun nothing for a changed setting or code, leaving stale results. Nothing was run.",
        hint=f"Run from {workdir} (cd there, or add --directory {shlex.quote(workdir)}), or set "
        f"another results_dir. To keep these results' records in {records} from now on, copy "
        f"them there first (cp -a {shlex.quote(before + '/.')} {shlex.quote(str(records))}), "
        f"then run once with --config {ADOPT_KEY}=True, "
        f"which rewrites {marker}.",
    )


def write_records_marker(results: str, records: str | os.PathLike[str]) -> Path:
    """Note ``records`` as the Snakemake records of ``results`` (atomically, in its marker).

    Parameters
    ----------
    results : str
        The ``results_dir``.
    records : path-like
        This run's Snakemake records folder (``<working directory>/.snakemake``); recorded
        absolute, and relative to ``results``.

    Returns
    -------
    pathlib.Path
        The marker written.

    Raises
    ------
    OutputOwnershipError
        A file at the marker's path that LCM did not write: it is left as it is.
    """
    marker = records_marker(results)
    if marker.exists() or marker.is_symlink():
        _read_marker(marker)  # ours, or refused
    records = os.path.abspath(records)
    write_json(
        marker,
        {
            "written_by": OWNER,
            "about": _ABOUT,
            "snakemake_records": records,
            "working_directory": os.path.dirname(records),
            "relative_to_results": _relative(records, results),
        },
    )
    return marker


def _read_marker(marker: Path) -> dict:
    """The marker's content; a file LCM did not write there is refused, and left alone."""
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        recorded = None
    if (
        not isinstance(recorded, dict)
        or recorded.get("written_by") != OWNER
        or not isinstance(recorded.get("snakemake_records"), str)
        or marker.is_symlink()
    ):
        raise OutputOwnershipError(
            f"{marker} is not the marker LCM writes there (a JSON file naming the Snakemake "
            "records of the results); nothing was run.",
            hint="Move it away if it is yours, or delete it if LCM wrote it and it was edited "
            "(the next run writes it again), or set another results_dir.",
        )
    return recorded


def _same_records(recorded: dict, results: str, records: str | os.PathLike[str]) -> bool:
    now = os.path.realpath(records)
    if os.path.realpath(recorded["snakemake_records"]) == now:
        return True
    return recorded.get("relative_to_results") == _relative(now, results)


def _relative(records: str | os.PathLike[str], results: str) -> str:
    return os.path.relpath(os.path.realpath(records), os.path.realpath(results))
