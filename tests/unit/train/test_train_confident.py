"""Diagnosis pseudo-labels: inner split, threshold choice, and their use in LCMClassifier.fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.model import (
    TINY,
    make_catalogue,
    make_cohort,
    pretrain_cohort,
    spy_finetuning_targets,
)

from lcm.evaluate.registry import ModelContext, make_model
from lcm.train.confident import (
    FALLBACK_THRESHOLD,
    MIN_VALIDATION_SUBJECTS,
    choose_thresholds,
    confident_labels,
    inner_split,
    threshold_plan,
)
from lcm.train.finetune import LCMClassifier
from lcm.train.pretrain import pretrain

LEVELS = ("control", "patient")


def test_inner_split_uses_labelled_training_rows_only() -> None:
    y = np.array([0, 1, -1, 0, 1, 0, 1, -1, 0, 1, 0, 1, 1, 0])
    groups = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 3])  # subjects 3, 11: 2 runs
    train, val = inner_split(y, groups, 0.25, seed=3)
    assert set(train) | set(val) == set(np.flatnonzero(y >= 0))
    assert not set(groups[train]) & set(groups[val])  # a subject's runs stay together
    assert set(y[val]) == {0, 1}  # stratified: both classes validated
    assert inner_split(y[:5], groups[:5], 0.25, seed=3) is None  # too few subjects


def test_threshold_is_the_lowest_reaching_the_target_per_class() -> None:
    # 6 subjects per class; the two least confident predictions of each class are wrong.
    p1 = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1])
    proba = np.c_[1 - p1, p1]
    assert choose_thresholds(proba, y, 0.85) == {0: pytest.approx(0.8), 1: pytest.approx(0.8)}
    assert choose_thresholds(proba, 1 - y, 0.85) == {0: None, 1: None}  # the right ones: 2
    labels = confident_labels(np.array([[0.85, 0.15], [0.3, 0.7]]), 0.8)
    np.testing.assert_array_equal(labels, [0, -1])
    np.testing.assert_array_equal(confident_labels(proba, None), [-1] * 12)
    per_class = confident_labels(np.array([[0.85, 0.15], [0.1, 0.9]]), {0: None, 1: 0.8})
    np.testing.assert_array_equal(per_class, [-1, 1])


def test_majority_class_does_not_meet_the_threshold_by_its_prevalence(caplog) -> None:
    # 95 controls, 5 cases, every one called "control" at 0.97: accuracy 0.95 met the old
    # target of 0.9 and every unlabelled subject became a control, hidden cases included.
    proba = np.array([[0.97, 0.03]] * 100)
    y = np.array([0] * 95 + [1] * 5)
    assert choose_thresholds(proba, y, 0.9) == {0: None, 1: None}
    # A model with no information labels nobody either, whatever the prevalence.
    for seed in range(10):
        rng = np.random.default_rng(seed)
        q = rng.uniform(0.6, 0.99, 100)
        assert choose_thresholds(np.c_[q, 1 - q], y, 0.9) == {0: None, 1: None}
        q = rng.uniform(0.01, 0.99, 100)
        assert choose_thresholds(np.c_[q, 1 - q], y, 0.9) == {0: None, 1: None}
    # Too few validation subjects of a class: neither class's pseudo-labels can be checked.
    with caplog.at_level("INFO", logger="lcm.train.confident"):
        few = choose_thresholds(np.array([[0.9, 0.1]] * 9 + [[0.1, 0.9]]), [0] * 9 + [1], 0.6)
    assert few == {0: None, 1: None}
    assert "inner validation subjects per class {0: 9, 1: 1}" in caplog.text


def test_imbalanced_pseudo_labels_keep_the_minority_class() -> None:
    # 10 % cases: 200 labelled subjects (20 cases), 100 unlabelled (10 cases). The first model
    # calls every subject "control" confidently: the old rule (overall accuracy 0.9 on the
    # inner validation subjects) labelled all 100 unlabelled controls, the 10 cases included.
    y_true = np.r_[np.tile([1] + [0] * 9, 20), np.tile([1] + [0] * 9, 10)]
    y = y_true.copy()
    y[200:] = -1
    groups = np.array([f"a/s{i:03d}" for i in range(len(y))])
    clf, filled = _pseudo(y, groups, lambda hidden, _rows: np.tile([0.96, 0.04], (len(y), 1)))
    info = clf.diagnosis_pseudo_
    assert info["threshold_source"] == "inner" and info["inner_validation_subjects"] == 50
    assert (filled[200:] == -1).all() and info["n_pseudo_labelled"] == 0
    assert info["pseudo_labelled_subjects"] == {"control": 0, "patient": 0}
    assert info["thresholds"] == {"control": None, "patient": None}
    # A first model that knows: both classes pseudo-labelled, each on its own threshold.
    signal = np.where(y_true == 1, 0.9, 0.05)
    clf, filled = _pseudo(y, groups, lambda hidden, _rows: np.c_[1 - signal, signal])
    info = clf.diagnosis_pseudo_
    assert info["pseudo_labelled_subjects"] == {"control": 90, "patient": 10}
    np.testing.assert_array_equal(filled[200:], y_true[200:])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("conf")
    settings = {"epochs": 6, "batch_size": 16, "lr": 0.003}
    pretrain(pretrain_cohort(40, seed=1), make_catalogue(tmp), TINY, settings, 3, tmp / "ckpt")
    return tmp / "ckpt"


def test_threshold_plan_needs_enough_validation_subjects(caplog) -> None:
    groups = np.arange(60)
    y = np.tile([0, 1], 30)
    y[40:] = -1  # 40 labelled subjects: 0.25 of each class -> 10 validation subjects
    plan = threshold_plan(y, groups, 0.25, seed=0)
    assert plan.source == "inner" and len(plan.validation_rows) >= MIN_VALIDATION_SUBJECTS
    assert set(y[plan.validation_rows]) == {0, 1} and (y[plan.validation_rows] >= 0).all()
    # A 10 % label fraction: 6 labelled subjects would put 2 rows in validation -> fixed.
    small = np.full(60, -1)
    small[:6] = [0, 1, 0, 1, 0, 1]
    with caplog.at_level("INFO", logger="lcm.train.confident"):
        fixed = threshold_plan(small, groups, 0.25, seed=0)
    assert fixed.source == "fixed" and len(fixed.validation_rows) == 0
    assert "fixed confidence threshold 0.95" in caplog.text
    # Just below and at the minimum number of validation subjects.
    seven = np.full(60, -1)
    seven[:28] = np.tile([0, 1], 14)  # 14 per class: 0.2 -> 3 + 3 = 6, 0.25 -> 4 + 4 = 8
    assert threshold_plan(seven, groups, 0.2, seed=0).source == "fixed"
    assert threshold_plan(seven, groups, 0.25, seed=0).source == "inner"
    one_class = np.where(np.arange(60) < 20, 0, -1)
    assert threshold_plan(one_class, groups, 0.25, seed=0) is None


def test_threshold_plan_names_the_class_too_small_for_an_inner_split(caplog) -> None:
    # 437 labelled subjects, one positive: the log said "too few labelled subjects".
    y = np.r_[[1], np.zeros(436, int), -np.ones(363, int)]
    with caplog.at_level("INFO", logger="lcm.train.confident"):
        plan = threshold_plan(y, np.arange(len(y)), 0.25, seed=0)
    assert plan.source == "fixed"
    assert "class 1 has 1 labelled subject(s)" in caplog.text
    assert "too few labelled subjects" not in caplog.text
    # 40 labelled, 5 positive: an inner split holds 1 positive, too few to check a class on.
    y = np.r_[np.ones(5, int), np.zeros(35, int), -np.ones(20, int)]
    caplog.clear()
    with caplog.at_level("INFO", logger="lcm.train.confident"):
        assert threshold_plan(y, np.arange(len(y)), 0.25, seed=0).source == "fixed"
    assert "1 of class 1" in caplog.text and "at least 4 of each class" in caplog.text


def test_fit_chooses_threshold_on_inner_validation_not_test(checkpoint: Path) -> None:
    cohort = make_cohort(60, seed=5)
    y_all = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    fit_rows, test_rows = np.arange(48), np.arange(48, 60)  # the outer test fold
    y = y_all[fit_rows].copy()
    y[32:] = -1  # a third of the training fold unlabeled
    settings = {
        "epochs": 8,
        "batch_size": 8,
        "lr": 0.003,
        "pseudo_label_accuracy": 0.6,
        "inner_validation_fraction": 0.3,
    }
    clf = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=0)
    clf.fit(cohort.fc[fit_rows], y)
    info = clf.diagnosis_pseudo_
    val = np.array(info["inner_validation_rows"])
    # The threshold was chosen on labelled training rows only: never unlabeled, never test.
    assert info["threshold_source"] == "inner"
    assert len(val) >= MIN_VALIDATION_SUBJECTS and (y[val] >= 0).all()
    assert val.max() < len(fit_rows) and set(y[val]) == {0, 1}
    assert info["n_unlabeled"] == 16
    assert info["threshold"] is None or 0.5 <= info["threshold"] <= 1.0
    assert clf.predict_proba(cohort.fc[test_rows]).shape == (12, 2)

    # Switched off (the ablation): no first model, no diagnosis pseudo-labels.
    off = LCMClassifier(checkpoint, "dx", LEVELS, {**settings, "diagnosis_pseudo_labels": False}, 0)
    record = off.fit(cohort.fc[fit_rows], y).diagnosis_pseudo_
    assert record["status"] == "off" and record["n_pseudo_labelled"] == 0
    assert record["n_unlabeled"] == 16 and record["threshold"] is None


def test_small_label_fraction_falls_back_to_fixed_threshold(checkpoint: Path, caplog) -> None:
    cohort = make_cohort(40, seed=6)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    y[8:] = -1  # 8 labelled subjects: an inner split would validate on 2
    assert set(y[:8]) == {0, 1}
    settings = {"epochs": 3, "batch_size": 8, "lr": 0.003}
    with caplog.at_level("INFO"):
        clf = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=0).fit(cohort.fc, y)
    info = clf.diagnosis_pseudo_
    assert info["threshold_source"] == "fixed" and info["threshold"] == FALLBACK_THRESHOLD
    assert info["inner_validation_rows"] == [] and info["inner_validation_subjects"] == 0
    assert info["status"] == "made"
    assert "fixed confidence threshold" in caplog.text
    # The plan's log and the record agree: no inner validation subject was used.
    assert "no inner validation" in caplog.text
    assert "(fixed, 0 inner validation subjects)" in caplog.text
    assert info["n_unlabeled"] == 32 and 0 <= info["n_pseudo_labelled"] <= 32
    assert info["unit"] == "subject" and info["n_unlabeled_rows"] == 32


@pytest.mark.parametrize("name", ["lcm-no-pseudo", "lcm"])
def test_no_pseudo_switches_off_both_parts(checkpoint: Path, monkeypatch, name: str) -> None:
    cohort = make_cohort(40, seed=7, bmi_missing=0.5)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    y[20:] = -1
    variables = cohort.variables.drop(columns="dx")
    variables.loc[30:, "age"] = np.nan  # rows lacking a BEI variable
    calls = spy_finetuning_targets(monkeypatch)
    settings = {"epochs": 2, "batch_size": 8, "pseudo_label_accuracy": 0.6}
    context = ModelContext(
        label="dx", levels=LEVELS, finetune=settings, seed=0, checkpoint=checkpoint
    )
    model = make_model(name, context)
    model.fit(cohort.fc, y, variables, groups=cohort.groups)
    final = calls[-1]
    own_bmi = variables["bmi"].notna().to_numpy()
    own_age = variables["age"].notna().to_numpy()
    if name == "lcm-no-pseudo":
        # (b) off: one run only, and no unlabeled row carries a diagnosis target.
        assert len(calls) == 1 and model.diagnosis_pseudo_["status"] == "off"
        assert model.pseudo_label_record()["bei_targets_filled"] is None
        np.testing.assert_array_equal(final["dx"].present.numpy(), y >= 0)
        # (a) off: a BEI target is present exactly where the subject has its own value.
        assert model.pseudo_targets_ is None
        np.testing.assert_array_equal(final["bmi"].present.numpy(), own_bmi)
        np.testing.assert_array_equal(final["age"].present.numpy(), own_age)
    else:  # the full method fills them in: the checks above can fail
        assert model.pseudo_targets_ is not None and final["bmi"].present.numpy().all()
        assert final["age"].present.numpy().all() and len(calls) == 2
        record = model.pseudo_label_record()
        assert record["diagnosis"]["status"] == "made"
        assert "inner_validation_rows" not in record["diagnosis"]
        # Ages of rows 30-39 were missing: the pretrained heads filled them (part a).
        assert record["bei_targets_filled"]["age"] == 10


def test_a_self_supervised_only_checkpoint_fills_no_bei_target(
    checkpoint: Path, tmp_path: Path, caplog
) -> None:
    """lcm finetune from a checkpoint pretrained with bei_weight 0 filled every missing
    variable from BEI heads that never learned (held-out R^2 ~0), without a word."""
    import json
    import shutil

    ssl = tmp_path / "ssl"
    shutil.copytree(checkpoint, ssl)
    meta = json.loads((ssl / "model.json").read_text())
    meta["training"]["bei_weight"] = 0
    (ssl / "model.json").write_text(json.dumps(meta))
    cohort = make_cohort(24, seed=8, bmi_missing=0.5)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    variables = cohort.variables.drop(columns="dx")
    settings = {"epochs": 1, "batch_size": 8}
    with caplog.at_level("WARNING", logger="lcm.train.finetune"):
        clf = LCMClassifier(ssl, "dx", LEVELS, settings, seed=0)
        clf.fit(cohort.fc, y, variables, groups=cohort.groups)
    assert clf.pseudo_label_record()["bei_targets_filled"] is None
    assert "pretrained with bei_weight 0 (self-supervised only)" in caplog.text
    full = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=0)
    full.fit(cohort.fc, y, variables, groups=cohort.groups)
    assert full.pseudo_label_record()["bei_targets_filled"]["bmi"] > 0


def test_cap_keeps_the_most_confident_pseudo_labels_per_class():
    from lcm.train.confident import cap_labels

    proba = np.array([[0.99, 0.01], [0.97, 0.03], [0.96, 0.04], [0.02, 0.98], [0.5, 0.5]])
    labels = np.array([0, 0, 0, 1, -1])
    capped = cap_labels(labels, proba, {0: 2, 1: 3}, cap=1.0)
    assert capped.tolist() == [0, 0, -1, 1, -1]
    assert cap_labels(labels, proba, {0: 2, 1: 3}, cap=None).tolist() == labels.tolist()
    assert (cap_labels(labels, proba, {0: 2, 1: 3}, cap=0) == -1).all()


def _pseudo(y, groups, first_model, **settings):
    """``LCMClassifier._confident_pseudo_labels`` with a stand-in first model."""
    from lcm.train.settings import resolve_settings

    clf = LCMClassifier(None, "dx", LEVELS, {}, seed=0, init="scratch")
    resolved = resolve_settings("finetune", settings)
    return clf, clf._confident_pseudo_labels(y, groups, resolved, first_model)


def test_pseudo_labels_are_one_per_subject_and_capped_by_labelled_subjects() -> None:
    # 3 labelled subjects per class, 3 runs each (9 labelled rows per class): fixed threshold.
    groups = [f"a/l{i}" for i in range(6) for _ in range(3)]
    y = [c for c in (0, 1) for _ in range(9)]
    confidence = [0.9] * 18
    # u0: windows that disagree in confidence (mean 0.86 < 0.95); u1..u5: one run each;
    # u6..u9 confident controls (the fixed threshold keeps both classes' ratio: it needs both).
    groups += ["a/u0"] * 3 + [f"a/u{i}" for i in range(1, 10)]
    y += [-1] * 12
    confidence += [0.99, 0.99, 0.6, 0.96, 0.97, 0.98, 0.99, 0.995, 0.04, 0.03, 0.02, 0.01]
    groups, y, p1 = np.array(groups), np.array(y), np.array(confidence)

    clf, filled = _pseudo(y, groups, lambda hidden, _rows: np.c_[1 - p1, p1], pseudo_label_cap=1.0)
    info = clf.diagnosis_pseudo_
    assert info["threshold_source"] == "fixed"
    for subject in np.unique(groups):  # one label per subject, on all its rows
        assert len(set(filled[groups == subject])) == 1
    assert (filled[groups == "a/u0"] == -1).all()  # its mean, not its best windows
    # The cap counts labelled subjects (3 positive), not their 9 rows: the 3 most confident.
    assert sorted(groups[(y < 0) & (filled == 1)]) == ["a/u3", "a/u4", "a/u5"]
    assert sorted(groups[(y < 0) & (filled == 0)]) == ["a/u7", "a/u8", "a/u9"]
    assert info["unit"] == "subject" and info["n_unlabeled"] == 10
    assert info["n_unlabeled_rows"] == 12 and info["n_pseudo_labelled"] == 6
    assert info["pseudo_labelled_subjects"] == {"control": 3, "patient": 3}
    assert info["pseudo_labelled_rows"] == {"control": 3, "patient": 3}


def test_threshold_is_chosen_on_validation_subjects_not_rows() -> None:
    # 16 labelled subjects per class, 2 runs each: 8 inner validation subjects.
    n = 32
    groups = np.repeat([f"a/l{i:02d}" for i in range(n)], 2)
    y = np.repeat(np.tile([0, 1], n // 2), 2)
    groups = np.r_[groups, np.repeat(["a/u0", "a/u1"], 2)]
    y = np.r_[y, [-1] * 4]

    def first_model(hidden: np.ndarray, _rows: np.ndarray) -> np.ndarray:
        # Validation subjects: right with windows at 0.9 and 0.7 (mean 0.8), except one wrong
        # with windows at 0.99 and 0.51 (mean 0.75): per subject, 0.8 is the threshold
        # of its class reaching the target; per row, the wrong 0.99 window leaves none.
        val = np.flatnonzero((hidden < 0) & (y >= 0))
        right = np.where(np.arange(len(y)) % 2 == 0, 0.9, 0.7)
        wrong = np.isin(groups, groups[val][:1])
        right[wrong] = np.where(np.arange(len(y))[wrong] % 2 == 0, 0.99, 0.51)
        positive = np.where(wrong, 1 - y, y) == 1
        right[y < 0] = 0.85
        positive[y < 0] = True
        p1 = np.where(positive, right, 1 - right)
        return np.c_[1 - p1, p1]

    clf, filled = _pseudo(
        y, groups, first_model, pseudo_label_accuracy=0.9, inner_validation_fraction=0.25
    )
    info = clf.diagnosis_pseudo_
    assert info["threshold_source"] == "inner"
    assert info["threshold"] == pytest.approx(0.8)
    assert info["inner_validation_subjects"] == 8
    assert (filled[y < 0] == 1).all() and info["pseudo_labelled_rows"]["patient"] == 4


def test_model_json_records_the_pseudo_label_outcome(checkpoint: Path, tmp_path: Path) -> None:
    cohort = make_cohort(20, seed=8, runs_per_subject=2)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    y[16:] = -1  # 8 labelled subjects (2 runs each), 12 unlabeled
    settings = {"epochs": 2, "batch_size": 8, "pseudo_label_cap": 1.0}
    clf = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=0)
    clf.fit(cohort.fc, y, groups=cohort.groups)
    meta = json.loads((clf.save(tmp_path / "ft") / "model.json").read_text())
    record = meta["diagnosis_pseudo_labels"]
    assert record["unit"] == "subject" and record["threshold_source"] == "fixed"
    assert record["threshold"] == FALLBACK_THRESHOLD
    assert record["n_unlabeled"] == 12 and record["n_unlabeled_rows"] == 24
    subjects, rows = record["pseudo_labelled_subjects"], record["pseudo_labelled_rows"]
    assert set(subjects) == set(LEVELS) and set(rows) == set(LEVELS)
    assert sum(subjects.values()) == record["n_pseudo_labelled"]
    assert {k: 2 * v for k, v in subjects.items()} == rows  # both runs of each subject
    assert "inner_validation_rows" not in record and record["status"] == "made"
    off = LCMClassifier(checkpoint, "dx", LEVELS, {**settings, "diagnosis_pseudo_labels": False}, 0)
    off.fit(cohort.fc, y, groups=cohort.groups)
    saved = json.loads((off.save(tmp_path / "off") / "model.json").read_text())
    # Switched off is told from "made, labelled nobody": the record says which.
    assert saved["diagnosis_pseudo_labels"]["status"] == "off"
    assert saved["diagnosis_pseudo_labels"]["n_pseudo_labelled"] == 0


def test_fixed_threshold_keeps_the_labelled_class_ratio_by_default() -> None:
    # Too few labelled subjects for an inner split: the unchecked 0.95 threshold labelled
    # every confident unlabelled subject (a first model calling all 20 "control": 20 controls
    # against 4 labels, on the reviewer's 5 % cohort 441 controls and no case). Now both
    # classes keep as many pseudo-labels per labelled subject, one at most: here none.
    y = np.r_[[0, 0, 1, 1], -np.ones(20, int)]
    groups = np.array([f"a/s{i:02d}" for i in range(len(y))])
    clf, filled = _pseudo(y, groups, lambda hidden, _rows: np.tile([0.99, 0.01], (len(y), 1)))
    info = clf.diagnosis_pseudo_
    assert info["threshold_source"] == "fixed" and info["threshold"] == FALLBACK_THRESHOLD
    assert info["pseudo_labelled_subjects"] == {"control": 0, "patient": 0}
    assert (filled[4:] == -1).all()
    # Confident of both: 2 labelled of each class, 9 confident controls and 1 confident case
    # among the unlabelled -> half a pseudo-label per labelled subject: 1 and 1.
    p1 = np.r_[[0.01, 0.01, 0.99, 0.99], np.full(9, 0.01), [0.99], np.full(10, 0.5)]
    clf, filled = _pseudo(y, groups, lambda hidden, _rows: np.c_[1 - p1, p1])
    assert clf.diagnosis_pseudo_["pseudo_labelled_subjects"] == {"control": 1, "patient": 1}
    # Confident of many of both: at most one per labelled subject (2 and 2), or the user's cap.
    p1 = np.r_[[0.01, 0.01, 0.99, 0.99], np.full(10, 0.01), np.full(10, 0.99)]
    clf, _ = _pseudo(y, groups, lambda hidden, _rows: np.c_[1 - p1, p1])
    assert clf.diagnosis_pseudo_["pseudo_labelled_subjects"] == {"control": 2, "patient": 2}
    clf, _ = _pseudo(y, groups, lambda hidden, _rows: np.c_[1 - p1, p1], pseudo_label_cap=0.5)
    assert clf.diagnosis_pseudo_["pseudo_labelled_subjects"] == {"control": 1, "patient": 1}


def test_the_first_model_never_sees_the_validation_subjects_clinical_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinical BEI variable (an ADOS score) gives the diagnosis away: the inner validation
    subjects lose it for the model whose predictions choose the threshold, as subjects the
    label fraction leaves unlabeled do; the final model sees it again."""
    from helpers.model import CATALOGUE, write_catalogue

    from lcm.catalogue import load_catalogue

    torch.set_num_threads(1)
    text = CATALOGUE.replace("domain: physiological", "domain: clinical")  # bmi: clinical
    catalogue = load_catalogue(write_catalogue(tmp_path, text))
    settings = {"epochs": 2, "batch_size": 16, "lr": 0.003}
    pretrain(pretrain_cohort(40, seed=1), catalogue, TINY, settings, 3, tmp_path / "ckpt")
    cohort = make_cohort(48, seed=5, bmi_missing=0.0)
    y = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    y[32:] = -1
    calls = spy_finetuning_targets(monkeypatch)
    fit = {"epochs": 1, "batch_size": 8, "inner_validation_fraction": 0.3}
    clf = LCMClassifier(tmp_path / "ckpt", "dx", LEVELS, fit, seed=0, catalogue=catalogue)
    clf.fit(cohort.fc, y, cohort.variables.drop(columns="dx"))
    val = np.array(clf.diagnosis_pseudo_["inner_validation_rows"])
    assert clf.diagnosis_pseudo_["threshold_source"] == "inner" and len(val)
    first, final = calls
    assert not first["bmi"].present[val].any() and first["bmi"].present.sum() == 48 - len(val)
    assert final["bmi"].present.all()
    # Not clinical: kept for the validation subjects.
    assert first["age"].present[val].all()
