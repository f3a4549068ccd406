"""benchmarks/parcellation.py: a fast wrong answer fails the run (--quick runs in test_e2e)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    module = load_benchmark("parcellation.py")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["parcellation.py", "--threads", "1"])

    def inputs(root: Path, *args, **kwargs) -> dict[str, Path]:
        (root / "bold.nii.gz").write_bytes(b"\0" * 64)
        return {"bold": root / "bold.nii.gz"}

    monkeypatch.setattr(module, "make_inputs", inputs)
    return module


def _contenders(monkeypatch, bench, ours_error: float) -> None:
    """Each contender's signals without running it: float64 truth, nilearn 2e-4 off, ours off
    by ``ours_error``."""
    truth = np.random.default_rng(0).standard_normal((60, 5))
    signals = {"float64": truth, "nilearn": truth + 2e-4, "ours": truth + ours_error}

    def spawn(name: str, files: dict, out: Path) -> dict[str, float]:
        np.save(out, signals.get(name, np.zeros(1)))
        return {"seconds": 1.0 if name == "nilearn" else 0.1, "rss_mb": 10.0}

    monkeypatch.setattr(bench, "_spawn", spawn)


def test_signals_outside_the_accuracy_bound_fail_the_run(bench, monkeypatch, capsys) -> None:
    """Only the e2e test compared the signals: a full run of a wrong engine printed a
    10x ratio_vs_nilearn and exited 0."""
    _contenders(monkeypatch, bench, ours_error=1e-2)
    assert bench.main() == 1
    out = capsys.readouterr()
    assert json.loads(out.out.strip().splitlines()[-1])["ratio_vs_nilearn"] == 10.0
    assert "max_abs_diff_vs_float64" in out.err and "max_abs_diff_vs_nilearn" in out.err


def test_signals_within_the_bounds_pass(bench, monkeypatch, capsys) -> None:
    """Ours 4e-6 from float64 (as measured) is within both bounds: exit 0."""
    _contenders(monkeypatch, bench, ours_error=4e-6)
    assert bench.main() == 0
    assert capsys.readouterr().err == ""
