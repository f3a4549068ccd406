"""Confound selection, scrubbing and cleaning of parcel signals (nilearn.signal.clean)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lcm.connectome.settings import DenoiseSettings
from lcm.exceptions import ExcludedRunError

log = logging.getLogger(__name__)

MOTION_6P = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
PHYSIO_3P = ("csf", "white_matter", "global_signal")
FD_COLUMN = "framewise_displacement"
N_ACOMPCOR = 5
STRATEGIES = ("6P", "9P", "24P", "36P", "acompcor")


def _expand(base: tuple[str, ...]) -> list[str]:
    """Each column, its derivative, its square and the derivative's square (Satterthwaite)."""
    out = list(base)
    for suffix in ("_derivative1", "_power2", "_derivative1_power2"):
        out += [f"{c}{suffix}" for c in base]
    return out


def strategy_columns(strategy: str) -> list[str]:
    """fMRIPrep confound columns of a denoising strategy.

    ``6P`` = translations and rotations; ``9P`` = 6P + csf, white matter, global signal;
    ``24P`` = 6P with derivatives, squares and squared derivatives; ``36P`` = the same expansion
    of 9P; ``acompcor`` = 6P + their derivatives + ``a_comp_cor_00`` .. ``_04``.
    """
    if strategy == "6P":
        return list(MOTION_6P)
    if strategy == "9P":
        return [*MOTION_6P, *PHYSIO_3P]
    if strategy == "24P":
        return _expand(MOTION_6P)
    if strategy == "36P":
        return _expand((*MOTION_6P, *PHYSIO_3P))
    if strategy == "acompcor":
        return [
            *MOTION_6P,
            *(f"{c}_derivative1" for c in MOTION_6P),
            *(f"a_comp_cor_{i:02d}" for i in range(N_ACOMPCOR)),
        ]
    raise ValueError(f"Unknown denoising strategy {strategy!r}; expected one of {STRATEGIES}.")


def confound_columns(strategy: str, available_columns: list[str] | pd.Index) -> list[str]:
    """Columns of ``strategy``, checked against those a confounds table holds.

    Parameters
    ----------
    strategy : str
        One of ``6P``, ``9P``, ``24P``, ``36P``, ``acompcor``.
    available_columns : sequence of str
        Header of the fMRIPrep ``desc-confounds_timeseries.tsv``.

    Returns
    -------
    list of str
        The strategy's columns, in a fixed order.

    Raises
    ------
    ExcludedRunError
        Naming every missing column.
    """
    wanted = strategy_columns(strategy)
    have = set(available_columns)
    missing = [c for c in wanted if c not in have]
    if missing:
        raise ExcludedRunError(
            f"confounds lack the columns {missing} needed by strategy {strategy!r}",
            hint="Use a strategy the confounds support (e.g. 6P), or regenerate them with "
            "fMRIPrep.",
        )
    return wanted


def read_confounds(path: str | Path, n_volumes: int) -> pd.DataFrame:
    """Read an fMRIPrep confounds TSV and check it covers every volume.

    ``n/a`` in the first row (derivatives and FD have no value there) becomes 0.

    Raises
    ------
    ExcludedRunError
        If the file is missing or unreadable, or its row count differs from ``n_volumes``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ExcludedRunError(f"cannot read confounds {path.name}: {exc}") from exc
    if len(table) != n_volumes:
        raise ExcludedRunError(
            f"confounds {path.name} have {len(table)} rows but the BOLD series has "
            f"{n_volumes} volumes"
        )
    if len(table):
        table.iloc[0] = table.iloc[0].fillna(0.0)
    return table


def confound_matrix(table: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    """The chosen columns as float64 ``[T, C]``; non-numeric or missing values exclude the run."""
    values = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = sorted({columns[j] for j in np.flatnonzero(bad.any(axis=0))})
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise ExcludedRunError(
            f"confounds {source}: missing or non-numeric values in columns {cols} (rows {rows} ...)"
        )
    return values


def framewise_displacement(table: pd.DataFrame, source: str) -> np.ndarray:
    """FD per volume (first volume 0), from the ``framewise_displacement`` column."""
    if FD_COLUMN not in table.columns:
        raise ExcludedRunError(
            f"confounds {source} lack the column {FD_COLUMN!r} needed for scrubbing",
            hint="Set denoise.fd_threshold: null to disable scrubbing.",
        )
    return confound_matrix(table, [FD_COLUMN], source)[:, 0]


def scrub_mask(fd: np.ndarray | None, settings: DenoiseSettings, n_volumes: int) -> np.ndarray:
    """Indices of the volumes kept (FD <= threshold), or an error when too few remain.

    Raises
    ------
    ExcludedRunError
        When fewer than ``settings.min_volumes`` volumes are kept.
    """
    if fd is None or settings.fd_threshold is None:
        keep = np.arange(n_volumes)
    else:
        keep = np.flatnonzero(fd <= settings.fd_threshold)
    if keep.size < settings.min_volumes:
        detail = (
            f" after scrubbing volumes with FD > {settings.fd_threshold} mm"
            if fd is not None and settings.fd_threshold is not None
            else ""
        )
        raise ExcludedRunError(
            f"only {keep.size} of {n_volumes} volumes left{detail}; at least "
            f"{settings.min_volumes} are required (denoise.min_volumes)"
        )
    return keep


def clean_signals(
    signals: np.ndarray,
    t_r: float,
    settings: DenoiseSettings,
    confounds: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Detrend, regress confounds, band-pass and z-score parcel signals.

    Uses ``nilearn.signal.clean``: scrubbed volumes are interpolated before filtering and
    dropped after, so the output has ``len(sample_mask)`` rows.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
        Parcel mean signals.
    t_r : float
        Repetition time in seconds.
    settings : DenoiseSettings
        Filter band, detrending.
    confounds : ndarray, shape (T, C), optional
        Nuisance regressors (standardised by nilearn before regression).
    sample_mask : ndarray of int, optional
        Volumes to keep.

    Returns
    -------
    ndarray, shape (T_kept, R)
        Cleaned signals, z-scored with the sample standard deviation (ddof=1).
    """
    from nilearn import signal

    low_pass = settings.low_pass
    nyquist = 0.5 / t_r
    if low_pass is not None and low_pass >= nyquist:
        # nilearn would silently move the cut-off to just under Nyquist; no filter is honest.
        log.warning(
            "low_pass %.3g Hz is at or above the Nyquist frequency %.3g Hz (TR %.3g s): "
            "low-pass filtering skipped",
            low_pass, nyquist, t_r,
        )  # fmt: skip
        low_pass = None
    with warnings.catch_warnings():
        # constant (empty) parcels trigger a division warning; they are handled by the caller.
        warnings.filterwarnings("ignore", message=".*(divide|invalid value).*")
        # nilearn is pinned below 0.14, so the announced change of confound scaling cannot
        # reach us unnoticed; the notice would only fill every run's log.
        warnings.filterwarnings("ignore", message=".*confounds will be standardized.*")
        return signal.clean(
            np.asarray(signals, dtype=np.float64),
            detrend=settings.detrend,
            standardize="zscore_sample",
            confounds=confounds,
            sample_mask=None if sample_mask is None else np.array(sample_mask, copy=True),
            filter="butterworth",
            low_pass=low_pass,
            high_pass=settings.high_pass,
            t_r=t_r,
        )
