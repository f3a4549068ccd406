"""Parcel mean signals accumulated block by block (NiftiLabelsMasker's ``strategy="mean"``).

Only labelled voxels are touched: their flat indices are gathered once per block of volumes,
grouped by parcel, and summed in float64 with ``np.add.reduceat``. Per-voxel sums and sums of
squares over time are kept too, for the temporal SNR and the coverage of each parcel.

A volume whose labelled voxels all hold one value (scanner dropout: an all-zero volume) is
flagged as a dropout volume: the caller scrubs it like a high-motion volume, and it is left
out of the voxel statistics (tSNR, live voxels). Left in, one such volume is a common spike
in every parcel that drives every correlation towards 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcm.connectome.bold_stream import (
    DEFAULT_BLOCK_BYTES,
    BoldHeader,
    iter_volume_blocks,
    read_bold_header,
)


@dataclass
class ParcelStats:
    """What one pass over a run yields.

    Attributes
    ----------
    signals : ndarray, shape (T, R)
        float64 parcel means (0 for a parcel without voxels on this grid).
    voxel_counts : ndarray of int, shape (R,)
        Voxels of each parcel on the BOLD grid.
    live_counts : ndarray of int, shape (R,)
        Of those, voxels whose signal varies over time (the caller leaves voxels outside the
        brain mask out of ``labels``: fMRIPrep's BOLD is not masked, its background varies).
    tsnr : ndarray, shape (R,)
        Mean over the parcel's live voxels of voxel tSNR (temporal mean / temporal standard
        deviation); NaN for a parcel without live voxels.
    n_nonfinite_voxels : int
        Labelled voxels holding NaN or Inf at some volume.
    dropout : ndarray of bool, shape (T,)
        Volumes whose labelled voxels all hold the same value (dropout volumes).
    """

    signals: np.ndarray
    voxel_counts: np.ndarray
    live_counts: np.ndarray
    tsnr: np.ndarray
    n_nonfinite_voxels: int
    dropout: np.ndarray


class ParcelAccumulator:
    """Accumulate parcel means over blocks of volumes.

    Parameters
    ----------
    labels : ndarray of int, shape (X, Y, Z)
        Label image on the BOLD grid; 0 is background.
    label_ids : ndarray of int, shape (R,)
        Label values, in output column order.
    n_volumes : int
        Volumes in the run.
    slope, inter : float
        NIfTI scaling of the stored values (applied to means, which it commutes with).
    """

    def __init__(
        self,
        labels: np.ndarray,
        label_ids: np.ndarray,
        n_volumes: int,
        slope: float = 1.0,
        inter: float = 0.0,
    ) -> None:
        flat_labels = np.asarray(labels).reshape(-1, order="F")
        label_ids = np.asarray(label_ids, dtype=np.int64)
        # Output column of each voxel (-1 for background and labels absent from label_ids).
        order = np.argsort(label_ids)
        pos = np.clip(np.searchsorted(label_ids[order], flat_labels), 0, len(label_ids) - 1)
        column = np.where(label_ids[order][pos] == flat_labels, order[pos], -1)
        labelled = np.flatnonzero(column >= 0)
        # Group voxels by column (stable: voxel order kept inside a parcel for locality).
        by_column = np.argsort(column[labelled], kind="stable")
        self.index = labelled[by_column]
        self.voxel_counts = np.bincount(column[self.index], minlength=len(label_ids))
        present = np.flatnonzero(self.voxel_counts)
        self._present = present
        self._starts = np.r_[0, np.cumsum(self.voxel_counts[present])[:-1]].astype(np.intp)
        self.n_voxels = flat_labels.size
        self.n_volumes = int(n_volumes)
        self.slope, self.inter = float(slope), float(inter)
        self._sums = np.zeros((self.n_volumes, len(label_ids)), dtype=np.float64)
        self._ref: np.ndarray | None = None
        self._ref_sums = np.zeros(len(label_ids), dtype=np.float64)
        self._vox_sum = np.zeros(self.index.size, dtype=np.float64)
        self._vox_sq = np.zeros(self.index.size, dtype=np.float64)
        self._seen = 0
        self._dropout = np.zeros(self.n_volumes, dtype=bool)
        # Labelled voxels spread over every parcel: a volume is tested in full for dropout
        # only when these already agree, so a normal volume costs a few dozen comparisons.
        self._probe = np.unique(np.linspace(0, max(self.index.size - 1, 0), 64).astype(np.intp))

    def add(self, start: int, block: np.ndarray) -> None:
        """Add volumes ``start .. start + len(block)``; ``block`` is ``(k, X*Y*Z)``.

        Parameters
        ----------
        start : int
            Index of the block's first volume in the run.
        block : numpy.ndarray
            ``(k, X*Y*Z)``: ``k`` volumes, each flattened in NIfTI's (Fortran) voxel order, in the
            file's dtype (:func:`iter_volume_blocks`).

        Raises
        ------
        ValueError
            ``block`` is not 2D or has another voxel count.
        """
        if block.ndim != 2 or block.shape[1] != self.n_voxels:
            raise ValueError(f"block {block.shape} does not match {self.n_voxels} voxels")
        k = block.shape[0]
        values = np.take(block, self.index, axis=1)  # (k, n_labelled), file dtype
        work = np.float64 if values.dtype.itemsize > 4 else np.float32
        if values.dtype != work:
            values = values.astype(work)
        dropout = self._constant_rows(values)
        self._dropout[start : start + k] = dropout
        if self._ref is None:
            # Sums are taken of deviations from the first volume: small numbers, so float32
            # blocks keep ~1e-7 relative precision of the signal (a 600-unit baseline would
            # cost it), and the baseline is added back once, in float64.
            normal = np.flatnonzero(~dropout)
            self._ref = values[normal[0] if normal.size else 0].copy()
            ref64 = self._ref.astype(np.float64)
            if self._present.size:
                self._ref_sums[self._present] = np.add.reduceat(ref64, self._starts)
        # NaN/Inf propagate into the voxel sums, where result() counts them.
        with np.errstate(invalid="ignore", over="ignore"):
            dev = np.subtract(values, self._ref, out=values)
            if self._present.size:
                self._sums[start : start + k, self._present] = np.add.reduceat(
                    dev, self._starts, axis=1
                )
            if dropout.any():
                dev = dev[~dropout]  # dropout volumes say nothing of a voxel's signal
            self._vox_sum += dev.sum(axis=0)
            self._vox_sq += np.einsum("ij,ij->j", dev, dev)
        self._seen += k

    def _constant_rows(self, values: np.ndarray) -> np.ndarray:
        """Rows of ``values`` (volumes x labelled voxels) holding a single value."""
        if values.shape[1] < 2:
            return np.zeros(values.shape[0], dtype=bool)  # one voxel is not "the brain"
        probe = values[:, self._probe]
        rows = (probe == probe[:, :1]).all(axis=1)
        for i in np.flatnonzero(rows):
            rows[i] = bool((values[i] == values[i, 0]).all())  # NaN never equals: not flagged
        return rows

    @np.errstate(invalid="ignore", over="ignore")
    def result(self) -> ParcelStats:
        """Parcel means, counts, tSNR and the count of non-finite voxels."""
        if self._seen != self.n_volumes:
            raise ValueError(f"{self._seen} of {self.n_volumes} volumes were added")
        counts = self.voxel_counts
        signals = (self._sums + self._ref_sums) / np.maximum(counts, 1)
        signals[:, counts > 0] = self.slope * signals[:, counts > 0] + self.inter
        n = max(self.n_volumes - int(self._dropout.sum()), 1)
        ref = np.zeros(self.index.size) if self._ref is None else self._ref.astype(np.float64)
        dev_mean = self._vox_sum / n
        var = np.maximum(self._vox_sq / n - dev_mean**2, 0.0) * self.slope**2
        mean = self.slope * (ref + dev_mean) + self.inter
        finite = np.isfinite(mean) & np.isfinite(var)
        # Constant voxels (all zero, or outside the mask of a masked series) are dead; relative
        # threshold for rounding.
        live = finite & (var > 1e-10 * np.maximum(mean**2, 1.0))
        column = np.repeat(np.arange(len(counts)), counts)
        live_counts = np.bincount(column[live], minlength=len(counts))
        vox_tsnr = np.zeros_like(mean)
        vox_tsnr[live] = np.abs(mean[live]) / np.sqrt(var[live])
        with np.errstate(invalid="ignore", divide="ignore"):
            tsnr = np.bincount(column, weights=vox_tsnr, minlength=len(counts)) / live_counts
        tsnr[live_counts == 0] = np.nan
        return ParcelStats(
            signals=signals,
            voxel_counts=counts,
            live_counts=live_counts,
            tsnr=tsnr,
            n_nonfinite_voxels=int(np.count_nonzero(~finite)),
            dropout=self._dropout.copy(),
        )


def parcellate_file(
    path: str | Path,
    labels: np.ndarray,
    label_ids: np.ndarray,
    header: BoldHeader | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> ParcelStats:
    """Parcel means of a 4D NIfTI read once, a block of volumes at a time.

    Parameters
    ----------
    path : path-like
        4D NIfTI (``.nii`` or ``.nii.gz``) on the grid of ``labels``.
    labels : ndarray of int, shape (X, Y, Z)
        Label image resampled to the BOLD grid.
    label_ids : ndarray of int, shape (R,)
        Label values, in output column order.
    header : BoldHeader, optional
        The file's header, if already parsed.
    block_bytes : int
        Memory bound of the read buffer.

    Returns
    -------
    ParcelStats

    Raises
    ------
    ExcludedRunError
        If the file is corrupt or truncated.
    """
    header = header or read_bold_header(path)
    if tuple(header.shape[:3]) != tuple(labels.shape):
        raise ValueError(f"BOLD grid {header.shape[:3]} and labels {labels.shape} differ")
    acc = ParcelAccumulator(labels, label_ids, header.n_volumes, header.slope, header.inter)
    for start, block in iter_volume_blocks(path, block_bytes):
        acc.add(start, block)
    return acc.result()
