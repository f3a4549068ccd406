"""Incremental indexing: reuse the rows of subjects whose files have not changed.

The cache is a folder next to the manifest (``manifest.parquet.cache/``) holding the rows of
the last indexing run per subject folder (``rows.parquet``), the size and mtime of every file
and folder each subject's rows were derived from (``stats.parquet``; in a raw dataset every file
and folder of the subject's tree, ``anat/``, ``fmap/`` and ``*_scans.tsv`` included, since the
validator's verdict on the subject and fMRIPrep depend on them all), and what the rows depend
on beyond the subjects (``meta.json``: the index spec, the top-level sidecars' stats, the
validator report and the root listing it was made with). A subject is re-indexed when any of
its recorded stats changed: a file added, removed or renamed changes its folder's mtime, an edit
in place changes the file's own; the validator then runs again. A changed top-level sidecar or
index spec re-indexes everything; any other change at the root (``participants.tsv``,
``.bidsignore``, ``README``, a file of ``phenotype/``, a folder added or removed) keeps the rows
but not the validator report. A dangling symlink (DataLad content not fetched) is recorded as
absent: its subject is re-indexed once the content is there (``datalad get`` changes no folder's
mtime).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from lcm.bids.fast_index import ABSENT, IndexSpec, SubjectIndex, index_subject, root_sidecars
from lcm.bids.sidecars import SidecarReader
from lcm.exceptions import ConfigError
from lcm.io.atomic import remove_dead_temporaries, temporary_name

log = logging.getLogger(__name__)

# Raised when a run's verdict can change for the same files (2: header bounds, bad_header;
# 4: dangling symlinks are rows, not_fetched, where version 3 dropped them unseen; 5: files
# that are no image, git-annex pointers included, are excluded instead of not checked; 6: runs
# of fMRIPrep derivatives without BOLD in the asked space are rows, not_in_space; 8: the
# validator errors fMRIPrep ignores are warnings, which a cached report counts as errors), or
# when a cache records too little to see a change (7: a raw subject's every file, not its func/
# only; a version-6 cache kept a validator verdict on an anat/ link fetched since; 9: an
# invalid label's reason carries its fix; 10: a derivatives run no sidecar gives a TR takes
# its BOLD header's, time unit named; 11: a header whose xyzt_units names no time unit is no
# TR in seconds, compared only where plausible, so a tr_mismatch cached on it may be lifted;
# 12: every exclusion reason reads "<problem>. Fix: <fix>"; 13: a .nii.gz cut short after its
# header, bad_header, and a 4D BOLD of one volume, not_4d, are excluded, where a cached row of
# either was included; a cached validator report's reasons lacked the issues' own words;
# 14: a derivatives run with only CIFTI outputs says so, where a cached reason said fMRIPrep
# stopped; 15: an ROI series without a TR names the dataset's TR setting as the user gives it,
# where a cached reason said datasets.<name>.repetition_time; 16: an XCP-D series whose TR is
# above 30 s is excluded, no_repetition_time, where a cached row of it was included, and a run
# not in the asked space names the space setting as the user gives it, where a cached reason
# named the config's key and two options at once; 17: a raw or fMRIPrep-derivatives BOLD whose
# sidecar TR, or header TR in seconds, is above 30 s is excluded, no_repetition_time, where a
# cached row of it was included with its 2000 s or excluded as tr_mismatch; an XCP-D series
# without a TR names the dataset's TR setting first, where a cached reason offered its sidecar;
# a time-unit fix names the spatial unit too (nibabel's t= alone resets it to unknown)).
CACHE_VERSION = 17
# Indexing threads. On a local disk the metadata is in the page cache and indexing is
# CPU-bound Python: one thread is fastest (more only contend for the GIL). On network
# filesystems every stat and open waits on a metadata server: LCM_INGEST_THREADS=8 there.
THREADS_ENV = "LCM_INGEST_THREADS"
STAT_THREADS = 4  # threads of the unchanged-files check (Arrow's stat runs without the GIL)
_LOCAL_FS = pafs.LocalFileSystem()
UNIT = "_unit"  # column naming the subject folder a cached row came from
_STATS_SCHEMA = pa.schema(
    [(UNIT, pa.string()), ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64())]
)


@dataclass
class IndexResult:
    """Rows of a dataset (``UNIT`` column included), their stats, and how much was reused."""

    rows: pd.DataFrame
    stats: pa.Table
    subjects: list[str]
    reused: int = 0
    rescanned: int = 0
    changed: bool = True
    validation: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Subject folders whose files changed since the cache was written (new ones included);
    # None when that is unknown (no cache, or one for other settings).
    changed_units: set[str] | None = None


def cache_dir_for(manifest: str | Path) -> Path:
    """Cache folder of a manifest path.

    Parameters
    ----------
    manifest : str or Path
        The manifest (``lcm ingest --out``); its cache is ``<manifest>.cache`` beside it.
    """
    manifest = Path(manifest)
    return manifest.with_name(manifest.name + ".cache")


def index_threads() -> int:
    """The indexing threads ``$LCM_INGEST_THREADS`` asks for (1 when unset).

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        The variable is set to no whole number >= 1 (it raised a bare ValueError at import).
    """
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{THREADS_ENV}={text!r}: expected a whole number of threads >= 1.",
            hint=f"Set {THREADS_ENV} to e.g. 8 on a network file system, or unset it (1).",
        )
    return value


def index_dataset(
    spec: IndexSpec,
    root: str | Path,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> IndexResult:
    """Index ``root`` with the fast indexer, reusing ``cache_dir`` where nothing changed.

    Parameters
    ----------
    spec : IndexSpec
        What to index.
    root : path-like
        Dataset root (already checked to hold a ``dataset_description.json``).
    cache_dir : path-like, optional
        Cache from an earlier run (see the module docstring); ``None`` indexes everything.
        The cache is read only: :func:`save_cache` writes it.
    threads : int, optional
        Indexing threads (default ``$LCM_INGEST_THREADS`` or 1: :func:`index_threads`; see
        :func:`_index_blocks`).

    Returns
    -------
    IndexResult
        ``changed`` is False when every subject was reused and none was added or removed.
    """
    threads = index_threads() if threads is None else threads
    root = str(root)
    top, subjects, root_stats, listing = root_sidecars(root, whole_tree=spec.whole_tree)
    meta = {
        "version": CACHE_VERSION,
        "spec": _spec_dict(spec, root),
        "root_stats": [list(s) for s in root_stats],
        # Not a key of the rows (participants.tsv changes no run) but of the validator report.
        "root_listing": [list(s) for s in listing],
    }
    cached = _load(cache_dir, meta) if cache_dir is not None else None
    with _without_cyclic_gc():
        result = _index(spec, root, top, subjects, meta, cached, threads)
    if cache_dir is not None and cached is None:
        result.changed_units = _changed_at_top(Path(cache_dir), meta, subjects)
    return result


def _changed_at_top(cache_dir: Path, meta: dict[str, Any], subjects: list[str]) -> set[str] | None:
    """Changed subject folders when the cache was set aside for its top-level files.

    An inherited sidecar (``task-rest_bold.json``) edited changes every subject's runs; an
    edited ``dataset_description.json`` changes none of them, so only subjects whose own files
    changed count. ``None`` when the cache is missing, damaged or for other settings.
    """
    try:
        old = json.loads((cache_dir / "meta.json").read_text())
        if any(old.get(k) != meta[k] for k in ("version", "spec")):
            return None

        def inherited(stats: list) -> list:
            return [s for s in stats if not str(s[0]).endswith("dataset_description.json")]

        if inherited(old.get("root_stats", [])) != inherited(meta["root_stats"]):
            return set(subjects)
        stats = pq.read_table(cache_dir / "stats.parquet", schema=_STATS_SCHEMA)
    except Exception:  # no usable cache: unknown, as without one
        return None
    units = set(pc.unique(stats[UNIT]).to_pylist())
    return (_stale_units(stats) & set(subjects)) | (set(subjects) - units)


def _index(
    spec: IndexSpec,
    root: str,
    top: list,
    subjects: list[str],
    meta: dict[str, Any],
    cached: tuple[pd.DataFrame, pa.Table, dict[str, Any]] | None,
    threads: int,
) -> IndexResult:
    reader = SidecarReader()
    keep: set[str] = set()
    cached_units: set[str] = set()
    if cached is not None:
        cached_units = set(pc.unique(cached[1][UNIT]).to_pylist())
        keep = (cached_units - _stale_units(cached[1])) & set(subjects)
    new_rows: list[dict[str, Any]] = []
    todo = [sub for sub in subjects if sub not in keep]
    columns: list[list[Any]] = [[], [], [], []]
    for block in _index_blocks(spec, root, todo, top, reader, threads):
        for sub, found in block:
            for row in found.rows:
                row[UNIT] = sub
            new_rows += found.rows
            columns[0] += [sub] * len(found.stats)
            for col, values in zip(columns[1:], zip(*found.stats, strict=True), strict=True):
                col += values
    rescanned = len(subjects) - len(keep)
    fresh_rows = pd.DataFrame(new_rows)
    fresh_stats = pa.table(columns, schema=_STATS_SCHEMA)
    if cached is not None and keep == cached_units == set(subjects):
        rows, stats, old_meta = cached  # nothing changed: the cached rows as they are
        changed, validation = False, old_meta.get("validation")
        if old_meta.get("root_listing") != meta["root_listing"]:
            validation = None  # the validator reads the root's files: it runs again
    elif cached is not None and keep:
        old_rows, old_stats, _ = cached
        kept = pa.array(sorted(keep))
        rows = pd.concat([old_rows[old_rows[UNIT].isin(keep)], fresh_rows], ignore_index=True)
        stats = pa.concat_tables(
            [old_stats.filter(pc.is_in(old_stats[UNIT], value_set=kept)), fresh_stats]
        )
        changed, validation = True, None
    else:
        rows, stats, changed, validation = fresh_rows, fresh_stats, True, None
    log.info(
        "%s: %d subject folder(s): %d reused from the cache, %d indexed",
        spec.dataset,
        len(subjects),
        len(keep),
        rescanned,
    )
    return IndexResult(
        rows=rows,
        stats=stats,
        subjects=subjects,
        reused=len(keep),
        rescanned=rescanned,
        changed=changed,
        validation=validation,
        meta=meta,
        changed_units=set(todo) if cached is not None else None,
    )


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while rows are built.

    Indexing creates a few small dicts and tuples per file and keeps them all; each of those
    allocations counts towards the collector's thresholds, so full collections keep traversing
    a heap that only grows (measured: 3.5-3.8 s with the collector vs 2.6-2.7 s without for a
    40,000-subject ingest). The rows hold no reference cycles; nothing is left for it to free.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _index_block(
    spec: IndexSpec, root: str, subjects: list[str], top: list, reader: SidecarReader
) -> list[tuple[str, SubjectIndex]]:
    return [(sub, index_subject(spec, root, sub, top, reader)) for sub in subjects]


def _index_blocks(
    spec: IndexSpec,
    root: str,
    todo: list[str],
    top: list,
    reader: SidecarReader,
    threads: int,
) -> Iterator[list[tuple[str, SubjectIndex]]]:
    """Index subjects in contiguous blocks, in subject order, on ``threads`` threads.

    On a local disk the metadata is in the page cache and indexing is CPU-bound Python: one
    thread is fastest (threads only contend for the GIL). On network filesystems (Lustre,
    GPFS, NFS) every stat and open waits on a metadata server and releases the GIL: there a
    few threads overlap those waits. One task per block, since a future per subject would
    cost more than it saves.
    """
    if threads <= 1 or len(todo) < 2:
        yield _index_block(spec, root, todo, top, reader)
        return
    step = max(1, -(-len(todo) // (threads * 4)))
    blocks = [todo[i : i + step] for i in range(0, len(todo), step)]
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(lambda subs: _index_block(spec, root, subs, top, reader), blocks)


def unit_digests(result: IndexResult) -> dict[str, str]:
    """sha256 of each subject folder's recorded stats (path, size, mtime), by folder name.

    What the workflow hashes to rerun one subject whose files changed: a BOLD file or sidecar
    replaced or edited, a run added or removed (its folder's mtime), a top-level sidecar its
    runs inherit, and in a raw dataset any other file of the subject's tree (an anatomical
    image edited or fetched, a field map added, ``*_scans.tsv``). Empty without stats (runs
    brought as plain files).

    Parameters
    ----------
    result : IndexResult
        A BIDS tree's index, with the stats it recorded per subject folder.
    """
    stats = result.stats
    if stats.num_rows == 0 or UNIT not in stats.column_names:
        return {}
    top = [
        "\t".join(map(str, s))
        for s in result.meta.get("root_stats", [])
        if not str(s[0]).endswith("dataset_description.json")
    ]
    frame = stats.to_pandas()
    frame["line"] = (
        frame["path"] + "\t" + frame["size"].astype(str) + "\t" + frame["mtime_ns"].astype(str)
    )
    return {
        str(unit): hashlib.sha256("\n".join([*top, *sorted(lines)]).encode()).hexdigest()
        for unit, lines in frame.groupby(UNIT, sort=False)["line"]
    }


def save_cache(cache_dir: str | Path, result: IndexResult) -> None:
    """Write the cache of ``result`` (replacing the old one as a whole).

    Staged in a hidden sibling named as :func:`lcm.io.atomic.temporary_name` names
    temporaries (host, pid): one a killed ingest left on this host is removed here, and
    ``lcm provenance verify`` reports another host's as a temporary left, not as an output.

    Parameters
    ----------
    cache_dir : path-like
        The cache folder (:func:`cache_dir_for` of the manifest).
    result : IndexResult
        The index to cache.
    """
    cache_dir = Path(cache_dir)
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(cache_dir)
    tmp = temporary_name(cache_dir)
    tmp.mkdir()
    try:
        _write_cache(tmp, result)
        old = temporary_name(cache_dir)
        if cache_dir.exists():
            os.replace(cache_dir, old)
        os.replace(tmp, cache_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only when the write failed
    shutil.rmtree(old, ignore_errors=True)


def _write_cache(tmp: Path, result: IndexResult) -> None:
    """The cache's files, in the staging folder ``tmp``."""
    rows = result.rows.copy()
    for col in rows.columns:
        if col not in ("t_r", "included"):
            rows[col] = rows[col].fillna("").astype(str)
    if "t_r" in rows:
        rows["t_r"] = pd.to_numeric(rows["t_r"], errors="coerce").astype("float64")
    rows.to_parquet(tmp / "rows.parquet", index=False)
    pq.write_table(result.stats, tmp / "stats.parquet")
    meta = {**result.meta, "validation": result.validation}
    (tmp / "meta.json").write_text(json.dumps(meta))


def _spec_dict(spec: IndexSpec, root: str) -> dict[str, Any]:
    return {
        "dataset": spec.dataset,
        "entry": spec.entry,
        "task": spec.task,
        "space": spec.space,
        "repetition_time": spec.repetition_time,
        # Named in cached reasons: a cache of lcm ingest's --repetition-time is not a rule's.
        "repetition_time_name": spec.repetition_time_name,
        "space_name": spec.space_name,
        "names": dict(spec.names),
        "root": os.path.abspath(root),
    }


def _load(
    cache_dir: str | Path, meta: dict[str, Any]
) -> tuple[pd.DataFrame, pa.Table, dict[str, Any]] | None:
    cache_dir = Path(cache_dir)
    try:
        old_meta = json.loads((cache_dir / "meta.json").read_text())
        if any(old_meta.get(k) != meta[k] for k in ("version", "spec", "root_stats")):
            log.info("ingest cache %s is for other settings or top-level files: ignored", cache_dir)
            return None
        rows = pd.read_parquet(cache_dir / "rows.parquet")
        stats = pq.read_table(cache_dir / "stats.parquet", schema=_STATS_SCHEMA)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged cache only costs a full indexing run
        log.warning("ingest cache %s unreadable (%s): indexing everything", cache_dir, exc)
        return None
    return rows, stats, old_meta


def _stale_units(stats: pa.Table, threads: int = STAT_THREADS) -> set[str]:
    """Subject folders with a recorded file or folder whose size or mtime changed (or is gone),
    or with a recorded dangling symlink (size ``ABSENT``) whose target is now there.

    The stats are taken by Arrow's filesystem layer (``stat``, following symlinks as
    ``os.stat`` does), which runs without the GIL: contiguous chunks in ``threads`` threads
    overlap on any filesystem (measured 0.16-0.20 s for 160,000 paths on 2 cores, against
    0.43 s for an ``os.stat`` loop).
    """
    paths = stats["path"].to_pylist()
    if not paths:
        return set()
    step = max(1, -(-len(paths) // max(1, threads)))
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        infos = [info for part in pool.map(_LOCAL_FS.get_file_info, chunks) for info in part]
    # A path that is gone has no mtime (reading .mtime_ns is ~20x cheaper than .type).
    mtimes = [info.mtime_ns for info in infos]
    gone = np.array([m is None for m in mtimes])
    mtime = np.array([-1 if m is None else m for m in mtimes], dtype=np.int64)
    size = np.array([-1 if (n := info.size) is None else n for info in infos], dtype=np.int64)
    recorded_size = stats["size"].to_numpy()
    changed = np.where(
        recorded_size == ABSENT,
        ~gone,  # still dangling: unchanged (a link removed or replaced changes its folder)
        gone
        | (mtime != stats["mtime_ns"].to_numpy())
        | ((recorded_size >= 0) & (size != recorded_size)),
    )
    return set(stats[UNIT].filter(pa.array(changed)).to_pylist())
