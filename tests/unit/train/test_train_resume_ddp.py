"""Exact resumption after a kill, and two-process data parallel training equal to one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.model import (
    TINY,
    assert_same_history,
    assert_same_training,
    make_catalogue,
    pretrain_cohort,
)
from safetensors.torch import load_file

from lcm.train import objective
from lcm.train.pretrain import STATE_DIR, pretrain

SETTINGS = {"epochs": 4, "batch_size": 16, "lr": 0.003, "checkpoint_every": 3}
HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path: Path, monkeypatch) -> None:
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(50)
    pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "whole")
    # Kept at the final step once the checkpoint exists (a retry writes the outputs from it).
    assert '"step": 12' in (tmp_path / "whole" / STATE_DIR / "train_state.json").read_text()

    # Kill the second run inside its 8th step (the last state was saved after step 6).
    original, calls = objective.PretrainObjective.forward, []

    def dying_forward(self, fc, shard):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt("killed")
        return original(self, fc, shard)

    monkeypatch.setattr(objective.PretrainObjective, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "resumed")
    state = tmp_path / "resumed" / STATE_DIR
    assert (state / "train_state.json").is_file() and not (tmp_path / "resumed/model.json").exists()
    monkeypatch.setattr(objective.PretrainObjective, "forward", original)

    pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp_path / "resumed")
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "resumed")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)  # bitwise, dropout included
    history = [pd.read_csv(tmp_path / d / "history.tsv", sep="\t") for d in ("whole", "resumed")]
    pd.testing.assert_frame_equal(*history)


def test_state_of_another_run_is_ignored(tmp_path: Path) -> None:
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(30)
    short = {**SETTINGS, "epochs": 1, "checkpoint_every": 1}
    # A stale state (other settings) in the folder must not be resumed.
    state = tmp_path / "out" / STATE_DIR
    state.mkdir(parents=True)
    (state / "train_state.json").write_text('{"format_version": 1, "fingerprint": "other"}')
    (state / "train_state.safetensors").write_bytes(b"")
    pretrain(cohort, catalogue, TINY, short, seed=1, out_dir=tmp_path / "out")
    pretrain(cohort, catalogue, TINY, short, seed=1, out_dir=tmp_path / "fresh")
    a, b = _weights(tmp_path / "out"), _weights(tmp_path / "fresh")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_not_divisible_by_the_world_size_is_refused(tmp_path: Path, monkeypatch) -> None:
    from lcm.exceptions import ConfigError
    from lcm.train import distributed

    # Three processes (as torchrun would describe them) cannot split a batch of 16 evenly.
    monkeypatch.setattr(distributed, "setup", lambda dev: distributed.Distributed(0, 3, 0, dev))
    catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(20)
    with pytest.raises(ConfigError, match="batch_size 16 is not divisible by the 3 data parallel"):
        pretrain(cohort, catalogue, TINY, SETTINGS, seed=1, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_each_process_resumes_with_its_own_generators_and_logs(tmp_path: Path, monkeypatch) -> None:
    """A state saved by rank 0 holds every process's generators and logs; each process (here
    told its rank) restores its own, and one of another number of processes is ignored."""
    from lcm.train import state as state_module
    from lcm.train.loop import make_optimizer, warmup_cosine
    from lcm.train.state import LoopPosition, ProcessState, load_state, save_state

    def objects():
        torch.manual_seed(0)
        module = torch.nn.Linear(3, 2)
        optimizer = make_optimizer([module], 0.01, 0.0)
        return module, optimizer, warmup_cosine(optimizer, 10), torch.Generator().manual_seed(0)

    def process(seed: int, loss: float) -> ProcessState:
        rng = {
            "generator": torch.Generator().manual_seed(seed).get_state(),
            "torch": torch.Generator().manual_seed(seed + 1).get_state(),
        }
        history = [{"epoch": 1, "loss_total": loss, "lr": 0.01}]
        return ProcessState(rng, {"loss_total": loss * 3}, {"loss_total": 3}, history)

    processes = [process(10, 1.5), process(20, 2.5)]  # shards of different sizes: they differ
    monkeypatch.setattr(state_module, "_ranks", lambda module: (0, 2))
    position = LoopPosition(step=4, epoch=2, sums={"loss_total": 4.5}, counts={"loss_total": 3})
    position.history = processes[0].history
    save_state(tmp_path, "fp", *objects(), position, processes)
    for rank in (0, 1):
        monkeypatch.setattr(state_module, "_ranks", lambda module, rank=rank: (rank, 2))
        module, optimizer, scheduler, generator = objects()
        with torch.random.fork_rng(devices=[]):  # the test session's generator kept
            resumed = load_state(tmp_path, "fp", module, optimizer, scheduler, generator)
            assert torch.equal(torch.get_rng_state(), processes[rank].rng["torch"])
        assert resumed is not None and resumed.step == 4
        assert torch.equal(generator.get_state(), processes[rank].rng["generator"])
        assert resumed.sums == processes[rank].sums
        assert resumed.history == processes[rank].history
    # Three processes (or one) cannot resume two processes' streams: start afresh, as a state
    # of another fingerprint does.
    for world in (1, 3):
        monkeypatch.setattr(state_module, "_ranks", lambda module, world=world: (0, world))
        assert load_state(tmp_path, "fp", *objects()) is None
    with pytest.raises(ValueError, match="pass processes"):  # rank 0 alone cannot gather them
        save_state(tmp_path, "fp", *objects(), position)


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    worker = str(HERE / "ddp_pretrain_worker.py")
    one = subprocess.run([sys.executable, worker, str(tmp_path / "one")], env=env, timeout=120)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        worker,
        str(tmp_path / "two"),
    ]
    two = subprocess.run(torchrun, env=env, timeout=180)
    assert one.returncode == 0 and two.returncode == 0
    a, b = _weights(tmp_path / "one" / "m"), _weights(tmp_path / "two" / "m")
    assert_same_training(a, b, TINY["overrides"]["d_model"])
    assert_same_history(tmp_path / "one" / "m", tmp_path / "two" / "m")
    meta = (tmp_path / "two" / "m" / "model.json").read_text()
    assert '"world_size": 2' in meta


def _torchrun(worker: str, out: Path, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", worker, str(out), *options]
    return subprocess.run(command, env=env, timeout=180, capture_output=True, text=True)


@pytest.mark.slow
def test_two_process_run_killed_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    """Each process resumes with its own random generators, not rank 0's.

    Dropout on, and 45 training runs in batches of 16: the last batch of each epoch (13) splits
    into shards of 7 and 6, so the two processes draw different numbers of dropout values and
    their generators differ at every later save.
    """
    worker = str(HERE / "ddp_pretrain_worker.py")
    options = ("--runs", "50", "--dropout", "0.1", "--every", "4")
    whole = _torchrun(worker, tmp_path / "whole", *options)
    assert whole.returncode == 0, whole.stderr[-3000:]
    # 3 steps an epoch; the state is saved after step 4 (epoch 2); killed inside step 6.
    killed = _torchrun(worker, tmp_path / "resumed", *options, "--kill-at", "6")
    assert killed.returncode != 0
    state = tmp_path / "resumed" / "m" / STATE_DIR
    assert '"step": 4' in (state / "train_state.json").read_text()
    resumed = _torchrun(worker, tmp_path / "resumed", *options)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("resuming from step 4") == 2  # each process
    a, b = _weights(tmp_path / "whole" / "m"), _weights(tmp_path / "resumed" / "m")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # bitwise, dropout included
    history = [
        pd.read_csv(tmp_path / d / "m" / "history.tsv", sep="\t") for d in ("whole", "resumed")
    ]
    pd.testing.assert_frame_equal(*history)


@pytest.mark.slow
def test_rank_zero_writing_longer_than_the_group_timeout_ends_cleanly(tmp_path: Path) -> None:
    """Every process leaves the process group after the last collective, not after rank 0's
    writing: rank 0 evaluating and saving for longer than the group's
    timeout (NCCL's 10 minutes at cohort scale; 4 s against 12 s here) keeps no rank waiting
    in a barrier that would time out and abort the job mid-write."""
    worker = str(HERE / "ddp_pretrain_worker.py")
    run = _torchrun(worker, tmp_path, "--group-timeout", "4", "--slow-writing", "12")
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("model.safetensors", "history.tsv", "bei_eval.tsv"):
        assert (tmp_path / "m" / name).is_file(), name
    assert '"world_size": 2' in (tmp_path / "m" / "model.json").read_text()


@pytest.mark.slow
def test_each_process_draws_dropout_from_its_own_stream(tmp_path: Path) -> None:
    """Rank 1's dropout stream is not rank 0's (the same masks on every shard otherwise);
    rank 0's is the one-process run's, so a one-process run trains as it did."""
    worker = str(HERE / "ddp_pretrain_worker.py")
    options = ("--dropout", "0.1", "--rng-out")
    two = _torchrun(worker, tmp_path / "two", *options)
    assert two.returncode == 0, two.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, worker, str(tmp_path / "one"), *options], env=env)
    assert one.returncode == 0
    rank0, rank1 = (torch.load(tmp_path / "two" / f"rng-{r}.pt") for r in (0, 1))
    assert not torch.equal(rank0, rank1)
    assert torch.equal(rank0, torch.load(tmp_path / "one" / "rng-0.pt"))
