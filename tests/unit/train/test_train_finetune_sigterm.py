"""SIGTERM before ``lcm finetune``'s training steps (the cohort's or the checkpoint's load) is
said in the log, as ``lcm pretrain``'s.

No handler was installed before the training steps: a SIGTERM during a load (a SLURM time
limit) ended the job at once, with not a line in its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset

pytestmark = pytest.mark.hostile

# The load stopped by a real SIGTERM to the process, as SLURM sends it.
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


@pytest.mark.parametrize(
    ("stopped_at", "doing"),
    [
        ("lcm.store.read.load_cohort", "loading the cohort of beta (toy) from {store}"),
        ("lcm.model.checkpoint.load_checkpoint", "loading the checkpoint {checkpoint}"),
    ],
)
def test_sigterm_during_a_load_is_logged_and_exits_143(
    tmp_path: Path, stopped_at: str, doing: str
) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 12, seed=1)
    # Never read: the checkpoint's load is the one stopped, or is not reached.
    checkpoint = tmp_path / "pre"
    out = tmp_path / "ft"
    args = ["finetune", "--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)]
    args += ["--checkpoint", str(checkpoint), "--dataset", "beta", "--label", "dx"]
    args += ["--positive", "patient", "--settings", '{"epochs": 1, "batch_size": 8}']
    args += ["--out-dir", str(out), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, stopped_at, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 128 + signal.SIGTERM, (done.returncode, done.stderr)
    said = doing.format(store=store, checkpoint=checkpoint)
    assert f"lcm finetune: stopped by SIGTERM while {said} " in done.stderr, done.stderr
    assert f"nothing was written in {out}" in done.stderr, done.stderr
    assert not out.exists()  # nothing claimed, nothing written
