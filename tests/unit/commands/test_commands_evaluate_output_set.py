"""``lcm evaluate``'s two tables and their provenance records are all this run's or all the
last run's after a failure.

The records were written after the tables' set: a full disk (or a SIGTERM) at one left this
run's tables beside the last run's records, which ``lcm provenance verify`` failed on, or a
first run's tables without records, refused on the rerun as files LCM did not write.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, write_catalogue
from helpers.output_set import (
    assert_last_runs_set,
    full_disk_at,
    output_files,
    sigterm_at_record,
)

from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.io.provenance import provenance_path

TABLES = ("metrics.parquet", "predictions.parquet")
# The set, in the order it is written: the tables, then their records.
RECORDS = tuple(provenance_path(Path(name)).name for name in TABLES)
SET = (*TABLES, *RECORDS)
SETTINGS = {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}

pytestmark = pytest.mark.hostile


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store of one labelled dataset and its catalogue."""
    root = tmp_path_factory.mktemp("evaluate-set")
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    add_store_dataset(root, root / "store", catalogue, "beta", "toy", 24, seed=1)
    return root / "store", catalogue


def _evaluate(store: tuple[Path, Path], out: Path, seed: int) -> int:
    root, catalogue = store
    argv = ["evaluate", "--store", str(root), "--atlas", "toy", "--catalogue", str(catalogue)]
    argv += ["--task", "dx", "--dataset", "beta", "--label", "dx", "--positive", "patient"]
    argv += ["--settings", json.dumps(SETTINGS), "--seed", str(seed), "--threads", "1"]
    return main([*argv, "--out", str(out / TABLES[0]), "--predictions", str(out / TABLES[1])])


@pytest.mark.parametrize("failing", SET[1:])
def test_a_full_disk_between_two_files_leaves_the_last_runs_set(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd, failing
) -> None:
    out = tmp_path / "metrics"
    assert _evaluate(store, out, seed=1) == 0
    before = output_files(out)
    assert set(SET) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    # Another seed: this run's tables (and records) differ from the last run's.
    code = _evaluate(store, out, seed=2)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, SET, failing)


def test_a_sigterm_at_a_record_leaves_the_last_runs_set(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """The handler at the writes exited 143 through the set, but the records came after it:
    this run's tables were left beside the last run's records."""
    out = tmp_path / "metrics"
    assert _evaluate(store, out, seed=1) == 0
    before = output_files(out)
    capfd.readouterr()
    with sigterm_at_record(monkeypatch, RECORDS[1]), pytest.raises(SystemExit) as stopped:
        _evaluate(store, out, seed=2)
    err = capfd.readouterr().err
    assert stopped.value.code == 128 + signal.SIGTERM, err
    assert output_files(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert "lcm evaluate: stopped by SIGTERM while writing its outputs" in err, err
    assert f"the earlier run's {', '.join(SET)} put back as they were" in err, err
