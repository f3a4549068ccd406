"""Query layout from the catalogue, target encoding and pseudo-label filling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.model import CATALOGUE, make_catalogue, make_cohort, write_catalogue

from lcm.catalogue import load_catalogue
from lcm.exceptions import CheckpointError, InputDataError
from lcm.model.targets import (
    NA_LEVEL,
    QueryLayout,
    encode_targets,
    fill_missing,
    fit_standardisation,
    layout_from_catalogue,
    subject_moments,
    targets_from_outputs,
)


def test_layout_queries_per_kind(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path)
    layout = layout_from_catalogue(catalogue)
    sizes = {g.name: (g.start, g.size) for g in layout.groups}
    assert sizes == {
        "age": (0, 1),
        "sex": (1, 2),
        "handedness": (3, 4),
        "bmi": (7, 1),
        "dx": (8, 3),
    }
    assert layout.n_queries == 11
    # categorical and clinical groups end with a "not applicable" class; sex keeps two
    assert layout["handedness"].levels == ("left", "right", "mixed", "n/a")
    assert layout["dx"].levels == ("control", "patient", "n/a")
    assert layout["sex"].levels == ("F", "M")
    assert QueryLayout.from_list(layout.to_list()) == layout


def test_layout_skips_unobserved_variables(tmp_path: Path) -> None:
    catalogue = make_catalogue(tmp_path)
    variables = make_cohort(12).variables
    variables["dx"] = None
    variables["bmi"] = 25.0  # constant: nothing to regress
    layout = layout_from_catalogue(catalogue, variables)
    assert layout.names == ["age", "sex", "handedness"]
    grown = layout.append("dx", "binary", ("control", "patient"))
    assert grown["dx"].slice == slice(7, 9)
    with pytest.raises(InputDataError, match="'age' already exists"):
        grown.append("age", "continuous")


def test_layout_says_why_a_variable_gets_no_queries(tmp_path: Path, caplog) -> None:
    """A constant variable, and one its dataset maps but never fills, are warnings apart from
    a variable no training dataset maps (a downstream diagnosis: expected, INFO). The constant
    was shown as 19.999999999992 where lcm store's report said 20."""
    text = CATALOGUE.replace(
        "datasets:", "  iq: {kind: continuous, domain: sociodemographic}\ndatasets:"
    )
    catalogue = load_catalogue(write_catalogue(tmp_path, text))
    cohort = make_cohort(12)
    variables = cohort.variables
    variables["dx"] = None
    variables["bmi"] = 19.999999999992  # 240 months scaled to years
    with caplog.at_level("INFO", logger="lcm.model.targets"):
        layout = layout_from_catalogue(catalogue, variables, cohort.ids["dataset"])
    assert layout.names == ["age", "sex", "handedness"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # Rounded as lcm store's missingness report says it, not as the float's repr.
    assert "bmi: a single value (constant: 20)" in warning
    assert "dx: no value (dataset alpha maps it but every value is missing)" in warning
    assert "iq" not in warning
    (info,) = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert info == "no queries for variables no training dataset maps: ['iq']"


def test_a_level_every_training_subject_shares_gets_no_queries(tmp_path: Path, caplog) -> None:
    """A sex every pretraining subject shared kept its two queries (taught one answer, passed
    on to finetuning and its pseudo-labels). A diagnosis of one level still contrasts with
    the n/a of a dataset that does not define it, as in the official model."""
    catalogue = make_catalogue(tmp_path)
    cohort = make_cohort(12)
    variables, datasets = cohort.variables, cohort.ids["dataset"]
    variables["sex"] = "F"
    variables["dx"] = "control"
    with caplog.at_level("WARNING", logger="lcm.model.targets"):
        layout = layout_from_catalogue(catalogue, variables, datasets)
    assert layout.names == ["age", "handedness", "bmi"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "sex: a single value (constant: 'F')" in warning
    assert "dx: a single value (constant: 'control')" in warning
    # Rows of a dataset without dx: control against n/a is a contrast; sex still is none.
    other = datasets.where(np.arange(len(datasets)) % 2 == 0, "gamma")
    assert layout_from_catalogue(catalogue, variables, other).names == [
        "age",
        "handedness",
        "bmi",
        "dx",
    ]


def test_encode_standardises_and_masks() -> None:
    layout = (
        QueryLayout().append("age", "continuous").append("hand", "categorical", ("l", "r", "m"))
    )
    train = pd.DataFrame({"age": [20.0, 40.0, np.nan]})
    stats = fit_standardisation(train, layout)
    assert stats == {"age": {"mean": 30.0, "std": 10.0}}
    frame = pd.DataFrame({"age": [50.0, np.nan], "hand": pd.Series(["m", None], dtype=object)})
    targets = encode_targets(frame, layout, stats)
    assert targets["age"].values.tolist() == [2.0, 0.0]
    assert targets["age"].present.tolist() == [True, False]
    assert targets["hand"].values.tolist() == [[0, 0, 1], [0, 0, 0]]
    assert targets["hand"].present.tolist() == [True, False]
    # A column the table lacks is missing everywhere.
    assert not encode_targets(frame[["age"]], layout, stats)["hand"].present.any()


def test_unknown_level_is_refused() -> None:
    layout = QueryLayout().append("sex", "binary", ("F", "M"))
    with pytest.raises(InputDataError, match=r"'sex': values \['female'\] are not among"):
        encode_targets(pd.DataFrame({"sex": ["F", "female"]}), layout, {})


def test_pseudo_labels_fill_only_missing() -> None:
    layout = QueryLayout().append("sex", "binary", ("F", "M")).append("age", "continuous")
    own = encode_targets(
        pd.DataFrame({"sex": pd.Series(["M", None], dtype=object), "age": [np.nan, 50.0]}),
        layout,
        {"age": {"mean": 40.0, "std": 10.0}},
    )
    outputs = torch.tensor([[2.0, 0.0, -0.5], [0.0, 0.0, 3.0]])  # [n=2, Q=3]
    pseudo = targets_from_outputs(outputs, layout)
    filled = fill_missing(own, pseudo)
    assert filled["sex"].values[0].tolist() == [0.0, 1.0]  # own label kept
    torch.testing.assert_close(filled["sex"].values[1], torch.tensor([0.5, 0.5]))
    assert filled["age"].values.tolist() == [-0.5, 1.0]  # pseudo, then own
    assert filled["sex"].present.all() and filled["age"].present.all()


def test_pseudo_labels_are_spread_over_the_own_levels_only() -> None:
    """n/a is no value a subject can be missing: its pseudo-probability is exactly 0."""
    layout = QueryLayout().append("hand", "categorical", ("left", "right", NA_LEVEL))
    layout = layout.append("sex", "binary", ("F", "M"))
    outputs = torch.tensor([[0.0, 0.0, 5.0, 1.0, 1.0], [1.0, 0.0, -2.0, 0.0, 2.0]])
    before = outputs.clone()
    pseudo = targets_from_outputs(outputs, layout)
    hand = pseudo["hand"].values
    assert hand[:, 2].tolist() == [0.0, 0.0]
    torch.testing.assert_close(hand[0], torch.tensor([0.5, 0.5, 0.0]))
    torch.testing.assert_close(hand.sum(1), torch.ones(2))
    torch.testing.assert_close(pseudo["sex"].values[0], torch.tensor([0.5, 0.5]))
    assert torch.equal(outputs, before)  # the model's outputs are left as they were
    # A row that is n/a (its dataset lacks the variable) keeps its own target.
    own = encode_targets(
        pd.DataFrame({"hand": pd.Series([None, None], dtype=object), "sex": ["F", "M"]}),
        layout,
        {},
        {"hand": np.array([True, False])},
    )
    filled = fill_missing(own, pseudo)["hand"]
    assert filled.values[0].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(filled.values[1], hand[1])


def test_inconsistent_layout_is_a_checkpoint_error() -> None:
    items = [{"name": "a", "kind": "continuous", "levels": [], "start": 1}]
    with pytest.raises(CheckpointError, match="group 'a' starts at 1, expected 0"):
        QueryLayout.from_list(items)


def test_standardisation_weighs_each_subject_once() -> None:
    layout = QueryLayout().append("age", "continuous")
    # Subject a has three runs at 10, b one at 30: per subject the mean is 20, not 15.
    train = pd.DataFrame({"age": [10.0, 10.0, 10.0, 30.0, np.nan]})
    groups = np.array(["d/a", "d/a", "d/a", "d/b", "d/c"])
    stats = fit_standardisation(train, layout, groups)
    assert stats["age"]["mean"] == pytest.approx(20.0)
    assert stats["age"]["std"] == pytest.approx(10.0)
    # Without groups each row is a subject (the plain moments).
    assert fit_standardisation(train, layout)["age"]["mean"] == pytest.approx(15.0)
    # A subject's rows with different values: their mean and spread count once.
    mean, std = subject_moments(np.array([0.0, 2.0, 4.0]), np.array(["a", "a", "b"]))
    # Weights 1/2, 1/2, 1 around 2.5: deviations -2.5, -0.5, 1.5.
    expected = np.sqrt((0.5 * 6.25 + 0.5 * 0.25 + 2.25) / 2)
    assert mean == pytest.approx(2.5) and std == pytest.approx(expected)
