"""Coordinate atlases built offline (Power, Dosenbach, Seitzman) and TemplateFlow atlases by
config query."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcm.atlas import atlas_files, available_atlases, load_atlas, mni_grid
from lcm.atlas.registry import build_coordinate_atlas, coordinate_table
from lcm.atlas.spheres import sphere_labels
from lcm.commands._atlas_load import atlas_from_args
from lcm.evaluate.config_schema import validate_config
from lcm.exceptions import AtlasError, ConfigError

TPL = "MNI152NLin2009cAsym"


@pytest.mark.parametrize(
    ("name", "n_rois", "networks"),
    [("power264", 264, False), ("dosenbach160", 160, True), ("seitzman300", 300, True)],
)
def test_coordinate_atlas(name: str, n_rois: int, networks: bool) -> None:
    atlas = load_atlas(name)
    assert name in available_atlases() and atlas.n_rois == n_rois and atlas.space == TPL
    shape, affine = mni_grid(2.0)
    assert atlas.img.shape == shape == (97, 115, 97)
    np.testing.assert_array_equal(atlas.img.affine, affine)
    data = np.asarray(atlas.img.dataobj)
    assert sorted(np.unique(data[data > 0]).tolist()) == list(range(1, n_rois + 1))
    assert atlas.labels["name"].is_unique and atlas.labels["index"].tolist() == list(
        range(1, n_rois + 1)
    )
    assert (atlas.labels["network"].str.len() > 0).all() == networks
    # Every labelled voxel lies within its own ROI's radius and no nearer to another centre
    # whose sphere also reaches it (non-overlapping by nearest centre).
    table = coordinate_table(name)
    centres = table[["x", "y", "z"]].to_numpy()
    vox = np.argwhere(data > 0)
    world = vox @ affine[:3, :3].T + affine[:3, 3]
    own = data[tuple(vox.T)] - 1
    d_own = np.linalg.norm(world - centres[own], axis=1)
    assert np.all(d_own <= table["radius_mm"].to_numpy()[own] + 1e-6)
    volumes = atlas.parcel_volumes_mm3()
    assert volumes.max() <= 4 / 3 * np.pi * 5.0**3 * 1.5 and volumes.min() > 0
    assert all(p.is_file() for p in atlas_files(name))


def test_coordinate_atlas_is_cached() -> None:
    first = build_coordinate_atlas("dosenbach160")
    assert build_coordinate_atlas("dosenbach160") is first
    assert load_atlas("dosenbach160").img is first[0]


def test_sphere_overlap_goes_to_nearest_centre() -> None:
    affine = np.eye(4)
    centres = np.array([[5.0, 5.0, 5.0], [8.0, 5.0, 5.0]])
    labels = sphere_labels(centres, np.array([3.0, 3.0]), (12, 12, 12), affine)
    assert labels[6, 5, 5] == 1 and labels[7, 5, 5] == 2 and labels[2, 5, 5] == 1
    assert labels[11, 5, 5] == 2 and labels[0, 0, 0] == 0
    assert labels[5, 5, 5] == 1 and (labels == 1).sum() > 0 and (labels == 2).sum() > 0
    tie = sphere_labels(
        np.array([[5.0, 5, 5], [7.0, 5, 5]]), np.array([3.0, 3.0]), (12, 12, 12), affine
    )
    assert tie[6, 5, 5] == 1  # equidistant: the lower ROI number keeps it


def _tf_tree(home: Path, empty_labels: bool = False) -> Path:
    folder = home / f"tpl-{TPL}"
    folder.mkdir(parents=True)
    data = np.zeros((6, 7, 8), dtype=np.int16)
    data[:2], data[2:4], data[4:] = 1, 2, 3
    base = f"tpl-{TPL}_res-02_atlas-Schaefer2018_desc-100Parcels7Networks"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2, 2, 1])), folder / f"{base}_dseg.nii.gz")
    labels = folder / f"tpl-{TPL}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"
    labels.write_text("" if empty_labels else "index\tname\n1\tVis_1\n2\tVis_2\n3\tDMN_1\n")
    return home


QUERY = {"template": TPL, "atlas": "Schaefer2018", "desc": "100Parcels7Networks", "resolution": 2}


def test_templateflow_query_by_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(_tf_tree(tmp_path / "tf")))
    atlas = load_atlas("schaefer100", templateflow=QUERY)
    assert atlas.name == "schaefer100" and atlas.n_rois == 3 and atlas.space == TPL
    args = argparse.Namespace(
        atlas="schaefer100",
        atlas_path=None,
        atlas_labels=None,
        atlas_templateflow=json.dumps(QUERY),
    )
    assert atlas_from_args(args).labels["name"].tolist() == ["Vis_1", "Vis_2", "DMN_1"]
    with pytest.raises(AtlasError, match=r"both a path .* and a TemplateFlow query"):
        load_atlas("schaefer100", path="x.nii.gz", labels="x.tsv", templateflow=QUERY)
    with pytest.raises(AtlasError, match="found 0"):
        load_atlas("schaefer200", templateflow={**QUERY, "desc": "200Parcels7Networks"})


def test_templateflow_missing_or_empty_file(tmp_path: Path, monkeypatch) -> None:
    home = _tf_tree(tmp_path / "tf", empty_labels=True)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    with pytest.raises(AtlasError, match=r"_dseg.tsv is empty \(0 bytes\)"):
        load_atlas("schaefer100", templateflow=QUERY)
    (
        home / f"tpl-{TPL}" / f"tpl-{TPL}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"
    ).unlink()
    with pytest.raises(AtlasError, match=r"TemplateFlow file .*_dseg.tsv not found"):
        load_atlas("schaefer100", templateflow=QUERY)
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(AtlasError, match=r"tpl-MNI152NLin2009cAsym not found"):
        load_atlas("schaefer100", templateflow=QUERY)


DATASETS = {"a": {"entry": "roi_timeseries", "path": "x", "phenotype": "p.tsv", "role": "pretrain"}}


def test_config_keys_of_the_connectome_stage() -> None:
    cfg = validate_config(
        {"datasets": DATASETS, "atlas": {"name": "schaefer100", "templateflow": QUERY}}
    )
    assert cfg["atlas"]["min_coverage"] == 0.5 and cfg["atlas"]["templateflow"] == QUERY
    assert cfg["denoise"]["dvars_threshold"] == "auto" and cfg["denoise"]["standardize"] == "zscore"
    assert cfg["connectome"] == {
        "kinds": ["pearson"],
        "fisher_z": False,
        "window": {"length": None, "step": None},
    }
    for bad, key in [
        ({"atlas": {"name": "x", "templateflow": {"atlas": "Schaefer2018"}}}, "atlas.templateflow"),
        ({"atlas": {"name": "x", "min_coverage": 1.5}}, "atlas.min_coverage"),
        ({"connectome": {"kinds": ["tangent"]}}, "connectome.kinds"),
        ({"denoise": {"strategy": "aroma"}}, "denoise.strategy"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_config({"datasets": DATASETS, **bad})
