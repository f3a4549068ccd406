"""fMRIPrep derivatives gunzipped (``.nii``, read about ten times faster) are found whole.

The BOLD was found as ``.nii`` but its brain mask was looked for as ``.nii.gz`` only: every run
of a gunzipped dataset was excluded as "outputs missing", naming a mask that was there.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from helpers.connectome import SPACE, fmriprep_record, make_fmriprep_run

from lcm.atlas import load_atlas
from lcm.bids.runs import run_ids_from_name
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.preprocess.derivatives import find_run_derivatives

RUN = "sub-01_task-rest_run-1"


def _gunzip(path: Path) -> Path:
    out = path.with_suffix("")  # .nii.gz -> .nii
    out.write_bytes(gzip.decompress(path.read_bytes()))
    path.unlink()
    return out


def test_a_gunzipped_run_is_found_with_its_mask(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    files = make_fmriprep_run(deriv, RUN, n_vol=48)
    files["bold"], files["mask"] = _gunzip(files["bold"]), _gunzip(files["mask"])
    found, missing = find_run_derivatives(deriv, run_ids_from_name(RUN), SPACE)
    assert not missing and found is not None
    assert found.bold == str(files["bold"]) and found.bold.endswith(".nii")
    assert found.mask == str(files["mask"]) and found.mask.endswith("_desc-brain_mask.nii")
    # And the run gives its connectome, its coverage from that mask.
    record = fmriprep_record(tmp_path / "rec.json", "ds", [(RUN, files)])
    # A short run: under the denoise.min_dof floor (tested in tests/unit/connectome), kept here.
    settings = DenoiseSettings.from_dict({"strategy": "24P", "min_volumes": 20, "min_dof": None})
    qc = process_voxel_run(
        "ds", record, RUN, load_atlas("aal116"), settings, tmp_path / "conn", tmp_path / "qc.json"
    )
    assert qc["included"], qc["reason"]
    assert qc["coverage_rule"] == "brain_mask"


def test_a_mask_under_the_other_ending_is_found(tmp_path: Path) -> None:
    """Only the BOLD gunzipped (the large file): its mask is still the .nii.gz."""
    deriv = tmp_path / "fmriprep"
    files = make_fmriprep_run(deriv, RUN, n_vol=48)
    _gunzip(files["bold"])
    found, missing = find_run_derivatives(deriv, run_ids_from_name(RUN), SPACE)
    assert not missing and found is not None
    assert found.bold.endswith(".nii") and found.mask == str(files["mask"])


def test_a_mask_under_neither_ending_reads_live_voxels(tmp_path: Path) -> None:
    """No mask as .nii nor .nii.gz: the run is found without one (coverage counts the voxels
    whose signal varies), not excluded."""
    deriv = tmp_path / "fmriprep"
    files = make_fmriprep_run(deriv, RUN, n_vol=48)
    _gunzip(files["bold"])
    files["mask"].unlink()
    found, missing = find_run_derivatives(deriv, run_ids_from_name(RUN), SPACE)
    assert not missing and found is not None and found.mask == ""
    assert found.bold.endswith(".nii")
