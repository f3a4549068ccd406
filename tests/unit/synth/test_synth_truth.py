"""lcm synth: ground truth and oracle, the shared-structure knob, realism statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from lcm.atlas import load_atlas
from lcm.synth import write_cohort
from lcm.synth.connectivity import ENV_VARIABLES
from lcm.synth.latents import scores
from lcm.synth.oracle import pattern_projections
from lcm.synth.presets import PRESETS, resolve
from lcm.synth.realism import check, lag1_range, roi_statistics
from lcm.synth.subject import prepare

SEED = 7


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def test_ground_truth_has_effects_classes_and_an_oracle(tmp_path, atlas):
    cons = {"preset": "ppmi", "n_subjects": 160, "n_volumes": 20}
    write_cohort("ppmilike", cons, out_dir=tmp_path, seed=SEED, shared_structure=0.7, atlas=atlas)
    truth = json.loads((tmp_path / "ppmilike" / "ground_truth.json").read_text())
    assert truth["diagnosis"] == "parkinsons"
    classes = truth["diagnosis_classes"]
    assert [c["level"] for c in classes] == ["control", "PD", "prodromal", "SWEDD"]
    assert sum(c["n_subjects"] for c in classes) == 160
    assert all(c["n_subjects"] > 0 for c in classes)
    assert truth["effects"]["parkinsons"]["cosine_with_env_span"] == pytest.approx(0.7, abs=1e-6)
    oracle = truth["oracle"]
    assert oracle["classes"] == [c["level"] for c in classes]
    # Four classes with graded doses: well above chance (0.25 accuracy, 0.5 AUC), not perfect.
    assert 0.6 < oracle["auc"] < 0.98, oracle
    assert 0.6 < oracle["auc_patient_vs_control"] <= 1.0, oracle
    assert 0.25 < oracle["balanced_accuracy"] < 0.95, oracle


def test_cohort_without_diagnosis_has_no_oracle(tmp_path, atlas):
    cons = {"preset": "hcp", "n_subjects": 5, "n_volumes": 20}
    write_cohort("hcplike", cons, out_dir=tmp_path, seed=SEED, shared_structure=0.7, atlas=atlas)
    truth = json.loads((tmp_path / "hcplike" / "ground_truth.json").read_text())
    assert truth["oracle"] is None and truth["n_patients"] == 0


def _dx_auc_from_env_residuals(atlas, shared: float) -> float:
    """AUC of the diagnosis from what environmental patterns see beyond the variables' values."""
    spec = resolve("cobrelike", {"preset": "cobre", "n_subjects": 300, "n_volumes": 20})
    ctx = prepare(spec, SEED, atlas, shared)
    proj = pattern_projections(ctx, spec.n_subjects, list(ENV_VARIABLES))
    env_scores = np.array(
        [[scores(row, None)[v] for v in ENV_VARIABLES] for _, row in ctx.latents.iterrows()]
    )
    design = np.column_stack([np.ones(len(env_scores)), env_scores])
    resid = proj - design @ np.linalg.lstsq(design, proj, rcond=None)[0]
    y = ctx.latents["diagnosis"].to_numpy()
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    p = cross_val_predict(
        LogisticRegression(max_iter=2000), resid, y, cv=cv, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(y, p))


def test_knob_at_zero_leaves_nothing_for_environmental_patterns_to_find(atlas):
    # Pretraining learns the environmental patterns; what they see of a subject's connectivity
    # beyond its variables' own values predicts the diagnosis only when structure is shared.
    assert abs(_dx_auc_from_env_residuals(atlas, 0.0) - 0.5) < 0.1
    assert _dx_auc_from_env_residuals(atlas, 1.0) > 0.85


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_roi_tier_statistics_are_in_the_real_ranges(atlas, preset):
    spec = resolve(f"{preset}like", {"preset": preset, "n_subjects": 12})
    stats = roi_statistics(prepare(spec, SEED, atlas, 0.7), 12)
    assert check(stats, spec.tr) == []


def test_check_reports_out_of_range_statistics():
    stats = {
        "mean_fc": 0.5,
        "within_minus_between_fc": -0.1,
        "lag1_autocorrelation": 0.3,
        "median_fd_mm": 0.2,
        "other": 9.0,
    }
    failures = check(stats, 2.0)
    assert [f.split("=")[0] for f in failures] == [
        "mean_fc",
        "within_minus_between_fc",
        "lag1_autocorrelation",
    ]
    assert lag1_range(0.72)[0] == lag1_range(2.0)[0] == 0.5
    assert lag1_range(3.0)[0] < 0.5
