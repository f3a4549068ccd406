"""The MNI152NLin2009cAsym grid of coordinate atlases and synthetic data, and resampling."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from lcm.atlas.model import Atlas


# The fMRIPrep MNI152NLin2009cAsym 2 mm grid (97 x 115 x 97); other resolutions scale it.
def mni_grid(resolution_mm: float = 2.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the MNI152NLin2009cAsym grid at ``resolution_mm``.

    Parameters
    ----------
    resolution_mm : float, default 2.0
        Voxel size in mm, the same on every axis.

    Returns
    -------
    shape : tuple of int
        ``(X, Y, Z)`` voxels.
    affine : numpy.ndarray
        ``(4, 4)`` voxel-to-MNI-mm affine.
    """
    extent = np.array([192.0, 228.0, 192.0])  # mm spanned by the 2 mm grid
    shape = tuple(round(float(e) / resolution_mm) + 1 for e in extent)
    affine = np.diag([resolution_mm, resolution_mm, resolution_mm, 1.0])
    affine[:3, 3] = [-96.0, -132.0, -78.0]
    return shape, affine  # type: ignore[return-value]


def resample_to(atlas: Atlas, target: nib.Nifti1Image) -> nib.Nifti1Image:
    """Resample the label image to ``target``'s grid by nearest neighbour.

    Parameters
    ----------
    atlas : Atlas
        An atlas with a label image.
    target : nibabel.Nifti1Image
        An image on the grid wanted (a run's BOLD or its reference).

    Raises
    ------
    AtlasError
        The atlas has labels only, no image (:meth:`Atlas.require_image`).
    """
    from nilearn.image import resample_to_img

    return resample_to_img(
        atlas.require_image("resampling to a BOLD grid"),
        target,
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
