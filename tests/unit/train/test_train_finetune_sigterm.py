"""SIGTERM before ``lcm finetune``'s training steps (the cohort's or the checkpoint's load) is
said in the log, as ``lcm pretrain``'s.

No handler was installed before the training steps: a SIGTERM during a load (a SLURM time
limit) ended the job at once, with not a line in its log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.model import CLI_CATALOGUE, add_store_dataset, finetune_argv, write_catalogue
from helpers.sigterm import check_sigterm_during_load

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("stopped_at", "doing"),
    [
        ("lcm.store.read.load_cohort", "loading the cohort of beta (toy) from {store}"),
        ("lcm.model.checkpoint.load_checkpoint", "loading the checkpoint {checkpoint}"),
    ],
)
def test_sigterm_during_a_load_is_logged_and_exits_143(
    tmp_path: Path, stopped_at: str, doing: str
) -> None:
    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 12, seed=1)
    # Never read: the checkpoint's load is the one stopped, or is not reached.
    checkpoint = tmp_path / "pre"
    out = tmp_path / "ft"
    argv = finetune_argv(store, catalogue, checkpoint, out)
    said = doing.format(store=store, checkpoint=checkpoint)
    check_sigterm_during_load(stopped_at, argv, said, out)
