"""Voxel-level BOLD of one subject on the MNI152NLin2009cAsym grid, and its confounds.

Each brain voxel (atlas label > 0 after nearest-neighbour resampling to the grid) of region r:

    bold_v(t) = base_v * (1 + 0.01 * [a_r * s_r(t) + noise_v(t) + motion_v(t)
                                      + 0.1 g(t) + w_v wm(t) + c_v csf(t) + drift(t)])

in percent signal change: ``s_r`` the region signal (unit variance, intended connectivity),
``noise_v`` independent voxel noise (1.5 %), ``motion_v`` a spatial pattern times the six motion
parameters and their derivatives (4 %/mm along a smooth spatial gradient, so connectivity is
distorted until 24P regression removes it), ``g`` a global component, ``wm``/``csf``
white-matter and CSF components entering through partial volume (``w_v, c_v`` up to 0.1), and a
slow drift removed by detrending/high-pass. The global and partial-volume weights are calibrated
so that mean off-diagonal FC after the workflow's 24P denoising (no global signal regression)
lands in the range of real data, like the ROI tier (``benchmarks/synth_realism.py``).
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
from lcm.synth.signals import HEAD_RADIUS_MM, smooth_noise
from lcm.synth.streams import rng_for
from lcm.synth.subject import Context, SubjectDraw

SIGNAL_PCT = 1.0
VOXEL_NOISE_PCT = 1.5
MOTION_PCT_PER_MM = 4.0
GLOBAL_PCT = 0.1
PARTIAL_VOLUME_MAX = 0.1  # white-matter and CSF weight of a grey-matter voxel
BASE_INTENSITY = 900.0
VOXEL_BLOCK = 16384  # voxels simulated at once (bounds memory)


@dataclass
class VoxelRun:
    """A subject's simulated voxel data and confounds.

    The BOLD data are kept as brain voxels only, (n_volumes, n_voxels) integer intensities: a
    fifth of the grid, and what :func:`lcm.synth.nifti.write_bold_stream` writes volume by
    volume, so the full 4D grid never sits in memory.
    """

    affine: np.ndarray
    labels: np.ndarray  # (X, Y, Z) int, region index + 1 inside the brain, 0 outside
    bold_vox: np.ndarray  # (T, n_brain_voxels) int16, brain voxels in np.argwhere order
    t1w: np.ndarray  # (X, Y, Z) float32
    confounds: pd.DataFrame
    singular_values: np.ndarray

    @property
    def brain(self) -> np.ndarray:
        """Boolean brain mask on the grid, shape (X, Y, Z)."""
        return self.labels > 0


_GRID_CACHE: dict[tuple[str, int, float], np.ndarray] = {}


def grid_labels(atlas: Atlas, resolution_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Region position (1-based, 0 = background) of every grid voxel, and the grid affine.

    Resampling the 1 mm atlas takes about a second, so the result is cached per process.

    Parameters
    ----------
    atlas : Atlas
        The workflow's atlas.
    resolution_mm : float
        Voxel size of the MNI grid (the consortium's ``resolution_mm``).

    Returns
    -------
    labels : numpy.ndarray of int, shape (X, Y, Z)
    affine : numpy.ndarray, shape (4, 4)
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
    """Spread subject ``index``'s region signals over the grid and add the noise model.

    Voxels are simulated in blocks of ``VOXEL_BLOCK`` in float32, so peak memory is the run's
    int16 brain voxels plus one block (about 0.6 GB for a 2 mm, 300-volume run).

    Parameters
    ----------
    ctx : Context
        The consortium, as :func:`lcm.synth.subject.prepare` returns it.
    index : int
        The subject's position in the roster.
    draw : SubjectDraw
        The subject's region signals and motion (:func:`lcm.synth.subject.simulate_subject`).

    Returns
    -------
    VoxelRun
    """
    labels, affine = grid_labels(ctx.atlas, ctx.spec.resolution_mm)
    rng = rng_for("voxel", ctx.seed, ctx.spec.name, index)
    n_vol, tr = ctx.spec.n_volumes, ctx.spec.tr
    brain = labels > 0
    region = labels[brain] - 1
    n_vox = int(brain.sum())
    ijk = np.argwhere(brain)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    centred = (xyz - xyz.mean(axis=0)) / 60.0

    # Per-voxel parameters (small): amplitude, motion sensitivity, partial volumes, baseline.
    amplitude = rng.lognormal(0.0, 0.2, ctx.model.n_rois)
    # Motion artefact: intensity change of each voxel follows the displacement along a
    # smooth spatial gradient (plus spin-history like derivative terms).
    shift = draw.motion.copy()
    shift[:, 3:] *= HEAD_RADIUS_MM  # radians -> mm at the cortex
    deriv = np.vstack([np.zeros((1, 6)), np.diff(shift, axis=0)])
    motion12 = np.hstack([shift, deriv])
    directions = rng.normal(0, 1, (3, 12))
    spatial = centred @ directions + 0.3 * rng.standard_normal((n_vox, 12))
    w_wm = rng.uniform(0, PARTIAL_VOLUME_MAX, n_vox)
    w_csf = rng.uniform(0, PARTIAL_VOLUME_MAX, n_vox)
    base = BASE_INTENSITY * (
        1 + 0.15 * np.cos(centred[:, 1] * 2) + 0.05 * rng.standard_normal(n_vox)
    )

    compartments = smooth_noise(rng, n_vol, 3, tr)  # global, white matter, CSF
    resp = np.sin(2 * np.pi * 0.3 * tr * np.arange(n_vol) + rng.uniform(0, 2 * np.pi))
    csf_sig = compartments[:, 2] + 0.5 * resp
    wm_sig = compartments[:, 1]
    drift = np.linspace(-0.5, 0.5, n_vol) * rng.uniform(0.5, 1.5)
    shared = GLOBAL_PCT * compartments[:, 0] + drift  # in every brain voxel

    bold_vox = np.empty((n_vol, n_vox), dtype=np.int16)
    sums = np.zeros(n_vol)
    for lo in range(0, n_vox, VOXEL_BLOCK):
        sl = slice(lo, min(lo + VOXEL_BLOCK, n_vox))
        reg = region[sl]
        pct = (SIGNAL_PCT * amplitude[reg]).astype(np.float32) * draw.signals[:, reg].astype(
            np.float32
        )
        pct += VOXEL_NOISE_PCT * rng.standard_normal(pct.shape, dtype=np.float32)
        pct += (MOTION_PCT_PER_MM * motion12 @ spatial[sl].T).astype(np.float32)
        pct += (np.outer(wm_sig, w_wm[sl]) + np.outer(csf_sig, w_csf[sl])).astype(np.float32)
        pct += shared[:, None].astype(np.float32)
        # Integer intensities, as scanners store them (1 unit ~ 0.1 % of the baseline).
        block = np.rint(base[sl].astype(np.float32) * (1 + 0.01 * pct))
        sums += block.sum(axis=1, dtype=np.float64)
        bold_vox[:, sl] = block.astype(np.int16)

    head_motion_pct = MOTION_PCT_PER_MM * (motion12 @ rng.normal(0, 0.3, 12))
    white_matter = 700 * (1 + 0.01 * (wm_sig + 0.3 * compartments[:, 0] + head_motion_pct + drift))
    csf = 1500 * (1 + 0.01 * (2 * csf_sig + 0.5 * compartments[:, 0] + head_motion_pct + drift))
    pool_sources = np.column_stack([wm_sig, csf_sig, shift, deriv, compartments[:, 0]])
    pool = pool_sources @ rng.normal(0, 1, (pool_sources.shape[1], 60))
    pool += 0.5 * rng.standard_normal(pool.shape)
    components, singular = acompcor(pool)
    dv_raw, dv_std = dvars(bold_vox)
    table = confounds_table(
        global_signal=sums / n_vox,
        csf=csf,
        white_matter=white_matter,
        motion=draw.motion,
        fd=draw.fd,
        dvars_raw=dv_raw,
        dvars_std=dv_std,
        compcor=components,
        tr=tr,
    )
    return VoxelRun(affine, labels, bold_vox, _t1w(labels, rng), table, singular)


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
