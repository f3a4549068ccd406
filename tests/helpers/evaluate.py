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


def bei_cohort(
    n: int, n_rois: int, n_timepoints: int, runs_per_subject: int = 1, seed: int = 3
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Connectomes whose edge (0, 1) carries age and (2, 3) sex, for BEI maps and bei-linear.

    Parameters
    ----------
    n : int
        Runs.
    n_rois : int
        ROIs (at least 4).
    n_timepoints : int
        Time points of each run's series (more: less noisy edges).
    runs_per_subject : int
        Consecutive runs sharing a subject (the groups returned).
    seed : int
        Random seed.

    Returns
    -------
    fc : numpy.ndarray, shape (n, n_rois, n_rois)
        Correlation matrices, float32.
    variables : pandas.DataFrame
        ``age`` (one in seven missing), ``sex`` (F/M), ``group`` (a categorical of noise).
    groups : numpy.ndarray of str
        Each run's subject.
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    sex = rng.choice(["F", "M"], n)
    fc = np.empty((n, n_rois, n_rois), dtype=np.float32)
    for i in range(n):
        ts = rng.normal(size=(n_timepoints, n_rois))
        ts[:, 1] += (age[i] - 40) / 15 * ts[:, 0]
        ts[:, 3] += (0.8 if sex[i] == "M" else -0.8) * ts[:, 2]
        fc[i] = np.corrcoef(ts.T)
    variables = pd.DataFrame(
        {
            "age": age,
            "sex": pd.Series(sex, dtype=object),
            "group": pd.Series(rng.choice(["a", "b", "c"], n), dtype=object),
        }
    )
    variables.loc[::7, "age"] = np.nan  # missing values are allowed
    return fc, variables, np.array([f"p/{i // runs_per_subject}" for i in range(n)])
