"""Read the feature store into a :class:`~lcm.store.cohort.Cohort`.

The files are plain Parquet: pandas, DuckDB or pyarrow read them without this module (README).
A row is a whole run (``window`` = -1) or one window of a run (``window`` = 0, 1, ...); a
partition written before the ``window`` column existed reads as whole-run rows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lcm.exceptions import InputDataError
from lcm.store.catalogue import Catalogue
from lcm.store.cohort import Cohort
from lcm.store.layout import vec_to_matrix
from lcm.store.splits import downstream_test_keys
from lcm.store.writer import WHOLE_RUN, WINDOW, connectome_path, variables_path

log = logging.getLogger(__name__)


def read_runs(store: str | Path, atlas: str, datasets: list[str]) -> pd.DataFrame:
    """Identifier and QC columns of the runs of ``datasets`` (no connectomes read).

    Returns
    -------
    pandas.DataFrame
        ``dataset`` then the stored identifier, ``window`` and QC columns, one row per run
        (or window) in file order.
    """
    frames = []
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        names = [n for n in pq.read_schema(path).names if n != "connectome"]
        frame = with_window(pq.read_table(path, columns=names).to_pandas())
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_cohort(
    store: str | Path,
    atlas: str,
    datasets: list[str],
    catalogue: Catalogue,
    exclude: pd.DataFrame | None = None,
) -> Cohort:
    """Load the runs of ``datasets`` for ``atlas`` with their variables.

    Parameters
    ----------
    store : path-like
        Store root.
    atlas : str
    datasets : list of str
    catalogue : Catalogue
        Variables to return (columns absent from a dataset's partition come back missing).
    exclude : pandas.DataFrame, optional
        A splits table (:mod:`lcm.store.splits`) or any table with ``dataset`` and ``subject``:
        the runs of these subjects are left out. Pretraining passes the downstream splits here
        so that no downstream test subject reaches it.

    Returns
    -------
    Cohort
    """
    if not datasets:
        raise InputDataError(
            f"No dataset to load from the feature store {store}.",
            hint="Name at least one dataset (role: pretrain or a task's dataset).",
        )
    excluded = downstream_test_keys(exclude) if exclude is not None else set()
    ids, vecs, variables = [], [], []
    roi_names: list[str] | None = None
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        table = pq.read_table(path)
        names = json.loads(table.schema.metadata[b"lcm.roi_names"])
        if roi_names is None:
            roi_names = names
        elif names != roi_names:
            raise InputDataError(
                f"{path}: ROI names differ from the other datasets' for {atlas!r}.",
                hint="Re-run the store stage of every dataset with the same atlas.",
            )
        if excluded:
            keys = pc.binary_join_element_wise(dataset, table.column("subject"), "/")
            keep = pc.invert(pc.is_in(keys, value_set=pa.array(sorted(excluded))))
            n_drop = len(table) - pc.sum(keep).as_py()
            if n_drop:
                log.info("%s: left out %d run(s) of downstream test subjects", dataset, n_drop)
            table = table.filter(keep)
        vecs.append(connectome_values(table.column("connectome"), path))
        frame = with_window(table.drop(["connectome"]).to_pandas())
        frame.insert(0, "dataset", dataset)
        ids.append(frame)
        variables.append(_variables_for(store, dataset, frame, catalogue))
    assert roi_names is not None  # datasets is non-empty
    id_frame = pd.concat(ids, ignore_index=True)
    fc = vec_to_matrix(np.concatenate(vecs).astype(np.float32), len(roi_names), diagonal=1.0)
    var_frame = pd.concat(variables, ignore_index=True)
    log.info("loaded %d runs of %s (%d ROIs)", len(id_frame), datasets, len(roi_names))
    return Cohort(ids=id_frame, fc=fc, variables=var_frame, roi_names=roi_names, atlas=atlas)


def with_window(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an int32 ``window`` column: -1 (whole run) where the store has none.

    Stores of schema version <= 2 predate windows; their rows are whole runs.
    """
    if WINDOW not in frame:
        at = frame.columns.get_loc("site") + 1 if "site" in frame else len(frame.columns)
        frame.insert(at, WINDOW, np.full(len(frame), WHOLE_RUN, dtype=np.int32))
    return frame


def connectome_values(column: pa.ChunkedArray | pa.Array, source: str | Path) -> np.ndarray:
    """The stored upper triangles of a ``connectome`` column as a ``(n_runs, E)`` float32 array.

    Reads both layouts: fixed-size binary of little-endian float32 (schema version 2; a
    zero-copy view when the column is one chunk) and the fixed-size list of version 1.

    Parameters
    ----------
    column : pyarrow.ChunkedArray or pyarrow.Array
        The ``connectome`` column of a partition (or of one of its row groups).
    source : path-like
        The file it came from, named in errors.

    Returns
    -------
    numpy.ndarray
        Read-only when it is a view of the Arrow buffer.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if pa.types.is_fixed_size_binary(kind) and kind.byte_width % 4 == 0:
        e = kind.byte_width // 4
        data = column.buffers()[1]
        if data is None:  # an empty column has no data buffer
            return np.empty((0, e), dtype=np.float32)
        flat = np.frombuffer(data, dtype="<f4", count=len(column) * e, offset=column.offset * 4 * e)
        return flat.reshape(-1, e)
    if pa.types.is_fixed_size_list(kind) and pa.types.is_float32(kind.value_type):
        return column.flatten().to_numpy().reshape(-1, kind.list_size)
    raise InputDataError(
        f"{source}: column 'connectome' has type {kind}; expected fixed_size_binary of float32 "
        "(or the fixed-size float32 list of schema version 1).",
        hint="Rewrite the partition with `lcm store`.",
    )


def read_run_variables(
    store: str | Path, atlas: str, datasets: list[str], catalogue: Catalogue
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Identifiers and variables of every run, without reading a connectome.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        :func:`read_runs`, and the catalogue's variables per run, row for row (as in
        :attr:`~lcm.store.cohort.Cohort.variables`).
    """
    runs = read_runs(store, atlas, datasets)
    frames = [_variables_for(store, d, runs[runs["dataset"] == d], catalogue) for d in datasets]
    return runs, pd.concat(frames, ignore_index=True)


def _partition(store: str | Path, atlas: str, dataset: str) -> Path:
    path = connectome_path(store, atlas, dataset)
    if not path.is_file():
        raise InputDataError(
            f"Feature store has no connectomes for {dataset!r} with atlas {atlas!r}: {path}",
            hint="Run the store stage for this dataset (lcm store).",
        )
    return path


def _variables_for(
    store: str | Path, dataset: str, runs: pd.DataFrame, catalogue: Catalogue
) -> pd.DataFrame:
    path = variables_path(store, dataset)
    table = pq.read_table(path).to_pandas() if path.is_file() else pd.DataFrame({"subject": []})
    merged = runs[["subject"]].merge(table, on="subject", how="left")
    out = pd.DataFrame(index=merged.index)
    for name, var in catalogue.variables.items():
        if name in merged:
            col = merged[name]
            out[name] = (
                col.astype("float64")
                if var.is_numeric
                else col.astype(object).where(col.notna(), None)
            )
        else:
            out[name] = np.nan if var.is_numeric else None
    return out
