"""``lcm finetune``'s three files and their provenance records are all this run's or all the
last run's after a failure.

Written one after another, a full disk at ``model.json`` left the new weights beside the last
run's ``model.json`` (refused later on its checksum), and one at ``history.tsv`` a new model
beside the last run's history. The records were written after the set: a full disk at one
left this run's model beside the last run's records (``lcm provenance verify`` failed on it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import finetune_argv, pretrained_store
from helpers.output_set import (
    VerbSet,
    check_first_run_cut_short,
    check_full_disk_at,
    check_sigterm_at_record,
    with_records,
)

import lcm.train.finetune as finetune_module
from lcm.cli import main
from lcm.train.outputs import CHECKPOINT_FILES

SET = with_records(CHECKPOINT_FILES)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def finetune(tmp_path_factory: pytest.TempPathFactory) -> VerbSet:
    """``lcm finetune`` on beta of a checkpoint pretrained on alpha: seed 1, then (so that this
    run's files differ from the last run's, byte for byte) seed 2."""
    store, catalogue, pre = pretrained_store(tmp_path_factory.mktemp("finetune-set"), 24, 20)

    def run(out: Path, seed: int) -> int:
        return main(finetune_argv(store, catalogue, pre, out, "--seed", str(seed)))

    return VerbSet("finetune", SET, lambda out: run(out, 1), lambda out: run(out, 2))


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    finetune, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    check_full_disk_at(finetune, tmp_path / "ft", failing, monkeypatch, capfd)


def test_a_first_run_cut_short_leaves_no_file_of_the_set(
    finetune, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    removed = ("model.safetensors", "model.json")
    out = tmp_path / "ft"
    check_first_run_cut_short(
        finetune, out, finetune_module, "history.tsv", removed, monkeypatch, capfd
    )


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    finetune, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed at the writes: a SIGTERM there ended the job at once, this
    run's model beside the last run's records. It exits 143 through the set now."""
    check_sigterm_at_record(finetune, tmp_path / "ft", "model.prov.json", monkeypatch, capfd)
