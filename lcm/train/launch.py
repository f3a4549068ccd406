"""How a workflow rule starts a training verb: one process, torchrun, or srun + torchrun.

The rule's resources say how many processes train together (data parallel, one per GPU):

- ``procs_per_node`` (default 1): processes on each node, e.g. its GPUs;
- ``tasks`` (default 1): ``torchrun`` agents, one per node, started by ``srun`` inside the
  job's SLURM allocation. Set together with ``nodes: N``, ``tasks: N`` and ``mpi: srun`` (the
  SLURM executor then asks ``--nodes=N --ntasks=N`` and runs the command in the job's batch
  shell rather than in a one-task step), and on GPUs ``tasks_per_gpu: 0`` and ``gres: "gpu:K"``
  (GPUs per node) instead of ``gpu``: :func:`check_tasks` refuses the other combinations.

The world size is ``tasks * procs_per_node``. :func:`launcher` turns them into the command
prefix that the rule's ``lcm`` arguments follow; every value it inserts is shell-quoted.

- world 1: ``"$LCM_PYTHON" -m lcm`` (today's command, unchanged);
- one task, K processes: ``"$LCM_PYTHON" -m torch.distributed.run --standalone --nnodes 1
  --nproc-per-node K -m lcm`` (a private rendezvous on a free port of this node);
- T tasks on N nodes: ``srun --nodes=N --ntasks=T --ntasks-per-node=T/N --cpus-per-task=C
  --mem=0 --kill-on-bad-exit=1 --wait=0 sh -c '...' ... torchrun --nnodes T --nproc-per-node K
  --rdzv-backend c10d --rdzv-endpoint <batch host>:<port> --rdzv-id lcm-<job id> -m lcm``.
  ``srun`` is told the placement itself: the SLURM executor's job step drops the ``SLURM_*``
  variables but the job id (``SLURM_JOB_ID`` lets ``srun`` join the allocation), so ``srun``
  knows neither the job's nodes nor its memory, and would pack every agent on the first node
  its CPUs allow. The batch shell runs on the allocation's first node, where ``srun`` places
  task 0, so its ``hostname`` is the rendezvous host; the port is derived from the job id (jobs
  sharing a node get different ports unless their ids differ by a multiple of
  :data:`RDZV_PORT_SPAN`), and task 0 alone hosts the rendezvous store (``--rdzv-conf
  is_host=1``, 0 in the others, from the ``SLURM_PROCID`` that ``srun`` gives each task): a port
  another job or program holds then fails the job at once (and a retry, another job id, gets
  another port), where torch's guess would have joined that job's store as a client. The c10d
  rendezvous gives every agent its node rank.
  A failing task ends the others (``--kill-on-bad-exit=1``); one that ends well does not
  (``--wait=0``, whatever the site's WaitTime): the other nodes' processes leave once training
  ends, while rank 0 evaluates and writes (:mod:`lcm.train.distributed`).

Every process reads the same global batches and takes its ``1 / world`` share of each
(:func:`lcm.train.objective.shard_batch`); only rank 0 writes (:mod:`lcm.train.distributed`).
"""

from __future__ import annotations

import shlex
from typing import Any

from lcm.exceptions import ConfigError

# Rendezvous port of a multi-node job: RDZV_PORT_BASE + job id modulo RDZV_PORT_SPAN, ports
# 20000-31999: below Linux's ephemeral range (32768-60999), whose ports the kernel hands out to
# outgoing connections.
RDZV_PORT_BASE = 20000
RDZV_PORT_SPAN = 12000
PYTHON = '"$LCM_PYTHON"'
# What srun runs on each node: torchrun, hosting the rendezvous store in task 0 only.
AGENT = (
    'python=$1; shift; exec "$python" -m torch.distributed.run'
    ' --rdzv-conf "is_host=$((${SLURM_PROCID:?is set by srun} == 0))" "$@"'
)
# Resources the SLURM executor turns into GPUs of a whole job (sbatch --gpus), not of each node.
GPU_KEYS = ("gpu", "gpus", "nvidia_gpu")
SET_RESOURCES = "the profile's set-resources (pretrain: and pretrain_ssl:, profiles/slurm)"


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
    """Processes a rule with these ``resources`` starts: ``tasks * procs_per_node``.

    Parameters
    ----------
    resources : dict or snakemake Resources
        The rule's resources; ``tasks`` and ``procs_per_node`` default to 1.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        A resource that is not an integer >= 1.
    """
    return _count(resources, "tasks") * _count(resources, "procs_per_node")


def check_tasks(resources: Any) -> int | None:
    """Refuse resources with ``tasks > 1`` that the SLURM executor would turn into a bad job.

    Snakemake evaluates the launcher while it builds the jobs, so a refusal comes before any
    job is submitted.

    Parameters
    ----------
    resources : mapping or Snakemake Resources
        Read: ``tasks``, ``nodes``, ``mpi``, ``tasks_per_gpu``, ``gres`` and ``gpu``
        (``gpus``, ``nvidia_gpu``).

    Returns
    -------
    int or None
        ``nodes``, or None where it is not set (CPU processes only).

    Raises
    ------
    ConfigError
        With ``tasks > 1``: ``mpi`` not set (the executor would run the command in a
        one-task step, in which the ``srun`` of the agents waits for CPUs until the time
        limit); ``nodes`` not dividing ``tasks``; and on GPUs (``gres`` or ``gpu``): ``gpu``
        (GPUs of the whole job, not of each node), ``tasks_per_gpu`` other than 0 (the
        executor would ask ``--ntasks-per-gpu``) or ``nodes`` other than ``tasks`` (two
        agents on a node would start their processes on the same GPUs).
    """
    tasks = _count(resources, "tasks")
    nodes = _count(resources, "nodes") if resources.get("nodes") is not None else None
    if tasks == 1:
        return nodes
    keys = f"tasks: {tasks}"
    example = (
        f"e.g. pretrain: {{nodes: {tasks}, tasks: {tasks}, mpi: srun, tasks_per_gpu: 0,"
        ' gres: "gpu:4", procs_per_node: 4}'
    )
    if not resources.get("mpi"):
        raise ConfigError(
            f"resources {keys} without mpi: the SLURM executor would run the rule in a "
            "one-task job step (srun -n1) holding the job's CPUs, where the srun starting the "
            f"{tasks} torchrun agents would wait for CPUs until the time limit.",
            hint=f"Add mpi: srun beside tasks in {SET_RESOURCES}, {example}; on one node, "
            "use procs_per_node instead of tasks.",
        )
    if nodes is not None and tasks % nodes:
        raise ConfigError(
            f"resources {keys} and nodes: {nodes}: srun places the same number of torchrun "
            f"agents on each node, and {tasks} tasks do not divide evenly over {nodes} nodes.",
            hint=f"Set tasks to nodes (one torchrun per node) in {SET_RESOURCES}.",
        )
    gres = str(resources.get("gres") or "")
    whole_job = {k: resources.get(k) for k in GPU_KEYS if resources.get(k)}
    if not whole_job and "gpu" not in gres:
        return nodes
    if whole_job:
        (key, value), *_ = whole_job.items()
        raise ConfigError(
            f"resources {keys} with {key}: {value}: the SLURM executor asks sbatch "
            f"--gpus={value}, GPUs of the whole job, not of each node.",
            hint=f'Ask each node\'s GPUs with gres: "gpu:K" (K = procs_per_node) and remove '
            f"{key} from {SET_RESOURCES}, {example}.",
        )
    per_gpu = resources.get("tasks_per_gpu")
    if per_gpu != 0:
        given = "no tasks_per_gpu" if per_gpu is None else f"tasks_per_gpu: {per_gpu}"
        raise ConfigError(
            f"resources {keys} with gres: {gres} and {given}: the SLURM executor would ask "
            f"sbatch --ntasks-per-gpu={tasks if per_gpu is None else per_gpu}, tasks per GPU, "
            "where tasks counts nodes here (one torchrun each).",
            hint=f"Add tasks_per_gpu: 0 in {SET_RESOURCES}, {example}.",
        )
    if nodes != tasks:
        given = "no nodes" if nodes is None else f"nodes: {nodes}"
        raise ConfigError(
            f"resources {keys} with gres: {gres} and {given}: each torchrun starts its "
            "procs_per_node processes on GPUs 0, 1, ... of its node, so two on one node would "
            "share GPUs.",
            hint=f"Set nodes: {tasks} (one torchrun per node) in {SET_RESOURCES}, {example}.",
        )
    return nodes


def gpus_per_node(resources: Any) -> int | None:
    """GPUs each node of the job gets: ``gres: "gpu[:type]:K"``, else ``gpu`` (a one-node job's
    GPUs); None where the resources ask for none.

    Parameters
    ----------
    resources : mapping or Snakemake Resources
        Read: ``gres`` and :data:`GPU_KEYS`.

    Returns
    -------
    int or None
    """
    gres = str(resources.get("gres") or "")
    if "gpu" in gres:
        last = gres.rsplit(":", 1)[-1]
        return int(last) if last.isdigit() else 1  # "gpu" alone: one
    for key in GPU_KEYS:
        value = resources.get(key)
        if value:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None  # Snakemake's own check names it
    return None


def _check_gpus_per_node(resources: Any, procs: int) -> None:
    """Refuse ``procs_per_node`` other than the node's GPUs: a rank without its own GPU
    failed on the GPU node after the queue wait ("local rank 1 but only 1 GPU(s)"), once per
    retry; a GPU without a rank was paid for and idle."""
    gpus = gpus_per_node(resources)
    if gpus is None or procs == gpus or (procs == 1 and gpus == 1):
        return
    raise ConfigError(
        f"resources procs_per_node: {procs} with {gpus} GPU(s) a node: each process trains on "
        "a GPU of its own, one per GPU.",
        hint=f"Set procs_per_node to the GPUs of a node ({gpus}), or ask that many GPUs "
        f"(gpu: {procs} on one node), in {SET_RESOURCES}.",
    )


def launcher(resources: Any, threads: int = 1) -> str:
    """Shell prefix that starts ``python -m lcm`` in every process of the job.

    Parameters
    ----------
    resources : mapping or Snakemake Resources
        Read: ``procs_per_node`` and ``tasks`` (both default 1); with ``tasks > 1`` also
        ``nodes`` and the keys :func:`check_tasks` checks.
    threads : int
        The rule's threads: CPUs per task (``srun --cpus-per-task``) on SLURM.

    Returns
    -------
    str
        Ends with ``-m lcm``: the rule's ``lcm`` arguments follow.

    Raises
    ------
    ConfigError
        A count that is no integer >= 1, or resources :func:`check_tasks` refuses.
    """
    procs, tasks = _count(resources, "procs_per_node"), _count(resources, "tasks")
    nodes = check_tasks(resources)
    _check_gpus_per_node(resources, procs)
    if procs * tasks == 1:
        return f"{PYTHON} -m lcm"
    per_node = f"--nproc-per-node {shlex.quote(str(procs))}"
    if tasks == 1:
        return f"{PYTHON} -m torch.distributed.run --standalone --nnodes 1 {per_node} -m lcm"
    n = shlex.quote(str(tasks))
    placement = f"--ntasks={n}"
    if nodes is not None:
        placement = (
            f"--nodes={shlex.quote(str(nodes))} {placement}"
            f" --ntasks-per-node={shlex.quote(str(tasks // nodes))}"
        )
    port = f'"$(({RDZV_PORT_BASE} + SLURM_JOB_ID % {RDZV_PORT_SPAN}))"'
    return (
        # Outside a SLURM allocation there is no srun to start the agents: say so, in one line.
        ': "${SLURM_JOB_ID:?tasks > 1 starts one torchrun per node with srun inside a SLURM job;'
        ' set tasks: 1 (procs_per_node for one node) elsewhere}"; '
        f"srun {placement} --cpus-per-task={shlex.quote(str(max(int(threads), 1)))}"
        f" --mem=0 --kill-on-bad-exit=1 --wait=0 sh -c {shlex.quote(AGENT)} lcm-torchrun {PYTHON}"
        f" --nnodes {n} {per_node} --rdzv-backend c10d"
        f' --rdzv-endpoint "$(hostname)":{port} --rdzv-id "lcm-$SLURM_JOB_ID" -m lcm'
    )


def threads_per_process(resources: Any, threads: int) -> int:
    """torch/BLAS threads of each process: the task's CPUs shared by its processes.

    Parameters
    ----------
    resources : dict or snakemake Resources
        The rule's resources; ``procs_per_node`` defaults to 1.
    threads : int
        The task's CPUs (the rule's ``threads``).

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ConfigError
        ``procs_per_node`` is not an integer >= 1.
    """
    return max(int(threads) // _count(resources, "procs_per_node"), 1)
