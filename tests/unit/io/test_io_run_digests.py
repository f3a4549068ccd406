"""Connectomes by content: digests find the same bytes, sketches the same values rounded."""

from __future__ import annotations

import json

import numpy as np

from lcm.io.run_digests import connectome_sketches, matching_sketches


def _connectomes(n_runs: int, n_rois: int = 30, seed: int = 0) -> np.ndarray:
    """Pearson matrices of independent runs with a shared signal (mean r ~0.3), float32."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_runs):
        ts = rng.normal(size=(150, n_rois)) + 0.7 * rng.normal(size=(150, 1))
        out.append(np.corrcoef(ts.T))
    return np.stack(out).astype(np.float32)


def test_a_run_written_with_fewer_digits_matches_its_sketch():
    seen = _connectomes(200)
    recorded = json.loads(json.dumps(connectome_sketches(seen)))  # as model.json holds it
    for decimals in (6, 4, 3):
        rounded = np.round(seen[[3, 150]].astype(np.float64), decimals).astype(np.float32)
        assert matching_sketches(rounded, recorded).all(), decimals
    # float64 to float32 and back, or a TSV re-read: the same values.
    assert matching_sketches(seen.astype(np.float64), recorded).all()


def test_other_runs_do_not_match():
    recorded = connectome_sketches(_connectomes(500))
    others = _connectomes(500, seed=1)
    assert not matching_sketches(others, recorded).any()
    # Two decimals is no longer the same run's values, nor is another atlas's size.
    coarse = np.round(_connectomes(500)[:50].astype(np.float64), 2).astype(np.float32)
    assert matching_sketches(coarse, recorded).mean() < 0.5
    assert not matching_sketches(_connectomes(5, n_rois=10), recorded).any()


def test_runs_whose_kept_edges_are_zero_match_nothing():
    """ROIs without signal give zero correlations in every subject: runs of two people would
    agree there, so such a run is not judged by its sketch."""
    a, b = _connectomes(2, seed=3)
    recorded = connectome_sketches(a[None])
    edges = np.asarray(recorded["edges"])
    a_blank, b_blank = a.reshape(-1).copy(), b.reshape(-1).copy()
    a_blank[edges] = 0.0
    b_blank[edges] = 0.0
    recorded = connectome_sketches(a_blank.reshape(1, *a.shape))
    assert not matching_sketches(b_blank.reshape(1, *b.shape), recorded).any()
