"""The report reads a task's kind (binary or continuous) from lcm evaluate's record, not from
the values of ``y_true``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.compare import (
    contrast_table,
    control_table,
    headline_table,
    motion_confound,
    site_table,
)
from lcm.evaluate.kinds import recorded_kinds
from lcm.evaluate.metrics import regression_metrics, summarise
from lcm.evaluate.motion import MOTION_MODEL, motion_scores
from lcm.exceptions import InputDataError

MODELS = ("lcm", "lcm-scratch", "ridge", "shuffled-labels")


def _ordinal_task(n: int = 40, folds: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Regression predictions of an ordinal score whose test subjects all score 0 or 1, their
    fold metrics, and a QC table whose mean FD follows the score."""
    rng = np.random.default_rng(3)
    y = np.array([i % 2 for i in range(n)], dtype=float)
    subjects = [f"s{i:02d}" for i in range(n)]
    fold = (np.arange(n) // 2) % folds
    frames = [
        pd.DataFrame(
            {
                "task": "handedness",
                "model": model,
                "label_fraction": 1.0,
                "seed": 0,
                "fold": fold,
                "dataset": "d",
                "subject": subjects,
                "site": np.where(np.arange(n) < n // 2, "a", "b"),
                "y_true": y,
                "prediction": 0.5 * y + rng.normal(scale=0.5, size=n),
            }
        )
        for model in MODELS
    ]
    predictions = pd.concat(frames, ignore_index=True)
    keys = ["task", "model", "label_fraction", "seed", "fold"]
    metrics = pd.DataFrame(
        [
            {**dict(zip(keys, key, strict=True)), "metric": m, "value": v}
            for key, at in predictions.groupby(keys)
            for m, v in regression_metrics(at["y_true"], at["prediction"]).items()
        ]
    )
    qc = pd.DataFrame(
        {"dataset": "d", "subject": subjects, "included": True, "mean_fd": 0.2 + 0.1 * y}
    )
    return predictions, metrics, qc


RECORDS = {"handedness": {"task": "handedness", "kind": "continuous", "levels": []}}


def test_a_continuous_task_whose_labels_are_0_and_1_is_judged_by_pearson_r():
    """An ordinal score whose test subjects scored 0 or 1 was read as a diagnosis: the headline,
    contrasts, controls and sites looked for an AUC a regression never has."""
    predictions, metrics, _ = _ordinal_task()
    summary = summarise(metrics)
    kinds = recorded_kinds(RECORDS)
    headline = headline_table(summary, predictions, n_boot=50, kinds=kinds)
    assert set(headline["metric"]) == {"pearson_r"}
    assert np.isfinite(headline["model_mean"]).all()
    assert set(contrast_table(metrics, predictions, kinds)["metric"]) == {"pearson_r"}
    assert set(control_table(summary, predictions, RECORDS)["metric"]) == {"pearson_r"}
    assert set(site_table(predictions, kinds=kinds)["metric"]) == {"pearson_r"}


def test_head_motion_alone_is_not_fitted_as_a_classifier_of_a_continuous_task():
    """motion-fd fitted a logistic regression on an ordinal score of 0s and 1s and put AUC rows
    among the task's Pearson r; then a continuous task was not scored at all, and the page said
    nothing of motion though age and motion are often confounded. It is a regression now."""
    predictions, _, qc = _ordinal_task()
    metrics, preds, not_scored = motion_scores(qc, predictions, RECORDS)
    assert not_scored == {}
    assert set(metrics["metric"]) == {"pearson_r", "mae", "r2"}  # no AUC among them
    r = metrics[metrics["metric"] == "pearson_r"]["value"]
    assert len(r) == 4 and (r > 0.99).all()  # FD follows the score exactly here
    # Predictions on the target's scale (a regression), not probabilities of 0/1.
    assert preds["prediction"].min() < 0.05 and preds["prediction"].max() > 0.95
    assert motion_confound(qc, predictions, recorded_kinds(RECORDS)) == {}


def test_tables_without_a_record_keep_the_guess_from_the_labels():
    """A table lcm evaluate did not write has no record: 0/1 labels are still read as binary."""
    predictions, _, qc = _ordinal_task()
    metrics, _, _ = motion_scores(qc, predictions, {})
    assert set(metrics["model"]) == {MOTION_MODEL}
    assert "handedness" in motion_confound(qc, predictions)


def test_a_record_naming_an_unknown_kind_is_refused_naming_the_task():
    with pytest.raises(InputDataError, match="task 'handedness' names kind 'ordinal'"):
        recorded_kinds({"handedness": {"kind": "ordinal"}})
