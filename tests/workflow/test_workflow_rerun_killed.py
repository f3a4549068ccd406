"""A job killed (or failed) while it reran leaves no job after it current with stale data.

Snakemake remakes a missing output only for a job that has to run, and puts a failed store
job's old partitions back (``update()``) with a new modification time: the next run said
"Nothing to be done" while the store held data of the old settings or files. The QC table's
and the store's jobs carry the digest of the params above them (``upstream``), so they stay due
until they have run with them; a failed store job loses its missingness report, a plain output
read by every job after it, so it stays due.

A placeholder workflow (two BIDS datasets and a dataset of connectome files) is "run" with
``--touch``, then a change is made, the kill is simulated as in test_workflow_rerun_settings
(the killed job's record holds the new params, its outputs are deleted), and a dry run lists
the jobs that would rerun.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.connectome import roi_fc
from helpers.workflow import (
    copy_repo,
    placeholder_config,
    planned_jobs,
    snakemake,
    touch_all,
    write_config,
)

from lcm.io import paths


@pytest.fixture
def done(tmp_path: Path) -> tuple[Path, Path, dict]:
    """(repo copy, work dir, config) of a workflow whose every job is recorded as done."""
    repo = copy_repo(tmp_path / "repo")
    workdir = tmp_path / "work"
    workdir.mkdir()
    cfg, _ = placeholder_config(workdir, {"hcplike": 2, "abidelike": 2}, repo=repo)
    conn = workdir / "data" / "conn"
    conn.mkdir()
    for i in (1, 2):
        np.save(conn / f"sub-0{i}.npy", roi_fc(seed=i))
    (conn / "listing.tsv").write_text("participant_id\tpath\n01\tsub-01.npy\n02\tsub-02.npy\n")
    (conn / "phenotype.tsv").write_text("participant_id\tage\n01\t40\n02\t50\n")
    cfg["datasets"]["conn"] = {
        "entry": "connectome",
        "path": str(conn / "listing.tsv"),
        "phenotype": str(conn / "phenotype.tsv"),
        "role": "pretrain",
    }
    catalogue = yaml.safe_load(Path(cfg["variables"]).read_text())
    catalogue["datasets"]["conn"] = {"id_column": "participant_id", "columns": {"age": "age"}}
    cfg["variables"] = str(workdir / "variables.yaml")
    Path(cfg["variables"]).write_text(yaml.safe_dump(catalogue))
    config = write_config(workdir, cfg)
    # Ingest for real (its manifest and index cache: what the plan compares files against).
    proc = snakemake(repo, workdir, "--configfile", str(config), "--until", "ingest", "-c1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    touch_all(repo, workdir, config)
    return repo, workdir, cfg


def plan(repo: Path, workdir: Path, cfg: dict, *targets: str) -> dict[str, int]:
    config = write_config(workdir, cfg)
    proc = snakemake(repo, workdir, "--configfile", str(config), "-n", "--cores", "1", *targets)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return planned_jobs(proc)


def killed(repo: Path, workdir: Path, cfg: dict, outputs: list[str]) -> None:
    """What a job killed under ``cfg`` leaves: its record holds the new params, its outputs are
    deleted."""
    config = write_config(workdir, cfg)
    proc = snakemake(repo, workdir, "--configfile", str(config), "--touch", "--cores", "1",
                     *outputs)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for out in outputs:
        (workdir / out).unlink()


def store_files(cfg: dict, dataset: str) -> list[str]:
    store = paths.store_dir(cfg["results_dir"])
    atlas = cfg["atlas"]["name"]
    return [
        str(paths.connectome_path(store, atlas, dataset)),
        str(paths.variables_path(store, dataset)),
        str(paths.missingness_path(store, dataset)),
    ]


def test_nothing_changed_nothing_runs(done) -> None:
    repo, workdir, cfg = done
    assert plan(repo, workdir, cfg) == {}


def test_a_qc_table_killed_after_a_denoise_change_reruns_with_the_store(done) -> None:
    """connectome_collect killed after the runs were redone for a new fd_threshold: its table
    deleted, the store (newer than every input left) was called current."""
    repo, workdir, cfg = done
    new = yaml.safe_load(yaml.safe_dump(cfg))
    new["denoise"]["fd_threshold"] = 0.3
    killed(repo, workdir, new, [paths.qc_table(cfg["results_dir"], "hcplike", "aal116")])
    # Up to the store (the report reads the QC tables: asking for it brought the table back).
    counts = plan(repo, workdir, new, "participant")
    # hcplike's table and store, and abidelike's (its runs, not yet redone, rerun too).
    assert counts.get("connectome_collect") == 2, counts
    assert counts.get("store") == 2, counts


def test_an_ingest_killed_after_a_file_replaced_reruns_with_the_store(done) -> None:
    """A connectome file replaced in place, then ingest killed: its manifest deleted, nothing
    after it was remade."""
    repo, workdir, cfg = done
    np.save(workdir / "data" / "conn" / "sub-01.npy", roi_fc(seed=7)[:100, :100])
    results = cfg["results_dir"]
    manifest = paths.ingest_manifest(results, "conn")
    killed(repo, workdir, cfg, [manifest, *(paths.ingest_summary(manifest, e)
                                            for e in (".json", ".tsv"))])  # fmt: skip
    counts = plan(repo, workdir, cfg)
    assert counts.get("ingest") == 1, counts
    assert counts.get("connectome_dataset") == 1, counts
    assert counts.get("store") == 1, counts


def test_a_store_failed_after_a_phenotype_edit_reruns(done) -> None:
    """The phenotype edited, the store job fails: Snakemake puts the old partitions back
    (update()) with a new modification time, newer than the edited table, and its record holds
    the params the job started with; it deletes the missingness report, a plain output."""
    repo, workdir, cfg = done
    pheno = workdir / "data" / "conn" / "phenotype.tsv"
    pheno.write_text("participant_id\tage\n01\t41\n02\t50\n")
    outputs = store_files(cfg, "conn")
    killed(repo, workdir, cfg, outputs[-1:])  # its record written, the report deleted
    later = pheno.stat().st_mtime + 10
    for out in outputs[:-1]:  # the partitions put back
        os.utime(workdir / out, (later, later))
    counts = plan(repo, workdir, cfg)
    assert counts.get("store") == 1, counts
    assert "connectome_dataset" not in counts and "ingest" not in counts, counts
