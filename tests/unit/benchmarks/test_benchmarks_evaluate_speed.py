"""benchmarks/evaluate_speed.py: a fair reference (--quick runs in test_e2e_benchmarks)."""

from __future__ import annotations

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench():
    return load_benchmark("evaluate_speed.py")


def test_each_case_goes_first_in_alternate_rounds(bench, monkeypatch) -> None:
    """The rounds were called alternating, but the one-thread case always ran first, so
    whatever a round's first child pays was always charged to the reference."""
    order: list[int | None] = []

    def child(threads, spec):
        order.append(threads)
        return {
            "threads": threads or 2,
            "wall_s": 1.0,
            "blas_threads": {},
            "metrics_sha256": "x",
            "mean_auc": {},
        }

    monkeypatch.setattr(bench, "child", child)
    assert bench.main(["--quick", "--repeats", "4", "--threads", "1"]) == 0
    assert order == [1, None, None, 1, 1, None, None, 1]
