"""LCMClassifier: fitting, pseudo-labels from fit() data only, unlabeled subjects, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.model import (
    CATALOGUE,
    TINY,
    make_catalogue,
    make_cohort,
    pretrain_cohort,
    spy_finetuning_targets,
    write_catalogue,
)
from safetensors.torch import load_file

from lcm.catalogue import load_catalogue
from lcm.exceptions import CheckpointError, ConfigError, InputDataError
from lcm.model.checkpoint import checkpoint_layout, load_checkpoint
from lcm.model.targets import QueryLayout, targets_from_outputs
from lcm.store.cohort import Cohort
from lcm.train import pretrain as pretrain_mod
from lcm.train.finetune import LCMClassifier, bei_targets
from lcm.train.heldout import HOLDOUT_FRACTION, holdout_split
from lcm.train.objective import PretrainStep
from lcm.train.pretrain import predict_outputs, pretrain

LEVELS = ("control", "patient")
FT = {"epochs": 12, "batch_size": 8, "lr": 0.003, "pseudo_labels": True, "pseudo_weight": 0.5}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ft")
    settings = {"epochs": 10, "batch_size": 16, "lr": 0.003}
    pretrain(pretrain_cohort(60, seed=1), make_catalogue(tmp), TINY, settings, 3, tmp / "ckpt")
    return tmp / "ckpt"


@pytest.fixture(scope="module")
def downstream():
    cohort = make_cohort(48, seed=5)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    return cohort, y


def test_fit_predict_and_learning(checkpoint: Path, downstream) -> None:
    cohort, y = downstream
    train, test = np.arange(36), np.arange(36, 48)
    clf = LCMClassifier(checkpoint, "dx", LEVELS, {**FT, "epochs": 25}, seed=0)
    clf.fit(cohort.fc[train], y[train], cohort.variables.iloc[train].drop(columns=["dx"]))
    proba = clf.predict_proba(cohort.fc[test])
    assert proba.shape == (12, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(clf.predict(cohort.fc[test])) <= {0, 1}
    assert clf.layout_.names[-1] == "dx" and clf.layout_["dx"].slice == slice(8, 10)
    assert clf.model_.config.n_queries == 10
    losses = [row["loss_dx"] for row in clf.history_]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    assert np.mean(clf.predict(cohort.fc[train]) == y[train]) > 0.8


def test_pseudo_labels_come_from_fit_data_only(checkpoint: Path, downstream) -> None:
    cohort, y = downstream
    fit_rows = np.arange(0, 30)
    variables = cohort.variables.iloc[fit_rows].drop(columns=["dx", "bmi"]).reset_index(drop=True)
    clf = LCMClassifier(checkpoint, "dx", LEVELS, {**FT, "epochs": 1}, seed=0)
    clf.fit(cohort.fc[fit_rows], y[fit_rows], variables)
    pretrained, _ = load_checkpoint(checkpoint)
    expected = targets_from_outputs(
        predict_outputs(pretrained, cohort.fc[fit_rows], torch.device("cpu")),
        QueryLayout(clf.layout_.groups[:-1]),
    )
    assert set(clf.pseudo_targets_) == {"age", "sex", "handedness", "bmi"}
    for name, target in expected.items():
        assert clf.pseudo_targets_[name].values.shape[0] == len(fit_rows)
        torch.testing.assert_close(clf.pseudo_targets_[name].values, target.values)
    # Predicting other subjects afterwards does not touch the pseudo-labels or the model.
    before = {k: v.clone() for k, v in clf.model_.state_dict().items()}
    clf.predict_proba(cohort.fc[30:])
    assert all(torch.equal(before[k], v) for k, v in clf.model_.state_dict().items())
    torch.testing.assert_close(clf.pseudo_targets_["age"].values, expected["age"].values)


def test_unlabeled_subjects_only_feed_the_bei_loss(checkpoint: Path, downstream) -> None:
    cohort, y = downstream
    y = y[:24].copy()
    y[::3] = -1  # a third unlabeled
    changed = cohort.fc[:24].copy()
    changed[y == -1] = cohort.fc[24:32]  # other connectomes for the unlabeled subjects
    no_bei = {**FT, "epochs": 3, "pseudo_weight": 0.0}

    def weights(fc: np.ndarray, settings: dict) -> dict:
        clf = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=2).fit(fc, y, None)
        return {k: v.clone() for k, v in clf.model_.state_dict().items()}

    a, b = weights(cohort.fc[:24], no_bei), weights(changed, no_bei)
    assert all(torch.equal(a[k], b[k]) for k in a)  # without BEI loss they contribute nothing
    with_bei = {**FT, "epochs": 3}
    c, d = weights(cohort.fc[:24], with_bei), weights(changed, with_bei)
    assert not all(torch.equal(c[k], d[k]) for k in c)  # with it, their pseudo-labels count


def test_scratch_init_and_save_round_trip(checkpoint: Path, downstream, tmp_path: Path) -> None:
    cohort, y = downstream
    pre = load_file(checkpoint / "model.safetensors")
    scratch = LCMClassifier(checkpoint, "dx", LEVELS, {**FT, "epochs": 1}, seed=0, init="scratch")
    scratch.fit(cohort.fc[:20], y[:20])
    assert scratch.pseudo_targets_ is None
    assert not torch.equal(
        scratch.model_.tokenizer.proj.weight.detach(), pre["tokenizer.proj.weight"]
    )
    clf = LCMClassifier(checkpoint, "dx", LEVELS, {**FT, "epochs": 2}, seed=0)
    clf.fit(cohort.fc[:20], y[:20])
    out = clf.save(tmp_path / "finetuned")
    meta = json.loads((out / "model.json").read_text())
    assert meta["kind"] == "finetuned" and meta["init"] == "pretrained"
    assert meta["label"] == {"name": "dx", "levels": list(LEVELS), "positive": "patient"}
    assert meta["atlas"] == "toy" and meta["standardisation"]
    assert (out / "history.tsv").read_text().startswith("epoch\tloss_total")
    model, _ = load_checkpoint(out, atlas="toy", n_rois=13)
    logits = predict_outputs(model, cohort.fc[20:25], torch.device("cpu"))[:, 8:10]
    np.testing.assert_allclose(
        torch.softmax(logits.double(), -1).numpy(), clf.predict_proba(cohort.fc[20:25]), atol=1e-6
    )


def test_invalid_inputs_are_refused(checkpoint: Path, downstream) -> None:
    cohort, y = downstream
    fc = cohort.fc[:10]
    with pytest.raises(InputDataError, match=r"expected 10 integers in \{-1, 0, 1\}"):
        LCMClassifier(checkpoint, "dx", LEVELS, FT, 0).fit(fc, np.full(10, 2))
    with pytest.raises(InputDataError, match="no labelled subject"):
        LCMClassifier(checkpoint, "dx", LEVELS, FT, 0).fit(fc, np.full(10, -1))
    with pytest.raises(ConfigError, match="checkpoint is None but init is 'pretrained'"):
        LCMClassifier(None, "dx", LEVELS, FT, 0).fit(fc, y[:10])
    with pytest.raises(ConfigError, match=r"unknown key .* under 'evaluate.finetune'"):
        LCMClassifier(checkpoint, "dx", LEVELS, {"epoch": 1}, 0).fit(fc, y[:10])
    with pytest.raises(CheckpointError, match="expects 13 ROIs, the data have 11"):
        LCMClassifier(checkpoint, "dx", LEVELS, FT, 0).fit(fc[:, :11, :11], y[:10])
    # A label the checkpoint was pretrained on says so (it said 'finetune from the pretrained
    # checkpoint, not from a finetuned one' of a pretrained one).
    with pytest.raises(InputDataError, match="pretrained with 'age' as a brain-environment") as e:
        LCMClassifier(checkpoint, "age", LEVELS, FT, 0).fit(fc, y[:10])
    # The pretraining dataset named (it said datasets.<name>.columns).
    assert e.value.hint == (
        "Pretrain without it: remove age from datasets.alpha.columns in the catalogue."
    )
    catalogue = make_catalogue(checkpoint.parent)
    with pytest.raises(InputDataError, match="pretrained with 'age'") as e:
        LCMClassifier(checkpoint, "age", LEVELS, FT, 0, catalogue=catalogue).fit(fc, y[:10])
    assert e.value.hint == (
        f"Pretrain without it: remove age from datasets.alpha.columns in the catalogue "
        f"{catalogue.path}."
    )
    with pytest.raises(InputDataError, match="not fitted"):
        LCMClassifier(checkpoint, "dx", LEVELS, FT, 0).predict(fc)


def test_scratch_without_checkpoint(downstream) -> None:
    cohort, y = downstream
    clf = LCMClassifier(None, "dx", LEVELS, {**FT, "epochs": 1}, 0, init="scratch")
    proba = clf.fit(cohort.fc[:16], y[:16]).predict_proba(cohort.fc[16:20])
    assert proba.shape == (4, 2) and clf.layout_.names == ["dx"]


TWO_DATASETS = (
    CATALOGUE
    + """  beta:
    id_column: SUB_ID
    columns:
      age: {column: AGE}
      sex: {column: SEX}
      bmi: {column: BMI}
"""
)


@pytest.mark.parametrize("pseudo", [False, True])
def test_finetuning_encodes_bei_targets_as_pretraining(
    tmp_path: Path, monkeypatch, pseudo: bool
) -> None:
    """A variable a dataset does not record is n/a in finetuning too, never pseudo-labelled."""
    alpha = make_cohort(16, seed=11)
    beta = make_cohort(16, seed=12, dataset="beta")
    beta.variables["handedness"] = None  # beta has no handedness column in the catalogue
    alpha.variables.loc[:3, "handedness"] = None  # missing where alpha records it
    cohort = Cohort(
        ids=pd.concat([alpha.ids, beta.ids], ignore_index=True),
        fc=np.concatenate([alpha.fc, beta.fc]),
        variables=pd.concat([alpha.variables, beta.variables], ignore_index=True),
        roi_names=alpha.roi_names,
        atlas=alpha.atlas,
    )
    dx = cohort.variables.pop("dx")
    catalogue = load_catalogue(write_catalogue(tmp_path, TWO_DATASETS))
    seen: list = []

    def spy_step(objective, fc, targets, *args, **kwargs):
        seen.append(targets)
        return PretrainStep(objective, fc, targets, *args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "PretrainStep", spy_step)
    settings = {"epochs": 1, "batch_size": 8, "select_epoch": "last"}
    pretrain(cohort, catalogue, TINY, settings, 3, tmp_path / "ckpt")
    train_rows, _ = holdout_split(cohort.groups, HOLDOUT_FRACTION, 3)
    pretrained = seen[0]
    handed = pretrained["handedness"]
    is_beta = cohort.ids["dataset"].to_numpy()[train_rows] == "beta"
    assert handed.present[torch.from_numpy(is_beta)].all()  # the n/a class, present

    calls = spy_finetuning_targets(monkeypatch)
    y = (dx[train_rows] == "patient").to_numpy().astype(np.int64)
    ft = {"epochs": 1, "batch_size": 8, "pseudo_labels": pseudo, "diagnosis_pseudo_labels": False}
    clf = LCMClassifier(tmp_path / "ckpt", "dx", LEVELS, ft, seed=0, catalogue=catalogue)
    clf.fit(
        cohort.fc[train_rows],
        y,
        cohort.variables.iloc[train_rows],
        groups=cohort.groups[train_rows],
    )
    finetuned = calls[-1]
    for name, target in pretrained.items():
        present = target.present
        if not pseudo:
            np.testing.assert_array_equal(finetuned[name].present.numpy(), present.numpy())
        # Every target pretraining had (n/a included) is the same; pseudo-labels fill the rest.
        np.testing.assert_allclose(
            finetuned[name].values[present].numpy(), target.values[present].numpy()
        )


def test_pseudo_labels_put_nothing_on_not_applicable(tmp_path: Path) -> None:
    """A value missing where the dataset records the variable is one of its own levels: the
    pseudo-label gave n/a ("this dataset has no such variable") about a third of its mass."""
    alpha = pretrain_cohort(30, seed=11)
    beta = pretrain_cohort(30, seed=12)
    beta.ids["dataset"], beta.variables["handedness"] = "beta", None  # beta does not record it
    catalogue = load_catalogue(write_catalogue(tmp_path, TWO_DATASETS))
    cohort = Cohort(
        ids=pd.concat([alpha.ids, beta.ids], ignore_index=True),
        fc=np.concatenate([alpha.fc, beta.fc]),
        variables=pd.concat([alpha.variables, beta.variables], ignore_index=True),
        roi_names=alpha.roi_names,
        atlas=alpha.atlas,
    )
    settings = {"epochs": 4, "batch_size": 16, "lr": 0.01}
    pretrain(cohort, catalogue, TINY, settings, 1, tmp_path / "ckpt")
    base, meta = load_checkpoint(tmp_path / "ckpt")
    layout = checkpoint_layout(meta)
    assert layout["handedness"].levels[-1] == "n/a"
    down_a, down_b = make_cohort(10, seed=9), make_cohort(6, seed=8, dataset="beta")
    down_a.variables.loc[:5, "handedness"] = None  # alpha records it: missing, to fill
    down_b.variables["handedness"] = None
    variables = pd.concat([down_a.variables, down_b.variables], ignore_index=True)
    datasets = np.array(["alpha"] * 10 + ["beta"] * 6)
    fc = np.concatenate([down_a.fc, down_b.fc])
    cpu = torch.device("cpu")
    bei, pseudo, filled_rows = bei_targets(
        base, meta, layout, fc, variables.drop(columns=["dx"]), True, cpu,
        datasets=datasets, catalogue=catalogue,
    )  # fmt: skip
    assert filled_rows is not None and filled_rows["handedness"] == 6  # alpha's 6 missing
    hand = bei["handedness"].values
    assert bei["handedness"].present.all()
    filled, own, na = hand[:6], hand[6:10], hand[10:]
    assert (filled[:, 3] == 0).all() and (filled[:, :3] > 0).all()  # exactly 0, not small
    torch.testing.assert_close(filled.sum(1), torch.ones(6))
    assert pseudo is not None and (pseudo["handedness"].values[:, 3] == 0).all()
    assert set(own.sum(1).tolist()) == {1.0} and (own[:, 3] == 0).all()  # own labels kept
    assert na.tolist() == [[0.0, 0.0, 0.0, 1.0]] * 6  # not recorded: hard n/a, never filled


def test_epochs_are_logged_at_info(downstream, caplog, monkeypatch) -> None:
    # A batch log showed no line between the start of a training run and its end (epochs were
    # DEBUG only): the first epoch and then one every EPOCH_LOG_SECONDS are INFO.
    from lcm.train import loop

    cohort, y = downstream
    settings = {**FT, "epochs": 3}
    with caplog.at_level("INFO", logger="lcm.train.loop"):
        LCMClassifier(None, "dx", LEVELS, settings, 0, init="scratch").fit(cohort.fc[:16], y[:16])
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert len(lines) == 1 and "epoch 1 of 3: loss_total" in lines[0] and "elapsed" in lines[0]
    caplog.clear()
    monkeypatch.setattr(loop, "EPOCH_LOG_SECONDS", 0.0)
    with caplog.at_level("INFO", logger="lcm.train.loop"):
        LCMClassifier(None, "dx", LEVELS, settings, 0, init="scratch").fit(cohort.fc[:16], y[:16])
    lines = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert [line.split(":")[0].split(" epoch ")[1] for line in lines] == [
        "1 of 3",
        "2 of 3",
        "3 of 3",
    ]
