"""Build and write the manifest of one dataset, whatever its entry level."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lcm.bids.index_bold import index_bold_runs
from lcm.bids.index_timeseries import index_roi_timeseries
from lcm.bids.manifest import manifest_frame, write_manifest
from lcm.exceptions import ConfigError
from lcm.io.bids_names import check_label
from lcm.io.provenance import write_sidecar

log = logging.getLogger(__name__)

ENTRIES = ("bids", "fmriprep", "roi_timeseries")
DEFAULT_SPACE = "MNI152NLin2009cAsym"


def build_manifest(
    dataset: str,
    entry: str,
    path: str | Path,
    derivatives: str | Path | None = None,
    task: str = "rest",
    space: str | None = None,
) -> pd.DataFrame:
    """Index a dataset into the manifest table.

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
        Ignored (recorded only) for the other entries.
    task : str
        Task label of the runs to index.
    space : str, optional
        Output space of preprocessed runs (default MNI152NLin2009cAsym); for ROI time
        series, ``None`` accepts any space.

    Returns
    -------
    pandas.DataFrame
        Columns ``lcm.bids.manifest.MANIFEST_COLUMNS``, one row per run.
    """
    check_label("dataset", dataset, source="--dataset")
    check_label("task", task, source="--task")
    if entry not in ENTRIES:
        raise ConfigError(
            f"--entry: expected one of {list(ENTRIES)}, received {entry!r}.",
            hint="Set datasets.<name>.entry in config.yaml.",
        )
    if entry == "roi_timeseries":
        rows = index_roi_timeseries(dataset, path, task=task, space=space)
    else:
        root = derivatives if entry == "fmriprep" and derivatives else path
        rows = index_bold_runs(dataset, root, entry, task=task, space=space or DEFAULT_SPACE)
    df = manifest_frame(rows)
    n_in = int(df["included"].sum())
    if n_in < len(df):
        for row in df.loc[~df["included"]].itertuples():
            log.warning("%s: excluded %s: %s", dataset, Path(row.path).name, row.reason)
    if n_in == 0:
        log.warning("%s: no usable run of task %r found under %s", dataset, task, path)
    log.info("%s: %d run(s), %d included", dataset, len(df), n_in)
    return df


def ingest(
    dataset: str,
    entry: str,
    path: str | Path,
    out: str | Path,
    derivatives: str | Path | None = None,
    task: str = "rest",
    space: str | None = None,
) -> pd.DataFrame:
    """Build the manifest (:func:`build_manifest`) and write it with its JSON sidecar.

    The sidecar's ``Sources`` is the dataset's ``dataset_description.json`` (hashing every
    BOLD file would cost more than indexing); the run counts and arguments are recorded.
    """
    df = build_manifest(dataset, entry, path, derivatives=derivatives, task=task, space=space)
    write_manifest(out, df)
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
        NumberOfRuns=len(df),
        NumberOfIncludedRuns=int(df["included"].sum()),
    )
    return df
