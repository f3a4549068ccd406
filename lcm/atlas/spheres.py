"""Label images of non-overlapping spheres around ROI centres (the coordinate atlases' geometry).

Each ROI becomes a sphere of voxels whose centres lie within the ROI's radius on the fMRIPrep
MNI152NLin2009cAsym 2 mm grid (97 x 115 x 97, :func:`lcm.atlas.grid.mni_grid`). A voxel inside
several spheres goes to the nearest centre (ties: the lower ROI number), so parcels never
overlap and every voxel has one label. Which atlases are built this way, and from which
coordinate tables, is the registry's (:data:`lcm.atlas.registry.ATLASES`).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.atlas.grid import mni_grid
from lcm.exceptions import AtlasError

SPACE = "MNI152NLin2009cAsym"
RESOLUTION_MM = 2.0
DEFAULT_RADIUS_MM = 5.0


def sphere_labels(
    centres_mm: np.ndarray, radii_mm: np.ndarray, shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    """Label image of non-overlapping spheres: voxel -> 1-based index of the nearest centre
    whose radius contains it, 0 elsewhere.

    Parameters
    ----------
    centres_mm : ndarray, shape (N, 3)
        World coordinates.
    radii_mm : ndarray, shape (N,)
    shape : tuple of int
        Grid shape (3D).
    affine : ndarray, shape (4, 4)
        Grid affine (voxel -> mm).

    Returns
    -------
    ndarray of int16, shape ``shape``
    """
    labels = np.zeros(shape, dtype=np.int16)
    best = np.full(shape, np.inf)
    inv = np.linalg.inv(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    for i, (centre, radius) in enumerate(zip(centres_mm, radii_mm, strict=True)):
        c_vox = inv[:3, :3] @ centre + inv[:3, 3]
        reach = np.ceil(radius / zooms).astype(int) + 1
        lo = np.maximum(np.floor(c_vox).astype(int) - reach, 0)
        hi = np.minimum(np.ceil(c_vox).astype(int) + reach + 1, shape)
        if np.any(hi <= lo):
            continue  # outside the grid; caught by the caller's count check
        idx = np.stack(
            np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"),
            axis=-1,
        )
        world = idx @ affine[:3, :3].T + affine[:3, 3]
        dist = np.linalg.norm(world - centre, axis=-1)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        closer = (dist <= radius + 1e-6) & (dist < best[box])  # strict: ties keep lower ROI
        best[box][closer] = dist[closer]
        labels[box][closer] = i + 1
    return labels


def sphere_atlas(name: str, table: pd.DataFrame) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Label image (2 mm MNI152NLin2009cAsym) and labels table of a coordinate table.

    Parameters
    ----------
    name : str
        Atlas name (for messages).
    table : pandas.DataFrame
        ``index``, ``name``, ``network``, ``x``, ``y``, ``z``, ``radius_mm`` (MNI mm).

    Returns
    -------
    tuple
        The label image and the ``index``, ``name``, ``network`` columns of ``table``.

    Raises
    ------
    AtlasError
        If a ROI ends up without any voxel.
    """
    shape, affine = mni_grid(RESOLUTION_MM)
    data = sphere_labels(
        table[["x", "y", "z"]].to_numpy(), table["radius_mm"].to_numpy(), shape, affine
    )
    present = np.unique(data[data > 0])
    if present.size != len(table):
        lost = sorted(set(table["index"]) - set(present.tolist()))[:10]
        raise AtlasError(f"Atlas {name!r}: ROIs {lost} have no voxel on the 2 mm grid.")
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    return img, table[["index", "name", "network"]].copy()
