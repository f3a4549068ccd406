"""The connectome QC table's one owner: the writer, the store, the report and the motion checks
name its columns through lcm.io.qc_table."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.connectome import qc as writer
from lcm.evaluate.motion import QC_NEEDED
from lcm.exceptions import InputDataError
from lcm.io import qc_table
from lcm.io.store_columns import STORE_QC_COLUMNS
from lcm.report.tables import QC_REQUIRED, read_qc


def test_the_writer_and_every_reader_share_the_owners_column_names() -> None:
    assert writer.QC_COLUMNS is qc_table.QC_COLUMNS
    assert len(set(qc_table.QC_COLUMNS)) == len(qc_table.QC_COLUMNS)
    read = {*QC_REQUIRED, *QC_NEEDED, *STORE_QC_COLUMNS, *qc_table.QC_LABELS}
    assert read <= set(qc_table.QC_COLUMNS)


def test_a_table_the_writer_wrote_passes_the_report_and_one_without_mean_fd_does_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "seg-x_qc.tsv"
    record = writer.new_qc("d", subject="01", run_key="sub-01_run-1", included=True, mean_fd=0.1)
    table = writer.qc_frame([record])
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    assert read_qc([path])[qc_table.MEAN_FD].tolist() == [0.1]
    table.drop(columns=qc_table.MEAN_FD).to_csv(path, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputDataError, match=r"seg-x_qc\.tsv lacks column\(s\) \['mean_fd'\]"):
        read_qc([path])
