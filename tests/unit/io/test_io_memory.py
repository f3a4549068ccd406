"""available_memory: the job's own cgroup limit counts, not only the root's (SLURM jobs)."""

from __future__ import annotations

from pathlib import Path

from lcm.io.memory import available_memory

GB = 2**30


def _machine(tmp: Path, cgroup_line: str, limits: dict[str, str]) -> Path:
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/meminfo").write_text(
        f"MemTotal: {64 * GB // 1024} kB\nMemAvailable: {48 * GB // 1024} kB\n"
    )
    (tmp / "proc/self/cgroup").write_text(cgroup_line)
    for rel, value in limits.items():
        path = tmp / "sys/fs/cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    return tmp


def test_a_slurm_job_cgroup_v2_limit_caps_the_available_memory(tmp_path: Path) -> None:
    job = "system.slice/slurmstepd.scope/job_42"
    root = _machine(
        tmp_path,
        f"0::/{job}/step_0/user/task_0\n",
        {"memory.max": "max", f"{job}/memory.max": str(8 * GB), f"{job}/step_0/memory.max": "max"},
    )
    assert available_memory(root) == 8 * GB


def test_a_cgroup_v1_limit_of_the_memory_controller_counts(tmp_path: Path) -> None:
    root = _machine(
        tmp_path,
        "5:cpuset:/slurm/uid_0/job_7\n4:memory:/slurm/uid_0/job_7/step_batch\n",
        {"memory/slurm/uid_0/job_7/memory.limit_in_bytes": str(4 * GB)},
    )
    assert available_memory(root) == 4 * GB


def test_without_limits_the_node_memory_available_is_returned(tmp_path: Path) -> None:
    root = _machine(tmp_path, "0::/user.slice\n", {"memory.max": "max"})
    assert available_memory(root) == 48 * GB
