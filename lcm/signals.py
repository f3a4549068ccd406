"""SIGTERM as an orderly exit: the one handler LCM's long-running verbs install.

SLURM (``scancel``, a time limit) and Snakemake stop a job with SIGTERM, whose default action
ends the process at once: no ``finally`` runs, so temporary folders (evaluate's memory-mapped
connectomes) and worker processes are left behind. Within :class:`SigtermExit`, SIGTERM raises
``SystemExit(143)`` (128 + SIGTERM, the status the default action gives, so the job still
fails), and every ``finally`` and context manager on the way out runs.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGTERM_STATUS = 128 + signal.SIGTERM


class SigtermExit:
    """Within the block (main thread only; elsewhere a no-op), SIGTERM calls :meth:`say`, then
    raises ``SystemExit(143)``. The previous handler is restored on leaving the block."""

    def __init__(self) -> None:
        self._previous: Any = None
        self._deferring = False
        self._pending = False

    def __enter__(self) -> SigtermExit:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def say(self) -> None:
        """Log what was stopped (subclasses); by default nothing."""

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a SIGTERM until the block ends (the block's work and its bookkeeping, e.g. a
        state saved and the step :meth:`say` names, happen together or not at all)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending:
            self._pending = False
            self.say()
            raise SystemExit(SIGTERM_STATUS)

    def _handle(self, signum: int, frame: object) -> None:
        if self._deferring:
            self._pending = True
            return
        self.say()
        raise SystemExit(SIGTERM_STATUS)
