"""The launcher fragment of the training rules (lcm.train.launch): one process, torchrun, srun."""

from __future__ import annotations

import subprocess

import pytest

from lcm.exceptions import ConfigError
from lcm.train.launch import launcher, threads_per_process, world_size


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


def test_tasks_start_one_torchrun_each_through_srun() -> None:
    cmd = launcher({"procs_per_node": 2, "tasks": 3}, threads=16)
    assert "srun --ntasks 3 --cpus-per-task 16 --kill-on-bad-exit=1" in cmd
    assert "torch.distributed.run --nnodes 3 --nproc-per-node 2 --rdzv-backend c10d" in cmd
    assert '--rdzv-endpoint "$(hostname)":"$((29500 + SLURM_JOB_ID % 1000))"' in cmd
    assert cmd.endswith(' --rdzv-id "lcm-$SLURM_JOB_ID" -m lcm')
    assert world_size({"procs_per_node": 2, "tasks": 3}) == 6
    # Valid shell; outside a SLURM job it stops before srun, with one line saying why.
    assert subprocess.run(["bash", "-n", "-c", cmd]).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "LCM_PYTHON": "false"}
    proc = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "SLURM_JOB_ID" in proc.stderr
    assert "inside a SLURM job" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2; touch x", True])
def test_a_bad_count_is_refused_in_one_line(bad) -> None:
    with pytest.raises(ConfigError, match=r"resource 'tasks' must be an integer >= 1") as info:
        launcher({"tasks": bad})
    assert "\n" not in info.value.message
