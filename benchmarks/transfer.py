"""The transfer experiment: does pretraining pay off where the data say it should?

Synthetic consortia with known answers (``lcm.synth``, built in memory, nothing written but the
results): a pretraining cohort (HCP-like + UK-Biobank-like halves, nested sizes) and, for each
``shared_structure`` value, an ABIDE-like downstream cohort. Every cell (pretraining size x
shared_structure x label fraction) is fitted over split seeds x label-subset/initialisation
draws; contenders are LCM and its ablations (``lcm``, ``lcm-no-pseudo``, ``lcm-ssl``,
``lcm-scratch``) beside ``logreg``, ``ridge``, ``tangent-logreg`` and ``bei-linear`` (ridge maps
from FC to every BEI variable fitted on the pretraining cohort; the classifier sees the
predicted variables, :mod:`lcm.evaluate.bei_linear`).

Honesty built in:

* **Matched scan-level difficulty.** At ``shared_structure`` s the diagnosis pattern is
  ``s * M + sqrt(1 - s^2) * I``; its scan-level detectability varies with s. For each s the
  *finite-scan oracle* (AUC of the true diagnosis pattern projected on each subject's own
  connectome, no fitting) is measured on the downstream cohort and its diagnosis effect size
  rescaled (same subjects and noise, three steps) until the oracle is ``--target-oracle``;
  the oracle reached is reported per cohort. The oracle of ``ground_truth`` (true matrices)
  is no ceiling for scans.
* **No motion shortcut.** Patients move 1.2x more in the synthetic ABIDE; here the coupling is
  removed (motion drawn alike for both groups) and the mean-FD-only AUC is reported per cohort.
* **Training variance in the intervals.** Each contrast (``lcm - lcm-scratch`` ...) is a paired
  difference per seed x draw (different train/test split, labelled subset and initialisation);
  its interval is the corrected resampled t of Nadeau & Bengio (2003)
  (:func:`lcm.evaluate.compare.corrected_t_interval`).
* **No downstream data in model choices.** Pretraining is early-stopped / selected on a
  held-out split of the pretraining cohort only (``lcm.train.pretrain``); bei-linear's ridge
  penalties are chosen on a pretraining hold-out; downstream hyper-parameters by inner CV on
  the training split.

The LCM variants cost ~1000x more than the linear models on CPU, so they run where the
JSON's keys need them (``--lcm-cells focal``: every shared_structure at the focal label fraction
and the largest pretraining size, and every pretraining size at the focal shared_structure);
the linear contenders run in every cell. Outputs in ``--out``: ``transfer_fits.parquet`` (one
row per fit), ``transfer_cells.parquet`` (per cell and model: mean AUC, contrasts with
intervals), ``transfer.png`` (gain vs shared_structure and vs pretraining size) and the last
line of stdout, JSON: ``pretrain_gain`` (lcm - lcm-scratch, AUC, at shared 0.7, fraction 0.1,
largest pretraining cohort), ``pretrain_gain_ci_low``/``_ci_high``, ``linear_gap`` (lcm - the
best of logreg, ridge, tangent-logreg, bei-linear, same cell), ``null_gain`` (lcm - lcm-scratch
at shared 0, same fraction and size), ``shared_rise`` (pretrain_gain - null_gain, paired per
seed x draw, with its interval), ``oracle_spread`` (largest difference between the cohorts'
finite-scan oracles, calibrated projection or the report's readout), ``pseudo_gain``
(lcm - lcm-no-pseudo), ``bei_linear_gain`` (bei-linear - logreg), the oracles, settings,
``seconds`` and ``targets_met``: pretrain_gain's interval above 0, linear_gap >= 0, null_gain's
interval covering 0, shared_rise's above 0 and oracle_spread within
:data:`lcm.report.verdict.DIFFICULTY_TOLERANCE`.

    python benchmarks/transfer.py --quick      # ~20 s on 2 cores (make test)
    python benchmarks/transfer.py              # the reference run of docs/transfer.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lcm.catalogue import load_catalogue  # noqa: E402
from lcm.evaluate.baselines import (  # noqa: E402
    ConnectomeLogReg,
    ConnectomeRidgeClassifier,
    TangentLogReg,
)
from lcm.evaluate.bei_linear import BEILinear, fit_bei_maps  # noqa: E402
from lcm.evaluate.compare import corrected_t_interval  # noqa: E402
from lcm.report.verdict import DIFFICULTY_TOLERANCE  # noqa: E402
from lcm.store.cohort import Cohort  # noqa: E402
from lcm.store.layout import fisher_z  # noqa: E402

log = logging.getLogger("transfer")

LINEAR = ("logreg", "ridge", "tangent-logreg", "bei-linear")
# Diagnostic contenders, outside linear_gap and pretrain_gain: bei-linear and LCM (pretrained,
# and from scratch) on connectomes centred per dataset (pretraining: per consortium, in Fisher
# z; downstream: on the training fold's mean). Are the readouts weak because they learn the
# consortium differences (HCP 22-37 vs UKB 45-82 years: an age readout reads the consortium)?
CENTRED_LCM = ("lcm-centred", "lcm-scratch-centred")
DIAGNOSTIC = ("bei-linear-centred", *CENTRED_LCM)
LCM = ("lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch", "lcm-finetune")
PRETRAIN_VARIABLES = ("age", "sex", "fluid_intelligence", "working_memory", "bmi", "education")
# The reference run of docs/transfer.md (12-24 min on 2 cores). On a GPU: --n-rois 116
# --finetune-epochs 20; --models adds lcm-finetune (with --finetune-settings) and the centred LCM.
FULL = {
    "sizes": [500, 2000, 8000],
    "shared": [0.0, 0.35, 0.7, 1.0],
    "fractions": [0.05, 0.1, 0.25, 1.0],
    "seeds": 5,
    "draws": 3,
    "n_downstream": 200,
    "n_rois": 58,
    "pretrain_volumes": 300,
    "pretrain_samples": 60000,
    "pretrain_max_epochs": 40,
    "finetune_epochs": 10,
    "models": ["lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch", *LINEAR, "bei-linear-centred"],
    "jobs": 2,
}
QUICK = {
    "sizes": [120, 240],
    "shared": [0.0, 0.7],
    "fractions": [0.1, 1.0],
    "seeds": 2,
    "draws": 1,
    "n_downstream": 70,
    "n_rois": 30,
    "pretrain_volumes": 120,
    "pretrain_samples": 600,
    "pretrain_max_epochs": 3,
    "finetune_epochs": 2,
    "models": [*LCM, *LINEAR, *DIAGNOSTIC],
    "jobs": 1,
}
FOCAL = {"shared": 0.7, "fraction": 0.1}
# Finetuned with the schema's defaults whatever --finetune-settings says (lcm-finetune: the
# pretrained transformer finetuned whole; lcm-scratch: the same from a fresh initialisation).
REFERENCES = ("lcm-finetune", "lcm-scratch", "lcm-scratch-centred")
# Never see pretraining data: one fit serves every pretraining size.
SIZE_FREE = ("lcm-scratch", "lcm-scratch-centred", "logreg", "ridge", "tangent-logreg")
ALL_MODELS = (*LCM, *LINEAR, *DIAGNOSTIC)
TEST_FRACTION = 0.3


# -- data ---------------------------------------------------------------------------------------


def benchmark_atlas(n_rois: int):
    """AAL-116, or an evenly spaced subset of its regions (networks still assigned by name)."""
    from lcm.atlas import load_atlas

    atlas = load_atlas("aal116")
    if n_rois >= atlas.n_rois:
        return atlas
    keep = np.linspace(0, atlas.n_rois - 1, n_rois).round().astype(int)
    labels = atlas.labels.iloc[keep].reset_index(drop=True)
    return dataclasses.replace(atlas, name=f"aal116sub{n_rois}", img=None, labels=labels)


def simulate(
    preset: str,
    name: str,
    n: int,
    seed: int,
    atlas,
    shared: float,
    n_volumes: int | None = None,
    dx_scale: float = 1.0,
    decouple_motion: bool = True,
) -> dict:
    """Connectomes, variables, mean FD and diagnosis of an in-memory synthetic cohort.

    The connectome is the Pearson matrix of each subject's ROI time series (the ROI tier's
    output), i.e. what the pipeline would store for this cohort.
    """
    from lcm.synth.latents import PATIENT_MOTION
    from lcm.synth.presets import resolve
    from lcm.synth.subject import prepare, roi_timeseries

    consortium = {"preset": preset, "tier": "roi", "n_subjects": n}
    if n_volumes:
        consortium["n_volumes"] = n_volumes
    spec = resolve(name, consortium)
    ctx = prepare(spec, seed, atlas, shared)
    dx = spec.preset.diagnosis
    lat = ctx.latents
    if dx:
        ctx.model.sizes[dx] = ctx.model.sizes[dx] * dx_scale
        if decouple_motion:  # patients drawn with the controls' motion distribution
            patient = lat["diagnosis"].to_numpy() == 1
            lat.loc[patient, "motion_scale"] /= PATIENT_MOTION[dx]
    r = atlas.n_rois
    fc = np.empty((n, r, r), dtype=np.float32)
    fd = np.empty(n)
    for i in range(n):
        ts, draw = roi_timeseries(ctx, i)
        fc[i] = np.corrcoef(ts.T)
        fd[i] = draw.fd.mean()
    variables = pd.DataFrame(index=range(n))
    for var in PRETRAIN_VARIABLES:
        if var in spec.preset.variables:
            col = lat[var].reset_index(drop=True)
            variables[var] = col.astype(object) if var == "sex" else col.astype(float)
        else:
            variables[var] = np.nan if var != "sex" else None
    if dx:
        variables[dx] = lat[dx].reset_index(drop=True).astype(object)
    iu = np.triu_indices(r, k=1)
    pattern = ctx.model.patterns[dx][iu] if dx else None
    return {
        "name": name,
        "fc": fc,
        "variables": variables,
        "fd": fd,
        "ctx": ctx,
        "y": lat["diagnosis"].to_numpy() if dx else None,
        "projection": fc.reshape(n, -1)[:, (iu[0] * r + iu[1])] @ pattern if dx else None,
    }


def auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def scan_readout_auc(data: dict, seed: int) -> float:
    """The report's oracle readout on this cohort's connectomes: a cross-validated logistic
    regression on each connectome's projections onto the true environmental and diagnosis
    patterns (the method of :func:`lcm.synth.oracle.scan_oracle`, whose
    ``DIFFICULTY_TOLERANCE`` check the report applies to planted and null cohorts).

    The calibration matches the raw projection; this says whether the report's own readout
    sees the cohorts as matched too.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lcm.synth.connectivity import ENV_VARIABLES

    model, dx = data["ctx"].model, data["ctx"].spec.preset.diagnosis
    r = data["fc"].shape[1]
    iu = np.triu_indices(r, k=1)
    patterns = np.stack([model.patterns[v][iu] for v in [*ENV_VARIABLES, dx]], axis=1)
    features = data["fc"][:, iu[0], iu[1]].astype(np.float64) @ patterns
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=seed % (2**32))
    proba = cross_val_predict(clf, features, data["y"], cv=cv, method="predict_proba")
    return auc(data["y"], proba[:, 1])


def calibrated_scale(
    atlas, shared: float, target: float, n: int, seed: int, keep_motion: bool, steps: int = 3
) -> float:
    """Diagnosis effect scale giving the downstream cohort a finite-scan oracle AUC of ``target``.

    The cohort is simulated again with the same seed (the same subjects, noise and effect
    patterns; only the diagnosis effect's size changes): measured at scale 1, then
    ``d' = sqrt(2) * Phi^-1(AUC)`` taken as proportional to the scale, refined ``steps`` times
    (the projection is not exactly linear in the effect size). A cohort of another seed would
    draw other effect patterns, whose detectability differs by +-0.1 AUC at 200 subjects.
    """
    from scipy.stats import norm

    scale = 1.0
    for _ in range(steps):
        cal = simulate(
            "abide",
            "abidelike",
            n,
            seed,
            atlas,
            shared,
            None,
            scale,
            decouple_motion=not keep_motion,
        )
        a = min(max(auc(cal["y"], cal["projection"]), 0.51), 0.99)
        scale *= float(norm.ppf(target) / norm.ppf(a))
    return scale


def as_cohort(data: dict, dataset: str, rows: np.ndarray | None = None) -> Cohort:
    n = len(data["fc"])
    rows = np.arange(n) if rows is None else rows
    ids = pd.DataFrame(
        {
            "dataset": dataset,
            "subject": [f"s{i:05d}" for i in rows],
            "session": "",
            "task": "rest",
            "run": "1",
            "site": "",
        }
    )
    return Cohort(
        ids,
        data["fc"][rows],
        data["variables"].iloc[rows].reset_index(drop=True),
        [f"r{i}" for i in range(data["fc"].shape[1])],
        "bench",
    )


def pretraining_cohort(hcp: dict, ukb: dict, size: int) -> Cohort:
    """The first ``size / 2`` subjects of each half: sizes are nested."""
    half = size // 2
    a, b = as_cohort(hcp, "hcplike", np.arange(half)), as_cohort(ukb, "ukblike", np.arange(half))
    return Cohort(
        pd.concat([a.ids, b.ids], ignore_index=True),
        np.concatenate([a.fc, b.fc]),
        pd.concat([a.variables, b.variables], ignore_index=True),
        a.roi_names,
        a.atlas,
    )


# -- models ------------------------------------------------------------------------------------


def pretrain_checkpoint(cohort: Cohort, cfg: dict, out: Path, seed: int, kind: str) -> Path:
    """One pretraining run: ``kind`` "lcm" (BEI + masked ROI) or "ssl" (masked ROI only)."""
    import torch
    from threadpoolctl import threadpool_limits

    from lcm.train.pretrain import pretrain

    torch.set_num_threads(1)
    threadpool_limits(1)
    catalogue = load_catalogue(ROOT / "config" / "variables.yaml")
    epochs = int(
        np.clip(cfg["pretrain_samples"] // max(1, len(cohort)), 1, cfg["pretrain_max_epochs"])
    )
    settings = {
        "epochs": epochs,
        "batch_size": 32,
        "lr": 0.002,
        "bei_weight": 0.0 if kind == "ssl" else 1.0,
        "checkpoint_every": 10**9,
        **cfg.get("pretrain_settings", {}),
    }
    started = time.perf_counter()
    pretrain(cohort, catalogue, {"preset": "tiny"}, settings, seed, out, device="cpu")
    log.info(
        "pretrained %s on %d subjects (%d epochs) in %.0f s",
        kind,
        len(cohort),
        epochs,
        time.perf_counter() - started,
    )
    return out


def make_model(name: str, seed: int, maps, ckpt: dict[str, Path] | None, cfg: dict):
    if name == "logreg":
        return ConnectomeLogReg(seed=seed)
    if name == "ridge":
        return ConnectomeRidgeClassifier(seed=seed)
    if name == "tangent-logreg":
        return TangentLogReg(seed=seed)
    if name == "bei-linear":
        return BEILinear(maps["raw"], seed=seed)
    if name == "bei-linear-centred":
        return Centred(BEILinear(maps["centred"], seed=seed))
    from lcm.train.finetune import LCMClassifier

    settings = {"epochs": cfg["finetune_epochs"], "batch_size": 32, "lr": 0.001}
    if name in REFERENCES:  # fixed references: the whole transformer, the schema's defaults
        settings["method"] = "finetune"
    else:  # the variants judged take --finetune-settings
        settings.update(cfg.get("finetune_settings", {}))
    if name in ("lcm-no-pseudo", "lcm-ssl"):
        settings.update(pseudo_labels=False, diagnosis_pseudo_labels=False)
    path = {"lcm-ssl": "ssl", "lcm-centred": "centred"}.get(name, "lcm")
    init = "scratch" if name in ("lcm-scratch", "lcm-scratch-centred") else "pretrained"
    model = LCMClassifier(ckpt.get(path), "autism", ("control", "autism"), settings, seed, init)
    return Centred(model) if name in CENTRED_LCM else model


def centre_connectomes(fc: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``fc`` with the mean Fisher-z connectome of ``reference`` removed (back through tanh).

    The Fisher-z features of the result are those of ``fc`` minus the reference mean, so the
    ridge maps and the classifier of ``bei-linear`` see connectomes centred per dataset.
    """
    z = fisher_z(fc)
    out = np.tanh(z - fisher_z(reference).mean(axis=0))
    idx = np.arange(fc.shape[1])
    out[:, idx, idx] = 1.0
    return out.astype(fc.dtype)


class Centred:
    """A contender on connectomes centred on the training fold's mean (fit rows only)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def fit(self, fc, y, variables=None, groups=None):
        self.reference_ = fc
        self.inner.fit(centre_connectomes(fc, fc), y, variables, groups=groups)
        return self

    def predict_proba(self, fc):
        return self.inner.predict_proba(centre_connectomes(fc, self.reference_))


def centred_cohort(cohort: Cohort) -> Cohort:
    """``cohort`` with each dataset's connectomes centred on that dataset's mean (Fisher z)."""
    fc = cohort.fc.copy()
    datasets = cohort.ids["dataset"].to_numpy()
    for dataset in np.unique(datasets):
        rows = np.flatnonzero(datasets == dataset)
        fc[rows] = centre_connectomes(cohort.fc[rows], cohort.fc[rows])
    return Cohort(cohort.ids, fc, cohort.variables, cohort.roi_names, cohort.atlas)


def labelled_subset(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified subset of the training rows that keep their label (>= 2 per class)."""
    keep = np.zeros(len(y), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        k = min(len(idx), max(2, round(fraction * len(idx))))
        keep[rng.permutation(idx)[:k]] = True
    return keep


def split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=TEST_FRACTION, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


# -- experiment -------------------------------------------------------------------------------


def lcm_wanted(cfg: dict, size: int, shared: float, fraction: float) -> bool:
    if cfg["lcm_cells"] == "all":
        return True
    if cfg["lcm_cells"] == "none":
        return False
    focal_f = closest(cfg["fractions"], FOCAL["fraction"])
    focal_s = closest(cfg["shared"], FOCAL["shared"])
    biggest = max(cfg["sizes"])
    return fraction == focal_f and (size == biggest or shared == focal_s)


def closest(values: list[float], target: float) -> float:
    return min(values, key=lambda v: (abs(v - target), -v))


def run(cfg: dict, out: Path) -> dict:

    started = time.perf_counter()
    atlas = benchmark_atlas(cfg["n_rois"])
    seed = cfg["seed"]
    biggest = max(cfg["sizes"])
    t0 = time.perf_counter()
    hcp = simulate("hcp", "hcplike", biggest // 2, seed, atlas, 0.0, cfg["pretrain_volumes"])
    ukb = simulate("ukb", "ukblike", biggest // 2, seed, atlas, 0.0, cfg["pretrain_volumes"])
    log.info("pretraining cohorts simulated in %.0f s", time.perf_counter() - t0)
    downstream, cohorts = {}, []
    for s in cfg["shared"]:
        scale = calibrated_scale(
            atlas, s, cfg["target_oracle"], cfg["n_downstream"], seed, cfg["keep_motion_coupling"]
        )
        data = simulate(
            "abide",
            "abidelike",
            cfg["n_downstream"],
            seed,
            atlas,
            s,
            None,
            scale,
            decouple_motion=not cfg["keep_motion_coupling"],
        )
        downstream[s] = data
        cohorts.append(
            {
                "shared_structure": s,
                "dx_scale": round(scale, 4),
                "finite_scan_oracle_auc": round(auc(data["y"], data["projection"]), 4),
                "scan_readout_auc": round(scan_readout_auc(data, seed), 4),
                "mean_fd_auc": round(auc(data["y"], data["fd"]), 4),
                "n_subjects": len(data["y"]),
                "n_patients": int(data["y"].sum()),
            }
        )
        log.info("downstream cohort %s", cohorts[-1])
    with tempfile.TemporaryDirectory(prefix="lcm-transfer-") as folder:
        rows, readouts = fit_everything(cfg, hcp, ukb, downstream, Path(folder))
    train, test = split(downstream[cfg["shared"][0]]["y"], 0)
    log.info("%d fits in %.0f s", len(rows), time.perf_counter() - started)
    fits = pd.DataFrame(rows)
    cells = cell_table(fits, len(train), len(test))
    out.mkdir(parents=True, exist_ok=True)
    fits.to_parquet(out / "transfer_fits.parquet", index=False)
    cells.to_parquet(out / "transfer_cells.parquet", index=False)
    pd.DataFrame(cohorts).to_csv(out / "transfer_cohorts.tsv", sep="\t", index=False)
    plot(cells, cfg, out / "transfer.png")
    result = summary(cells, cfg, cohorts, fits, time.perf_counter() - started)
    result["readout_heldout_r2"] = readouts
    return result


def fit_everything(cfg: dict, hcp: dict, ukb: dict, downstream: dict, tmp: Path) -> list[dict]:
    """Pretrain per size (checkpoints under ``tmp``), then every downstream fit: one row each."""
    from joblib import Parallel, delayed

    seed = cfg["seed"]
    models = cfg["models"]
    maps, ckpts = {}, {}
    for size in sorted(cfg["sizes"]):
        pre = pretraining_cohort(hcp, ukb, size)
        maps[size] = {}
        if "bei-linear" in models:
            maps[size]["raw"] = fit_bei_maps(pre.fc, pre.variables, pre.groups, seed)
        if "bei-linear-centred" in models:
            centred = centred_cohort(pre)
            maps[size]["centred"] = fit_bei_maps(centred.fc, pre.variables, pre.groups, seed)
        need_lcm = any(m in (*LCM, *CENTRED_LCM) for m in models) and any(
            lcm_wanted(cfg, size, s, f) for s in cfg["shared"] for f in cfg["fractions"]
        )
        if need_lcm:
            ckpts[size] = pre
    # Pretraining runs (size x BEI / SSL-only) in parallel, then the downstream fits.
    kinds = ["lcm", *(["ssl"] if "lcm-ssl" in models else [])]
    kinds += ["centred"] if "lcm-centred" in models else []
    todo = [(size, kind) for size in ckpts for kind in kinds]
    done = Parallel(n_jobs=cfg["jobs"])(
        delayed(pretrain_checkpoint)(
            centred_cohort(ckpts[size]) if kind == "centred" else ckpts[size],
            cfg,
            tmp / f"n{size}" / kind,
            seed,
            kind,
        )
        for size, kind in todo
    )
    ckpts = {size: {} for size in ckpts}
    for (size, kind), path in zip(todo, done, strict=True):
        ckpts[size][kind] = path

    jobs = [(s, split_seed) for s in downstream for split_seed in range(cfg["seeds"])]
    parts = Parallel(n_jobs=cfg["jobs"], verbose=0 if cfg["quick"] else 10)(
        delayed(fit_split)(downstream[s], s, split_seed, maps, ckpts, cfg) for s, split_seed in jobs
    )
    return [row for part in parts for row in part], readout_r2(maps, ckpts)


def readout_r2(maps: dict, ckpts: dict) -> dict:
    """Hold-out R² of each BEI readout per pretraining size: LCM's heads (its ``bei_eval.tsv``)
    and the ridge maps of bei-linear (raw and centred), each on its own pretraining hold-out."""
    out: dict = {}
    for size in sorted(set(maps) | set(ckpts)):
        entry = {
            f"bei-linear{'' if kind == 'raw' else '-' + kind}": {
                n: round(float(r), 3) for n, r in zip(m.names, m.heldout_r2, strict=True)
            }
            for kind, m in maps.get(size, {}).items()
        }
        for kind, folder in ckpts.get(size, {}).items():
            evaluation = pd.read_csv(Path(folder) / "bei_eval.tsv", sep="\t")
            r2 = evaluation[evaluation["metric"] == "r2"]
            entry[kind] = {
                v: round(float(m), 3) for v, m in zip(r2["variable"], r2["model"], strict=True)
            }
        out[int(size)] = entry
    return out


def fit_split(
    data: dict, s: float, split_seed: int, maps: dict, ckpts: dict, cfg: dict
) -> list[dict]:
    """Every fit of one downstream cohort's split (all sizes, fractions, draws and models).

    One job of the parallel run: single-threaded inside (BLAS and torch), so ``--jobs``
    workers fill the cores without oversubscription.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    logging.getLogger("lcm").setLevel(logging.WARNING)
    seed, y, rows = cfg["seed"], data["y"], []
    train, test = split(y, split_seed)
    cache: dict[tuple, float] = {}  # models that use no pretraining: one fit serves every size
    for size in sorted(cfg["sizes"]):
        for fraction in cfg["fractions"]:
            for draw in range(cfg["draws"]):
                rng = np.random.default_rng([seed, split_seed, draw, int(fraction * 1e4)])
                mask = labelled_subset(y[train], fraction, rng)
                y_fit = np.where(mask, y[train], -1)
                variables = data["variables"].iloc[train].reset_index(drop=True).copy()
                variables["autism"] = variables["autism"].where(mask, None)
                fit_seed = int(rng.integers(2**31))
                for name in cfg["models"]:
                    if name in (*LCM, *CENTRED_LCM) and not lcm_wanted(cfg, size, s, fraction):
                        continue
                    key = (name, fraction, draw)
                    t = time.perf_counter()
                    if key in cache:
                        value, fit_s = cache[key], 0.0
                    else:
                        model = make_model(name, fit_seed, maps.get(size), ckpts.get(size), cfg)
                        model.fit(data["fc"][train], y_fit, variables, groups=np.arange(len(train)))
                        value = auc(y[test], model.predict_proba(data["fc"][test])[:, 1])
                        fit_s = time.perf_counter() - t
                        if name in SIZE_FREE:
                            cache[key] = value
                    rows.append(
                        {
                            "pretrain_size": size,
                            "shared_structure": s,
                            "label_fraction": fraction,
                            "seed": split_seed,
                            "draw": draw,
                            "model": name,
                            "auc": value,
                            "fit_s": fit_s,
                            "n_labelled": int(mask.sum()),
                        }
                    )
    log.info("shared %g split %d: %d fits", s, split_seed, len(rows))
    return rows


def cell_table(fits: pd.DataFrame, n_train: int, n_test: int) -> pd.DataFrame:
    """Per cell: mean AUC of each model and contrasts against lcm / logreg with intervals."""
    keys = ["pretrain_size", "shared_structure", "label_fraction"]
    ratio = n_test / n_train
    out = []
    for cell, at in fits.groupby(keys, sort=True):
        wide = at.pivot_table(index=["seed", "draw"], columns="model", values="auc")
        base = dict(zip(keys, cell, strict=True))
        for model in wide.columns:
            out.append(
                {
                    **base,
                    "kind": "auc",
                    "a": model,
                    "b": "",
                    "mean": wide[model].mean(),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": int(wide[model].notna().sum()),
                }
            )
        linear = [m for m in LINEAR if m in wide.columns]
        best = max(linear, key=lambda m: wide[m].mean()) if linear else None
        pairs = [
            ("lcm", "lcm-scratch"),
            ("lcm", "lcm-no-pseudo"),
            ("lcm", "lcm-ssl"),
            ("lcm", "lcm-finetune"),
            ("bei-linear", "logreg"),
            ("bei-linear-centred", "bei-linear"),
            ("lcm-centred", "lcm-scratch-centred"),
            ("lcm-centred", "lcm"),
        ] + ([("lcm", best), ("lcm-centred", best)] if best else [])
        for a, b in pairs:
            if a in wide.columns and b in wide.columns:
                d = (wide[a] - wide[b]).to_numpy()
                mean, low, high, _ = corrected_t_interval(d, ratio)
                out.append(
                    {
                        **base,
                        "kind": "contrast",
                        "a": a,
                        "b": b,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "n": int(np.isfinite(d).sum()),
                    }
                )
    return pd.DataFrame(out)


def _contrast(cells: pd.DataFrame, a: str, b: str, size, shared, fraction) -> dict:
    at = cells[
        (cells["kind"] == "contrast")
        & (cells["a"] == a)
        & (cells["b"] == b)
        & (cells["pretrain_size"] == size)
        & np.isclose(cells["shared_structure"], shared)
        & np.isclose(cells["label_fraction"], fraction)
    ]
    if at.empty:
        return {"mean": None, "ci_low": None, "ci_high": None}
    r = at.iloc[0]
    return {
        k: (round(float(r[k]), 4) if np.isfinite(r[k]) else None)
        for k in ("mean", "ci_low", "ci_high")
    }


def shared_rise(fits: pd.DataFrame, size, high: float, low: float, fraction: float) -> dict:
    """How much more lcm gains over lcm-scratch at shared_structure ``high`` than at ``low``.

    The downstream cohorts of every s hold the same subjects (same seed), so their splits,
    labelled subsets and initialisations match: the contrast is paired per seed x draw,
    ``(lcm - lcm-scratch)[high] - (lcm - lcm-scratch)[low]``, with the corrected resampled t
    interval. DESIGN asks the gain to *rise* with the planted structure; two point estimates,
    one above the other, do not show it.
    """
    at = fits[
        (fits["pretrain_size"] == size)
        & np.isclose(fits["label_fraction"], fraction)
        & fits["model"].isin(["lcm", "lcm-scratch"])
    ]
    gains = {}
    for s in (high, low):
        wide = at[np.isclose(at["shared_structure"], s)].pivot_table(
            index=["seed", "draw"], columns="model", values="auc"
        )
        if not {"lcm", "lcm-scratch"} <= set(wide.columns):
            return {"mean": None, "ci_low": None, "ci_high": None}
        gains[s] = wide["lcm"] - wide["lcm-scratch"]
    d = (gains[high] - gains[low]).dropna().to_numpy()
    mean, ci_low, ci_high, _ = corrected_t_interval(d, TEST_FRACTION / (1 - TEST_FRACTION))
    return {
        k: (round(float(v), 4) if np.isfinite(v) else None)
        for k, v in (("mean", mean), ("ci_low", ci_low), ("ci_high", ci_high))
    }


def oracle_spread(cohorts: list[dict]) -> float | None:
    """Largest difference between the downstream cohorts' oracles (None: none recorded).

    Both readouts count: the calibrated projection (``finite_scan_oracle_auc``) and the
    report's readout (``scan_readout_auc``), which the calibration does not target.
    """
    spreads = []
    for key in ("finite_scan_oracle_auc", "scan_readout_auc"):
        values = [c[key] for c in cohorts if c.get(key) is not None]
        if values:
            spreads.append(max(values) - min(values))
    return round(max(spreads), 4) if spreads else None


def summary(cells, cfg, cohorts, fits, seconds) -> dict:
    size = max(cfg["sizes"])
    s = closest(cfg["shared"], FOCAL["shared"])
    f = closest(cfg["fractions"], FOCAL["fraction"])
    s0 = closest(cfg["shared"], 0.0)
    means = cells[
        (cells["kind"] == "auc")
        & (cells["pretrain_size"] == size)
        & np.isclose(cells["shared_structure"], s)
        & np.isclose(cells["label_fraction"], f)
    ].set_index("a")["mean"]
    linear = {m: float(means[m]) for m in LINEAR if m in means}
    best = max(linear, key=linear.get) if linear else None
    gap = _contrast(cells, "lcm", best, size, s, f) if best else {"mean": None}
    pre = _contrast(cells, "lcm", "lcm-scratch", size, s, f)
    null = _contrast(cells, "lcm", "lcm-scratch", size, s0, f)
    pseudo = _contrast(cells, "lcm", "lcm-no-pseudo", size, s, f)
    bei = _contrast(cells, "bei-linear", "logreg", size, s, f)
    method = _contrast(cells, "lcm", "lcm-finetune", size, s, f)
    centring = _contrast(cells, "bei-linear-centred", "bei-linear", size, s, f)
    c_pre = _contrast(cells, "lcm-centred", "lcm-scratch-centred", size, s, f)
    c_null = _contrast(cells, "lcm-centred", "lcm-scratch-centred", size, s0, f)
    c_gap = _contrast(cells, "lcm-centred", best, size, s, f) if best else {"mean": None}
    by_size = {
        int(n): _contrast(cells, "lcm", "lcm-scratch", n, s, f)["mean"] for n in cfg["sizes"]
    }
    by_shared = {
        float(x): _contrast(cells, "lcm", "lcm-scratch", size, x, f)["mean"] for x in cfg["shared"]
    }
    rise = shared_rise(fits, size, s, s0, f) if s != s0 else {"mean": None, "ci_low": None}
    spread = oracle_spread(cohorts)
    # DESIGN §5: a gain at the planted structure, none at the null (its interval covers 0: a
    # null gain clearly above 0 means the data leak something pretraining learns anyway), a
    # rise between the two shown by an interval, and cohorts matched in scan-level difficulty.
    met = (
        pre["ci_low"] is not None
        and pre["ci_low"] > 0
        and gap["mean"] is not None
        and gap["mean"] >= 0
        and null["ci_low"] is not None
        and null["ci_low"] <= 0 <= null["ci_high"]
        and rise["ci_low"] is not None
        and rise["ci_low"] > 0
        and spread is not None
        and spread <= DIFFICULTY_TOLERANCE
    )
    return {
        "benchmark": "transfer",
        "pretrain_gain": pre["mean"],
        "pretrain_gain_ci_low": pre["ci_low"],
        "pretrain_gain_ci_high": pre["ci_high"],
        "linear_gap": gap["mean"],
        "linear_gap_ci_low": gap.get("ci_low"),
        "best_linear": best,
        "null_gain": null["mean"],
        "null_gain_ci_low": null["ci_low"],
        "null_gain_ci_high": null["ci_high"],
        "shared_rise": rise["mean"],
        "shared_rise_ci_low": rise["ci_low"],
        "shared_rise_ci_high": rise.get("ci_high"),
        "oracle_spread": spread,
        "pseudo_gain": pseudo["mean"],
        "pseudo_gain_ci_low": pseudo["ci_low"],
        "pseudo_gain_ci_high": pseudo["ci_high"],
        "method_gain": method["mean"],
        "method_gain_ci_low": method["ci_low"],
        "method_gain_ci_high": method["ci_high"],
        "bei_linear_gain": bei["mean"],
        "bei_linear_gain_ci_low": bei["ci_low"],
        "centring_gain": centring["mean"],
        "centring_gain_ci_low": centring["ci_low"],
        "centring_gain_ci_high": centring["ci_high"],
        "centred_pretrain_gain": c_pre["mean"],
        "centred_pretrain_gain_ci_low": c_pre["ci_low"],
        "centred_pretrain_gain_ci_high": c_pre["ci_high"],
        "centred_null_gain": c_null["mean"],
        "centred_linear_gap": c_gap["mean"],
        "centred_linear_gap_ci_low": c_gap.get("ci_low"),
        "centred_pretrain_gain_by_shared": {
            float(x): _contrast(cells, "lcm-centred", "lcm-scratch-centred", size, x, f)["mean"]
            for x in cfg["shared"]
        },
        "pretrain_gain_by_size": by_size,
        "pretrain_gain_by_shared": by_shared,
        "auc_at_focal_cell": {m: round(float(v), 4) for m, v in means.items()},
        "focal_cell": {"pretrain_size": size, "shared_structure": s, "label_fraction": f},
        "targets_met": bool(met),
        "cohorts": cohorts,
        "seeds": cfg["seeds"],
        "draws": cfg["draws"],
        "sizes": cfg["sizes"],
        "shared": cfg["shared"],
        "fractions": cfg["fractions"],
        "n_rois": cfg["n_rois"],
        "n_fits": len(fits),
        "seconds": round(seconds, 1),
        "quick": cfg["quick"],
        "pretrain_settings": cfg.get("pretrain_settings", {}),
        "finetune_settings": cfg.get("finetune_settings", {}),
        "target_oracle": cfg.get("target_oracle"),
    }


def plot(cells: pd.DataFrame, cfg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = closest(cfg["fractions"], FOCAL["fraction"])
    s = closest(cfg["shared"], FOCAL["shared"])
    size = max(cfg["sizes"])
    con = cells[(cells["kind"] == "contrast") & np.isclose(cells["label_fraction"], f)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (a, b), color in (
        (("lcm", "lcm-scratch"), "C0"),
        (("bei-linear", "logreg"), "C1"),
        (("lcm", "lcm-no-pseudo"), "C2"),
    ):
        pair = con[(con["a"] == a) & (con["b"] == b)]
        for ax, fixed, x in (
            (axes[0], pair["pretrain_size"] == size, "shared_structure"),
            (axes[1], np.isclose(pair["shared_structure"], s), "pretrain_size"),
        ):
            at = pair[fixed].sort_values(x)
            if at.empty:
                continue
            ax.errorbar(
                at[x],
                at["mean"],
                yerr=[at["mean"] - at["ci_low"], at["ci_high"] - at["mean"]],
                marker="o",
                color=color,
                capsize=3,
                label=f"{a} − {b}",
            )
    axes[0].set_xlabel("shared_structure")
    axes[0].set_title(f"gain vs shared structure (n_pretrain {size}, labels {f:g})")
    axes[1].set_xlabel("pretraining subjects")
    axes[1].set_xscale("log")
    axes[1].set_title(f"gain vs pretraining size (shared {s:g}, labels {f:g})")
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel("AUC difference (95% corrected resampled t)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny version (< 2 min, make test)")
    p.add_argument("--sizes", type=int, nargs="+", help="pretraining cohort sizes (subjects)")
    p.add_argument("--shared", type=float, nargs="+", help="shared_structure values")
    p.add_argument("--fractions", type=float, nargs="+", help="label fractions")
    p.add_argument("--seeds", type=int, help="split seeds")
    p.add_argument("--draws", type=int, help="label-subset / initialisation draws per seed")
    p.add_argument("--n-downstream", type=int, help="subjects per downstream cohort")
    p.add_argument("--n-rois", type=int, help="AAL regions used (evenly spaced subset)")
    p.add_argument("--pretrain-samples", type=int, help="pretraining budget (samples seen)")
    p.add_argument("--finetune-epochs", type=int)
    p.add_argument("--models", nargs="+", choices=ALL_MODELS, help="subset of the contenders")
    p.add_argument("--lcm-cells", choices=("focal", "all", "none"), default="focal")
    p.add_argument("--jobs", type=int, help="parallel worker processes (one thread each)")
    p.add_argument(
        "--target-oracle",
        type=float,
        default=0.75,
        help="finite-scan oracle AUC every downstream cohort is calibrated to",
    )
    p.add_argument(
        "--keep-motion-coupling",
        action="store_true",
        help="keep patients moving 1.2x more (default: removed)",
    )
    p.add_argument(
        "--pretrain-settings",
        default="{}",
        help="JSON merged into the pretrain settings (e.g. select_epoch)",
    )
    p.add_argument(
        "--finetune-settings",
        default="{}",
        help="JSON merged into the finetune settings of lcm, lcm-no-pseudo and lcm-ssl (e.g. "
        "method, layer_decay); lcm-finetune and lcm-scratch keep the defaults",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "transfer"))
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("lcm").setLevel(logging.WARNING)
    import torch  # noqa: F401  (loaded first: cap_threads caps its pool too)

    from lcm.threads import cap_threads

    # One thread per process: --jobs processes run side by side (their workers cap likewise).
    threads = cap_threads(1)
    cfg = dict(QUICK if args.quick else FULL)
    for key in (
        "sizes",
        "shared",
        "fractions",
        "seeds",
        "draws",
        "n_downstream",
        "n_rois",
        "pretrain_samples",
        "finetune_epochs",
        "models",
        "jobs",
    ):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    cfg.update(
        pretrain_settings=json.loads(args.pretrain_settings),
        finetune_settings=json.loads(args.finetune_settings),
        lcm_cells=args.lcm_cells,
        target_oracle=args.target_oracle,
        seed=args.seed,
        keep_motion_coupling=args.keep_motion_coupling,
        quick=args.quick,
    )
    out = Path(args.out) if not args.quick else Path(tempfile.mkdtemp(prefix="transfer-quick-"))
    result = run(cfg, out)
    result["out"] = str(out)
    result["threads"] = threads  # per process
    result["better"] = "higher"  # pretrain_gain (lcm - lcm-scratch)
    print(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
