"""Time courses: BOLD-like temporal smoothness and head motion.

Temporal model. Each region's signal is ``sqrt(w) * slow + sqrt(1 - w) * fast``, both with unit
variance: ``slow`` is white "neural" noise convolved with the canonical double-gamma haemodynamic
response (SPM's: peak ~5 s, undershoot ~15 s), sampled at the run's TR; ``fast`` is white noise
(thermal and physiological). The lag-1 autocorrelation is ``w * r_h(TR)`` with ``r_h`` the
HRF kernel's own autocorrelation: about 0.78 at TR 0.72 s, 0.64 at TR 2 s, 0.58 at TR 2.4 s and
0.52 at TR 3 s (ranges and references in ``docs/synth.md``). Unlike an AR(1) process, the HRF is
smooth, so short-TR and long-TR autocorrelations are both realistic with one set of parameters.
Both parts are mixed by the Cholesky factor of the subject's correlation matrix, so the expected
correlation of any two regions is the intended one.

Motion. Six rigid-body parameters (translations in mm, rotations in radians) follow a
mean-reverting random walk with Student-t (df 3) steps and rare large jumps; the whole trace is
scaled so its median framewise displacement (Power: |d trans| + 50 mm * |d rot|) equals the
subject's target, giving the heavy right tail of real FD distributions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter
from scipy.stats import gamma

HRF_LENGTH_S = 32.0
SLOW_WEIGHT = 0.8
HEAD_RADIUS_MM = 50.0


def hrf_kernel(tr: float) -> np.ndarray:
    """Canonical double-gamma HRF (SPM: gamma(6) - gamma(16) / 6) sampled at ``tr``, unit norm.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.

    Returns
    -------
    numpy.ndarray
        The kernel over its first 32 s.
    """
    t = np.arange(0.0, HRF_LENGTH_S, tr)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / np.linalg.norm(h)


def smooth_noise(rng: np.random.Generator, n_volumes: int, n_series: int, tr: float) -> np.ndarray:
    """Unit-variance noise with the BOLD temporal model, shape (n_volumes, n_series).

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream drawn from.
    n_volumes : int
        Volumes per series.
    n_series : int
        Independent series.
    tr : float
        Repetition time in seconds.
    """
    h = hrf_kernel(tr)
    burn = len(h) - 1  # the first output sample already has a full HRF history
    white = rng.standard_normal((n_volumes + burn, n_series))
    # FIR filter as one product over sliding windows (lfilter loops over the columns).
    windows = sliding_window_view(white, len(h), axis=0)  # (n_volumes, n_series, len(h))
    slow = windows @ h[::-1]
    fast = rng.standard_normal((n_volumes, n_series))
    return np.sqrt(SLOW_WEIGHT) * slow + np.sqrt(1 - SLOW_WEIGHT) * fast


def lag1_autocorrelation(tr: float) -> float:
    """Expected lag-1 autocorrelation of :func:`smooth_noise` at ``tr``.

    Parameters
    ----------
    tr : float
        Repetition time in seconds.
    """
    h = hrf_kernel(tr)
    return SLOW_WEIGHT * float(np.dot(h[:-1], h[1:]))


def correlated_signals(
    rng: np.random.Generator, corr: np.ndarray, n_volumes: int, tr: float
) -> np.ndarray:
    """Region time series with correlation ``corr`` and the BOLD temporal model.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's stream.
    corr : numpy.ndarray, shape (n_rois, n_rois)
        Intended correlation (positive definite).
    n_volumes : int
        Volumes in the run.
    tr : float
        Repetition time in seconds.

    Returns
    -------
    numpy.ndarray, shape (n_volumes, n_rois)
        Zero mean, unit variance in expectation.
    """
    chol = np.linalg.cholesky(corr)
    return smooth_noise(rng, n_volumes, corr.shape[0], tr) @ chol.T


def simulate_motion(
    rng: np.random.Generator, n_volumes: int, fd_median: float
) -> tuple[np.ndarray, np.ndarray]:
    """Head-motion parameters and framewise displacement of one run.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_volumes : int
    fd_median : float
        Target median framewise displacement in mm.

    Returns
    -------
    params : numpy.ndarray, shape (n_volumes, 6)
        ``trans_x, trans_y, trans_z`` (mm), ``rot_x, rot_y, rot_z`` (radians).
    fd : numpy.ndarray, shape (n_volumes,)
        Framewise displacement; ``fd[0]`` is 0 (undefined for the first volume).
    """
    steps = np.clip(rng.standard_t(3, (n_volumes, 6)), -15, 15)
    jumps = rng.random((n_volumes, 1)) < 0.015
    steps = steps * np.where(jumps, 6.0, 1.0)
    steps[:, 3:] /= HEAD_RADIUS_MM  # rotations in radians move the brain surface as much
    steps[0] = 0.0
    params = lfilter([1.0], [1.0, -0.97], steps, axis=0)  # mean-reverting drift
    fd = framewise_displacement(params)
    scale = fd_median / max(float(np.median(fd[1:])), 1e-12)
    params *= scale
    return params, fd * scale


def framewise_displacement(params: np.ndarray) -> np.ndarray:
    """Power's framewise displacement of (n_volumes, 6) parameters; first value 0.

    Parameters
    ----------
    params : numpy.ndarray, shape (n_volumes, 6)
        Translations in millimetres, then rotations in radians (converted at a 50 mm radius).

    Returns
    -------
    numpy.ndarray, shape (n_volumes,)
        Framewise displacement in millimetres.
    """
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(axis=1) + HEAD_RADIUS_MM * diff[:, 3:].sum(axis=1)
    return np.concatenate([[0.0], fd])
