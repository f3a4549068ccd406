"""Diagnosis pseudo-labels: inner split, threshold choice, and their use in LCMClassifier.fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest_model import TINY, make_catalogue, make_cohort, pretrain_cohort

from lcm.train.confident import choose_threshold, confident_labels, inner_split
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


def test_threshold_is_the_lowest_reaching_the_target() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.45, 0.55], [0.4, 0.6], [0.05, 0.95]])
    y = np.array([0, 1, 0, 0, 1])  # the two least confident are wrong
    assert choose_threshold(proba, y, 0.9) == pytest.approx(0.8)
    assert choose_threshold(proba, y, 0.6) == pytest.approx(0.55)  # 3 of 5 right at 0.55
    assert choose_threshold(proba, np.array([1, 0, 0, 0, 0]), 0.9) is None
    labels = confident_labels(np.array([[0.85, 0.15], [0.3, 0.7]]), 0.8)
    np.testing.assert_array_equal(labels, [0, -1])
    np.testing.assert_array_equal(confident_labels(proba, None), [-1] * 5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("conf")
    settings = {"epochs": 6, "batch_size": 16, "lr": 0.003}
    pretrain(pretrain_cohort(40, seed=1), make_catalogue(tmp), TINY, settings, 3, tmp / "ckpt")
    return tmp / "ckpt"


def test_fit_chooses_threshold_on_inner_validation_not_test(checkpoint: Path) -> None:
    cohort = make_cohort(60, seed=5)
    y_all = (cohort.variables["dx"] == "patient").to_numpy().astype(np.int64)
    fit_rows, test_rows = np.arange(40), np.arange(40, 60)  # the outer test fold
    y = y_all[fit_rows].copy()
    y[20:] = -1  # half of the training fold unlabeled
    settings = {"epochs": 8, "batch_size": 8, "lr": 0.003, "pseudo_label_accuracy": 0.6}
    clf = LCMClassifier(checkpoint, "dx", LEVELS, settings, seed=0)
    clf.fit(cohort.fc[fit_rows], y)
    info = clf.diagnosis_pseudo_
    val = np.array(info["inner_validation_rows"])
    # The threshold was chosen on labelled training rows only: never unlabeled, never test.
    assert len(val) >= 2 and (y[val] >= 0).all() and val.max() < len(fit_rows)
    assert info["n_unlabeled"] == 20
    assert info["threshold"] is None or 0.5 <= info["threshold"] <= 1.0
    assert clf.predict_proba(cohort.fc[test_rows]).shape == (20, 2)

    # Switched off (the ablation): no first model, no diagnosis pseudo-labels.
    off = LCMClassifier(checkpoint, "dx", LEVELS, {**settings, "diagnosis_pseudo_labels": False}, 0)
    assert off.fit(cohort.fc[fit_rows], y).diagnosis_pseudo_ is None
