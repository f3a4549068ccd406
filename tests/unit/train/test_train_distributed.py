"""Process group set-up and teardown (lcm.train.distributed), without a second process."""

from __future__ import annotations

import torch

from lcm.train import distributed


def test_the_process_group_gets_lcms_timeout_not_the_backends_default(monkeypatch) -> None:
    # NCCL's default (10 minutes) is shorter than rank 0's held-out evaluation and state saving
    # on a slow file system while the other ranks wait in the next step's all-reduce.
    calls = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: calls.append(k))
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    ctx = distributed.setup(torch.device("cpu"))
    assert (ctx.rank, ctx.world, ctx.local_rank) == (1, 2, 1)
    assert calls == [{"timeout": distributed.PROCESS_GROUP_TIMEOUT}]
    assert distributed.PROCESS_GROUP_TIMEOUT.total_seconds() >= 30 * 60
