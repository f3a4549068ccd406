"""Edge cases of the protocol: repeated seeds, seed-invariant folds, skipped sites, ties."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.evaluate import TASK, make_cohort

from lcm.commands.evaluate import evaluate_and_write
from lcm.config import validate_partial
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.evaluate.splits import strata, subject_folds, task_split_table
from lcm.evaluate.tasks import Task, target_values
from lcm.exceptions import ConfigError, InputDataError
from lcm.store.cohort import Cohort


def _with_sites(cohort: Cohort, site_of: dict[int, str]) -> Cohort:
    ids = cohort.ids.copy()
    ids["site"] = [site_of[int(s[1:])] for s in ids["subject"]]
    return Cohort(ids, cohort.fc, cohort.variables, cohort.roi_names, cohort.atlas)


@pytest.mark.parametrize("source", ["--settings", "evaluate"])
def test_repeated_seeds_are_refused_naming_the_key_once(source: str):
    """seeds [0, 0] ran every fit twice, and the summary counted the copies as evidence; the
    refusal of a rule's settings said "evaluate: evaluate.seeds", naming the section twice."""
    with pytest.raises(ConfigError, match=r"repeated: \[0\]") as refused:
        EvaluationSettings.from_dict({"seeds": [0, 1, 0]}, source)
    assert str(refused.value).startswith(f"{source}: seeds must be distinct")
    with pytest.raises(ConfigError, match=r"evaluate\.seeds"):
        validate_partial({"evaluate": {"seeds": [0, 0]}})
    assert EvaluationSettings.from_dict({"seeds": [1, 0]}).seeds == (1, 0)


@pytest.mark.parametrize("source", ["--settings", "evaluate"])
def test_repeated_label_fractions_are_refused_naming_the_value(source: str):
    """label_fractions [0.1, 1.0, 1] was deduplicated silently to (0.1, 1.0): fewer fractions
    than the config listed, and no word of it. Refused now, in the rule's settings and at load,
    naming the key, the repeated value and the list to write."""
    with pytest.raises(ConfigError, match=r"repeated: \[1\.0\]") as refused:
        EvaluationSettings.from_dict({"label_fractions": [0.1, 1.0, 1]}, source)
    assert str(refused.value).startswith(f"{source}: label_fractions must be distinct")
    assert "label_fractions: [0.1, 1.0]" in refused.value.hint
    with pytest.raises(ConfigError) as loaded:
        validate_partial({"evaluate": {"label_fractions": [0.5, 0.1, 0.5]}}, "my.yaml")
    assert loaded.value.message.startswith(
        "my.yaml: invalid value at key 'evaluate.label_fractions': each value must be given "
        "once, repeated: [0.5]"
    )
    assert loaded.value.hint.startswith("List each value once (drop the repeat of 0.5).")
    assert EvaluationSettings.from_dict({"label_fractions": [1, 0.1]}).label_fractions == (
        0.1,
        1.0,
    )


def test_site_split_runs_seed_invariant_fits_once(prevalence_model):
    """Leave-site-out folds do not change with the seed: at label fraction 1 the data repeat.
    A model that ignores its seed (prevalence) is fitted once; one whose fit depends on it
    (logreg: its inner-CV folds are shuffled by the seed) is refitted with each seed, since
    skipping it removed the training variance its intervals must hold."""
    cohort = _with_sites(
        make_cohort(n_subjects=24, n_unlabeled=0), {i: f"site{i % 3}" for i in range(24)}
    )
    settings = EvaluationSettings.from_dict(
        {
            "split": "site",
            "seeds": [0, 1, 2],
            "label_fractions": [0.5, 1.0],
            "models": [prevalence_model, "logreg"],
        }
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0)
    m = result.metrics
    full = m[m["label_fraction"] == 1.0]
    # Fraction 1: one set of fits (seed 0) of the seed-free model, one per seed of logreg;
    # fraction 0.5 draws a new subset per seed, so both refit.
    assert sorted(full.loc[full["model"] == prevalence_model, "seed"].unique()) == [0]
    assert sorted(full.loc[full["model"] == "logreg", "seed"].unique()) == [0, 1, 2]
    assert sorted(m.loc[m["label_fraction"] == 0.5, "seed"].unique()) == [0, 1, 2]
    assert result.n_fits_not_repeated == 2 * 3  # prevalence: seeds 1 and 2 x three sites
    assert result.models_not_repeated == [prevalence_model]
    # The training counts are recorded for every seed that has rows (logreg's at fraction 1).
    recorded = {(e["seed"], e["label_fraction"]) for e in result.labelled_subjects}
    assert {(s, 1.0) for s in (0, 1, 2)} <= recorded


def _leave_site_out(cohort: Cohort, tmp_path):
    """logreg by leave-site-out, one seed, every label; tables written to ``tmp_path``."""
    settings = EvaluationSettings.from_dict(
        {"split": "site", "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    return evaluate_and_write(
        cohort,
        TASK,
        settings,
        master_seed=0,
        checkpoint=None,
        out=tmp_path / "m.parquet",
        predictions=tmp_path / "p.parquet",
    )


# Controls are the even subjects; A holds 0, 2, 4, 6, 8 (0, 4, 8 have two runs each): leaving
# it out leaves one control to train on.
_SKIPPED_A = {
    i: "siteA" if i % 2 == 0 and i < 10 else ("siteB" if i in (1, 3, 5, 10) else "siteC")
    for i in range(12)
}


def test_skipped_site_is_recorded_in_the_result_and_sidecar(tmp_path, caplog):
    """Leaving site A out leaves one control to train on: A was skipped with a log line only."""
    cohort = _with_sites(make_cohort(n_subjects=12, n_unlabeled=0), _SKIPPED_A)
    with caplog.at_level("WARNING"):
        result = _leave_site_out(cohort, tmp_path)
    assert "skipping site ['siteA']" in caplog.text
    assert "siteA" not in set(result.predictions["site"])
    assert result.sites_not_tested == {"siteA": {"subjects": 5, "runs": 8}}
    assert result.n_runs_tested == len(cohort) - 8
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["n_runs"] == len(cohort)
    assert sidecar["n_runs_tested"] == len(cohort) - 8
    assert sidecar["sites_not_tested"] == {"siteA": {"subjects": 5, "runs": 8}}


@pytest.mark.parametrize("from_table", [True, False])
def test_fold_ids_are_the_splits_tables_when_a_site_is_skipped(from_table):
    """Site A (fold 0 of the table) is skipped: sites C and B, folds 1 and 2 in the splits
    table, were renumbered 0 and 1 in the metrics and predictions."""
    cohort = _with_sites(make_cohort(n_subjects=12, n_unlabeled=0), _SKIPPED_A)
    _, y = target_values(cohort.variables, TASK)
    table = task_split_table(cohort.ids, strata(y), 3, 0, [0])
    site_rows = table[table["scheme"] == "leave_site_out"]
    fold_of = dict(zip(site_rows["subject"], site_rows["fold"], strict=True))
    assert site_rows.groupby("site")["fold"].first().to_dict() == {
        "siteA": 0,
        "siteB": 2,
        "siteC": 1,
    }
    settings = EvaluationSettings.from_dict(
        {"split": "site", "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    )
    result = evaluate_task(
        cohort, TASK, settings, master_seed=0, splits=table if from_table else None
    )
    pred = result.predictions
    assert sorted(pred["fold"].unique()) == [1, 2]
    assert (pred["fold"] == pred["subject"].map(fold_of)).all()
    assert sorted(result.metrics["fold"].unique()) == [1, 2]


def test_a_test_fold_of_one_class_is_named_in_the_result_sidecar_and_report(tmp_path, caplog):
    """Leave-site-out with a site of controls only: its AUC is undefined and the summary's mean
    is over the other sites; that was said nowhere (only n in the summary table)."""
    from lcm.evaluate.record import read_evaluation_records
    from lcm.report.findings import provenance_summary

    # siteC: controls 12, 14, 16, 18 only; siteA and siteB hold both classes.
    site_of = {
        i: "siteC" if i in (12, 14, 16, 18) else f"site{'AB'[i % 4 // 2]}" for i in range(20)
    }
    cohort = _with_sites(make_cohort(n_subjects=20, n_unlabeled=0), site_of)
    with caplog.at_level("WARNING"):
        result = _leave_site_out(cohort, tmp_path)
    assert "(sites siteC): its 4 test subject(s) hold one class only" in caplog.text
    assert [(f["sites"], f["subjects"], f["label"]) for f in result.folds_one_class] == [
        (["siteC"], 4, 0)
    ]
    meta = read_evaluation_records([tmp_path / "m.parquet"])
    page = provenance_summary(meta, lambda frame, *_, **__: frame.to_html())
    assert "1 test fold(s) of one class, no AUC (site siteC)" in page


def test_continuous_strata_survive_ties_at_the_median():
    """Ages 30 x 9, 28, 29, 31: `y > median` gave strata {0: 11, 1: 1} and a refused task."""
    y = np.array([30.0] * 9 + [28.0, 29.0, 31.0])
    s = strata(y)
    assert np.bincount(s).tolist() == [6, 6]
    assert s[9] == s[10] == 0 and s[11] == 1  # the lowest in the lower half, the highest upper
    groups = np.array([f"d/s{i:02d}" for i in range(12)])
    assert len(subject_folds(s, groups, 3, seed=0)) == 3
    # Without ties the halves are the median split's.
    distinct = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    assert strata(distinct).tolist() == (distinct > np.median(distinct)).astype(int).tolist()


def test_constant_continuous_target_is_named():
    """A constant age was told to check 'the task's positive level'."""
    task = Task(name="age", label="age", kind="continuous")
    variables = pd.DataFrame({"age": [30.0] * 6 + [None]})
    with pytest.raises(InputDataError, match=r"continuous target 'age' is constant \(30 in all 6"):
        target_values(variables, task)


def test_six_subjects_in_two_folds_are_evaluated_with_every_label(prevalence_model):
    """6 subjects, 2 folds, label_fractions [1.0]: a training fold holds 1 subject of a class,
    and the evaluation stopped asking for 2 per class of a label-fraction subset, which
    fraction 1 never draws ('hint: Lower evaluate.n_folds', already at its minimum)."""
    cohort = make_cohort(n_subjects=6, n_unlabeled=0)
    settings = EvaluationSettings.from_dict(
        {"n_folds": 2, "seeds": [0], "label_fractions": [1.0], "models": [prevalence_model]}
    )
    result = evaluate_task(cohort, TASK, settings, master_seed=0)
    assert set(result.metrics["label_fraction"]) == {1.0}
    assert result.n_runs_tested == len(cohort)  # every subject tested once
    # A subset below 1 does need two per class: the message names the task, the class and
    # fixes that exist (n_folds is at its minimum already).
    settings = EvaluationSettings.from_dict(
        {"n_folds": 2, "seeds": [0], "label_fractions": [0.5, 1.0], "models": [prevalence_model]}
    )
    with pytest.raises(
        InputDataError,
        match=r"Task 'autism': a training fold has 1 subject\(s\) "
        r"of class '(control|autism)'; label fraction\(s\) \[0\.5\]",
    ) as info:
        evaluate_task(cohort, TASK, settings, master_seed=0)
    hint = info.value.hint or ""
    assert "n_folds" not in hint and "evaluate.label_fractions: [1.0]" in hint
    assert "Add labelled subjects of" in hint


def test_a_continuous_tasks_labelled_subsets_ignore_the_test_folds_values(monkeypatch):
    """Which training subjects keep their label at a fraction is drawn within halves of the
    target: halves of the whole cohort moved with the test fold's values (26 of 80 training
    runs changed status when only test targets changed). The folds are held fixed here."""
    from lcm.evaluate import protocol

    rng = np.random.default_rng(3)
    base = make_cohort(n_subjects=32, n_unlabeled=0)
    age = rng.uniform(20, 60, size=len(base.groups.tolist()))
    subjects = np.unique(base.groups)
    test_subjects = set(subjects[::4])
    test = np.flatnonzero([g in test_subjects for g in base.groups])
    train = np.setdiff1d(np.arange(len(base.groups)), test)
    monkeypatch.setattr(
        protocol, "choose_folds", lambda *a, **k: ("subject", [(train, test), (test, train)])
    )
    drawn: list[np.ndarray] = []
    real = protocol.labeled_subsets

    def recorded(*args, **kwargs):
        masks = real(*args, **kwargs)
        drawn.append(masks[0.5])
        return masks

    monkeypatch.setattr(protocol, "labeled_subsets", recorded)
    task = Task(name="age", label="age", kind="continuous")
    settings = EvaluationSettings.from_dict(
        {"seeds": [0], "label_fractions": [0.5], "models": ["ridge"], "n_folds": 2}
    )
    for test_value in (None, 1000.0):
        variables = base.variables.copy()
        variables["age"] = age
        if test_value is not None:
            variables.loc[test, "age"] = test_value
        cohort = Cohort(base.ids, base.fc, variables, base.roi_names, base.atlas)
        evaluate_task(cohort, task, settings, master_seed=0)
    assert len(drawn) == 4
    assert np.array_equal(drawn[0], drawn[2])  # the first fold's training subset
