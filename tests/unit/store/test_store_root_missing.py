"""A ``--store`` root that is missing (or a file) is named as such, not as a dataset missing.

A mistyped ``--store`` read as "Feature store has no connectomes for 'alpha'", whose hint
(run ``lcm store`` for the dataset) sent users to rebuild a store that exists elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, pretrain_argv, write_catalogue

from lcm.cli import main
from lcm.exceptions import InputDataError


def _store(tmp_path: Path, kind: str) -> Path:
    store = tmp_path / "my store"
    if kind == "a file":
        store.write_text("not a store\n")
    return store


@pytest.mark.parametrize(
    ("kind", "said"), [("missing", "not found"), ("a file", "is a file, not a folder")]
)
@pytest.mark.parametrize("verb", ["pretrain", "splits"])
def test_a_store_root_that_is_not_a_folder_is_named(
    tmp_path: Path, kind: str, said: str, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path, kind)
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    if verb == "pretrain":
        argv = pretrain_argv(store, catalogue, tmp_path / "model", '{"epochs": 1}')
    else:
        argv = ["splits", "--store", str(store), "--atlas", "toy", "--datasets", "alpha"]
        argv += ["--out", str(tmp_path / "splits.tsv")]
    capsys.readouterr()
    assert main(argv) == InputDataError.exit_code
    err = capsys.readouterr().err
    assert f"Feature store {said}: {store}" in err, err
    assert "run `lcm store` first" in err, err
    assert "no connectomes" not in err, err
    assert "Traceback" not in err, err
    # Nothing made where the store was expected.
    assert store.exists() == (kind == "a file")
    assert not (tmp_path / "splits.tsv").exists()
