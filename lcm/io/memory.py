"""How much memory this process may still use (the node's, or its cgroup's where smaller)."""

from __future__ import annotations

import os
from pathlib import Path


def available_memory(root: str | Path = "/") -> int:
    """Bytes of memory this process can still use: ``MemAvailable``, capped by cgroup limits.

    SLURM (``ConstrainRAMSpace``) and containers confine a job to a cgroup smaller than the
    node: the limits of this process's own cgroup and of every cgroup above it count, as
    ``/proc/self/cgroup`` names them (v2: ``memory.max``; v1: ``memory.limit_in_bytes``),
    besides those at the root of the hierarchy. Falls back to the physical memory when
    ``/proc`` is not there (not Linux).

    Parameters
    ----------
    root : path-like, default "/"
        Where ``proc`` and ``sys`` are (tests give a folder that mimics them).
    """
    root = Path(root)
    try:
        with open(root / "proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in _limit_files(root):
        try:
            limit = int(limit_file.read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        free = min(free, limit)
    return free


def _limit_files(root: Path) -> list[Path]:
    """The memory limit files of this process's cgroups and their ancestors, v2 and v1."""
    v2, v1 = root / "sys/fs/cgroup", root / "sys/fs/cgroup/memory"
    files = [v2 / "memory.max", v1 / "memory.limit_in_bytes"]
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return files
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        own = Path(path.strip().lstrip("/"))
        chain = [own, *own.parents]  # the cgroup, then each one above it
        if controllers == "":  # cgroup v2: one unified hierarchy
            files += [v2 / c / "memory.max" for c in chain]
        elif "memory" in controllers.split(","):
            files += [v1 / c / "memory.limit_in_bytes" for c in chain]
    return files
