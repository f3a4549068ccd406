"""``lcm store``'s reading of its inputs as ``lcm report`` reads them: the QC table's one
contract (lcm.io.qc_table.QC_REQUIRED), and phenotype rows that join no run, logged."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_store_settings import SUBJECTS, _roi_dataset

from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.reason_codes import TOO_FEW_VOLUMES
from lcm.report.tables import read_qc


def _store(qc: Path, pheno: Path, catalogue: Path, store: Path, *, rule: bool = False) -> int:
    argv = [
        *(["--rule", "store"] if rule else []),
        "store",
        "--dataset",
        "roids",
        "--qc-table",
        str(qc),
        "--phenotype",
        str(pheno),
    ]
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


def _rewrite(qc: Path, table: pd.DataFrame) -> None:
    table.to_csv(qc, sep="\t", index=False)


def _read(qc: Path) -> pd.DataFrame:
    return pd.read_csv(qc, sep="\t", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("rule", [False, True], ids=["command_line", "rule"])
def test_a_qc_table_of_another_dataset_is_refused_naming_both_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: bool
) -> None:
    """A QC table of another dataset, passed by mistake, was stored under --dataset: its
    connectomes in the wrong partition, joined to the wrong phenotype."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    _rewrite(qc, _read(qc).assign(dataset="hcplike"))
    capsys.readouterr()
    assert _store(qc, pheno, catalogue, tmp_path / "store", rule=rule) != 0
    err = capsys.readouterr().err
    assert f"QC table {qc} holds the runs of dataset(s) ['hcplike'] (its 'dataset' column)" in err
    if rule:
        # The workflow passes the dataset's own table: the file there is the one to replace.
        assert "not of dataset 'roids'" in err
        assert f"Put back the QC table the connectome stage wrote for 'roids' at {qc}" in err
        assert "--dataset" not in err
    else:
        assert "not of --dataset 'roids'" in err
        # The fix: the dataset's own table (where the connectome stage writes it), or the name.
        assert "connectome/roids/seg-toy_qc.tsv" in err
        assert "--dataset hcplike if this table is the one meant" in err
    assert not (tmp_path / "store").exists()


def test_a_qc_table_of_several_datasets_stores_the_runs_of_dataset_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lcm connectome collect` writes the records it is given into one table, of several
    datasets if given theirs (as `lcm report` reads them): `lcm store` takes the rows of
    --dataset, not the other datasets' runs as its own."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    table = _read(qc)
    other = table.assign(dataset="hcplike", subject=["9" + s for s in table["subject"]])
    _rewrite(qc, pd.concat([other, table], ignore_index=True))
    capsys.readouterr()
    store = tmp_path / "store"
    assert _store(qc, pheno, catalogue, store) == 0
    err = capsys.readouterr().err
    stored = pq.read_table(connectome_path(store, "toy", "roids"), columns=["subject"])
    assert sorted(set(stored.column("subject").to_pylist())) == list(SUBJECTS)
    assert len(stored) == len(table) * 2  # two windows a run, of roids' runs alone
    # The other dataset's subjects are not "scanned subjects absent from the phenotype".
    assert "absent from" not in err
    assert f"QC table {qc} holds datasets ['hcplike', 'roids']: storing the {len(table)}" in err


def test_a_phenotype_row_whose_every_run_was_excluded_is_logged_with_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scanned subject whose runs were all excluded (motion) joins no run either: its row
    was left out with no line, the unscanned rows' log naming only subjects never scanned."""
    qc, pheno, catalogue = _roi_dataset(tmp_path)
    table = _read(qc)
    out = table["subject"] == "02"
    table.loc[out, ["included", "reason", "reason_code"]] = [
        "false",
        "96 of 120 volumes scrubbed (FD > 0.5 mm): 24 kept",
        TOO_FEW_VOLUMES,
    ]
    _rewrite(qc, table)
    capsys.readouterr()
    store = tmp_path / "store"
    assert _store(qc, pheno, catalogue, store) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "every run excluded" in line]
    assert len(lines) == 1
    assert lines[0].endswith(
        f"INFO lcm.store.phenotype: roids: 1 phenotype row subject(s) of {pheno} have scans "
        "but every run excluded, so no run to join: not used (02); their runs' reasons: "
        f"{TOO_FEW_VOLUMES}: 1 run ({table.loc[out, 'run_key'].iloc[0]}), "
        'e.g. "96 of 120 volumes scrubbed (FD > 0.5 mm): 24 kept"'
    )
    stored = pq.read_table(connectome_path(store, "toy", "roids"), columns=["subject"])
    assert "02" not in stored.column("subject").to_pylist()
