"""The validated config of each workflow run, kept under ``results/configs/<sha256>.json``.

Every sidecar records ``config_sha256`` (:data:`lcm.io.provenance.CONFIG_HASH_ENV`), the hash of
the validated config (defaults filled) its job was built from; the file named by that hash is the
config itself, so a hash on the report or in a sidecar leads to the settings. The copy is written
as canonical JSON: re-hashing the file's content gives its name back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcm.io import paths
from lcm.io.atomic import write_text
from lcm.io.provenance import config_hash


def config_text(config: dict[str, Any]) -> str:
    """``config`` as the JSON text kept on disk: :func:`config_hash` of its parse is its hash.

    Parameters
    ----------
    config : dict
        The validated config; values JSON cannot hold (paths) are written as their ``str``.

    Returns
    -------
    str
        Key-sorted JSON, indented by one space, ending in a newline.
    """
    return json.dumps(config, sort_keys=True, default=str, indent=1) + "\n"


def write_config_copy(results: str, config: dict[str, Any]) -> Path:
    """Write ``results/configs/<sha256>.json`` of ``config`` unless it is there already.

    Named by its content, so it never goes stale and is never rewritten: a run under another
    config writes another file. The write is atomic (no half-written copy after a kill).

    Parameters
    ----------
    results : str
        The workflow's results folder (claimed by :func:`lcm.io.ownership.claim_results`).
    config : dict
        The validated config.

    Returns
    -------
    pathlib.Path
        The copy.
    """
    path = Path(paths.config_copy(results, config_hash(config)))
    if not path.is_file():
        write_text(path, config_text(config))
    return path


def read_config_copy(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """The config in ``path`` and its :func:`config_hash`; ``(None, None)`` when unreadable.

    Parameters
    ----------
    path : str or pathlib.Path
        A config copy, ``results/configs/<sha256>.json``.

    Returns
    -------
    tuple of (dict or None, str or None)
        The parsed config and the hash of its content (which is the file's name unless it was
        edited); ``(None, None)`` when the file is missing, unreadable or not a JSON object.
    """
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    if not isinstance(config, dict):
        return None, None
    return config, config_hash(config)


def copy_rehash(path: str | Path) -> str | None:
    """How the config copy at ``path`` re-hashes now, when not to its name (it was edited).

    Parameters
    ----------
    path : str or pathlib.Path
        A config copy, ``results/configs/<sha256>.json``.

    Returns
    -------
    str or None
        None when the content's :func:`config_hash` is the name (``<sha256>.json``); else
        ``it re-hashes to <sha256>``, or ``it is no longer a readable JSON object``.
    """
    config, actual = read_config_copy(path)
    if actual == Path(path).name.removesuffix(".json"):
        return None
    if config is None:
        return "it is no longer a readable JSON object"
    return f"it re-hashes to {actual}"


def copy_change(path: str | Path) -> str | None:
    """What changed in the config copy at ``path`` since it was written, for messages.

    Parameters
    ----------
    path : str or pathlib.Path
        A config copy, ``results/configs/<sha256>.json``.

    Returns
    -------
    str or None
        None when its content re-hashes to its name; else ``the copy of config <name> was
        changed since it was written (it re-hashes to <sha256>)`` (:func:`copy_rehash`).
    """
    now = copy_rehash(path)
    name = Path(path).name.removesuffix(".json")
    return (
        None
        if now is None
        else f"the copy of config {name} was changed since it was written ({now})"
    )
