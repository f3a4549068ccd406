"""Hostile host paths for the fMRIPrep containers (issue 14): what a mount specification
cannot hold is refused in one line before anything runs; everything else (spaces, quotes,
``$(...)``) reaches the container tools as single argv elements, never through a shell."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_raw_bids
from helpers.fmriprep import IMAGE, fmriprep_request, read_calls

from lcm.bids.dataset import setting_names
from lcm.commands.fmriprep import OPTION_NAMES
from lcm.exceptions import ConfigError
from lcm.preprocess.container import FmriprepCall, apptainer_command, check_reserved_args
from lcm.preprocess.fmriprep_run import run_fmriprep

pytestmark = pytest.mark.hostile

HOSTILE = 'we ir\'d "q" $(touch PWNED) `touch PWNED2`'


def _license(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lic = folder / "license.txt"
    lic.write_text("fake license\n")
    return lic


def _expect(monkeypatch: pytest.MonkeyPatch, base: Path, lic: Path, image: str = IMAGE) -> None:
    expect = {
        "license": str(lic),
        "work": str(base / "work" / "sub-01"),
        "subject": "01",
        "space": SPACE,
        "image": image,
    }
    monkeypatch.setenv("STANDIN_EXPECT", json.dumps(expect))


@pytest.mark.parametrize(
    ("runner", "folder", "bad"),
    [
        ("apptainer", "a,b", "','"),
        ("apptainer", "a:b", "':'"),
        ("docker", "a:b", "':'"),
    ],
)
def test_unmountable_host_path_is_one_line_error(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: str,
    folder: str,
    bad: str,
) -> None:
    base = tmp_path / folder
    make_raw_bids(base / "raw", subjects=("01",))
    lic = _license(tmp_path)
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    image = str(sif) if runner == "apptainer" else IMAGE
    req = fmriprep_request(
        tmp_path,
        runner,
        bids=base / "raw",
        derivatives=tmp_path / "deriv",
        fs_license=lic,
        image=image,
    )
    with pytest.raises(ConfigError, match=rf"BIDS folder '.*{folder}/raw' contains {bad}") as err:
        run_fmriprep(req, tmp_path / "rec.json")
    assert "\n" not in err.value.message
    assert "symlink" in err.value.hint
    assert read_calls(standins) == []  # nothing launched
    assert not (tmp_path / "work").exists() and not (tmp_path / "deriv").exists()
    assert not (tmp_path / "rec.json").exists()


def test_comma_in_work_dir_or_templateflow_refused_by_the_builder(tmp_path: Path) -> None:
    call = FmriprepCall(
        bids=Path("/data/raw"),
        derivatives=Path("/data/deriv"),
        subject="01",
        image=IMAGE,
        output_space=SPACE,
        work_dir=Path("/scratch/a,b"),
        fs_license=Path("/l/license.txt"),
    )
    with pytest.raises(ConfigError, match=r"work folder .*'/scratch/a,b/sub-01' contains ','"):
        apptainer_command(call)
    ok = FmriprepCall(**{**call.__dict__, "work_dir": Path("/scratch/w")})
    with pytest.raises(ConfigError, match=r"TemplateFlow cache .*'/tf:x' contains ':'"):
        apptainer_command(ok, templateflow_home="/tf:x")


def test_symlink_is_the_way_round_an_unmountable_path(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_raw_bids(tmp_path / "a,b" / "raw", subjects=("01",))
    link = tmp_path / "plain"
    link.symlink_to(tmp_path / "a,b")
    lic = _license(tmp_path)
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    _expect(monkeypatch, tmp_path, lic, image=str(sif))
    req = fmriprep_request(tmp_path, "apptainer", bids=link / "raw", image=str(sif), fs_license=lic)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert f"{link / 'raw'}:/data:ro" in rec["command"]
    assert len(rec["runs"]) == 1


@pytest.mark.parametrize("runner", ["docker", "apptainer"])
def test_spaces_quotes_and_substitutions_pass_as_single_arguments(
    tmp_path: Path,
    standins: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = tmp_path / HOSTILE
    make_raw_bids(base / "raw", subjects=("01",))
    lic = _license(base)
    sif = base / "fmriprep image.sif"
    sif.write_bytes(b"SIF")
    image = str(sif) if runner == "apptainer" else IMAGE
    _expect(monkeypatch, base, lic, image=image)
    req = fmriprep_request(
        base,
        runner,
        bids=base / "raw",
        derivatives=base / "deriv",
        work_dir=base / "work",
        fs_license=lic,
        image=image,
    )
    monkeypatch.chdir(tmp_path)  # where a shell would have run the substitutions
    with caplog.at_level("INFO"):
        rec = run_fmriprep(req, base / "rec.json")
    # The logged command can be pasted into a shell: it splits back into the argv that ran.
    logged = next(r.getMessage() for r in caplog.records if "running" in r.getMessage())
    assert shlex.split(logged.split(": running ", 1)[1]) == rec["command"]
    calls = read_calls(standins)
    final = [c for c in calls if c[1] == "run"][-1]  # fMRIPrep's run (then docker's inspect)
    flag = "-v" if runner == "docker" else "-B"
    mounts = [final[i + 1] for i, a in enumerate(final) if a == flag]
    assert f"{base / 'raw'}:/data:ro" in mounts
    assert f"{lic}:/opt/freesurfer/license.txt:ro" in mounts
    if runner == "docker":
        assert rec["command"][1:3] == [str(base / "raw"), str(base / "deriv")]
    else:
        assert rec["command"][1:] == final[1:] and str(sif) in final
    assert len(rec["runs"]) == 1
    # Nothing was evaluated by a shell anywhere.
    for folder in (tmp_path, base, Path.cwd()):
        assert not (folder / "PWNED").exists() and not (folder / "PWNED2").exists()


def test_fmriprep_cli_unmountable_path_has_no_traceback(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "a,b" / "raw", subjects=("01",))
    lic = _license(tmp_path)
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lcm",
            "fmriprep",
            "--dataset",
            "tiny",
            "--bids",
            str(tmp_path / "a,b" / "raw"),
            "--subject",
            "01",
            "--runner",
            "apptainer",
            "--image",
            str(sif),
            "--output-space",
            SPACE,
            "--derivatives",
            str(tmp_path / "deriv"),
            "--work-dir",
            str(tmp_path / "work"),
            "--fs-license",
            str(lic),
            "--out",
            str(tmp_path / "rec.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == ConfigError.exit_code
    assert "Traceback" not in proc.stderr
    assert "contains ','" in proc.stderr and "symlink" in proc.stderr
    assert not (tmp_path / "rec.json").exists()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--participant-label", "02"], "'--participant-label' sets what LCM passes"),
        (["--participant_label=02"], "'--participant_label=02' sets what LCM passes"),
        (["--task", "nback"], r"'--task' sets .*\(--task-id\)"),
        (["-t", "nback"], r"'-t' sets .*\(--task-id\)"),
        (["-w/scratch/other"], r"'-w/scratch/other' sets .*\(--work-dir\)"),
        (["--work-dir=/scratch"], r"'--work-dir=/scratch' sets .*\(--work-dir\)"),
        (["--fs-license-file", "/x.txt"], r"'--fs-license-file' sets .*\(--fs-license-file\)"),
        (["-i", "nipreps/fmriprep:23.2.0"], r"'-i' sets .*\(--image\)"),
        (["--anat-only"], "'--anat-only' makes fMRIPrep write no preprocessed BOLD"),
        (["--level", "minimal"], "'--level minimal' makes fMRIPrep write no preprocessed BOLD"),
        (["--reports-only"], "'--reports-only' makes fMRIPrep write no"),
    ],
)
def test_extra_args_that_override_the_subjects_run_are_refused_before_the_launch(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch, extra: list, said: str
) -> None:
    """fMRIPrep and its wrapper keep the last value given, and extra_args came after LCM's:
    `--participant-label 02` made every subject's job preprocess sub-02 (recorded as its own)."""
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    lic = _license(tmp_path)
    _expect(monkeypatch, tmp_path, lic)
    req = fmriprep_request(tmp_path, "docker", fs_license=lic, extra_args=extra, names=OPTION_NAMES)
    with pytest.raises(ConfigError, match=f"^--extra-args: {said}") as info:
        run_fmriprep(req, tmp_path / "rec.json")
    assert re.match(rf"Remove '{re.escape(extra[0])}.*' from --extra-args", info.value.hint)
    assert "fmriprep." not in (info.value.hint or "")
    assert read_calls(standins) == [] and not (tmp_path / "rec.json").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--level", "full"],
        ["--level=full"],
        ["--fs-no-reconall", "--cifti-output", "91k", "--output-spaces", "T1w"],
        ["--tasks-are-mine"],
        ["--bids-filter-file", "-"],
    ],
)
def test_extra_args_that_leave_the_subjects_run_alone_pass(extra: list) -> None:
    """Options that only look like the reserved ones are fMRIPrep's to judge."""
    check_reserved_args(extra, setting_names("tiny", OPTION_NAMES))


def test_the_settings_job_refuses_such_extra_args_before_any_subject(tmp_path: Path) -> None:
    """The dataset's settings stamp (`lcm fmriprep --settings-only`) runs before every
    subject's job: the override is refused once there, not in each queued job."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    argv = ["fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--runner"]
    argv += ["apptainer", "--image", "docker://nipreps/fmriprep:25.2.7", "--output-space", SPACE]
    argv += ["--derivatives", str(tmp_path / "deriv"), "--settings-only"]
    argv += ["--extra-args", '["--participant_label", "02"]', "--out", str(tmp_path / "s.json")]
    done = subprocess.run(
        [sys.executable, "-m", "lcm", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == ConfigError.exit_code and not (tmp_path / "s.json").exists()
    assert "--extra-args: '--participant_label' sets what LCM passes" in done.stderr
    assert "Traceback" not in done.stderr
