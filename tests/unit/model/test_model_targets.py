"""Query layout from the catalogue, target encoding and pseudo-label filling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.model import make_catalogue, make_cohort

from lcm.exceptions import CheckpointError, InputDataError
from lcm.model.targets import (
    QueryLayout,
    encode_targets,
    fill_missing,
    fit_standardisation,
    layout_from_catalogue,
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


def test_inconsistent_layout_is_a_checkpoint_error() -> None:
    items = [{"name": "a", "kind": "continuous", "levels": [], "start": 1}]
    with pytest.raises(CheckpointError, match="group 'a' starts at 1, expected 0"):
        QueryLayout.from_list(items)
