"""``lcm ingest`` on a dataset path that does not exist: the dataset, its entry and the key.

It said "BIDS folder not found" for an ROI dataset too, with the hint
``datasets.<name>.path`` left unfilled; and then named that key to a command-line user, who
gave ``--path`` (the key is named when a workflow rule runs it, ``lcm --rule``). (The
workflow refuses such a config before any job: tests/workflow/test_workflow_config_errors.py;
a job meets it when the path goes missing later.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.cli import main, setup_logging
from lcm.io import paths

# How each run names the setting: lcm ingest's option, or the config key a workflow rule's
# options were built from.
RULE = {"command_line": ([], "--path"), "rule": (["--rule", "ingest"], "datasets.ds.path")}


@pytest.mark.parametrize("entry", ["roi_timeseries", "bids", "connectome"])
@pytest.mark.parametrize("how", sorted(RULE))
def test_ingest_names_the_dataset_its_entry_and_the_setting_given(
    tmp_path: Path, entry: str, how: str
) -> None:
    log = tmp_path / "ingest.log"
    out = paths.ingest_manifest(str(tmp_path / "results"), "ds")
    rule, key = RULE[how]
    argv = ["--log-file", str(log), *rule, "ingest", "--dataset", "ds", "--entry", entry]
    argv += ["--path", str(tmp_path / "nope"), "--out", str(out)]
    try:
        assert main(argv) == 3
    finally:
        setup_logging()
    text = log.read_text()
    assert f"Dataset 'ds' (entry '{entry}'): {tmp_path / 'nope'} does not exist" in text, text
    assert f"hint: Check {key}." in text
    assert "BIDS folder" not in text and "<name>" not in text
    assert how == "rule" or "datasets." not in text, text


@pytest.mark.parametrize(
    ("rule", "key"), [([], "--derivatives"), (["--rule", "ingest"], "datasets.ds.derivatives")]
)
def test_ingest_names_the_derivatives_setting_of_a_dataset_entering_as_them(
    tmp_path: Path, rule: list[str], key: str
) -> None:
    log = tmp_path / "ingest.log"
    (tmp_path / "raw").mkdir()
    out = paths.ingest_manifest(str(tmp_path / "results"), "ds")
    argv = ["--log-file", str(log), *rule, "ingest", "--dataset", "ds", "--entry", "fmriprep"]
    argv += ["--path", str(tmp_path / "raw"), "--derivatives", str(tmp_path / "nope")]
    try:
        assert main([*argv, "--out", str(out)]) == 3
    finally:
        setup_logging()
    text = log.read_text()
    assert f"Dataset 'ds' (entry 'fmriprep'): {tmp_path / 'nope'} does not exist" in text, text
    assert f"hint: Check {key}." in text
