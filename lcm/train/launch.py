"""How a workflow rule starts a training verb: one process, torchrun, or srun + torchrun.

The rule's resources say how many processes train together (data parallel, one per GPU):

- ``procs_per_node`` (default 1): processes on each node, e.g. its GPUs;
- ``tasks`` (default 1): ``torchrun`` agents, one per node, started by ``srun`` inside the
  job's SLURM allocation (set together with ``nodes: N``, ``tasks: N`` and ``mpi: srun`` so
  that the SLURM executor asks ``--nodes=N --ntasks=N`` and runs the command in the job's
  batch shell rather than in a one-task step).

The world size is ``tasks * procs_per_node``. :func:`launcher` turns them into the command
prefix that the rule's ``lcm`` arguments follow; every value it inserts is shell-quoted.

- world 1: ``"$LCM_PYTHON" -m lcm`` (today's command, unchanged);
- one task, K processes: ``"$LCM_PYTHON" -m torch.distributed.run --standalone --nnodes 1
  --nproc-per-node K -m lcm`` (a private rendezvous on a free port of this node);
- T tasks: ``srun --ntasks T ... torchrun --nnodes T --nproc-per-node K --rdzv-backend c10d
  --rdzv-endpoint <batch host>:<port> --rdzv-id lcm-<job id> -m lcm``. The batch shell runs
  on the allocation's first node, so its ``hostname`` is the rendezvous host; the port is
  derived from the job id (two jobs sharing a node do not collide). The c10d rendezvous gives
  every agent its node rank, so no per-task ``SLURM_NODEID`` is needed (the SLURM executor's job
  step drops most ``SLURM_*`` variables; ``SLURM_JOB_ID`` is kept and lets ``srun`` join the
  allocation).

Every process reads the same global batches and takes its ``1 / world`` share of each
(:func:`lcm.train.objective.shard_batch`); only rank 0 writes (:mod:`lcm.train.distributed`).
"""

from __future__ import annotations

import shlex
from typing import Any

from lcm.exceptions import ConfigError

# Rendezvous port of a multi-node job: RDZV_PORT_BASE + job id modulo RDZV_PORT_SPAN.
RDZV_PORT_BASE = 29500
RDZV_PORT_SPAN = 1000
PYTHON = '"$LCM_PYTHON"'


def _count(resources: Any, name: str) -> int:
    """A positive integer resource (default 1), or one clear error line."""
    value = resources.get(name, 1)  # a dict, or Snakemake's Resources (a named list)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"resource '{name}' must be an integer >= 1, got {value!r}.",
            hint="Set it in the profile's set-resources (e.g. pretrain: {procs_per_node: 2}).",
        )
    return value


def world_size(resources: Any) -> int:
    """Processes a rule with these ``resources`` starts: ``tasks * procs_per_node``."""
    return _count(resources, "tasks") * _count(resources, "procs_per_node")


def launcher(resources: Any, threads: int = 1) -> str:
    """Shell prefix that starts ``python -m lcm`` in every process of the job.

    Parameters
    ----------
    resources : mapping or Snakemake Resources
        Read: ``procs_per_node`` and ``tasks`` (both default 1).
    threads : int
        The rule's threads: CPUs per task (``srun --cpus-per-task``) on SLURM.

    Returns
    -------
    str
        Ends with ``-m lcm``: the rule's ``lcm`` arguments follow.
    """
    procs, tasks = _count(resources, "procs_per_node"), _count(resources, "tasks")
    if procs * tasks == 1:
        return f"{PYTHON} -m lcm"
    run = f"{PYTHON} -m torch.distributed.run"
    per_node = f"--nproc-per-node {shlex.quote(str(procs))}"
    if tasks == 1:
        return f"{run} --standalone --nnodes 1 {per_node} -m lcm"
    n = shlex.quote(str(tasks))
    port = f'"$(({RDZV_PORT_BASE} + SLURM_JOB_ID % {RDZV_PORT_SPAN}))"'
    return (
        # Outside a SLURM allocation there is no srun to start the agents: say so, in one line.
        ': "${SLURM_JOB_ID:?tasks > 1 starts one torchrun per node with srun inside a SLURM job;'
        ' set tasks: 1 (procs_per_node for one node) elsewhere}"; '
        f"srun --ntasks {n} --cpus-per-task {shlex.quote(str(max(int(threads), 1)))}"
        f" --kill-on-bad-exit=1 {run} --nnodes {n} {per_node} --rdzv-backend c10d"
        f' --rdzv-endpoint "$(hostname)":{port} --rdzv-id "lcm-$SLURM_JOB_ID" -m lcm'
    )


def threads_per_process(resources: Any, threads: int) -> int:
    """torch/BLAS threads of each process: the task's CPUs shared by its processes."""
    return max(int(threads) // _count(resources, "procs_per_node"), 1)
