"""Builders of tiny synthetic cohorts, catalogues and stores for the model and training tests,
and the check that one-process and two-process training agree.

Connectomes carry real, learnable signal: each subject's FC is a fixed base pattern plus
variable-specific edge patterns scaled by that subject's age, sex, BMI and diagnosis. Sizes are
distinct (13 ROIs, batches of 5, 7 queries ...) so an axis mix-up changes shapes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lcm.catalogue import Catalogue, load_catalogue
from lcm.cli import main
from lcm.store.cohort import Cohort

N_ROIS = 13
# Tiny but not degenerate: quick on 2 CPU cores.
TINY = {"preset": "tiny", "overrides": {"d_model": 32, "n_heads": 4, "d_ffn": 48}}

CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
  handedness: {kind: categorical, domain: behavioural, levels: [left, right, mixed]}
  bmi: {kind: continuous, domain: physiological, units: kg/m^2, range: [12, 60]}
  dx: {kind: binary, domain: clinical, levels: [control, patient]}
datasets:
  alpha:
    id_column: SUB_ID
    columns:
      age: {column: AGE}
      sex: {column: SEX}
      handedness: {column: HAND}
      bmi: {column: BMI}
      dx: {column: DX}
"""


def write_catalogue(folder: Path, text: str = CATALOGUE) -> Path:
    """Write the test catalogue YAML into ``folder``, atomically.

    Data parallel tests start one process per rank on one folder: a plain write let one rank
    read the file while another had truncated it ("'variables' is a required property").
    """
    path = folder / "variables.yaml"
    tmp = folder / f".variables.yaml.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def make_catalogue(folder: Path) -> Catalogue:
    """The validated test catalogue."""
    return load_catalogue(write_catalogue(folder))


def _patterns(n_rois: int, rng: np.random.Generator, k: int) -> np.ndarray:
    p = rng.standard_normal((k, n_rois, n_rois))
    return (p + p.transpose(0, 2, 1)) / 2  # symmetric edge patterns


def make_cohort(
    n_subjects: int,
    n_rois: int = N_ROIS,
    seed: int = 0,
    runs_per_subject: int = 1,
    bmi_missing: float = 0.3,
    dataset: str = "alpha",
    atlas: str = "toy",
) -> Cohort:
    """A cohort whose FC encodes age, sex and BMI (and a diagnosis in ``variables['dx']``).

    The diagnosis shares the age pattern partly, so BEI pretraining helps it.
    """
    rng = np.random.default_rng(seed)
    patterns = _patterns(n_rois, np.random.default_rng(1234), 5)  # same structure every seed
    base = np.tanh(0.3 * patterns[0])
    age = rng.uniform(20, 70, n_subjects)
    sex = rng.integers(0, 2, n_subjects)
    bmi = rng.normal(25, 4, n_subjects)
    dx = rng.integers(0, 2, n_subjects)
    hand = rng.integers(0, 3, n_subjects)
    ids, fcs, rows = [], [], []
    for i in range(n_subjects):
        for r in range(runs_per_subject):
            signal = (
                0.25 * ((age[i] - 45) / 15) * patterns[1]
                + 0.25 * (sex[i] - 0.5) * patterns[2]
                + 0.2 * ((bmi[i] - 25) / 4) * patterns[3]
                + 0.25 * (dx[i] - 0.5) * (patterns[4] + patterns[1])
            )
            noise = _patterns(n_rois, rng, 1)[0] * 0.05
            fc = np.tanh(np.arctanh(base * 0.9) + 0.3 * signal + noise)
            np.fill_diagonal(fc, 1.0)
            fcs.append(fc.astype(np.float32))
            ids.append([dataset, f"s{i:03d}", "", "rest", str(r + 1), "site1"])
            rows.append(
                {
                    "age": age[i],
                    "sex": ["F", "M"][sex[i]],
                    "handedness": ["left", "right", "mixed"][hand[i]],
                    "bmi": np.nan if rng.random() < bmi_missing else bmi[i],
                    "dx": ["control", "patient"][dx[i]],
                }
            )
    frame = pd.DataFrame(ids, columns=["dataset", "subject", "session", "task", "run", "site"])
    variables = pd.DataFrame(rows)
    variables[["sex", "handedness", "dx"]] = variables[["sex", "handedness", "dx"]].astype(object)
    return Cohort(
        ids=frame,
        fc=np.stack(fcs),
        variables=variables,
        roi_names=[f"roi{i}" for i in range(n_rois)],
        atlas=atlas,
    )


def pretrain_cohort(n_subjects: int = 60, seed: int = 0) -> Cohort:
    """A pretraining cohort: no diagnosis (role: pretrain datasets lack it)."""
    cohort = make_cohort(n_subjects, seed=seed)
    cohort.variables["dx"] = None
    return cohort


def assert_same_training(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], d_model: int
) -> None:
    """Weights of one and of two processes on the same global batches: equal up to the order
    of float summation."""
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if key.endswith("in_proj_bias"):
            # The key bias shifts every attention score of a query equally: its true gradient
            # is 0, and Adam turns the float noise of either run into lr-sized steps.
            keep = torch.ones_like(x, dtype=torch.bool)
            keep[d_model : 2 * d_model] = False
            x, y = x[keep], y[keep]
        torch.testing.assert_close(y, x, rtol=1e-4, atol=2e-5, msg=key)


def assert_same_history(one: Path, two: Path) -> None:
    """Per-epoch losses of one and of two processes (the mean of the ranks' shares) agree."""
    a, b = (pd.read_csv(d / "history.tsv", sep="\t") for d in (one, two))
    losses = [c for c in a if c.startswith("loss_")]
    assert "loss_total" in losses and len(losses) > 2
    pd.testing.assert_frame_equal(a[losses], b[losses], rtol=1e-6, atol=1e-6)


# The test catalogue, with a second (downstream) dataset coded like the first.
CLI_CATALOGUE = (
    CATALOGUE
    + """  beta:
    id_column: SUB_ID
    columns:
      age: {column: AGE}
      sex: {column: SEX}
      dx: {column: DX}
"""
)


def relmat_qc_row(subject: str, relmat: Path, *, dataset: str) -> dict[str, str]:
    """The QC row of an included resting-state run of ``dataset`` whose matrix is the TSV
    ``relmat`` (the columns every reader requires, lcm.io.qc_table.QC_REQUIRED, among them)."""
    return {
        "dataset": dataset,
        "subject": subject,
        "session": "",
        "task": "rest",
        "run": "1",
        "run_key": f"sub-{subject}_task-rest_run-1",
        "included": "True",
        "reason": "",
        "n_volumes": "100",
        "n_volumes_kept": "98",
        "mean_fd": "0.1",
        "t_r": "2.0",
        "relmat": str(relmat),
    }


def add_store_dataset(
    tmp: Path,
    store: Path,
    catalogue: Path,
    dataset: str,
    atlas: str,
    n: int,
    seed: int,
    order: list[int] | None = None,
    rename: dict[str, str] | None = None,
) -> None:
    """Write relmat TSVs, a QC table and a phenotype file, then run `lcm store` on them.

    ``order`` permutes the ROIs (names and matrix rows alike: the same connectomes stored in
    another ROI order, as another labels file of the same atlas would give); ``rename`` gives
    some ROIs other names.
    """
    cohort = make_cohort(n, seed=seed)
    folder = tmp / f"{dataset}-{atlas}"
    folder.mkdir()
    order = list(range(len(cohort.roi_names))) if order is None else order
    names = [(rename or {}).get(cohort.roi_names[j], cohort.roi_names[j]) for j in order]
    qc_rows, pheno = [], cohort.variables.copy()
    for i, subject in enumerate(cohort.ids["subject"]):
        path = folder / f"sub-{subject}_relmat.tsv"
        fc = cohort.fc[i][np.ix_(order, order)]
        pd.DataFrame(fc, index=pd.Index(names, name="Node"), columns=names).to_csv(path, sep="\t")
        qc_rows.append(relmat_qc_row(subject, path, dataset=dataset))
    pd.DataFrame(qc_rows).to_csv(folder / "qc.tsv", sep="\t", index=False)
    pheno = pheno.rename(
        columns={"age": "AGE", "sex": "SEX", "handedness": "HAND", "bmi": "BMI", "dx": "DX"}
    )
    pheno.insert(0, "SUB_ID", cohort.ids["subject"])
    if dataset == "alpha":
        pheno["DX"] = "n/a"  # pretraining datasets carry no diagnosis
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="n/a")
    code = main(
        [
            "store",
            "--dataset",
            dataset,
            "--qc-table",
            str(folder / "qc.tsv"),
            "--phenotype",
            str(folder / "pheno.tsv"),
            "--catalogue",
            str(catalogue),
            "--atlas",
            atlas,
            "--store-dir",
            str(store),
        ]
    )
    assert code == 0


def spy_finetuning_targets(monkeypatch) -> list:
    """Record the BEI and task targets of every finetuning run (``_Finetuning.__call__``)."""
    from lcm.train import finetune as finetune_mod

    calls: list = []
    original = finetune_mod._Finetuning.__call__

    def spy(self, fc, y):
        calls.append(self.targets(y))
        return original(self, fc, y)

    monkeypatch.setattr(finetune_mod._Finetuning, "__call__", spy)
    return calls


def pretrain_argv(
    store: Path,
    catalogue: Path,
    out_dir: Path,
    settings: str = '{"epochs": 3, "batch_size": 8}',
    seed: int = 4,
    *extra: str,
) -> list[str]:
    """``lcm pretrain`` of the tiny model on dataset ``alpha`` of atlas ``toy``, one thread."""
    return [
        "pretrain",
        *("--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)),
        *("--datasets", "alpha", "--model", json.dumps(TINY), "--settings", settings),
        *("--seed", str(seed), "--out-dir", str(out_dir), "--threads", "1", *extra),
    ]


def finetune_argv(
    store: Path, catalogue: Path, checkpoint: Path, out_dir: Path, *extra: str
) -> list[str]:
    """``lcm finetune`` of ``checkpoint`` on ``dx`` of dataset ``beta`` of atlas ``toy``, one
    epoch, one thread."""
    return [
        "finetune",
        *("--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)),
        *("--checkpoint", str(checkpoint), "--dataset", "beta", "--label", "dx"),
        *("--positive", "patient", "--settings", '{"epochs": 1, "batch_size": 8}'),
        *("--out-dir", str(out_dir), "--threads", "1", *extra),
    ]


def pretrained_store(root: Path, n_alpha: int, n_beta: int) -> tuple[Path, Path, Path]:
    """A store of a pretraining dataset (``alpha``, ``n_alpha`` subjects) and a labelled one
    (``beta``), their catalogue, and a checkpoint pretrained one epoch on ``alpha``."""
    catalogue = write_catalogue(root, CLI_CATALOGUE)
    store = root / "store"
    add_store_dataset(root, store, catalogue, "alpha", "toy", n_alpha, seed=0)
    add_store_dataset(root, store, catalogue, "beta", "toy", n_beta, seed=1)
    pre = root / "pre"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    return store, catalogue, pre
