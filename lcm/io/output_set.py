"""Outputs kept only together: after a failure, a verb's files are all this run's or all the
last run's, never a mix.

``lcm evaluate`` (metrics, predictions), ``lcm embed`` (embeddings, attention), ``lcm report``
(its tables), ``lcm pretrain`` (weights, ``model.json``, history, held-out metrics) and ``lcm
finetune`` (weights, ``model.json``, history) write several files one after another, each
atomically (:mod:`lcm.io.atomic`). A later one that could not be written (a full disk) left
the first beside the last run's others: new weights beside an old ``model.json``, refused later
on its checksum, the training to be run again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# The previous file of an output, kept aside (a hard link: no room taken) while the job
# writes its files, put back should one of them fail.
PREVIOUS_SUFFIX = ".lcm-previous"


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`written_together` keeps ``path``'s previous file while the block runs.

    Parameters
    ----------
    path : path-like
        An output file.

    Returns
    -------
    pathlib.Path
        ``.<name>.lcm-previous`` beside it (hidden: no reader's glob picks it up).
    """
    path = Path(path)
    return path.with_name(f".{path.name}{PREVIOUS_SUFFIX}")


def _keep_aside(path: Path) -> Path | None:
    """Keep ``path``'s current file at :func:`previous_path`; None when there is none."""
    aside = previous_path(path)
    if not path.is_file() or path.is_symlink():
        # One a killed run moved aside (no hard links there) and did not put back: the only
        # copy of the last run's file, put back rather than deleted.
        if not path.exists() and not path.is_symlink() and aside.is_file():
            os.replace(aside, path)
            return _keep_aside(path)
        return None
    aside.unlink(missing_ok=True)  # one a killed run left: the file is still at its path
    try:
        os.link(path, aside)
    except OSError:
        # A file system without hard links: moved aside instead (missing, not stale, while
        # the block runs), so that it can still be put back.
        os.replace(path, aside)
    return aside


@contextlib.contextmanager
def written_together(outputs: Iterable[str | Path | None] = ()) -> Iterator[list[Path]]:
    """Yield a list the block appends each file it has written to; should the block fail,
    those files are removed (they are this run's: each replaced its path atomically), and the
    files ``outputs`` held before the block are put back, byte for byte.

    Parameters
    ----------
    outputs : iterable of path-like or None
        The files the block may write (None: an option not given). Their previous content
        was lost when a rerun's second file failed (a full disk): the first had replaced its
        previous file, then was removed with it, its record left naming a missing file.

    Yields
    ------
    list of pathlib.Path

    Notes
    -----
    On failure a warning names the files removed and those put back: the error that follows
    (a full disk's) names only the file that could not be written.
    """
    paths = [Path(p) for p in outputs if p]
    kept: dict[Path, Path] = {}
    for path in paths:
        if (aside := _keep_aside(path)) is not None:
            kept[path] = aside
    # Taken once the previous files are aside (moved, where hard links are not to be had).
    before = {path: _identity(path) for path in paths}
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        # This run's: those the block listed, and any other output it replaced before it
        # could list it (a writer of two files failing at its second).
        ours = [
            p
            for p in paths
            if (now := _identity(p)) is not None and (p in written or now != before[p])
        ]
        for path in ours:
            if path not in kept:
                path.unlink(missing_ok=True)
        for path, aside in kept.items():
            os.replace(aside, path)
        _say_undone(paths, ours, list(kept))
        raise
    finally:
        for aside in kept.values():
            aside.unlink(missing_ok=True)


def _identity(path: Path) -> tuple[int, int] | None:
    """The file at ``path`` (device, inode): an atomic write puts a new one there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _say_undone(paths: list[Path], written: list[Path], restored: list[Path]) -> None:
    """Log what a failed :func:`written_together` block left: the last run's files or none."""
    if not paths:
        return
    folder = paths[0].parent
    names = ", ".join(p.name if p.parent == folder else str(p) for p in paths)
    parts = []
    if written:
        parts.append(f"this run's {', '.join(p.name for p in written)} removed")
    if restored:
        back = ", ".join(p.name for p in restored)
        parts.append(f"the earlier run's {back} put back as they were")
    if missing := [p.name for p in paths if not p.exists() and not p.is_symlink()]:
        parts.append(f"no {', '.join(missing)} (none before this run)")
    log.warning("not all of %s could be written in %s: %s.", names, folder, "; ".join(parts))
