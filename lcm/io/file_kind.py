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
