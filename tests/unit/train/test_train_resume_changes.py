"""What a resumed pretraining run must not carry over: a state saved for other data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.model import TINY, make_catalogue, pretrain_cohort
from safetensors.torch import load_file

from lcm.exceptions import LCMError, OutputOwnershipError
from lcm.train import objective
from lcm.train.pretrain import STATE_DIR, pretrain

SETTINGS = {"epochs": 4, "batch_size": 16, "lr": 0.003, "checkpoint_every": 3}

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _killed_in_step(monkeypatch, step: int) -> None:
    original, calls = objective.PretrainObjective.forward, []

    def dying_forward(self, fc, shard):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt("killed")
        return original(self, fc, shard)

    monkeypatch.setattr(objective.PretrainObjective, "forward", dying_forward)


def test_a_state_saved_for_other_variables_is_not_resumed(tmp_path: Path, monkeypatch) -> None:
    """A corrected phenotype file (same connectomes, same settings) is another training set:
    the rerun starts afresh instead of mixing the old targets' state with the new ones."""
    catalogue, old = make_catalogue(tmp_path), pretrain_cohort(50)
    new = pretrain_cohort(50)
    # Ages that were read into the wrong rows, corrected (a shift would standardise away).
    new.variables["age"] = new.variables["age"].to_numpy()[::-1]
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(old, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    assert (tmp_path / "run" / STATE_DIR / "train_state.json").is_file()
    monkeypatch.undo()
    pretrain(new, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    pretrain(new, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "fresh")
    rerun, fresh = _weights(tmp_path / "run"), _weights(tmp_path / "fresh")
    assert all(torch.equal(rerun[k], fresh[k]) for k in fresh)


def test_a_resumed_run_selects_among_the_epochs_before_the_kill(
    tmp_path: Path, monkeypatch
) -> None:
    """``select_epoch: heldout``: the best epoch so far is part of the saved state, so a run
    killed after it (and resumed) keeps the same epoch and weights as the uninterrupted run."""
    settings = {**SETTINGS, "epochs": 8, "lr": 0.03, "select_epoch": "heldout"}
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(60)
    pretrain(cohort, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "whole")
    _killed_in_step(monkeypatch, 29)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "resumed")
    monkeypatch.undo()
    pretrain(cohort, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "resumed")
    whole, resumed = (
        json.loads((tmp_path / d / "model.json").read_text()) for d in ("whole", "resumed")
    )
    # The lowest held-out loss (epoch 2) came long before the state the rerun resumed from
    # (step 27, in epoch 7): without it in the state, the rerun chose among epochs 7 and 8.
    history = pd.read_csv(tmp_path / "whole" / "history.tsv", sep="\t")
    assert whole["selected_epoch"] == 2, history["val_loss"].tolist()
    assert resumed["selected_epoch"] == 2
    assert resumed["task_weights"] == whole["task_weights"]  # epoch 2's, carried in the state
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_checkpoint_every_keeps_the_state(tmp_path: Path, monkeypatch, caplog) -> None:
    """How often the state is saved changes no weight: a rerun with another checkpoint_every
    resumes, and ends as the uninterrupted run."""
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "whole")
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="lcm.train.state"):
        pretrain(
            cohort,
            catalogue,
            TINY,
            {**SETTINGS, "checkpoint_every": 5},
            seed=4,
            out_dir=tmp_path / "run",
        )
    assert "resuming from step 6" in caplog.text and "ignoring" not in caplog.text
    whole, rerun = _weights(tmp_path / "whole"), _weights(tmp_path / "run")
    assert all(torch.equal(whole[k], rerun[k]) for k in whole)
    # model.json names both jobs that trained it (one, for the uninterrupted run).
    sessions = {
        name: json.loads((tmp_path / name / "model.json").read_text())["training_sessions"]
        for name in ("whole", "run")
    }
    assert [s["from_step"] for s in sessions["whole"]] == [0]
    assert [s["from_step"] for s in sessions["run"]] == [0, 6]
    assert all(s["host"] and s["started"] for s in sessions["run"])


def test_a_run_resumed_with_checkpoint_every_0_leaves_a_finished_state(
    tmp_path: Path, monkeypatch
) -> None:
    """Resumed with checkpoint_every 0 (a setting that reruns nothing), the run finished with
    its state left at the resumed step: lcm prune-states kept it (3-4x the weights) as an
    unfinished run's. It is brought to the final step, and prune-states removes it."""
    from lcm.cli import main

    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    monkeypatch.undo()
    pretrain(cohort, catalogue, TINY, {**SETTINGS, "checkpoint_every": 0}, 4, tmp_path / "run")
    state = json.loads((tmp_path / "run" / STATE_DIR / "train_state.json").read_text())
    assert state["step"] == state["total_steps"]
    assert main(["prune-states", str(tmp_path / "run"), "--apply"]) == 0
    assert not (tmp_path / "run" / STATE_DIR).exists()


def test_a_state_of_other_settings_is_ignored_naming_them(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    monkeypatch.undo()
    saved = json.loads((tmp_path / "run" / STATE_DIR / "train_state.json").read_text())
    assert saved["fingerprint_fields"]["settings"]["lr"] == 0.003
    assert "checkpoint_every" not in saved["fingerprint_fields"]["settings"]
    with caplog.at_level("INFO", logger="lcm.train.state"):
        pretrain(
            cohort, catalogue, TINY, {**SETTINGS, "lr": 0.002}, seed=5, out_dir=tmp_path / "run"
        )
    (warning,) = [
        r.getMessage() for r in caplog.records if r.name == "lcm.train.state" and r.levelno > 20
    ]
    assert "differs in seed 4 -> 5, settings.lr 0.003 -> 0.002" in warning


def test_a_run_resumed_with_other_threads_says_so_and_records_each_sessions(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    """Threads change the rounding of every sum: a state saved with 1 thread and resumed with 2
    gave weights equal to neither uninterrupted run, and nothing said so."""
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    monkeypatch.undo()
    torch.set_num_threads(2)
    try:
        with caplog.at_level("WARNING", logger="lcm.train.loop"):
            pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    finally:
        torch.set_num_threads(1)  # the fixture's (one_thread)
    warned = [r.getMessage() for r in caplog.records if "resumed with" in r.getMessage()]
    assert len(warned) == 1 and "threads 1 -> 2" in warned[0], caplog.text
    sessions = json.loads((tmp_path / "run" / "model.json").read_text())["training_sessions"]
    assert [(s["from_step"] > 0, s["threads"], s["device"]) for s in sessions] == [
        (False, 1, "cpu"),
        (True, 2, "cpu"),
    ]


def test_a_state_folder_that_is_a_link_is_refused_and_nothing_behind_it_deleted(
    tmp_path: Path, monkeypatch
) -> None:
    """train_state/ moved to a scratch disk and linked back: a rerun of other settings deleted
    the state files in the link's target (a user's train_state.json there too), then failed
    with an unexpected error. Refused, naming the link; every file behind it kept."""
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    _killed_in_step(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "run")
    monkeypatch.undo()
    state, scratch = tmp_path / "run" / STATE_DIR, tmp_path / "scratch"
    state.rename(scratch)
    state.symlink_to(scratch, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in scratch.iterdir()}
    assert "train_state.json" in before
    for settings in ({**SETTINGS, "lr": 0.002}, SETTINGS):  # another run's state, and its own
        with pytest.raises(OutputOwnershipError, match=rf"{state} is a link") as info:
            pretrain(cohort, catalogue, TINY, settings, seed=4, out_dir=tmp_path / "run")
        assert "--out-dir" in info.value.hint
        assert {p.name: p.read_bytes() for p in scratch.iterdir()} == before
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_diverged_run_stops_naming_the_epoch_and_writes_no_model(tmp_path: Path) -> None:
    """At lr 100 the loss went NaN, and the NaN model was saved with exit 0 (finetune and embed
    took it). The run stops at the first non-finite epoch loss, naming it and the fix."""
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    with pytest.raises(LCMError, match=r"training diverged: loss_total is nan in epoch \d") as e:
        pretrain(cohort, catalogue, TINY, {**SETTINGS, "lr": 100.0}, seed=4, out_dir=tmp_path / "r")
    assert "Lower the learning rate (lr 100)" in e.value.hint
    assert not (tmp_path / "r" / "model.safetensors").exists()
