"""lcm finetune keeps runs without a diagnosis (unlabelled), and its log says so; lcm evaluate
drops them, and its log says that."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lcm.commands.finetune import diagnosis_labels
from lcm.evaluate.tasks import Task, target_values

TASK = Task(name="dx", label="dx", negative="control", positive="patient")


def _variables() -> pd.DataFrame:
    dx = ["control", "patient", None, "patient", None, None]
    return pd.DataFrame({"dx": pd.Series(dx, dtype=object), "age": np.arange(6.0)})


def test_finetune_logs_runs_without_a_diagnosis_as_kept(caplog) -> None:
    with caplog.at_level("INFO", logger="lcm"):
        y = diagnosis_labels(_variables(), TASK)
    assert y.tolist() == [0, 1, -1, 1, -1, -1]  # all six runs, three unlabelled
    assert "task dx: kept 3 run(s) with no 'dx' value as unlabelled" in caplog.text
    assert "dropped" not in caplog.text


def test_evaluate_still_logs_them_as_dropped(caplog) -> None:
    with caplog.at_level("INFO", logger="lcm"):
        present, _ = target_values(_variables(), TASK)
    assert int(present.sum()) == 3
    assert "task dx: dropped 3 run(s) with no 'dx' value" in caplog.text


def test_a_continuous_label_is_refused_with_the_way_on() -> None:
    """The hint said only "Finetuning predicts a two-level diagnosis."."""
    import pytest

    from lcm.catalogue import load_catalogue
    from lcm.commands.finetune import label_levels
    from lcm.exceptions import ConfigError

    path = Path(__file__).parents[3] / "config" / "variables.yaml"
    variable = load_catalogue(path).variables["age"]
    assert variable.kind == "continuous"
    with pytest.raises(ConfigError) as err:
        label_levels(str(path), variable, "30")
    assert str(path) in str(err.value) and "'age' is continuous" in str(err.value)
    hint = err.value.hint
    assert "binary variable" in hint and "--positive" in hint and "lcm evaluate" in hint
