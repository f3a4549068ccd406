"""write_connectome_arrays: row groups, incremental partitions, plain-Parquet readers, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.store.layout import matrix_to_vec, n_edges
from lcm.store.writer import write_connectome_arrays

ROIS = [f"roi{i}" for i in range(7)]  # 21 edges


def _runs(n: int, prefix: str = "s") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject": [f"{prefix}{i // 2:03d}" for i in range(n)],
            "run": [str(1 + i % 2) for i in range(n)],
            "task": "rest",
            "site": [f"site{i % 3}" for i in range(n)],
            "mean_fd": np.linspace(0.05, 0.3, n),
        }
    )


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, n_edges(len(ROIS)))).astype(np.float32)


def test_blocks_become_row_groups_and_read_back(tmp_path: Path) -> None:
    vec = _vectors(23, 0)
    blocks = (vec[i : i + 4] for i in range(0, 23, 4))  # 4-row blocks, 10-row groups
    out = write_connectome_arrays(
        tmp_path,
        "toy",
        "a",
        _runs(23),
        blocks,
        ROIS,
        provenance={"config_sha256": "abc"},
        row_group_size=10,
    )
    f = pq.ParquetFile(out)
    assert [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)] == [10, 10, 3]
    table = f.read()
    stored = np.frombuffer(b"".join(table.column("connectome").to_pylist()), "<f4")
    np.testing.assert_array_equal(stored.reshape(23, -1), vec)
    # PLAIN, uncompressed, no dictionary, no nulls: each value is the float32 bytes as they are.
    chunk = f.metadata.row_group(0).column(table.schema.get_field_index("connectome"))
    assert chunk.compression == "UNCOMPRESSED" and "PLAIN" in chunk.encodings
    assert not any("DICTIONARY" in e for e in chunk.encodings)
    assert f.schema.column(table.schema.get_field_index("connectome")).max_definition_level == 0
    assert table.column("run_key").to_pylist()[:2] == ["sub-s000_run-1", "sub-s000_run-2"]
    assert table.column("session").to_pylist()[0] == ""
    assert np.isnan(table.column("t_r").to_numpy(zero_copy_only=False)).all()
    assert b"config_sha256" in f.schema_arrow.metadata[b"lcm.provenance"]
    # Matrices are accepted too and stored as the same upper triangle.
    mats = np.random.default_rng(1).uniform(-1, 1, (3, 7, 7)).astype(np.float32)
    mats = (mats + mats.transpose(0, 2, 1)) / 2
    out = write_connectome_arrays(tmp_path, "toy", "b", _runs(3), mats, ROIS)
    got = np.frombuffer(b"".join(pq.read_table(out).column("connectome").to_pylist()), "<f4")
    np.testing.assert_array_equal(got.reshape(3, -1), matrix_to_vec(mats))


def test_plain_readers_see_the_store(tmp_path: Path) -> None:
    write_connectome_arrays(tmp_path, "toy", "a", _runs(4), _vectors(4, 0), ROIS)
    write_connectome_arrays(tmp_path, "toy", "b", _runs(6), _vectors(6, 1), ROIS)
    frame = pd.read_parquet(tmp_path / "connectomes")
    assert frame.groupby("dataset", observed=True).size().to_dict() == {"a": 4, "b": 6}
    assert len(np.frombuffer(frame["connectome"].iloc[0], "<f4")) == 21
    glob = str(tmp_path / "connectomes" / "*" / "*" / "*.parquet")
    rows = duckdb.sql(
        "SELECT dataset, count(*) AS runs, avg(mean_fd) AS fd, max(octet_length(connectome)) // 4 "
        f"AS e FROM read_parquet('{glob}', hive_partitioning = true) "
        "GROUP BY dataset ORDER BY dataset"
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [("a", 4, 21), ("b", 6, 21)]


def test_adding_a_dataset_rewrites_only_its_partition(tmp_path: Path) -> None:
    a = write_connectome_arrays(tmp_path, "toy", "a", _runs(4), _vectors(4, 0), ROIS)
    before = (a.stat().st_ino, a.stat().st_mtime_ns, a.read_bytes())
    b = write_connectome_arrays(tmp_path, "toy", "b", _runs(4), _vectors(4, 1), ROIS)
    b_inode = b.stat().st_ino
    # Adding subjects to b replaces b's file (a new inode: written aside, then renamed).
    write_connectome_arrays(tmp_path, "toy", "b", _runs(6), _vectors(6, 2), ROIS)
    assert (a.stat().st_ino, a.stat().st_mtime_ns, a.read_bytes()) == before
    assert b.stat().st_ino != b_inode and pq.read_metadata(b).num_rows == 6
    assert sorted(os.listdir(b.parent)) == ["part-0.parquet"]  # no temporary left behind


def test_failed_write_leaves_the_old_partition(tmp_path: Path) -> None:
    out = write_connectome_arrays(tmp_path, "toy", "a", _runs(4), _vectors(4, 0), ROIS)
    old = out.read_bytes()
    bad = _vectors(4, 1)
    bad[2, 5] = np.nan
    with pytest.raises(InputDataError, match=r"run sub-s001_run-1 has non-finite values"):
        write_connectome_arrays(tmp_path, "toy", "a", _runs(4), bad, ROIS)
    assert out.read_bytes() == old and sorted(os.listdir(out.parent)) == ["part-0.parquet"]


@pytest.mark.parametrize(
    ("runs", "vectors", "match"),
    [
        (_runs(4).drop(columns="subject"), _vectors(4, 0), "has no 'subject' column"),
        (pd.concat([_runs(2), _runs(2)]), _vectors(4, 0), "duplicate run"),
        (_runs(5), _vectors(4, 0), "4 connectomes for 5 runs"),
        (_runs(3), _vectors(4, 0), "more connectomes than the 3 runs"),
        (_runs(4), _vectors(4, 0)[:, :20], r"shape \(4, 20\).*expected \(n, 21\)"),
    ],
)
def test_bad_arrays_are_refused(tmp_path: Path, runs, vectors, match) -> None:
    with pytest.raises(InputDataError, match=match):
        write_connectome_arrays(tmp_path, "toy", "a", runs, vectors, ROIS)
    assert not connectome_path(tmp_path, "toy", "a").exists()


def test_dataset_with_another_atlas_is_refused(tmp_path: Path) -> None:
    write_connectome_arrays(tmp_path, "toy", "a", _runs(2), _vectors(2, 0), ROIS)
    other = [f"r{i}" for i in range(6)]
    vec = np.zeros((2, n_edges(6)), dtype=np.float32)
    with pytest.raises(InputDataError, match=r"its 6 ROIs differ from the 7 ROIs stored"):
        write_connectome_arrays(tmp_path, "toy", "b", _runs(2), vec, other)
    assert not connectome_path(tmp_path, "toy", "b").exists()
