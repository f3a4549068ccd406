"""Write one dataset's partitions of the Parquet feature store.

Layout (hive partitioning; partition columns live in folder names, not in the files)::

    <store>/connectomes/atlas=<atlas>/dataset=<dataset>/part-0.parquet   one row per run (or window)
    <store>/variables/dataset=<dataset>/part-0.parquet                  one row per participant
    <store>/reports/missingness_dataset-<dataset>.tsv

Adding a dataset rewrites only its own partitions. ``lcm store`` writes them inside one
:class:`~lcm.store.commit.DatasetCommit` (staged, then renamed together under the dataset's lock;
see :mod:`lcm.store.commit`); called without one, each writer replaces its file atomically.
Schema version, atlas, ROI names and their hash (``lcm.atlas_identity``,
:func:`lcm.store.layout.labels_identity`), catalogue and provenance sit in the Parquet
key-value metadata.

Windows: when the connectome stage wrote windowed matrices for a run (``connectome.window``,
QC column ``window_relmats``), each window is one row, ``window`` = 0, 1, ... beside the run's
identifiers and QC values; a whole-run row has ``window`` = -1 (windowing off, or a run shorter
than one window). A partition written before the column existed (schema version <= 2) reads
as whole-run rows (:mod:`lcm.store.read`).

Empty ROIs: a parcel covered less than ``atlas.min_coverage`` has an all-zero signal, and
its edges are stored as 0, which nothing in the connectome tells from r = 0. ``n_empty_rois``
(int32) and ``empty_rois`` (list of ROI names) say which (schema version 4; partitions of
earlier versions have neither column).

How the connectomes were made: ``lcm.connectome_settings`` (:data:`SETTINGS_KEY`, schema
version 5) holds the settings the connectome stage recorded in each stored matrix's sidecar
(denoising, connectome kinds and windows, space; :func:`matrix_settings`), one entry per
distinct set with the number of rows made with it, so that a store file alone answers "which
strategy, filters and thresholds?". ``n_volumes`` and ``n_volumes_kept`` are int32 from version
5 on (float64 before; missing where unknown, as for imported connectomes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lcm.catalogue import Catalogue
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path, write_tsv
from lcm.io.derivatives import exclusion_reasons, included_mask, list_cell
from lcm.io.paths import (
    connectome_path,
    log_file,
    missingness_path,
    qc_table,
    stored_connectomes,
    variables_path,
    window_index,
)
from lcm.io.provenance import environment, provenance_path
from lcm.io.qc_table import DATASET
from lcm.io.relmat import read_relmat
from lcm.io.store_columns import (
    CONNECTOME,
    COUNT_COLUMNS,
    EMPTY_ROIS,
    ID_COLUMNS,
    N_EMPTY_ROIS,
    STORE_QC_COLUMNS,
    VARIABLES_KEYS,
    WHOLE_RUN,
    WINDOW,
)
from lcm.store.commit import VARIABLES_ID_KEY, DatasetCommit
from lcm.store.layout import labels_identity, matrix_to_vec, n_edges

log = logging.getLogger(__name__)

# 5: ``n_volumes`` and ``n_volumes_kept`` int32 (float64 before), ``lcm.connectome_settings`` in
# the metadata. 4: ``n_empty_rois`` (int32) and ``empty_rois`` (list of ROI names) columns. 3: an
# int32 ``window`` column (-1: the whole run). 2: ``connectome`` is a fixed-size binary of
# little-endian float32 (1: a fixed-size list). Readers read every version (the columns a
# version lacks are absent from its rows, ``window`` read as -1; the counts of every version,
# float64 in <= 4, read as nullable Int32: lcm.store.read.ids_frame).
SCHEMA_VERSION = "5"
# Key-value metadata of a connectome partition: how its rows were made (a JSON array).
SETTINGS_KEY = "lcm.connectome_settings"
# The fields of a stored matrix's sidecar that say how it was made, as the connectome stage
# writes them (lcm.connectome.voxel_run, roi_runs, matrices; an imported matrix's sidecar has
# ``ImportedFrom`` instead), and their names in SETTINGS_KEY's entries.
SETTINGS_FIELDS = {
    "Denoise": "denoise",
    "Connectome": "connectome",
    "Space": "space",
    "EmptyROIPolicy": "empty_roi_policy",
}
# An entry's ``origin``: LCM computed the matrix from time series (voxel or ROI), checked and
# rewrote a matrix the user brought, or no sidecar said.
COMPUTED, IMPORTED, UNRECORDED = "computed", "imported", "unrecorded"
# The column names (ID_COLUMNS, WINDOW, STORE_QC_COLUMNS, ...) live in lcm.io.store_columns,
# where the catalogue, a layer below the store, reads them to refuse variables named like a column.
# Row groups of ~32 MiB: reads large enough for full disk speed, while a streaming reader holds
# about twice that per group in flight (the file bytes and the decoded column).
ROW_GROUP_BYTES = 32 << 20
LAYOUT = (
    "strict upper triangle (numpy.triu_indices(R, k=1)) of Pearson r, little-endian float32, "
    "as fixed-size binary (numpy.frombuffer(value, '<f4'))"
)


def connectome_schema(n_rois: int) -> pa.Schema:
    """Arrow schema of a connectome partition for ``n_rois`` regions.

    Identifiers are strings, ``window`` an int32 (-1: whole run), the volume counts
    ``n_volumes`` and ``n_volumes_kept`` int32, the other QC columns float64,
    ``n_empty_rois`` an int32 and ``empty_rois`` a list of strings (the ROIs stored as 0
    because the run left them empty), and ``connectome`` a non-nullable fixed-size
    binary holding the ``R * (R - 1) / 2`` little-endian float32 of the upper triangle. Parquet
    stores it as one ``FIXED_LEN_BYTE_ARRAY`` value per run, which decodes at memory speed; a
    fixed-size list (schema version 1) carries one repetition level per edge and decoded about
    eight times slower (benchmarks/store.py).

    Parameters
    ----------
    n_rois : int
        Number of regions ``R``.

    Returns
    -------
    pyarrow.Schema
        Without key-value metadata.
    """
    return pa.schema(
        [pa.field(k, pa.string(), nullable=False) for k in ID_COLUMNS]
        + [pa.field(WINDOW, pa.int32(), nullable=False)]
        + [pa.field(k, _qc_type(k)) for k in STORE_QC_COLUMNS]
        + [
            pa.field(N_EMPTY_ROIS, pa.int32(), nullable=False),
            pa.field(EMPTY_ROIS, pa.list_(pa.string()), nullable=False),
        ]
        + [pa.field(CONNECTOME, pa.binary(4 * n_edges(n_rois)), nullable=False)]
    )


def _qc_type(column: str) -> pa.DataType:
    return pa.int32() if column in COUNT_COLUMNS else pa.float64()


def row_group_rows(n_rois: int) -> int:
    """Rows per Parquet row group: about :data:`ROW_GROUP_BYTES` of connectomes, at least 16.

    Parameters
    ----------
    n_rois : int
        Number of regions.

    Returns
    -------
    int
    """
    return max(16, ROW_GROUP_BYTES // (4 * n_edges(n_rois)))


@fill_doc
def write_connectomes(
    store: str | Path,
    atlas: str,
    dataset: str,
    qc: pd.DataFrame,
    phenotype: pd.DataFrame,
    provenance: dict | None = None,
    commit: DatasetCommit | None = None,
    runs: pd.DataFrame | None = None,
) -> Path:
    """Write the connectome partition of ``dataset`` from its connectome-stage QC table.

    The relmat files are read one at a time while the partition is written, so memory does
    not grow with the number of runs. A run whose QC row lists windowed matrices
    (``window_relmats``) is stored as one row per window instead of its whole-run matrix
    (:func:`stored_rows`). Each matrix's sidecar says how it was made
    (:func:`matrix_settings`), recorded in the partition's ``lcm.connectome_settings``.

    Parameters
    ----------
    %(store)s
    atlas, dataset : str
    qc : pandas.DataFrame
        QC table of the connectome stage (one row per run; ``included``, ``relmat`` path,
        optional ``window_relmats``, ...).
    phenotype : pandas.DataFrame
        Output of :func:`lcm.store.phenotype.read_phenotype` (for the ``site`` column).
    provenance : dict, optional
        Extra key-value metadata (settings, config hash).
    commit : DatasetCommit, optional
        Stage the file in this commit (visible at its ``apply``) instead of replacing it now.
    runs : pandas.DataFrame, optional
        ``stored_rows(qc, dataset)``, when the caller has it already (``lcm store``).

    Returns
    -------
    pathlib.Path
        The file written (its final path).

    Raises
    ------
    InputDataError
        As :func:`write_connectome_arrays`; a matrix whose ROI names differ from the first
        one's, or whose sidecar is not a JSON object.
    """
    if runs is None:
        runs = stored_rows(qc, dataset)
    settings = [matrix_settings(path) for path in runs["matrix"]]
    _check_recorded_atlas(runs["matrix"], atlas, dataset)
    sites = dict(zip(phenotype["subject"], phenotype["site"], strict=True))
    runs = runs.assign(site=[str(sites.get(s, "")) for s in runs["subject"].astype(str)])
    roi_names, _ = _read_matrix(runs["matrix"].iloc[0])

    def vectors() -> Iterator[np.ndarray]:
        for path in runs["matrix"]:
            names, mat = _read_matrix(path)
            if names != roi_names:
                raise InputDataError(
                    f"{path}: ROI names differ from the dataset's other runs ({len(names)} vs "
                    f"{len(roi_names)} ROIs); one atlas per partition.",
                    hint="Re-run the connectome stage of this dataset with one atlas.",
                )
            yield matrix_to_vec(mat)[None].astype(np.float32)

    return write_connectome_arrays(
        store,
        atlas,
        dataset,
        runs,
        vectors(),
        roi_names,
        provenance=provenance,
        commit=commit,
        settings=settings,
    )


def _read_matrix(path: str | Path) -> tuple[list[str], np.ndarray]:
    """:func:`read_relmat`, a cell that is no number (an empty one) said as such: it stopped
    the store with an unexpected error."""
    try:
        return read_relmat(path)
    except ValueError as exc:
        raise InputDataError(
            f"{path}: a value of the matrix is not a number ({exc}).",
            hint="Rerun the connectome stage of this dataset: the connectome stage writes every "
            "cell (n/a where none), so this file was edited or cut short since.",
        ) from None


def matrix_settings(path: str | Path) -> dict:
    """How the stored matrix at ``path`` was made, from the sidecar the connectome stage wrote.

    Parameters
    ----------
    path : path-like
        A relmat of the connectome stage.

    Returns
    -------
    dict
        ``origin`` (``computed``, ``imported``, or ``unrecorded`` where the matrix has no
        sidecar) and the settings of :data:`SETTINGS_FIELDS` by their store names (``denoise``,
        ``connectome``, ``space``, ``empty_roi_policy``; ``None`` where the sidecar has none).

    Raises
    ------
    InputDataError
        The sidecar is not a JSON object (damaged).
    """
    record = _matrix_record(path)
    if record is None:
        return {"origin": UNRECORDED, **dict.fromkeys(SETTINGS_FIELDS.values())}
    if "ImportedFrom" in record:
        origin = IMPORTED
    elif "Denoise" in record:
        origin = COMPUTED
    else:
        origin = UNRECORDED
    return {"origin": origin, **{key: record.get(field) for field, key in SETTINGS_FIELDS.items()}}


def _matrix_record(path: str | Path) -> dict | None:
    """The sidecar the connectome stage wrote beside the matrix at ``path``; None without one.

    Raises :class:`InputDataError` when it is no JSON object (damaged).
    """
    sidecar = provenance_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict):
        raise InputDataError(
            f"{sidecar}: the sidecar of {Path(path).name} is not a JSON object; it should say "
            "how the matrix was made.",
            hint="Rerun the connectome stage of this dataset (it rewrites the matrix and its "
            "sidecar), or delete the damaged sidecar to store the matrix as unrecorded.",
        )
    return record


def _check_recorded_atlas(matrices: Iterable[str | Path], atlas: str, dataset: str) -> None:
    """Refuse matrices whose sidecars name another atlas than the partition's ``atlas``.

    ``lcm store --atlas schaefer100`` on AAL matrices stored 116 regions as Schaefer's, and a
    real Schaefer dataset stored next was refused as the odd one out.
    """
    for path in matrices:
        record = _matrix_record(path)
        made = record.get("Atlas") if record else None
        if made is not None and made != atlas:
            raise InputDataError(
                f"{path}: its sidecar says atlas {made!r}, but this partition is atlas {atlas!r} "
                f"(--atlas).",
                hint=f"Store dataset {dataset!r} with --atlas {made} (the QC table of atlas "
                f"{made}), or run its connectome stage with atlas {atlas!r} first.",
            )


def settings_entries(settings: Sequence[dict] | None, n_rows: int) -> list[dict]:
    """The ``lcm.connectome_settings`` entries of ``n_rows`` rows made with ``settings``.

    Parameters
    ----------
    settings : sequence of dict, optional
        One :func:`matrix_settings` per row; ``None``: every row unrecorded.
    n_rows : int

    Returns
    -------
    list of dict
        One entry per distinct set of settings, in the order of their first row: ``rows``
        (how many rows it made) then the settings.
    """
    if settings is None:
        settings = [{"origin": UNRECORDED, **dict.fromkeys(SETTINGS_FIELDS.values())}] * n_rows
    groups: dict[str, dict] = {}
    for made in settings:
        key = json.dumps(made, sort_keys=True, default=str)
        if key not in groups:
            groups[key] = {"rows": 0, **made}
        groups[key]["rows"] += 1
    return list(groups.values())


def dataset_rows(
    qc: pd.DataFrame, dataset: str, source: str | Path, atlas: str, *, rule: bool = False
) -> pd.DataFrame:
    """The rows of ``dataset`` in a QC table, refusing a table that holds none of its runs.

    A QC table of another dataset passed by mistake was stored under ``dataset``: its
    connectomes in the wrong partition, joined to the wrong phenotype. The connectome stage
    writes one table per dataset, but ``lcm connectome collect`` writes the QC records it is
    given into one table, of several datasets if given theirs (``lcm report`` reads such a
    table dataset by dataset): the rows of ``dataset`` are taken from it, the others' left.

    Parameters
    ----------
    qc : pandas.DataFrame
        The table as read (:func:`lcm.io.qc_table.read_qc_table`; column ``dataset``).
    dataset : str
        The dataset being stored (``--dataset``).
    source : path-like
        The table's file, named in the error and the log line.
    atlas : str
        The atlas stored: the error names the table the connectome stage writes for it.
    rule : bool, optional
        Under a workflow rule, which passes the dataset's own table: the fix is to put back
        the table the connectome stage wrote there, not another ``--dataset``.

    Returns
    -------
    pandas.DataFrame
        The rows whose ``dataset`` is ``dataset``; ``qc`` itself when it lists no run (then
        :func:`stored_rows` says why).

    Raises
    ------
    InputDataError
        ``qc`` lists runs, none of them of ``dataset``: naming the file, the datasets it
        holds, ``dataset`` and the table to pass.
    """
    if qc.empty:
        return qc
    values = qc[DATASET].astype(str)
    held = sorted(set(values))
    if dataset not in held:
        own = qc_table("<results_dir>", dataset, atlas)
        hint = (
            f"Put back the QC table the connectome stage wrote for {dataset!r} at {source}: "
            "move this file away and rerun the workflow, which writes it again."
            if rule
            else f"Pass the QC table of {dataset!r} (the connectome stage writes {own}), or "
            f"--dataset {held[0]} if this table is the one meant."
        )
        raise InputDataError(
            f"QC table {source} holds the runs of dataset(s) {held[:5]} (its {DATASET!r} "
            f"column), not of {'dataset' if rule else '--dataset'} {dataset!r}.",
            hint=hint,
        )
    if len(held) == 1:
        return qc
    mine = values == dataset
    log.info(
        "QC table %s holds datasets %s: storing the %d run(s) of %s, not the other %d",
        source,
        held[:5],
        int(mine.sum()),
        dataset,
        int((~mine).sum()),
    )
    return qc[mine].reset_index(drop=True)


def stored_rows(qc: pd.DataFrame, dataset: str, source: str | Path | None = None) -> pd.DataFrame:
    """The included runs of a QC table, one row per stored matrix.

    Parameters
    ----------
    qc : pandas.DataFrame
        Connectome-stage QC table (``included``, ``relmat``; optional ``window_relmats``, a
        comma-separated list as written in ``QC.tsv`` or a list, ``n_windows``, and
        ``reason_code``, ``reason``, ``run_key`` of the excluded runs).
    dataset : str
        Named in errors.
    source : path-like, optional
        The QC table's file, named in errors (the user reads every run's reason there).

    Returns
    -------
    pandas.DataFrame
        The QC columns of each included run, repeated once per window, with ``window``
        (the window's index in the run, that of its ``desc-win###`` file: windows left out for
        their degrees of freedom leave gaps; files named otherwise are numbered 0, 1, ...; -1
        for the whole run) and ``matrix`` (the file to store).

    Raises
    ------
    InputDataError
        No run listed (pointing at ingest), no included run (counting the runs per reason), or
        ``n_windows`` disagreeing with the files listed.
    """
    runs = qc[included_mask(qc["included"], f"QC table of {dataset!r}")].reset_index(drop=True)
    table = f"QC table {source}" if source else "connectome QC table"
    if qc.empty:
        # No run was ever found (not "all 0 excluded"): where to look is ingest, not this table.
        raise InputDataError(
            f"Dataset {dataset!r}: its {table} lists no run, nothing to store: ingest found no "
            "run of the dataset.",
            hint=f"The dataset's ingest log (the workflow's "
            f"{log_file('<results_dir>', f'ingest/{dataset}.log')}) says where it looked and "
            f"why it found none; fix datasets.{dataset}.path, entry or task, or the file names "
            "(config/README.md), and rerun.",
        )
    if runs.empty:
        why = exclusion_reasons(qc) if "reason" in qc.columns else "no reason recorded"
        raise InputDataError(
            f"Dataset {dataset!r}: no included run in its {table}, nothing to store; all "
            f"{len(qc)} run(s) excluded: {why}.",
            hint=f"The {table} gives every run's reason (columns reason_code, reason); the "
            "ingest manifest and summary.tsv those of runs ingest left out for their files. "
            "Fix the files or settings these name and rerun, or drop the dataset "
            f"{dataset!r} from the config's datasets.",
        )
    listed = runs["window_relmats"] if "window_relmats" in runs else pd.Series("", index=runs.index)
    counts = (
        pd.to_numeric(runs["n_windows"], errors="coerce")
        if "n_windows" in runs
        else pd.Series(np.nan, index=runs.index)
    )
    rows = []
    for i, run in runs.iterrows():
        files = list_cell(listed.iloc[i])
        if pd.notna(counts.iloc[i]) and int(counts.iloc[i]) != len(files):
            raise InputDataError(
                f"Dataset {dataset!r}: run {run.get('run_key', i)} has n_windows = "
                f"{int(counts.iloc[i])} but lists {len(files)} window_relmats in its QC table.",
                hint="Re-run the connectome stage of this dataset (its QC table is inconsistent).",
            )
        if files:
            indices = [window_index(f) for f in files]
            if None in indices or len(set(indices)) != len(indices):
                indices = list(range(len(files)))
            rows += [{**run, WINDOW: w, "matrix": f} for w, f in zip(indices, files, strict=True)]
        else:
            rows.append({**run, WINDOW: WHOLE_RUN, "matrix": run["relmat"]})
    return pd.DataFrame(rows)


@fill_doc
def write_connectome_arrays(
    store: str | Path,
    atlas: str,
    dataset: str,
    runs: pd.DataFrame,
    connectomes: np.ndarray | Iterable[np.ndarray],
    roi_names: list[str],
    provenance: dict | None = None,
    row_group_size: int | None = None,
    commit: DatasetCommit | None = None,
    settings: Sequence[dict] | None = None,
) -> Path:
    """Write (or replace) the connectome partition of ``dataset`` from arrays, atomically.

    Parameters
    ----------
    %(store)s
    atlas, dataset : str
        Partition keys.
    runs : pandas.DataFrame
        One row per run, in the order of ``connectomes``: ``subject`` (required), ``session``,
        ``task``, ``run``, ``run_key``, ``site`` (default ""), ``window`` (default -1, the
        whole run; 0, 1, ... for the windows of one run), the QC columns ``n_volumes``,
        ``n_volumes_kept`` (whole numbers), ``mean_fd``, ``t_r`` (default missing) and
        ``empty_rois`` (a list of ROI names, or comma-separated as in the QC table; default
        none).
    connectomes : numpy.ndarray or iterable of numpy.ndarray
        Upper triangles ``(n_runs, E)`` or matrices ``(n_runs, R, R)``; or blocks of either
        yielded in row order (a generator keeps memory bounded for any number of runs).
    roi_names : list of str
        The atlas's ROI names (``R``); stored in the metadata and checked against the partitions
        already stored for ``atlas``.
    provenance : dict, optional
        Extra key-value metadata (settings, config hash).
    row_group_size : int, optional
        Rows per row group (default :func:`row_group_rows`).
    commit : DatasetCommit, optional
        Stage the file in this commit (visible at its ``apply``, with the commit's identity in
        the metadata) instead of replacing it now.
    settings : sequence of dict, optional
        How each row was made (:func:`matrix_settings`), one per row of ``runs``; recorded,
        grouped, as ``lcm.connectome_settings``. Default: every row ``unrecorded``.

    Returns
    -------
    pathlib.Path
        The file written (its final path).

    Raises
    ------
    InputDataError
        Missing ``subject`` column, duplicate runs, a volume count that is no whole number,
        a block of the wrong shape, non-finite values, fewer or more connectomes than runs,
        ROIs that differ from the store's for ``atlas``, or an empty ROI that is not one of
        ``roi_names``.
    """
    n_rois = len(roi_names)
    runs = _run_table(runs, dataset, roi_names)
    if settings is not None and len(settings) != len(runs):
        raise ValueError(f"{len(settings)} settings for the {len(runs)} runs of {dataset!r}")
    _check_store_atlas(store, atlas, roi_names, dataset)
    schema = connectome_schema(n_rois).with_metadata(
        {
            "lcm.schema_version": SCHEMA_VERSION,
            "lcm.atlas": atlas,
            "lcm.dataset": dataset,
            "lcm.n_rois": str(n_rois),
            "lcm.roi_names": json.dumps(roi_names),
            "lcm.atlas_identity": labels_identity(roi_names),
            "lcm.layout": LAYOUT,
            SETTINGS_KEY: json.dumps(settings_entries(settings, len(runs)), default=str),
            "lcm.provenance": json.dumps(
                {**environment(), **_library_versions(), **(provenance or {})}, default=str
            ),
            **(commit.metadata() if commit is not None else {}),
        }
    )
    rg = row_group_size or row_group_rows(n_rois)
    blocks = [connectomes] if isinstance(connectomes, np.ndarray) else connectomes
    out = connectome_path(store, atlas, dataset)
    written = 0
    with _destination(out, commit) as tmp:
        writer = pq.ParquetWriter(
            tmp,
            schema,
            # Connectomes are noise-like floats: compression costs CPU and saves under 10 %;
            # PLAIN without dictionary or statistics keeps their pages a straight copy.
            compression={c: ("none" if c == CONNECTOME else "zstd") for c in schema.names},
            use_dictionary=[*ID_COLUMNS],
            write_statistics=[*ID_COLUMNS, WINDOW, *STORE_QC_COLUMNS, N_EMPTY_ROIS],
            column_encoding={CONNECTOME: "PLAIN"},
        )
        try:
            pending: list[pa.Array] = []
            n_pending = 0
            for block in blocks:
                vec = _as_vectors(block, n_rois, dataset, runs, written + n_pending)
                pending.append(_binary_array(vec))
                n_pending += len(vec)
                if written + n_pending > len(runs):
                    raise InputDataError(
                        f"Dataset {dataset!r}: more connectomes than the {len(runs)} runs listed.",
                        hint="Pass one row of `runs` per connectome, in the same order.",
                    )
                while n_pending >= rg:
                    written, pending, n_pending = _flush(writer, schema, runs, pending, written, rg)
            if written + n_pending != len(runs):
                raise InputDataError(
                    f"Dataset {dataset!r}: {written + n_pending} connectomes for {len(runs)} runs.",
                    hint="Pass one connectome per row of `runs`, in the same order.",
                )
            if n_pending:
                written, pending, n_pending = _flush(
                    writer, schema, runs, pending, written, n_pending
                )
        finally:
            writer.close()
    log.info("stored %d rows of %s (%d ROIs) in %s", written, dataset, n_rois, out)
    return out


def _run_table(
    runs: pd.DataFrame, dataset: str, roi_names: list[str] | None = None
) -> pd.DataFrame:
    """Identifier, QC and empty-ROI columns of ``runs`` with defaults filled, duplicates and
    empty ROIs not among ``roi_names`` refused."""
    if "subject" not in runs:
        raise InputDataError(
            f"Dataset {dataset!r}: the runs table has no 'subject' column "
            f"(has {list(runs.columns)[:12]}).",
            hint="Give one row per run with at least a 'subject' column.",
        )
    table = pd.DataFrame(index=runs.index)
    for key in ID_COLUMNS:
        col = runs[key] if key in runs else pd.Series("", index=runs.index)
        table[key] = col.astype(object).where(col.notna(), "").astype(str)
    if "run_key" not in runs:
        table["run_key"] = "sub-" + table["subject"] + "_run-" + table["run"]
    window = pd.to_numeric(runs[WINDOW], errors="coerce") if WINDOW in runs else None
    if window is not None:
        bad = window.isna() | (window < WHOLE_RUN) | (window % 1 != 0)
        if bad.any():
            raise InputDataError(
                f"Dataset {dataset!r}: column 'window' must hold integers >= -1; got "
                f"{runs[WINDOW][bad].tolist()[:5]}.",
                hint="Give -1 for a whole run and 0, 1, ... for the windows of a run.",
            )
    table[WINDOW] = WHOLE_RUN if window is None else window.astype(np.int32)
    for key in STORE_QC_COLUMNS:
        table[key] = pd.to_numeric(runs[key], errors="coerce") if key in runs else np.nan
    for key in COUNT_COLUMNS:
        counts = table[key]
        bad = counts.notna() & ((counts % 1 != 0) | (counts < 0))
        if bad.any():
            raise InputDataError(
                f"Dataset {dataset!r}: column {key!r} must hold whole numbers >= 0 (or be "
                f"missing); got {runs[key][bad].tolist()[:5]}.",
                hint="Give the run's volume counts as the connectome stage's QC table does.",
            )
        table[key] = counts.astype("Int32")
    cells = runs[EMPTY_ROIS] if EMPTY_ROIS in runs else pd.Series([[]] * len(runs))
    empty = [_empty_roi_names(v, roi_names) for v in cells]
    if roi_names is not None:
        known = set(roi_names)
        for i, names in enumerate(empty):
            if unknown := [n for n in names if n not in known]:
                raise InputDataError(
                    f"Dataset {dataset!r}: run {table['run_key'].iloc[i]} lists empty ROIs "
                    f"{unknown[:5]} that are not ROIs of its atlas ({len(roi_names)} ROIs).",
                    hint="Re-run the connectome stage of this dataset (its QC table names "
                    "ROIs of another atlas).",
                )
    table[EMPTY_ROIS] = pd.Series(empty, index=runs.index, dtype=object)
    table[N_EMPTY_ROIS] = np.array([len(e) for e in empty], dtype=np.int32)
    # run_key, not (session, task, run): runs told apart by acq-, dir-, rec-, ce- only (an
    # AP and a PA run of the same run number) are runs of their own.
    keys = ["subject", "run_key", WINDOW]
    dup = table.duplicated(keys)
    if dup.any():
        first = table.loc[dup, keys].iloc[0].to_dict()
        raise InputDataError(
            f"Dataset {dataset!r}: {int(dup.sum())} duplicate run(s) in the runs table, e.g. "
            f"{first}.",
            hint="Each (subject, run_key, window) may appear once; check the QC table.",
        )
    return table.reset_index(drop=True)


def _empty_roi_names(cell: object, roi_names: list[str] | None) -> list[str]:
    """The ROI names of a QC ``empty_rois`` cell: a list (QC JSON) or comma-separated text
    (QC TSV), where a name may hold a comma itself (Harvard-Oxford's ``Insular Cortex,
    anterior``): the pieces are joined back into the longest name of ``roi_names`` they make."""
    if isinstance(cell, list | tuple | np.ndarray):
        return [str(v) for v in cell if str(v)]
    pieces = list_cell(cell)
    if not pieces or not roi_names or not any("," in n for n in roi_names):
        return pieces
    text = ",".join(pieces)
    parts, known, names, i = text.split(","), set(roi_names), [], 0
    while i < len(parts):
        j = next((j for j in range(len(parts), i, -1) if ",".join(parts[i:j]) in known), i + 1)
        names.append(",".join(parts[i:j]))
        i = j
    return names


def _as_vectors(
    block: np.ndarray, n_rois: int, dataset: str, runs: pd.DataFrame, start: int
) -> np.ndarray:
    """A block of connectomes as C-contiguous float32 upper triangles, validated."""
    block = np.asarray(block)
    e = n_edges(n_rois)
    if block.ndim == 3 and block.shape[1:] == (n_rois, n_rois):
        block = matrix_to_vec(block)
    if block.ndim != 2 or block.shape[1] != e:
        raise InputDataError(
            f"Dataset {dataset!r}: connectome block of shape {block.shape} at run {start}; "
            f"expected (n, {e}) upper triangles or (n, {n_rois}, {n_rois}) matrices "
            f"for {n_rois} ROIs.",
            hint="Pass roi_names of the atlas the connectomes were computed with.",
        )
    block = np.ascontiguousarray(block, dtype="<f4")
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        bad = start + int(np.flatnonzero(~finite)[0])
        key = runs["run_key"].iloc[bad] if bad < len(runs) else f"row {bad}"
        raise InputDataError(
            f"Dataset {dataset!r}: connectome of run {key} has non-finite values.",
            hint="Exclude the run in the connectome stage (constant or empty ROI signals).",
        )
    return block


def _flush(
    writer: pq.ParquetWriter,
    schema: pa.Schema,
    runs: pd.DataFrame,
    pending: list[pa.Array],
    written: int,
    rows: int,
) -> tuple[int, list[pa.Array], int]:
    """Write the first ``rows`` pending connectomes as one row group; return the new state."""
    vectors = pa.chunked_array(pending)
    head, rest = vectors.slice(0, rows), vectors.slice(rows)
    ids = runs.iloc[written : written + rows]
    columns = [pa.array(ids[k].to_numpy(), pa.string()) for k in ID_COLUMNS]
    columns.append(pa.array(ids[WINDOW].to_numpy(dtype=np.int32), pa.int32()))
    columns += [pa.array(ids[k], _qc_type(k), from_pandas=True) for k in STORE_QC_COLUMNS]
    columns.append(pa.array(ids[N_EMPTY_ROIS].to_numpy(dtype=np.int32), pa.int32()))
    columns.append(pa.array(list(ids[EMPTY_ROIS]), pa.list_(pa.string())))
    table = pa.Table.from_arrays([*columns, head], schema=schema)
    writer.write_table(table, row_group_size=rows)
    return written + rows, rest.chunks, len(rest)


def _binary_array(vectors: np.ndarray) -> pa.FixedSizeBinaryArray:
    """``(n, E)`` C-contiguous little-endian float32 -> fixed-size binary sharing its buffer."""
    width = 4 * vectors.shape[1]
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(vectors), [None, pa.py_buffer(vectors)]
    )


def _library_versions() -> dict[str, str]:
    return {"numpy_version": np.__version__, "pyarrow_version": pa.__version__}


def _destination(out: Path, commit: DatasetCommit | None) -> contextlib.AbstractContextManager:
    """Where to write ``out``: staged in ``commit``, or a temporary file renamed at once."""
    return commit.stage(out) if commit is not None else atomic_path(out)


def _variables_schema(catalogue: Catalogue) -> pa.Schema:
    fields = [pa.field(k, pa.string()) for k in VARIABLES_KEYS]
    for name, var in catalogue.variables.items():
        fields.append(pa.field(name, pa.float64() if var.is_numeric else pa.string()))
    return pa.schema(fields)


def variables_id(phenotype: pd.DataFrame, catalogue: Catalogue) -> str:
    """Hash of the variables partition that ``phenotype`` and ``catalogue`` make.

    Stored as ``lcm.variables_id`` in the variables partition and, by ``lcm store``, in the
    connectome partition written with it: readers refuse a pair whose ids differ.

    Parameters
    ----------
    phenotype : pandas.DataFrame
        Output of :func:`lcm.store.phenotype.read_phenotype`.
    catalogue : Catalogue

    Returns
    -------
    str
        Hex sha256 (first 32 digits) of the catalogue and the typed table.
    """
    columns = _variables_schema(catalogue).names
    digest = hashlib.sha256(json.dumps(catalogue.to_dict(), sort_keys=True).encode())
    digest.update(phenotype[columns].to_csv(index=False, na_rep="<NA>").encode())
    return digest.hexdigest()[:32]


@fill_doc
def write_variables(
    store: str | Path,
    dataset: str,
    phenotype: pd.DataFrame,
    catalogue: Catalogue,
    commit: DatasetCommit | None = None,
) -> Path:
    """Write the variables partition of ``dataset`` (typed columns, catalogue in metadata).

    Parameters
    ----------
    %(store)s
    dataset : str
    phenotype : pandas.DataFrame
        Output of :func:`lcm.store.phenotype.read_phenotype`.
    catalogue : Catalogue
    commit : DatasetCommit, optional
        Stage the file in this commit instead of replacing it now.

    Returns
    -------
    pathlib.Path
        The file written (its final path).
    """
    schema = _variables_schema(catalogue)
    table = pa.Table.from_pandas(phenotype[schema.names], schema=schema, preserve_index=False)
    identity = variables_id(phenotype, catalogue)
    if commit is not None and commit.variables_id != identity:
        raise ValueError(f"commit {commit.id} was opened for other variables of {dataset!r}")
    table = table.replace_schema_metadata(
        {
            "lcm.schema_version": SCHEMA_VERSION,
            "lcm.catalogue": json.dumps(catalogue.to_dict()),
            "lcm.provenance": json.dumps(environment(), default=str),
            VARIABLES_ID_KEY: identity,
            **(commit.metadata() if commit is not None else {}),
        }
    )
    out = variables_path(store, dataset)
    with _destination(out, commit) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return out


@fill_doc
def write_missingness(
    store: str | Path, dataset: str, report: pd.DataFrame, commit: DatasetCommit | None = None
) -> Path:
    """Write the per-variable missingness report of ``dataset`` (staged in ``commit`` if given).

    Parameters
    ----------
    %(store)s
    %(dataset)s
    report : pandas.DataFrame
        :func:`lcm.store.phenotype.missingness`.
    commit : DatasetCommit, optional
        The commit that makes the file visible with the dataset's partitions; None writes it
        now, atomically.

    Returns
    -------
    pathlib.Path
        The TSV's final path (:func:`lcm.io.paths.missingness_path`).
    """
    out = missingness_path(store, dataset)
    if commit is None:
        write_tsv(out, report)
    else:
        with commit.stage(out) as tmp:
            report.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
    return out


def _check_store_atlas(store: str | Path, atlas: str, roi_names: list[str], dataset: str) -> None:
    """Refuse a dataset whose ROIs differ from those already stored under the same atlas."""
    for other in stored_connectomes(store, atlas):
        if other == connectome_path(store, atlas, dataset):
            continue
        try:
            meta = pq.read_schema(other).metadata or {}
        except (pa.ArrowException, OSError) as exc:
            raise InputDataError(
                f"Dataset {dataset!r}: cannot compare its ROIs with {other}, which is not a "
                f"readable Parquet file ({_first_line(exc)}).",
                hint=f"Rerun `lcm store` for {other.parent.name.split('=', 1)[1]!r}, or remove "
                f"{other.parent}.",
            ) from None
        stored = json.loads(meta.get(b"lcm.roi_names", b"[]"))
        if stored != roi_names:
            raise InputDataError(
                f"Dataset {dataset!r}: its {len(roi_names)} ROIs differ from the "
                f"{len(stored)} ROIs stored for atlas {atlas!r} in {other}.",
                hint="Parcellate every dataset with the same atlas, or use another atlas name.",
            )
        return


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
