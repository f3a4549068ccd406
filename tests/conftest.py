"""Fixtures shared by more than one tier (the unit and the workflow tests of the same input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.config import BOMB


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    """The alias bomb written to a YAML file (1.2 kB on disk, ~10^9 values expanded)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB + "\n")
    assert 1000 < path.stat().st_size < 1500
    return path


@pytest.fixture(autouse=True)
def _thread_budget_restored():
    """Restore the thread variables and torch's threads after every test.

    ``lcm.cli.main`` caps this process's pools for the rest of it (as a verb should), so a
    test calling it changed the threads of every later test in its worker: a training test
    then recorded a "first session" at 2 threads where it had set 1, depending on which
    tests its worker had run before.
    """
    import os
    import sys

    from lcm.threads import THREAD_VARIABLES

    env = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if threads is not None:
        torch.set_num_threads(threads)
