"""Build and write the manifest of one dataset, whatever its entry level.

Order of work: dataset description -> fast index (cached per subject) -> BIDS validator (raw
datasets, rerun only when something changed) -> selection -> participants check -> manifest,
summary and cache written next to each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.bids.dataset import is_derivative, read_dataset_description
from lcm.bids.fast_index import DEFAULT_SPACE, IndexSpec
from lcm.bids.index_cache import IndexResult, cache_dir_for, index_dataset, save_cache
from lcm.bids.manifest import manifest_frame, write_manifest
from lcm.bids.selection import Selection
from lcm.bids.summary import (
    build_summary,
    participants_mismatch,
    summary_table,
    write_summary,
)
from lcm.bids.validator import validate_bids
from lcm.exceptions import BIDSError, ConfigError
from lcm.io.bids_names import check_label
from lcm.io.provenance import write_sidecar

log = logging.getLogger(__name__)

ENTRIES = ("bids", "fmriprep", "roi_timeseries")
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
) -> Ingested:
    """Index a dataset into its manifest and summary (nothing is written).

    Parameters
    ----------
    dataset : str
        Dataset name (alphanumeric).
    entry : {"bids", "fmriprep", "roi_timeseries"}
        Level at which the dataset enters the workflow.
    path : path-like
        Raw BIDS root, fMRIPrep derivatives root, or ROI time-series root.
    derivatives : path-like, optional
        For ``entry="fmriprep"``: the derivatives root when ``path`` is the raw dataset.
    task : str
        Task label of the runs to index.
    space : str, optional
        Output space of preprocessed runs (default MNI152NLin2009cAsym); for ROI time
        series, ``None`` accepts any space.
    selection : Selection, optional
        Runs to keep (others are excluded with reason code ``not_selected``).
    validate : bool
        Run the BIDS validator on a raw dataset (``entry="bids"``); its errors raise.
    cache_dir : path-like, optional
        Cache of an earlier run (read only here; see :mod:`lcm.bids.index_cache`).

    Raises
    ------
    BIDSError
        No ``dataset_description.json``, a derivative dataset given as raw, or validator
        errors.
    """
    check_label("dataset", dataset, source="--dataset")
    check_label("task", task, source="--task")
    if entry not in ENTRIES:
        raise ConfigError(
            f"--entry: expected one of {list(ENTRIES)}, received {entry!r}.",
            hint="Set datasets.<name>.entry in config.yaml.",
        )
    root = Path(derivatives) if entry == "fmriprep" and derivatives else Path(path)
    desc = read_dataset_description(root)
    if entry == "bids" and is_derivative(desc):
        raise BIDSError(
            f"{root} is a derivative dataset (DatasetType: derivative) but entry is 'bids'.",
            hint="Use entry: fmriprep for fMRIPrep outputs, or point path at the raw dataset.",
        )
    if entry == "fmriprep":
        space = space or DEFAULT_SPACE
    spec = IndexSpec(dataset=dataset, entry=entry, task=task, space=space)
    index = index_dataset(spec, root, cache_dir=cache_dir)
    validated = validate and entry == "bids"
    if validated and index.validation is None:
        index.validation = validate_bids(root).to_dict()
        index.changed = True  # the cache must now record the report
    elif not validated:
        index.validation = None
    selection = selection or Selection()
    manifest = selection.apply(manifest_frame(index.rows))
    _log_exclusions(dataset, manifest, root, task)
    warnings = (index.validation or {}).get("warnings", [])
    summary = build_summary(
        manifest,
        dataset=dataset,
        entry=entry,
        root=str(root),
        task=task,
        space=space,
        selection=selection.to_dict(),
        validator={
            "ran": validated,
            "schema_version": (index.validation or {}).get("version", ""),
            "n_warnings": sum(w["count"] for w in warnings),
            "warnings": warnings,
        },
        participants=participants_mismatch(root, index.subjects),
        cache={"subjects_reused": index.reused, "subjects_indexed": index.rescanned},
    )
    return Ingested(manifest=manifest, summary=summary, index=index)


def build_manifest(
    dataset: str,
    entry: str,
    path: str | Path,
    derivatives: str | Path | None = None,
    task: str = "rest",
    space: str | None = None,
    selection: Selection | None = None,
    validate: bool = False,
) -> pd.DataFrame:
    """The manifest table of :func:`ingest_dataset` (no cache, validator off by default).

    Returns
    -------
    pandas.DataFrame
        Columns ``lcm.bids.manifest.MANIFEST_COLUMNS``, one row per run.
    """
    return ingest_dataset(
        dataset, entry, path, derivatives, task, space, selection=selection, validate=validate
    ).manifest


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
) -> pd.DataFrame:
    """Build the manifest and write it with its JSON sidecar, summary and cache.

    Written next to ``out``: ``<out>.json`` (provenance sidecar), ``summary.json`` and
    ``summary.tsv`` (see :mod:`lcm.bids.summary`), and the cache folder ``<out>.cache``.
    The sidecar's ``Sources`` is the dataset's ``dataset_description.json`` (hashing every
    BOLD file would cost more than indexing); the run counts and arguments are recorded.
    """
    cache_dir = cache_dir_for(out) if use_cache else None
    result = ingest_dataset(
        dataset, entry, path, derivatives, task, space, selection, validate, cache_dir
    )
    df = result.manifest
    write_manifest(out, df)
    write_summary(out, result.summary, summary_table(df, dataset))
    if cache_dir is not None and (result.index.changed or not cache_dir.is_dir()):
        save_cache(cache_dir, result.index)
    root = Path(derivatives) if entry == "fmriprep" and derivatives else Path(path)
    write_sidecar(
        out,
        [root / "dataset_description.json"],
        Dataset=dataset,
        Entry=entry,
        Root=str(root),
        Derivatives=str(derivatives) if derivatives else None,
        Task=task,
        Space=space,
        Selection=result.summary["selection"],
        Validated=result.summary["validator"]["ran"],
        NumberOfRuns=len(df),
        NumberOfIncludedRuns=int(df["included"].sum()),
    )
    return df


def _log_exclusions(dataset: str, df: pd.DataFrame, root: Path, task: str) -> None:
    n_in = int(df["included"].sum())
    excluded = df.loc[~df["included"] & (df["reason_code"] != "not_selected")]
    for row in excluded.head(MAX_LOGGED_EXCLUSIONS).itertuples():
        log.warning("%s: excluded %s: %s", dataset, Path(row.path).name, row.reason)
    if len(excluded) > MAX_LOGGED_EXCLUSIONS:
        log.warning(
            "%s: ... and %d more excluded run(s) (see the manifest and summary.tsv)",
            dataset, len(excluded) - MAX_LOGGED_EXCLUSIONS,
        )  # fmt: skip
    if n_in == 0:
        log.warning("%s: no usable run of task %r found under %s", dataset, task, root)
    log.info("%s: %d run(s), %d included", dataset, len(df), n_in)


def included_runs(
    dataset: str,
    entry: str,
    path: str | Path,
    task: str = "rest",
    space: str | None = None,
    selection: Selection | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict[str, str | None]]:
    """Included runs of a real dataset as ``{sub, ses, task, run}`` (``None`` when absent).

    What the workflow plan lists at parse time, from the same index as the manifest (and its
    cache, read only), so that the DAG and the manifest agree. No validator run here.
    """
    if not (Path(path) / "dataset_description.json").is_file():
        return []  # not there yet: `lcm ingest` will say why
    manifest = ingest_dataset(
        dataset, entry, path, task=task, space=space, selection=selection, cache_dir=cache_dir
    ).manifest
    keep = manifest.loc[manifest["included"], ["subject", "session", "task", "run"]]
    return [
        {"sub": r.subject, "ses": r.session or None, "task": r.task, "run": r.run or None}
        for r in keep.itertuples(index=False)
    ]
