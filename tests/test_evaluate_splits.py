"""Subject-level folds and label-fraction subsets."""

from __future__ import annotations

import numpy as np
import pytest

from lcm.evaluate.splits import labeled_subsets, subject_folds, subject_labels
from lcm.exceptions import InputDataError


@pytest.fixture
def runs() -> tuple[np.ndarray, np.ndarray]:
    """37 subjects (21 negative, 16 positive) with 1-3 runs each."""
    rng = np.random.default_rng(3)
    y_subj = np.array([0] * 21 + [1] * 16)
    n_runs = rng.integers(1, 4, size=len(y_subj))
    groups = np.repeat([f"ds/{i:02d}" for i in range(len(y_subj))], n_runs)
    y = np.repeat(y_subj, n_runs)
    order = rng.permutation(len(y))  # runs of a subject need not be adjacent
    return y[order], groups[order]


def test_subject_never_straddles_folds(runs):
    y, groups = runs
    folds = subject_folds(y, groups, n_folds=4, seed=11)
    assert len(folds) == 4
    seen_in_test = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(seen_in_test), np.arange(len(y)))  # each run tested once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert len(np.intersect1d(train, test)) == 0
        # stratified: both classes in every test fold
        assert set(y[test]) == {0, 1}


def test_folds_depend_on_seed(runs):
    y, groups = runs
    a = subject_folds(y, groups, 4, seed=1)
    b = subject_folds(y, groups, 4, seed=2)
    assert any(not np.array_equal(ta, tb) for (_, ta), (_, tb) in zip(a, b, strict=True))
    again = subject_folds(y, groups, 4, seed=1)
    assert all(np.array_equal(ta, tb) for (_, ta), (_, tb) in zip(a, again, strict=True))


def test_too_few_subjects_per_class_raises(runs):
    y, groups = runs
    with pytest.raises(InputDataError, match=r"each class needs at least 20 subjects"):
        subject_folds(y, groups, n_folds=20, seed=0)
    with pytest.raises(InputDataError, match="subjects per class"):
        subject_folds(np.zeros_like(y), groups, n_folds=2, seed=0)


def test_labeled_subsets_stratified_nested_whole_subjects(runs):
    y, groups = runs
    fractions = [0.1, 0.5, 1.0]
    masks = labeled_subsets(y, groups, fractions, seed=5)
    labels = subject_labels(y, groups)
    per_class = labels.value_counts()
    for f, mask in masks.items():
        kept = subject_labels(y[mask], groups[mask])
        # whole subjects: a labeled subject has all its runs labeled
        assert set(groups[mask]).isdisjoint(set(groups[~mask]))
        for cls in (0, 1):
            want = min(per_class[cls], max(2, round(f * per_class[cls])))
            assert (kept == cls).sum() == want
    assert masks[1.0].all()
    assert not (masks[0.1] & ~masks[0.5]).any()  # nested
    assert not (masks[0.5] & ~masks[1.0]).any()


def test_labeled_subsets_minimum_two_per_class(runs):
    y, groups = runs
    mask = labeled_subsets(y, groups, [0.01], seed=0)[0.01]
    kept = subject_labels(y[mask], groups[mask])
    assert kept.value_counts().to_dict() == {0: 2, 1: 2}
    one_positive = np.isin(groups, groups[y == 0]) | (groups == groups[y == 1][0])
    with pytest.raises(InputDataError, match="1 subject"):
        labeled_subsets(y[one_positive], groups[one_positive], [0.5], seed=0)
