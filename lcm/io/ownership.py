"""Owned output folders: LCM writes only into folders it created or was given empty.

A verb that writes several files into an ``--out-dir`` (a model, its history, its training
state) first claims the folder. A folder LCM claimed carries a marker; a new or empty folder is
claimed by writing one; a folder with someone else's files is refused before anything is
written, so a mistyped ``--out-dir`` never overwrites or deletes a user's files. Cleaning up
removes only names LCM knows it wrote, never a whole tree.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from lcm.exceptions import OutputOwnershipError

log = logging.getLogger(__name__)

MARKER_NAME = ".lcm-owned"
# Written by LCM itself in any folder it uses (lock file, atomic-write temp files).
_ALWAYS_OURS = (MARKER_NAME, ".lcm.lock", ".*.tmp*")


def claim_out_dir(folder: str | os.PathLike[str], verb: str, outputs: Iterable[str] = ()) -> Path:
    """Make ``folder`` an LCM output folder, or refuse it if it holds others' files.

    Parameters
    ----------
    folder : path-like
        The output folder (created if missing).
    verb : str
        The command claiming it, for messages (e.g. ``"lcm pretrain"``).
    outputs : iterable of str
        Names or glob patterns of the verb's own outputs. In a folder without the marker (one
        written by an LCM version without markers, or by Snakemake creating it) entries
        matching these are taken as LCM's; anything else makes the folder someone else's.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputOwnershipError
        The folder exists, lacks the marker and holds entries that are not the verb's outputs.
    """
    path = Path(folder)
    if (path / MARKER_NAME).is_file():
        return path
    if path.exists() and not path.is_dir():
        raise OutputOwnershipError(
            f"{verb}: output folder {path} exists and is not a folder.",
            hint="Choose another --out-dir.",
        )
    patterns = (*_ALWAYS_OURS, *outputs)
    foreign = sorted(
        entry.name
        for entry in (path.iterdir() if path.is_dir() else ())
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise OutputOwnershipError(
            f"{verb}: output folder {path} holds files LCM did not write ({shown}); "
            "nothing was written.",
            hint="Choose a new or empty --out-dir, or move those files elsewhere.",
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER_NAME).write_text(f"Written by {verb}: LCM may replace its outputs here.\n")
    return path


def remove_owned(folder: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Delete the files ``names`` (LCM's own) in ``folder``, then the folder if it is empty.

    Anything else found there is left in place with a warning: a user's file is never deleted.
    """
    path = Path(folder)
    if not path.is_dir():
        return
    for name in (*names, MARKER_NAME, ".lcm.lock"):
        target = path / name
        if target.is_file() or target.is_symlink():
            target.unlink()
    left = sorted(p.name for p in path.iterdir())
    if left:
        log.warning("kept %s: it holds files LCM did not write (%s)", path, ", ".join(left[:5]))
        return
    path.rmdir()
