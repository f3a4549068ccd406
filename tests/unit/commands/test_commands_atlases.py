"""``lcm atlases``: the registry listing, and one atlas's regions loaded as the workflow would."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lcm.atlas.registry import ATLASES, registry_atlas
from lcm.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stdout of ``lcm *argv`` (stderr stays in ``capsys``)."""
    code = main(argv)
    out, err = capsys.readouterr()
    sys.stderr.write(err)
    return code, out


def test_the_listing_has_every_registry_atlas_with_its_region_count(capsys) -> None:
    code, out = _run(["atlases", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and sorted(rows) == sorted(ATLASES)
    for name, row in rows.items():
        assert row["regions"] == registry_atlas(name).n_rois, name
        assert row["reference"] and row["package"] == ATLASES[name].distribution
    # AAL3's table lists 170 labels; 4 are not in its image and are dropped, as when it is used.
    assert rows["aal3"]["regions"] == 166 and rows["aal116"]["voxel_mm"] == 1.0
    assert rows["dosenbach160"]["networks"] and not rows["power264"]["networks"]
    code, out = _run(["atlases"], capsys)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "regions"]
    assert [line.split()[0] for line in lines[1 : 1 + len(ATLASES)]] == sorted(ATLASES)


def test_a_registry_atlas_prints_its_regions(capsys) -> None:
    code, out = _run(["atlases", "--atlas", "seitzman300"], capsys)
    table = pd.read_csv(io.StringIO(out), sep="\t")
    atlas = registry_atlas("seitzman300")
    assert code == 0 and table["name"].tolist() == atlas.roi_names
    assert list(table.columns[:3]) == ["index", "name", "network"]
    # 4-5 mm spheres on a 2 mm grid: 33-81 voxels, never none.
    assert table["voxels"].between(20, 90).all()
    np.testing.assert_allclose(table["volume_mm3"], table["voxels"] * 8.0)


def _own_atlas(folder: Path) -> tuple[Path, Path, np.ndarray]:
    data = np.zeros((6, 5, 4), dtype=np.int16)
    data[:2], data[2:5, :3] = 3, 7  # label 3: 40 voxels, label 7: 36
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = [-9, -6, -6]
    nib.save(nib.Nifti1Image(data, affine), folder / "my atlas.nii.gz")
    (folder / "my labels.tsv").write_text("index\tname\n3\tfront\n7\tback\n")
    return folder / "my atlas.nii.gz", folder / "my labels.tsv", data


def test_your_own_atlas_is_loaded_as_the_connectome_stage_loads_it(tmp_path, capsys) -> None:
    image, labels, data = _own_atlas(tmp_path)
    argv = ["atlases", "--atlas", "mine", "--atlas-path", str(image), "--atlas-labels", str(labels)]
    code, out = _run(argv, capsys)
    table = pd.read_csv(io.StringIO(out), sep="\t")
    assert code == 0 and table["name"].tolist() == ["front", "back"]
    assert table["voxels"].tolist() == [int((data == 3).sum()), int((data == 7).sum())]
    assert table["volume_mm3"].tolist() == [40 * 27.0, 36 * 27.0]
    # Centre of mass in world mm: label 3 fills i = 0..1 -> x = -9 + 3 * 0.5.
    assert table.loc[0, ["x", "y", "z"]].tolist() == [-7.5, 0.0, -1.5]
    code, out = _run([*argv, "--json"], capsys)
    assert json.loads(out)["regions"][1]["name"] == "back"


@pytest.mark.hostile
@pytest.mark.parametrize("with_image", [True, False])
def test_your_own_atlas_without_a_name_is_refused_not_swapped_for_the_listing(
    tmp_path, capsys, with_image
) -> None:
    """`lcm atlases --atlas-path mine.nii.gz --atlas-labels mine.tsv` printed the registry
    listing and exit 0: the user's atlas, which they meant to check, was never loaded."""
    image, labels, _ = _own_atlas(tmp_path)
    argv = ["atlases", "--atlas-labels", str(labels)]
    argv += ["--atlas-path", str(image)] if with_image else []
    code, out = _run(argv, capsys)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    given = "--atlas-path and --atlas-labels" if with_image else "--atlas-labels"
    assert f"{given} given without --atlas" in err and "hint:" in err


def test_a_labels_only_atlas_has_no_voxels_and_keeps_its_coordinates(tmp_path, capsys) -> None:
    labels = tmp_path / "rois.tsv"
    labels.write_text("name\tx\ty\tz\nA\t1\t2\t3\nB\t-1\t-2\t-3\n")
    code, out = _run(["atlases", "--atlas", "rois", "--atlas-labels", str(labels)], capsys)
    table = pd.read_csv(io.StringIO(out), sep="\t")
    assert code == 0 and "voxels" not in table and table["x"].tolist() == [1, -1]


def test_an_unknown_atlas_is_refused_with_the_registry_names(capsys) -> None:
    code, out = _run(["atlases", "--atlas", "nope"], capsys)
    err = capsys.readouterr().err
    assert code != 0 and out == ""
    assert "Unknown atlas 'nope'" in err and "aal116" in err and "hint:" in err
    # The hint named config keys only; a CLI user gets the flags too.
    assert "--atlas-path and --atlas-labels" in err


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """`lcm atlases --atlas hcpex | head -1`: the first line, no traceback.

    Whether `head` exits before the table is written is a race (the table fits a pipe
    buffer), so the exit status is checked with a reader that has gone before the
    command writes: `| true` must end in SIGPIPE's 141, not a traceback.
    """
    command = f"{sys.executable} -m lcm atlases --atlas hcpex"
    head = subprocess.run(
        ["bash", "-c", f'{command} | head -n 1; echo "rc=${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    first, status = head.stdout.splitlines()
    assert first == "index\tname\tvoxels\tvolume_mm3\tx\ty\tz"
    assert status in {"rc=0", "rc=141"}
    assert "Traceback" not in head.stderr
    gone = subprocess.run(
        ["bash", "-c", f'{command} | true; echo "rc=${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert gone.stdout.splitlines() == ["rc=141"]
    assert "Traceback" not in gone.stderr
