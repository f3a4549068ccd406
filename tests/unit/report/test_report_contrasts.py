"""LCM against its ablations in the report: intervals with training variance, the first sentence."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from helpers.report import control_summary

from lcm.evaluate.compare import (
    HEADLINE_COLUMNS,
    contrast_table,
    control_table,
    corrected_t_interval,
    motion_confound,
)
from lcm.report.contrasts import contrast_display, contrast_section, contrast_statement
from lcm.report.findings import control_fragment, science_statements
from lcm.report.motion import motion_fragment
from lcm.report.verdict import pretraining_verdict


def _metrics(gain: float, null_gain: float = 0.0, seeds: int = 3, folds: int = 5):
    rng = np.random.default_rng(0)
    rows = []
    for task, g in (("autism", gain), ("autismnull", null_gain)):
        for seed in range(seeds):
            for fold in range(folds):
                base = 0.7 + rng.normal(0, 0.03)
                values = {
                    "lcm": base + g + rng.normal(0, 0.01),
                    "lcm-scratch": base,
                    "lcm-no-pseudo": base + g,
                    "logreg": base,
                }
                for model, v in values.items():
                    rows.append([task, model, 0.1, seed, fold, "auc", v])
    metrics = pd.DataFrame(
        rows, columns=["task", "model", "label_fraction", "seed", "fold", "metric", "value"]
    )
    predictions = pd.DataFrame({"task": ["autism", "autismnull"], "y_true": [0.0, 1.0]})
    return metrics, predictions


def test_corrected_t_is_wider_than_the_naive_interval():
    d = np.random.default_rng(1).normal(0.05, 0.05, 15)
    mean, _, high, p = corrected_t_interval(d, 0.25)
    naive = 2.145 * d.std(ddof=1) / np.sqrt(len(d))
    assert mean == pytest.approx(d.mean())
    assert high - mean > 1.5 * naive
    assert 0 <= p <= 1
    assert np.isnan(corrected_t_interval(np.array([0.1]), 0.25)[1])


def test_contrasts_and_the_first_sentence_when_pretraining_does_not_help():
    metrics, predictions = _metrics(gain=-0.1)
    table = contrast_table(metrics, predictions)
    pre = table[(table["task"] == "autism") & (table["contrast"] == "pretraining gain")].iloc[0]
    assert pre["difference"] == pytest.approx(-0.1, abs=0.02)
    assert pre["verdict"] == "loss" and pre["n"] == 15
    pseudo = table[(table["task"] == "autism") & (table["contrast"] == "pseudo-label gain")]
    assert pseudo["verdict"].iloc[0] == "no clear difference"
    # Pretraining alone: lcm-no-pseudo, which self-trains as little as lcm-scratch does.
    alone = table[table["contrast"] == "pretraining gain without pseudo-labels"]
    assert alone.set_index("task")["difference"].to_dict() == pytest.approx(
        {"autism": -0.1, "autismnull": 0.0}, abs=1e-9
    )
    assert set(alone["model_a"]) == {"lcm-no-pseudo"} and set(alone["model_b"]) == {"lcm-scratch"}
    assert "lcm-ssl" not in set(table["model_b"])  # not evaluated: not listed
    sentence = pretraining_verdict(table, {"autism": 0.7, "autismnull": 0.0})
    assert "Pretraining did not help" in sentence
    assert "autism -0.09" in sentence
    section = contrast_section(table, lambda f, *_, **__: f.to_html())
    assert "Nadeau" in section and "pretraining gain (lcm − lcm-scratch)" in section
    assert "pretraining gain without pseudo-labels (lcm-no-pseudo − lcm-scratch)" in section


def _contrast_row(contrast, a, b, fraction, difference, low, high, p, verdict):
    return {
        "task": "autism",
        "label_fraction": fraction,
        "contrast": contrast,
        "model_a": a,
        "model_b": b,
        "metric": "auc",
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "n": 4,
        "verdict": verdict,
    }


def test_a_binary_and_a_continuous_task_share_one_difference_column():
    """An AUC task beside a Pearson r task gave the table two difference columns, each n/a on
    the other's rows, the second after the verdict."""
    auc = _contrast_row("pretraining gain", "lcm", "lcm-scratch", 0.1, 0.05, -0.4, 0.5, 0.8,
                        "no clear difference")  # fmt: skip
    r = {**auc, "task": "age", "metric": "pearson_r", "difference": 0.12}
    shown = contrast_display(pd.DataFrame([auc, r]))
    assert list(shown.columns[:5]) == [
        "task",
        "label fraction",
        "contrast",
        "metric",
        "difference [95% CI]",
    ]
    assert list(shown["metric"]) == ["AUC", "Pearson r"]
    assert list(shown["difference [95% CI]"]) == [
        "+0.050 [-0.400, +0.500]",
        "+0.120 [-0.400, +0.500]",
    ]
    # One metric: named in the header, no metric column.
    alone = contrast_display(pd.DataFrame([auc]))
    assert "metric" not in alone.columns and "AUC difference [95% CI]" in alone.columns


def test_a_pseudo_label_loss_at_full_labels_is_said_in_words():
    """The demo's one clear contrast, pseudo-labels losing 0.069 AUC at 1.0 (p = 0.024), was a
    table cell alone: the first sentence reads only the pretraining gain at <= 0.1."""
    table = pd.DataFrame(
        [
            _contrast_row("pretraining gain", "lcm", "lcm-scratch", 0.1, 0.05, -0.4, 0.5, 0.8,
                          "no clear difference"),
            _contrast_row("pseudo-label gain", "lcm", "lcm-no-pseudo", 1.0, -0.069, -0.120,
                          -0.017, 0.024, "loss"),
        ]
    )  # fmt: skip
    section = contrast_section(table, lambda f, *_, **__: f.to_html())
    prose = re.sub(r"<table.*?</table>", "", section, flags=re.S)
    said = prose.split("Every contrast whose interval excludes 0: ", 1)[1].split("</p>", 1)[0]
    assert "pseudo-labels (lcm − lcm-no-pseudo) <b>hurt</b> autism with every label (loss)" in (
        said
    )
    assert "-0.069 [-0.120, -0.017], p = 0.024" in said and "pretraining" not in said
    assert '<p class="warn"' in prose
    zero = table.assign(p_value=0.0)
    assert list(contrast_display(zero)["p"]) == ["< 0.001", "< 0.001"]
    assert "AUC difference [95% CI]" in contrast_display(zero).columns
    assert "p < 0.001" in contrast_statement(zero)
    flat = table.iloc[:1]
    assert "No contrast shows a clear gain or loss" in contrast_section(
        flat, lambda f, *_, **__: ""
    )


def test_first_sentence_when_pretraining_helps_and_the_null_stays_flat():
    metrics, predictions = _metrics(gain=0.1, null_gain=0.0)
    sentence = pretraining_verdict(
        contrast_table(metrics, predictions), {"autism": 0.7, "autismnull": 0.0}
    )
    assert sentence.count("Pretraining helped") == 1
    # The null cohort is a control, compared with the planted one, not read as inconclusive.
    assert "<b>no gain was shown</b>" not in sentence and "<b>Null check</b>" in sentence
    assert "autismnull (shared_structure 0)" in sentence
    metrics, predictions = _metrics(gain=0.1, null_gain=0.1)
    sentence = pretraining_verdict(
        contrast_table(metrics, predictions), {"autism": 0.7, "autismnull": 0.0}
    )
    assert "suspicion" in sentence
    assert "not distinguishable from what the null shows" in sentence


def test_motion_alone_auc_from_the_qc_table():
    subjects = [f"s{i}" for i in range(20)]
    y = np.array([i % 2 for i in range(20)], dtype=float)
    qc = pd.DataFrame(
        {
            "dataset": "abide",
            "subject": subjects,
            "included": True,
            "mean_fd": 0.1 + 0.1 * y + np.linspace(0, 0.01, 20),
        }
    )
    predictions = pd.DataFrame(
        {"task": "autism", "dataset": "abide", "subject": subjects, "y_true": y}
    )
    auc = motion_confound(qc, predictions)
    assert auc == {"autism": pytest.approx(1.0)}
    assert "label 1 is 1.000" in motion_fragment(auc["autism"])
    assert motion_confound(None, predictions) == {}


def test_first_sentence_names_each_metric_of_its_tasks():
    """Binary tasks read in AUC and continuous ones in Pearson r: the sentence names both."""
    metrics, predictions = _metrics(gain=-0.1)
    table = contrast_table(metrics, predictions)
    assert "in AUC," in pretraining_verdict(table, {})
    mixed = table.copy()
    mixed.loc[mixed["task"] == "autismnull", "metric"] = "pearson_r"
    sentence = pretraining_verdict(mixed, {})
    assert "in AUC (binary tasks) or Pearson r (continuous tasks)," in sentence


def _headline_row(fraction: float, model: str = "lcm", baseline: str = "logreg") -> dict:
    own = 0.6 if model else np.nan
    return {
        "task": "dx",
        "label_fraction": fraction,
        "metric": "auc",
        "model": model,
        "model_mean": own,
        "model_ci_low": own,
        "model_ci_high": own,
        "best_baseline": baseline,
        "baseline_mean": 0.7,
        "baseline_ci_low": 0.6,
        "baseline_ci_high": 0.8,
        "difference": np.nan,
        "difference_ci_low": np.nan,
        "difference_ci_high": np.nan,
        "p_value": np.nan,
        "verdict": "no clear difference" if model and fraction <= 0.1 else "not evaluated",
    }


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        # A binary task evaluated at 0.5 and 1.0 only (issue #18 item 9): it has an LCM model;
        # the sentence said "a continuous target has no LCM model yet".
        (
            [_headline_row(0.5), _headline_row(1.0)],
            "label fractions evaluated: 0.5, 1; none &le; 0.1, where pretraining is meant to help",
        ),
        (
            [_headline_row(0.1, model=""), _headline_row(1.0, model="")],
            "LCM was not evaluated (the task's models are baselines only)",
        ),
        ([_headline_row(0.1, baseline="")], "no baseline"),
    ],
)
def test_a_task_without_a_low_label_verdict_says_why(rows: list[dict], reason: str) -> None:
    frame = pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
    frame.loc[frame["label_fraction"] <= 0.1, "verdict"] = "not evaluated"
    (sentence,) = science_statements(frame, {"dx": None})
    assert reason in sentence and "continuous" not in sentence
    assert "0.5, 1" in sentence if rows[0]["label_fraction"] == 0.5 else True


def test_a_difference_without_interval_for_too_few_subjects_is_quoted_as_such() -> None:
    """Fewer than 3 test subjects of a class: the headline keeps the observed difference with
    its own verdict; the sentence quotes it with no interval and p n/a (it read 'p = nan')."""
    row = _headline_row(0.1) | {"difference": 0.25, "verdict": "too few test subjects per class"}
    frame = pd.DataFrame([row], columns=list(HEADLINE_COLUMNS))
    (sentence,) = science_statements(frame, {"dx": None})
    assert "difference +0.250, no interval (p = n/a)" in sentence
    assert "<b>too few test subjects per class</b>" in sentence and "nan" not in sentence
    assert "does <b>not</b> beat every baseline" in sentence


def test_a_task_run_above_low_labels_is_compared_at_its_lowest_fraction() -> None:
    """A small cohort run at 0.5 and 1.0 only: the headline sentence read "LCM was not compared
    with a baseline" while headline.tsv held a verdict ("worse") at both fractions."""
    rows = [
        _headline_row(f) | {"difference": -0.1, "p_value": 0.01, "verdict": "worse"}
        for f in (0.5, 1.0)
    ]
    frame = pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
    (sentence,) = science_statements(frame, {"dx": None})
    assert "does <b>not</b> beat every baseline at 0.5 of the labels" in sentence
    assert "the lowest label fraction evaluated" in sentence and "not compared" not in sentence
    assert "at 0.5 of the labels lcm" in sentence and "with every label" not in sentence


def _gain_row(task: str, fraction: float, d: float, low: float, high: float) -> dict:
    verdict = "gain" if low > 0 else "loss" if high < 0 else "no clear difference"
    return {
        "task": task,
        "label_fraction": fraction,
        "contrast": "pretraining gain",
        "model_a": "lcm",
        "model_b": "lcm-scratch",
        "metric": "auc",
        "difference": d,
        "ci_low": low,
        "ci_high": high,
        "p_value": 0.01,
        "n": 10,
        "verdict": verdict,
    }


@pytest.mark.parametrize(
    ("rows", "said", "unsaid"),
    [
        # A gain at 0.05; a larger difference at 0.1 whose interval holds 0: quote the gain.
        (
            [(0.05, 0.03, 0.01, 0.05), (0.1, 0.06, -0.04, 0.16)],
            [
                "<b>Pretraining helped</b>",
                "autism +0.030 [+0.010, +0.050] at 0.05 (no clear difference at 0.1)",
                "A gain in 1 of the 2 comparisons",
            ],
            ["+0.060", "mixed"],
        ),
        # A loss at 0.05 behind a favourable (non-significant) row at 0.1: the loss is said.
        (
            [(0.05, -0.10, -0.15, -0.05), (0.1, 0.01, -0.05, 0.07)],
            ["<b>Pretraining did not help</b>", "<b>hurt</b> on autism -0.100 [-0.150, -0.050]"],
            ["+0.010"],
        ),
        # A gain at one fraction and a loss at another: mixed, the loss first.
        (
            [(0.05, 0.02, 0.01, 0.03), (0.1, -0.08, -0.12, -0.04)],
            ["<b>Pretraining's effect was mixed</b>", "hurt</b> on autism -0.080"],
            ["<b>Pretraining helped</b>"],
        ),
    ],
)
def test_first_sentence_quotes_the_rows_its_verdict_rests_on(rows, said, unsaid):
    table = pd.DataFrame([_gain_row("autism", *r) for r in rows])
    sentence = pretraining_verdict(table, {"autism": 0.7})
    assert all(s in sentence for s in said), sentence
    assert not any(s in sentence for s in unsaid), sentence
    if "mixed" in said[0]:
        assert sentence.index("-0.080") < sentence.index("+0.020 [+0.010, +0.030] at 0.05")


def test_first_sentence_when_only_the_null_cohort_gains_lists_no_empty_task():
    table = pd.DataFrame([_gain_row("autismnull", 0.1, 0.05, 0.01, 0.09)])
    sentence = pretraining_verdict(table, {"autismnull": 0.0})
    assert "): ." not in sentence and ": ." not in sentence
    assert "null cohort(s) only" in sentence and "autismnull +0.050" in sentence
    assert "suspicion" in sentence and 'class="warn"' in sentence


def _summary(models: dict[str, tuple[float, ...]], task: str = "autism") -> pd.DataFrame:
    rows = [(task, m, f, "auc") for m, fractions in models.items() for f in fractions]
    return pd.DataFrame(rows, columns=["task", "model", "label_fraction", "metric"])


@pytest.mark.parametrize(
    ("contrasts", "summary", "reason"),
    [
        # lcm-scratch not evaluated: no contrast at all (the report passed None).
        (
            None,
            _summary({"lcm": (0.1, 1.0), "logreg": (0.1, 1.0)}),
            "lcm-scratch (the same transformer trained from scratch) was not evaluated",
        ),
        # A regression-only run whose models hold no LCM.
        (
            None,
            _summary({"ridge": (0.1,), "cpm": (0.1,)}, task="age"),
            "neither lcm nor lcm-scratch",
        ),
        # Both ablations, no label fraction <= 0.1, and no interval at the lowest, 0.5 (read
        # there instead when it has one).
        (
            pd.DataFrame(
                [{**_gain_row("autism", 0.5, 0.02, -0.01, 0.05), "verdict": "not evaluated"}]
            ),
            _summary({"lcm": (0.5, 1.0), "lcm-scratch": (0.5, 1.0)}),
            "no label fraction &le; 0.1 was evaluated with both lcm and lcm-scratch "
            "(label fractions: 0.5, 1), and at the lowest, 0.5: too few paired fits",
        ),
    ],
)
def test_first_sentence_says_the_gain_was_not_measured_and_why(contrasts, summary, reason):
    sentence = pretraining_verdict(contrasts, {}, summary=summary)
    assert sentence.startswith('<p class="warn" id="verdict">'), sentence
    assert "<b>The pretraining gain was not measured</b>" in sentence and reason in sentence
    assert str(summary["task"].iloc[0]) in sentence


@pytest.mark.parametrize(
    ("summary", "contrasts", "where"),
    [
        # Baselines only, at 1.0: measured at no fraction, so no "at <= 0.1" either.
        (_summary({"logreg": (1.0,), "ridge": (1.0,)}), None, False),
        # Both ablations at 0.1 without an interval: not measured *there*.
        (
            _summary({"lcm": (0.1,), "lcm-scratch": (0.1,)}),
            pd.DataFrame(
                [{**_gain_row("autism", 0.1, 0.02, -0.01, 0.05), "verdict": "not evaluated"}]
            ),
            True,
        ),
    ],
)
def test_an_unmeasured_gain_is_placed_at_few_labels_only_where_it_was_tried(
    summary, contrasts, where
):
    sentence = pretraining_verdict(contrasts, {}, summary=summary)
    assert "<b>The pretraining gain was not measured</b>" in sentence
    # The fraction tried is named with its task's reason, never for the whole sentence.
    assert ("autism: at 0.1 of the labels, too few" in sentence) is where, sentence
    assert "&le; 0.1 of the labels" not in sentence, sentence


def test_first_sentence_names_the_tasks_whose_gain_was_not_measured():
    table = pd.DataFrame([_gain_row("autism", 0.1, 0.05, 0.01, 0.09)])
    summary = pd.concat(
        [
            _summary({"lcm": (0.1,), "lcm-scratch": (0.1,)}),
            _summary({"lcm": (0.1,), "ridge": (0.1,)}, task="age"),
        ]
    )
    sentence = pretraining_verdict(table, {}, summary=summary)
    assert "<b>Pretraining helped</b>" in sentence
    assert "not measured on age: lcm-scratch" in sentence


_ABOVE = (
    "with every label (the lowest label fraction evaluated: none &le; 0.1, where pretraining "
    "is meant to help, was evaluated)"
)


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]], ids=["one-seed", "three-seeds"])
def test_first_sentence_reads_a_task_run_at_full_labels_only_at_that_fraction(seeds):
    """A small cohort run at 1.0 only: a loss measured there reached no sentence ("not
    measured at <= 0.1"), and the one-seed warning was left out with it."""
    table = pd.DataFrame([_gain_row("asd", 1.0, -0.12, -0.2, -0.04)])
    summary = _summary({"lcm": (1.0,), "lcm-scratch": (1.0,)}, task="asd")
    meta = {"asd": {"settings": {"seeds": seeds}}}
    sentence = pretraining_verdict(table, {}, summary=summary, task_meta=meta)
    first = sentence.split(". ", 1)[0]
    # With the one-seed warning the verdict lists its items: the task, then the warning.
    one_seed = len(seeds) == 1
    box = '<div class="warn"' if one_seed else '<p class="warn"'
    assert first.startswith(f'{box} id="verdict"><b>Pretraining did not help</b> ')
    hurt = "on:<ul><li>asd" if one_seed else "on asd"
    assert _ABOVE in first and f"<b>hurt</b> {hurt} -0.120 [-0.200, -0.040] at 1" in first
    assert "not measured" not in sentence
    assert ("<b>Only one split seed was run</b> on asd" in sentence) == (len(seeds) == 1)


def test_first_sentence_keeps_low_fractions_and_names_a_task_read_above_them():
    """Fractions <= 0.1 are read where a task has them (its 1.0 row is not); a task that
    evaluated none is read at its lowest and named with that fraction."""
    table = pd.DataFrame(
        [
            _gain_row("autism", 0.1, 0.05, 0.01, 0.09),
            _gain_row("autism", 1.0, -0.3, -0.4, -0.2),
            _gain_row("asd", 0.5, 0.02, -0.1, 0.14),
            _gain_row("asd", 1.0, -0.2, -0.3, -0.1),
        ]
    )
    sentence = pretraining_verdict(table, {})
    start = '<div class="warn" id="verdict"><b>Pretraining helped</b> at &le; 0.1'
    assert sentence.startswith(start)
    assert (
        "at &le; 0.1 of the labels, and at the lowest label fraction evaluated on asd (0.5), "
        "which evaluated none &le; 0.1 (where pretraining is meant to help)"
    ) in sentence
    # One item per task: autism's gain, then asd's open interval.
    items = re.findall(r"<li>(.*?)</li>", sentence)
    assert items[0] == "autism +0.050 [+0.010, +0.090] at 0.1", items
    assert items[1].startswith(
        "<b>no gain was shown</b> (inconclusive: the interval crosses 0) on asd +0.020 "
        "[-0.100, +0.140] at 0.5"
    ), items
    assert "-0.300" not in sentence and "-0.200" not in sentence


def test_motion_check_is_direction_free_and_names_the_class_that_moves_more():
    """Patients moving less separate the classes as well as patients moving more."""
    subjects = [f"s{i}" for i in range(20)]
    y = np.array([i % 2 for i in range(20)], dtype=float)
    qc = pd.DataFrame(
        {"dataset": "d", "subject": subjects, "included": True, "mean_fd": 0.3 - 0.1 * y}
    )
    predictions = pd.DataFrame({"task": "t", "dataset": "d", "subject": subjects, "y_true": y})
    text = motion_fragment(motion_confound(qc, predictions)["t"])
    assert (
        "label 1 is 0.000" in text
        and "label-0 subjects (controls, for a diagnosis) move more" in text
    )
    assert "included runs" in text and "all runs" not in text
    assert "label-1 subjects (patients, for a diagnosis) move more" in motion_fragment(0.8)


def test_control_fragment_names_each_control_and_judges_none_from_one_fit():
    summary = control_summary()
    text = control_fragment(
        control_table(summary, pd.DataFrame({"task": "t", "y_true": [0.0, 1.0]})), "t"
    )
    assert text.startswith('<div class="warn"><b>Shuffled-label control</b> (fitted on permuted')
    items = {i.split(": ", 1)[0]: i for i in re.findall(r"<li>(.*?)</li>", text)}
    assert set(items) == {
        "shuffled-labels at label fraction 0.1",
        "shuffled-labels at label fraction 1",
        "shuffled-lcm at label fraction 1",
    }
    assert "AUC 0.700" in items["shuffled-lcm at label fraction 1"]
    assert "ABOVE chance" in items["shuffled-lcm at label fraction 1"]
    assert "at chance" in items["shuffled-labels at label fraction 1"]
    one = items["shuffled-labels at label fraction 0.1"]
    assert "too few fits to judge" in one and "ABOVE" not in one


@pytest.mark.parametrize(
    ("fd_auc", "fd_r", "said", "not_said"),
    [
        (
            0.53,
            None,
            "the classes move about alike (the label-1 subjects",
            "subjects (patients, for a diagnosis) move more",
        ),
        (
            0.47,
            None,
            "the classes move about alike (the label-0 subjects",
            "subjects (controls, for a diagnosis) move more",
        ),
        (0.57, None, "label-1 subjects (patients, for a diagnosis) move more", "about alike"),
        (
            None,
            0.019,
            "motion barely follows the target (the subjects with higher",
            "higher targets move more:",
        ),
        (
            None,
            -0.05,
            "motion barely follows the target (the subjects with lower",
            "lower targets move more:",
        ),
        (None, 0.3, "the subjects with higher targets move more: the Pearson r", "barely"),
    ],
)
def test_motion_direction_below_a_small_effect_is_said_to_barely_differ(
    fd_auc: float | None, fd_r: float | None, said: str, not_said: str
) -> None:
    """The demo's age task read "the subjects with higher targets move more" at r = 0.019: a
    direction under a small effect (AUC within 0.06 of 0.5, |r| < 0.1) is no finding."""
    text = motion_fragment(fd_auc, fd_r=fd_r)
    assert said in text and not_said not in text
