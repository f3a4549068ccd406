"""A task's label from the catalogue: the error says what is wrong with the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import write_catalogue

from lcm.catalogue import Catalogue, Variable
from lcm.cli import main, setup_logging
from lcm.evaluate.tasks import TASK_OPTION_NAMES, task_from_catalogue
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


def test_the_fixes_name_the_task_not_a_placeholder() -> None:
    """A label missing from the catalogue was hinted "Set tasks.<name>.label": the task's name
    is known, so its key is named filled in."""
    with pytest.raises(ConfigError, match=r"label 'dxx' is not in the variable catalogue") as info:
        task_from_catalogue("asd", "dxx", "ASD", _catalogue())
    assert info.value.hint == (
        "Set tasks.asd.label to a binary or continuous variable of the catalogue."
    )


@pytest.mark.parametrize(
    ("label", "positive", "said"),
    [
        ("dxx", "ASD", "Set --label to a binary or continuous variable of the catalogue."),
        ("dx", "ADHD", "Set --positive to one of ['TD', 'ASD']."),
    ],
)
def test_a_command_line_user_is_told_the_options(label: str, positive: str, said: str) -> None:
    """``lcm evaluate`` and ``lcm splits --task`` pass their options' names: a user who typed
    --label was told to set tasks.<name>.label in a config they never wrote."""
    with pytest.raises(ConfigError) as info:
        task_from_catalogue("asd", label, positive, _catalogue(), TASK_OPTION_NAMES)
    assert info.value.hint == said
    assert "tasks." not in str(info.value) + info.value.hint


@pytest.mark.parametrize(
    ("rule", "fix"),
    [
        ([], "Set --label to a binary or continuous variable of the catalogue."),
        (["--rule", "evaluate"], "Set tasks.asd.label to a binary or continuous variable"),
    ],
)
def test_lcm_evaluate_names_the_label_as_its_user_gave_it(
    tmp_path: Path, rule: list[str], fix: str
) -> None:
    """The verb run by hand says --label; run by the workflow's evaluate rule, the config key of
    its task."""
    log = tmp_path / "evaluate.log"
    argv = [*rule, "evaluate", "--store", str(tmp_path / "store"), "--atlas", "toy"]
    argv += ["--catalogue", str(write_catalogue(tmp_path)), "--task", "asd", "--dataset", "alpha"]
    argv += ["--label", "dxx", "--positive", "patient", "--settings", '{"models": ["logreg"]}']
    argv += ["--out", str(tmp_path / "m.parquet"), "--predictions", str(tmp_path / "p.parquet")]
    try:
        assert main(["--log-file", str(log), *argv]) != 0
    finally:
        setup_logging()
    text = log.read_text()
    assert "label 'dxx' is not in the variable catalogue" in text, text
    assert fix in text, text
