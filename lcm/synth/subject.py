"""One subject's draw: intended connectivity, region signals and head motion.

Both tiers start here: the ROI tier writes the region signals (plus a small residual motion
artefact) directly; the voxel tier spreads them over each region's voxels and adds noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lcm.atlas import Atlas
from lcm.synth.connectivity import EffectModel, build_effect_model, site_offset, subject_correlation
from lcm.synth.latents import draw_latents, scores
from lcm.synth.networks import assign_networks, homotopic_partners
from lcm.synth.presets import ConsortiumSpec
from lcm.synth.signals import correlated_signals, simulate_motion
from lcm.synth.streams import rng_for


@dataclass
class Context:
    """Everything shared by the subjects of one consortium."""

    spec: ConsortiumSpec
    seed: int
    atlas: Atlas
    model: EffectModel
    network_method: str
    latents: pd.DataFrame
    sites: dict[str, np.ndarray]


@dataclass
class SubjectDraw:
    """One subject's simulated run.

    Attributes
    ----------
    corr : numpy.ndarray, shape (n_rois, n_rois)
        Intended correlation matrix (the ground truth of this subject).
    signals : numpy.ndarray, shape (n_volumes, n_rois)
        Region signals, unit variance in expectation.
    motion : numpy.ndarray, shape (n_volumes, 6)
        Head-motion parameters (mm, radians).
    fd : numpy.ndarray, shape (n_volumes,)
        Framewise displacement (mm), first value 0.
    """

    corr: np.ndarray
    signals: np.ndarray
    motion: np.ndarray
    fd: np.ndarray


def prepare(spec: ConsortiumSpec, seed: int, atlas: Atlas, shared_structure: float) -> Context:
    """Build the population model and the cohort's latent values (no time series yet).

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.
    seed : int
        Master seed.
    atlas : Atlas
        The workflow's atlas (its regions are the model's).
    shared_structure : float
        ``synth.shared_structure``: how much of the network structure all subjects share.

    Returns
    -------
    Context
    """
    networks, method = assign_networks(atlas)
    partners = homotopic_partners(atlas.labels["name"].tolist())
    model = build_effect_model(networks, partners, seed, shared_structure)
    latents = draw_latents(spec, seed)
    sites = {s: site_offset(model, seed, spec.name, s) for s in sorted(set(latents["site"]))}
    return Context(spec, seed, atlas, model, method, latents, sites)


def subject_stream(ctx: Context, index: int) -> tuple[np.ndarray, np.random.Generator]:
    """Intended correlation of subject ``index`` and its stream, positioned for the signals.

    The correlation is the first thing drawn from the subject's stream, so it can be rebuilt
    alone (the oracle of :mod:`lcm.synth.oracle` does) without drawing any time series.

    Parameters
    ----------
    ctx : Context
        The consortium, as :func:`prepare` returns it.
    index : int
        The subject's position in the roster.

    Returns
    -------
    corr : numpy.ndarray, shape (n_rois, n_rois)
        The subject's intended correlation.
    rng : numpy.random.Generator
        The subject's stream, to draw the signals and motion from next.
    """
    row = ctx.latents.iloc[index]
    rng = rng_for("subject", ctx.seed, ctx.spec.name, index)
    corr = subject_correlation(
        ctx.model, rng, scores(row, ctx.spec.preset.diagnosis), ctx.sites[row["site"]]
    )
    return corr, rng


def simulate_subject(ctx: Context, index: int) -> SubjectDraw:
    """Draw subject ``index`` (roster order) from its own random stream.

    Parameters
    ----------
    ctx : Context
        The consortium, as :func:`prepare` returns it.
    index : int
        The subject's position in the roster.

    Returns
    -------
    SubjectDraw
    """
    row = ctx.latents.iloc[index]
    corr, rng = subject_stream(ctx, index)
    signals = correlated_signals(rng, corr, ctx.spec.n_volumes, ctx.spec.tr)
    fd_target = ctx.spec.preset.fd_median * float(row["motion_scale"])
    motion, fd = simulate_motion(rng, ctx.spec.n_volumes, fd_target)
    return SubjectDraw(corr=corr, signals=signals, motion=motion, fd=fd)


def roi_timeseries(ctx: Context, index: int) -> tuple[np.ndarray, SubjectDraw]:
    """Denoised-looking region time series of subject ``index`` (arbitrary units).

    Each region gets its own amplitude, and a residual motion artefact proportional to
    framewise displacement is left in, as after real denoising (high movers show slightly
    inflated connectivity).

    Parameters
    ----------
    ctx : Context
        The consortium, as :func:`prepare` returns it.
    index : int
        The subject's position in the roster.

    Returns
    -------
    timeseries : numpy.ndarray, shape (n_volumes, n_rois)
    draw : SubjectDraw
        The subject's draw the series were made from (its motion and framewise displacement).
    """
    draw = simulate_subject(ctx, index)
    rng = rng_for("roi-amplitude", ctx.seed, ctx.spec.name, index)
    n_rois = ctx.model.n_rois
    amplitude = rng.lognormal(0.0, 0.2, n_rois)
    weight = rng.uniform(0.5, 1.0, n_rois)
    residual = 1.5 * (draw.fd - draw.fd.mean())[:, None] * weight[None, :]
    return (draw.signals + residual) * amplitude[None, :], draw
