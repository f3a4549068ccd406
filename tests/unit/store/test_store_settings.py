"""A store file alone says how its connectomes were made, and counts its volumes in integers.

Schema version 4 held neither: the denoising and connectome settings (strategy, filters,
scrubbing thresholds, kinds, windows) were only in the connectome stage's sidecars, which do
not travel with a store file, and ``n_volumes`` / ``n_volumes_kept`` were float64. Version 5
records the settings of every stored row in ``lcm.connectome_settings`` (read with pyarrow
alone) and stores the counts as int32; partitions of earlier versions still read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.connectome import connectome_timeseries, imported_qc, roi_fc

from lcm.bids.ingest import ingest
from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.io.relmat import write_relmat
from lcm.store.read import read_runs
from lcm.store.writer import write_connectome_arrays, write_connectomes

# The key a user reads (README, "Reading the feature store without LCM").
SETTINGS = b"lcm.connectome_settings"
NAMES = [f"Net_{i:02d}" for i in range(7)]
SUBJECTS = ("01", "02", "03")
N_VOL = 120
CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
datasets:
  roids:
    id_column: participant_id
    columns:
      age: {column: age}
"""
DENOISE = {"min_dof": None, "high_pass": 0.02, "low_pass": 0.09, "detrend": False}
CONNECTOME = {"kinds": ["pearson", "partial"], "window": {"length": 60}}


def _roi_dataset(tmp_path: Path) -> tuple[Path, Path, Path]:
    """ROI time series of three subjects through the real connectome stage: its QC table, a
    phenotype and a catalogue for ``lcm store``."""
    labels = tmp_path / "atlas.tsv"
    labels.write_text("name\n" + "\n".join(NAMES) + "\n")
    root = tmp_path / "series"
    root.mkdir()
    rng = np.random.default_rng(3)
    for sub in SUBJECTS:
        shared = rng.standard_normal((N_VOL, 1))
        np.save(root / f"sub-{sub}.npy", shared + rng.standard_normal((N_VOL, len(NAMES))))
    manifest = tmp_path / "manifest.parquet"
    ingest("roids", "roi_timeseries", root, manifest, repetition_time=2.0)
    qc = tmp_path / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc,
        dataset="roids",
        atlas="toy",
        labels=labels,
        denoise=DENOISE,
        connectome=CONNECTOME,
    )
    assert rc == 0
    pheno = tmp_path / "participants.tsv"
    pheno.write_text("participant_id\tage\n" + "".join(f"{s}\t{20 + int(s)}\n" for s in SUBJECTS))
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    return qc, pheno, catalogue


def test_a_store_file_alone_says_how_its_connectomes_were_made(tmp_path: Path) -> None:
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    store = tmp_path / "store"
    argv = ["store", "--dataset", "roids", "--qc-table", str(qc), "--phenotype", str(pheno)]
    argv += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(store)]
    assert main(argv) == 0
    path = connectome_path(store, "toy", "roids")

    # What a user auditing the file sees, with pyarrow alone.
    meta = pq.read_metadata(path).metadata
    assert meta[b"lcm.schema_version"] == b"5"
    (made,) = json.loads(meta[SETTINGS])
    # Two windows of 60 volumes per run: six rows, one set of settings.
    assert made["rows"] == 6 and made["origin"] == "computed"
    denoise = made["denoise"]
    assert (denoise["high_pass"], denoise["low_pass"], denoise["detrend"]) == (0.02, 0.09, False)
    assert denoise["strategy"] == "none"  # ROI series: no confound regression applied
    assert {"fd_threshold", "dvars_threshold", "standardize", "min_volumes"} <= set(denoise)
    assert made["connectome"] == {
        "kinds": ["pearson", "partial"],
        "fisher_z": False,
        "window": {"length": 60, "step": None},
    }

    schema = pq.read_schema(path)
    assert schema.field("n_volumes").type == pa.int32()
    assert schema.field("n_volumes_kept").type == pa.int32()
    table = pq.read_table(path, columns=["n_volumes", "n_volumes_kept", "window"])
    assert table.column("n_volumes").to_pylist() == [N_VOL] * 6
    assert table.column("window").to_pylist() == [0, 1] * 3
    # LCM's reader gives the same integers.
    runs = read_runs(store, "toy", ["roids"])
    assert runs["n_volumes_kept"].tolist() == [N_VOL] * 6
    assert runs["n_volumes_kept"].dtype == pd.Int32Dtype()  # nullable: <NA> where unknown


def test_matrices_of_another_atlas_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--atlas schaefer100 on the matrices of atlas toy stored them as Schaefer's (and refused
    a real Schaefer dataset stored next): the sidecars say which atlas made them."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    store = tmp_path / "store"
    argv = ["store", "--dataset", "roids", "--qc-table", str(qc), "--phenotype", str(pheno)]
    argv += ["--catalogue", str(catalogue), "--atlas", "schaefer100", "--store-dir", str(store)]
    capsys.readouterr()
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "its sidecar says atlas 'toy', but this partition is atlas 'schaefer100'" in err
    assert "hint: Store dataset 'roids' with --atlas toy" in err
    assert not (store / "connectomes").exists()


def test_imported_connectomes_say_so_and_leave_their_counts_missing(tmp_path: Path) -> None:
    mats = tmp_path / "mats"
    mats.mkdir()
    for i, sub in enumerate(("01", "02")):
        np.savetxt(mats / f"sub-{sub}.csv", roi_fc(116, seed=i), delimiter=",")
    manifest = tmp_path / "manifest.parquet"
    ingest("pcp", "connectome", mats, manifest)
    qc = imported_qc(tmp_path, manifest).reset_index()
    qc["included"] = qc["included"].astype(str)
    pheno = pd.DataFrame({"subject": ["01", "02"], "site": ["A", "A"]})
    out = write_connectomes(tmp_path / "store", "aal116", "pcp", qc, pheno)
    (made,) = json.loads(pq.read_metadata(out).metadata[SETTINGS])
    assert made["rows"] == 2 and made["origin"] == "imported"
    assert made["denoise"] is None and made["connectome"] is None  # LCM cleaned nothing
    column = pq.read_table(out).column("n_volumes")
    assert column.type == pa.int32() and column.null_count == 2


def _hand_made(tmp_path: Path) -> pd.DataFrame:
    """Two relmats without sidecars, as a user or an older stage might leave them."""
    rows = []
    for i, sub in enumerate(("01", "02")):
        path = tmp_path / f"sub-{sub}_relmat.tsv"
        write_relmat(path, NAMES, np.corrcoef(np.random.default_rng(i).standard_normal((7, 40))))
        run_key = f"sub-{sub}_task-rest"
        rows.append({"subject": sub, "run_key": run_key, "included": "True", "relmat": str(path)})
    return pd.DataFrame(rows)


def test_matrices_without_a_record_are_stored_as_unrecorded(tmp_path: Path) -> None:
    pheno = pd.DataFrame({"subject": ["01", "02"], "site": ["A", "A"]})
    out = write_connectomes(tmp_path / "store", "toy", "ds", _hand_made(tmp_path), pheno)
    (made,) = json.loads(pq.read_metadata(out).metadata[SETTINGS])
    assert made == {
        "rows": 2,
        "origin": "unrecorded",
        "denoise": None,
        "connectome": None,
        "space": None,
        "empty_roi_policy": None,
    }


def test_a_damaged_sidecar_is_named_with_the_fix(tmp_path: Path) -> None:
    qc = _hand_made(tmp_path)
    broken = Path(qc["relmat"].iloc[1]).with_suffix(".json")
    broken.write_text('{"Denoise": ')
    pheno = pd.DataFrame({"subject": ["01", "02"], "site": ["A", "A"]})
    with pytest.raises(InputDataError, match=r"sub-02_relmat\.json.*not a JSON object") as exc:
        write_connectomes(tmp_path / "store", "toy", "ds", qc, pheno)
    assert "connectome stage" in exc.value.hint
    assert not (tmp_path / "store" / "connectomes").exists()


@pytest.mark.parametrize("value", [120.5, -1])
def test_a_count_that_is_no_whole_number_is_refused(tmp_path: Path, value: float) -> None:
    runs = pd.DataFrame({"subject": ["01", "02"], "n_volumes": [120, value]})
    vectors = np.zeros((2, 21), np.float32)
    with pytest.raises(InputDataError, match=r"column 'n_volumes' must hold whole numbers"):
        write_connectome_arrays(tmp_path / "s", "toy", "ds", runs, vectors, NAMES)


def test_a_version_4_partition_reads_beside_a_version_5_one(tmp_path: Path) -> None:
    store = tmp_path / "results" / "store"
    for dataset in ("old", "new"):
        runs = pd.DataFrame({"subject": ["01", "02"], "n_volumes": [100, 120]})
        write_connectome_arrays(store, "toy", dataset, runs, np.zeros((2, 21)), NAMES)
    # "old" as version 4 wrote it: float64 counts, no settings.
    path = connectome_path(store, "toy", "old")
    table = pq.read_table(path)
    fields = [
        f.with_type(pa.float64()) if f.name.startswith("n_volumes") else f for f in table.schema
    ]
    meta = {k: v for k, v in table.schema.metadata.items() if k != SETTINGS}
    old = table.cast(pa.schema(fields)).replace_schema_metadata(
        {**meta, b"lcm.schema_version": b"4"}
    )
    pq.write_table(old, path)
    runs = read_runs(store, "toy", ["new", "old"])
    assert runs["n_volumes"].tolist() == [100, 120, 100, 120]
    # pandas reads the folder too (README), whichever file it opens first.
    frame = pd.read_parquet(store / "connectomes" / "atlas=toy")
    assert sorted(frame["n_volumes"].tolist()) == [100, 100, 120, 120]
