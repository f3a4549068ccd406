"""The run manifest: one Parquet row per run, included or excluded with a reason."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lcm import reason_codes
from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path
from lcm.io.file_kind import not_a_file
from lcm.io.paths import ingest_manifest
from lcm.reason_codes import with_fix

MANIFEST_COLUMNS = (
    "dataset",
    "subject",
    "session",
    "task",
    "run",
    "acq",
    "dir",
    "echo",
    "part",
    "space",
    "seg",
    "run_key",
    "entry",
    "path",
    "t_r",
    "tr_check",
    "included",
    "reason_code",
    "reason",
)
# Columns a manifest must have to be read (manifests from before acq..tr_check still load).
REQUIRED_COLUMNS = (
    "dataset",
    "subject",
    "session",
    "task",
    "run",
    "run_key",
    "entry",
    "path",
    "t_r",
    "included",
    "reason",
)
# A run or echo index with zero padding (``run-01``), the digits kept from the first non-zero.
_PADDED_INDEX = re.compile(r"(^|_)(run|echo)-0*(\d)")
_STRING_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c not in ("t_r", "included"))


def manifest_frame(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Build the manifest table from row dicts (or a frame), with fixed columns and dtypes.

    String columns hold ``""`` (never missing) so that filters like ``session == ""`` work;
    ``t_r`` is float (NaN when unknown) and ``included`` bool. Other columns are dropped.

    Parameters
    ----------
    rows : list of dict or pandas.DataFrame
        Manifest rows (:func:`lcm.bids.rows.base_row` and its callers).

    Returns
    -------
    pandas.DataFrame
        :data:`MANIFEST_COLUMNS` only, sorted by subject, session, run key and path.
    """
    if isinstance(rows, pd.DataFrame):
        df = rows.reindex(columns=list(MANIFEST_COLUMNS))
    else:
        df = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for col in _STRING_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    df["t_r"] = pd.to_numeric(df["t_r"], errors="coerce").astype("float64")
    df["included"] = df["included"].fillna(False).astype(bool)
    return df.sort_values(["subject", "session", "run_key", "path"]).reset_index(drop=True)


def write_manifest(path: str | Path, df: pd.DataFrame) -> None:
    """Write the manifest as Parquet, atomically.

    Parameters
    ----------
    path : str or Path
        The manifest file to write (``ingest/<dataset>/manifest.parquet``).
    df : pandas.DataFrame
        The manifest (:func:`manifest_frame`).
    """
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _missing_hint(path: Path) -> str:
    """How to fix a manifest path that is not a file: the manifest inside a folder given for
    it, or ``lcm ingest`` to write one. A folder was answered "Create it with 'lcm ingest'"
    even when it held the manifest, which then was written again for nothing."""
    if not path.is_dir():
        return "Create it with 'lcm ingest ... --out'."
    # The workflow's name for it (lcm.io.paths), the one a folder of ingest outputs holds.
    inside = path / Path(ingest_manifest(".", path.name)).name
    if inside.is_file():
        return f"Pass the manifest inside it: {inside}"
    return (
        f"Pass the manifest file (the --out of 'lcm ingest'), not a folder; {path} holds no "
        f"{inside.name}: create it with 'lcm ingest ... --out'."
    )


def read_manifest(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` and check its columns.

    The one reader of the file: every verb and the workflow's plan read it here, so none
    refuses a manifest another accepts.

    Parameters
    ----------
    path : path-like
        The manifest.
    columns : sequence of str, optional
        Read these alone (names of :data:`MANIFEST_COLUMNS`); one the file lacks (not in
        :data:`REQUIRED_COLUMNS`: written before it existed) reads as ``""`` in every row.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputDataError
        If the file is missing, unreadable or lacks manifest columns.
    """
    path = Path(path)
    unknown = sorted(set(columns or ()) - set(MANIFEST_COLUMNS))
    if unknown:
        raise ValueError(f"not manifest columns: {unknown}")
    if not path.is_file():
        raise InputDataError(f"Manifest {not_a_file(path)}: {path}", hint=_missing_hint(path))
    try:
        names = pq.read_schema(path).names
        read = None if columns is None else [c for c in columns if c in names]
        df = pd.read_parquet(path, columns=read)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise InputDataError(
            f"Cannot read manifest {path}: {exc}",
            hint="It is damaged (cut short by a full disk or a copy): delete it and rerun the "
            "workflow, whose ingest job writes it again (or `lcm ingest ... --out` with it).",
        ) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputDataError(
            f"Manifest {path} lacks columns {missing}; expected {list(MANIFEST_COLUMNS)}.",
            hint="Regenerate it with 'lcm ingest'.",
        )
    if columns is None:
        return df
    # A column of a manifest written before it existed (all text columns): empty.
    return df.assign(**{c: "" for c in columns if c not in names})[list(columns)]


def _index_as_number(run_key: str) -> str:
    """``run_key`` with its run and echo indices unpadded: ``run-01`` and ``run-1`` are one run
    (pybids and fMRIPrep compare them as numbers)."""
    return _PADDED_INDEX.sub(r"\1\2-\3", run_key)


def exclude_duplicates(rows: list[dict], hint: str, by_space: bool = True) -> list[dict]:
    """Exclude every included row whose ``run_key`` an earlier row (by path) already holds, its
    run and echo indices compared as numbers (``run-01`` is ``run-1``, as in pybids).

    Rows of different parcellations (``seg`` entity: ``..._seg-Schaefer100_...`` beside
    ``..._seg-Gordon_...``) are not duplicates of each other: the connectome stage keeps the
    configured atlas's (:func:`lcm.bids.selection.select_parcellation`). Nor, with
    ``by_space``, are rows of different spaces: ``ingest.select.<dataset>.space.include``
    chooses among them, and :func:`exclude_space_duplicates` excludes what is left after it
    (marking one space a duplicate first could leave the space the selection keeps excluded).

    Parameters
    ----------
    rows : list of dict
        Manifest rows; modified copies are returned.
    hint : str
        How the user picks one file, appended to the reason.
    by_space : bool
        Tell rows apart by ``space`` too.
    """
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    out = []
    for row in sorted(rows, key=lambda r: r["path"]):
        row = dict(row)
        if row["included"]:
            key = (_index_as_number(row["run_key"]), str(row.get("seg") or ""))
            key += (str(row.get("space") or ""),) if by_space else ()
            if key in seen:
                row["included"] = False
                row["reason_code"] = reason_codes.DUPLICATE
                first, first_key = seen[key]
                same = (
                    ""
                    if first_key == row["run_key"]
                    else f", the same run as {first_key} (indices compare as numbers)"
                )
                row["reason"] = with_fix(
                    f"duplicate of {Path(first).name} for run {row['run_key']}{same}", hint
                )
            else:
                seen[key] = (row["path"], row["run_key"])
        out.append(row)
    return out


def exclude_space_duplicates(manifest: pd.DataFrame, hint: str) -> pd.DataFrame:
    """After the selection: a run still included in several spaces keeps its first file (by
    path), the others are duplicates with ``hint`` (see :func:`exclude_duplicates`).

    Parameters
    ----------
    manifest : pandas.DataFrame
        The manifest after the selection; returned unchanged without a ``space`` column.
    hint : str
        The fix written in each duplicate's reason.

    Returns
    -------
    pandas.DataFrame
        The manifest, the duplicates excluded.
    """
    if manifest.empty or "space" not in manifest:
        return manifest
    rows = exclude_duplicates(manifest.to_dict("records"), hint=hint, by_space=False)
    return manifest_frame(rows)
