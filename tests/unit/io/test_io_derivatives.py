"""The QC table's one reader: its cells, its ``included`` column, its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.connectome.imported import check_connectome
from lcm.connectome.roi_formats import _check_series_shape, other_atlas_fix
from lcm.exceptions import ExcludedRunError, InputDataError
from lcm.io.derivatives import exclusion_reasons, included_mask, list_cell
from lcm.io.qc_table import read_qc_table
from lcm.report.tables import read_qc


def test_list_cell_reads_json_lists_and_tsv_text() -> None:
    assert list_cell(["a.tsv", "", "b.tsv"]) == ["a.tsv", "b.tsv"]
    assert list_cell("a.tsv,b.tsv,,c.tsv") == ["a.tsv", "b.tsv", "c.tsv"]
    assert list_cell(" n/a ") == list_cell("") == list_cell(None) == list_cell(float("nan")) == []


def test_read_qc_table_keeps_text_and_names_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "seg-x_qc.tsv"
    path.write_text(
        "dataset\tsubject\trun_key\tincluded\treason\tmean_fd\trelmats\n"
        "d\t01\tsub-01\ttrue\t\t0.1\tn/a\n"
        "d\t02\tsub-02\tfalse\tx\t0.2\ta.tsv,b.tsv\n"
    )
    qc = read_qc_table(path, required=("subject", "included"))
    assert qc["subject"].tolist() == ["01", "02"] and qc["relmats"].tolist()[0] == "n/a"
    with pytest.raises(InputDataError, match=r"seg-x_qc\.tsv lacks column\(s\) \['relmat'\]"):
        read_qc_table(path, required=("relmat",))
    with pytest.raises(InputDataError, match="Cannot read QC table"):
        read_qc_table(tmp_path / "absent.tsv")


def test_report_and_store_agree_on_included(tmp_path: Path) -> None:
    # A hand-edited "yes" was once reported as included but never stored: now both refuse it.
    values = pd.Series(["true", "1", "False", "0"])
    assert included_mask(values, "t").tolist() == [True, True, False, False]
    path = tmp_path / "qc.tsv"
    row = "d\t01\tr\t{}\t\t0.1\n"
    header = "dataset\tsubject\trun_key\tincluded\treason\tmean_fd\n"
    path.write_text(header + row.format("true") + row.format("yes"))
    with pytest.raises(InputDataError, match=r"must be true or false, got \['yes'\]"):
        included_mask(read_qc_table(path)["included"], str(path))
    with pytest.raises(InputDataError, match=r"must be true or false, got \['yes'\]"):
        read_qc([path])


def test_relative_output_paths_are_found_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    """`lcm connectome import --out-dir out/conn` run in /study writes out/conn/... paths;
    `lcm store` run elsewhere said 'Cannot read connectivity matrix ... Re-run the stage'."""
    study = tmp_path / "study"
    (study / "out" / "conn").mkdir(parents=True)
    for name in ("a.tsv", "w0.tsv", "w1.tsv"):
        (study / "out" / "conn" / name).write_text("x")
    table = study / "out" / "conn" / "qc.tsv"
    table.write_text(
        "dataset\tsubject\trun_key\tincluded\treason\tmean_fd\trelmat\twindow_relmats\n"
        "d\t01\tsub-01\ttrue\t\t0.1\tout/conn/a.tsv\tout/conn/w0.tsv,out/conn/w1.tsv\n"
        "d\t02\tsub-02\tfalse\tx\t0.1\t\tn/a\n"
        "d\t03\tsub-03\ttrue\t\t0.1\tout/conn/gone.tsv\t\n"
    )
    monkeypatch.chdir(tmp_path)  # not the folder the stage ran in
    qc = read_qc_table(table)
    conn = study / "out" / "conn"
    assert qc["relmat"].tolist() == [str(conn / "a.tsv"), "", "out/conn/gone.tsv"]
    assert qc["window_relmats"].tolist()[0] == f"{conn / 'w0.tsv'},{conn / 'w1.tsv'}"
    assert qc["window_relmats"].tolist()[1:] == ["n/a", ""]
    monkeypatch.chdir(study)  # from where it ran: as written
    assert read_qc_table(table)["relmat"].tolist()[0] == "out/conn/a.tsv"


def test_exclusion_reasons_count_runs_per_code_and_cap_the_listing() -> None:
    """Runs counted per reason code (per text where a run has none), the first runs named,
    the other reasons counted; a long reason loses its folders, not its file names."""
    deriv = "/project/derivatives/fmriprep"
    missing = [
        f"fMRIPrep outputs missing in {deriv}: {deriv}/sub-{s}/func/sub-{s}_desc-brain_mask.nii.gz."
        " Run fMRIPrep for this run with --output-spaces MNI152NLin2009cAsym, point the "
        "dataset's derivatives at the folder that holds them, or leave the subject out"
        for s in ("01", "02", "03", "04", "05")
    ]
    table = pd.DataFrame(
        {
            "subject": ["01", "02", "03", "04", "05", "06", "07", "08", "09"],
            "run_key": [f"sub-0{i}_task-rest" for i in range(1, 10)],
            "included": ["false"] * 8 + ["true"],
            "reason_code": ["fmriprep_outputs_missing"] * 5 + ["", "", "tr_mismatch", ""],
            "reason": [*missing, "too short", "bad header", "TR 1.5 s vs 2 s", ""],
        }
    )
    why = exclusion_reasons(table, limit=2, named=2)
    assert why.startswith(
        "fmriprep_outputs_missing: 5 runs (sub-01_task-rest, sub-02_task-rest, +3 more), "
        'e.g. "fMRIPrep outputs missing in fmriprep: sub-01_desc-brain_mask.nii.gz. Run '
    )
    assert deriv not in why and len(why) < 400
    # Three reasons of one run each: one detailed, two counted.
    assert why.endswith("; and 2 other reason(s) for 2 run(s)")
    assert "sub-09" not in why  # the included run
    assert exclusion_reasons(table.assign(included="true")) == "no run listed"


# fMRIPrep's reason for a run without outputs, under a folder with spaces and quotes.
ROOT_WITH_SPACES = "/tmp/user S'1/data/raw study's/derivatives/fmriprep"
NAMES = (
    "sub-04_task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz",
    "sub-04_task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.json",
    "sub-04_task-rest_desc-confounds_timeseries.tsv",
)
MISSING_WITH_SPACES = (
    f"fMRIPrep outputs for space 'MNI152NLin2009cAsym:res-2' missing in {ROOT_WITH_SPACES}: "
    + "; ".join(f"{ROOT_WITH_SPACES}/sub-04/func/{n}" for n in NAMES)
    + " (or desc-confounds_regressors.tsv of fMRIPrep < 20.2). Run fMRIPrep for this run with "
    "--output-spaces MNI152NLin2009cAsym:res-2, point the dataset's derivatives at the folder "
    "that holds them, or leave the subject out (ingest.select.<dataset>.participants.exclude)"
)


def test_a_long_reason_keeps_the_names_of_files_under_folders_with_spaces() -> None:
    """Paths were cut at their first space ('/tmp/' dropped, 'user S'1/data/raw study's/...'
    left, as if relative), and the cut fell before the missing files' names."""
    table = pd.DataFrame(
        {
            "run_key": ["sub-04_task-rest"],
            "included": ["false"],
            "reason_code": ["fmriprep_outputs_missing"],
            "reason": [MISSING_WITH_SPACES],
        }
    )
    why = exclusion_reasons(table)
    assert why == (
        'fmriprep_outputs_missing: 1 run (sub-04_task-rest), e.g. "fMRIPrep outputs for space '
        "'MNI152NLin2009cAsym:res-2' missing in fmriprep: "
        + "; ".join(NAMES)
        + " ... Run "
        + MISSING_WITH_SPACES.split(". Run ", 1)[1]
        + '"'
    )
    assert "user S'1" not in why and "study's" not in why


def _reason(check, *args) -> str:
    with pytest.raises(ExcludedRunError) as err:
        check(*args)
    return err.value.one_line()  # as the QC table words it


def test_a_shortened_reason_keeps_its_fix() -> None:
    """Reasons were cut at 160 characters, losing what to do ("... it loo...", "convert them
    with numpy.t..."): the cut now falls in the middle, the fix kept whole."""
    folder = "/data/a study/derivatives/conn/"
    transposed = _reason(
        _check_series_shape, Path(f"{folder}sub-101309_task-rest_timeseries.tsv"),
        np.zeros((116, 150)), 116, other_atlas_fix(),
    )  # fmt: skip
    fisher = np.full((116, 116), 1.5)
    out_of_range = _reason(check_connectome, fisher, f"{folder}sub-101309_relmat.tsv", 116, "aal")
    confounds = "confounds lack the columns [" + ", ".join(f"'c{i:02d}'" for i in range(40))
    confounds += "] needed by strategy '36P'"
    table = pd.DataFrame(
        {
            "included": ["false"] * 3,
            "reason_code": ["roi_count_mismatch", "matrix_out_of_range", "confounds_missing"],
            "reason": [transposed, out_of_range, confounds],
        }
    )
    why = exclusion_reasons(table)
    assert "Fix: It looks transposed: store volumes as rows and ROIs as columns" in why
    assert "convert them with numpy.tanh, then set the diagonal to 1 with " in why
    assert "numpy.fill_diagonal(matrix, 1)" in why
    assert "'c00', 'c01'" in why and "'c39'] needed by strategy '36P'" in why
    assert "'c25'" not in why and folder not in why  # the middle and the folders go
    assert len(why) < 900


def test_report_and_store_refuse_a_qc_table_that_is_not_utf8_alike(tmp_path: Path) -> None:
    # One reader: `lcm report` raised a bare UnicodeDecodeError where `lcm store` named the file.
    path = tmp_path / "seg-x_qc.tsv"
    header = "dataset\tsubject\trun_key\tincluded\treason\tmean_fd\n"
    path.write_bytes(header.encode() + "d\t01\tr\ttrue\tcaf\xe9\t0.1\n".encode("latin-1"))
    with pytest.raises(InputDataError) as store_error:
        read_qc_table(path)
    with pytest.raises(InputDataError) as report_error:
        read_qc([path])
    assert str(report_error.value) == str(store_error.value)
    assert "seg-x_qc.tsv" in str(store_error.value) and "UTF-8" in store_error.value.hint


def test_store_qc_columns_are_the_qc_tables_numeric_ones() -> None:
    # Two constants were both named QC_COLUMNS: the QC TSV's and the store's subset of it.
    from lcm.connectome import qc
    from lcm.io import store_columns

    assert not hasattr(store_columns, "QC_COLUMNS")
    assert set(store_columns.STORE_QC_COLUMNS) <= set(qc.QC_COLUMNS)
