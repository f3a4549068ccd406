"""A completed fMRIPrep run is not launched again for the same request, and its work folder goes.

The subject's job reruns whenever LCM's fMRIPrep code changes; fMRIPrep (hours per subject) is
launched again only when what it would be asked, or the files it reads, changed. Against the
docker and apptainer stand-ins, which record each launch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_raw_bids
from helpers.fmriprep import expect_standin, fmriprep_request, read_calls

from lcm.io.ownership import MARKER_NAME
from lcm.preprocess.completed_run import stamp_path
from lcm.preprocess.fmriprep_run import run_fmriprep


def launches(log: Path) -> int:
    """fMRIPrep's launches so far (``docker run`` of the image, not the wrapper's probes)."""
    return sum(c[:3] == ["docker", "run", "--rm"] and "-v" in c for c in read_calls(log))


@pytest.fixture
def done(tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch):
    """A docker run of sub-01 that completed: (request, record path)."""
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic)
    out = tmp_path / "rec.json"
    first = run_fmriprep(req, out)
    assert first["fmriprep_launched"] is True and len(first["runs"]) == 2
    assert launches(standins) == 1
    return req, out


def test_the_same_request_checks_the_derivatives_without_launching(
    done, standins, tmp_path: Path
) -> None:
    req, out = done
    first = json.loads(out.read_text())
    again = run_fmriprep(req, out)
    assert launches(standins) == 1
    assert again["fmriprep_launched"] is False
    # No work folder is made for a run that is not launched.
    assert again["work_folder"]["kept_because"] == "none there: fMRIPrep was not launched"
    assert not (tmp_path / "work" / "sub-01").exists()
    assert again["runs"] == first["runs"] and again["command"] == first["command"]
    assert again["image_digest"] == first["image_digest"]
    stamp = json.loads(stamp_path(out).read_text())
    assert stamp["command"] == first["command"]


def test_the_jobs_size_and_a_new_subject_launch_nothing(done, standins, tmp_path: Path) -> None:
    """CPUs, memory (also in extra_args), the work folder and participants.tsv are not what
    fMRIPrep writes: a retry with more memory, or a subject added, reruns no completed run."""
    req, out = done
    (tmp_path / "raw" / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\nsub-03\n")
    sized = dataclasses.replace(
        req, nthreads=4, mem_mb=32000, extra_args=["--mem", "16G"], work_dir=tmp_path / "w2"
    )
    assert run_fmriprep(sized, out)["fmriprep_launched"] is False
    assert launches(standins) == 1


@pytest.mark.parametrize(
    "change",
    ["setting", "raw file", "inherited sidecar", "outputs gone", "stamp removed"],
)
def test_what_fmriprep_reads_or_writes_changed_launches_it(
    done, standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    req, out = done
    raw = tmp_path / "raw"
    if change == "setting":
        req = dataclasses.replace(req, extra_args=["--dummy-scans", "4"])
        expect = json.loads(os.environ["STANDIN_EXPECT"])
        monkeypatch.setenv(
            "STANDIN_EXPECT", json.dumps({**expect, "extra": ["--dummy-scans", "4"]})
        )
    elif change == "raw file":
        bold = next(raw.glob("sub-01/func/*_run-1_bold.nii.gz"))
        os.utime(bold, ns=(1, 1))  # replaced by a file of the same size
    elif change == "inherited sidecar":
        (raw / "task-rest_bold.json").write_text('{"RepetitionTime": 2.5}')
    elif change == "outputs gone":
        next((tmp_path / "deriv").glob("sub-01/func/*run-2*desc-preproc_bold.nii.gz")).unlink()
    else:
        stamp_path(out).unlink()
    rec = run_fmriprep(req, out)
    assert rec["fmriprep_launched"] is True and len(rec["runs"]) == 2
    assert launches(standins) == 2


def test_a_failed_run_drops_the_stamp_and_keeps_its_work_folder(
    done, standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failure the derivatives are not the completed run's: the next job launches."""
    req, out = done
    expect = json.loads(os.environ["STANDIN_EXPECT"])
    monkeypatch.setenv("STANDIN_EXPECT", json.dumps({**expect, "exit": 1}))
    req = dataclasses.replace(req, extra_args=["--dummy-scans", "4"])
    failed = run_fmriprep(req, out)
    assert failed["failure"]["exit_code"] == 1 and not stamp_path(out).exists()
    work = tmp_path / "work" / "sub-01"
    assert failed["work_folder"] == {
        "path": str(work.resolve()),
        "removed": False,
        "kept_because": "fMRIPrep failed: its crash files are there, and a rerun resumes from it",
    }
    assert (work / "fmriprep_25_2_wf").is_dir()
    monkeypatch.setenv("STANDIN_EXPECT", json.dumps({**expect, "extra": ["--dummy-scans", "4"]}))
    assert run_fmriprep(req, out)["fmriprep_launched"] is True
    assert launches(standins) == 3


def test_a_completed_runs_work_folder_is_removed(done, tmp_path: Path) -> None:
    _, out = done
    work = tmp_path / "work"
    record = json.loads(out.read_text())
    assert record["work_folder"]["removed"] is True
    # Nothing of it is left, not even a folder moved aside; the image digest cache stays.
    assert [p.name for p in work.iterdir()] == []


def test_keep_work_and_a_folder_lcm_did_not_create_are_kept(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, keep_work=True)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    work = tmp_path / "work" / "sub-01"
    assert rec["work_folder"]["kept_because"] == "fmriprep.keep_work is true"
    assert (work / MARKER_NAME).is_file() and (work / "fmriprep_25_2_wf").is_dir()
    # A work folder of the user's own (an earlier fMRIPrep run by hand, no marker) is reused
    # by fMRIPrep but never deleted.
    (work / MARKER_NAME).unlink()
    stamp_path(tmp_path / "rec.json").unlink()
    rec = run_fmriprep(dataclasses.replace(req, keep_work=False), tmp_path / "rec.json")
    assert rec["work_folder"]["removed"] is False
    assert "was not created by LCM" in rec["work_folder"]["kept_because"]
    assert (work / "fmriprep_25_2_wf").is_dir() and not (work / MARKER_NAME).exists()


def test_a_stamp_lcm_did_not_write_is_not_trusted_nor_replaced(done, standins) -> None:
    req, out = done
    stamp_path(out).write_text('{"note": "mine"}')
    assert run_fmriprep(req, out)["fmriprep_launched"] is True
    assert json.loads(stamp_path(out).read_text()) == {"note": "mine"}


def test_apptainer_runs_are_stamped_too(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    assert run_fmriprep(req, tmp_path / "rec.json")["fmriprep_launched"] is True
    assert run_fmriprep(req, tmp_path / "rec.json")["fmriprep_launched"] is False
    runs = [c for c in read_calls(standins) if c[0] == "apptainer"]
    assert len(runs) == 1 and SPACE in runs[0]


def test_a_launch_killed_midway_leaves_no_stamp_to_vouch_for_its_outputs(
    done, standins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relaunch of the same request (outputs gone) killed by a time limit: its derivatives
    are a mix of the old run's and the new one's; the old stamp must not vouch for them."""
    from lcm.preprocess import fmriprep_run

    req, out = done
    next((tmp_path / "deriv").glob("sub-01/func/*run-2*desc-preproc_bold.nii.gz")).unlink()

    def killed(*args, **kwargs):  # the job's process ends while fMRIPrep writes
        raise SystemExit(143)

    monkeypatch.setattr(fmriprep_run, "_launch", killed)
    with pytest.raises(SystemExit):
        run_fmriprep(req, out)
    assert not stamp_path(out).exists()


def test_a_run_fmriprep_skips_for_its_length_does_not_relaunch_the_subject(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fMRIPrep skips a BOLD of 5 volumes or fewer (an aborted scan) and exits 0: the run was
    excluded as outputs missing ("run fMRIPrep again"), the subject never stamped complete,
    and every rerun of its job launched fMRIPrep again for hours to skip it again."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    make_raw_bids(tmp_path / "short", subjects=("01",), runs=("2",), n_vol=3)
    aborted = "sub-01/func/sub-01_task-rest_run-2_bold.nii.gz"
    os.replace(tmp_path / "short" / aborted, tmp_path / "raw" / aborted)
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic)
    out = tmp_path / "rec.json"
    first = run_fmriprep(req, out)
    assert [r["run"] for r in first["runs"]] == ["1"]
    (short,) = first["excluded"]
    assert short["run_key"] == "sub-01_task-rest_run-2"
    assert short["reason_code"] == "too_few_volumes"
    assert f"{tmp_path / 'raw' / aborted} has 3 volume(s): fMRIPrep skips" in short["reason"]
    # The subject's run is complete: stamped, its work folder gone, not launched again.
    assert stamp_path(out).is_file() and first["work_folder"]["removed"] is True
    again = run_fmriprep(req, out)
    assert launches(standins) == 1 and again["fmriprep_launched"] is False
    assert again["excluded"] == first["excluded"]


def test_a_subject_whose_every_run_fmriprep_would_skip_launches_nothing(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only aborted scans: nothing for fMRIPrep to write, so no container is started."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"), n_vol=5)
    lic = expect_standin(monkeypatch, tmp_path)
    rec = run_fmriprep(fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert rec["runs"] == [] and rec["fmriprep_launched"] is False and launches(standins) == 0
    assert {e["reason_code"] for e in rec["excluded"]} == {"too_few_volumes"}
    # With --sloppy fMRIPrep keeps a 5-volume series: it is launched.
    sloppy = fmriprep_request(tmp_path, "docker", fs_license=lic, extra_args=["--sloppy"])
    monkeypatch.setenv(
        "STANDIN_EXPECT",
        json.dumps({**json.loads(os.environ["STANDIN_EXPECT"]), "extra": ["--sloppy"]}),
    )
    rec = run_fmriprep(sloppy, tmp_path / "rec.json")
    assert launches(standins) == 1 and len(rec["runs"]) == 2
