"""One place that decides how many CPU threads a process may use, and makes the libraries obey.

The budget is ``--threads`` when given, else what SLURM granted the job, else the CPUs this
process may run on (its affinity mask); an explicit value is capped by the other two.
:func:`apply_thread_budget` caps every BLAS and OpenMP pool already loaded (threadpoolctl), sets
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` so libraries loaded later and
child processes start within it, and sets torch's intra-op threads.

Why: oversubscribed threads once made evaluation 30x slower. OpenBLAS and OpenMP workers spin
while they wait; with torch's OpenMP pool, two OpenBLAS copies (NumPy's and SciPy's) and
scikit-learn's OpenMP pool each sized to the whole machine, a busy 2-core node spent most of its
time spinning (logistic regression fits took 39-52 s instead of 1-1.6 s).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

# Read by OpenMP runtimes, OpenBLAS, MKL and numexpr when they load (here or in a child).
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
# In order of preference: the first set one inside a job is what SLURM granted one task.
SLURM_CPU_VARIABLES = ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE")

# The limiter of the last apply_thread_budget call, kept alive so its limits stay in force.
_LIMITER: Any = None


def _first_int(text: str | None) -> int | None:
    """The leading positive integer of ``text`` (``"16(x2),8"`` -> 16), or ``None``."""
    match = re.match(r"\s*(\d+)", text or "")
    value = int(match.group(1)) if match else 0
    return value if value >= 1 else None


def slurm_cpus(env: Mapping[str, str] | None = None) -> int | None:
    """CPUs SLURM granted this job's task, or ``None`` outside a job.

    Parameters
    ----------
    env : mapping, optional
        The environment to read (default ``os.environ``).

    Returns
    -------
    int or None
        The first of ``SLURM_CPUS_PER_TASK``, ``SLURM_CPUS_ON_NODE``, ``SLURM_JOB_CPUS_PER_NODE``
        that holds a positive integer, when ``SLURM_JOB_ID`` is set.
    """
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        return None  # variables left over from a login shell do not bind this process
    for name in SLURM_CPU_VARIABLES:
        value = _first_int(env.get(name))
        if value:
            return value
    return None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_thread_budget(
    threads: int | None = None, env: Mapping[str, str] | None = None, cpus: int | None = None
) -> int:
    """The CPU threads a process may use.

    Parameters
    ----------
    threads : int, optional
        ``--threads`` (a rule's ``threads``); capped by the CPUs granted and available.
    env : mapping, optional
        Environment holding the SLURM variables and ``OMP_NUM_THREADS`` (default
        ``os.environ``); without ``threads``, an ``OMP_NUM_THREADS`` set there (Snakemake sets
        it to the rule's threads) is the budget.
    cpus : int, optional
        CPUs in the affinity mask (default :func:`available_cpus`).

    Returns
    -------
    int
        ``min(threads or OMP_NUM_THREADS, SLURM grant, affinity)`` over those that are known,
        at least 1.
    """
    cpus = available_cpus() if cpus is None else max(1, int(cpus))
    granted = slurm_cpus(env)
    limit = min(cpus, granted) if granted else cpus
    if threads is None:
        # Snakemake exports a job's threads as OMP_NUM_THREADS (and the BLAS variables): a verb
        # without --threads keeps to them rather than widening its pools to the whole machine
        # (two BLAS threads made each ROI correlation 30x slower on a busy 2-core machine).
        inherited = _positive_int((os.environ if env is None else env).get("OMP_NUM_THREADS"))
        return min(inherited, limit) if inherited else limit
    if threads > limit:
        log.debug("--threads %d capped to the %d CPUs granted and available", threads, limit)
    return max(1, min(int(threads), limit))


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def apply_thread_budget(threads: int, *, child_env: bool = True) -> int:
    """Cap BLAS, OpenMP and torch threads of this process (and its children) to ``threads``.

    Parameters
    ----------
    threads : int
        The budget (:func:`resolve_thread_budget`).
    child_env : bool, default True
        Also set :data:`THREAD_VARIABLES`, read by libraries loaded later and child processes.

    Returns
    -------
    int
        ``threads``.
    """
    global _LIMITER
    threads = max(1, int(threads))
    if child_env:
        for name in THREAD_VARIABLES:
            os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    # Not a context manager: the limits hold for the rest of the process.
    _LIMITER = threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        # Only where torch is loaded (importing it costs seconds); a later import reads
        # OMP_NUM_THREADS, and the torch verbs call lcm.train.loop.set_threads as well.
        torch.set_num_threads(threads)
    return threads


def cap_threads(threads: int | None = None) -> int:
    """Resolve this process's budget and cap every pool to it: the one call a script makes.

    Benchmarks and scripts outside the CLI call this first, so they run within the job's
    threads as the verbs do (``lcm.cli`` calls it for every verb).

    Parameters
    ----------
    threads : int, optional
        A ``--threads`` option; without it ``OMP_NUM_THREADS``, then SLURM's grant, then the
        affinity mask (:func:`resolve_thread_budget`).

    Returns
    -------
    int
        The budget applied (:func:`apply_thread_budget`).
    """
    return apply_thread_budget(resolve_thread_budget(threads))


def blas_threads() -> dict[str, int]:
    """Threads of every loaded BLAS/OpenMP pool, ``{"<user_api>:<prefix>": n}`` (diagnostics)."""
    from threadpoolctl import threadpool_info

    return {f"{i['user_api']}:{i['prefix']}": int(i["num_threads"]) for i in threadpool_info()}
