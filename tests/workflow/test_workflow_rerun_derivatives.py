"""Reruns of a dataset entering as fMRIPrep derivatives (``entry: fmriprep``).

Its derivative files are what its jobs read: one of them edited in place (a value of a run's
confounds table) reruns that subject's jobs, as with ``entry: bids`` and ``runner: existing``
(tests/workflow/test_workflow_rerun.py), and no other subject's.

The workflow also runs for real up to the QC table on a tiny such dataset: after a change of
the runs' settings or code, ONE invocation remakes every connectome (their sidecars and the QC
table say so) and the next has nothing to do, also when ingest reruns in the same invocation.
Snakemake does not check a job downstream of a rerunning ingest whose input from it is
``ancient`` (the manifest fMRIPrep reads): the runs were rebuilt only by a second invocation,
after the QC table and store had been made from the stale ones.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.connectome import make_fmriprep_run, read_qc_table
from helpers.workflow import (
    add_subject,
    bids_root,
    code_datasets,
    copy_repo,
    dataset,
    placeholder_config,
    planned_jobs,
    run_workflow,
    tiny_bold,
    touch_all,
    user_config,
    write_config,
)

from lcm.io import paths
from lcm.io.provenance import provenance_path


def _plan(workdir: Path, config: Path) -> dict[str, int]:
    return planned_jobs(run_workflow(workdir, config, "-n", cores=1))


def _touched(tmp_path: Path) -> tuple[dict, Path, dict[str, dict[str, Path]]]:
    """Placeholder workflow whose abidelike enters as two subjects' fMRIPrep derivatives, every
    job recorded as done: (config, its path, each subject's derivative files)."""
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    deriv = tmp_path / "data" / "abidelike" / "fmriprep"
    files = {
        sub: make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=20, res="2")
        for sub in ("01", "02")
    }
    cfg["datasets"]["abidelike"].update(entry="fmriprep", path=str(deriv))
    cfg["datasets"]["abidelike"].pop("derivatives")
    cfg["fmriprep"]["output_space"] = "MNI152NLin2009cAsym:res-2"
    config = write_config(tmp_path, cfg)
    run_workflow(tmp_path, config, "--until", "ingest", cores=1)
    touch_all(ROOT, tmp_path, config)
    assert _plan(tmp_path, config) == {}
    return cfg, config, files


def _edit_in_place(confounds: Path) -> None:
    """One value of a confounds table changed in place: same name, same size, a later mtime."""
    text = confounds.read_text()
    lines = text.splitlines(keepends=True)
    cells = lines[5].split("\t")
    cells[0] = cells[0][:-1] + ("1" if cells[0][-1] != "1" else "2")
    confounds.write_text("".join([*lines[:5], "\t".join(cells), *lines[6:]]))
    st = confounds.stat()
    os.utime(confounds, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_an_edited_confounds_table_reruns_only_its_subject(tmp_path: Path) -> None:
    _, config, files = _touched(tmp_path)
    _edit_in_place(files["02"]["confounds"])
    jobs = _plan(tmp_path, config)
    assert {k: jobs.get(k) for k in ("fmriprep", "connectome_run")} == {
        "fmriprep": 1,
        "connectome_run": 1,
    }, jobs
    assert "connectome_collect" in jobs and "ingest" not in jobs


def test_an_edited_subject_reruns_with_a_subject_added(tmp_path: Path) -> None:
    """A subject added reruns ingest, which hid the edited subject's own change (its fMRIPrep
    job reads the manifest as ancient): its jobs were planned by the next invocation only."""
    _, config, files = _touched(tmp_path)
    deriv = tmp_path / "data" / "abidelike" / "fmriprep"
    make_fmriprep_run(deriv, "sub-03_task-rest_run-1", n_vol=20, res="2")
    _edit_in_place(files["02"]["confounds"])
    jobs = _plan(tmp_path, config)
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep", "connectome_run")} == {
        "ingest": 1,
        "fmriprep": 2,  # sub-03, new, and sub-02, edited; not sub-01
        "connectome_run": 2,
    }, jobs


def test_ingest_reruns_for_the_denoise_keys_its_strategy_check_reads_only(
    tmp_path: Path,
) -> None:
    """Ingest of a dataset entering as fMRIPrep derivatives checks the strategy's columns on
    its first run: the strategy and high_pass rerun it, another denoise key (it took the whole
    section) reruns the runs alone."""
    cfg, _, _ = _touched(tmp_path)
    runs = {"connectome_settings": 2, "connectome_run": 3}  # both datasets
    for key, value in (
        ("low_pass", 0.08),
        ("fd_threshold", 0.3),
        ("min_volumes", 10),
        ("min_dof", 5),
    ):
        changed = yaml.safe_load(yaml.safe_dump(cfg))
        changed["denoise"][key] = value
        jobs = _plan(tmp_path, write_config(tmp_path, changed))
        assert {k: jobs.get(k) for k in runs} == runs and "ingest" not in jobs, (key, jobs)
    for key, value in (("strategy", "36P"), ("high_pass", 0.02)):
        changed = yaml.safe_load(yaml.safe_dump(cfg))
        changed["denoise"][key] = value
        jobs = _plan(tmp_path, write_config(tmp_path, changed))
        assert {k: jobs.get(k) for k in runs} == runs and jobs["ingest"] == 1, (key, jobs)


# -- real runs --------------------------------------------------------------------------------

QC_TABLE = paths.qc_table("results", "fp", "aal116")


def _derivatives_workflow(workdir: Path, repo: Path = ROOT) -> Path:
    """Two subjects of fMRIPrep derivatives (40 volumes each), run up to the QC table."""
    deriv = workdir / "data" / "fmriprep"
    for i, sub in enumerate(("01", "02")):
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=40, seed=i)
    (workdir / "data" / "phenotype.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    datasets = {"fp": dataset("fmriprep", deriv, workdir / "data" / "phenotype.tsv")}
    cfg = user_config(datasets, repo, short_runs=20)
    code_datasets(cfg, workdir / "data", ["fp"])
    config = write_config(workdir, cfg)
    _run(repo, workdir, config)
    return config


def _run(repo: Path, workdir: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_workflow(workdir, config, *extra, targets=[QC_TABLE], repo=repo)


def _runs(workdir: Path) -> dict[str, dict]:
    """Each included run's relmat sidecar (its Denoise settings, the code it was made with)."""
    qc = read_qc_table(workdir / QC_TABLE)
    assert qc["included"].all(), qc[["subject", "reason"]]
    found = {}
    for row in qc.itertuples():
        found[row.subject] = json.loads(provenance_path(workdir / row.relmat).read_text())
    return found


def _code(sidecar: Path) -> str:
    return json.loads(sidecar.read_text())["Provenance"]["code_sha256"]


@pytest.mark.slow
def test_a_denoise_change_remakes_every_connectome_in_one_invocation(tmp_path: Path) -> None:
    config = _derivatives_workflow(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    assert cfg["denoise"]["strategy"] == "24P"

    # The strategy (which ingest's check of the first run's confounds read too).
    cfg["denoise"]["strategy"] = "36P"
    _run(ROOT, tmp_path, write_config(tmp_path, cfg))
    qc = read_qc_table(tmp_path / QC_TABLE)
    assert list(qc["strategy"]) == ["36P", "36P"]
    assert {run["Denoise"]["strategy"] for run in _runs(tmp_path).values()} == {"36P"}
    assert planned_jobs(_run(ROOT, tmp_path, config, "-n")) == {}

    # A subject added (ingest reruns for it) with a band-pass change: the old subjects' runs are
    # remade with the new band too, not only the new subject's.
    make_fmriprep_run(tmp_path / "data" / "fmriprep", "sub-03_task-rest_run-1", n_vol=40, seed=2)
    cfg["denoise"]["low_pass"] = 0.08
    _run(ROOT, tmp_path, write_config(tmp_path, cfg))
    runs = _runs(tmp_path)
    assert sorted(runs) == ["01", "02", "03"]
    assert {run["Denoise"]["low_pass"] for run in runs.values()} == {0.08}
    assert planned_jobs(_run(ROOT, tmp_path, config, "-n")) == {}


@pytest.mark.slow
def test_a_connectome_code_edit_remakes_every_connectome_in_one_invocation(
    tmp_path: Path,
) -> None:
    """Edits of modules the connectome verb runs, which ingest's verb imports too."""
    repo = copy_repo(tmp_path / "repo")
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = _derivatives_workflow(workdir, repo)
    table_sidecar = provenance_path(workdir / QC_TABLE)
    for module in ("lcm/connectome/settings.py", "lcm/commands/_atlas.py"):
        before = _code(table_sidecar)
        with (repo / module).open("a") as fh:
            fh.write("\n_EDITED = 1\n")  # code: a comment alone reruns nothing
        _run(repo, workdir, config)
        after = _code(table_sidecar)
        assert after != before, module
        codes = {run["Provenance"]["code_sha256"] for run in _runs(workdir).values()}
        assert codes == {after}, module  # every run made by the edited code, in one invocation
        assert planned_jobs(_run(repo, workdir, config, "-n")) == {}, module


@pytest.mark.slow
def test_a_run_the_selection_brings_back_reruns_its_subjects_fmriprep_job(
    tmp_path: Path,
) -> None:
    """Raw BIDS read with ``runner: existing``: sub-01's run-2 excluded by ``ingest.select``,
    then included. Its files did not change, so its fMRIPrep job (which reads the manifest as
    ancient) did not rerun: the run's connectome job failed, "not in fMRIPrep record", at every
    invocation. The run's subject reruns, no other subject."""
    raw, deriv = tmp_path / "data" / "rawdata", tmp_path / "data" / "fmriprep"
    bids_root(raw)
    for i, sub in enumerate(("01", "02")):
        add_subject(raw, sub)
        make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=40, seed=i)
    (raw / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.nii.gz").write_bytes(tiny_bold())
    make_fmriprep_run(deriv, "sub-01_task-rest_run-2", n_vol=40, seed=2)
    pheno = tmp_path / "data" / "phenotype.tsv"
    pheno.write_text("participant_id\nsub-01\nsub-02\n")
    cfg = user_config({"fp": dataset("bids", raw, pheno, derivatives=deriv)}, short_runs=20)
    code_datasets(cfg, tmp_path / "data", ["fp"])
    cfg["fmriprep"]["runner"] = "existing"
    cfg["ingest"]["validate"] = False
    cfg["ingest"]["select"] = {"fp": {"runs": {"exclude": ["2"]}}}
    _run(ROOT, tmp_path, write_config(tmp_path, cfg))
    assert len(read_qc_table(tmp_path / QC_TABLE)) == 2

    cfg["ingest"]["select"] = {}
    config = write_config(tmp_path, cfg)
    jobs = planned_jobs(_run(ROOT, tmp_path, config, "-n"))
    assert {k: jobs.get(k) for k in ("ingest", "fmriprep", "connectome_run")} == {
        "ingest": 1,
        "fmriprep": 1,  # sub-01's, whose record lacks run-2; not sub-02's
        "connectome_run": 2,  # both runs of sub-01 read its new record
    }, jobs
    _run(ROOT, tmp_path, config)
    qc = read_qc_table(tmp_path / QC_TABLE)
    assert sorted(zip(qc["subject"], qc["run"], strict=True)) == [
        ("01", "1"),
        ("01", "2"),
        ("02", "1"),
    ]
    assert qc["included"].all(), qc[["subject", "run", "reason"]]
    assert planned_jobs(_run(ROOT, tmp_path, config, "-n")) == {}
