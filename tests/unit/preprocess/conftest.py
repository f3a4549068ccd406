"""Fixtures of the preprocessing tests: container tools replaced by stand-ins on PATH."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from helpers.fmriprep import STANDIN


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``docker`` and ``apptainer`` stand-ins first on PATH; returns their argv log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "apptainer"):
        script = bin_dir / tool
        script.write_text(f"#!{sys.executable}\n{STANDIN}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.jsonl"
    # The fmriprep-docker wrapper lives beside this Python; keep it reachable.
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    # Not inside a SLURM job: fMRIPrep's size comes from the job's options, never from these.
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU"):
        monkeypatch.delenv(name, raising=False)
    return log
