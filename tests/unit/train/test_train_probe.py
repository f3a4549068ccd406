"""``evaluate.finetune.method: probe``: a linear model on the frozen pretrained readouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.model import TINY, make_catalogue, make_cohort, pretrain_cohort
from safetensors.torch import load_file

import lcm.train.finetune as finetune_module
from lcm.exceptions import ConfigError
from lcm.model.checkpoint import load_checkpoint
from lcm.train.finetune import LCMClassifier
from lcm.train.pretrain import predict_outputs, pretrain
from lcm.train.probe import CLASSIFIER_GRID, LinearProbe, fit_probe, probe_features
from lcm.train.regress import LCMRegressor

LEVELS = ("control", "patient")
PROBE = {"method": "probe", "diagnosis_pseudo_labels": False}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("probe")
    out = {}
    for kind, bei_weight in (("bei", 1.0), ("ssl", 0.0)):
        settings = {"epochs": 10, "batch_size": 16, "lr": 0.003, "bei_weight": bei_weight}
        pretrain(pretrain_cohort(60, seed=1), make_catalogue(tmp), TINY, settings, 3, tmp / kind)
        out[kind] = tmp / kind
    return out


@pytest.fixture(scope="module")
def downstream():
    cohort = make_cohort(80, seed=5)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    return cohort, y


def test_probe_reads_the_frozen_bei_heads(checkpoints, downstream) -> None:
    cohort, y = downstream
    train, test = np.arange(60), np.arange(60, 80)
    clf = LCMClassifier(checkpoints["bei"], "dx", LEVELS, PROBE, seed=0)
    clf.fit(cohort.fc[train], y[train], cohort.variables.iloc[train].drop(columns=["dx"]))
    # The model is the pretrained one, untouched; the probe has one weight per BEI readout.
    saved = load_file(checkpoints["bei"] / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in clf.model_.state_dict().items())
    assert clf.probe_.features == "bei" and len(clf.probe_.coef) == clf.model_.config.n_queries
    assert clf.probe_.penalty in CLASSIFIER_GRID
    # Its probabilities are the logistic regression on exactly those readouts.
    readouts = predict_outputs(clf.model_, cohort.fc[test], torch.device("cpu")).double().numpy()
    proba = clf.predict_proba(cohort.fc[test])
    np.testing.assert_allclose(proba, clf.probe_.predict_proba(readouts), atol=1e-9)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # The diagnosis shares the age pattern, which the BEI heads read: better than chance.
    assert np.mean(clf.predict(cohort.fc[train]) == y[train]) > 0.6
    assert len(clf.history_) == 1 and clf.history_[0]["penalty"] == clf.probe_.penalty


def test_probe_of_an_ssl_checkpoint_reads_the_embedding(checkpoints, downstream) -> None:
    cohort, y = downstream
    clf = LCMClassifier(checkpoints["ssl"], "dx", LEVELS, PROBE, seed=0)
    clf.fit(cohort.fc[:40], y[:40])
    assert clf.probe_.features == "embedding"
    assert len(clf.probe_.coef) == clf.model_.config.d_model


def test_scratch_ignores_the_probe(checkpoints, downstream) -> None:
    cohort, y = downstream
    clf = LCMClassifier(
        checkpoints["bei"], "dx", LEVELS, {**PROBE, "epochs": 2}, seed=0, init="scratch"
    )
    clf.fit(cohort.fc[:30], y[:30])
    assert clf.probe_ is None and len(clf.history_) == 2  # the transformer was trained


def test_self_training_never_fits_the_first_probe_on_its_validation_rows(
    checkpoints, downstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort, y = downstream
    y = y[:60].copy()
    y[30:] = -1  # 30 labelled, 30 unlabeled
    calls = []
    real = finetune_module.fit_probe

    def spy(features, labels, rows, *args, **kwargs):
        calls.append((labels.copy(), rows.copy()))
        return real(features, labels, rows, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "fit_probe", spy)
    clf = LCMClassifier(checkpoints["bei"], "dx", LEVELS, {"method": "probe"}, seed=0)
    clf.fit(cohort.fc[:60], y, groups=np.arange(60))
    info = clf.diagnosis_pseudo_
    assert info is not None and len(calls) == 2
    validation = info["inner_validation_rows"]
    first_rows, final_rows = calls[0][1], calls[1][1]
    assert validation and not set(validation) & set(first_rows.tolist())
    assert set(first_rows.tolist()) < set(range(30))
    # The final probe: every labelled row plus the pseudo-labelled ones, nothing else.
    assert len(final_rows) == 30 + info["n_pseudo_labelled"]
    assert set(range(30)) <= set(final_rows.tolist())


def test_probe_saved_in_the_checkpoint_reproduces_predictions(
    checkpoints, downstream, tmp_path: Path
) -> None:
    cohort, y = downstream
    clf = LCMClassifier(checkpoints["bei"], "dx", LEVELS, PROBE, seed=0)
    clf.fit(cohort.fc[:40], y[:40])
    out = clf.save(tmp_path / "probe")
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["method"] == "probe" and meta["kind"] == "finetuned"
    model, meta = load_checkpoint(out, atlas="toy", n_rois=13)
    probe = LinearProbe.from_dict(meta["probe"])
    np.testing.assert_allclose(
        probe.predict_proba(probe_features(model, meta, cohort.fc[40:50])),
        clf.predict_proba(cohort.fc[40:50]),
        atol=1e-6,
    )


def test_regressor_probe_predicts_in_target_units(checkpoints, downstream) -> None:
    cohort, _ = downstream
    age = cohort.variables["age"].to_numpy(dtype=float)
    reg = LCMRegressor(checkpoints["bei"], "age", {"method": "probe"}, seed=0)
    reg.fit(cohort.fc[:60], age[:60])
    pred = reg.predict(cohort.fc[60:])
    assert reg.probe_ is not None and pred.shape == (20,)
    assert np.corrcoef(pred, age[60:])[0, 1] > 0.5  # the pretrained age head reads age
    assert abs(pred.mean() - age[:60].mean()) < 2 * age.std()


def test_fit_probe_falls_back_to_the_middle_penalty_with_one_subject_per_class() -> None:
    features = np.random.default_rng(0).standard_normal((6, 3))
    y = np.array([0, 1, -1, -1, -1, -1])
    probe = fit_probe(
        features, y, np.array([0, 1]), np.arange(6), binary=True, seed=0, feature_kind="bei"
    )
    assert probe.penalty == CLASSIFIER_GRID[len(CLASSIFIER_GRID) // 2]
    # Standardised over every row passed, labelled or not.
    np.testing.assert_allclose(probe.mean, features.mean(0))


def test_unknown_method_is_refused(checkpoints, downstream) -> None:
    cohort, y = downstream
    clf = LCMClassifier(checkpoints["bei"], "dx", LEVELS, {"method": "linear"}, seed=0)
    with pytest.raises(ConfigError, match=r"evaluate\.finetune\.method"):
        clf.fit(cohort.fc[:20], y[:20])


def test_embed_names_each_probe_coefficient_by_its_query(checkpoints, downstream, tmp_path):
    from lcm.commands.embed import probe_label
    from lcm.model.checkpoint import checkpoint_layout
    from lcm.model.export import query_names

    cohort, y = downstream
    clf = LCMClassifier(checkpoints["bei"], "dx", LEVELS, PROBE, seed=0).fit(cohort.fc[:40], y[:40])
    _, meta = load_checkpoint(clf.save(tmp_path / "probe"))
    label = probe_label(meta)
    assert label["name"] == "dx" and label["probe"]["features"] == "bei"
    names = query_names(checkpoint_layout(meta))
    assert list(label["probe"]["coef"]) == names
    assert list(label["probe"]["coef"].values()) == pytest.approx(clf.probe_.coef)
    plain = LCMClassifier(checkpoints["bei"], "dx", LEVELS, {"epochs": 1}, seed=0)
    _, meta = load_checkpoint(plain.fit(cohort.fc[:20], y[:20]).save(tmp_path / "ft"))
    assert probe_label(meta) == meta["label"]  # a finetuned model: its own diagnosis queries
