"""The pretraining hold-out table (bei_eval.tsv): scored where a variable applies, with n,
chance and a subject bootstrap interval beside each value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lcm.model.targets import NA_LEVEL, QueryLayout, encode_targets
from lcm.train.heldout import COLUMNS, bei_metrics

LEVELS = ("control", "PD", NA_LEVEL)


def _layout() -> QueryLayout:
    return (
        QueryLayout()
        .append("parkinsons", "categorical", LEVELS)
        .append("sex", "binary", ("F", "M"))
    )


def _targets(parkinsons: list[str], sex: list[str | None]) -> dict:
    table = pd.DataFrame({"parkinsons": parkinsons, "sex": sex})
    return encode_targets(table, _layout(), {})


def _case() -> tuple[torch.Tensor, dict, dict, np.ndarray]:
    """40 runs of datasets without the diagnosis (n/a) and 6 of a PPMI-like one (of 2 runs
    each: 3 subjects); sex: 13 F, 24 M (the training majority, F, is the held-out minority)."""
    parkinsons = [NA_LEVEL] * 40 + ["control", "control", "PD", "PD", "PD", "PD"]
    sex: list[str | None] = ["F"] * 13 + ["M"] * 24 + [None] * 9
    held = _targets(parkinsons, sex)
    train = _targets([NA_LEVEL] * 10 + ["control"] * 6 + ["PD"] * 2, ["F"] * 12 + ["M"] * 6)
    out = torch.zeros(46, 5)
    out[:40, 2] = 5.0  # n/a predicted where it holds: 40 'correct' answers that mean nothing
    out[40:, 0] = torch.tensor([3.0, 3.0, 3.0, 3.0, 0.0, 0.0])  # control, but PD for the last
    out[40:, 1] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    out[40:, 2] = 9.0  # n/a ranked first even here: the diagnosis's own levels decide
    out[:, 4] = torch.linspace(-1, 1, 46)  # sex: M more likely further down
    groups = np.array([f"s{i}" for i in range(40)] + ["p1", "p1", "p2", "p2", "p3", "p3"])
    return out, held, train, groups


def test_not_applicable_runs_are_not_scored() -> None:
    out, held, train, _ = _case()
    table = bei_metrics(out, held, train, _layout())
    pd_rows = table[table["variable"] == "parkinsons"].set_index("metric")
    assert set(pd_rows["n"]) == {6}  # not 46: the 40 n/a runs are no answer to score
    # Of the 6 PPMI runs: 2 controls right, 2 of 4 PD right (n/a is never the answer).
    assert pd_rows.loc["accuracy", "model"] == pytest.approx(4 / 6)
    assert pd_rows.loc["balanced_accuracy", "model"] == pytest.approx(0.75)
    assert pd_rows.loc["accuracy", "baseline"] == pytest.approx(2 / 6)  # training: control
    assert pd_rows.loc["accuracy", "chance"] == pytest.approx(4 / 6)  # commonest class here
    assert pd_rows.loc["balanced_accuracy", "chance"] == pytest.approx(0.5)  # 2 levels
    assert "auc" in pd_rows.index  # two levels of its own: an AUC, n/a left out


def test_each_value_has_n_chance_and_a_seeded_subject_interval() -> None:
    out, held, train, groups = _case()
    table = bei_metrics(out, held, train, _layout(), groups, seed=3)
    assert list(table.columns) == COLUMNS
    assert set(table.loc[table["variable"] == "parkinsons", "n_subjects"]) == {3}
    sex = table[table["variable"] == "sex"].set_index("metric")
    assert set(sex["n"]) == {37} and set(sex["n_subjects"]) == {37}  # missing sex: not scored
    assert sex.loc["accuracy", "baseline"] == pytest.approx(13 / 37)  # training majority F
    assert sex.loc["accuracy", "chance"] == pytest.approx(24 / 37)  # what a constant reaches
    assert sex.loc["balanced_accuracy", "baseline"] == 0.5
    assert sex.loc["auc", "chance"] == 0.5
    finite = table.dropna(subset=["ci_low"])
    assert len(finite) == len(table)
    assert (finite["ci_low"] <= finite["model"] + 1e-9).all()
    assert (finite["model"] <= finite["ci_high"] + 1e-9).all()
    again = bei_metrics(out, held, train, _layout(), groups, seed=3)
    pd.testing.assert_frame_equal(table, again)


def test_balanced_accuracy_chance_counts_the_classes_present() -> None:
    """2 of 3 levels among the held-out runs: a constant guess scores 1/2, not 1/3."""
    layout = QueryLayout().append("site", "categorical", ("a", "b", "c"))
    held = encode_targets(pd.DataFrame({"site": ["a"] * 3 + ["b"] * 5}), layout, {})
    train = encode_targets(pd.DataFrame({"site": ["a", "b", "c", "c"]}), layout, {})
    out = torch.zeros(8, 3)
    out[:, 2] = 1.0  # always "c": the training majority, absent from the hold-out
    table = bei_metrics(out, held, train, layout).set_index("metric")
    assert table.loc["balanced_accuracy", "chance"] == pytest.approx(0.5)
    out[:, 0] = 2.0  # always "a": a constant guess, and it scores chance exactly
    table = bei_metrics(out, held, train, layout).set_index("metric")
    assert table.loc["balanced_accuracy", "model"] == pytest.approx(0.5)
