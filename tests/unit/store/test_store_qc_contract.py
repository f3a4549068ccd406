"""``lcm store``'s reading of its inputs as ``lcm report`` reads them: the QC table's one
contract (lcm.io.qc_table.QC_REQUIRED), and phenotype rows that join no run, logged."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from test_store_settings import _roi_dataset

from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.report.tables import read_qc


def _store(qc: Path, pheno: Path, catalogue: Path, store: Path) -> int:
    argv = ["store", "--dataset", "roids", "--qc-table", str(qc), "--phenotype", str(pheno)]
    argv += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(store)]
    return main(argv)


def test_a_qc_table_without_dataset_is_refused_by_store_as_by_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lcm store` stored a QC table without a `dataset` column that `lcm report` refused."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    table = pd.read_csv(qc, sep="\t", dtype=str, keep_default_na=False)
    table.drop(columns="dataset").to_csv(qc, sep="\t", index=False)
    lacks = rf"QC table {re.escape(str(qc))} lacks column\(s\) \['dataset'\]"
    with pytest.raises(InputDataError, match=lacks):
        read_qc([qc])
    capsys.readouterr()
    assert _store(qc, pheno, catalogue, tmp_path / "store") != 0
    assert re.search(lacks, capsys.readouterr().err)
    assert not (tmp_path / "store").exists()


def test_a_phenotype_row_without_a_scan_is_logged_with_its_subject_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A phenotype row of a subject never scanned joins no run: it was left out silently
    (every scanned subject having a row, no other line named it)."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    pheno.write_text(pheno.read_text() + "09\t40\n08\t41\n")
    capsys.readouterr()
    assert _store(qc, pheno, catalogue, tmp_path / "store") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "have no scan" in line]
    assert len(lines) == 1
    assert lines[0].endswith(
        f"INFO lcm.store.phenotype: roids: 2 phenotype row subject(s) of {pheno} have no "
        "scan, so no run to join: not used (08, 09)"
    )
