"""How a fix names a setting set to a value, as the user writes it.

One spelling for both sides: a dataset's settings (:func:`lcm.bids.dataset.setting_names`)
and the evaluation's (:func:`lcm.evaluate.splits.setting_names`). The evaluation side may not
import the imaging chain (the import contracts in pyproject.toml), so the spelling lives in
this leaf module, which imports nothing of ``lcm``.
"""

from __future__ import annotations

import json
from os import PathLike


def set_to(name: str, value: object) -> str:
    """A fix that sets the setting ``name`` to ``value``, as the user writes it.

    Three kinds of name: an option (``--task``, or another verb's, ``lcm ingest --entry``)
    gives ``--task motor``; a key inside a JSON option (``--settings' split``) gives
    ``--settings' split to "subject"``, the value as JSON; a config key gives
    ``datasets.d.task: motor`` or ``evaluate.label_fractions: [1.0]``, a string or path as it
    is, another value as JSON (YAML reads both).

    Parameters
    ----------
    name : str
        The setting's name: an option, a key inside a JSON option or a config key.
    value : object
        The value to set: a string, a path or a JSON-serialisable value.

    Returns
    -------
    str
    """
    if is_option(name):
        return f"{name} {value}"
    if any(word.startswith("-") for word in name.split()):
        # A key inside a JSON option: the value goes into its JSON, quoted.
        return f"{name} to {json.dumps(_plain(value))}"
    return f"{name}: {value if isinstance(value, str | PathLike) else json.dumps(value)}"


def is_option(name: str) -> bool:
    """Whether the setting ``name`` is an option (``--task``, or another verb's, ``lcm ingest
    --select``), not a config key nor a key inside a JSON option (``--settings' split``).

    Parameters
    ----------
    name : str
        The setting's name.

    Returns
    -------
    bool
    """
    return name.rsplit(" ", 1)[-1].startswith("-")


def _plain(value: object) -> object:
    """``value``, a path as its text (JSON has no path)."""
    return str(value) if isinstance(value, PathLike) else value
