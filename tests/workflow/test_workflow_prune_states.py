"""After `lcm prune-states --apply`, Snakemake has nothing to rerun, and a changed run works.

The states are kept after the outputs are written (pretraining's train_state/, an evaluation's
fits), and nothing removed them. Pruned, they must not be wanted back by Snakemake (neither is
a declared output) nor missed by `lcm provenance verify` (no record lists them), and a run
extended afterwards (more epochs, another label fraction) starts from scratch where it has no
state.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.workflow import planned_jobs, run_snakemake, tiny_pretraining_config

from lcm.io import paths

pytestmark = pytest.mark.slow


def _prune(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`lcm prune-states results ARGS` as a user types it, in the workflow's folder."""
    return _lcm(workdir, "prune-states", "results", *args)


def _lcm(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`lcm ARGS` as a user types it, in the workflow's folder; it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc


def test_pruned_states_leave_nothing_to_rerun_and_an_extended_run_trains_afresh(
    tmp_path: Path,
) -> None:
    config = tiny_pretraining_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["pretrain"]["checkpoint_every"] = 2
    cfg["tasks"]["autism"]["models"] = ["logreg"]
    cfg["evaluate"].update(n_folds=3, label_fractions=[1.0])
    config.write_text(yaml.safe_dump(cfg))
    model = paths.model_file("results", "pretrain", "model.safetensors")
    metrics = paths.task_metrics("results", "autism")
    targets = (model, metrics)
    proc = run_snakemake(tmp_path, *targets, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = tmp_path / "results" / "models" / "pretrain" / "train_state"
    fits = tmp_path / metrics.replace(".parquet", "_evaluate_state")
    assert state.is_dir() and fits.is_dir()

    listed = _prune(tmp_path).stdout
    assert "would remove" in listed and "2 of 2 state(s) finished" in listed, listed
    # A removal cut short leaves a state renamed aside: no record names it, and none must.
    aside = fits.with_name(f".{fits.name}.removing-12345")
    fits.rename(aside)
    assert "0 problem(s)" in _lcm(tmp_path, "provenance", "verify", "results").stdout
    pruned = _prune(tmp_path, "--apply").stdout
    assert [line.split()[0] for line in pruned.splitlines()[:2]] == ["removed"] * 2, pruned
    assert "2 state(s) removed" in pruned
    assert not state.exists() and not fits.exists() and not aside.exists()
    assert (tmp_path / model).is_file() and (tmp_path / metrics).is_file()
    # No provenance record lists a state's files: verify finds nothing missing once they go.
    assert "0 problem(s)" in _lcm(tmp_path, "provenance", "verify", "results").stdout

    dry = run_snakemake(tmp_path, *targets, "-n", "--configfile", str(config))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry) == {}, dry.stdout[-3000:]

    # Extended: one more epoch and another label fraction. Both rerun, from scratch.
    cfg["pretrain"]["epochs"] = 4
    cfg["evaluate"]["label_fractions"] = [0.5, 1.0]
    config.write_text(yaml.safe_dump(cfg))
    plan = planned_jobs(run_snakemake(tmp_path, *targets, "-n", "--configfile", str(config)))
    assert plan.get("pretrain") == 1 and plan.get("evaluate") == 1, plan
    proc = run_snakemake(tmp_path, *targets, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "results" / "logs" / "pretrain" / "pretrain.log").read_text()
    assert "resuming from step" not in log
    assert "0 of 6 fit(s) reused" in (tmp_path / "results/logs/evaluate/autism.log").read_text()
    assert "2 of 2 state(s) finished" in _prune(tmp_path).stdout
