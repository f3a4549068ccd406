"""A dataset's partitions record the hash of its rows of the QC table, not of the whole file.

``lcm connectome collect`` writes a table of several datasets when given their records, and
``lcm store --dataset`` stores its dataset's rows of it. The partitions recorded the whole
file's sha256 (``qc_table_sha256``) in the content their rerun is compared on: another
dataset's rows changing rewrote this dataset's partitions with a new commit id, though not one
of its runs had changed, and `lcm provenance verify` called everything read from them stale.
A table of one dataset (the workflow's) still records its file's sha256, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.connectome import connectome_timeseries

from lcm.bids.ingest import ingest
from lcm.cli import main, setup_logging
from lcm.io.atomic import write_tsv
from lcm.io.paths import connectome_path
from lcm.io.provenance import sha256_file
from lcm.io.qc_table import read_qc_table
from lcm.store.qc_digest import qc_rows_sha256

NAMES = [f"Net_{i:02d}" for i in range(5)]
SUBJECTS = ("01", "02", "03")
CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
datasets:
  alpha:
    id_column: participant_id
    columns:
      age: {column: age}
"""


def _qc_table(tmp_path: Path, dataset: str, labels: Path, series: Path) -> Path:
    """The QC table of ``dataset`` by the real connectome stage (ROI time series)."""
    manifest = tmp_path / dataset / "manifest.parquet"
    ingest(dataset, "roi_timeseries", series, manifest, repetition_time=2.0)
    qc = tmp_path / dataset / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / dataset / "conn",
        qc_table=qc,
        dataset=dataset,
        atlas="toy",
        labels=labels,
    )
    assert rc == 0
    return qc


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """QC tables of datasets alpha and beta, one table of both, alpha's phenotype, catalogue."""
    labels = tmp_path / "atlas.tsv"
    labels.write_text("name\n" + "\n".join(NAMES) + "\n")
    series = tmp_path / "series"
    series.mkdir()
    rng = np.random.default_rng(5)
    for sub in SUBJECTS:
        np.save(series / f"sub-{sub}.npy", rng.standard_normal((80, len(NAMES))))
    alpha = _qc_table(tmp_path, "alpha", labels, series)
    beta = _qc_table(tmp_path, "beta", labels, series)
    both = tmp_path / "both.tsv"
    # Beta's rows between alpha's: the hash follows alpha's rows, not where they sit.
    a, b = read_qc_table(alpha), read_qc_table(beta)
    write_tsv(both, pd.concat([a.iloc[:1], b, a.iloc[1:]], ignore_index=True))
    pheno = tmp_path / "participants.tsv"
    pheno.write_text("participant_id\tage\n" + "".join(f"{s}\t{20 + int(s)}\n" for s in SUBJECTS))
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    return {"alpha": alpha, "beta": beta, "both": both, "pheno": pheno, "catalogue": catalogue}


def _edit(path: Path, dataset: str, subject: str, column: str, value: str) -> None:
    """Set one cell of a QC table, as a user's script rewriting it would."""
    qc = read_qc_table(path)
    qc.loc[(qc["dataset"] == dataset) & (qc["subject"] == subject), column] = value
    write_tsv(path, qc)


def _store(inputs: dict[str, Path], store: Path, log: Path) -> tuple[str, str]:
    """``lcm store --dataset alpha`` of the table of both: its partition's commit id and the
    recorded ``qc_table_sha256``."""
    argv = ["--log-file", str(log), "store", "--dataset", "alpha"]
    argv += ["--qc-table", str(inputs["both"]), "--phenotype", str(inputs["pheno"])]
    argv += ["--catalogue", str(inputs["catalogue"]), "--atlas", "toy", "--store-dir", str(store)]
    try:
        assert main(argv) == 0
    finally:
        setup_logging()
    meta = pq.read_metadata(connectome_path(store, "toy", "alpha")).metadata
    settings = json.loads(meta[b"lcm.provenance"])["settings"]
    return meta[b"lcm.commit"].decode(), settings["qc_table_sha256"]


def test_another_datasets_rows_changing_keeps_the_partitions(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    store, log = tmp_path / "store", tmp_path / "store.log"
    commit, digest = _store(inputs, store, log)
    assert digest != sha256_file(inputs["both"])
    # Beta's run excluded after the fact: alpha's runs are as they were.
    _edit(inputs["both"], "beta", "02", "mean_fd", "0.75")
    assert _store(inputs, store, log) == (commit, digest)
    assert "alpha unchanged" in log.read_text()
    # One of alpha's own rows changing still commits anew.
    _edit(inputs["both"], "alpha", "02", "mean_fd", "0.75")
    new_commit, new_digest = _store(inputs, store, log)
    assert new_commit != commit and new_digest != digest


def test_a_table_of_one_dataset_hashes_as_its_file(inputs: dict[str, Path]) -> None:
    # The workflow's table: the value partitions recorded before, so none is rewritten for it.
    assert qc_rows_sha256(inputs["alpha"], "alpha") == sha256_file(inputs["alpha"])
    # The rows of one dataset of several: the same whatever the other's rows.
    before = qc_rows_sha256(inputs["both"], "alpha")
    assert before != qc_rows_sha256(inputs["both"], "beta")
    _edit(inputs["both"], "beta", "01", "reason", "a note")
    assert qc_rows_sha256(inputs["both"], "alpha") == before
