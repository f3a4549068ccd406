"""How an input file that cannot be opened is missing, in the words of a refusal."""

from __future__ import annotations

import os
from pathlib import Path


def not_a_file(path: str | os.PathLike[str]) -> str:
    """``"is a folder, not a file"`` for a folder, else ``"not found"``.

    Readers that refuse a path that is not a file said "not found" of a folder given where a
    file was expected (a manifest's folder for the manifest), which sent users looking for a
    path that exists.

    Parameters
    ----------
    path : path-like
        The input that is not a regular file.

    Returns
    -------
    str
        The words to put between the file's kind and its path: ``f"Manifest {...}: {path}"``.
    """
    return "is a folder, not a file" if Path(path).is_dir() else "not found"


def not_a_folder(path: str | os.PathLike[str]) -> str:
    """``"is a file, not a folder"`` for a file (or other non-folder), else ``"not found"``.

    The counterpart of :func:`not_a_file` for an input that must be a folder (a feature
    store's root): a mistyped root read as a folder with nothing in it, whose refusal sent
    users to rebuild what was there all along.

    Parameters
    ----------
    path : path-like
        The input that is not a folder.

    Returns
    -------
    str
        The words to put between the folder's kind and its path: ``f"Feature store {...}: {path}"``.
    """
    return "is a file, not a folder" if os.path.lexists(path) else "not found"
