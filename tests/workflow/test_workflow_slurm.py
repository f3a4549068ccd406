"""The workflow on a real SLURM cluster, through the same profile users use (profiles/slurm).

Needs a reachable cluster with the executor plugin installed: ``.ci/run`` starts a one-node
cluster (``.ci/slurm_up.sh``) before the suite and stops it after. Only site values are given
here: job status from ``squeue`` (``sacct`` needs slurmdbd) and the cluster's default
partition. No account: the profile's empty ``slurm_account`` submits without ``-A`` on a
cluster without accounting (plugin 2.8.0 ignores ``--slurm-no-account``:
tests/workflow/test_workflow_profile.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers.workflow import (
    StartedSnakemake,
    copy_repo,
    planned_jobs,
    small_config,
    snakemake,
    start_snakemake,
    tiny_pretraining_config,
    write_config,
)

SITE = ["--slurm-status-command", "squeue"]
# A dependent job starts once its input's job is seen finished. The plugin (2.8.0,
# check_active_jobs) waits this many seconds after a check that saw a job finish (or none
# running), and 10 s longer after each check that saw none finish (up to 180 s): a job
# submitted while none runs is seen by 1, 12, 33 or 64 s. The 10 s step is fixed in the
# plugin: Snakemake's --seconds-between-status-checks sets only the wait before the first
# check, and --max-status-checks-per-second throttles the queries within one check. 1 s, the
# least the plugin accepts, suits jobs of 15 to 60 s as here (at 10 s: by 10, 30, 60 s).
SITE += ["--slurm-init-seconds-before-status-checks", "1"]


def slurm_unavailable() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "no SLURM client (sbatch/squeue) on PATH; .ci/slurm_up.sh starts a test cluster"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%a %T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo failed: {exc}"
    if proc.returncode != 0 or not any(
        line.startswith("up") and line.split()[1].startswith(("idle", "mix", "alloc"))
        for line in proc.stdout.splitlines()
    ):
        return f"no SLURM partition up with a usable node: {proc.stdout.strip() or proc.stderr}"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_unavailable() is not None, reason=str(slurm_unavailable())),
]


DDP_TARGET = "results/models/pretrain/model.safetensors"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StartedSnakemake, Path]]:
    """The run of test_pretrain_runs_as_two_slurm_tasks, started and left running (with its
    work dir): slurm_run starts it first, so that both runs share the cluster and one's jobs
    run while the other waits for its next status check (the test cluster's 64 CPUs hold this
    run's 16 beside the other's; with 16 the other's jobs waited for it)."""
    # Issue 17: the pretrain rule given two tasks (one torchrun each, started by srun inside the
    # job, c10d rendezvous) on the one-node test cluster; on a real cluster tasks are nodes.
    # The profile copied with the repository gets the resources a user would add to it.
    base = tmp_path_factory.mktemp("slurm-ddp")
    repo = copy_repo(base / "repo")
    profile = repo / "profiles" / "slurm" / "config.yaml"
    settings = yaml.safe_load(profile.read_text())
    # CPU processes here (gloo): no GPU; 2 tasks of the rule's 8 threads each.
    settings["set-resources"]["pretrain"] = {"tasks": 2, "mpi": "srun", "mem_mb": 4000}
    profile.write_text(yaml.safe_dump(settings))
    workdir = base / "work"
    workdir.mkdir()
    config = tiny_pretraining_config(workdir)
    run = start_snakemake(
        repo,
        workdir,
        "--profile",
        str(profile.parent),
        "--configfile",
        str(config),
        *SITE,
        "--jobs",
        "4",
        DDP_TARGET,
    )
    yield run, workdir
    run.stop()  # a failed or deselected test leaves no run submitting jobs


@pytest.fixture(scope="module")
def slurm_run(
    tmp_path_factory: pytest.TempPathFactory, ddp_run: tuple[StartedSnakemake, Path]
) -> Path:
    """Work dir of a finished SLURM run; the workflow is a copy of the repo at its start."""
    base = tmp_path_factory.mktemp("slurm")
    repo = copy_repo(base / "repo")
    workdir = base / "work"
    workdir.mkdir()
    cfg = small_config(workdir)
    cfg["variables"] = str(repo / "config" / "variables.yaml")
    cfg["pretrain"]["epochs"] = 2
    cfg["evaluate"]["label_fractions"] = [1.0]
    # One model per kind of job the task brings: lcm (pretrain, the GPU evaluation, finetune,
    # embed), bei-linear (bei_maps) and a baseline. The task's other models only add fits inside
    # the same evaluate job (the shuffled-label control alone ~60 s of it on 2 cores), which the
    # local end-to-end run (tests/e2e/test_e2e_workflow.py) runs in full.
    cfg["tasks"]["autism"]["models"] = ["lcm", "logreg", "bei-linear"]
    config = write_config(workdir, cfg)
    proc = snakemake(
        repo,
        workdir,
        "--profile",
        str(repo / "profiles" / "slurm"),
        "--configfile",
        str(config),
        *SITE,
        "--jobs",
        "8",
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return workdir


def test_workflow_runs_on_slurm(slurm_run: Path) -> None:
    results = slurm_run / "results"
    assert (results / "report" / "index.html").is_file()
    # Each job ran inside a SLURM allocation (the GPU rules too, on the fake GPU) and says so,
    # with what SLURM granted: the profile's CPUs per GPU for GPU rules (a default
    # cpus_per_task would silently replace them), one CPU elsewhere. The memory and CPUs per
    # GPU granted (the profile's mem_mb and cpus_per_gpu; their SLURM_* variables do not reach
    # the job step) are read from scontrol.
    granted = {
        "models/pretrain/model.safetensors.prov.json": {
            "cpus_on_node": "8",
            "gpus": "1",
            "cpus_per_gpu": "8",
            "mem_per_node_mb": "64000",
        },
        "metrics/task-autism_metrics.json": {
            "cpus_on_node": "4",
            "gpus": "1",
            "mem_per_node_mb": "16000",
        },
        "store/connectomes/atlas=aal116/dataset=bidsdemo/_part-0.prov.json": {"cpus_on_node": "1"},
    }
    for artifact, expected in granted.items():
        prov = json.loads((results / artifact).read_text())["Provenance"]
        assert prov["slurm_job_id"], f"{artifact} was not made inside a SLURM job"
        assert prov["rule"] and prov["config_sha256"] and prov["code_sha256"]
        allocation = prov["slurm_allocation"]
        assert {k: allocation.get(k) for k in expected} == expected, allocation


def test_per_run_connectome_jobs_share_one_submission(slurm_run: Path) -> None:
    # group-components batches up to 50 runs into one SLURM job, which runs them side by side
    # up to the profile's `cores` (16): one job id; the job holds one CPU per run here (2 runs),
    # each run's job step one of them.
    sidecars = sorted((slurm_run / "results" / "connectome" / "bidsdemo").rglob("*_qc.prov.json"))
    assert len(sidecars) == 2, sidecars
    provs = [json.loads(p.read_text())["Provenance"] for p in sidecars]
    assert {p["rule"] for p in provs} == {"connectome_run"}
    assert len({p["slurm_job_id"] for p in provs}) == 1, [p["slurm_job_id"] for p in provs]
    assert {p["slurm_allocation"]["cpus_on_node"] for p in provs} == {"1"}  # each run's step
    # What the job asked, from the controller (finished jobs stay listed for MinJobAge, 3600 s).
    job = subprocess.run(
        ["scontrol", "show", "job", provs[0]["slurm_job_id"]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert re.search(r"\bNumCPUs=2\b", job.stdout), job.stdout + job.stderr


def test_provenance_verifies_and_traces_after_slurm(slurm_run: Path) -> None:
    lcm = [sys.executable, "-m", "lcm", "provenance"]
    verify = subprocess.run(
        [*lcm, "verify", "results"], cwd=slurm_run, capture_output=True, text=True, timeout=300
    )
    assert verify.returncode == 0, verify.stdout[-3000:]
    trace = subprocess.run(
        [*lcm, "trace", "results/metrics/task-autism_metrics.parquet"],
        cwd=slurm_run,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert trace.returncode == 0
    assert "rule=evaluate" in trace.stdout and "rule=pretrain" in trace.stdout
    assert "[raw]" in trace.stdout and "CHANGED" not in trace.stdout


def test_nothing_reruns_on_slurm(slurm_run: Path) -> None:
    repo = slurm_run.parent / "repo"
    proc = snakemake(
        repo,
        slurm_run,
        "--profile",
        str(repo / "profiles" / "slurm"),
        "--configfile",
        str(slurm_run / "config.yaml"),
        *SITE,
        "-n",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_jobs(proc) == {}


def test_pretrain_runs_as_two_slurm_tasks(ddp_run: tuple[StartedSnakemake, Path]) -> None:
    run, workdir = ddp_run
    proc = run.join(timeout=1200)
    assert proc.returncode == 0, proc.stderr[-10000:]
    sidecar = json.loads((workdir / f"{DDP_TARGET}.prov.json").read_text())
    parallel = sidecar["DataParallel"]
    assert parallel["world_size"] == 2
    # Both ranks ran, each in its own srun task of the same job.
    assert [r["rank"] for r in parallel["ranks"]] == [0, 1]
    assert sorted(r["slurm_task"] for r in parallel["ranks"]) == ["0", "1"], parallel
    assert sidecar["Provenance"]["slurm_job_id"]
    log = (workdir / "results/logs/pretrain/pretrain.log").read_text()
    assert "rank 0 of 2" in log and "rank 1 of 2" in log, log[-3000:]
