"""benchmarks/ingest_scale.py: its timings are of a right answer (--quick runs in test_e2e)."""

from __future__ import annotations

import json
import sys

import pytest
from helpers.benchmarks import load_benchmark


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path):
    module = load_benchmark("ingest_scale.py")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["ingest_scale.py", "--n", "8", "--repeats", "1"])
    return module


def test_a_stale_cache_after_an_edited_sidecar_fails_the_benchmark(bench, monkeypatch) -> None:
    """The edit wrote the inherited TR again, so an ingest that never re-read a sidecar was as
    right as a correct one: the touched-run timing could measure a fast wrong answer."""
    real = bench.ingest
    first: list = []

    def stale(*args, **kwargs):  # indexes once, then always answers from that index
        if not first:
            first.append(real(*args, **kwargs))
        return first[0].copy()

    monkeypatch.setattr(bench, "ingest", stale)
    with pytest.raises(SystemExit, match="did not pick up its RepetitionTime"):
        bench.main()


def test_the_real_ingest_picks_up_the_edit_and_prints_its_ratios(bench, capsys) -> None:
    """The same run with the real ingest passes the check and ends with its JSON line."""
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 8 and result["ratio"] > 0
