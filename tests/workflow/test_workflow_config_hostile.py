"""Hostile configuration reaching Snakemake (issue 14): an alias bomb stops the dry run fast.

The configuration checks themselves are in tests/unit/config/test_config_hostile.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.hostile


def test_alias_bomb_stops_snakemake_fast(bomb: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    start = time.monotonic()
    proc = subprocess.run(
        [*cmd, "--directory", str(tmp_path), "-n", "--cores", "1", "--configfile", str(bomb)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert time.monotonic() - start < 20
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if "expands to" in line]
    assert len(lines) == 1 and len(lines[0]) < 400, out[-2000:]
    assert len(out) < 5000  # no expanded value printed
