"""One bad subject is excluded with a logged reason; it does not crash the cohort.

The workflow runs for real, up to the splits of a task (the cheapest stage that reads the
store), on a dataset entering as fMRIPrep derivatives: four good subjects, one whose confounds
lack the motion columns the strategy needs (excluded by the connectome stage) and one whose
confounds table fMRIPrep did not write (excluded by the fMRIPrep stage). Unit tests cover each
exclusion; this one checks that the workflow as a whole lets the cohort through.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.connectome import (
    confounds_table,
    make_fmriprep_run,
    make_raw_bids,
    read_qc_table,
    save_nifti,
    write_confounds,
)
from helpers.workflow import dataset, planned_jobs, run_workflow, user_config, write_config

from lcm.io import paths

GOOD = ("01", "02", "04", "05")
BAD_CONFOUNDS = "03"  # its confounds TSV lacks the rotation columns 24P needs
BAD_FMRIPREP = "06"  # fMRIPrep wrote no confounds table for its run


def _dataset(root: Path) -> tuple[Path, Path]:
    """fMRIPrep derivatives of six subjects (two broken) and their ABIDE-style phenotype."""
    deriv = root / "fmriprep"
    for i, sub in enumerate((*GOOD, BAD_CONFOUNDS, BAD_FMRIPREP)):
        files = make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", seed=i)
        if sub == BAD_CONFOUNDS:
            table = confounds_table(48, seed=i)
            write_confounds(files["confounds"], table.drop(columns=table.filter(like="rot_")))
        if sub == BAD_FMRIPREP:
            files["confounds"].unlink()
    pheno = root / "phenotype.tsv"
    rows = [f"{sub}\tA\t{1 + k % 2}\t{20 + k}\t1" for k, sub in enumerate(sorted(GOOD))]
    rows += [f"{sub}\tA\t1\t30\t2" for sub in (BAD_CONFOUNDS, BAD_FMRIPREP)]
    pheno.write_text("SUB_ID\tSITE_ID\tDX_GROUP\tAGE_AT_SCAN\tSEX\n" + "\n".join(rows) + "\n")
    return deriv, pheno


@pytest.mark.slow
def test_a_broken_subject_is_excluded_with_its_reason_and_the_cohort_finishes(
    tmp_path: Path,
) -> None:
    deriv, pheno = _dataset(tmp_path / "data")
    datasets = {"abidelike": dataset("fmriprep", deriv, pheno, "downstream")}
    cfg = user_config(datasets, tasks=("autism",), short_runs=30)  # the runs have 48 volumes
    cfg["tasks"]["autism"]["models"] = ["logreg"]
    cfg["evaluate"]["n_folds"] = 2
    config = write_config(tmp_path, cfg)
    splits = paths.task_splits("results", "autism")
    run_workflow(tmp_path, config, targets=[splits])

    # The QC table lists every run, the broken ones excluded with what is wrong.
    qc = read_qc_table(tmp_path / paths.qc_table("results", "abidelike", "aal116"))
    qc = qc.set_index("subject")
    assert sorted(qc.index) == sorted((*GOOD, BAD_CONFOUNDS, BAD_FMRIPREP))
    assert qc.loc[list(GOOD), "included"].all()
    assert not qc.loc[BAD_CONFOUNDS, "included"] and not qc.loc[BAD_FMRIPREP, "included"]
    assert "_desc-confounds_timeseries.tsv lack the columns" in qc.loc[BAD_CONFOUNDS, "reason"]
    assert "rot_x" in qc.loc[BAD_CONFOUNDS, "reason"]
    assert "desc-confounds_timeseries.tsv" in qc.loc[BAD_FMRIPREP, "reason"]
    assert qc.loc[BAD_CONFOUNDS, "reason_code"] == "confounds_missing_columns"
    assert qc.loc[BAD_FMRIPREP, "reason_code"] == "fmriprep_outputs_missing"
    # ... and each job's log says so.
    logs = tmp_path / "results" / "logs"
    (log,) = (logs / "connectome" / "abidelike").glob(f"sub-{BAD_CONFOUNDS}/**/*.log")
    assert "excluded: confounds sub-" in log.read_text()
    assert "_desc-confounds_timeseries.tsv lack the columns" in log.read_text()
    fmriprep_log = "\n".join(p.read_text() for p in (logs / "fmriprep").rglob("*.log"))
    assert f"sub-{BAD_FMRIPREP}_task-rest_run-1 excluded" in fmriprep_log

    # The store holds the good subjects only; the splits, read from it, too.
    store = paths.store_dir(str(tmp_path / "results"))
    partition = paths.connectome_path(store, "aal116", "abidelike")
    runs = pd.read_parquet(partition)
    assert sorted(runs["subject"]) == sorted(GOOD)
    # The store file alone says how its connectomes were made, and counts volumes in integers.
    (made,) = json.loads(pq.read_metadata(partition).metadata[b"lcm.connectome_settings"])
    assert made["origin"] == "computed" and made["rows"] == len(GOOD)
    assert made["denoise"]["strategy"] == cfg["denoise"]["strategy"] == "24P"
    assert made["denoise"]["min_volumes"] == 30 and made["connectome"]["kinds"][0] == "pearson"
    assert runs["n_volumes"].tolist() == [48] * len(GOOD) and runs["n_volumes"].dtype == "int32"
    folds = pd.read_parquet(tmp_path / splits)
    assert set(folds["subject"]) == set(GOOD)


def _validated_existing_config(tmp_path: Path, raw: Path, deriv: Path, pheno: Path) -> Path:
    """One downstream BIDS dataset, validated at ingest, its fMRIPrep derivatives read."""
    datasets = {"abidelike": dataset("bids", raw, pheno, "downstream", derivatives=deriv)}
    cfg = user_config(datasets, short_runs=30)  # the runs have 48 volumes
    cfg["fmriprep"]["runner"] = "existing"
    cfg["ingest"]["validate"] = True
    return write_config(tmp_path, cfg)


@pytest.mark.slow
def test_a_subject_the_validator_excludes_does_not_stop_the_first_run(tmp_path: Path) -> None:
    """Raw BIDS with existing derivatives; sub-06's T1w is a DataLad link not fetched. The
    plan is made before ingest runs the validator, so sub-06 has jobs: the first run failed
    in its fMRIPrep job ("no included BOLD run") and stopped the cohort. Now its record and its
    run's QC row say "excluded at ingest" with the validator's code, the store holds the
    others, a second run has nothing to do, and once the T1w is fetched sub-06 reruns, in one
    invocation, and reaches the store."""
    raw = make_raw_bids(tmp_path / "data" / "raw", subjects=(*GOOD[:2], BAD_FMRIPREP), t_r=2.0)
    deriv = tmp_path / "data" / "fmriprep"
    for i, sub in enumerate((*GOOD[:2], BAD_FMRIPREP)):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", seed=i)
    t1w = raw / f"sub-{BAD_FMRIPREP}" / "anat" / f"sub-{BAD_FMRIPREP}_T1w.nii.gz"
    t1w.parent.mkdir()
    annexed = raw / ".git" / "annex" / "objects" / "Xx" / "Yy" / "KEY" / "KEY.nii.gz"
    t1w.symlink_to(os.path.relpath(annexed, t1w.parent))
    pheno = tmp_path / "data" / "phenotype.tsv"
    rows = [f"{sub}\tA\t{1 + k % 2}\t{20 + k}\t1" for k, sub in enumerate(GOOD[:2])]
    pheno.write_text(
        "SUB_ID\tSITE_ID\tDX_GROUP\tAGE_AT_SCAN\tSEX\n"
        + "\n".join(rows)
        + f"\n{BAD_FMRIPREP}\tA\t1\t30\t2\n"
    )
    config = _validated_existing_config(tmp_path, raw, deriv, pheno)
    store = paths.store_dir("results")
    target = str(paths.connectome_path(store, "aal116", "abidelike"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_workflow(tmp_path, config, *args, targets=[target])

    run()
    qc = read_qc_table(tmp_path / paths.qc_table("results", "abidelike", "aal116"))
    qc = qc.set_index("subject")
    assert qc["included"].to_dict() == {GOOD[0]: True, GOOD[1]: True, BAD_FMRIPREP: False}
    assert qc.loc[BAD_FMRIPREP, "reason_code"] == "validator:SYMLINK_BROKEN"
    reason = qc.loc[BAD_FMRIPREP, "reason"]
    assert reason.startswith("excluded at ingest: BIDS validator error SYMLINK_BROKEN at ")
    assert f"/sub-{BAD_FMRIPREP}/anat/sub-{BAD_FMRIPREP}_T1w.nii.gz" in reason
    runs = pd.read_parquet(tmp_path / target)
    assert sorted(runs["subject"]) == sorted(GOOD[:2])
    assert planned_jobs(run("-n")) == {}  # the plan is the same once ingest has run

    annexed.parent.mkdir(parents=True)
    annexed.write_bytes(
        save_nifti(tmp_path / "t1w.nii.gz", np.ones((5, 6, 7), np.int16)).read_bytes()
    )
    jobs = planned_jobs(run("-n"))
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep", "connectome_run")} == dict.fromkeys(
        ("ingest", "fmriprep", "connectome_run"), 1
    )
    run()
    runs = pd.read_parquet(tmp_path / target)
    assert sorted(runs["subject"]) == sorted((*GOOD[:2], BAD_FMRIPREP))
    assert planned_jobs(run("-n")) == {}


@pytest.mark.slow
def test_a_validator_error_fixed_in_bidsignore_is_picked_up_by_a_plain_rerun(
    tmp_path: Path,
) -> None:
    """sub-06 holds a stray ``func/sub-06_notes.txt``: the validator excludes it at ingest
    (NOT_INCLUDED). The user adds the pattern to ``.bidsignore``, as the validator says: the
    next run said "Nothing to be done" and sub-06 stayed excluded for good, its subject folder
    being unchanged. Now ingest reruns for the new ``.bidsignore`` and sub-06's fMRIPrep and
    connectome jobs with it (no other subject's), in one invocation. The pattern removed again,
    ingest excludes sub-06's run, and its record, which lists the run with derivatives,
    contradicts the manifest: the next invocation reruns it, and its QC row says excluded."""
    subjects = (*GOOD[:2], BAD_FMRIPREP)
    raw = make_raw_bids(tmp_path / "data" / "raw", subjects=subjects, t_r=2.0)
    (raw / f"sub-{BAD_FMRIPREP}" / "func" / f"sub-{BAD_FMRIPREP}_notes.txt").write_text("notes\n")
    deriv = tmp_path / "data" / "fmriprep"
    for i, sub in enumerate(subjects):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", seed=i)
    pheno = tmp_path / "data" / "phenotype.tsv"
    rows = [f"{sub}\tA\t{1 + k % 2}\t{20 + k}\t1" for k, sub in enumerate(subjects)]
    pheno.write_text("SUB_ID\tSITE_ID\tDX_GROUP\tAGE_AT_SCAN\tSEX\n" + "\n".join(rows) + "\n")
    config = _validated_existing_config(tmp_path, raw, deriv, pheno)
    target = paths.qc_table("results", "abidelike", "aal116")

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_workflow(tmp_path, config, *args, targets=[target])

    def verdict() -> tuple[bool, str]:
        qc = read_qc_table(tmp_path / target).set_index("subject")
        assert qc.loc[list(GOOD[:2]), "included"].all()
        return bool(qc.loc[BAD_FMRIPREP, "included"]), str(qc.loc[BAD_FMRIPREP, "reason_code"])

    run()
    assert verdict() == (False, "validator:NOT_INCLUDED")

    (raw / ".bidsignore").write_text("*_notes.txt\n")
    jobs = planned_jobs(run("-n"))
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep", "connectome_run")} == dict.fromkeys(
        ("ingest", "fmriprep", "connectome_run"), 1
    ), jobs
    run()
    assert verdict()[0] is True
    assert planned_jobs(run("-n")) == {}

    (raw / ".bidsignore").unlink()
    run()  # ingest reruns; sub-06's record still lists its run
    jobs = planned_jobs(run("-n"))
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep", "connectome_run")} == {
        "ingest": None,
        "fmriprep": 1,
        "connectome_run": 1,
    }, jobs
    run()
    assert verdict() == (False, "validator:NOT_INCLUDED")
    assert planned_jobs(run("-n")) == {}
