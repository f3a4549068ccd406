"""Command-line options shared by several verbs, defined once."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from lcm.commands._atlas import add_atlas_arguments
from lcm.commands._path_text import path_text

# The largest seed: torch.manual_seed takes an unsigned 64-bit integer (a larger one crashed).
MAX_SEED = 2**64 - 1


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse prints a one-line error).

    Parameters
    ----------
    minimum : int
        The smallest value accepted.
    maximum : int, optional
        The largest value accepted (none by default).

    Returns
    -------
    callable
        ``str -> int``, raising :class:`argparse.ArgumentTypeError` for a value that is no integer
        or is below ``minimum``; named ``integer >= minimum`` in argparse's messages.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"expected an integer <= {maximum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    """``--store``, ``--atlas``, ``--catalogue``: which feature store and variables to read.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The verb's parser.
    """
    p.add_argument("--store", required=True, type=path_text, help="Root of the feature store.")
    add_atlas_arguments(p)
    p.add_argument("--catalogue", required=True, type=path_text, help="Variable catalogue YAML.")


def add_task_arguments(p: argparse.ArgumentParser, continuous: bool = False) -> None:
    """``--dataset``, ``--label``, ``--positive``: a binary diagnosis of one dataset.

    With ``continuous=True`` the label may also be a continuous variable, ``--positive`` optional.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The verb's parser.
    continuous : bool, default False
        Accept a continuous ``--label`` too, ``--positive`` then optional.
    """
    p.add_argument("--dataset", required=True, help="Downstream dataset holding the diagnosis.")
    if continuous:
        p.add_argument("--label", required=True, help="Binary or continuous variable to predict.")
        p.add_argument("--positive", help="Positive level of a binary --label (omit otherwise).")
        return
    p.add_argument("--label", required=True, help="Binary catalogue variable to predict.")
    p.add_argument("--positive", required=True, help="Level of --label that is the positive class.")


def add_seed_and_threads(p: argparse.ArgumentParser) -> None:
    """``--seed`` and ``--threads`` of the torch stages.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The verb's parser.
    """
    p.add_argument(
        "--seed",
        type=int_at_least(0, MAX_SEED),
        default=0,
        help="Master seed of the workflow (default 0).",
    )
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        default=None,
        help="CPU threads for torch (default: the CPUs available to this process).",
    )
