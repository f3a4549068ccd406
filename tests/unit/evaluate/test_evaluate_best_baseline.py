"""Which baseline the headline crowns: a mean over fewer usable fits is not crowned."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_evaluate_compare import _tables

from lcm.evaluate.compare import headline_table
from lcm.evaluate.metrics import summarise
from lcm.report.findings import science_statements


def _svm_on_one_fit() -> tuple[pd.DataFrame, pd.DataFrame]:
    """logreg scored on 6 fits; svm's AUC defined on one fit only, and high there (as cpm's
    Pearson r, its constant predictions leaving 2 of 3 folds without one)."""
    pred, metrics = _tables({"lcm": 3.0, "logreg": 1.0, "svm": 0.8}, n=60)
    svm = (metrics["model"] == "svm") & (metrics["metric"] == "auc")
    first = svm & (metrics["seed"] == 0) & (metrics["fold"] == 0)
    metrics.loc[svm & ~first, "value"] = np.nan
    metrics.loc[first, "value"] = 0.99
    return pred, metrics


def test_a_baseline_scored_on_fewer_fits_is_not_crowned_and_the_page_says_so() -> None:
    pred, metrics = _svm_on_one_fit()
    summary = summarise(metrics)
    svm = summary[(summary["model"] == "svm") & (summary["metric"] == "auc")].iloc[0]
    logreg = summary[(summary["model"] == "logreg") & (summary["metric"] == "auc")].iloc[0]
    assert svm["mean"] > logreg["mean"] and svm["n"] == 1 and logreg["n"] == 6
    row = headline_table(summary, pred, n_boot=100).iloc[0]
    assert row["best_baseline"] == "logreg"
    assert row["baseline_mean"] == logreg["mean"]
    assert row["set_aside"] == "svm: mean 0.990 on 1 of 6 fits"
    said = science_statements(headline_table(summary, pred, n_boot=100), {}, summary=summary)[0]
    assert "Not taken as the best baseline despite a higher mean" in said
    assert "at 0.1 of the labels, svm: mean 0.990 on 1 of 6 fits." in said


def test_equal_fits_keep_the_highest_mean() -> None:
    pred, metrics = _tables({"lcm": 3.0, "logreg": 1.0, "svm": 2.0}, n=60)
    row = headline_table(summarise(metrics), pred, n_boot=100).iloc[0]
    assert row["best_baseline"] == "svm" and row["set_aside"] == ""
