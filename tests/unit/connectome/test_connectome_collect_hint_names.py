"""``lcm connectome collect`` of a dataset without a run left: the hint names the fix in the
user's form. It pointed at ``results/ingest/<dataset>/summary.tsv`` (unfilled, and the
workflow's layout) to a command-line user who gave no manifest, and told one who gave it to
drop the dataset from a config they never wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import make_raw_bids

from lcm.cli import main, setup_logging


def _collect(tmp_path: Path, *argv: str) -> str:
    """The log of ``lcm <argv...>``, which must fail for its input."""
    log = tmp_path / "collect.log"
    try:
        assert main(["--log-file", str(log), *argv]) != 0
    finally:
        setup_logging()
    return log.read_text()


def test_no_qc_and_no_manifest_asks_for_the_manifest(tmp_path: Path) -> None:
    text = _collect(tmp_path, "connectome", "collect", "--out", str(tmp_path / "qc.tsv"))
    assert (
        "Pass --manifest, the dataset's manifest from lcm ingest, to name the reasons (the "
        "summary.tsv beside it counts the runs per reason)." in text
    ), text
    assert "<dataset>" not in text


@pytest.mark.parametrize(
    ("rule", "fix"),
    [
        ([], "run lcm ingest again."),
        (["--rule", "connectome_collect"], "rerun, or drop datasets.tiny from the config."),
    ],
)
def test_a_dataset_whose_runs_ingest_all_excluded_is_hinted_as_given(
    tmp_path: Path, rule: list[str], fix: str
) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    manifest = tmp_path / "ingest" / "manifest.parquet"
    select = json.dumps({"participants": {"exclude": ["01"]}})
    ingest = ["ingest", "--dataset", "tiny", "--entry", "bids", "--path", str(root)]
    ingest += ["--no-validate", "--select", select, "--out", str(manifest)]
    try:
        assert main(ingest) == 0
    finally:
        setup_logging()
    argv = [*rule, "connectome", "collect", "--manifest", str(manifest)]
    text = _collect(tmp_path, *argv, "--out", str(tmp_path / "qc.tsv"))
    assert (
        f"{manifest.with_name('summary.tsv')} counts the runs per reason (the manifest gives "
        f"each run's). Fix the files or settings these name and {fix}" in text
    ), text
