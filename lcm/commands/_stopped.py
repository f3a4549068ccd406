"""SIGTERM while a verb works or writes its output set: an orderly exit, said in the log.

``lcm finetune`` (outside its training steps, whose own handler names the step: its cohort's
and checkpoint's load, its set-up, its writes), ``lcm embed``, ``lcm evaluate`` and ``lcm
report`` once had no handler there: a SIGTERM (a SLURM time limit, ``scancel``) ended the
process at once, no ``finally`` ran, and
:func:`lcm.io.output_set.written_together` could not put the earlier run's files back (new
files beside the earlier run's records, or none). ``lcm pretrain`` had a handler of its own,
saying what it was doing (the cohort's load, hours) and what was written. :class:`Stopped` is
the one: within it SIGTERM logs what the verb was doing and what it leaves, then raises
``SystemExit(143)`` through the blocks on the way out (the set's undo among them), which leave
one run's files and records. :class:`WritingStopped` is its block around a set's writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lcm.signals import SigtermExit

log = logging.getLogger(__name__)


def one_runs_set(outputs: Sequence[str | Path | None]) -> str:
    """What a SIGTERM at the writes of ``outputs`` (an output set, with their provenance
    records) leaves, as :class:`Stopped` logs it.

    Parameters
    ----------
    outputs : sequence of path-like or None
        The files of the set (None: an option not given).

    Returns
    -------
    str
    """
    named = ", ".join(str(p) for p in outputs if p)
    return (
        f"{named} and their provenance records are all this run's or all the earlier run's "
        "(or none)"
    )


class Stopped(SigtermExit):
    """Within the block (main thread only), SIGTERM logs what ``verb`` was doing and what it
    leaves, then exits with status 143 through the blocks on the way out.

    ``doing`` and ``left`` may be changed as the verb goes on (the cohort's load, the writes).

    Parameters
    ----------
    verb : str
        The verb, as the log names it (``"lcm pretrain"``).
    doing : str
        What it is doing (``"loading the cohort of ..."``).
    left : str
        What a SIGTERM now leaves (``"nothing was written in ..."``, :func:`one_runs_set`).
    """

    def __init__(self, verb: str, doing: str, left: str) -> None:
        super().__init__()
        self.verb = verb
        self.doing = doing
        self.left = left

    def say(self) -> None:
        """Log what was stopped and what it leaves."""
        log.error(
            "%s: stopped by SIGTERM while %s (a time limit or scancel); %s.",
            self.verb,
            self.doing,
            self.left,
        )


class WritingStopped(Stopped):
    """:class:`Stopped` around the writes of an output set: SIGTERM logs that ``outputs`` and
    their provenance records are one run's, then exits with status 143 through the set.

    Parameters
    ----------
    verb : str
        The verb, as the log names it (``"lcm finetune"``).
    outputs : sequence of path-like or None
        The files of the set (None: an option not given).
    """

    def __init__(self, verb: str, outputs: Sequence[str | Path | None]) -> None:
        super().__init__(verb, "writing its outputs", one_runs_set(outputs))
