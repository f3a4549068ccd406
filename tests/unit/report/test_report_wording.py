"""The report's words say what the numbers allow: an interval across 0 is inconclusive, a
zero-width interval is none, a collapsed classifier and a one-seed run are named, every
column and count reads as what it is."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.evaluate import TASK, make_cohort
from helpers.report import bare, report_parser, run_report, write_report_inputs

from lcm.evaluate.compare import HEADLINE_COLUMNS
from lcm.evaluate.metrics import METRIC_COLUMNS, PREDICTION_COLUMNS, summarise
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.report import findings
from lcm.report.html import table_html
from lcm.report.plots import roc_figure
from lcm.report.tables import qc_counts, task_table

_WHAT = (
    "(LCM minus the same transformer trained from scratch, in AUC, 95 % corrected-resampled-t "
    "interval over seeds &times; folds)"
)
_ONE_SEED = (
    " <b>Only one split seed was run</b> on autism (evaluate.seeds: [0]): each interval rests "
    "on the folds of a single partition; evaluate several split seeds before reading these "
    "intervals as a result."
)
_COUNTED = (
    " A gain in 1 of the {n} comparisons (task &times; label fraction), each interval at 95 % "
    "with no correction for their number."
)
_OPEN = "+0.037 [-0.352, +0.426] at 0.1 (width 0.778: a gain up to +0.426 is not ruled out)"


def _gain(task: str, d: float, low: float, high: float) -> dict:
    verdict = "gain" if low > 0 else "loss" if high < 0 else "no clear difference"
    return {
        "task": task,
        "label_fraction": 0.1,
        "contrast": "pretraining gain",
        "model_a": "lcm",
        "model_b": "lcm-scratch",
        "metric": "auc",
        "difference": d,
        "ci_low": low,
        "ci_high": high,
        "p_value": 0.5,
        "n": 4,
        "verdict": verdict,
    }


HELPED = _gain("autism", 0.05, 0.01, 0.09)
HURT = _gain("autism", -0.08, -0.12, -0.04)
OPEN = _gain("autism", 0.037, -0.352, 0.426)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [HELPED],
            '<p class="note" id="verdict"><b>Pretraining helped</b> at &le; 0.1 of the labels '
            f"on autism +0.050 [+0.010, +0.090] at 0.1 {_WHAT}.{_COUNTED.format(n=1)}</p>",
        ),
        (
            [HURT],
            '<p class="warn" id="verdict"><b>Pretraining did not help</b> at &le; 0.1 of the '
            f"labels on any task {_WHAT}: it <b>hurt</b> on autism -0.080 [-0.120, -0.040] "
            "at 0.1.</p>",
        ),
        # The demo's case: an interval of +-0.4 AUC is no evidence of absence.
        (
            [OPEN],
            '<p class="warn" id="verdict"><b>No gain from pretraining was shown</b> at &le; 0.1 '
            f"of the labels on any task {_WHAT}: <b>inconclusive</b>, every interval crosses 0, "
            f"on autism {_OPEN}. An interval that crosses 0 is no evidence that pretraining "
            "does not help: read the largest gain it leaves open.</p>",
        ),
        (
            [HELPED, {**OPEN, "task": "dx"}],
            '<p class="note" id="verdict"><b>Pretraining helped</b> at &le; 0.1 of the labels '
            f"on autism +0.050 [+0.010, +0.090] at 0.1 {_WHAT}; <b>no gain was shown</b> "
            f"(inconclusive: the interval crosses 0) on dx {_OPEN}.{_COUNTED.format(n=2)}</p>",
        ),
    ],
    ids=["helped", "hurt", "inconclusive", "helped-and-inconclusive"],
)
def test_first_sentence_of_each_outcome(rows: list[dict], expected: str) -> None:
    table = pd.DataFrame(rows)
    assert findings.pretraining_verdict(table, {}) == expected
    several = {"autism": {"settings": {"seeds": [0, 1, 2]}}}
    assert findings.pretraining_verdict(table, {}, task_meta=several) == expected


@pytest.mark.parametrize("rows", [[HELPED], [HURT], [OPEN]], ids=["helped", "hurt", "open"])
def test_first_sentence_warns_of_a_single_split_seed(rows: list[dict]) -> None:
    table = pd.DataFrame(rows)
    plain = findings.pretraining_verdict(table, {})
    warned = findings.pretraining_verdict(
        table, {}, task_meta={"autism": {"settings": {"seeds": [0]}}}
    )
    # Same paragraph, after the verdict; a gain from one seed is no longer a plain note.
    body = plain.split(">", 1)[1].removesuffix("</p>")
    assert warned == f'<p class="warn" id="verdict">{body}{_ONE_SEED}</p>'


def _headline() -> pd.DataFrame:
    row = dict.fromkeys(HEADLINE_COLUMNS, 0.5) | {
        "task": "dx",
        "label_fraction": 0.1,
        "metric": "auc",
        "model": "lcm",
        "best_baseline": "logreg",
        "model_ci_low": 0.5,
        "model_ci_high": 0.5,
        "difference": 0.01,
        "difference_ci_low": -0.2,
        "difference_ci_high": 0.22,
        "p_value": 0.7,
        "verdict": "no clear difference",
    }
    return pd.DataFrame([row], columns=list(HEADLINE_COLUMNS))


def test_headline_p_column_names_the_larger_of_its_two_p_values() -> None:
    shown = findings.headline_display(_headline())
    assert "p (paired bootstrap)" not in shown.columns
    assert shown["p (larger of bootstrap and corrected t)"].tolist() == ["0.700"]
    # A model whose folds all score 0.5 has no interval; a zero-width one read as certainty.
    assert shown["model [95% CI]"].tolist() == [
        "0.500, no interval (one value, or all folds equal)"
    ]


def test_out_headline_help_says_what_p_is() -> None:
    text = report_parser()._subparsers._group_actions[0].choices["report"].format_help()
    flat = " ".join(text.split())
    assert "p (the larger of the two p values)" in flat
    assert "the larger of their two" in flat


def test_task_table_names_a_degenerate_interval() -> None:
    summary = pd.DataFrame(
        [
            ("t", "lcm", 0.1, "auc", 0.61, 0.5, 0.72, 4),
            ("t", "lcm", 0.1, "balanced_accuracy", 0.5, 0.5, 0.5, 4),
            ("t", "logreg", 0.1, "auc", 0.6, 0.6, 0.6, 1),
        ],
        columns=["task", "model", "label_fraction", "metric", "mean", "ci_low", "ci_high", "n"],
    )
    table = task_table(summary, "t").set_index("model")
    assert table.loc["lcm", "AUC [95% CI]"] == "0.610 [0.500, 0.720]"
    assert table.loc["lcm", "balanced accuracy [95% CI]"] == "0.500, no interval (all folds equal)"
    assert table.loc["logreg", "AUC [95% CI]"] == "0.600, no interval (one value)"


def test_folds_equal_up_to_rounding_read_no_interval() -> None:
    """Balanced accuracies of 0.5 computed with rounding noise in one fold were written
    0.500 [0.500, 0.500], as if measured to the third decimal."""
    noisy = [0.5000000000000001, 0.49999999999999994, 0.5, 0.5]
    rows = [("t", "lcm", 0.1, 0, f, "balanced_accuracy", v) for f, v in enumerate(noisy)]
    rows += [("t", "lcm", 0.1, 0, f, "auc", 0.6 + f / 20) for f in range(4)]
    summary = summarise(pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
    table = task_table(summary, "t").set_index("model")
    assert table.loc["lcm", "balanced accuracy [95% CI]"] == "0.500, no interval (all folds equal)"


def _sens_spec(calls_positive_in_fold_3: bool) -> pd.DataFrame:
    rows = []
    for fold in range(4):
        sens = 0.25 if calls_positive_in_fold_3 and fold == 3 else 0.0
        for model, (s, p) in {"lcm-scratch": (sens, 1.0), "logreg": (0.6, 0.7)}.items():
            rows += [
                ("t", model, 0.1, 0, fold, "sensitivity", s),
                ("t", model, 0.1, 0, fold, "specificity", p),
            ]
    # A fold of one class: no sensitivity, so it neither makes nor breaks the flag.
    rows += [
        ("t", "lcm-scratch", 0.1, 1, 0, "sensitivity", np.nan),
        ("t", "lcm-scratch", 0.1, 1, 0, "specificity", 0.9),
    ]
    return pd.DataFrame(
        rows, columns=["task", "model", "label_fraction", "seed", "fold", "metric", "value"]
    )


def test_a_classifier_that_calls_no_one_positive_is_flagged() -> None:
    text = findings.collapse_fragment(_sens_spec(False), "t")
    assert text.startswith('<p class="warn"><b>Collapsed classifier</b>: lcm-scratch at label ')
    assert "lcm-scratch at label fraction 0.1 called no test subject positive in any of its 4 " in (
        text
    )
    assert "logreg" not in text
    assert findings.collapse_fragment(_sens_spec(True), "t") == ""
    assert findings.collapse_fragment(_sens_spec(False), "other") == ""


def _control(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        [("t", 0.1, "shuffled-labels", "auc", 0.48, 0.37, 0.6, n, 0.5, "at chance", True)],
        columns=[
            "task",
            "label_fraction",
            "model",
            "metric",
            "mean",
            "ci_low",
            "ci_high",
            "n",
            "chance",
            "verdict",
            "at_chance",
        ],
    )


@pytest.mark.parametrize(
    ("n", "meta", "said"),
    [
        (
            4,
            {"settings": {"seeds": [0]}, "control_permutations": {"shuffled-labels": 10}},
            "over 4 folds &times; 10 permutations (chance 0.5)",
        ),
        (
            8,
            {"settings": {"seeds": [0, 1]}, "control_permutations": {"shuffled-labels": 20}},
            "over 8 fits (seeds &times; folds) &times; 20 permutations (chance 0.5)",
        ),
        (
            4,
            None,
            "over 4 fits (seeds &times; folds), each the mean of its permutations (their number "
            "is not recorded in these metrics) (chance 0.5)",
        ),
    ],
    ids=["one-seed", "two-seeds", "not-recorded"],
)
def test_control_says_folds_times_permutations(n: int, meta: dict | None, said: str) -> None:
    text = findings.control_fragment(_control(n), "t", meta)
    assert said in text and "over 4 fits (" not in text.replace(said, "")


def test_evaluation_records_each_controls_permutations() -> None:
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [1.0],
            "models": ["logreg", "shuffled-labels"],
            "control_permutations": 3,
        }
    )
    result = evaluate_task(make_cohort(n_subjects=16, n_unlabeled=0), TASK, settings, 0)
    assert result.control_permutations == {"shuffled-labels": 3}


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model in ("logreg", "shuffled-labels"):
        for s in range(12):
            rows.append(
                ("t", model, 1.0, 0, s % 2, "d", f"s{s}", f"site{s % 2}", s % 2, rng.random())
            )
    return pd.DataFrame(
        rows,
        columns=list(PREDICTION_COLUMNS),
    )


def test_roc_and_site_rows_of_a_control_are_labelled_first_permutation() -> None:
    fig = roc_figure(_predictions(), "t")
    (legend,) = fig.legends  # one for every panel, naming no AUC (the table's is the fold mean)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["logreg", "shuffled-labels (first permutation)"]
    sites = pd.DataFrame(
        [
            ("t", 1.0, site, model, "auc", 0.6, 6)
            for site in ("a", "b")
            for model in ("logreg", "shuffled-labels")
        ],
        columns=["task", "label_fraction", "site", "model", "metric", "value", "n_subjects"],
    )
    text = bare(findings.site_fragment(sites, "t", table_html))
    assert "<th>shuffled-labels (first permutation)</th>" in text
    assert "<th>logreg</th>" in text


def test_median_counts_read_as_integers_and_percents_to_one_decimal() -> None:
    qc = pd.DataFrame(
        {
            "dataset": ["a", "a", "a", "b", "b", "c"],
            "subject": ["1", "2", "3", "4", "5", "6"],
            "included": True,
            "mean_fd": 0.1,
            "n_volumes": [200, 200, 200, 100, 100, 1000],
            "n_volumes_kept": [200, 196, 200, 95, 96, 989],
        }
    )
    page = bare(table_html(qc_counts(qc), "QC counts", row_headers=1))
    assert "<td>200</td><td>0</td></tr>" in page  # a: median 200 retained, 0 % scrubbed
    assert "<td>95.5</td><td>4.5</td></tr>" in page  # b: medians between two runs
    assert "<td>989</td><td>1.1</td></tr>" in page  # c: 1.1 % scrubbed, not 1.100
    assert ".000<" not in page.replace("0.100", "")


def test_headline_sidecar_lists_the_metrics_too(tmp_path) -> None:
    inputs = write_report_inputs(tmp_path / "in")
    out = tmp_path / "headline.tsv"
    run_report(inputs, tmp_path / "out", ["--out-headline", str(out)])
    sources = json.loads(out.with_suffix(".json").read_text())["Sources"]
    assert [str(p) for p in (*inputs["metrics"], *inputs["predictions"])] == sources
