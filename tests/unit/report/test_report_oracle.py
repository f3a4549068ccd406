"""``lcm report --ground-truth --store``: the oracle ceiling of a synthetic task and the same
readout on the pipeline's own connectomes, read from a feature store ``lcm store`` wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.model import relmat_qc_row
from helpers.report import report_parser

from lcm.atlas import load_atlas
from lcm.cli import main
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    binary_metrics,
    write_tidy_parquet,
)
from lcm.synth import write_cohort
from lcm.synth.presets import resolve
from lcm.synth.subject import prepare, subject_stream

SEED = 5
CONSORTIUM = {"preset": "abide", "n_subjects": 40, "n_volumes": 20}
CATALOGUE = """
variables:
  autism: {kind: binary, domain: clinical, levels: [control, autism]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  abidelike:
    id_column: SUB_ID
    columns:
      autism: {column: DX}
      sex: {column: SEX}
"""


def _task(root: Path, task: str, levels: list[str], subjects: list[str], y: np.ndarray) -> None:
    """One model's out-of-fold predictions and fold metrics, with evaluate's metadata."""
    rng = np.random.default_rng(len(task))
    p = 1 / (1 + np.exp(-(y - 0.5) - rng.normal(size=len(y))))
    folds = np.arange(len(y)) % 2
    preds = [
        (task, "logreg", 1.0, 0, f, "abidelike", s, "NYU", yi, pi)
        for s, yi, pi, f in zip(subjects, y, p, folds, strict=True)
    ]
    metrics = [
        (task, "logreg", 1.0, 0, f, m, v)
        for f in (0, 1)
        for m, v in binary_metrics(y[folds == f], p[folds == f]).items()
    ]
    meta = {
        "task": task,
        "kind": "binary",
        "levels": levels,
        "dataset": "abidelike",
        "atlas": "aal116",
    }
    p_frame = pd.DataFrame(preds, columns=list(PREDICTION_COLUMNS)).astype(PREDICTION_DTYPES)
    m_frame = pd.DataFrame(metrics, columns=list(METRIC_COLUMNS)).astype(METRIC_DTYPES)
    write_tidy_parquet(root / f"{task}_predictions.parquet", p_frame, meta)
    write_tidy_parquet(root / f"{task}_metrics.parquet", m_frame, meta)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic cohort's ground truth, a store of its true matrices, two tasks on it."""
    root = tmp_path_factory.mktemp("oracle")
    atlas = load_atlas("aal116")
    write_cohort(
        "abidelike",
        CONSORTIUM,
        out_dir=root / "synth",
        seed=SEED,
        shared_structure=0.7,
        atlas=atlas,
    )
    ctx = prepare(resolve("abidelike", CONSORTIUM), SEED, atlas, 0.7)
    names = atlas.labels["name"].tolist()
    subjects = [f"{i:04d}" for i in range(CONSORTIUM["n_subjects"])]
    dx = ctx.latents["dx_class"].to_numpy().astype(int)
    (root / "relmats").mkdir()
    qc = []
    for i, subject in enumerate(subjects):
        path = root / "relmats" / f"sub-{subject}_relmat.tsv"
        corr = subject_stream(ctx, i)[0]
        pd.DataFrame(corr, index=pd.Index(names, name="Node"), columns=names).to_csv(path, sep="\t")
        qc.append(relmat_qc_row(subject, path, dataset="abidelike"))
    pd.DataFrame(qc).to_csv(root / "qc.tsv", sep="\t", index=False)
    pheno = pd.DataFrame(
        {
            "SUB_ID": subjects,
            "DX": np.where(dx == 1, "autism", "control"),
            "SEX": np.where(np.arange(len(dx)) % 2, "M", "F"),
        }
    )
    pheno.to_csv(root / "pheno.tsv", sep="\t", index=False)
    (root / "variables.yaml").write_text(CATALOGUE)
    argv = ["store", "--dataset", "abidelike", "--qc-table", str(root / "qc.tsv")]
    argv += ["--phenotype", str(root / "pheno.tsv"), "--catalogue", str(root / "variables.yaml")]
    assert main([*argv, "--atlas", "aal116", "--store-dir", str(root / "store")]) == 0
    _task(root, "autism", ["control", "autism"], subjects, dx)
    _task(root, "sex", ["F", "M"], subjects, np.arange(len(dx)) % 2)
    return root


def _report(root: Path, out: Path, *extra: str) -> str:
    argv = ["report", "--metrics", str(root / "autism_metrics.parquet")]
    argv += [str(root / "sex_metrics.parquet"), "--predictions"]
    argv += [str(root / f"{t}_predictions.parquet") for t in ("autism", "sex")]
    argv += ["--ground-truth", str(root / "synth" / "abidelike" / "ground_truth.json")]
    argv += ["--out-metrics", str(out / "m.parquet"), "--out-summary", str(out / "s.tsv")]
    argv += ["--out-html", str(out / "index.html"), "--n-boot", "50", *extra]
    args = report_parser().parse_args(argv)
    assert args.func(args) == 0
    return (out / "index.html").read_text()


def test_the_ceiling_and_the_readout_on_the_stores_connectomes(inputs, tmp_path):
    page = _report(inputs, tmp_path, "--store", str(inputs / "store"))
    ceilings = re.findall(r"AUC (\d\.\d{3}) from the true connectivity matrices", page)
    scans = re.findall(
        r"pipeline's own connectomes of the (\d+) tested subjects: AUC (\d\.\d{3})", page
    )
    # The autism task only: the diagnosis's ceiling says nothing of the sex task.
    assert len(ceilings) == 1 and len(scans) == 1
    # The store holds the true matrices: the readout on them is the ceiling itself.
    assert scans[0] == ("40", ceilings[0])
    # The connectomes read are listed among the report's inputs.
    assert "connectomes" in page and "dataset=abidelike" in page
    # The page's numbers that no table holds are in its record, as the page says them.
    readouts = json.loads((tmp_path / "index.json").read_text())["readouts"]
    oracle = readouts["oracles"]["autism"]
    assert f"{oracle['scan']['auc']:.3f}" == scans[0][1] and oracle["scan"]["n_subjects"] == 40
    assert set(readouts["oracles"]) == {"autism"} and "motion_fd_auc_in_sample" in readouts


def test_without_a_store_only_the_ceiling(inputs, tmp_path):
    page = _report(inputs, tmp_path)
    assert len(re.findall(r"from the true connectivity matrices", page)) == 1
    assert "pipeline's own connectomes" not in page


def test_a_store_without_the_cohort_is_named_not_a_failure(inputs, tmp_path):
    store = tmp_path / "empty store"
    store.mkdir()
    page = _report(inputs, tmp_path, "--store", str(store))
    assert len(re.findall(r"from the true connectivity matrices", page)) == 1
    assert "On the pipeline's own connectomes: not computed: Feature store has no connectomes" in (
        page
    )


def test_a_store_that_is_not_there_is_named_not_a_failure(inputs, tmp_path):
    page = _report(inputs, tmp_path, "--store", str(tmp_path / "no store"))
    assert len(re.findall(r"from the true connectivity matrices", page)) == 1
    assert "On the pipeline's own connectomes: not computed: Feature store not found" in page
