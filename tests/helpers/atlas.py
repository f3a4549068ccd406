"""Builders of tiny label atlases for the labels-file tests: an image holding given label
values, and the same labels file loaded with that image and without it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from lcm.atlas import Atlas, load_atlas


def label_image(root: Path, values: Sequence[int]) -> str:
    """Write ``root/atlas.nii.gz``, a (4, 5, 6) label image holding ``values`` (up to four),
    each on its own slab of voxels (the slabs left over background), and return its path."""
    data = np.zeros((4, 5, 6), dtype=np.int16)
    for k, value in enumerate(values):
        data[k] = value
    nib.save(nib.Nifti1Image(data, np.eye(4)), root / "atlas.nii.gz")
    return str(root / "atlas.nii.gz")


def with_and_without_image(
    root: Path, name: str, text: str, values: Sequence[int]
) -> tuple[Atlas, Atlas]:
    """Write ``text`` as the labels file ``root/name``; the atlas ``mine`` of it with a
    :func:`label_image` of ``values``, and of it alone (labels only)."""
    (root / name).write_text(text)
    labels = str(root / name)
    return load_atlas("mine", label_image(root, values), labels), load_atlas("mine", labels=labels)
