"""The workflow's fMRIPrep job expects the runs of the ingest manifest, without a BIDS index.

Each subject's job used to index the whole dataset with pybids to list the subject's runs:
seconds per thousand subjects, once per subject, and a listing that ignored what ingest had
decided (the selection, the validator's exclusions). With ``--manifest`` the job reads the
subject's included runs from the manifest ingest wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import make_fmriprep_run, make_raw_bids, write_json
from helpers.fmriprep import fmriprep_request, read_calls

from lcm.bids.ingest import ingest_dataset
from lcm.bids.manifest import write_manifest
from lcm.bids.selection import Selection
from lcm.connectome.voxel_run import load_run_from_record
from lcm.exceptions import BIDSError, ExcludedRunError
from lcm.preprocess.fmriprep_run import run_fmriprep


def _manifest(tmp_path: Path, selection: Selection | None = None) -> Path:
    ingested = ingest_dataset("tiny", "bids", tmp_path / "raw", selection=selection)
    write_manifest(tmp_path / "manifest.parquet", ingested.manifest)
    return tmp_path / "manifest.parquet"


def test_the_runs_expected_are_the_manifests_and_no_bids_index_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    manifest = _manifest(tmp_path, Selection.from_config({"runs": {"exclude": ["2"]}}))
    # Without the manifest the unselected run is expected and excluded as lacking derivatives.
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "all.json")
    assert [e["run_key"] for e in rec["excluded"]] == ["sub-01_task-rest_run-2"]

    import bids

    def no_index(*args: object, **kwargs: object) -> None:
        raise AssertionError("a BIDS index was built")

    monkeypatch.setattr(bids, "BIDSLayout", no_index)
    req = fmriprep_request(tmp_path, "existing", manifest=manifest)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-1"]
    assert rec["excluded"] == []


def test_a_subject_without_included_run_in_the_manifest_is_named(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1",))
    manifest = _manifest(tmp_path, Selection.from_config({"participants": {"exclude": ["01"]}}))
    req = fmriprep_request(tmp_path, "existing", manifest=manifest)
    with pytest.raises(BIDSError, match="sub-01 has no included BOLD run of task 'rest'") as err:
        run_fmriprep(req, tmp_path / "rec.json")
    assert str(manifest) in err.value.message
    assert not (tmp_path / "rec.json").exists()


def test_runs_the_validator_excluded_are_recorded_as_excluded_at_ingest(
    tmp_path: Path, standins: Path
) -> None:
    """The workflow plans each subject's jobs before ingest runs the BIDS validator. A subject
    it then excludes (sub-06: its T1w a git-annex link not fetched) failed its fMRIPrep job
    ("no included BOLD run"), and the cohort with it; a run it excludes (sub-01's run 2, an
    invalid sidecar) failed its connectome job (not in the record). Both are now in the record
    as excluded at ingest, with the manifest's code and reason, and no container is launched
    for a subject left without a run."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "06"), runs=("1", "2"))
    side = root / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.json"
    write_json(side, {"RepetitionTime": 2.0, "EchoTime": "thirty"})  # a number is required
    anat = root / "sub-06" / "anat" / "sub-06_T1w.nii.gz"
    anat.parent.mkdir()
    anat.symlink_to("../../.git/annex/objects/Xx/Yy/KEY/KEY.nii.gz")
    manifest = tmp_path / "manifest.parquet"
    write_manifest(manifest, ingest_dataset("tiny", "bids", root, validate=True).manifest)
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)

    rec = run_fmriprep(
        fmriprep_request(tmp_path, "existing", manifest=manifest), tmp_path / "01.json"
    )
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-1"]
    [run2] = rec["excluded"]
    assert run2["run_key"] == "sub-01_task-rest_run-2"
    assert run2["reason_code"] == "validator:JSON_SCHEMA_VALIDATION_ERROR"
    assert run2["reason"].startswith("excluded at ingest: BIDS validator error ")

    req = fmriprep_request(tmp_path, "docker", subject="06", manifest=manifest)
    record = tmp_path / "06.json"
    rec = run_fmriprep(req, record)  # no licence given: nothing of a container run is needed
    assert read_calls(standins) == [] and not (tmp_path / "work").exists()
    assert rec["runs"] == [] and rec["failure"] is None and rec["fmriprep_launched"] is False
    codes = {e["run_key"]: e["reason_code"] for e in rec["excluded"]}
    assert codes == dict.fromkeys(
        ["sub-06_task-rest_run-1", "sub-06_task-rest_run-2"], "validator:SYMLINK_BROKEN"
    )
    # Each planned run's connectome job reads the reason from the record (QC: excluded).
    with pytest.raises(ExcludedRunError) as caught:
        load_run_from_record(record, "sub-06_task-rest_run-2")
    assert caught.value.code == "validator:SYMLINK_BROKEN"
    assert "SYMLINK_BROKEN at /sub-06/anat/sub-06_T1w.nii.gz" in caught.value.message
    assert caught.value.message.startswith("excluded at ingest: ")


def test_the_settings_stamp_holds_the_options_and_needs_no_subject(tmp_path: Path) -> None:
    """`lcm fmriprep --settings-only`: the workflow's per-dataset stamp of the options its
    subjects' jobs run with (checked, nothing launched); without it --subject is required."""
    from lcm.cli import main

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    out = tmp_path / "settings.json"
    common = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--runner"]
    common += ["existing", "--derivatives", str(tmp_path / "deriv"), "--out", str(out)]
    space = ["--output-space", "MNI152NLin2009cAsym:res-2"]
    assert main([*common, *space, "--settings-only"]) == 0
    settings = json.loads(out.read_text())
    assert settings["output_space"] == "MNI152NLin2009cAsym:res-2"
    assert settings["runner"] == "existing" and "image" not in settings
    assert not (tmp_path / "deriv").exists()  # nothing launched, no folder made
    assert main([*common, "--output-space", "fsLR", "--settings-only"]) != 0
    assert json.loads(out.read_text())["output_space"] == "MNI152NLin2009cAsym:res-2"
    assert main([*common, *space]) != 0  # a subject's job without --subject


def test_the_settings_stamp_refuses_an_apptainer_image_that_is_no_file_nor_uri(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stamp is written before any subject is queued: a Docker name under apptainer
    failed in every subject's job; --settings-only now refuses it."""
    from lcm.cli import main

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    out = tmp_path / "settings.json"
    common = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--runner"]
    common += ["apptainer", "--derivatives", str(tmp_path / "deriv"), "--out", str(out)]
    common += ["--settings-only", "--work-dir", str(tmp_path / "work"), "--output-space", "T1w"]
    assert main([*common, "--image", "nipreps/fmriprep:25.2.7"]) != 0
    assert "--image 'nipreps/fmriprep:25.2.7'" in capsys.readouterr().err
    assert not out.exists()
    assert main([*common, "--image", "docker://nipreps/fmriprep:25.2.7"]) == 0
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"sif")
    assert main([*common, "--image", str(sif)]) == 0
    assert json.loads(out.read_text())["image"] == str(sif)


def test_a_multi_echo_run_too_short_for_fmriprep_is_read_from_the_manifests_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, standins: Path
) -> None:
    """The run key has no echo- (fMRIPrep's combined series), its raw files do: the length
    fMRIPrep checks is its first echo's, the file the manifest names for it."""
    from helpers.fmriprep import expect_standin

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    make_raw_bids(tmp_path / "short", subjects=("01",), runs=("2",), n_vol=4)
    short = tmp_path / "short" / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.nii.gz"
    func = tmp_path / "raw" / "sub-01" / "func"
    for echo, te in (("1", 0.015), ("2", 0.035)):
        (func / f"sub-01_task-rest_run-2_echo-{echo}_bold.nii.gz").write_bytes(short.read_bytes())
        write_json(func / f"sub-01_task-rest_run-2_echo-{echo}_bold.json", {"EchoTime": te})
    manifest = _manifest(tmp_path)
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, manifest=manifest)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-1"]
    (excluded,) = rec["excluded"]
    assert excluded["run_key"] == "sub-01_task-rest_run-2"
    assert excluded["reason_code"] == "too_few_volumes"
    assert "sub-01_task-rest_run-2_echo-1_bold.nii.gz has 4 volume(s)" in excluded["reason"]
