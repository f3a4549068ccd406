"""Fold assignment is pinned: the folds of a fixed cohort are the same bytes release to release.

``lcm evaluate`` without a splits table builds the table in memory with the function that
``lcm splits`` writes it with (:func:`lcm.store.splits.make_splits`); the signatures below were
taken before that change, from evaluate's own (since removed) fold code, so they also prove
the two paths gave the same folds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lcm.evaluate.splits import outer_folds

EXPECTED = {
    ("subject", 0): "43facdcf3a925f43",
    ("site", 0): "c816696d82bdc13f",
    ("subject", 1): "c5c4c9f52a948b8c",
    ("site", 1): "73e2f02e7b742504",
    ("subject", 12345): "d7078a84c7b1c722",
    ("site", 12345): "b2cc55f586576eb0",
}


def _cohort(n_subjects: int = 41, n_sites: int = 4) -> tuple[np.ndarray, ...]:
    """Runs (1-3 per subject) of two datasets at four sites, in shuffled order, two classes."""
    rng = np.random.default_rng(8)
    groups, sites, y = [], [], []
    for s in rng.permutation(n_subjects):
        dataset = "a" if s % 5 else "b-2"  # '-' sorts before '/': keys must not be re-joined
        for _ in range(1 + s % 3):
            groups.append(f"{dataset}/sub{s:02d}")
            sites.append(f"site{s % n_sites}")
            y.append(int(s % 3 == 0))
    order = rng.permutation(len(y))
    return np.array(y)[order], np.array(groups)[order], np.array(sites, dtype=object)[order]


def _signature(folds: list[tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for train, test in folds:
        digest.update(np.asarray(train, dtype=np.int64).tobytes() + b"|")
        digest.update(np.asarray(test, dtype=np.int64).tobytes() + b";")
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(("split", "seed"), sorted(EXPECTED))
def test_folds_of_a_fixed_cohort_are_pinned(split: str, seed: int) -> None:
    y, groups, sites = _cohort()
    used, folds = outer_folds(y, groups, sites, split, 4, seed)
    assert used == split
    assert _signature(folds) == EXPECTED[(split, seed)]
