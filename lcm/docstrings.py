"""Shared numpydoc parameter text, as nilearn's ``docdict`` and ``fill_doc``.

A parameter that many public functions take (the workflow's results folder, the store, a dataset,
a task, a verb's parser and options) is described once here; a docstring writes ``%(name)s`` on a
line of its own in its Parameters section, and :func:`fill_doc` puts the entry there, indented as
that line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

DOCDICT: dict[str, str] = {
    "args": "args : argparse.Namespace\n    The options :func:`register` defines, as parsed.",
    "dataset": "dataset : str\n    The dataset's name in the config.",
    "model_name": "name : str\n    Model name (an ``evaluate.models`` entry).",
    "results": "results : str\n    The workflow's ``results_dir``.",
    "store": "store : path-like\n    Store root.",
    "sub": (
        "sub : argparse._SubParsersAction\n"
        "    ``lcm``'s sub-commands (:func:`lcm.cli.build_parser`); the verb's parser is added "
        "to it."
    ),
    "task": "task : str\n    The task's name.",
}

_PLACEHOLDER = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill(doc: str) -> str:
    """``doc`` with each ``%(name)s`` line replaced by :data:`DOCDICT`'s entry, indented as it.

    Parameters
    ----------
    doc : str
        A docstring, as written or as :func:`inspect.cleandoc` leaves it.

    Returns
    -------
    str

    Raises
    ------
    KeyError
        A placeholder names no entry of :data:`DOCDICT`.
    """

    def entry(match: re.Match[str]) -> str:
        indent, name = match.group(1), match.group(2)
        if name not in DOCDICT:
            raise KeyError(f"docstring placeholder %({name})s names no entry of DOCDICT")
        return "\n".join(indent + line for line in DOCDICT[name].splitlines())

    return _PLACEHOLDER.sub(entry, doc)


def fill_doc(func: F) -> F:
    """Decorator: fill the ``%(name)s`` placeholders of ``func``'s docstring (:func:`fill`).

    Parameters
    ----------
    func : callable
        A function whose docstring holds placeholders.

    Returns
    -------
    callable
        ``func`` itself, its ``__doc__`` filled.
    """
    if func.__doc__:
        func.__doc__ = fill(func.__doc__)
    return func
