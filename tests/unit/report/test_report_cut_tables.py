"""The TSVs of training that ``lcm report`` reads (``--history``, ``--ssl-history``,
``--bei-eval``), as the real ``lcm pretrain`` and ``lcm finetune`` write them: read whole, and
refused once cut short (a copy interrupted, a full disk), where they were read as a shorter
table and shown as the whole run."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from helpers.model import finetune_argv, pretrained_store
from helpers.report import write_report_inputs

from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.report.tables import read_bei_eval, read_history

pytestmark = [pytest.mark.slow, pytest.mark.hostile]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The history and BEI tables of a real pretraining, and the history of a real fine-tuning."""
    root = tmp_path_factory.mktemp("cut-tables")
    store, catalogue, pre = pretrained_store(root, 20, 12)
    tuned = root / "tuned"
    assert main(finetune_argv(store, catalogue, pre, tuned)) == 0
    return {
        "pretrain history": pre / "history.tsv",
        "bei_eval": pre / "bei_eval.tsv",
        "finetune history": tuned / "history.tsv",
    }


_READERS: dict[str, tuple[Callable[[Path], pd.DataFrame], str]] = {
    "pretrain history": (read_history, "lcm pretrain"),
    "bei_eval": (read_bei_eval, "lcm pretrain"),
    "finetune history": (read_history, "lcm finetune"),
}


@pytest.mark.parametrize("which", list(_READERS))
def test_a_table_the_trainer_wrote_is_read_whole(written: dict[str, Path], which: str) -> None:
    path = written[which]
    assert path.read_bytes().endswith(b"\n")
    read, _ = _READERS[which]
    table = read(path)
    assert len(table) == len(pd.read_csv(path, sep="\t")) >= 1
    assert not table.columns.str.startswith("Unnamed").any()


def _cut(text: str, how: str) -> str:
    """``text`` cut mid-row (its last row's last 3 characters lost) or with its last row's
    fields after the second lost (the newline kept)."""
    if how == "mid-row":
        return text[:-4]
    head, last = text.rstrip("\n").rsplit("\n", 1)
    return head + "\n" + "\t".join(last.split("\t")[:2]) + "\n"


@pytest.mark.parametrize("how", ["mid-row", "short row"])
@pytest.mark.parametrize("which", list(_READERS))
def test_a_table_the_trainer_wrote_then_cut_short_is_refused(
    written: dict[str, Path], tmp_path: Path, which: str, how: str
) -> None:
    read, writer = _READERS[which]
    cut = tmp_path / written[which].name
    cut.write_text(_cut(written[which].read_text(encoding="utf-8"), how), encoding="utf-8")
    # pandas alone reads it as a table of the same columns, its last row filled or changed.
    assert list(pd.read_csv(cut, sep="\t").columns) == list(pd.read_csv(written[which], sep="\t"))
    # Cut mid-row, the last row may have lost a tab too: either is said.
    where = "no final newline|line \\d+ has" if how == "mid-row" else "line \\d+ has"
    said = rf"{re.escape(str(cut))} is cut short \(({where})"
    with pytest.raises(InputDataError, match=said) as raised:
        read(cut)
    assert writer in raised.value.hint
    assert "end its last row with a newline" in raised.value.hint


@pytest.mark.parametrize("flag", ["--history", "--ssl-history", "--bei-eval"])
def test_lcm_report_refuses_a_training_table_cut_short(
    written: dict[str, Path], tmp_path: Path, capfd, flag: str
) -> None:
    """Through the verb: exit 3, one line naming the file, and no report written."""

    inputs = write_report_inputs(tmp_path / "in", {"autism": ("abidelike", 18)})
    source = written["bei_eval" if flag == "--bei-eval" else "pretrain history"]
    cut = tmp_path / source.name
    shutil.copy(source, cut)
    cut.write_bytes(source.read_bytes()[:-4])
    out = tmp_path / "out"
    argv = [
        "report",
        *("--metrics", *map(str, inputs["metrics"])),
        *("--predictions", *map(str, inputs["predictions"])),
        *("--out-metrics", str(out / "metrics.parquet"), "--out-summary", str(out / "s.tsv")),
        *("--out-html", str(out / "index.html"), "--n-boot", "50", flag, str(cut)),
    ]
    assert main(argv) == 3
    said = capfd.readouterr().err
    assert f"{cut} is cut short (" in said and "Traceback" not in said
    assert not (out / "index.html").exists()
