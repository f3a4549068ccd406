"""The history averaged over DDP processes (two gloo processes on this machine)."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from lcm.train.distributed import Distributed, mean_over_ranks

# Each process's share of three epochs' losses. A variable whose labelled rows all fell in a
# dropped last batch has no loss in an epoch: loss_x is absent in epochs 1 and 3 (averaged in
# epoch 2 all the same), loss_y in epoch 3 (a KeyError once).
SHARES = {
    0: [
        {"epoch": 1, "loss_total": 1.0, "loss_y": 1.0, "lr": 0.1},
        {"epoch": 2, "loss_total": 3.0, "loss_x": 2.0, "loss_y": 0.5, "lr": 0.1},
        {"epoch": 3, "loss_total": 5.0, "lr": 0.1},
    ],
    1: [
        {"epoch": 1, "loss_total": 3.0, "loss_y": 2.0, "lr": 0.1},
        {"epoch": 2, "loss_total": 5.0, "loss_x": 4.0, "loss_y": 1.5, "lr": 0.1},
        {"epoch": 3, "loss_total": 9.0, "lr": 0.1},
    ],
}


def _worker(rank: int, folder: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2
    )
    try:
        history = mean_over_ranks(Distributed(rank=rank, world=2), SHARES[rank])
        Path(folder, f"rank{rank}.json").write_text(json.dumps(history))
    finally:
        dist.destroy_process_group()


def test_a_loss_absent_from_some_epochs_is_averaged_where_present(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    expected = [
        {"epoch": 1, "loss_total": 2.0, "loss_y": 1.5, "lr": 0.1},
        {"epoch": 2, "loss_total": 4.0, "loss_x": 3.0, "loss_y": 1.0, "lr": 0.1},
        {"epoch": 3, "loss_total": 7.0, "lr": 0.1},
    ]
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected
