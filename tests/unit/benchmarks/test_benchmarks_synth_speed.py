"""benchmarks/synth_speed.py: it checks what it wrote, and --quick is no timed test (its
--quick run is in test_e2e)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench():
    return load_benchmark("synth_speed.py")


def _series(folder: Path, n: int, shape: tuple[int, int]) -> None:
    for i in range(n):
        path = folder / f"sub-{i}" / f"sub-{i}_timeseries.tsv"
        path.parent.mkdir(parents=True)
        header = "\t".join(f"r{j}" for j in range(shape[1]))
        np.savetxt(path, np.ones(shape), delimiter="\t", header=header, comments="")


def test_a_run_that_wrote_too_few_or_wrong_series_fails_the_benchmark(bench, tmp_path) -> None:
    """The ROI part timed write_cohort and never looked at its files: a fast run that wrote
    too few, or empty ones, was reported like a right one."""
    _series(tmp_path / "ok", 3, (5, 4))
    bench._check_roi_files(tmp_path / "ok", 3, (5, 4))
    with pytest.raises(SystemExit, match="2 time series written for 3 subjects"):
        _series(tmp_path / "few", 2, (5, 4))
        bench._check_roi_files(tmp_path / "few", 3, (5, 4))
    with pytest.raises(SystemExit, match=r"holds \(5, 3\), not \(5, 4\)"):
        _series(tmp_path / "narrow", 3, (5, 3))
        bench._check_roi_files(tmp_path / "narrow", 3, (5, 4))
