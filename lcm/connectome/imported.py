"""Precomputed connectomes (entry ``connectome``): check each matrix and write it as a relmat.

Each included run of the manifest is read (:func:`lcm.connectome.roi_formats.read_matrix`),
checked (:func:`check_connectome`) and written as
``sub-*/[ses-*/]func/<run_key>_seg-<atlas>_stat-pearsoncorrelation_relmat.tsv`` with a sidecar,
exactly as computed connectomes are, so the store and the report treat both alike. A bad matrix
excludes its run with the reason; the other runs go on.

Atlas identity: only files of the configured parcellation are read (their ``seg-`` entity,
:func:`lcm.bids.selection.select_parcellation`), and a file whose ROI names differ from the
atlas's labels is excluded (:func:`lcm.connectome.roi_formats.check_roi_names`): two
parcellations with the same ROI count never mix. Each relmat sidecar records the atlas's
``AtlasIdentity`` (:attr:`lcm.atlas.Atlas.identity`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from lcm import reason_codes
from lcm.atlas import Atlas
from lcm.bids.manifest import read_manifest
from lcm.bids.runs import run_ids_from_key
from lcm.bids.selection import select_parcellation
from lcm.connectome.outputs import (
    ensure_dataset_description,
    remove_stale_dataset_files,
    write_recorded,
)
from lcm.connectome.qc import check_fc_spread, exclusion_reason, new_qc, qc_frame
from lcm.connectome.roi_formats import (
    OTHER_ATLAS_FIX,
    atlas_order,
    check_roi_names,
    other_atlas_fix,
    read_matrix,
    roi_numbering,
)
from lcm.exceptions import ExcludedRunError
from lcm.io.atomic import write_tsv
from lcm.io.paths import run_location, run_relmat
from lcm.io.relmat import write_relmat

log = logging.getLogger(__name__)

SYMMETRY_TOLERANCE = 1e-4
DIAGONAL_TOLERANCE = 1e-3
RANGE_TOLERANCE = 1e-6
# Fisher z (arctanh r) stored instead of r: its diagonal is arctanh(1) = inf, or NaN (CONN), or
# set to 0; numpy.tanh gives r back, and the diagonal is then set to 1.
FISHER_Z_FIX = (
    "It looks like a Fisher z matrix; convert it with numpy.tanh, then set the diagonal to 1 "
    "with numpy.fill_diagonal(matrix, 1)"
)
R_ALREADY = " (if it holds r already, only set the diagonal)"
# A covariance matrix (nilearn's kind="covariance", numpy.cov) stored instead of r: its diagonal
# is the ROIs' variances. Taken for z (numpy.tanh) or r (diagonal set to 1) it is silently
# wrong; normalising by the standard deviations gives r.
COVARIANCE_FIX = (
    "It looks like a covariance matrix (the diagonal holds variances); convert it to "
    "correlations with nilearn.connectome.cov_to_corr(matrix), or d = numpy.sqrt(numpy.diag("
    "matrix)); matrix / numpy.outer(d, d)"
)


def check_connectome(
    matrix: np.ndarray,
    name: str,
    n_rois: int,
    atlas: str,
    atlas_fix: str = OTHER_ATLAS_FIX,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Check that ``matrix`` is an ``R x R`` Pearson correlation matrix of the atlas's ROIs.

    Square, ``R`` = the atlas's ROI count, finite, symmetric within
    :data:`SYMMETRY_TOLERANCE`, values in [-1, 1], 1 on the diagonal except for empty ROIs
    (a row and column of zeros, as the connectome stage writes them; a row and column of NaN,
    as XCP-D writes a parcel below its coverage threshold, becomes one), and not every ROI
    correlated near 1 (:func:`lcm.connectome.qc.check_fc_spread`).

    Parameters
    ----------
    matrix : ndarray
    name : str
        File name, for the messages.
    n_rois : int
        ROI count of the atlas.
    atlas : str
        Atlas name, for the messages.
    atlas_fix : str, default OTHER_ATLAS_FIX
        The hint of an ROI count that is another parcellation's
        (:func:`lcm.connectome.roi_formats.other_atlas_fix`).
    labels : sequence of str, optional
        The atlas's ROI labels, in order: messages name an ROI by its label, not its number.

    Returns
    -------
    ndarray, shape (R, R)
        The matrix made exactly symmetric, float64, its NaN ROIs zero.

    Raises
    ------
    ExcludedRunError
        With the file name, what was found and the fix.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ExcludedRunError(
            f"{name} is {' x '.join(map(str, m.shape))}, not a square ROI x ROI matrix",
            hint="Store one full connectivity matrix per file.",
            code=reason_codes.MATRIX_NOT_SQUARE,
        )
    if m.shape[0] != n_rois:
        raise ExcludedRunError(
            f"{name} has {m.shape[0]} ROIs but atlas {atlas!r} has {n_rois}",
            hint=atlas_fix,
            code=reason_codes.ROI_COUNT_MISMATCH,
        )
    m = _zero_missing_rois(m)

    def roi(i: int) -> str:  # a 1-based number alone sends the user counting rows
        return f"ROI {i + 1} ({labels[i]})" if labels is not None else f"ROI {i + 1}"

    bad = ~np.isfinite(m)
    if bad.any() and not (bad & ~np.eye(len(m), dtype=bool)).any():
        i = int(np.flatnonzero(np.diag(bad))[0])
        # arctanh(1) is inf: z for sure; a NaN diagonal (CONN's z) may also be r's left out.
        raise ExcludedRunError(
            f"{name}: its diagonal holds {int(bad.sum())} NaN or infinite value(s) (first "
            f"{m[i, i]} at {roi(i)}) and nothing else does",
            hint=FISHER_Z_FIX + (R_ALREADY if np.isnan(np.diag(m)).any() else "") + ".",
            code=reason_codes.MATRIX_DIAGONAL,
        )
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ExcludedRunError(
            f"{name} holds {int(bad.sum())} NaN or infinite value(s) (first at row {i + 1}, "
            f"column {j + 1}: {roi(i)} with {roi(j)})",
            hint="Recompute the connectome, or leave the run out: delete its row of the listing "
            "TSV, or move its file out of the dataset's folder.",
            code=reason_codes.MATRIX_NONFINITE,
        )
    asym = float(np.max(np.abs(m - m.T)))
    if asym > SYMMETRY_TOLERANCE:
        raise ExcludedRunError(
            f"{name} is not symmetric (max |A - A^T| = {asym:.3g} > {SYMMETRY_TOLERANCE:g}), "
            "as a Pearson correlation matrix is",
            hint="Check that the file is a full correlation matrix, not a directed or "
            "lower-triangle one.",
            code=reason_codes.MATRIX_ASYMMETRIC,
        )
    if _looks_like_covariance(m):
        i = int(np.flatnonzero(np.abs(np.diag(m) - 1) > DIAGONAL_TOLERANCE)[0])
        raise ExcludedRunError(
            f"{name}: diagonal value {m[i, i]:.3g} at {roi(i)} (max |value| "
            f"{float(np.max(np.abs(m))):.3g}); a correlation matrix has 1 on the diagonal",
            hint=COVARIANCE_FIX + (R_ALREADY if np.max(np.abs(m)) <= 1 else "") + ".",
            code=reason_codes.MATRIX_DIAGONAL,
        )
    peak = float(np.max(np.abs(m)))
    if peak > 1 + RANGE_TOLERANCE:
        raise ExcludedRunError(
            f"{name} has values outside [-1, 1] (max |r| = {peak:.3g}); Pearson correlations "
            "are expected",
            hint="If these are Fisher z values, convert them with numpy.tanh, then set the "
            "diagonal to 1 with numpy.fill_diagonal(matrix, 1).",
            code=reason_codes.MATRIX_OUT_OF_RANGE,
        )
    empty = ~m.any(axis=1)
    off = np.abs(np.diag(m) - 1) > DIAGONAL_TOLERANCE
    if (off & ~empty).any():
        i = int(np.flatnonzero(off & ~empty)[0])
        # A zero diagonal is how Fisher z matrices are often stored (arctanh(1) is infinite):
        # setting it to 1 alone would take z for r.
        fix = (
            FISHER_Z_FIX + R_ALREADY
            if abs(m[i, i]) <= DIAGONAL_TOLERANCE
            else "Set it with numpy.fill_diagonal(matrix, 1)"
        )
        raise ExcludedRunError(
            f"{name}: diagonal value {m[i, i]:.3g} at {roi(i)}; a correlation matrix has 1 "
            "on the diagonal (0 only for an empty ROI whose whole row is 0)",
            hint=fix + ".",
            code=reason_codes.MATRIX_DIAGONAL,
        )
    check_fc_spread(m, name)
    return (m + m.T) / 2


def _looks_like_covariance(m: np.ndarray) -> bool:
    """Whether a finite symmetric ``m`` reads as a covariance matrix, not r or Fisher z.

    Its non-empty ROIs' diagonal is positive and not all 1, and every value is within
    Cauchy-Schwarz's bound ``|c_ij| <= sqrt(c_ii c_jj)``: a Fisher z matrix (a diagonal of
    inf, NaN, 0 or 1) with any ``|z| > 1`` breaks it, and one whose r was clipped below 1
    has one diagonal value above 1 throughout, where variances differ between ROIs.
    """
    keep = m.any(axis=1)
    sub = m[np.ix_(keep, keep)]
    diag = np.diag(sub)
    if not len(diag) or (diag <= DIAGONAL_TOLERANCE).any():
        return False
    if (np.abs(diag - 1) <= DIAGONAL_TOLERANCE).all():
        return False
    if np.ptp(diag) <= DIAGONAL_TOLERANCE and diag[0] > 1:
        return False  # one value above 1 throughout: z of an r clipped below 1 (arctanh(1-eps))
    scale = np.sqrt(np.outer(diag, diag))
    return bool((np.abs(sub) <= scale * (1 + SYMMETRY_TOLERANCE)).all())


def _zero_missing_rois(m: np.ndarray) -> np.ndarray:
    """Rows and columns that are NaN throughout as empty ROIs (zeros), as the stage writes them.

    XCP-D writes a parcel covered less than its ``--min-coverage`` as a NaN row and column;
    NaN anywhere else is left for :func:`check_connectome` to refuse.
    """
    nan = np.isnan(m)
    off = nan | np.eye(len(m), dtype=bool)
    missing = off.all(axis=1) & off.all(axis=0)
    if not missing.any() or missing.all():
        return m
    out = m.copy()
    out[missing, :] = 0.0
    out[:, missing] = 0.0
    return out


def process_connectome_manifest(
    dataset: str,
    manifest_path: str | Path,
    atlas: Atlas,
    out_dir: str | Path,
    qc_table: str | Path,
    seg: str | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check and write every included precomputed connectome of a manifest; one QC table.

    Parameters
    ----------
    dataset : str
    manifest_path : path-like
        Manifest written by ``lcm ingest --entry connectome``.
    atlas : Atlas
        The atlas the connectomes were computed with (ROI count enforced, labels used).
    out_dir : path-like
        Receives the relmat TSVs with sidecars.
    qc_table : path-like
        QC TSV, one row per manifest row.
    seg : str, optional
        The files' ``seg-`` label of the atlas, when it is not ``atlas.name``.
    names : mapping of str to str, optional
        How the user gave the atlas settings, named in the hint of a file of another
        parcellation (:func:`lcm.connectome.roi_formats.other_atlas_fix`).

    Returns
    -------
    pandas.DataFrame
        The QC table.
    """
    manifest = select_parcellation(read_manifest(manifest_path), atlas.name, seg)
    warned: set[str] = set()
    rows = manifest.to_dict("records")
    fix = other_atlas_fix(names)
    records = [
        _import_row(dataset, row, atlas, out_dir, warned, fix)
        for row in tqdm(rows, desc=f"{dataset} connectomes", disable=not sys.stderr.isatty())
    ]
    ensure_dataset_description(out_dir, dataset)
    table = qc_frame(records)
    write_tsv(qc_table, table)
    remove_stale_dataset_files(out_dir, atlas.name, records)
    n_in = int(table["included"].sum())
    log.info("%s: %d of %d connectome(s) usable -> %s", dataset, n_in, len(table), qc_table)
    return table


def _import_row(
    dataset: str,
    row: dict[str, Any],
    atlas: Atlas,
    out_dir: str | Path,
    warned: set[str],
    atlas_fix: str,
) -> dict[str, Any]:
    ids_values = {k: str(row[k]) for k in ("subject", "session", "task", "run", "run_key")}
    if not row["included"]:
        code = str(row.get("reason_code") or "")
        return new_qc(dataset, reason=row["reason"], reason_code=code, **ids_values)
    ids = run_ids_from_key(str(row["run_key"]))
    path = Path(row["path"])
    names = atlas.labels["name"].tolist()
    try:
        file_names, matrix = read_matrix(path)
        order = atlas_order(file_names, names)
        if order is not None:  # the atlas's ROIs sorted otherwise: rows and columns by name
            matrix, file_names = np.asarray(matrix)[np.ix_(order, order)], list(names)
        check_roi_names(file_names, names, path.name, atlas.name, atlas_fix)
        matrix = check_connectome(
            matrix, path.name, atlas.n_rois, atlas.name, atlas_fix, labels=names
        )
    except ExcludedRunError as exc:
        reason = exclusion_reason(exc)
        log.warning("%s %s excluded: %s", dataset, ids.run_key, reason)
        return new_qc(dataset, ids, reason=reason, reason_code=exc.code, n_rois=atlas.n_rois)
    if file_names is None and "unnamed" not in warned:
        warned.add("unnamed")
        log.info(
            "%s carries no ROI names: its %d rows are taken as atlas %r's labels in order",
            path.name,
            atlas.n_rois,
            atlas.name,
        )
    empty = [names[i] for i in np.flatnonzero(~matrix.any(axis=1))]
    out = run_relmat(out_dir, run_location(ids.entities), row.get("space") or None, atlas.name)
    write_recorded(
        out,
        lambda to: write_relmat(to, names, matrix),
        [path],
        Atlas=atlas.name,
        AtlasIdentity=atlas.identity,
        ImportedFrom=str(path),
        # Column numbers (pandas' header) name no ROI: their order is the atlas's by assumption.
        SourceROINames="none (atlas order assumed)"
        if file_names is None or roi_numbering(file_names)
        else "matched",
        EmptyROIs=empty,
    )
    return new_qc(
        dataset,
        ids,
        included=True,
        relmat=str(out),
        n_rois=atlas.n_rois,
        empty_rois=empty,
        t_r=float(row["t_r"]) if pd.notna(row.get("t_r")) else None,
    )
