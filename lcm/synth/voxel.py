"""Voxel-level BOLD of one subject on the MNI152NLin2009cAsym grid, and its confounds.

Each brain voxel (atlas label > 0 after nearest-neighbour resampling to the grid) of region r:

    bold_v(t) = base_v * (1 + 0.01 * [a_r * s_r(t) + noise_v(t) + motion_v(t)
                                      + 0.4 g(t) + w_v wm(t) + c_v csf(t) + drift(t)])

in percent signal change: ``s_r`` the region signal (unit variance, intended connectivity),
``noise_v`` independent voxel noise (1.5 %), ``motion_v`` a spatial pattern times the six motion
parameters and their derivatives (4 %/mm along a smooth spatial gradient, so connectivity is
distorted until 24P regression removes it), ``g`` a global component, ``wm``/``csf``
white-matter and CSF components entering through partial volume, and a slow drift removed by
detrending/high-pass.
``global_signal``, ``white_matter`` and ``csf`` confounds are the mean intensity of the brain,
of the (implicit) white-matter and of the CSF compartments; aCompCor comes from a noise pool of
those compartments.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from lcm.atlas import Atlas, mni_grid, resample_to
from lcm.synth.confounds import acompcor, confounds_table, dvars
from lcm.synth.signals import smooth_noise
from lcm.synth.streams import rng_for
from lcm.synth.subject import Context, SubjectDraw

SIGNAL_PCT = 1.0
VOXEL_NOISE_PCT = 1.5
MOTION_PCT_PER_MM = 4.0
GLOBAL_PCT = 0.4
BASE_INTENSITY = 900.0


@dataclass
class VoxelRun:
    """A subject's simulated voxel data and confounds."""

    affine: np.ndarray
    labels: np.ndarray  # (X, Y, Z) int, region index + 1 inside the brain, 0 outside
    bold: np.ndarray  # (X, Y, Z, T) float32
    t1w: np.ndarray  # (X, Y, Z) float32
    confounds: pd.DataFrame
    singular_values: np.ndarray


_GRID_CACHE: dict[tuple[str, int, float], np.ndarray] = {}


def grid_labels(atlas: Atlas, resolution_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Region position (1-based, 0 = background) of every grid voxel, and the grid affine.

    Resampling the 1 mm atlas takes about a second, so the result is cached per process.
    """
    shape, affine = mni_grid(resolution_mm)
    key = (atlas.name, atlas.n_rois, float(resolution_mm))
    if key not in _GRID_CACHE:
        target = nib.Nifti1Image(np.zeros(shape, dtype=np.uint8), affine)
        data = np.asarray(resample_to(atlas, target).dataobj).astype(int)
        # Region value -> 1-based position in the labels table (values need not be 1..R).
        lookup = np.zeros(max(int(data.max()), int(atlas.labels["index"].max())) + 1, dtype=int)
        lookup[atlas.labels["index"].to_numpy()] = np.arange(1, atlas.n_rois + 1)
        _GRID_CACHE[key] = lookup[data]
    return _GRID_CACHE[key], affine


def simulate_voxels(ctx: Context, index: int, draw: SubjectDraw) -> VoxelRun:
    """Spread subject ``index``'s region signals over the grid and add the noise model."""
    labels, affine = grid_labels(ctx.atlas, ctx.spec.resolution_mm)
    rng = rng_for("voxel", ctx.seed, ctx.spec.name, index)
    n_vol, tr = ctx.spec.n_volumes, ctx.spec.tr
    brain = labels > 0
    region = labels[brain] - 1
    n_vox = int(brain.sum())
    ijk = np.argwhere(brain)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]

    amplitude = rng.lognormal(0.0, 0.2, ctx.model.n_rois)[region]
    percent = SIGNAL_PCT * amplitude[None, :] * draw.signals[:, region]
    percent += VOXEL_NOISE_PCT * rng.standard_normal((n_vol, n_vox))

    # Motion artefact: intensity change of each voxel follows the displacement along a
    # smooth spatial gradient (plus spin-history like derivative terms).
    shift = draw.motion.copy()
    shift[:, 3:] *= 50.0  # radians -> mm at the cortex
    deriv = np.vstack([np.zeros((1, 6)), np.diff(shift, axis=0)])
    centred = (xyz - xyz.mean(axis=0)) / 60.0
    directions = rng.normal(0, 1, (3, 12))
    spatial = centred @ directions + 0.3 * rng.standard_normal((n_vox, 12))
    percent += MOTION_PCT_PER_MM * (np.hstack([shift, deriv]) @ spatial.T)

    compartments = smooth_noise(rng, n_vol, 3, tr)  # global, white matter, CSF
    resp = np.sin(2 * np.pi * 0.3 * tr * np.arange(n_vol) + rng.uniform(0, 2 * np.pi))
    csf_sig = compartments[:, 2] + 0.5 * resp
    wm_sig = compartments[:, 1]
    w_wm, w_csf = rng.uniform(0, 0.4, n_vox), rng.uniform(0, 0.4, n_vox)
    percent += GLOBAL_PCT * compartments[:, [0]] + wm_sig[:, None] * w_wm + csf_sig[:, None] * w_csf
    drift = np.linspace(-0.5, 0.5, n_vol) * rng.uniform(0.5, 1.5)
    percent += drift[:, None]

    base = BASE_INTENSITY * (
        1 + 0.15 * np.cos(centred[:, 1] * 2) + 0.05 * rng.standard_normal(n_vox)
    )
    bold_vox = (base[None, :] * (1 + 0.01 * percent)).astype(np.float32)
    bold = np.zeros((*labels.shape, n_vol), dtype=np.float32)
    bold[brain] = bold_vox.T

    head_motion_pct = MOTION_PCT_PER_MM * (np.hstack([shift, deriv]) @ rng.normal(0, 0.3, 12))
    white_matter = 700 * (1 + 0.01 * (wm_sig + 0.3 * compartments[:, 0] + head_motion_pct + drift))
    csf = 1500 * (1 + 0.01 * (2 * csf_sig + 0.5 * compartments[:, 0] + head_motion_pct + drift))
    pool_sources = np.column_stack([wm_sig, csf_sig, shift, deriv, compartments[:, 0]])
    pool = pool_sources @ rng.normal(0, 1, (pool_sources.shape[1], 60))
    pool += 0.5 * rng.standard_normal(pool.shape)
    components, singular = acompcor(pool)
    dv_raw, dv_std = dvars(bold_vox.astype(np.float64))
    table = confounds_table(
        global_signal=bold_vox.mean(axis=1),
        csf=csf,
        white_matter=white_matter,
        motion=draw.motion,
        fd=draw.fd,
        dvars_raw=dv_raw,
        dvars_std=dv_std,
        compcor=components,
        tr=tr,
    )
    return VoxelRun(affine, labels, bold, _t1w(labels, rng), table, singular)


def _t1w(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crude T1-weighted head: scalp ring, grey matter by region, smooth noise."""
    brain = labels > 0
    head = ndimage.binary_dilation(brain, iterations=3)
    filled = ndimage.binary_fill_holes(brain)
    img = np.where(head, 250.0, 0.0)
    img[filled] = 750.0  # "white matter" inside the cortical ribbon
    img[brain] = 550.0 + 5.0 * (labels[brain] % 7)
    img += 15.0 * ndimage.gaussian_filter(rng.standard_normal(labels.shape), 1.0) * head
    return img.astype(np.float32)
