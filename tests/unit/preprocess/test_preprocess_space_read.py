"""The resolution each run read is recorded, and a dataset read at several is said.

With a bare ``fmriprep.output_space`` a run with fMRIPrep's native and res-2 files reads the
native one, a run with res-2 only reads that: one subject's sessions at two resolutions under
one output name. The record and the QC table name what each run read (``space_read``), and
the QC table's collection warns with the counts and the setting that reads one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_fmriprep_run

from lcm.bids.runs import run_ids_from_name
from lcm.connectome.qc import collect_qc, new_qc
from lcm.preprocess.derivatives import RunDerivatives, find_run_derivatives

BOTH, RES2 = "sub-01_ses-1_task-rest", "sub-01_ses-2_task-rest"


def _derivatives(deriv: Path) -> None:
    make_fmriprep_run(deriv, BOTH, n_vol=20)
    make_fmriprep_run(deriv, BOTH, n_vol=20, res="2")
    make_fmriprep_run(deriv, RES2, n_vol=20, res="2")


def test_each_run_records_the_resolution_it_read(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    _derivatives(deriv)
    read = {}
    for key in (BOTH, RES2):
        found, missing = find_run_derivatives(deriv, run_ids_from_name(key), SPACE)
        assert found is not None and not missing
        read[key] = found.to_record()["space_read"]
    assert read == {BOTH: f"{SPACE}:res-native", RES2: f"{SPACE}:res-2"}
    # :res-native reads the file without res- only: the res-2-only run lacks it.
    native, _ = find_run_derivatives(deriv, run_ids_from_name(BOTH), f"{SPACE}:res-native")
    assert native is not None and "_res-" not in Path(native.bold).name
    assert native.space_read == f"{SPACE}:res-native"
    none, missing = find_run_derivatives(deriv, run_ids_from_name(RES2), f"{SPACE}:res-native")
    assert none is None
    assert missing[0].endswith(f"{RES2}_space-{SPACE}_desc-preproc_bold.nii.gz (or .nii)")
    # A record written before space_read is still read.
    old = {k: v for k, v in native.to_record().items() if k != "space_read"}
    assert RunDerivatives.from_record(old).space_read == ""


def test_runs_read_at_two_resolutions_are_said_when_the_qc_table_is_collected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths = []
    spaces = {BOTH: f"{SPACE}:res-native", RES2: f"{SPACE}:res-2", "sub-02_task-rest": ""}
    for i, (key, space) in enumerate(spaces.items()):
        qc = new_qc("ds", run_ids_from_name(key), included=bool(space), space_read=space)
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(qc))
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.qc"):
        table = collect_qc(paths, tmp_path / "qc.tsv")
    assert table.set_index("run_key")["space_read"].to_dict() == spaces
    said = caplog.text
    assert "ds: the included runs were read at 2 resolutions" in said
    assert f"{SPACE}:res-2: 1 run(s)" in said and f"{SPACE}:res-native: 1 run(s)" in said
    assert f"fmriprep.output_space to one of these, e.g. {SPACE}:res-2" in said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.qc"):
        collect_qc(paths[1:], tmp_path / "qc1.tsv")  # one resolution: nothing to say
    assert "resolutions" not in caplog.text


def test_a_run_in_another_space_only_is_not_in_space_for_a_bids_entry_too(
    tmp_path: Path,
) -> None:
    """entry: bids (runner existing, or after a container run) checks the same files as ingest
    of fMRIPrep derivatives: a run whose BOLD is in another resolution only gets the same code
    and reason, naming what fMRIPrep wrote, not fmriprep_outputs_missing."""
    from lcm.bids.ingest import ingest_dataset
    from lcm.preprocess.derivatives import check_subject_derivatives

    deriv = tmp_path / "fmriprep"
    _derivatives(deriv)
    lacking = make_fmriprep_run(deriv, "sub-01_ses-3_task-rest", n_vol=20)
    lacking["confounds"].unlink()  # BOLD in the space, confounds missing: outputs missing
    space = f"{SPACE}:res-native"
    runs = [run_ids_from_name(k) for k in (BOTH, RES2, "sub-01_ses-3_task-rest")]
    found, excluded = check_subject_derivatives(deriv, runs, space)
    assert [d.run_key for d in found] == [BOTH]
    assert excluded[RES2][0] == "not_in_space"
    assert f"fMRIPrep wrote this run's in {SPACE}:res-2." in excluded[RES2][1]
    assert excluded["sub-01_ses-3_task-rest"][0] == "fmriprep_outputs_missing"
    # Word for word what ingest of the same folder as fMRIPrep derivatives says.
    df = ingest_dataset("ds", "fmriprep", deriv, space=space).manifest.set_index("run_key")
    assert (df.loc[RES2, "reason_code"], df.loc[RES2, "reason"]) == excluded[RES2]


@pytest.mark.parametrize(
    ("rule", "setting"),
    [
        ([], "lcm fmriprep --output-space"),
        (["--rule", "connectome_collect"], "fmriprep.output_space"),
    ],
    ids=["command_line", "rule"],
)
def test_the_resolutions_warning_names_the_space_setting_given(
    tmp_path: Path, rule: list[str], setting: str
) -> None:
    """`lcm connectome collect` told a command-line user to set fmriprep.output_space, a key
    of a config they never wrote."""
    from lcm.cli import main, setup_logging

    paths = []
    for i, (key, space) in enumerate({BOTH: "res-native", RES2: "res-2"}.items()):
        qc = new_qc("ds", run_ids_from_name(key), included=True, space_read=f"{SPACE}:{space}")
        paths.append(str(tmp_path / f"{i}.json"))
        Path(paths[-1]).write_text(json.dumps(qc))
    log = tmp_path / "collect.log"
    argv = ["--log-file", str(log), *rule, "connectome", "collect", "--qc", *paths]
    try:
        assert main([*argv, "--out", str(tmp_path / "qc.tsv")]) == 0
    finally:
        setup_logging()
    said = log.read_text()
    assert f"Set {setting} to one of these, e.g. {SPACE}:res-2 (" in said, said
