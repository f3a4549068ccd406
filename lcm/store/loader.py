"""Stream connectomes from the feature store to torch without loading the cohort in memory.

:class:`ConnectomeStream` is a :class:`torch.utils.data.IterableDataset` over the row groups of
the store's connectome partitions. Each epoch it shuffles the row groups (seed + epoch), lays
their runs end to end in a circle and cuts it into contiguous arcs from a random start, one per
DDP rank, and each arc at batch boundaries into one shard per DataLoader worker. Every shard
reads only its own row groups, reading the next ones on background threads, and shuffles its
runs within windows of at least ``shuffle_buffer`` runs. By default (``drop_last``) shuffled
ranks get equal arcs, the few runs left over dropped (others each epoch), and a pass without
shuffling yields every run, the circle starting at the store's first run. Batches are built in
numpy straight from the decoded row groups (one copy per run, no per-run Python work), so hand
them to ``DataLoader(stream, batch_size=None)``, whose length is then this rank's batches per
epoch; on a few cores keep ``num_workers=0``: the stream already reads on its own threads, and a
worker adds a copy of every batch into shared memory (twice slower on 2 cores,
benchmarks/store.py).
Memory per shard is one window plus ``read_ahead`` row groups in flight (~32 MiB each, about
twice that while read), whatever the cohort size.

Only identifiers are read up front (to know every run and to leave out excluded subjects);
a batch is ``{"index": (B,), "connectome": (B, E)}`` (a sample, without ``batch_size``,
``{"index": i, "connectome": (E,)}``) where ``i`` is the run's row in
:attr:`ConnectomeStream.runs`, which holds its dataset, subject, site, ``window`` and QC
columns. A windowed store (one row per window of a run, ``window`` >= 0) streams each window as
a sample of its own, as the official LCM code trains on windows.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.store.commit import COMMIT_KEY
from lcm.store.read import (
    check_schema_version,
    connectome_values,
    read_runs_stamped,
    roi_names_of,
    unreadable,
)
from lcm.store.splits import downstream_test_keys

log = logging.getLogger(__name__)


# Runs gathered at a time when single runs are yielded (no ``batch_size``).
SAMPLE_CHUNK = 64


@dataclass(frozen=True)
class _Segment:
    """Runs ready to batch: a decoded block, the rows of it to use, their global indices."""

    block: np.ndarray
    rows: np.ndarray
    index: np.ndarray


@dataclass(frozen=True)
class _Unit:
    """One row group: its file, index, the kept rows (local positions, global indices), and
    the byte range of its connectome column chunk."""

    file: int
    row_group: int
    local: np.ndarray
    index: np.ndarray
    start: int
    length: int


@fill_doc
class ConnectomeStream(IterableDataset):
    """Iterable dataset of connectomes streamed from Parquet row groups.

    Parameters
    ----------
    %(store)s
    atlas : str
    datasets : list of str
    shuffle : bool, default True
        Shuffle row groups per epoch and runs through the buffer.
    shuffle_buffer : int, default 256
        Fewest runs shuffled together per shard: row groups are gathered into a window of at
        least this many runs, whose runs are permuted (memory: about ``shuffle_buffer * E * 4``
        bytes plus one row group).
    seed : int, default 0
        Seed of the shuffles; the epoch (:meth:`set_epoch`) is mixed in.
    rank, world_size : int, default 0 and 1
        DDP rank and number of ranks (``torch.distributed.get_rank()`` / ``get_world_size()``).
    exclude : pandas.DataFrame, optional
        Splits table (or any table with ``dataset`` and ``subject``) whose subjects are left out.
    matrix : bool, default False
        Yield ``(R, R)`` matrices (diagonal 1) instead of ``(E,)`` upper triangles.
    read_ahead : int, default 2
        Row groups read and decoded ahead on threads (memory: about two row groups each).
    batch_size : int, optional
        Yield batches ``{"index": (B,), "connectome": (B, E)}`` built in numpy (use
        ``DataLoader(stream, batch_size=None)``): much faster than collating single runs.
        The order of runs inside a batch follows the store, not the shuffle.
    keep_cache : bool, optional
        Leave the row groups read in the OS page cache, so that later epochs read them from
        memory. Default: when the streamed files fit in half the machine's memory; a larger
        cohort is dropped from the cache as it is consumed (``posix_fadvise``), since keeping
        it only makes the kernel reclaim memory during the reads.
    drop_last : bool, optional
        Give every DDP rank the same number of runs, ``total // world_size``, and leave out the
        ``total % world_size`` left over (as ``DistributedSampler(drop_last=True)``; this is
        not about a short last batch): ranks then run the same number of steps, which DDP's
        collectives need. Otherwise the first ``total % world_size`` ranks yield one run more
        and every run is yielded once per epoch (inference, embeddings). Default: ``shuffle``,
        so that training is even and a pass without shuffling is complete; pass
        ``shuffle=False, drop_last=True`` to train under DDP without shuffling.

    Notes
    -----
    ``len(stream)`` is what this rank yields per epoch, over all its DataLoader workers:
    batches with ``batch_size`` (a rank's runs are cut between workers at batch boundaries, so
    only the rank's last batch is short, whatever ``num_workers``), runs without. It is thus
    the length of ``DataLoader(stream, batch_size=None)``, for progress bars and schedules.

    With ``drop_last`` every rank yields ``total // world_size`` runs; the few left over are
    others each epoch when shuffling (the arcs start at a random run), and the store's last
    runs every epoch without shuffling.
    """

    def __init__(
        self,
        store: str | Path,
        atlas: str,
        datasets: list[str],
        *,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        exclude: pd.DataFrame | None = None,
        matrix: bool = False,
        read_ahead: int = 2,
        batch_size: int | None = None,
        keep_cache: bool | None = None,
        drop_last: bool | None = None,
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputDataError(
                f"ConnectomeStream: rank {rank} is not in [0, world_size={world_size}).",
                hint="Pass torch.distributed.get_rank() and get_world_size().",
            )
        self.datasets = list(datasets)
        self.files = [str(connectome_path(store, atlas, d)) for d in datasets]
        runs, self._stamps = read_runs_stamped(store, atlas, datasets)
        keep = np.ones(len(runs), dtype=bool)
        if exclude is not None:
            keys = runs["dataset"] + "/" + runs["subject"]
            keep = ~keys.isin(downstream_test_keys(exclude)).to_numpy()
            # Downstream test subjects, or the pretraining held-out runs streamed apart.
            log.info("left out %d run(s) of the subjects held out", int((~keep).sum()))
        self._n_runs = runs["dataset"].value_counts().to_dict()
        self.runs = runs[keep].reset_index(drop=True)
        self.roi_names, self.units = self._plan(keep)
        self.n_edges = len(self.roi_names) * (len(self.roi_names) - 1) // 2
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self.rank, self.world_size, self.matrix = rank, world_size, matrix
        self.read_ahead, self.batch_size = read_ahead, batch_size
        self.drop_last = shuffle if drop_last is None else drop_last
        if keep_cache is None:
            size = sum(os.path.getsize(f) for f in self.files)
            keep_cache = size <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        self.keep_cache = keep_cache or not hasattr(os, "posix_fadvise")  # not on macOS
        # In shared memory: DataLoader's persistent workers keep their own copy of the stream,
        # and see set_epoch only through it (else every epoch replays epoch 0's shuffle).
        self._epoch = multiprocessing.RawValue("q", 0)
        self._iu: torch.Tensor | None = None

    def _plan(self, keep: np.ndarray) -> tuple[list[str], list[_Unit]]:
        """Row groups of every file with the kept rows of each; check one ROI set."""
        units: list[_Unit] = []
        roi_names: list[str] | None = None
        start = 0  # position of the file's first row among all runs
        next_index = 0  # index in self.runs of the next kept run
        for f, path in enumerate(self.files):
            dataset = self.datasets[f]
            try:
                meta = pq.ParquetFile(path).metadata
            except (pa.ArrowException, OSError) as exc:
                raise unreadable(path, dataset, exc) from None
            check_schema_version(meta.metadata, path)
            self._check_same_file(dataset, meta)
            names = roi_names_of(meta.metadata, path, dataset)
            if roi_names is None:
                roi_names = names
            elif names != roi_names:
                raise InputDataError(
                    f"{path}: {len(names)} ROIs differ from the {len(roi_names)} ROIs of "
                    f"{self.files[0]}.",
                    hint="Stream datasets parcellated with the same atlas.",
                )
            column = meta.schema.to_arrow_schema().get_field_index("connectome")
            offset = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                local = np.flatnonzero(keep[start + offset : start + offset + n])
                if len(local):
                    index = np.arange(next_index, next_index + len(local))
                    chunk = meta.row_group(g).column(column)
                    first = min(
                        o
                        for o in (chunk.dictionary_page_offset, chunk.data_page_offset)
                        if o is not None
                    )
                    units.append(_Unit(f, g, local, index, first, chunk.total_compressed_size))
                    next_index += len(local)
                offset += n
            start += offset
        assert roi_names is not None  # read_runs refuses an empty dataset list
        return roi_names, units

    def _check_same_file(self, dataset: str, meta: pq.FileMetaData) -> None:
        """Refuse a partition replaced since its runs were read (an ``lcm store`` meanwhile)."""
        path, first = self._stamps[dataset]
        n_runs = self._n_runs.get(dataset, 0)
        key = COMMIT_KEY.encode()
        if meta.num_rows != n_runs or (meta.metadata or {}).get(key) != first.get(key):
            raise InputDataError(
                f"{path} changed while it was being opened ({n_runs} runs, then "
                f"{meta.num_rows}): an `lcm store --dataset {dataset}` wrote it meanwhile.",
                hint="Start again once that run has finished.",
            )

    def __len__(self) -> int:
        """Batches (runs without ``batch_size``) this rank yields per epoch, all workers."""
        lo, hi = self.rank_arc()
        if self.batch_size:
            return -(-(hi - lo) // self.batch_size)
        return hi - lo

    @property
    def epoch(self) -> int:
        """The epoch whose shuffle the next iteration uses (:meth:`set_epoch`)."""
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Use a new shuffle for ``epoch`` (call before each epoch, as with DistributedSampler;
        DataLoader workers, persistent ones included, use it from their next iteration).

        Parameters
        ----------
        epoch : int
            The epoch about to start; with the stream's seed it fixes the shuffle.
        """
        self._epoch.value = int(epoch)

    def shard(self) -> tuple[int, int]:
        """``(shard, n_shards)`` of the calling process: DDP rank x DataLoader worker."""
        worker, workers = self._worker()
        return self.rank * workers + worker, self.world_size * workers

    @staticmethod
    def _worker() -> tuple[int, int]:
        """``(worker, num_workers)`` of the calling process; ``(0, 1)`` outside a worker."""
        info = get_worker_info()
        return (info.id, info.num_workers) if info is not None else (0, 1)

    def rank_arc(self) -> tuple[int, int]:
        """This rank's runs, ``[lo, hi)``, as positions on the epoch's circle from its start.

        Ranks take consecutive arcs: ``total // world_size`` runs each with ``drop_last`` (the
        rest left out), else one more for each of the first ``total % world_size`` ranks.
        """
        per, extra = divmod(len(self.runs), self.world_size)
        if self.drop_last:
            return self.rank * per, (self.rank + 1) * per
        lo = self.rank * per + min(self.rank, extra)
        return lo, lo + per + (self.rank < extra)

    def shard_units(self, worker: int = 0, workers: int = 1) -> list[tuple[_Unit, np.ndarray]]:
        """The row groups of a worker's shard of this rank this epoch, each with its kept rows.

        The runs of the row groups, laid end to end in this epoch's order, form a circle; the
        ranks' arcs (:meth:`rank_arc`) follow one another from a start drawn each epoch when
        shuffling (0 otherwise). A rank's arc is cut between its ``workers`` DataLoader
        workers at multiples of ``batch_size`` (evenly without it), so that the workers'
        batches add up to ``len(self)``: only the rank's last batch can be short.

        Parameters
        ----------
        worker, workers : int, default 0 and 1
            DataLoader worker id and number of workers (``get_worker_info()``).

        Returns
        -------
        list of (_Unit, numpy.ndarray)
            Row groups in reading order, each with the positions of its runs to stream (in
            ``unit.local``; two pieces of one row group when the arc wraps around).
        """
        total = len(self.runs)
        order = np.arange(len(self.units))
        start = 0
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(len(self.units))
            start = int(rng.integers(total)) if total else 0
        first, last = self.rank_arc()
        n, size = last - first, self.batch_size or 1
        batches = -(-n // size)
        lo = start + first + min(worker * batches // workers * size, n)
        hi = start + first + min((worker + 1) * batches // workers * size, n)
        # hi <= start + total < 2 * total: at most one lap past the end of the circle
        rows: dict[int, list[np.ndarray]] = {}  # unit -> positions, in reading order
        pos = 0
        for u in np.concatenate([order, order]):
            if pos >= hi:
                break
            n = len(self.units[u].local)
            a, b = max(lo - pos, 0), min(hi - pos, n)
            if a < b:  # an arc crossing the end of the circle may take two pieces of a unit
                rows.setdefault(int(u), []).append(np.arange(a, b))
            pos += n
        return [(self.units[u], np.concatenate(pieces)) for u, pieces in rows.items()]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor | int]]:
        return self.iter_from(0)

    def iter_from(self, skip: int = 0) -> Iterator[dict[str, torch.Tensor | int]]:
        """This process's batches of the epoch after its first ``skip``: a resumed epoch.

        The batches are those of ``iter(self)`` from batch ``skip`` on, bit for bit, and only
        the row groups they take runs from are read, not those of the first ``skip`` batches:
        the epoch's windows and shuffles are planned again from the row groups' run counts
        (:meth:`_needed`), without reading. Among them are the row groups of the runs carried
        into the first window resumed from the windows before (fewer than a batch): a resume
        reads at most about one window it yields nothing else from.

        Parameters
        ----------
        skip : int, default 0
            Batches of this epoch (of the calling process's shard) not to yield.

        Returns
        -------
        iterator of dict
            As ``iter(self)``.

        Raises
        ------
        ValueError
            ``skip`` without ``batch_size`` (it counts batches), or below 0.
        """
        if skip < 0 or (skip and not self.batch_size):
            raise ValueError(
                f"ConnectomeStream.iter_from: skip={skip} counts batches already yielded: "
                "give a count >= 0 and a stream with batch_size."
            )
        return self._iterate(skip)

    def _iterate(self, skip: int) -> Iterator[dict[str, torch.Tensor | int]]:
        shard, _ = self.shard()
        units = self.shard_units(*self._worker())
        seed = [self.seed, self.epoch, shard]
        size = int(self.batch_size or SAMPLE_CHUNK)
        needed = self._needed(units, size, seed, skip)
        rng = np.random.default_rng(seed)
        batches = self._batches(self._read(units, needed), size, rng, skip)
        if self.batch_size:
            for index, batch in batches:
                yield {"index": torch.from_numpy(index), "connectome": self._tensor(batch)}
            return
        for index, batch in batches:
            for i, vec in zip(index.tolist(), batch, strict=True):
                yield {"index": i, "connectome": self._tensor(vec)}

    def _needed(
        self, units: list[tuple[_Unit, np.ndarray]], size: int, seed: list[int], skip: int
    ) -> np.ndarray:
        """Which of ``units`` the batches after the first ``skip`` take runs from (bool each).

        The epoch planned without reading: :meth:`_batches` over the row groups' run counts,
        its shuffles drawn from the same seed, gives every batch's runs.
        """
        if not skip:
            return np.ones(len(units), dtype=bool)
        empty = np.empty((0, 0), dtype=np.float32)
        counts = (_Segment(empty, unit.local[rows], unit.index[rows]) for unit, rows in units)
        planned = self._batches(counts, size, np.random.default_rng(seed), skip, values=False)
        later = np.zeros(len(self.runs), dtype=bool)  # runs of the batches resumed
        for index, _ in planned:
            later[index] = True
        return np.array([later[unit.index[rows]].any() for unit, rows in units], dtype=bool)

    def _batches(
        self,
        segments: Iterator[_Segment],
        size: int,
        rng: np.random.Generator,
        skip: int = 0,
        values: bool = True,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(index (B,), connectomes (B, E))`` batches cut from shuffled windows of runs.

        Segments are gathered until the window holds ``shuffle_buffer`` runs (at least one
        batch); the window's runs are permuted and cut into batches, and the runs too few for
        a last full batch are copied into the next window. Each run is copied once, from the
        decoded row group straight into its batch; the last batch of the epoch may be short.
        The first ``skip`` batches are neither gathered nor yielded (the shuffles drawn all
        the same); without ``values`` only the indices are (connectomes ``(B, 0)``).
        """
        window_rows = max(self.shuffle_buffer if self.shuffle else 1, size)
        window: list[_Segment] = []
        n = done = 0  # runs in the window, batches cut so far
        for segment in segments:
            window.append(segment)
            n += len(segment.rows)
            if n >= window_rows:
                carry = yield from self._cut(window, n, size, rng, False, skip - done, values)
                done += n // size
                window, n = [carry], len(carry.rows)
        yield from self._cut(window, n, size, rng, True, skip - done, values)

    def _cut(
        self,
        window: list[_Segment],
        n: int,
        size: int,
        rng: np.random.Generator,
        last: bool,
        skip: int,
        values: bool,
    ) -> Generator[tuple[np.ndarray, np.ndarray], None, _Segment]:
        """Yield the full batches of a window (all of it when ``last``) but its first ``skip``;
        return the rest."""
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        starts = np.cumsum([0] + [len(s.rows) for s in window])
        full = n if last else n - n % size
        width = self.n_edges if values else 0
        for lo in range(max(skip, 0) * size, full, size):
            yield _gather(window, starts, order[lo : min(lo + size, full)], width)
        index, rest = _gather(window, starts, order[full:], width)
        return _Segment(rest, np.arange(len(rest)), index)

    def _read(
        self, units: list[tuple[_Unit, np.ndarray]], needed: np.ndarray
    ) -> Iterator[_Segment]:
        """The kept runs of each of ``units``, in order, reading row groups ahead on threads.

        A unit not ``needed`` is not read: its segment holds no values (:func:`_gather`).
        """
        # One set of open files per reader thread: a ParquetFile must not be read from two
        # threads at once (shared, it deadlocked at cohort scale).
        local = threading.local()
        opened: list[int] = []  # descriptors for posix_fadvise, closed when the epoch ends

        def load(item: tuple[_Unit, np.ndarray], read: bool) -> _Segment:
            unit, rows = item
            if not read:
                empty = np.empty((0, self.n_edges), dtype=np.float32)
                return _Segment(empty, unit.local[rows], unit.index[rows])
            if not hasattr(local, "files"):
                local.files, local.fds = {}, {}
            if unit.file not in local.files:
                # pre_buffer: one large read per column chunk instead of one per page.
                try:
                    local.files[unit.file] = pq.ParquetFile(self.files[unit.file], pre_buffer=True)
                except (pa.ArrowException, OSError) as exc:
                    path = self.files[unit.file]
                    raise unreadable(path, self.datasets[unit.file], exc) from None
                local.fds[unit.file] = os.open(self.files[unit.file], os.O_RDONLY)
                opened.append(local.fds[unit.file])
            try:
                table = local.files[unit.file].read_row_group(
                    unit.row_group, columns=["connectome"], use_threads=False
                )
            except (pa.ArrowException, OSError) as exc:
                path = self.files[unit.file]
                raise unreadable(path, self.datasets[unit.file], exc) from None
            # A zero-copy view of the decoded column: it keeps the Arrow buffer alive.
            block = connectome_values(table.column(0), self.files[unit.file])
            del table
            if not self.keep_cache:
                # Consumed pages only make the kernel reclaim memory for the next reads (half
                # the speed over a 16 GB cohort) and evict other processes' files: drop them.
                os.posix_fadvise(
                    local.fds[unit.file], unit.start, unit.length, os.POSIX_FADV_DONTNEED
                )
            return _Segment(block, unit.local[rows], unit.index[rows])

        try:
            with ThreadPoolExecutor(max_workers=max(1, self.read_ahead)) as pool:
                # Row groups are read on threads (pyarrow releases the GIL), ``read_ahead`` at
                # a time. Arrow's allocator keeps the freed buffers of one row group for the
                # next (same sizes): handing them back each time made every read fault in
                # fresh pages.
                ahead: deque[Future] = deque()
                for k in range(len(units)):
                    while len(ahead) < max(1, self.read_ahead) and k + len(ahead) < len(units):
                        j = k + len(ahead)
                        ahead.append(pool.submit(load, units[j], bool(needed[j])))
                    yield ahead.popleft().result()
        finally:
            for fd in opened:
                os.close(fd)

    def _tensor(self, vec: np.ndarray) -> torch.Tensor:
        """``(..., E)`` float32 -> tensor; ``(..., R, R)`` matrices when ``matrix`` is set."""
        out = torch.from_numpy(vec)
        if not self.matrix:
            return out
        r = len(self.roi_names)
        if self._iu is None:
            self._iu = torch.triu_indices(r, r, offset=1)
        iu = self._iu
        m = torch.ones((*out.shape[:-1], r, r), dtype=torch.float32)
        m[..., iu[0], iu[1]] = out
        m[..., iu[1], iu[0]] = out
        return m


def _gather(
    window: list[_Segment], starts: np.ndarray, picks: np.ndarray, n_edges: int
) -> tuple[np.ndarray, np.ndarray]:
    """Copy the runs at window positions ``picks`` into a new ``(len(picks), E)`` array.

    The positions are sorted first so that each segment fills one contiguous slice with a
    single ``numpy.take``: one copy per run. Order inside a batch carries no information, and
    which runs share a batch is still decided by the shuffle. A segment without values (a
    row group not read) gives NaN; with ``n_edges`` 0 only the indices are gathered.
    """
    picks = np.sort(picks)
    out = np.empty((len(picks), n_edges), dtype=np.float32)
    index = np.empty(len(picks), dtype=np.int64)
    bounds = np.searchsorted(picks, starts)
    for s, segment in enumerate(window):
        lo, hi = bounds[s], bounds[s + 1]
        if lo == hi:
            continue
        local = picks[lo:hi] - starts[s]
        # mode="clip": the rows are valid by construction, and the default mode="raise" goes
        # through a temporary buffer when given ``out`` (a second copy, 4x slower here).
        if len(segment.block):
            np.take(segment.block, segment.rows[local], axis=0, out=out[lo:hi], mode="clip")
        elif n_edges:
            # A row group a resumed epoch did not read: its runs are carried only into batches
            # it skips (ConnectomeStream._needed). NaN, never yielded.
            out[lo:hi] = np.nan
        index[lo:hi] = segment.index[local]
    return index, out
