"""Existing fMRIPrep derivatives: the subject's record names the fMRIPrep that made them, read
from their dataset_description.json, and ``lcm provenance trace`` shows it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids
from helpers.fmriprep import fmriprep_request

from lcm.bids.fmriprep_version import subject_fmriprep_version
from lcm.bids.ingest import ingest
from lcm.bids.runs import run_ids_from_name
from lcm.cli import main
from lcm.connectome.qc import collect_qc, new_qc
from lcm.connectome.voxel_run import record_fmriprep_version
from lcm.io.lineage import trace
from lcm.preprocess.fmriprep_run import run_fmriprep

RUN = "sub-01_task-rest_run-1"


def _existing(tmp_path: Path, description: dict | str | None) -> tuple[dict, Path]:
    """``lcm fmriprep --runner existing`` of subject 01 over derivatives whose description is
    ``description`` (a dict, a file's raw text, or None: no file); returns the record."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    make_fmriprep_run(tmp_path / "deriv", RUN, n_vol=40)
    desc = tmp_path / "deriv" / "dataset_description.json"
    if description is None:
        desc.unlink()
    else:
        text = description if isinstance(description, str) else json.dumps(description)
        desc.write_text(text)
    out = tmp_path / "rec" / "sub-01_fmriprep.json"
    argv = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE]
    assert main([*argv, "--derivatives", str(tmp_path / "deriv"), "--out", str(out)]) == 0
    return json.loads(out.read_text()), out


def test_existing_derivatives_record_the_fmriprep_version_and_container_that_made_them(
    tmp_path: Path,
) -> None:
    """The record of a container run names its image; that of existing derivatives named no
    fMRIPrep at all, though their dataset_description.json says which made them."""
    container = {"Type": "docker", "Tag": "nipreps/fmriprep:23.2.1"}
    generated = [
        {"Name": "bidssubset", "Version": "0.1"},
        {"Name": "fMRIPrep", "Version": "23.2.1", "Container": container},
    ]
    rec, out = _existing(
        tmp_path,
        {
            "Name": "fMRIPrep - fMRI PREProcessing workflow",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": generated,
        },
    )
    made = rec["generated_by"]
    assert (made["name"], made["version"], made["container"]) == ("fMRIPrep", "23.2.1", container)
    assert made["reason"] is None and made["description"].endswith("dataset_description.json")
    assert len(rec["runs"]) == 1 and "image" not in rec
    assert next(trace(out)).endswith("generated_by=fMRIPrep 23.2.1")


def test_fmriprep_before_20_2_is_read_from_its_pipeline_description(tmp_path: Path) -> None:
    """fMRIPrep before 20.2 wrote PipelineDescription (BIDS < 1.4), not GeneratedBy."""
    old = {
        "Name": "fMRIPrep output",
        "BIDSVersion": "1.1.1",
        "PipelineDescription": {"Name": "fMRIPrep", "Version": "1.5.8"},
    }
    rec, _ = _existing(tmp_path, old)
    assert (rec["generated_by"]["name"], rec["generated_by"]["version"]) == ("fMRIPrep", "1.5.8")


@pytest.mark.parametrize(
    ("description", "said"),
    [
        (None, "has no dataset_description.json"),
        ('{"Name": "fMRIPrep", ', "is not valid JSON"),
        ({"Name": "copied by hand", "BIDSVersion": "1.10.0"}, "names no GeneratedBy"),
    ],
    ids=["missing", "unreadable", "no-version"],
)
def test_an_unknown_fmriprep_version_is_recorded_as_unknown_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture, description: dict | str | None, said: str
) -> None:
    """A description missing, cut short or naming no version must not stop the subject: the
    version is recorded as unknown, with the reason in the record and in a warning."""
    rec, out = _existing(tmp_path, description)
    made = rec["generated_by"]
    assert made["version"] is None and said in made["reason"]
    assert len(rec["runs"]) == 1 and rec["excluded"] == []
    warned = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert any("fMRIPrep version" in line and said in line for line in warned)
    assert next(trace(out)).endswith("generated_by=unknown")


def _fmriprep_log(deriv: Path, sub: str, stamp: str, version: str) -> Path:
    """The settings file fMRIPrep writes for each of its runs of a subject."""
    path = deriv / f"sub-{sub}" / "log" / f"{stamp}_0a1b2c3d" / "fmriprep.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[environment]\nversion = "{version}"\nnipype_version = "1.8.6"\n')
    return path


def test_a_subject_made_by_another_fmriprep_version_is_recorded_and_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The record named only the version of dataset_description.json: a subject made by
    another fMRIPrep (its log/*/fmriprep.toml) in the same folder went unnoticed."""
    deriv = tmp_path / "deriv"
    _fmriprep_log(deriv, "01", "20220301-101010", "23.2.1")
    config = _fmriprep_log(deriv, "01", "20240301-101010", "20.2.7")
    rec, out = _existing(
        tmp_path,
        {
            "Name": "fMRIPrep",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}],
        },
    )
    made = rec["generated_by"]
    assert made["version"] == "23.2.1"
    assert made["subject"] == {
        "version": "20.2.7",
        "config": str(config),
        "earlier_versions": ["23.2.1"],
        "reason": None,
    }
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert "sub-01 was made by fMRIPrep 20.2.7" in warning and "names 23.2.1" in warning
    assert "Rerun it with the version of the other subjects, or accept the mix" in warning
    assert next(trace(out)).endswith("generated_by=fMRIPrep 23.2.1 (this subject: 20.2.7)")


def test_ingest_of_derivatives_names_the_subjects_of_each_fmriprep_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Subjects of one derivatives folder made by different fMRIPrep versions (a confound of
    any comparison across them) entered the cohort without a word."""
    deriv = tmp_path / "deriv"
    for sub, version in (("01", "23.2.1"), ("02", "20.2.7"), ("03", "23.2.1"), ("04", None)):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=40)
        if version:
            _fmriprep_log(deriv, sub, "20240301-101010", version)
    out = tmp_path / "out" / "manifest.parquet"
    with caplog.at_level(logging.WARNING, logger="lcm.bids.fmriprep_version"):
        ingest("tiny", "fmriprep", deriv, out, validate=False)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["fmriprep_versions"] == {
        "by_version": {"20.2.7": ["02"], "23.2.1": ["01", "03"]},
        "unknown": ["04"],
        "mixed": True,
    }
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "20.2.7: sub-02; 23.2.1: sub-01, sub-03" in warning
    assert "Rerun those subjects with one fMRIPrep version" in warning
    # One version throughout: recorded, no warning.
    (deriv / "sub-02" / "log").rename(tmp_path / "moved")
    caplog.clear()
    ingest("tiny", "fmriprep", deriv, out, validate=False)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["fmriprep_versions"]["mixed"] is False
    assert not [r for r in caplog.records if r.name == "lcm.bids.fmriprep_version"]


def test_an_fmriprep_log_not_fetched_says_datalad_get(tmp_path: Path) -> None:
    """A subject's fmriprep.toml that is a DataLad symlink not yet fetched was skipped by the
    glob ('no fmriprep.toml: fMRIPrep before 20.2'), and a pointer was 'cannot be read'."""
    deriv = tmp_path / "deriv"
    config = _fmriprep_log(deriv, "01", "20240301-101010", "23.2.1")
    config.unlink()
    config.symlink_to(tmp_path / ".git" / "annex" / "objects" / "MD5E-s9--0a1b")
    found = subject_fmriprep_version(deriv, "01")
    assert found["version"] is None and found["config"] == str(config)
    assert "not fetched" in found["reason"]
    assert f"run `datalad get {config}`" in found["reason"]
    config.unlink()
    config.write_text("/annex/objects/MD5E-s9--0a1b.toml\n")  # an unlocked file not fetched
    found = subject_fmriprep_version(deriv, "01")
    assert "git-annex pointer" in found["reason"]
    assert f"run `datalad get {config}`" in found["reason"]


def test_an_unreadable_latest_fmriprep_log_falls_back_to_the_newest_readable_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The latest log not fetched made the subject's version unknown, though its earlier logs
    name one: that version is recorded, saying it is the newest readable log's."""
    deriv = tmp_path / "deriv"
    _fmriprep_log(deriv, "01", "20220301-101010", "20.2.7")
    older = _fmriprep_log(deriv, "01", "20230301-101010", "23.2.1")
    latest = _fmriprep_log(deriv, "01", "20240301-101010", "24.1.0")
    latest.unlink()
    latest.symlink_to(tmp_path / "absent")
    with caplog.at_level(logging.WARNING, logger="lcm.bids.fmriprep_version"):
        found = subject_fmriprep_version(deriv, "01")
    assert found["version"] == "23.2.1" and found["config"] == str(older)
    assert found["earlier_versions"] == ["20.2.7"]
    assert str(latest) in found["reason"] and "datalad get" in found["reason"]
    assert f"is that of the newest log that names one, {older}" in found["reason"]
    assert found["reason"] in caplog.text


def test_raw_bids_on_existing_derivatives_of_two_versions_is_warned_of_for_the_cohort(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Raw BIDS with runner existing is ingested from the raw folder: a mix of fMRIPrep
    versions was only warned subject by subject, never which subjects had which version."""
    make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"))
    deriv = tmp_path / "deriv"
    qc_paths = []
    for sub, version in (("01", "23.2.1"), ("02", "20.2.7"), ("03", "23.2.1")):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=40)
        _fmriprep_log(deriv, sub, "20240301-101010", version)
        rec = run_fmriprep(
            fmriprep_request(tmp_path, "existing", subject=sub), tmp_path / f"{sub}.json"
        )
        assert record_fmriprep_version(tmp_path / f"{sub}.json") == version
        (run,) = rec["runs"]
        ids = run_ids_from_name(run["run_key"])
        qc = new_qc("tiny", ids, included=True, fmriprep_version=version)
        qc_paths.append(tmp_path / f"{sub}_qc.json")
        qc_paths[-1].write_text(json.dumps(qc))
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.qc"):
        collect_qc(qc_paths, tmp_path / "qc.tsv")
    (said,) = [r.getMessage() for r in caplog.records if r.name == "lcm.connectome.qc"]
    assert "tiny: its included runs were made by 2 fMRIPrep versions" in said
    assert "(20.2.7: sub-02; 23.2.1: sub-01, sub-03)" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.qc"):
        collect_qc([qc_paths[0], qc_paths[2]], tmp_path / "qc1.tsv")  # one version: no word
    assert not [r for r in caplog.records if r.name == "lcm.connectome.qc"]
