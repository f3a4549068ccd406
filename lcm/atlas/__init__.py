"""Atlases: label images resolved offline, by registry name, by files or by TemplateFlow query.

Nothing is downloaded. The modules, each importing only those before it (no cycle):

- :mod:`lcm.atlas.model`: :class:`Atlas`, what every loader returns. Every atlas has an
  identity, :attr:`Atlas.identity` (a hash of its ordered ROI names): the connectome stage and
  the store compare it with the ROI names files carry, so matrices of two parcellations with the
  same ROI count never mix.
- :mod:`lcm.atlas.grid`: the MNI152NLin2009cAsym grid (:func:`mni_grid`), :func:`resample_to`.
- :mod:`lcm.atlas.files`: a user's label image and table, a labels table alone
  (:func:`labels_only_atlas`), a local TemplateFlow tree (:func:`templateflow_atlas`).
- :mod:`lcm.atlas.spheres`: sphere label images around ROI centres.
- :mod:`lcm.atlas.registry`: the registry atlases, one table (:data:`lcm.atlas.registry.ATLASES`).
- :mod:`lcm.atlas.load`: :func:`load_atlas` and :func:`atlas_from_settings`, which pick among
  the above.
"""

from __future__ import annotations

from lcm.atlas.files import TEMPLATEFLOW_ENV, labels_only_atlas, templateflow_atlas
from lcm.atlas.grid import mni_grid, resample_to
from lcm.atlas.load import atlas_from_settings, load_atlas
from lcm.atlas.model import CUSTOM_SPACE, NO_SPACE, Atlas
from lcm.atlas.registry import atlas_files, available_atlases

__all__ = [
    "CUSTOM_SPACE",
    "NO_SPACE",
    "TEMPLATEFLOW_ENV",
    "Atlas",
    "atlas_files",
    "atlas_from_settings",
    "available_atlases",
    "labels_only_atlas",
    "load_atlas",
    "mni_grid",
    "resample_to",
    "templateflow_atlas",
]
