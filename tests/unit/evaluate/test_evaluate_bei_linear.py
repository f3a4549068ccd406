"""``bei-linear``: ridge maps from FC to BEI variables (pretraining cohort), then a linear model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.evaluate import TASK, PrevalenceModel, bei_cohort, make_cohort

from lcm.evaluate.bei_linear import (
    MAPS_FILE,
    BEILinear,
    BEIMaps,
    fit_bei_maps,
    load_maps,
    no_maps_reason,
)
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.evaluate.registry import (
    BASELINE_MODELS,
    largest_fraction_only,
    models_needing_checkpoint,
    register_model,
    unregister_model,
)
from lcm.exceptions import CheckpointError, ConfigError

N_ROIS = 9


def _pretraining(n: int = 120, seed: int = 3):
    """FC whose edge (0, 1) carries 'age' and edge (2, 3) carries 'sex'; a categorical too."""
    return bei_cohort(n, N_ROIS, 200, seed=seed)


def test_maps_are_written_atomically(tmp_path, monkeypatch):
    """A write that fails half-way leaves neither maps nor a visible temporary file (which
    `lcm provenance verify` would call an output), and earlier maps stay as they were."""
    fc, variables, groups = _pretraining(n=40)
    maps = fit_bei_maps(fc, variables, groups, seed=0)
    path = maps.save(tmp_path / MAPS_FILE)
    before = path.read_bytes()

    def fail(fh, **arrays):
        fh.write(b"half an npz")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="No space left"):
        maps.save(path)
    with pytest.raises(OSError, match="No space left"):
        maps.save(tmp_path / "new" / MAPS_FILE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MAPS_FILE, "new"]
    assert path.read_bytes() == before and not any((tmp_path / "new").iterdir())


def test_maps_read_the_variables_on_held_out_subjects(tmp_path):
    fc, variables, groups = _pretraining()
    maps = fit_bei_maps(fc, variables, groups, seed=0)
    assert maps.names == ["age", "sex=M", "group=a", "group=b", "group=c"]
    r2 = dict(zip(maps.names, maps.heldout_r2, strict=True))
    assert r2["age"] > 0.5 and r2["sex=M"] > 0.5
    assert r2["group=a"] < 0.3  # noise stays noise
    again = BEIMaps.load(maps.save(tmp_path / MAPS_FILE))
    np.testing.assert_allclose(again.transform(fc[:5]), maps.transform(fc[:5]))
    predicted = maps.transform(fc)
    ok = variables["age"].notna().to_numpy()
    assert np.corrcoef(predicted[ok, 0], variables["age"][ok])[0, 1] > 0.8


def test_bei_linear_in_the_protocol_reads_the_checkpoint_maps(tmp_path, monkeypatch):
    """Through the protocol, bei-linear reads the maps beside the checkpoint, loaded and
    checked once for the task (every fit reads the same maps), not once per fit."""
    cohort = make_cohort(n_subjects=40, n_unlabeled=0)
    # Maps fitted on a separate 'pretraining' cohort of the same ROI count.
    rng = np.random.default_rng(0)
    pre = make_cohort(n_subjects=40, n_unlabeled=0, seed=7)
    pre_vars = pd.DataFrame({"score": rng.normal(size=len(pre))})
    pre_vars["score"] += 3 * pre.fc[:, 0, 1]
    maps = fit_bei_maps(pre.fc, pre_vars, pre.groups, atlas="toy", roi_names=cohort.roi_names)
    maps.save(tmp_path / MAPS_FILE)
    # What the checkpoint was pretrained on (datasets, atlas, ROIs), as lcm pretrain records it
    # beside the maps; the protocol reads model.json only (an empty weights file does).
    meta = {"format_version": 1, "data": {"datasets": ["pretraining"]}, "atlas": "toy"}
    meta.update(n_rois=len(cohort.roi_names), roi_names=cohort.roi_names)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").touch()
    settings = EvaluationSettings(n_folds=3, label_fractions=(1.0,), models=("bei-linear",))
    loads = []
    load = BEIMaps.load.__func__
    monkeypatch.setattr(
        BEIMaps, "load", classmethod(lambda cls, p: loads.append(p) or load(cls, p))
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0, checkpoint=tmp_path)
    auc = result.metrics.query("metric == 'auc'")["value"]
    assert len(auc) == 3 and auc.mean() > 0.6
    assert loads == [tmp_path / MAPS_FILE]
    assert "bei-linear" in BASELINE_MODELS
    assert models_needing_checkpoint(["bei-linear", "logreg"]) == ["bei-linear"]


def _checkpoint_with_maps(tmp_path, cohort, min_values: int):
    """A checkpoint folder as lcm pretrain and lcm bei-maps leave it: model.json (an empty
    weights file: the protocol reads model.json only) and maps fitted at ``min_values``."""
    pre = make_cohort(n_subjects=40, n_unlabeled=0, seed=7)
    pre_vars = pd.DataFrame({"score": np.random.default_rng(0).normal(size=len(pre))})
    pre_vars["score"] += 3 * pre.fc[:, 0, 1]
    maps = fit_bei_maps(
        pre.fc,
        pre_vars,
        pre.groups,
        atlas="toy",
        roi_names=cohort.roi_names,
        min_values=min_values,
    )
    maps.save(tmp_path / MAPS_FILE)
    meta = {"format_version": 1, "data": {"datasets": ["pretraining"]}, "atlas": "toy"}
    meta.update(n_rois=len(cohort.roi_names), roi_names=cohort.roi_names)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").touch()
    return maps


def test_maps_of_no_variable_skip_bei_linear_naming_why(tmp_path, caplog):
    """Maps of no variable (a pretraining cohort too small for the threshold) leave bei-linear
    without a feature: the task skips it, recording the maps, the counts and the fixes, and
    evaluates the other models; with bei-linear alone, nothing is left and the task stops."""
    cohort = make_cohort(n_subjects=40, n_unlabeled=0)
    maps = _checkpoint_with_maps(tmp_path, cohort, min_values=500)
    assert maps.names == [] and set(maps.left_out) == {"score"}
    settings = EvaluationSettings(
        n_folds=3, label_fractions=(1.0,), models=("logreg", "bei-linear")
    )
    with caplog.at_level("WARNING", logger="lcm.evaluate.protocol"):
        result = evaluate_task(cohort, TASK, settings, master_seed=0, checkpoint=tmp_path)
    assert set(result.metrics["model"]) == {"logreg"}
    reason = result.skipped["bei-linear"]
    assert str(tmp_path / MAPS_FILE) in reason and "map no BEI variable" in reason
    assert f"score {maps.left_out['score']}" in reason and "(needs 500)" in reason
    assert "evaluate.bei_linear_min_values" in reason and "skipping bei-linear" in caplog.text
    alone = EvaluationSettings(n_folds=3, label_fractions=(1.0,), models=("bei-linear",))
    with pytest.raises(ConfigError, match=r"leaves nothing to evaluate: bei-linear skipped") as e:
        evaluate_task(cohort, TASK, alone, master_seed=0, checkpoint=tmp_path)
    assert "logreg" in e.value.hint


def test_maps_of_constant_variables_give_their_own_reason(tmp_path):
    """Maps that map nothing because every variable has one value in every run name those
    variables and ask for other data, not for a lower threshold that would not help; with a
    too-rare variable beside them, both reasons are named."""
    pre = make_cohort(n_subjects=40, n_unlabeled=0, seed=7)
    constant = pd.DataFrame({"field": np.full(len(pre), 3.0)})
    maps = fit_bei_maps(pre.fc, constant, pre.groups)
    reason = no_maps_reason(maps, tmp_path / MAPS_FILE)
    assert reason.startswith(f"its ridge maps {tmp_path / MAPS_FILE} map no BEI variable")
    assert "one value in every run: field" in reason
    assert "Add pretraining datasets that carry them" in reason
    assert "bei_linear_min_values" not in reason and "too few" not in reason
    constant["rare"] = np.where(np.arange(len(pre)) < 4, 1.0, np.nan)
    both = no_maps_reason(fit_bei_maps(pre.fc, constant, pre.groups), "m.npz")
    assert "too few training subjects with a value in the pretraining cohort" in both
    assert "(needs 20): rare " in both and "; or one value in every run: field." in both
    assert "bei_linear_min_values" in both


def test_maps_refuse_connectomes_of_another_atlas_or_roi_order(tmp_path):
    """The maps read each edge as a pair of ROIs: they record which, and refuse others."""
    fc, variables, groups = _pretraining()
    names = [f"r{i}" for i in range(N_ROIS)]
    fit_bei_maps(fc, variables, groups, atlas="toy", roi_names=names).save(tmp_path / MAPS_FILE)
    maps = load_maps(tmp_path, atlas="toy", roi_names=names)
    assert maps.atlas == "toy" and maps.roi_names == names
    with pytest.raises(CheckpointError, match=r"fitted on atlas 'toy', the data use 'toy2'"):
        load_maps(tmp_path, atlas="toy2", roi_names=names)
    with pytest.raises(
        CheckpointError, match=r"ROI 0 is 'r0' in the maps, 'r8' in the data \(same"
    ):
        load_maps(tmp_path, atlas="toy", roi_names=names[::-1])
    # Maps written before the record: the ROI count only, as before.
    fit_bei_maps(fc, variables, groups).save(tmp_path / MAPS_FILE)
    assert load_maps(tmp_path, atlas="toy2", roi_names=names[::-1]).roi_names is None
    with pytest.raises(CheckpointError, match=r"read 36 edges, the data's 10 ROIs have 45") as info:
        load_maps(tmp_path, atlas="toy", roi_names=[*names, "extra"])
    assert str(tmp_path / MAPS_FILE) in info.value.message and "pretrain" in info.value.hint


def test_maps_of_other_data_than_the_checkpoint_beside_them_are_refused(tmp_path):
    """The maps are fitted apart from the checkpoint (lcm bei-maps): they record the cohort's
    data fingerprint, and one other than model.json's is refused (what the checkpoint was
    checked not to have seen says nothing of them); either side without one passes."""
    fc, variables, groups = _pretraining()
    maps = fit_bei_maps(fc, variables, groups, data_fingerprint="a" * 64)
    assert BEIMaps.load(maps.save(tmp_path / MAPS_FILE)).data_fingerprint == "a" * 64
    (tmp_path / "model.json").write_text(json.dumps({"data_fingerprint": "a" * 64}))
    assert load_maps(tmp_path).data_fingerprint == "a" * 64
    (tmp_path / "model.json").write_text(json.dumps({"data_fingerprint": "b" * 64}))
    with pytest.raises(CheckpointError, match=r"fitted on other data than the checkpoint") as info:
        load_maps(tmp_path)
    assert "lcm bei-maps" in info.value.hint
    (tmp_path / "model.json").write_text(json.dumps({}))
    load_maps(tmp_path)
    fit_bei_maps(fc, variables, groups).save(tmp_path / MAPS_FILE)  # maps before the record
    (tmp_path / "model.json").write_text(json.dumps({"data_fingerprint": "b" * 64}))
    assert load_maps(tmp_path).data_fingerprint is None


def test_bei_linear_without_maps_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"bei_linear\.npz is missing"):
        load_maps(tmp_path)
    with pytest.raises(ConfigError, match="needs the pretraining checkpoint"):
        load_maps(None)


def test_bei_linear_regresses_a_continuous_target():
    fc, variables, groups = _pretraining()
    maps = fit_bei_maps(fc, variables, groups)
    y = variables["age"].fillna(40.0).to_numpy()
    model = BEILinear(maps, binary=False).fit(fc, y, None, groups=groups)
    assert np.corrcoef(model.predict(fc), y)[0, 1] > 0.7


def test_a_largest_fraction_only_model_is_fitted_there_only():
    register_model(
        "cheap-control", lambda c: PrevalenceModel(), replace=True, largest_fraction_only=True
    )
    try:
        assert largest_fraction_only("cheap-control")
        settings = EvaluationSettings(
            n_folds=2, label_fractions=(0.5, 1.0), models=("cheap-control",)
        )
        result = evaluate_task(make_cohort(), TASK, settings, master_seed=0)
        assert set(result.metrics["label_fraction"]) == {1.0}
    finally:
        unregister_model("cheap-control")
    assert largest_fraction_only("shuffled-lcm")


def test_a_variable_constant_on_the_hold_out_is_not_scored(caplog):
    """Its sum of squares is round-off: R² NaN (not -3e31), the default penalty, and said so."""
    fc, variables, groups = _pretraining()
    subjects = np.unique(groups)
    n_out = max(1, round(0.15 * len(subjects)))  # fit_bei_maps's subject hold-out, seed 0
    held = np.isin(groups, np.random.default_rng(0).permutation(subjects)[:n_out])
    dose = np.linspace(0.0, 1.0, len(groups))
    dose[held] = 0.1 + 0.2  # one value, not exactly representable: its mean is off by round-off
    variables["dose"] = dose
    with caplog.at_level("INFO", logger="lcm.train.bei_maps"):
        maps = fit_bei_maps(fc, variables, groups, seed=0)
    v = maps.names.index("dose")
    assert np.isnan(maps.heldout_r2[v]) and maps.alpha[v] == 1e3
    assert np.isfinite(maps.heldout_r2[maps.names.index("age")])
    assert "dose (alpha 1000 by default, not scorable on the hold-out" in caplog.text


@pytest.mark.parametrize("text", ["[]", '"a"', "{", b"\xff\xfe"])
def test_a_damaged_model_json_fails_the_data_check_instead_of_passing_it(tmp_path, text):
    """model.json is read by its owner (lcm.model.checkpoint_meta): a file that is not a JSON
    object used to read as one recording no fingerprint, and the leakage check passed."""
    fc, variables, groups = _pretraining()
    fit_bei_maps(fc, variables, groups, data_fingerprint="a" * 64).save(tmp_path / MAPS_FILE)
    meta = tmp_path / "model.json"
    meta.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CheckpointError) as info:
        load_maps(tmp_path)
    assert str(meta) in info.value.message and "lcm pretrain" in info.value.hint
