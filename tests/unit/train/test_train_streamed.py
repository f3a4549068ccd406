"""Pretraining with ``data_loading: stream``: connectomes read from the feature store a batch at a
time, never loaded whole (DESIGN §6 "pretraining data loading streams from Parquet")."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.model import CLI_CATALOGUE, TINY, add_store_dataset, pretrain_argv, write_catalogue
from safetensors.torch import load_file

from lcm.catalogue import load_catalogue
from lcm.cli import main
from lcm.exceptions import ConfigError
from lcm.io.run_digests import connectome_digests, connectome_sketches
from lcm.model.config import PRESETS, LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout, Target
from lcm.store import read as read_mod
from lcm.store.read import load_cohort, load_streamed_cohort
from lcm.train import objective as objective_mod
from lcm.train import streamed as streamed_mod
from lcm.train.loop import DeviceConnectomes
from lcm.train.objective import PretrainObjective, PretrainStep
from lcm.train.streamed import (
    StreamedConnectomes,
    check_memory_load,
    cohort_stream,
    memory_load_bytes,
    scan_cohort,
    shuffle_runs,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {"epochs": 2, "batch_size": 8, "lr": 0.003, "data_loading": "stream"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A feature store of two datasets written by `lcm store`, and its catalogue."""
    tmp = tmp_path_factory.mktemp("streamed")
    catalogue = write_catalogue(tmp, CLI_CATALOGUE)
    add_store_dataset(tmp, tmp / "store", catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp, tmp / "store", catalogue, "beta", "toy", 20, seed=1)
    return tmp / "store", catalogue


def test_the_datasets_order_named_changes_no_cohort(store: tuple[Path, Path]) -> None:
    """lcm bei-maps given the pretraining's datasets in another order fitted the same maps
    under another data fingerprint, and lcm evaluate refused them as fitted on other data."""
    root, catalogue_path = store
    catalogue = load_catalogue(catalogue_path)
    ab = load_cohort(root, "toy", ["alpha", "beta"], catalogue)
    ba = load_cohort(root, "toy", ["beta", "alpha"], catalogue)
    pd.testing.assert_frame_equal(ab.ids, ba.ids)
    assert ab.fingerprint(catalogue) == ba.fingerprint(catalogue)
    streamed = load_streamed_cohort(root, "toy", ["beta", "alpha"], catalogue)
    pd.testing.assert_frame_equal(streamed.ids, ab.ids)


def test_a_scan_gives_what_the_cohort_loaded_whole_gives(store: tuple[Path, Path]) -> None:
    root, catalogue_path = store
    catalogue = load_catalogue(catalogue_path)
    whole = load_cohort(root, "toy", ["alpha", "beta"], catalogue)
    streamed = load_streamed_cohort(root, "toy", ["alpha", "beta"], catalogue)
    pd.testing.assert_frame_equal(streamed.ids, whole.ids)
    pd.testing.assert_frame_equal(streamed.variables, whole.variables)
    assert streamed.roi_names == whole.roi_names
    rows = np.array([41, 3, 17, 0])
    scan = scan_cohort(streamed, catalogue, rows, quiet=True)
    assert scan.fingerprint == whole.fingerprint(catalogue)
    np.testing.assert_array_equal(scan.digests, connectome_digests(whole.fc))
    assert scan.sketches == connectome_sketches(whole.fc)
    # The runs asked for, in a temporary file, read back as matrices by slices.
    np.testing.assert_array_equal(scan.loaded[0:4], whole.fc[rows])
    part = scan.cohort(streamed, rows, slice(1, 3))
    np.testing.assert_array_equal(part.fc[0:2], whole.fc[rows[1:3]])
    assert len(part.fc) == 2 and part.fc.shape == (2, 13, 13)
    pd.testing.assert_frame_equal(part.ids, whole.ids.iloc[rows[1:3]].reset_index(drop=True))
    assert isinstance(scan.loaded.triangles, np.memmap)  # not in the process's heap


def test_streamed_batches_are_the_stored_matrices(store: tuple[Path, Path]) -> None:
    root, catalogue_path = store
    catalogue = load_catalogue(catalogue_path)
    whole = load_cohort(root, "toy", ["alpha"], catalogue)
    streamed = load_streamed_cohort(root, "toy", ["alpha"], catalogue)
    stream = cohort_stream(streamed, shuffle=True, seed=3, batch_size=8, drop_last=True)
    fc = StreamedConnectomes(stream, torch.device("cpu"))
    seen = []
    for index in fc.batches(epoch=1):
        np.testing.assert_array_equal(fc.take(index).numpy(), whole.fc[index.numpy()])
        # A padded batch (the first sample repeated) and any order of the batch's samples.
        padded = torch.cat([index.flip(0), index[:1].expand(3)])
        np.testing.assert_array_equal(fc.take(padded).numpy(), whole.fc[padded.numpy()])
        seen.append(index)
    order = torch.cat(seen)
    assert len(order) == len(whole) and len(set(order.tolist())) == len(whole)
    again = torch.cat(list(fc.batches(epoch=1)))
    other = torch.cat(list(fc.batches(epoch=2)))
    assert torch.equal(order, again) and not torch.equal(order, other)  # a new order each epoch
    resumed = torch.cat(list(fc.batches(epoch=1, skip=2)))
    assert torch.equal(resumed, torch.cat(seen[2:]))


def _argv(root: Path, catalogue: Path, out: Path, settings: dict) -> list[str]:
    """``lcm pretrain`` of the tiny model on both datasets of the store."""
    argv = pretrain_argv(root, catalogue, out, json.dumps(settings), 2)
    argv.insert(argv.index("alpha") + 1, "beta")
    return argv


def test_streamed_pretraining_never_loads_the_cohort_and_records_the_same_data(
    store: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, catalogue = store
    assert (
        main(_argv(root, catalogue, tmp_path / "memory", {**SETTINGS, "data_loading": "memory"}))
        == 0
    )

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("data_loading: stream loaded the whole cohort")

    monkeypatch.setattr(read_mod, "load_cohort", refused)
    monkeypatch.setattr(read_mod, "vec_to_matrix", refused)  # the dense load's expansion
    assert main(_argv(root, catalogue, tmp_path / "stream", SETTINGS)) == 0
    meta = {k: json.loads((tmp_path / k / "model.json").read_text()) for k in ("memory", "stream")}
    # The same runs, variables and held-out subjects recorded, whichever way they were read.
    assert meta["stream"]["data_fingerprint"] == meta["memory"]["data_fingerprint"]
    for key in ("run_digests", "run_sketches", "n_runs", "heldout_subjects"):
        assert meta["stream"]["data"][key] == meta["memory"]["data"][key], key
    assert meta["stream"]["training"]["data_loading"] == "stream"
    history = pd.read_csv(tmp_path / "stream" / "history.tsv", sep="\t")
    assert len(history) == 2 and np.isfinite(history[["loss_total", "val_loss"]]).all().all()
    bei = pd.read_csv(tmp_path / "stream" / "bei_eval.tsv", sep="\t")
    assert len(bei) > 0
    # Other batches than the in-memory run's: another model, from the same data.
    a = load_file(tmp_path / "memory" / "model.safetensors")
    b = load_file(tmp_path / "stream" / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_streamed_run_killed_mid_epoch_resumes_exactly(
    store: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, catalogue = store
    settings = {**SETTINGS, "epochs": 3, "checkpoint_every": 1}
    assert main(_argv(root, catalogue, tmp_path / "whole", settings)) == 0
    original = objective_mod.PretrainObjective.forward
    calls = {"n": 0}

    def dying(self: PretrainObjective, fc: torch.Tensor, shard: object) -> object:
        calls["n"] += 1
        if calls["n"] == 8:  # in the second epoch (5 batches of 8 an epoch), after its first
            raise KeyboardInterrupt
        return original(self, fc, shard)

    monkeypatch.setattr(objective_mod.PretrainObjective, "forward", dying)
    assert main(_argv(root, catalogue, tmp_path / "resumed", settings)) != 0  # interrupted
    monkeypatch.setattr(objective_mod.PretrainObjective, "forward", original)
    state = json.loads((tmp_path / "resumed" / "train_state" / "train_state.json").read_text())
    assert state["step"] == 7
    assert main(_argv(root, catalogue, tmp_path / "resumed", settings)) == 0
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_cohort_read_otherwise_than_the_setting_says_is_refused(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    from lcm.train.pretrain import pretrain

    root, catalogue_path = store
    catalogue = load_catalogue(catalogue_path)
    whole = load_cohort(root, "toy", ["alpha"], catalogue)
    with pytest.raises(ConfigError, match="data_loading is 'stream'"):
        pretrain(whole, catalogue, TINY, SETTINGS, 0, tmp_path / "m")


def test_own_batches_of_two_processes_learn_what_one_process_learns_from_both() -> None:
    """Each streamed process trains on a batch of its own, normalised by the world's counts:
    the mean of the two processes' losses (and gradients, as DDP averages them) is one
    process's on the two batches together, ROI masks included."""
    rng = np.random.default_rng(0)
    n, r = 12, 10
    a = rng.standard_normal((n, r, r)).astype(np.float32)
    fc = DeviceConnectomes(np.tanh(0.3 * (a + a.transpose(0, 2, 1))), torch.device("cpu"))
    layout = QueryLayout().append("sex", "binary", ("F", "M")).append("age", "continuous")
    present = torch.as_tensor([True] * 6 + [False] * 3 + [True] * 3)  # sex absent on rank 1
    sex = torch.eye(2)[torch.as_tensor(rng.integers(0, 2, n))] * present[:, None]
    age = torch.as_tensor(rng.standard_normal(n), dtype=torch.float32)
    targets = {"sex": Target(sex, present), "age": Target(age, torch.ones(n, dtype=torch.bool))}
    batches = [torch.tensor([0, 2, 4, 6, 8, 10]), torch.tensor([7, 3, 5, 1, 9, 11])]
    config = LCMConfig(n_rois=r, n_queries=layout.n_queries, **{**PRESETS["tiny"], "dropout": 0})
    torch.manual_seed(0)
    objective = PretrainObjective(LCM(config), layout, ssl_weight=0.5)

    def run(index: torch.Tensor, **kwargs: object) -> tuple[float, dict[str, torch.Tensor]]:
        objective.zero_grad()
        step = PretrainStep(objective, fc, targets, 0.3, torch.Generator().manual_seed(1), **kwargs)
        loss, _ = step(index)
        loss.backward()
        return float(loss.detach()), {
            k: p.grad.clone() if p.grad is not None else None
            for k, p in objective.named_parameters()
        }

    one_loss, one_grads = run(torch.cat(batches))
    counts = [
        torch.tensor([float(present[b].sum()), float(len(b)), 0.0], dtype=torch.float64)
        for b in batches
    ]
    masks = []  # the masked-ROI count of each rank's rows of the world's draw
    drawn = objective_mod.sample_roi_mask(12, r, 0.3, torch.Generator().manual_seed(1))
    for k in range(2):
        masks.append(float(drawn[6 * k : 6 * (k + 1)].sum()) * r)
    total = counts[0] + counts[1]
    total[-1] = masks[0] + masks[1]
    losses, grads = [], []
    for rank in range(2):
        loss, g = run(batches[rank], rank=rank, world=2, own_batches=lambda _c, t=total: t)
        losses.append(loss)
        grads.append(g)
    assert np.isclose(np.mean(losses), one_loss, rtol=1e-5)
    for key, g in one_grads.items():
        if g is None:
            continue
        mean = (grads[0][key] + grads[1][key]) / 2
        torch.testing.assert_close(mean, g, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.slow
def test_two_processes_stream_row_groups_of_their_own(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    """torchrun with 2 processes: each reads and trains on its own half of the training runs
    every epoch (none on both), in equal numbers of batches, and the model is written once."""
    root, catalogue = store
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    worker = str(Path(__file__).parent / "ddp_stream_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", worker, str(tmp_path)]
    command += _argv(root, catalogue, tmp_path / "m", {**SETTINGS, "batch_size": 8})
    run = subprocess.run(command, env=env, timeout=240, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["world_size"] == 2
    n_train = meta["data"]["n_runs"] - 5  # 5 held-out runs (one per held-out subject)
    for epoch in ("1", "2"):
        mine = [[i for b in ranks[r][epoch] for i in b] for r in (0, 1)]
        assert len(ranks[0][epoch]) == len(ranks[1][epoch])  # the same number of steps
        assert all(len(b) <= 4 for r in (0, 1) for b in ranks[r][epoch])  # 8 / 2 processes
        assert not set(mine[0]) & set(mine[1])
        assert len(mine[0]) == len(mine[1]) == n_train // 2
    assert ranks[0]["1"] != ranks[0]["2"]  # another order each epoch
    history = pd.read_csv(tmp_path / "m" / "history.tsv", sep="\t")
    assert np.isfinite(history["loss_total"]).all() and len(history) == 2


def test_a_cohort_too_large_for_the_job_is_refused_before_loading(
    store: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, catalogue = store
    # 50 runs of 13 ROIs: 8 * 13^2 * 50 = 67,600 bytes loaded whole.
    assert memory_load_bytes(50, 13) == 67_600
    monkeypatch.setattr(streamed_mod, "available_memory", lambda: 60_000)
    memory = {**SETTINGS, "data_loading": "memory"}
    assert main(_argv(root, catalogue, tmp_path / "m", memory)) != 0
    err = capsys.readouterr().err
    assert "50 runs of 13 ROIs" in err and "data_loading: stream" in err
    assert not (tmp_path / "m").exists()  # refused before the output folder was claimed
    # Streamed, the same job trains: its memory does not grow with the runs.
    assert main(_argv(root, catalogue, tmp_path / "s", SETTINGS)) == 0
    # Past half of the memory: loaded, with a warning naming the setting.
    with pytest.raises(ConfigError):
        check_memory_load(50, 13, "alpha beta (toy)", memory=60_000)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # the lcm logger does not propagate once main() ran
    logging.getLogger("lcm.train.streamed").addHandler(handler)
    try:
        check_memory_load(50, 13, "alpha beta (toy)", memory=100_000)
        # Four processes of a node each load it: refused where one alone would fit.
        with pytest.raises(ConfigError, match="for the 4 processes on this node"):
            check_memory_load(50, 13, "alpha beta (toy)", memory=200_000, processes=4)
    finally:
        logging.getLogger("lcm.train.streamed").removeHandler(handler)
    assert any("data_loading: stream" in r.getMessage() for r in records)


def test_the_graphed_step_trains_on_streamed_batches_as_the_eager_step(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    """``compile_scope: step`` (the whole step one CUDA graph on a GPU, eager here) takes its
    rows from the stream as the default scope does: the same training, up to summation order."""
    from lcm.train.pretrain import pretrain

    root, catalogue_path = store
    catalogue = load_catalogue(catalogue_path)
    cohort = load_streamed_cohort(root, "toy", ["alpha", "beta"], catalogue)
    model = {**TINY, "overrides": {**TINY["overrides"], "dropout": 0.0}}
    for scope in ("step", "blocks"):
        settings = {**SETTINGS, "compile_scope": scope}
        pretrain(cohort, catalogue, model, settings, seed=4, out_dir=tmp_path / scope)
    step, blocks = (load_file(tmp_path / d / "model.safetensors") for d in ("step", "blocks"))
    assert step.keys() == blocks.keys()
    for name, value in step.items():
        if not name.endswith("attn.in_proj_bias"):  # the keys' bias: zero true gradient
            torch.testing.assert_close(value, blocks[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("n_rois", [13, 116, 400, 1000])
def test_a_shuffle_window_spans_several_row_groups(n_rois: int) -> None:
    """A row group holds ~32 MiB of one dataset's runs (1,256 at 116 ROIs): a window of 512
    runs mixed within one row group only, every batch from one dataset."""
    from lcm.store.writer import row_group_rows

    window = shuffle_runs(n_rois, batch_size=64)
    assert window >= min(8 * row_group_rows(n_rois) - 8, 2**20) and window >= 512


BENCH_CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  gamma:
    id_column: SUB_ID
    columns:
      age: {column: AGE}
      sex: {column: SEX}
"""


@pytest.fixture(scope="module")
def small_groups(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store of 60 runs (two per subject) in row groups of 4 runs: 15 row groups to shuffle."""
    from lcm.store.commit import commit_dataset
    from lcm.store.layout import n_edges
    from lcm.store.writer import variables_id, write_connectome_arrays, write_variables

    tmp = tmp_path_factory.mktemp("groups")
    catalogue = write_catalogue(tmp, BENCH_CATALOGUE)
    rng = np.random.default_rng(7)
    subjects = [f"s{i:02d}" for i in range(30)]
    runs = pd.DataFrame(
        {"subject": np.repeat(subjects, 2), "task": "rest", "run": np.tile(["1", "2"], 30)}
    )
    runs["run_key"] = "sub-" + runs["subject"] + "_task-rest_run-" + runs["run"]
    vecs = np.tanh(rng.standard_normal((60, n_edges(11))) * 0.3).astype(np.float32)
    phenotype = pd.DataFrame(
        {
            "subject": subjects,
            "site": "",
            "age": rng.uniform(20, 80, 30),
            "sex": np.where(rng.random(30) < 0.5, "F", "M").astype(object),
        }
    )
    names = [f"roi{i}" for i in range(11)]
    cat = load_catalogue(catalogue)
    root = tmp / "store"
    with commit_dataset(root, "gamma", variables_id(phenotype, cat)) as commit:
        write_connectome_arrays(
            root, "toy", "gamma", runs, vecs, names, row_group_size=4, commit=commit
        )
        write_variables(root, "gamma", phenotype, cat, commit=commit)
        commit.apply()
    return root, catalogue


def test_many_row_groups_scan_like_the_whole_load_and_resume_exactly(
    small_groups: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row groups smaller than a batch and a window of several of them: the scan still equals
    the whole load, and a run killed mid-epoch (its window's carried runs included) resumes to
    the uninterrupted run's weights, bit for bit."""
    import pyarrow.parquet as pq

    from lcm.io.paths import connectome_path

    root, catalogue_path = small_groups
    assert pq.ParquetFile(connectome_path(root, "toy", "gamma")).metadata.num_row_groups == 15
    catalogue = load_catalogue(catalogue_path)
    whole = load_cohort(root, "toy", ["gamma"], catalogue)
    streamed = load_streamed_cohort(root, "toy", ["gamma"], catalogue)
    scan = scan_cohort(streamed, catalogue, np.arange(60), quiet=True)
    assert scan.fingerprint == whole.fingerprint(catalogue)
    np.testing.assert_array_equal(scan.loaded[0:60], whole.fc)
    # The batches of an epoch: runs of several row groups each, every training run once.
    stream = cohort_stream(streamed, shuffle=True, shuffle_buffer=12, seed=1, batch_size=5)
    fc = StreamedConnectomes(stream, torch.device("cpu"))
    batches = [b.tolist() for b in fc.batches(epoch=1)]
    assert sorted(i for b in batches for i in b) == list(range(60))
    assert max(len({i // 4 for i in b}) for b in batches) > 1  # mixed across row groups

    from lcm.train import pretrain as pretrain_mod
    from lcm.train.pretrain import pretrain

    # Windows of 8 runs (two row groups) cut in batches of 6: runs carried between windows.
    monkeypatch.setattr(pretrain_mod, "shuffle_runs", lambda n_rois, batch_size: 8)
    settings = {"epochs": 3, "batch_size": 6, "lr": 0.003, "data_loading": "stream"}
    settings["checkpoint_every"] = 1
    pretrain(streamed, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "whole")
    original, calls = objective_mod.PretrainObjective.forward, {"n": 0}

    def dying(self: PretrainObjective, x: torch.Tensor, shard: object) -> object:
        calls["n"] += 1
        if calls["n"] == 14:  # epoch 2 (9 batches of 6 an epoch), its 5th batch
            raise KeyboardInterrupt
        return original(self, x, shard)

    monkeypatch.setattr(objective_mod.PretrainObjective, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        pretrain(streamed, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "resumed")
    monkeypatch.setattr(objective_mod.PretrainObjective, "forward", original)
    pretrain(streamed, catalogue, TINY, settings, seed=3, out_dir=tmp_path / "resumed")
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_resumed_epoch_reads_only_the_row_groups_it_needs(
    small_groups: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, world_size: int
) -> None:
    """Resumed after ``skip`` batches, an epoch yields the uninterrupted epoch's later batches,
    bit for bit, and reads only the row groups these batches take runs from (the runs carried
    between windows included), not again those of the batches before."""
    import pyarrow.parquet as pq

    root, catalogue_path = small_groups
    streamed = load_streamed_cohort(root, "toy", ["gamma"], load_catalogue(catalogue_path))
    # Windows of 12 runs (3 row groups of 4) cut in batches of 5: runs carried between windows.
    stream = cohort_stream(
        streamed, shuffle=True, shuffle_buffer=12, seed=1, batch_size=5, world_size=world_size
    )
    fc = StreamedConnectomes(stream, torch.device("cpu"))
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def counting(self: pq.ParquetFile, i: int, *args: object, **kwargs: object) -> object:
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    for epoch in (1, 2):
        whole = [(index, fc.take(index)) for index in fc.batches(epoch)]
        n_read = len(read)
        assert n_read == len({i // 4 for index, _ in whole for i in index.tolist()})
        for skip in range(len(whole) + 1):
            read.clear()
            resumed = [(index, fc.take(index)) for index in fc.batches(epoch, skip=skip)]
            assert len(resumed) == len(whole) - skip
            for (a, x), (b, y) in zip(resumed, whole[skip:], strict=True):
                assert torch.equal(a, b) and torch.equal(x, y)
            # Each row group its batches take runs from, once (4 runs a row group); the old
            # code read all 15 again, whatever the skip.
            used = {i // 4 for index, _ in resumed for i in index.tolist()}
            assert sorted(read) == sorted(used), (epoch, skip)
        assert len(read) == 0  # resumed after its last batch: nothing left to read
