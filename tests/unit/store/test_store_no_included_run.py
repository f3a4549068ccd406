"""A dataset whose every run is excluded: `lcm store` says why, per reason, and where to read.

The runs are excluded the way a cohort's are: by the fMRIPrep stage (outputs missing, in its
record) and by the connectome stage (confounds lacking the strategy's columns). The error
counts the runs of each reason by its code, names a few runs, caps the listing and names the
QC table that holds every run's full reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.connectome import (
    cli,
    confounds_table,
    make_fmriprep_run,
    make_raw_bids,
    read_qc_table,
    write_confounds,
)
from helpers.fmriprep import fmriprep_request

from lcm.atlas import load_atlas
from lcm.commands import store as store_cmd
from lcm.connectome.qc import QC_COLUMNS, collect_qc
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import InputDataError
from lcm.preprocess.fmriprep_run import run_fmriprep
from lcm.store.writer import stored_rows

SUBJECTS = ("01", "02", "03", "04", "05")
NO_CONFOUNDS = SUBJECTS[:4]  # fMRIPrep wrote no confounds table: excluded by the fMRIPrep stage
BAD_CONFOUNDS = "05"  # confounds without the rotation columns: excluded by the connectome stage


def _all_excluded_qc_table(tmp_path: Path) -> Path:
    """The connectome QC table of a dataset whose five runs are all excluded."""
    make_raw_bids(tmp_path / "raw", subjects=SUBJECTS, n_vol=48)
    for sub in SUBJECTS:
        files = make_fmriprep_run(tmp_path / "deriv", f"sub-{sub}_task-rest_run-1")
        if sub in NO_CONFOUNDS:
            files["confounds"].unlink()
        else:
            table = confounds_table(48)
            write_confounds(files["confounds"], table.drop(columns=table.filter(like="rot_")))
    atlas = load_atlas("aal116")
    qc_jsons = []
    for sub in SUBJECTS:
        record = tmp_path / "records" / f"sub-{sub}.json"
        bids = tmp_path / ("deriv" if sub in NO_CONFOUNDS else "raw")
        run_fmriprep(fmriprep_request(tmp_path, "existing", subject=sub, bids=bids), record)
        qc_json = tmp_path / "qc" / f"sub-{sub}.json"
        process_voxel_run(
            "tiny",
            record,
            f"sub-{sub}_task-rest_run-1",
            atlas,
            DenoiseSettings(min_volumes=30),
            tmp_path / "conn",
            qc_json,
        )
        qc_jsons.append(qc_json)
    out = tmp_path / "conn" / "seg-aal116_qc.tsv"
    collect_qc(qc_jsons, out)
    return out


def test_store_of_a_dataset_without_included_run_counts_the_runs_per_reason(
    tmp_path: Path,
) -> None:
    qc_table = _all_excluded_qc_table(tmp_path)
    qc = read_qc_table(qc_table).set_index("subject")
    assert not qc["included"].any()
    # The QC table records each stage's code beside its full reason.
    assert set(qc.loc[list(NO_CONFOUNDS), "reason_code"]) == {"fmriprep_outputs_missing"}
    assert qc.loc[BAD_CONFOUNDS, "reason_code"] == "confounds_missing_columns"
    pheno = tmp_path / "phenotype.tsv"
    pheno.write_text("participant_id\tage\n" + "".join(f"{s}\t30\n" for s in SUBJECTS))
    argv = ["store", "--dataset", "tiny", "--qc-table", str(qc_table)]
    argv += ["--phenotype", str(pheno), "--catalogue", str(ROOT / "config" / "variables.yaml")]
    argv += ["--atlas-name", "aal116", "--store-dir", str(tmp_path / "store")]
    expected = (
        r"Dataset 'tiny': no included run in its QC table .*seg-aal116_qc\.tsv, nothing to "
        r"store; all 5 run\(s\) excluded: "
        r"fmriprep_outputs_missing: 4 runs \(sub-01_task-rest_run-1, sub-02_task-rest_run-1, "
        r"sub-03_task-rest_run-1, \+1 more\), e\.g\. \"fMRIPrep outputs for space .*\"; "
        r"confounds_missing_columns: 1 run \(sub-05_task-rest_run-1\), e\.g\. \"confounds "
        r"sub-05_task-rest_run-1_desc-confounds_timeseries\.tsv lack the columns \['rot_x'"
    )
    with pytest.raises(InputDataError, match=expected) as err:
        cli(store_cmd, argv)
    message = err.value.message
    # One line, each example reason cut in its middle: what failed and the fix both stay.
    assert "\n" not in message and len(message) < 1000
    assert "or leave the subject out (ingest.select.tiny.participants.exclude)" in message
    assert "... Fix: Regenerate them with fMRIPrep: they serve no strategy." in message
    # A long reason loses the folders of its paths (the QC table keeps them), not the file.
    assert str(tmp_path / "deriv") not in message
    assert "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv" in message
    assert re.search(
        rf"The QC table {re.escape(str(qc_table))} gives every run's reason", err.value.hint
    )
    assert "drop the dataset 'tiny'" in err.value.hint
    assert not (tmp_path / "store").exists()  # stopped before anything was written


def test_store_of_a_qc_table_without_runs_points_at_ingest(tmp_path: Path) -> None:
    """A QC table of no run (ingest found none: another task, an empty folder) was "all 0
    run(s) excluded: no run listed", pointing at a table with nothing in it."""
    qc_table = tmp_path / "seg-aal116_qc.tsv"
    qc_table.write_text("\t".join(QC_COLUMNS) + "\n")  # as the connectome stage writes it
    with pytest.raises(InputDataError) as err:
        stored_rows(read_qc_table(qc_table), "hcp", qc_table)
    assert "lists no run, nothing to store: ingest found no run" in err.value.message
    assert "excluded" not in err.value.message
    assert "<results_dir>/logs/ingest/hcp.log" in err.value.hint
    assert "datasets.hcp.path, entry or task" in err.value.hint
