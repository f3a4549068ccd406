"""Run by test_train_resume_ddp.py (beside it), alone or under torchrun: pretrain the test cohort.

Usage: ``python ddp_pretrain_worker.py OUT_DIR`` (one process), or
``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_pretrain_worker.py OUT``.
Options (for exact resumption): ``--runs N`` (cohort size), ``--dropout P``, ``--every K``
(save the training state every K steps) and ``--kill-at C`` (every process exits with status 3
in its C-th forward pass, as a job killed mid-step). ``--slow-writing S`` makes rank 0 take S
seconds more over its writing after training, and ``--group-timeout S`` gives the process group
a timeout of S seconds (instead of lcm's), as a cohort whose ridge maps take longer than NCCL's.
``--rng-out`` saves torch's random state at each process's first forward pass, the one its
dropout draws from, as ``OUT_DIR/rng-<rank>.pt``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch

# Run as a script: put tests/ on the path for the shared helpers, as pytest does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from helpers.model import TINY, make_catalogue, pretrain_cohort

from lcm.train import objective
from lcm.train import pretrain as pretrain_module
from lcm.train.pretrain import pretrain

SETTINGS = {"epochs": 3, "batch_size": 16, "lr": 0.003, "checkpoint_every": 0}
KILLED = 3  # exit status of a process killed by --kill-at


def _die_in_forward(call: int) -> None:
    original, calls = objective.PretrainObjective.forward, []

    def dying(self, fc, shard):
        calls.append(1)
        if len(calls) == call:
            os._exit(KILLED)
        return original(self, fc, shard)

    objective.PretrainObjective.forward = dying


def _save_first_rng(folder: Path) -> None:
    original, calls = objective.PretrainObjective.forward, []

    def saving(self, fc, shard):
        if not calls:
            torch.save(torch.get_rng_state(), folder / f"rng-{os.environ.get('RANK', '0')}.pt")
        calls.append(1)
        return original(self, fc, shard)

    objective.PretrainObjective.forward = saving


def _slow_writing(seconds: float) -> None:
    original = pretrain_module.save_checkpoint  # rank 0's, after training

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    pretrain_module.save_checkpoint = slow


def _group_timeout(seconds: float) -> None:
    import torch.distributed as dist

    original = dist.init_process_group

    @functools.wraps(original)
    def short(*args, **kwargs):
        return original(*args, **{**kwargs, "timeout": timedelta(seconds=seconds)})

    dist.init_process_group = short


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=44)
    # Dropout draws differ between one and two processes; without it the runs must agree.
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--every", type=int, default=0)
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--slow-writing", type=float, default=0.0)
    parser.add_argument("--group-timeout", type=float, default=0.0)
    parser.add_argument("--rng-out", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")  # tests read it
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kill_at:
        _die_in_forward(args.kill_at)
    if args.rng_out:
        _save_first_rng(args.out)
    if args.slow_writing:
        _slow_writing(args.slow_writing)
    if args.group_timeout:
        _group_timeout(args.group_timeout)
    model = {**TINY, "overrides": {**TINY["overrides"], "dropout": args.dropout}}
    settings = {**SETTINGS, "checkpoint_every": args.every}
    cohort, catalogue = pretrain_cohort(args.runs), make_catalogue(args.out)
    pretrain(cohort, catalogue, model, settings, seed=5, out_dir=args.out / "m")
