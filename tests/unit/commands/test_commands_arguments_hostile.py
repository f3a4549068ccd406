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


@pytest.mark.parametrize(("argv", "flag"), CASES, ids=[f"{c[0][0]} {c[1]}" for c in CASES])
def test_out_of_range_number_is_one_line(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lcm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"argument {flag}: expected an integer" in last


@pytest.mark.slow
def test_out_of_range_number_from_the_command_line_is_one_line() -> None:
    """The same refusal through ``python -m lcm``, as a user's shell runs it: exit status 2 and
    argparse's line, no traceback from the entry point (the cases above run in process)."""
    argv, flag = CASES[0]
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"argument {flag}: expected an integer" in last


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["evaluate", "--task", ""], "argument --task: expected a task name of letters and digits"),
        (["evaluate", "--task", "a b"], "argument --task: expected a task name"),
        (["splits", "--task", "a-b"], "argument --task: expected a task name"),
        (["report", "--n-boot", "-5"], "argument --n-boot: expected an integer >= 20, got -5"),
        (["report", "--n-boot", "1"], "argument --n-boot: expected an integer >= 20, got 1"),
    ],
)
def test_task_names_and_bootstrap_counts_are_checked_first(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--task '' ran and wrote a page of blank headings (the config allows letters and digits
    only); --n-boot -5 crashed in numpy, 0 made every headline 'not evaluated'."""
    from lcm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and said in capsys.readouterr().err


# Every file or folder option of these verbs, given an empty value.
EMPTY_PATHS = [
    *(
        ["report", flag, ""]
        for flag in (
            *("--metrics", "--predictions", "--history", "--bei-eval", "--qc"),
            *("--ingest-summary", "--ssl-history", "--ground-truth", "--store", "--attention"),
            *("--checkpoint", "--bei-maps", "--configs", "--logs", "--out-headline"),
            *("--out-contrasts", "--out-metrics", "--out-predictions", "--out-summary"),
            "--out-html",
        )
    ),
    *(
        ["evaluate", flag, ""]
        for flag in ("--checkpoint", "--ssl-checkpoint", "--splits", "--out", "--predictions")
    ),
    *(["evaluate", flag, ""] for flag in ("--store", "--catalogue")),
    *(["embed", flag, ""] for flag in ("--checkpoint", "--out", "--attention-out", "--store")),
    *(["finetune", flag, ""] for flag in ("--checkpoint", "--out-dir", "--catalogue")),
    ["bei-maps", "--out-dir", ""],
    *(["model-info", flag, ""] for flag in ("--checkpoint", "--catalogue-out", "--datasets-from")),
    ["provenance", "verify", "results", "--base", ""],
    ["provenance", "trace", " "],
    ["prune-states", ""],
]


@pytest.mark.parametrize("argv", EMPTY_PATHS, ids=[" ".join(a[:2]) for a in EMPTY_PATHS])
def test_an_empty_path_is_refused_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty path read as the working folder: a required output skipped with exit code 0
    (report), a traceback (evaluate --out), files written into the working folder (finetune
    --out-dir in an empty one), the states below it listed (prune-states)."""
    from lcm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    name = argv[1] if argv[1].startswith("--") else {"provenance": "target"}.get(argv[0], "FOLDER")
    if argv[0] == "provenance" and argv[-2] == "--base":
        name = "--base"
    assert f"argument {name}: expected a path, got {argv[-1]!r}" in last
