"""``lcm evaluate``'s two tables and their provenance records are all this run's or all the
last run's after a failure.

The records were written after the tables' set: a full disk (or a SIGTERM) at one left this
run's tables beside the last run's records, which ``lcm provenance verify`` failed on, or a
first run's tables without records, refused on the rerun as files LCM did not write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, write_catalogue
from helpers.output_set import VerbSet, check_full_disk_at, check_sigterm_at_record, with_records

from lcm.cli import main

TABLES = ("metrics.parquet", "predictions.parquet")
SET = with_records(TABLES)
SETTINGS = {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def evaluate(tmp_path_factory: pytest.TempPathFactory) -> VerbSet:
    """``lcm evaluate`` on a store of one labelled dataset: seed 1, then (so that this run's
    tables and records differ from the last run's) seed 2."""
    root = tmp_path_factory.mktemp("evaluate-set")
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    add_store_dataset(root, root / "store", catalogue, "beta", "toy", 24, seed=1)

    def run(out: Path, seed: int) -> int:
        argv = ["evaluate", "--store", str(root / "store"), "--atlas", "toy"]
        argv += ["--catalogue", str(catalogue), "--task", "dx", "--dataset", "beta"]
        argv += ["--label", "dx", "--positive", "patient", "--settings", json.dumps(SETTINGS)]
        argv += ["--seed", str(seed), "--threads", "1", "--out", str(out / TABLES[0])]
        return main([*argv, "--predictions", str(out / TABLES[1])])

    return VerbSet("evaluate", SET, lambda out: run(out, 1), lambda out: run(out, 2))


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    evaluate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    check_full_disk_at(evaluate, tmp_path / "metrics", failing, monkeypatch, capfd)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    evaluate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """The handler at the writes exited 143 through the set, but the records came after it:
    this run's tables were left beside the last run's records."""
    check_sigterm_at_record(evaluate, tmp_path / "metrics", "predictions.json", monkeypatch, capfd)
