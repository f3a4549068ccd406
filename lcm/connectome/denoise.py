"""Scrubbing and cleaning of parcel signals (nilearn.signal.clean); the confound columns of each
strategy are in :mod:`lcm.connectome.confounds`."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lcm import reason_codes
from lcm.connectome.confounds import (
    DVARS_COLUMN,
    FD_COLUMN,
    MISSING_CELLS,
    NON_STEADY_PREFIX,
    STRATEGIES,
)
from lcm.connectome.settings import DenoiseSettings, lowest_min_volumes
from lcm.exceptions import ExcludedRunError

log = logging.getLogger(__name__)

# The fix for an FD column with values that are not numbers (all n/a, or a table edited by
# hand): FD is read for scrubbing and for the QC's mean_fd alike.
FD_VALUES_HINT = (
    f"Regenerate the confounds with fMRIPrep (its {FD_COLUMN} column holds numbers, n/a only in "
    "the first row), or restore the file if it was edited."
)


def read_confounds(path: str | Path, n_volumes: int) -> pd.DataFrame:
    """Read an fMRIPrep confounds TSV and check it covers every volume.

    ``n/a`` in the first row (derivatives, FD and DVARS have no value there) takes the second
    row's value, as nilearn's ``load_confounds`` fills it: a 0 would be a step at volume 0 in
    every derivative regressor, which regression then imprints on the kept volume 0. FD and
    ``std_dvars`` are scrubbing measures, not regressors: theirs becomes 0 (no motion before the
    first volume), so volume 0 is never scrubbed for its neighbour's motion.

    Parameters
    ----------
    path : str or Path
        The run's fMRIPrep confounds TSV.
    n_volumes : int
        The BOLD series' volume count, the rows the table must have.

    Returns
    -------
    pandas.DataFrame
        The table, ``n/a`` (and pandas' empty or ``NaN`` cells) read as NaN and the first row
        filled as above.

    Raises
    ------
    ExcludedRunError
        If the file is missing or unreadable, or its row count differs from ``n_volumes``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=MISSING_CELLS, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ExcludedRunError(
            f"cannot read confounds {path.name}: {exc}",
            hint="Restore the confounds table fMRIPrep wrote beside the BOLD (tab-separated "
            "UTF-8 text) from the fMRIPrep output folder it was copied from, or rerun fMRIPrep "
            "for the subject.",
            code=reason_codes.CONFOUNDS_UNREADABLE,
        ) from exc
    if len(table) != n_volumes:
        raise ExcludedRunError(
            f"confounds {path.name} have {len(table)} rows but the BOLD series has "
            f"{n_volumes} volumes",
            hint="Use the confounds table fMRIPrep wrote with this BOLD: these come from "
            "another run or fMRIPrep version, or dummy volumes were removed from one file "
            "only (remove them from neither: fMRIPrep's non_steady_state_outlier columns "
            "leave them out).",
            code=reason_codes.CONFOUNDS_LENGTH,
        )
    # A column holding text (a hand-edited cell) is read as strings, which pandas 3 refuses
    # a number in (a TypeError, not a reason): as objects, confound_matrix names the column.
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        table = table.astype(dict.fromkeys(text, object))
    if len(table):
        first = table.iloc[0].copy()
        for column in (FD_COLUMN, DVARS_COLUMN):
            if column in table.columns and pd.isna(first[column]):
                first[column] = 0.0
        if len(table) > 1:
            first = first.fillna(table.iloc[1])
        table.iloc[0] = first.fillna(0.0)
    return table


def confound_matrix(
    table: pd.DataFrame, columns: list[str], source: str, hint: str | None = None
) -> np.ndarray:
    """The chosen columns as float64 ``[T, C]``; non-numeric or missing values exclude the run
    (``hint``: the fix, by default to regenerate the table).

    Parameters
    ----------
    table : pandas.DataFrame
        The confounds table (:func:`read_confounds`).
    columns : list of str
        The columns to take, in order; every one in ``table``.
    source : str
        The confounds file's name, named in the error.
    hint : str, optional
        The fix the error gives; by default to regenerate the table.

    Raises
    ------
    ExcludedRunError
        With code ``confounds_non_numeric``.
    """
    values = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = sorted({columns[j] for j in np.flatnonzero(bad.any(axis=0))})
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise ExcludedRunError(
            f"confounds {source}: missing or non-numeric values in columns {cols} "
            f"(rows {rows} ...)",
            hint=hint
            or "Regenerate the confounds with fMRIPrep (it writes numbers, n/a only in the "
            "first row of derivative columns), or restore the file if it was edited.",
            code=reason_codes.CONFOUNDS_NON_NUMERIC,
        )
    return values


def framewise_displacement(table: pd.DataFrame, source: str) -> np.ndarray:
    """FD per volume (first volume 0), from the ``framewise_displacement`` column.

    Parameters
    ----------
    table : pandas.DataFrame
        The confounds table (:func:`read_confounds`).
    source : str
        The confounds file's name, named in the error.

    Raises
    ------
    ExcludedRunError
        The column is missing (code ``confounds_missing_columns``) or not numeric.
    """
    if FD_COLUMN not in table.columns:
        raise ExcludedRunError(
            f"confounds {source} lack the column {FD_COLUMN!r} needed for scrubbing",
            hint="Set denoise.fd_threshold: null to disable scrubbing.",
            code=reason_codes.CONFOUNDS_MISSING_COLUMNS,
        )
    return confound_matrix(table, [FD_COLUMN], source, hint=FD_VALUES_HINT)[:, 0]


def std_dvars(table: pd.DataFrame, source: str) -> np.ndarray:
    """Standardised DVARS per volume (first volume 0), from fMRIPrep's ``std_dvars`` column.

    Parameters
    ----------
    table : pandas.DataFrame
        The confounds table (:func:`read_confounds`).
    source : str
        The confounds file's name, named in the error.

    Raises
    ------
    ExcludedRunError
        The column is missing (code ``confounds_missing_columns``) or not numeric.
    """
    if DVARS_COLUMN not in table.columns:
        raise ExcludedRunError(
            f"confounds {source} lack the column {DVARS_COLUMN!r} needed for DVARS scrubbing",
            hint="Set denoise.dvars_threshold: null to scrub by framewise displacement only.",
            code=reason_codes.CONFOUNDS_MISSING_COLUMNS,
        )
    return confound_matrix(table, [DVARS_COLUMN], source)[:, 0]


def non_steady_volumes(table: pd.DataFrame, source: str) -> np.ndarray:
    """Volumes fMRIPrep flagged as non-steady-state (its ``non_steady_state_outlierXX``
    columns, one per flagged volume); all ``False`` when the table has none.

    Parameters
    ----------
    table : pandas.DataFrame
        The confounds table (:func:`read_confounds`).
    source : str
        The confounds file's name, named in the error.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` bool, True for a flagged volume.
    """
    columns = [c for c in table.columns if str(c).startswith(NON_STEADY_PREFIX)]
    if not columns:
        return np.zeros(len(table), dtype=bool)
    return (confound_matrix(table, columns, source) != 0).any(axis=1)


def scrub_mask(
    fd: np.ndarray | None,
    settings: DenoiseSettings,
    n_volumes: int,
    dvars: np.ndarray | None = None,
    dropout: np.ndarray | None = None,
    non_steady: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the volumes kept, or an error when too few remain.

    A volume is scrubbed when its FD is above ``settings.fd_threshold`` or its ``std_dvars``
    above ``settings.dvars_threshold`` (each only when both the threshold and the series are
    given), or when it is a dropout volume (whatever the thresholds). The ``scrubbing``
    presets then also drop kept segments shorter than 5 volumes, as nilearn's
    ``load_confounds`` (``scrub=5``) does when any volume was flagged. Non-steady-state
    volumes are left out last, whatever the strategy, as ``load_confounds`` does (its
    ``scrub=5`` rule looks at the motion outliers only).

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
    non_steady : ndarray of bool, shape (T,), optional
        fMRIPrep's non-steady-state volumes (:func:`non_steady_volumes`), always left out.

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
        over = np.asarray(fd) > settings.fd_threshold
        flagged |= over
        rules.append(f"{int(np.count_nonzero(over))} with FD > {settings.fd_threshold} mm")
    if dvars is not None and settings.dvars_threshold is not None:
        over = np.asarray(dvars) > settings.dvars_threshold
        flagged |= over
        rules.append(f"{int(np.count_nonzero(over))} with std_dvars > {settings.dvars_threshold}")
    if dropout is not None and np.any(dropout):
        flagged |= np.asarray(dropout, dtype=bool)
        rules.append(f"{int(np.count_nonzero(dropout))} constant (dropout) volume(s)")
    min_segment = (
        STRATEGIES[settings.strategy].min_segment if settings.strategy in STRATEGIES else 0
    )
    if min_segment and flagged.any():
        flagged |= short_segments(~flagged, min_segment)
        rules.append(f"kept segments under {min_segment} volumes")
    if non_steady is not None and np.any(non_steady):
        flagged |= np.asarray(non_steady, dtype=bool)
        rules.append(f"{int(np.count_nonzero(non_steady))} non-steady-state volume(s)")
    keep = np.flatnonzero(~flagged)
    if keep.size < settings.min_volumes:
        n_steady = n_volumes - (0 if non_steady is None else int(np.count_nonzero(non_steady)))
        if n_steady < settings.min_volumes:
            # A short run, whatever its motion: fMRIPrep flags non-steady volumes in most
            # runs, and "only 38 of 40 left after scrubbing" read as a run that moved.
            steady = (
                f" ({n_volumes - n_steady} non-steady-state volume(s) left out: {n_steady} usable)"
                if n_steady < n_volumes
                else ""
            )
            lowest = lowest_min_volumes()
            hint = (
                f"Lower denoise.min_volumes to {keep.size} or less to keep runs this short, or "
                "leave the run out (ingest.select)."
                if keep.size >= lowest
                # Advice that cannot be followed: the schema refuses a lower setting.
                else f"Leave the run out (ingest.select): {keep.size} usable volumes are "
                f"fewer than any denoise.min_volumes allows (at least {lowest})."
            )
            raise ExcludedRunError(
                f"the run has {n_volumes} volumes{steady}; at least {settings.min_volumes} "
                "are required (denoise.min_volumes)",
                hint=hint,
                code=reason_codes.TOO_FEW_VOLUMES,
            )
        detail = f" after scrubbing ({', '.join(rules)})" if rules else ""
        raise ExcludedRunError(
            f"only {keep.size} of {n_volumes} volumes left{detail}; at least "
            f"{settings.min_volumes} are required (denoise.min_volumes)",
            hint="Nothing, if the run moved this much: it is excluded as it should be. To keep "
            "more volumes, raise denoise.fd_threshold (or dvars_threshold), or lower "
            "denoise.min_volumes.",
            code=reason_codes.TOO_FEW_VOLUMES,
        )
    return keep


@dataclass(frozen=True)
class DegreesOfFreedom:
    """How many independent values a run's cleaned signals still hold (:func:`degrees_of_freedom`).

    Attributes
    ----------
    in_band : float
        Degrees of freedom the band-pass filter leaves over the kept volumes, the mean aside.
    regressors : int
        Confound regressors, each of which takes one of them: the rank of the columns.
    columns : int
        Confound columns given (more than ``regressors`` when some are constant or repeat
        others, or outnumber the kept volumes).
    trend : int
        1 when ``detrend`` removes the linear trend too, else 0.
    seconds : float
        Seconds of signal the kept volumes cover (censored gaps that lose the band left out).
    n_kept : int
        Kept volumes.
    band : str
        The band in words, for messages (``0.01-0.1 Hz band``, ``band above 0.01 Hz``,
        ``unfiltered signals``).
    share : float
        The share of the regressors and the trend these volumes pay: 1 for a run; for a window
        of it (``degrees_of_freedom(..., window=...)``) the share of the run's band it holds,
        as both were fitted over the whole run.
    """

    in_band: float
    regressors: int
    columns: int
    trend: int
    seconds: float
    n_kept: int
    band: str
    share: float = 1.0

    @property
    def residual(self) -> float:
        """Degrees of freedom left: ``in_band - share * (regressors + trend)``."""
        # Term by term: with share 1 the run's number, to the last bit, as before windows.
        return self.in_band - self.share * self.regressors - self.share * self.trend


def degrees_of_freedom(
    keep: np.ndarray,
    t_r: float,
    settings: DenoiseSettings,
    confounds: np.ndarray | None = None,
    window: slice | None = None,
) -> DegreesOfFreedom:
    """Degrees of freedom a run keeps through :func:`clean_signals`.

    A signal limited to the band ``[f_low, f_high]`` Hz over ``S`` seconds holds about
    ``2 * S * (f_high - f_low)`` independent values (a sine and a cosine per Fourier frequency
    ``k / S`` in the band), where ``f_high`` is ``low_pass``, or the Nyquist frequency
    ``0.5 / t_r`` when there is none or it lies above, and ``f_low`` is ``high_pass`` (0
    without one); never more than the kept volumes less one (the mean, which the band leaves
    out and which z-scoring or Pearson correlation removes anyway). Without a filter that is
    the kept volumes less one.

    ``S`` spans the kept volumes, first to last. A censored gap costs nothing when its kept
    neighbours are at most ``1 / (2 * f_high)`` seconds apart (they still sample the band at
    its Nyquist rate, and the spline of :func:`fill_censored` fills it), and its whole length
    otherwise: what the filter sees there is interpolated, no data. So without a low-pass
    every censored volume is lost, and scattered scrubbing of a band-passed run costs little.

    Confounds are band-passed like the signals before they are regressed (nilearn and XCP-D),
    so each column takes one of the band's degrees of freedom, whatever its own frequencies:
    nilearn z-scores the filtered columns, and the cosine_XX columns (fMRIPrep's high-pass
    basis) or a slow drift that the filter nearly erased each still remove one direction of the
    kept volumes. They count by their rank (a constant column, or one that repeats another,
    removes nothing); ``detrend`` removes the linear trend, one more.

    Parameters
    ----------
    keep : ndarray of int
        Kept volume indices, increasing (:func:`scrub_mask`).
    t_r : float
        Repetition time in seconds.
    settings : DenoiseSettings
        Band, detrending.
    confounds : ndarray, shape (T, C), optional
        The regressors (rows of every volume; those of the kept ones are read).
    window : slice, optional
        A window of the cleaned run, as positions in ``keep`` (``slice(start, stop)`` of
        :func:`lcm.connectome.relmat.window_starts`): its kept volumes are counted as a run's
        are, and it pays the share of the regressors and the trend that it holds of the run's
        band (:attr:`DegreesOfFreedom.share`), since both were fitted over the whole run.

    Returns
    -------
    DegreesOfFreedom

    Raises
    ------
    ExcludedRunError
        ``high_pass`` at or above the Nyquist frequency (:func:`check_high_pass`).
    """
    check_high_pass(settings, t_r)
    keep = np.asarray(keep, dtype=np.int64)
    nyquist = 0.5 / t_r
    low_pass = settings.low_pass if settings.low_pass is not None else nyquist
    f_high, f_low = min(low_pass, nyquist), settings.high_pass or 0.0
    if low_pass < nyquist:
        band = f"{f_low:g}-{f_high:g} Hz band"
    else:
        band = f"band above {f_low:g} Hz" if f_low else "unfiltered signals"
    trend = int(settings.detrend)
    if keep.size == 0:
        return DegreesOfFreedom(0.0, 0, 0, trend, 0.0, 0, band)
    in_band, seconds = _in_band(keep, t_r, f_high, f_low)
    columns = 0 if confounds is None else int(np.shape(confounds)[1])
    regressors = _rank(np.asarray(confounds)[keep], settings.detrend) if columns else 0
    run = DegreesOfFreedom(in_band, regressors, columns, trend, seconds, int(keep.size), band)
    if window is None:
        return run
    part = keep[window]
    if part.size == 0:
        return DegreesOfFreedom(0.0, regressors, columns, trend, 0.0, 0, band, 0.0)
    in_band, seconds = _in_band(part, t_r, f_high, f_low)
    share = in_band / run.in_band if run.in_band > 0 else 1.0
    return DegreesOfFreedom(
        in_band, regressors, columns, trend, seconds, int(part.size), band, share
    )


def _in_band(keep: np.ndarray, t_r: float, f_high: float, f_low: float) -> tuple[float, float]:
    """Degrees of freedom in the band over the kept volumes ``keep`` (non-empty), and the
    seconds they span (see :func:`degrees_of_freedom`)."""
    gaps = np.diff(keep) - 1  # censored volumes between consecutive kept ones
    # Kept neighbours farther apart than the band's Nyquist interval: the gap holds no data.
    lost = int(gaps[(gaps + 1) * t_r > (0.5 / f_high) * (1 + 1e-9)].sum())
    seconds = float(keep[-1] - keep[0] + 1 - lost) * t_r
    return min(2.0 * seconds * (f_high - f_low), float(keep.size - 1)), seconds


def _rank(confounds: np.ndarray, detrend: bool) -> int:
    """Rank of the regressors as nilearn regresses them: centred (and detrended), each column
    scaled to unit norm (it z-scores them), a constant one left out."""
    x = np.asarray(confounds, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[0] < 2:
        return 0
    scale = np.abs(x).max(axis=0)
    basis = [np.ones(len(x))]
    if detrend:
        basis.append(np.linspace(-1.0, 1.0, len(x)))
    design = np.column_stack(basis)
    x = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    norms = np.linalg.norm(x, axis=0)
    varying = norms > 1e-9 * scale * np.sqrt(len(x))
    if not varying.any():
        return 0
    return int(np.linalg.matrix_rank(x[:, varying] / norms[varying]))


# The advice for too few degrees of freedom that names the setting (runs and windows share it).
LIGHTER_STRATEGY = "a lighter confound strategy (denoise.strategy, e.g. 6P instead of 24P)"


def check_degrees_of_freedom(dof: DegreesOfFreedom, settings: DenoiseSettings) -> None:
    """Refuse a run left with fewer than ``settings.min_dof`` degrees of freedom (``None``: any).

    With fewer degrees of freedom in the band than regressors, regression takes nearly all the
    in-band signal and z-scoring scales up what is left: correlations of pure noise reach
    ±1. Voxel runs are checked on their confounds, before the BOLD is read.

    Parameters
    ----------
    dof : DegreesOfFreedom
        The run's degrees of freedom (:func:`degrees_of_freedom`).
    settings : DenoiseSettings
        The denoising settings (``min_dof``).

    Raises
    ------
    ExcludedRunError
        With code ``too_few_dof``, naming the degrees of freedom and the regressors.
    """
    shortfall = dof_shortfall(dof, settings)
    if shortfall is None:
        return
    # Only the settings that would help, as they stand (6P already, or no low-pass, was
    # advised against itself; a high high-pass, the cause, went unnamed).
    fixes = ["longer runs"]
    if dof.regressors and settings.strategy not in ("none", "6P"):
        fixes.append(LIGHTER_STRATEGY)
    if dof.in_band < dof.n_kept - 1:  # the band, not the volume count, caps the count
        if settings.low_pass is not None:
            fixes.append("a wider band (denoise.low_pass null)")
        if settings.high_pass is not None and settings.high_pass > 0.01:
            fixes.append(
                f"a lower denoise.high_pass (now {settings.high_pass:g} Hz; 0.008-0.01 Hz is "
                "usual for resting state)"
            )
    raise ExcludedRunError(
        shortfall,
        hint=f"Use {', '.join(fixes)} or, knowing the connectome is then mostly noise (the "
        "regressors take most of the in-band signal), a lower denoise.min_dof.",
        code=reason_codes.TOO_FEW_DOF,
    )


def dof_shortfall(dof: DegreesOfFreedom, settings: DenoiseSettings) -> str | None:
    """What a run (or window) lacks of ``settings.min_dof``, in words; ``None`` when nothing.

    The one wording of the count, for a run refused (:func:`check_degrees_of_freedom`) and a
    window left out (:func:`lcm.connectome.windows.plan_windows`).

    Parameters
    ----------
    dof : DegreesOfFreedom
        The degrees of freedom of the run or window (:func:`degrees_of_freedom`).
    settings : DenoiseSettings
        The denoising settings (``min_dof``; ``None``: nothing is ever short).
    """
    if settings.min_dof is None or dof.residual >= settings.min_dof:
        return None
    rank = f" (the rank of {dof.columns} columns)" if dof.columns != dof.regressors else ""
    less = [f"{dof.regressors} confound regressor(s){rank}"] if dof.regressors else []
    less += ["the linear trend"] * dof.trend
    if less and dof.share != 1.0:
        paid = f"{dof.share:.0%} of {' and '.join(less)}, fitted over the whole run"
        less = [f"{dof.share * (dof.regressors + dof.trend):.1f} ({paid})"]
    return (
        f"{dof.residual:.1f} degrees of freedom left, fewer than the {settings.min_dof} required "
        f"(denoise.min_dof): {dof.in_band:.1f} in the {dof.band} over the "
        f"{dof.seconds:g} s of {dof.n_kept} kept volumes"
        + (f", less {' and '.join(less)}" if less else "")
    )


def check_high_pass(settings: DenoiseSettings, t_r: float) -> None:
    """Refuse a ``high_pass`` at or above the run's Nyquist frequency ``0.5 / t_r``.

    Parameters
    ----------
    settings : DenoiseSettings
        The denoising settings (``high_pass`` in Hz, None for no high-pass filter).
    t_r : float
        The run's repetition time in seconds.

    Raises
    ------
    ExcludedRunError
        Every frequency the run can hold lies below the cut-off: the filter would leave
        all-zero signals, and the run would be excluded as flat for no visible reason.
    """
    nyquist = 0.5 / t_r
    if settings.high_pass is not None and settings.high_pass >= nyquist:
        raise ExcludedRunError(
            f"denoise.high_pass {settings.high_pass:g} Hz is at or above the Nyquist frequency "
            f"{nyquist:g} Hz of this run (TR {t_r:g} s): the high-pass filter would remove "
            "every frequency of the signals",
            hint=f"Set denoise.high_pass below {nyquist:g} Hz (0.008-0.01 Hz is usual for "
            "resting state), or to null to skip high-pass filtering.",
            code=reason_codes.HIGH_PASS_ABOVE_NYQUIST,
        )


def short_segments(kept: np.ndarray, min_length: int) -> np.ndarray:
    """Mask of the volumes in runs of ``True`` in ``kept`` shorter than ``min_length``.

    Parameters
    ----------
    kept : numpy.ndarray
        ``(T,)`` bool, True for a volume kept.
    min_length : int
        The fewest consecutive kept volumes a segment needs.

    Returns
    -------
    numpy.ndarray
        ``(T,)`` bool, True for a kept volume in a shorter segment.
    """
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


def fill_censored(signals: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Signals with censored volumes replaced by a cubic spline through the kept ones.

    Censored volumes still pass through the band-pass filter before they are dropped, so
    what they hold reaches their kept neighbours; in their place the filter sees the spline
    (Power et al. 2014; nilearn's ``clean`` means to do the same, but 0.13 indexes with
    ``~sample_mask`` on indices and fills a censored volume only when its mirror image,
    volume ``T - 1 - t``, is kept). Volumes before the first or after the last kept one take
    the nearest kept value (:func:`clean_signals` cuts them off first).

    Parameters
    ----------
    signals : ndarray, shape (T, R)
    censored : ndarray of bool, shape (T,)

    Returns
    -------
    ndarray, shape (T, R)
        A float64 copy (``signals`` itself when no volume is censored).
    """
    censored = np.asarray(censored, dtype=bool)
    if not censored.any():
        return signals
    from scipy.interpolate import CubicSpline

    out = np.array(signals, dtype=np.float64, copy=True)
    good = np.flatnonzero(~censored)
    if good.size == 0:
        return out
    bad = np.flatnonzero(censored)
    clipped = np.clip(bad, good[0], good[-1])
    if good.size >= 2:
        out[bad] = CubicSpline(good, out[good], axis=0)(clipped)
    else:
        out[bad] = out[good[0]]
    return out


def _censored_run(
    signals: np.ndarray, confounds: np.ndarray | None, sample_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The run from its first to its last kept volume, censored volumes filled
    (:func:`fill_censored`), and the kept indices within it: what the filter sees depends on
    the kept volumes alone."""
    keep = np.asarray(sample_mask, dtype=np.int64)
    if keep.size == 0:  # nilearn names this case (AllVolumesRemovedError)
        return signals, confounds, keep
    first, stop = int(keep.min()), int(keep.max()) + 1
    censored = np.ones(len(signals), dtype=bool)
    censored[keep] = False
    signals = fill_censored(signals, censored)[first:stop]
    if confounds is not None:
        confounds = fill_censored(np.asarray(confounds, dtype=np.float64), censored)[first:stop]
    return signals, confounds, keep - first


def clean_signals(
    signals: np.ndarray,
    t_r: float,
    settings: DenoiseSettings,
    confounds: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Detrend, regress confounds, band-pass and standardise parcel signals.

    Uses ``nilearn.signal.clean``: scrubbed volumes are interpolated before filtering and
    dropped after, so the output has ``len(sample_mask)`` rows. Those before the first and
    after the last kept volume are cut off before filtering, and the others replaced by a
    cubic spline through the kept ones (:func:`fill_censored`), in the signals and the
    confounds: the output depends on the kept volumes alone.

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
        Volumes to keep (indices).

    Returns
    -------
    ndarray, shape (T_kept, R)
        Cleaned signals, scaled as ``settings.standardize`` says: ``zscore`` uses the sample
        standard deviation (ddof=1); ``psc`` is the percent change from each signal's mean
        before cleaning (nilearn adds the mean back after detrending); ``none`` leaves them.

    Raises
    ------
    ExcludedRunError
        ``high_pass`` at or above the Nyquist frequency ``0.5 / t_r`` (a ``low_pass`` there
        is skipped with a warning: no low-pass filter is what it would leave), or a run too
        short to band-pass filter.

    Notes
    -----
    Nothing here checks that the run holds more degrees of freedom than the band and the
    confounds take: callers do, first (:func:`degrees_of_freedom`,
    :func:`check_degrees_of_freedom`).
    """
    from nilearn import signal

    if sample_mask is not None:
        signals, confounds, sample_mask = _censored_run(signals, confounds, sample_mask)
    low_pass = settings.low_pass
    nyquist = 0.5 / t_r
    check_high_pass(settings, t_r)
    if low_pass is not None and low_pass >= nyquist:
        # nilearn would silently move the cut-off to just under Nyquist; no filter is honest.
        log.warning(
            "low_pass %.3g Hz is at or above the Nyquist frequency %.3g Hz (TR %.3g s): "
            "low-pass filtering skipped",
            low_pass,
            nyquist,
            t_r,
        )
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
                # nilearn filters column by column unless asked for a copy; all columns at
                # once is ~15x faster and gives the same numbers bit for bit.
                butterworth__copy=True,
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
                code=reason_codes.TOO_FEW_VOLUMES,
            ) from exc
