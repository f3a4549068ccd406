"""Issue 17, part 2: the workflow's pretrain rule starts two data parallel processes itself.

The rule is given two processes the way a profile gives them (``procs_per_node: 2`` in
set-resources); it runs them through ``torchrun`` (gloo on CPU here), both ranks leave their mark
(a log line each, and rank 0 records every rank's host and pid in the outputs' provenance), and
the result equals the one-process run's: the same global batches, so the same training up to
the order of float summation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.model import assert_same_history, assert_same_training
from helpers.workflow import snakemake, tiny_pretraining_config, user_snakemake
from safetensors.torch import load_file

MODEL = "results/models/pretrain"
D_MODEL = 16


def log_text(proc) -> str:
    return proc.stdout[-4000:] + proc.stderr[-6000:]


@pytest.mark.slow
def test_workflow_rule_runs_two_processes_equal_to_one(tmp_path: Path) -> None:
    config = tiny_pretraining_config(tmp_path, D_MODEL)
    target = f"{MODEL}/model.json"
    two = user_snakemake(
        tmp_path,
        target,
        "--configfile",
        str(config),
        "--set-resources",
        "pretrain:procs_per_node=2",
        "-p",
    )
    assert two.returncode == 0, log_text(two)
    assert "torch.distributed.run --standalone --nnodes 1 --nproc-per-node 2" in two.stderr
    # Both ranks ran: each logged its line, and rank 0 recorded both in the provenance.
    log = (tmp_path / "results/logs/pretrain/pretrain.log").read_text()
    assert "rank 0 of 2" in log and "rank 1 of 2" in log, log[-3000:]
    sidecar = json.loads((tmp_path / f"{MODEL}/model.safetensors.prov.json").read_text())
    parallel = sidecar["DataParallel"]
    assert parallel["world_size"] == 2
    assert [r["rank"] for r in parallel["ranks"]] == [0, 1]
    assert len({r["pid"] for r in parallel["ranks"]}) == 2
    assert json.loads((tmp_path / target).read_text())["world_size"] == 2
    # checkpoint_every reaches the command through the shell prefix, not as a param.
    command = sidecar["Provenance"]["command"]
    assert command[command.index("--checkpoint-every") + 1] == "0"
    shutil.copytree(tmp_path / MODEL, tmp_path / "two")

    # The same rule with the profile's default (one process) on the same store.
    one = user_snakemake(
        tmp_path, target, "--configfile", str(config), "--forcerun", "pretrain", "-p"
    )
    assert one.returncode == 0, log_text(one)
    assert "torch.distributed.run" not in one.stderr
    assert json.loads((tmp_path / target).read_text())["world_size"] == 1
    a, b = (
        load_file(str(tmp_path / MODEL / "model.safetensors")),
        load_file(str(tmp_path / "two/model.safetensors")),
    )
    assert_same_training(a, b, D_MODEL)
    assert_same_history(tmp_path / MODEL, tmp_path / "two")


def _profile_example() -> dict:
    """The multi-node example of profiles/slurm/config.yaml's comments, as a mapping."""
    lines = (ROOT / "profiles/slurm/config.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("#   pretrain: {"))
    end = next(i for i in range(start, len(lines)) if "}" in lines[i])
    return yaml.safe_load("\n".join(line.strip()[1:] for line in lines[start : end + 1]))


def test_profile_example_plans_one_torchrun_per_node_and_a_bad_one_stops(tmp_path: Path) -> None:
    """The profile's 2-node example, planned with the SLURM profile: srun is told the nodes and
    one task per node (the executor's job step hides the job's geometry from it); threads are
    capped by `cores`; a key left out is refused while the jobs are built, before submission."""
    config = tiny_pretraining_config(tmp_path, D_MODEL)
    settings = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    settings["set-resources"].update(_profile_example())
    settings["set-threads"]["pretrain"] = 32

    def plan(cores: int, **changes) -> tuple[int, str]:
        resources = {**settings["set-resources"]["pretrain"], **changes}
        resources = {k: v for k, v in resources.items() if v is not None}  # None: left out
        profile = tmp_path / f"profile-{cores}-{len(changes)}"
        profile.mkdir()
        body = {
            **settings,
            "cores": cores,
            "set-resources": {**settings["set-resources"], "pretrain": resources},
        }
        (profile / "config.yaml").write_text(yaml.safe_dump(body))
        target = f"{MODEL}/model.json"
        args = ("--profile", str(profile), "--configfile", str(config), "-n", "-p", target)
        proc = snakemake(ROOT, tmp_path, *args)
        return proc.returncode, proc.stdout + proc.stderr

    rc, out = plan(32)
    assert rc == 0, out[-4000:]
    srun = "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=32 --mem=0"
    assert srun in out and "--nnodes 2 --nproc-per-node 4 --rdzv-backend c10d" in out, out
    assert "--threads 8 " in out  # 32 CPUs of a node over its 4 processes
    # The profile's cores: 16 caps the rule's threads: srun asks 16 CPUs, 4 per process.
    rc, out = plan(16)
    assert rc == 0 and "--cpus-per-task=16 " in out and "--threads 4 " in out, out[-4000:]
    rc, out = plan(32, tasks_per_gpu=None)
    assert rc != 0 and "no tasks_per_gpu" in out and "Add tasks_per_gpu: 0" in out, out[-4000:]
    assert "Job stats" not in out


@pytest.mark.slow
def test_workflow_rule_streams_the_cohort_in_two_processes(tmp_path: Path) -> None:
    """``pretrain.data_loading: stream`` through the rule: two processes each stream their own
    row groups, the checkpoint records the setting and the data the in-memory run records, a
    dry run afterwards has nothing to do, and switching back to memory reruns pretraining."""
    config = tiny_pretraining_config(tmp_path, D_MODEL)
    cfg = yaml.safe_load(config.read_text())
    cfg["pretrain"]["data_loading"] = "stream"
    config.write_text(yaml.safe_dump(cfg))
    target = f"{MODEL}/model.json"
    args = ("--configfile", str(config), "--set-resources", "pretrain:procs_per_node=2")
    run = user_snakemake(tmp_path, target, *args)
    assert run.returncode == 0, log_text(run)
    log = (tmp_path / "results/logs/pretrain/pretrain.log").read_text()
    assert "rank 0 of 2" in log and "rank 1 of 2" in log, log[-3000:]
    assert "connectomes streamed" in log and "read " in log
    streamed = json.loads((tmp_path / target).read_text())
    assert streamed["training"]["data_loading"] == "stream" and streamed["world_size"] == 2
    dry = user_snakemake(tmp_path, target, *args, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    # memory instead: a param of the rule, so pretraining reruns (and records the same data).
    cfg["pretrain"]["data_loading"] = "memory"
    config.write_text(yaml.safe_dump(cfg))
    again = user_snakemake(tmp_path, target, *args)
    assert again.returncode == 0, log_text(again)
    loaded = json.loads((tmp_path / target).read_text())
    assert loaded["training"]["data_loading"] == "memory"
    assert loaded["data_fingerprint"] == streamed["data_fingerprint"]
    assert loaded["data"]["run_digests"] == streamed["data"]["run_digests"]
