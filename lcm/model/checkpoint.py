"""Checkpoints: ``model.safetensors`` (weights) beside ``model.json`` (all else to rebuild, audit).

``model.json`` holds the model config, the query layout, the variable catalogue, atlas, ROI names,
standardisation statistics, training settings, seed, a fingerprint of the training data, package
versions and the sha256 of the weights file; a pretrained one's ``training_sessions`` names the
jobs that trained it (``from_step``, ``slurm_job_id``, ``host``, ``started``: several when a
killed run was resumed); its ``data`` names the runs and subjects it was trained on
(:mod:`lcm.model.training_data`). A finetuned checkpoint's ``data`` names those of its
finetuning, ``pretrained_data`` the ``data`` of the checkpoint it started from; it also holds
its ``label``, ``init``, ``pretrained_from`` and ``pretrained_fingerprint``, the ``probe`` of
``method: probe``,
``diagnosis_pseudo_labels``: the outcome of the confident diagnosis pseudo-labels (its
``status``: made, or why not; threshold and its source, pseudo-labelled subjects and rows per
level) and ``bei_pseudo_filled`` (rows whose missing BEI variables were pseudo-filled; see
:meth:`lcm.train.finetune.LCMClassifier.save`). Loading never unpickles: weights come from
safetensors, metadata from JSON.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

import lcm
from lcm.catalogue import Catalogue
from lcm.exceptions import CheckpointError, ConfigError
from lcm.io.atomic import write_json
from lcm.io.provenance import git_commit, sha256_file
from lcm.io.run_digests import data_fingerprint  # noqa: F401  (re-exported: its former home)
from lcm.model.checkpoint_meta import (
    FORMAT_VERSION,
    META_NAME,
    WEIGHTS_NAME,
    read_meta,
)
from lcm.model.config import CONFIG_LIMITS, LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout
from lcm.model.weights import check_shapes, read_header, save_tensors
from lcm.store.layout import roi_names_difference

log = logging.getLogger(__name__)

# model.json's record of the training run that wrote it: the fingerprint its saved state
# resumes by (lcm.train.state), so that lcm prune-states removes a state only beside its own model.
RUN_KEY = "run_fingerprint"
# Catalogue fields that change what a query means; a difference refuses the checkpoint.
_MEANING_KEYS = ("kind", "levels", "units")


def canonical_key(key: str) -> str:
    """A state dict key without wrapper prefixes (``_orig_mod.`` of a compiled module).

    ``LCM.compile_blocks`` keeps keys as they are; this covers a module compiled whole with
    ``torch.compile``, whose keys gain ``_orig_mod.`` segments, so weights saved from either
    load into an eager model. Attention keys are those of ``nn.MultiheadAttention`` before and
    after the fused attention of issue 17 (``in_proj_weight`` = ``[W_q; W_k; W_v]``): a
    checkpoint of either version needs no other mapping.

    Parameters
    ----------
    key : str
        A state dict key, as saved.

    Returns
    -------
    str
    """
    parts = [p for p in key.split(".") if p != "_orig_mod"]
    return ".".join(parts)


def canonical_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with :func:`canonical_key` applied to every key.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A state dict, as saved.

    Returns
    -------
    dict of str to torch.Tensor
        The same tensors (not copied), under canonical keys.
    """
    return {canonical_key(k): v for k, v in state.items()}


def package_versions() -> dict[str, Any]:
    """Versions recorded in every checkpoint."""
    import safetensors

    return {
        "lcm": lcm.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "safetensors": safetensors.__version__,
        **{f"git_{k}": v for k, v in git_commit().items()},
    }


def save_checkpoint(
    out_dir: str | Path,
    model: LCM,
    layout: QueryLayout,
    meta: dict[str, Any],
    run_fingerprint: str | None = None,
) -> Path:
    """Write ``model.safetensors`` then ``model.json`` (the latter marks completion), atomically.

    Parameters
    ----------
    out_dir : path-like
    model : LCM
    layout : QueryLayout
        Must have ``model.config.n_queries`` queries.
    meta : dict
        Further JSON-serialisable keys (atlas, n_rois, roi_names, catalogue, standardisation,
        training, seed, data_fingerprint ...).
    run_fingerprint : str, optional
        The fingerprint of the training run that wrote it, the one its saved state resumes by
        (:func:`lcm.train.state.run_of`), recorded as :data:`RUN_KEY` so that ``lcm
        prune-states`` removes a state only beside its own run's model. None: not recorded.

    Returns
    -------
    pathlib.Path
        The checkpoint folder.
    """
    out = Path(out_dir)
    if layout.n_queries != model.config.n_queries:
        raise CheckpointError(
            f"Cannot save to {out}: the query layout has {layout.n_queries} queries but the model "
            f"{model.config.n_queries}.",
            hint="Append query groups with QueryLayout.append when adding queries.",
        )
    state = {canonical_key(k): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(
        state, out / WEIGHTS_NAME, {"format": "lcm", "format_version": str(FORMAT_VERSION)}
    )
    record = {
        **meta,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "query_layout": layout.to_list(),
        "versions": package_versions(),
        "weights_sha256": sha256_file(out / WEIGHTS_NAME),
    }
    if run_fingerprint is not None:
        record[RUN_KEY] = run_fingerprint
    write_json(out / META_NAME, record)
    log.info("checkpoint written to %s", out)
    return out


def run_of(folder: str | Path) -> str | None:
    """The fingerprint of the training run that wrote the checkpoint in ``folder``.

    Parameters
    ----------
    folder : path-like
        A checkpoint folder.

    Returns
    -------
    str or None
        :data:`RUN_KEY` of its ``model.json``; None when it has none (written by an earlier
        LCM, or not by a training run) or cannot be read.
    """
    try:
        meta = json.loads((Path(folder) / META_NAME).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    value = meta.get(RUN_KEY) if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def checked_config(folder: str | Path, meta: dict[str, Any]) -> LCMConfig:
    """The model config of a checkpoint's metadata, refused when invalid or beyond the limits.

    Parameters
    ----------
    folder : path-like
        The checkpoint folder (named in errors).
    meta : dict
        Its parsed ``model.json``.

    Returns
    -------
    LCMConfig

    Raises
    ------
    CheckpointError
        No ``config``, an invalid one, or a size above :data:`CONFIG_LIMITS` (an edited
        ``model.json`` must not make the loader allocate tens of gigabytes).
    """
    meta_path = Path(folder) / META_NAME
    values = meta.get("config")
    if not isinstance(values, dict):
        raise CheckpointError(
            f"{meta_path}: no 'config' object (got {type(values).__name__}).",
            hint="model.json is incomplete or edited; use the original checkpoint.",
        )
    for key, limit in CONFIG_LIMITS.items():
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise CheckpointError(
                f"{meta_path}: config {key} is {value}, above the limit of {limit}.",
                hint="model.json was edited or comes from elsewhere; use the original checkpoint.",
            )
    try:
        return LCMConfig.from_dict(values)
    except (ConfigError, TypeError) as exc:
        message = exc.message if isinstance(exc, ConfigError) else str(exc)
        raise CheckpointError(
            f"{meta_path}: invalid model config ({message}).",
            hint="model.json was edited or comes from elsewhere; use the original checkpoint.",
        ) from exc


def checkpoint_layout(meta: dict[str, Any], folder: str | Path | None = None) -> QueryLayout:
    """The query layout recorded in a checkpoint's metadata.

    Parameters
    ----------
    meta : dict
        The checkpoint's metadata (``model.json``).
    folder : path-like, optional
        The checkpoint folder, named in the error (its ``model.json``; without it the message
        said only "model.json", not which checkpoint's).

    Returns
    -------
    QueryLayout

    Raises
    ------
    CheckpointError
        ``query_layout`` is missing or malformed (an edited ``model.json``).
    """
    try:
        return QueryLayout.from_list(meta["query_layout"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        where = Path(folder) / META_NAME if folder is not None else META_NAME
        raise CheckpointError(
            f"{where}: missing or malformed query_layout ({type(exc).__name__}: {exc}).",
            hint="model.json is incomplete or edited; use the original checkpoint.",
        ) from exc


def check_fits(
    checkpoint: str | Path,
    meta: dict[str, Any],
    *,
    atlas: str | None = None,
    n_rois: int | None = None,
    roi_names: list[str] | None = None,
    catalogue: Catalogue | None = None,
    data: str | None = None,
) -> None:
    """Refuse a checkpoint that does not fit the caller's data (its metadata only, no weights).

    The one owner of these checks: :func:`load_checkpoint` runs them, and so does a caller
    that must refuse a checkpoint before it trains anything (``lcm evaluate``).

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint folder (named in errors).
    meta : dict
        Its parsed ``model.json`` (:func:`read_meta`).
    atlas, n_rois : optional
        What the caller's connectomes use; a different value raises.
    roi_names : list of str, optional
        The caller's ROI names in the order of its connectomes' rows: any difference from the
        checkpoint's ``roi_names`` raises (same names in another order give every token another
        region, silently). A checkpoint that predates the record is not checked.
    catalogue : Catalogue, optional
        The caller's catalogue: every variable the model has queries for must exist there with
        the same kind, levels and units (extra variables are fine).
    data : str, optional
        Where the caller's connectomes come from (``store results/store``), named in the
        errors about the atlas and the ROIs: the user learns which of the two to change.

    Raises
    ------
    CheckpointError
        A mismatch with ``atlas``, ``n_rois``, ``roi_names`` or ``catalogue``.
    """
    folder = Path(checkpoint)
    the_data = f"the data ({data})" if data else "the data"
    if atlas is not None and meta.get("atlas") != atlas:
        theirs = meta.get("atlas")
        if roi_names is not None and meta.get("roi_names") == list(roi_names):
            # The same ROIs in the same order under another name: nothing to re-extract.
            raise CheckpointError(
                f"Checkpoint {folder} was trained on atlas {theirs!r}, {the_data} use {atlas!r}: "
                f"the same {len(roi_names)} ROIs in the same order, stored under atlas "
                f"{atlas!r}.",
                hint=f"Store them under the checkpoint's atlas name: `lcm store --atlas {theirs} "
                f"...` (the workflow: atlas name {theirs!r} in the config), or pass "
                f"--atlas {theirs} if the store has them under it already.",
            )
        raise CheckpointError(
            f"Checkpoint {folder} was trained on atlas {theirs!r}, {the_data} use {atlas!r}.",
            hint="Use a checkpoint pretrained on the same atlas, or re-extract with its atlas.",
        )
    if n_rois is not None and meta.get("n_rois") != n_rois:
        raise CheckpointError(
            f"Checkpoint {folder} expects {meta.get('n_rois')} ROIs, {the_data} have {n_rois}.",
            hint="Connectomes must come from the checkpoint's atlas with all its ROIs.",
        )
    if roi_names is not None:
        _check_roi_names(folder, meta, roi_names)
    if catalogue is not None:
        _check_catalogue(folder, meta, checkpoint_layout(meta, folder), catalogue)


def load_checkpoint(
    checkpoint: str | Path,
    *,
    atlas: str | None = None,
    n_rois: int | None = None,
    roi_names: list[str] | None = None,
    catalogue: Catalogue | None = None,
    device: str | torch.device = "cpu",
    data: str | None = None,
) -> tuple[LCM, dict[str, Any]]:
    """Rebuild the model of a checkpoint folder, refusing one that does not fit the caller's data.

    Parameters
    ----------
    checkpoint : path-like
        Folder with ``model.safetensors`` and ``model.json``.
    atlas, n_rois, roi_names, catalogue : optional
        What the caller's data use, checked by :func:`check_fits`.
    device : str or torch.device
    data : str, optional
        Where the caller's connectomes come from, named in errors (:func:`check_fits`).

    Returns
    -------
    model : LCM
        In eval mode.
    meta : dict
        The parsed ``model.json``.

    Raises
    ------
    CheckpointError
        Missing or corrupted files, or a mismatch with ``atlas``, ``n_rois``, ``roi_names`` or
        ``catalogue``.
    """
    folder = Path(checkpoint)
    meta = read_meta(folder)
    check_fits(
        folder,
        meta,
        atlas=atlas,
        n_rois=n_rois,
        roi_names=roi_names,
        catalogue=catalogue,
        data=data,
    )
    layout = checkpoint_layout(meta, folder)
    weights = folder / WEIGHTS_NAME
    if sha256_file(weights) != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{weights}: sha256 differs from the one recorded in {META_NAME}.",
            hint="The weights were replaced or truncated after saving; use the original files.",
        )
    config = checked_config(folder, meta)
    # Shapes from the file's header against a model built on the meta device (no memory):
    # only weights that fit the config are read, so the allocation is bounded by the file.
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in LCM(config).state_dict().items()}
    header = {canonical_key(k): v for k, v in read_header(weights).items()}
    check_shapes(weights, header, expected, f"the config in {META_NAME}")
    try:
        model = LCM(config)
        model.load_state_dict(canonical_state(load_file(str(weights), device="cpu")), strict=True)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"Checkpoint {folder}: weights do not match its model config ({exc}).",
            hint="The files come from different runs; use a matching model.json and weights.",
        ) from exc
    # A run that diverged wrote NaN weights that every later verb took (NaN embeddings, NaN
    # finetuned models, exit 0): said here, naming the first such tensor.
    bad = next((k for k, v in model.state_dict().items() if not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"Checkpoint {folder}: {weights.name} holds non-finite values (NaN or inf; first in "
            f"{bad}): the training that wrote it diverged.",
            hint="Train it again with a lower learning rate (lcm pretrain/finetune stop such a "
            "run now), or use another checkpoint.",
        )
    if layout.n_queries != config.n_queries:
        raise CheckpointError(
            f"Checkpoint {folder}: query layout has {layout.n_queries} queries, model "
            f"{config.n_queries}.",
            hint="model.json is inconsistent; use the original checkpoint.",
        )
    return model.to(device).eval(), meta


def _check_roi_names(folder: Path, meta: dict[str, Any], roi_names: list[str]) -> None:
    stored = meta.get("roi_names")
    if stored is None:
        log.debug("checkpoint %s records no roi_names: the ROI order is not checked", folder)
        return
    if not isinstance(stored, list):
        raise CheckpointError(
            f"{folder / META_NAME}: roi_names is {type(stored).__name__}, expected a list.",
            hint="model.json was edited or comes from elsewhere; use the original checkpoint.",
        )
    difference = roi_names_difference(stored, list(roi_names), f"its {META_NAME} roi_names")
    if difference is not None:
        raise CheckpointError(
            f"Checkpoint {folder} was trained on other ROIs than the data's: {difference}.",
            hint="Each token would stand for another region: rebuild the store with the "
            "checkpoint's atlas and its labels order (model.json roi_names), or use a checkpoint "
            "pretrained on this store's ROIs.",
        )


def _check_catalogue(
    folder: Path, meta: dict[str, Any], layout: QueryLayout, catalogue: Catalogue
) -> None:
    stored = meta.get("catalogue", {})
    given = catalogue.to_dict()
    for name in layout.names:
        if name not in stored:
            continue  # a finetuning label the checkpoint's catalogue does not define
        if name not in given:
            raise CheckpointError(
                f"Checkpoint {folder} has queries for variable {name!r}, absent from the "
                f"catalogue {catalogue.path or '(given)'}.",
                hint="Use the catalogue the checkpoint was pretrained with: `lcm model-info "
                f"--checkpoint {folder} --catalogue-out <new.yaml> --datasets-from "
                f"{catalogue.path or '<your catalogue>'}` writes its variables as one, with your "
                "datasets' codings.",
            )
        diff = {
            k: (stored[name].get(k), given[name].get(k))
            for k in _MEANING_KEYS
            if stored[name].get(k) != given[name].get(k)
        }
        if diff:
            detail = "; ".join(
                f"{k}: checkpoint {a!r}, catalogue {b!r}" for k, (a, b) in diff.items()
            )
            raise CheckpointError(
                f"Checkpoint {folder}: variable {name!r} differs from catalogue "
                f"{catalogue.path or '(given)'} ({detail}).",
                hint="The model's queries would mean something else; align the catalogue.",
            )
