"""Files an earlier connectome call wrote with other settings: removed when LCM's, else left."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcm.connectome.outputs import remove_stale_dataset_files
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
