"""lcm synth, voxel tier: the real BIDS validator, fMRIPrep's names, the 2 mm grid, same seed ->
same bytes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from lcm.atlas import load_atlas
from lcm.synth import planned_subjects, subject_outputs, write_cohort, write_subject
from lcm.synth.nifti import write_bold_stream

CONS = {"preset": "ppmi", "tier": "voxel", "n_subjects": 3, "n_volumes": 40, "resolution_mm": 4}
NAME = "ppmivox"
SPACE = "MNI152NLin2009cAsym"
# fMRIPrep 25 output names of a functional run (bids/derivatives conventions it follows).
FMRIPREP_PATTERNS = {
    "preproc_bold": rf"sub-(\w+)_task-rest_run-1_space-{SPACE}_desc-preproc_bold\.nii\.gz",
    "preproc_json": rf"sub-(\w+)_task-rest_run-1_space-{SPACE}_desc-preproc_bold\.json",
    "mask": rf"sub-(\w+)_task-rest_run-1_space-{SPACE}_desc-brain_mask\.nii\.gz",
    "confounds": r"sub-(\w+)_task-rest_run-1_desc-confounds_timeseries\.tsv",
    "confounds_json": r"sub-(\w+)_task-rest_run-1_desc-confounds_timeseries\.json",
}


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _write(out: Path, atlas, seed: int = 4, subjects: list[str] | None = None) -> list[str]:
    kw = {"out_dir": out, "seed": seed, "shared_structure": 0.7, "atlas": atlas}
    write_cohort(NAME, CONS, **kw)
    subjects = subjects or planned_subjects(NAME, CONS)
    for subject in subjects:
        write_subject(NAME, CONS, subject, **kw)
    return subjects


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, atlas):
    out = tmp_path_factory.mktemp("bids")
    return out, _write(out, atlas)


def _validator() -> str | None:
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        return None
    try:
        subprocess.run([exe, "--version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return exe


def test_raw_tier_passes_the_bids_validator_with_zero_errors(dataset):
    exe = _validator()
    if exe is None:
        pytest.skip("bids-validator-deno is not installed or its binary cannot run here")
    out, _ = dataset
    proc = subprocess.run(
        [exe, str(out / NAME / "rawdata"), "--json"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == [], errors
    assert report["summary"]["totalFiles"] >= 6 + 2 * 3  # top-level files + T1w/BOLD per subject


def test_derivative_names_follow_fmriprep(dataset):
    out, subjects = dataset
    deriv = out / NAME / "derivatives" / "fmriprep"
    description = json.loads((deriv / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "fMRIPrep"
    for subject in subjects:
        names = sorted(p.name for p in (deriv / f"sub-{subject}" / "func").iterdir())
        assert len(names) == len(FMRIPREP_PATTERNS)
        for pattern in FMRIPREP_PATTERNS.values():
            hits = [n for n in names if re.fullmatch(pattern, n)]
            assert len(hits) == 1 and subject in hits[0], (pattern, names)
    table = pd.read_csv(
        next(deriv.rglob("*desc-confounds_timeseries.tsv")), sep="\t", na_values=["n/a"]
    )
    fixed = [
        "global_signal",
        "csf",
        "white_matter",
        "framewise_displacement",
        "std_dvars",
        "dvars",
        *(f"a_comp_cor_{i:02d}" for i in range(6)),
    ]
    for base in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"):
        fixed += [base, f"{base}_derivative1", f"{base}_power2", f"{base}_derivative1_power2"]
    assert set(fixed) <= set(table.columns)
    assert any(c.startswith("cosine_") for c in table.columns)
    pattern = re.compile(r"(motion_outlier|cosine|a_comp_cor)_\d{2}")
    extra = set(table.columns) - set(fixed)
    assert all(
        pattern.fullmatch(c) or c.endswith(("_derivative1", "_power2", "_derivative1_power2"))
        for c in extra
    ), extra


def test_same_seed_same_bytes_other_seed_other_data(dataset, tmp_path, atlas):
    out, subjects = dataset
    _write(tmp_path / "again", atlas, subjects=subjects[:1])
    _write(tmp_path / "other", atlas, seed=5, subjects=subjects[:1])
    again = subject_outputs(NAME, CONS, tmp_path / "again", subjects[0])
    first = subject_outputs(NAME, CONS, out, subjects[0])
    other = subject_outputs(NAME, CONS, tmp_path / "other", subjects[0])
    for a, b in zip(first, again, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes(), a
    for name in ("participants.tsv", "README", "CHANGES", "dataset_description.json"):
        raw = Path(NAME) / "rawdata" / name
        assert (out / raw).read_bytes() == (tmp_path / "again" / raw).read_bytes()
    bold = next(p for p in first if p.endswith("desc-preproc_bold.nii.gz"))
    bold_other = next(p for p in other if p.endswith("desc-preproc_bold.nii.gz"))
    assert Path(bold).read_bytes() != Path(bold_other).read_bytes()


def test_streamed_bold_reads_back_exactly_on_the_2mm_grid(tmp_path):
    rng = np.random.default_rng(0)
    affine = np.array([[-2.0, 0, 0, 96], [0, 2, 0, -132], [0, 0, 2, -78], [0, 0, 0, 1]])
    mask = np.zeros((97, 115, 97), dtype=bool)
    mask[30:60, 40:70, 30:50] = rng.random((30, 30, 20)) > 0.3
    voxels = rng.integers(500, 1500, (7, int(mask.sum())), dtype=np.int16)
    path = write_bold_stream(tmp_path / "x_bold.nii.gz", voxels, mask, affine, tr=0.72)
    img = nib.load(path)
    assert img.shape == (97, 115, 97, 7)
    assert img.header.get_zooms() == pytest.approx((2.0, 2.0, 2.0, 0.72))
    np.testing.assert_array_equal(img.affine, affine)
    data = np.asarray(img.dataobj)
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data[mask].T, voxels)
    assert not data[~mask].any()


def test_voxel_subject_on_the_2mm_grid(tmp_path, atlas):
    cons = {
        "preset": "cobre",
        "tier": "voxel",
        "n_subjects": 2,
        "n_volumes": 20,
        "resolution_mm": 2,
    }
    subject = planned_subjects("cob", cons)[0]
    write_subject("cob", cons, subject, out_dir=tmp_path, seed=1, shared_structure=0.7, atlas=atlas)
    bold = [p for p in subject_outputs("cob", cons, tmp_path, subject) if "preproc_bold.nii" in p]
    img = nib.load(bold[0])
    assert img.shape == (97, 115, 97, 20)
    assert img.header.get_zooms() == pytest.approx((2.0, 2.0, 2.0, 2.0))
