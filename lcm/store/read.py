"""Read the feature store into a :class:`~lcm.store.cohort.Cohort`.

The files are plain Parquet: pandas, DuckDB or pyarrow read them without this module (README).
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
from lcm.store.writer import connectome_path, variables_path

log = logging.getLogger(__name__)


def read_runs(store: str | Path, atlas: str, datasets: list[str]) -> pd.DataFrame:
    """Identifier and QC columns of the runs of ``datasets`` (no connectomes read).

    Returns
    -------
    pandas.DataFrame
        ``dataset`` then the stored identifier and QC columns, one row per run in file order.
    """
    frames = []
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        names = [n for n in pq.read_schema(path).names if n != "connectome"]
        frame = pq.read_table(path, columns=names).to_pandas()
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
        n_e = table.schema.field("connectome").type.list_size
        flat = table.column("connectome").combine_chunks().flatten().to_numpy()
        vecs.append(flat.reshape(-1, n_e))
        frame = table.drop(["connectome"]).to_pandas()
        frame.insert(0, "dataset", dataset)
        ids.append(frame)
        variables.append(_variables_for(store, dataset, frame, catalogue))
    assert roi_names is not None  # datasets is non-empty
    id_frame = pd.concat(ids, ignore_index=True)
    fc = vec_to_matrix(np.concatenate(vecs).astype(np.float32), len(roi_names), diagonal=1.0)
    var_frame = pd.concat(variables, ignore_index=True)
    log.info("loaded %d runs of %s (%d ROIs)", len(id_frame), datasets, len(roi_names))
    return Cohort(ids=id_frame, fc=fc, variables=var_frame, roi_names=roi_names, atlas=atlas)


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
