"""Index ROI time-series datasets (one TSV per run) by walking the folder tree."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from lcm.bids.dataset import read_dataset_description
from lcm.bids.manifest import exclude_duplicates
from lcm.bids.runs import run_ids_from_name
from lcm.bids.timing import sidecar_tr
from lcm.exceptions import InputDataError
from lcm.io.bids_names import parse_entities
from lcm.io.provenance import sidecar_path

log = logging.getLogger(__name__)

TIMESERIES_SUFFIX = "_stat-mean_timeseries.tsv"


def index_roi_timeseries(
    dataset: str, root: str | Path, task: str = "rest", space: str | None = None
) -> list[dict]:
    """Manifest rows of the ROI time-series TSVs under ``root``.

    Files are ``sub-<s>/[ses-<x>/]func/<run>_space-<S>_seg-<A>_stat-mean_timeseries.tsv`` with a
    JSON sidecar holding ``RepetitionTime``. A plain ``os.scandir`` walk is used: it is fast on
    thousands of subjects and needs no BIDS index.

    Parameters
    ----------
    dataset : str
        Dataset name written in each row.
    root : path-like
        Folder holding ``sub-*`` folders and ``dataset_description.json``.
    task : str
        Task label of the runs to keep.
    space : str, optional
        Keep only files of this ``space``; ``None`` keeps any.

    Returns
    -------
    list of dict
        One row per file; a second file for the same run is excluded as a duplicate.
    """
    root = Path(root)
    read_dataset_description(root)
    rows: list[dict] = []
    for path in _walk_timeseries(root):
        ents = parse_entities(path.name)
        if ents.get("task") != task or (space is not None and ents.get("space") != space):
            continue
        rows.append(_timeseries_row(dataset, path, ents))
    rows = exclude_duplicates(rows, hint="several spaces or atlases: pass --space to choose")
    log.info("%s: indexed %d ROI time-series file(s) under %s", dataset, len(rows), root)
    return rows


def _walk_timeseries(root: Path) -> Iterator[Path]:
    for sub in _dirs(root, "sub-"):
        func_dirs = [sub / "func", *(ses / "func" for ses in _dirs(sub, "ses-"))]
        for func in func_dirs:
            if not func.is_dir():
                continue
            with os.scandir(func) as it:
                for entry in it:
                    if entry.name.endswith(TIMESERIES_SUFFIX) and entry.is_file():
                        yield Path(entry.path)


def _dirs(parent: Path, prefix: str) -> list[Path]:
    with os.scandir(parent) as it:
        return [Path(e.path) for e in it if e.name.startswith(prefix) and e.is_dir()]


def _timeseries_row(dataset: str, path: Path, ents: dict[str, str]) -> dict:
    row = {
        "dataset": dataset, "subject": ents.get("sub", ""), "session": ents.get("ses", ""),
        "task": ents.get("task", ""), "run": ents.get("run", ""), "run_key": "",
        "entry": "roi_timeseries", "path": str(path), "t_r": None, "included": False,
        "reason": "",
    }  # fmt: skip
    try:
        ids = run_ids_from_name(path)
    except InputDataError as exc:
        return {**row, "reason": exc.message}
    row.update(
        subject=ids.subject, session=ids.session, task=ids.task, run=ids.run, run_key=ids.run_key
    )
    side = sidecar_path(path)
    if not side.is_file():
        return {**row, "reason": f"no JSON sidecar {side.name} (RepetitionTime needed)"}
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {**row, "reason": f"sidecar {side.name} is not valid JSON: {exc}"}
    if not isinstance(meta, dict):
        return {**row, "reason": f"sidecar {side.name} is not a JSON object"}
    t_r, reason = sidecar_tr(meta, path.name)
    return {**row, "t_r": t_r, "included": not reason, "reason": reason}
