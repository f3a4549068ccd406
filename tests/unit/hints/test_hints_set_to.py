"""One spelling of a fix that sets a setting (:func:`lcm.hints.set_to`), for the imaging side
(a dataset's settings, :mod:`lcm.bids.dataset`) and the evaluation side
(:mod:`lcm.evaluate.splits`), which had a copy each."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.bids.dataset import turned_off
from lcm.hints import is_option, set_to


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # An option, as typed on the command line: the value as it is.
        ("--task", "motor", "--task motor"),
        ("lcm ingest --entry", "roi_timeseries", "lcm ingest --entry roi_timeseries"),
        ("--derivatives", Path("/data/fmriprep"), "--derivatives /data/fmriprep"),
        # A key inside a JSON option: the value as JSON.
        ("--settings' split", "subject", '--settings\' split to "subject"'),
        ("--settings' label_fractions", [1.0], "--settings' label_fractions to [1.0]"),
        ("--select's space.include", Path("MNI"), '--select\'s space.include to "MNI"'),
        # A config key: a string or path as it is, another value as JSON (YAML reads both).
        ("datasets.d.task", "motor", "datasets.d.task: motor"),
        (
            "datasets.d.derivatives",
            Path("/data/fmriprep"),
            "datasets.d.derivatives: /data/fmriprep",
        ),
        ("evaluate.label_fractions", [1.0], "evaluate.label_fractions: [1.0]"),
        ("ingest.select.d.space.include", ["MNI"], 'ingest.select.d.space.include: ["MNI"]'),
        ("ingest.validate", False, "ingest.validate: false"),
    ],
)
def test_set_to_writes_the_value_as_the_user_gives_that_setting(
    name: str, value: object, expected: str
) -> None:
    assert set_to(name, value) == expected


def test_an_option_is_told_from_a_config_key_and_a_key_inside_a_json_option() -> None:
    assert is_option("--task") and is_option("lcm ingest --select")
    assert not is_option("datasets.d.task") and not is_option("--settings' split")


def test_the_dataset_side_turns_a_setting_off_with_it() -> None:
    assert turned_off("ingest.validate") == "set ingest.validate: false"
    assert turned_off("--no-validate") == "pass --no-validate"
