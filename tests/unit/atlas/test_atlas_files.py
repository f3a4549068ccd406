"""User atlas files as tools write them: label images nilearn reads, tables as written.

A label image nilearn's ``NiftiLabelsMasker`` takes (one volume in a 4D file, labels stored as
1.0000001) is an atlas here too; a labels table keeps every name as written (``NA``,
``ROI #1``); a table whose layout is not ours is refused with the fix, never read as other
regions.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcm.atlas import load_atlas
from lcm.exceptions import AtlasError, ConfigError

TABLE = "index\tname\n1\tA\n7\tB\n42\tC\n"


def _labels() -> np.ndarray:
    """Labels 1, 7 and 42 on a (5, 6, 7) grid (distinct axis sizes), 0 elsewhere."""
    data = np.zeros((5, 6, 7), dtype=np.int16)
    data[:2], data[2:4, :3], data[4] = 1, 7, 42
    return data


def _files(root: Path, img: nib.Nifti1Image, table: str = TABLE) -> tuple[str, str]:
    nib.save(img, root / "atlas.nii.gz")
    (root / "atlas.tsv").write_text(table)
    return str(root / "atlas.nii.gz"), str(root / "atlas.tsv")


def test_a_label_image_saved_with_one_volume_is_3d(tmp_path: Path) -> None:
    """(X, Y, Z, 1), as nilearn's check_niimg_3d reads it, not a 4D probabilistic atlas."""
    img = nib.Nifti1Image(_labels()[..., None], np.eye(4))
    atlas = load_atlas("mine", *_files(tmp_path, img))
    assert atlas.labels["index"].tolist() == [1, 7, 42]
    assert np.array_equal(np.asarray(atlas.img.dataobj), _labels())


def _scaled(slope: float) -> nib.Nifti1Image:
    img = nib.Nifti1Image(_labels(), np.eye(4))
    img.header.set_slope_inter(slope, 0)
    return img


@pytest.mark.parametrize(
    "make",
    [
        lambda: nib.Nifti1Image(
            np.where(_labels() == 1, np.float32(1.0000001), _labels()).astype(np.float32),
            np.eye(4),
        ),
        lambda: _scaled(1.0000001),
    ],
    ids=["float32", "int16-scl_slope"],
)
def test_labels_stored_a_rounding_error_off_are_the_labels(tmp_path: Path, make) -> None:
    """1.0000001 (float32, or int16 times scl_slope 1.0000001) is label 1, as for nilearn."""
    atlas = load_atlas("mine", *_files(tmp_path, make()))
    assert atlas.labels["index"].tolist() == [1, 7, 42]
    assert np.array_equal(np.asarray(atlas.img.dataobj), _labels())


def test_a_fraction_is_refused_with_its_exact_value(tmp_path: Path) -> None:
    """Beyond the rounding tolerance a value is no label, and is shown as stored (100000.4
    was shown as 100000, a whole number)."""
    for value, shown in ((100000.4, r"100000\.4"), (1.001, r"1\.001")):
        data = np.where(_labels() == 1, value, _labels()).astype(np.float32)
        with pytest.raises(AtlasError, match=rf"not whole numbers \(e\.g\. {shown}\)"):
            load_atlas("mine", *_files(tmp_path, nib.Nifti1Image(data, np.eye(4))))


def test_a_nan_background_is_named_so(tmp_path: Path) -> None:
    """NaN voxels are a background saved so, not a probabilistic map (the hint said so)."""
    data = np.where(_labels() == 0, np.nan, _labels()).astype(np.float32)
    with pytest.raises(AtlasError, match=r"holds 42 NaN voxel\(s\)") as info:
        load_atlas("mine", *_files(tmp_path, nib.Nifti1Image(data, np.eye(4))))
    assert "Set its NaN voxels to 0" in (info.value.hint or "")


def test_colour_tables_with_or_without_alpha(tmp_path: Path) -> None:
    """``index name R G B`` (no alpha) is a colour table as ``index name R G B A`` is."""
    img = nib.Nifti1Image(_labels(), np.eye(4))
    rgb = "0 Unknown 0 0 0\n1 Left-A 70 130 180\n7 Right-B 245 245 245\n42 C 0 118 14\n"
    assert load_atlas("mine", *_files(tmp_path, img, rgb)).roi_names == ["Left-A", "Right-B", "C"]
    rgba = (
        "#No. Label R G B A\n1 Left-A 70 130 180 0\n7 Right-B 245 245 245 0  # note\n"
        "42 C 0 118 14 0\n"
    )
    assert load_atlas("mine", *_files(tmp_path, img, rgba)).roi_names == ["Left-A", "Right-B", "C"]
    # Numbers beyond a colour's 0-255 are words of a name, read as the rest of the line.
    names = "1 Area 7 300 2\n7 B\n42 C\n"
    assert load_atlas("mine", *_files(tmp_path, img, names)).roi_names == ["Area 7 300 2", "B", "C"]


def test_names_are_read_as_written(tmp_path: Path) -> None:
    """'NA', 'None', 'null' are names, not missing values; '#' inside a name is part of it,
    and only a line starting with '#' is a comment."""
    table = "# regions\nindex\tname\n1\tNA\n7\tROI #7\n42\tNone\n"
    atlas = load_atlas("mine", *_files(tmp_path, nib.Nifti1Image(_labels(), np.eye(4)), table))
    assert atlas.roi_names == ["NA", "ROI #7", "None"]
    (tmp_path / "only.tsv").write_text("name\tnetwork\nnull\tVis\nROI #2\tnan\n")
    atlas = load_atlas("mine", labels=str(tmp_path / "only.tsv"))
    assert atlas.roi_names == ["null", "ROI #2"] and atlas.labels["network"].tolist() == [
        "Vis",
        "nan",
    ]


@pytest.mark.parametrize(
    "table",
    ["index,name,x,y,z\n1,A,0,0,0\n2,B,1,1,1\n", "1,A\n2,B\n", "name,network\nA,Vis\nB,DMN\n"],
    ids=["header", "headerless", "name-first"],
)
def test_a_comma_separated_labels_table_is_refused_with_the_fix(tmp_path: Path, table) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(table)
    with pytest.raises(AtlasError, match=r"labels\.csv is comma-separated") as refused:
        load_atlas("mine", labels=str(path))
    assert "sep='\\t'" in refused.value.hint
    # A list of names, some of them with a comma, is a list of names.
    path.write_text("Frontal Pole\nInsular Cortex, anterior\n")
    assert load_atlas("mine", labels=str(path)).roi_names == [
        "Frontal Pole",
        "Insular Cortex, anterior",
    ]


@pytest.mark.parametrize("keys", [("path", "labels"), ("labels",)], ids=["image", "labels_only"])
def test_files_of_ones_own_under_a_registry_name_are_refused(keys: tuple[str, ...]) -> None:
    # {name: aal116, path: <own image>, labels: <own tsv>} was taken: a user atlas whose
    # outputs and store partition (atlas=aal116) passed for the registry's AAL.
    from lcm.atlas.load import check_atlas_files

    settings = {"name": "aal116", **{k: f"/nowhere/mine.{k}" for k in keys}}
    with pytest.raises(ConfigError, match=r"^config: atlas\.name is 'aal116', a registry") as err:
        check_atlas_files({"atlas": settings})
    assert "atlas=aal116" in err.value.message and "atlas.name" in err.value.hint
    assert f"atlas.{keys[0]}" in err.value.message


def test_volumes_and_centroids_of_labels_in_the_hundreds_of_millions(tmp_path: Path) -> None:
    """Counted over the labels present: a bincount as long as the largest label (which the
    loader accepts up to 2**31) asked for gigabytes; lcm atlases died on it."""
    big = np.where(_labels() == 42, 600_000_000, _labels().astype(np.int32))
    table = TABLE.replace("42", "600000000")
    small = load_atlas("mine", *_files(tmp_path, nib.Nifti1Image(_labels(), np.eye(4))))
    (tmp_path / "big").mkdir()
    atlas = load_atlas("mine", *_files(tmp_path / "big", nib.Nifti1Image(big, np.eye(4)), table))
    assert atlas.parcel_volumes_mm3().tolist() == small.parcel_volumes_mm3().tolist()
    assert atlas.parcel_volumes_mm3().tolist() == [2 * 6 * 7, 2 * 3 * 7, 6 * 7]
    np.testing.assert_allclose(atlas.centroids(), small.centroids())
    np.testing.assert_allclose(small.centroids()[2], [4, 2.5, 3])


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        (["--atlas-labels", "absent.tsv"], "Check --atlas-labels."),
        (
            ["--atlas-path", "absent.nii.gz", "--atlas-labels", "absent.tsv"],
            "Check --atlas-path and --atlas-labels.",
        ),
        (["--atlas-path", "atlas.nii.gz"], "Set --atlas-labels to a TSV"),
    ],
)
def test_an_atlas_given_by_options_is_hinted_by_the_options(
    options: list[str], hint: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`lcm atlases --atlas-labels absent.tsv` was told "Check atlas.labels.", a key of a
    config the command-line user never wrote."""
    from lcm.cli import main

    monkeypatch.chdir(tmp_path)
    nib.save(nib.Nifti1Image(_labels(), np.eye(4)), tmp_path / "atlas.nii.gz")
    assert main(["atlases", "--atlas", "mine", *options]) != 0
    err = capsys.readouterr().err
    assert hint in err and "atlas.labels" not in err and "atlas.path" not in err


@pytest.mark.parametrize("content", ["empty", "text", "truncated"])
def test_an_unreadable_label_image_is_refused_with_the_fix(
    content: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """An empty, plain-text or truncated --atlas-path said only nibabel's words ("Cannot work
    out file type"), no fix."""
    from lcm.cli import main

    monkeypatch.chdir(tmp_path)
    img, _ = _files(tmp_path, nib.Nifti1Image(_labels(), np.eye(4)))
    whole = Path(img).read_bytes()
    body = {"empty": b"", "text": b"not an image\n", "truncated": whole[: len(whole) // 2]}
    Path(img).write_bytes(body[content])
    argv = ["atlases", "--atlas", "mine", "--atlas-path", img, "--atlas-labels", "atlas.tsv"]
    assert main(argv) == AtlasError.exit_code
    err = capsys.readouterr().err
    assert f"cannot read {img} as a label NIfTI image" in err and "Traceback" not in err
    assert "hint: Give --atlas-path a label image" in err and "truncated or corrupt" in err


def test_an_atlas_given_by_config_keys_is_hinted_by_the_keys(tmp_path: Path) -> None:
    from lcm.atlas import atlas_from_settings

    with pytest.raises(AtlasError) as caught:
        atlas_from_settings({"name": "mine", "labels": str(tmp_path / "absent.tsv")})
    assert caught.value.hint == "Check atlas.labels."
    with pytest.raises(ConfigError, match=r"^atlas\.name is 'aal116'.* but atlas\.labels give"):
        atlas_from_settings({"name": "aal116", "labels": str(tmp_path / "absent.tsv")})


VOXEL_RUN = ["connectome", "run", "--dataset", "d", "--fmriprep-record", "rec.json"]
VOXEL_RUN += ["--run-key", "sub-01_task-rest", "--out-dir", "out", "--qc-out", "qc.json"]


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["atlases", "--atlas", "aal166"], "give --atlas-path and --atlas-labels"),
        (
            [*VOXEL_RUN, "--atlas", "mine", "--atlas-labels", "atlas.tsv"],
            "--atlas-path with --atlas-labels",
        ),
    ],
)
def test_an_atlas_refused_on_the_command_line_is_hinted_by_the_options(
    argv: list[str], hint: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`lcm atlases --atlas aal166` and `lcm connectome run` with a labels-only atlas were told
    to give atlas.path and atlas.labels, keys of a config the command-line user never wrote."""
    from lcm.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "atlas.tsv").write_text(TABLE)
    (tmp_path / "rec.json").write_text("{}")
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert hint in err and "atlas.path" not in err and "atlas.labels" not in err
    assert not (tmp_path / "out").exists()


def test_an_unknown_registry_name_in_a_config_is_hinted_by_its_keys() -> None:
    from lcm.atlas import atlas_from_settings

    with pytest.raises(AtlasError) as caught:
        atlas_from_settings({"name": "aal166"})
    assert "atlas.name; for your own atlas give atlas.path and atlas.labels" in caught.value.hint
