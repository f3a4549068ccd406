"""What the report says was not measured or not compared, from the metrics actually present:
each sentence names what was run (models, label fractions, seeds, folds) and what was not."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from helpers.report import evaluated_tables

from lcm.evaluate.compare import contrast_table, headline_table
from lcm.evaluate.metrics import METRIC_COLUMNS, summarise
from lcm.report.contrasts import contrast_section
from lcm.report.findings import science_statements
from lcm.report.verdict import pretraining_verdict

BASELINES = ("logreg", "shuffled-labels")
ABLATED = ("lcm", "lcm-scratch", "logreg")


def _sentences(runs: dict, with_meta: bool = True) -> dict[str, str]:
    """The first sentence, the headline bullets and the ablation section of ``runs``, as
    ``lcm report`` builds them from ``lcm evaluate``'s tables."""
    metrics, predictions, meta = evaluated_tables(runs)
    summary = summarise(metrics)
    contrasts = contrast_table(metrics, predictions)
    contrasts = contrasts if len(contrasts) else None
    task_meta = meta if with_meta else None
    return {
        "verdict": pretraining_verdict(
            contrasts, {}, summary=summary, task_meta=task_meta, metrics=metrics
        ),
        "headline": " ".join(
            science_statements(headline_table(summary, predictions, n_boot=50), {}, summary=summary)
        ),
        "ablations": contrast_section(contrasts, lambda *a, **k: "", task_meta, summary=summary),
    }


CASES = {
    # The task of the issue: baselines only, at 1.0 only. The headline blamed the fraction.
    "baselines-only-at-full-labels": (
        {"t": (BASELINES, (1.0,), (0, 1), 3)},
        {
            "verdict": ["t: neither lcm nor lcm-scratch"],
            "headline": ["<b>t</b>: LCM was not evaluated (its models: logreg, shuffled-labels)"],
            "ablations": ["LCM was not evaluated on t"],
        },
        {
            "verdict": ["&le; 0.1"],
            "headline": ["&le; 0.1"],
            "ablations": ["beside its ablations"],
        },
    ),
    # The same task beside one tried at 0.1 with too few fits: "not measured at <= 0.1"
    # was said of both.
    "baselines-only-beside-one-fold-at-few-labels": (
        {"a": (ABLATED, (0.1, 1.0), (0,), 1), "b": (BASELINES, (1.0,), (0, 1), 3)},
        {
            "verdict": [
                "a: at 0.1 of the labels, too few paired fits",
                "1 paired fit (1 seed &times; 1 fold)",
                "b: neither lcm nor lcm-scratch",
            ],
            "headline": [
                "<b>a</b>: LCM was not compared with a baseline at a label fraction &le; 0.1 "
                "(no interval: lcm's AUC rests on 1 fit (seeds &times; folds) at label fraction "
                "0.1, too few",
                "<b>b</b>: LCM was not evaluated",
            ],
            "ablations": [],
        },
        {"verdict": ["not measured</b> at &le; 0.1"], "headline": [], "ablations": []},
    ),
    "baselines-only-at-few-labels": (
        {"t": (BASELINES, (0.1, 1.0), (0, 1), 3)},
        {
            "verdict": ["t: neither lcm nor lcm-scratch"],
            "headline": ["<b>t</b>: LCM was not evaluated (its models: logreg, shuffled-labels)"],
            "ablations": ["LCM was not evaluated on t"],
        },
        {"verdict": ["&le; 0.1"], "headline": [], "ablations": []},
    ),
    # No baseline, 1.0 only: the headline blamed the fraction, not the missing baseline.
    "no-baseline-at-full-labels": (
        {"t": (("lcm", "lcm-scratch"), (1.0,), (0, 1), 3)},
        {"verdict": [], "headline": ["the task evaluates no baseline"], "ablations": []},
        {"verdict": [], "headline": ["no label fraction"], "ablations": []},
    ),
    # One seed, one fold, 1.0 only: no interval at the one fraction run either.
    "one-fold-at-full-labels": (
        {"t": (ABLATED, (1.0,), (0,), 1)},
        {
            "verdict": ["and at the lowest, 1: too few paired fits"],
            "headline": [
                "LCM was not compared with a baseline at any label fraction evaluated",
                "label fractions evaluated: 1",
                "at the lowest, 1, no interval: lcm's AUC rests on 1 fit",
            ],
            "ablations": [],
        },
        {
            "verdict": ["not measured</b> at"],
            "headline": ["evaluate.label_fractions"],
            "ablations": [],
        },
    ),
    # lcm without its from-scratch ablation: it was run, at these fractions.
    "lcm-without-scratch": (
        {"t": (("lcm", "logreg"), (1.0,), (0, 1), 3)},
        {
            "verdict": [
                "t: lcm-scratch (the same transformer trained from scratch) was not "
                "evaluated (lcm was, at label fraction 1)"
            ],
            "headline": [],
            "ablations": [
                "LCM was not evaluated beside its ablations on t (lcm-scratch and "
                "lcm-no-pseudo were not evaluated)"
            ],
        },
        {"verdict": [], "headline": [], "ablations": []},
    ),
}


@pytest.mark.parametrize(("runs", "said", "unsaid"), CASES.values(), ids=CASES.keys())
def test_each_unmeasured_sentence_says_what_was_run(runs, said, unsaid):
    sentences = _sentences(runs)
    for part, text in sentences.items():
        for s in said[part]:
            assert s in text, f"{part}: {s!r} not in {text}"
        for s in unsaid[part]:
            assert s not in text, f"{part}: {s!r} in {text}"


def test_one_seed_is_read_from_the_metrics_without_a_record():
    """Metrics of one split seed warn of it even where no evaluation record says the seeds."""
    sentences = _sentences({"t": (ABLATED, (0.1,), (3,), 3)}, with_meta=False)
    verdict = re.sub(r"\s+", " ", sentences["verdict"])
    assert "<b>Only one split seed was run</b> on t (seeds in the metrics: 3)" in verdict


def test_a_gain_unmeasured_for_want_of_any_auc_says_every_test_fold_holds_one_class():
    """Every test fold of one class: lcm and lcm-scratch gave no AUC, the contrasts held no
    row, and the first sentence blamed 'too few paired fits, or fits all equal'."""
    rows = [
        ("t", model, 0.1, seed, fold, metric, value)
        for model in ABLATED
        for seed in (0, 1)
        for fold in range(3)
        for metric, value in (("auc", float("nan")), ("accuracy", 0.5 + fold / 10))
    ]
    metrics = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    text = pretraining_verdict(None, {}, summary=summarise(metrics), metrics=metrics)
    assert (
        "The pretraining gain was not measured</b> (LCM minus the same transformer trained "
        "from scratch): t: at 0.1 of the labels, none of its 6 fits (2 seeds &times; 3 folds) "
        "gave an AUC: every test fold holds one class"
    ) in text
