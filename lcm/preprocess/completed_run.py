"""The stamp of a completed fMRIPrep run: what it was asked, on which raw files, with which image.

A subject's fMRIPrep job reruns whenever the ``lcm`` code it executes changes (its Snakemake
param ``code``), since its record comes from that code. fMRIPrep itself takes hours per subject
and its derivatives do not depend on LCM's code: a run that completed is therefore not launched
again when it would be asked the same thing on the same files. The job then only checks the
derivatives again (with the new code) and writes the record. The stamp lies beside the record
(``sub-<label>_fmriprep.completed.json``): Snakemake does not know it, so it survives the rerun;
removing it relaunches fMRIPrep for that subject.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from lcm.io.atomic import write_json

log = logging.getLogger(__name__)

STAMP_SUFFIX = ".completed.json"
# Identifies a stamp as LCM's: a JSON of another origin at that path is never replaced.
_WRITER = "lcm fmriprep"


def stamp_path(record: str | os.PathLike[str]) -> Path:
    """The completed-run stamp of the record ``record`` (``x.json`` -> ``x.completed.json``).

    Parameters
    ----------
    record : str or path-like
        The subject's fMRIPrep record (``lcm fmriprep --out``), a ``.json`` file.
    """
    path = Path(record)
    return path.with_name(path.name.removesuffix(".json") + STAMP_SUFFIX)


def raw_subject_files(bids: str | os.PathLike[str], subject: str) -> list[Path]:
    """What fMRIPrep reads of one subject: every file below ``sub-<label>/`` and the dataset's
    top-level JSON files (``dataset_description.json``, inherited sidecars), sorted.

    Top-level tables (``participants.tsv``) are left out: adding a subject changes them and
    must not relaunch every other subject. Broken links (a git-annex file not fetched) are
    listed too.

    Parameters
    ----------
    bids : str or path-like
        The raw BIDS dataset's top folder.
    subject : str
        Subject label, without ``sub-``.
    """
    root = Path(bids)
    top = [p for p in root.glob("*.json") if p.is_file()]
    below = [Path(d, f) for d, _, files in os.walk(root / f"sub-{subject}") for f in files]
    return sorted({*top, *below})


def raw_subject_digest(bids: str | os.PathLike[str], subject: str) -> str:
    """sha256 over :func:`raw_subject_files`, by relative path, size and modification time.

    Parameters
    ----------
    bids : str or path-like
        The raw BIDS dataset's top folder.
    subject : str
        Subject label, without ``sub-``.
    """
    root = Path(bids)
    entries: list[tuple[str, int, int]] = []
    for path in raw_subject_files(root, subject):
        try:
            st = path.stat()
        except OSError:  # a broken link (a git-annex file not fetched): its own stat
            st = path.lstat()
        entries.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()


def read_stamp(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The stamp at ``path`` when it records a completed run of exactly ``request``, else None.

    A stamp of another request (a setting, the image or a raw file changed) is not used; the
    log says which of its fields differ.

    Parameters
    ----------
    path : Path
        The stamp (:func:`stamp_path`); a missing or foreign file reads as no stamp.
    request : dict
        What determines this run's derivatives (its settings, image and raw files' digest).

    Returns
    -------
    dict or None
        The stamp: ``request``, ``command``, ``container_env``, ``image_digest``, ``finished``.
    """
    stamp = _load(path)
    if stamp is None:
        return None
    if stamp.get("request") != request:
        old = stamp.get("request") or {}
        changed = sorted(k for k in {*old, *request} if old.get(k) != request.get(k))
        log.info("fMRIPrep runs again: %s since the run of %s", ", ".join(changed), path.name)
        return None
    return stamp


def write_stamp(
    path: Path,
    request: dict[str, Any],
    command: list[str],
    image_digest: dict | None,
    container_env: dict[str, str] | None = None,
) -> None:
    """Record (atomically) that fMRIPrep completed ``request`` with ``command``.

    ``container_env`` (the environment LCM set for the container) is kept beside the command
    for the record of a later check; it is not part of the request.

    Parameters
    ----------
    path : Path
        The stamp (:func:`stamp_path`); a file there that LCM did not write is left alone.
    request : dict
        What determined the run's derivatives, compared by :func:`read_stamp`.
    command : list of str
        The command that ran fMRIPrep.
    image_digest : dict or None
        The image's digest record (:meth:`lcm.preprocess.image_digest.ImageDigest.to_record`).
    container_env : dict, optional
        The environment LCM set for the container.
    """
    if path.exists() and _load(path) is None:
        log.warning("not replacing %s: LCM did not write it (no stamp written)", path)
        return
    write_json(
        path,
        {
            "written_by": _WRITER,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "request": request,
            "command": command,
            "container_env": container_env,
            "image_digest": image_digest,
        },
    )


def drop_stamp(path: Path) -> None:
    """Remove the stamp at ``path`` (after a run that did not complete), if it is LCM's.

    Parameters
    ----------
    path : Path
        The stamp (:func:`stamp_path`).
    """
    if _load(path) is not None:
        path.unlink()


def _load(path: Path) -> dict[str, Any] | None:
    """The stamp's content when ``path`` holds one LCM wrote, else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == _WRITER else None
