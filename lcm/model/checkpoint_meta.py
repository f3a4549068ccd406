"""A checkpoint's file names and the reading of its ``model.json``, without torch.

:mod:`lcm.model.checkpoint` writes checkpoints and loads their weights; what it writes is named
and read here, so that the baselines' leakage checks (``lcm evaluate`` runs them without torch),
the report and the workflow's rules read one module instead of spelling the names again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lcm.exceptions import CheckpointError

WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
# The files of a checkpoint folder, weights first.
CHECKPOINT_NAMES = (WEIGHTS_NAME, META_NAME)
FORMAT_VERSION = 1
_HINT = "Point to the output folder of `lcm pretrain` or `lcm finetune`."


def meta_path(checkpoint: str | Path) -> Path:
    """``model.json`` of a checkpoint given as its folder or as that file.

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint folder, or its ``model.json``.

    Returns
    -------
    Path
    """
    path = Path(checkpoint)
    return path if path.name == META_NAME and not path.is_dir() else path / META_NAME


def read_meta_fields(checkpoint: str | Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The fields of a checkpoint's ``model.json``, with no check of its weights or version.

    For readers that need a few recorded facts (data fingerprint, datasets, kind) and must
    not load torch; :func:`read_meta` adds the checks a loader needs.

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint folder, or its ``model.json``.
    missing_ok : bool, default False
        Return None when the file does not exist, instead of raising.

    Returns
    -------
    dict or None
        The JSON object; None only for a missing file with ``missing_ok``.

    Raises
    ------
    CheckpointError
        The file is missing (unless ``missing_ok``), unreadable, not UTF-8 JSON, or not a JSON
        object: a damaged ``model.json`` must never read as one that records nothing.
    """
    path = meta_path(checkpoint)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise CheckpointError(f"Checkpoint metadata {path} does not exist.", hint=_HINT) from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{path} is not UTF-8 text (JSON expected): {exc}", hint=_HINT
        ) from exc
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint metadata {path}: {exc}", hint=_HINT) from exc
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}", hint=_HINT) from exc
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{path}: expected a JSON object, got {type(meta).__name__}.",
            hint="The file is damaged or comes from elsewhere. " + _HINT,
        )
    return meta


def read_meta(checkpoint: str | Path) -> dict[str, Any]:
    """``model.json`` of a checkpoint folder, checked for presence (with the weights) and version.

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint folder.

    Returns
    -------
    dict

    Raises
    ------
    CheckpointError
        The folder missing or a file, a file of it missing, unreadable or not a JSON object,
        or another ``format_version``.
    """
    folder = Path(checkpoint)
    if not folder.is_dir():
        said = "is a file" if folder.exists() else "does not exist"
        raise CheckpointError(
            f"Checkpoint {folder} {said}: a checkpoint is the folder holding {META_NAME} and "
            f"{WEIGHTS_NAME}.",
            hint=f"Pass its folder, {folder.parent}." if folder.name in CHECKPOINT_NAMES else _HINT,
        )
    meta_file, weights_path = folder / META_NAME, folder / WEIGHTS_NAME
    for path in (meta_file, weights_path):
        if not path.is_file():
            raise CheckpointError(
                f"Checkpoint {folder} lacks {path.name} (expected {META_NAME} and {WEIGHTS_NAME}).",
                hint=_HINT,
            )
    meta = read_meta_fields(folder)
    assert meta is not None  # not missing_ok
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_file}: format_version {meta.get('format_version')!r}, this LCM reads "
            f"{FORMAT_VERSION}.",
            hint="Re-create the checkpoint with this version of LCM.",
        )
    return meta
