"""A write that runs out of room (ENOSPC, EDQUOT, EFBIG) is one error naming the output and the fix.

The writers' own errors named no file (pyarrow's ``[Errno 28] Error writing bytes to file``)
or only in Rust's words (safetensors' ``... os error 28 ...``); the CLI reported either as an
unexpected error (exit 1) with a traceback.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers.model import CLI_CATALOGUE, TINY, add_store_dataset
from safetensors import SafetensorError

import lcm.model.weights as weights
from lcm.cli import main
from lcm.exceptions import OutputSpaceError
from lcm.io.atomic import atomic_path
from lcm.io.disk_full import disk_full_error, no_room_errno
from lcm.model.weights import save_tensors

pytestmark = pytest.mark.hostile

FIX = "Free space, or point results_dir"


def _full_save_file(*args, **kwargs):
    raise SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
        'space left on device" })'
    )


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_no_room_is_found_in_the_chain_of_causes(code: int) -> None:
    try:
        try:
            raise OSError(code, "no room")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as exc:
        assert no_room_errno(exc) == code
    assert no_room_errno(SafetensorError("IoError(Os { code: 122, kind: x })")) == errno.EDQUOT
    assert no_room_errno(OSError(errno.EACCES, "denied")) is None
    assert no_room_errno(ValueError("No space left on device (os error 28)")) == errno.ENOSPC
    assert no_room_errno(ValueError("os error 2")) is None


def test_atomic_write_names_the_destination_not_the_temporary(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1]}), out)
    with pytest.raises(OSError) as info, atomic_path(out) as tmp:
        raise OSError(errno.ENOSPC, "Error writing bytes to file", str(tmp))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # no temporary left
    assert pq.read_table(out).column("a").to_pylist() == [1]  # the earlier output intact


def test_safetensors_out_of_room_carries_the_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(weights, "save_file", _full_save_file)
    out = tmp_path / "model.safetensors"
    with pytest.raises(OSError) as info:
        save_tensors({"w": torch.zeros(2)}, out)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(out)
    assert isinstance(info.value.__cause__, SafetensorError)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_error_names_output_free_space_and_fix(tmp_path: Path) -> None:
    exc = OSError(errno.EDQUOT, "Disk quota exceeded")  # no file named: the output is
    error = disk_full_error(exc, [str(tmp_path / "pt")], "lcm pretrain", "--out-dir")
    assert isinstance(error, OutputSpaceError) and error.exit_code not in (0, 1)
    text = str(error)
    assert f"could not write {tmp_path / 'pt'}: Disk quota exceeded" in text
    assert " free there" in text and "Outputs written earlier are intact" in text
    assert "point results_dir (or --out-dir) to a file system with room" in text
    assert disk_full_error(ValueError("bug"), [], "lcm pretrain") is None


def test_pretrain_on_a_full_disk_exits_with_the_fix(tmp_path: Path, monkeypatch, capfd) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 24, seed=0)
    monkeypatch.setattr(weights, "save_file", _full_save_file)
    out = tmp_path / "pt"
    code = main(
        [
            "pretrain",
            "--store",
            str(tmp_path / "store"),
            "--atlas",
            "toy",
            "--catalogue",
            str(catalogue),
            "--datasets",
            "alpha",
            "--model",
            json.dumps(TINY),
            "--settings",
            '{"epochs": 1, "batch_size": 8, "checkpoint_every": 1}',
            "--seed",
            "1",
            "--out-dir",
            str(out),
            "--threads",
            "1",
        ]
    )
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code != 1
    assert "Traceback" not in err and "unexpected" not in err
    assert f"could not write {out}/" in err and "No space left on device" in err
    assert FIX in err and "(or --out-dir)" in err, err


def test_store_on_a_full_disk_exits_with_the_fix(tmp_path: Path, monkeypatch, capfd) -> None:
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp_path, tmp_path / "store", catalogue, "alpha", "toy", 12, seed=0)
    before = {p: p.read_bytes() for p in (tmp_path / "store").rglob("*.parquet")}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Error writing bytes to file")

    monkeypatch.setattr(pq, "write_table", full)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    code = main(_store_args(tmp_path, catalogue))
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert "Traceback" not in err and "No space left on device" in err
    assert str(tmp_path / "store") in err and FIX in err
    assert {p: p.read_bytes() for p in (tmp_path / "store").rglob("*.parquet")} == before
    # The partition it could not write, not only the store's folder.
    part = tmp_path / "store" / "connectomes" / "atlas=toy" / "dataset=alpha" / "part-0.parquet"
    assert f"could not write {part}" in err, err


def _store_args(tmp_path: Path, catalogue: Path) -> list[str]:
    """`lcm store` rewriting dataset alpha from the inputs add_store_dataset left."""
    folder = tmp_path / "alpha-toy"
    return [
        "store",
        "--dataset",
        "alpha",
        "--qc-table",
        str(folder / "qc.tsv"),
        "--phenotype",
        str(folder / "pheno.tsv"),
        "--catalogue",
        str(catalogue),
        "--atlas",
        "toy",
        "--store-dir",
        str(tmp_path / "store"),
    ]
