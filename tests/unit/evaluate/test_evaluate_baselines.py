"""Baselines (SVM, ridge, tangent + logreg, CPM), continuous tasks and leave-site-out splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.evaluate import TASK, make_cohort

from lcm.evaluate.baselines import (
    ConnectomeLogReg,
    ConnectomeRidge,
    ConnectomeSVM,
    TangentLogReg,
    inner_splits,
)
from lcm.evaluate.compare import permutation_tests
from lcm.evaluate.cpm import CPM
from lcm.evaluate.metrics import regression_metrics
from lcm.evaluate.protocol import (
    EvaluationSettings,
    check_pretraining_excludes,
    evaluate_task,
)
from lcm.evaluate.splits import site_folds
from lcm.evaluate.tangent import TangentSpace, geometric_mean
from lcm.evaluate.tasks import Task
from lcm.exceptions import ConfigError, InputDataError
from lcm.store.cohort import Cohort

N_ROIS = 8


def _fc(rng: np.random.Generator, n: int, strength: np.ndarray) -> np.ndarray:
    """Correlation matrices whose ROIs 0-2 share a latent signal of the given strengths."""
    out = []
    for s in strength:
        ts = rng.normal(size=(50, N_ROIS))
        ts[:, :3] += s * rng.normal(size=(50, 1))
        out.append(np.corrcoef(ts.T))
    return np.stack(out).astype(np.float32)


def test_classifiers_learn_and_tune_on_training_runs_only():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    fc = _fc(rng, 40, 0.2 + 0.9 * y)
    train, test = np.arange(30), np.arange(30, 40)
    groups = np.array([f"s{i}" for i in range(40)])
    for cls in (ConnectomeLogReg, ConnectomeSVM, TangentLogReg):
        model = cls(seed=1).fit(fc[train], y[train], None, groups=groups[train])
        p = model.predict_proba(fc[test])[:, 1]
        assert p.shape == (10,) and np.all((p >= 0) & (p <= 1))
        assert p[y[test] == 1].mean() > p[y[test] == 0].mean()
        assert model.best_param_ in cls.grid  # chosen by inner CV
    # unlabeled runs (-1) are not used as labels
    y_fit = y[train].copy()
    y_fit[:20] = -1
    model = ConnectomeLogReg(seed=1).fit(fc[train], y_fit, None, groups=groups[train])
    assert model.n_train_ == 10


def test_inner_splits_keep_subjects_together_and_need_two_per_class():
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1])
    groups = np.array(["a", "a", "b", "b", "c", "c", "d", "d", "e", "f", "g", "h"])
    splits = inner_splits(y, groups, seed=0)
    assert splits is not None and len(splits) == 3
    for train, val in splits:
        assert not set(groups[train]) & set(groups[val])
    assert inner_splits(np.array([0, 0, 1]), np.array(["a", "b", "c"]), seed=0) is None


def test_tangent_reference_is_fitted_on_training_matrices_only():
    rng = np.random.default_rng(1)
    train = _fc(rng, 12, np.full(12, 0.5)).astype(float)
    test = _fc(rng, 5, np.full(5, 2.0)).astype(float)
    tangent = TangentSpace(shrinkage=0.1).fit(train)
    reference = tangent.reference_.copy()
    vectors = tangent.transform(test)
    np.testing.assert_array_equal(tangent.reference_, reference)  # transform learns nothing
    expected = geometric_mean(0.9 * train + 0.1 * np.eye(N_ROIS))
    np.testing.assert_allclose(reference, expected, atol=1e-6)
    assert vectors.shape == (5, N_ROIS * (N_ROIS + 1) // 2)
    # at the reference itself the tangent vector is zero
    np.testing.assert_allclose(
        tangent.transform(((reference - 0.1 * np.eye(N_ROIS)) / 0.9)[None]), 0.0, atol=1e-6
    )
    with pytest.raises(InputDataError, match=r"expected matrices of shape \(n, R, R\)"):
        tangent.transform(test[0])


def _whole_stack_tangent(fc: np.ndarray, test: np.ndarray, shrinkage: float = 0.1):
    """The former TangentSpace: the whole float64 stack shrunk, decomposed and averaged at once."""

    def eig_apply(mats, func):
        vals, vecs = np.linalg.eigh(mats)
        return (vecs * func(vals)[..., None, :]) @ np.swapaxes(vecs, -1, -2)

    mats = (1 - shrinkage) * np.asarray(fc, dtype=np.float64) + shrinkage * np.eye(fc.shape[1])
    mean = mats.mean(axis=0)
    for _ in range(30):
        sqrt = eig_apply(mean, np.sqrt)
        inv_sqrt = eig_apply(mean, lambda v: 1.0 / np.sqrt(v))
        grad = eig_apply(inv_sqrt @ mats @ inv_sqrt, np.log).mean(axis=0)
        mean = sqrt @ eig_apply(grad, np.exp) @ sqrt
        mean = (mean + mean.T) / 2.0
        if np.linalg.norm(grad) / np.sqrt(len(grad)) < 1e-5:
            break
    white = eig_apply(mean, lambda v: 1.0 / np.sqrt(v))
    test = (1 - shrinkage) * np.asarray(test, dtype=np.float64) + shrinkage * np.eye(fc.shape[1])
    tangent = eig_apply(white @ test @ white, np.log)
    rows, cols = np.triu_indices(fc.shape[1])
    return mean, tangent[:, rows, cols] * np.where(rows == cols, 1.0, np.sqrt(2.0))


def test_tangent_in_chunks_equals_the_whole_stack(monkeypatch):
    # Chunks of 4 over 23 float32 matrices (a last, partial chunk): the same reference and
    # vectors as the whole stack at once, to the last bit (the mean adds in the same order).
    monkeypatch.setattr("lcm.evaluate.tangent.CHUNK", 4)
    rng = np.random.default_rng(3)
    fc = _fc(rng, 23, rng.uniform(0, 1.5, 23)).astype(np.float32)
    tangent = TangentSpace(shrinkage=0.1).fit(fc)
    reference, vectors = _whole_stack_tangent(fc, fc[:9])
    np.testing.assert_array_equal(tangent.reference_, reference)
    np.testing.assert_array_equal(tangent.transform(fc[:9]), vectors)


def test_cpm_and_ridge_predict_a_continuous_target():
    rng = np.random.default_rng(2)
    score = rng.normal(size=60)
    fc = _fc(rng, 60, 0.8 + 0.4 * score)
    y = score.astype(float)
    train, test = np.arange(45), np.arange(45, 60)
    cpm = CPM().fit(fc[train], y[train])
    assert cpm.positive_.any()
    r_cpm = regression_metrics(y[test], cpm.predict(fc[test]))["pearson_r"]
    ridge = ConnectomeRidge(seed=0).fit(fc[train], y[train], None, groups=None)
    r_ridge = regression_metrics(y[test], ridge.predict(fc[test]))["pearson_r"]
    assert r_cpm > 0.4 and r_ridge > 0.4
    # NaN marks unlabeled runs
    y_fit = y[train].copy()
    y_fit[::2] = np.nan
    assert ConnectomeRidge(seed=0).fit(fc[train], y_fit).n_train_ == 22


def test_cpm_tests_edges_on_subjects_not_on_their_windows():
    """CPM tested every window as a sample: ten windows of each subject passed p < 0.01 on ten
    times the degrees of freedom, and noise edges entered its networks (a weakened baseline)."""
    rng = np.random.default_rng(4)
    fc = _fc(rng, 30, np.full(30, 0.8))
    y = rng.normal(size=30)  # a target the connectomes know nothing of
    once = CPM().fit(fc, y)
    # Each subject's scan cut into 10 windows: copies here, so the subject means are the scan.
    windows = np.repeat(fc, 10, axis=0)
    groups = np.repeat([f"ds/sub{i:02d}" for i in range(30)], 10)
    by_subject = CPM().fit(windows, np.repeat(y, 10), groups=groups)
    np.testing.assert_array_equal(by_subject.positive_, once.positive_)
    np.testing.assert_array_equal(by_subject.negative_, once.negative_)
    np.testing.assert_allclose(by_subject.predict(fc), once.predict(fc))
    as_runs = CPM().fit(windows, np.repeat(y, 10))  # no groups: each window a subject
    assert (as_runs.positive_ | as_runs.negative_).sum() > (once.positive_ | once.negative_).sum()
    with pytest.raises(InputDataError, match="2 labeled training subject"):
        CPM().fit(windows[:20], np.repeat(y, 10)[:20], groups=groups[:20])


def test_regression_metrics_by_hand():
    out = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]))
    assert out["mae"] == pytest.approx(0.25)
    assert out["r2"] == pytest.approx(1 - 1 / 5)
    assert out["pearson_r"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 2, 3, 5])[0, 1])
    assert np.isnan(regression_metrics(np.ones(4), np.arange(4.0))["pearson_r"])
    # A constant prediction whose std rounds to 7e-15 (the training mean, 124 / 3) has no r
    # either; it scored -1e-16, counted in the fold mean.
    mean = np.full(10, 124 / 3)
    assert np.std(mean) > 0
    assert np.isnan(regression_metrics(np.arange(10.0), mean)["pearson_r"])


def _with_sites(cohort: Cohort, n_sites: int) -> Cohort:
    ids = cohort.ids.copy()
    subject_index = ids["subject"].str[1:].astype(int)
    ids["site"] = [f"site{i % n_sites}" for i in subject_index]
    return Cohort(ids, cohort.fc, cohort.variables, cohort.roi_names, cohort.atlas)


def test_leave_site_out_folds_hold_out_whole_sites():
    cohort = _with_sites(make_cohort(n_subjects=24, n_unlabeled=0), 3)
    y = (cohort.variables["autism"] == "autism").to_numpy().astype(int)
    sites = cohort.ids["site"].to_numpy()
    folds = site_folds(y, cohort.groups, sites, seed=0)
    assert len(folds) == 3
    for train, test in folds:
        assert len(set(sites[test])) == 1 and not set(sites[train]) & set(sites[test])
    with pytest.raises(InputDataError, match="at least two sites"):
        site_folds(y, cohort.groups, np.full(len(y), "A", dtype=object), seed=0)
    settings = EvaluationSettings.from_dict(
        {"split": "site", "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0)
    assert result.split == "site"
    assert sorted(result.predictions["site"].unique()) == ["site0", "site1", "site2"]
    per_fold = result.predictions.groupby("fold")["site"].nunique()
    assert (per_fold == 1).all()


def test_site_split_falls_back_without_sites(caplog):
    cohort = make_cohort(n_subjects=16, n_unlabeled=0)  # every run at siteA
    settings = EvaluationSettings.from_dict(
        {"split": "site", "n_folds": 2, "label_fractions": [1.0], "models": ["logreg"]}
    )
    assert evaluate_task(cohort, TASK, settings, master_seed=0).split == "subject"
    assert "fewer than two sites (['siteA'])" in caplog.text
    # Three sites, one subject without one: the log said "fewer than two sites" (the store's
    # log named the subject); it names the subject and the sites.
    caplog.clear()
    three = _with_sites(cohort, 3)
    bare = three.ids["subject"].iloc[0]
    three.ids.loc[three.ids["subject"] == bare, "site"] = ""
    assert evaluate_task(three, TASK, settings, master_seed=0).split == "subject"
    assert f"1 subject(s) name no site ({three.groups[0]}; sites named: ['site0', 'site1', " in (
        caplog.text
    )
    assert "fewer than two" not in caplog.text
    with pytest.raises(ConfigError, match="split must be one of"):
        EvaluationSettings.from_dict({"split": "scanner"})


@pytest.mark.slow
def test_continuous_task_runs_regressors_and_skips_classifiers():
    rng = np.random.default_rng(3)
    cohort = make_cohort(n_subjects=30, n_unlabeled=0)
    score = rng.normal(size=len(cohort))
    ts_strength = 0.8 + 0.4 * score
    fc = _fc(rng, len(cohort), ts_strength)[:, :, :]
    variables = cohort.variables.assign(score=score)
    ids = cohort.ids
    cohort = Cohort(ids, fc, variables, [f"r{i}" for i in range(N_ROIS)], "toy")
    task = Task(name="score", label="score", kind="continuous")
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 3,
            "label_fractions": [1.0],
            "models": ["logreg", "ridge", "cpm", "shuffled-labels"],
        }
    )
    result = evaluate_task(cohort, task, settings, master_seed=0)
    assert result.models == ["ridge", "cpm", "shuffled-labels"]
    assert result.skipped == {"logreg": "does not handle continuous targets"}
    assert set(result.metrics["metric"]) == {"pearson_r", "mae", "r2"}
    r = result.metrics.query("metric == 'pearson_r'").groupby("model")["value"].mean()
    assert r["ridge"] > 0.3 and r["cpm"] > 0.3
    assert r["shuffled-labels"] < r["ridge"] - 0.2
    # The control permutes ridge on a continuous task: its p is ridge's Pearson r against the
    # 20 permuted refits' (each permutation's r pooled over the 3 folds).
    (test,) = permutation_tests(result.metrics, result.permutation_scores).to_dict("records")
    assert (test["permuted_model"], test["metric"], test["n_permutations"]) == (
        "ridge",
        "pearson_r",
        20,
    )
    assert test["observed"] == pytest.approx(r["ridge"])
    assert test["p_value"] == pytest.approx(1 / 21)


def test_checkpoint_pretrained_on_the_task_dataset_is_refused(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"data": {"datasets": ["abidelike", "x"]}}))
    with pytest.raises(ConfigError, match=r"pretrained on \['abidelike'\]") as info:
        check_pretraining_excludes(tmp_path, ["abidelike"])
    # The CLI user has no config to give a role in: the hint names the flag too.
    assert "pretrain without abidelike in `lcm pretrain --datasets`" in (info.value.hint or "")
    check_pretraining_excludes(tmp_path, ["adnilike"])  # no overlap: fine


def test_a_checkpoint_that_saw_the_tasks_runs_under_another_name_is_refused(tmp_path):
    """The same data configured twice (role pretrain as 'abidecopy', downstream as
    'abidelike'): the dataset names differ, the connectomes do not."""
    from helpers.evaluate import make_cohort

    from lcm.io.run_digests import connectome_digests, encode_digests

    cohort = make_cohort(n_subjects=12, n_unlabeled=0)
    other = make_cohort(n_subjects=12, n_unlabeled=0, seed=5)
    seen = np.concatenate([connectome_digests(other.fc), connectome_digests(cohort.fc[:3])])
    meta = {"data": {"datasets": ["abidecopy"], "run_digests": encode_digests(seen)}}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"pretrained on 3 run\(s\) of this task's 2 subj"):
        check_pretraining_excludes(tmp_path, ["abidelike"], cohort)
    meta["data"]["run_digests"] = encode_digests(connectome_digests(other.fc))
    (tmp_path / "model.json").write_text(json.dumps(meta))
    check_pretraining_excludes(tmp_path, ["abidelike"], cohort)  # other data: fine


def test_a_checkpoint_that_saw_the_tasks_runs_rounded_is_refused(tmp_path):
    """The task's connectomes exported with 4 decimals (relmat TSVs) and imported as another
    dataset for pretraining: other bytes, so other digests, but the same values."""
    from helpers.evaluate import make_cohort

    from lcm.io.run_digests import connectome_digests, connectome_sketches, encode_digests

    cohort = make_cohort(n_subjects=12, n_unlabeled=0)
    other = make_cohort(n_subjects=12, n_unlabeled=0, seed=5)
    exported = np.round(cohort.fc[:2].astype(np.float64), 4).astype(np.float32)
    seen = np.concatenate([other.fc, exported])
    meta = {
        "data": {
            "datasets": ["abideexport"],
            "run_digests": encode_digests(connectome_digests(seen)),
            "run_sketches": connectome_sketches(seen),
        }
    }
    assert not np.isin(connectome_digests(cohort.fc), connectome_digests(seen)).any()
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"2 run\(s\) .* up to rounding"):
        check_pretraining_excludes(tmp_path, ["abidelike"], cohort)
    # Another cohort of the same generator (other subjects, same structure): no match.
    meta["data"]["run_sketches"] = connectome_sketches(other.fc)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    check_pretraining_excludes(tmp_path, ["abidelike"], cohort)


def test_a_finetuned_checkpoint_is_named_as_such(tmp_path):
    """A finetuned checkpoint's model.json is readable (kind: finetuned, no data.datasets):
    the refusal called it missing or unreadable."""
    meta = {"kind": "finetuned", "pretrained_from": "/models/pre48", "label": {}}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"is a finetuned checkpoint \(lcm finetune\)") as info:
        check_pretraining_excludes(tmp_path, ["abidelike"])
    assert "missing, unreadable" not in info.value.message
    assert "`lcm pretrain` wrote (this one was finetuned from /models/pre48)" in info.value.hint


@pytest.mark.parametrize("meta", [None, "{", '{"data": {}}', "[1]"])
def test_a_checkpoint_that_cannot_say_what_it_saw_is_refused(tmp_path, meta):
    """A folder of ridge maps alone (bei-linear) skipped the check: maps fitted on the task's
    own subjects were evaluated on them."""
    (tmp_path / "bei_linear.npz").write_bytes(b"")
    if meta is not None:
        (tmp_path / "model.json").write_text(meta)
    with pytest.raises(ConfigError, match=r"cannot be checked that pretraining never saw"):
        check_pretraining_excludes(tmp_path, ["abidelike"])
