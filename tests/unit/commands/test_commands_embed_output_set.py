"""``lcm embed``'s two tables and their provenance records are all this run's or all the last
run's after a failure.

The records were written after the tables' set: a full disk (or a SIGTERM) at one left this
run's tables beside the last run's records, which ``lcm provenance verify`` failed on, or a
first run's tables without records, refused on the rerun as files LCM did not write.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import pretrained_store
from helpers.output_set import VerbSet, check_full_disk_at, check_sigterm_at_record, with_records

from lcm.cli import main

TABLES = ("embeddings.parquet", "attention.parquet")
SET = with_records(TABLES)

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def embed(tmp_path_factory: pytest.TempPathFactory) -> VerbSet:
    """``lcm embed`` of a checkpoint pretrained on alpha: of alpha, then (more runs, so that
    this run's tables and records differ from the last run's) of alpha and beta."""
    store, catalogue, pre = pretrained_store(tmp_path_factory.mktemp("embed-set"), 20, 12)

    def run(out: Path, *datasets: str) -> int:
        argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--atlas", "toy"]
        argv += ["--catalogue", str(catalogue), "--datasets", *datasets]
        return main([*argv, "--out", str(out / TABLES[0]), "--attention-out", str(out / TABLES[1])])

    return VerbSet(
        "embed", SET, lambda out: run(out, "alpha"), lambda out: run(out, "alpha", "beta")
    )


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    embed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    check_full_disk_at(embed, tmp_path / "embeddings", failing, monkeypatch, capfd)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    embed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """No handler was installed: a SIGTERM at a record ended the job at once, this run's
    tables beside the last run's records. It exits 143 through the set now."""
    check_sigterm_at_record(embed, tmp_path / "embeddings", "attention.json", monkeypatch, capfd)
