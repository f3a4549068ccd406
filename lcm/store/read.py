"""Read the feature store into a :class:`~lcm.store.cohort.Cohort`.

The files are plain Parquet: pandas, DuckDB or pyarrow read them without this module (README).
A row is a whole run (``window`` = -1) or one window of a run (``window`` = 0, 1, ...); a
partition written before the ``window`` column existed reads as whole-run rows.

Before reading a dataset, a commit left unfinished by a killed ``lcm store`` is completed
(:func:`lcm.store.commit.recover`); a connectome partition is read only with the variables it was
committed with (``lcm.variables_id``), and an unreadable file is a one-line
:class:`~lcm.exceptions.InputDataError` naming it, never an Arrow traceback. Every reader builds
its runs frame with :func:`ids_frame`: the volume counts come back as nullable ``Int32``
(``<NA>`` where unknown), never as float64.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lcm.catalogue import Catalogue, Variable
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.file_kind import not_a_folder
from lcm.io.paths import connectome_path, variables_path
from lcm.io.store_columns import COUNT_COLUMNS, COUNT_DTYPE
from lcm.store.cohort import Cohort, StreamedCohort
from lcm.store.commit import (
    COMMIT_KEY,
    VARIABLES_ID_KEY,
    MixedStoreError,
    recover,
    rerun_hint,
)
from lcm.store.layout import vec_to_matrix
from lcm.store.splits import downstream_test_keys
from lcm.store.writer import SCHEMA_VERSION, WHOLE_RUN, WINDOW

log = logging.getLogger(__name__)
T = TypeVar("T")
# Key-value metadata of one partition as read (bytes keys), with the file it came from.
Stamp = tuple[Path, dict[bytes, bytes]]


@fill_doc
def read_runs(store: str | Path, atlas: str, datasets: list[str]) -> pd.DataFrame:
    """Identifier and QC columns of the runs of ``datasets`` (no connectomes read).

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partitions.
    datasets : list of str
        Dataset names, in the order of the rows returned.

    Returns
    -------
    pandas.DataFrame
        ``dataset`` then the stored identifier, ``window`` and QC columns, one row per run
        (or window) in file order; the volume counts nullable ``Int32`` (:func:`ids_frame`).

    Raises
    ------
    InputDataError
        A partition missing or unreadable, or a connectome partition beside variables of
        another ``lcm store`` run (:class:`~lcm.store.commit.MixedStoreError`).
    """
    return read_runs_stamped(store, atlas, datasets)[0]


@fill_doc
def read_runs_stamped(
    store: str | Path, atlas: str, datasets: list[str]
) -> tuple[pd.DataFrame, dict[str, Stamp]]:
    """:func:`read_runs`, with each dataset's connectome file and the metadata read from it.

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partitions.
    datasets : list of str
        Dataset names, in the order of the rows returned.

    Returns
    -------
    runs : pandas.DataFrame
        As :func:`read_runs`.
    stamps : dict of str to Stamp
        Each dataset's connectome partition and the key-value metadata read from it.

    Raises
    ------
    InputDataError
        As :func:`read_runs`.
    """
    return _consistent(lambda: _read_runs(store, atlas, datasets), store, datasets)


def _read_runs(
    store: str | Path, atlas: str, datasets: list[str]
) -> tuple[pd.DataFrame, dict[str, Stamp]]:
    frames, stamps = [], {}
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        names = [n for n in read_schema(path, dataset).names if n != "connectome"]
        table = read_table(path, dataset, columns=names)
        meta = table.schema.metadata or {}
        check_variables(store, dataset, (path, meta))
        frame = ids_frame(table, path, dataset)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
        stamps[dataset] = (path, meta)
    return pd.concat(frames, ignore_index=True), stamps


def read_schema(path: str | Path, dataset: str) -> pa.Schema:
    """Arrow schema (with key-value metadata) of a store partition; one-line error if unreadable
    or written by a newer LCM (:func:`check_schema_version`).

    Parameters
    ----------
    path : path-like
        The partition file.
    dataset : str
        Its dataset, named in the error's rerun hint.

    Returns
    -------
    pyarrow.Schema

    Raises
    ------
    InputDataError
        The file is unreadable or of a newer schema version.
    """
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(path, dataset, exc) from None
    check_schema_version(schema.metadata, path)
    return schema


def read_table(path: str | Path, dataset: str, columns: list[str] | None = None) -> pa.Table:
    """Read a store partition; a truncated or corrupt file, or one written by a newer LCM
    (:func:`check_schema_version`), is a one-line InputDataError.

    Parameters
    ----------
    path : path-like
        The partition file.
    dataset : str
        Its dataset, named in the error's rerun hint.
    columns : list of str, optional
        The columns to read; None reads all.

    Returns
    -------
    pyarrow.Table
    """
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(path, dataset, exc) from None
    check_schema_version(table.schema.metadata, path)
    return table


def check_schema_version(meta: dict[bytes, bytes] | None, path: str | Path) -> None:
    """Refuse a partition whose ``lcm.schema_version`` is newer than this LCM writes.

    Every older version is read (:data:`lcm.store.writer.SCHEMA_VERSION` says how); a newer
    one may hold columns or encodings this code would misread silently, such as a changed
    connectome layout. A file without the key is left to the checks of what it lacks.

    Parameters
    ----------
    meta : dict of bytes, optional
        The partition's key-value metadata.
    path : path-like
        The partition, named in the error.

    Raises
    ------
    InputDataError
        The version is newer than :data:`~lcm.store.writer.SCHEMA_VERSION`, or not a number.
    """
    raw = (meta or {}).get(b"lcm.schema_version")
    if raw is None:
        return
    text = raw.decode(errors="replace")
    if not text.isdigit():
        raise InputDataError(
            f"{path}: store schema version {text!r} is not a number; not a partition LCM wrote.",
            hint="Rewrite the store with `lcm store` (or its workflow rule).",
        )
    if int(text) > int(SCHEMA_VERSION):
        raise InputDataError(
            f"{path}: written with store schema version {text}, newer than the {SCHEMA_VERSION} "
            "this LCM reads.",
            hint="Read it with the LCM version that wrote it (its provenance sidecar names it), "
            "or upgrade LCM here.",
        )


def unreadable(path: str | Path, dataset: str, exc: BaseException) -> InputDataError:
    """The error for a store file that Parquet cannot read (truncated, corrupt, not Parquet).

    Parameters
    ----------
    path : path-like
        The file.
    dataset : str
        Its dataset, whose rewrite the hint gives (:func:`~lcm.store.commit.rerun_hint`).
    exc : BaseException
        What reading raised; the first line of its message is quoted.

    Returns
    -------
    InputDataError
        To raise, ``from None``.
    """
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InputDataError(
        f"{path}: not a readable Parquet file of the feature store (truncated or corrupt: "
        f"{reason}).",
        hint=rerun_hint(dataset),
    )


@fill_doc
def check_variables(store: str | Path, dataset: str, connectomes: Stamp) -> None:
    """Refuse ``dataset``'s connectome partition beside variables it was not committed with.

    Parameters
    ----------
    %(store)s
    dataset : str
    connectomes : (pathlib.Path, dict)
        The connectome file and the key-value metadata read from it.

    Raises
    ------
    MixedStoreError
        The connectome partition names variables (``lcm.variables_id``) that the variables
        partition does not hold, or that partition is missing.
    """
    path = variables_path(store, dataset)
    meta = (read_schema(path, dataset).metadata or {}) if path.is_file() else None
    _check_pair(dataset, connectomes, (path, meta))


def _check_pair(dataset: str, connectomes: Stamp, variables: tuple[Path, dict | None]) -> None:
    (c_path, c_meta), (v_path, v_meta) = connectomes, variables
    want = c_meta.get(VARIABLES_ID_KEY.encode())
    if want is None:  # written before commit ids, or without `lcm store`: nothing to compare
        return
    commit = c_meta.get(COMMIT_KEY.encode(), b"?").decode()
    if v_meta is None:
        raise MixedStoreError(
            f"{c_path} (lcm store commit {commit}) was written with a variables partition, but "
            f"{v_path} is missing; dataset {dataset!r} is incomplete.",
            hint=rerun_hint(dataset),
        )
    have = v_meta.get(VARIABLES_ID_KEY.encode())
    if have != want:
        other = v_meta.get(COMMIT_KEY.encode(), b"none").decode()
        raise MixedStoreError(
            f"{c_path} (lcm store commit {commit}) and {v_path} (commit {other}) come from "
            f"different `lcm store` runs of dataset {dataset!r} (variables "
            f"{want.decode()[:12]} vs {(have or b'none').decode()[:12]}); refusing to mix them.",
            hint=rerun_hint(dataset, _atlas_of(c_path)),
        )


def _atlas_of(partition: Path) -> str | None:
    """The atlas of a connectome partition, from its ``atlas=<name>`` folder."""
    folder = partition.parent.parent.name
    return folder.split("=", 1)[1] if folder.startswith("atlas=") else None


def _consistent(read: Callable[[], T], store: str | Path, datasets: list[str]) -> T:
    """``read()``; on a mixed pair, finish any pending commit and read once more.

    A reader racing a live ``lcm store`` can read the new connectomes and then the old variables
    while the writer renames them: the second read sees the whole commit. A mix that persists
    is refused.
    """
    try:
        return read()
    except MixedStoreError:
        for dataset in datasets:
            recover(store, dataset)
        return read()


@fill_doc
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
    %(store)s
    atlas : str
    datasets : list of str
        The datasets; their runs come in the sorted order of their names, whatever the order
        given.
    catalogue : Catalogue
        Variables to return (columns absent from a dataset's partition, or that it does not map
        for the dataset, come back missing).
    exclude : pandas.DataFrame, optional
        A splits table (:mod:`lcm.store.splits`) or any table with ``dataset`` and ``subject``:
        the runs of these subjects are left out. Pretraining passes the downstream splits here
        so that no downstream test subject reaches it.

    Returns
    -------
    Cohort
    """
    cohort = _read_cohort(store, atlas, datasets, catalogue, exclude, connectomes=True)
    assert isinstance(cohort, Cohort)
    return cohort


@fill_doc
def cohort_size(store: str | Path, atlas: str, datasets: list[str]) -> tuple[int, int]:
    """``(runs, ROIs)`` of ``datasets`` for ``atlas``, from the partitions' footers alone.

    What loading them whole would hold, known before any connectome is read (downstream test
    subjects a load leaves out are counted).

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partitions.
    datasets : list of str
        Dataset names.

    Returns
    -------
    tuple of int
        The number of stored rows summed over ``datasets``, and the largest ROI count among them.

    Raises
    ------
    InputDataError
        A partition missing, unreadable or of a newer schema version, or without ROI names.
    """
    n_runs, n_rois = 0, 0
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowException, OSError) as exc:
            raise unreadable(path, dataset, exc) from None
        check_schema_version(meta.metadata, path)
        n_runs += meta.num_rows
        n_rois = max(n_rois, len(roi_names_of(meta.metadata, path, dataset)))
    return n_runs, n_rois


def load_streamed_cohort(
    store: str | Path,
    atlas: str,
    datasets: list[str],
    catalogue: Catalogue,
    exclude: pd.DataFrame | None = None,
) -> StreamedCohort:
    """:func:`load_cohort` without the connectomes, which stay in the store to be streamed.

    The runs and variables are those :func:`load_cohort` returns, row for row; the
    connectome column is not read (memory: the identifiers and variables only).

    Parameters
    ----------
    store, atlas, datasets, catalogue, exclude
        As :func:`load_cohort`.

    Returns
    -------
    StreamedCohort
    """
    cohort = _read_cohort(store, atlas, datasets, catalogue, exclude, connectomes=False)
    assert isinstance(cohort, StreamedCohort)
    cohort.exclude = exclude
    return cohort


def _read_cohort(
    store: str | Path,
    atlas: str,
    datasets: list[str],
    catalogue: Catalogue,
    exclude: pd.DataFrame | None,
    connectomes: bool,
) -> Cohort | StreamedCohort:
    """:func:`_load_cohort`, refusing no dataset and retrying a read that raced a writer."""
    if not datasets:
        raise InputDataError(
            f"No dataset to load from the feature store {store}.",
            hint="Name at least one dataset (role: pretrain or a task's dataset).",
        )
    twice = sorted({d for d in datasets if list(datasets).count(d) > 1})
    if twice:
        # Each run was loaded once per mention: pretraining trained on every run twice.
        raise InputDataError(
            f"Datasets {list(datasets)} name {twice} more than once: their runs would be "
            "loaded as many times.",
            hint="Name each dataset once (--datasets).",
        )
    excluded = downstream_test_keys(exclude) if exclude is not None else set()
    # One order whatever the order named: the cohort's rows (and so its fingerprint, its
    # shuffles and the pretraining they drive) do not depend on how --datasets lists them.
    # lcm bei-maps given the pretraining's datasets in another order was refused later by
    # lcm evaluate as "fitted on other data".
    datasets = sorted(datasets)
    return _consistent(
        lambda: _load_cohort(store, atlas, datasets, catalogue, excluded, connectomes),
        store,
        datasets,
    )


def _load_cohort(
    store: str | Path,
    atlas: str,
    datasets: list[str],
    catalogue: Catalogue,
    excluded: set[str],
    connectomes: bool,
) -> Cohort | StreamedCohort:
    ids, vecs, variables = [], [], []
    roi_names: list[str] | None = None
    for dataset in datasets:
        path = _partition(store, atlas, dataset)
        columns = None
        if not connectomes:
            columns = [n for n in read_schema(path, dataset).names if n != "connectome"]
        table = read_table(path, dataset, columns=columns)
        meta = table.schema.metadata or {}
        names = roi_names_of(meta, path, dataset)
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
        if connectomes:
            vecs.append(connectome_values(table.column("connectome"), path))
            table = table.drop(["connectome"])
        frame = ids_frame(table, path, dataset)
        frame.insert(0, "dataset", dataset)
        ids.append(frame)
        variables.append(_variables_for(store, dataset, frame, catalogue, (path, meta)))
    assert roi_names is not None  # datasets is non-empty
    id_frame = pd.concat(ids, ignore_index=True)
    var_frame = pd.concat(variables, ignore_index=True)
    if not connectomes:
        log.info(
            "read %d runs of %s (%d ROIs; connectomes streamed)",
            len(id_frame),
            datasets,
            len(roi_names),
        )
        return StreamedCohort(
            ids=id_frame,
            variables=var_frame,
            roi_names=roi_names,
            atlas=atlas,
            store=Path(store),
            datasets=list(datasets),
        )
    fc = vec_to_matrix(np.concatenate(vecs).astype(np.float32), len(roi_names), diagonal=1.0)
    log.info("loaded %d runs of %s (%d ROIs)", len(id_frame), datasets, len(roi_names))
    return Cohort(ids=id_frame, fc=fc, variables=var_frame, roi_names=roi_names, atlas=atlas)


@fill_doc
def read_connectomes(
    store: str | Path, atlas: str, dataset: str
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """One dataset's runs, their correlation matrices and ROI names, without its variables.

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partition.
    %(dataset)s

    Returns
    -------
    ids : pandas.DataFrame
        The stored identifier, ``window`` and QC columns, one row per run (or window).
    fc : numpy.ndarray, shape (n_runs, n_rois, n_rois), float32
        Pearson correlation matrices, diagonal 1.
    roi_names : list of str

    Raises
    ------
    InputDataError
        As :func:`read_runs`.
    """
    frame, vecs, names = read_connectome_triangles(store, atlas, dataset)
    return frame, vec_to_matrix(vecs, len(names), diagonal=1.0), names


@fill_doc
def read_connectome_triangles(
    store: str | Path, atlas: str, dataset: str
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """As :func:`read_connectomes`, the matrices as stored: upper triangles (diagonal
    excluded, ``(n_runs, R(R-1)/2)`` float32), about half the bytes and no dense copy.

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partition.
    %(dataset)s

    Returns
    -------
    ids : pandas.DataFrame
        As :func:`read_connectomes`.
    vecs : numpy.ndarray, shape (n_runs, R*(R-1)/2), float32
        Upper triangles (:func:`~lcm.store.layout.matrix_to_vec` order).
    roi_names : list of str

    Raises
    ------
    InputDataError
        As :func:`read_runs`.
    """
    path = _partition(store, atlas, dataset)  # a killed writer's commit finished first
    table = read_table(path, dataset)
    names = roi_names_of(table.schema.metadata, path, dataset)
    vecs = connectome_values(table.column("connectome"), path)
    frame = ids_frame(table.drop(["connectome"]), path, dataset)
    return frame, vecs.astype(np.float32, copy=False), names


def roi_names_of(meta: dict[bytes, bytes] | None, path: str | Path, dataset: str) -> list[str]:
    """ROI names from a connectome partition's metadata; one-line error when absent.

    Parameters
    ----------
    meta : dict of bytes to bytes or None
        The partition's Parquet key-value metadata.
    path : path-like
        The partition, named in the error.
    dataset : str
        Its dataset, named in the error's rerun hint.

    Returns
    -------
    list of str
        The ROI names in atlas order (``lcm.roi_names``).

    Raises
    ------
    InputDataError
        ``lcm.roi_names`` is absent or not JSON.
    """
    try:
        return json.loads((meta or {})[b"lcm.roi_names"])
    except (KeyError, ValueError):
        raise InputDataError(
            f"{path}: no ROI names (lcm.roi_names) in its metadata; not a connectome partition "
            "written by LCM.",
            hint=rerun_hint(dataset),
        ) from None


def ids_frame(table: pa.Table, path: str | Path, dataset: str) -> pd.DataFrame:
    """The identifier, ``window`` and QC columns of a partition as the readers give them.

    The volume counts are pandas' nullable :data:`~lcm.io.store_columns.COUNT_DTYPE`
    (``Int32``): integers, and ``<NA>`` where unknown (imported connectomes), whichever
    datasets are read together. ``to_pandas`` alone gives an int32 column with a null as
    float64 (100.0 and NaN); schema versions <= 4 stored float64 counts, read as integers too.
    ``window`` is added where the partition has none (:func:`with_window`).

    Parameters
    ----------
    table : pyarrow.Table
        The partition's columns, the connectome excepted.
    path : path-like
        The partition, named in the error.
    dataset : str
        Its dataset, whose rewrite the error's hint gives.

    Returns
    -------
    pandas.DataFrame
        One row per run (or window), in file order.

    Raises
    ------
    InputDataError
        A count is not a whole number >= 0 (a partition LCM did not write).
    """
    frame = table.to_pandas()
    for column in COUNT_COLUMNS:
        if column not in frame:
            continue
        counts = frame[column]
        if not pd.api.types.is_integer_dtype(counts):
            bad = counts.notna() & ((counts % 1 != 0) | (counts < 0))
            if bad.any():
                raise InputDataError(
                    f"{path}: column {column!r} must hold whole numbers >= 0 (or be missing); "
                    f"got {counts[bad].tolist()[:5]}.",
                    hint=rerun_hint(dataset),
                )
        frame[column] = counts.astype(COUNT_DTYPE)
    return with_window(frame)


def with_window(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an int32 ``window`` column: -1 (whole run) where the store has none.

    Stores of schema version <= 2 predate windows; their rows are whole runs.

    Parameters
    ----------
    frame : pandas.DataFrame
        Identifier and QC columns of a partition; changed in place when it lacks ``window``
        (inserted after ``site``, or last without one).

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself.
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


@fill_doc
def read_run_variables(
    store: str | Path, atlas: str, datasets: list[str], catalogue: Catalogue
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Identifiers and variables of every run, without reading a connectome.

    Parameters
    ----------
    %(store)s
    atlas : str
        Atlas name of the connectome partitions.
    datasets : list of str
        Dataset names, in the order of the rows returned.
    catalogue : Catalogue
        The variables to return, as for :func:`load_cohort`.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        :func:`read_runs`, and the catalogue's variables per run, row for row (as in
        :attr:`~lcm.store.cohort.Cohort.variables`).
    """

    def read() -> tuple[pd.DataFrame, pd.DataFrame]:
        runs, stamps = _read_runs(store, atlas, datasets)
        frames = [
            _variables_for(store, d, runs[runs["dataset"] == d], catalogue, stamps[d])
            for d in datasets
        ]
        return runs, pd.concat(frames, ignore_index=True)

    return _consistent(read, store, datasets)


def _partition(store: str | Path, atlas: str, dataset: str) -> Path:
    # A mistyped --store read as a store without the dataset ("run lcm store"), sending
    # users to rebuild a store that exists elsewhere: the root itself is named first.
    if not Path(store).is_dir():
        raise InputDataError(
            f"Feature store {not_a_folder(store)}: {store}",
            hint="Check the --store path (the folder `lcm store` wrote), or run `lcm store` "
            "first to build it.",
        )
    recover(store, dataset)  # a killed writer's commit, finished before reading
    path = connectome_path(store, atlas, dataset)
    if not path.is_file():
        raise InputDataError(
            f"Feature store has no connectomes for {dataset!r} with atlas {atlas!r}: {path}",
            hint="Run the store stage for this dataset (lcm store).",
        )
    return path


def _variables_for(
    store: str | Path,
    dataset: str,
    runs: pd.DataFrame,
    catalogue: Catalogue,
    connectomes: Stamp,
) -> pd.DataFrame:
    path = variables_path(store, dataset)
    written_with: dict = {}
    if path.is_file():
        stored = read_table(path, dataset)
        meta = stored.schema.metadata or {}
        _check_pair(dataset, connectomes, (path, meta))
        written_with = _stored_catalogue(meta, path, dataset)
        table = stored.to_pandas()
    else:
        _check_pair(dataset, connectomes, (path, None))
        table = pd.DataFrame({"subject": []})
    merged = runs[["subject"]].merge(table, on="subject", how="left")
    out = pd.DataFrame(index=merged.index)
    # A variable the given catalogue does not map for this dataset is not its data, whatever
    # a store written with another catalogue holds (a diagnosis dropped from a pretraining
    # dataset's coding was still pretrained on).
    coding = catalogue.datasets.get(dataset)
    for name, var in catalogue.variables.items():
        if name in merged and (coding is None or name in coding.columns):
            col = merged[name]
            check_stored_variable(
                var, written_with.get(name), table[name], path, dataset, catalogue
            )
            out[name] = (
                col.astype("float64")
                if var.is_numeric
                else col.astype(object).where(col.notna(), None)
            )
        else:
            out[name] = np.nan if var.is_numeric else None
    return out


def _stored_catalogue(meta: dict[bytes, bytes], path: Path, dataset: str) -> dict:
    """The variables a partition was written with (``lcm.catalogue``); {} when it has none."""
    raw = meta.get(b"lcm.catalogue")
    if raw is None:  # written without `lcm store`: its columns' types are all there is
        return {}
    try:
        stored = json.loads(raw)
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        raise InputDataError(
            f"{path}: its catalogue (lcm.catalogue in the Parquet metadata) is not a JSON "
            "mapping of variables.",
            hint=rerun_hint(dataset),
        )
    return stored


def check_stored_variable(
    var: Variable,
    stored: dict | None,
    column: pd.Series,
    path: Path,
    dataset: str,
    catalogue: Catalogue,
) -> None:
    """Refuse a stored variable that the given catalogue defines otherwise.

    The variables partition holds the catalogue it was written with (``lcm.catalogue``). A
    variable read with another kind, or with levels other than the stored ones, would be
    misread: a categorical column cast to numbers, or levels renamed in the catalogue that
    the stored values no longer name. Levels are compared as sets: their order is the
    catalogue's choice (the positive class of a binary variable), not the data's.

    Parameters
    ----------
    var : Variable
        The variable as the given catalogue defines it.
    stored : dict or None
        Its entry in the partition's ``lcm.catalogue`` (None when the partition has none:
        then the column's type alone is checked).
    column : pandas.Series
        The stored column.
    path : pathlib.Path
        The variables partition, named in the error.
    dataset : str
    catalogue : Catalogue
        The given catalogue (its path is named in the error).

    Raises
    ------
    InputDataError
        Stored and given kind, levels or units differ, or a stored value lies outside the
        given range: naming both and the fix.
    """
    if stored is None:
        numeric = pd.api.types.is_numeric_dtype(column) or column.isna().all()
        if var.is_numeric == numeric:
            return
        have = f"a {'numeric' if numeric else 'text'} column ({column.dtype})"
    else:
        same_kind = stored.get("kind") == var.kind
        same_levels = set(map(str, stored.get("levels") or [])) == set(var.levels)
        if same_kind and same_levels:
            _check_units_and_range(var, stored, column, path, dataset, catalogue)
            return
        have = f"kind {stored.get('kind')!r}, levels {list(stored.get('levels') or [])}"
    raise InputDataError(
        f"{path}: variable {var.name!r} of dataset {dataset!r} was stored as {have}; the "
        f"catalogue {catalogue.path or '(given)'} defines kind {var.kind!r}, levels "
        f"{list(var.levels)}.",
        hint=f"The store was written with another catalogue. {rerun_hint(dataset)} Pass "
        f"--catalogue {catalogue.path or '<this catalogue>'}, or read with the catalogue the "
        "store was written with.",
    )


def _check_units_and_range(
    var: Variable,
    stored: dict,
    column: pd.Series,
    path: Path,
    dataset: str,
    catalogue: Catalogue,
) -> None:
    """Refuse a numeric variable stored in other units, or with values outside the given
    catalogue's range: a catalogue of age in [5, 30] trained on stored ages 22-90, and the
    checkpoint recorded that range beside them (its catalogue checks then passed on it)."""
    if not var.is_numeric:
        return
    units = stored.get("units")
    if units is not None and str(units) != var.units:
        problem = f"was stored in units {units!r}; the catalogue gives {var.units!r}"
    elif var.range is not None:
        values = pd.to_numeric(column, errors="coerce")
        outside = values[(values < var.range[0]) | (values > var.range[1])]
        if outside.empty:
            return
        problem = (
            f"has {len(outside)} stored value(s) outside the catalogue's range "
            f"[{var.range[0]:g}, {var.range[1]:g}] (e.g. {outside.iloc[0]:g}; stored with range "
            f"{stored.get('range')})"
        )
    else:
        return
    raise InputDataError(
        f"{path}: variable {var.name!r} of dataset {dataset!r} {problem}.",
        hint=f"The store was written with another catalogue. {rerun_hint(dataset)} Pass "
        f"--catalogue {catalogue.path or '<this catalogue>'}, or read with the catalogue the "
        "store was written with.",
    )
