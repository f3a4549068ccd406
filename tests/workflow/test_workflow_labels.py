"""Labels with shell characters or ``..`` never reach a shell: refused by the CLI and workflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.workflow import ROOT, add_subject, placeholder_config, snakemake, write_config

BAD_LABELS = ["a;touch pwned", "..", "x$(id)", "sub 1", "a/../b", "a`b`"]


def lcm_cli(*args: str, cwd: Path, capsys: pytest.CaptureFixture, monkeypatch) -> tuple:
    """Run ``lcm`` in-process in ``cwd``; (exit code, stderr)."""
    from lcm.cli import main

    monkeypatch.chdir(cwd)
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("label", BAD_LABELS)
def test_cli_refuses_bad_subject_and_dataset(
    label: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    common = ["--bids", "raw", "--task", "rest", "--runner", "existing", "--image", "img"]
    common += ["--output-space", "MNI", "--derivatives", "d", "--work-dir", "w", "--out", "o.json"]
    run = dict(cwd=tmp_path, capsys=capsys, monkeypatch=monkeypatch)
    code, err = lcm_cli("fmriprep", "--dataset", "ds", "--subject", label, *common, **run)
    assert code == 3
    assert f"Invalid BIDS 'sub' label {label!r} in --subject" in err
    code, err = lcm_cli("fmriprep", "--dataset", label, "--subject", "01", *common, **run)
    assert code == 3 and "in --dataset" in err
    assert not list(tmp_path.iterdir())  # nothing was written, nothing was run


def test_cli_refuses_a_run_key_with_dots(tmp_path: Path, capsys, monkeypatch) -> None:
    code, err = lcm_cli(
        "connectome",
        "run",
        "--dataset",
        "ds",
        "--fmriprep-record",
        "r.json",
        "--run-key",
        "sub-01_task-rest_run-1/../../x",
        "--atlas-name",
        "aal116",
        "--out-dir",
        "out",
        "--qc-out",
        "qc.json",
        cwd=tmp_path,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert code == 2
    assert "Invalid --run-key 'sub-01_task-rest_run-1/../../x'" in err


def test_workflow_refuses_a_bids_subject_with_shell_characters(tmp_path: Path) -> None:
    _, config = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    raw = tmp_path / "data" / "hcplike" / "rawdata"
    add_subject(raw, "01;touch pwned")
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "-p", "--cores", "1")
    out = proc.stdout + proc.stderr
    # Refused with a message naming the file (the run is excluded, or the plan fails) ...
    assert "Invalid BIDS 'sub' label '01;touch pwned'" in out
    assert "sub-01;touch pwned_task-rest_run-1_bold.nii.gz" in out
    # ... and no planned job carries the label into a command line.
    assert "--subject 01;touch" not in out and "subject=01;touch" not in out
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["a..b", "x;y"])
def test_workflow_refuses_a_dataset_name_with_shell_characters(name: str, tmp_path: Path) -> None:
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    cfg["datasets"][name] = cfg["datasets"].pop("hcplike")
    config = write_config(tmp_path, yaml.safe_load(yaml.safe_dump(cfg)))
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "--cores", "1")
    assert proc.returncode != 0
    assert name in proc.stdout + proc.stderr and "datasets" in proc.stdout + proc.stderr


def test_dir_acq_and_echo_runs_are_planned_as_the_runs_they_are(tmp_path: Path) -> None:
    """dir-AP and dir-PA of run 1 are two connectome jobs; run 2's three echoes are one."""
    from helpers.workflow import planned_jobs, tiny_bold

    _, config = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    func = tmp_path / "data" / "hcplike" / "rawdata" / "sub-00000" / "func"
    (func / "sub-00000_task-rest_run-1_bold.nii.gz").unlink()
    names = ["dir-AP_run-1", "dir-PA_run-1", *(f"run-2_echo-{e}" for e in (1, 2, 3))]
    for name in names:
        (func / f"sub-00000_task-rest_{name}_bold.nii.gz").write_bytes(tiny_bold())
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "-n", "-p", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # hcplike: three runs; abidelike: one.
    assert planned_jobs(proc)["connectome_run"] == 4
    out = proc.stdout + proc.stderr
    for key in ("dir-AP_run-1", "dir-PA_run-1", "run-2"):
        assert f"--run-key sub-00000_task-rest_{key} " in out, key
    assert "--run-key sub-00000_task-rest_run-2_echo" not in out
