"""Build and write the manifest of one dataset, whatever its entry level.

Order of work: dataset description -> fast index (cached per subject) -> BIDS validator (raw
datasets, selected participants only, rerun only when something changed) -> selection ->
validator exclusions -> participants check -> manifest, summary and cache written next to each
other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from lcm.bids.dataset import (
    is_derivative,
    part_of,
    read_dataset_description,
    setting_names,
)
from lcm.bids.fast_index import DEFAULT_SPACE, IndexSpec
from lcm.bids.file_entries import index_files, uses_file_index
from lcm.bids.fmriprep_version import fmriprep_versions
from lcm.bids.index_cache import (
    IndexResult,
    cache_dir_for,
    index_dataset,
    save_cache,
    unit_digests,
)
from lcm.bids.manifest import exclude_space_duplicates, manifest_frame, write_manifest
from lcm.bids.rows import (
    NOT_IN_SPACE,
    NOT_SELECTED,
    OTHER_ATLAS,
    TR_NOT_CHECKED,
    UNREADABLE,
    spaces_found,
)
from lcm.bids.selection import (
    Selection,
    combine_echoes,
    exclude_other_parts,
    keep_space,
    select_parcellation,
)
from lcm.bids.summary import (
    build_summary,
    check_summary_files_own,
    derivatives_without_raw,
    participants_mismatch,
    subjects_without_runs,
    summary_table,
    write_summary,
)
from lcm.bids.validator import (
    ValidationReport,
    exclude_invalid_runs,
    validate_bids,
    validation_inputs,
)
from lcm.docstrings import fill_doc
from lcm.entries import TABLE, entry_type
from lcm.exceptions import BIDSError, ConfigError, InputDataError
from lcm.hints import set_to
from lcm.io.bids_names import check_label, parse_entities
from lcm.io.output_space import check_volumetric_space
from lcm.io.provenance import write_sidecar

log = logging.getLogger(__name__)


def space_hint(select: str, space: str | None = None) -> str:
    """The fix of a run of a parcellated dataset in several spaces (XCP-D's MNI152NLin6Asym
    and fsLR outputs), by the name of its selection (:func:`lcm.bids.dataset.setting_names`),
    or of its own space setting where one keeps a space.

    Parameters
    ----------
    select : str
        How the user gave the dataset's selection (``--select``, or
        ``ingest.select.<dataset>`` in a config).
    space : str, optional
        The setting that keeps one space of the entry's runs, when the user can give it
        (``lcm ingest --space``, roi_timeseries); None: only the selection can.

    Returns
    -------
    str
    """
    if space is not None:
        return f"several spaces: choose one with {space}"
    # Its include list: a --select of {"space": [...]} is refused, and so is such a config.
    return f"several spaces: choose one with {part_of(select, 'space.include')}"


def _space_keeper(entry: str, keys: Mapping[str, str]) -> str | None:
    """The setting that keeps one space of ``entry``'s runs (:func:`space_hint`), for an entry
    whose runs may be in any space: ``--space`` on the command line, the selection's
    ``space.include`` under a rule (the workflow passes such an entry no fmriprep.output_space:
    its runs are not fMRIPrep's). A connectome's space is never filtered on."""
    tree = entry_type(entry).tree
    optional = tree is not None and tree.space == "optional"
    return keys["roi_space"] if optional else None


def _check_space_in_selection(
    space: str, selection: Selection | None, keys: dict[str, str]
) -> None:
    """Refuse a space outside the selection's ``space.include``: together they keep no run."""
    include = selection.include.get("space") if selection is not None else None
    if include is None or space in include:
        return
    listed = part_of(keys["select"], "space.include")
    raise ConfigError(
        f"{set_to(keys['space'], space)} is not in {listed} ({', '.join(include)}): together "
        "they keep no run.",
        hint=f"Choose the space once: by {keys['space']}, or by {listed}.",
    )


MAX_LOGGED_EXCLUSIONS = 20


@dataclass
class Ingested:
    """A dataset's manifest, its summary, and the index it came from (for the cache)."""

    manifest: pd.DataFrame
    summary: dict[str, Any]
    index: IndexResult


def ingest_dataset(
    dataset: str,
    entry: str,
    path: str | Path,
    derivatives: str | Path | None = None,
    task: str = "rest",
    space: str | None = None,
    selection: Selection | None = None,
    validate: bool = False,
    cache_dir: str | Path | None = None,
    repetition_time: float | None = None,
    atlas: str | None = None,
    seg: str | None = None,
    names: Mapping[str, str] | None = None,
) -> Ingested:
    """Index a dataset into its manifest and summary (nothing is written).

    Parameters
    ----------
    dataset : str
        Dataset name (alphanumeric).
    entry : str
        Level at which the dataset enters the workflow, an entry of :mod:`lcm.entries`
        (``bids``, ``fmriprep``, ``roi_timeseries``, ``connectome``): its row says how the
        runs are indexed.
    path : path-like
        Raw BIDS root, fMRIPrep derivatives root, ROI time-series root (an XCP-D derivative
        folder, or a folder or listing TSV of per-run files), or connectome listing/folder
        (see :mod:`lcm.bids.file_entries`).
    derivatives : path-like, optional
        Entries with :attr:`lcm.entries.Entry.derivatives_root` (``fmriprep``): the
        derivatives root when ``path`` is the raw dataset.
    task : str
        Task label of the runs to index.
    space : str, optional
        Output space of preprocessed runs (default MNI152NLin2009cAsym); for ROI time
        series, ``None`` accepts any space.
    selection : Selection, optional
        Runs to keep (others are excluded with reason code ``not_selected``).
    validate : bool
        Run the BIDS validator on a raw dataset (``entry="bids"``, the raw entries), on the
        participants ``selection`` keeps: errors at the dataset level raise, errors inside a
        subject folder exclude its runs (``validator:<CODE>``, see
        :func:`lcm.bids.validator.exclude_invalid_runs`), and the errors fMRIPrep's own
        validation ignores are warnings (``downgraded``,
        :func:`lcm.bids.validator.fmriprep_ignores`).
    cache_dir : path-like, optional
        Cache of an earlier run (read only here; see :mod:`lcm.bids.index_cache`).
    repetition_time : float, optional
        Entries whose runs need a TR from sidecars (ROI time series): TR (seconds) of runs
        whose sidecar gives none.
    atlas : str, optional
        Parcellated entries (ROI time series, connectomes): the configured atlas; files
        whose ``seg-`` names another parcellation are excluded (``other_atlas``, see
        :func:`lcm.bids.selection.select_parcellation`). ``None`` keeps every parcellation
        (the connectome stage picks the atlas's files).
    seg : str, optional
        The files' ``seg-`` label of that atlas, when it differs from ``atlas``.
    names : mapping of str to str, optional
        How the user gave the dataset's settings (:func:`lcm.bids.dataset.setting_names`),
        named in messages and hints; by default the config's keys.

    Raises
    ------
    BIDSError
        No ``dataset_description.json``, a derivative dataset given as raw, or validator
        errors at the dataset level.
    ConfigError
        An unknown entry, or a voxel-level entry asked for a surface ``space`` (fsLR,
        fsaverage ...), which no run of it could be parcellated in.
    """
    keys = setting_names(dataset, names)
    check_label("dataset", dataset, source=keys["dataset"])
    check_label("task", task, source=keys["task"])
    if entry not in TABLE:
        raise ConfigError(
            f"{keys['entry']}: expected one of {list(TABLE)}, received {entry!r}.",
            hint=f"Set {keys['entry']} to one of them.",
        )
    kind = entry_type(entry)
    if kind.voxel and space:
        check_volumetric_space(
            space,
            keys["space"],
            f"entry {entry!r} is voxel-level: its runs are parcellated in a volume with the atlas "
            "image, so none could give a connectome",
            roi_entry=set_to(keys["entry"], "roi_timeseries"),
            roi_space=keys["roi_space"],
        )
    parcellation = (atlas, seg) if atlas and kind.parcellated else None
    root = index_root(entry, path, derivatives)
    if not root.exists():  # named with the dataset and its entry, whatever the entry
        key = "path" if root == Path(path) else "derivatives"
        raise InputDataError(
            f"Dataset {dataset!r} (entry {entry!r}): {root} does not exist.",
            hint=f"Check {keys[key]}.",
        )
    # An entry whose runs may be in any space (ROI time series): ``space`` keeps one of them,
    # after indexing every one, so that the others stay in the manifest (not_selected, by
    # keep_space). Taken out here, before the listing's return, which ignored it.
    kept_space = None
    if kind.tree is not None and kind.tree.space == "optional" and space:
        kept_space, space = space, None
        _check_space_in_selection(kept_space, selection, keys)
    if uses_file_index(entry, path):
        return _ingest_files(
            dataset,
            entry,
            Path(path),
            task,
            selection,
            repetition_time,
            parcellation,
            keys,
            kept_space,
        )
    desc = read_dataset_description(root, keys["path" if root == Path(path) else "derivatives"])
    if kind.raw and is_derivative(desc):
        raise BIDSError(
            f"{root} is a derivative dataset (DatasetType: derivative) but entry is {entry!r}.",
            hint=f"Set {keys['entry']} to fmriprep for fMRIPrep outputs, or point "
            f"{keys['path']} at the raw dataset.",
        )
    if kind.tree is not None and kind.tree.space == "required":
        space = space or DEFAULT_SPACE
    spec = IndexSpec(
        dataset=dataset,
        entry=entry,
        task=task,
        space=space,
        repetition_time=repetition_time if kind.needs_tr else None,
        repetition_time_name=keys["repetition_time"] if kind.needs_tr else None,
        space_name=keys["space"] if space else None,
        names=tuple(sorted((names or {}).items())),
    )
    index = index_dataset(spec, root, cache_dir=cache_dir)
    selection = selection or Selection()
    # Like fMRIPrep, validate the selected participants only: an unselected subject's broken
    # file (a git-annex link not fetched) must not stop the others.
    ignored = selection.subjects_left_out(index.subjects)
    validated = validate and kind.raw
    # A cached report holds for the same participants, .bidsignore and validator version.
    inputs = validation_inputs(root) if validated else None
    current = (
        index.validation is not None
        and index.validation.get("ignored_subjects") == ignored
        and index.validation.get("inputs") == inputs
    )
    if validated and not current:
        index.validation = {
            **validate_bids(root, ignore_subjects=ignored, setting=keys["validate"]).to_dict(),
            "inputs": inputs,
        }
        index.changed = True  # the cache must now record the report
    elif not validated:
        index.validation = None
    rows = manifest_frame(index.rows)
    selection.check_matches(rows, index.subjects, keys["select"])
    manifest = selection.apply(rows, keys["select"])
    if kept_space is not None:
        manifest = keep_space(manifest, kept_space, keys["space"], str(root))
    if index.validation is not None:
        report = ValidationReport.from_dict(index.validation)
        manifest = exclude_invalid_runs(manifest, report, root, keys["validate"])
    if kind.voxel:  # fMRIPrep makes one series of a multi-echo run's magnitude echoes
        manifest = combine_echoes(exclude_other_parts(manifest), derivatives=not kind.raw)
    if parcellation is not None:
        manifest = select_parcellation(manifest, *parcellation)
    manifest = exclude_space_duplicates(
        manifest, hint=space_hint(keys["select"], _space_keeper(entry, keys))
    )
    _log_exclusions(dataset, manifest, root, task, keys)
    no_runs = subjects_without_runs(
        root, index.subjects, manifest, dataset, task, ignored, names=keys
    )
    if no_runs:
        log.warning(
            "%s: %d subject folder(s) without a run of task %r, not in the cohort (listed in "
            "the ingest summary, reason code %s): %s",
            dataset,
            len(no_runs),
            task,
            no_runs[0]["reason_code"],
            "; ".join(s["reason"] for s in no_runs[:3]) + (" ..." if len(no_runs) > 3 else ""),
        )
    warnings = (index.validation or {}).get("warnings", [])
    errors = (index.validation or {}).get("errors", [])
    summary = build_summary(
        manifest,
        dataset=dataset,
        entry=entry,
        root=str(root),
        task=task,
        space=space or kept_space,
        selection=selection.to_dict(),
        validator={
            "ran": validated,
            "schema_version": (index.validation or {}).get("version", ""),
            "n_warnings": sum(w["count"] for w in warnings),
            # Of them, errors fMRIPrep's own validation ignores (lcm.bids.validator).
            "n_downgraded": sum(w["count"] for w in warnings if w.get("downgraded")),
            "warnings": warnings,
            # Errors inside subject folders (dataset-level ones raise): their runs are excluded.
            "n_errors": sum(e["count"] for e in errors),
            "errors": errors,
            "subjects_not_validated": (index.validation or {}).get("ignored_subjects", []),
            # .bidsignore and validator version the verdicts hold for (validation_inputs).
            "inputs": inputs,
        },
        participants=participants_mismatch(root, index.subjects),
        cache={"subjects_reused": index.reused, "subjects_indexed": index.rescanned},
        # Subject folders that gave no row (anat/ only): said, never an error.
        n_subjects_without_runs=len(no_runs),
        subjects_without_runs=no_runs,
    )
    return Ingested(manifest=manifest, summary=summary, index=index)


def _ingest_files(
    dataset: str,
    entry: str,
    path: Path,
    task: str,
    selection: Selection | None,
    repetition_time: float | None,
    parcellation: tuple[str, str | None] | None,
    keys: dict[str, str],
    space: str | None = None,
) -> Ingested:
    """:func:`ingest_dataset` for runs brought as plain files (no BIDS index, no cache); ``space``
    keeps one space's runs (:func:`lcm.bids.selection.keep_space`)."""
    rows = index_files(dataset, entry, path, task=task, repetition_time=repetition_time, names=keys)
    selection = selection or Selection()
    frame = manifest_frame(rows)
    subjects = [f"sub-{s}" for s in frame["subject"].astype(str).unique() if s]
    selection.check_matches(frame, subjects, keys["select"])
    manifest = selection.apply(frame, keys["select"])
    if space is not None:
        manifest = keep_space(manifest, space, keys["space"], str(path))
    if parcellation is not None:
        manifest = select_parcellation(manifest, *parcellation)
    manifest = exclude_space_duplicates(
        manifest, hint=space_hint(keys["select"], _space_keeper(entry, keys))
    )
    folder = path if path.is_dir() else path.parent
    _log_exclusions(dataset, manifest, path, task, keys)
    subjects = sorted({f"sub-{s}" for s in manifest["subject"] if s})
    summary = build_summary(
        manifest,
        dataset=dataset,
        entry=entry,
        root=str(path),
        task=task,
        space=space,
        repetition_time=repetition_time,
        selection=selection.to_dict(),
        validator={
            "ran": False,
            "schema_version": "",
            "n_warnings": 0,
            "n_downgraded": 0,
            "warnings": [],
            "n_errors": 0,
            "errors": [],
            "subjects_not_validated": [],
        },
        participants=participants_mismatch(folder, subjects),
        cache={"subjects_reused": 0, "subjects_indexed": len(subjects)},
        # Runs listed file by file: no subject folder can hold none.
        n_subjects_without_runs=0,
        subjects_without_runs=[],
    )
    index = IndexResult(rows=pd.DataFrame(rows), stats=pa.table({}), subjects=subjects)
    return Ingested(manifest=manifest, summary=summary, index=index)


def ingest(
    dataset: str,
    entry: str,
    path: str | Path,
    out: str | Path,
    derivatives: str | Path | None = None,
    task: str = "rest",
    space: str | None = None,
    selection: Selection | None = None,
    validate: bool = True,
    use_cache: bool = True,
    repetition_time: float | None = None,
    atlas: str | None = None,
    seg: str | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Build the manifest and write it with its JSON sidecar, summary and cache.

    Written next to ``out``: ``<out>.json`` (provenance sidecar), ``summary.json`` and
    ``summary.tsv`` (see :mod:`lcm.bids.summary`), and the cache folder ``<out>.cache``.
    For fMRIPrep derivatives, ``summary.json``'s ``fmriprep_versions`` says which fMRIPrep
    version made each included subject, and a mix of versions is warned of
    (:func:`lcm.bids.fmriprep_version.fmriprep_versions`); null for other entries.
    The sidecar's ``Sources`` is the dataset's ``dataset_description.json`` (hashing every
    BOLD file would cost more than indexing), or the listing TSV of a file-entry dataset; the
    run counts and arguments are recorded. File-entry datasets keep no cache. ``atlas`` and
    ``seg``: see :func:`ingest_dataset`.

    Parameters
    ----------
    dataset : str
        Dataset name (alphanumeric).
    entry : str
        The dataset's entry (:mod:`lcm.entries`).
    path : str or Path
        The dataset's root, listing or folder, as for :func:`ingest_dataset`.
    out : str or Path
        The manifest (Parquet) to write; the sidecar, summary and cache go beside it.
    derivatives : str or Path, optional
        fMRIPrep derivatives root when ``path`` is the raw dataset (entry ``fmriprep``).
    task : str, default "rest"
        Task label of the runs to index.
    space : str, optional
        Output space of preprocessed runs (:func:`ingest_dataset`).
    selection : Selection, optional
        Runs to keep; others are excluded as ``not_selected``.
    validate : bool, default True
        Run the BIDS validator on a raw dataset.
    use_cache : bool, default True
        Read and update the index cache ``<out>.cache`` (BIDS trees only).
    repetition_time : float, optional
        TR (seconds) of runs whose sidecar gives none (ROI time series).
    atlas : str, optional
        The configured atlas; files of other parcellations are excluded.
    seg : str, optional
        The files' ``seg-`` label of that atlas, when it differs from ``atlas``.
    names : mapping of str to str, optional
        How the user gave the dataset's settings (:func:`lcm.bids.dataset.setting_names`):
        the verb's options on the command line; by default the config's keys.

    Returns
    -------
    pandas.DataFrame
        The manifest written.

    Raises
    ------
    ConfigError
        A ``summary.json``/``.tsv`` beside ``out`` that no ingest wrote
        (:func:`lcm.bids.summary.check_summary_files_own`), ``out`` inside the raw dataset
        (:func:`check_out_outside_dataset`), or as :func:`ingest_dataset`.
    BIDSError
        As :func:`ingest_dataset`.
    """
    check_summary_files_own(out, dataset)  # a user's or another dataset's: refused first
    check_out_outside_dataset(entry, index_root(entry, path, derivatives), out)
    files = uses_file_index(entry, path)
    cache_dir = cache_dir_for(out) if use_cache and not files else None
    result = ingest_dataset(
        dataset,
        entry,
        path,
        derivatives,
        task,
        space,
        selection,
        validate,
        cache_dir,
        repetition_time=repetition_time,
        atlas=atlas,
        seg=seg,
        names=names,
    )
    df = result.manifest
    # fMRIPrep derivatives: the version that made each included subject, a mix warned of
    # (here, not in ingest_dataset: the workflow plan calls that at every parse).
    kind = entry_type(entry)
    root = index_root(entry, path, derivatives)
    included = df.loc[df["included"], "subject"].astype(str).unique().tolist()
    result.summary["fmriprep_versions"] = (
        fmriprep_versions(root, included) if kind.voxel and not kind.raw and not files else None
    )
    if kind.raw and derivatives and not files:
        derivatives_without_raw(path, derivatives, result.summary["selection"])
    write_manifest(out, df)
    table = summary_table(df, dataset, result.summary["subjects_without_runs"])
    write_summary(out, result.summary, table)
    if cache_dir is not None and (result.index.changed or not cache_dir.is_dir()):
        save_cache(cache_dir, result.index)
    if files:
        sources = [root] if root.is_file() else []
    else:
        sources = [root / "dataset_description.json"]
    write_sidecar(
        out,
        sources,
        Dataset=dataset,
        Entry=entry,
        Root=str(root),
        Derivatives=str(derivatives) if derivatives else None,
        Task=task,
        Space=space,
        RepetitionTime=repetition_time,
        Atlas=atlas,
        Selection=result.summary["selection"],
        Validated=result.summary["validator"]["ran"],
        NumberOfRuns=len(df),
        NumberOfIncludedRuns=int(df["included"].sum()),
    )
    return df


def check_out_outside_dataset(entry: str, root: str | Path, out: str | Path) -> None:
    """Refuse a manifest that would be written inside the raw dataset it indexes, except under
    its ``derivatives/`` folder (where BIDS puts outputs and the validator looks at nothing).

    Elsewhere in the tree the manifest, its record, the summaries and the cache become files
    of the dataset: the BIDS validator refuses them (``NOT_INCLUDED``) and the next ingest
    stopped on LCM's own files.

    Parameters
    ----------
    entry : str
        The dataset's entry (:mod:`lcm.entries`); only raw entries are checked.
    root : str or Path
        The folder indexed (:func:`index_root`).
    out : str or Path
        The manifest to write (``--out``).

    Raises
    ------
    ConfigError
        ``out``'s folder is the dataset's root or below it, outside ``derivatives/``.
    """
    if not entry_type(entry).raw:
        return
    top = Path(root).resolve()
    folder = Path(out).absolute().parent.resolve()
    if folder != top and top not in folder.parents:
        return
    inside = folder.relative_to(top).parts
    if inside and inside[0] == "derivatives":
        return
    raise ConfigError(
        f"--out {out} is inside the raw dataset it indexes ({root}): the manifest, its "
        "summaries and cache would become files of the dataset, which the BIDS validator "
        "refuses the next time.",
        hint=f"Write the manifest outside the dataset, or under {Path(root) / 'derivatives'}.",
    )


def index_root(entry: str, path: str | Path, derivatives: str | Path | None) -> Path:
    """The folder (or listing) indexed: ``derivatives`` where the entry reads it, else ``path``.

    Parameters
    ----------
    entry : str
        The dataset's entry (:mod:`lcm.entries`).
    path : str or Path
        The dataset's configured path.
    derivatives : str or Path or None
        The derivatives root, read by entries with :attr:`lcm.entries.Entry.derivatives_root`.
    """
    if derivatives and entry_type(entry).derivatives_root:
        return Path(derivatives)
    return Path(path)


def _log_exclusions(
    dataset: str, df: pd.DataFrame, root: Path, task: str, keys: dict[str, str]
) -> None:
    n_in = int(df["included"].sum())
    # Files of other parcellations are expected beside the atlas's (XCP-D, ABIDE Preprocessed
    # ship several): one line per parcellation, not one warning per file.
    other = ~df["included"] & (df["reason_code"] == OTHER_ATLAS)
    for seg, rows in df.loc[other].groupby("seg", sort=True) if other.any() else []:
        log.log(
            logging.INFO if n_in else logging.WARNING,
            "%s: %d file(s) of parcellation seg-%s left out (%s)",
            dataset,
            len(rows),
            seg,
            rows["reason"].iloc[0],
        )
    excluded = df.loc[~df["included"] & ~df["reason_code"].isin([NOT_SELECTED, OTHER_ATLAS])]
    for row in excluded.head(MAX_LOGGED_EXCLUSIONS).itertuples():
        log.warning("%s: excluded %s: %s", dataset, Path(row.path).name, row.reason)
    if len(excluded) > MAX_LOGGED_EXCLUSIONS:
        log.warning(
            "%s: ... and %d more excluded run(s) (see the manifest and summary.tsv)",
            dataset,
            len(excluded) - MAX_LOGGED_EXCLUSIONS,
        )
    # Included on the sidecar's TR alone: the image may be a download in progress, or broken.
    prefix = f"{TR_NOT_CHECKED}: {UNREADABLE} "
    checks = df["tr_check"].fillna("").astype(str)
    unread = df.loc[df["included"] & checks.str.startswith(prefix)]
    if len(unread):
        shown = [
            f"{path} {check.removeprefix(prefix)}"
            for path, check in zip(unread["path"][:3], checks[unread.index][:3], strict=True)
        ]
        log.warning(
            "%s: %d included run(s) whose NIfTI header could not be read (TR and dimensions not "
            "checked; fMRIPrep will fail on a broken image): %s%s",
            dataset,
            len(unread),
            "; ".join(shown),
            " ..." if len(unread) > len(shown) else "",
        )
    elsewhere = df.loc[~df["included"] & (df["reason_code"] == NOT_IN_SPACE), "reason"]
    if n_in == 0 and len(elsewhere):
        # Every run is in other spaces: which ones, so that the fix is one setting away.
        spaces = elsewhere.map(spaces_found).explode().value_counts()
        log.warning(
            "%s: no run has preprocessed BOLD in the configured space; fMRIPrep's of %d run(s) "
            "are in %s. Set %s to one of these.",
            dataset,
            len(elsewhere),
            ", ".join(f"{space} ({n} run(s))" for space, n in spaces.items()),
            keys["space"],
        )
    elif n_in == 0:
        others = _tasks_present(root)
        log.warning(
            "%s: no usable run of task %r found under %s%s",
            dataset,
            task,
            root,
            f" (its files name the task(s) {', '.join(others)}: set {keys['task']})"
            if others and task not in others
            else "",
        )
    log.info("%s: %d run(s), %d included", dataset, len(df), n_in)


def _tasks_present(root: Path, limit: int = 20000) -> list[str]:
    """The ``task-`` labels of files under ``root``'s subject folders (at most ``limit`` files
    looked at): named when no run of the configured task was found."""
    if not root.is_dir():
        return []
    found: set[str] = set()
    for i, path in enumerate(root.glob("sub-*/**/*_task-*")):
        if i >= limit:
            break
        label = parse_entities(path.name).get("task")
        if label:
            found.add(label)
    return sorted(found)


@fill_doc
def included_runs(
    dataset: str,
    entry: str,
    path: str | Path,
    task: str = "rest",
    space: str | None = None,
    selection: Selection | None = None,
    cache_dir: str | Path | None = None,
    with_path: bool = False,
    with_sources: bool = False,
) -> list[dict[str, str | None]]:
    """Included runs of a real dataset as ``{sub, ses, task, run}`` (``None`` when absent),
    plus any other acquisition entity the run's key holds (``acq``, ``ce``, ``rec``, ``dir``,
    ``echo``): runs told apart only by those (``dir-AP`` and ``dir-PA``) get outputs of their own.

    What the workflow plan lists at parse time, from the same index as the manifest (and its
    cache, read only), so that the DAG and the manifest agree but for the BIDS validator's
    verdicts: the validator runs in the ingest job, and its report exists only from then on, so
    the plan never applies it (applying a cached one made the first run plan jobs for a subject
    the validator excludes and later runs not, and the DAG changed between them). A run the
    validator excludes keeps its jobs: the fMRIPrep job records it as excluded at ingest, with
    the manifest's reason, and its connectome job writes that reason in the QC table
    (:func:`lcm.preprocess.subject_runs.runs_from_manifest`).
    ``with_path`` adds each run's ``run_key`` and source file ``path`` (for job resources);
    ``with_sources`` adds ``sources``, a digest of its subject folder's files (sizes and
    modification times, :func:`lcm.bids.index_cache.unit_digests`; ``""`` without a BIDS index),
    and ``changed``: whether they changed since ``cache_dir`` was written (False if unknown).

    Parameters
    ----------
    %(dataset)s
    entry : str
        The dataset's entry (:mod:`lcm.entries`).
    path : str or Path
        The dataset's root; ``[]`` until it holds a ``dataset_description.json``.
    task : str, default "rest"
        Task label of the runs.
    space : str, optional
        Output space of preprocessed runs (:func:`ingest_dataset`).
    selection : Selection, optional
        Runs to keep.
    cache_dir : str or Path, optional
        The ingest's index cache, read only.
    with_path : bool, default False
        Add each run's ``run_key`` and ``path``.
    with_sources : bool, default False
        Add each run's ``sources`` digest and ``changed`` flag.

    Returns
    -------
    list of dict
        One dict per included run, in manifest order.
    """
    if not (Path(path) / "dataset_description.json").is_file():
        return []  # not there yet: `lcm ingest` will say why
    ingested = ingest_dataset(
        dataset,
        entry,
        path,
        task=task,
        space=space,
        selection=selection,
        cache_dir=cache_dir,
    )
    manifest = ingested.manifest
    digests = unit_digests(ingested.index) if with_sources else {}
    changed = ingested.index.changed_units or set()
    columns = ["subject", "session", "task", "run", "run_key", "path"]
    keep = manifest.loc[manifest["included"], columns]
    runs = []
    for r in keep.itertuples(index=False):
        run = {"sub": r.subject, "ses": r.session or None, "task": r.task, "run": r.run or None}
        others = dict(part.split("-", 1) for part in str(r.run_key).split("_"))
        run.update({k: v for k, v in others.items() if k not in ("sub", "ses", "task", "run")})
        if with_path:
            run.update(run_key=r.run_key, path=str(r.path))
        if with_sources:
            run["sources"] = digests.get(f"sub-{r.subject}", "")
            run["changed"] = f"sub-{r.subject}" in changed
        runs.append(run)
    return runs
