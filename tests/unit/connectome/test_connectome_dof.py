"""Degrees of freedom: a run whose band holds fewer than its regressors take is excluded.

Confounds are band-passed like the signals (nilearn, XCP-D), so each takes one of the band's
degrees of freedom; with more regressors than those, regression takes nearly all the in-band
signal and z-scoring scales the rest back up: a connectome of pure noise, kept as included.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from helpers import ROOT

from lcm import reason_codes
from lcm.connectome.confounds import strategy_columns
from lcm.connectome.denoise import (
    check_degrees_of_freedom,
    clean_signals,
    degrees_of_freedom,
)
from lcm.connectome.qc import QC_COLUMNS
from lcm.connectome.settings import DenoiseSettings
from lcm.exceptions import ConfigError, ExcludedRunError
from lcm.synth.presets import resolve

BAND = DenoiseSettings()  # 24P, 0.01-0.1 Hz, detrend, min_dof 20


def _null_fc_sd(n: int, t_r: float, n_confounds: int, seed: int = 0) -> tuple[float, float, float]:
    """Spread of the correlations of independent signals, band-passed alone and with
    ``n_confounds`` random-walk regressors independent of them; and the largest |r| of those."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 60))
    confounds = rng.standard_normal((n, n_confounds)).cumsum(axis=0)
    upper = np.triu_indices(60, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = np.corrcoef(clean_signals(x, t_r, BAND).T)[upper]
        regressed = np.corrcoef(clean_signals(x, t_r, BAND, confounds=confounds).T)[upper]
    return float(alone.std()), float(regressed.std()), float(np.abs(regressed).max())


def test_too_few_degrees_of_freedom_leave_noise_that_the_floor_excludes() -> None:
    """100 volumes at TR 0.72 s hold ~13 degrees of freedom in 0.01-0.1 Hz, fewer than 24P
    takes: the null correlations spread ~twice as wide and reach |r| ~1. The floor refuses the
    run, naming both numbers; at the floor (20: 125 volumes at TR 2 s) the spread is ~1.3 times
    band-pass alone's, at 40 (180 volumes) closer still."""
    alone, regressed, top = _null_fc_sd(100, 0.72, 24)
    assert regressed > 1.4 * alone and top > 0.95
    confounds = np.random.default_rng(0).standard_normal((100, 24)).cumsum(axis=0)
    dof = degrees_of_freedom(np.arange(100), 0.72, BAND, confounds)
    assert (dof.regressors, dof.trend) == (24, 1) and dof.residual == pytest.approx(-12.04)
    with pytest.raises(ExcludedRunError) as err:
        check_degrees_of_freedom(dof, BAND)
    assert err.value.code == reason_codes.TOO_FEW_DOF
    assert "-12.0 degrees of freedom left, fewer than the 20 required (denoise.min_dof)" in (
        err.value.message
    )
    assert "13.0 in the 0.01-0.1 Hz band over the 72 s of 100 kept volumes" in err.value.message
    assert "less 24 confound regressor(s) and the linear trend" in err.value.message
    assert "longer runs" in err.value.hint and "lighter confound strategy" in err.value.hint
    assert "wider band" in err.value.hint
    # Each fix names the setting a user edits.
    for setting in ("denoise.strategy", "denoise.low_pass", "denoise.min_dof"):
        assert setting in err.value.hint
    at_floor = degrees_of_freedom(np.arange(125), 2.0, BAND, np.zeros((125, 24)) + np.eye(125, 24))
    assert at_floor.residual == pytest.approx(20.0)
    alone, regressed, _ = _null_fc_sd(125, 2.0, 24)
    assert regressed < 1.45 * alone
    at_40 = degrees_of_freedom(np.arange(180), 2.0, BAND, np.zeros((180, 24)) + np.eye(180, 24))
    assert at_40.residual == pytest.approx(39.8)
    alone, regressed, _ = _null_fc_sd(180, 2.0, 24)
    assert regressed < 1.3 * alone


def test_band_and_length() -> None:
    """2 x seconds x band width, the band's top at Nyquist at most, never more than the kept
    volumes less one; unfiltered, the kept volumes less one."""
    keep = np.arange(200)
    assert degrees_of_freedom(keep, 2.0, BAND).in_band == pytest.approx(72.0)
    assert degrees_of_freedom(keep, 2.0, BAND).residual == pytest.approx(71.0)  # the trend
    # low_pass at or above Nyquist (0.25 Hz at TR 2 s) is skipped: the band reaches Nyquist.
    wide = DenoiseSettings(low_pass=0.4)
    assert degrees_of_freedom(keep, 2.0, wide).in_band == pytest.approx(2 * 400 * 0.24)
    assert degrees_of_freedom(keep, 2.0, wide).band == "band above 0.01 Hz"
    raw = DenoiseSettings(high_pass=None, low_pass=None, detrend=False)
    dof = degrees_of_freedom(keep, 2.0, raw)
    assert (dof.in_band, dof.residual, dof.band) == (199.0, 199.0, "unfiltered signals")
    with pytest.raises(ExcludedRunError) as err:
        degrees_of_freedom(keep, 2.0, DenoiseSettings(high_pass=0.3, low_pass=None))
    assert err.value.code == reason_codes.HIGH_PASS_ABOVE_NYQUIST


def test_censored_gaps_cost_what_the_band_cannot_bridge() -> None:
    """Kept neighbours at most 1 / (2 x low_pass) = 5 s apart still sample the band: such a gap
    costs nothing; a longer one costs its length; without a low-pass every censored volume."""
    full = degrees_of_freedom(np.arange(500), 0.72, BAND)
    scattered = np.setdiff1d(np.arange(500), np.arange(10, 490, 4))  # gaps of 1 volume
    assert degrees_of_freedom(scattered, 0.72, BAND).in_band == pytest.approx(full.in_band)
    six = np.setdiff1d(np.arange(500), np.arange(100, 106))  # 7 x 0.72 s = 5.04 s apart
    block = np.setdiff1d(np.arange(500), np.arange(100, 250))
    assert degrees_of_freedom(six, 0.72, BAND).seconds == pytest.approx(494 * 0.72)
    assert degrees_of_freedom(block, 0.72, BAND).seconds == pytest.approx(350 * 0.72)
    ends = np.arange(150, 500)  # cut off before filtering: the span is shorter
    assert degrees_of_freedom(ends, 0.72, BAND).seconds == pytest.approx(350 * 0.72)
    four = np.setdiff1d(np.arange(500), np.arange(100, 104))  # 5 x 0.72 s = 3.6 s: bridged
    assert degrees_of_freedom(four, 0.72, BAND).seconds == pytest.approx(500 * 0.72)
    high_only = DenoiseSettings(low_pass=None)
    dof = degrees_of_freedom(scattered, 0.72, high_only)
    assert dof.seconds == pytest.approx(scattered.size * 0.72)
    assert dof.in_band == pytest.approx(scattered.size * (1 - 2 * 0.72 * 0.01))


def test_regressors_count_by_their_rank() -> None:
    """Every column nilearn would regress counts (a tiny one too: it z-scores them), a constant
    or repeated one does not, nor a linear trend that detrending removes first."""
    rng = np.random.default_rng(3)
    motion = rng.standard_normal((300, 6)).cumsum(axis=0)
    keep = np.arange(300)
    squares = motion**2 * 1e-8  # rot_x_power2 in radians^2
    cols = np.column_stack([motion, squares, np.ones(300), motion[:, :1], np.arange(300.0)])
    assert degrees_of_freedom(keep, 2.0, BAND, cols).regressors == 12
    no_trend = DenoiseSettings(detrend=False)
    assert degrees_of_freedom(keep, 2.0, no_trend, cols).regressors == 13
    # Only the kept volumes count: a spike regressor of a scrubbed volume removes nothing.
    spike = np.zeros((300, 1))
    spike[7] = 1.0
    assert degrees_of_freedom(np.delete(keep, 7), 2.0, BAND, spike).regressors == 0
    # More columns than kept volumes (nilearn's compcor preset on a short run): the message says
    # how many columns the regressors are the rank of.
    many = rng.standard_normal((30, 85))
    dof = degrees_of_freedom(np.arange(1, 30), 0.72, BAND, many)
    assert (dof.regressors, dof.columns) == (27, 85)  # 29 volumes less the mean and the trend
    with pytest.raises(ExcludedRunError, match=r"less 27 confound regressor\(s\) \(the rank of 85"):
        check_degrees_of_freedom(dof, BAND)


def test_min_dof_setting() -> None:
    assert DenoiseSettings.from_dict({}).min_dof == 20 == DenoiseSettings().min_dof
    assert DenoiseSettings.from_dict({"min_dof": None}).min_dof is None
    with pytest.raises(ConfigError, match="min_dof"):
        DenoiseSettings.from_dict({"min_dof": -1})
    dof = degrees_of_freedom(np.arange(100), 0.72, BAND, np.eye(100, 30))
    check_degrees_of_freedom(dof, DenoiseSettings(min_dof=None))  # off: kept
    with pytest.raises(ExcludedRunError, match="fewer than the 0 required"):
        check_degrees_of_freedom(dof, DenoiseSettings(min_dof=0))  # more regressors than band
    assert "dof" in QC_COLUMNS


def test_demo_runs_hold_the_degrees_of_freedom_their_denoising_needs() -> None:
    """Every synthetic cohort of the demo config, at its length and TR, keeps its runs under the
    config's own denoising (its voxel runs regress the strategy's columns): the demo never
    shows connectomes of runs its floor would call noise, nor excludes them all."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    settings = DenoiseSettings.from_dict(cfg["denoise"])
    assert settings.min_dof == 20
    n_confounds = len(strategy_columns(settings.strategy))
    for name, consortium in cfg["synth"]["consortia"].items():
        spec = resolve(name, consortium)
        n = spec.n_volumes
        confounds = np.eye(n, n_confounds) if spec.tier == "voxel" else None
        dof = degrees_of_freedom(np.arange(n), spec.tr, settings, confounds)
        assert dof.residual >= settings.min_dof + 3, (name, dof)  # a margin for scrubbing


def test_the_advice_for_too_few_dof_follows_the_settings() -> None:
    """Under 6P with no low-pass, it advised 6P and low_pass null; a high high-pass, the
    cause, went unnamed."""
    settings = DenoiseSettings(strategy="6P", high_pass=0.24, low_pass=None)
    confounds = np.random.default_rng(0).standard_normal((100, 6)).cumsum(axis=0)
    dof = degrees_of_freedom(np.arange(100), 2.0, settings, confounds)
    with pytest.raises(ExcludedRunError) as err:
        check_degrees_of_freedom(dof, settings)
    hint = err.value.hint
    assert "lighter confound strategy" not in hint and "low_pass null" not in hint
    assert "a lower denoise.high_pass (now 0.24 Hz" in hint and "longer runs" in hint
