"""`lcm report` given an input file it cannot read: one line naming the file and the fix, exit
code 3, no traceback, and the outputs of an earlier report left as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.report import write_report_inputs

from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.report.tables import read_history


def _break(path: Path, case: str) -> None:
    """Make ``path`` missing, a folder, empty, text, or its first half."""
    data = path.read_bytes()
    path.unlink()
    if case == "dir":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("hello, I am text\n")
    elif case == "truncated":
        path.write_bytes(data[: len(data) // 2])


def _argv(inputs: dict, out: Path) -> list[str]:
    return [
        "report",
        *("--metrics", *map(str, inputs["metrics"])),
        *("--predictions", *map(str, inputs["predictions"])),
        *("--out-metrics", str(out / "metrics.parquet"), "--out-summary", str(out / "summary.tsv")),
        *("--out-html", str(out / "index.html"), "--n-boot", "50"),
    ]


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Report inputs of one task, and the outputs of a report already made from them."""
    root = tmp_path_factory.mktemp("unreadable")
    inputs = write_report_inputs(root / "in", {"autism": ("abidelike", 18)})
    assert main(_argv(inputs, root / "out")) == 0
    return inputs, root / "out"


@pytest.mark.parametrize("which", ["metrics", "predictions"])
@pytest.mark.parametrize("case", ["missing", "dir", "empty", "text", "truncated"])
def test_an_unreadable_evaluation_table_is_named_with_its_fix(
    earlier, tmp_path, capfd, which: str, case: str
):
    inputs, first = earlier
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / Path(inputs[which][0]).name
    shutil.copy(inputs[which][0], broken)
    _break(broken, case)
    assert main(_argv({**inputs, which: [broken]}, out)) == 3
    said = capfd.readouterr().err
    assert "Traceback" not in said and "unexpected error" not in said
    assert f"Cannot read Parquet table {broken}" in said
    assert "hint: Pass the --out or --predictions table of lcm evaluate" in said
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("case", ["missing", "dir", "empty"])
def test_an_unreadable_tsv_input_says_what_to_pass(tmp_path, case: str):
    inputs = write_report_inputs(tmp_path, {"autism": ("abidelike", 18)})
    _break(inputs["history"], case)
    with pytest.raises(InputDataError) as raised:
        read_history(inputs["history"])
    said = str(raised.value)
    assert f"Cannot read pretraining history table {inputs['history']}" in said
    assert "hint: Pass the pretraining history table written by the workflow." in said
