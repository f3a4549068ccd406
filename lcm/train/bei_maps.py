"""Ridge maps from Fisher-z connectomes to BEI variables, fitted on the pretraining cohorts.

The first half of the ``bei-linear`` baseline (:mod:`lcm.evaluate.bei_linear`), kept apart so
that ``lcm bei-maps`` fits and saves the maps with numpy and scipy only, beside the
pretraining checkpoint of the same cohort (a job of its own: adding or dropping bei-linear
reruns no pretraining).

Memory is bounded by the solve, not by the features (``n_runs x R(R-1)/2`` float64, 25 GB at
40,000 runs of 400 ROIs): the connectomes go, as read, to an unnamed temporary file and are
read back a block at a time (:class:`_Edges`); the fit holds the Gram matrix of the fewer of
training runs and edges and its eigenvectors (:func:`solve_memory_bytes`), one
eigendecomposition serving every penalty on the hold-out and the maps at the penalties chosen
(the closed form of ridge), and refuses a job that cannot hold them before reading any
connectome (:func:`check_solve_memory`).
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.linalg import blas, eigh

from lcm.exceptions import CheckpointError, ConfigError, InputDataError
from lcm.io.atomic import atomic_path
from lcm.io.memory import available_memory
from lcm.io.run_digests import Fingerprint
from lcm.store.layout import (
    fisher_z,
    matrix_to_vec,
    n_edges,
    roi_names_difference,
    vec_to_matrix,
)
from lcm.store.writer import ROW_GROUP_BYTES
from lcm.train.outputs import MAPS_FILE  # noqa: F401  (re-exported: the maps' file name)

if TYPE_CHECKING:
    from lcm.catalogue import Catalogue
    from lcm.store.cohort import StreamedCohort

log = logging.getLogger(__name__)


def connectome_features(fc: np.ndarray) -> np.ndarray:
    """Fisher-z upper triangles ``(n, R(R-1)/2)`` (as the connectome baselines use).

    Parameters
    ----------
    fc : array-like, shape (n, R, R)
        Correlation matrices.

    Returns
    -------
    numpy.ndarray of float64
    """
    return fisher_z(matrix_to_vec(np.asarray(fc, dtype=np.float64)))


ALPHAS = tuple(float(a) for a in np.logspace(0, 6, 13))
HOLDOUT_FRACTION = 0.15
# Values a column needs in the whole cohort to be a target of bei_target_matrix (public, and
# the benchmark's reference fit); the fit itself counts training subjects (MIN_TRAIN_VALUES).
MIN_PRESENT = 10
# Training subjects with a value a map needs by default (lcm bei-maps --min-values), or, for
# a level's indicator, training subjects with a run in the level and with one outside it.
# Subjects, not runs: the hold-out that picks the penalty draws HOLDOUT_FRACTION of the
# subjects, and a subject's runs share its values (age, sex, a diagnosis), so its 4 runs are
# one independent value, not 4. 20 training subjects come with about 20 x 0.15 / 0.85 = 3.5
# held-out ones, at least the 3 values the hold-out needs to score a penalty at all
# (_not_scorable); with fewer, the penalty is a default guess and a map of every edge (6,670
# at AAL-116) fitted on a handful of values is noise that bei-linear would read as a feature.
MIN_TRAIN_VALUES = 20
# The penalty of a map whose hold-out cannot choose one (too few values, or a single value).
DEFAULT_ALPHA = 1e3
# A held-out spread this small relative to the variable's largest magnitude is round-off.
RELATIVE_SPREAD = 1e-9
# Bytes of float64 features in one block of the fit (a few such blocks live at once): the
# features are read back from their temporary file a block at a time.
BLOCK_BYTES = 64 * 2**20
# Runs copied at a time from the store or the matrices given (memory: their triangles and,
# streamed, their matrices for the fingerprint).
STREAM_BATCH = 128
# Runs hashed at a time for the data fingerprint, as R x R matrices (the bytes it hashes).
FINGERPRINT_RUNS = 16


@dataclass
class BEIMaps:
    """Ridge maps from Fisher-z connectome features to BEI variables.

    Attributes
    ----------
    names : list of str
        One per output column (``age``, ``sex=M``, ``parkinsons=PD`` ...); empty when no
        variable could be mapped (each in :attr:`left_out` or :attr:`constant`).
    x_mean, x_scale : numpy.ndarray, shape (E,)
        Feature standardisation (pretraining training part).
    coef : numpy.ndarray, shape (E, V)
    intercept : numpy.ndarray, shape (V,)
    alpha : numpy.ndarray, shape (V,)
        Penalty chosen per output on the pretraining hold-out (:data:`DEFAULT_ALPHA` where
        the hold-out cannot score the variable).
    heldout_r2 : numpy.ndarray, shape (V,)
        Hold-out R² of each map at its penalty (how well the variable is read from FC); NaN
        where the variable is not scorable on the hold-out (fewer than 3 values, or one value).
    atlas : str or None
        Atlas of the connectomes the maps were fitted on (``None``: maps written before it was
        recorded).
    roi_names : list of str or None
        Their ROI names in row order: each feature is the edge of two of them, so connectomes
        of another order would be read through the wrong edges (``None``: not recorded).
    data_fingerprint : str or None
        The pretraining cohort's data fingerprint (:func:`lcm.model.checkpoint.cohort_fingerprint`),
        as the checkpoint fitted on the same cohort records it in ``model.json``: maps beside
        a checkpoint of other data are refused (``None``: not recorded).
    left_out : dict of str to int
        The targets that got no map, each with its training subjects with a value (a
        level's indicator: the fewer of its training subjects in the level and outside it),
        fewer than :attr:`min_values`; 0 for one whose values are all in the held-out
        subjects. Empty in maps written before it was recorded.
    min_values : int or None
        The training subjects a map needed (:data:`MIN_TRAIN_VALUES` by default; ``None``: maps
        written before it was recorded).
    constant : list of str
        The targets with enough training subjects that got no map because they have one value
        in every run (nothing to map). Empty in maps written before it was recorded.
    """

    names: list[str]
    x_mean: np.ndarray
    x_scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: np.ndarray
    heldout_r2: np.ndarray
    atlas: str | None = None
    roi_names: list[str] | None = None
    data_fingerprint: str | None = None
    left_out: dict[str, int] = field(default_factory=dict)
    min_values: int | None = None
    constant: list[str] = field(default_factory=list)

    def transform(self, fc: np.ndarray) -> np.ndarray:
        """Predicted variables ``(n, V)`` of connectomes ``(n, R, R)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices, ROIs in :attr:`roi_names` order.

        Returns
        -------
        numpy.ndarray, shape (n, V)
            Columns in :attr:`names` order.
        """
        x = (connectome_features(fc) - self.x_mean) / self.x_scale
        return x @ self.coef + self.intercept

    def save(self, path: str | Path) -> Path:
        """Write the maps as a ``.npz`` (no pickled objects), atomically (:mod:`lcm.io.atomic`:
        a hidden temporary file renamed onto ``path`` once complete).

        Parameters
        ----------
        path : path-like
            The file to write, taken as given (no ``.npz`` is appended).

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        path = Path(path)
        data = {} if self.atlas is None else {"atlas": np.array(self.atlas, dtype=str)}
        if self.roi_names is not None:
            data["roi_names"] = np.array(self.roi_names, dtype=str)
        if self.data_fingerprint is not None:
            data["data_fingerprint"] = np.array(self.data_fingerprint, dtype=str)
        if self.min_values is not None:
            data["min_values"] = np.array(self.min_values, dtype=np.int64)
        # The targets without a map, beside their training subjects (always written: an empty
        # record says that none was left out).
        data["left_out_names"] = np.array(list(self.left_out), dtype=str)
        data["left_out_counts"] = np.array(list(self.left_out.values()), dtype=np.int64)
        data["constant_names"] = np.array(self.constant, dtype=str)
        # Through an open file: given a name without .npz, np.savez would append one.
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                names=np.array(self.names, dtype=str),
                x_mean=self.x_mean,
                x_scale=self.x_scale,
                coef=self.coef,
                intercept=self.intercept,
                alpha=self.alpha,
                heldout_r2=self.heldout_r2,
                **data,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> BEIMaps:
        """Read maps written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            A ``.npz`` file of :meth:`save`.

        Returns
        -------
        BEIMaps
            ``atlas``, ``roi_names``, ``data_fingerprint`` and ``min_values`` None, and
            ``left_out`` and ``constant`` empty, where the file predates them.

        Raises
        ------
        InputDataError
            The file is missing, unreadable or lacks an array.
        """
        hint = "Rerun `lcm bei-maps`, which writes them beside the checkpoint."
        if Path(path).is_file() and not zipfile.is_zipfile(path):
            # np.load takes any other file for a pickle: an empty one raised EOFError with a
            # traceback, a text one "contains pickled (object) data".
            raise InputDataError(
                f"Cannot read the BEI ridge maps {path}: not an .npz archive (empty, cut short, "
                "or another kind of file).",
                hint=hint,
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    names=[str(n) for n in z["names"]],
                    x_mean=z["x_mean"],
                    x_scale=z["x_scale"],
                    coef=z["coef"],
                    intercept=z["intercept"],
                    alpha=z["alpha"],
                    heldout_r2=z["heldout_r2"],
                    # Absent from maps written before they were recorded.
                    atlas=str(z["atlas"]) if "atlas" in z.files else None,
                    roi_names=[str(n) for n in z["roi_names"]] if "roi_names" in z.files else None,
                    data_fingerprint=(
                        str(z["data_fingerprint"]) if "data_fingerprint" in z.files else None
                    ),
                    left_out=(
                        {
                            str(n): int(c)
                            for n, c in zip(z["left_out_names"], z["left_out_counts"], strict=True)
                        }
                        if "left_out_names" in z.files
                        else {}
                    ),
                    min_values=int(z["min_values"]) if "min_values" in z.files else None,
                    constant=(
                        [str(n) for n in z["constant_names"]] if "constant_names" in z.files else []
                    ),
                )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            # EOFError, BadZipFile: an archive whose members are cut short.
            message = f"Cannot read the BEI ridge maps {path}: {exc}"
            raise InputDataError(message, hint=hint) from exc

    def check_fits(
        self, source: str | Path, atlas: str | None = None, roi_names: list[str] | None = None
    ) -> None:
        """Refuse connectomes of another atlas, ROI count or ROI order than the maps'.

        Parameters
        ----------
        source : path-like
            Where the maps come from (named in errors).
        atlas : str, optional
            Atlas of the data the maps are to read.
        roi_names : list of str, optional
            Their ROI names in row order. Maps that record none (written before the record)
            are checked for the ROI count only.

        Raises
        ------
        CheckpointError
            A mismatch: the maps would read every edge as another pair of regions.
        """
        hint = (
            "Rerun `lcm pretrain` and `lcm bei-maps` on this store's atlas, or rebuild the "
            "store with the maps' atlas and its labels order."
        )
        if atlas is not None and self.atlas is not None and atlas != self.atlas:
            raise CheckpointError(
                f"BEI ridge maps {source} were fitted on atlas {self.atlas!r}, the data use "
                f"{atlas!r}.",
                hint=hint,
            )
        if roi_names is None:
            return
        if self.roi_names is None:
            log.debug("maps %s record no ROI names: only the ROI count is checked", source)
            if len(self.x_mean) != n_edges(len(roi_names)):
                raise CheckpointError(
                    f"BEI ridge maps {source} read {len(self.x_mean)} edges, the data's "
                    f"{len(roi_names)} ROIs have {n_edges(len(roi_names))}.",
                    hint=hint,
                )
            return
        difference = roi_names_difference(self.roi_names, list(roi_names), "the maps")
        if difference is not None:
            raise CheckpointError(
                f"BEI ridge maps {source} were fitted on other ROIs than the data's: {difference}.",
                hint=hint,
            )


def bei_target_matrix(variables: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Targets ``(n, V)`` (NaN where missing) and their names, from catalogue-typed variables.

    Numeric columns (float: continuous, ordinal) are kept as they are; object columns (levels of
    binary and categorical variables) become one 0/1 indicator per level (a binary variable
    keeps one). Columns with fewer than :data:`MIN_PRESENT` values, or constant, are dropped.

    Parameters
    ----------
    variables : pandas.DataFrame
        Catalogue-typed variables, one row per run (:attr:`lcm.store.cohort.Cohort.variables`).

    Returns
    -------
    targets : numpy.ndarray, shape (n, V)
    names : list of str
        ``variable`` for a numeric column, ``variable=level`` for an indicator; empty (and
        ``targets`` of width 0) when no column is kept.
    """
    cols, names, _ = _target_columns(variables)
    keep = [
        i for i, c in enumerate(cols) if np.isfinite(c).sum() >= MIN_PRESENT and np.nanstd(c) > 0
    ]
    if not keep:
        return np.zeros((len(variables), 0)), []
    return np.column_stack([cols[i] for i in keep]), [names[i] for i in keep]


def _target_columns(
    variables: pd.DataFrame,
) -> tuple[list[np.ndarray], list[str], list[bool]]:
    """Every target column of :func:`bei_target_matrix`, unfiltered, with whether each is a
    level's indicator."""
    cols, names, indicator = [], [], []
    for name in variables.columns:
        col = variables[name]
        if pd.api.types.is_numeric_dtype(col):
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            cols.append(values)
            names.append(str(name))
            indicator.append(False)
            continue
        present = col.notna().to_numpy()
        levels = sorted({str(v) for v in col[present]})
        for level in levels[1:] if len(levels) == 2 else levels:
            values = np.where(present, (col.astype(str) == level).to_numpy(float), np.nan)
            cols.append(values)
            names.append(f"{name}={level}")
            indicator.append(True)
    return cols, names, indicator


def check_min_values(min_values: object) -> int:
    """The training subjects a map needs, refused unless a whole number of at least 1.

    Parameters
    ----------
    min_values : object
        The setting as given (``lcm bei-maps --min-values``; :data:`MIN_TRAIN_VALUES` by
        default).

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        Not a whole number (a bool, a float, a string) or below 1.
    """
    if (
        isinstance(min_values, bool)
        or not isinstance(min_values, int | np.integer)
        or min_values < 1
    ):
        raise ConfigError(
            f"bei-linear: min_values {min_values!r} is not a whole number of training "
            "subjects of at least 1.",
            hint=f"Pass lcm bei-maps --min-values N (the workflow's "
            f"evaluate.bei_linear_min_values) with N >= 1 (default {MIN_TRAIN_VALUES}: the "
            "hold-out choosing each penalty then sees about 3 subjects with a value).",
        )
    return int(min_values)


def holdout_rows(groups: np.ndarray, seed: int) -> np.ndarray:
    """The runs held out to choose the penalties: about :data:`HOLDOUT_FRACTION` of the
    subjects, drawn with ``seed`` (none below 10 subjects).

    Parameters
    ----------
    groups : numpy.ndarray, shape (n,)
        Subject of each run.
    seed : int

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        True for a held-out run.
    """
    subjects = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_out = max(1, round(HOLDOUT_FRACTION * len(subjects))) if len(subjects) >= 10 else 0
    return np.isin(groups, rng.permutation(subjects)[:n_out])


def solve_memory_bytes(n_train: int, n_held: int, n_rois: int, n_outputs: int) -> int:
    """Bytes the fit of :func:`fit_bei_maps` holds at its peak, whatever the features' size.

    The Gram matrix of the training runs (``X X^T``, ``m = n_train`` square, when runs are
    fewer than edges; else ``X^T X``, ``m = E`` square) and its eigenvectors, ``16 m^2``; in
    the first case the held-out runs' products with the training runs (``8 n_held n_train``);
    the targets, predictions and maps; feature blocks (:func:`block_bytes`, a few at once)
    and the streamed batches. The features themselves stay in a temporary file.

    Parameters
    ----------
    n_train, n_held : int
        Training and held-out runs.
    n_rois : int
        ROIs of the atlas (``E = R (R - 1) / 2`` edges).
    n_outputs : int
        Maps fitted (targets after :func:`bei_target_matrix`).

    Returns
    -------
    int
    """
    edges = n_edges(n_rois)
    m = min(n_train, edges)
    cross = n_held * n_train if n_train <= edges else 0
    # Targets (a few copies), held-out predictions per penalty, maps (per penalty: primal).
    runs = n_train + n_held
    small = n_outputs * (4 * runs + len(ALPHAS) * (n_held + edges) + 2 * edges)
    features = 8 * runs * edges  # what is never held: the blocks are slices of it
    blocks = 4 * min(block_bytes(n_train, edges), features)
    stream = 4 * (FINGERPRINT_RUNS * n_rois * n_rois + 2 * min(STREAM_BATCH, runs) * edges)
    stream += min(4 * ROW_GROUP_BYTES, features)  # row groups read ahead, decoded
    return 8 * (2 * m * m + cross + small) + blocks + stream


def check_solve_memory(
    n_train: int, n_held: int, n_rois: int, n_outputs: int, what: str, memory: int | None = None
) -> None:
    """Refuse a fit whose Gram matrix this job's memory cannot hold (:func:`solve_memory_bytes`).

    Parameters
    ----------
    n_train, n_held, n_rois, n_outputs : int
        As :func:`solve_memory_bytes`.
    what : str
        The cohort, for the message.
    memory : int, optional
        Bytes available (default: :func:`lcm.io.memory.available_memory`, the job's cgroup).

    Raises
    ------
    ConfigError
        Naming the runs, edges and bytes needed and available, and what to change.
    """
    need = solve_memory_bytes(n_train, n_held, n_rois, n_outputs)
    have = available_memory() if memory is None else memory
    if need <= have:
        return
    edges = n_edges(n_rois)
    m = min(n_train, edges)
    raise ConfigError(
        f"lcm bei-maps: the ridge maps of {what} ({n_train} training and {n_held} held-out "
        f"runs, {n_rois} ROIs: {edges} edges) solve a {m} x {m} Gram matrix, "
        f"{need / 1e9:.1f} GB with its eigenvectors, and this job can use {have / 1e9:.1f} GB.",
        hint="Fit the maps on fewer runs (fewer --datasets) or an atlas of fewer ROIs, or run "
        "lcm bei-maps on a node with more memory (the bei_maps rule's resources: mem_mb).",
    )


def _reserve(fh: IO[bytes], size: int) -> None:
    """Give the temporary file ``size`` bytes on disk now: a full disk is an error here, not
    a SIGBUS when a page of the map is written."""
    try:
        os.posix_fallocate(fh.fileno(), 0, size)
        return
    except AttributeError:  # not on macOS
        pass
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            folder = tempfile.gettempdir()  # TMPDIR, or Python's fallback where it is unusable
            try:
                free = f"{_size(shutil.disk_usage(folder).free)} free there"
            except OSError:
                free = "the room left there unknown"
            raise ConfigError(
                f"lcm bei-maps: no room for the cohort's edges, {_size(size)} in a temporary "
                f"file in {folder} (TMPDIR): {exc.strerror}; {free}.",
                hint="Point TMPDIR to a folder with room (a node's local scratch).",
            ) from None
    fh.truncate(size)  # file systems without fallocate


def _size(n: float) -> str:
    """Bytes for a message, in the unit that keeps them readable (``4.2 KiB``, ``21.0 GiB``)."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def block_bytes(n_train: int, edges: int) -> int:
    """Bytes of float64 features in one block of the fit: :data:`BLOCK_BYTES`, or a quarter
    of the Gram matrix where that is less (blocks never outweigh the solve), at least 1 MiB.

    Parameters
    ----------
    n_train, edges : int
        Training runs and edges.

    Returns
    -------
    int
    """
    m = min(n_train, edges)
    return min(BLOCK_BYTES, max(2**20, 2 * m * m))


class _Edges:
    """The cohort's upper triangles as read (not yet Fisher-z) in an unnamed temporary file
    under ``TMPDIR``, training runs first, stored by blocks of edges (each block its runs x
    its edges, contiguous), read back a block at a time as standardised float64 features.

    Blocks hold about :func:`block_bytes` of features: a few edges of every run when the
    runs are fewer than the edges (the dual form sums ``X X^T`` over blocks of edges), else
    every edge (the primal form reads blocks of runs). Storing the values as read (float32
    from the store) rather than the standardised float64 features halves the file; the
    features are recomputed, bit for bit, at each of the two reads. Pages of the file are
    let go once read or written (``MADV_DONTNEED``): they stay in the page cache, which the
    kernel reclaims, and out of the job's resident memory.
    """

    def __init__(self, n_rows: int, n_train: int, n_edges: int, dtype: np.dtype) -> None:
        self.n_rows, self.n_train, self.n_edges = n_rows, n_train, n_edges
        self.dual = n_train <= n_edges
        self.block_bytes = block_bytes(n_train, n_edges)
        width = max(1, self.block_bytes // (8 * max(1, n_rows))) if self.dual else n_edges
        self.spans = [(a, min(a + width, n_edges)) for a in range(0, n_edges, width)]
        self.bad = 0
        self.itemsize = np.dtype(dtype).itemsize
        size = n_rows * n_edges
        self._map: mmap.mmap | None = None
        if size:
            with tempfile.TemporaryFile() as fh:  # the map keeps it open; closed, it is gone
                _reserve(fh, size * self.itemsize)
                self._map = mmap.mmap(fh.fileno(), size * self.itemsize)
            flat = np.frombuffer(self._map, dtype=dtype)
        else:
            flat = np.empty(0, dtype=dtype)
        self.blocks = [flat[n_rows * a : n_rows * b].reshape(n_rows, b - a) for a, b in self.spans]

    def write(self, rows: np.ndarray, vecs: np.ndarray) -> None:
        """Store the triangles of some runs.

        Parameters
        ----------
        rows : numpy.ndarray of int
            Their positions in the file (:func:`_rows_of`).
        vecs : numpy.ndarray, shape (len(rows), E)
            Their upper triangles.
        """
        self.bad += int((~np.isfinite(vecs)).any(axis=1).sum())
        for (a, b), block in zip(self.spans, self.blocks, strict=True):
            block[rows] = vecs[:, a:b]

    def release(self, start: int = 0, stop: int | None = None) -> None:
        """Let go of the pages of a byte range of the file (their data stays in the file).

        Parameters
        ----------
        start : int, default 0
        stop : int, optional
            Bytes ``start:stop``; the whole file by default.
        """
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        stop = len(self._map) if stop is None else stop
        start -= start % mmap.PAGESIZE
        if stop > start:
            self._map.madvise(mmap.MADV_DONTNEED, start, stop - start)

    def features(
        self, k: int, rows: slice, scale: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """Fisher-z features of some runs in one block of edges, float64.

        Parameters
        ----------
        k : int
            The block (:attr:`spans`).
        rows : slice
            Positions of the runs in the file.
        scale : tuple of numpy.ndarray, optional
            Mean and scale of every edge: the features come standardised.

        Returns
        -------
        numpy.ndarray, shape (runs, edges of the block)
        """
        a, b = self.spans[k]
        x = fisher_z(self.blocks[k][rows])
        first, last, _ = rows.indices(self.n_rows)
        at = (self.n_rows * a + np.array([first, last]) * (b - a)) * self.itemsize
        self.release(int(at[0]), int(at[1]))  # read: in the page cache if read again
        if scale is not None:
            x -= scale[0][a:b]
            x /= scale[1][a:b]
        return x

    def row_blocks(self, start: int, stop: int) -> list[slice]:
        """Runs in slices of about :func:`block_bytes` of features.

        Parameters
        ----------
        start, stop : int
            Positions of the first run and past the last.

        Returns
        -------
        list of slice
        """
        step = max(1, self.block_bytes // (8 * max(1, self.n_edges)))
        return [slice(i, min(i + step, stop)) for i in range(start, stop, step)]


def _standardise(x: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the first ``n_train`` rows of ``x``; ``x`` standardised in place."""
    mean = x[:n_train].mean(axis=0)
    scale = x[:n_train].std(axis=0)
    scale[scale == 0] = 1.0
    x -= mean
    x /= scale
    return mean, scale


class _Dual:
    """Ridge in the dual form (runs fewer than edges): ``coef = X^T U diag(1/(s+a)) U^T y``,
    ``U diag(s) U^T`` the eigendecomposition of the training runs' ``X X^T``, computed once
    for every penalty, the held-out predictions and the maps."""

    def __init__(self, edges: _Edges, y: np.ndarray) -> None:
        m, n_held = edges.n_train, edges.n_rows - edges.n_train
        self.edges, self.mean, self.scale = edges, np.empty(edges.n_edges), np.empty(edges.n_edges)
        # Fortran order: BLAS updates them in place (an `a += b` would add a temporary copy).
        gram = np.zeros((m, m), order="F")
        self.cross = np.zeros((n_held, m), order="F")  # held-out runs x training runs
        for k, (a, b) in enumerate(edges.spans):
            x = edges.features(k, slice(None))
            self.mean[a:b], self.scale[a:b] = _standardise(x, m)
            train = x[:m].T  # (edges, m), Fortran-ordered: no copy for BLAS
            gram = blas.dsyrk(1.0, train, beta=1.0, c=gram, trans=1, overwrite_c=1)
            if n_held:
                held = x[m:].T
                self.cross = blas.dgemm(
                    1.0, held, train, beta=1.0, c=self.cross, trans_a=1, overwrite_c=1
                )
            del x, train
        # MRRR: the eigenvectors beside the matrix it destroys (divide and conquer's work
        # space is twice the matrix again).
        self.evals, self.evecs = eigh(
            gram, lower=False, overwrite_a=True, check_finite=False, driver="evr"
        )
        del gram
        self.uty = self.evecs.T @ y

    def _dual_coef(self, alpha: np.ndarray) -> np.ndarray:
        """``U diag(1/(s+a)) U^T y`` ``(m, V)``, one penalty per output."""
        return self.evecs @ (self.uty / (self.evals[:, None] + alpha[None, :]))

    def predict_held(self, alphas: tuple[float, ...]) -> np.ndarray:
        """Held-out predictions ``(A, n_held, V)`` per penalty.

        Parameters
        ----------
        alphas : tuple of float
            The penalties.

        Returns
        -------
        numpy.ndarray
        """
        v = self.uty.shape[1]
        return np.stack([self.cross @ self._dual_coef(np.full(v, a)) for a in alphas])

    def maps(self, alpha: np.ndarray) -> np.ndarray:
        """The maps ``(E, V)`` (a second read of the features).

        Parameters
        ----------
        alpha : numpy.ndarray, shape (V,)
            One penalty per output.

        Returns
        -------
        numpy.ndarray
        """
        w = self._dual_coef(alpha)
        coef = np.empty((self.edges.n_edges, w.shape[1]))
        for k, (a, b) in enumerate(self.edges.spans):
            x = self.edges.features(k, slice(0, self.edges.n_train), (self.mean, self.scale))
            coef[a:b] = x.T @ w
        return coef


class _Primal:
    """Ridge in the primal form (runs more than edges): ``coef = V diag(1/(s+a)) V^T X^T y``,
    ``V diag(s) V^T`` the eigendecomposition of ``X^T X``, computed once for every penalty,
    the held-out predictions and the maps."""

    def __init__(self, edges: _Edges, y: np.ndarray) -> None:
        m, e = edges.n_train, edges.n_edges
        self.edges = edges
        train = edges.row_blocks(0, m)
        # Mean, then spread about it: two exact passes over the training runs.
        total = np.zeros(e)
        for rows in train:
            total += edges.features(0, rows).sum(axis=0)
        self.mean = total / m
        squares = np.zeros(e)
        for rows in train:
            x = edges.features(0, rows)
            x -= self.mean
            squares += (x * x).sum(axis=0)
        self.scale = np.sqrt(squares / m)
        self.scale[self.scale == 0] = 1.0
        gram = np.zeros((e, e), order="F")
        xty = np.zeros((e, y.shape[1]))
        for rows in train:
            x = edges.features(0, rows, (self.mean, self.scale))
            gram = blas.dsyrk(1.0, x.T, beta=1.0, c=gram, trans=0, overwrite_c=1)
            xty += x.T @ y[rows]
        self.evals, self.evecs = eigh(
            gram, lower=False, overwrite_a=True, check_finite=False, driver="evr"
        )
        del gram
        self.vtxty = self.evecs.T @ xty

    def maps(self, alpha: np.ndarray) -> np.ndarray:
        """The maps ``(E, V)``.

        Parameters
        ----------
        alpha : numpy.ndarray, shape (V,)
            One penalty per output.

        Returns
        -------
        numpy.ndarray
        """
        return self.evecs @ (self.vtxty / (self.evals[:, None] + alpha[None, :]))

    def predict_held(self, alphas: tuple[float, ...]) -> np.ndarray:
        """Held-out predictions ``(A, n_held, V)`` per penalty (one read of the held-out runs).

        Parameters
        ----------
        alphas : tuple of float
            The penalties.

        Returns
        -------
        numpy.ndarray
        """
        v = self.vtxty.shape[1]
        coefs = np.hstack([self.maps(np.full(v, a)) for a in alphas])  # (E, A V)
        m, n = self.edges.n_train, self.edges.n_rows
        out = np.empty((n - m, len(alphas) * v))
        for rows in self.edges.row_blocks(m, n):
            x = self.edges.features(0, rows, (self.mean, self.scale))
            out[rows.start - m : rows.stop - m] = x @ coefs
        return out.reshape(n - m, len(alphas), v).transpose(1, 0, 2)


def _not_scorable(values: np.ndarray, scale: float) -> str | None:
    """Why a variable's held-out ``values`` cannot score a map (``None`` when they can).

    R² divides by their spread: fewer than 3 values, a single value, or a spread at round-off
    level of the variable's ``scale`` (a constant whose centred copy differs in the last bit)
    gave nonsense such as an R² of -3e31.
    """
    if len(values) < 3:
        return f"{len(values)} value(s)"
    if len(np.unique(values)) < 2 or np.ptp(values) <= RELATIVE_SPREAD * max(scale, 1e-300):
        return "a single value"
    return None


def _targets(variables: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Every target column with a value (:func:`_target_columns`; too few values or constant
    ones are left out by :func:`_fit`, which names them), refusing a cohort without any."""
    cols, names, indicator = _target_columns(variables.reset_index(drop=True))
    keep = [i for i, c in enumerate(cols) if np.isfinite(c).any()]
    if not keep:
        raise InputDataError(
            "bei-linear: the pretraining cohort has no value of any BEI variable.",
            hint="Check the pretraining datasets' phenotype files.",
        )
    return (
        np.column_stack([cols[i] for i in keep]),
        [names[i] for i in keep],
        np.array([indicator[i] for i in keep]),
    )


def _rows_of(held: np.ndarray) -> np.ndarray:
    """Position of each run in the temporary file: training runs first, each part in order."""
    order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
    position = np.empty(len(held), dtype=np.int64)
    position[order] = np.arange(len(held))
    return position


def fit_bei_maps(
    fc: np.ndarray,
    variables: pd.DataFrame,
    groups: np.ndarray,
    seed: int = 0,
    alphas: tuple[float, ...] = ALPHAS,
    *,
    atlas: str | None = None,
    roi_names: list[str] | None = None,
    data_fingerprint: str | None = None,
    min_values: int = MIN_TRAIN_VALUES,
) -> BEIMaps:
    """Fit one ridge map per BEI variable on a pretraining cohort.

    The features never sit in memory whole: the connectomes are copied to a temporary file
    and read back by blocks (:func:`solve_memory_bytes` is the peak); ``lcm bei-maps`` streams
    them from the store instead (:func:`fit_streamed_bei_maps`): the same maps, bit for bit.

    Parameters
    ----------
    fc : numpy.ndarray, shape (n, R, R)
    variables : pandas.DataFrame
        ``n`` rows of catalogue variables (the pretraining cohort's).
    groups : numpy.ndarray, shape (n,)
        Subject of each row: the hold-out choosing each penalty is subject-level.
    seed : int
    alphas : tuple of float
        Candidate penalties (on standardised features).
    atlas : str, optional
    roi_names : list of str, optional
        The atlas and ROI order of ``fc``, recorded in the maps so that they refuse
        connectomes of others (:meth:`BEIMaps.check_fits`).
    data_fingerprint : str, optional
        The cohort's fingerprint, recorded (:attr:`BEIMaps.data_fingerprint`).
    min_values : int, default :data:`MIN_TRAIN_VALUES`
        Training subjects with a value a map needs (a level's indicator: training subjects
        in the level and outside it; a subject of several runs counts once).

    Returns
    -------
    BEIMaps
        Fitted on the training part with the penalty chosen on the held-out part; a missing
        target is imputed by its training mean (which only shrinks its map); a variable with
        fewer than ``min_values`` training subjects (none: all held out) gets no map, named
        with its count in a warning and in :attr:`BEIMaps.left_out`; one with a single value
        in every run, none either (:attr:`BEIMaps.constant`). When no variable is left, the
        maps map none (:attr:`BEIMaps.names` empty), which ``lcm evaluate`` reads as a reason
        to skip bei-linear.

    Raises
    ------
    InputDataError
        No variable to map, or connectomes with NaN or infinite values.
    ConfigError
        ``min_values`` not a whole number of at least 1 (:func:`check_min_values`), or the
        fit would not fit in this job's memory (:func:`check_solve_memory`).
    """
    min_values = check_min_values(min_values)
    y, names, indicator = _targets(variables)
    held = holdout_rows(np.asarray(groups), seed)
    fc = np.asarray(fc)
    n_rois = fc.shape[-1]
    check_solve_memory(int((~held).sum()), int(held.sum()), n_rois, len(names), "the cohort")
    # Kept as given (float32 from the store): the features are those of fc's own values.
    dtype = np.float64 if fc.dtype == np.float64 else np.float32
    edges = _Edges(len(fc), int((~held).sum()), n_edges(n_rois), dtype)
    position = _rows_of(held)
    for start in range(0, len(fc), STREAM_BATCH):
        stop = min(start + STREAM_BATCH, len(fc))
        edges.write(position[start:stop], matrix_to_vec(fc[start:stop]).astype(dtype, copy=False))
    _check_finite(edges, "the cohort")
    targets = _Targets(y, names, indicator, min_values, np.asarray(groups), _missing(variables))
    return _fit(edges, targets, held, alphas, atlas, roi_names, data_fingerprint)


def fit_streamed_bei_maps(
    cohort: StreamedCohort,
    catalogue: Catalogue,
    seed: int = 0,
    alphas: tuple[float, ...] = ALPHAS,
    min_values: int = MIN_TRAIN_VALUES,
) -> BEIMaps:
    """:func:`fit_bei_maps` of a cohort whose connectomes stay in the feature store.

    One pass in the store's order (:func:`lcm.train.streamed.cohort_stream`, a batch of
    :data:`STREAM_BATCH` runs at a time) copies the triangles to the temporary file and hashes
    them for the data fingerprint; nothing of the size of the cohort's features is held.

    Parameters
    ----------
    cohort : StreamedCohort
        The pretraining cohort (:func:`lcm.store.read.load_streamed_cohort`).
    catalogue : Catalogue
        The catalogue typing its variables (the fingerprint hashes it).
    seed : int
    alphas : tuple of float
    min_values : int, default :data:`MIN_TRAIN_VALUES`
        As :func:`fit_bei_maps`.

    Returns
    -------
    BEIMaps
        Equal to :func:`fit_bei_maps` of the cohort loaded whole, recording its atlas, ROI
        names and data fingerprint (:meth:`lcm.store.cohort.Cohort.fingerprint`).

    Raises
    ------
    InputDataError
        No variable to map, NaN or infinite values, or the store's runs changed meanwhile.
    ConfigError
        ``min_values`` not a whole number of at least 1, or the fit would not fit in this
        job's memory (:func:`check_solve_memory`).
    """
    # torch comes with the stream: imported here, so that reading maps does not need it.
    from lcm.train.streamed import check_same_runs, cohort_stream

    min_values = check_min_values(min_values)
    what = f"the pretraining cohort {cohort.datasets} ({cohort.atlas})"
    y, names, indicator = _targets(cohort.variables)
    held = holdout_rows(cohort.groups, seed)
    n_rois = len(cohort.roi_names)
    check_solve_memory(int((~held).sum()), int(held.sum()), n_rois, len(names), what)
    stream = cohort_stream(cohort, shuffle=False, drop_last=False, batch_size=STREAM_BATCH)
    check_same_runs(stream, cohort.ids, f"lcm bei-maps: {what}")
    edges = _Edges(len(cohort), int((~held).sum()), n_edges(n_rois), np.dtype(np.float32))
    position = _rows_of(held)
    fingerprint = Fingerprint(cohort.ids)
    done = 0
    for batch in stream:
        index = batch["index"].numpy()
        if not np.array_equal(index, np.arange(done, done + len(index))):
            raise RuntimeError(f"lcm bei-maps: the stream skipped runs (at run {done}).")
        vecs = batch["connectome"].numpy()
        for start in range(0, len(vecs), FINGERPRINT_RUNS):  # matrices of a few runs at once
            part = vecs[start : start + FINGERPRINT_RUNS]
            fingerprint.add_connectomes(vec_to_matrix(part, n_rois, diagonal=1.0))
        edges.write(position[index], vecs)
        done += len(index)
    if done != len(cohort):
        raise RuntimeError(f"lcm bei-maps: {done} runs streamed of {len(cohort)}.")
    _check_finite(edges, what)
    log.info(
        "read %d connectomes of %s (kept in a temporary file in %s)",
        done,
        cohort.datasets,
        tempfile.gettempdir(),
    )
    return _fit(
        edges,
        _Targets(
            y, names, indicator, min_values, np.asarray(cohort.groups), _missing(cohort.variables)
        ),
        held,
        alphas,
        cohort.atlas,
        cohort.roi_names,
        fingerprint.hexdigest(cohort.variables, catalogue.to_dict()),
    )


def _check_finite(edges: _Edges, what: str) -> None:
    """Refuse connectomes with NaN or infinite values (counted as they were written)."""
    if edges.bad:
        raise InputDataError(
            f"bei-linear: {edges.bad} connectome(s) of {what} contain NaN or infinite values.",
            hint="Exclude runs with constant ROI signals (zero variance) in the connectome stage.",
        )


@dataclass
class _Targets:
    """What :func:`_fit` maps: the target columns (:func:`_targets`), which of them are a
    level's indicator, the training subjects a map needs and each run's subject."""

    y: np.ndarray
    names: list[str]
    indicator: np.ndarray
    min_values: int
    groups: np.ndarray
    # Variables without a value in any run: no target column, named with the others unmapped
    # (left out of the warning before, as if the catalogue had no such variable).
    missing: list[str] = field(default_factory=list)


def _too_few(targets: _Targets, train: np.ndarray) -> dict[str, tuple[int, str]]:
    """The targets with fewer training subjects with a value than ``targets.min_values``:
    name -> (count, the count in words); a level's indicator counts the fewer of its training
    subjects with a run in the level and with one outside it (one of both counts in both)."""
    y, groups = targets.y[train], targets.groups[train]
    too_few = {}
    for v, name in enumerate(targets.names):
        present = np.isfinite(y[:, v])
        n = len(np.unique(groups[present]))
        if targets.indicator[v]:
            k = len(np.unique(groups[present & (y[:, v] == 1)]))
            out = len(np.unique(groups[present & (y[:, v] == 0)]))
            count = min(k, out)
        else:
            count = n
        if count >= targets.min_values:
            continue
        if n == 0:
            why = "0 training subjects: all its values in the subjects held out to choose "
            why += "the penalties"
        elif targets.indicator[v]:
            why = f"{k} training subjects in the level, {out} outside it"
        else:
            why = f"{n} training subjects"
        too_few[name] = (count, why)
    for name in targets.missing:
        too_few[name] = (0, "0 training subjects: no value in any run")
    return too_few


def _missing(variables: pd.DataFrame) -> list[str]:
    """The variables of ``variables`` without a value in any run (no target column of theirs
    is kept by :func:`_targets`)."""
    return [str(name) for name in variables.columns if variables[name].isna().all()]


def _no_maps(
    n_edges: int,
    targets: _Targets,
    too_few: dict[str, tuple[int, str]],
    constant: list[str],
    atlas: str | None,
    roi_names: list[str] | None,
    data_fingerprint: str | None,
) -> BEIMaps:
    """Maps of no variable (every one in ``too_few`` or ``constant``): no column, each target
    named in :attr:`BEIMaps.left_out` with its count or in :attr:`BEIMaps.constant`. No map
    reads the features' mean and scale, so they are the identity's (0 and 1), and the
    features are never read."""
    return BEIMaps(
        [],
        np.zeros(n_edges),
        np.ones(n_edges),
        np.zeros((n_edges, 0)),
        np.zeros(0),
        np.zeros(0),
        np.zeros(0),
        atlas,
        None if roi_names is None else [str(n) for n in roi_names],
        data_fingerprint,
        {n: count for n, (count, _) in too_few.items()},
        targets.min_values,
        constant,
    )


def _fit(
    edges: _Edges,
    targets: _Targets,
    held: np.ndarray,
    alphas: tuple[float, ...],
    atlas: str | None,
    roi_names: list[str] | None,
    data_fingerprint: str | None,
) -> BEIMaps:
    """The maps of the features in ``edges``: penalties chosen on the held-out runs, the maps
    fitted on the training runs, one eigendecomposition for both."""
    train = ~held
    y, names, min_values = targets.y, targets.names, targets.min_values
    # A map of every edge fitted on a handful of training subjects is noise (and one with none,
    # its values all in held-out subjects, would predict NaN, which bei-linear's classifier
    # refuses): such a variable gets no map, named with its count and the threshold.
    too_few = _too_few(targets, train)
    threshold = (
        f"a map needs at least {min_values} training subjects with a value (a level's "
        "indicator: training subjects in the level and outside it; lcm bei-maps --min-values, "
        "the workflow's evaluate.bei_linear_min_values)"
    )
    # A variable with one value in every run has nothing to map either.
    constant = [n for n, c in zip(names, y.T, strict=True) if n not in too_few and not np.nanstd(c)]
    keep = [v for v, n in enumerate(names) if n not in too_few and n not in constant]
    reasons = [f"{n} ({why})" for n, (_, why) in too_few.items()]
    reasons += [f"{n} (one value in every run)" for n in constant]
    if not keep:
        # Not an error: a small pretraining cohort (a first trial of the workflow) would stop
        # every task at a default baseline. The maps record that they map nothing and why;
        # lcm evaluate skips bei-linear, naming the reason in its record and the report.
        log.warning(
            "bei-linear: no map of any BEI variable: %s%s. The maps are written empty and "
            "lcm evaluate skips bei-linear, naming this; to map them, add pretraining datasets "
            "that carry them%s.",
            ", ".join(reasons),
            f"; {threshold}" if too_few else "",
            ", or lower the threshold" if too_few else "",
        )
        return _no_maps(
            edges.n_edges, targets, too_few, constant, atlas, roi_names, data_fingerprint
        )
    if too_few:
        log.warning(
            "bei-linear: no map of %s: %s",
            ", ".join(f"{n} ({why})" for n, (_, why) in too_few.items()),
            threshold,
        )
    if constant:
        log.info("bei-linear: no map of %s: one value in every run", ", ".join(constant))
    y, names = y[:, keep], [names[v] for v in keep]
    y_mean = np.nanmean(y[train], axis=0)
    y_c = np.where(np.isfinite(y), y - y_mean, 0.0)
    edges.release()  # the pages written: the file is read back a block at a time
    solve = (_Dual if edges.dual else _Primal)(edges, y_c[train])
    alpha = np.full(len(names), DEFAULT_ALPHA)
    r2 = np.full(len(names), np.nan)
    unscorable: dict[str, str] = {}
    if held.any():
        pred = solve.predict_held(alphas)
        truth, present = y_c[held], np.isfinite(y[held])
        for v in range(len(names)):
            ok = present[:, v]
            why = _not_scorable(y[held][ok, v], np.nanmax(np.abs(y[:, v])))
            if why:
                unscorable[names[v]] = why
                continue
            sse = ((pred[:, ok, v] - truth[ok, v][None]) ** 2).sum(axis=1)
            best = int(np.argmin(sse))
            alpha[v] = alphas[best]
            sst = ((truth[ok, v] - truth[ok, v].mean()) ** 2).sum()
            r2[v] = 1.0 - sse[best] / sst
    coef = solve.maps(alpha)
    log.info(
        "bei-linear maps: %s",
        ", ".join(
            f"{n} (alpha {a:g}, held-out R2 {r:.2f})"
            if n not in unscorable
            else f"{n} (alpha {a:g} by default, not scorable on the hold-out: {unscorable[n]})"
            for n, a, r in zip(names, alpha, r2, strict=True)
        ),
    )
    roi_names = None if roi_names is None else [str(n) for n in roi_names]
    return BEIMaps(
        names,
        solve.mean,
        solve.scale,
        coef,
        y_mean,
        alpha,
        r2,
        atlas,
        roi_names,
        data_fingerprint,
        {n: count for n, (count, _) in too_few.items()},
        min_values,
        constant,
    )
