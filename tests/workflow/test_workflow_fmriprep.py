"""The fMRIPrep stage as the workflow plans it: which runner each dataset gets, and the
options its jobs hand ``lcm fmriprep``."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.connectome import make_fmriprep_run
from helpers.workflow import placeholder_config, planned_jobs, snakemake, touch_all, write_config


def fmriprep_commands(workdir: Path, cfg: dict, *extra: str) -> dict[str, list[str]]:
    """Dataset -> argv of its first planned fMRIPrep job, from a dry run's printed commands."""
    config = write_config(workdir, cfg)
    proc = snakemake(ROOT, workdir, "--configfile", str(config), "-n", "-p", "--cores", "4", *extra)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    commands: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "--rule fmriprep fmriprep" in line:
            argv = shlex.split(line.split("; ")[-1])
            commands.setdefault(argv[argv.index("--dataset") + 1], argv)
    return commands


def test_derivatives_datasets_are_read_as_they_are_whatever_the_runner(tmp_path: Path) -> None:
    """fmriprep.runner: docker runs fMRIPrep on raw BIDS datasets only; a dataset entering as
    fMRIPrep derivatives is checked (runner existing), never given to fMRIPrep as input and
    output at once."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    deriv = tmp_path / "data" / "abidelike" / "fmriprep"
    make_fmriprep_run(deriv, "sub-00000_task-rest_run-1", n_vol=20)
    cfg["datasets"]["abidelike"].update(entry="fmriprep", path=str(deriv))
    cfg["datasets"]["abidelike"].pop("derivatives")
    (tmp_path / "license.txt").write_text("licence\n")
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    commands = fmriprep_commands(tmp_path, cfg)
    raw, derivs = commands["hcplike"], commands["abidelike"]
    assert raw[raw.index("--runner") + 1] == "docker" and "--image" in raw
    assert derivs[derivs.index("--runner") + 1] == "existing"
    assert not {"--image", "--work-dir", "--extra-args"} & set(derivs)
    assert derivs[derivs.index("--bids") + 1] == str(deriv)
    assert derivs[derivs.index("--subject") + 1] == "00000"


def test_fmriprep_jobs_hand_their_threads_and_memory_to_lcm(tmp_path: Path) -> None:
    """The rule's threads and mem_mb (capped to --cores) reach ``lcm fmriprep``: a container
    run is sized to fMRIPrep's needs, a dataset only checked to one CPU."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    (tmp_path / "license.txt").write_text("licence\n")
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    argv = fmriprep_commands(tmp_path, cfg)["hcplike"]
    assert argv[argv.index("--nthreads") + 1] == "4"  # 8, capped to --cores 4
    assert argv[argv.index("--mem-mb") + 1] == "16000"
    cfg["fmriprep"]["runner"] = "existing"
    argv = fmriprep_commands(tmp_path, cfg)["hcplike"]
    assert argv[argv.index("--nthreads") + 1] == "1"
    assert argv[argv.index("--mem-mb") + 1] == "2000"


def test_container_runs_skip_the_validation_ingest_did(tmp_path: Path) -> None:
    """ingest.validate (the default) ran the BIDS validator: fMRIPrep is told to skip its own;
    with ingest.validate false fMRIPrep's is the only one, and runs."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    (tmp_path / "license.txt").write_text("licence\n")
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    assert "--skip-bids-validation" in fmriprep_commands(tmp_path, cfg)["hcplike"]
    cfg["ingest"]["validate"] = False
    assert "--skip-bids-validation" not in fmriprep_commands(tmp_path, cfg)["hcplike"]


def test_keeping_the_work_folders_reruns_no_subject(tmp_path: Path) -> None:
    """fmriprep.keep_work reaches each container run's job (--keep-work, through a variable of
    the shell prefix) but is no param: a cohort whose fMRIPrep runs are done is not run again
    for it."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    (tmp_path / "license.txt").write_text("licence\n")
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    assert "$LCM_KEEP_WORK_ARG" in fmriprep_commands(tmp_path, cfg)["hcplike"]
    touch_all(ROOT, tmp_path, write_config(tmp_path, cfg))
    cfg["fmriprep"]["keep_work"] = True
    proc = snakemake(ROOT, tmp_path, "--configfile", str(write_config(tmp_path, cfg)), "-n")
    assert proc.returncode == 0 and planned_jobs(proc) == {}, proc.stdout[-2000:]


def test_a_docker_dry_run_says_templateflow_home_is_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fmriprep-docker cannot mount a host folder: the dry run says TEMPLATEFLOW_HOME does not
    reach docker's fMRIPrep and what to do instead; apptainer binds it, and says nothing."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    (tmp_path / "license.txt").write_text("licence\n")
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    cfg["fmriprep"].update(runner="docker", fs_license=str(tmp_path / "license.txt"))
    config = write_config(tmp_path, cfg)
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "--cores", "1")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    said = f"fmriprep.runner docker: TEMPLATEFLOW_HOME ({tf}) is not passed to fMRIPrep's docker"
    assert text.count(said) == 1 and "fmriprep.runner: apptainer" in text
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    cfg["fmriprep"].update(runner="apptainer", image=str(sif))
    config = write_config(tmp_path, cfg)
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "--cores", "1")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "is not passed to fMRIPrep's docker" not in text
