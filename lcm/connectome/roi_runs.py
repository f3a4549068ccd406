"""Connectomes of ROI time-series datasets: one manifest row per run, one QC row per run.

Only files of the configured parcellation are read (``seg-`` entity,
:func:`lcm.bids.selection.select_parcellation`); a file whose ROI names differ from the atlas's
labels is excluded (:func:`lcm.connectome.roi_formats.check_roi_names`). No confound regression
is applied to ROI time series: the QC table's ``strategy`` says ``none``. Its ``fd_threshold``
and ``dvars_threshold`` are those that were applied (n/a when the file has no such column), and
``pct_scrubbed`` is n/a when nothing could be scrubbed: series denoised elsewhere (XCP-D) are
not scrubbed again, and 0 % would claim a censoring that never ran.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from lcm import reason_codes
from lcm.atlas import Atlas
from lcm.bids.manifest import read_manifest
from lcm.bids.rows import NO_REPETITION_TIME
from lcm.bids.runs import run_ids_from_key
from lcm.bids.selection import select_parcellation
from lcm.connectome.confounds import DVARS_COLUMN, FD_COLUMN, STRATEGIES
from lcm.connectome.coverage import FLAT_FIX, cleaned_empty, constant_columns
from lcm.connectome.denoise import (
    check_degrees_of_freedom,
    clean_signals,
    degrees_of_freedom,
    scrub_mask,
)
from lcm.connectome.matrices import write_run_matrices
from lcm.connectome.outputs import ensure_dataset_description, remove_stale_dataset_files
from lcm.connectome.qc import (
    check_fc_spread,
    check_windows,
    exclusion_reason,
    new_qc,
    qc_frame,
)
from lcm.connectome.relmat import pearson_fc
from lcm.connectome.roi_formats import (
    atlas_order,
    check_roi_names,
    other_atlas_fix,
    read_roi_series,
)
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.connectome.windows import WindowPlan, plan_windows
from lcm.docstrings import fill_doc
from lcm.exceptions import ExcludedRunError
from lcm.io.atomic import write_tsv
from lcm.io.bids_names import RUN_ENTITIES, parse_entities
from lcm.io.provenance import sidecar_path

log = logging.getLogger(__name__)

# QC ``strategy`` of ROI time series: no confounds ship with them, none are regressed.
NO_REGRESSION = "none"


def settings_read(section: str, value: dict[str, Any]) -> dict[str, Any]:
    """What ROI time series read of a config section (``lcm.entries`` ``settings_read``).

    All of ``connectome`` and of ``denoise`` but its ``strategy``: no confounds ship with ROI
    series, none are regressed (QC strategy ``none``). A strategy counts only through its
    scrubbing rule (nilearn's ``scrubbing`` presets also drop kept segments shorter than 5
    volumes, :func:`lcm.connectome.denoise.scrub_mask`): the others are left out, as the
    schema's default strategy has no such rule, so that switching among them (24P to 36P)
    reruns no ROI dataset (it reran every one, for identical matrices).

    Parameters
    ----------
    section : str
        The config section's name (``connectome``, ``denoise``).
    value : dict
        Its settings.

    Returns
    -------
    dict
        The settings ROI time series depend on: ``value``, or ``denoise`` without ``strategy``.
    """
    if section != "denoise":
        return value
    strategy = STRATEGIES.get(value.get("strategy", ""))
    if strategy is not None and strategy.min_segment:
        return value
    return {key: v for key, v in value.items() if key != "strategy"}


@fill_doc
def process_timeseries_manifest(
    dataset: str,
    manifest_path: str | Path,
    atlas: Atlas,
    denoise: DenoiseSettings,
    out_dir: str | Path,
    qc_table: str | Path,
    connectome: ConnectomeSettings | None = None,
    seg: str | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Clean every included ROI time series of a manifest and write its connectivity matrices.

    No confound regression is possible (none ship with ROI time series); signals are
    detrended, band-passed and standardised, and scrubbed only when the TSV carries a
    ``framewise_displacement`` (and, for ``dvars_threshold``, a ``std_dvars``) column.
    An ROI constant over the kept volumes, or flat once cleaned, is empty (0, listed in
    ``EmptyROIs``); a run whose matrices would hold NaN is excluded with its reason.

    Parameters
    ----------
    %(dataset)s
    manifest_path : path-like
        Manifest written by ``lcm ingest --entry roi_timeseries``.
    atlas : Atlas
        The atlas the series were extracted with; its ROI count and names are enforced.
    denoise : DenoiseSettings
        Scrubbing threshold, filter band, detrending, minimum volumes (the config's
        ``denoise`` section: the entry table names this function's settings by section).
    out_dir : path-like
        Receives ``sub-*/[ses-*/]func/*_stat-pearsoncorrelation_relmat.tsv`` + sidecars.
    qc_table : path-like
        QC TSV, one row per manifest row (excluded runs with their reasons).
    connectome : ConnectomeSettings, optional
        Matrix kinds, Fisher z, windows (default: whole-run Pearson only).
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
    records = []
    rows = manifest.to_dict("records")
    warned: set[str] = set()
    connectome = connectome or ConnectomeSettings()
    facts = _AtlasFacts(
        atlas.name,
        atlas.n_rois,
        atlas.identity,
        atlas.labels["name"].tolist(),
        other_atlas_fix(names),
    )
    # Each run's matrices are small (volumes x regions): BLAS threads only add spinning and
    # hand-off cost (2.25x the CPU with 2 threads on 116 regions), so runs use one, as lcm
    # synth's writers do.
    with threadpool_limits(limits=1, user_api="blas"):
        for row in tqdm(rows, desc=f"{dataset} connectomes", disable=not sys.stderr.isatty()):
            records.append(_process_row(dataset, row, facts, denoise, connectome, out_dir, warned))
    ensure_dataset_description(out_dir, dataset)
    table = qc_frame(records)
    check_windows(table, f"dataset {dataset!r}")
    write_tsv(qc_table, table)
    remove_stale_dataset_files(out_dir, atlas.name, records)
    n_in = int(table["included"].sum())
    log.info("%s: %d of %d run(s) gave a connectome -> %s", dataset, n_in, len(table), qc_table)
    return table


def _process_row(
    dataset: str,
    row: dict[str, Any],
    atlas: _AtlasFacts,
    settings: DenoiseSettings,
    connectome: ConnectomeSettings,
    out_dir: str | Path,
    warned: set[str],
) -> dict[str, Any]:
    ids_values = {k: str(row[k]) for k in ("subject", "session", "task", "run", "run_key")}
    t_r = float(row["t_r"]) if pd.notna(row["t_r"]) else None
    applied = _applied(settings)
    if not row["included"]:
        code = str(row.get("reason_code") or "")
        return new_qc(
            dataset, None, applied, t_r=t_r, reason=row["reason"], reason_code=code, **ids_values
        )
    ids = run_ids_from_key(str(row["run_key"]))  # listed files need no BIDS name
    facts: dict[str, Any] = {"t_r": t_r, "n_rois": atlas.n_rois}
    try:
        path = Path(row["path"])
        signals, empty, keep = _clean_series(path, t_r, atlas, settings, facts, warned)
        # t_r is known here: _clean_series excludes a run without one.
        windows = plan_windows(keep, t_r or 0.0, settings, connectome, facts, source=path.name)
        _check_windows_vary(signals, empty, windows, atlas.names)
        check_fc_spread(pearson_fc(signals, empty), path.name)
    except ExcludedRunError as exc:
        reason = exclusion_reason(exc)
        log.warning("%s %s excluded: %s", dataset, ids.run_key, reason)
        return new_qc(dataset, ids, applied, reason=reason, reason_code=exc.code, **facts)
    space = row.get("space") or None
    sources = [path, *(p for p in [sidecar_path(path)] if p.is_file())]
    meta = {
        "RepetitionTime": t_r,
        "Atlas": atlas.name,
        "AtlasIdentity": atlas.identity,
        "Space": space,
        "Denoise": {**applied, **{k: facts[k] for k in _THRESHOLDS}},
        "ConfoundColumns": [],
        "NumberOfVolumes": facts["n_volumes"],
        "NumberOfVolumesKept": facts["n_volumes_kept"],
        "MeanFramewiseDisplacement": facts.get("mean_fd"),
        "EmptyROIs": facts["empty_rois"],
    }
    mats = write_run_matrices(
        out_dir,
        ids,
        space,
        atlas.name,
        atlas.names,
        signals,
        empty,
        connectome,
        sources,
        meta,
        windows,
    )
    return new_qc(
        dataset,
        ids,
        applied,
        included=True,
        timeseries=str(path),
        **mats.qc_facts(),
        **facts,
    )


@dataclass(frozen=True)
class _AtlasFacts:
    """What every run needs of the atlas, computed once per manifest (the identity is a hash)."""

    name: str
    n_rois: int
    identity: str
    names: list[str]
    # The hint of a file of another parcellation, naming the settings as the user gave them.
    fix: str


# Thresholds that apply only where the file carries the series they threshold.
_THRESHOLDS = ("fd_threshold", "dvars_threshold")


def _applied(settings: DenoiseSettings) -> dict[str, Any]:
    """The denoising settings as applied to ROI time series: no confound strategy.

    The thresholds are ``None`` here: :func:`_clean_series` records each one that applied (its
    column present) once the file is read; a run excluded before that had none applied.
    """
    return {**settings.to_dict(), "strategy": NO_REGRESSION, **dict.fromkeys(_THRESHOLDS)}


def _motion_values(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """The motion column ``column`` popped from an ROI series ``table`` as numbers (missing: 0).

    A cell holding text stopped the whole dataset with a ValueError: the run is excluded.
    """
    raw = table.pop(column)
    values = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() & raw.notna().to_numpy())
    if len(bad):
        raise ExcludedRunError(
            f"{path.name}: column {column!r} holds values that are no numbers (rows "
            f"{bad[:5].tolist()} ...: {raw.iloc[bad[0]]!r})",
            hint="Write numbers in the motion columns, n/a where a value is missing.",
            code=reason_codes.NON_NUMERIC_VALUES,
        )
    return values.fillna(0.0).to_numpy(np.float64)


def _clean_series(
    path: Path,
    t_r: float | None,
    atlas: _AtlasFacts,
    settings: DenoiseSettings,
    facts: dict[str, Any],
    warned: set[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cleaned signals ``[T_kept, R]``, empty ROIs and kept volumes of one ROI time-series file.

    ``facts`` collects QC values as they are known, among them the thresholds that applied
    and, when nothing could be scrubbed, ``pct_scrubbed`` ``None`` (n/a, not 0 %).
    """
    if t_r is None:
        raise ExcludedRunError(
            f"no repetition time known for {path.name}",
            hint="Give the series a JSON sidecar with RepetitionTime (seconds), or set the "
            "dataset's repetition_time, and rerun lcm ingest.",
            code=NO_REPETITION_TIME,
        )
    table = read_roi_series(path, atlas.names, atlas.fix)
    fd = _motion_values(table, FD_COLUMN, path) if FD_COLUMN in table.columns else None
    dvars = None
    if DVARS_COLUMN in table.columns:
        dvars = _motion_values(table, DVARS_COLUMN, path)
    elif settings.dvars_threshold is not None and "dvars" not in warned:
        warned.add("dvars")
        log.warning(
            "%s has no %r column: denoise.dvars_threshold cannot be applied to this "
            "dataset's ROI time series",
            path.name,
            DVARS_COLUMN,
        )
    names = atlas.names
    header = [str(c) for c in table.columns]
    order = atlas_order(header, names)
    if order is not None:  # the atlas's ROIs, sorted otherwise: read by name
        table, header = table.iloc[:, order], list(names)
        if "order" not in warned:
            warned.add("order")
            log.info("%s: ROI columns in another order than the atlas's, read by name", path.name)
    check_roi_names(header, names, path.name, atlas.name, atlas.fix)
    if table.shape[1] != atlas.n_rois:
        raise ExcludedRunError(
            f"{path.name} has {table.shape[1]} ROI columns but atlas {atlas.name!r} has "
            f"{atlas.n_rois} ROIs",
            hint=atlas.fix,
            code=reason_codes.ROI_COUNT_MISMATCH,
        )
    raw = _numeric(table)
    n_vol = raw.shape[0]
    facts["n_volumes"] = n_vol
    # XCP-D writes a parcel covered less than its --min-coverage as n/a throughout: an empty
    # ROI (zeros, found constant below), as this stage writes its own uncovered parcels.
    missing = table.isna().all(axis=0).to_numpy()
    if missing.any() and not missing.all():
        raw = raw.copy()
        raw[:, missing] = 0.0
    bad = ~np.isfinite(raw)
    if bad.any():
        cols = [header[j] for j in np.flatnonzero(bad.any(axis=0))][:5]
        raise ExcludedRunError(
            f"{path.name} holds {int(bad.sum())} missing or non-numeric values (columns {cols})",
            hint=f"Write a number in every cell of {path.name} (an ROI with no signal: a column "
            "of n/a throughout, read as empty), or re-extract the series.",
            code=reason_codes.TIMESERIES_NONFINITE,
        )
    if fd is not None and n_vol > 1:
        facts["mean_fd"] = float(np.mean(fd[1:]))
    else:
        facts["mean_fd"] = _sidecar_mean_fd(path)
        if facts["mean_fd"] is None:
            facts["mean_fd"] = motion_file_mean_fd(path)
    dropout = dropout_rows(raw)
    facts["n_dropout_volumes"] = int(dropout.sum())
    # A threshold applies only where its series is in the file (XCP-D's are denoised already
    # and carry none): one that applied is recorded, else n/a, and with no rule that could drop
    # a volume, % scrubbed is n/a rather than 0.
    facts["fd_threshold"] = settings.fd_threshold if fd is not None else None
    facts["dvars_threshold"] = settings.dvars_threshold if dvars is not None else None
    if all(facts[k] is None for k in _THRESHOLDS) and not dropout.any():
        facts["pct_scrubbed"] = None
    keep = scrub_mask(fd, settings, n_vol, dvars=dvars, dropout=dropout)
    facts["n_volumes_kept"] = int(keep.size)
    # An ROI is empty when constant over the kept volumes (dropouts are never kept): one that
    # varies only in scrubbed volumes is flat once cleaned, and its correlations NaN.
    empty = constant_columns(raw, keep)
    facts["empty_rois"] = [names[i] for i in np.flatnonzero(empty)]
    if empty.all():
        raise ExcludedRunError(
            f"every ROI of {path.name} is constant", hint=FLAT_FIX, code=reason_codes.FLAT_SIGNALS
        )
    # No confounds: the band, the trend and the kept volumes decide (denoise.min_dof).
    dof = degrees_of_freedom(keep, t_r, settings)
    facts["dof"] = round(dof.residual, 1)
    check_degrees_of_freedom(dof, settings)
    scrubbed = fd is not None or dvars is not None or bool(dropout.any())
    signals = clean_signals(raw, t_r, settings, sample_mask=keep if scrubbed else None)
    empty = cleaned_empty(signals, empty, names, path.name)
    facts["empty_rois"] = [names[i] for i in np.flatnonzero(empty)]
    if empty.all():
        raise ExcludedRunError(
            f"every ROI of {path.name} is flat once cleaned",
            hint=FLAT_FIX,
            code=reason_codes.FLAT_SIGNALS,
        )
    signals[:, empty] = 0.0
    return signals, empty, keep


def _check_windows_vary(
    signals: np.ndarray, empty: np.ndarray, windows: WindowPlan | None, names: list[str]
) -> None:
    """Refuse a run with a window in which a non-empty ROI is flat: its r would be NaN there.

    Whole-run flat ROIs are empty already (:func:`lcm.connectome.coverage.cleaned_empty`);
    windows left out for their degrees of freedom are not written, nor judged.
    """
    for window in windows.kept if windows else []:
        flat = ~empty & constant_columns(signals[window.start : window.stop])
        if flat.any():
            rois = [names[j] for j in np.flatnonzero(flat)][:5]
            raise ExcludedRunError(
                f"ROI(s) {rois} are constant in window {window.index} (kept volumes "
                f"{window.start} to {window.stop - 1}): their correlations there are undefined",
                hint="Check these ROIs' time series, or change connectome.window.",
                code=reason_codes.WINDOW_FLAT_SIGNALS,
            )


def _numeric(table: pd.DataFrame) -> np.ndarray:
    """The table as float64, non-numeric cells as NaN (columns already numeric as they are)."""
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in table.dtypes):
        return table.to_numpy(np.float64)  # what parsing every column again would give
    return table.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)


def dropout_rows(raw: np.ndarray) -> np.ndarray:
    """Volumes (rows) at which every varying ROI holds the same value: dropout volumes.

    An all-zero (or otherwise constant) row of an ROI time series is no brain signal: left
    in, it is a common spike that drives every correlation towards 1. ROIs constant over
    the whole run (empty ROIs) are ignored; with fewer than two varying ROIs, or when the
    varying ROIs are equal at every volume, nothing is flagged.

    Parameters
    ----------
    raw : ndarray, shape (T, R)
        The time series, finite.

    Returns
    -------
    ndarray of bool, shape (T,)
    """
    varying = raw[:, np.ptp(raw, axis=0) > 0]
    if varying.shape[1] < 2:
        return np.zeros(raw.shape[0], dtype=bool)
    rows = (varying == varying[:, :1]).all(axis=1)
    # Equal at every volume: duplicated columns, not dropouts (the FC shows them as r = 1).
    return rows if not rows.all() else np.zeros_like(rows)


def motion_file_mean_fd(path: Path) -> float | None:
    """Mean framewise displacement of the run's XCP-D motion file beside its series.

    XCP-D writes ``<run>_desc-filtered_motion.tsv`` (``framewise_displacement``) beside
    ``<run>_space-..._seg-..._stat-mean_timeseries.tsv``: the run's mean FD for QC and the
    report's motion checks. The series themselves are already denoised and censored by XCP-D,
    so nothing is scrubbed from them here. ``None`` when no single motion file is found.

    Parameters
    ----------
    path : Path
        The run's ROI time-series file; the motion file is looked for in its folder.
    """
    ents = parse_entities(path.name)
    if "sub" not in ents:
        return None
    run = {k: ents.get(k) for k in RUN_ENTITIES}
    found = sorted(
        f
        for f in path.parent.glob(f"sub-{ents['sub']}_*_motion.tsv")
        if {k: parse_entities(f.name).get(k) for k in RUN_ENTITIES} == run
    )
    filtered = [f for f in found if parse_entities(f.name).get("desc") == "filtered"]
    chosen = filtered or found
    if len(chosen) != 1:
        return None
    try:
        fd = pd.read_csv(chosen[0], sep="\t", usecols=[FD_COLUMN], na_values=["n/a"])[FD_COLUMN]
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    values = pd.to_numeric(fd.iloc[1:], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _sidecar_mean_fd(path: Path) -> float | None:
    try:
        value = json.loads(sidecar_path(path).read_text()).get("MeanFramewiseDisplacement")
        return None if value is None else float(value)
    except (OSError, json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
