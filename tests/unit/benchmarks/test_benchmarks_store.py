"""benchmarks/store.py: its read timing is of the right data (--quick runs in test_e2e)."""

from __future__ import annotations

import json
import sys

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path):
    module = load_benchmark("store.py")
    argv = ["store.py", "--n", "300", "--rois", "20", "--dir", str(tmp_path), "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    return module


def _rows_swapped(batch: dict) -> dict:
    return {**batch, "connectome": batch["connectome"].flip(0)}


def _last_dropped(batches: list) -> list:
    return batches[:-1]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda bs: [_rows_swapped(b) for b in bs], id="rows-swapped"),
        pytest.param(_last_dropped, id="runs-dropped"),
    ],
)
def test_a_stream_that_hands_back_wrong_data_fails_the_benchmark(bench, monkeypatch, fault):
    """The read loop counted runs and read one value per batch: a loader that returned the
    wrong rows, fast, was timed and reported like a right one."""

    class Faulty(bench.ConnectomeStream):
        def __iter__(self):
            return iter(fault(list(super().__iter__())))

    monkeypatch.setattr(bench, "ConnectomeStream", Faulty)
    with pytest.raises(SystemExit, match="streamed back other data"):
        bench.main()


def test_the_real_stream_passes_the_check_and_prints_its_ratios(bench, capsys) -> None:
    """The same run with the store's own stream ends with its JSON line."""
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples_read"] == 300 and result["read_ratio"] > 0
