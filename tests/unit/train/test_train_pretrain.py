"""Pretraining: outputs and their formats, learning, determinism, hold-out and settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.model import TINY, make_catalogue, make_cohort, pretrain_cohort
from safetensors.torch import load_file

from lcm.exceptions import ConfigError, InputDataError
from lcm.io.run_digests import connectome_digests, decode_digests, matching_sketches
from lcm.model.checkpoint import checkpoint_layout, load_checkpoint
from lcm.model.targets import NA_LEVEL, QueryLayout, encode_targets, not_applicable
from lcm.store.cohort import Cohort
from lcm.train.heldout import HOLDOUT_FRACTION, holdout_split
from lcm.train.pretrain import _mean_loss, _monitor_sample, pretrain

SETTINGS = {"epochs": 25, "batch_size": 16, "lr": 0.003}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("pretrain")
    catalogue = make_catalogue(tmp)
    cohort = pretrain_cohort(80)
    summary = pretrain(cohort, catalogue, TINY, SETTINGS, seed=7, out_dir=tmp / "out")
    return tmp / "out", summary, catalogue, cohort


def test_outputs_and_formats(trained) -> None:
    out, summary, catalogue, cohort = trained
    assert {p.name for p in out.iterdir()} == {
        "model.safetensors",
        "model.json",
        "history.tsv",
        "bei_eval.tsv",
        # The state at the last step, kept for a retry whose outputs were deleted after they
        # were written (a time limit striking then): it rewrites them without training.
        "train_state",
    }
    meta = json.loads((out / "model.json").read_text())
    assert meta["atlas"] == "toy" and meta["n_rois"] == 13 and meta["seed"] == 7
    assert meta["roi_names"] == cohort.roi_names
    assert meta["catalogue"] == catalogue.to_dict()
    assert set(meta["standardisation"]) == {"age", "bmi"}  # fit on numeric variables only
    assert meta["training"]["ssl_mask_ratio"] == 0.15  # schema default filled in
    assert len(meta["data_fingerprint"]) == 64 and summary["n_runs_heldout"] == 8
    # Every run it saw, by content (held-out ones too), for evaluate's leakage check.
    seen = decode_digests(meta["data"]["run_digests"])
    assert np.array_equal(seen, np.unique(connectome_digests(cohort.fc))) and len(seen) == 80
    assert matching_sketches(cohort.fc, meta["data"]["run_sketches"]).all()
    assert [g["name"] for g in meta["query_layout"]] == ["age", "sex", "handedness", "bmi"]
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert list(history.columns) == [
        "epoch",
        "loss_total",
        "loss_age",
        "loss_sex",
        "loss_handedness",
        "loss_bmi",
        "loss_ssl",
        "train_eval_loss",
        "val_loss",
        "lr",
    ]
    assert history["epoch"].tolist() == list(range(1, 26))
    evaluation = pd.read_csv(out / "bei_eval.tsv", sep="\t")
    assert list(evaluation.columns) == [
        "variable",
        "kind",
        "metric",
        "model",
        "baseline",
        "chance",
        "ci_low",
        "ci_high",
        "n",
        "n_subjects",
    ]
    assert {"mse_standardised", "r2", "accuracy", "balanced_accuracy", "auc"} <= set(
        evaluation["metric"]
    )
    model, _ = load_checkpoint(out, atlas="toy", n_rois=13, catalogue=catalogue)
    assert model.config.n_queries == 8  # age 1, sex 2, handedness 3 + n/a, bmi 1


def test_loss_falls_and_held_out_beats_baseline(trained) -> None:
    out = trained[0]
    history = pd.read_csv(out / "history.tsv", sep="\t")
    first, last = history.iloc[:3].mean(), history.iloc[-3:].mean()
    assert last["loss_age"] < 0.5 * first["loss_age"]
    assert last["loss_ssl"] < first["loss_ssl"]
    evaluation = pd.read_csv(out / "bei_eval.tsv", sep="\t").set_index(["variable", "metric"])
    age = evaluation.loc[("age", "mse_standardised")]
    assert age["model"] < 0.6 * age["baseline"]


def test_history_sets_val_loss_beside_its_own_quantity_on_training_runs(trained) -> None:
    """train_eval_loss and val_loss are one quantity (the unweighted mean of the last
    layer's per-variable losses, eval mode) on training and held-out runs; loss_total, the
    weighted objective with the self-supervised term, is another."""
    out, _, catalogue, cohort = trained
    history = pd.read_csv(out / "history.tsv", sep="\t")
    model, meta = load_checkpoint(out, atlas="toy", n_rois=13, catalogue=catalogue)
    layout = checkpoint_layout(meta)
    train_idx, val_idx = holdout_split(cohort.groups, HOLDOUT_FRACTION, 7)
    train, val = cohort.subset(train_idx), cohort.subset(val_idx)
    stats = meta["standardisation"]

    def mean_loss(part) -> float:
        absent = not_applicable(part.ids["dataset"], catalogue, layout)
        targets = encode_targets(part.variables, layout, stats, absent)
        return _mean_loss(model, part.fc, targets, layout, torch.device("cpu"))

    sample = train.subset(_monitor_sample(len(train), len(val), 7))
    last = history.iloc[-1]  # the saved weights are the last epoch's (select_epoch: last)
    assert last["train_eval_loss"] == pytest.approx(mean_loss(sample), rel=1e-4)
    assert last["val_loss"] == pytest.approx(mean_loss(val), rel=1e-4)
    assert last["train_eval_loss"] != pytest.approx(last["loss_total"], rel=0.05)


class _FixedOutputs(torch.nn.Module):
    """A model whose outputs are a table: row ``i`` for the connectome whose ``[0, 0]`` is i."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def predict(self, fc: torch.Tensor) -> torch.Tensor:
        return self.table[fc[:, 0, 0].long()]


def test_held_out_loss_leaves_the_not_applicable_rows_out() -> None:
    """A diagnosis most rows of which are n/a (datasets without it): the loss that chooses the
    epoch and is history's val_loss counted those easy rows, and so rewarded telling the
    datasets apart. Two models alike but for their n/a logits now score the same."""
    layout = QueryLayout().append("age", "continuous")
    layout = layout.append("parkinsons", "binary", ("control", "PD", NA_LEVEL))
    dx = [NA_LEVEL] * 8 + ["control", "PD", "PD", "control"]
    variables = pd.DataFrame({"age": np.linspace(20, 70, 12), "parkinsons": dx})
    targets = encode_targets(variables, layout, {"age": {"mean": 45.0, "std": 15.0}})
    fc = np.zeros((12, 3, 3), dtype=np.float32)
    fc[:, 0, 0] = np.arange(12)
    rng = np.random.default_rng(0)
    outputs = torch.from_numpy(rng.standard_normal((12, 4)).astype(np.float32))
    sure, unsure = outputs.clone(), outputs.clone()
    sure[:8, 3], unsure[:8, 3] = 9.0, -3.0  # n/a answered well, or badly, on the n/a rows
    cpu = torch.device("cpu")
    a, b = (_mean_loss(_FixedOutputs(t), fc, targets, layout, cpu) for t in (sure, unsure))
    assert a == pytest.approx(b, abs=1e-6)
    # The mean of age's MSE and the diagnosis's cross-entropy over its own levels on the 4
    # runs that record it (as bei_eval.tsv scores it).
    truth = torch.tensor([0, 1, 1, 0])
    ce = torch.nn.functional.cross_entropy(outputs[8:, 1:3], truth)
    z = torch.from_numpy((variables["age"].to_numpy(np.float32) - 45) / 15)
    mse = torch.mean((outputs[:, 0] - z) ** 2)
    assert a == pytest.approx(float((ce + mse) / 2), rel=1e-5)


def test_same_seed_same_weights(trained, tmp_path: Path) -> None:
    _, _, catalogue, cohort = trained
    short = {**SETTINGS, "epochs": 3}
    for name, seed in (("a", 8), ("b", 8), ("c", 9)):
        pretrain(cohort, catalogue, TINY, short, seed=seed, out_dir=tmp_path / name)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert all(bool((a[k] == b[k]).all()) for k in a)
    assert not bool((a["queries"] == c["queries"]).all())
    assert (tmp_path / "a/history.tsv").read_text() == (tmp_path / "b/history.tsv").read_text()


def test_holdout_keeps_subjects_together() -> None:
    groups = np.repeat([f"d/s{i}" for i in range(30)], 3)  # 3 runs per subject
    train, held = holdout_split(groups, 0.1, seed=0)
    assert len(held) == 9 and len(train) == 81
    assert not set(groups[train]) & set(groups[held])
    assert len(holdout_split(groups[:27], 0.1, seed=0)[1]) == 0  # 9 subjects: no hold-out


def test_bad_settings_and_data_are_refused(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path)
    cohort = pretrain_cohort(12)
    with pytest.raises(
        ConfigError,
        match=r"config: unknown key 'epoch' \(did you mean 'epochs'\?\) under 'pretrain'",
    ):
        pretrain(cohort, catalogue, TINY, {"epoch": 3}, 0, tmp_path / "o")
    with pytest.raises(ConfigError, match=r"key 'pretrain.lr': .*received -1"):
        pretrain(cohort, catalogue, TINY, {"lr": -1}, 0, tmp_path / "o")
    cohort.fc[2, 0, 1] = np.nan
    with pytest.raises(InputDataError, match=r"1 connectome\(s\) contain NaN"):
        pretrain(cohort, catalogue, TINY, {"epochs": 1}, 0, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_cohort_of_constant_variables_is_refused_as_such(tmp_path: Path) -> None:
    """Every variable observed but constant (a store of one subject): the error said "no
    catalogue variable has observed values"."""
    catalogue = make_catalogue(tmp_path)
    cohort = pretrain_cohort(12)
    for name in cohort.variables.columns:
        cohort.variables[name] = cohort.variables[name].iloc[0]
    with pytest.raises(InputDataError, match=r"no catalogue variable has two different values"):
        pretrain(cohort, catalogue, TINY, {"epochs": 1}, 0, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_heldout_epoch_selection_keeps_the_best_epoch(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path)
    cohort = pretrain_cohort(60)
    settings = {**SETTINGS, "epochs": 6, "select_epoch": "heldout"}
    pretrain(cohort, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "sel")
    meta = json.loads((tmp_path / "sel" / "model.json").read_text())
    history = pd.read_csv(tmp_path / "sel" / "history.tsv", sep="\t")
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert meta["selected_epoch"] == best


def test_pretraining_writes_no_ridge_maps_and_leaves_those_beside_it(trained, tmp_path) -> None:
    """The bei-linear maps are lcm bei-maps's (a job of their own): a pretraining neither
    writes them nor removes them; maps of other data are refused where they are read
    (their data fingerprint against model.json's), not deleted here."""
    _, _, catalogue, cohort = trained
    out = tmp_path / "pre"
    short = {**SETTINGS, "epochs": 1}
    pretrain(cohort, catalogue, TINY, short, seed=1, out_dir=out)
    assert not (out / "bei_linear.npz").exists()
    (out / "bei_linear.npz").write_bytes(b"maps")
    pretrain(cohort, catalogue, TINY, short, seed=1, out_dir=out)
    assert (out / "bei_linear.npz").read_bytes() == b"maps"
    meta = json.loads((out / "model.json").read_text())
    assert meta["data_fingerprint"] == cohort.fingerprint(catalogue)


def test_standardisation_weighs_each_training_subject_once(tmp_path: Path) -> None:
    """A subject with three runs weighs as much as one with a single run."""
    many = make_cohort(12, seed=4, runs_per_subject=3)
    one = make_cohort(12, seed=5)
    one.ids["subject"] = "t" + one.ids["subject"]
    cohort = Cohort(
        ids=pd.concat([many.ids, one.ids], ignore_index=True),
        fc=np.concatenate([many.fc, one.fc]),
        variables=pd.concat([many.variables, one.variables], ignore_index=True),
        roi_names=many.roi_names,
        atlas=many.atlas,
    )
    cohort.variables["dx"] = None
    settings = {"epochs": 1, "batch_size": 8}
    pretrain(cohort, make_catalogue(tmp_path), TINY, settings, 3, tmp_path / "m")
    _, meta = load_checkpoint(tmp_path / "m")
    train, _ = holdout_split(cohort.groups, HOLDOUT_FRACTION, 3)
    age = cohort.variables["age"].to_numpy()[train]
    groups = cohort.groups[train]
    subjects = pd.Series(age).groupby(groups).mean()  # one age per subject
    assert meta["standardisation"]["age"]["mean"] == pytest.approx(subjects.mean())
    assert meta["standardisation"]["age"]["std"] == pytest.approx(subjects.std(ddof=0))
    assert meta["standardisation"]["age"]["mean"] != pytest.approx(age.mean())
