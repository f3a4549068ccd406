"""Verbs writing several tables: their folders checked first, their records naming each other.

``lcm evaluate`` (metrics, predictions) and ``lcm embed`` (embeddings, attention) write two
tables after minutes to hours of work. A second table that could not be written (its folder a
file, the disk full) once left the first without a record: the rerun was refused, as a file LCM
did not write, or the first table's old record described another run's content. The tables are
kept only together by :func:`lcm.io.output_set.written_together` (``lcm pretrain``'s,
``lcm finetune``'s and ``lcm report``'s files too), and the records join their files' set:
``lcm evaluate``'s, ``lcm embed``'s and ``lcm report``'s within their blocks, ``lcm pretrain``'s
and ``lcm finetune``'s through :func:`lcm.train.pretrain.pretrain`'s and
:meth:`lcm.train.finetune.LCMClassifier.save`'s ``record``; a full disk or a SIGTERM at a
record leaves the earlier run's files and records (:mod:`lcm.commands._stopped`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcm.exceptions import ConfigError, OutputOwnershipError
from lcm.io.provenance import check_recordable, sha256_file, write_sidecar


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else its nearest existing parent: a folder, or the file that
    blocks making ``path`` (a file on its way).

    Parameters
    ----------
    path : pathlib.Path
        A folder to make, or to write in.

    Returns
    -------
    pathlib.Path
    """
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folders(outputs: Iterable[str | Path | None]) -> None:
    """Refuse, before any work, an output whose folder cannot be made (a file on its path).

    Parameters
    ----------
    outputs : iterable of path-like or None
        The verb's output files (None: an option not given).

    Raises
    ------
    OutputOwnershipError
        Naming the output and the file in the way: the exit code of the same refusal by
        :func:`lcm.io.atomic.atomic_path`, which a verb checking first gave as a configuration
        error (2, not 6); ``lcm run``'s OUTPUT_DIR under a file is refused with it too.
    ConfigError
        Naming the output and the folder this user cannot write in.
    """
    for out in filter(None, outputs):
        folder = nearest_existing(Path(out).parent)
        if not folder.is_dir():
            raise OutputOwnershipError(
                f"Output {out} cannot be written: {folder} is a file, not a folder; nothing "
                "was computed.",
                hint=f"Give another output path, or move {folder} away.",
            )
        # A read-only mount or another user's folder: the write after the work raised a
        # traceback (OSError: Read-only file system) once the embeddings were computed.
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(
                f"Output {out} cannot be written: this user cannot write in {folder} (read-only "
                "or not its own); nothing was computed.",
                hint="Give an output path on a file system this user can write to, or fix the "
                "folder's permissions.",
            )


@dataclass(frozen=True)
class Recorded:
    """One output of a job, with what its record says besides its siblings.

    Attributes
    ----------
    output : pathlib.Path
        The file written (it must exist).
    sources : list of path-like
        Its direct inputs.
    metadata : dict
        Further keys of its record (settings, readouts), as
        :func:`lcm.io.provenance.write_sidecar` takes them.
    """

    output: Path
    sources: list[str | Path]
    metadata: dict[str, Any] = field(default_factory=dict)


def record_job(outputs: Sequence[Recorded]) -> list[Path]:
    """Write the provenance record of each of one job's ``outputs``, listing the others as
    products of its job (``Products``, with their sha256).

    Nothing reads the embeddings ``lcm embed`` writes beside its attention table, a
    checkpoint's history or the report's page: deleted with its record, no record named it
    and ``lcm provenance verify`` said nothing. Each record naming its siblings, verify
    reports one gone (or changed) while another is there.

    Parameters
    ----------
    outputs : sequence of Recorded
        The files the job wrote, each with its sources and further keys.

    Returns
    -------
    list of pathlib.Path
        The records written, in the order of ``outputs``.

    Raises
    ------
    ConfigError
        As :func:`lcm.io.provenance.check_recordable` refuses; no record is written.
    """
    paths = [Path(o.output) for o in outputs]
    check_recordable(paths)
    # Each file read once: every record lists its siblings (and the job's sources), and the
    # weights of a large checkpoint were hashed once per record.
    files = {str(p): p for p in paths} | {
        str(s): Path(s) for one in outputs for s in one.sources if Path(s).is_file()
    }
    digests = {name: sha256_file(path) for name, path in files.items()}
    return [
        write_sidecar(
            path,
            one.sources,
            products=[p for p in paths if p != path] or None,
            digests=digests,
            **one.metadata,
        )
        for path, one in zip(paths, outputs, strict=True)
    ]


def record_together(
    outputs: Iterable[str | Path], sources: list[str | Path], **metadata: Any
) -> list[Path]:
    """:func:`record_job` of ``outputs`` that share their ``sources`` and further keys.

    Parameters
    ----------
    outputs : iterable of path-like
        The files the job wrote (each must exist).
    sources : list of path-like
        Their direct inputs, the same for each.
    **metadata
        Further keys of each record (``DataParallel``, settings).

    Returns
    -------
    list of pathlib.Path
        The records written, in the order of ``outputs``.

    Raises
    ------
    ConfigError
        As :func:`lcm.io.provenance.check_recordable` refuses; no record is written.
    """
    return record_job([Recorded(Path(p), sources, metadata) for p in outputs])
