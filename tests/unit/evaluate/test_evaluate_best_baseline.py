"""Which baseline the headline crowns: a mean over fewer usable fits is not crowned."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_evaluate_compare import _tables

from lcm.evaluate.compare import fits_run, headline_table
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


def test_a_seed_free_baseline_on_every_fold_it_ran_competes() -> None:
    """A model that ignores its seed runs one fit per fold where the others run one per seed
    and fold (a site split at fraction 1): all 3 of its fits usable, it is not 'fewer fits'
    (counted by fits alone, 3 of 6, it was set aside behind a weaker logreg)."""
    pred, metrics = _tables({"lcm": 3.0, "logreg": 1.0, "svm": 2.0}, n=60)
    # svm's fits at seed 1 were never run: its predictions and metrics are seed 0's only.
    pred = pred[(pred["model"] != "svm") | (pred["seed"] == 0)]
    metrics = metrics[(metrics["model"] != "svm") | (metrics["seed"] == 0)]
    summary = summarise(metrics)
    auc = summary[summary["metric"] == "auc"].set_index("model")
    assert auc.loc["svm", "n"] == 3 and auc.loc["logreg", "n"] == 6
    assert auc.loc["svm", "mean"] > auc.loc["logreg", "mean"]
    row = headline_table(summary, pred, n_boot=100).iloc[0]
    assert row["best_baseline"] == "svm" and row["set_aside"] == "", row.to_dict()


def test_fits_run_counts_a_fit_without_a_metric() -> None:
    """The share's denominator: cpm's constant predictions have no metric but were a fit."""
    pred, _ = _svm_on_one_fit()
    assert fits_run(pred, "autism", 0.1) == {"lcm": 6, "logreg": 6, "svm": 6}
    assert fits_run(pred, "autism", 0.5) == {}
