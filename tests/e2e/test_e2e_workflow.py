"""The Snakemake workflow, end to end on a small synthetic configuration, plus dry runs."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT
from helpers.workflow import run_snakemake, small_config, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("e2e")
    cfg = small_config(workdir)
    # Every model of the demo's task runs, the shuffled-label control with 2 permuted refits
    # per fit instead of the demo's 10 (60 logreg fits to 12): nothing here reads its p.
    cfg["evaluate"]["control_permutations"] = 2
    config = write_config(workdir, cfg)
    proc = run_snakemake(workdir, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return workdir


@pytest.mark.slow
def test_workflow_end_to_end(finished_run: Path) -> None:
    results = finished_run / "results"
    html = (results / "report" / "index.html").read_text()
    assert "<img" in html and "autism" in html
    # The synthetic task's oracle: the ceiling from the true matrices, and the same readout on
    # the pipeline's own connectomes of the tested subjects, which scanning noise lowers.
    oracle = re.search(
        r"AUC (\d\.\d{3}) from the true connectivity matrices.*?pipeline's own connectomes of the "
        r"(\d+) tested subjects: AUC (\d\.\d{3})",
        html,
    )
    assert oracle, html[html.find("Oracle") :][:800]
    ceiling, n_tested, scan = float(oracle[1]), int(oracle[2]), float(oracle[3])
    assert 40 <= n_tested <= 60 and 0.5 < scan < ceiling
    metrics = pd.read_parquet(results / "metrics" / "metrics.parquet")
    assert list(metrics.columns) == [
        "task",
        "model",
        "label_fraction",
        "seed",
        "fold",
        "metric",
        "value",
    ]
    assert {"logreg", "lcm"} <= set(metrics["model"])
    assert set(metrics["fold"]) == {0, 1, 2}
    auc = metrics[metrics["metric"] == "auc"]["value"]
    assert auc.between(0, 1).all()
    # Every prediction the page draws from, head motion's (fitted by the report) among them:
    # motion-fd's per-site AUCs and ROC curve could not be traced to any file.
    predictions = pd.read_parquet(results / "metrics" / "predictions.parquet")
    assert set(metrics["model"]) <= set(predictions["model"]) and "motion-fd" in set(
        metrics["model"]
    )
    motion = predictions[predictions["model"] == "motion-fd"]
    assert len(motion) and motion["prediction"].between(0, 1).all()
    tasks = [pd.read_parquet(p) for p in (results / "metrics").glob("task-*_predictions.parquet")]
    assert len(predictions) == sum(map(len, tasks)) + len(motion)
    # Every stage left its outputs, named as documented.
    assert (results / "models" / "pretrain" / "model.safetensors").is_file()
    assert (results / "models" / "finetune" / "autism" / "model.safetensors").is_file()
    store = pd.read_parquet(results / "store" / "connectomes")
    assert set(store["dataset"].astype(str)) == {"hcplike", "bidsdemo", "abidelike"}
    relmats = list(
        (results / "connectome" / "bidsdemo").rglob("*_stat-pearsoncorrelation_relmat.tsv")
    )
    assert len(relmats) == 2
    assert (results / "logs" / "pretrain" / "pretrain.log").is_file()


@pytest.mark.slow
def test_second_run_has_nothing_to_do(finished_run: Path) -> None:
    proc = run_snakemake(finished_run, "--configfile", str(finished_run / "config.yaml"), "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_demo_dry_run_plans_every_stage(tmp_path: Path) -> None:
    # A clean working directory holding the demo config, so earlier results do not hide jobs.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    proc = run_snakemake(tmp_path, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for rule in (
        "synth_roi_cohort",
        "synth_voxel_subject",
        "ingest",
        "fmriprep",
        "connectome_run",
        "connectome_dataset",
        "store",
        "pretrain",
        "finetune",
        "splits",
        "evaluate",
        "report",
    ):
        assert rule in out, f"{rule} missing from the demo plan:\n{out[-2000:]}"


def test_bad_config_stops_with_key_named(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    bad = copy.deepcopy(cfg)
    bad["denoise"]["strategy"] = "99P"
    proc = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, bad)), "-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "invalid value at key 'denoise.strategy'" in out and "99P" in out
