"""The launcher fragment of the training rules (lcm.train.launch): one process, torchrun, srun."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from lcm.exceptions import ConfigError
from lcm.train.launch import (
    RDZV_PORT_BASE,
    RDZV_PORT_SPAN,
    launcher,
    threads_per_process,
    world_size,
)


def test_one_process_is_the_plain_command() -> None:
    assert launcher({}) == '"$LCM_PYTHON" -m lcm'
    assert launcher({"procs_per_node": 1, "tasks": 1}, threads=8) == '"$LCM_PYTHON" -m lcm'
    assert world_size({}) == 1 and threads_per_process({}, 8) == 8


def test_processes_of_one_node_start_through_standalone_torchrun() -> None:
    cmd = launcher({"procs_per_node": 4}, threads=8)
    assert cmd == (
        '"$LCM_PYTHON" -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node 4 -m lcm'
    )
    assert world_size({"procs_per_node": 4}) == 4
    assert threads_per_process({"procs_per_node": 4}, 8) == 2
    assert threads_per_process({"procs_per_node": 4}, 2) == 1  # never 0


# What a profile gives pretraining on 2 nodes of 4 GPUs (profiles/slurm/config.yaml).
NODES = {
    "nodes": 2,
    "tasks": 2,
    "mpi": "srun",
    "tasks_per_gpu": 0,
    "gres": "gpu:4",
    "procs_per_node": 4,
}


def _fake_srun(tmp_path: Path) -> dict[str, str]:
    """A PATH whose srun runs its command as tasks 0 and 1, and an LCM_PYTHON that prints."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(
        "#!/bin/sh\n"
        'echo "srun $*" > "$SRUN_ARGS"\n'
        'while [ "${1#--}" != "$1" ]; do shift; done\n'  # its options, all --key=value
        'SLURM_PROCID=0 "$@" && SLURM_PROCID=1 "$@"\n'
    )
    python = bin_dir / "python"
    python.write_text('#!/bin/sh\necho "$SLURM_PROCID: $*"\n')
    for script in (srun, python):
        script.chmod(0o755)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LCM_PYTHON": str(python),
        "SLURM_JOB_ID": "1234567",
        "SRUN_ARGS": str(tmp_path / "srun_args"),
    }


def test_tasks_start_one_torchrun_per_node_through_srun(tmp_path: Path) -> None:
    cmd = launcher(NODES, threads=32)
    assert world_size(NODES) == 8
    # Valid shell; outside a SLURM job it stops before srun, with one line saying why.
    assert subprocess.run(["bash", "-n", "-c", cmd]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "LCM_PYTHON": "false"}
    proc = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "SLURM_JOB_ID" in proc.stderr
    assert "inside a SLURM job" in proc.stderr and proc.stderr.count("\n") == 1

    # In a job: srun is told the placement (the SLURM executor's job step hides the job's
    # SLURM_* variables from it), and each task runs torchrun, task 0 hosting the rendezvous.
    env = _fake_srun(tmp_path)
    proc = subprocess.run(
        ["bash", "-c", f"{cmd} pretrain --seed 1"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    srun = (tmp_path / "srun_args").read_text().split()
    assert srun[:8] == [
        "srun",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--cpus-per-task=32",
        "--mem=0",
        "--kill-on-bad-exit=1",
        # Rank 0 writes after the other nodes' processes have ended: srun must not end it then.
        "--wait=0",
    ]
    host = socket.gethostname()
    port = RDZV_PORT_BASE + 1234567 % RDZV_PORT_SPAN
    assert 1024 < RDZV_PORT_BASE and RDZV_PORT_BASE + RDZV_PORT_SPAN <= 32768  # not ephemeral
    torchrun = (
        "-m torch.distributed.run --rdzv-conf is_host={} --nnodes 2 --nproc-per-node 4"
        f" --rdzv-backend c10d --rdzv-endpoint {host}:{port} --rdzv-id lcm-1234567"
        " -m lcm pretrain --seed 1"
    )
    lines = proc.stdout.splitlines()
    assert lines == [f"0: {torchrun.format(1)}", f"1: {torchrun.format(0)}"], lines


def test_tasks_without_nodes_leave_srun_the_placement(tmp_path: Path) -> None:
    # CPU processes (gloo) need no node per task: the one-node SLURM test runs 2 tasks there.
    resources = {"tasks": 2, "mpi": "srun"}
    cmd = launcher(resources, threads=8)
    proc = subprocess.run(["bash", "-c", cmd], env=_fake_srun(tmp_path), capture_output=True)
    assert proc.returncode == 0, proc.stderr
    srun = (tmp_path / "srun_args").read_text().split()
    assert srun[1:5] == ["--ntasks=2", "--cpus-per-task=8", "--mem=0", "--kill-on-bad-exit=1"]
    placed = launcher({**resources, "nodes": 2}, threads=8)
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=8" in placed


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"mpi": None}, r"tasks: 2 without mpi: .* one-task job step \(srun -n1\)"),
        ({"nodes": 3, "tasks": 4}, r"tasks: 4 and nodes: 3: .* do not divide evenly"),
        ({"gpu": 4}, r"tasks: 2 with gpu: 4: .* --gpus=4, GPUs of the whole job"),
        ({"tasks_per_gpu": None}, r"no tasks_per_gpu: .* --ntasks-per-gpu=2"),
        ({"tasks_per_gpu": 1}, r"tasks_per_gpu: 1: .* --ntasks-per-gpu=1"),
        ({"nodes": None}, r"gres: gpu:4 and no nodes: .* share GPUs"),
        ({"nodes": 1}, r"gres: gpu:4 and nodes: 1: .* share GPUs"),
        ({"nodes": 0}, r"resource 'nodes' must be an integer >= 1"),
    ],
)
def test_resources_the_slurm_executor_would_misplace_are_refused(change, expected) -> None:
    resources = {k: v for k, v in {**NODES, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=expected) as info:
        launcher(resources, threads=32)
    assert "\n" not in info.value.message
    assert info.value.hint  # the keys to set


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2; touch x", True])
def test_a_bad_count_is_refused_in_one_line(bad) -> None:
    with pytest.raises(ConfigError, match=r"resource 'tasks' must be an integer >= 1") as info:
        launcher({"tasks": bad})
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("resources", "gpus"),
    [
        ({"procs_per_node": 4, "gpu": 1}, 1),
        ({"procs_per_node": 2, "gpu": 4}, 4),
        ({**NODES, "procs_per_node": 2}, 4),  # gres: gpu:4 a node
        ({"procs_per_node": 3, "gres": "gpu:a100:2"}, 2),
    ],
)
def test_processes_other_than_the_gpus_of_a_node_are_refused(resources, gpus) -> None:
    """procs_per_node: 4 with gpu: 1 planned fine and failed on the GPU node after the queue
    wait ("local rank 1 but only 1 GPU(s)"), three times with the profile's retries."""
    with pytest.raises(ConfigError, match=rf"with {gpus} GPU\(s\) a node") as info:
        launcher(resources, threads=8)
    assert "\n" not in info.value.message and "procs_per_node" in info.value.hint


def test_cpu_processes_and_one_process_a_gpu_are_accepted() -> None:
    assert "--nproc-per-node 2" in launcher({"procs_per_node": 2})  # gloo on CPUs
    assert "--nproc-per-node 4" in launcher({"procs_per_node": 4, "gpu": 4})
    assert launcher({"gpu": 1}).endswith("-m lcm")
