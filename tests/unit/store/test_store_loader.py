"""ConnectomeStream: every run once per epoch, shuffled, sharded over workers and DDP ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from lcm.exceptions import InputDataError
from lcm.store.layout import n_edges, vec_to_matrix
from lcm.store.loader import ConnectomeStream
from lcm.store.writer import write_connectome_arrays

ROIS = [f"roi{i}" for i in range(6)]  # 15 edges


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Two datasets (23 + 14 runs) in row groups of 5: partial groups at both ends."""
    root = tmp_path_factory.mktemp("store")
    vecs = []
    for dataset, n, seed in (("a", 23, 0), ("b", 14, 1)):
        vec = np.random.default_rng(seed).uniform(-1, 1, (n, n_edges(6))).astype(np.float32)
        runs = pd.DataFrame({"subject": [f"{dataset}{i:02d}" for i in range(n)]})
        write_connectome_arrays(root, "toy", dataset, runs, vec, ROIS, row_group_size=5)
        vecs.append(vec)
    return root, np.concatenate(vecs)


def _epoch(stream) -> tuple[list[int], np.ndarray]:
    samples = list(stream)
    return [s["index"] for s in samples], np.stack([s["connectome"].numpy() for s in samples])


def test_one_epoch_yields_every_run_once_with_its_values(store) -> None:
    root, vec = store
    stream = ConnectomeStream(root, "toy", ["a", "b"], shuffle_buffer=8, seed=3)
    assert len(stream) == 37 and stream.runs["subject"].iloc[23] == "b00"
    index, values = _epoch(stream)
    assert sorted(index) == list(range(37))
    assert index != sorted(index)  # shuffled
    np.testing.assert_array_equal(values, vec[index])
    again, _ = _epoch(stream)
    assert again == index  # deterministic for a seed and epoch
    stream.set_epoch(1)
    assert _epoch(stream)[0] != index
    plain = ConnectomeStream(root, "toy", ["a", "b"], shuffle=False)
    assert _epoch(plain)[0] == list(range(37))


def test_ddp_ranks_get_disjoint_equal_shards(store) -> None:
    root, _ = store
    streams = [
        ConnectomeStream(root, "toy", ["a", "b"], rank=r, world_size=3, seed=5) for r in range(3)
    ]
    shards = [_epoch(stream)[0] for stream in streams]
    assert [len(s) for s in shards] == [12, 12, 12]  # 37 // 3: every rank runs the same steps
    assert [len(stream) for stream in streams] == [12, 12, 12]
    flat = [i for s in shards for i in s]
    assert len(set(flat)) == 36 and set(flat) <= set(range(37))
    with pytest.raises(InputDataError, match=r"rank 3 is not in \[0, world_size=3\)"):
        ConnectomeStream(root, "toy", ["a"], rank=3, world_size=3)


def test_runs_left_over_change_from_epoch_to_epoch(tmp_path: Path) -> None:
    """10 runs in one row group over 3 ranks: 9 streamed per epoch, 3 per rank, and the run left
    out differs between epochs. It was always the tail of the last row group (run 9 was never
    streamed in any epoch)."""
    runs = pd.DataFrame({"subject": [f"s{i:02d}" for i in range(10)]})
    vec = np.random.default_rng(0).uniform(-1, 1, (10, n_edges(6))).astype(np.float32)
    write_connectome_arrays(tmp_path, "toy", "one", runs, vec, ROIS)
    left_out = set()
    for epoch in range(12):
        shards = []
        for rank in range(3):
            stream = ConnectomeStream(tmp_path, "toy", ["one"], rank=rank, world_size=3, seed=4)
            stream.set_epoch(epoch)
            index, values = _epoch(stream)
            np.testing.assert_array_equal(values, vec[index])
            shards.append(index)
        assert [len(s) for s in shards] == [3, 3, 3]
        flat = [i for s in shards for i in s]
        assert len(set(flat)) == 9
        left_out |= set(range(10)) - set(flat)
    assert len(left_out) >= 5  # the run left out moves; every run is streamed in some epoch
    # Divisible: every run exactly once per epoch, each row group read once per shard even
    # when the shard's runs wrap around the end of the epoch's sequence.
    for epoch in range(5):
        halves = []
        for rank in range(2):
            stream = ConnectomeStream(tmp_path, "toy", ["one"], rank=rank, world_size=2, seed=4)
            stream.set_epoch(epoch)
            halves.append(_epoch(stream)[0])
        assert len(halves[0]) == 5 and sorted(halves[0] + halves[1]) == list(range(10))
        whole = ConnectomeStream(tmp_path, "toy", ["one"], seed=4)
        whole.set_epoch(epoch)
        units = whole.shard_units()
        assert len(units) == 1 and sorted(units[0][1]) == list(range(10))


def test_dataloader_workers_share_the_epoch(store) -> None:
    root, vec = store
    stream = ConnectomeStream(root, "toy", ["a", "b"], seed=2, rank=1, world_size=2)
    loader = DataLoader(stream, batch_size=4, num_workers=2)
    index, values = [], []
    for batch in loader:
        assert batch["connectome"].shape[1:] == (15,) and batch["connectome"].dtype == torch.float32
        index += batch["index"].tolist()
        values.append(batch["connectome"].numpy())
    # 37 // 2 runs per rank (shuffling leaves the one left over out), cut between 2 workers.
    assert len(index) == 18 and len(set(index)) == 18
    np.testing.assert_array_equal(np.concatenate(values), vec[index])
    other = ConnectomeStream(root, "toy", ["a", "b"], seed=2, rank=0, world_size=2)
    other_index = [b["index"] for b in DataLoader(other, batch_size=None, num_workers=2)]
    assert not set(index) & {int(i) for i in other_index}


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_without_shuffling_every_run_is_yielded_whatever_the_shards(store, world_size) -> None:
    """An inference pass (shuffle=False) over ranks and workers yields all 37 runs each epoch,
    each once. It gave every (rank, worker) shard 37 // n_shards runs from run 0, so the same
    tail was left out every epoch (run 36 with 2 or 3 workers, or 3 ranks)."""
    root, vec = store
    for num_workers in (0, 2, 3):
        for epoch in range(2):
            index = []
            for rank in range(world_size):
                stream = ConnectomeStream(
                    root, "toy", ["a", "b"], shuffle=False, rank=rank, world_size=world_size
                )
                stream.set_epoch(epoch)
                loader = DataLoader(stream, batch_size=None, num_workers=num_workers)
                for item in loader:
                    np.testing.assert_array_equal(item["connectome"].numpy(), vec[item["index"]])
                    index.append(int(item["index"]))
            assert sorted(index) == list(range(37)), (num_workers, epoch)
    # Ranks differ by at most one run; drop_last=True evens them (DDP training without shuffling).
    sizes = [
        len(ConnectomeStream(root, "toy", ["a", "b"], shuffle=False, rank=r, world_size=3))
        for r in range(3)
    ]
    assert sizes == [13, 12, 12]
    even = [
        ConnectomeStream(
            root, "toy", ["a", "b"], shuffle=False, drop_last=True, rank=r, world_size=3
        )
        for r in range(3)
    ]
    shards = [_epoch(stream)[0] for stream in even]
    assert [len(s) for s in shards] == [12, 12, 12] == [len(stream) for stream in even]
    assert sorted(i for s in shards for i in s) == list(range(36))  # the store's last run out
    # And a shuffled pass can be complete too.
    complete = [
        _epoch(ConnectomeStream(root, "toy", ["a", "b"], drop_last=False, rank=r, world_size=3))[0]
        for r in range(3)
    ]
    assert sorted(i for s in complete for i in s) == list(range(37))


@pytest.mark.parametrize("batch_size", [None, 8])
def test_len_is_what_a_dataloader_yields_on_this_rank(store, batch_size) -> None:
    """len(DataLoader(stream, batch_size=None)), as the README uses it, is the number of items
    (batches, or runs without batch_size) this rank gets per epoch over all its workers, for
    schedules and progress bars. It was the number of runs in the store, on every rank."""
    root, _ = store
    for world_size in (1, 2):
        for num_workers in (0, 2):
            for shuffle in (True, False):
                for rank in range(world_size):
                    stream = ConnectomeStream(
                        root,
                        "toy",
                        ["a", "b"],
                        shuffle=shuffle,
                        shuffle_buffer=4,
                        batch_size=batch_size,
                        rank=rank,
                        world_size=world_size,
                    )
                    loader = DataLoader(stream, batch_size=None, num_workers=num_workers)
                    got = sum(1 for _ in loader)
                    assert len(loader) == len(stream) == got, (world_size, num_workers, shuffle)
    # 37 runs in batches of 8 over 2 ranks x 2 workers: 18 runs per rank make 3 batches, not
    # the 4 that cutting 9 runs per worker would give.
    stream = ConnectomeStream(root, "toy", ["a", "b"], batch_size=8, rank=1, world_size=2)
    sizes = [len(b["index"]) for b in DataLoader(stream, batch_size=None, num_workers=2)]
    assert len(stream) == 3 and sorted(sizes) == [2, 8, 8]


def test_persistent_workers_follow_set_epoch(store) -> None:
    """Persistent DataLoader workers keep their copy of the stream: set_epoch still reaches
    them, and each epoch is the one a fresh loader gives for it."""
    root, _ = store

    def order(loader: DataLoader) -> list[int]:
        return [int(item["index"]) for item in loader]

    stream = ConnectomeStream(root, "toy", ["a", "b"], seed=5, shuffle_buffer=4)
    persistent = DataLoader(stream, batch_size=None, num_workers=1, persistent_workers=True)
    seen = []
    for epoch in range(3):
        stream.set_epoch(epoch)
        seen.append(order(persistent))
    assert seen[0] != seen[1] != seen[2]
    for epoch, got in enumerate(seen):
        fresh = ConnectomeStream(root, "toy", ["a", "b"], seed=5, shuffle_buffer=4)
        fresh.set_epoch(epoch)
        assert order(DataLoader(fresh, batch_size=None, num_workers=1)) == got


def test_matrices_and_mismatched_atlases(store, tmp_path: Path) -> None:
    root, vec = store
    stream = ConnectomeStream(root, "toy", ["b"], shuffle=False, matrix=True)
    first = next(iter(stream))
    np.testing.assert_array_equal(first["connectome"].numpy(), vec_to_matrix(vec[23], 6))
    other = [f"r{i}" for i in range(5)]
    write_connectome_arrays(
        tmp_path,
        "toy",
        "c",
        pd.DataFrame({"subject": ["x"]}),
        np.zeros((1, n_edges(5)), np.float32),
        other,
    )
    for ds in ("a", "b"):
        (tmp_path / "connectomes" / "atlas=toy" / f"dataset={ds}").symlink_to(
            root / "connectomes" / "atlas=toy" / f"dataset={ds}"
        )
    with pytest.raises(InputDataError, match=r"5 ROIs differ from the 6 ROIs"):
        ConnectomeStream(tmp_path, "toy", ["a", "c"])
    with pytest.raises(InputDataError, match=r"no connectomes for 'z'"):
        ConnectomeStream(root, "toy", ["z"])


def test_batches_mix_row_groups_and_hold_every_run_once(store) -> None:
    root, vec = store

    def epoch(stream: ConnectomeStream) -> list[list[int]]:
        batches = list(DataLoader(stream, batch_size=None))
        for b in batches:  # values travel with their index
            np.testing.assert_array_equal(b["connectome"].numpy(), vec[b["index"].numpy()])
        return [b["index"].tolist() for b in batches]

    stream = ConnectomeStream(root, "toy", ["a", "b"], seed=9, shuffle_buffer=12, batch_size=8)
    batches = epoch(stream)
    assert [len(b) for b in batches] == [8, 8, 8, 8, 5]
    assert sorted(i for b in batches for i in b) == list(range(37))
    assert epoch(stream) == batches  # deterministic for a seed and epoch
    # Windows of >= 12 runs span several 5-run row groups, so batches mix them.
    row_group = stream.runs.index.to_numpy() // 5  # dataset a: 23 runs, groups 0..4; b follows
    row_group[23:] = 5 + (np.arange(14) // 5)
    assert max(len({row_group[i] for i in b}) for b in batches) >= 2
    stream.set_epoch(1)
    assert {frozenset(b) for b in epoch(stream)} != {frozenset(b) for b in batches}
    plain = ConnectomeStream(root, "toy", ["a", "b"], shuffle=False, batch_size=10)
    assert [i for b in epoch(plain) for i in b] == list(range(37))
    # A cohort larger than half the memory is dropped from the page cache as it is read; the
    # same runs come out either way.
    assert stream.keep_cache  # a tiny store stays cached for the next epoch
    dropped = ConnectomeStream(
        root, "toy", ["a", "b"], seed=9, shuffle_buffer=12, batch_size=8, keep_cache=False
    )
    assert epoch(dropped) == batches


def test_schema_version_1_list_partitions_still_stream(tmp_path: Path) -> None:
    """Stores written before the fixed-size binary layout (a float32 list column) still read."""
    vec = np.random.default_rng(4).uniform(-1, 1, (9, n_edges(6))).astype(np.float32)
    write_connectome_arrays(
        tmp_path, "toy", "old", pd.DataFrame({"subject": list("abcdefghi")}), vec, ROIS
    )
    path = tmp_path / "connectomes" / "atlas=toy" / "dataset=old" / "part-0.parquet"
    table = pq.read_table(path)
    as_list = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), vec.shape[1])
    column = table.schema.get_field_index("connectome")
    old = table.set_column(column, "connectome", as_list)
    pq.write_table(old.replace_schema_metadata(table.schema.metadata), path, row_group_size=4)
    stream = ConnectomeStream(tmp_path, "toy", ["old"], shuffle=False, batch_size=4)
    got = np.concatenate([b["connectome"].numpy() for b in stream])
    np.testing.assert_array_equal(got, vec)
    bad = old.set_column(column, "connectome", pa.array([b"x"] * 9, pa.binary(1)))
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(InputDataError, match=r"part-0.parquet: column 'connectome' has type"):
        list(ConnectomeStream(tmp_path, "toy", ["old"], batch_size=4))


@pytest.mark.parametrize("shuffle", [True, False])
def test_iter_from_resumes_an_epoch_after_its_first_batches(store, shuffle: bool) -> None:
    """Two files, partial row groups, DDP ranks: from every batch on, what the epoch yields."""
    root, _ = store
    for rank in (0, 1):
        stream = ConnectomeStream(
            root,
            "toy",
            ["a", "b"],
            shuffle=shuffle,
            shuffle_buffer=8,
            seed=2,
            batch_size=3,
            rank=rank,
            world_size=2,
            drop_last=True,
        )
        stream.set_epoch(4)
        whole = list(stream)
        for skip in range(len(whole) + 2):
            resumed = list(stream.iter_from(skip))
            assert len(resumed) == max(len(whole) - skip, 0)
            for a, b in zip(resumed, whole[skip:], strict=True):
                assert torch.equal(a["index"], b["index"])
                assert torch.equal(a["connectome"], b["connectome"])


def test_iter_from_counts_batches(store) -> None:
    root, _ = store
    with pytest.raises(ValueError, match=r"skip=2 counts batches.*batch_size"):
        ConnectomeStream(root, "toy", ["a"]).iter_from(2)
    with pytest.raises(ValueError, match="skip=-1"):
        ConnectomeStream(root, "toy", ["a"], batch_size=4).iter_from(-1)
