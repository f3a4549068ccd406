"""Per-run QC records (one JSON per voxel run) and the QC table that gathers them.

The table's columns (:data:`lcm.io.qc_table.QC_COLUMNS`) and its reader are
:mod:`lcm.io.qc_table`'s, which the store, the report and the evaluation import too.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcm import reason_codes
from lcm.bids.dataset import CONFIG_KEYS, part_of
from lcm.bids.runs import RunIds
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError, ExcludedRunError, InputDataError
from lcm.io.atomic import write_tsv
from lcm.io.derivatives import exclusion_reasons
from lcm.io.qc_table import QC_COLUMNS

log = logging.getLogger(__name__)

# Columns older QC records may lack (filled with their empty value when read).
_OPTIONAL = {
    # The manifest's code of a run excluded at ingest (other_atlas, duplicate, ...): the
    # report counts the files of other parcellations apart from the runs.
    "reason_code": "",
    "empty_rois": [],
    "strategy": "",
    "fd_threshold": None,
    "dvars_threshold": None,
    "standardize": "",
    "n_windows": None,
    "n_windows_dropped": None,
    "window_note": "",
    "relmats": [],
    "window_relmats": [],
    "pct_scrubbed": None,
    "median_tsnr": None,
    "mean_coverage": None,
    "n_dropout_volumes": None,
    "n_non_steady_volumes": None,
    # The space and resolution of the BOLD a voxel run read (its fMRIPrep record's).
    "space_read": "",
    # Degrees of freedom left once band-passed and regressed (lcm.connectome.denoise).
    "dof": None,
    # Where a voxel run's TR came from (its fMRIPrep record's t_r_source: preproc_sidecar;
    # raw_sidecar, inherited_sidecar or header where the preprocessed BOLD's sidecar gave none).
    "t_r_source": "",
}
# The fMRIPrep version that made a voxel run (lcm.connectome.voxel_run.record_fmriprep_version;
# null for a container run): in QC.json only, not a QC table column, whose readers reach
# training (a column added there reruns every model); collect_qc warns of a mix.
FMRIPREP_VERSION = "fmriprep_version"
# List columns are lists in QC.json and comma-separated strings in QC.tsv.
_LIST_COLUMNS = ("empty_rois", "relmats", "window_relmats")
_LIST_SEPARATOR = ","


@fill_doc
def new_qc(
    dataset: str, ids: RunIds | None = None, denoise: dict[str, Any] | None = None, **values: Any
) -> dict[str, Any]:
    """A QC record with every column, unknown numbers ``None`` and paths ``""``.

    ``denoise`` (the run's denoising settings) fills ``strategy``, ``fd_threshold``,
    ``dvars_threshold`` and ``standardize``. ``pct_scrubbed`` is computed from the volume
    counts unless given in ``values`` (``None``: no scrubbing could apply, n/a).

    Parameters
    ----------
    %(dataset)s
    ids : RunIds, optional
        The run's identifiers, which fill ``subject`` .. ``run_key``.
    denoise : dict, optional
        The run's denoising settings.
    **values
        Further columns, set as given.
    """
    record: dict[str, Any] = {
        "dataset": dataset,
        "subject": "",
        "session": "",
        "task": "",
        "run": "",
        "run_key": "",
        "included": False,
        "reason": "",
        "n_volumes": None,
        "n_volumes_kept": None,
        "mean_fd": None,
        "t_r": None,
        "n_rois": None,
        "timeseries": "",
        "relmat": "",
        **copy.deepcopy(_OPTIONAL),
    }
    if ids is not None:
        record.update(ids.row_fields())
    if denoise:
        record.update({k: denoise.get(k) for k in _DENOISE_COLUMNS})
    record.update(values)
    record.update({k: v for k, v in _summaries(record).items() if k not in values})
    return record


def exclusion_reason(exc: ExcludedRunError) -> str:
    """The QC ``reason`` of a run ``exc`` excludes: what is wrong, then the fix.

    The one wording of a run's exclusion in the QC table and its job's log: the fix written
    where the run was refused (the error's ``hint``) stays with it, and the table names the
    file and the fix in one cell, as the ingest manifest's reasons do.

    Parameters
    ----------
    exc : ExcludedRunError
        The error that excluded the run.
    """
    return exc.one_line()


def _summaries(record: dict[str, Any]) -> dict[str, Any]:
    """Cohort-table numbers derived from a record: % scrubbed, median tSNR, mean coverage.

    The per-parcel ``tsnr`` and ``coverage`` lists (voxel runs) stay in the JSON; the QC table
    keeps one number each so that a cohort of thousands of runs stays a readable table.
    """
    out: dict[str, Any] = {}
    n, kept = record.get("n_volumes"), record.get("n_volumes_kept")
    # Censoring after dummy-scan removal, as XCP-D counts it: fMRIPrep's non-steady-state
    # volumes are no data of the run (n_non_steady_volumes counts them), not scrubbed ones.
    steady = (n or 0) - (record.get("n_non_steady_volumes") or 0)
    if steady > 0 and kept is not None:
        out["pct_scrubbed"] = round(100.0 * max(steady - kept, 0) / steady, 2)
    tsnr = [t for t in record.get("tsnr") or [] if t is not None]
    if tsnr:
        out["median_tsnr"] = round(float(np.median(tsnr)), 3)
    coverage = record.get("coverage") or []
    if coverage:
        out["mean_coverage"] = round(float(np.mean(coverage)), 4)
    return out


_DENOISE_COLUMNS = ("strategy", "fd_threshold", "dvars_threshold", "standardize")

# Mean correlation between ROIs above which a run's connectome is one signal in every ROI. Real
# runs stay well below, even with a strong global signal left in (mean r ~0.9); a row read as
# data that is no volume (0..R-1 against a raw BOLD scale) is a spike every ROI shares: r ~ 1.
DEGENERATE_MEAN_R = 0.99
# Fewest non-empty ROIs the rule judges: two ROIs may truly correlate at 0.99.
_DEGENERATE_MIN_ROIS = 3


def check_fc_spread(fc: np.ndarray, name: str) -> None:
    """Refuse a Pearson connectome whose ROIs all correlate near 1 (:data:`DEGENERATE_MEAN_R`).

    Every ROI carrying the same signal is no brain: the file was mis-read (or written so), and
    stored as is it would pass for a run. Empty ROIs (rows of 0) are left out of the mean.
    Applied to the runs read from files (ROI time series, imported connectomes), where such a
    row or copy can come in; voxel runs are parcellated here from the BOLD itself.

    Parameters
    ----------
    fc : ndarray, shape (R, R)
        Pearson r, 1 on the diagonal of non-empty ROIs.
    name : str
        The run's file, for the message.

    Raises
    ------
    ExcludedRunError
        ``fc_degenerate``, naming the file, the mean r and what to check.
    """
    fc = np.asarray(fc, dtype=np.float64)
    keep = np.flatnonzero(fc.any(axis=1))
    if keep.size < _DEGENERATE_MIN_ROIS:
        return
    sub = fc[np.ix_(keep, keep)]
    mean_r = float(sub[~np.eye(keep.size, dtype=bool)].mean())
    if mean_r <= DEGENERATE_MEAN_R:
        return
    raise ExcludedRunError(
        f"{name}: its {keep.size} ROIs all correlate near 1 (mean r between ROIs {mean_r:.4f} > "
        f"{DEGENERATE_MEAN_R}), as if every ROI held one signal: no real run does",
        hint="Check the file for a row that is no volume read as data (column numbers saved "
        "as numbers, e.g. 1.0,2.0,...) or one series copied to every ROI; save one row per "
        "volume, under a header of ROI names or none.",
        code=reason_codes.FC_DEGENERATE,
    )


def qc_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """QC records as a table with the ``QC_COLUMNS`` order.

    Parameters
    ----------
    records : list of dict
        Per-run QC records (:func:`new_qc`); a missing optional column reads as its default.

    Returns
    -------
    pandas.DataFrame
        One row per record; list cells joined into one string.
    """
    rows = []
    for rec in records:
        row = {col: rec.get(col, _OPTIONAL.get(col)) for col in QC_COLUMNS}
        for col in _LIST_COLUMNS:
            items = row[col] or []
            row[col] = _LIST_SEPARATOR.join(items) if isinstance(items, list) else items
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    df["included"] = df["included"].fillna(False).astype(bool)
    return df


def read_qc_json(path: str | Path) -> dict[str, Any]:
    """Read one per-run QC JSON.

    Parameters
    ----------
    path : str or Path
        A run's QC JSON, written by ``lcm connectome run``.

    Raises
    ------
    InputDataError
        If the file is missing, not JSON, or lacks QC keys.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputDataError(
            f"Cannot read QC record {path}: {exc}", hint="Rerun 'lcm connectome run'."
        ) from exc
    missing = [c for c in QC_COLUMNS if c not in _OPTIONAL and c not in record]
    if missing:
        raise InputDataError(
            f"QC record {path} lacks keys {missing}.", hint="Rerun 'lcm connectome run'."
        )
    return record


def collect_qc(
    paths: list[str | Path],
    out: str | Path,
    names: Mapping[str, str] | None = None,
    manifest: str | Path | None = None,
) -> pd.DataFrame:
    """Gather per-run QC JSONs into one TSV (``n/a`` for unknown values), atomically.

    Parameters
    ----------
    paths : list of str or Path
        The dataset's per-run QC JSONs (those of several datasets are written all the same,
        with a warning: :func:`warn_mixed_datasets`).
    out : str or Path
        The QC TSV to write.
    names : mapping of str to str, optional
        How the user gave the dataset's ``space`` (:func:`lcm.bids.dataset.setting_names`:
        an option of the verb that took it, or None for the config's key, under a workflow
        rule), named in the warning of mixed resolutions.
    manifest : str or Path, optional
        The dataset's manifest: a record of a dataset it does not name is refused before
        anything is written (:func:`check_manifest_datasets`).

    Returns
    -------
    pandas.DataFrame
        The table written.

    Raises
    ------
    InputDataError
        A QC JSON that cannot be read (:func:`read_qc_json`), or one of a dataset that
        ``manifest`` does not name.
    ConfigError
        When windowed FC was asked for and no included run is as long as one window.
    """
    records = [read_qc_json(p) for p in paths]
    if manifest is not None:
        check_manifest_datasets(records, paths, manifest, out, rule=names is None)
    warn_mixed_datasets(records, paths, out)
    df = qc_frame(records)
    check_windows(df, str(out))
    warn_mixed_resolutions(df, {**CONFIG_KEYS, **(names or {})}["space"])
    warn_mixed_fmriprep_versions(records)
    write_tsv(out, df)
    return df


def warn_mixed_datasets(
    records: list[dict[str, Any]], paths: list[str | Path], out: str | Path
) -> dict[str, list[str]]:
    """Warn when the QC records collected into one table are of several datasets.

    The connectome stage collects each dataset's records into a table of its own (the
    ``connectome_collect`` rule, per dataset); ``lcm connectome collect`` writes whatever
    records it is given. A table of several is not refused: ``lcm store`` stores only its
    ``--dataset``'s rows of it (:func:`lcm.store.writer.dataset_rows`). But it is not the
    dataset's table the store and the report expect, and the warnings of a table (mixed
    resolutions, fMRIPrep versions) count its datasets' runs together, so the datasets and
    the files of their records are named.

    Parameters
    ----------
    records : list of dict
        Per-run QC records (:func:`read_qc_json`), in the order of ``paths``.
    paths : list of str or Path
        Their files.
    out : str or Path
        The QC table written, named in the warning.

    Returns
    -------
    dict
        ``{dataset: [file, ...]}`` of the records.
    """
    files: dict[str, list[str]] = {}
    for record, path in zip(records, paths, strict=True):
        files.setdefault(str(record.get("dataset")), []).append(str(path))
    if len(files) > 1:
        log.warning(
            "%s: the QC records collected are of %d datasets (%s), written into one table. "
            "The connectome stage writes one QC table per dataset; lcm store reads only its "
            "--dataset's rows of this one. Collect each dataset's records into a table of its "
            "own (lcm connectome collect --qc <that dataset's QC JSONs> --out <its table>), or "
            "pass only the records of the dataset meant.",
            out,
            len(files),
            "; ".join(f"{name}: {_files(theirs)}" for name, theirs in sorted(files.items())),
        )
    return files


def check_manifest_datasets(
    records: list[dict[str, Any]],
    paths: list[str | Path],
    manifest: str | Path,
    out: str | Path,
    *,
    rule: bool = False,
) -> None:
    """Refuse QC records of a dataset that the manifest passed with them does not name.

    Another dataset's manifest, passed by mistake, was not read while records were given: the
    table was written of the records alone, and ``lcm store --dataset`` of the manifest's
    dataset then refused it or, given the records' dataset, stored it, the manifest's runs and
    reasons never compared. Datasets alone are compared: a record of a run the manifest
    excludes or lacks (a run excluded at a later ingest) is collected as before, the table
    being the records'. A manifest without a row names no dataset and checks nothing.

    Parameters
    ----------
    records : list of dict
        Per-run QC records (:func:`read_qc_json`), in the order of ``paths``.
    paths : list of str or Path
        Their files, named per dataset in the error.
    manifest : str or Path
        The manifest given with them (``--manifest``; the dataset's, under a workflow rule).
    out : str or Path
        The QC table not written, named in the error.
    rule : bool, optional
        Under a workflow rule, which passes the dataset's own manifest: the fix is to rewrite
        the records or the manifest that are not the dataset's, not to pass another file.

    Raises
    ------
    InputDataError
        Naming the manifest, its dataset(s), the records' datasets with their files, and the
        manifest to pass (a sibling folder's, where ``lcm ingest`` wrote one for that dataset).
    """
    from lcm.bids.manifest import read_manifest

    named = set(read_manifest(manifest, columns=["dataset"])["dataset"].astype(str))
    files: dict[str, list[str]] = {}
    for record, path in zip(records, paths, strict=True):
        files.setdefault(str(record.get("dataset")), []).append(str(path))
    foreign = sorted(set(files) - named)
    if not named or not foreign:
        return
    theirs = "; ".join(f"{name}: {_files(files[name])}" for name in foreign)
    message = (
        f"{'The manifest' if rule else '--manifest'} {manifest} is of dataset(s) "
        f"{sorted(named)}, but QC records to collect into {out} are of {foreign} ({theirs}); "
        "nothing was written."
    )
    if rule:
        hint = (
            f"These records are not of dataset {sorted(named)[0]!r}: move them away (and the "
            "manifest, if it is the one that is not) and rerun the workflow, which writes "
            "them again."
        )
    elif set(files) & named:
        hint = (
            f"Pass only the QC records of {sorted(named)} with this manifest; collect those of "
            f"{foreign} into a table of their own, with their dataset's manifest."
        )
    else:
        hint = (
            f"Pass the manifest of {foreign[0]!r} ({_manifest_of(manifest, foreign[0])}) with "
            f"these records, or the QC records of {sorted(named)} with this manifest."
        )
    raise InputDataError(message, hint=hint)


def _manifest_of(manifest: str | Path, dataset: str) -> str:
    """Where ``dataset``'s manifest is: beside ``manifest``'s folder if ingest wrote it there."""
    from lcm.bids.manifest import read_manifest

    given = Path(manifest)
    sibling = given.parent.with_name(dataset) / given.name
    # One manifest per folder (lcm ingest's layout): a sibling folder named after the dataset
    # holding that dataset's manifest is the one meant; checked, not guessed.
    if sibling != given and sibling.is_file():
        try:
            if dataset in set(read_manifest(sibling, columns=["dataset"])["dataset"].astype(str)):
                return f"e.g. {sibling}"
        except InputDataError:
            pass
    return f"the one 'lcm ingest --dataset {dataset} --out ...' wrote"


def _files(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    more = len(paths) - limit
    return f"{len(paths)} record(s), {shown}" + (f" and {more} more" if more > 0 else "")


def warn_mixed_fmriprep_versions(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Warn when the included runs of a dataset were made by different fMRIPrep versions.

    Raw BIDS with ``fmriprep.runner: existing`` is ingested from the raw folder, so nothing
    but each subject's fMRIPrep job saw its version (a warning per subject, against the
    folder's ``dataset_description.json``); here, where the runs of the cohort meet, the
    subjects of each version are named once. Their outputs differ (confounds, resampling,
    masks), a confound of comparisons across subjects; no run is excluded for it.

    Parameters
    ----------
    records : list of dict
        Per-run QC records (:func:`read_qc_json`), with :data:`FMRIPREP_VERSION` where known.

    Returns
    -------
    dict
        ``{version: [subject, ...]}`` of the included runs whose version is known.
    """
    by_version: dict[str, set[str]] = {}
    for rec in records:
        version = rec.get(FMRIPREP_VERSION)
        if rec.get("included") and version:
            by_version.setdefault(str(version), set()).add(str(rec.get("subject")))
    groups = {version: sorted(subs) for version, subs in sorted(by_version.items())}
    if len(groups) > 1:
        names = sorted({str(rec.get("dataset")) for rec in records})
        log.warning(
            "%s: its included runs were made by %d fMRIPrep versions (%s). Their outputs "
            "differ (confounds, resampling, masks), a confound of comparisons across "
            "subjects. Rerun those subjects with one fMRIPrep version into a folder of its "
            "own, or accept the mix: each run's QC JSON names its version (%s), each "
            "subject's fMRIPrep record why (generated_by.subject).",
            ", ".join(names),
            len(groups),
            "; ".join(f"{version}: {_subjects(subs)}" for version, subs in groups.items()),
            FMRIPREP_VERSION,
        )
    return groups


def _subjects(subjects: list[str], limit: int = 10) -> str:
    shown = ", ".join(f"sub-{s}" for s in subjects[:limit])
    more = len(subjects) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def warn_mixed_resolutions(df: pd.DataFrame, setting: str = CONFIG_KEYS["space"]) -> None:
    """Warn when the included runs of a dataset were read at different resolutions.

    A bare ``fmriprep.output_space`` reads, per run, the file without ``res-`` where there is
    one, else the resolution fMRIPrep wrote: one subject's sessions can end up at two
    resolutions, under one output name. The warning counts the runs per ``space_read``.

    Parameters
    ----------
    df : pandas.DataFrame
        A QC table (:func:`qc_frame`).
    setting : str, default ``fmriprep.output_space``
        The space setting as the user gives it, named as the one to set (``lcm fmriprep
        --output-space`` on the command line).
    """
    included = df[df["included"].fillna(False).astype(bool)]
    spaces = included["space_read"].fillna("").astype(str)
    counts = spaces[spaces != ""].value_counts().sort_index()
    if len(counts) < 2:
        return
    names = sorted(set(included["dataset"].astype(str)))
    numbered = [s for s in counts.index if not s.endswith(":res-native")]
    example = (numbered or list(counts.index))[0]
    log.warning(
        "%s: the included runs were read at %d resolutions (%s): their connectomes are named "
        "and stored alike. Set %s to one of these, e.g. %s (:res-native "
        "reads the files without res-), to read one resolution in every run (runs without it "
        "are then excluded, naming the ones they have); each run's space_read in the QC table "
        "says which it read.",
        ", ".join(names),
        len(counts),
        ", ".join(f"{space}: {n} run(s)" for space, n in counts.items()),
        setting,
        example,
    )


def no_run_error(
    manifest: str | Path | None, out: str | Path, names: Mapping[str, str] | None = None
) -> InputDataError:
    """The error of a dataset without any run to collect, naming the ingest's reasons.

    Parameters
    ----------
    manifest : path-like or None
        The dataset's manifest (its ``dataset`` and exclusion reasons are named).
    out : path-like
        The QC table that cannot be written (names the dataset when no manifest is given).
    names : mapping of str to str, optional
        The options of the command that asks (``lcm connectome collect``); None under a
        workflow rule, whose user may drop the dataset from the config (named, filled in).
    """
    if manifest is None:
        return InputDataError(
            f"No per-run QC record to collect into {out}: every run of this dataset was "
            "excluded before the connectome stage.",
            # Only lcm connectome collect without --manifest comes here (a workflow rule passes
            # the dataset's): which dataset, and where its ingest wrote, is the user's to say.
            hint="Pass --manifest, the dataset's manifest from lcm ingest, to name the reasons "
            "(the summary.tsv beside it counts the runs per reason).",
        )
    from lcm.bids.manifest import read_manifest

    table = read_manifest(manifest)
    datasets = sorted(set(table["dataset"].astype(str))) or [Path(manifest).parent.name]
    return InputDataError(
        f"Dataset {datasets[0]!r}: no included run (all {len(table)} run(s) of {manifest} "
        f"excluded at ingest: {exclusion_reasons(table)}).",
        hint=f"{Path(manifest).with_name('summary.tsv')} counts the runs per reason (the "
        "manifest gives each run's). Fix the files or settings these name and "
        + (
            f"rerun, or drop {part_of(CONFIG_KEYS['dataset'], datasets[0])} from the config."
            if names is None
            else "run lcm ingest again."
        ),
    )


def check_windows(df: pd.DataFrame, source: str) -> None:
    """Refuse a dataset where a window is longer than every included run.

    Each short run keeps its whole-run matrix with a ``window_note``; when that holds for every
    included run the window length is almost surely wrong (seconds instead of TRs, say).

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset's QC table (:func:`qc_frame`).
    source : str
        What is checked (the QC table's path), named in the error.

    Raises
    ------
    ConfigError
        Naming the longest run and the fix.
    """
    included = df[df["included"].fillna(False).astype(bool)]
    notes = included["window_note"].fillna("").astype(str)
    if len(included) and (notes != "").all():
        longest = int(pd.to_numeric(included["n_volumes_kept"], errors="coerce").max())
        raise ConfigError(
            f"{source}: connectome.window.length is longer than every run of this dataset "
            f"(the longest keeps {longest} volumes): no windowed matrix was written "
            f"({notes.iloc[0]}).",
            hint="Lower connectome.window.length (it counts volumes, not seconds) or set it "
            "to null.",
        )
