"""Confound selection, scrubbing and cleaning of parcel signals (nilearn.signal.clean)."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcm.connectome.settings import DenoiseSettings
from lcm.exceptions import ExcludedRunError

log = logging.getLogger(__name__)

MOTION_6P = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
PHYSIO_3P = ("csf", "white_matter", "global_signal")
WM_CSF = ("csf", "white_matter")
GS = ("global_signal",)
FD_COLUMN = "framewise_displacement"
DVARS_COLUMN = "std_dvars"
N_ACOMPCOR = 5
COSINE_PREFIX = "cosine"
ACOMPCOR_PREFIX = "a_comp_cor_"
# nilearn's scrub=5: continuous segments of kept volumes shorter than this are dropped too.
NILEARN_MIN_SEGMENT = 5


def _expand(base: tuple[str, ...]) -> list[str]:
    """Each column, its derivative, its square and the derivative's square (Satterthwaite)."""
    out = list(base)
    for suffix in ("_derivative1", "_power2", "_derivative1_power2"):
        out += [f"{c}{suffix}" for c in base]
    return out


def _motion_12p() -> list[str]:
    return [*MOTION_6P, *(f"{c}_derivative1" for c in MOTION_6P)]


@dataclass(frozen=True)
class Strategy:
    """A named denoising strategy.

    Attributes
    ----------
    columns : tuple of str
        Fixed fMRIPrep confound columns, all required.
    cosines : bool
        Add every ``cosine*`` column present (nilearn's ``high_pass`` component; optional).
    compcor : str or None
        ``"first5"``: ``a_comp_cor_00`` .. ``_04`` (required); ``"combined"``: every aCompCor
        column of the combined WM+CSF mask (from the confounds JSON when present, else every
        ``a_comp_cor_*`` column; at least one required).
    min_segment : int
        Kept segments shorter than this are scrubbed too (0: off).
    """

    columns: tuple[str, ...]
    cosines: bool = False
    compcor: str | None = None
    min_segment: int = 0


# XCP-D's names (24P, 27P, 36P, acompcor, acompcor_gsr) and the Ciric et al. 6P / 9P; the
# nilearn ``load_confounds_strategy`` presets with their default parameters (motion "full";
# simple: wm_csf "basic"; scrubbing: wm_csf "full", scrub 5; compcor: anat_combined, all).
# XCP-D's acompcor takes 5 WM + 5 CSF components; ours take the 5 first combined-mask ones,
# which every fMRIPrep version (and the synthetic confounds) writes.
STRATEGIES: dict[str, Strategy] = {
    "6P": Strategy(MOTION_6P),
    "9P": Strategy((*MOTION_6P, *PHYSIO_3P)),
    "24P": Strategy(tuple(_expand(MOTION_6P))),
    "27P": Strategy((*_expand(MOTION_6P), *PHYSIO_3P)),
    "36P": Strategy(tuple(_expand((*MOTION_6P, *PHYSIO_3P)))),
    "acompcor": Strategy(tuple(_motion_12p()), compcor="first5"),
    "acompcor_gsr": Strategy((*_motion_12p(), *GS), compcor="first5"),
    "simple": Strategy((*_expand(MOTION_6P), *WM_CSF), cosines=True),
    "simple_gsr": Strategy((*_expand(MOTION_6P), *WM_CSF, *GS), cosines=True),
    "scrubbing": Strategy(
        (*_expand(MOTION_6P), *_expand(WM_CSF)), cosines=True, min_segment=NILEARN_MIN_SEGMENT
    ),
    "scrubbing_gsr": Strategy(
        (*_expand(MOTION_6P), *_expand((*WM_CSF, *GS))),
        cosines=True,
        min_segment=NILEARN_MIN_SEGMENT,
    ),
    "compcor": Strategy(tuple(_expand(MOTION_6P)), cosines=True, compcor="combined"),
}


def strategy_columns(strategy: str) -> list[str]:
    """Fixed fMRIPrep confound columns of a denoising strategy (cosines and aCompCor aside).

    ``6P`` = translations and rotations; ``9P`` = 6P + csf, white matter, global signal;
    ``24P`` = 6P with derivatives, squares and squared derivatives; ``27P`` = 24P + csf, white
    matter, global signal; ``36P`` = the expansion of 9P; ``acompcor`` = 6P + their derivatives
    (+ ``a_comp_cor_00`` .. ``_04``); ``acompcor_gsr`` = acompcor + global signal. For the
    nilearn presets see :data:`STRATEGIES`.
    """
    spec = _strategy(strategy)
    extra = [f"{ACOMPCOR_PREFIX}{i:02d}" for i in range(N_ACOMPCOR)]
    return [*spec.columns, *(extra if spec.compcor == "first5" else [])]


def _strategy(strategy: str) -> Strategy:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown denoising strategy {strategy!r}; expected one of {sorted(STRATEGIES)}."
        )
    return STRATEGIES[strategy]


def confound_columns(
    strategy: str,
    available_columns: list[str] | pd.Index,
    metadata: dict[str, Any] | None = None,
) -> list[str]:
    """Columns of ``strategy``, checked against those a confounds table holds.

    Parameters
    ----------
    strategy : str
        A key of :data:`STRATEGIES`.
    available_columns : sequence of str
        Header of the fMRIPrep ``desc-confounds_timeseries.tsv``.
    metadata : dict, optional
        The confounds JSON (fMRIPrep's per-column metadata); picks the combined-mask aCompCor
        components of the ``compcor`` preset.

    Returns
    -------
    list of str
        The strategy's columns, in a fixed order.

    Raises
    ------
    ExcludedRunError
        Naming every missing column.
    """
    spec = _strategy(strategy)
    have = list(available_columns)
    wanted = strategy_columns(strategy)
    missing = [c for c in wanted if c not in set(have)]
    if spec.compcor == "combined":
        comps = _combined_compcor(have, metadata)
        if not comps:
            missing.append(f"{ACOMPCOR_PREFIX}* (combined mask)")
        wanted += comps
    if missing:
        raise ExcludedRunError(
            f"confounds lack the columns {missing} needed by strategy {strategy!r}",
            hint="Use a strategy the confounds support (e.g. 6P), or regenerate them with "
            "fMRIPrep.",
        )
    if spec.cosines:
        wanted += [c for c in have if c.startswith(COSINE_PREFIX)]
    return wanted


def _combined_compcor(columns: list[str], metadata: dict[str, Any] | None) -> list[str]:
    """aCompCor columns of the combined mask (all ``a_comp_cor_*`` without metadata)."""
    comps = [c for c in columns if c.startswith(ACOMPCOR_PREFIX)]
    if not metadata:
        return comps
    return [
        c
        for c in comps
        if isinstance(metadata.get(c), dict)
        and metadata[c].get("Mask") == "combined"
        and metadata[c].get("Retained", True)
    ]


def read_confounds_metadata(path: str | Path) -> dict[str, Any] | None:
    """The confounds JSON beside a confounds TSV (``None`` if absent or unreadable)."""
    side = Path(path).with_name(Path(path).name.replace(".tsv", ".json"))
    try:
        value = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


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


def std_dvars(table: pd.DataFrame, source: str) -> np.ndarray:
    """Standardised DVARS per volume (first volume 0), from fMRIPrep's ``std_dvars`` column."""
    if DVARS_COLUMN not in table.columns:
        raise ExcludedRunError(
            f"confounds {source} lack the column {DVARS_COLUMN!r} needed for DVARS scrubbing",
            hint="Set denoise.dvars_threshold: null to scrub by framewise displacement only.",
        )
    return confound_matrix(table, [DVARS_COLUMN], source)[:, 0]


def scrub_mask(
    fd: np.ndarray | None,
    settings: DenoiseSettings,
    n_volumes: int,
    dvars: np.ndarray | None = None,
    dropout: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the volumes kept, or an error when too few remain.

    A volume is scrubbed when its FD is above ``settings.fd_threshold`` or its ``std_dvars``
    above ``settings.dvars_threshold`` (each only when both the threshold and the series are
    given), or when it is a dropout volume (whatever the thresholds). The ``scrubbing``
    presets then also drop kept segments shorter than 5 volumes, as nilearn's
    ``load_confounds`` (``scrub=5``) does when any volume was flagged.

    Parameters
    ----------
    fd : ndarray, shape (T,), optional
        Framewise displacement (mm).
    settings : DenoiseSettings
        Thresholds, strategy and ``min_volumes``.
    n_volumes : int
        ``T``.
    dvars : ndarray, shape (T,), optional
        Standardised DVARS.
    dropout : ndarray of bool, shape (T,), optional
        Dropout volumes (constant across the brain or the ROIs), always scrubbed.

    Returns
    -------
    ndarray of int
        Kept volume indices, increasing.

    Raises
    ------
    ExcludedRunError
        When fewer than ``settings.min_volumes`` volumes are kept.
    """
    flagged = np.zeros(n_volumes, dtype=bool)
    rules = []
    if fd is not None and settings.fd_threshold is not None:
        flagged |= np.asarray(fd) > settings.fd_threshold
        rules.append(f"FD > {settings.fd_threshold} mm")
    if dvars is not None and settings.dvars_threshold is not None:
        flagged |= np.asarray(dvars) > settings.dvars_threshold
        rules.append(f"std_dvars > {settings.dvars_threshold}")
    if dropout is not None and np.any(dropout):
        flagged |= np.asarray(dropout, dtype=bool)
        rules.append(f"{int(np.count_nonzero(dropout))} constant (dropout) volume(s)")
    min_segment = (
        STRATEGIES[settings.strategy].min_segment if settings.strategy in STRATEGIES else 0
    )
    if min_segment and flagged.any():
        flagged |= short_segments(~flagged, min_segment)
        rules.append(f"kept segments under {min_segment} volumes")
    keep = np.flatnonzero(~flagged)
    if keep.size < settings.min_volumes:
        detail = f" after scrubbing ({', '.join(rules)})" if rules else ""
        raise ExcludedRunError(
            f"only {keep.size} of {n_volumes} volumes left{detail}; at least "
            f"{settings.min_volumes} are required (denoise.min_volumes)"
        )
    return keep


def short_segments(kept: np.ndarray, min_length: int) -> np.ndarray:
    """Mask of the volumes in runs of ``True`` in ``kept`` shorter than ``min_length``."""
    kept = np.asarray(kept, dtype=bool)
    edges = np.diff(np.r_[0, kept.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(kept.size, dtype=bool)
    for a, b in zip(starts, stops, strict=True):
        if b - a < min_length:
            out[a:b] = True
    return out


# denoise.standardize -> nilearn.signal.clean's ``standardize``.
_STANDARDIZE = {"zscore": "zscore_sample", "psc": "psc", "none": None}


def fill_dropout(signals: np.ndarray, dropout: np.ndarray) -> np.ndarray:
    """Parcel signals with dropout volumes replaced by a cubic spline through the others.

    Dropout volumes are scrubbed, but scrubbed volumes still pass through the band-pass
    filter, and nilearn 0.13's interpolation of them before filtering misses some (it
    indexes with ``~sample_mask`` on indices): a dropout left there would smear its spike
    over its neighbours. Volumes before the first or after the last normal one take the
    nearest normal value.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
    dropout : ndarray of bool, shape (T,)

    Returns
    -------
    ndarray, shape (T, R)
        A float64 copy (``signals`` itself when no volume is a dropout).
    """
    dropout = np.asarray(dropout, dtype=bool)
    if not dropout.any():
        return signals
    from scipy.interpolate import CubicSpline

    out = np.array(signals, dtype=np.float64, copy=True)
    good = np.flatnonzero(~dropout)
    if good.size == 0:
        return out
    bad = np.flatnonzero(dropout)
    clipped = np.clip(bad, good[0], good[-1])
    if good.size >= 2:
        out[bad] = CubicSpline(good, out[good], axis=0)(clipped)
    else:
        out[bad] = out[good[0]]
    return out


def clean_signals(
    signals: np.ndarray,
    t_r: float,
    settings: DenoiseSettings,
    confounds: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Detrend, regress confounds, band-pass and standardise parcel signals.

    Uses ``nilearn.signal.clean``: scrubbed volumes are interpolated before filtering and
    dropped after, so the output has ``len(sample_mask)`` rows.

    Parameters
    ----------
    signals : ndarray, shape (T, R)
        Parcel mean signals.
    t_r : float
        Repetition time in seconds.
    settings : DenoiseSettings
        Filter band, detrending, standardisation.
    confounds : ndarray, shape (T, C), optional
        Nuisance regressors (standardised by nilearn before regression).
    sample_mask : ndarray of int, optional
        Volumes to keep.

    Returns
    -------
    ndarray, shape (T_kept, R)
        Cleaned signals, scaled as ``settings.standardize`` says: ``zscore`` uses the sample
        standard deviation (ddof=1); ``psc`` is the percent change from each signal's mean
        before cleaning (nilearn adds the mean back after detrending); ``none`` leaves them.
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
        try:
            return signal.clean(
                np.asarray(signals, dtype=np.float64),
                detrend=settings.detrend,
                standardize=_STANDARDIZE[settings.standardize],
                confounds=confounds,
                sample_mask=None if sample_mask is None else np.array(sample_mask, copy=True),
                filter="butterworth",
                low_pass=low_pass,
                high_pass=settings.high_pass,
                t_r=t_r,
            )
        except ValueError as exc:
            if "padlen" not in str(exc):
                raise
            # scipy's filtfilt pads each end by 3x the filter order: a run shorter than that
            # cannot be band-passed. The run is excluded; the cohort goes on.
            raise ExcludedRunError(
                f"{len(signals)} volumes are too few to band-pass filter ({exc})",
                hint="Raise denoise.min_volumes above this length to exclude such runs up "
                "front, or set denoise.high_pass and low_pass to null to keep them unfiltered.",
            ) from exc
