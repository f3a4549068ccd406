"""``lcm embed``'s two tables and their provenance records are all this run's or all the last
run's after a failure.

The records were written after the tables' set: a full disk (or a SIGTERM) at one left this
run's tables beside the last run's records, which ``lcm provenance verify`` failed on, or a
first run's tables without records, refused on the rerun as files LCM did not write.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv, write_catalogue
from helpers.output_set import (
    assert_last_runs_set,
    full_disk_at,
    output_files,
    sigterm_at_record,
)

from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.io.provenance import provenance_path

TABLES = ("embeddings.parquet", "attention.parquet")
# The set, in the order it is written: the tables, then their records.
RECORDS = tuple(provenance_path(Path(name)).name for name in TABLES)
SET = (*TABLES, *RECORDS)

pytestmark = pytest.mark.hostile


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A store of two datasets and a checkpoint pretrained on the first."""
    root = tmp_path_factory.mktemp("embed-set")
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    store = root / "store"
    add_store_dataset(root, store, catalogue, "alpha", "toy", 20, seed=0)
    add_store_dataset(root, store, catalogue, "beta", "toy", 12, seed=1)
    pre = root / "pre"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    return store, catalogue, pre


def _embed(pretrained: tuple[Path, Path, Path], out: Path, datasets: list[str]) -> int:
    store, catalogue, pre = pretrained
    argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--atlas", "toy"]
    argv += ["--catalogue", str(catalogue), "--datasets", *datasets]
    return main([*argv, "--out", str(out / TABLES[0]), "--attention-out", str(out / TABLES[1])])


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    pretrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    out = tmp_path / "embeddings"
    assert _embed(pretrained, out, ["alpha"]) == 0
    before = output_files(out)
    assert set(SET) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    # More runs: this run's tables (and records) differ from the last run's, byte for byte.
    code = _embed(pretrained, out, ["alpha", "beta"])
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, SET, failing)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    pretrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed: a SIGTERM at a record ended the job at once, this run's
    tables beside the last run's records. It exits 143 through the set now."""
    out = tmp_path / "embeddings"
    assert _embed(pretrained, out, ["alpha"]) == 0
    before = output_files(out)
    capfd.readouterr()
    with sigterm_at_record(monkeypatch, RECORDS[1]), pytest.raises(SystemExit) as stopped:
        _embed(pretrained, out, ["alpha", "beta"])
    err = capfd.readouterr().err
    assert stopped.value.code == 128 + signal.SIGTERM, err
    assert output_files(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert "lcm embed: stopped by SIGTERM while writing its outputs" in err, err
    assert f"the earlier run's {', '.join(SET)} put back as they were" in err, err
