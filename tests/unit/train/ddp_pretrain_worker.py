"""Run by test_train_resume_ddp.py (beside it), alone or under torchrun: pretrain the test cohort.

Usage: ``python ddp_pretrain_worker.py OUT_DIR`` (one process), or
``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_pretrain_worker.py OUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

# Run as a script: put tests/ on the path for the shared helpers, as pytest does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from helpers.model import TINY, make_catalogue, pretrain_cohort

from lcm.train.pretrain import pretrain

# Dropout draws differ between one and two processes; without it the runs must agree.
MODEL = {**TINY, "overrides": {**TINY["overrides"], "dropout": 0.0}}
SETTINGS = {"epochs": 3, "batch_size": 16, "lr": 0.003, "checkpoint_every": 0}

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    pretrain(pretrain_cohort(44), make_catalogue(out), MODEL, SETTINGS, seed=5, out_dir=out / "m")
