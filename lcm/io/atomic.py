"""Atomic file writes: write to a temporary file in the same folder, then rename.

A crash or a bad input never leaves a half-written output, and an output that already exists is
replaced only once its successor is complete.

Temporary names are ``.<name>.lcmtmp-<host>-<pid>-<random>`` (plus a suffix such as ``.nii.gz``
only where a writer infers the format from it): they never end in ``.parquet`` or ``.tsv``, so
that no reader's glob (``*.parquet``, pyarrow dataset discovery, DuckDB) picks up a half-written
file. A writer killed with ``kill -9`` cannot remove its temporary file; the next atomic write to
the same destination on the same host removes those whose writer process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcm.exceptions import OutputOwnershipError
from lcm.io.disk_full import no_room_errno

if TYPE_CHECKING:
    import pandas as pd

TMP_TAG = "lcmtmp"
# The tag of the feature store's staged partitions (lcm.store.commit), renamed into place together.
STAGED_TAG = "lcmstaged"
# Suffixes some writers infer the format or compression from (nibabel, pandas): a temporary file
# keeps the longest of these that ends the destination's name, and no other.
_FORMAT_SUFFIXES = (".nii.gz", ".nii", ".gz", ".bz2", ".xz", ".zst", ".zip")
# What follows ``.<name>.<tag>-`` in a temporary name (see temporary_name).
_TEMPORARY_TAIL = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+(\..*)?$")
# What follows ``lcm-<kind>-`` in a temporary folder's name (tempfile's random tail).
_FOLDER_TAIL = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final destination. Parent folders are created.

    Yields
    ------
    pathlib.Path
        Temporary file to write to (mode governed by the umask). It ends like the destination
        only for NIfTI and compressed names, which nibabel and pandas infer the format from; any
        other temporary name ends in the random tag, never in ``.parquet`` or ``.tsv``.
    """
    path = Path(path)
    _check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path)
    tmp_path = temporary_name(path)
    # O_EXCL: the random tag makes a clash unlikely, this makes it impossible. The mode is the
    # usual umask-governed one (not mkstemp's 0600) so that groups sharing a project folder on a
    # cluster can read the outputs.
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except Exception as exc:
        # Out of room (a full disk, a quota): the writer's error names the temporary or no
        # file at all (pyarrow's, safetensors' "os error 28"); say which output it was.
        code = no_room_errno(exc)
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _check_destination(path: Path) -> None:
    """Refuse to replace what is not a regular file (``--out /dev/null`` once replaced the
    machine's /dev/null with a file: a rename swaps any directory entry, devices included)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputOwnershipError(f"Cannot write {path}: {exc.strerror}.") from None
    if not stat.S_ISREG(mode):
        raise OutputOwnershipError(
            f"Output {path} exists and is not a regular file (a folder, device or pipe); "
            "nothing was written.",
            hint="Give a path of a new or regular file.",
        )


def temporary_name(path: str | os.PathLike[str], tag: str = TMP_TAG) -> Path:
    """A fresh hidden sibling name of ``path`` carrying this host, this process and ``tag``.

    Parameters
    ----------
    path : path-like
        The destination.
    tag : str
        Marks what kind of temporary file it is (:data:`TMP_TAG` for :func:`atomic_path`).

    Returns
    -------
    pathlib.Path
        ``.<name>.<tag>-<host>-<pid>-<random>[<format suffix>]`` in the same folder.
    """
    path = Path(path)
    name = path.name.lower()
    keep = next((s for s in _FORMAT_SUFFIXES if name.endswith(s)), "")
    stem = f".{path.name}.{tag}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(stem + keep)


def remove_dead_temporaries(path: str | os.PathLike[str], tag: str = TMP_TAG) -> list[Path]:
    """Remove the temporary siblings of ``path`` (files, or a writer's staging folders) left by
    writers that died on this host.

    A temporary file of another host, or of a process still alive, is left alone: it may be in
    use (a reused process id only delays the clean-up).

    Parameters
    ----------
    path : path-like
        The destination whose temporaries (:func:`temporary_name`) are looked for.
    tag : str
        Kind of temporary file.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    # A name prefix and one precompiled pattern for the rest: compiling a pattern per
    # destination cost more than the write itself for small files.
    prefix = f".{path.name}.{tag}-"
    host = _host()
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if not entry.name.startswith(prefix):
                continue
            m = _TEMPORARY_TAIL.match(entry.name, len(prefix))
            if m and m["host"] == host and not pid_alive(int(m["pid"])):
                if entry.is_dir(follow_symlinks=False):  # a staging folder (the index cache's)
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
                    continue
                with contextlib.suppress(FileNotFoundError):  # another process removed it
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


_TEMPORARY_NAME = re.compile(rf"^\..+\.(?:{TMP_TAG}|{STAGED_TAG})-" + _TEMPORARY_TAIL.pattern)


def temporary_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of the writer a temporary or staged file's name names, or None.

    ``name`` is a file name as :func:`temporary_name` makes them (``.<name>.lcmtmp-<host>-
    <pid>-<random>``, or with the store's ``lcmstaged`` tag).

    Parameters
    ----------
    name : str
        A file or folder name, without its folder.

    Returns
    -------
    tuple of (str, int) or None
        The writer's host and process id; None when ``name`` is not a temporary or staged name.
    """
    m = _TEMPORARY_NAME.match(name)
    return (m["host"], int(m["pid"])) if m else None


def temporary_folder_prefix(kind: str) -> str:
    """``lcm-<kind>-<host>-<pid>-``: a temporary folder's name prefix carrying its owner.

    :func:`remove_dead_temporary_folders` removes such a folder once its process is gone.

    Parameters
    ----------
    kind : str
        What the folder holds (``evaluate`` for evaluate's copy of the cohort); one name per
        kind, so that :func:`remove_dead_temporary_folders` looks only at its own folders.

    Returns
    -------
    str
        The prefix, for ``tempfile.TemporaryDirectory(prefix=...)``.
    """
    return f"lcm-{kind}-{_host()}-{os.getpid()}-"


def remove_dead_temporary_folders(folder: str | os.PathLike[str], kind: str) -> list[Path]:
    """Remove the ``lcm-<kind>-<host>-<pid>-*`` folders in ``folder`` of dead processes here.

    A process killed with SIGKILL (the OOM killer, SLURM after its grace period) runs no
    clean-up; its folder (evaluate's copy of the cohort's connectomes) would stay for good.
    Folders of other hosts or of live processes are left alone, as in
    :func:`remove_dead_temporaries`.

    Parameters
    ----------
    folder : path-like
        The folder to look in (the system's temporary folder); a missing or unreadable one
        removes nothing.
    kind : str
        The kind given to :func:`temporary_folder_prefix` when the folders were made.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    prefix = f"lcm-{kind}-"
    host = _host()
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
                continue
            m = _FOLDER_TAIL.match(entry.name, len(prefix))
            if m and m["host"] == host and not pid_alive(int(m["pid"])):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as dead).

    Parameters
    ----------
    pid : int
        A process id on this host.

    Returns
    -------
    bool
        True for this process and for a live process of another user, False for a process that
        is gone or a zombie.
    """
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    # A killed child not yet reaped by its parent is a zombie: it writes nothing any more.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _host() -> str:
    # Only characters that cannot be confused with the separators of a temporary name.
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's (or a folder's) data to disk, so that a rename after it is durable.

    Parameters
    ----------
    path : path-like
        The file or folder to flush. A file system that refuses ``fsync`` on it is ignored.

    Raises
    ------
    OSError
        When ``path`` cannot be opened (it does not exist, or is not readable).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the data is flushed anyway
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination; parent folders are created.
    text : str
        The content, encoded in the locale's encoding as ``Path.write_text`` does.

    Raises
    ------
    lcm.exceptions.OutputOwnershipError
        When ``path`` exists and is not a regular file (a folder, device or pipe).
    OSError
        When the disk or quota is full; the error names ``path``, not the temporary file.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically.

    Parameters
    ----------
    path : path-like
        Destination; parent folders are created.
    obj : Any
        JSON-serialisable object; numpy scalars and arrays and paths are converted.

    Raises
    ------
    TypeError
        When ``obj`` holds a value JSON cannot represent; nothing is written.
    lcm.exceptions.OutputOwnershipError
        When ``path`` exists and is not a regular file.
    """
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_tsv(path: str | os.PathLike[str], df: pd.DataFrame, index: bool = False) -> None:
    """Write a data frame as a tab-separated file with ``n/a`` for missing values, atomically.

    Float tables (ROI time series, matrices) are formatted by :func:`lcm.io.tsv.frame_tsv`,
    the same bytes as pandas at a tenth of its cost; the rest by ``DataFrame.to_csv``.

    Parameters
    ----------
    path : path-like
        Destination; parent folders are created.
    df : pandas.DataFrame
        The table; its column names become the header.
    index : bool
        Whether to write the index as the first column (always through ``DataFrame.to_csv``).

    Raises
    ------
    lcm.exceptions.OutputOwnershipError
        When ``path`` exists and is not a regular file.
    """
    # Here, not at the top: every verb imports this module, and pandas (lcm.io.tsv's) would
    # be paid by each, lcm --help and the light verbs included.
    from lcm.io.tsv import frame_tsv

    text = None if index else frame_tsv(df)
    with atomic_path(path) as tmp:
        if text is not None:
            tmp.write_text(text, encoding="utf-8")  # as pandas writes, whatever the locale
        else:
            df.to_csv(tmp, sep="\t", index=index, na_rep="n/a")


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in metadata often enough to handle them here.
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")
