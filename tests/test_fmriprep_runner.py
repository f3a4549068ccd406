"""lcm fmriprep: existing derivatives, the real fmriprep-docker wrapper against a docker
stand-in, and apptainer against a stand-in; both stand-ins check the command they receive and
write the derivatives fMRIPrep would, so the post-run check is exercised."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest_connectome import SPACE, cli, make_fmriprep_run, make_raw_bids

from lcm.commands import fmriprep as fmriprep_cmd
from lcm.exceptions import ConfigError, ExternalToolError, InputDataError
from lcm.preprocess.container import (
    FmriprepCall,
    allocation_args,
    apptainer_command,
    docker_command,
)
from lcm.preprocess.fmriprep_run import FmriprepRequest, run_fmriprep

IMAGE = "nipreps/fmriprep:25.2.7"

# One stand-in for both tools: it logs its argv, answers fmriprep-docker's probes, checks the
# final command against STANDIN_EXPECT and writes fMRIPrep-named outputs into the /out mount.
STANDIN = r"""
import json, os, shutil, sys
from pathlib import Path

tool = Path(sys.argv[0]).name
argv = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as fh:
    fh.write(json.dumps([tool, *argv]) + "\n")
expect = json.loads(os.environ["STANDIN_EXPECT"])

def fail(msg):
    sys.stderr.write(f"stand-in {tool}: {msg}\n")
    sys.exit(2)

def value_after(flag):
    if flag not in argv:
        fail(f"missing {flag}")
    return argv[argv.index(flag) + 1]

if tool == "docker":
    if argv == ["version"]:
        print("Client: Docker Engine\n Version: 27.0.0\nServer: Docker Engine\n Version: 27.0.0")
        sys.exit(0)
    if argv[:2] == ["images", "-q"]:
        print("0123456789ab")
        sys.exit(0)
    if argv[:3] == ["run", "--rm", "--entrypoint=free"]:
        print("               total        used        free")
        print("Mem:           64000        1000       63000")
        sys.exit(0)
    if argv[:2] == ["version", "--format"]:
        print("27.0.0")
        sys.exit(0)
    if argv[:2] != ["run", "--rm"]:
        fail(f"unexpected call {argv}")
    if "-it" in argv:
        fail("a TTY was requested in a batch job")
    mounts = {}
    for i, a in enumerate(argv):
        if a == "-v":
            host, target = argv[i + 1].split(":")[:2]
            mounts[target] = host
    if mounts.get("/opt/freesurfer/license.txt") != expect["license"]:
        fail(f"license mount {mounts.get('/opt/freesurfer/license.txt')}")
    if mounts.get("/scratch") != expect["work"] or value_after("-w") != "/scratch":
        fail(f"work dir mount {mounts.get('/scratch')}")
    start = argv.index(expect["image"])
    if argv[start + 1 : start + 4] != ["/data", "/out", "participant"]:
        fail(f"positional arguments {argv[start + 1 : start + 4]}")
    bids, out = mounts["/data"], mounts["/out"]
else:
    if argv[:2] != ["run", "--cleanenv"]:
        fail(f"unexpected call {argv}")
    binds = {}
    for i, a in enumerate(argv):
        if a == "-B":
            host, target = argv[i + 1].split(":")[:2]
            binds[target] = host
    if binds.get("/opt/freesurfer/license.txt") != expect["license"]:
        fail("license bind")
    if binds.get("/work") != expect["work"] or value_after("-w") != "/work":
        fail("work bind")
    tf = expect.get("templateflow")
    if tf and (binds.get("/templateflow") != tf
               or os.environ.get("APPTAINERENV_TEMPLATEFLOW_HOME") != "/templateflow"):
        fail("templateflow bind or APPTAINERENV_TEMPLATEFLOW_HOME")
    start = argv.index(expect["image"])
    if argv[start + 1 : start + 4] != ["/data", "/out", "participant"]:
        fail("positional arguments")
    bids, out = binds["/data"], binds["/out"]

subject = value_after("--participant-label")
space = value_after("--output-spaces")
if subject != expect["subject"] or space != expect["space"]:
    fail(f"subject {subject} / space {space}")
extra = expect.get("extra", [])
# the docker wrapper moves its own options (-w, --output-spaces) after the pass-through ones
if extra and not any(argv[i : i + len(extra)] == extra for i in range(len(argv))):
    fail(f"extra args {extra} not passed")
out = Path(out)
(out / "dataset_description.json").write_text('{"Name": "fMRIPrep", "DatasetType": "derivative"}')
for raw in sorted(Path(bids).glob(f"sub-{subject}/**/func/*_bold.nii.gz")):
    key = raw.name[: -len("_bold.nii.gz")]
    func = out / raw.parent.relative_to(bids)
    func.mkdir(parents=True, exist_ok=True)
    stem = f"{key}_space-{space}_res-2"
    shutil.copy(raw, func / f"{stem}_desc-preproc_bold.nii.gz")
    shutil.copy(raw, func / f"{stem}_desc-brain_mask.nii.gz")
    (func / f"{stem}_desc-preproc_bold.json").write_text('{"RepetitionTime": 2.0}')
    (func / f"{key}_desc-confounds_timeseries.tsv").write_text("trans_x\n0\n")
"""


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker`` and ``apptainer`` stand-ins first on PATH; returns their argv log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "apptainer"):
        script = bin_dir / tool
        script.write_text(f"#!{sys.executable}\n{STANDIN}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    # The fmriprep-docker wrapper lives beside this Python; keep it reachable.
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    # Not inside a SLURM job unless a test says so (fMRIPrep would get its allocation).
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        monkeypatch.delenv(name, raising=False)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _request(tmp_path: Path, runner: str, **kw) -> FmriprepRequest:
    defaults = dict(
        dataset="tiny",
        bids=tmp_path / "raw",
        subject="01",
        runner=runner,
        image=IMAGE,
        output_space=SPACE,
        derivatives=tmp_path / "deriv",
        work_dir=tmp_path / "work",
    )
    return FmriprepRequest(**{**defaults, **kw})


def _expect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra) -> Path:
    lic = tmp_path / "license.txt"
    lic.write_text("fake license\n")
    expect = {
        "license": str(lic.resolve()),
        "work": str((tmp_path / "work" / "sub-01").resolve()),
        "subject": "01",
        "space": SPACE,
        "image": IMAGE,
        **extra,
    }
    monkeypatch.setenv("STANDIN_EXPECT", json.dumps(expect))
    return lic


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
            "fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01",
            "--runner", "existing", "--image", IMAGE, "--output-space", SPACE,
            "--derivatives", str(tmp_path / "deriv"), "--work-dir", str(tmp_path / "work"),
            "--out", str(out),
        ],
    )  # fmt: skip
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
            str(f["bold"]), str(f["mask"]), str(f["confounds"])
        )  # fmt: skip
        assert r["sidecar"] == str(f["sidecar"]) and r["t_r"] == 2.0
        assert (r["sub"], r["ses"], r["task"]) == ("01", "", "rest")


def test_existing_missing_files_named(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"))
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    files["confounds"].unlink()
    files["mask"].unlink()
    with pytest.raises(InputDataError) as info:
        run_fmriprep(_request(tmp_path, "existing"), tmp_path / "rec.json")
    msg = str(info.value)
    assert "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv" in msg
    assert "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz" in msg
    assert "sub-01_task-rest_run-2_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz" in msg
    assert "--output-spaces" in info.value.hint
    assert not (tmp_path / "rec.json").exists()


def test_existing_sidecar_without_tr_is_missing(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    files["sidecar"].write_text("{}")
    with pytest.raises(InputDataError, match="RepetitionTime missing"):
        run_fmriprep(_request(tmp_path, "existing"), tmp_path / "rec.json")


def test_unknown_subject(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    with pytest.raises(InputDataError, match="sub-09 has no BOLD run"):
        run_fmriprep(_request(tmp_path, "existing", subject="09"), tmp_path / "rec.json")


def test_docker_runs_real_wrapper(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01", "02"), runs=("1", "2"))
    lic = _expect(monkeypatch, tmp_path, extra=["--nthreads", "2"])
    out = tmp_path / "rec.json"
    rc = cli(
        fmriprep_cmd,
        [
            "fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw"), "--subject", "01",
            "--runner", "docker", "--image", IMAGE, "--output-space", SPACE,
            "--derivatives", str(tmp_path / "deriv"), "--work-dir", str(tmp_path / "work"),
            "--fs-license", str(lic), "--extra-args", '["--nthreads", "2"]', "--out", str(out),
        ],
    )  # fmt: skip
    assert rc == 0
    calls = _calls(standins)
    assert [c[:3] for c in calls[:4]] == [
        ["docker", "version"],
        ["docker", "images", "-q"],
        ["docker", "run", "--rm"],
        ["docker", "version", "--format"],
    ]
    assert calls[2][3:] == ["--entrypoint=free", IMAGE, "-m"]
    assert len(calls) == 5 and calls[4][:3] == ["docker", "run", "--rm"]
    assert f"{tmp_path / 'raw'}:/data:ro" in calls[4]
    rec = json.loads(out.read_text())
    assert rec["command"] == [
        "fmriprep-docker", str(tmp_path / "raw"), str(tmp_path / "deriv"), "participant",
        "--participant-label", "01", "--output-spaces", SPACE,
        "--fs-license-file", str(lic), "-w", str(tmp_path / "work" / "sub-01"), "--no-tty",
        "-i", IMAGE, "--nthreads", "2",
    ]  # fmt: skip
    assert len(rec["runs"]) == 2
    assert all("_res-2_desc-preproc_bold.nii.gz" in r["bold"] for r in rec["runs"])


def test_missing_license_fails_before_docker(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    _expect(monkeypatch, tmp_path)
    req = _request(tmp_path, "docker", fs_license=tmp_path / "nope" / "license.txt")
    with pytest.raises(InputDataError, match=r"licence file not found: .*nope/license.txt"):
        run_fmriprep(req, tmp_path / "rec.json")
    with pytest.raises(ConfigError, match="needs a FreeSurfer licence"):
        run_fmriprep(_request(tmp_path, "docker"), tmp_path / "rec.json")
    assert _calls(standins) == []


def test_docker_failure_is_external_tool_error(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = _expect(monkeypatch, tmp_path, subject="02")  # the stand-in will refuse sub-01
    with pytest.raises(ExternalToolError, match="exit code"):
        run_fmriprep(_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert not (tmp_path / "rec.json").exists()


def test_work_dir_inside_bids_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = _expect(monkeypatch, tmp_path)
    req = _request(tmp_path, "docker", fs_license=lic, work_dir=tmp_path / "raw" / "work")
    with pytest.raises(ConfigError, match="lies inside the BIDS folder"):
        run_fmriprep(req, tmp_path / "rec.json")


def test_apptainer_with_templateflow(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), sessions=("a",))
    tf = tmp_path / "templateflow"
    tf.mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tf))
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"SIF")
    lic = _expect(monkeypatch, tmp_path, image=str(sif), templateflow=str(tf.resolve()))
    req = _request(tmp_path, "apptainer", image=str(sif), fs_license=lic)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    calls = _calls(standins)
    assert len(calls) == 1 and calls[0][:3] == ["apptainer", "run", "--cleanenv"]
    assert rec["command"][0] == "apptainer" and rec["command"][1:] == calls[0][1:]
    assert f"{tf.resolve()}:/templateflow" in rec["command"]
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_ses-a_task-rest_run-1"]
    assert rec["runs"][0]["ses"] == "a"


def test_apptainer_missing_image(tmp_path: Path, standins: Path, monkeypatch) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    lic = _expect(monkeypatch, tmp_path)
    req = _request(tmp_path, "apptainer", image=str(tmp_path / "none.sif"), fs_license=lic)
    with pytest.raises(InputDataError, match="Apptainer image not found"):
        run_fmriprep(req, tmp_path / "rec.json")
    assert _calls(standins) == []


def test_command_builders_are_argv_lists(tmp_path: Path) -> None:
    call = FmriprepCall(
        bids=Path("/b"), derivatives=Path("/d"), subject="01", image="img",
        output_space=SPACE, work_dir=Path("/w"), fs_license=Path("/l.txt"),
        extra_args=["--skip-bids-validation"],
    )  # fmt: skip
    argv = docker_command(call)
    assert argv[:4] == ["fmriprep-docker", "/b", "/d", "participant"]
    assert argv[argv.index("-w") + 1] == "/w/sub-01" and argv[-1] == "--skip-bids-validation"
    app, env = apptainer_command(call)
    assert app == [
        "apptainer", "run", "--cleanenv", "-B", "/b:/data:ro", "-B", "/d:/out",
        "-B", "/w/sub-01:/work", "-B", "/l.txt:/opt/freesurfer/license.txt:ro", "img",
        "/data", "/out", "participant", "--participant-label", "01", "--output-spaces", SPACE,
        "-w", "/work", "--skip-bids-validation",
    ]  # fmt: skip
    assert env == {}


@pytest.mark.parametrize("text", ["not json", '{"a": 1}', '["--n", 8]'])
def test_extra_args_must_be_json_list_of_strings(text: str) -> None:
    with pytest.raises(ConfigError, match="--extra-args"):
        fmriprep_cmd.parse_extra_args(text)


def test_existing_derivatives_only_dataset(tmp_path: Path) -> None:
    """Datasets entering as fMRIPrep derivatives pass the derivatives folder as --bids."""
    deriv = tmp_path / "deriv"
    make_fmriprep_run(deriv, "sub-01_ses-x_task-rest_run-1", n_vol=40)
    make_fmriprep_run(deriv, "sub-01_ses-x_task-rest_run-2", n_vol=40, res="2")
    req = _request(tmp_path, "existing", bids=deriv)
    rec = run_fmriprep(req, tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == [
        "sub-01_ses-x_task-rest_run-1",
        "sub-01_ses-x_task-rest_run-2",
    ]
    assert rec["runs"][1]["mask"].endswith("_res-2_desc-brain_mask.nii.gz")


@pytest.mark.parametrize(
    ("env", "extra", "expected"),
    [
        ({}, [], []),  # a workstation: fMRIPrep sizes itself
        (
            {"SLURM_CPUS_PER_TASK": "8", "SLURM_MEM_PER_NODE": "16000"},
            [],
            ["--nthreads", "8", "--mem-mb", "14400"],
        ),
        (
            {"SLURM_CPUS_PER_TASK": "4", "SLURM_MEM_PER_CPU": "2000"},
            [],
            ["--nthreads", "4", "--mem-mb", "7200"],
        ),
        # the user's own options win, in either spelling
        (
            {"SLURM_CPUS_PER_TASK": "8", "SLURM_MEM_PER_NODE": "16000"},
            ["--nprocs=2", "--mem", "4000"],
            [],
        ),
        ({"SLURM_CPUS_PER_TASK": "x", "SLURM_MEM_PER_NODE": "0"}, [], []),
    ],
)
def test_allocation_args_follow_the_slurm_job(env: dict, extra: list, expected: list) -> None:
    assert allocation_args(extra, env) == expected


def test_docker_run_inside_slurm_job_gets_its_cpus_and_memory(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    lic = _expect(monkeypatch, tmp_path, extra=["--nthreads", "8", "--mem-mb", "14400"])
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "16000")
    monkeypatch.delenv("SLURM_MEM_PER_CPU", raising=False)
    rec = run_fmriprep(_request(tmp_path, "docker", fs_license=lic), tmp_path / "rec.json")
    assert rec["command"][-4:] == ["--nthreads", "8", "--mem-mb", "14400"]
    assert len(_calls(standins)) == 5  # the wrapper's probes, then the run itself
