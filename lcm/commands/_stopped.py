"""SIGTERM while a verb writes its output set: an orderly exit through the set's undo, said in
the log.

``lcm finetune`` (outside its training steps, whose own handler names the step) and ``lcm
embed`` had no handler at their writes: a SIGTERM (a SLURM time limit, ``scancel``) ended the
process at once, no ``finally`` ran, and :func:`lcm.io.output_set.written_together` could not
put the earlier run's files back (new files beside the earlier run's records, or none). Within
:class:`WritingStopped` it raises ``SystemExit(143)`` through the set, which leaves one run's
files and records, as ``lcm pretrain``'s handler does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lcm.signals import SigtermExit

log = logging.getLogger(__name__)


class WritingStopped(SigtermExit):
    """Within the block (main thread only), SIGTERM logs that ``outputs`` and their provenance
    records are one run's, then exits with status 143 through the blocks on the way out.

    Parameters
    ----------
    verb : str
        The verb, as the log names it (``"lcm finetune"``).
    outputs : sequence of path-like or None
        The files of the set (None: an option not given).
    """

    def __init__(self, verb: str, outputs: Sequence[str | Path | None]) -> None:
        super().__init__()
        self.verb = verb
        self.outputs = [str(p) for p in outputs if p]

    def say(self) -> None:
        """Log what was stopped and what the outputs are."""
        log.error(
            "%s: stopped by SIGTERM while writing its outputs (a time limit or scancel); %s and "
            "their provenance records are all this run's or all the earlier run's (or none).",
            self.verb,
            ", ".join(self.outputs),
        )
