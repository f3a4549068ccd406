"""Evaluation inputs cheap enough for protocol tests: a prevalence model and a small cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcm.evaluate.protocol import Task
from lcm.store.cohort import Cohort


class PrevalenceModel:
    """Predicts, for every row, the share of positives among the labeled training rows."""

    def fit(self, fc, y, variables):
        self.p_ = float((y[y >= 0] == 1).mean())
        return self

    def predict_proba(self, fc):
        p = np.full(len(fc), self.p_)
        return np.column_stack([1 - p, p])


N_ROIS = 9
N_TIMEPOINTS = 60
TASK = Task(name="autism", label="autism", negative="control", positive="autism")


def make_cohort(n_subjects: int = 40, n_unlabeled: int = 3, seed: int = 0) -> Cohort:
    """Runs whose FC differs by class: positives share a latent signal across ROIs 0-2.

    Every fourth subject has two runs; ``n_unlabeled`` extra subjects have no label.
    """
    rng = np.random.default_rng(seed)
    ids, fcs, labels = [], [], []
    for s in range(n_subjects + n_unlabeled):
        cls = s % 2 if s < n_subjects else rng.integers(0, 2)
        level = ("control", "autism")[cls] if s < n_subjects else None
        for run in range(2 if s % 4 == 0 else 1):
            ts = rng.normal(size=(N_TIMEPOINTS, N_ROIS))
            latent = rng.normal(size=(N_TIMEPOINTS, 1))
            ts[:, :3] += (0.9 if cls else 0.3) * latent
            fcs.append(np.corrcoef(ts.T).astype(np.float32))
            ids.append(("abidelike", f"s{s:03d}", "", "rest", str(run + 1), "siteA"))
            labels.append(level)
    ids_df = pd.DataFrame(ids, columns=["dataset", "subject", "session", "task", "run", "site"])
    variables = pd.DataFrame({"autism": pd.Series(labels, dtype=object), "age": 20.0})
    return Cohort(ids_df, np.stack(fcs), variables, [f"roi{i}" for i in range(N_ROIS)], "toy")
