"""The argparse type of the evaluation verbs' ``--task``.

A task name becomes a column value, a file label (``task-<name>_metrics.parquet``) and an
anchor of the report page: the config's schema allows letters and digits only, as for atlas
names, and so do the verbs, which ran with ``--task ''`` and wrote a page of blank headings.
"""

from __future__ import annotations

import argparse

from lcm.commands._atlas import atlas_name


def task_name(text: str) -> str:
    """An argparse ``type``: a task name, 1 to 64 letters and digits (as an atlas name).

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    str
        ``text``, unchanged.

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is not 1 to 64 letters and digits (argparse prints it as a usage error).
    """
    try:
        return atlas_name(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a task name of letters and digits (at most 64, as the config's tasks), "
            f"got {text!r}"
        ) from None


task_name.__name__ = "task name"
