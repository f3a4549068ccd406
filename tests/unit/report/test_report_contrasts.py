"""LCM against its ablations in the report: intervals with training variance, the first sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.compare import (
    HEADLINE_COLUMNS,
    contrast_table,
    corrected_t_interval,
    motion_confound,
)
from lcm.report.findings import (
    contrast_section,
    motion_fragment,
    pretraining_verdict,
    science_statements,
)


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
    assert "lcm-ssl" not in set(table["model_b"])  # not evaluated: not listed
    sentence = pretraining_verdict(table, {"autism": 0.7, "autismnull": 0.0})
    assert "Pretraining did not help" in sentence
    assert "autism -0.09" in sentence
    section = contrast_section(table, lambda f: f.to_html())
    assert "Nadeau" in section and "pretraining gain (lcm − lcm-scratch)" in section


def test_first_sentence_when_pretraining_helps_and_the_null_stays_flat():
    metrics, predictions = _metrics(gain=0.1, null_gain=0.0)
    sentence = pretraining_verdict(
        contrast_table(metrics, predictions), {"autism": 0.7, "autismnull": 0.0}
    )
    assert sentence.count("Pretraining helped") == 1 and "not</b> help on autismnull" in sentence
    metrics, predictions = _metrics(gain=0.1, null_gain=0.1)
    sentence = pretraining_verdict(
        contrast_table(metrics, predictions), {"autism": 0.7, "autismnull": 0.0}
    )
    assert "suspicion" in sentence


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
    assert "AUC 1.000" in motion_fragment(auc["autism"])
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
        ([_headline_row(0.5), _headline_row(1.0)], "no label fraction &le; 0.1 was evaluated"),
        ([_headline_row(0.1, model=""), _headline_row(1.0, model="")], "no LCM model"),
        ([_headline_row(0.1, baseline="")], "no baseline"),
    ],
)
def test_a_task_without_a_low_label_verdict_says_why(rows: list[dict], reason: str) -> None:
    frame = pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))
    frame.loc[frame["label_fraction"] <= 0.1, "verdict"] = "not evaluated"
    (sentence,) = science_statements(frame, {"dx": None})
    assert reason in sentence and "continuous" not in sentence
    assert "0.5, 1" in sentence if rows[0]["label_fraction"] == 0.5 else True
