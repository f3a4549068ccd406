"""The oracle's readout: from the true matrices (the ceiling ``lcm synth`` records) and from
the pipeline's own connectomes (what ``lcm report`` puts beside it)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from lcm.atlas import load_atlas
from lcm.exceptions import InputDataError
from lcm.synth import write_cohort
from lcm.synth.oracle import (
    _subject_means,
    ceiling,
    effect_model_from_truth,
    read_ground_truth,
    scan_oracle,
)
from lcm.synth.presets import resolve
from lcm.synth.subject import prepare, subject_stream

SEED = 11
SHARED = 0.7
CONSORTIUM = {"preset": "abide", "n_subjects": 120, "n_volumes": 20}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A written ground truth, and the true matrices and labels of its subjects (atlas order)."""
    atlas = load_atlas("aal116")
    out = tmp_path_factory.mktemp("synth")
    write_cohort(
        "abidelike", CONSORTIUM, out_dir=out, seed=SEED, shared_structure=SHARED, atlas=atlas
    )
    ctx = prepare(resolve("abidelike", CONSORTIUM), SEED, atlas, SHARED)
    n = CONSORTIUM["n_subjects"]
    subjects = np.array([f"{i:04d}" for i in range(n)])  # sorted = roster order
    return {
        "path": out / "abidelike" / "ground_truth.json",
        "truth": read_ground_truth(out / "abidelike" / "ground_truth.json"),
        "ctx": ctx,
        "names": atlas.labels["name"].tolist(),
        "true": np.stack([subject_stream(ctx, i)[0] for i in range(n)]),
        "subjects": subjects,
        "labels": dict(zip(subjects, ctx.latents["dx_class"].astype(int), strict=True)),
    }


def test_patterns_rebuilt_from_the_ground_truth_are_the_generating_ones(cohort):
    names, model = effect_model_from_truth(cohort["truth"])
    assert sorted(names) == sorted(cohort["names"])  # the file lists regions sorted by name
    order = [cohort["names"].index(n) for n in names]
    generating = cohort["ctx"].model.patterns
    assert model.patterns.keys() == generating.keys()
    for key, pattern in model.patterns.items():
        np.testing.assert_allclose(pattern, generating[key][np.ix_(order, order)], atol=1e-12)


def test_the_readout_on_the_true_matrices_is_the_recorded_ceiling(cohort):
    # Same subjects, features, folds and seed as lcm synth's oracle: the same AUC, although
    # the matrices come in the atlas's order and the ground truth lists regions by name.
    got = scan_oracle(
        cohort["truth"], cohort["true"], cohort["names"], cohort["subjects"], cohort["labels"]
    )
    assert got["n_subjects"] == CONSORTIUM["n_subjects"]
    assert got["auc"] == cohort["truth"]["oracle"]["auc"]
    assert got["accuracy"] == cohort["truth"]["oracle"]["accuracy"]
    assert 0.6 < got["auc"] < 1.0


def test_region_order_of_the_store_does_not_matter(cohort):
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(cohort["names"]))
    shuffled = cohort["true"][:, perm][:, :, perm]
    names = [cohort["names"][i] for i in perm]
    args = (cohort["subjects"], cohort["labels"])
    assert scan_oracle(cohort["truth"], shuffled, names, *args) == scan_oracle(
        cohort["truth"], cohort["true"], cohort["names"], *args
    )


def test_finite_scans_fall_below_the_ceiling(cohort):
    # 60 volumes per subject: each matrix is a sample correlation of drawn time series.
    rng = np.random.default_rng(1)
    scans = np.stack(
        [
            np.corrcoef(rng.multivariate_normal(np.zeros(len(c)), c, size=60), rowvar=False)
            for c in cohort["true"]
        ]
    )
    got = scan_oracle(cohort["truth"], scans, cohort["names"], cohort["subjects"], cohort["labels"])
    assert got["auc"] < cohort["truth"]["oracle"]["auc"] - 0.05


def test_runs_of_a_subject_are_averaged_and_only_tested_subjects_enter(cohort):
    # Runs true + D and true - D of every subject, and a third run (true) of every other one:
    # their mean is the true matrix; one run alone or a sum is not.
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.3, cohort["true"].shape)
    noise = (noise + noise.transpose(0, 2, 1)) / 2
    third = np.arange(len(cohort["subjects"])) % 2 == 1
    fc = np.concatenate([cohort["true"] + noise, cohort["true"] - noise, cohort["true"][third]])
    subjects = cohort["subjects"]
    runs = np.concatenate([subjects, subjects, subjects[third]])
    tested = {s: y for i, (s, y) in enumerate(cohort["labels"].items()) if i % 3}
    averaged = scan_oracle(cohort["truth"], fc, cohort["names"], runs, tested)
    once = scan_oracle(cohort["truth"], cohort["true"], cohort["names"], subjects, tested)
    assert averaged["auc"] == pytest.approx(once["auc"], abs=2e-4)
    assert once["n_subjects"] == len(tested) == 80


def test_subject_means_equal_the_masked_mean_of_each_subjects_runs():
    # One pass over the runs (chunks of 3, runs of a subject in several chunks, a subject
    # without runs in the labels' order, runs of untested subjects) adds in the masked mean's
    # order: equal to the last bit.
    rng = np.random.default_rng(4)
    run_subjects = rng.choice(np.array(["a", "b", "c", "d", "e"]), size=17)
    run_subjects[:2] = ["a", "b"]
    runs = rng.normal(size=(17, 6)).astype(np.float32)
    subjects = ["a", "b", "c"]
    got = _subject_means(runs, run_subjects, subjects, chunk=3)
    for i, subject in enumerate(subjects):
        expected = runs[run_subjects == subject].mean(axis=0, dtype=np.float64)
        np.testing.assert_array_equal(got[i], expected)


def test_stored_triangles_give_the_readout_of_the_matrices(cohort):
    # The report passes the store's upper triangles (in the store's region order), no dense
    # copy: the same result as the matrices, with several runs per subject.
    rng = np.random.default_rng(5)
    perm = rng.permutation(len(cohort["names"]))
    noise = rng.normal(0, 0.2, cohort["true"].shape)
    fc = np.concatenate([cohort["true"] + noise, cohort["true"]])[:, perm][:, :, perm]
    fc = ((fc + fc.transpose(0, 2, 1)) / 2).astype(np.float32)
    names = [cohort["names"][i] for i in perm]
    runs = np.concatenate([cohort["subjects"], cohort["subjects"]])
    iu = np.triu_indices(len(names), k=1)
    dense = scan_oracle(cohort["truth"], fc, names, runs, cohort["labels"])
    triangles = scan_oracle(cohort["truth"], fc[:, iu[0], iu[1]], names, runs, cohort["labels"])
    assert dense == triangles and dense["auc"] is not None


def test_what_cannot_be_computed_is_said(cohort):
    args = (cohort["true"], cohort["names"], cohort["subjects"], cohort["labels"])
    other = copy.deepcopy(cohort["truth"])
    other["seed"] += 1  # as if written by another version of lcm synth
    with pytest.raises(ValueError, match="differ from the recorded ones"):
        effect_model_from_truth(other)
    got = scan_oracle(other, *args)
    assert got["auc"] is None and "rerun the synth stage" in got["note"]
    renamed = [f"roi{i}" for i in range(len(cohort["names"]))]
    got = scan_oracle(cohort["truth"], cohort["true"], renamed, *args[2:])
    assert got["auc"] is None and "not the synthetic atlas's" in got["note"]
    few = dict(list(cohort["labels"].items())[:3])
    got = scan_oracle(cohort["truth"], *args[:3], few)
    assert got["auc"] is None and "too few subjects" in got["note"]


def test_ceiling_and_read_ground_truth(tmp_path):
    path = tmp_path / "abidelike" / "ground_truth.json"
    path.parent.mkdir()
    oracle = {"auc": 0.8, "auc_patient_vs_control": 0.81, "classes": ["control", "autism"]}
    truth = {"consortium": "abidelike", "shared_structure": 0.0, "oracle": oracle}
    path.write_text(json.dumps(truth))
    assert ceiling(read_ground_truth(path), path) == {
        "consortium": "abidelike",
        "shared_structure": 0.0,
        "auc": 0.81,
        "accuracy": None,
        "levels": ["control", "autism"],
    }
    assert ceiling({"consortium": "x"}) is None
    with pytest.raises(InputDataError, match="Cannot read ground truth"):
        read_ground_truth(tmp_path / "missing.json")
    path.write_text("[1, 2]")
    with pytest.raises(InputDataError, match="not a JSON object"):
        read_ground_truth(path)
