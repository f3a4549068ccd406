"""The fraction of each training fold actually labelled, beside the nominal label fraction."""

from __future__ import annotations

import functools

import pytest
from helpers.evaluate import TASK, PrevalenceModel, make_cohort
from helpers.report import bare

from lcm.commands.evaluate import evaluate_and_write
from lcm.evaluate.metrics import summarise
from lcm.evaluate.protocol import EvaluationSettings
from lcm.evaluate.record import read_evaluation_records
from lcm.evaluate.registry import register_model, unregister_model
from lcm.report.html import ReportData, table_html, task_section
from lcm.report.label_fractions import (
    effective_fractions,
    label_fraction_fragment,
    pseudo_label_counts,
    pseudo_label_fragment,
)
from lcm.store.cohort import Cohort


@pytest.fixture
def written(tmp_path):
    """10 positives / 24 negatives in 2 folds: training folds of 5 positives / 12 negatives,
    evaluated at fractions 0.05, 0.1 and 1; the tables and the metadata read back."""
    register_model("prevalence", lambda ctx: PrevalenceModel(), replace=True)
    base = make_cohort(n_subjects=34, n_unlabeled=0)
    number = base.ids["subject"].str[1:].astype(int)
    variables = base.variables.copy()
    # Positives: subjects 0-9 (stratified folds split them 5 / 5).
    variables["autism"] = ["autism" if n < 10 else "control" for n in number]
    cohort = Cohort(base.ids, base.fc, variables, base.roi_names, base.atlas)
    settings = EvaluationSettings.from_dict(
        {"n_folds": 2, "seeds": [0], "label_fractions": [0.05, 0.1, 1.0], "models": ["prevalence"]}
    )
    try:
        result = evaluate_and_write(
            cohort,
            TASK,
            settings,
            master_seed=0,
            checkpoint=None,
            out=tmp_path / "m.parquet",
            predictions=tmp_path / "p.parquet",
        )
    finally:
        unregister_model("prevalence")
    return result, read_evaluation_records([tmp_path / "m.parquet"])["autism"]


def test_the_labelled_subjects_of_every_fit_are_recorded(written):
    """'label fraction 0.05' labelled 4 of 17 subjects (2 per class) and nothing said so."""
    result, meta = written
    recorded = meta["labelled_subjects"]
    assert recorded == result.labelled_subjects
    assert sorted((r["label_fraction"], r["fold"]) for r in recorded) == [
        (f, k) for f in (0.05, 0.1, 1.0) for k in (0, 1)
    ]
    for r in recorded:
        assert r["training"] == {"control": 12, "autism": 5}
        expected = (12, 5) if r["label_fraction"] == 1.0 else (2, 2)
        assert (r["labelled"]["control"], r["labelled"]["autism"]) == expected
    table = effective_fractions(meta).set_index("label_fraction")
    assert table.loc[0.05, "effective"] == pytest.approx(4 / 17)
    assert table.loc[0.05, "balance_labelled"] == 0.5
    assert table.loc[0.05, "balance_training"] == pytest.approx(5 / 17)
    assert table.loc[1.0, "effective"] == 1.0


def test_the_report_shows_the_effective_fraction_and_warns(written):
    result, meta = written
    data = ReportData(
        metrics=result.metrics,
        predictions=result.predictions,
        summary=summarise(result.metrics),
        task_meta={"autism": meta},
    )
    page = bare(task_section(data, "autism"))
    as_run = functools.partial(table_html, caption="autism: label fractions as run", row_headers=1)
    fragment = bare(label_fraction_fragment(meta, as_run))
    assert fragment in page
    assert "<td>0.05</td><td>24 %</td><td>control 2, autism 2</td>" in fragment
    assert "<td>1</td><td>100 %</td><td>control 12, autism 5</td>" in fragment
    # One warning, one list item per fraction labelled above its share.
    assert (
        "<li>0.05: 24 % labelled, 50 % of them autism (training folds: 29 %)</li>"
        "<li>0.1: 24 % labelled, 50 % of them autism (training folds: 29 %)</li></ul>"
    ) in fragment
    assert fragment.count('<div class="warn">') == 1


def test_metrics_without_the_counts_say_so():
    assert "not recorded" in label_fraction_fragment({"task": "t"}, str)
    assert label_fraction_fragment({}, str) == ""


PSEUDO_TABLE = functools.partial(table_html, caption="autism: pseudo-labels as run", row_headers=2)


def _fit(model, fraction, fold, status, labelled=0, unlabeled=10, filled=None):
    """One ``pseudo_labels`` entry of the evaluate metadata."""
    made = status == "made"
    return {
        "task": "autism",
        "model": model,
        "label_fraction": fraction,
        "seed": 0,
        "fold": fold,
        "diagnosis": {
            "status": status,
            "unit": "subject",
            "threshold": 0.95 if made else None,
            "threshold_source": "fixed" if made else None,
            "inner_validation_subjects": 0,
            "n_unlabeled": unlabeled,
            "n_unlabeled_rows": unlabeled,
            "n_pseudo_labelled": labelled,
            "pseudo_labelled_subjects": {"control": 0, "autism": labelled},
            "pseudo_labelled_rows": {"control": 0, "autism": labelled},
        },
        "bei_targets_filled": filled,
    }


def _pseudo_meta(lcm_labelled: tuple[int, int], filled=None) -> dict:
    return {
        "task": "autism",
        "levels": ["control", "autism"],
        "settings": {"models": ["lcm", "lcm-no-pseudo", "logreg"]},
        "pseudo_labels": [
            *(_fit("lcm", 0.1, k, "made", n, 12, filled) for k, n in enumerate(lcm_labelled)),
            *(_fit("lcm", 1.0, k, "no_unlabeled", 0, 0, filled) for k in (0, 1)),
            *(_fit("lcm-no-pseudo", 0.1, k, "off", 0, 12) for k in (0, 1)),
        ],
    }


def test_the_report_says_when_lcm_pseudo_labelled_nobody(written):
    """At t=1 the log said '0 of 20 unlabeled subjects labelled'; the report said nothing, so
    lcm vs lcm-no-pseudo read as a pseudo-label gain where it measured noise."""
    result, meta = written
    meta = {**meta, **_pseudo_meta((0, 0))}
    table = pseudo_label_counts(meta).set_index(["model", "label_fraction"])
    assert table.loc[("lcm", 0.1), "pseudo_labelled"] == 0
    assert table.loc[("lcm", 0.1), "unlabeled"] == 12
    assert table.loc[("lcm-no-pseudo", 0.1), "statuses"] == {"off": 2}
    data = ReportData(
        metrics=result.metrics,
        predictions=result.predictions,
        summary=summarise(result.metrics),
        task_meta={"autism": meta},
    )
    fragment = bare(pseudo_label_fragment(meta, PSEUDO_TABLE))
    assert fragment in bare(task_section(data, "autism"))
    assert "<td>lcm</td><td>0.1</td><td>made 2</td><td>0 of 12 (0 %)</td>" in fragment
    assert (
        "<td>lcm-no-pseudo</td><td>0.1</td><td>switched off 2</td><td>none made (12 unlabelled)"
    ) in fragment
    assert "<td>fixed 0.95 2</td>" in fragment
    warnings = fragment.count('<p class="warn">')
    assert warnings == 1  # fraction 1 has nobody to pseudo-label: no warning there
    assert "lcm at label fraction 0.1: its diagnosis pseudo-labelling labelled none" in fragment
    assert "lcm &minus; lcm-no-pseudo at label fraction 0.1 measures nothing but noise" in fragment
    # BEI pseudo-targets filled: the contrast measures those only.
    with_bei = pseudo_label_fragment(_pseudo_meta((0, 0), {"age": 3}), PSEUDO_TABLE)
    assert "measures the BEI pseudo-targets only" in with_bei


def test_pseudo_labels_made_are_summarised_without_a_warning():
    fragment = bare(pseudo_label_fragment(_pseudo_meta((3, 5), {"age": 2, "sex": 4}), PSEUDO_TABLE))
    assert "<td>lcm</td><td>0.1</td><td>made 2</td><td>4 of 12 (33 %)</td>" in fragment
    assert "<td>6</td>" in fragment  # median BEI values filled
    assert '<p class="warn">' not in fragment


def test_metrics_without_the_pseudo_labels_say_so():
    older = {"task": "t", "settings": {"models": ["lcm", "logreg"]}}
    assert "not recorded" in pseudo_label_fragment(older, str)
    baselines_only = {"task": "t", "settings": {"models": ["logreg"]}, "pseudo_labels": []}
    assert pseudo_label_fragment(baselines_only, str) == ""
    assert pseudo_label_fragment({}, str) == ""


def test_a_regression_without_its_count_is_not_said_to_have_none_unlabelled():
    """Fits of a continuous task recorded no count, read as 0: 'none made (0 unlabelled)'."""
    fits = [{"model": "lcm", "label_fraction": 0.1, "diagnosis": {"status": "continuous"}}]
    fragment = bare(pseudo_label_fragment({"pseudo_labels": fits * 2}, PSEUDO_TABLE))
    assert "<td>none (continuous target) 2</td><td>none made</td>" in fragment
    fits[0]["diagnosis"] = {"status": "continuous", "n_unlabeled": 90}
    fragment = bare(pseudo_label_fragment({"pseudo_labels": fits}, PSEUDO_TABLE))
    assert "<td>none made (90 unlabelled)</td>" in fragment


def test_a_range_whose_ends_read_alike_is_not_shown():
    """Folds labelling 10 of 101 and 10 of 99 training subjects read "10 % (10 %–10 %)"."""

    def fit(fold, training):
        return {
            "seed": 0,
            "fold": fold,
            "label_fraction": 0.1,
            "labelled": {"control": 5, "autism": 5},
            "training": {"control": training - 50, "autism": 50},
        }

    meta = {"levels": ["control", "autism"], "labelled_subjects": [fit(0, 101), fit(1, 99)]}
    fragment = bare(label_fraction_fragment(meta, functools.partial(table_html, caption="c")))
    assert "<td>10 %</td>" in fragment and "10 %–10 %" not in fragment
    # Ends that read apart are kept: 10 of 101 against 10 of 80.
    meta["labelled_subjects"][1] = fit(1, 80)
    fragment = bare(label_fraction_fragment(meta, functools.partial(table_html, caption="c")))
    assert "(10 %–12 %)" in fragment
