"""The evaluation protocol on a small synthetic cohort with real signal."""

from __future__ import annotations

import argparse
import json
from typing import ClassVar

import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.evaluate import TASK, PrevalenceModel, make_cohort

from lcm.catalogue import Catalogue, Variable
from lcm.commands import evaluate as evaluate_cmd
from lcm.evaluate.metrics import METRIC_COLUMNS, PREDICTION_COLUMNS
from lcm.evaluate.protocol import (
    EvaluationSettings,
    evaluate_task,
    make_model,
    register_model,
    task_from_catalogue,
    unregister_model,
)
from lcm.exceptions import ConfigError, InputDataError
from lcm.store.cohort import Cohort


class RecordingMean(PrevalenceModel):
    """Cheap registered estimator: predicts the labeled training prevalence; records fit input."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit(self, fc, y, variables):
        RecordingMean.calls.append({"fc": fc.copy(), "y": y.copy(), "variables": variables.copy()})
        return super().fit(fc, y, variables)


@pytest.fixture
def recording_model():
    RecordingMean.calls = []
    register_model("recording", lambda ctx: RecordingMean(ctx.seed), replace=True)
    yield RecordingMean
    unregister_model("recording")


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return make_cohort()


@pytest.fixture(scope="module")
def settings() -> EvaluationSettings:
    return EvaluationSettings.from_dict(
        {
            "n_folds": 4,
            "seeds": [0, 1],
            "label_fractions": [1.0, 0.25],
            "models": ["logreg", "shuffled-labels"],
            # The control's mean over 4 x 8 permuted fits sits within 0.06 of chance (0.03
            # with the default 20, four times the fits); its bound below is 0.2.
            "control_permutations": 4,
        }
    )


@pytest.fixture(scope="module")
def result(cohort, settings):
    return evaluate_task(cohort, TASK, settings, master_seed=7)


@pytest.mark.slow
def test_tables_are_tidy_and_complete(result, settings):
    m, p = result.metrics, result.predictions
    assert tuple(m.columns) == METRIC_COLUMNS
    assert tuple(p.columns) == PREDICTION_COLUMNS
    # 2 seeds x 4 folds x 2 fractions x 2 models x 6 metrics
    assert len(m) == 2 * 4 * 2 * 2 * 6
    assert sorted(m["label_fraction"].unique()) == [0.25, 1.0]
    assert result.n_dropped == 4  # runs: unlabeled subject 40 has two
    # every labeled subject is predicted once per seed, fraction and model: the mean over
    # its runs (subjects 0, 4, ..., 36 have two)
    n_labeled = 40
    assert len(p) == n_labeled * 2 * 2 * 2
    per = p.groupby(["model", "label_fraction", "seed"])["subject"].count()
    assert (per == n_labeled).all()
    assert p["prediction"].between(0, 1).all()
    assert set(p["y_true"]) == {0, 1}


@pytest.mark.slow
def test_logreg_beats_shuffled_control(result):
    auc = result.metrics.query("metric == 'auc'").groupby(["model", "label_fraction"])["value"]
    mean = auc.mean()
    assert mean[("logreg", 1.0)] > 0.85
    assert abs(mean[("shuffled-labels", 1.0)] - 0.5) < 0.2
    assert mean[("logreg", 1.0)] - mean[("shuffled-labels", 1.0)] > 0.3


def test_no_test_run_reaches_fit(cohort, recording_model):
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [4], "label_fractions": [0.3, 1.0], "models": ["recording"]}
    )
    res = evaluate_task(cohort, TASK, settings, master_seed=2)
    calls = recording_model.calls
    assert len(calls) == 3 * 2
    fingerprint = {cohort.fc[i].tobytes(): cohort.groups[i] for i in range(len(cohort))}
    preds = res.predictions
    for i, call in enumerate(calls):
        fold = i // 2
        tested = set(preds.loc[(preds["fold"] == fold), "subject"])
        fitted = {fingerprint[x.tobytes()].split("/")[1] for x in call["fc"]}
        assert not fitted & tested
        # the fit saw every training run, only the labels are withheld
        assert len(fitted) + len(tested) == 40
        y, variables = call["y"], call["variables"]
        assert len(variables) == len(y) == len(call["fc"])
        # withheld labels are blanked in the variables too
        assert variables.loc[y < 0, "autism"].isna().all()
        assert variables.loc[y >= 0, "autism"].notna().all()


def test_each_fit_is_logged_with_its_place_in_the_run(cohort, recording_model, caplog):
    """A batch log (no tqdm bar) said nothing of how many fits remained."""
    settings = EvaluationSettings.from_dict(
        {"n_folds": 2, "seeds": [4], "label_fractions": [0.5, 1.0], "models": ["recording"]}
    )
    with caplog.at_level("INFO", logger="lcm.evaluate.protocol"):
        evaluate_task(cohort, TASK, settings, master_seed=2)
    assert f"task {TASK.name}: 4 fit(s) to run" in caplog.text
    for k in range(1, 5):
        assert f"fit {k} of 4 (recording, seed 4, fold " in caplog.text
    assert "fraction 0.5) done" in caplog.text and "fraction 1) done" in caplog.text
    assert "s left" in caplog.text


def test_unlabeled_runs_lose_clinical_variables_too(cohort, recording_model):
    # An ADOS-like clinical score beside the diagnosis: a subject the sweep leaves
    # undiagnosed must not keep it (the LCM models read it as a BEI target).
    variables = cohort.variables.copy()
    variables["ados"] = [7.0 if v == "autism" else 1.0 for v in variables["autism"]]
    with_score = Cohort(cohort.ids, cohort.fc, variables, cohort.roi_names, cohort.atlas)
    catalogue = Catalogue(
        variables={
            "autism": Variable("autism", "binary", "clinical", levels=("control", "autism")),
            "ados": Variable("ados", "continuous", "clinical", range=(0.0, 10.0)),
            "age": Variable("age", "continuous", "sociodemographic", range=(0.0, 100.0)),
        },
        datasets={},
    )
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [4], "label_fractions": [0.3, 1.0], "models": ["recording"]}
    )
    evaluate_task(with_score, TASK, settings, master_seed=2, catalogue=catalogue)
    for call in recording_model.calls:
        y, v = call["y"], call["variables"]
        assert v.loc[y < 0, ["autism", "ados"]].isna().all().all()
        assert v.loc[y >= 0, ["autism", "ados"]].notna().all().all()
        assert v["age"].notna().all()  # not clinical: kept for every run
    assert any((call["y"] < 0).any() for call in recording_model.calls)
    # Without a catalogue nothing says which variables are clinical: only the label goes.
    recording_model.calls.clear()
    evaluate_task(with_score, TASK, settings, master_seed=2)
    assert all(call["variables"]["ados"].notna().all() for call in recording_model.calls)


def test_fraction_subsets_are_stratified(cohort, recording_model):
    settings = EvaluationSettings.from_dict(
        {"n_folds": 4, "seeds": [0], "label_fractions": [0.25], "models": ["recording"]}
    )
    evaluate_task(cohort, TASK, settings, master_seed=0)
    subject_of = {cohort.fc[i].tobytes(): cohort.groups[i] for i in range(len(cohort))}
    for call in recording_model.calls:
        y = call["y"]
        subjects = pd.DataFrame({"subject": [subject_of[x.tobytes()] for x in call["fc"]], "y": y})
        labeled = subjects[subjects["y"] >= 0].drop_duplicates("subject")
        # the fold's subjects per class, from the true labels of the full cohort
        truth = dict(zip(cohort.groups, cohort.variables["autism"], strict=True))
        train_subjects = subjects["subject"].unique()
        for cls, level_name in ((0, "control"), (1, "autism")):
            n_class = sum(truth[s] == level_name for s in train_subjects)
            assert (labeled["y"] == cls).sum() == max(2, round(0.25 * n_class))
        # labels kept are the true ones
        assert all(
            truth[s] == ("control", "autism")[c]
            for s, c in zip(labeled["subject"], labeled["y"], strict=True)
        )


def test_settings_validation():
    with pytest.raises(
        ConfigError, match=r"unknown evaluate key 'nfolds' \(did you mean 'n_folds'\?\)"
    ):
        EvaluationSettings.from_dict({"nfolds": 3})
    with pytest.raises(ConfigError, match=r"label_fractions must be numbers in \(0, 1\]"):
        EvaluationSettings.from_dict({"label_fractions": [0.0]})
    with pytest.raises(ConfigError, match="registered names"):
        EvaluationSettings.from_dict({"models": ["svn"]})
    with pytest.raises(ConfigError, match="n_folds must be an integer >= 2"):
        EvaluationSettings.from_dict({"n_folds": 1})
    defaults = EvaluationSettings.from_dict({})
    assert defaults.n_folds == 5 and "lcm" in defaults.models


def test_lcm_model_without_checkpoint_raises():
    from lcm.evaluate.protocol import ModelContext

    ctx = ModelContext(label="autism", levels=("control", "autism"), finetune={}, seed=0)
    with pytest.raises(ConfigError, match="need a pretrained checkpoint"):
        make_model("lcm", ctx)
    with pytest.raises(ConfigError, match="Unknown model 'svn'"):
        make_model("svn", ctx)


def test_task_checks_catalogue_and_values(cohort):
    cat = Catalogue(
        variables={
            "autism": Variable("autism", "binary", "clinical", levels=("control", "autism")),
            "age": Variable("age", "continuous", "sociodemographic", "years", (5, 100)),
        },
        datasets={},
        path="variables.yaml",
    )
    task = task_from_catalogue("autism", "autism", "autism", cat)
    assert task.levels == ("control", "autism")
    with pytest.raises(ConfigError, match=r"must be binary with 'ASD'"):
        task_from_catalogue("autism", "autism", "ASD", cat)
    with pytest.raises(ConfigError, match="not in the variable catalogue"):
        task_from_catalogue("autism", "adhd", "yes", cat)
    bad = make_cohort(n_subjects=8, n_unlabeled=0)
    bad.variables.loc[0, "autism"] = "ASD"
    settings = EvaluationSettings.from_dict({"n_folds": 2, "models": ["logreg"]})
    with pytest.raises(InputDataError, match=r"holds \['ASD'\], expected only"):
        evaluate_task(bad, TASK, settings, master_seed=0)


def test_command_writes_parquet_and_sidecars(tmp_path, cohort):
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    out, pred = tmp_path / "m.parquet", tmp_path / "p.parquet"
    evaluate_cmd.evaluate_and_write(
        cohort, TASK, settings, master_seed=1, checkpoint=None, out=out, predictions=pred
    )
    table = pq.read_table(out)
    assert table.column_names == list(METRIC_COLUMNS)
    meta = json.loads(table.schema.metadata[b"lcm"])
    assert meta["settings"]["n_folds"] == 3 and meta["n_runs_dropped_no_label"] == 4
    assert pq.read_table(pred).column_names == list(PREDICTION_COLUMNS)
    assert json.loads((tmp_path / "m.json").read_text())["task"] == "autism"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes left no temporaries


def test_the_runs_dropped_for_a_missing_label_are_named(tmp_path, cohort):
    """The metadata names the runs and subjects without a label, not only their count."""
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    out, pred = tmp_path / "m.parquet", tmp_path / "p.parquet"
    evaluate_cmd.evaluate_and_write(
        cohort, TASK, settings, master_seed=1, checkpoint=None, out=out, predictions=pred
    )
    meta = json.loads(pq.read_table(out).schema.metadata[b"lcm"])
    assert meta["runs_dropped"] == [
        {
            "reason_code": "no_label",
            "reason": "no 'autism' value",
            "n_runs": 4,
            "n_subjects": 3,
            "runs": [
                "abidelike/sub-s040_task-rest_run-1",
                "abidelike/sub-s040_task-rest_run-2",
                "abidelike/sub-s041_task-rest_run-1",
                "abidelike/sub-s042_task-rest_run-1",
            ],
            "subjects": ["abidelike/s040", "abidelike/s041", "abidelike/s042"],
        }
    ]
    assert json.loads((tmp_path / "m.json").read_text())["runs_dropped"] == meta["runs_dropped"]


def test_command_help_and_checkpoint_guard(capsys):
    parser = argparse.ArgumentParser(prog="lcm")
    evaluate_cmd.register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--help"])
    assert "example:" in capsys.readouterr().out
    args = parser.parse_args(
        [
            "evaluate",
            "--store",
            "s",
            "--atlas",
            "a",
            "--catalogue",
            "c.yaml",
            "--task",
            "t",
            "--dataset",
            "d",
            "--label",
            "autism",
            "--positive",
            "autism",
            "--settings",
            '{"models": ["logreg", "lcm"]}',
            "--out",
            "m",
            "--predictions",
            "p",
        ]
    )
    with pytest.raises(ConfigError, match=r"\['lcm'\] need --checkpoint"):
        args.func(args)


def test_run_counts_count_runs_not_windows(tmp_path, cohort):
    """Cut into two windows a run, the cohort has two rows of it: the metadata's n_runs,
    n_runs_dropped_no_label and n_runs_tested counted windows (twice the runs) beside
    runs_dropped's distinct runs."""
    import numpy as np

    rows = np.repeat(np.arange(len(cohort.ids)), 2)
    windowed = cohort.subset(rows)
    windowed.ids["window"] = np.tile([0, 1], len(cohort.ids))
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    out, pred = tmp_path / "m.parquet", tmp_path / "p.parquet"
    evaluate_cmd.evaluate_and_write(
        windowed, TASK, settings, master_seed=1, checkpoint=None, out=out, predictions=pred
    )
    meta = json.loads(pq.read_table(out).schema.metadata[b"lcm"])
    n_runs = len(cohort.ids)
    assert meta["n_runs_dropped_no_label"] == meta["runs_dropped"][0]["n_runs"] == 4
    assert meta["n_runs"] == n_runs - 4 == meta["n_runs_tested"]
