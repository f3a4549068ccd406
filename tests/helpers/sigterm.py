"""A verb run in a child process that a real SIGTERM (as SLURM's time limit sends it) stops in
one of its loads, and the check that it said so and wrote nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

# ``load`` stands in for the function named by argv[1]; the verb's argv follows.
SCRIPT = textwrap.dedent(
    """
    import importlib, os, signal, sys, time

    def load(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the load goes on until the signal is handled
        raise AssertionError("SIGTERM not handled")

    module, name = sys.argv[1].rsplit(".", 1)
    setattr(importlib.import_module(module), name, load)
    from lcm.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def check_sigterm_during_load(stopped_at: str, argv: Sequence[str], doing: str, out: Path) -> None:
    """``lcm <argv>``, stopped by a SIGTERM in the load ``stopped_at`` (``module.function``),
    exits 143, its log saying it was stopped while ``doing`` and that nothing was written in
    ``out``, and ``out`` is not made."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, stopped_at, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 128 + signal.SIGTERM, (done.returncode, done.stderr)
    assert f"lcm {argv[0]}: stopped by SIGTERM while {doing} " in done.stderr, done.stderr
    assert f"nothing was written in {out}" in done.stderr, done.stderr
    assert not out.exists()  # nothing claimed, nothing written
