"""``lcm pretrain``'s four files are all this run's or all the last run's after a failure.

A full disk at ``history.tsv`` left the new weights and ``model.json`` beside the last run's
history and held-out metrics; a full disk between the weights and ``model.json`` left new
weights beside an old ``model.json``, refused later on its checksum (with ``checkpoint_every:
0``, training again).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, TINY, add_store_dataset

import lcm.io.atomic as atomic
import lcm.train.pretrain as pretrain_module
from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.lock import LOCK_NAME
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.train.outputs import PRETRAIN_FILES

pytestmark = pytest.mark.hostile


def _pretrain(tmp_path: Path, out: Path, seed: int) -> int:
    return main(
        [
            "pretrain",
            "--store",
            str(tmp_path / "store"),
            "--atlas",
            "toy",
            "--catalogue",
            str(tmp_path / "variables.yaml"),
            "--datasets",
            "alpha",
            "--model",
            json.dumps(TINY),
            "--settings",
            '{"epochs": 1, "batch_size": 8, "checkpoint_every": 0}',
            "--seed",
            str(seed),
            "--out-dir",
            str(out),
            "--threads",
            "1",
        ]
    )


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` but the lock (which names the run holding it, and when)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK_NAME}


@pytest.mark.parametrize("failing", PRETRAIN_FILES[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], failing
) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 24, seed=0)
    out = tmp_path / "pt"
    assert _pretrain(tmp_path, out, seed=1) == 0
    before = _files(out)
    assert set(PRETRAIN_FILES) <= set(before)

    real_atomic_path = atomic.atomic_path

    @contextlib.contextmanager
    def full_at(path, *args, **kwargs):
        # As a full disk fails it: within the atomic write (its temporary removed, the error
        # naming the output), the outputs before it written.
        with real_atomic_path(path, *args, **kwargs) as tmp:
            if Path(path).name == failing:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            yield tmp

    monkeypatch.setattr(atomic, "atomic_path", full_at)
    capfd.readouterr()
    # Another seed: this run's files differ from the last run's, byte for byte.
    code = _pretrain(tmp_path, out, seed=2)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert f"could not write {out / failing}" in err and "No space left on device" in err
    after = _files(out)
    assert after == before, sorted(k for k in after if after.get(k) != before.get(k))
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    # The log says what happened to each file: this run's removed, the last run's back.
    replaced = PRETRAIN_FILES[: PRETRAIN_FILES.index(failing)]
    assert f"this run's {', '.join(replaced)} removed" in err, err
    assert f"the earlier run's {', '.join(PRETRAIN_FILES)} put back as they were" in err, err


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
    assert not set(PRETRAIN_FILES) & {p.name for p in out.iterdir()}
    assert "this run's model.safetensors, model.json, history.tsv removed" in err, err
    assert f"no {', '.join(PRETRAIN_FILES)} (none before this run)" in err, err
