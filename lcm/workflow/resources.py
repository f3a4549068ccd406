"""Job resources that depend on a job's data, for the Snakemake rules (``resources:``).

An evaluation job asks a GPU only where one of its task's models trains with torch
(:func:`evaluate_gpu`).

The connectome stage streams each BOLD run a block of volumes at a time
(:mod:`lcm.connectome.bold_stream`), so its memory is a fixed part (interpreter, numpy,
nibabel, the atlas on the BOLD grid, the 64 MB read buffer) plus a part that grows with the
run: the parcel time series, the confounds and the per-voxel maps. The request is therefore
``base + k * BOLD size``, per attempt, so that a job killed for memory is resubmitted with more,
up to :data:`MEM_MB_MAX`.

The BOLD is the preprocessed run named in the subject's fMRIPrep record once that record exists
(Snakemake re-evaluates resources just before it submits a job, when its inputs are there);
before that, e.g. in a dry run, the run's source file from the ingest index stands in for it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from lcm.evaluate.registry import needs_torch

# The most memory (MB) a request that grows with the attempt reaches: a job retried after a
# time-out is also retried with more memory, and past what a node holds sbatch refuses it (a
# third try asking 192000 MB did). A profile that replaces a rule's mem_mb sets its own ceiling,
# e.g. ``mem_mb: min(16000 * attempt, 96000)`` under ``set-resources: fmriprep:``, with the
# profile's ``resources: mem_mb`` (which caps every job and batch) raised to match.
MEM_MB_MAX = 64000

# The most minutes a runtime that grows with the attempt reaches (a job killed at its time limit
# is resubmitted, by the profile's retries, with more): a day, the longest many clusters'
# partitions allow; above a partition's MaxTime a job is refused, or waits forever
# (PartitionTimeLimit). A profile's set-resources runtime replaces a rule's, ceiling included.
RUNTIME_MAX = 1440

# An fMRIPrep job (the rule's threads, mem_mb and runtime, the one place they are set; a
# profile's set-threads / set-resources may override them): fMRIPrep's documented needs for one
# subject, 8 CPUs and 16 GB, and 12 h; each attempt asks more (a job killed for memory or at its
# time limit would fail the same way again), up to MEM_MB_MAX and RUNTIME_MAX. A dataset that is
# only checked (runner existing, or existing derivatives) hashes files: 1 CPU, 2 GB, 10 minutes.
FMRIPREP_THREADS = 8
FMRIPREP_MEM_MB = 16000
FMRIPREP_RUNTIME = 720
FMRIPREP_CHECK_THREADS = 1
FMRIPREP_CHECK_MEM_MB = 2000
FMRIPREP_CHECK_RUNTIME = 10


def fmriprep_threads(runs_container: bool) -> int:
    """Threads of an fMRIPrep job: fMRIPrep's when a container runs, else one.

    Parameters
    ----------
    runs_container : bool
        Whether the job runs fMRIPrep in a container (a raw dataset, ``fmriprep.runner`` not
        ``existing``), not only checks existing derivatives.

    Returns
    -------
    int
        :data:`FMRIPREP_THREADS` or :data:`FMRIPREP_CHECK_THREADS`.
    """
    return FMRIPREP_THREADS if runs_container else FMRIPREP_CHECK_THREADS


def grown(value: float, attempt: int, ceiling: float) -> int:
    """``value`` times the attempt (1 first), rounded up, at most ``ceiling``.

    The first attempt asks ``value`` even above the ceiling: the ceiling bounds the growth only.

    Parameters
    ----------
    value : float
        The first attempt's request (MB of memory, minutes of runtime).
    attempt : int
        Snakemake's attempt number (1 first; a lower one counts as 1).
    ceiling : float
        The most an attempt after the first asks for.

    Returns
    -------
    int
        The request.
    """
    increased = math.ceil(value * max(int(attempt), 1))
    return max(math.ceil(value), min(increased, math.floor(ceiling)))


def grown_mem_mb(mem_mb: float, attempt: int, ceiling: float = MEM_MB_MAX) -> int:
    """``mem_mb`` times the attempt, at most ``ceiling`` (:func:`grown`).

    Parameters
    ----------
    mem_mb : float
        The first attempt's request, in MB.
    attempt : int
        Snakemake's attempt number (1 first; a lower one counts as 1).
    ceiling : float
        The most MB an attempt after the first asks for.

    Returns
    -------
    int
        The request, in MB.
    """
    return grown(mem_mb, attempt, ceiling)


def grown_runtime(minutes: float, attempt: int, ceiling: float = RUNTIME_MAX) -> int:
    """``minutes`` times the attempt, at most ``ceiling`` (:func:`grown`).

    Parameters
    ----------
    minutes : float
        The first attempt's runtime, in minutes.
    attempt : int
        Snakemake's attempt number (1 first; a lower one counts as 1).
    ceiling : float
        The most minutes an attempt after the first asks for.

    Returns
    -------
    int
        The runtime to request, in minutes.
    """
    return grown(minutes, attempt, ceiling)


def fmriprep_mem_mb(runs_container: bool, attempt: int) -> int:
    """mem_mb of an fMRIPrep job, growing with each attempt (a job killed for memory) up to
    :data:`MEM_MB_MAX`.

    Parameters
    ----------
    runs_container : bool
        Whether the job runs fMRIPrep in a container, not only checks existing derivatives:
        :data:`FMRIPREP_MEM_MB`, else :data:`FMRIPREP_CHECK_MEM_MB`, at the first attempt.
    attempt : int
        Snakemake's attempt number (1 first).

    Returns
    -------
    int
        The request, in MB (:func:`grown_mem_mb`).
    """
    return grown_mem_mb(FMRIPREP_MEM_MB if runs_container else FMRIPREP_CHECK_MEM_MB, attempt)


def fmriprep_runtime(runs_container: bool, attempt: int) -> int:
    """runtime (minutes) of an fMRIPrep job, growing with each attempt (a job killed at its time
    limit) up to :data:`RUNTIME_MAX`.

    Parameters
    ----------
    runs_container : bool
        Whether the job runs fMRIPrep in a container, not only checks existing derivatives:
        :data:`FMRIPREP_RUNTIME`, else :data:`FMRIPREP_CHECK_RUNTIME`, at the first attempt.
    attempt : int
        Snakemake's attempt number (1 first).

    Returns
    -------
    int
        The runtime to request, in minutes (:func:`grown_runtime`).
    """
    return grown_runtime(FMRIPREP_RUNTIME if runs_container else FMRIPREP_CHECK_RUNTIME, attempt)


# An evaluation job (the rule's gpu and runtime; a profile's set-resources may override them):
# a GPU and 8 h where one of the task's models trains with torch (LCM, its ablations,
# shuffled-lcm: finetuning in every fold), else no GPU and 2 h (the baselines and the
# shuffled-label control fit on CPUs; a GPU asked for them waits in the GPU queue for nothing).
EVALUATE_TORCH_RUNTIME = 480
EVALUATE_RUNTIME = 120
# A retry after the time limit (the profile's retries) reuses the fits its predecessor finished
# (lcm.evaluate.resume), but one fit longer than the limit would never end: it asks for the
# runtime times the attempt, up to RUNTIME_MAX.


def evaluate_gpu(models: list[str] | tuple[str, ...]) -> int:
    """GPUs of a task's evaluation job: 1 where one of ``models`` trains with torch, else 0.

    Parameters
    ----------
    models : list or tuple of str
        The task's models (their names in :mod:`lcm.evaluate.registry`).

    Returns
    -------
    int
        The number of GPUs to request.
    """
    return int(any(needs_torch(m) for m in models))


def evaluate_runtime(models: list[str] | tuple[str, ...], attempt: int = 1) -> int:
    """Minutes of a task's evaluation job: longer where a model finetunes LCM in every fold,
    and times ``attempt`` (a retry after the time limit starts over), up to
    :data:`RUNTIME_MAX` (:func:`grown_runtime`).

    Parameters
    ----------
    models : list or tuple of str
        The task's models (their names in :mod:`lcm.evaluate.registry`).
    attempt : int
        Snakemake's attempt number (1 first; a lower one counts as 1).

    Returns
    -------
    int
        The runtime to request, in minutes.
    """
    base = EVALUATE_TORCH_RUNTIME if evaluate_gpu(models) else EVALUATE_RUNTIME
    return grown_runtime(base, attempt)


# Fixed part of a connectome job (MB): the engine peaks well under 500 MB on a 2 mm MNI run of
# 300 volumes (benchmarks/parcellation.py); the rest is headroom for the cluster's accounting.
CONNECTOME_BASE_MB = 1500
# MB requested per MB of BOLD file (compressed size as stored).
CONNECTOME_MB_PER_BOLD_MB = 1.0


def file_size_mb(path: str | os.PathLike | None) -> float:
    """Size of ``path`` in MB (2**20 bytes); 0 when there is no such file.

    Parameters
    ----------
    path : path-like or None
        The file; None or "" gives 0.

    Returns
    -------
    float
        Its size in MB.
    """
    if not path:
        return 0.0
    try:
        return os.stat(path).st_size / 2**20
    except OSError:
        return 0.0


def record_bold(record: str | os.PathLike, run_key: str) -> str | None:
    """Preprocessed BOLD of ``run_key`` listed in an fMRIPrep record; None if not known yet.

    A missing, unreadable or incomplete record is not an error here: resources are estimated
    before fMRIPrep has run, and ``lcm connectome run`` reports a bad record itself.

    Parameters
    ----------
    record : path-like
        A subject's fMRIPrep record (``lcm fmriprep --out``), whose ``runs`` list the derivatives.
    run_key : str
        The run, as in the record (``sub-01_task-rest_run-1``).

    Returns
    -------
    str or None
        The path of the run's preprocessed BOLD, as the record gives it.
    """
    try:
        runs = json.loads(Path(record).read_text())["runs"]
        return next((str(r["bold"]) for r in runs if r.get("run_key") == run_key), None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def connectome_mem_mb(
    record: str | os.PathLike,
    run_key: str,
    planned_bold: str | None,
    attempt: int = 1,
    base_mb: float = CONNECTOME_BASE_MB,
    mb_per_bold_mb: float = CONNECTOME_MB_PER_BOLD_MB,
) -> int:
    """Memory (MB) to request for one ``lcm connectome run`` job.

    Parameters
    ----------
    record : path
        The subject's fMRIPrep record (the job's input); its run's BOLD is used when it exists.
    run_key : str
        The run, as in the record (``sub-01_task-rest_run-1``).
    planned_bold : str or None
        The run's source BOLD from the ingest index: the stand-in before the record exists.
    attempt : int
        Snakemake's attempt number (1 first): the request grows with it, up to
        :data:`MEM_MB_MAX`.
    base_mb, mb_per_bold_mb : float
        Fixed part and MB per MB of BOLD file.

    Returns
    -------
    int
        ``ceil((base_mb + mb_per_bold_mb * bold_mb) * attempt)``, at most :data:`MEM_MB_MAX`
        from the second attempt on (:func:`grown_mem_mb`).
    """
    bold_mb = file_size_mb(record_bold(record, run_key) or planned_bold)
    return grown_mem_mb(base_mb + mb_per_bold_mb * bold_mb, attempt)
