"""How much memory this process may still use (the node's, or the job's cgroup where smaller)."""

from __future__ import annotations

import os
from pathlib import Path

# cgroup v2, then v1: SLURM and containers confine a job to less than the node.
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def available_memory() -> int:
    """Bytes of memory this process can still use: ``MemAvailable``, capped by a cgroup limit.

    Falls back to the physical memory when ``/proc`` is not there (not Linux).
    """
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        free = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in _CGROUP_LIMITS:
        try:
            limit = int(Path(limit_file).read_text().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        free = min(free, limit)
    return free
