"""benchmarks/evaluate_speed.py runs in its quick mode and reports the ratio (not timed here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_evaluate_speed_quick_reports_the_ratio():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "evaluate_speed.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "ratio_default_vs_single", "single_s", "default_s", "default_threads", "target",
        "identical_metrics",
    } <= set(result)  # fmt: skip
    assert result["ratio_default_vs_single"] > 0
    assert result["identical_metrics"]  # same metrics at the default budget and at one thread
