"""Tables the report reads, written small and with known signal, and the report verb run on them."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from lcm.commands import report as report_cmd
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    write_tidy_parquet,
)
from lcm.io.atomic import write_tsv
from lcm.io.config_copy import write_config_copy
from lcm.io.provenance import config_hash, sha256_file

TASKS = {"autism": ("abidelike", 26), "alzheimers": ("adnilike", 22)}
MODELS = {"lcm": 1.2, "logreg": 1.5, "shuffled-labels": 0.0}  # signal strength per model
FRACTIONS = (0.1, 1.0)
SEEDS = (0, 1)
N_FOLDS = 3


def _task_tables(task: str, dataset: str, n_subjects: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions with model-dependent signal, and the fold metrics computed from them."""
    rng = np.random.default_rng(len(task))
    y = np.arange(n_subjects) % 2
    preds, metrics = [], []
    for model, signal in MODELS.items():
        for fraction in FRACTIONS:
            for seed in SEEDS:
                folds = rng.permutation(n_subjects) % N_FOLDS
                score = signal * fraction * (y - 0.5) + rng.normal(size=n_subjects)
                p = 1 / (1 + np.exp(-score))
                for fold in range(N_FOLDS):
                    at = folds == fold
                    key = (task, model, fraction, seed, fold)
                    for s in np.flatnonzero(at):
                        preds.append((*key, dataset, f"s{s:02d}", f"site{s % 3}", y[s], p[s]))
                    for metric, value in binary_metrics(y[at], p[at]).items():
                        metrics.append((*key, metric, value))
    return (
        pd.DataFrame(metrics, columns=list(METRIC_COLUMNS)).astype(METRIC_DTYPES),
        pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES),
    )


def evaluated_tables(
    runs: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[int, ...], int]],
    n_subjects: int = 24,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Fold metrics, predictions and evaluation records as ``lcm evaluate`` writes them.

    ``runs`` maps each binary task to the ``(models, label_fractions, seeds, n_folds)`` it
    ran; every model of a seed is tested on the same folds (as the protocol's are). Returns
    the metrics, the predictions and ``task -> record`` (its ``settings``).
    """
    metrics, preds, meta = [], [], {}
    for task, (models, fractions, seeds, n_folds) in runs.items():
        y = np.arange(n_subjects) % 2
        for seed in seeds:
            rng = np.random.default_rng(seed)
            folds = rng.permutation(n_subjects) % n_folds
            for fraction in fractions:
                for model in models:
                    signal = 0.0 if model.startswith("shuffled") else 1.0 + len(model) / 10
                    score = signal * (y - 0.5) + rng.normal(size=n_subjects)
                    p = 1 / (1 + np.exp(-score))
                    for fold in range(n_folds):
                        at = folds == fold
                        key = (task, model, fraction, seed, fold)
                        for s in np.flatnonzero(at):
                            ids = (f"{task}ds", f"s{s:02d}", f"site{s % 3}")
                            preds.append((*key, *ids, y[s], p[s]))
                        for metric, value in binary_metrics(y[at], p[at]).items():
                            metrics.append((*key, metric, value))
        meta[task] = {
            "task": task,
            "settings": {
                "n_folds": n_folds,
                "seeds": list(seeds),
                "label_fractions": list(fractions),
                "models": list(models),
            },
            "models_evaluated": list(models),
        }
    return (
        pd.DataFrame(metrics, columns=list(METRIC_COLUMNS)).astype(METRIC_DTYPES),
        pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES),
        meta,
    )


def write_report_inputs(root: Path, tasks: dict[str, tuple[str, int]] | None = None) -> dict:
    """Write the tasks' metrics and predictions, a history, BEI and QC tables under ``root``.

    ``tasks`` maps each task to its dataset and number of subjects (default :data:`TASKS`).
    """
    files: dict = {"metrics": [], "predictions": [], "qc": []}
    for task, (dataset, n) in (tasks or TASKS).items():
        m, p = _task_tables(task, dataset, n)
        write_tidy_parquet(root / f"{task}_metrics.parquet", m)
        write_tidy_parquet(root / f"{task}_predictions.parquet", p)
        files["metrics"].append(root / f"{task}_metrics.parquet")
        files["predictions"].append(root / f"{task}_predictions.parquet")
    epochs = np.arange(1, 13)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "loss_total": 3.0 / epochs,
            "loss_age": 1.0 / epochs,
            "loss_sex": 0.7 / np.sqrt(epochs),
            "loss_ssl": 0.5 / epochs,
            "val_loss": 3.2 / np.sqrt(epochs),
            "lr": 0.002 * np.cos(epochs / 13),
        }
    )
    write_tsv(root / "history.tsv", history)
    files["history"] = root / "history.tsv"
    bei = pd.DataFrame(
        {
            "variable": ["age", "sex", "fluid_intelligence"],
            "kind": ["continuous", "binary", "continuous"],
            "metric": ["pearson_r", "auc", "pearson_r"],
            "model": [0.61, 0.83, 0.22],
            "baseline": [0.55, 0.80, 0.18],
        }
    )
    write_tsv(root / "bei_eval.tsv", bei)
    files["bei_eval"] = root / "bei_eval.tsv"
    rng = np.random.default_rng(5)
    for dataset, n_runs in (("abidelike", 17), ("adnilike", 13)):
        fd = rng.gamma(2.0, 0.1, size=n_runs)
        included = fd < 0.35
        qc = pd.DataFrame(
            {
                "dataset": dataset,
                "subject": [f"s{i // 2:02d}" for i in range(n_runs)],
                "run_key": [f"run-{i % 2 + 1}" for i in range(n_runs)],
                "included": included,
                "reason": np.where(included, None, "mean FD above 0.35 mm"),
                "n_volumes": 200,
                "n_volumes_kept": np.where(included, 190, 80),
                "mean_fd": fd,
            }
        )
        qc.loc[0, ["included", "reason", "mean_fd"]] = [False, "too few volumes", np.nan]
        write_tsv(root / f"{dataset}_qc.tsv", qc)
        files["qc"].append(root / f"{dataset}_qc.tsv")
    return files


def bare(fragment: str) -> str:
    """``fragment`` with its table cells' attributes dropped and each row header
    (``<th scope="row">``) written as a plain cell, to compare rows as text."""
    fragment = re.sub(r'<th scope="row"[^>]*>(.*?)</th>', r"<td>\1</td>", fragment)
    return re.sub(r"<t([dh])\b[^>]*>", r"<t\1>", fragment)


def control_summary() -> pd.DataFrame:
    """Summary rows of two shuffled-label controls of task ``t``: at chance and above it over
    10 fits at fraction 1, and one fit (no interval to judge) at 0.1."""
    return pd.DataFrame(
        [
            ("t", "shuffled-labels", 1.0, "auc", 0.50, 0.45, 0.55, 10),
            ("t", "shuffled-lcm", 1.0, "auc", 0.70, 0.65, 0.75, 10),
            ("t", "shuffled-labels", 0.1, "auc", 0.52, 0.52, 0.52, 1),
        ],
        columns=["task", "model", "label_fraction", "metric", "mean", "ci_low", "ci_high", "n"],
    )


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcm")
    report_cmd.register(parser.add_subparsers())
    return parser


def run_report(inputs: dict, out: Path, extra: list[str] | None = None) -> dict:
    """Run ``lcm report`` on ``inputs`` (as :func:`write_report_inputs` gives) into ``out``."""
    outputs = {
        "metrics": out / "metrics" / "metrics.parquet",
        "summary": out / "metrics" / "summary.tsv",
        "html": out / "report" / "index.html",
    }
    argv = [
        "report",
        "--metrics", *map(str, inputs["metrics"]),
        "--predictions", *map(str, inputs["predictions"]),
        "--history", str(inputs["history"]),
        "--bei-eval", str(inputs["bei_eval"]),
        "--qc", *map(str, inputs["qc"]),
        "--out-metrics", str(outputs["metrics"]),
        "--out-summary", str(outputs["summary"]),
        "--out-html", str(outputs["html"]),
        "--n-boot", "300",
        *(extra or []),
    ]  # fmt: skip
    args = report_parser().parse_args(argv)
    assert args.func(args) == 0
    return outputs


CONFIG = {"results_dir": "results", "atlas": {"name": "aal116"}, "evaluate": {"n_folds": 4}}
WEIGHTS = "ab" * 32
HELDOUT = [f"hcplike/{i}" for i in range(46)]


def write_checkpoint(root: Path) -> Path:
    """A checkpoint folder: weights and the model.json lcm pretrain writes (the fields read)."""
    folder = root / "models" / "pretrain"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    meta = {
        "kind": "pretrained",
        "weights_sha256": WEIGHTS,
        "data": {
            "datasets": ["bidsdemo", "hcplike", "ppmilike", "ukblike"],
            "n_subjects": 463,
            "n_runs": 470,
            "heldout_subjects": HELDOUT,
        },
        "versions": {"git_commit": "c0ffee"},
    }
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def write_record(
    output: Path, config_sha: str | None, log_file: str, sources: dict, **provenance: object
) -> None:
    """The provenance sidecar an LCM job writes beside ``output`` (the fields read;
    ``provenance`` adds or replaces fields of its ``Provenance``)."""
    record = {
        "Output": output.name,
        "Sources": list(sources),
        "SourcesSha256": sources,
        "Sha256": sha256_file(output),
        "Provenance": {
            "lcm_version": "0.1.0",
            "git_commit": "c0ffee",
            "git_dirty": False,
            "config_sha256": config_sha,
            "params": {"log_file": log_file},
            **provenance,
        },
    }
    output.with_name(output.stem + ".json").write_text(json.dumps(record))


def with_provenance(inputs: dict, root: Path) -> dict:
    """``inputs`` with each metrics table copied under ``root`` beside its provenance sidecar,
    a checkpoint the tasks name and the copy of the config they record.

    Returns
    -------
    dict
        ``inputs`` (for :func:`run_report`), ``checkpoint`` (its folder), ``configs`` (the
        folder of config copies) and ``sha`` (the config's sha256).
    """
    folder = write_checkpoint(root)
    sha = config_hash(CONFIG)
    write_config_copy(str(root / "results"), CONFIG)
    tasks, predictions = [], []
    for path, pred in zip(inputs["metrics"], inputs["predictions"], strict=True):
        task = Path(path).name.split("_")[0]
        own = root / Path(path).name
        meta = {"task": task, "label": task, "checkpoint": str(folder)}
        write_tidy_parquet(own, pd.read_parquet(path), meta)
        # One evaluation writes both tables with one record (lcm report checks the pairs).
        write_tidy_parquet(root / Path(pred).name, pd.read_parquet(pred), meta)
        weights = {str(folder / "model.safetensors"): WEIGHTS}
        write_record(own, sha, f"results/logs/evaluate/{task}.log", weights)
        tasks.append(own)
        predictions.append(root / Path(pred).name)
    return {
        "inputs": {**inputs, "metrics": tasks, "predictions": predictions},
        "checkpoint": folder,
        "configs": root / "results" / "configs",
        "sha": sha,
    }


def with_records(inputs: dict, root: Path, records: list[dict]) -> dict:
    """``inputs`` with each task's metrics and predictions copied under ``root``, both tables
    carrying that task's record as one ``lcm evaluate`` run writes them (``records`` in the
    order of ``inputs["metrics"]``)."""
    copies: dict = {"metrics": [], "predictions": []}
    for which in copies:
        for path, record in zip(inputs[which], records, strict=True):
            own = root / Path(path).name
            write_tidy_parquet(own, pd.read_parquet(path), record)
            copies[which].append(own)
    return {**inputs, **copies}
