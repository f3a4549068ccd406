"""Index voxel-wise BOLD runs (raw BIDS or fMRIPrep derivatives) with pybids: a test reference.

The package indexes with :mod:`lcm.bids.fast_index` (pybids is far too slow on large cohorts);
tests/unit/bids/test_bids_fast_index.py checks that both give the same rows on small trees. Rows are
built and checked by :mod:`lcm.bids.rows`, as in the package, so a run gets the same verdict.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lcm.bids.fast_index import IndexSpec
from lcm.bids.manifest import exclude_duplicates
from lcm.bids.rows import (
    INVALID_LABEL,
    INVALID_NAME,
    base_row,
    check_bold_header,
    check_repetition_time,
    excluded,
    invalid_name_reason,
)
from lcm.bids.runs import run_ids_from_name
from lcm.exceptions import InputDataError
from lcm.io.bids_names import parse_entities

log = logging.getLogger(__name__)

_NIFTI_EXTENSIONS = [".nii", ".nii.gz"]


def index_bold_runs(
    dataset: str,
    root: str | Path,
    entry: str,
    task: str = "rest",
    space: str = "MNI152NLin2009cAsym",
) -> list[dict]:
    """Manifest rows of every BOLD run of ``task`` in a BIDS or fMRIPrep folder.

    Parameters
    ----------
    dataset : str
        Dataset name written in each row.
    root : path-like
        Raw BIDS root (``entry="bids"``) or fMRIPrep derivatives root (``entry="fmriprep"``).
    entry : {"bids", "fmriprep"}
        Raw runs (``*_bold.nii.gz``, indexed with BIDS validation) or preprocessed runs
        (``*_space-<space>[_res-*]_desc-preproc_bold.nii.gz``).
    task, space : str
        Task label of the runs to keep; output space of preprocessed runs.

    Returns
    -------
    list of dict
        One row per file (see ``lcm.bids.manifest.MANIFEST_COLUMNS``); unusable runs have
        ``included=False`` and a ``reason``.
    """
    from bids import BIDSLayout  # heavy import, only needed here

    root = Path(root)
    if entry == "bids":
        layout = BIDSLayout(root, validate=True)
        files = layout.get(task=task, suffix="bold", extension=_NIFTI_EXTENSIONS)
    elif entry == "fmriprep":
        layout = BIDSLayout(root, validate=False, is_derivative=True)
        files = layout.get(
            task=task, suffix="bold", desc="preproc", space=space, extension=_NIFTI_EXTENSIONS
        )
    else:
        raise ValueError(f"entry must be 'bids' or 'fmriprep', got {entry!r}")
    rows = [_bold_row(dataset, entry, Path(f.path), f.get_metadata()) for f in files]
    indexed = {Path(f.path).resolve() for f in files}
    rows += _unindexed_rows(dataset, entry, root, task, space, indexed)
    # The reason's wording is the entry's (compared as text, not re-derived here).
    rows = exclude_duplicates(rows, hint=IndexSpec(dataset, entry).duplicate_hint())
    log.info("%s: indexed %d %s run(s) under %s", dataset, len(rows), entry, root)
    return rows


def _bold_row(dataset: str, entry: str, path: Path, metadata: dict) -> dict:
    row = base_row(dataset, entry, path)
    try:
        ids = run_ids_from_name(path)
    except InputDataError as exc:
        return excluded(row, INVALID_LABEL, exc.one_line())
    row.update(
        subject=ids.subject, session=ids.session, task=ids.task, run=ids.run, run_key=ids.run_key
    )
    row = check_repetition_time(row, metadata)
    return check_bold_header(row) if row["included"] else row


def _unindexed_rows(
    dataset: str, entry: str, root: Path, task: str, space: str, indexed: set[Path]
) -> list[dict]:
    """Rows for BOLD files pybids skipped (invalid names), so none vanish silently."""
    rows = []
    for path in sorted(root.glob("sub-*/**/func/*_bold.nii*")):
        ents = parse_entities(path.name)
        if path.resolve() in indexed or ents.get("task") != task:
            continue
        if entry == "fmriprep" and (ents.get("space") != space or ents.get("desc") != "preproc"):
            continue
        row = base_row(dataset, entry, path)
        try:
            ids = run_ids_from_name(path)
        except InputDataError as exc:
            rows.append(excluded(row, INVALID_LABEL, exc.one_line()))
            continue
        # run_key stays "": a name the index refused cannot be trusted to identify a run.
        row.update(subject=ids.subject, session=ids.session, task=ids.task, run=ids.run)
        rows.append(excluded(row, INVALID_NAME, invalid_name_reason(path.name)))
    return rows
