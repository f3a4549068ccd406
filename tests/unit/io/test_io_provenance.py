"""Provenance sidecars: what they record, where they go, and the trace/verify audit."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import lcm
from lcm.cli import main as lcm_main
from lcm.cli import verb_code_hash
from lcm.exceptions import ConfigError
from lcm.io import paths
from lcm.io.config_copy import write_config_copy
from lcm.io.lineage import audit, trace, verify
from lcm.io.ownership import MARKER_NAME, claim_results
from lcm.io.paths import RESULTS_ENTRIES
from lcm.io.provenance import (
    CONFIG_HASH_ENV,
    config_hash,
    container_digest,
    git_commit,
    parse_scontrol_job,
    provenance_path,
    record_outputs,
    scontrol_allocation,
    set_invocation,
    sha256_file,
    write_sidecar,
)
from lcm.workflow.hash import code_hash

DIGEST = "sha256:" + "ab" * 32
# What every problem that asks to make a file again says to do.
RERUN = "rerun the workflow with the command that made it (snakemake or lcm run)"


def lcm_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m lcm`` in a process of its own: the exit status a script sees."""
    return subprocess.run(
        [sys.executable, "-m", "lcm", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def lcm_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    """``lcm`` in this process (the command line's own code, without a torch import per
    call): its exit status and what it printed."""
    code = lcm_main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["lcm", *args], code, out, err)


@pytest.fixture
def invoked(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if `lcm --rule store store --seed 7 ...` were running inside a workflow job."""
    monkeypatch.setenv(CONFIG_HASH_ENV, "c" * 64)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_CPUS_PER_GPU", "8")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "64000")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    args = argparse.Namespace(rule="store", verb="store", seed=7, dataset="ds1", func=print)
    set_invocation(["--rule", "store", "store", "--seed", "7"], args, lambda: "d" * 64)


def chain(tmp_path: Path) -> dict[str, Path]:
    """raw.tsv -> (rule a) mid.tsv -> (rule b) final.parquet, each with its sidecar."""
    files = {"raw": tmp_path / "raw.tsv", "mid": tmp_path / "mid.tsv"}
    files["final"] = tmp_path / "out" / "final.parquet"
    files["final"].parent.mkdir()
    files["raw"].write_text("a\tb\n1\t2\n")
    files["mid"].write_text("a\n3\n")
    set_invocation(["--rule", "a"], argparse.Namespace(rule="a", verb="connectome"))
    write_sidecar(files["mid"], [files["raw"]])
    pd.DataFrame({"x": [1.0]}).to_parquet(files["final"])
    set_invocation(["--rule", "b"], argparse.Namespace(rule="b", verb="store"))
    write_sidecar(files["final"], [files["mid"]])
    return files


def test_sidecar_records_how_the_output_was_made(tmp_path: Path, invoked: None) -> None:
    src, out = tmp_path / "in.tsv", tmp_path / "out.tsv"
    src.write_text("x\n1\n")
    out.write_text("y\n2\n")
    side = write_sidecar(out, [src], container=f"nipreps/fmriprep@{DIGEST}", n_boot=10)
    record = json.loads(side.read_text())
    assert side == tmp_path / "out.json"
    assert record["Output"] == "out.tsv" and record["n_boot"] == 10
    assert record["Sha256"] == sha256_file(out)
    assert record["SourcesSha256"] == {str(src): sha256_file(src)}
    prov = record["Provenance"]
    assert prov["rule"] == "store" and prov["seed"] == 7
    assert prov["command"] == ["lcm", "--rule", "store", "store", "--seed", "7"]
    assert prov["params"]["dataset"] == "ds1" and "func" not in prov["params"]
    assert prov["config_sha256"] == "c" * 64
    assert prov["code_sha256"] == "d" * 64
    assert prov["slurm_job_id"] == "4242" and prov["host"]
    assert prov["slurm_allocation"]["cpus_per_gpu"] == "8"
    assert prov["slurm_allocation"]["mem_per_node_mb"] == "64000"
    assert "cpus_per_task" not in prov["slurm_allocation"]
    assert prov["container"] == {"image": f"nipreps/fmriprep@{DIGEST}", "digest": DIGEST}
    assert "pandas" in prov["packages"] and "git_commit" in prov and "git_dirty" in prov


# A pretraining job's line from Debian's slurm-wlm (`scontrol show job -o 380`), as the
# Snakemake SLURM executor submits it (--mem 64000, --gpus 1, --cpus-per-gpu 8, a comment).
SCONTROL_LINE = (
    "JobId=380 JobName=0f1e2d3c-aaaa-bbbb-cccc-111122223333 UserId=lcm(1000) GroupId=lcm(1000) "
    "MCS_label=N/A Priority=1 Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None "
    "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 "
    "RunTime=00:00:41 TimeLimit=1-00:00:00 TimeMin=N/A SubmitTime=2025-05-02T10:00:00 "
    "Partition=lcmtest AllocNode:Sid=ci:12 ReqNodeList=(null) ExcNodeList=(null) NodeList=ci "
    "BatchHost=ci NumNodes=1 NumCPUs=8 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* "
    "TRES=cpu=8,mem=62.50G,node=1,billing=8,gres/gpu=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "CoreSpec=* MinCPUsNode=1 MinMemoryNode=62.50G MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=(null) WorkDir=/work/my study Comment=rule_pretrain_wildcards_ "
    "StdErr=/work/.snakemake/slurm_logs/rule_pretrain/380.log "
    "StdOut=/work/.snakemake/slurm_logs/rule_pretrain/380.log Power= "
    "CpusPerTres=gres:gpu:8 TresPerJob=gres:gpu:1"
)


def test_scontrol_line_gives_memory_gpus_and_cpus_per_gpu() -> None:
    assert parse_scontrol_job(SCONTROL_LINE) == {
        "mem_per_node_mb": "64000",
        "gpus": "1",
        "cpus_per_gpu": "8",
    }
    # Memory per CPU where the job asked --mem-per-cpu; the TRES' total where neither is given.
    per_cpu = "JobId=9 MinMemoryCPU=2000M TRES=cpu=4,mem=8000M,node=1,billing=4"
    assert parse_scontrol_job(per_cpu) == {"mem_per_cpu_mb": "2000"}
    assert parse_scontrol_job("JobId=9 AllocTRES=cpu=1,mem=4000M,node=1") == {
        "mem_per_node_mb": "4000"
    }
    # Two nodes: the TRES are the job's total, not what one node holds.
    assert parse_scontrol_job("JobId=9 TRES=cpu=2,mem=8G,node=2,gres/gpu=2") == {}
    assert parse_scontrol_job("JobId=9 CpusPerTres=gres/gpu:4") == {"cpus_per_gpu": "4"}


def _fake_scontrol(folder: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {folder}/calls\n{body}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    scontrol_allocation.cache_clear()
    return folder / "calls"


def test_memory_granted_is_asked_of_scontrol_where_slurm_variables_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside the Snakemake SLURM executor's job step only the job ids are left: the memory,
    GPUs and CPUs per GPU granted come from the controller, asked once per process."""
    for name in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_CPUS_PER_GPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "380")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    calls = _fake_scontrol(tmp_path / "bin", f"echo '{SCONTROL_LINE}'", monkeypatch)
    for _ in range(3):
        prov = json.loads(write_sidecar(_output(tmp_path), []).read_text())["Provenance"]
        allocation = prov["slurm_allocation"]
        assert allocation["mem_per_node_mb"] == "64000", allocation
        assert allocation["cpus_per_gpu"] == "8" and allocation["gpus"] == "1"
    assert calls.read_text().splitlines() == ["show job -o 380"]  # once per process
    scontrol_allocation.cache_clear()


@pytest.mark.parametrize(
    "body",
    [
        "echo 'slurm_load_jobs error: Invalid job id' >&2; exit 1",
        "echo 'JobId=999 TRES=mem=1G,node=1'",
        "exec sleep 30",
    ],
)
def test_scontrol_failing_records_no_memory_and_the_job_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    for name in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_CPUS_PER_GPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "380")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "2")
    _fake_scontrol(tmp_path / "bin", body, monkeypatch)
    if body.startswith("sleep"):
        monkeypatch.setattr("lcm.io.provenance.SCONTROL_TIMEOUT_S", 0.5)
    prov = json.loads(write_sidecar(_output(tmp_path), []).read_text())["Provenance"]
    assert prov["slurm_job_id"] == "380"
    assert prov["slurm_allocation"] == {"cpus_on_node": "2"}
    scontrol_allocation.cache_clear()


def test_no_scontrol_on_path_records_no_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "380")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    scontrol_allocation.cache_clear()
    prov = json.loads(write_sidecar(_output(tmp_path), []).read_text())["Provenance"]
    assert "mem_per_node_mb" not in prov["slurm_allocation"]
    scontrol_allocation.cache_clear()


def _output(folder: Path) -> Path:
    out = folder / "out.tsv"
    out.write_text("y\n2\n")
    return out


def _git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(folder)]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout


def test_git_commit_is_lcms_own_checkouts_only(tmp_path: Path) -> None:
    """A copy of lcm/ inside a study's repository records no commit (that commit is the
    study's, not LCM's); an LCM checkout (lcm/ tracked at its top level) records its own."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    source = Path(lcm.__file__).parent
    study = tmp_path / "study"
    shutil.copytree(source, study / "site" / "lcm", ignore=shutil.ignore_patterns("__pycache__"))
    _git(study, "init", "-q")
    _git(study, "add", "-A")
    _git(study, "commit", "-q", "-m", "study")
    assert _git(study, "rev-parse", "HEAD").strip()
    assert git_commit(study / "site" / "lcm") == {"commit": None, "dirty": None}
    # The reviewer's repro: that copy imported, as a study's code would import it.
    env = {**os.environ, "PYTHONPATH": str(study / "site")}
    code = "import lcm; from lcm.io.provenance import git_commit; print(lcm.__file__, git_commit())"
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=study, capture_output=True, text=True, check=True
    ).stdout
    assert str(study / "site" / "lcm") in shown and "'commit': None" in shown
    # lcm/ at the top level of a repository that does not track it: not an LCM checkout.
    untracked = tmp_path / "untracked"
    shutil.copytree(source, untracked / "lcm", ignore=shutil.ignore_patterns("__pycache__"))
    _git(untracked, "init", "-q")
    (untracked / "README").write_text("other\n")
    _git(untracked, "add", "README")
    _git(untracked, "commit", "-q", "-m", "other")
    assert git_commit(untracked / "lcm") == {"commit": None, "dirty": None}
    # An LCM checkout: its own commit, and its edits make it dirty.
    _git(untracked, "add", "-A")
    _git(untracked, "commit", "-q", "-m", "lcm")
    head = _git(untracked, "rev-parse", "HEAD").strip()
    git_commit.cache_clear()  # cached per process: a checkout's commit does not change in a run
    assert git_commit(untracked / "lcm") == {"commit": head, "dirty": False}
    with (untracked / "lcm" / "__init__.py").open("a") as fh:
        fh.write("# edited\n")
    git_commit.cache_clear()
    assert git_commit(untracked / "lcm") == {"commit": head, "dirty": True}


def test_container_digest_only_for_fixed_content(tmp_path: Path) -> None:
    assert container_digest(f"nipreps/fmriprep@{DIGEST}") == DIGEST
    assert container_digest("nipreps/fmriprep:25.2.7") is None  # a tag can move
    sif = tmp_path / "fmriprep.sif"
    sif.write_bytes(b"image bytes")
    assert container_digest(str(sif)) == "sha256:" + sha256_file(sif)


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("d/sub-01_relmat.tsv", "d/sub-01_relmat.json"),
        ("d/sub-01_qc.json", "d/sub-01_qc.prov.json"),
        ("m/model.safetensors", "m/model.safetensors.prov.json"),
        ("s/atlas=aal116/dataset=ds/part-0.parquet", "s/atlas=aal116/dataset=ds/_part-0.prov.json"),
        ("metrics/task-a_metrics.parquet", "metrics/task-a_metrics.json"),
    ],
)
def test_provenance_path(output: str, expected: str) -> None:
    assert provenance_path(output) == Path(expected)


def test_partition_sidecar_is_invisible_to_parquet_readers(tmp_path: Path) -> None:
    part = tmp_path / "store" / "dataset=ds1" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(part)
    write_sidecar(part, [])
    assert len(pd.read_parquet(tmp_path / "store")) == 2


def test_trace_walks_back_to_raw_files_with_hashes(tmp_path: Path) -> None:
    files = chain(tmp_path)
    lines = list(trace(files["final"]))
    assert len(lines) == 3
    assert lines[0].startswith(f"{files['final']} [ok]") and "rule=b" in lines[0]
    assert lines[1].startswith(f"  {files['mid']} [ok]") and "rule=a" in lines[1]
    assert lines[2] == f"    {files['raw']} [raw] sha256={sha256_file(files['raw'])[:12]}"


def test_verify_finds_every_kind_of_drift(tmp_path: Path) -> None:
    files = chain(tmp_path)
    assert verify(tmp_path) == []
    files["raw"].write_text("a\tb\n1\t999\n")  # tampered input
    problems = verify(tmp_path)
    # Each problem says what to do: here, restore the input or rebuild what was made from it.
    assert problems == [
        f"{files['raw']}: input of {tmp_path / 'mid.json'} changed since it was used: restore "
        f"it, or {RERUN} to make mid.tsv again from it (delete {files['mid']} first if "
        "`snakemake -n` lists no job for it)"
    ]
    assert "CHANGED since recorded" in list(trace(files["final"]))[2]
    files["final"].unlink()
    assert any("final.parquet: described by" in p for p in verify(tmp_path))


def test_trace_counts_a_changed_file_once_however_often_it_is_shown(tmp_path: Path) -> None:
    """A checkpoint in the lineage of every metric of a report is shown once per metric: one
    byte of it changed was counted "14 file(s) ... differ"."""
    files = chain(tmp_path)
    second = tmp_path / "out" / "second.parquet"
    pd.DataFrame({"x": [2.0]}).to_parquet(second)
    write_sidecar(second, [files["mid"]])
    top = tmp_path / "out" / "top.parquet"
    pd.DataFrame({"x": [3.0]}).to_parquet(top)
    write_sidecar(top, [files["final"], second])
    files["mid"].write_text("a\n4\n")
    drift: list[str] = []
    lines = list(trace(top, drift=drift))
    assert sum("mid.tsv [CHANGED since recorded]" in line for line in lines) == 2
    assert drift == [f"{files['mid']} [CHANGED since recorded]"]


def test_verify_lists_temporary_files_a_killed_writer_left(tmp_path: Path) -> None:
    """A writer killed on another host leaves its hidden temporary file for good (the next run
    removes only its own host's): verify skipped hidden files and said nothing."""
    files = chain(tmp_path)
    left = [
        tmp_path / ".x.lcmtmp-otherhost-1-ab",
        tmp_path / ".part-0.parquet.lcmstaged-node-17-4242-deadbeef.parquet",
    ]
    for path in left:
        path.write_bytes(b"half")
    (tmp_path / ".notes.tmp").write_text("mine")  # a user's hidden file: not LCM's
    problems = verify(tmp_path)
    assert [p.split(": ")[0] for p in problems] == [str(p) for p in sorted(left)]
    assert "host otherhost, pid 1" in problems[sorted(left).index(left[0])]
    assert "delete it once no LCM job runs on node-17" in problems[sorted(left).index(left[1])]
    for path in left:
        path.unlink()
    files["raw"].write_text("a\tb\n1\t999\n")
    assert len(verify(tmp_path)) == 1


def test_verify_follows_linked_folders_once(tmp_path: Path) -> None:
    """results/report moved to a scratch disk and linked back was skipped: an edit there passed
    verify as "0 problem(s)" while trace said CHANGED."""
    run = tmp_path / "run"
    run.mkdir()
    files = chain(run)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (run / "out").rename(scratch / "out")
    (run / "out").symlink_to(scratch / "out", target_is_directory=True)
    (scratch / "out" / "up").symlink_to(run, target_is_directory=True)  # loops back above
    (run / "aaa").symlink_to(run, target_is_directory=True)  # sorted first: run's own path wins
    assert verify(run) == []
    with files["final"].open("ab") as fh:
        fh.write(b"edited")
    problems = verify(run)
    assert [p.split(": ")[0] for p in problems] == [str(files["final"])]
    assert "sha256 differs" in problems[0]


def test_cli_verify_and_trace_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify and trace exit 0 on a lineage as recorded, 1 once a file in it changed: trace
    of one artifact is a check a script can rely on, not only a listing."""
    monkeypatch.chdir(tmp_path)
    files = chain(tmp_path)
    ok = lcm_cli("provenance", "verify", str(tmp_path), capsys=capsys)
    assert ok.returncode == 0, ok.stderr
    assert "0 problem(s)" in ok.stdout
    traced = lcm_cli("provenance", "trace", str(files["final"]), capsys=capsys)
    assert traced.returncode == 0 and "raw.tsv [raw]" in traced.stdout
    assert "differ from their records" not in traced.stdout
    files["mid"].write_text("a\n4\n")  # tampered intermediate: its own hash and b's input
    bad = lcm_process("provenance", "verify", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 1
    assert "mid.tsv: sha256 differs" in bad.stdout and "2 problem(s)" in bad.stdout
    traced = lcm_cli("provenance", "trace", str(files["final"]), capsys=capsys)
    assert traced.returncode == 1 and "raw.tsv [raw]" in traced.stdout
    last = traced.stdout.splitlines()[-1]
    assert last.startswith(f"1 file(s) of the lineage of {files['final']} differ from their")
    assert f"the first {files['mid']} [CHANGED since recorded]: restore them" in last
    assert "--base" not in last  # nothing missing: the --base clause is not said
    files["mid"].unlink()
    traced = lcm_cli("provenance", "trace", str(files["final"]), capsys=capsys)
    assert traced.returncode == 1 and f"{files['mid']} [missing]" in traced.stdout
    assert "pass --base: the folder the workflow ran in" in traced.stdout.splitlines()[-1]
    missing = lcm_cli("provenance", "trace", str(tmp_path / "nope.tsv"), capsys=capsys)
    assert missing.returncode == 3 and "does not exist" in missing.stderr


def test_trace_of_a_sidecar_traces_the_output_it_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trace of a sidecar (summary.json, model.safetensors.prov.json, _part-0.prov.json) said
    "no provenance record (sidecar missing)" and exit 1 on an untampered tree."""
    files = chain(tmp_path)
    outputs = [
        files["final"],
        tmp_path / "out" / "model.safetensors",
        tmp_path / "out" / "meta.json",
        tmp_path / "store" / "dataset=ds" / "part-0.parquet",
    ]
    for out in outputs[1:]:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        write_sidecar(out, [files["raw"]])
    for out in outputs:
        side = provenance_path(out)
        assert lcm_main(["provenance", "trace", str(side)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"{side} is the provenance record of {out}: tracing {out}"
        assert lines[1].startswith(f"{out} [ok]")
    # A JSON output is traced as itself, not taken for the record it might look like.
    assert next(trace(outputs[2])).startswith(f"{outputs[2]} [ok]")
    side = provenance_path(files["final"])
    copy = tmp_path / "out" / "copy.json"  # a record away from the name LCM reads it by
    shutil.copy(side, copy)
    assert next(trace(copy)).endswith(f"from {side}: tracing {files['final']} by that one")
    with files["final"].open("ab") as fh:
        fh.write(b"edited")
    assert lcm_main(["provenance", "trace", str(side)]) == 1
    assert f"{files['final']} [CHANGED since recorded]" in capsys.readouterr().out


def test_cli_refuses_a_file_to_verify_and_a_folder_to_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify of a file found no record under it and said "0 problem(s)" with exit 0, an
    audit of nothing read as a pass: a file to verify, or a folder to trace, is refused,
    naming the command that does what was meant (quoted, to paste as it is)."""
    monkeypatch.chdir(tmp_path)
    files = chain(tmp_path)
    odd = tmp_path / "a b;c"
    odd.mkdir()
    shown = odd / "final copy.tsv"
    shown.write_bytes(files["final"].read_bytes())
    verified = lcm_cli("provenance", "verify", str(shown), capsys=capsys)
    assert verified.returncode == 3 and "0 problem(s)" not in verified.stdout
    assert f"{shown} is a file: verify audits every record under a folder" in verified.stderr
    assert f"lcm provenance trace '{shown}'" in verified.stderr
    traced = lcm_cli("provenance", "trace", str(odd), capsys=capsys)
    assert traced.returncode == 3 and "[dir]" not in traced.stdout
    assert f"{odd} is a folder: trace follows one file's lineage" in traced.stderr
    assert f"lcm provenance verify '{odd}'" in traced.stderr


def test_cli_refuses_to_verify_a_folder_holding_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify of config/, an empty folder or a train_state said "0 problem(s)", exit 0: an
    audit that audited nothing, read as a pass. The hint never sends users to a train_state."""
    from lcm.train.outputs import STATE_DIR

    results = workflow_results(tmp_path, monkeypatch)
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.yaml").write_text("results_dir: results\n")
    state = Path(paths.model_file(str(results), "pretrain", STATE_DIR))
    empty = tmp_path / "empty"
    empty.mkdir()
    errors = {}
    for folder in (config, empty, state, results / "store"):
        assert lcm_main(["provenance", "verify", str(folder)]) == 3
        out, errors[folder] = capsys.readouterr()
        assert "0 problem(s)" not in out
        assert f"no provenance records under {folder}: nothing was verified" in errors[folder]
    assert "e.g. `lcm provenance verify results`" in errors[config]
    assert "a training state" in errors[state] and f"verify {state}" not in errors[state]
    for folder in (state, results / "store"):
        assert f"Audit its results folder: `lcm provenance verify {results}`" in errors[folder]
    # A folder whose outputs all lost their records is audited, not refused.
    for name in ("task-a_metrics.parquet", "headline.tsv"):
        provenance_path(results / "metrics" / name).unlink()
    assert lcm_main(["provenance", "verify", str(results / "metrics")]) == 1
    assert "2 problem(s)" in capsys.readouterr().out


def test_cli_hands_provenance_its_verbs_code_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lcm.cli

    seen: dict[str, object] = {}
    chain(tmp_path)  # records to verify: a folder without any is refused

    def capture(argv: list[str], args: argparse.Namespace, code_hash: Callable) -> None:
        seen.update(argv=argv, code_hash=code_hash)
        set_invocation(argv, args, code_hash)

    monkeypatch.setattr(lcm.cli, "set_invocation", capture)
    assert lcm.cli.main(["provenance", "verify", str(tmp_path)]) == 0
    assert seen["argv"] == ["provenance", "verify", str(tmp_path)]
    assert callable(seen["code_hash"]) and seen["code_hash"]() == code_hash("provenance")
    assert verb_code_hash("no_such_verb") is None


def test_sidecar_without_a_code_hash_records_none(tmp_path: Path) -> None:
    out = tmp_path / "out.tsv"
    out.write_text("y\n2\n")
    set_invocation(["--rule", "a"], argparse.Namespace(rule="a", verb="store"))
    prov = json.loads(write_sidecar(out, []).read_text())["Provenance"]
    assert prov["rule"] == "a" and prov["code_sha256"] is None


def test_sidecar_names_replace_only_the_extension() -> None:
    # Names LCM writes today keep their sidecar (compound extensions replaced whole) ...
    loc = paths.run_location({"sub": "01", "task": "rest"})
    written = {
        paths.ingest_manifest("r", "ds"): "r/ingest/ds/manifest.json",
        paths.fmriprep_record("r", "ds", "01"): "r/fmriprep/ds/sub-01_fmriprep.prov.json",
        paths.qc_table("r", "ds", "aal"): "r/connectome/ds/seg-aal_qc.json",
        paths.run_qc_json("r", "ds", loc, "MNI", "aal"): "r/connectome/ds/sub-01/func/"
        "sub-01_task-rest_space-MNI_seg-aal_qc.prov.json",
        str(paths.run_relmat("c", loc, "MNI", "aal")): "c/sub-01/func/"
        "sub-01_task-rest_space-MNI_seg-aal_stat-pearsoncorrelation_relmat.json",
        str(paths.connectome_path("s", "aal", "ds")): "s/connectomes/atlas=aal/dataset=ds/"
        "_part-0.prov.json",
        str(paths.missingness_path("s", "ds")): "s/reports/missingness_dataset-ds.json",
        paths.model_file("r", "pretrain", "model.safetensors"): "r/models/pretrain/"
        "model.safetensors.prov.json",
        paths.model_file("r", "pretrain", "model.json"): "r/models/pretrain/model.prov.json",
        paths.model_file("r", "pretrain", "bei_linear.npz"): "r/models/pretrain/bei_linear.json",
        paths.task_embeddings("r", "a", "attention"): "r/embeddings/task-a_attention.json",
        paths.report_html("r"): "r/report/index.json",
        "f/sub-01_task-rest_desc-preproc_bold.nii.gz": "f/sub-01_task-rest_desc-preproc_bold.json",
        "f/sub-01_desc-confounds_timeseries.tsv.gz": "f/sub-01_desc-confounds_timeseries.json",
    }
    # ... and a name with dots of its own keeps them (it shared emb.json with emb.parquet).
    dotted = {
        "e/emb.attn.parquet": "e/emb.attn.json",
        "e/emb.v2.nii.gz": "e/emb.v2.json",
        "e/qc.run1.json": "e/qc.run1.prov.json",
        "s/dataset=ds/part-0.v2.parquet": "s/dataset=ds/_part-0.v2.prov.json",
    }
    expected = {name: Path(side) for name, side in {**written, **dotted}.items()}
    assert {name: provenance_path(name) for name in expected} == expected


def test_dotted_output_names_keep_separate_records(tmp_path: Path) -> None:
    src, emb, attn = tmp_path / "in.tsv", tmp_path / "emb.parquet", tmp_path / "emb.attn.parquet"
    for path, text in ((src, "x\n1\n"), (emb, "E"), (attn, "A")):
        path.write_text(text)
    sides = record_outputs([emb, attn], [src])
    assert sides == [tmp_path / "emb.json", tmp_path / "emb.attn.json"]
    assert next(trace(emb)).startswith(f"{emb} [ok]")  # was [raw]: its record overwritten
    emb.write_text("edited")
    assert verify(tmp_path) == [
        f"{emb}: sha256 differs from {tmp_path / 'emb.json'}: it was changed after LCM wrote "
        f"it; restore it, or delete it and {RERUN}, which makes it again"
    ]


def test_outputs_sharing_a_sidecar_are_refused(tmp_path: Path) -> None:
    table, text = tmp_path / "x.parquet", tmp_path / "x.tsv"
    table.write_text("P")
    text.write_text("T")
    with pytest.raises(ConfigError, match=r"x\.parquet and .*x\.tsv would share .*x\.json"):
        record_outputs([table, text], [])
    assert not (tmp_path / "x.json").exists()  # refused before any sidecar was written
    write_sidecar(table, [])
    with pytest.raises(ConfigError, match="would share the provenance sidecar"):
        write_sidecar(text, [])  # a later call of the same verb, or another verb
    assert json.loads((tmp_path / "x.json").read_text())["Output"] == "x.parquet"
    table.unlink()  # a record of a file that is gone is replaced
    assert json.loads(write_sidecar(text, []).read_text())["Output"] == "x.tsv"
    # emb.json written by LCM cutting names at the first dot, for emb.attn.parquet: replaced,
    # since emb.attn.parquet's sidecar is now emb.attn.json.
    (tmp_path / "emb.attn.parquet").write_text("A")
    (tmp_path / "emb.parquet").write_text("E")
    (tmp_path / "emb.json").write_text(json.dumps({"Output": "emb.attn.parquet", "Sha256": "0"}))
    assert json.loads(write_sidecar(tmp_path / "emb.parquet", []).read_text())["Output"] == (
        "emb.parquet"
    )
    with pytest.raises(ConfigError, match="given for two outputs"):  # one file, two outputs
        record_outputs([tmp_path / "emb.parquet", tmp_path / "sub" / ".." / "emb.parquet"], [])


def test_a_sidecar_that_is_another_output_or_not_lcms_is_never_overwritten(
    tmp_path: Path,
) -> None:
    # a.tsv's record would be a.json, itself an output of the same command.
    table, qc = tmp_path / "a.tsv", tmp_path / "a.json"
    table.write_text("x\n1\n")
    qc.write_text('{"n_runs": 3}')
    with pytest.raises(ConfigError, match=r"sidecar of .*a\.tsv would be .*a\.json"):
        record_outputs([table, qc], [])
    assert json.loads(qc.read_text()) == {"n_runs": 3}
    # A JSON LCM did not write (no record: a user's notes, a tool's sidecar) where the record
    # of an output would go: refused, the file kept as it was.
    for text in ('{"RepetitionTime": 2.0}', "not json", "[1, 2]"):
        qc.write_text(text)
        with pytest.raises(ConfigError, match=r"a\.json exists and is not an LCM provenance"):
            write_sidecar(table, [])
        assert qc.read_text() == text
    qc.unlink()
    assert json.loads(write_sidecar(table, []).read_text())["Output"] == "a.tsv"
    assert json.loads(write_sidecar(table, []).read_text())["Output"] == "a.tsv"  # its own: kept


def test_embed_refuses_outputs_sharing_a_sidecar_before_running(tmp_path: Path, capfd) -> None:
    from lcm.cli import main

    argv = [
        *("embed", "--checkpoint", str(tmp_path / "ckpt"), "--datasets", "ds"),
        *("--out", str(tmp_path / "emb.parquet"), "--attention-out", str(tmp_path / "emb.tsv")),
        *("--store", str(tmp_path), "--atlas", "aal116"),
        *("--catalogue", str(tmp_path / "variables.yaml")),  # absent: read only after the check
    ]
    assert main(argv) == ConfigError.exit_code
    assert "would share the provenance sidecar" in capfd.readouterr().err


def test_trace_judges_a_source_by_the_hash_its_consumer_recorded(tmp_path: Path) -> None:
    files = chain(tmp_path)
    files["mid"].write_text("a\n5\n")  # mid rebuilt (new sidecar), final not
    write_sidecar(files["mid"], [files["raw"]])
    problems = verify(tmp_path)
    assert [p.split(": restore")[0] for p in problems] == [
        f"{files['mid']}: input of {tmp_path / 'out' / 'final.json'} changed since it was used"
    ]
    lines = list(trace(files["final"]))
    assert lines[1].startswith(f"  {files['mid']} [CHANGED since recorded]")  # was [ok]


def test_trace_resolves_sources_against_base_like_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, elsewhere = tmp_path / "archive", tmp_path / "elsewhere"
    for folder, text in ((run, "orig\n"), (elsewhere, "unrelated\n")):
        (folder / "results").mkdir(parents=True)
        (folder / "results" / "in.tsv").write_text(text)
    out = run / "results" / "out.tsv"
    out.write_text("y\n")
    monkeypatch.chdir(run)
    write_sidecar(out, ["results/in.tsv"])
    monkeypatch.chdir(elsewhere)  # holds a results/in.tsv of its own
    assert verify(run / "results", base=run) == []
    lines = list(trace(out, base=run))
    assert lines[1].startswith("  results/in.tsv [raw]"), lines
    monkeypatch.chdir(tmp_path)  # and a source missing under base is missing, wherever we are
    (run / "results" / "in.tsv").unlink()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "in.tsv").write_text("orig\n")
    assert list(trace(out, base=run))[1].startswith("  results/in.tsv [missing]")


def test_outputs_get_all_their_records_or_none(tmp_path: Path) -> None:
    """A user's JSON where the second record goes: the first output gets no record either."""
    first, second = tmp_path / "emb.parquet", tmp_path / "att.parquet"
    for path in (first, second):
        path.write_bytes(b"x")
    (tmp_path / "att.json").write_text('{"note": "mine"}')
    with pytest.raises(ConfigError, match=r"att\.json exists and is not an LCM provenance"):
        record_outputs([first, second], [])
    assert not (tmp_path / "emb.json").exists()
    assert (tmp_path / "att.json").read_text() == '{"note": "mine"}'


CONFIG = {"results_dir": "results", "seed": 1}


def workflow_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results folder as the workflow leaves it: claimed, its config kept, each output with
    its record, and the files it writes without one (logs, summaries, caches, stamps...)."""
    from lcm.bids.index_cache import cache_dir_for
    from lcm.preprocess.completed_run import stamp_path
    from lcm.store.commit import journal_path
    from lcm.train.outputs import STATE_DIR

    results = claim_results(tmp_path / "results", "the LCM workflow", RESULTS_ENTRIES)
    write_config_copy(str(results), CONFIG)
    monkeypatch.setenv(CONFIG_HASH_ENV, config_hash(CONFIG))
    raw = tmp_path / "raw" / "dataset_description.json"
    raw.parent.mkdir()
    raw.write_text("{}")
    manifest = Path(paths.ingest_manifest(str(results), "ds"))
    metrics = Path(paths.task_metrics(str(results), "a"))
    headline = Path(paths.metrics_file(str(results), "headline.tsv"))
    model = Path(paths.model_file(str(results), "pretrain", "model.json"))
    record = Path(paths.fmriprep_record(str(results), "ds", "01"))
    for out, text in (
        (manifest, "M"),
        (metrics, "A"),
        (headline, "H"),
        (model, "{}"),
        (record, "{}"),
    ):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    write_sidecar(manifest, [raw])
    write_sidecar(metrics, [manifest])
    write_sidecar(headline, [metrics])
    write_sidecar(model, [manifest])
    write_sidecar(record, [raw])
    state = model.parent / STATE_DIR / "train_state.json"
    unrecorded = [
        Path(paths.ingest_summary(manifest, ".json")),
        Path(paths.ingest_summary(manifest, ".tsv")),
        cache_dir_for(manifest) / "rows.parquet",
        Path(paths.log_file(str(results), "ingest/ds.log")),
        Path(paths.connectome_dir(str(results), "ds")) / "dataset_description.json",
        Path(paths.fmriprep_derivatives(str(results), "ds")) / "sub-01" / "x_bold.nii.gz",
        stamp_path(record),
        Path(paths.fmriprep_work_dir(str(results))) / "sub-01" / "crash.txt",
        journal_path(paths.store_dir(str(results)), "ds"),
        state,
        model.parent / ".lcm.lock",
        results / "synth" / "ds" / "phenotype.tsv",  # not a folder the workflow writes
    ]
    for path in unrecorded:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return results


def test_verify_reports_an_output_whose_record_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output of the workflow with no sidecar naming it was 0 problems and traced as [raw]."""
    results = workflow_results(tmp_path, monkeypatch)
    assert verify(results) == []
    metrics = Path(paths.task_metrics(str(results), "a"))
    provenance_path(metrics).unlink()
    headline = Path(paths.metrics_file(str(results), "headline.tsv"))
    headline.write_text("edited")  # edited, and its record deleted: nothing consumes it
    provenance_path(headline).unlink()
    model = Path(paths.model_file(str(results), "pretrain", "model.json"))
    provenance_path(model).write_text("not json")  # a JSON output's record, cut short
    problems = verify(results)
    assert [p.split(": ")[0] for p in problems] == [str(headline), str(metrics), str(model)]
    assert "(its sidecar headline.json is missing)" in problems[0]
    assert f"delete it and {RERUN}, which makes it again with its record" in problems[0]
    assert "(its sidecar model.prov.json is not a readable LCM record)" in problems[2]
    # From the folder above, or one below: the claimed results folder is found.
    assert verify(tmp_path) == problems
    below = verify(results / "metrics")
    assert [p.split(": ")[0] for p in below] == [str(headline), str(metrics)]
    lines = list(trace(metrics))
    sha = sha256_file(metrics)[:12]
    assert lines[0] == f"{metrics} [no provenance record (sidecar missing)] sha256={sha}"
    model_sha = sha256_file(model)[:12]
    assert next(trace(model)) == (
        f"{model} [no provenance record (sidecar not a readable LCM record)] sha256={model_sha}"
    )
    summary = paths.ingest_summary(paths.ingest_manifest(str(results), "ds"), ".tsv")
    assert next(trace(summary)).endswith(
        "(no record of its own: ingest's summary, written with the manifest)"
    )
    raw = tmp_path / "raw" / "dataset_description.json"
    assert next(trace(raw)).startswith(f"{raw} [raw]")


def test_verify_of_results_without_the_marker_checks_the_workflows_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = workflow_results(tmp_path, monkeypatch)
    (results / MARKER_NAME).unlink()  # written by an LCM before markers
    out = Path(paths.task_embeddings(str(results), "a"))
    out.parent.mkdir()
    out.write_text("E")
    assert [p.split(": ")[0] for p in verify(results)] == [str(out)]
    assert verify(tmp_path / "raw") == []  # no folder of the workflow's: sidecars only


def test_config_copies_are_rehashed_and_traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited results/configs/<sha256>.json was 0 problems; trace never named the config."""
    results = workflow_results(tmp_path, monkeypatch)
    sha = config_hash(CONFIG)
    copy = Path(paths.config_copy(str(results), sha))
    metrics = Path(paths.task_metrics(str(results), "a"))
    monkeypatch.chdir(tmp_path)
    lines = list(trace(metrics))
    assert lines[0].endswith(f" config={sha[:12]}")
    # Named once, below the first record made under it, with its copy.
    assert [line.strip() for line in lines if line.strip().startswith("config ")] == [
        f"config results/configs/{sha}.json [ok]"
    ]
    assert lines[1] == f"  config results/configs/{sha}.json [ok]"
    assert verify(results) == []
    drift: list[str] = []
    assert list(trace(metrics, drift=drift)) == lines and drift == []
    copy.write_text(json.dumps({**CONFIG, "seed": 2}))
    edited = config_hash({**CONFIG, "seed": 2})
    changed = (
        f"the copy of config {sha} was changed since it was written (it re-hashes to {edited})"
    )
    assert verify(results) == [
        f"{copy}: {changed}: restore it from a backup, or delete it and "
        "run the workflow again with that config, which writes the copy again"
    ]
    assert list(trace(metrics, drift=drift))[1] == (
        f"  config results/configs/{sha}.json [CHANGED since written: it re-hashes to {edited}]"
    )
    # The config copy is what differs: trace's command exits 1 on it.
    assert drift == [
        f"results/configs/{sha}.json [CHANGED since written: it re-hashes to {edited}]"
    ]
    copy.write_text("{cut")
    assert "(it is no longer a readable JSON object)" in verify(results)[0]
    copy.unlink()
    drift.clear()
    assert list(trace(metrics, drift=drift))[1] == f"  config results/configs/{sha}.json [missing]"
    assert drift == [f"results/configs/{sha}.json [missing]"]
    # verify says so too (it said nothing: trace alone named the copy missing).
    (problem,) = audit(results).problems
    assert problem.kind == "config missing" and problem.path == f"results/configs/{sha}.json"
    assert f"(config_sha256 {sha[:12]}...) has no copy" in problem.text


def test_verify_from_another_folder_says_to_pass_base_and_lists_a_few(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Run elsewhere without --base it printed one "missing" line per recorded input
    (thousands) and no hint."""
    run = tmp_path / "run"
    results = run / "results"
    results.mkdir(parents=True)
    monkeypatch.chdir(run)  # the workflow records its inputs relative to where it ran
    for i in range(30):
        (results / f"in{i}.tsv").write_text(f"{i}\n")
        (results / f"out{i}.tsv").write_text(f"{i}\n")
        write_sidecar(results / f"out{i}.tsv", [f"results/in{i}.tsv"])
    monkeypatch.chdir(tmp_path)
    assert lcm_main(["provenance", "verify", str(results)]) == 1
    out = capsys.readouterr().out.splitlines()
    missing = [line for line in out if ": input of " in line and " is missing: " in line]
    assert len(missing) == 20
    assert out[-3:] == [
        "... and 10 more missing files recorded as relative paths",
        f"30 problem(s) under {results}",
        f"30 of 30 files recorded as relative paths are missing under --base . ({tmp_path}): "
        f"they are relative to the folder the workflow ran in; pass --base {run}",
    ]
    assert lcm_main(["provenance", "verify", str(results), "--base", str(run)]) == 0
    assert capsys.readouterr().out == f"0 problem(s) under {results}\n"
    lines = list(trace(results / "out0.tsv"))
    assert lines[1].startswith("  results/in0.tsv [missing]")
    assert lines[-1].startswith("1 of 1 files recorded as relative paths are missing")
    assert lines[-1].endswith(f"pass --base {run}")
    # A few inputs missing under the right base: listed, with no hint.
    for i in range(3):
        (results / f"in{i}.tsv").unlink()
    assert lcm_main(["provenance", "verify", str(results), "--base", str(run)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[-1] == f"3 problem(s) under {results}"
    assert out[0] == (
        f"results/in0.tsv: input of {results / 'out0.json'} is missing: restore it, or "
        f"{RERUN}, which makes it again if the workflow made it, and out0.tsv from it"
    )


def test_verify_from_another_folder_says_to_pass_base_for_products_recorded_as_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A job's outputs name each other as products, relative to where the workflow ran: from
    another folder every one read missing and, not counted as relative, with no --base hint."""
    run = tmp_path / "run"
    results = run / "results"
    results.mkdir(parents=True)
    monkeypatch.chdir(run)
    set_invocation(["pretrain"], argparse.Namespace(verb="pretrain"))
    for i in range(3):
        pair = [f"results/model{i}.tsv", f"results/history{i}.tsv"]
        for name in pair:
            (run / name).write_text(f"{name}\n")
        for name in pair:
            write_sidecar(name, [], products=[p for p in pair if p != name])
    monkeypatch.chdir(tmp_path)
    assert lcm_main(["provenance", "verify", str(results)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        f"6 of 6 files recorded as relative paths are missing under --base . ({tmp_path}): "
        f"they are relative to the folder the workflow ran in; pass --base {run}"
    )
    assert lcm_main(["provenance", "verify", str(results), "--base", str(run)]) == 0


@pytest.mark.parametrize(
    ("verb", "said", "not_said"),
    [
        ("fmriprep", ".completed.json stamp", "which makes it again"),
        ("pretrain", "which makes it again with model.tsv", ".completed.json"),
    ],
)
def test_a_missing_products_fix_fits_the_job_that_made_it(
    tmp_path: Path, verb: str, said: str, not_said: str
) -> None:
    """Every missing product was told of fMRIPrep's .completed.json stamp, a checkpoint's
    history too: its fix now names the stamp for fMRIPrep's record, the job's rerun otherwise."""
    set_invocation([verb], argparse.Namespace(verb=verb))
    model, history = tmp_path / "model.tsv", tmp_path / "history.tsv"
    model.write_text("m\n")
    history.write_text("h\n")
    write_sidecar(model, [], products=[history])
    history.unlink()
    (problem,) = audit(tmp_path).problems
    assert problem.kind == "product missing" and problem.path == str(history)
    assert said in problem.text and not_said not in problem.text


@pytest.mark.parametrize(
    ("record", "lcms"),
    [
        ({"Output": "x.parquet", "Sha256": "0" * 64}, True),  # no Provenance: still LCM's
        ({"Output": "x.parquet", "Sha256": "0" * 64, "Provenance": {}}, True),
        ({"Output": "x.parquet", "Provenance": {}}, False),  # no digest: verify has nothing
        ({"Sha256": "0" * 64, "Provenance": {}}, False),  # names no file
        ({"Output": 3, "Sha256": "0" * 64}, False),
        (["Output", "Sha256"], False),
    ],
)
def test_ownership_trace_and_sidecar_checks_agree_on_what_an_lcm_record_is(
    tmp_path: Path, record: object, lcms: bool
) -> None:
    """One test (lcm.io.provenance.is_record) decides: ownership asked for Provenance and
    Output, trace for Sha256 alone, the sidecar check for Output and Sha256, so one file was
    LCM's to one and foreign to another."""
    from lcm.io import lineage, ownership
    from lcm.io.provenance import read_record, write_sidecar

    out = tmp_path / "x.parquet"
    out.write_text("x")
    side = tmp_path / "x.json"
    side.write_text(json.dumps(record))
    verdicts = {
        "provenance": read_record(side) is not None,
        "ownership": ownership._written_by_lcm(out),
        "ownership of the sidecar": ownership._written_by_lcm(side),
        "trace": lineage.read_record(out) is not None,
        "verify": lineage._record_file(side) is not None,
    }
    assert verdicts == dict.fromkeys(verdicts, lcms)
    if lcms:  # a record of this output is replaced by the next one
        write_sidecar(out, [])
    else:  # a file LCM did not write is never overwritten
        with pytest.raises(ConfigError, match="is not an LCM provenance record"):
            write_sidecar(out, [])


def test_verify_reports_an_index_cache_a_killed_ingest_left_as_a_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index cache was staged in <manifest>.cache.tmp<pid>, which verify reported as an
    output with no provenance record; its staging folder is now a temporary of lcm.io.atomic."""
    from lcm.bids.index_cache import cache_dir_for

    results = workflow_results(tmp_path, monkeypatch)
    cache = cache_dir_for(paths.ingest_manifest(str(results), "ds"))
    staged = cache.with_name(f".{cache.name}.lcmtmp-otherhost-4242-0a1b2c3d")
    legacy = cache.with_name(f"{cache.name}.tmp4242")  # named so by LCM before
    for folder in (staged, legacy):
        folder.mkdir()
        (folder / "rows.parquet").write_bytes(b"half")
    problems = audit(results).problems
    assert [(p.path, p.kind) for p in problems] == [(str(staged), "temporary left")]
    assert "host otherhost, pid 4242" in str(problems[0])


def test_dataset_descriptions_name_one_bids_version(tmp_path: Path) -> None:
    # "1.10.0" was spelled by write_dataset_description and twice by the synthetic BIDS tree.
    from lcm.io import provenance
    from lcm.synth import write

    path = provenance.write_dataset_description(tmp_path, "x")
    assert json.loads(path.read_text())["BIDSVersion"] == provenance.BIDS_VERSION
    source = Path(write.__file__).read_text()
    assert '"BIDSVersion": BIDS_VERSION' in source and "1.10.0" not in source
