"""benchmarks/bei_maps_memory.py: a lower peak for other maps fails (--quick runs in test_e2e)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    module = load_benchmark("bei_maps_memory.py")
    monkeypatch.setattr(sys, "argv", ["bei_maps_memory.py", "--dir", str(tmp_path)])
    return module


def _maps(coef: list[float]) -> SimpleNamespace:
    one = np.array([1.0, 2.0])
    return SimpleNamespace(
        coef=np.array(coef), intercept=one, heldout_r2=one, x_mean=one, x_scale=one, alpha=one
    )


def test_a_nan_where_the_former_fit_had_a_value_is_an_infinite_difference(bench) -> None:
    """nanmax skipped the NaN: new maps with a missing coefficient compared as identical."""
    assert bench.max_rel_diff(_maps([0.5, np.nan]), _maps([0.5, 0.25])) == np.inf
    assert bench.max_rel_diff(_maps([0.5, 0.25]), _maps([0.5, 0.25])) == 0.0


@pytest.mark.parametrize(("new", "status"), [([0.5, 0.25], 0), ([0.5, 0.3], 1), ([0.5, np.nan], 1)])
def test_maps_that_differ_from_the_former_fit_fail_the_run(bench, monkeypatch, new, status):
    """A full run printed its memory ratio and exited 0 whatever the maps: only the e2e
    test compared them, on the quick run."""
    fits = {"new": _maps(new), "old": _maps([0.5, 0.25])}
    monkeypatch.setattr(bench, "write_store", lambda *args: None)
    monkeypatch.setattr(bench, "run_child", lambda *args: {"peak_mb": 10.0, "seconds": 1.0})
    monkeypatch.setattr(bench, "BEIMaps", SimpleNamespace(load=lambda path: fits[path.stem]))
    assert bench.main() == status
