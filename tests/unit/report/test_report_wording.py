"""The report's words say what the numbers allow: an interval across 0 is inconclusive, a
zero-width interval is none, a collapsed classifier and a one-seed run are named, every
column and count reads as what it is."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers.evaluate import TASK, make_cohort
from helpers.report import bare, report_parser, run_report, write_report_inputs

from lcm.evaluate.compare import HEADLINE_COLUMNS
from lcm.evaluate.metrics import METRIC_COLUMNS, PREDICTION_COLUMNS, summarise
from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.report import contrasts, findings, verdict, wording
from lcm.report.boxes import box
from lcm.report.html import table_html
from lcm.report.plots import roc_figure
from lcm.report.tables import qc_counts, task_table

_WHAT = (
    "(LCM minus the same transformer trained from scratch, in AUC, 95 % corrected-resampled-t "
    "interval over seeds &times; folds)"
)
_ONE_SEED = (
    "<b>Only one split seed was run</b> on autism (evaluate.seeds: [0]): each interval rests "
    "on the folds of a single partition; evaluate several split seeds before reading these "
    "intervals as a result"
)
_COUNTED = (
    " A gain in 1 of the {n} comparisons (task &times; label fraction), each interval at 95 % "
    "with no correction for their number."
)
_OPEN = (
    "+0.037 [-0.352, +0.426] at 0.1 (width 0.778: anything from a loss of 0.352 to a gain of "
    "0.426 is compatible with these folds)"
)


def _gain(task: str, d: float, low: float, high: float) -> dict:
    said = "gain" if low > 0 else "loss" if high < 0 else "no clear difference"
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
        "verdict": said,
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
            f"{_WHAT} on autism +0.050 [+0.010, +0.090] at 0.1.{_COUNTED.format(n=1)}</p>",
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
            "does not help: read both of its bounds, the largest loss and the largest gain it "
            "leaves open.</p>",
        ),
        # Two tasks: the lead, then one list item per task, then the closing sentence.
        (
            [HELPED, {**OPEN, "task": "dx"}],
            '<div class="note" id="verdict"><b>Pretraining helped</b> at &le; 0.1 of the labels '
            f"{_WHAT} on:<ul><li>autism +0.050 [+0.010, +0.090] at 0.1</li><li><b>no gain was "
            f"shown</b> (inconclusive: the interval crosses 0) on dx {_OPEN}</li></ul>"
            f"{_COUNTED.format(n=2)}</div>",
        ),
    ],
    ids=["helped", "hurt", "inconclusive", "helped-and-inconclusive"],
)
def test_first_sentence_of_each_outcome(rows: list[dict], expected: str) -> None:
    table = pd.DataFrame(rows)
    assert verdict.pretraining_verdict(table, {}) == expected
    several = {"autism": {"settings": {"seeds": [0, 1, 2]}}}
    assert verdict.pretraining_verdict(table, {}, task_meta=several) == expected


def test_a_gain_over_scratch_below_the_baselines_is_said_and_warned() -> None:
    """'Pretraining helped' opened the page as a plain note while lcm scored below the
    linear baselines at that label fraction (0.602 against svm's 0.635)."""
    headline = pd.DataFrame(
        [
            {
                "task": "autism",
                "label_fraction": 0.1,
                "metric": "auc",
                "model": "lcm",
                "model_mean": 0.602,
                "best_baseline": "svm",
                "baseline_mean": 0.635,
            }
        ]
    )
    page = verdict.pretraining_verdict(pd.DataFrame([HELPED]), {}, headline=headline)
    assert page.startswith('<div class="warn" id="verdict"><b>Pretraining helped</b>')
    assert (
        "autism at label fraction 0.1: lcm (0.602 auc) still scored <b>below the best "
        "baseline</b>, svm (0.635): a gain over lcm-scratch, no gain over the linear models"
    ) in page
    above = headline.assign(model_mean=0.70)
    page = verdict.pretraining_verdict(pd.DataFrame([HELPED]), {}, headline=above)
    assert page.startswith('<p class="note" id="verdict">') and "below the best" not in page


def test_lcm_worse_than_a_baseline_is_said_in_the_first_box_whatever_pretraining_did() -> None:
    """'No gain from pretraining was shown' opened the page while lcm was clearly worse than
    logistic regression; the first box named the baselines only when pretraining helped."""
    headline = pd.DataFrame(
        [
            {
                "task": "autism",
                "label_fraction": fraction,
                "metric": "auc",
                "model": "lcm",
                "model_mean": 0.933,
                "best_baseline": "logreg",
                "baseline_mean": 0.999,
                "difference": -0.067,
                "difference_ci_low": -0.106,
                "difference_ci_high": -0.029,
                "verdict": "worse",
            }
            for fraction in (0.1, 1.0)
        ]
    )
    worse = (
        "autism at label fraction 0.1: lcm (0.933 AUC) scored <b>below the best baseline</b>, "
        "logreg (0.999), difference -0.067 [-0.106, -0.029]: <b>worse</b>"
    )
    for rows in ([OPEN], [HURT]):
        page = verdict.pretraining_verdict(pd.DataFrame(rows), {}, headline=headline)
        assert page.startswith('<div class="warn" id="verdict">') and worse in page
        assert "at label fraction 1:" not in page  # read at few labels, as the sentence is
    # Without the ablation the gain is not measured; the loss to the baseline is still said.
    page = verdict.pretraining_verdict(None, {}, headline=headline)
    assert "<b>The pretraining gain was not measured</b>" in page and worse in page
    above = headline.assign(model_mean=0.999, baseline_mean=0.933)
    page = verdict.pretraining_verdict(pd.DataFrame([OPEN]), {}, headline=above)
    assert "below the best baseline" not in page


_INCONCLUSIVE = (
    " An interval that crosses 0 is no evidence that pretraining does not help: read both of "
    "its bounds, the largest loss and the largest gain it leaves open."
)


@pytest.mark.parametrize(
    ("rows", "lead", "item", "closing"),
    [
        (
            [HELPED],
            f"<b>Pretraining helped</b> at &le; 0.1 of the labels {_WHAT} on",
            "autism +0.050 [+0.010, +0.090] at 0.1",
            _COUNTED.format(n=1),
        ),
        (
            [HURT],
            f"<b>Pretraining did not help</b> at &le; 0.1 of the labels on any task {_WHAT}: it "
            "<b>hurt</b> on",
            "autism -0.080 [-0.120, -0.040] at 0.1",
            "",
        ),
        (
            [OPEN],
            f"<b>No gain from pretraining was shown</b> at &le; 0.1 of the labels on any task "
            f"{_WHAT}: <b>inconclusive</b>, every interval crosses 0, on",
            f"autism {_OPEN}",
            _INCONCLUSIVE,
        ),
    ],
    ids=["helped", "hurt", "open"],
)
def test_first_sentence_warns_of_a_single_split_seed(
    rows: list[dict], lead: str, item: str, closing: str
) -> None:
    table = pd.DataFrame(rows)
    plain = verdict.pretraining_verdict(table, {})
    cls = "note" if rows == [HELPED] else "warn"
    assert plain == f'<p class="{cls}" id="verdict">{lead} {item}.{closing}</p>'
    warned = verdict.pretraining_verdict(
        table, {}, task_meta={"autism": {"settings": {"seeds": [0]}}}
    )
    # Same box, the warning listed after the task; a gain from one seed is no longer a note.
    assert warned == (
        f'<div class="warn" id="verdict">{lead}:<ul><li>{item}</li><li>{_ONE_SEED}</li></ul>'
        f"{closing}</div>"
    )


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


def _sens_spec(learned_folds: int = 0, alternate: bool = False) -> pd.DataFrame:
    """lcm-scratch calling no test subject positive in each of 4 folds but the last
    ``learned_folds`` (or, ``alternate``, every subject in folds 1 and 2); logreg learns."""
    rows = []
    for fold in range(4):
        s, p = (0.0, 1.0) if not (alternate and fold in (1, 2)) else (1.0, 0.0)
        if fold >= 4 - learned_folds:
            s, p = 0.25, 0.9
        for model, (sens, spec) in {"lcm-scratch": (s, p), "logreg": (0.6, 0.7)}.items():
            rows += [
                ("t", model, 0.1, 0, fold, "sensitivity", sens),
                ("t", model, 0.1, 0, fold, "specificity", spec),
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
    text = findings.collapse_fragment(_sens_spec(), "t")
    assert text.startswith('<p class="warn"><b>Collapsed classifier</b>: lcm-scratch at label ')
    assert "lcm-scratch at label fraction 0.1 collapsed in 4 of its 4 fit(s)" in text
    assert "no test subject positive in 4" in text
    assert "logreg" not in text
    assert findings.collapse_fragment(_sens_spec(), "other") == ""


def test_a_collapse_of_several_models_lists_one_item_per_model_and_fraction() -> None:
    """The demo's per-task box named 3 model-fractions in one run-on paragraph."""
    one = _sens_spec()
    other = one[one["model"] == "lcm-scratch"].assign(model="bei-linear")
    text = findings.collapse_fragment(pd.concat([one, other]), "t")
    assert text.startswith('<div class="warn"><b>Collapsed classifier</b>:<ul><li>')
    items = re.findall(r"<li>(.*?)</li>", text)
    assert [i.split(" collapsed", 1)[0] for i in items] == [
        "bei-linear at label fraction 0.1",
        "lcm-scratch at label fraction 0.1",
    ]
    assert all("in 4 of its 4 fit(s)" in i and "no test subject positive in 4" in i for i in items)
    assert text.endswith(
        "</ul> Such a classifier's balanced accuracy is 0.5 by construction on those folds, not "
        "chance-level discrimination; its AUC ranks scores that never cross the 0.5 threshold, "
        "so a contrast in AUC against it stands, while one in balanced accuracy, sensitivity or "
        "specificity measures its threshold.</div>"
    )


@pytest.mark.parametrize(
    ("lead", "items", "expected"),
    [
        ("<b>A</b> on", ["x"], '<p class="warn" id="i"><b>A</b> on x. End.</p>'),
        ("<b>A</b>:", ["x"], '<p class="warn" id="i"><b>A</b>: x. End.</p>'),
        (
            "<b>A</b> on",
            ["x", "y"],
            '<div class="warn" id="i"><b>A</b> on:<ul><li>x</li><li>y</li></ul> End.</div>',
        ),
        (
            "<b>A</b>.",
            ["x", "y"],
            '<div class="warn" id="i"><b>A</b>.<ul><li>x</li><li>y</li></ul> End.</div>',
        ),
    ],
    ids=["one", "one-after-colon", "two", "two-after-sentence"],
)
def test_a_box_of_one_item_is_a_paragraph_and_of_several_a_list(
    lead: str, items: list[str], expected: str
) -> None:
    assert box(lead, items, "End.", box_id="i") == expected


def test_no_auc_on_two_tasks_lists_each_task_with_why() -> None:
    metrics = pd.DataFrame(
        {"task": ["a", "b"], "metric": "auc", "value": np.nan, "model": "logreg"}
    )
    meta = {
        "a": {"folds_one_class": [{"sites": ["B"]}]},
        "b": {"split_used": "site", "sites_not_tested": {"A": {"subjects": 15}}},
    }
    rest = (
        ", so every AUC of this task below is n/a and none of its models is judged on "
        "discrimination"
    )
    assert findings.no_auc_warning(metrics, meta) == (
        '<div class="warn" id="no-auc"><b>No AUC</b> for:<ul>'
        f"<li>a: none of its folds yielded one (1 test fold(s) of one class (site B)){rest}</li>"
        f"<li>b: none of its folds yielded one (site A not tested (15 subjects)){rest}. "
        "Leave-site-out needs both classes in each tested site and in the sites it trains on; "
        "<code>evaluate.split: subject</code> stratifies its folds by class</li></ul></div>"
    )
    one = findings.no_auc_warning(metrics[metrics["task"] == "a"], meta)
    assert one == (
        '<p class="warn" id="no-auc"><b>No AUC</b> for a: none of its folds yielded one (1 test '
        f"fold(s) of one class (site B)){rest}.</p>"
    )


def test_a_baseline_that_ran_without_an_auc_is_not_said_to_be_missing() -> None:
    """Every test fold of one class: logreg ran on each but gave no AUC, and the headline said
    'the task evaluates no baseline'."""
    nan = float("nan")
    summary = pd.DataFrame(
        [
            ("t", model, fraction, metric, value, value, value, n)
            for model in ("lcm", "logreg")
            for fraction in (0.1, 1.0)
            for metric, value, n in (("auc", nan, 0), ("accuracy", 0.6, 6))
        ],
        columns=["task", "model", "label_fraction", "metric", "mean", "ci_low", "ci_high", "n"],
    )
    headline = pd.DataFrame(
        [
            {
                **dict.fromkeys(HEADLINE_COLUMNS, nan),
                "task": "t",
                "label_fraction": fraction,
                "metric": "auc",
                "model": "lcm",
                "best_baseline": "",
                "verdict": "not evaluated",
            }
            for fraction in (0.1, 1.0)
        ]
    )
    (said,) = findings.science_statements(headline, {}, summary=summary)
    assert "evaluates no baseline" not in said
    assert (
        "LCM was not compared with a baseline (logreg ran but gave no AUC: no test fold "
        "yielded one)"
    ) in said
    # Without a baseline in the summary the task is still said to evaluate none.
    (said,) = findings.science_statements(headline, {}, summary=summary[summary["model"] == "lcm"])
    assert "LCM was not compared with a baseline (the task evaluates no baseline)" in said


def test_tasks_without_ablations_for_two_reasons_are_listed() -> None:
    summary = pd.DataFrame({"task": ["t1", "t2", "t2"], "model": ["logreg", "lcm", "logreg"]})
    text = contrasts.contrast_section(None, table_html, summary=summary)
    assert text == (
        '<div class="warn">The report cannot say what pretraining or pseudo-labels buy '
        "where:<ul><li>LCM was not evaluated on t1 (its models: logreg)</li><li>LCM was not "
        "evaluated beside its ablations on t2 (lcm-scratch and lcm-no-pseudo were not "
        "evaluated)</li></ul></div>"
    )


def test_a_collapse_counted_over_two_class_folds_says_the_one_class_folds_are_left_out() -> None:
    """_sens_spec's fifth fit tested one class: "4 of its 4 fit(s)" read as every fit run."""
    text = findings.collapse_fragment(_sens_spec(), "t")
    assert (
        "collapsed in 4 of its 4 fit(s) (seeds &times; folds) with test subjects of both "
        "classes (its 1 other fit tested one class only): it called" in text
    )
    sentence = verdict.pretraining_verdict(
        pd.DataFrame([{**_gain("t", 0.05, 0.01, 0.09)}]), {}, metrics=_sens_spec()
    )
    assert "t at 0.1 (4 of its 4 fits with test subjects of both classes (its 1 other" in sentence


def test_a_classifier_collapsing_in_most_folds_either_way_is_flagged() -> None:
    """Folds alternating between calling no one and everyone positive (rev25 #3: the
    from-scratch comparator of the first sentence), or collapsing in 3 of 4 folds."""
    text = findings.collapse_fragment(_sens_spec(alternate=True), "t")
    assert "collapsed in 4 of its 4" in text
    assert "no test subject positive in 2 and every test subject positive in 2" in text
    assert "collapsed in 3 of its 4" in findings.collapse_fragment(_sens_spec(1), "t")
    assert "collapsed in 2 of its 4" in findings.collapse_fragment(_sens_spec(2), "t")
    assert findings.collapse_fragment(_sens_spec(3), "t") == ""


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


def test_the_pages_record_holds_the_tables_written_beside_it(tmp_path) -> None:
    """Nothing reads the headline or the contrasts table: deleted, or rewritten with its own
    sidecar's sha256 updated, either passed lcm provenance verify."""
    from lcm.io.lineage import audit
    from lcm.io.provenance import sha256_file

    inputs = write_report_inputs(tmp_path / "in")
    out = tmp_path / "out"
    headline = out / "metrics" / "headline.tsv"
    outputs = run_report(inputs, out, ["--out-headline", str(headline)])
    record = json.loads(outputs["html"].with_suffix(".json").read_text())
    assert set(record["ProductsSha256"]) == {
        str(p) for p in (outputs["metrics"], outputs["summary"], headline)
    }
    assert not audit(out).problems
    # Rewritten, its own record's sha256 updated to match: the page's record still tells.
    headline.write_text(headline.read_text() + "forged\n")
    side = headline.with_suffix(".json")
    record = json.loads(side.read_text())
    side.write_text(json.dumps({**record, "Sha256": sha256_file(headline)}))
    (problem,) = audit(out).problems
    assert problem.kind == "product changed" and problem.path == str(headline)
    headline.unlink()
    side.unlink()
    assert [p.kind for p in audit(out).problems] == ["product missing"]


def test_a_null_gain_as_large_as_the_planted_one_is_not_read_as_open_evidence() -> None:
    """rev25 #2: autism +0.05 [-0.4, +0.5], autismnull +0.07 [-0.25, +0.39]: the null cohort
    gains as much, so the sentence says the gain is not distinguishable from the null's, and
    never that 'a gain up to +0.39 is not ruled out' on the null cohort."""
    rows = [
        {**_gain("autism", 0.05, -0.4, 0.5), "se": 0.14},
        {**_gain("autismnull", 0.07, -0.25, 0.39), "se": 0.10},
    ]
    sentence = verdict.pretraining_verdict(pd.DataFrame(rows), {"autism": 0.7, "autismnull": 0.0})
    assert "gain up to" not in sentence and "autismnull +0.070" not in sentence.split("Null")[0]
    assert "<li><b>Null check</b>" in sentence and "planted &minus; null -0.020" in sentence
    assert "the gain is not distinguishable from what the null shows" in sentence
    assert sentence.startswith('<div class="warn" id="verdict">')


def test_an_open_interval_names_its_loss_bound_too() -> None:
    """rev25 #4: a loss of -0.379 is as compatible with the folds as a gain of +0.213."""
    row = _gain("alzheimers", -0.083, -0.379, 0.213)
    sentence = verdict.pretraining_verdict(pd.DataFrame([row]), {})
    assert "anything from a loss of 0.379 to a gain of 0.213" in sentence


def test_a_collapsed_scratch_comparator_is_named_in_the_first_sentence() -> None:
    """rev25 #3: the 'gain' over lcm-scratch calling no one, then everyone, positive."""
    metrics = _sens_spec(alternate=True)
    sentence = verdict.pretraining_verdict(
        pd.DataFrame([{**HELPED, "task": "t"}]), {}, metrics=metrics
    )
    assert "<li><b>The from-scratch comparator's threshold collapsed</b>" in sentence
    assert "t at 0.1 (4 of" in sentence and "a gain in AUC over it stands" in sentence
    # Read in AUC, which ranks regardless of the threshold: the gain stands, plainly.
    assert sentence.startswith('<div class="note" id="verdict"><b>Pretraining helped</b>')
    # Read in balanced accuracy, which is the threshold's: no plain verdict.
    bacc = pd.DataFrame([{**HELPED, "task": "t", "metric": "balanced_accuracy"}])
    sentence = verdict.pretraining_verdict(bacc, {}, metrics=metrics)
    assert sentence.startswith('<div class="warn" id="verdict">')
    assert "threshold collapsed" in sentence


def test_a_collapsed_scratch_comparator_is_given_with_the_auc_it_still_ranks_with() -> None:
    """It 'learned no decision rule', said the verdict, beside fold AUCs of 0.56 to 0.60."""
    metrics = _sens_spec(alternate=True)
    aucs = [("t", "lcm-scratch", 0.1, 0, fold, "auc", a) for fold, a in enumerate([0.56, 0.6])]
    metrics = pd.concat([metrics, pd.DataFrame(aucs, columns=metrics.columns)])
    sentence = verdict.pretraining_verdict(
        pd.DataFrame([{**HELPED, "task": "t"}]), {}, metrics=metrics
    )
    assert "its mean AUC 0.580)" in sentence and "learned no decision rule" not in sentence


def test_contrast_p_values_are_holm_adjusted_over_the_listed_contrasts() -> None:
    """rev25 #5: p = 0.024 among 10 contrasts is 0.24 after Holm, and the page says so."""
    from lcm.evaluate.compare import holm

    p = np.array([0.024, *np.linspace(0.3, 0.9, 9)])
    assert holm(p)[0] == pytest.approx(0.24)
    assert np.all(holm(p) >= p) and np.isnan(holm(np.array([np.nan, 0.01])))[0]
    rows = [
        {**_gain("autism", -0.1, -0.18, -0.02), "contrast": "pseudo-label gain", "p_value": 0.024}
    ]
    rows += [{**_gain(f"t{i}", 0.0, -0.1, 0.1), "p_value": q} for i, q in enumerate(p[1:])]
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"])
    text = contrasts.contrast_statement(table)
    assert "Holm-adjusted over the 10 contrasts listed: p = 0.240" in text
    assert "not significant after Holm" in text
    assert wording.P_HOLM in contrasts.contrast_display(table).columns


def test_a_pseudo_label_loss_at_full_labels_is_worded_as_bei_pseudo_targets_only() -> None:
    """rev25 #6: at label fraction 1.0 no diagnosis pseudo-label exists (status no_unlabeled
    in every lcm fit): 'pseudo-labels hurt' would misname what lcm − lcm-no-pseudo measures."""
    row = {
        **_gain("autism", -0.1, -0.18, -0.02),
        "label_fraction": 1.0,
        "contrast": "pseudo-label gain",
        "model_b": "lcm-no-pseudo",
        "p_value": 0.024,
    }
    fits = [
        {"model": "lcm", "label_fraction": 1.0, "diagnosis": {"status": "no_unlabeled"}},
        {"model": "lcm", "label_fraction": 0.1, "diagnosis": {"status": "made"}},
    ]
    text = contrasts.contrast_statement(pd.DataFrame([row]), {"autism": {"pseudo_labels": fits}})
    assert "pseudo-labels (lcm" not in text
    assert "BEI pseudo-targets alone (no diagnosis pseudo-labels exist here" in text
    # At 0.1, where diagnosis pseudo-labels were made, the contrast keeps its name.
    low = contrasts.contrast_statement(
        pd.DataFrame([{**row, "label_fraction": 0.1}]), {"autism": {"pseudo_labels": fits}}
    )
    assert "pseudo-labels (lcm − lcm-no-pseudo) <b>hurt</b>" in low
    # The table below the statement names it so too (it said "pseudo-label gain" at 1.0).
    both = pd.DataFrame([row, {**row, "label_fraction": 0.1}])
    cells = contrasts.contrast_display(both, {"autism": {"pseudo_labels": fits}})["contrast"]
    assert cells.tolist() == [
        "BEI pseudo-target gain (no diagnosis pseudo-labels here) (lcm − lcm-no-pseudo)",
        "pseudo-label gain (lcm − lcm-no-pseudo)",
    ]


def test_a_continuous_headline_gives_r2_and_says_when_it_is_worse_than_the_mean() -> None:
    """rev25 #8: age, lcm r 0.149 [0.052, 0.246] but R² -0.136 [-0.250, -0.021]."""
    row = dict.fromkeys(HEADLINE_COLUMNS, 0.1) | {
        "task": "age",
        "metric": "pearson_r",
        "model": "lcm",
        "best_baseline": "ridge",
        "verdict": "no clear difference",
        "difference_ci_low": -0.1,
    }
    summary = pd.DataFrame(
        [
            {"task": "age", "model": "lcm", "label_fraction": 0.1, "metric": "r2", "mean": -0.136}
            | {"ci_low": -0.25, "ci_high": -0.021, "n": 4}
        ]
    )
    bullet = findings.science_statements(
        pd.DataFrame([row], columns=list(HEADLINE_COLUMNS)), {}, summary=summary
    )[0]
    assert "lcm R² -0.136 [-0.250, -0.021]" in bullet
    assert "worse than predicting the training mean</b>: its whole interval below 0" in bullet


def test_the_null_check_pairs_a_null_cohort_with_its_own_diagnosis() -> None:
    rows = pd.DataFrame(
        [
            {**_gain("autism", 0.05, -0.4, 0.5), "se": 0.14},
            {**_gain("alzheimers", -0.08, -0.4, 0.2), "se": 0.1},
            {**_gain("autismnull", 0.07, -0.25, 0.39), "se": 0.10},
        ]
    )
    labels = {"autism": "autism", "autismnull": "autism", "alzheimers": "alzheimers"}
    items = verdict.null_comparison(
        rows, {"autism": 0.7, "alzheimers": 0.7, "autismnull": 0.0}, labels
    )
    assert len(items) == 2 and items[0].startswith("<b>Null check</b>")
    assert "autism (shared_structure 0.7)" in items[0] and "alzheimers" not in items[0]
    assert items[1].startswith("<b>Scan-level difficulty not checked</b>: autism against ")


def test_the_null_check_says_when_scan_level_difficulty_was_not_checked() -> None:
    """Without the oracle on the pipeline's connectomes (no --store, or one cohort's not
    computed) the null check said nothing about difficulty, which read as matched."""
    rows = pd.DataFrame(
        [
            {**_gain("autism", 0.05, -0.4, 0.5), "se": 0.14},
            {**_gain("autismnull", 0.07, -0.25, 0.39), "se": 0.10},
        ]
    )
    shared = {"autism": 0.7, "autismnull": 0.0}
    items = verdict.null_comparison(rows, shared, None, {"autism": 0.74})
    assert items[1] == (
        "<b>Scan-level difficulty not checked</b>: autism against autismnull (no oracle on "
        "the pipeline's connectomes for autismnull: give lcm report --ground-truth and "
        "--store), so the comparison may also measure a difference in difficulty"
    )
    matched = verdict.null_comparison(rows, shared, None, {"autism": 0.74, "autismnull": 0.72})
    assert len(matched) == 1


def test_the_null_check_flags_cohorts_not_at_matched_difficulty() -> None:
    """rev25 #2: the oracle on the pipeline's connectomes, 0.738 against 0.633."""
    rows = [
        {**_gain("autism", 0.05, -0.4, 0.5), "se": 0.14},
        {**_gain("autismnull", 0.07, -0.25, 0.39), "se": 0.10},
    ]
    oracles = {"autism": {"scan": {"auc": 0.738}}, "autismnull": {"scan": {"auc": 0.633}}}
    sentence = verdict.pretraining_verdict(
        pd.DataFrame(rows), {"autism": 0.7, "autismnull": 0.0}, oracles=oracles
    )
    # Its own list item, after the null check, naming the two cohorts.
    assert (
        "</li><li><b>Not at matched scan-level difficulty</b>: autism against autismnull "
        "(oracle on the pipeline's connectomes 0.738 against 0.633, more than 0.05 apart), so "
        "the comparison also measures the difference in difficulty</li>"
    ) in sentence
    assert sentence.index("<b>Null check</b>") < sentence.index("Not at matched")


def test_a_regressor_predicting_one_value_is_named_with_the_fits_its_r_rests_on():
    """cpm predicting the training mean in 2 of 3 folds had a mean Pearson r of its third fold
    alone, was the headline's best baseline, and nothing on the page said so."""
    from lcm.evaluate.metrics import regression_metrics

    rng = np.random.default_rng(0)
    rows = []
    for fold in range(3):
        y = rng.normal(40, 10, size=12)
        preds = {
            "cpm": np.full(12, 31.5) if fold < 2 else y + rng.normal(0, 5, size=12),
            "ridge": y + rng.normal(0, 8, size=12),
        }
        for model, pred in preds.items():
            for metric, value in regression_metrics(y, pred).items():
                rows.append(
                    {
                        "task": "age",
                        "model": model,
                        "label_fraction": 0.3,
                        "seed": 0,
                        "fold": fold,
                        "metric": metric,
                        "value": value,
                    }
                )
    # A test fold whose targets are all equal has no Pearson r either: not the model's doing.
    for metric, value in regression_metrics(np.full(12, 30.0), rng.normal(30, 1, 12)).items():
        rows.append(
            {
                "task": "age",
                "model": "ridge",
                "label_fraction": 0.3,
                "seed": 0,
                "fold": 3,
                "metric": metric,
                "value": value,
            }
        )
    metrics = pd.DataFrame(rows)
    assert findings.constant_fits(metrics, "age") == {("cpm", 0.3): {"constant": 2, "fits": 3}}
    text = bare(findings.collapse_fragment(metrics, "age"))
    assert "Constant regressor" in text
    assert "cpm at label fraction 0.3 predicted one value for every test subject in 2 of its 3" in (
        text
    )
    assert "rests on the other 1" in text and "ridge" not in text
    assert findings.collapse_fragment(metrics, "other") == ""


def test_a_continuous_headline_does_not_claim_pseudo_labels() -> None:
    """A continuous task's LCM has no pseudo-labels of its target (lcm.train.regress: the
    pretrained heads fill only missing BEI variables); its sentence said "LCM with
    pseudo-labels" all the same."""
    continuous = _headline().assign(task="age", metric="pearson_r")
    said = findings.science_statements(continuous, {})[0]
    assert "LCM with pseudo-labels" not in said
    assert "LCM (a continuous target has no pseudo-labels; the pretrained heads fill only " in said
    made = {"dx": {"pseudo_labels": [_fit_record("made"), _fit_record("no_unlabeled")]}}
    assert (
        "LCM with pseudo-labels" in findings.science_statements(_headline(), {}, task_meta=made)[0]
    )


def _fit_record(status: str, fraction: float = 0.1, model: str = "lcm") -> dict:
    """One lcm fit's pseudo-label record as lcm evaluate stores it (status alone read here)."""
    return {"model": model, "label_fraction": fraction, "diagnosis": {"status": status}}


def test_a_binary_headline_names_lcm_by_what_its_fits_recorded() -> None:
    """With finetune.diagnosis_pseudo_labels off every lcm fit records status "off"; the
    sentence still said "LCM with pseudo-labels". Only the fits at the fractions read count
    (lcm-no-pseudo's, or lcm's at another fraction, do not), and no record claims nothing."""
    off = [_fit_record("off"), _fit_record("off"), _fit_record("made", fraction=1.0)]
    off.append(_fit_record("off", model="lcm-no-pseudo"))
    said = findings.science_statements(_headline(), {}, task_meta={"dx": {"pseudo_labels": off}})
    assert "LCM without diagnosis pseudo-labels (its fits ran with finetune." in said[0]
    assert "with pseudo-labels" not in said[0]
    mixed = {"dx": {"pseudo_labels": [_fit_record("off"), _fit_record("made")]}}
    said = findings.science_statements(_headline(), {}, task_meta=mixed)[0]
    assert "LCM (diagnosis pseudo-labels off in 1 of its 2 fits here" in said
    for meta in (None, {"dx": {}}, {"dx": {"pseudo_labels": off[2:]}}):
        said = findings.science_statements(_headline(), {}, task_meta=meta)[0]
        assert "</b>: LCM does <b>not</b> beat every baseline" in said
