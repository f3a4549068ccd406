"""SIGTERM before ``lcm pretrain``'s training steps (the cohort's load) is said in the log.

The handler was installed only around the training loop: a SIGTERM during the load (minutes to
hours; a SLURM time limit) ended the job with status 143 and not a line in its log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, pretrain_argv, write_catalogue
from helpers.sigterm import check_sigterm_during_load

pytestmark = pytest.mark.hostile


def test_sigterm_during_the_load_is_logged_and_exits_143(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 12, seed=0)
    out = tmp_path / "pt"
    argv = pretrain_argv(store, catalogue, out, '{"epochs": 1, "batch_size": 8}')
    said = f"loading the cohort of alpha (toy) from {store}"
    check_sigterm_during_load("lcm.store.read.load_cohort", argv, said, out)
