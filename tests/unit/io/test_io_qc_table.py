"""The connectome QC table's one owner: the writer, the store, the report and the motion checks
name its columns through lcm.io.qc_table."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.connectome import qc as writer
from lcm.evaluate.motion import QC_NEEDED, subject_mean_fd
from lcm.exceptions import InputDataError
from lcm.io import qc_table
from lcm.io.atomic import write_tsv
from lcm.io.store_columns import STORE_QC_COLUMNS
from lcm.report.tables import qc_counts, read_qc


def test_the_writer_and_every_reader_share_the_owners_column_names() -> None:
    assert writer.QC_COLUMNS is qc_table.QC_COLUMNS
    assert len(set(qc_table.QC_COLUMNS)) == len(qc_table.QC_COLUMNS)
    read = {*qc_table.QC_REQUIRED, *QC_NEEDED, *STORE_QC_COLUMNS, *qc_table.QC_LABELS}
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


def test_the_report_reads_labels_like_na_as_labels_as_the_store_does(tmp_path: Path) -> None:
    # BIDS labels are letters and digits: NA, None and nan are subjects. The report's read took
    # them for missing cells (pandas' own missing-value words) while `lcm store` stored their
    # runs: the page counted 0 subjects and the motion check found no mean FD for them.
    path = tmp_path / "seg-x_qc.tsv"
    path.write_text(
        "dataset\tsubject\tsession\trun_key\tincluded\treason\tmean_fd\n"
        "d\tNA\t\tsub-NA_run-1\ttrue\t\t0.1\n"
        "d\tNone\tn/a\tsub-None_run-1\ttrue\t\tNA\n"
        "d\tnan\tNULL\tsub-nan_run-1\ttrue\t\t0.3\n"
    )
    report = read_qc([path])
    subjects = ["NA", "None", "nan"]
    assert report[qc_table.SUBJECT].tolist() == subjects
    assert qc_table.read_qc_table(path)[qc_table.SUBJECT].tolist() == subjects
    # An empty or n/a label is still missing; numbers keep pandas' missing words.
    assert report[qc_table.SESSION].isna().tolist() == [True, True, False]
    assert report[qc_table.MEAN_FD].isna().tolist() == [False, True, False]
    assert qc_counts(report)["subjects included"].tolist() == [3]
    assert subject_mean_fd(report).to_dict() == {("d", "NA"): 0.1, ("d", "nan"): 0.3}


@pytest.mark.parametrize("cut", ["mid-row", "short row"])
@pytest.mark.parametrize("typed", [False, True])
def test_a_table_cut_short_is_refused_naming_it(tmp_path: Path, cut: str, typed: bool) -> None:
    """A QC table cut mid-row (a full disk, an interrupted copy) was read: its last run's
    relmat path cut short was refused as a missing matrix, the table unnamed, and fields a
    short row lacked became empty cells."""
    path = tmp_path / "seg-x_qc.tsv"
    records = [
        writer.new_qc("d", subject=s, run_key=f"sub-{s}_run-1", included=True, mean_fd=0.1)
        for s in ("01", "02")
    ]
    writer.qc_frame(records).to_csv(path, sep="\t", index=False, na_rep="n/a")
    whole = path.read_text()
    assert len(qc_table.read_qc_table(path, typed=typed)) == 2
    last = whole.rstrip("\n").rsplit("\n", 1)[1]
    first_fields = "\t".join(last.split("\t")[:3])
    body = whole[:-5] if cut == "mid-row" else whole.replace(last, first_fields)
    path.write_text(body)
    with pytest.raises(
        InputDataError, match=r"seg-x_qc\.tsv is cut short \((line 3|no final)"
    ) as e:
        qc_table.read_qc_table(path, typed=typed)
    assert "Rerun the connectome stage" in e.value.hint


def test_a_whole_table_with_a_reason_over_two_lines_is_read(tmp_path: Path) -> None:
    """A reason holding a newline and a tab (an error's text) is a quoted cell of a whole
    table: the check of a table cut short counted its lines as short rows and refused it."""
    path = tmp_path / "seg-x_qc.tsv"
    reason = "cannot read the run:\nline two\tafter a tab"
    records = [
        writer.new_qc("d", subject="01", run_key="sub-01_run-1", included=False, reason=reason),
        writer.new_qc("d", subject="02", run_key="sub-02_run-1", included=True, mean_fd=0.1),
    ]
    write_tsv(path, writer.qc_frame(records))
    for typed in (False, True):
        read = qc_table.read_qc_table(path, typed=typed)
        assert read[qc_table.REASON].tolist()[0] == reason and len(read) == 2
