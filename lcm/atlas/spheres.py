"""Coordinate atlases (Power-264, Dosenbach-160, Seitzman-300) as label images, built offline.

The ROI centres are the coordinate tables nilearn ships in ``nilearn/datasets/data`` (read by
its ``fetch_coords_*`` functions without a download). Each ROI becomes a sphere of voxels whose
centres lie within the ROI's radius (5 mm; Seitzman's table gives 4 or 5 mm per ROI) on the
fMRIPrep MNI152NLin2009cAsym 2 mm grid (97 x 115 x 97, :func:`lcm.atlas.mni_grid`). A voxel
inside several spheres goes to the nearest centre (ties: the lower ROI number), so parcels never
overlap and every voxel has one label. Images are built on first use and cached in memory.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.exceptions import AtlasError

SPACE = "MNI152NLin2009cAsym"
RESOLUTION_MM = 2.0
DEFAULT_RADIUS_MM = 5.0


@dataclass(frozen=True)
class CoordinateTable:
    """Where one coordinate atlas comes from."""

    files: tuple[str, ...]  # inside nilearn/datasets/data; the first holds the coordinates
    reference: str


COORDINATE_ATLASES = {
    "power264": CoordinateTable(("power_2011.csv",), "Power et al. 2011, Neuron 72:665 (264 ROIs)"),
    "dosenbach160": CoordinateTable(
        ("dosenbach_2010.csv",), "Dosenbach et al. 2010, Science 329:1358 (160 ROIs)"
    ),
    "seitzman300": CoordinateTable(
        (
            "seitzman_2018_ROIs_300inVol_MNI_allInfo.txt",
            "seitzman_2018_ROIs_anatomicalLabels.txt",
        ),
        "Seitzman et al. 2020, NeuroImage 206:116290 (300 ROIs)",
    ),
}


def nilearn_data_dir() -> Path:
    """``nilearn/datasets/data`` of the installed nilearn."""
    import nilearn.datasets

    return Path(nilearn.datasets.__file__).parent / "data"


def coordinate_files(name: str) -> list[Path]:
    """The nilearn files a coordinate atlas is built from (for provenance ``Sources``)."""
    return [nilearn_data_dir() / f for f in COORDINATE_ATLASES[name].files]


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")


def coordinate_table(name: str) -> pd.DataFrame:
    """ROI table of a coordinate atlas: ``index``, ``name``, ``network``, ``x``, ``y``, ``z``,
    ``radius_mm`` (MNI mm), one row per ROI in the published order.

    Raises
    ------
    AtlasError
        If nilearn's file is missing or unreadable.
    """
    files = coordinate_files(name)
    try:
        if name == "power264":
            raw = pd.read_csv(files[0])
            xyz = raw[["X", "Y", "Z"]].to_numpy(float)
            names = [f"Power_{i:03d}" for i in raw["ROI"].astype(int)]
            networks = [""] * len(raw)
            radius = np.full(len(raw), DEFAULT_RADIUS_MM)
        elif name == "dosenbach160":
            raw = pd.read_csv(files[0])
            xyz = raw[["x", "y", "z"]].to_numpy(float)
            names = [
                f"{int(i):03d}_{_clean(n)}" for i, n in zip(raw["number"], raw["name"], strict=True)
            ]
            networks = raw["network"].astype(str).tolist()
            radius = np.full(len(raw), DEFAULT_RADIUS_MM)
        else:
            raw = pd.read_csv(files[0], sep=r"\s+")
            anat_codes = pd.read_csv(files[1], header=None, skiprows=1)[0].astype(int).tolist()
            legend = dict(
                item.split("=") for item in files[1].read_text().splitlines()[0].split(",")
            )
            xyz = raw[["x", "y", "z"]].to_numpy(float)
            names = [
                f"{i + 1:03d}_{legend.get(str(code), 'unknown')}"
                for i, code in enumerate(anat_codes)
            ]
            networks = raw["netName"].astype(str).tolist()
            radius = raw["radius(mm)"].to_numpy(float)
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as exc:
        raise AtlasError(
            f"Atlas {name!r}: cannot read nilearn's coordinate file {files[0]}: {exc}",
            hint="Reinstall nilearn (the coordinate tables ship inside the package).",
        ) from exc
    return pd.DataFrame(
        {
            "index": np.arange(1, len(xyz) + 1),
            "name": names,
            "network": networks,
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "radius_mm": radius,
        }
    )


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


@functools.cache
def build_coordinate_atlas(name: str) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Label image (2 mm MNI152NLin2009cAsym) and labels table of a coordinate atlas (cached).

    Raises
    ------
    AtlasError
        If a ROI ends up without any voxel.
    """
    from lcm.atlas import mni_grid

    table = coordinate_table(name)
    shape, affine = mni_grid(RESOLUTION_MM)
    data = sphere_labels(table[["x", "y", "z"]].to_numpy(), table["radius_mm"].to_numpy(),
                         shape, affine)  # fmt: skip
    present = np.unique(data[data > 0])
    if present.size != len(table):
        lost = sorted(set(table["index"]) - set(present.tolist()))[:10]
        raise AtlasError(f"Atlas {name!r}: ROIs {lost} have no voxel on the 2 mm grid.")
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    return img, table[["index", "name", "network"]].copy()
