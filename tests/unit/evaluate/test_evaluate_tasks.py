"""A task's label from the catalogue: the error says what is wrong with the variable."""

from __future__ import annotations

import pytest

from lcm.catalogue import Catalogue, Variable
from lcm.evaluate.tasks import task_from_catalogue
from lcm.exceptions import ConfigError


def _catalogue() -> Catalogue:
    return Catalogue(
        variables={
            "dx3": Variable("dx3", "categorical", "clinical", levels=("TD", "ASD", "ADHD")),
            "dx": Variable("dx", "binary", "clinical", levels=("TD", "ASD")),
        },
        datasets={},
        path="variables.yaml",
    )


def test_a_categorical_label_is_named_as_such_not_sent_to_its_positive_level() -> None:
    """[TD, ASD, ADHD] with positive ASD said "must be binary with 'ASD' among its levels" and
    hinted "set positive to one of [TD, ASD, ADHD]": ASD is one, and no level would do."""
    with pytest.raises(ConfigError) as info:
        task_from_catalogue("asd3", "dx3", "ASD", _catalogue())
    message, hint = str(info.value), info.value.hint
    assert "'dx3' is categorical with 3 levels ['TD', 'ASD', 'ADHD']" in message
    assert "a task needs a binary variable (two levels)" in message
    assert "'ASD' among its levels" not in message
    assert "positive" not in hint and "tasks.asd3.label" in hint
    assert "merges the levels into two or marks the others missing" in hint


def test_a_binary_label_without_the_positive_level_hints_at_its_levels() -> None:
    with pytest.raises(ConfigError, match=r"must be binary with 'ADHD' among its levels") as info:
        task_from_catalogue("adhd", "dx", "ADHD", _catalogue())
    assert info.value.hint == "Set tasks.adhd.positive to one of ['TD', 'ASD']."
    assert task_from_catalogue("asd", "dx", "ASD", _catalogue()).levels == ("TD", "ASD")
