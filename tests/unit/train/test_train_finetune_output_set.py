"""``lcm finetune``'s three files and their provenance records are all this run's or all the
last run's after a failure.

Written one after another, a full disk at ``model.json`` left the new weights beside the last
run's ``model.json`` (refused later on its checksum), and one at ``history.tsv`` a new model
beside the last run's history. The records were written after the set: a full disk at one
left this run's model beside the last run's records (``lcm provenance verify`` failed on it).
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv, write_catalogue
from helpers.output_set import (
    assert_last_runs_set,
    full_disk_at,
    output_files,
    sigterm_at_record,
)

import lcm.train.finetune as finetune_module
from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.io.provenance import provenance_path
from lcm.train.outputs import CHECKPOINT_FILES

# The set, in the order it is written: the files, then their records.
RECORDS = tuple(provenance_path(Path(name)).name for name in CHECKPOINT_FILES)
SET = (*CHECKPOINT_FILES, *RECORDS)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A store of a pretraining dataset (alpha) and a labelled one (beta), and a checkpoint."""
    root = tmp_path_factory.mktemp("finetune-set")
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    store = root / "store"
    add_store_dataset(root, store, catalogue, "alpha", "toy", 24, seed=0)
    add_store_dataset(root, store, catalogue, "beta", "toy", 20, seed=1)
    pre = root / "pre"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    return store, catalogue, pre


def _finetune(pretrained: tuple[Path, Path, Path], out: Path, seed: int) -> int:
    store, catalogue, pre = pretrained
    argv = ["finetune", "--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)]
    argv += ["--checkpoint", str(pre), "--dataset", "beta", "--label", "dx"]
    argv += ["--positive", "patient", "--settings", '{"epochs": 1, "batch_size": 8}']
    return main([*argv, "--seed", str(seed), "--out-dir", str(out), "--threads", "1"])


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    pretrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    out = tmp_path / "ft"
    assert _finetune(pretrained, out, seed=1) == 0
    before = output_files(out)
    assert set(SET) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    # Another seed: this run's files differ from the last run's, byte for byte.
    code = _finetune(pretrained, out, seed=2)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, SET, failing)


def test_a_first_run_cut_short_leaves_no_file_of_the_set(
    pretrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    real_write_tsv = finetune_module.write_tsv

    def full_at_history(path, *args, **kwargs) -> None:
        if Path(path).name == "history.tsv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write_tsv(path, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "write_tsv", full_at_history)
    out = tmp_path / "ft"
    capfd.readouterr()
    code = _finetune(pretrained, out, seed=1)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert not set(SET) & {p.name for p in out.iterdir()}
    assert "this run's model.safetensors, model.json removed" in err, err
    assert f"no {', '.join(SET)} (none before this run)" in err, err


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    pretrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed at the writes: a SIGTERM there ended the job at once, this
    run's model beside the last run's records. It exits 143 through the set now."""
    out = tmp_path / "ft"
    assert _finetune(pretrained, out, seed=1) == 0
    before = output_files(out)
    capfd.readouterr()
    with sigterm_at_record(monkeypatch, RECORDS[1]), pytest.raises(SystemExit) as stopped:
        _finetune(pretrained, out, seed=2)
    err = capfd.readouterr().err
    assert stopped.value.code == 128 + signal.SIGTERM, err
    assert output_files(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert "lcm finetune: stopped by SIGTERM while writing its outputs" in err, err
    assert f"the earlier run's {', '.join(SET)} put back as they were" in err, err
