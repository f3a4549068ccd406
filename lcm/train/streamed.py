"""Pretraining on connectomes streamed from the feature store (``pretrain.data_loading: stream``).

A cohort loaded whole holds ``n_runs * R * R * 4`` bytes of matrices (25.6 GB for 40,000 runs of
400 ROIs, and again half of that as triangles for training). Streamed, only the identifiers and
variables are held (:class:`lcm.store.cohort.StreamedCohort`); the connectomes are read by
:class:`lcm.store.loader.ConnectomeStream`:

- once before training, in the store's order (:func:`scan_cohort`): the data fingerprint, the
  runs' digests and sketches that ``model.json`` records (the same values as of the cohort
  loaded whole), the check that every value is finite, and the runs evaluated every epoch
  (the held-out runs and as many training runs for history's ``train_eval_loss``) put aside
  as upper triangles in an unnamed temporary file (:class:`PackedConnectomes`);
- each epoch, shuffled, a batch at a time (:class:`StreamedConnectomes`): row groups in a new
  order every epoch, runs shuffled within windows of several row groups
  (:func:`shuffle_runs`), and each data
  parallel process reading its own arc of the row groups (not every process every file).

The order of the samples is the stream's, not :func:`torch.randperm`'s: a streamed run is
not the in-memory run's twin (other batches), though it is reproducible and resumes exactly.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lcm.catalogue import Catalogue
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.memory import available_memory
from lcm.io.run_digests import (
    Fingerprint,
    connectome_digests,
    encode_sketches,
    sketch_values,
)
from lcm.model.transfer import to_device
from lcm.store.cohort import Cohort, StreamedCohort
from lcm.store.layout import n_edges, vec_to_matrix
from lcm.store.loader import ConnectomeStream
from lcm.store.writer import ROW_GROUP_BYTES

log = logging.getLogger(__name__)

# Runs per batch of the pass before training (memory: this many R x R float32 matrices).
SCAN_BATCH = 128
# Bytes of upper triangles shuffled together in a training epoch's windows: eight of the
# store's ~32 MiB row groups, so that a batch mixes runs of several row groups (a row group
# holds runs of one dataset, often in subject order: 1,200 runs at 116 ROIs) whatever the atlas.
SHUFFLE_BYTES = 8 * ROW_GROUP_BYTES
# Identifier columns compared between the cohort read and the runs the stream reads.
_KEYS = ("dataset", "subject", "session", "task", "run", "window")


def memory_load_bytes(n_runs: int, n_rois: int) -> int:
    """Bytes pretraining holds with ``data_loading: memory``: per run the ``R x R`` matrix,
    the stored upper triangle read (``R (R - 1) / 2``) and the triangle training keeps
    (``R (R + 1) / 2``), float32: ``8 R^2`` bytes.

    Parameters
    ----------
    n_runs : int
        Runs loaded.
    n_rois : int
        ROIs of the atlas.

    Returns
    -------
    int
    """
    return 4 * n_runs * (n_rois * n_rois + n_rois * (n_rois - 1) // 2 + n_rois * (n_rois + 1) // 2)


def check_memory_load(
    n_runs: int, n_rois: int, what: str, memory: int | None = None, processes: int = 1
) -> None:
    """Refuse to load a cohort whole that this job's memory cannot hold; warn past half of it.

    Parameters
    ----------
    n_runs, n_rois : int
        The cohort's runs and ROIs.
    what : str
        The cohort, for the message (datasets and atlas).
    memory : int, optional
        Bytes available (default: :func:`lcm.io.memory.available_memory`, the job's cgroup).
    processes : int, default 1
        Data parallel processes on this node (``LOCAL_WORLD_SIZE`` under torchrun): each one
        loads the whole cohort.

    Raises
    ------
    ConfigError
        Naming the bytes needed and available, and ``pretrain.data_loading: stream``.
    """
    need = memory_load_bytes(n_runs, n_rois) * processes
    have = available_memory() if memory is None else memory
    size = f"{n_runs} runs of {n_rois} ROIs ({need / 1e9:.1f} GB"
    size += f" for the {processes} processes on this node)" if processes > 1 else ")"
    if need > have:
        raise ConfigError(
            f"pretrain.data_loading: memory would load {what} whole: {size}, and this job can "
            f"use {have / 1e9:.1f} GB.",
            hint="Set pretrain.data_loading: stream (the connectomes are read a batch at a "
            "time), or give the pretrain rule more memory (resources: mem_mb).",
        )
    if need > have / 2:
        log.warning(
            "pretrain: loading %s whole takes %s of the %.1f GB this job can use; "
            "pretrain.data_loading: stream reads them a batch at a time",
            what,
            size,
            have / 1e9,
        )


def shuffle_runs(n_rois: int, batch_size: int) -> int:
    """Runs shuffled together per window of the training stream: :data:`SHUFFLE_BYTES` of
    triangles (about eight row groups), at least 512 runs and one batch.

    Parameters
    ----------
    n_rois : int
        ROIs of the atlas.
    batch_size : int
        The global batch size (``pretrain.batch_size``).

    Returns
    -------
    int
    """
    return max(512, batch_size, SHUFFLE_BYTES // (4 * max(1, n_edges(n_rois))))


@dataclass
class Scan:
    """What one pass over a streamed cohort's connectomes gives (:func:`scan_cohort`).

    Attributes
    ----------
    fingerprint : str
        :meth:`lcm.store.cohort.Cohort.fingerprint` of the cohort loaded whole.
    digests : numpy.ndarray
        :func:`lcm.io.run_digests.connectome_digests` of every run.
    sketches : dict
        :func:`lcm.io.run_digests.connectome_sketches` of every run.
    loaded : PackedConnectomes
        The connectomes of the runs asked for, in the order asked, as upper triangles in an
        unnamed temporary file (:class:`PackedConnectomes`).
    """

    fingerprint: str
    digests: np.ndarray
    sketches: dict[str, Any]
    loaded: PackedConnectomes

    def cohort(self, of: StreamedCohort, rows: np.ndarray, part: slice) -> Cohort:
        """The runs ``rows[part]`` of ``of`` (rows as :func:`scan_cohort` was given them) as
        a :class:`Cohort` whose connectomes stay in the file (a slice: nothing copied).

        Parameters
        ----------
        of : StreamedCohort
            The cohort scanned.
        rows : numpy.ndarray of int
            The rows :func:`scan_cohort` kept.
        part : slice
            Positions in ``rows`` (and in :attr:`loaded`).

        Returns
        -------
        Cohort
        """
        picked = rows[part]
        return Cohort(
            ids=of.ids.iloc[picked].reset_index(drop=True),
            fc=self.loaded.view(part),  # type: ignore[arg-type]  # read as matrices by slices
            variables=of.variables.iloc[picked].reset_index(drop=True),
            roi_names=of.roi_names,
            atlas=of.atlas,
        )


class PackedConnectomes:
    """Connectomes held as upper triangles in a file-backed map, read as matrices by slices.

    What the held-out and monitoring runs of streamed pretraining need: ``len(fc)`` and
    ``fc[start:stop]`` as ``(n, R, R)`` float32 matrices, diagonal 1 (how
    :func:`lcm.train.pretrain.predict_outputs` reads them), while their pages stay in the
    file: the kernel reclaims them under memory pressure, and the job's peak does not grow
    with the hold-out. The file is unnamed (deleted when the map is), so a killed job leaves
    none behind.

    Parameters
    ----------
    triangles : numpy.ndarray, shape (n, R (R - 1) / 2)
        Upper triangles (a ``numpy.memmap``, or any array).
    n_rois : int
    """

    def __init__(self, triangles: np.ndarray, n_rois: int) -> None:
        self.triangles, self.n_rois = triangles, n_rois

    @classmethod
    def temporary(cls, n_runs: int, n_rois: int) -> PackedConnectomes:
        """An empty map of ``n_runs`` triangles in an unnamed file in the temporary folder
        (``TMPDIR``: a SLURM job's local scratch where the cluster sets it).

        Parameters
        ----------
        n_runs : int
            Runs it will hold.
        n_rois : int
            ROIs of the atlas.

        Returns
        -------
        PackedConnectomes
            Zero-filled; in memory where it holds nothing.
        """
        width = n_rois * (n_rois - 1) // 2
        if n_runs == 0 or width == 0:
            return cls(np.empty((n_runs, width), dtype=np.float32), n_rois)
        with tempfile.TemporaryFile() as fh:  # the map keeps the file open; closed, it is gone
            fh.truncate(n_runs * width * 4)
            triangles = np.memmap(fh, dtype=np.float32, mode="r+", shape=(n_runs, width))
        return cls(triangles, n_rois)

    def __len__(self) -> int:
        return len(self.triangles)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n, R, R)``, the shape of the matrices."""
        return (len(self.triangles), self.n_rois, self.n_rois)

    def __getitem__(self, key: slice) -> np.ndarray:
        """The matrices ``(n, R, R)`` of the runs of slice ``key``, read from the file."""
        if not isinstance(key, slice):
            raise TypeError("PackedConnectomes: read runs by slices (fc[start:stop])")
        return vec_to_matrix(np.asarray(self.triangles[key]), self.n_rois, diagonal=1.0)

    def view(self, part: slice) -> PackedConnectomes:
        """The runs of slice ``part``, still in the file (nothing read or copied).

        Parameters
        ----------
        part : slice
            Positions of the runs.

        Returns
        -------
        PackedConnectomes
        """
        return PackedConnectomes(self.triangles[part], self.n_rois)


def cohort_stream(cohort: StreamedCohort, **options: Any) -> ConnectomeStream:
    """A :class:`ConnectomeStream` over the runs of ``cohort``, checked to be the same runs.

    Parameters
    ----------
    cohort : StreamedCohort
    **options
        :class:`ConnectomeStream`'s keyword arguments; ``exclude`` is added to the cohort's own.

    Raises
    ------
    InputDataError
        The store's runs are no longer those the cohort was read from (an ``lcm store`` of one
        of its datasets meanwhile).
    """
    tables = (cohort.exclude, options.pop("exclude", None))
    frames = [t[["dataset", "subject"]] for t in tables if t is not None]
    stream = ConnectomeStream(
        cohort.store,
        cohort.atlas,
        cohort.datasets,
        exclude=pd.concat(frames, ignore_index=True) if frames else None,
        **options,
    )
    return stream


def check_same_runs(stream: ConnectomeStream, ids: pd.DataFrame, what: str) -> None:
    """Refuse a stream whose runs are not ``ids``, row for row.

    Parameters
    ----------
    stream : ConnectomeStream
        The stream that training reads.
    ids : pandas.DataFrame
        The cohort's identifiers, compared on the run key columns they have.
    what : str
        What is being read, opening the error message.

    Raises
    ------
    InputDataError
        Naming the store and what to do.
    """
    keys = [k for k in _KEYS if k in ids.columns]
    mine = ids[keys].reset_index(drop=True)
    theirs = stream.runs[keys].reset_index(drop=True) if set(keys) <= set(stream.runs) else None
    if (
        theirs is None
        or len(theirs) != len(mine)
        or not mine.astype(str).equals(theirs.astype(str))
    ):
        got = "?" if theirs is None else len(theirs)
        raise InputDataError(
            f"{what}: the feature store's runs changed while they were read ({len(mine)} runs "
            f"expected, {got} streamed from {stream.files[0]} ...).",
            hint="An `lcm store` of one of the datasets wrote meanwhile: start again once it has "
            "finished.",
        )


def scan_cohort(
    cohort: StreamedCohort, catalogue: Catalogue, rows: np.ndarray, quiet: bool = False
) -> Scan:
    """Read every connectome of ``cohort`` once, in order, without holding them all.

    Parameters
    ----------
    cohort : StreamedCohort
    catalogue : Catalogue
        Types the variables the fingerprint hashes.
    rows : numpy.ndarray of int
        Rows of ``cohort`` to keep (held-out and monitoring runs), in a temporary file
        (:class:`PackedConnectomes`): :meth:`Scan.cohort` gives them as cohorts.
    quiet : bool
        No progress bar.

    Returns
    -------
    Scan

    Raises
    ------
    InputDataError
        No runs, or connectomes with NaN or infinite values (as the cohort loaded whole).
    """
    what = f"pretraining cohort ({cohort.atlas})"
    if not len(cohort):
        raise InputDataError(f"{what}: no connectomes.", hint="Check the datasets selected.")
    stream = cohort_stream(cohort, shuffle=False, drop_last=False, batch_size=SCAN_BATCH)
    check_same_runs(stream, cohort.ids, what)
    n_rois = len(cohort.roi_names)
    rows = np.asarray(rows, dtype=np.int64)
    slot = np.full(len(cohort), -1, dtype=np.int64)  # row -> position among the kept rows
    slot[rows] = np.arange(len(rows))
    kept = PackedConnectomes.temporary(len(rows), n_rois)
    fingerprint = Fingerprint(cohort.ids)
    digests, sketches = [], []
    bad, done = 0, 0
    bar = tqdm(stream, desc="pretrain: reading the cohort", leave=False, disable=quiet)
    for batch in bar:
        index = batch["index"].numpy()
        if not np.array_equal(index, np.arange(done, done + len(index))):
            raise RuntimeError(f"{what}: the stream skipped runs (at run {done}).")
        vecs = batch["connectome"].numpy()
        mats = vec_to_matrix(vecs, n_rois, diagonal=1.0)
        bad += int((~np.isfinite(mats)).reshape(len(mats), -1).any(1).sum())
        fingerprint.add_connectomes(mats)
        digests.append(connectome_digests(mats))
        sketches.append(sketch_values(mats))
        mine = slot[index] >= 0
        kept.triangles[slot[index[mine]]] = vecs[mine]
        done += len(index)
    if done != len(cohort):
        raise RuntimeError(f"{what}: {done} runs streamed of {len(cohort)}.")
    if bad:
        raise InputDataError(
            f"{what}: {bad} connectome(s) contain NaN or infinite values.",
            hint="Exclude runs with constant ROI signals (zero variance) in the connectome stage.",
        )
    log.info(
        "read %d connectomes of %s (%d held out or monitored, kept in a temporary file)",
        done,
        cohort.datasets,
        len(rows),
    )
    return Scan(
        fingerprint=fingerprint.hexdigest(cohort.variables, catalogue.to_dict()),
        digests=np.concatenate(digests),
        sketches=encode_sketches(n_rois, np.concatenate(sketches)),
        loaded=kept,
    )


class StreamedConnectomes:
    """Training connectomes streamed batch by batch, in the shape steps take them.

    The interface of :class:`lcm.train.loop.DeviceConnectomes` that
    :class:`lcm.train.objective.PretrainStep` and :class:`lcm.train.graphed.GraphedPretrainStep`
    use, over the batch the stream gave last: :meth:`batches` yields each batch's sample
    indices (rows of the training cohort) and keeps its connectomes for :meth:`take`.
    A batch travels to the device as the stored upper triangles (``R (R - 1) / 2`` values a
    sample, from pinned memory without blocking) and one gather there rebuilds the symmetric
    matrices, diagonal 1: the values of the cohort loaded whole, exactly.

    Parameters
    ----------
    stream : ConnectomeStream
        This process's stream (its rank and ``batch_size`` set), whose ``runs`` are the
        training rows in order.
    device : torch.device
    """

    resident = False

    def __init__(self, stream: ConnectomeStream, device: torch.device) -> None:
        self.stream, self.device = stream, device
        r = self.n_rois = len(stream.roi_names)
        self.row_width = stream.n_edges
        rows, cols = torch.triu_indices(r, r, offset=1)
        lookup = torch.zeros(r, r, dtype=torch.long)  # the diagonal's entry is overwritten
        lookup[rows, cols] = torch.arange(len(rows))
        lookup[cols, rows] = torch.arange(len(rows))
        self.lookup = lookup.flatten().to(device)
        self.diagonal = torch.eye(r, dtype=torch.bool).flatten().to(device)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.stream.runs)

    def batches(self, epoch: int, skip: int = 0) -> Iterator[torch.Tensor]:
        """Sample indices of each of this process's batches of ``epoch``, after ``skip``.

        A resumed epoch yields the uninterrupted epoch's batches from batch ``skip`` on, the
        same bit for bit, and reads only the row groups these batches take runs from (those
        of the few runs carried into them from the shuffle window before included), not again
        those of the batches before (:meth:`~lcm.store.loader.ConnectomeStream.iter_from`).

        Parameters
        ----------
        epoch : int
            Sets the stream's shuffle (:meth:`~lcm.store.loader.ConnectomeStream.set_epoch`).
        skip : int, default 0
            Batches already trained on in this epoch.

        Yields
        ------
        torch.Tensor
            Sample indices of the batch.
        """
        self.stream.set_epoch(epoch)
        for batch in self.stream.iter_from(skip):
            index = batch["index"]
            self._batch = (index, batch["connectome"])
            yield index
        self._batch = None

    def host_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Upper triangles ``[b, R (R - 1) / 2]`` (host) of samples of the current batch.

        ``index`` may repeat samples (a padded batch) and take them in any order.

        Parameters
        ----------
        index : torch.Tensor
            Sample indices, all of the current batch.

        Raises
        ------
        RuntimeError
            No batch streamed yet, or a sample not in the current batch.
        """
        if self._batch is None:
            raise RuntimeError("StreamedConnectomes: no batch streamed yet")
        current, vecs = self._batch
        if torch.equal(index, current):
            return vecs
        order = torch.argsort(current)
        at = torch.searchsorted(current[order], index).clamp_(max=len(current) - 1)
        pos = order[at]
        if not torch.equal(current[pos], index):
            raise RuntimeError("StreamedConnectomes: samples asked for are not in this batch")
        return vecs[pos]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Symmetric matrices ``[b, R, R]`` of samples of the current batch, on the device.

        Parameters
        ----------
        index : torch.Tensor
            Sample indices, all of the current batch.
        """
        return self.expand(to_device(self.host_rows(index), self.device))

    def prefetch(self, index: torch.Tensor) -> None:
        """Nothing to start: the stream reads ahead on its own threads.

        Parameters
        ----------
        index : torch.Tensor
            The next batch's sample indices (unused).
        """

    def expand(self, rows: torch.Tensor) -> torch.Tensor:
        """Upper triangles ``[b, R (R - 1) / 2]`` on the device -> symmetric ``[b, R, R]``.

        Parameters
        ----------
        rows : torch.Tensor, shape (b, R (R - 1) / 2)
            Upper triangles, diagonal excluded (it is set to 1).
        """
        out = rows[:, self.lookup].masked_fill_(self.diagonal, 1.0)
        return out.view(len(rows), self.n_rois, self.n_rois)
