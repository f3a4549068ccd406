"""A subject's own space (fMRIPrep's T1w, func ...) is parcellated by no atlas of LCM's.

One atlas image serves every subject, in a template's space: BOLD in each subject's own space
would be cut with regions that are not its own. A user atlas whose name says no template went
unchecked, and so such runs were parcellated without a word; now the output space is refused
when the workflow loads, whatever the atlas, and each run is excluded as ``space_mismatch``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lcm.atlas.load import check_atlas_space
from lcm.bids.rows import not_in_space, spaces_found
from lcm.exceptions import ConfigError


def _user_atlas(root: Path, image: str) -> dict:
    data = np.zeros((5, 6, 7), dtype=np.int16)
    data[:2], data[2:4, :3], data[4] = 1, 2, 3
    nib.save(nib.Nifti1Image(data, np.eye(4)), root / image)
    (root / "toy.tsv").write_text("index\tname\n1\tA\n2\tB\n3\tC\n")
    return {"name": "toy", "path": str(root / image), "labels": str(root / "toy.tsv")}


@pytest.mark.parametrize("space", ["T1w", "T1w:res-native", "func", "anat", "boldref", "T2w"])
@pytest.mark.parametrize(
    "image",
    [None, "toy.nii.gz", "space-T1w_atlas-toy_dseg.nii.gz"],
    ids=["aal116", "no-tpl", "T1w"],
)
def test_a_native_output_space_is_refused_whatever_the_atlas(
    tmp_path: Path, space: str, image: str | None
) -> None:
    """An atlas whose name says no template (``custom``) was not checked, and one named
    ``space-T1w`` matched ``T1w``: either way each subject was cut with one image."""
    atlas = _user_atlas(tmp_path, image) if image else {"name": "aal116"}
    config = {"atlas": atlas, "fmriprep": {"output_space": space}}
    with pytest.raises(ConfigError, match=r"each subject's own space") as err:
        check_atlas_space(config, ["mystudy"])
    label = space.split(":")[0]
    assert f"fmriprep.output_space is {label!r}" in err.value.message
    assert "['mystudy']" in err.value.message
    assert ("atlas.path" if image else "registry atlas 'aal116'") in err.value.message
    assert "Set fmriprep.output_space to " in (err.value.hint or "")
    # The config's keys only, the dataset named: the check reads a config (lcm run, Snakefile).
    assert "(datasets.mystudy.entry: roi_timeseries)" in (err.value.hint or "")
    assert "lcm fmriprep" not in (err.value.hint or "")
    check_atlas_space(config, [])  # no voxel-level dataset: the space is not read


def test_a_template_output_space_is_still_checked_as_before(tmp_path: Path) -> None:
    config = {
        "atlas": _user_atlas(tmp_path, "toy.nii.gz"),
        "fmriprep": {"output_space": "MNI152NLin2009cAsym:res-2"},
    }
    check_atlas_space(config, ["mystudy"])  # no template in its name: not checked
    config["atlas"] = {"name": "aal116"}
    check_atlas_space(config, ["mystudy"])


def test_fmriprep_nonstandard_spaces_are_native() -> None:
    from lcm.io.output_space import is_native_space

    for space in ("T1w", "T1w:res-native", "anat", "func", "run", "sbref", "fsnative"):
        assert is_native_space(space), space
    for space in ("MNI152NLin2009cAsym", "MNI152NLin6Asym:res-2", "MNIPediatricAsym:cohort-1"):
        assert not is_native_space(space), space


def test_not_in_space_never_suggests_a_subject_s_own_space() -> None:
    """A T1w-only subject's record suggested 'Set fmriprep.output_space ... e.g.
    T1w:res-native', which every atlas then refuses (or, unchecked, cut wrongly)."""
    _, reason = not_in_space("MNI152NLin2009cAsym", ["T1w:res-native"])
    assert "e.g. T1w" not in reason
    assert "subject's own space" in reason
    assert "--output-spaces MNI152NLin2009cAsym" in reason
    assert spaces_found(reason) == ["T1w:res-native"]  # ingest's count still reads them
    _, reason = not_in_space("MNI152NLin2009cAsym", ["MNI152NLin6Asym:res-2", "T1w:res-native"])
    assert "e.g. MNI152NLin6Asym:res-2" in reason
    assert spaces_found(reason) == ["MNI152NLin6Asym:res-2", "T1w:res-native"]
    _, reason = not_in_space("T1w", ["MNI152NLin2009cAsym:res-2"])
    assert "T1w is the subject's own space" in reason
    assert "e.g. MNI152NLin2009cAsym:res-2" in reason
