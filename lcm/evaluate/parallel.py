"""Fits of the evaluation protocol run one after another, or across one pool of processes.

Every fit (seed x fold x label fraction x model) is independent, so the protocol's parallelism is
across fits: ``workers`` single-threaded processes, never threads inside threads. Inside a fit
BLAS, OpenMP and torch keep to one thread, in the pool and in the sequential path alike, so the
metrics do not depend on the thread budget (a multi-threaded BLAS may sum in another order).

The pool starts from a fork server that has imported only the baselines (no torch, no threads in
use: forking a process whose OpenMP pool ran can hang), and reads the connectomes from one
memory-mapped file rather than a copy per task. A worker's log records go back to this process
through a queue (:class:`logging.handlers.QueueHandler` there, a
:class:`~logging.handlers.QueueListener` here) and are handled by the loggers they were logged
to, so they reach ``--log-file`` as a fit run here would (they were lost before: a worker's own
logging printed warnings to stderr only).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import logging.handlers
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcm.evaluate.registry import ModelContext, is_builtin_model, needs_torch
from lcm.exceptions import WorkerKilledError
from lcm.io.atomic import pid_alive, remove_dead_temporary_folders, temporary_folder_prefix
from lcm.signals import SigtermExit

log = logging.getLogger(__name__)

# Slowest fits first (lowest rank), so that none of them trails alone at the end of the pool.
_COST_RANK = {"shuffled-labels": 0, "lcm": 1, "lcm-no-pseudo": 1, "lcm-ssl": 1, "lcm-scratch": 1}

_FC: np.ndarray | None = None  # the connectomes, in a worker
# The temporary folder of the connectomes the workers read: lcm-evaluate-<host>-<pid>-<random>.
TMP_KIND = "evaluate"


@dataclass
class FitJob:
    """One fit: a fresh model ``name`` on the training rows, predictions on the test rows.

    Attributes
    ----------
    name : str
        Registered model name.
    context : ModelContext
    train, test : numpy.ndarray of int
        Row indices of the cohort.
    y_fit : numpy.ndarray
        Targets of the training rows (-1 or NaN where hidden).
    variables : pandas.DataFrame
        Training variables, the task label blanked where hidden.
    groups : numpy.ndarray
        Subject key of each training row.
    """

    name: str
    context: ModelContext
    train: np.ndarray
    test: np.ndarray
    y_fit: np.ndarray
    variables: pd.DataFrame
    groups: np.ndarray


# Returns a tuple whose first items are (predictions, fit seconds); run_fits passes it on whole.
FitFunction = Callable[..., tuple[Any, ...]]


@contextlib.contextmanager
def single_threaded(torch_needed: bool = False) -> Iterator[None]:
    """BLAS/OpenMP (and torch, when loaded or ``torch_needed``) at one thread, then restored.

    Parameters
    ----------
    torch_needed : bool, optional
        Import torch first (the fits will load it), so that its thread pool is limited too.

    Yields
    ------
    None
    """
    from threadpoolctl import threadpool_limits

    torch = None
    if torch_needed:
        import torch  # loaded before the fits, so that its pool starts at one thread
    else:
        import sys

        torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


def run_fits(
    jobs: list[FitJob],
    fc: np.ndarray,
    fit: FitFunction,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
    on_result: Callable[[int, tuple[Any, ...]], None] | None = None,
) -> list[tuple[Any, ...]]:
    """``fit(name, context, fc_train, y_fit, variables, groups, fc_test)`` of every job, in order.

    Parameters
    ----------
    jobs : list of FitJob
    fc : numpy.ndarray, shape (n, R, R)
        Connectomes of the cohort (rows indexed by the jobs).
    fit : callable
        Returns a tuple (``(predictions, fit seconds, ...)``); a module-level function (sent to
        the workers).
    workers : int, default 1
        Processes; 1 runs every fit here. Models registered outside :mod:`lcm` (tests, plug-ins
        of a session) always run here: a fresh worker does not know them.
    on_done : callable, optional
        Called with the job index as each fit finishes (progress).
    on_result : callable, optional
        Called here (never in a worker) with the job index and what ``fit`` returned as each
        fit finishes, before ``on_done``: the evaluation saves it (:mod:`lcm.evaluate.resume`),
        so that a run killed later keeps it.

    Returns
    -------
    list of tuple
        What ``fit`` returned, one per job, in the order of ``jobs``.
    """
    torch_needed = any(needs_torch(j.name) for j in jobs)
    pooled = [i for i, j in enumerate(jobs) if is_builtin_model(j.name)] if workers > 1 else []
    if len(pooled) < 2:
        pooled = []
    local = sorted(set(range(len(jobs))) - set(pooled))
    results: list[Any] = [None] * len(jobs)
    with single_threaded(torch_needed and bool(local)):
        for i in local:
            j = jobs[i]
            results[i] = fit(
                j.name, j.context, fc[j.train], j.y_fit, j.variables, j.groups, fc[j.test]
            )
            _finished(i, results[i], on_result, on_done)
    if pooled:
        _run_pool(
            jobs,
            pooled,
            fc,
            fit,
            min(workers, len(pooled)),
            torch_needed,
            results,
            lambda i: _finished(i, results[i], on_result, on_done),
        )
    return results


def _finished(
    index: int,
    result: tuple[Any, ...],
    on_result: Callable[[int, tuple[Any, ...]], None] | None,
    on_done: Callable[[int], None] | None,
) -> None:
    if on_result:
        on_result(index, result)
    if on_done:
        on_done(index)


def _run_pool(
    jobs: list[FitJob],
    indices: list[int],
    fc: np.ndarray,
    fit: FitFunction,
    workers: int,
    torch_needed: bool,
    results: list[Any],
    on_done: Callable[[int], None] | None,
) -> None:
    start = time.perf_counter()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["lcm.evaluate.parallel"])
    with _socket_tempdir():
        multiprocessing.forkserver.ensure_running()
    order = pool_tasks(jobs, indices)
    # The workers' log records, handled here by the loggers they name (the parent's handlers:
    # stderr and --log-file) at the parent's levels.
    records = ctx.Queue()
    listener = logging.handlers.QueueListener(records, _ToOwnLogger())
    levels = {name: logging.getLogger(name).getEffectiveLevel() for name in ("", "lcm")}
    # The copy of the connectomes is named with this host and process: a run killed with
    # SIGKILL (no clean-up runs) leaves it, and the next run on this host removes it.
    remove_dead_temporary_folders(tempfile.gettempdir(), TMP_KIND)
    # SIGTERM (scancel, Snakemake) exits through the blocks below: workers stopped, copy removed.
    with (
        SigtermExit(),
        tempfile.TemporaryDirectory(prefix=temporary_folder_prefix(TMP_KIND)) as tmp,
        _listening(listener),
    ):
        path = Path(tmp) / "fc.npy"
        np.save(path, np.ascontiguousarray(fc))
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(str(path), torch_needed, records, levels, os.getpid()),
        ) as pool:
            futures: dict[Future, list[int]] = {
                pool.submit(_pool_fits, fit, [jobs[i] for i in chunk]): chunk for chunk in order
            }
            try:
                for future in as_completed(futures):
                    for i, result in zip(futures[future], future.result(), strict=True):
                        results[i] = result
                        if on_done:
                            on_done(i)
            except BrokenProcessPool as exc:
                raise WorkerKilledError(
                    f"A worker process of the evaluation ({workers} side by side) was killed "
                    "before its fits finished (most often for memory: the OOM killer).",
                    hint="A worker process was killed (most often for memory): raise the "
                    "rule's mem_mb or lower --threads (fewer workers side by side).",
                ) from exc
            except BaseException:
                for future in futures:
                    future.cancel()
                _stop_workers(pool)
                raise
    log.info(
        "%d fits on %d single-threaded worker processes in %.1f s",
        len(indices),
        workers,
        time.perf_counter() - start,
    )


def pool_tasks(jobs: list[FitJob], indices: list[int]) -> list[list[int]]:
    """The pool's tasks: lists of indices into ``jobs``, slowest models first.

    One task per model and fold (its label fractions) for the models that fit in seconds: they
    share the training runs, so a worker reuses what depends on them only (the tangent
    reference). One task per fit for a model that trains with torch (minutes a fit): a task's
    results come back together when it ends, so a fit is saved for resumption
    (:mod:`lcm.evaluate.resume`) only then, and a kill lost the fold's finished fits.

    Parameters
    ----------
    jobs : list of FitJob
    indices : list of int
        The jobs the pool runs.

    Returns
    -------
    list of list of int
    """
    chunks: dict[tuple[str, int, int], list[int]] = {}
    for i in indices:
        alone = i if needs_torch(jobs[i].name) else -1
        chunks.setdefault((jobs[i].name, jobs[i].context.seed, alone), []).append(i)
    return sorted(chunks.values(), key=lambda c: _COST_RANK.get(jobs[c[0]].name, 2))


# Linux's AF_UNIX socket paths hold 107 bytes. The fork server listens on
# <temp dir>/pymp-<8>/listener-<8>: a cluster's per-job TMPDIR (/localscratch/<user>/
# slurm-job-<id>/...) can leave no room, and the pool failed with 'AF_UNIX path too long'.
_SOCKET_PATH_MAX = 107
_SOCKET_SUFFIX = len("/pymp-xxxxxxxx/listener-xxxxxxxx")
_SHORT_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


@contextlib.contextmanager
def _socket_tempdir() -> Iterator[None]:
    """Start the fork server's socket in a short temporary folder where TMPDIR is too long.

    Only the socket's folder moves (multiprocessing keeps its folder for the life of the
    process); the connectomes' copy and the workers' own files stay in TMPDIR.
    """
    where = tempfile.gettempdir()
    if len(os.fsencode(where)) + _SOCKET_SUFFIX <= _SOCKET_PATH_MAX:
        yield
        return
    short = next((d for d in _SHORT_TEMP_DIRS if os.access(d, os.W_OK | os.X_OK)), None)
    if short is None:
        yield  # nothing shorter to use: multiprocessing's own error names the path
        return
    log.info(
        "TMPDIR %s is too long for the worker pool's socket (%d bytes at most): its socket "
        "goes in %s",
        where,
        _SOCKET_PATH_MAX,
        short,
    )
    before = tempfile.tempdir
    tempfile.tempdir = short
    try:
        yield
    finally:
        tempfile.tempdir = before


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers now: leaving the pool would wait for their running fits
    (minutes), and SIGTERM's job is to stop."""
    # The executor keeps its processes in a private mapping (public only from Python 3.14).
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


class _ToOwnLogger(logging.Handler):
    """Handles a worker's record by the logger of its name here (its handlers, propagation)."""

    def emit(self, record: logging.LogRecord) -> None:
        """Pass ``record`` to the logger of its name in this process.

        Parameters
        ----------
        record : logging.LogRecord
            A record a worker process sent.
        """
        logging.getLogger(record.name).handle(record)


@contextlib.contextmanager
def _listening(listener: logging.handlers.QueueListener) -> Iterator[None]:
    """The listener running; stopped (every record queued so far handled) however it ends."""
    listener.start()
    try:
        yield
    finally:
        listener.stop()


def _init_worker(
    fc_path: str,
    torch_needed: bool,
    records: Any = None,
    levels: dict[str, int] | None = None,
    owner: int | None = None,
) -> None:
    """A worker: one thread for BLAS, OpenMP and torch; the connectomes memory-mapped; its log
    records sent to the parent through ``records`` at the parent's ``levels`` (by logger); it
    exits when the evaluating process ``owner`` is gone."""
    global _FC
    if owner is not None:
        _exit_with(owner)
    from lcm.threads import apply_thread_budget

    if torch_needed:
        # Loaded with OMP_NUM_THREADS=1 already set: its OpenMP pool never grows past one.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch  # noqa: F401
    apply_thread_budget(1)
    _FC = np.load(fc_path, mmap_mode="r")
    root = logging.getLogger()
    if records is None:
        logging.basicConfig(level=logging.WARNING)
        return
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(records))
    for name, level in (levels or {}).items():
        logging.getLogger(name).setLevel(level)


# prctl(2): the signal this process gets when its parent thread exits (Linux).
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 1.0


def _exit_with(owner: int) -> None:
    """End this worker when the process ``owner`` (the evaluation) dies, even by SIGKILL.

    A worker's parent is the fork server, not ``owner``: the kernel's parent-death signal
    (Linux) ends it with the fork server, and a watchdog thread polls ``owner`` itself (every
    platform, and a fork server that outlives its parent). Each worker held a copy of its fits'
    data (hundreds of MB) for as long as it lived.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while pid_alive(owner):
            time.sleep(_WATCH_SECONDS)
        os._exit(1)  # no clean-up to run: the results have no reader any more

    threading.Thread(target=watch, name="lcm-owner-watch", daemon=True).start()


def _pool_fits(fit: FitFunction, jobs: list[FitJob]) -> list[tuple[Any, ...]]:
    """The fits of one task, in a worker."""
    assert _FC is not None
    return [
        fit(
            j.name,
            j.context,
            np.asarray(_FC[j.train]),
            j.y_fit,
            j.variables,
            j.groups,
            np.asarray(_FC[j.test]),
        )
        for j in jobs
    ]
