"""The :class:`Atlas` every loader returns: a label image (or none) and its labels table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.exceptions import AtlasError
from lcm.store.layout import labels_identity

# How a user names the atlas settings, in messages and hints: the config's keys. A verb that
# takes them as options passes its options' names (lcm.commands._atlas.OPTION_NAMES): a user of
# --atlas-labels was told to check atlas.labels, a key of a config they never wrote.
CONFIG_KEYS = {
    "name": "atlas.name",
    "path": "atlas.path",
    "labels": "atlas.labels",
    "templateflow": "atlas.templateflow",
}


def setting_names(names: Mapping[str, str] | None) -> dict[str, str]:
    """``names`` over :data:`CONFIG_KEYS`: how each atlas setting is named to the user.

    Parameters
    ----------
    names : mapping of str to str, optional
        Setting (``name``, ``path``, ``labels``, ``templateflow``) to the name the user gave
        it by; None, or a setting left out, names it by its config key.

    Returns
    -------
    dict of str to str
    """
    return {**CONFIG_KEYS, **(names or {})}


@dataclass(frozen=True)
class Atlas:
    """A label atlas.

    Attributes
    ----------
    name : str
        Name used in output file names (``seg-<name>``).
    img : nibabel.Nifti1Image or None
        Integer label image; 0 is background. ``None`` for a labels-only atlas (ROI time
        series and connectomes brought as files need no image).
    labels : pandas.DataFrame
        Columns ``index`` (int, the value in ``img``) and ``name``, one row per region, sorted;
        coordinate atlases add ``network``, labels-only atlases may add ``x``, ``y``, ``z``.
    space : str
        Template space of ``img`` (:data:`NO_SPACE` for a labels-only atlas).
    files : tuple of str
        The files it was read from, absolute (image, table; a TemplateFlow atlas's as found in
        its tree), for provenance; empty for the registry's (:func:`atlas_sources`).
    """

    name: str
    img: nib.Nifti1Image | None
    labels: pd.DataFrame
    space: str
    files: tuple[str, ...] = ()

    @property
    def n_rois(self) -> int:
        """Number of regions."""
        return len(self.labels)

    @property
    def roi_names(self) -> list[str]:
        """ROI names in atlas order."""
        return [str(n) for n in self.labels["name"]]

    @property
    def identity(self) -> str:
        """Hash of the ordered ROI names (:func:`labels_identity`): one value per parcellation."""
        return labels_identity(self.roi_names)

    def require_image(
        self, purpose: str, names: Mapping[str, str] | None = None
    ) -> nib.Nifti1Image:
        """The label image, or an :class:`AtlasError` saying ``purpose`` needs one.

        Parameters
        ----------
        purpose : str
            What needs the image (``"resampling to a BOLD grid"``), named in the error.
        names : mapping of str to str, optional
            How the user gave the atlas settings (:func:`setting_names`), named in the hint.

        Raises
        ------
        AtlasError
            When the atlas has labels only.
        """
        if self.img is None:
            keys = setting_names(names)
            raise AtlasError(
                f"Atlas {self.name!r} is given by its labels only; {purpose} needs its label "
                "image.",
                hint="A labels table, coordinates (x, y, z) included, is no image: voxel-level "
                f"data needs a 3D label image, {keys['path']} with {keys['labels']} (a "
                "coordinate atlas drawn as spheres into one), a registry atlas (power264, "
                "dosenbach160 and seitzman300 are coordinate atlases drawn so) or a TemplateFlow "
                f"atlas ({keys['templateflow']}).",
            )
        return self.img

    def centroids(self) -> np.ndarray:
        """ROI centres ``[R, 3]`` in world mm: the table's ``x, y, z`` or the image's centres of
        mass; NaN where neither is known."""
        if {"x", "y", "z"} <= set(self.labels.columns):
            return self.labels[["x", "y", "z"]].to_numpy(dtype=np.float64)
        out = np.full((self.n_rois, 3), np.nan)
        if self.img is None:
            return out
        data = np.asarray(self.img.dataobj)
        # One pass over the image (a scan per label took seconds at 116 labels): voxel counts
        # and coordinate sums per integer label.
        integral = (data == np.rint(data)) & (data > 0)
        flat = np.where(integral, data, 0).astype(np.int64).ravel()
        ids = self.labels["index"].to_numpy().astype(np.int64)
        inside = np.flatnonzero(flat)
        grid = np.unravel_index(inside, data.shape[:3])
        counts, *sums_xyz = _sums_by_label(flat[inside], ids, [np.ones(len(inside)), *grid])
        sums = np.stack(sums_xyz)
        found = counts > 0
        mean_ijk = sums[:, found] / counts[found]  # [3, found]
        out[found] = (self.img.affine @ np.vstack([mean_ijk, np.ones(found.sum())]))[:3].T
        return out

    def parcel_volumes_mm3(self) -> np.ndarray:
        """Volume of each region in its own image (mm^3), in ``labels`` order."""
        data = np.asarray(self.require_image("parcel volumes").dataobj).ravel()
        ids = self.labels["index"].to_numpy().astype(np.int64)
        inside = data[data > 0].astype(np.int64)
        (counts,) = _sums_by_label(inside, ids, [np.ones(len(inside))])
        voxel = abs(float(np.linalg.det(self.img.affine[:3, :3])))
        return counts.astype(np.float64) * voxel


def _sums_by_label(
    labels: np.ndarray, ids: np.ndarray, weights: list[np.ndarray]
) -> list[np.ndarray]:
    """Per label of ``ids`` (0 for one absent), the sum of each of ``weights`` over the voxels
    of that label (``labels``: one per voxel).

    Over the labels present, not a bincount as long as the largest: labels up to 2**31 (which
    the loader accepts) asked gigabytes of it.
    """
    present, inverse = np.unique(labels, return_inverse=True)
    pos = np.searchsorted(present, ids)
    hit = pos < len(present)
    hit[hit] = present[pos[hit]] == ids[hit]
    out = []
    for w in weights:
        per_present = np.bincount(
            inverse, weights=np.asarray(w, dtype=np.float64), minlength=len(present)
        )
        sums = np.zeros(len(ids))
        sums[hit] = per_present[pos[hit]]
        out.append(sums)
    return out


# Space of a labels-only atlas: it has no image, so no template space.
NO_SPACE = "none"
# Space of a user's label image whose file name names no template (``tpl-``, ``space-``): not
# known, so not checked against the BOLD's.
CUSTOM_SPACE = "custom"
