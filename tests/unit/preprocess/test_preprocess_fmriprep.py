"""lcm fmriprep: existing derivatives, the real fmriprep-docker wrapper against a docker
stand-in, and apptainer against a stand-in; both stand-ins check the command they receive and
write the derivatives fMRIPrep would, so the post-run check is exercised."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.connectome import SPACE, cli, make_fmriprep_run, make_raw_bids
from helpers.fmriprep import IMAGE, expect_standin, fmriprep_request, read_calls

from lcm.cli import main
from lcm.commands import fmriprep as fmriprep_cmd
from lcm.commands.fmriprep import OPTION_NAMES
from lcm.exceptions import ConfigError, ExternalToolError, InputDataError
from lcm.preprocess.container import (
    FmriprepCall,
    apptainer_command,
    docker_command,
    docker_templateflow_note,
    resource_args,
)
from lcm.preprocess.fmriprep_run import run_fmriprep


def test_existing_derivatives_recorded(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    files = {
        run: make_fmriprep_run(tmp_path / "deriv", f"sub-01_task-rest_run-{run}", n_vol=40, res=r)
        for run, r in (("1", None), ("2", "2"))
    }
    out = tmp_path / "rec" / "sub-01.json"
    rc = cli(
        fmriprep_cmd,
        [
            "fmriprep",
            "--dataset",
            "tiny",
            "--bids",
            str(tmp_path / "raw"),
            "--subject",
            "01",
            "--runner",
            "existing",
            "--image",
            IMAGE,
            "--output-space",
            SPACE,
            "--derivatives",
            str(tmp_path / "deriv"),
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
    )
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["runner"] == "existing" and rec["command"] is None and rec["subject"] == "01"
    assert [r["run_key"] for r in rec["runs"]] == [
        "sub-01_task-rest_run-1",
        "sub-01_task-rest_run-2",
    ]
    for r in rec["runs"]:
        f = files[r["run"]]
        assert (r["bold"], r["mask"], r["confounds"]) == (
            str(f["bold"]),
            str(f["mask"]),
            str(f["confounds"]),
        )
        assert r["sidecar"] == str(f["sidecar"]) and r["t_r"] == 2.0
        assert (r["sub"], r["ses"], r["task"]) == ("01", "", "rest")


def test_existing_asks_for_no_image_and_records_none(tmp_path: Path) -> None:
    """runner existing only checks derivatives: no image or work folder is needed, and the
    record names no image (none produced the derivatives)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    out = tmp_path / "rec.json"
    argv = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01"]
    argv += ["--runner", "existing", "--output-space", SPACE]
    rc = cli(fmriprep_cmd, [*argv, "--derivatives", str(tmp_path / "deriv"), "--out", str(out)])
    rec = json.loads(out.read_text())
    assert rc == 0 and rec["runner"] == "existing" and rec["command"] is None
    assert "image" not in rec and len(rec["runs"]) == 1
    # An image given all the same is not what made them either.
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec2.json")
    assert "image" not in rec and "image" not in json.loads(out.read_text())


@pytest.mark.parametrize("missing", ["image", "work_dir"])
def test_container_runner_needs_image_and_work_dir(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    # As lcm fmriprep asks (its options named): the workflow's rule names the config's keys.
    req = fmriprep_request(
        tmp_path, "docker", fs_license=lic, names=OPTION_NAMES, **{missing: None}
    )
    option = "--" + missing.replace("_", "-")
    with pytest.raises(ConfigError, match=f"runner 'docker' needs {option}; none was given"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == []


def test_confounds_of_fmriprep_before_20_2_are_found(tmp_path: Path) -> None:
    """fMRIPrep 1.4-20.1 named the table _desc-confounds_regressors.tsv; the run is not missing."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    old = files["confounds"].with_name("sub-01_task-rest_run-1_desc-confounds_regressors.tsv")
    files["confounds"].rename(old)
    json_file = files["confounds"].with_suffix(".json")
    if json_file.exists():
        json_file.rename(old.with_suffix(".json"))
    run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    (run,) = json.loads((tmp_path / "rec.json").read_text())["runs"]
    assert run["confounds"] == str(old)
    # Neither name: the run is excluded, its reason names the current one and the old one.
    old.unlink()
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec2.json")
    assert rec["runs"] == []
    assert re.search(
        r"confounds_timeseries\.tsv \(or .*regressors\.tsv", rec["excluded"][0]["reason"]
    )


def test_a_multi_echo_run_is_the_combined_series(tmp_path: Path) -> None:
    """fMRIPrep writes one series of a run's echoes, named without echo-: that is the run."""
    import numpy as np
    from helpers.connectome import CROP_SHAPE, save_nifti

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    func = tmp_path / "raw" / "sub-01" / "func"
    (func / "sub-01_task-rest_run-1_bold.nii.gz").unlink()
    for echo in (1, 2, 3):
        data = np.zeros((*CROP_SHAPE[:2], 3, 40), dtype=np.int16)
        save_nifti(func / f"sub-01_task-rest_run-1_echo-{echo}_bold.nii.gz", data, t_r=2.0)
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    (run,) = json.loads((tmp_path / "rec.json").read_text())["runs"]
    assert run["run_key"] == "sub-01_task-rest_run-1" and run["bold"] == str(files["bold"])


def test_existing_missing_files_exclude_their_runs(tmp_path: Path) -> None:
    """A run whose fMRIPrep outputs are incomplete is excluded with the files it lacks; the
    subject's other runs are recorded (the whole subject failed, and the cohort with it)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2", "3"))
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    files["confounds"].unlink()
    files["sidecar"].unlink()
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-3", n_vol=40)
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert json.loads((tmp_path / "rec.json").read_text()) == rec
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-3"]
    reasons = {r["run_key"]: r["reason"] for r in rec["excluded"]}
    assert sorted(reasons) == ["sub-01_task-rest_run-1", "sub-01_task-rest_run-2"]
    assert {r["reason_code"] for r in rec["excluded"]} == {"fmriprep_outputs_missing"}
    one, two = reasons["sub-01_task-rest_run-1"], reasons["sub-01_task-rest_run-2"]
    assert "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv" in one
    # Its sidecar is not missing: the raw run's TR stands in (test_preprocess_tr_fallback.py).
    assert "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.json" not in one
    assert "sub-01_task-rest_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz" in two
    # The BOLD of run 1 is there: its fix is to restore the files, not to rerun for a space.
    assert "--output-spaces" in two and "--output-spaces" not in one
    assert "Fix: " in one and "participants.exclude" in one


def test_existing_sidecar_without_tr_excludes_the_run(tmp_path: Path) -> None:
    """With no raw run to take a TR from (derivatives alone) and a BOLD header whose
    xyzt_units names no time unit, the run is excluded (a header in seconds would lend its
    TR: tests/unit/preprocess/test_preprocess_tr_fallback.py)."""
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    files["sidecar"].write_text("{}")
    img = nib.load(files["bold"])
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", "unknown")
    nib.save(img, files["bold"])
    req = fmriprep_request(tmp_path, "existing", bids=tmp_path / "deriv")
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (ex,) = rec["excluded"]
    assert rec["runs"] == [] and ex["reason_code"] == "no_repetition_time"
    assert "names no RepetitionTime" in ex["reason"] and "no time unit" in ex["reason"]


def test_unknown_subject(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    with pytest.raises(InputDataError, match="sub-09 has no BOLD run"):
        run_fmriprep(fmriprep_request(tmp_path, "existing", subject="09"), tmp_path / "rec.json")


def test_docker_runs_real_wrapper(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    lic = expect_standin(monkeypatch, tmp_path, extra=["--nthreads", "2"], skip_validation=True)
    out = tmp_path / "rec.json"
    rc = cli(
        fmriprep_cmd,
        [
            "fmriprep",
            "--dataset",
            "tiny",
            "--bids",
            str(tmp_path / "raw"),
            "--subject",
            "01",
            "--runner",
            "docker",
            "--image",
            IMAGE,
            "--output-space",
            SPACE,
            "--derivatives",
            str(tmp_path / "deriv"),
            "--work-dir",
            str(tmp_path / "work"),
            "--fs-license",
            str(lic),
            "--extra-args",
            '["--nthreads", "2"]',
            "--skip-bids-validation",
            "--out",
            str(out),
        ],
    )
    assert rc == 0
    calls = read_calls(standins)
    # LCM's own probe of the daemon first, then the wrapper's
    assert calls[0] == ["docker", "version", "--format", "{{.Server.Version}}"]
    calls = calls[1:]
    assert [c[:3] for c in calls[:4]] == [
        ["docker", "version"],
        ["docker", "images", "-q"],
        ["docker", "run", "--rm"],
        ["docker", "version", "--format"],
    ]
    assert calls[2][3:] == ["--entrypoint=free", IMAGE, "-m"]
    # fMRIPrep's run, then the digest of the image it used (test_preprocess_image_digest.py)
    assert len(calls) == 6 and calls[4][:3] == ["docker", "run", "--rm"]
    assert calls[5][:3] == ["docker", "image", "inspect"]
    assert f"{tmp_path / 'raw'}:/data:ro" in calls[4]
    rec = json.loads(out.read_text())
    assert rec["command"] == [
        "fmriprep-docker",
        str(tmp_path / "raw"),
        str(tmp_path / "deriv"),
        "participant",
        "--participant-label",
        "01",
        "--output-spaces",
        SPACE,
        "--fs-license-file",
        str(lic),
        "-w",
        str(tmp_path / "work" / "sub-01"),
        "--no-tty",
        "-i",
        IMAGE,
        "--task-id",
        "rest",
        "--skip-bids-validation",
        "--nthreads",
        "2",
        "--omp-nthreads",
        "2",
    ]
    assert len(rec["runs"]) == 2 and rec["image"] == IMAGE
    assert all("_res-2_desc-preproc_bold.nii.gz" in r["bold"] for r in rec["runs"])


def test_missing_license_fails_before_docker(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=tmp_path / "nope" / "license.txt")
    with pytest.raises(InputDataError, match=r"licence file not found: .*nope/license.txt"):
        run_fmriprep(req, tmp_path / "rec.json")
    with pytest.raises(ConfigError, match="needs a FreeSurfer licence"):
        run_fmriprep(fmriprep_request(tmp_path, "docker"), tmp_path / "rec.json")
    assert read_calls(standins) == []


def _cli_args(tmp_path: Path, lic: Path, runner: str = "docker") -> list[str]:
    return [
        *("--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01"),
        *("--runner", runner, "--image", IMAGE, "--output-space", SPACE),
        *("--derivatives", str(tmp_path / "deriv"), "--work-dir", str(tmp_path / "work")),
        *("--fs-license", str(lic), "--out", str(tmp_path / "rec.json")),
    ]


def test_fmriprep_failing_on_a_subject_writes_its_failure_record(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fMRIPrep exits 1 on sub-01: the job succeeds with a record excluding every run with the
    exit code and the log to read, which holds fMRIPrep's own output too; the cohort goes on."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"))
    lic = expect_standin(monkeypatch, tmp_path, exit=1)
    log_file = tmp_path / "logs" / "sub-01.log"
    log_file.parent.mkdir()
    rc = main(["--log-file", str(log_file), "fmriprep", *_cli_args(tmp_path, lic)])
    assert rc == 0
    rec = json.loads((tmp_path / "rec.json").read_text())
    (reason,) = {e["reason"] for e in rec["excluded"]}
    assert reason.startswith("fMRIPrep exited 1 for sub-01") and f"Fix: Read {log_file}" in reason
    assert rec["runs"] == []
    assert rec["excluded"] == [
        {"run_key": f"sub-01_task-rest_run-{r}", "reason_code": "fmriprep_failed", "reason": reason}
        for r in ("1", "2")
    ]
    assert rec["failure"] == {"exit_code": 1, "log": str(log_file), "reason": reason}
    text = log_file.read_text()
    assert "stand-in fMRIPrep: nipype node failed" in text and "ERROR" in text
    # The record to remove or force, by its absolute path (lcm run runs Snakemake elsewhere).
    record = str((tmp_path / "rec.json").resolve())
    assert f"snakemake --forcerun {record}" in text
    assert f"lcm run ... -- --forcerun {record}" in text


@pytest.mark.parametrize("code", [137, 143])
def test_fmriprep_killed_fails_the_job_for_a_retry(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Killed (out of memory or time): no record, the job fails and Snakemake retries it."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, exit=code)
    with pytest.raises(ExternalToolError, match=f"killed for sub-01 \\(exit status {code}\\)"):
        run_fmriprep(fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert not (tmp_path / "rec.json").exists()


@pytest.mark.parametrize(
    ("standin", "match"),
    [
        ({"exit": 125}, r"fMRIPrep's setup failed for sub-01, not .* \(exit status 125"),
        ({"daemon_down": "all"}, "docker cannot reach its daemon"),
        ({"daemon_down": "wrapper"}, "fmriprep-docker stopped before fMRIPrep started"),
    ],
)
def test_a_docker_failure_fails_the_job_and_excludes_no_subject(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, standin: dict, match: str
) -> None:
    """docker's own failures (an image that cannot be pulled: docker run exits 125; a daemon
    not reachable, found by LCM's probe or by the wrapper's) were recorded as the subject's
    fMRIPrep failure: the job succeeded, nothing was retried, the cohort was excluded. Now
    the job fails, naming the tool, and writes no record."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, **standin)
    with pytest.raises(ExternalToolError, match=match) as raised:
        run_fmriprep(fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert "no subject was excluded" in str(raised.value)
    assert not (tmp_path / "rec.json").exists()


def test_docker_missing_fails_the_job_before_the_wrapper_runs(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fmriprep-docker found, docker not: the wrapper said "Could not find docker command" and
    exited 1, recorded as the subject's fMRIPrep failure."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # fmriprep-docker is still found beside Python
    with pytest.raises(ExternalToolError, match="'docker' not found on PATH"):
        run_fmriprep(fmriprep_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


def test_apptainer_failing_itself_fails_the_job(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apptainer exits 255 for its own errors (an image it cannot pull, a bind source that does
    not exist): the job fails, no record."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif), exit=255)
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    with pytest.raises(ExternalToolError, match=r"not fMRIPrep on its data \(exit status 255"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert not (tmp_path / "rec.json").exists()


@pytest.mark.parametrize(
    ("runner", "code"), [("apptainer", 126), ("apptainer", 127), ("docker", 126)]
)
def test_fmriprep_refusing_its_setup_fails_the_job_and_excludes_no_subject(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, runner: str, code: int
) -> None:
    """fMRIPrep exits 126 when FreeSurfer refuses the licence (127: a tool missing from its
    image), before reading any subject: under apptainer that was a failure record, and every
    subject of the cohort was excluded by one bad licence; docker's message blamed docker."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    image = str(sif) if runner == "apptainer" else IMAGE
    lic = expect_standin(monkeypatch, tmp_path, image=image, exit=code)
    req = fmriprep_request(tmp_path, runner, image=image, fs_license=lic)
    with pytest.raises(
        ExternalToolError, match=rf"not fMRIPrep on its data \(exit status {code}"
    ) as raised:
        run_fmriprep(req, tmp_path / "rec.json")
    assert not (tmp_path / "rec.json").exists()
    said = str(raised.value) + (raised.value.hint or "")
    if code == 126:
        assert re.search(r"FreeSurfer licence \S+ invalid", said)
        assert f"Check that {lic.resolve()} is the license.txt" in said
    else:
        assert "a tool missing from its image" in said


def test_an_empty_or_unreadable_licence_is_refused_before_the_launch(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FreeSurfer refuses an empty licence and fMRIPrep exits 126 once its container started
    (every subject's job, at the cost of a container start each); LCM reads it first."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    lic.write_text("\n")
    req = fmriprep_request(tmp_path, "docker", fs_license=lic)
    with pytest.raises(InputDataError, match=f"licence file {re.escape(str(lic))} is empty"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()
    real_open = open

    def denied(path, *args, **kwargs):  # what a licence of mode 600 owned by another user gives
        if str(path) == str(lic):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    lic.write_text("user@example.org\n12345\n *abcdef\n")
    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(InputDataError, match=r"cannot be read \(Permission denied\)") as raised:
        run_fmriprep(req, tmp_path / "rec.json")
    assert "chmod a+r" in (raised.value.hint or "")
    monkeypatch.setattr("builtins.open", real_open)
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


def test_a_surface_output_space_is_refused_before_fmriprep_runs(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fMRIPrep would run for hours to write surface outputs no run can be recorded from."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, space="fsLR")
    req = fmriprep_request(
        tmp_path, "docker", fs_license=lic, output_space="fsLR", names=OPTION_NAMES
    )
    with pytest.raises(ConfigError, match="--output-space 'fsLR' is a surface space") as caught:
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()
    # The option given is the one to change (not a config key the user never wrote).
    assert caught.value.hint.startswith("Set --output-space to a volumetric template")
    # lcm ingest's options bring surface time series in: no config key to the option's user.
    assert "lcm ingest --entry roi_timeseries" in caught.value.hint
    assert "(lcm ingest --space chooses one)" in caught.value.hint
    assert "datasets." not in caught.value.hint and "ingest.select" not in caught.value.hint


def test_work_dir_inside_bids_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, work_dir=tmp_path / "raw" / "work")
    with pytest.raises(ConfigError, match="lies inside the BIDS folder"):
        run_fmriprep(req, tmp_path / "rec.json")


@pytest.mark.parametrize("work", ["deriv", "deriv/work", "scratch"])
def test_a_work_folder_overlapping_the_derivatives_is_refused(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, work: str
) -> None:
    """The subject's work folder is removed after a complete run: were it (or did it hold) the
    subject's derivatives, the outputs just recorded went with it."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    # "scratch": the derivatives lie in sub-01's work folder.
    deriv = tmp_path / ("scratch/sub-01/out" if work == "scratch" else "deriv")
    req = fmriprep_request(
        tmp_path, "docker", fs_license=lic, work_dir=tmp_path / work, derivatives=deriv
    )
    with pytest.raises(ConfigError, match="overlap: sub-01's work folder") as info:
        run_fmriprep(req, tmp_path / "rec.json")
    assert str(deriv) in str(info.value) and "outside the derivatives" in (info.value.hint or "")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


def test_container_run_on_its_own_derivatives_refused(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset of fMRIPrep derivatives (its --bids is its derivatives folder) is never given
    to fMRIPrep: it would read its outputs as raw data and write over them."""
    deriv = tmp_path / "deriv"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", bids=deriv, derivatives=deriv, fs_license=lic)
    with pytest.raises(ConfigError, match="read and write the same folder"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == []


def test_apptainer_with_templateflow(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), sessions=("a",))
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif), templateflow=str(tf.resolve()))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    calls = read_calls(standins)
    assert len(calls) == 1 and calls[0][:3] == ["apptainer", "run", "--cleanenv"]
    assert rec["command"][0] == "apptainer" and rec["command"][1:] == calls[0][1:]
    assert f"{tf.resolve()}:/templateflow" in rec["command"]
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_ses-a_task-rest_run-1"]
    assert rec["runs"][0]["ses"] == "a"


def test_apptainer_records_the_environment_it_set_and_warns_without_templateflow(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """The record names the APPTAINERENV_* LCM set (the command alone does not show it), also
    after a completed run is only checked; without TEMPLATEFLOW_HOME the job's log warns,
    naming the fix (fMRIPrep would download templates, offline nodes fail)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif), templateflow=str(tf.resolve()))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    with caplog.at_level(logging.INFO, logger="lcm"):
        rec = run_fmriprep(req, tmp_path / "rec.json")
    env = {
        "APPTAINERENV_TEMPLATEFLOW_HOME": "/templateflow",
        "SINGULARITYENV_TEMPLATEFLOW_HOME": "/templateflow",
    }
    assert rec["container_env"] == env and "TEMPLATEFLOW_HOME is not set" not in caplog.text
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    assert f"running {shown} apptainer run" in caplog.text
    again = run_fmriprep(req, tmp_path / "rec.json")  # completed: checked, not relaunched
    assert again["fmriprep_launched"] is False and again["container_env"] == env
    assert len(read_calls(standins)) == 1

    monkeypatch.delenv("TEMPLATEFLOW_HOME")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    caplog.clear()
    (tmp_path / "rec.json").unlink()
    for stamp in tmp_path.glob("*.completed.json"):
        stamp.unlink()
    with caplog.at_level(logging.INFO, logger="lcm"):
        rec = run_fmriprep(req, tmp_path / "rec.json")
    assert rec["container_env"] == {} and rec["fmriprep_launched"] is True
    warned = [r for r in caplog.records if "TEMPLATEFLOW_HOME is not set" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert "export TEMPLATEFLOW_HOME=" in warned[0].getMessage()


def test_docker_says_templateflow_home_is_not_passed_and_what_to_do(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """fmriprep-docker has no option to mount a host folder (only -e, which alone would name a
    path the container lacks): TEMPLATEFLOW_HOME silently never reached docker's fMRIPrep. It
    is still not passed, and the job's log says so, naming the fixes."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic)
    with caplog.at_level(logging.INFO, logger="lcm"):
        rec = run_fmriprep(req, tmp_path / "rec.json")
    assert len(rec["runs"]) == 1 and rec["container_env"] == {}
    # What reached docker run, as the real wrapper built it: no mount of it, no variable.
    (run,) = [c for c in read_calls(standins) if c[:3] == ["docker", "run", "--rm"] and SPACE in c]
    assert not any(str(tf) in word or "TEMPLATEFLOW" in word for word in run)
    warned = [r.getMessage() for r in caplog.records if "TEMPLATEFLOW_HOME" in r.getMessage()]
    assert len(warned) == 1, warned
    assert f"TEMPLATEFLOW_HOME ({tf}) is not passed to fMRIPrep's docker container" in warned[0]
    assert "fmriprep.runner: apptainer" in warned[0] and "FROM fmriprep.image" in warned[0]

    monkeypatch.delenv("TEMPLATEFLOW_HOME")  # unset: nothing to say
    assert docker_templateflow_note(None) is None and docker_templateflow_note("") is None


def test_singularity_runs_where_apptainer_is_not_installed(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SingularityCE alone (many clusters): every subject's job failed with "'apptainer' not
    found"; now singularity runs the same command, TemplateFlow passed as SINGULARITYENV_."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    bin_dir = tmp_path / "bin"
    (bin_dir / "apptainer").rename(bin_dir / "singularity")
    monkeypatch.setenv("PATH", str(bin_dir))  # no apptainer of the system either
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif), templateflow=str(tf.resolve()))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (call,) = read_calls(standins)
    assert call[:3] == ["singularity", "run", "--cleanenv"] and rec["command"] == call
    assert rec["container_env"]["SINGULARITYENV_TEMPLATEFLOW_HOME"] == "/templateflow"
    assert len(rec["runs"]) == 1

    (bin_dir / "singularity").unlink()
    (tmp_path / "rec.json").unlink()
    for stamp in tmp_path.glob("*.completed.json"):
        stamp.unlink()
    with pytest.raises(ExternalToolError, match="Neither 'apptainer' nor 'singularity'"):
        run_fmriprep(req, tmp_path / "rec.json")


def test_a_templateflow_home_that_is_no_folder_is_refused_before_the_launch(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apptainer refused to bind it (exit 255), recorded as every subject's fMRIPrep failure."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "no-such-tf"))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif))
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    with pytest.raises(ConfigError, match=r"TEMPLATEFLOW_HOME is .*no-such-tf.*not a folder"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


def test_apptainer_missing_image(tmp_path: Path, standins: Path, monkeypatch) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path)
    req = fmriprep_request(tmp_path, "apptainer", image=str(tmp_path / "none.sif"), fs_license=lic)
    with pytest.raises(InputDataError, match="Apptainer image not found"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert read_calls(standins) == []


def test_command_builders_are_argv_lists(tmp_path: Path) -> None:
    call = FmriprepCall(
        bids=Path("/b"),
        derivatives=Path("/d"),
        subject="01",
        image="img",
        output_space=SPACE,
        work_dir=Path("/w"),
        fs_license=Path("/l.txt"),
        extra_args=["--skip-bids-validation"],
    )
    argv = docker_command(call)
    assert argv[:4] == ["fmriprep-docker", "/b", "/d", "participant"]
    assert argv[argv.index("-w") + 1] == "/w/sub-01" and argv[-1] == "--skip-bids-validation"
    app, env = apptainer_command(call)
    assert app == [
        "apptainer",
        "run",
        "--cleanenv",
        "-B",
        "/b:/data:ro",
        "-B",
        "/d:/out",
        "-B",
        "/w/sub-01:/work",
        "-B",
        "/l.txt:/opt/freesurfer/license.txt:ro",
        "img",
        "/data",
        "/out",
        "participant",
        "--participant-label",
        "01",
        "--output-spaces",
        SPACE,
        "-w",
        "/work",
        "--skip-bids-validation",
    ]
    assert env == {}
    # The dataset's task and the validation ingest did: before the user's arguments.
    call = dataclasses.replace(call, task="rest", skip_bids_validation=True)
    expected = ["--task-id", "rest", "--skip-bids-validation", "--skip-bids-validation"]
    assert docker_command(call)[-4:] == expected
    assert apptainer_command(call)[0][-4:] == expected


@pytest.mark.parametrize("text", ["not json", '{"a": 1}', '["--n", 8]'])
def test_extra_args_must_be_json_list_of_strings(text: str) -> None:
    with pytest.raises(ConfigError, match="--extra-args"):
        fmriprep_cmd.parse_extra_args(text)


def test_existing_derivatives_only_dataset(tmp_path: Path) -> None:
    """Datasets entering as fMRIPrep derivatives pass the derivatives folder as --bids."""
    deriv = tmp_path / "deriv"
    make_fmriprep_run(deriv, "sub-01_ses-x_task-rest_run-1", n_vol=40)
    make_fmriprep_run(deriv, "sub-01_ses-x_task-rest_run-2", n_vol=40, res="2")
    req = fmriprep_request(tmp_path, "existing", bids=deriv)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == [
        "sub-01_ses-x_task-rest_run-1",
        "sub-01_ses-x_task-rest_run-2",
    ]
    assert rec["runs"][1]["mask"].endswith("_res-2_desc-brain_mask.nii.gz")


@pytest.mark.parametrize(
    ("job", "extra", "expected"),
    [
        ({}, [], []),  # no job size given: fMRIPrep sizes itself
        (
            {"nthreads": 8, "mem_mb": 16000},
            ["--low-mem"],
            ["--nthreads", "8", "--omp-nthreads", "8", "--mem_mb", "14400", "--low-mem"],
        ),
        # OpenMP threads per process: at most 8, fMRIPrep's own ceiling
        (
            {"nthreads": 16, "mem_mb": 32000},
            [],
            ["--nthreads", "16", "--omp-nthreads", "8", "--mem_mb", "28800"],
        ),
        # the user's smaller values win, in any spelling, given once
        (
            {"nthreads": 8, "mem_mb": 16000},
            ["--nprocs=2", "--mem", "4G", "--omp-nthreads", "1"],
            ["--nthreads", "2", "--omp-nthreads", "1", "--mem_mb", "4000"],
        ),
        # larger ones are capped to the job's
        (
            {"nthreads": 4, "mem_mb": 8000},
            ["--n_cpus", "32", "--omp-nthreads=16", "--mem-mb", "64000"],
            ["--nthreads", "4", "--omp-nthreads", "4", "--mem_mb", "7200"],
        ),
        ({}, ["--nthreads", "32"], ["--nthreads", "32", "--omp-nthreads", "8"]),
    ],
)
def test_resource_args_follow_the_job(job: dict, extra: list, expected: list) -> None:
    assert resource_args(extra, **job) == expected


def test_a_larger_nthreads_in_extra_args_is_capped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"):
        assert resource_args(["--nthreads", "64"], nthreads=8)[:2] == ["--nthreads", "8"]
    assert "asks --nthreads 64, more than the job's 8: 8 is used" in caplog.text


@pytest.mark.parametrize("extra", [["--nthreads", "many"], ["--mem", "lots"], ["--mem_mb"]])
def test_resource_values_fmriprep_would_refuse_are_config_errors(extra: list) -> None:
    with pytest.raises(ConfigError, match=r"fmriprep\.extra_args"):
        resource_args(extra, nthreads=8, mem_mb=16000)


def test_docker_run_gets_the_jobs_cpus_and_memory(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's size reaches fMRIPrep through the CLI (--nthreads, --mem-mb), not through
    SLURM variables, which a Snakemake job step does not see."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    sized = ["--nthreads", "8", "--omp-nthreads", "8", "--mem_mb", "14400"]
    lic = expect_standin(monkeypatch, tmp_path, extra=sized)
    args = ["fmriprep", *_cli_args(tmp_path, lic), "--nthreads", "8", "--mem-mb", "16000"]
    assert cli(fmriprep_cmd, args) == 0
    rec = json.loads((tmp_path / "rec.json").read_text())
    assert rec["command"][-6:] == sized
    # LCM's probe of the daemon, the wrapper's, the run itself, then the digest of its image
    assert len(read_calls(standins)) == 7


@pytest.mark.parametrize("given", [["--mem-mb", "6000"], ["--mem=6G"], ["--mem_mb", "6000"]])
def test_docker_reporting_under_8_gb_runs_without_a_prompt(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, given: list[str]
) -> None:
    """Docker reports 4 GB: the wrapper would ask "Continue anyway?" on a closed stdin unless
    the exact word --mem_mb is on its command line; the user's memory option, in any spelling,
    is passed so, once."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    lic = expect_standin(monkeypatch, tmp_path, docker_mem=4000, extra=["--mem_mb", "6000"])
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, extra_args=given)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert len(rec["runs"]) == 1
    memory = [a for a in rec["command"] if a.split("=")[0] in ("--mem", "--mem-mb", "--mem_mb")]
    assert memory == ["--mem_mb"]
    assert rec["command"][-2:] == ["--mem_mb", "6000"]


# fMRIPrep's argparse keeps the last --output-spaces: one in extra_args (common before XCP-D)
# replaced fmriprep.output_space, and every run lacked its outputs.
XCPD_ARGS = ["--output-spaces", "MNI152NLin6Asym:res-2", "T1w", SPACE, "--cifti-output", "91k"]


def test_output_spaces_in_extra_args_are_merged_with_the_configured_one(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    merged = [SPACE, "MNI152NLin6Asym:res-2", "T1w"]
    lic = expect_standin(monkeypatch, tmp_path, spaces=merged, extra=["--cifti-output", "91k"])
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, extra_args=XCPD_ARGS)
    with caplog.at_level("INFO", logger="lcm.preprocess.container"):
        rec = run_fmriprep(req, tmp_path / "rec.json")
    assert len(rec["runs"]) == 1
    command = rec["command"]
    assert command.count("--output-spaces") == 1
    at = command.index("--output-spaces")
    assert command[at + 1 : at + 5] == [*merged, "--fs-license-file"]
    assert command[-2:] == ["--cifti-output", "91k"]
    # what reached docker run, after the wrapper's own argparse
    (run,) = [c for c in read_calls(standins) if c[:3] == ["docker", "run", "--rm"] and SPACE in c]
    at = run.index("--output-spaces")
    assert run.count("--output-spaces") == 1 and run[at + 1 : at + 4] == merged
    assert "one --output-spaces MNI152NLin2009cAsym MNI152NLin6Asym:res-2 T1w" in caplog.text


@pytest.mark.parametrize(
    ("given", "spaces"),
    [
        (["--output-space=T1w"], [SPACE, "T1w"]),  # argparse's prefix, one inline value
        (["--output-spaces", "T1w", "--output-spaces", "fsLR"], [SPACE, "fsLR"]),  # last wins
        (["--output-spaces", "--cifti-output", "91k"], [SPACE]),  # no value
    ],
)
def test_apptainer_run_gets_one_output_spaces(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    given: list[str],
    spaces: list[str],
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif), spaces=spaces)
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic, extra_args=given)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (call,) = read_calls(standins)
    assert len(rec["runs"]) == 1 and rec["command"][1:] == call[1:]
    assert sum(a.startswith("--output-s") for a in call) == 1
    at = call.index("--output-spaces")
    assert call[at + 1 : at + 1 + len(spaces) + 1] == [*spaces, "-w"]


@pytest.mark.parametrize("manifest", [True, False])
def test_the_part_mag_outputs_of_a_complex_valued_run_are_found(
    tmp_path: Path, manifest: bool
) -> None:
    """fMRIPrep keeps part-mag in its outputs' names: the run is found by the key that holds
    it, with ingest's manifest or by indexing the BIDS folder; the phase is no run."""
    from helpers.connectome import CROP_SHAPE, save_nifti

    from lcm.bids.ingest import ingest

    raw = make_raw_bids(tmp_path / "raw", subjects=("01",))
    func = raw / "sub-01" / "func"
    (func / "sub-01_task-rest_run-1_bold.nii.gz").unlink()
    for part in ("mag", "phase"):
        data = np.zeros((*CROP_SHAPE[:2], 3, 40), dtype=np.int16)
        save_nifti(func / f"sub-01_task-rest_run-1_part-{part}_bold.nii.gz", data, t_r=2.0)
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1_part-mag", n_vol=40)
    path = None
    if manifest:
        path = tmp_path / "ingest" / "manifest.parquet"
        ingest("tiny", "bids", raw, path, validate=False)
    req = fmriprep_request(tmp_path, "existing", manifest=path)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-1_part-mag"]
    assert rec["runs"][0]["bold"] == str(files["bold"])
    assert not rec.get("excluded")


def test_derivatives_of_an_fmriprep_before_20_2_are_derivatives(tmp_path: Path) -> None:
    """fMRIPrep 1.x described its outputs with PipelineDescription, before BIDS named
    DatasetType: read as raw data, every desc-preproc file was left out ("no BOLD run")."""
    deriv = tmp_path / "deriv"
    files = make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    old = {
        "Name": "fMRIPrep",
        "BIDSVersion": "1.1.1",
        "PipelineDescription": {"Name": "fMRIPrep", "Version": "1.5.8"},
    }
    (deriv / "dataset_description.json").write_text(json.dumps(old))
    req = fmriprep_request(tmp_path, "existing", bids=deriv, derivatives=deriv)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["bold"] for r in rec["runs"]] == [str(files["bold"])]


@pytest.mark.parametrize(
    ("image", "extra", "said", "fix"),
    [
        (
            "nipreps/fmriprep:20.2.7",
            [],
            r"--image 'nipreps/fmriprep:20\.2\.7' is fMRIPrep 20\.2, whose default legacy layout",
            "Add --output-layout bids to --extra-args, or set --image to fMRIPrep 21.0 or later.",
        ),
        (
            "poldracklab/fmriprep:1.5.8",
            [],
            r"is fMRIPrep 1\.5, which writes its outputs in",
            "Set --image to fMRIPrep 20.2 or later, e.g. nipreps/fmriprep:25.2.7.",
        ),
        (
            IMAGE,
            ["--output-layout", "legacy"],
            r"--extra-args --output-layout legacy makes fMRIPrep write",
            "Remove --output-layout legacy from --extra-args (bids is the default).",
        ),
    ],
)
def test_a_run_whose_outputs_would_land_in_derivatives_fmriprep_is_refused(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    image: str,
    extra: list[str],
    said: str,
    fix: str,
) -> None:
    """fMRIPrep's legacy layout writes <out>/fmriprep/sub-X: LCM found no output of any subject
    and launched fMRIPrep again, hours per subject, at every rerun. The command-line user is
    told its options (it was fmriprep.image and fmriprep.extra_args, the config's keys)."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, image=image)
    req = fmriprep_request(
        tmp_path, "docker", fs_license=lic, image=image, extra_args=extra, names=OPTION_NAMES
    )
    with pytest.raises(ConfigError, match=said) as info:
        run_fmriprep(req, tmp_path / "rec.json")
    assert info.value.hint == fix
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()
    if image == "nipreps/fmriprep:20.2.7":  # told to write the BIDS layout: accepted
        req = dataclasses.replace(req, extra_args=["--output-layout", "bids"])
        from lcm.io.container_image import check_output_layout

        check_output_layout(req.image, req.extra_args, "lcm fmriprep")


def test_missing_outputs_of_the_legacy_layout_name_the_folder_that_holds_them(
    tmp_path: Path,
) -> None:
    """`lcm fmriprep --derivatives OUT` where fMRIPrep 20.2 wrote OUT/fmriprep/sub-01."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    make_fmriprep_run(tmp_path / "deriv" / "fmriprep", "sub-01_task-rest_run-1", n_vol=40)
    from lcm.commands.fmriprep import OPTION_NAMES

    req = fmriprep_request(tmp_path, "existing", names=OPTION_NAMES)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (excluded,) = rec["excluded"]
    assert excluded["reason_code"] == "fmriprep_outputs_missing"
    assert (
        f"point the dataset's derivatives at it (--derivatives {tmp_path / 'deriv' / 'fmriprep'})"
        in excluded["reason"]
    )


@pytest.mark.parametrize(
    ("space", "extra"),
    [("MNIColin27", []), (SPACE, ["--output-spaces", "MNI152NLin2009cSym", "T1w"])],
)
def test_a_space_fmriprep_docker_would_stop_on_is_refused_before_the_launch(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    space: str,
    extra: list[str],
) -> None:
    """The wrapper passes by name only the templates it lists: another (valid for fMRIPrep)
    stopped it before fMRIPrep started, reported as docker failing and retried."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = expect_standin(monkeypatch, tmp_path, space=space)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, output_space=space, extra_args=extra)
    with pytest.raises(ConfigError, match=r"fmriprep-docker passes by name only") as info:
        run_fmriprep(req, tmp_path / "rec.json")
    refused = [s for s in ("MNIColin27", "MNI152NLin2009cSym") if s in str(info.value)]
    assert len(refused) == 1 and "T1w'" not in str(info.value)
    assert "fmriprep.runner: apptainer" in (info.value.hint or "")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


def test_apptainer_binds_the_host_paths_of_extra_args_and_an_edited_filter_relaunches(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fmriprep-docker mounts the folders and files fMRIPrep's options name; under apptainer
    precomputed FreeSurfer on /project was not found and every subject failed. A BIDS filter
    edited in place asks fMRIPrep something else: it relaunches."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    fs = tmp_path / "free surfer"
    fs.mkdir()
    (tmp_path / "filter.json").write_text('{"bold": {"acquisition": "a"}}')
    monkeypatch.chdir(tmp_path)
    lic = expect_standin(monkeypatch, tmp_path, image=str(sif))
    extra = ["--fs-subjects-dir", str(fs), "--bids-filter-file=filter.json", "--fs-no-reconall"]
    req = fmriprep_request(tmp_path, "apptainer", image=str(sif), fs_license=lic, extra_args=extra)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (call,) = read_calls(standins)
    binds = [call[i + 1] for i, a in enumerate(call) if a == "-B"]
    assert f"{fs}:{fs}" in binds
    assert f"{tmp_path / 'filter.json'}:{tmp_path / 'filter.json'}:ro" in binds
    assert call[call.index("--fs-subjects-dir") + 1] == str(fs)
    assert f"--bids-filter-file={tmp_path / 'filter.json'}" in call
    assert rec["fmriprep_launched"] is True
    assert run_fmriprep(req, tmp_path / "rec.json")["fmriprep_launched"] is False
    (tmp_path / "filter.json").write_text('{"bold": {"acquisition": "b"}}')
    assert run_fmriprep(req, tmp_path / "rec.json")["fmriprep_launched"] is True
    # A path that is not there: apptainer could not bind it (its exit 255 retried the job).
    gone = dataclasses.replace(req, extra_args=["--fs-subjects-dir", str(tmp_path / "none")])
    with pytest.raises(ConfigError, match=r"--fs-subjects-dir names .*none, which does not"):
        run_fmriprep(gone, tmp_path / "rec2.json")
