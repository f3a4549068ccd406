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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lcm.synth.connectivity import ENV_VARIABLES
from lcm.synth.subject import Context, subject_stream

MAX_SUBJECTS = 4000  # enough for a stable ceiling; bounds the cohort job's extra time
N_FOLDS = 5


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
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
            "note": "too few subjects per class for cross-validation",
        }
    features = pattern_projections(ctx, n, [*ENV_VARIABLES, dx])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=ctx.seed % (2**32))
    proba = cross_val_predict(clf, features, y, cv=cv, method="predict_proba")
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
