"""Connectome of one voxel-wise run: parcel means, denoising, connectivity, outputs and QC."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lcm import reason_codes
from lcm.atlas import CUSTOM_SPACE, Atlas, resample_to
from lcm.atlas.load import native_space_fix
from lcm.bids.dataset import CONFIG_KEYS, setting_names
from lcm.bids.nifti_header import parse_header
from lcm.bids.runs import RunIds, run_ids_from_name
from lcm.bids.timing import compare_header_tr
from lcm.connectome.bold_stream import read_bold_header
from lcm.connectome.confounds import (
    COSINE_PREFIX,
    DVARS_COLUMN,
    FD_COLUMN,
    STRATEGIES,
    confound_columns,
    read_confounds_metadata,
)
from lcm.connectome.coverage import (
    COVERAGE_RULES,
    FLAT_FIX,
    MIN_COVERAGE,
    cleaned_empty,
    empty_parcels,
    parcel_coverage,
    parcel_voxel_counts,
)
from lcm.connectome.denoise import (
    FD_VALUES_HINT,
    check_degrees_of_freedom,
    clean_signals,
    confound_matrix,
    degrees_of_freedom,
    framewise_displacement,
    non_steady_volumes,
    read_confounds,
    scrub_mask,
    std_dvars,
)
from lcm.connectome.matrices import write_run_matrices
from lcm.connectome.outputs import (
    ensure_dataset_description,
    remove_stale_run_files,
    write_recorded,
)
from lcm.connectome.parcellate import parcellate_file
from lcm.connectome.qc import FMRIPREP_VERSION, exclusion_reason, new_qc
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.connectome.windows import WindowPlan, plan_windows
from lcm.docstrings import fill_doc
from lcm.exceptions import ExcludedRunError, InputDataError
from lcm.hints import set_to
from lcm.io.atomic import write_json
from lcm.io.output_space import is_native_space, parse_output_space
from lcm.io.paths import run_location, run_timeseries
from lcm.io.qc_table import found_path
from lcm.io.relmat import write_timeseries
from lcm.preprocess.derivatives import RUN_PATHS, RunDerivatives

log = logging.getLogger(__name__)

# The fix of a brain mask that cannot be read or is no 3D image.
_MASK_FIX = (
    "Restore the run's 3D *_desc-brain_mask.nii.gz from the fMRIPrep output folder it was "
    "copied from, then rerun 'lcm fmriprep' for this subject to refresh its record."
)


@dataclass
class RunConnectome:
    """Result of one run: cleaned signals ``[T_kept, R]``, empty parcels and confounds used,
    the kept volumes (row ``i`` of the signals is volume ``keep[i]``) and the regressors."""

    signals: np.ndarray
    empty: np.ndarray
    confound_columns: list[str]
    keep: np.ndarray
    confounds: np.ndarray


def load_run_from_record(record_path: str | Path, run_key: str) -> tuple[RunDerivatives, str]:
    """The derivatives of ``run_key`` and the output space from an fMRIPrep record.

    A relative path of the record (``lcm fmriprep --derivatives`` relative) that does not
    exist from the current folder is looked up from the record's folders upwards
    (:func:`lcm.io.qc_table.found_path`).

    Parameters
    ----------
    record_path : str or Path
        The subject's fMRIPrep record, written by ``lcm fmriprep``.
    run_key : str
        The run, e.g. ``sub-01_task-rest_run-1``.

    Raises
    ------
    ExcludedRunError
        The record excludes the run (its fMRIPrep outputs are incomplete), with the reason.
    InputDataError
        If the record is unreadable or does not list the run.
    """
    record_path = Path(record_path)
    try:
        record = json.loads(record_path.read_text())
        runs = {r["run_key"]: r for r in record["runs"]}
        # Records written before reason codes get a code that still says where it came from.
        excluded = {
            r["run_key"]: (
                str(r.get("reason_code") or reason_codes.FMRIPREP_EXCLUDED),
                str(r["reason"]),
            )
            for r in record.get("excluded", [])
        }
        space = str(record["output_space"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InputDataError(
            f"Cannot read fMRIPrep record {record_path}: {exc!r}",
            hint="Regenerate it with 'lcm fmriprep ... --out'.",
        ) from exc
    if run_key in excluded:
        code, reason = excluded[run_key]
        raise ExcludedRunError(reason, code=code)
    if run_key not in runs:
        raise InputDataError(
            f"Run {run_key!r} is not in fMRIPrep record {record_path} (it lists {sorted(runs)}).",
            hint="Pass a --run-key from the record, or rerun 'lcm fmriprep' for this subject.",
        )
    deriv = RunDerivatives.from_record(runs[run_key])
    # Paths as lcm fmriprep was given them (a relative --derivatives): found from the record's
    # folders when this call runs elsewhere, as the store finds the QC table's.
    found = {k: found_path(getattr(deriv, k), record_path) for k in RUN_PATHS}
    return replace(deriv, **found), space


def record_fmriprep_version(record_path: str | Path) -> str | None:
    """The fMRIPrep version a subject's fMRIPrep record names for it, or None.

    Existing derivatives (``runner: existing``) are credited to the version the subject's own
    logs name (``generated_by.subject.version``), else the one their
    ``dataset_description.json`` names (``generated_by.version``); a container run's record
    names none (every subject ran the one pinned image), nor does a record that cannot be
    read (:func:`load_run_from_record` says so).

    Parameters
    ----------
    record_path : str or Path
        The subject's fMRIPrep record, written by ``lcm fmriprep``.
    """
    try:
        made = json.loads(Path(record_path).read_text(encoding="utf-8")).get("generated_by")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(made, dict):
        return None
    own = made.get("subject")
    version = (own.get("version") if isinstance(own, dict) else None) or made.get("version")
    return str(version) if version else None


@fill_doc
def process_voxel_run(
    dataset: str,
    record_path: str | Path,
    run_key: str,
    atlas: Atlas,
    settings: DenoiseSettings,
    out_dir: str | Path,
    qc_out: str | Path,
    atlas_files: list[str] | None = None,
    connectome: ConnectomeSettings | None = None,
    min_coverage: float = MIN_COVERAGE,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Compute and write the connectome of one run, or record why it is excluded.

    Parameters
    ----------
    %(dataset)s
    record_path : path-like
        fMRIPrep record written by ``lcm fmriprep``.
    run_key : str
        Run to process, e.g. ``sub-01_task-rest_run-1``.
    atlas : Atlas
        Parcellation (resampled to the BOLD grid here).
    settings : DenoiseSettings
        Confound strategy, scrubbing and filtering.
    out_dir : path-like
        Derivatives folder receiving ``sub-*/[ses-*/]func/*_timeseries.tsv`` and
        ``*_relmat.tsv`` with JSON sidecars.
    qc_out : path-like
        QC JSON, written for excluded runs too.
    atlas_files : list of str, optional
        Atlas files listed in the sidecars' ``Sources``. The fMRIPrep record follows them
        there: it names the derivatives read, and its own sidecar lists them as the products
        of its job and the raw files they were made from.
    connectome : ConnectomeSettings, optional
        Matrix kinds, Fisher z, windows (default: whole-run Pearson only).
    min_coverage : float
        Coverage below which a parcel is empty (``atlas.min_coverage``).
    names : mapping of str to str, optional
        How the user gave the dataset's ``space`` and ``entry`` settings, named in the fix of
        a run in the wrong space (:func:`lcm.bids.dataset.setting_names`: the options of the
        verbs that set them, or None for the config's keys, under a workflow rule).

    Returns
    -------
    dict
        The QC record (see ``lcm.connectome.qc.QC_COLUMNS``).
    """
    ids = run_ids_from_name(run_key)
    connectome = connectome or ConnectomeSettings()
    facts: dict[str, Any] = {"n_rois": atlas.n_rois}
    try:
        deriv, space = load_run_from_record(record_path, run_key)
        facts["t_r"] = deriv.t_r
        # Where the TR came from: the raw run's sidecars where fMRIPrep's gave none.
        facts["t_r_source"] = deriv.t_r_source
        facts["space_read"] = deriv.space_read
        # QC JSON only: the dataset's QC gather warns of a cohort of several versions.
        facts[FMRIPREP_VERSION] = record_fmriprep_version(record_path)
        keys = setting_names(dataset, names)
        result = run_connectome(deriv, atlas, settings, facts, space, min_coverage, keys)
        windows = plan_windows(
            result.keep,
            deriv.t_r,
            settings,
            connectome,
            facts,
            result.confounds,
            source=Path(deriv.bold).name,
        )
    except ExcludedRunError as exc:
        reason = exclusion_reason(exc)
        log.warning("%s %s excluded: %s", dataset, run_key, reason)
        qc = new_qc(
            dataset,
            ids,
            settings.to_dict(),
            included=False,
            reason=reason,
            reason_code=exc.code,
            **facts,
        )
    else:
        qc = _write_outputs(
            dataset,
            ids,
            space,
            deriv,
            atlas,
            settings,
            out_dir,
            result,
            facts,
            atlas_files,
            connectome,
            min_coverage,
            record=record_path,
            windows=windows,
        )
    ensure_dataset_description(out_dir, dataset)
    write_json(qc_out, qc)
    remove_stale_run_files(out_dir, run_key, atlas.name, qc)
    return qc


def run_connectome(
    deriv: RunDerivatives,
    atlas: Atlas,
    settings: DenoiseSettings,
    facts: dict[str, Any],
    space: str | None = None,
    min_coverage: float = MIN_COVERAGE,
    names: Mapping[str, str] | None = None,
) -> RunConnectome:
    """Load, check, parcellate and clean one run; ``facts`` collects QC values as they are known.

    Parameters
    ----------
    deriv : RunDerivatives
        The run's fMRIPrep derivatives (:func:`load_run_from_record`).
    atlas : Atlas
        The parcellation, with its label image.
    settings : DenoiseSettings
        Confound strategy, scrubbing and filtering.
    facts : dict
        The run's QC record in the making; values are added as they are known.
    space : str, optional
        The output space the BOLD is in (the record's); checked against the atlas's when given.
    min_coverage : float, default 0.5
        Coverage below which a parcel is empty (``atlas.min_coverage``).
    names : mapping of str to str, optional
        The dataset's settings as the user gave them (:func:`lcm.bids.dataset.setting_names`
        of it), named in the fix of a run in the wrong space; by default the config's
        ``fmriprep.output_space`` (and the entry unnamed).

    Raises
    ------
    ExcludedRunError
        For any problem of this run's data (unreadable or non-4D BOLD, a header with absurd
        dimensions or too big for the file or the memory, NaN/Inf, TR mismatch, space other
        than the atlas's, no parcel covered, missing confound columns, confounds of the wrong
        length, ``std_dvars`` missing when DVARS scrubbing is on, too few volumes once
        high-motion, dropout and non-steady-state volumes are left out, too few degrees of
        freedom left for the confounds and the band).
    """
    bold = Path(deriv.bold)
    hdr = read_bold_header(bold)
    if len(hdr.shape) != 4:
        raise ExcludedRunError(
            f"BOLD {bold.name} is {len(hdr.shape)}D with shape {hdr.shape}; a 4D series is "
            "expected",
            hint="Point the fMRIPrep record at the run's 4D *_desc-preproc_bold.nii.gz (rerun "
            "'lcm fmriprep' for this subject once its fMRIPrep outputs are restored).",
            code=reason_codes.BOLD_NOT_4D,
        )
    n_vol = hdr.n_volumes
    facts["n_volumes"] = n_vol
    # Ingest's reading and comparison of the header's TR (a pixdim[4] of unknown time unit
    # is no TR in seconds), on the header bytes already parsed.
    compared = compare_header_tr(deriv.t_r, parse_header(hdr.header.binaryblock), bold.name)
    if compared.mismatch:
        # Ingest's wording, fix included: one reason, with one fix, for one mismatch.
        raise ExcludedRunError(compared.mismatch, code=reason_codes.TR_MISMATCH)
    if compared.unchecked:
        log.info("%s: TR %g s not checked: %s", bold.name, deriv.t_r, compared.unchecked)
    keys = {"space": CONFIG_KEYS["space"], **(names or {})}
    if space and is_native_space(space):
        # One atlas image for every subject: none is in a subject's own space, whatever its
        # name says (an atlas whose name says no template is only unchecked in a template's).
        known = atlas.space if atlas.space != CUSTOM_SPACE else None
        where = f"in {known!r}" if known else "whose file name says no template"
        raise ExcludedRunError(
            f"BOLD {bold.name} is in space {space!r}, the subject's own, but atlas "
            f"{atlas.name!r} is one image for every subject, {where}: it would cut this "
            "subject's brain with regions that are not its own",
            hint=native_space_fix(
                keys["space"],
                set_to(keys["entry"], "roi_timeseries")
                if "entry" in keys
                else "entry: roi_timeseries",
                known,
            ),
            code=reason_codes.SPACE_MISMATCH,
        )
    if space and atlas.space not in (CUSTOM_SPACE, parse_output_space(space).label):
        raise ExcludedRunError(
            f"BOLD {bold.name} is in space {space!r} but atlas {atlas.name!r} is in "
            f"{atlas.space!r}",
            hint="Use an atlas in the BOLD's space (e.g. from TemplateFlow) or set "
            f"{keys['space']} to the atlas's space.",
            code=reason_codes.SPACE_MISMATCH,
        )

    # Confounds first: they are cheap and exclude a run before the BOLD is decompressed.
    table = read_confounds(deriv.confounds, n_vol)
    source = Path(deriv.confounds).name
    metadata = read_confounds_metadata(deriv.confounds)
    columns = confound_columns(
        settings.strategy, table.columns, metadata, high_pass=settings.high_pass, source=source
    )
    if STRATEGIES[settings.strategy].cosines:
        facts["n_cosine_regressors"] = sum(c.startswith(COSINE_PREFIX) for c in columns)
        if not facts["n_cosine_regressors"]:
            # Accepted as nilearn accepts it (the high_pass filter, if any, stands in); said.
            drifts = (
                f"slow drifts are left to denoise.high_pass ({settings.high_pass:g} Hz)"
                if settings.high_pass is not None
                else "denoise.high_pass is null: slow drifts stay (linear trends aside)"
            )
            log.warning(
                "confounds %s have no cosine_XX columns (fMRIPrep's high-pass basis) for "
                "strategy %r: %s",
                source,
                settings.strategy,
                drifts,
            )
    confounds = confound_matrix(table, columns, source)
    fd = None
    if settings.fd_threshold is not None:
        fd = framewise_displacement(table, source)
    elif FD_COLUMN in table.columns:
        fd = confound_matrix(table, [FD_COLUMN], source, hint=FD_VALUES_HINT)[:, 0]
    non_steady = non_steady_volumes(table, source)
    facts["n_non_steady_volumes"] = int(non_steady.sum())
    # The first volume has no FD; non-steady-state volumes are not part of the run's data.
    steady = ~non_steady[1:]
    if fd is not None and steady.any():
        facts["mean_fd"] = float(np.mean(fd[1:][steady]))
    dvars = None
    if settings.dvars_threshold is not None:
        dvars = std_dvars(table, source)
    elif DVARS_COLUMN in table.columns:
        dvars = confound_matrix(table, [DVARS_COLUMN], source)[:, 0]
    keep = scrub_mask(fd, settings, n_vol, dvars=dvars, non_steady=non_steady)
    facts["n_volumes_kept"] = int(keep.size)
    _check_dof(keep, deriv.t_r, settings, confounds, facts)

    labels = _labels_on_grid(atlas, hdr.shape[:3], hdr.affine)
    label_ids = atlas.labels["index"].to_numpy()
    # Coverage's denominator: each parcel's voxels on the BOLD grid, inside the mask or not.
    grid_counts = parcel_voxel_counts(labels, label_ids)
    brain = _brain_mask(deriv.mask, hdr.shape[:3], hdr.affine, bold.name)
    facts["coverage_rule"] = "live_voxels" if brain is None else "brain_mask"
    if brain is None:
        log.warning(
            "%s: no brain mask in the fMRIPrep record; parcel coverage counts the voxels whose "
            "signal varies over time",
            bold.name,
        )
    else:
        # fMRIPrep's desc-preproc_bold is not masked (nipreps/fmriprep#1999): background voxels
        # vary too. As NiftiLabelsMasker(mask_img=...) and XCP-D, voxels outside the brain mask
        # leave their parcel, for its mean signal and for its coverage.
        labels = np.where(brain, labels, 0)
    stats = parcellate_file(bold, labels, label_ids, header=hdr)
    if stats.n_nonfinite_voxels:
        raise ExcludedRunError(
            f"BOLD {bold.name} holds NaN/Inf values in {stats.n_nonfinite_voxels} voxel(s) "
            "inside the atlas",
            hint="Check the preprocessing of this run; fMRIPrep never writes NaN.",
            code=reason_codes.BOLD_NONFINITE,
        )
    facts["n_dropout_volumes"] = int(stats.dropout.sum())
    if stats.dropout.any():
        # Dropout volumes are only known once the BOLD is read: scrub them too.
        keep = scrub_mask(
            fd, settings, n_vol, dvars=dvars, dropout=stats.dropout, non_steady=non_steady
        )
        facts["n_volumes_kept"] = int(keep.size)
        _check_dof(keep, deriv.t_r, settings, confounds, facts)
        log.warning(
            "BOLD %s: %d volume(s) constant across the atlas (dropout) scrubbed",
            bold.name,
            facts["n_dropout_volumes"],
        )
    coverage = parcel_coverage(stats.live_counts, grid_counts)
    facts["coverage"] = [round(float(c), 4) for c in coverage]
    facts["tsnr"] = [None if not np.isfinite(t) else round(float(t), 3) for t in stats.tsnr]
    # Constancy is judged on the kept volumes: a parcel that varies only in scrubbed ones has
    # no signal left, and its correlations would be NaN.
    empty = empty_parcels(coverage, stats.signals, min_coverage, sample_mask=keep)
    names = atlas.labels["name"].tolist()
    facts["empty_rois"] = [names[i] for i in np.flatnonzero(empty)]
    if empty.all() and (coverage >= min_coverage).any():
        raise ExcludedRunError(
            f"every parcel covered by BOLD {bold.name} is constant over the "
            f"{facts['n_volumes_kept']} volumes kept",
            hint=FLAT_FIX,
            code=reason_codes.FLAT_SIGNALS,
        )
    if empty.all() and brain is not None and (grid_counts > 0).any():
        raise ExcludedRunError(
            f"no atlas parcel is covered by BOLD {bold.name} within its brain mask "
            f"{Path(deriv.mask).name} (best coverage {float(coverage.max(initial=0.0)):.2f}, "
            f"{min_coverage} required)",
            hint=f"Check the brain mask and that the BOLD is in the atlas's space {atlas.space}.",
            code=reason_codes.NO_COVERAGE,
        )
    if empty.all():
        raise ExcludedRunError(
            f"no atlas parcel is covered by BOLD {bold.name} (best coverage "
            f"{float(coverage.max(initial=0.0)):.2f}, {min_coverage} required): its affine "
            f"places the image outside atlas {atlas.name!r}",
            hint=f"Check that the image is in space {atlas.space} and its header affine is "
            "the one fMRIPrep wrote.",
            code=reason_codes.NO_COVERAGE,
        )
    signals = clean_signals(
        stats.signals,
        deriv.t_r,
        settings,
        confounds=confounds,
        sample_mask=keep,
    )
    empty = cleaned_empty(signals, empty, names, bold.name)
    facts["empty_rois"] = [names[i] for i in np.flatnonzero(empty)]
    if empty.all():
        raise ExcludedRunError(
            f"every parcel of BOLD {bold.name} is flat once cleaned",
            hint=FLAT_FIX,
            code=reason_codes.FLAT_SIGNALS,
        )
    signals[:, empty] = 0.0
    return RunConnectome(signals, empty, columns, keep, confounds)


def _check_dof(
    keep: np.ndarray,
    t_r: float,
    settings: DenoiseSettings,
    confounds: np.ndarray,
    facts: dict[str, Any],
) -> None:
    """Record the run's degrees of freedom (QC ``dof``), then check ``denoise.min_dof``."""
    dof = degrees_of_freedom(keep, t_r, settings, confounds)
    facts["dof"] = round(dof.residual, 1)
    check_degrees_of_freedom(dof, settings)


def _labels_on_grid(atlas: Atlas, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Atlas labels resampled to a BOLD grid; all 0 when the grid misses the atlas."""
    from nilearn.image.resampling import BoundingBoxError

    if tuple(atlas.img.shape) == tuple(shape) and np.allclose(atlas.img.affine, affine):
        return np.asarray(atlas.img.dataobj).astype(np.int64)  # already on the BOLD grid
    reference = nib.Nifti1Image(np.zeros(shape, dtype=np.uint8), affine)
    try:
        return np.asarray(resample_to(atlas, reference).dataobj).astype(np.int64)
    except BoundingBoxError:
        return np.zeros(shape, dtype=np.int64)


def _brain_mask(
    path: str, shape: tuple[int, ...], affine: np.ndarray, bold_name: str
) -> np.ndarray | None:
    """The run's brain mask as booleans on the BOLD grid; ``None`` when the record has none.

    fMRIPrep writes the mask on the BOLD grid. A mask on another grid (a file replaced by
    hand) is resampled to it by nearest neighbour, as NiftiLabelsMasker does with its
    ``mask_img``, and a warning says so.

    Raises
    ------
    ExcludedRunError
        The record names a mask that is missing, unreadable or not a 3D image.
    """
    if not path:
        return None
    mask_path = Path(path)
    try:
        img = nib.load(mask_path)
        while len(img.shape) > 3 and img.shape[-1] == 1:  # (X, Y, Z, 1): one 3D volume
            img = img.slicer[..., 0]
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for a missing or broken file
        raise ExcludedRunError(
            f"cannot read brain mask {mask_path} of BOLD {bold_name}: {exc}",
            hint=_MASK_FIX,
            code=reason_codes.MASK_UNREADABLE,
        ) from exc
    if data.ndim != 3:
        raise ExcludedRunError(
            f"brain mask {mask_path.name} of BOLD {bold_name} has shape {data.shape}; a 3D "
            "image is expected",
            hint=_MASK_FIX,
            code=reason_codes.MASK_UNREADABLE,
        )
    mask = np.isfinite(data) & (data != 0)
    if mask.shape == tuple(shape) and np.allclose(img.affine, affine, atol=1e-4):
        return mask
    from nilearn.image import resample_img
    from nilearn.image.resampling import BoundingBoxError

    log.warning(
        "brain mask %s (shape %s) is not on the grid of BOLD %s (shape %s): resampled by "
        "nearest neighbour",
        mask_path.name,
        mask.shape,
        bold_name,
        tuple(shape),
    )
    try:
        mask_img = resample_img(
            nib.Nifti1Image(mask.astype(np.uint8), img.affine),
            target_affine=affine,
            target_shape=tuple(shape),
            interpolation="nearest",
            force_resample=True,
            copy_header=True,
        )
    except BoundingBoxError:  # the mask misses the BOLD grid: no voxel is in the brain
        return np.zeros(shape, dtype=bool)
    return np.asarray(mask_img.dataobj) != 0


def _write_outputs(
    dataset: str,
    ids: RunIds,
    space: str,
    deriv: RunDerivatives,
    atlas: Atlas,
    settings: DenoiseSettings,
    out_dir: str | Path,
    result: RunConnectome,
    facts: dict[str, Any],
    atlas_files: list[str] | None = None,
    connectome: ConnectomeSettings | None = None,
    min_coverage: float = MIN_COVERAGE,
    record: str | Path | None = None,
    windows: WindowPlan | None = None,
) -> dict[str, Any]:
    names = atlas.labels["name"].tolist()
    ts_path = run_timeseries(out_dir, run_location(ids.entities), space, atlas.name)
    # The brain mask decides coverage and which parcels are empty: a source when it was read.
    mask = [deriv.mask] if facts.get("coverage_rule") == "brain_mask" else []
    sources = [deriv.bold, *mask, deriv.confounds, *(atlas_files or [])]
    sources += [record] if record is not None else []
    meta = {
        "RepetitionTime": deriv.t_r,
        **({"RepetitionTimeSource": deriv.t_r_source} if deriv.t_r_source else {}),
        **({"RepetitionTimeNote": deriv.t_r_note} if deriv.t_r_note else {}),
        "Atlas": atlas.name,
        "AtlasIdentity": atlas.identity,
        "Space": space,
        # The resolution read: a bare space names none, and runs may differ in it.
        **({"SpaceRead": deriv.space_read} if deriv.space_read else {}),
        "Denoise": settings.to_dict(),
        "ConfoundColumns": result.confound_columns,
        "NumberOfVolumes": facts["n_volumes"],
        "NumberOfVolumesKept": facts["n_volumes_kept"],
        "NumberOfDropoutVolumes": facts.get("n_dropout_volumes", 0),
        "NumberOfNonSteadyVolumes": facts.get("n_non_steady_volumes", 0),
        "MeanFramewiseDisplacement": facts.get("mean_fd"),
        "EmptyROIs": facts["empty_rois"],
        "EmptyROIPolicy": f"coverage below {min_coverage} or constant signal: set to 0",
        "ParcelCoverage": facts.get("coverage"),
        "ParcelCoverageRule": COVERAGE_RULES[facts["coverage_rule"]],
        "ParcelTSNR": facts.get("tsnr"),
    }
    write_recorded(ts_path, lambda to: write_timeseries(to, names, result.signals), sources, **meta)
    mats = write_run_matrices(
        out_dir,
        ids,
        space,
        atlas.name,
        names,
        result.signals,
        result.empty,
        connectome or ConnectomeSettings(),
        sources,
        meta,
        windows,
    )
    log.info(
        "%s %s: %d/%d volumes kept, %d empty ROI(s), %d matrices -> %s",
        dataset,
        ids.run_key,
        facts["n_volumes_kept"],
        facts["n_volumes"],
        len(facts["empty_rois"]),
        len(mats.files),
        mats.relmat,
    )
    return new_qc(
        dataset,
        ids,
        settings.to_dict(),
        included=True,
        reason="",
        timeseries=str(ts_path),
        **mats.qc_facts(),
        **facts,
    )
