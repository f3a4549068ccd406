"""Out-of-range numbers on the command line: argparse's one-line error, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.hostile

CASES = [
    (["splits", "--store", "s", "--atlas", "a", "--datasets", "d", "--n-folds", "0"], "--n-folds"),
    (["splits", "--store", "s", "--atlas", "a", "--datasets", "d", "--n-folds", "1"], "--n-folds"),
    (["splits", "--store", "s", "--atlas", "a", "--datasets", "d", "--seed", "-3"], "--seed"),
    (["splits", "--store", "s", "--atlas", "a", "--datasets", "d", "--repeats", "x"], "--repeats"),
    (["model-info", "--n-rois", "1"], "--n-rois"),
    (
        "pretrain --store s --atlas a --catalogue c --datasets d --out-dir o --threads 0".split(),
        "--threads",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "flag"), CASES, ids=[f"{c[0][0]} {c[1]}" for c in CASES])
def test_out_of_range_number_is_one_line(argv: list[str], flag: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"argument {flag}: expected an integer" in last
