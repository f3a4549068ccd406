"""``lcm pretrain``'s four files and their provenance records are all this run's or all the
last run's after a failure.

A full disk at ``history.tsv`` left the new weights and ``model.json`` beside the last run's
history and held-out metrics; a full disk between the weights and ``model.json`` left new
weights beside an old ``model.json``, refused later on its checksum (with ``checkpoint_every:
0``, training again). The records were written after the set: a full disk at one left this
run's model beside the last run's records (``lcm provenance verify`` failed on it).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv
from helpers.output_set import assert_last_runs_set, full_disk_at, output_files

import lcm.train.pretrain as pretrain_module
from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.provenance import provenance_path
from lcm.train.outputs import PRETRAIN_FILES

# The set, in the order it is written: the files, then their records.
RECORDS = tuple(provenance_path(Path(name)).name for name in PRETRAIN_FILES)
SET = (*PRETRAIN_FILES, *RECORDS)

pytestmark = pytest.mark.hostile


def _pretrain(tmp_path: Path, out: Path, seed: int) -> int:
    settings = '{"epochs": 1, "batch_size": 8, "checkpoint_every": 0}'
    return main(pretrain_argv(tmp_path / "store", tmp_path / "variables.yaml", out, settings, seed))


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], failing
) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 24, seed=0)
    out = tmp_path / "pt"
    assert _pretrain(tmp_path, out, seed=1) == 0
    before = output_files(out)
    assert set(SET) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    # Another seed: this run's files differ from the last run's, byte for byte.
    code = _pretrain(tmp_path, out, seed=2)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, SET, failing)


def test_a_first_run_cut_short_leaves_no_file_of_the_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 24, seed=0)
    real_write_tsv = pretrain_module.write_tsv

    def full_at_bei_eval(path, *args, **kwargs) -> None:
        if Path(path).name == "bei_eval.tsv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write_tsv(path, *args, **kwargs)

    monkeypatch.setattr(pretrain_module, "write_tsv", full_at_bei_eval)
    out = tmp_path / "pt"
    code = _pretrain(tmp_path, out, seed=1)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert not set(SET) & {p.name for p in out.iterdir()}
    assert "this run's model.safetensors, model.json, history.tsv removed" in err, err
    assert f"no {', '.join(SET)} (none before this run)" in err, err
