"""SIGTERM before ``lcm pretrain``'s training steps (the cohort's load) is said in the log.

The handler was installed only around the training loop: a SIGTERM during the load (minutes to
hours; a SLURM time limit) ended the job with status 143 and not a line in its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, TINY, add_store_dataset

pytestmark = pytest.mark.hostile

# The load stopped by a real SIGTERM to the process, as SLURM sends it.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import lcm.store.read as read

    def load(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the load goes on until the signal is handled
        raise AssertionError("SIGTERM not handled")

    read.load_cohort = load
    from lcm.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_sigterm_during_the_load_is_logged_and_exits_143(tmp_path: Path) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 12, seed=0)
    out = tmp_path / "pt"
    args = [
        "pretrain",
        "--store",
        str(tmp_path / "store"),
        "--atlas",
        "toy",
        "--catalogue",
        str(catalogue),
        "--datasets",
        "alpha",
        "--model",
        json.dumps(TINY),
        "--settings",
        '{"epochs": 1, "batch_size": 8}',
        "--out-dir",
        str(out),
        "--threads",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 128 + signal.SIGTERM, (done.returncode, done.stderr)
    assert "lcm pretrain: stopped by SIGTERM while loading the cohort of alpha (toy) from " in (
        done.stderr
    ), done.stderr
    assert f"nothing was written in {out}" in done.stderr
    assert not out.exists()  # nothing claimed, nothing written
