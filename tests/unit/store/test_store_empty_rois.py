"""A run's empty ROIs are marked in the store, not only stored as r = 0.

A parcel covered less than ``atlas.min_coverage`` (outside the field of view) has an
all-zero signal and its edges are 0: in the store nothing told them from a real r = 0, so a
pandas or DuckDB user trained on imputed zeros. ``n_empty_rois`` and ``empty_rois`` (schema
version 4) name them; partitions of version 3 still read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.exceptions import InputDataError
from lcm.io.relmat import write_relmat
from lcm.store.read import read_connectome_triangles, read_runs
from lcm.store.writer import write_connectomes

NAMES = ["L Amyg", "R Amyg", "Out_FOV", "PCC", "mPFC"]


def _qc(tmp_path: Path, empty: list[str]) -> pd.DataFrame:
    """Two included runs of five ROIs; the first with ``empty`` zeroed as the stage writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        x = rng.standard_normal((40, len(NAMES)))
        gone = [NAMES.index(n) for n in empty] if i == 0 else []
        x[:, gone] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            fc = np.nan_to_num(np.corrcoef(x, rowvar=False))
        path = tmp_path / f"sub-0{i + 1}_relmat.tsv"
        write_relmat(path, NAMES, fc.astype(np.float32))
        rows.append(
            {
                "subject": f"0{i + 1}",
                "run_key": f"sub-0{i + 1}_task-rest",
                "included": "True",
                "relmat": str(path),
                # As the QC TSV holds it: comma-separated names.
                "empty_rois": ",".join(empty) if i == 0 else "",
            }
        )
    return pd.DataFrame(rows)


def _store(tmp_path: Path, empty: list[str]) -> Path:
    pheno = pd.DataFrame({"subject": ["01", "02"], "site": ["A", "A"]})
    store = tmp_path / "store"
    write_connectomes(store, "toy", "ds", _qc(tmp_path, empty), pheno)
    return store


def test_empty_rois_are_named_in_the_store_read_as_the_readme_says(tmp_path: Path) -> None:
    store = _store(tmp_path, ["Out_FOV"])
    runs = pd.read_parquet(store / "connectomes" / "atlas=toy")  # README: without LCM
    edges = np.frombuffer(b"".join(runs["connectome"]), "<f4").reshape(len(runs), -1)
    assert runs["n_empty_rois"].tolist() == [1, 0] and runs["n_empty_rois"].dtype == np.int32
    assert [list(e) for e in runs["empty_rois"]] == [["Out_FOV"], []]
    # The zeros the marker explains: every edge of Out_FOV in the first run.
    rows, cols = np.triu_indices(len(NAMES), k=1)
    touching = (rows == NAMES.index("Out_FOV")) | (cols == NAMES.index("Out_FOV"))
    assert (edges[0, touching] == 0).all() and (edges[1, touching] != 0).all()
    # LCM's readers carry the columns too.
    assert read_runs(store, "toy", ["ds"])["n_empty_rois"].tolist() == [1, 0]
    meta = pq.read_schema(next((store / "connectomes").rglob("*.parquet"))).metadata
    assert meta[b"lcm.schema_version"] == b"5"


def test_a_version_3_partition_without_the_columns_still_reads(tmp_path: Path) -> None:
    store = _store(tmp_path, [])
    (path,) = (store / "connectomes").rglob("*.parquet")
    table = pq.read_table(path).drop(["n_empty_rois", "empty_rois"])
    meta = {**table.schema.metadata, b"lcm.schema_version": b"3"}
    pq.write_table(table.replace_schema_metadata(meta), path)
    frame, vecs, names = read_connectome_triangles(store, "toy", "ds")
    assert names == NAMES and vecs.shape == (2, 10) and "n_empty_rois" not in frame
    assert read_runs(store, "toy", ["ds"])["subject"].tolist() == ["01", "02"]


def test_an_empty_roi_of_another_atlas_is_refused(tmp_path: Path) -> None:
    qc = _qc(tmp_path, ["Out_FOV"])
    qc.loc[0, "empty_rois"] = "Out_FOV,Thalamus"
    pheno = pd.DataFrame({"subject": ["01", "02"], "site": ["A", "A"]})
    with pytest.raises(InputDataError, match=r"empty ROIs \['Thalamus'\] that are not ROIs"):
        write_connectomes(tmp_path / "store", "toy", "ds", qc, pheno)


def test_an_empty_roi_whose_name_holds_a_comma_is_one_roi(tmp_path: Path) -> None:
    """The QC TSV joins names with commas; Harvard-Oxford's names hold commas too."""
    from lcm.store.writer import _empty_roi_names

    names = ["Insular Cortex", "Insular Cortex, anterior", "Frontal Pole", "PCC"]
    cell = "Insular Cortex, anterior,Frontal Pole"
    assert _empty_roi_names(cell, names) == ["Insular Cortex, anterior", "Frontal Pole"]
    assert _empty_roi_names("Insular Cortex,PCC", names) == ["Insular Cortex", "PCC"]
    assert _empty_roi_names(["PCC"], names) == ["PCC"] and _empty_roi_names("", names) == []
