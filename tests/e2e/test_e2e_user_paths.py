"""The workflow as a user calls it (issue 18, items 1-3 and 9): ``.venv/bin/snakemake`` by absolute
path, PATH left bare, from a folder outside the repository.

Reproductions, as reported: rules died with ``No module named 'pandas'`` unless ``.venv/bin`` was
on PATH (1); ``--config`` without ``--configfile`` dropped the demo config (2); a baseline-only
study without a ``role: pretrain`` dataset failed in rule pretrain with an ``IndexError`` (3);
logs went to the repository's ``logs/`` and fMRIPrep's work folder defaulted under it (9).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT
from helpers.workflow import user_snakemake


def baseline_study(tmp: Path) -> Path:
    """A baseline-only study: one downstream ROI-tier cohort, one task, logreg; no pretraining."""
    cfg = {
        "results_dir": "out",
        "variables": str(ROOT / "config" / "variables.yaml"),
        "synth": {
            "enabled": True,
            "out_dir": "out/synth",
            "consortia": {
                "abidelike": {"preset": "abide", "tier": "roi", "n_subjects": 24, "n_volumes": 60}
            },
        },
        "datasets": {
            "abidelike": {
                "entry": "roi_timeseries",
                "path": "out/synth/abidelike/timeseries",
                "phenotype": "out/synth/abidelike/phenotype.tsv",
                "role": "downstream",
            }
        },
        "denoise": {"min_volumes": 30, "min_dof": None},  # short runs, kept
        "tasks": {
            "autism": {"dataset": "abidelike", "label": "autism", "positive": "autism"},
        },
        "evaluate": {"n_folds": 2, "label_fractions": [1.0], "models": ["logreg"]},
    }
    path = tmp / "my.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def output(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_baseline_only_study_runs_with_a_bare_path_outside_the_repository(
    tmp_path: Path,
) -> None:
    config = baseline_study(tmp_path)
    start = time.monotonic()
    # A metrics target (item 3), named before --configfile (item 2: after it, Snakemake would
    # read the target as a second config file).
    target = "out/metrics/task-autism_metrics.parquet"
    proc = user_snakemake(tmp_path, target, "--configfile", str(config))
    assert proc.returncode == 0, output(proc)[-6000:]
    assert "No module named" not in output(proc)
    # The default target: the report, still without pretraining.
    proc = user_snakemake(tmp_path, "--configfile", str(config))
    assert proc.returncode == 0, output(proc)[-6000:]
    elapsed = time.monotonic() - start
    ran = output(proc)
    assert "rule pretrain" not in ran and "rule finetune" not in ran
    out = tmp_path / "out"
    assert (out / "report" / "index.html").is_file()
    metrics = pd.read_parquet(out / "metrics" / "metrics.parquet")
    # The configured model, and head motion alone, which the report scores on its folds.
    assert set(metrics["model"]) == {"logreg", "motion-fd"}
    assert not (out / "models").exists()
    # Item 9: logs beside the results, none in the calling folder or the repository.
    assert (out / "logs" / "evaluate" / "autism.log").is_file()
    assert (out / "logs" / "report" / "report.log").is_file()
    assert not (tmp_path / "logs").exists()
    # A second run has nothing to do.
    proc = user_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert "Nothing to be done" in output(proc), output(proc)[-3000:]
    print(f"baseline-only user run: {elapsed:.0f} s")


def test_lcm_model_without_pretraining_is_one_config_line(tmp_path: Path) -> None:
    config = baseline_study(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["tasks"]["autism"]["models"] = ["lcm", "logreg"]
    config.write_text(yaml.safe_dump(cfg))
    proc = user_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert proc.returncode != 0
    text = output(proc)
    assert "IndexError" not in text and "InputFunctionException" not in text
    assert "tasks.autism evaluates ['lcm'], which need a pretrained checkpoint" in text
    assert "role: pretrain" in text and "models: [logreg, svm]" in text


def test_config_overrides_apply_on_top_of_the_demo_config(tmp_path: Path) -> None:
    # No --configfile: the demo config, with --config keys replaced (item 2).
    results = tmp_path / "elsewhere"
    proc = user_snakemake(
        tmp_path, "-n", "--config", f"results_dir={results}", "seed=2", "--quiet", "rules"
    )
    assert proc.returncode == 0, output(proc)[-4000:]
    for rule in ("synth_roi_cohort", "pretrain", "evaluate", "report"):
        assert rule in output(proc), output(proc)[-3000:]
    # The demo's datasets, written under the overriding results_dir.
    proc = user_snakemake(tmp_path, "-n", "--config", f"results_dir={results}", "-p")
    assert f"{results}/store/" in output(proc)
    assert f"log: {results}/logs/" in output(proc)


def test_configfile_still_replaces_the_demo_config(tmp_path: Path) -> None:
    config = baseline_study(tmp_path)
    proc = user_snakemake(tmp_path, "--configfile", str(config), "-n", "--quiet", "rules")
    assert proc.returncode == 0, output(proc)[-4000:]
    text = output(proc)
    assert "evaluate" in text and "pretrain" not in text and "synth_voxel" not in text
