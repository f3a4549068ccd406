"""The fraction of each training fold actually labelled, beside the nominal label fraction."""

from __future__ import annotations

import pytest
from helpers.evaluate import TASK, PrevalenceModel, make_cohort

from lcm.commands.evaluate import evaluate_and_write
from lcm.evaluate.metrics import summarise
from lcm.evaluate.protocol import EvaluationSettings
from lcm.evaluate.registry import register_model, unregister_model
from lcm.report.html import ReportData, table_html, task_section
from lcm.report.label_fractions import effective_fractions, label_fraction_fragment
from lcm.report.tables import read_task_meta
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
    return result, read_task_meta([tmp_path / "m.parquet"])["autism"]


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
    page = task_section(data, "autism")
    fragment = label_fraction_fragment(meta, table_html)
    assert fragment in page
    assert "<td>0.05</td><td>24 %</td><td>control 2, autism 2</td>" in fragment
    assert "<td>1</td><td>100 %</td><td>control 12, autism 5</td>" in fragment
    assert (
        "0.05: 24 % labelled, 50 % of them autism (training folds: 29 %); "
        "0.1: 24 % labelled, 50 % of them autism (training folds: 29 %)"
    ) in fragment
    assert '<p class="warn">' in fragment


def test_metrics_without_the_counts_say_so():
    assert "not recorded" in label_fraction_fragment({"task": "t"}, table_html)
    assert label_fraction_fragment({}, table_html) == ""
