"""The connectivity matrices of one cleaned run: every configured kind, Fisher z, windows.

Files (XCP-D naming, one JSON sidecar each, written atomically, the record first:
:func:`lcm.connectome.outputs.write_recorded`) beside the run's time series:

- ``..._stat-pearsoncorrelation_relmat.tsv``: whole-run Pearson r, always written; the QC
  record's ``relmat`` and hence the feature store point to it.
- ``..._stat-partialcorrelation_relmat.tsv`` and ``..._stat-covariance_relmat.tsv`` when
  ``connectome.kinds`` asks: from the Ledoit-Wolf covariance of the cleaned signals. The
  covariance is per run and unfitted; a tangent-space embedding built on it must take its
  reference point from training folds only.
- ``..._desc-fisherz_stat-...`` copies of the correlation matrices when ``connectome.fisher_z``.
- ``..._desc-win000_stat-pearsoncorrelation_relmat.tsv``, ``win001``, ... with
  ``connectome.window.length``: Pearson r over consecutive windows of *kept* (post-scrubbing)
  volumes, ``step`` apart; a remainder shorter than a window is dropped. A run shorter than one
  window keeps its whole-run matrix only, with a note in QC (``window_note``). A window with
  fewer degrees of freedom than ``denoise.min_dof`` is not written (:mod:`lcm.connectome.windows`
  chooses them; the others keep their index, QC ``n_windows_dropped`` counts the gaps); each
  window's sidecar gives its kept and acquired volumes and its ``DegreesOfFreedom``.

How windows become samples: each window file is one sample of the same subject (the official
LCM code trains on 500-TR windows). The QC record lists them in ``window_relmats``. The store
expands an included run into one row per window (:func:`lcm.store.writer.stored_rows`), with a
``window`` column (``-1`` for the whole run) beside the run's identifiers, so that
subject-level splits, which group by subject, never put two windows of one subject on both
sides of a fold; evaluation averages a test run's window predictions
(:mod:`lcm.evaluate.windows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcm.bids.runs import RunIds
from lcm.connectome.outputs import write_recorded
from lcm.connectome.relmat import (
    fisher_z_matrix,
    ledoit_wolf_covariance,
    partial_correlation,
    pearson_fc,
)
from lcm.connectome.settings import ConnectomeSettings
from lcm.connectome.windows import WindowPlan
from lcm.io.paths import run_location, run_relmat, window_desc
from lcm.io.relmat import write_relmat

_CORRELATIONS = ("pearson", "partial")


@dataclass
class RunMatrices:
    """What :func:`write_run_matrices` wrote, for QC records."""

    relmat: Path
    files: list[Path] = field(default_factory=list)
    window_files: list[Path] = field(default_factory=list)
    window_note: str = ""
    n_windows_dropped: int = 0

    def qc_facts(self) -> dict[str, Any]:
        """QC values: ``relmat``, ``relmats`` (every matrix), windows and the note."""
        return {
            "relmat": str(self.relmat),
            "relmats": [str(p) for p in self.files],
            "n_windows": len(self.window_files),
            "n_windows_dropped": self.n_windows_dropped,
            "window_relmats": [str(p) for p in self.window_files],
            "window_note": self.window_note,
        }


def compute_matrix(kind: str, signals: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """One matrix of ``kind`` (pearson | partial | covariance) from cleaned ``[T, R]`` signals.

    Parameters
    ----------
    kind : str
        ``pearson``, ``partial`` or ``covariance``.
    signals : numpy.ndarray
        ``(T, R)`` cleaned parcel signals.
    empty : numpy.ndarray
        ``(R,)`` bool, parcels without signal: their rows and columns are 0.

    Returns
    -------
    numpy.ndarray
        ``(R, R)`` symmetric matrix.

    Raises
    ------
    ValueError
        An unknown ``kind``.
    """
    if kind == "pearson":
        return pearson_fc(signals, empty)
    if kind == "partial":
        return partial_correlation(signals, empty)
    if kind == "covariance":
        return ledoit_wolf_covariance(signals, empty)
    raise ValueError(f"Unknown connectivity kind {kind!r}; expected pearson, partial, covariance.")


def write_run_matrices(
    out_dir: str | Path,
    ids: RunIds,
    space: str | None,
    atlas: str,
    names: list[str],
    signals: np.ndarray,
    empty: np.ndarray,
    settings: ConnectomeSettings,
    sources: list[Any],
    meta: dict[str, Any],
    windows: WindowPlan | None = None,
) -> RunMatrices:
    """Write every matrix of one run (see the module docstring) with its sidecar.

    Parameters
    ----------
    out_dir : path-like
        Connectome derivatives folder.
    ids : RunIds
        The run.
    space, atlas : str
        ``space-`` and ``seg-`` labels.
    names : list of str
        ROI names.
    signals : ndarray, shape (T_kept, R)
        Cleaned signals (empty parcels already 0).
    empty : ndarray of bool, shape (R,)
        Empty parcels (rows and columns 0 in every matrix).
    settings : ConnectomeSettings
        Kinds, Fisher z (and the window settings, recorded in the sidecars).
    sources : list
        Direct inputs, for the sidecars' ``Sources``.
    meta : dict
        Sidecar fields shared by every file (denoising, QC facts).
    windows : WindowPlan, optional
        The windows to write (:func:`lcm.connectome.windows.plan_windows`); none when None.

    Returns
    -------
    RunMatrices
    """
    common = {**meta, "Connectome": settings.to_dict()}
    files: list[Path] = []

    def emit(kind: str, matrix: np.ndarray, desc: str | None, **extra: Any) -> Path:
        path = run_relmat(out_dir, run_location(ids.entities), space, atlas, kind=kind, desc=desc)
        write_recorded(
            path,
            lambda to: write_relmat(to, names, matrix),
            sources,
            **common,
            Statistic=kind,
            **extra,
        )
        files.append(path)
        return path

    pearson_path = None
    for kind in dict.fromkeys(["pearson", *settings.kinds]):
        matrix = compute_matrix(kind, signals, empty)
        path = emit(kind, matrix, None, FisherZ=False)
        pearson_path = path if kind == "pearson" else pearson_path
        if settings.fisher_z and kind in _CORRELATIONS:
            emit(kind, fisher_z_matrix(matrix), "fisherz", FisherZ=True)

    window_files: list[Path] = []
    for window in windows.kept if windows else []:
        extra = {**window.sidecar(), "FisherZ": False}
        fc = pearson_fc(signals[window.start : window.stop], empty)
        window_files.append(emit("pearson", fc, window_desc(window.index), **extra))
        if settings.fisher_z:
            emit(
                "pearson",
                fisher_z_matrix(fc),
                f"{window_desc(window.index)}fisherz",
                **{**extra, "FisherZ": True},
            )
    note, dropped = (windows.note, windows.n_dropped) if windows else ("", 0)
    return RunMatrices(pearson_path, files, window_files, note, dropped)  # type: ignore[arg-type]
