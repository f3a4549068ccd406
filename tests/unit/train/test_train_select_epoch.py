"""``pretrain.select_epoch: heldout``: half of the hold-out chooses the epoch, and only the
other half is scored in ``bei_eval.tsv`` (the report's 'held out' BEI table)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.model import TINY, make_catalogue, make_cohort

from lcm.train import pretrain as pretrain_mod
from lcm.train.heldout import holdout_split, selection_split
from lcm.train.pretrain import pretrain


def test_selection_split_halves_the_hold_out_by_subject() -> None:
    groups = np.repeat([f"d/s{i}" for i in range(7)], 3)  # 3 runs per subject
    choose, report = selection_split(groups, seed=4)
    assert len(choose) == 9 and len(report) == 12  # 3 subjects choose, 4 are reported
    assert not set(groups[choose]) & set(groups[report])
    assert sorted([*choose, *report]) == list(range(21))
    again = selection_split(groups, seed=4)
    assert np.array_equal(again[0], choose) and np.array_equal(again[1], report)
    assert len(selection_split(groups[:3], seed=4)[0]) == 0  # one subject: reported only


@pytest.mark.usefixtures("one_thread")
def test_epoch_selection_keeps_the_reported_subjects_out(tmp_path: Path) -> None:
    """select_epoch: heldout chose the epoch on the very subjects bei_eval.tsv reported."""
    catalogue = make_catalogue(tmp_path)
    cohort = make_cohort(60, runs_per_subject=2)
    cohort.variables["dx"] = None
    held = set(cohort.groups[holdout_split(cohort.groups, 0.1, 3)[1]])
    settings = {"epochs": 4, "batch_size": 16, "lr": 0.003}
    summaries = {}
    for name, select in (("last", "last"), ("sel", "heldout")):
        run = {**settings, "select_epoch": select}
        summaries[name] = pretrain(cohort, catalogue, TINY, run, 3, tmp_path / name, device="cpu")
    meta = json.loads((tmp_path / "sel" / "model.json").read_text())["data"]
    reported, chose = set(meta["heldout_subjects"]), set(meta["selection_subjects"])
    assert reported and chose and not reported & chose and reported | chose == held
    evaluation = pd.read_csv(tmp_path / "sel" / "bei_eval.tsv", sep="\t")
    assert evaluation.query("variable == 'age'")["n"].max() == 2 * len(reported)
    assert summaries["sel"]["n_runs_selection"] == 2 * len(chose)
    # The default (last epoch) chooses nothing and reports the whole hold-out.
    meta = json.loads((tmp_path / "last" / "model.json").read_text())["data"]
    assert set(meta["heldout_subjects"]) == held and "selection_subjects" not in meta
    assert summaries["last"]["n_runs_heldout"] == 2 * len(held)


@pytest.mark.usefixtures("one_thread")
def test_task_weights_are_those_of_the_selected_epoch(tmp_path: Path, monkeypatch) -> None:
    """model.json held the selected epoch's weights beside the last epoch's task weights."""
    objectives: list = []
    snapshots: list[dict[str, float]] = []

    class SpyObjective(pretrain_mod.PretrainObjective):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            objectives.append(self)

    def rising_loss(model, fc, targets, layout, device) -> float:
        # Called twice per epoch, the choosing subjects first: their loss rises, so epoch 1.
        snapshots.append(objectives[-1].weighting.weights())
        return float(len(snapshots))

    monkeypatch.setattr(pretrain_mod, "PretrainObjective", SpyObjective)
    monkeypatch.setattr(pretrain_mod, "_mean_loss", rising_loss)
    catalogue, cohort = make_catalogue(tmp_path), make_cohort(60)
    cohort.variables["dx"] = None
    settings = {"epochs": 4, "batch_size": 16, "lr": 0.03, "select_epoch": "heldout"}
    pretrain(cohort, catalogue, TINY, settings, 3, tmp_path / "sel")
    meta = json.loads((tmp_path / "sel" / "model.json").read_text())
    assert meta["selected_epoch"] == 1 and len(snapshots) == 8
    first, last = snapshots[0], snapshots[-1]
    assert first != pytest.approx(last, rel=1e-3)  # the weights did move after epoch 1
    assert meta["task_weights"] == pytest.approx(first, rel=1e-6)
