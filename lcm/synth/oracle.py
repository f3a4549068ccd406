"""The ceiling of a diagnosis task: what the *true* connectivity allows, without scan noise.

Each subject's intended correlation matrix (the ground truth, before any time series is drawn)
is projected on the unit-norm effect patterns of the environmental variables and of the
cohort's diagnosis; a cross-validated (multinomial) logistic regression on these projections
predicts the diagnostic class. Projections are sufficient statistics of the linear-Gaussian
effects, so this is close to the Bayes-optimal classifier of the generative model given the
true covariance; individual variation of loadings and coupling and site offsets are the noise
it cannot remove. A model trained on finite scans should stay below it; motion differs between
patients and controls, so a model that exploits motion artefacts can exceed it (a confound,
not skill).

The same readout on the *pipeline's own* connectomes (:func:`scan_oracle`) says how much of
that ceiling survives finite scans, motion and the pipeline: the effect patterns are rebuilt
from ``ground_truth.json`` (they depend only on the seed, the shared structure and the regions'
networks), each labelled subject's stored correlation matrices are averaged and projected on
them, and the same cross-validated logistic regression predicts the task's label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lcm.exceptions import InputDataError
from lcm.synth.connectivity import ENV_VARIABLES, EffectModel, build_effect_model
from lcm.synth.networks import NETWORKS, homotopic_partners
from lcm.synth.subject import Context, subject_stream

MAX_SUBJECTS = 4000  # enough for a stable ceiling; bounds the cohort job's extra time
N_FOLDS = 5
TOO_FEW = "too few subjects per class for cross-validation"
# The effects as ground_truth.json records them hold floats rounded to 6 decimals, summed in
# the regions' order: a rebuilt model in another order may differ in the last digit.
EFFECTS_TOLERANCE = 2e-6


def oracle_metrics(ctx: Context) -> dict[str, Any] | None:
    """Cross-validated accuracy and AUC of the diagnosis from the true covariance.

    Parameters
    ----------
    ctx : Context
        The consortium (see :func:`lcm.synth.subject.prepare`).

    Returns
    -------
    dict or None
        ``None`` for a cohort without diagnosis; else ``method``, ``n_subjects``, ``classes``,
        ``accuracy``, ``balanced_accuracy``, ``auc`` (binary: of the patient class;
        categorical: macro one-vs-rest) and ``auc_patient_vs_control`` (any patient class
        against controls), rounded to 4 decimals.
    """
    dx = ctx.spec.preset.diagnosis
    if not dx:
        return None
    # scikit-learn costs ~1 s of imports: only cohorts with a diagnosis pay for it.
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    n = min(ctx.spec.n_subjects, MAX_SUBJECTS)
    y = ctx.latents["dx_class"].to_numpy()[:n]
    counts = np.bincount(y, minlength=len(ctx.spec.preset.classes))
    folds = min(N_FOLDS, int(counts[counts > 0].min()))
    result: dict[str, Any] = {
        "method": "cross-validated logistic regression on projections of each subject's true "
        "correlation matrix onto the environmental and diagnosis effect patterns",
        "n_subjects": int(n),
        "classes": [c[0] for c in ctx.spec.preset.classes],
    }
    if folds < 2 or np.count_nonzero(counts) < 2:
        return {
            **result,
            "accuracy": None,
            "balanced_accuracy": None,
            "auc": None,
            "auc_patient_vs_control": None,
            "note": TOO_FEW,
        }
    features = pattern_projections(ctx, n, [*ENV_VARIABLES, dx])
    proba = _cross_validated_proba(features, y, folds, ctx.seed)
    present = np.flatnonzero(counts)
    pred = present[proba.argmax(axis=1)]
    if len(present) == 2:
        auc = roc_auc_score(y == present[1], proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=present)
    patient = y > 0
    p_patient = 1.0 - proba[:, 0] if present[0] == 0 else proba.max(axis=1)
    return {
        **result,
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(y, pred)), 4),
        "auc": round(float(auc), 4),
        "auc_patient_vs_control": round(float(roc_auc_score(patient, p_patient)), 4)
        if 0 < patient.sum() < n
        else None,
    }


def pattern_projections(ctx: Context, n: int, names: list[str]) -> np.ndarray:
    """Inner products of the first ``n`` subjects' true correlations with named patterns.

    Parameters
    ----------
    ctx : Context
        The consortium's population model and latents (:func:`lcm.synth.subject.prepare`).
    n : int
        Subjects, from the first in roster order.
    names : list of str
        Effect pattern names (keys of ``ctx.model.patterns``).

    Returns
    -------
    numpy.ndarray, shape (n, len(names))
    """
    iu = np.triu_indices(ctx.model.n_rois, k=1)
    patterns = np.stack([ctx.model.patterns[name][iu] for name in names], axis=1)
    out = np.empty((n, len(names)))
    for i in range(n):
        corr, _ = subject_stream(ctx, i)
        out[i] = corr[iu] @ patterns
    return out


def _cross_validated_proba(
    features: np.ndarray, y: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Out-of-fold class probabilities of a standardised logistic regression on ``features``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed % (2**32))
    return cross_val_predict(clf, features, y, cv=cv, method="predict_proba")


def read_ground_truth(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of a synthetic cohort's ``ground_truth.json`` (written by ``lcm synth``).

    Parameters
    ----------
    path : path-like
        The ``ground_truth.json`` file.

    Returns
    -------
    dict

    Raises
    ------
    InputDataError
        When the file is missing, not JSON or not an object.
    """
    try:
        truth = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputDataError(
            f"Cannot read ground truth {path}: {exc}",
            hint="Pass the ground_truth.json written by 'lcm synth'.",
        ) from exc
    if not isinstance(truth, dict):
        raise InputDataError(
            f"Ground truth {path} is not a JSON object.",
            hint="Pass the ground_truth.json written by 'lcm synth'.",
        )
    return truth


def ceiling(truth: Mapping[str, Any], path: str | os.PathLike[str] = "") -> dict[str, Any] | None:
    """The oracle ceiling a ground truth records, as the report quotes it.

    Parameters
    ----------
    truth : mapping
        :func:`read_ground_truth`'s result.
    path : path-like, optional
        Its file: the consortium's name when the file does not record one.

    Returns
    -------
    dict or None
        ``consortium``, ``shared_structure``, ``auc`` (patient vs control when recorded, else
        the diagnosis's AUC), ``accuracy``, ``levels`` (the diagnosis classes); ``None`` when
        the file records no oracle.
    """
    oracle = truth.get("oracle")
    if not isinstance(oracle, dict):
        return None
    auc = oracle.get("auc_patient_vs_control")
    return {
        "consortium": truth.get("consortium", Path(path).parent.name),
        "shared_structure": truth.get("shared_structure"),
        "auc": auc if auc is not None else oracle.get("auc"),
        "accuracy": oracle.get("accuracy"),
        "levels": [str(c) for c in oracle.get("classes") or []],
    }


def effect_model_from_truth(truth: Mapping[str, Any]) -> tuple[list[str], EffectModel]:
    """The population model of a synthetic cohort, rebuilt from its ground truth.

    The effect patterns depend only on the seed, the shared structure and each region's
    network (:func:`lcm.synth.connectivity.build_effect_model`), which the ground truth
    records; the rebuilt model's description must equal the recorded ``effects``.

    Parameters
    ----------
    truth : Mapping
        The ground truth, as :func:`read_ground_truth` returns it.

    Returns
    -------
    names : list of str
        Region names, in the order of the model's rows and columns.
    model : EffectModel

    Raises
    ------
    ValueError
        When the ground truth lacks what the model needs, or the rebuilt effects differ from
        the recorded ones (written by another version of ``lcm synth``).
    """
    try:
        roi_networks = dict(truth["roi_networks"])
        names = [str(n) for n in roi_networks]
        networks = np.array([NETWORKS.index(roi_networks[n]) for n in names])
        seed, shared = int(truth["seed"]), float(truth["shared_structure"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"it records no usable seed, shared_structure and roi_networks ({exc})"
        ) from exc
    model = build_effect_model(networks, homotopic_partners(names), seed, shared)
    rebuilt = json.loads(json.dumps(model.describe()))
    if not _close(rebuilt, truth.get("effects")):
        raise ValueError(
            "the effect patterns rebuilt from its seed differ from the recorded ones (written by "
            "another version of lcm synth: rerun the synth stage)"
        )
    return names, model


def _close(a: Any, b: Any) -> bool:
    """Equal JSON values, floats within :data:`EFFECTS_TOLERANCE`."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int):
        if isinstance(a, bool) or isinstance(b, bool):
            return a == b
        return abs(float(a) - float(b)) <= EFFECTS_TOLERANCE
    return a == b


def _subject_means(
    runs: np.ndarray, run_subjects: np.ndarray, subjects: list[str], chunk: int = 1024
) -> np.ndarray:
    """Float64 mean of each of ``subjects``' rows of ``runs`` (runs added in order, as
    ``runs[run_subjects == s].mean(axis=0, dtype=np.float64)``), in one pass over the runs."""
    position = {s: i for i, s in enumerate(subjects)}
    owner = np.array([position.get(s, -1) for s in run_subjects.tolist()], dtype=np.int64)
    sums = np.zeros((len(subjects), runs.shape[1]))
    for start in range(0, len(runs), chunk):
        rows = owner[start : start + chunk]
        kept = rows >= 0
        np.add.at(sums, rows[kept], runs[start : start + chunk][kept].astype(np.float64))
    return sums / np.bincount(owner[owner >= 0], minlength=len(subjects))[:, None]


def scan_oracle(
    truth: Mapping[str, Any],
    connectomes: np.ndarray,
    roi_names: list[str],
    run_subjects: np.ndarray,
    labels: Mapping[str, int],
) -> dict[str, Any]:
    """The oracle's readout applied to the pipeline's own connectomes of a synthetic cohort.

    Each labelled subject's correlation matrices (all its runs or windows) are averaged and
    projected on the true effect patterns (environmental variables and the diagnosis); a
    cross-validated logistic regression on the projections predicts the label, as
    :func:`oracle_metrics` does from the true matrices. The gap between the two is what
    finite scans, motion and the pipeline cost; a model near this value uses what the scans
    hold of the simulated effects.

    Parameters
    ----------
    truth : mapping
        The cohort's ground truth (:func:`read_ground_truth`).
    connectomes : numpy.ndarray, shape (n_runs, n_rois, n_rois) or (n_runs, n_edges)
        Pearson correlation matrices from the feature store, or their upper triangles
        (diagonal excluded, as the store holds them: no dense copy needed).
    roi_names : list of str
        The store's region names, in the matrices' order.
    run_subjects : numpy.ndarray of str, shape (n_runs,)
        The subject of each matrix.
    labels : mapping of str to int
        0/1 label of each evaluated subject (subjects absent here are left out).

    Returns
    -------
    dict
        ``method``, ``n_subjects``, ``auc``, ``accuracy`` (rounded to 4 decimals), or
        ``n_subjects`` and ``note`` (why it was not computed; ``auc`` is ``None``).
    """
    from sklearn.metrics import accuracy_score, roc_auc_score

    present = set(run_subjects.tolist())
    subjects = sorted(s for s in labels if s in present)
    result: dict[str, Any] = {
        "method": "cross-validated logistic regression on projections of each subject's "
        "pipeline connectome (mean of its runs) onto the true effect patterns",
        "n_subjects": len(subjects),
        "auc": None,
        "accuracy": None,
    }
    dx = truth.get("diagnosis")
    try:
        names, model = effect_model_from_truth(truth)
    except ValueError as exc:
        return {**result, "note": f"not computed: the ground truth: {exc}"}
    if not dx or dx not in model.patterns:
        return {**result, "note": "not computed: the cohort has no diagnosis"}
    if sorted(roi_names) != sorted(names):
        return {
            **result,
            "note": "not computed: the store's regions are not the synthetic atlas's "
            f"({len(roi_names)} in the store, {len(names)} simulated)",
        }
    y = np.array([int(labels[s]) for s in subjects])
    counts = np.bincount(y, minlength=2)
    folds = min(N_FOLDS, int(counts.min()))
    if folds < 2:
        return {**result, "note": f"not computed: {TOO_FEW}"}
    order = [roi_names.index(n) for n in names]
    iu = np.triu_indices(len(names), k=1)
    patterns = np.stack([model.patterns[v][iu] for v in [*ENV_VARIABLES, dx]], axis=1)
    stored = np.triu_indices(len(roi_names), k=1)
    if connectomes.ndim == 3:  # matrices: their upper triangles, in the store's ROI order
        connectomes = connectomes[:, stored[0], stored[1]]
    # The store's triangle index of each simulated edge, in the simulation's ROI order.
    edges = np.full((len(roi_names), len(roi_names)), -1)
    edges[stored] = np.arange(connectomes.shape[1])
    edges = np.maximum(edges, edges.T)[np.ix_(order, order)][iu]
    means = _subject_means(connectomes, run_subjects, subjects)
    features = np.empty((len(subjects), patterns.shape[1]))
    for i in range(len(subjects)):
        features[i] = means[i, edges] @ patterns
    proba = _cross_validated_proba(features, y, folds, int(truth["seed"]))[:, 1]
    return {
        **result,
        "auc": round(float(roc_auc_score(y, proba)), 4),
        "accuracy": round(float(accuracy_score(y, proba > 0.5)), 4),
    }
