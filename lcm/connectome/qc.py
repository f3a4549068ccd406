"""Per-run QC records (one JSON per voxel run) and the QC table that gathers them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.bids.runs import RunIds
from lcm.exceptions import InputDataError
from lcm.io.atomic import write_tsv

QC_COLUMNS = (
    "dataset", "subject", "session", "task", "run", "run_key", "included", "reason",
    "n_volumes", "n_volumes_kept", "mean_fd", "t_r", "n_rois", "timeseries", "relmat",
    "empty_rois",
)  # fmt: skip
# empty_rois is a list in QC.json and a comma-separated string in QC.tsv.
_LIST_SEPARATOR = ","


def new_qc(dataset: str, ids: RunIds | None = None, **values: Any) -> dict[str, Any]:
    """A QC record with every column, unknown numbers ``None`` and paths ``""``."""
    record: dict[str, Any] = {
        "dataset": dataset, "subject": "", "session": "", "task": "", "run": "",
        "run_key": "", "included": False, "reason": "", "n_volumes": None,
        "n_volumes_kept": None, "mean_fd": None, "t_r": None, "n_rois": None,
        "timeseries": "", "relmat": "", "empty_rois": [],
    }  # fmt: skip
    if ids is not None:
        record.update(
            subject=ids.subject, session=ids.session, task=ids.task, run=ids.run,
            run_key=ids.run_key,
        )  # fmt: skip
    record.update(values)
    return record


def qc_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """QC records as a table with the ``QC_COLUMNS`` order."""
    rows = []
    for rec in records:
        row = {col: rec.get(col) for col in QC_COLUMNS}
        empty = row["empty_rois"] or []
        row["empty_rois"] = _LIST_SEPARATOR.join(empty) if isinstance(empty, list) else empty
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(QC_COLUMNS))
    df["included"] = df["included"].fillna(False).astype(bool)
    return df


def read_qc_json(path: str | Path) -> dict[str, Any]:
    """Read one per-run QC JSON.

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
    missing = [c for c in QC_COLUMNS if c != "empty_rois" and c not in record]
    if missing:
        raise InputDataError(
            f"QC record {path} lacks keys {missing}.", hint="Rerun 'lcm connectome run'."
        )
    return record


def collect_qc(paths: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Gather per-run QC JSONs into one TSV (``n/a`` for unknown values), atomically."""
    df = qc_frame([read_qc_json(p) for p in paths])
    write_tsv(out, df)
    return df


_ID_COLUMNS = ("dataset", "subject", "session", "task", "run", "run_key", "reason", "timeseries",
               "relmat", "empty_rois")  # fmt: skip


def read_qc_table(path: str | Path) -> pd.DataFrame:
    """Read a QC TSV with identifiers as strings (``"01"`` stays ``"01"``), ``n/a`` as NaN.

    Raises
    ------
    InputDataError
        If the file is missing or lacks QC columns.
    """
    path = Path(path)
    try:
        df = pd.read_csv(
            path, sep="\t", dtype={c: str for c in _ID_COLUMNS}, na_values=["n/a"],
            keep_default_na=False,
        )  # fmt: skip
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"Cannot read QC table {path}: {exc}") from exc
    missing = [c for c in QC_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(
            f"QC table {path} lacks columns {missing}.", hint="Rerun 'lcm connectome'."
        )
    for col in _ID_COLUMNS:
        df[col] = df[col].fillna("")
    df["included"] = df["included"].astype(str).str.lower().eq("true")
    return df
