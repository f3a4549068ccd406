"""Files an earlier connectome call wrote with other settings: removed when LCM's, else left."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np

from lcm.bids.runs import run_ids_from_key
from lcm.connectome.matrices import write_run_matrices
from lcm.connectome.outputs import remove_stale_dataset_files, remove_stale_run_files
from lcm.connectome.settings import ConnectomeSettings
from lcm.io.provenance import write_sidecar
from lcm.io.relmat import write_relmat

RUN = "sub-01_task-rest_run-1"


def _lcm_file(folder: Path, name: str) -> Path:
    path = folder / name
    write_relmat(path, ["a", "b"], np.eye(2))
    write_sidecar(path, [])
    return path


def test_a_run_named_by_any_of_its_records_keeps_its_files(tmp_path: Path) -> None:
    """A run's file of another parcellation is a record of its own, naming no matrix: the
    matrices the run's other record names are kept, the earlier call's others removed."""
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    read = _lcm_file(func, f"{RUN}_seg-aal116_stat-pearsoncorrelation_relmat.tsv")
    stale = _lcm_file(func, f"{RUN}_seg-aal116_stat-partialcorrelation_relmat.tsv")
    other_atlas = _lcm_file(func, f"{RUN}_seg-schaefer100_stat-partialcorrelation_relmat.tsv")
    records = [
        {"run_key": RUN, "relmat": str(read), "relmats": [str(read)]},
        {"run_key": RUN, "relmat": "", "reason_code": "other_atlas"},
        {"run_key": "", "relmat": ""},  # a file ingest could not name a run for
        {"run_key": "sub-0 1_task-rest"},  # an invalid key: nothing of it was written
    ]
    assert remove_stale_dataset_files(tmp_path, "aal116", records) == [stale]
    assert read.is_file() and read.with_suffix(".json").is_file()
    assert not stale.exists() and not stale.with_suffix(".json").exists()
    assert other_atlas.is_file()


def _write_matrices(out: Path, settings: ConnectomeSettings):
    """One run's matrices, as the connectome stage writes them."""
    signals = np.random.default_rng(0).normal(size=(40, 3))
    empty = np.zeros(3, bool)
    ids = run_ids_from_key(RUN)
    return write_run_matrices(
        out, ids, None, "aal116", ["a", "b", "c"], signals, empty, settings, [], {}
    )


def _killed_writing(out: Path, kill_at: int) -> int:
    """Write Pearson, partial and their Fisher z copies in a child SIGKILLed at its
    ``kill_at``-th rename (every atomic write renames, and so do the record's steps)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        calls, replace = [0], os.replace

        def killing_replace(src, dst):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            replace(src, dst)

        os.replace = killing_replace
        try:
            _write_matrices(out, ConnectomeSettings(kinds=("pearson", "partial"), fisher_z=True))
        finally:
            os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_matrix_left_by_a_writer_killed_between_its_two_writes_goes_on_a_rerun(
    tmp_path: Path,
) -> None:
    """Killed between a matrix and its record, the connectome stage left the matrix with no
    record: a rerun with other settings (no Fisher z, no partial) kept it, for good, beside
    the new files. Killed at any rename, no file of this run is left but the rerun's."""
    for kill_at in range(1, 9):  # through the Fisher z copy of Pearson, which the rerun drops
        out = tmp_path / f"kill{kill_at}"
        assert _killed_writing(out, kill_at) == -signal.SIGKILL, kill_at
        mats = _write_matrices(out, ConnectomeSettings())
        remove_stale_run_files(out, RUN, "aal116", mats.qc_facts())
        func = out / "sub-01" / "func"
        left = sorted(p.name for p in func.iterdir())
        pearson = mats.relmat.name
        assert left == [pearson.replace(".tsv", ".json"), pearson], (kill_at, left)


def test_a_foreign_json_where_a_record_goes_is_refused_before_the_matrix_is_written(
    tmp_path: Path,
) -> None:
    """The record was refused only after its matrix was written: a matrix with no record."""
    import pytest

    from lcm.exceptions import ConfigError

    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    theirs = func / f"{RUN}_seg-aal116_stat-pearsoncorrelation_relmat.json"
    theirs.write_text('{"Sources": "an XCP-D sidecar"}')
    with pytest.raises(ConfigError, match="not an LCM provenance record"):
        _write_matrices(tmp_path, ConnectomeSettings())
    assert sorted(p.name for p in func.iterdir()) == [theirs.name]
    assert theirs.read_text() == '{"Sources": "an XCP-D sidecar"}'
