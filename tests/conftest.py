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
