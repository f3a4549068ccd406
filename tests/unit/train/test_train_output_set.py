"""``lcm pretrain``'s four files and their provenance records are all this run's or all the
last run's after a failure.

A full disk at ``history.tsv`` left the new weights and ``model.json`` beside the last run's
history and held-out metrics; a full disk between the weights and ``model.json`` left new
weights beside an old ``model.json``, refused later on its checksum (with ``checkpoint_every:
0``, training again). The records were written after the set: a full disk at one left this
run's model beside the last run's records (``lcm provenance verify`` failed on it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv, write_catalogue
from helpers.output_set import (
    VerbSet,
    check_first_run_cut_short,
    check_full_disk_at,
    with_records,
)

import lcm.train.pretrain as pretrain_module
from lcm.cli import main
from lcm.train.outputs import PRETRAIN_FILES

SET = with_records(PRETRAIN_FILES)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory: pytest.TempPathFactory) -> VerbSet:
    """``lcm pretrain`` on a store of one dataset: seed 1, then (so that this run's files
    differ from the last run's, byte for byte) seed 2."""
    root = tmp_path_factory.mktemp("pretrain-set")
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    add_store_dataset(root, root / "store", catalogue, "alpha", "toy", 24, seed=0)
    settings = '{"epochs": 1, "batch_size": 8, "checkpoint_every": 0}'

    def run(out: Path, seed: int) -> int:
        return main(pretrain_argv(root / "store", catalogue, out, settings, seed))

    return VerbSet("pretrain", SET, lambda out: run(out, 1), lambda out: run(out, 2))


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    pretrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    check_full_disk_at(pretrain, tmp_path / "pt", failing, monkeypatch, capfd)


def test_a_first_run_cut_short_leaves_no_file_of_the_set(
    pretrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    removed = ("model.safetensors", "model.json", "history.tsv")
    out = tmp_path / "pt"
    check_first_run_cut_short(
        pretrain, out, pretrain_module, "bei_eval.tsv", removed, monkeypatch, capfd
    )
