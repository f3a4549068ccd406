"""A results_dir used from another working directory is refused before any job.

Snakemake keeps its records of the outputs (each job's params and code: what decides a rerun)
in ``.snakemake/`` of the folder it runs in, while an absolute results_dir is the same from any
folder. Run from another one, a changed setting planned nothing ("missing
provenance/metadata"): stale results, and nothing said.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.workflow import placeholder_config, planned_jobs, snakemake, write_config

from lcm.io import paths


@pytest.mark.slow
def test_a_dry_run_from_another_folder_names_the_first_one(tmp_path: Path) -> None:
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    results = tmp_path / "results"
    cfg["results_dir"] = str(results)
    config = write_config(tmp_path, cfg)
    first, other = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    other.mkdir()
    target = paths.connectome_settings(str(results), "hcplike")  # one light job

    proc = snakemake(ROOT, first, target, "--configfile", str(config), "-c1")
    assert proc.returncode == 0, proc.stderr[-3000:]

    cfg["denoise"]["strategy"] = "36P"
    changed = write_config(tmp_path, cfg)
    proc = snakemake(ROOT, first, target, "--configfile", str(changed), "-n", "-c1")
    assert planned_jobs(proc) == {"connectome_settings": 1}, proc.stdout[-2000:]

    proc = snakemake(ROOT, other, target, "--configfile", str(changed), "-n", "-c1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Nothing to be done" not in out
    assert f"{changed}: results_dir {results} holds results of runs from {first}," in out, out
    assert f"--directory {first}" in out and "adopt_snakemake_records=True" in out
    assert not (other / ".snakemake" / "metadata").exists()
    marker = json.loads((results / ".lcm-snakemake.json").read_text())
    assert marker["snakemake_records"] == str(first / ".snakemake")

    # Snakemake's lint reads the workflow only: not refused.
    proc = snakemake(ROOT, other, "--configfile", str(changed), "--lint")
    assert "holds results of runs from" not in proc.stdout + proc.stderr

    # The records copied, as the hint says, then adopted: the change is planned from here, and
    # the marker names these records from now on (a dry run rewrites it: explicitly asked).
    shutil.copytree(first / ".snakemake", other / ".snakemake", dirs_exist_ok=True)
    adopt = ("--config", "adopt_snakemake_records=True")
    proc = snakemake(ROOT, other, target, "--configfile", str(changed), "-n", "-c1", *adopt)
    assert planned_jobs(proc) == {"connectome_settings": 1}, proc.stdout[-2000:]
    marker = json.loads((results / ".lcm-snakemake.json").read_text())
    assert marker["snakemake_records"] == str(other / ".snakemake")
    proc = snakemake(ROOT, other, target, "--configfile", str(changed), "-c1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_jobs(snakemake(ROOT, other, target, "--configfile", str(changed), "-n")) == {}
    proc = snakemake(ROOT, first, target, "--configfile", str(changed), "-n", "-c1")
    assert f"holds results of runs from {other}," in proc.stdout + proc.stderr
    # The key is no setting of any output: not in the config the results record.
    copies = list((results / "configs").glob("*.json"))
    assert copies and all(
        "adopt_snakemake_records" not in json.loads(c.read_text()) for c in copies
    )
