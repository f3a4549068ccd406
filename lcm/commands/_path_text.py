"""The argparse type of every file and folder option: a path, never the empty string."""

from __future__ import annotations

import argparse


def path_text(text: str) -> str:
    """An argparse ``type`` of file and folder options: any path but the empty string.

    ``pathlib.Path("")`` is ``.``: an empty ``--out-dir`` (an unset shell variable) wrote a
    dataset's derivatives into the current folder, or with a path joined as text into ``/``, and
    an empty input read the current folder as the dataset. argparse prints the one-line error.

    Parameters
    ----------
    text : str
        The option's value as given.

    Returns
    -------
    str
        ``text`` unchanged.

    Raises
    ------
    argparse.ArgumentTypeError
        For the empty string or one of blanks only.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a path, got {text!r} (an unset shell variable?); give the file or "
            "folder, or '.' for the current folder"
        )
    return text


path_text.__name__ = "path"
