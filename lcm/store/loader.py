"""Stream connectomes from the feature store to torch without loading the cohort in memory.

:class:`ConnectomeStream` is a :class:`torch.utils.data.IterableDataset` over the row groups of
the store's connectome partitions. Each epoch it shuffles the row groups (seed + epoch), lays
their runs end to end and cuts that sequence into equal contiguous shards, one per
``(DDP rank, DataLoader worker)``; every shard reads only its own row groups, decoding the next
ones on background threads, and passes its runs through a fixed-size shuffle buffer. Memory per
shard is the buffer plus ``read_ahead + 1`` row groups (~16 MiB each, ~4x that while decoding),
whatever the cohort size.

Only identifiers are read up front (to know every run and to leave out excluded subjects);
a sample is ``{"index": i, "connectome": tensor}`` where ``i`` is the run's row in
:attr:`ConnectomeStream.runs`, which holds its dataset, subject, site and QC columns.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lcm.exceptions import InputDataError
from lcm.store.read import read_runs
from lcm.store.splits import downstream_test_keys
from lcm.store.writer import connectome_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Unit:
    """One row group: its file, index, and the kept rows (local positions, global indices)."""

    file: int
    row_group: int
    local: np.ndarray
    index: np.ndarray


class ConnectomeStream(IterableDataset):
    """Iterable dataset of connectomes streamed from Parquet row groups.

    Parameters
    ----------
    store : path-like
        Store root.
    atlas : str
    datasets : list of str
    shuffle : bool, default True
        Shuffle row groups per epoch and runs through the buffer.
    shuffle_buffer : int, default 256
        Runs held for shuffling per shard (memory: ``shuffle_buffer * E * 4`` bytes).
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

    Notes
    -----
    Every shard yields exactly ``len(self) // n_shards`` runs per epoch (the few left over
    change from epoch to epoch), so DDP ranks always run the same number of steps.
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
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputDataError(
                f"ConnectomeStream: rank {rank} is not in [0, world_size={world_size}).",
                hint="Pass torch.distributed.get_rank() and get_world_size().",
            )
        self.files = [str(connectome_path(store, atlas, d)) for d in datasets]
        runs = read_runs(store, atlas, datasets)
        keep = np.ones(len(runs), dtype=bool)
        if exclude is not None:
            keys = runs["dataset"] + "/" + runs["subject"]
            keep = ~keys.isin(downstream_test_keys(exclude)).to_numpy()
            log.info("left out %d run(s) of downstream test subjects", int((~keep).sum()))
        self.runs = runs[keep].reset_index(drop=True)
        self.roi_names, self.units = self._plan(keep)
        self.n_edges = len(self.roi_names) * (len(self.roi_names) - 1) // 2
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self.rank, self.world_size, self.matrix = rank, world_size, matrix
        self.read_ahead, self.batch_size = read_ahead, batch_size
        self.epoch = 0
        self._iu: torch.Tensor | None = None

    def _plan(self, keep: np.ndarray) -> tuple[list[str], list[_Unit]]:
        """Row groups of every file with the kept rows of each; check one ROI set."""
        units: list[_Unit] = []
        roi_names: list[str] | None = None
        start = 0  # position of the file's first row among all runs
        next_index = 0  # index in self.runs of the next kept run
        for f, path in enumerate(self.files):
            meta = pq.ParquetFile(path).metadata
            names = json.loads(meta.metadata[b"lcm.roi_names"])
            if roi_names is None:
                roi_names = names
            elif names != roi_names:
                raise InputDataError(
                    f"{path}: {len(names)} ROIs differ from the {len(roi_names)} ROIs of "
                    f"{self.files[0]}.",
                    hint="Stream datasets parcellated with the same atlas.",
                )
            offset = 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                local = np.flatnonzero(keep[start + offset : start + offset + n])
                if len(local):
                    index = np.arange(next_index, next_index + len(local))
                    units.append(_Unit(f, g, local, index))
                    next_index += len(local)
                offset += n
            start += offset
        assert roi_names is not None  # read_runs refuses an empty dataset list
        return roi_names, units

    def __len__(self) -> int:
        """Runs per epoch over all shards."""
        return len(self.runs)

    def set_epoch(self, epoch: int) -> None:
        """Use a new shuffle for ``epoch`` (call before each epoch, as with DistributedSampler)."""
        self.epoch = epoch

    def shard(self) -> tuple[int, int]:
        """``(shard, n_shards)`` of the calling process: DDP rank x DataLoader worker."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def shard_units(self, shard: int, n_shards: int) -> list[tuple[_Unit, int, int]]:
        """The row groups of one shard this epoch, each with the slice of its kept rows."""
        order = np.arange(len(self.units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        per = len(self.runs) // n_shards
        lo, hi = shard * per, (shard + 1) * per
        out, pos = [], 0
        for u in order:
            unit = self.units[u]
            a, b = max(lo - pos, 0), min(hi - pos, len(unit.local))
            if a < b:
                out.append((unit, a, b))
            pos += len(unit.local)
            if pos >= hi:
                break
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor | int]]:
        shard, n_shards = self.shard()
        units = self.shard_units(shard, n_shards)
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        samples = self._read(units)
        if self.shuffle and self.shuffle_buffer > 1:
            samples = _shuffled(samples, self.shuffle_buffer, self.n_edges, rng)
        # Each vector is a view that stays valid only until the next one is drawn: copy it.
        if self.batch_size:
            yield from self._batches(samples)
            return
        for index, vec in samples:
            yield {"index": index, "connectome": self._tensor(vec.copy())}

    def _batches(
        self, samples: Iterator[tuple[int, np.ndarray]]
    ) -> Iterator[dict[str, torch.Tensor | int]]:
        """Samples gathered straight into ``(batch_size, E)`` arrays (the last may be short)."""
        size = int(self.batch_size or 1)
        batch = np.empty((size, self.n_edges), dtype=np.float32)
        index = np.empty(size, dtype=np.int64)
        k = 0
        for i, vec in samples:
            batch[k], index[k] = vec, i
            k += 1
            if k == size:
                yield {"index": torch.from_numpy(index), "connectome": self._tensor(batch)}
                batch = np.empty((size, self.n_edges), dtype=np.float32)
                index = np.empty(size, dtype=np.int64)
                k = 0
        if k:
            yield {"index": torch.from_numpy(index[:k]), "connectome": self._tensor(batch[:k])}

    def _read(self, units: list[tuple[_Unit, int, int]]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, upper triangle)`` of each run of ``units``, reading row groups ahead."""
        # One set of open files per reader thread: a ParquetFile must not be read from two
        # threads at once (shared, it deadlocked at cohort scale).
        local = threading.local()

        def load(item: tuple[_Unit, int, int]) -> np.ndarray:
            unit, _, _ = item
            if not hasattr(local, "files"):
                # pre_buffer: one large read per column chunk instead of many small ones.
                local.files = {}
            if unit.file not in local.files:
                local.files[unit.file] = pq.ParquetFile(self.files[unit.file], pre_buffer=True)
            table = local.files[unit.file].read_row_group(
                unit.row_group, columns=["connectome"], use_threads=False
            )
            flat = table.column(0).combine_chunks().flatten().to_numpy()
            block = flat.reshape(-1, self.n_edges)
            del table
            # Arrow's allocator keeps freed pages; hand them back so memory stays flat.
            pa.default_memory_pool().release_unused()
            return block

        with ThreadPoolExecutor(max_workers=max(1, self.read_ahead)) as pool:
            # Row groups decode on threads (pyarrow releases the GIL), ``read_ahead`` at a time.
            ahead: deque[Future] = deque()
            for k, (unit, a, b) in enumerate(units):
                while len(ahead) < max(1, self.read_ahead) and k + len(ahead) < len(units):
                    ahead.append(pool.submit(load, units[k + len(ahead)]))
                block = ahead.popleft().result()
                for j in range(a, b):
                    yield int(unit.index[j]), block[unit.local[j]]

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


def _shuffled(
    samples: Iterator[tuple[int, np.ndarray]], size: int, n_edges: int, rng: np.random.Generator
) -> Iterator[tuple[int, np.ndarray]]:
    """Shuffle a stream through a buffer of ``size`` runs.

    Yields views of the buffer, each valid until the next item is drawn (then overwritten), so
    a run is copied once into the buffer and once by the consumer, never more.
    """
    buffer = np.empty((size, n_edges), dtype=np.float32)
    index = np.empty(size, dtype=np.int64)
    filled = 0
    for i, vec in samples:
        if filled < size:
            buffer[filled], index[filled] = vec, i
            filled += 1
            continue
        j = int(rng.integers(size))
        yield int(index[j]), buffer[j]
        buffer[j], index[j] = vec, i
    for j in rng.permutation(filled):
        yield int(index[j]), buffer[j]
