"""The report gives the shuffled-label control's permutation p beside its at-chance verdict."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.evaluate import TASK, make_cohort
from helpers.report import report_parser

from lcm.commands.evaluate import evaluate_and_write
from lcm.evaluate.protocol import EvaluationSettings
from lcm.report.findings import permutation_clause


@pytest.mark.slow
def test_report_page_gives_the_permutation_p_with_its_count_and_floor(tmp_path, monkeypatch):
    """lcm evaluate then lcm report, run from a folder outside the repository."""
    m = 9
    settings = EvaluationSettings.from_dict(
        {
            "n_folds": 2,
            "seeds": [0],
            "label_fractions": [1.0],
            "models": ["logreg", "shuffled-labels"],
            "control_permutations": m,
        }
    )
    monkeypatch.chdir(tmp_path)
    evaluate_and_write(
        make_cohort(n_subjects=24, n_unlabeled=0, seed=1),
        TASK,
        settings,
        master_seed=3,
        checkpoint=None,
        out="task-autism_metrics.parquet",
        predictions="task-autism_predictions.parquet",
    )
    argv = [
        "report",
        "--metrics", "task-autism_metrics.parquet",
        "--predictions", "task-autism_predictions.parquet",
        "--out-metrics", "out/metrics.parquet",
        "--out-summary", "out/summary.tsv",
        "--out-html", "out/index.html",
        "--n-boot", "200",
    ]  # fmt: skip
    args = report_parser().parse_args(argv)
    assert args.func(args) == 0
    page = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "out/index.html").read_text()))
    control = page[page.index("Shuffled-label control") :].split("\n", 1)[0]
    assert "over 2 folds × 9 permutations" in control, control
    assert "at chance" in control, control
    assert (
        "permutation p = 0.100 for logreg against its 9 permutations (one-sided: logreg's AUC "
        "against each permutation's, pooled over the same fits; with 9 permutations p cannot "
        "go below 1/10 = 0.100)" in control
    ), control


def _row(**kw):
    base = {
        "metric": "auc",
        "permuted_model": "logreg",
        "n_permutations": 20,
        "p_permutation": 0.5,
        "p_min": 1 / 21,
    }
    return SimpleNamespace(**(base | kw))


def test_permutation_clause_says_what_is_missing():
    assert "permutation p = 0.500 for logreg against its 20 permutations" in permutation_clause(
        _row()
    )
    assert "cannot go below 1/21 = 0.048" in permutation_clause(_row())
    one = permutation_clause(_row(permuted_model="lcm", n_permutations=1, p_min=0.5))
    assert "its 1 permutation (" in one and "cannot go below 1/2 = 0.500" in one
    assert "not recorded" in permutation_clause(_row(n_permutations=0))
    missing = permutation_clause(_row(p_permutation=np.nan))
    assert "logreg, the model it permutes, was not evaluated" in missing
