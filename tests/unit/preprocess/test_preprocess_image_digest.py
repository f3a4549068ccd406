"""The fMRIPrep record names the content of the image that ran, not only its (mutable) tag:
docker's registry digest after the run, a .sif's sha256 read once, and null with a reason,
never a failed subject, when it cannot be known."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_raw_bids
from helpers.fmriprep import (
    IMAGE,
    IMAGE_DIGEST,
    IMAGE_ID,
    expect_standin,
    fmriprep_request,
    read_calls,
)

from lcm.cli import main
from lcm.io.lineage import trace
from lcm.io.provenance import sha256_file
from lcm.preprocess import image_digest
from lcm.preprocess.fmriprep_run import run_fmriprep
from lcm.preprocess.image_digest import DOCKER_INSPECT_FORMAT, resolve_image_digest


def test_a_tag_run_by_docker_is_recorded_with_its_digest(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fmriprep.image is a tag: the record and its provenance sidecar hold the registry digest
    docker reports for it after the run, and a reference that pulls exactly that content."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    out = tmp_path / "rec.json"
    argv = [
        *("fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01"),
        *("--runner", "docker", "--image", IMAGE, "--output-space", SPACE),
        *("--derivatives", str(tmp_path / "deriv"), "--work-dir", str(tmp_path / "work")),
        *("--fs-license", str(lic), "--out", str(out)),
    ]
    assert main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["image"] == IMAGE and len(rec["runs"]) == 1
    assert rec["image_digest"] == {
        "digest": IMAGE_DIGEST,
        "method": "docker image inspect",
        "reference": f"nipreps/fmriprep@{IMAGE_DIGEST}",
        "image_id": IMAGE_ID,
        "reason": None,
    }
    # Asked of the docker fmriprep-docker called, after fMRIPrep ran.
    calls = read_calls(standins)
    assert calls[-1] == ["docker", "image", "inspect", "--format", DOCKER_INSPECT_FORMAT, IMAGE]
    assert calls[-2][:3] == ["docker", "run", "--rm"]
    sidecar = json.loads((tmp_path / "rec.prov.json").read_text())
    assert sidecar["Provenance"]["container"] == {"image": IMAGE, "digest": IMAGE_DIGEST}
    # What fMRIPrep read and made: the subject's raw files, and the derivatives recorded.
    bold = tmp_path / "raw" / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
    assert str(bold) in sidecar["Sources"] and sidecar["Products"][0] == rec["runs"][0]["bold"]
    lines = list(trace(out))
    assert lines[0].endswith(f" image={IMAGE} digest={IMAGE_DIGEST}")
    assert any(line.startswith(f"  {bold} [raw]") for line in lines)


def test_the_digest_under_the_images_own_name_is_chosen(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = "registry.example.org:5000/mirror/fmriprep@sha256:" + "00" * 32
    own = "docker.io/nipreps/fmriprep@sha256:" + "11" * 32
    expect_standin(monkeypatch, tmp_path, repo_digests=[mirror, own])
    found = resolve_image_digest("docker", IMAGE)
    assert found.reference == own and found.digest == "sha256:" + "11" * 32


@pytest.mark.parametrize(
    ("expect", "reason"),
    [
        ({"inspect_exit": 1}, "docker image inspect exited 2: stand-in docker: Error: No such"),
        ({"repo_digests": []}, "no registry digest"),
    ],
)
def test_a_digest_docker_cannot_give_is_null_with_its_reason(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    expect: dict,
    reason: str,
) -> None:
    """The subject is not failed for it: its runs are recorded, the digest null with why, and
    a warning says how to pin the image."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, **expect)
    with caplog.at_level(logging.WARNING):
        rec = run_fmriprep(
            fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json"
        )
    assert len(rec["runs"]) == 1 and rec["failure"] is None
    assert rec["image_digest"]["digest"] is None
    assert reason in rec["image_digest"]["reason"]
    # A local build has no registry digest, but its image ID still names its content here.
    assert rec["image_digest"]["image_id"] == (None if "inspect_exit" in expect else IMAGE_ID)
    assert "Pin fmriprep.image by digest" in caplog.text


def test_a_failure_record_names_the_image_that_failed(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, exit=1)
    rec = run_fmriprep(fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert rec["failure"]["exit_code"] == 1 and rec["image_digest"]["digest"] == IMAGE_DIGEST


def test_a_sif_is_hashed_once_per_file(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apptainer: the .sif's sha256, cached in the work folder by path, size and mtime, so the
    next subject does not read a multi-GB image again; a changed file is read again (and
    fMRIPrep, which completed with the old image, runs again)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF image bytes")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    first = run_fmriprep(req, tmp_path / "rec.json")["image_digest"]
    assert first["digest"] == "sha256:" + sha256_file(sif)
    assert first["method"] == "sha256 of the image file" and first["reason"] is None

    def no_read(path: object) -> str:
        raise AssertionError(f"{path} read again")

    with monkeypatch.context() as patched:
        patched.setattr(image_digest, "sha256_file", no_read)
        # another record: fMRIPrep runs (the first one's completed-run stamp is not this one's)
        again = run_fmriprep(req, tmp_path / "rec2.json")["image_digest"]
    assert again["digest"] == first["digest"]
    assert again["method"] == "sha256 of the image file (cached)"
    sif.write_bytes(b"another image")  # rebuilt: another size and mtime
    os.utime(sif, ns=(1, 1))
    rebuilt = run_fmriprep(req, tmp_path / "rec.json")
    assert rebuilt["fmriprep_launched"] is True
    assert rebuilt["image_digest"]["digest"] == "sha256:" + sha256_file(sif) != first["digest"]


def test_references_that_carry_or_lack_a_digest(tmp_path: Path) -> None:
    pinned = f"nipreps/fmriprep@{IMAGE_DIGEST}"
    assert resolve_image_digest("docker", pinned).digest == IMAGE_DIGEST
    found = resolve_image_digest("apptainer", f"docker://{pinned}")
    assert found.digest == IMAGE_DIGEST and found.reference == pinned
    tagged = resolve_image_digest("apptainer", "docker://nipreps/fmriprep:25.2.7")
    assert tagged.digest is None and "names no digest" in tagged.reason
    gone = resolve_image_digest("apptainer", str(tmp_path / "gone.sif"), cache_dir=tmp_path)
    assert gone.digest is None and "cannot read" in gone.reason
