"""``lcm ingest`` on a dataset path that does not exist: the dataset, its entry and the key.

It said "BIDS folder not found" for an ROI dataset too, with the hint
``datasets.<name>.path`` left unfilled. (The workflow refuses such a config before any job:
tests/workflow/test_workflow_config_errors.py; a job meets it when the path goes missing later.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.cli import main, setup_logging
from lcm.io import paths


@pytest.mark.parametrize("entry", ["roi_timeseries", "bids", "connectome"])
def test_ingest_names_the_dataset_its_entry_and_the_key(tmp_path: Path, entry: str) -> None:
    log = tmp_path / "ingest.log"
    out = paths.ingest_manifest(str(tmp_path / "results"), "ds")
    argv = ["--log-file", str(log), "ingest", "--dataset", "ds", "--entry", entry]
    argv += ["--path", str(tmp_path / "nope"), "--out", str(out)]
    try:
        assert main(argv) == 3
    finally:
        setup_logging()
    text = log.read_text()
    assert f"Dataset 'ds' (entry '{entry}'): {tmp_path / 'nope'} does not exist" in text, text
    assert "hint: Check datasets.ds.path in the config." in text
    assert "BIDS folder" not in text and "<name>" not in text


def test_ingest_names_the_derivatives_key_of_a_dataset_entering_as_them(tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    (tmp_path / "raw").mkdir()
    out = paths.ingest_manifest(str(tmp_path / "results"), "ds")
    argv = ["--log-file", str(log), "ingest", "--dataset", "ds", "--entry", "fmriprep"]
    argv += ["--path", str(tmp_path / "raw"), "--derivatives", str(tmp_path / "nope")]
    try:
        assert main([*argv, "--out", str(out)]) == 3
    finally:
        setup_logging()
    text = log.read_text()
    assert f"Dataset 'ds' (entry 'fmriprep'): {tmp_path / 'nope'} does not exist" in text, text
    assert "hint: Check datasets.ds.derivatives in the config." in text
