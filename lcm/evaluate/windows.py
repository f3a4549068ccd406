"""A test subject counts once: its test predictions are averaged per run, then per subject.

The feature store may hold one row per window of a run (``window`` = 0, 1, ...; the official
LCM code trains on 500-TR windows) and several runs per subject (HCP's four). Training uses
every window as a sample; a test subject must still weigh as one observation, or a subject
with long or many runs would dominate the fold's metrics (one subject's four runs made a
per-run AUC of 0.80 from a per-subject 0.50). Whole-run rows (``window`` = -1, or no
``window`` column) are runs as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# run_key tells apart runs that differ in acq-, dir-, rec- or ce- only (stores written by
# `lcm store` hold it; a table without it is keyed by the other columns).
RUN_COLUMNS = ("dataset", "subject", "session", "task", "run", "run_key")


def run_groups(ids: pd.DataFrame) -> np.ndarray:
    """An integer per row; the windows of one run share it, every other row has its own.

    Parameters
    ----------
    ids : pandas.DataFrame
        :attr:`lcm.store.cohort.Cohort.ids` (or rows of it).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Codes numbered in order of first appearance.
    """
    n = len(ids)
    if "window" not in ids:
        return np.arange(n)
    windowed = pd.to_numeric(ids["window"], errors="coerce").fillna(-1).to_numpy() >= 0
    cols = [c for c in RUN_COLUMNS if c in ids]
    keys = ids[cols].astype(str).agg("/".join, axis=1).to_numpy(dtype=object)
    # A whole-run row gets a key no run can share: two whole-run rows never merge.
    keys = np.where(windowed, "w:" + keys, [f"row:{i}" for i in range(n)])
    codes, _ = pd.factorize(keys)
    return codes


def subject_groups(ids: pd.DataFrame) -> np.ndarray:
    """An integer per row; the rows of one subject (``dataset`` and ``subject``) share it.

    Codes are numbered in order of first appearance.

    Parameters
    ----------
    ids : pandas.DataFrame
        Run IDs with ``dataset`` and ``subject`` columns.

    Returns
    -------
    numpy.ndarray of int, shape (n_rows,)
    """
    keys = ids["dataset"].astype(str) + "/" + ids["subject"].astype(str)
    codes, _ = pd.factorize(keys.to_numpy(dtype=object))
    return codes


def mean_per_run(codes: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average predictions over the rows of each run (or of each subject).

    Parameters
    ----------
    codes : numpy.ndarray of int, shape (n,)
        :func:`run_groups` (or :func:`subject_groups`) of the test rows.
    preds : numpy.ndarray, shape (P, n)
        One row per fitted model (the control's permutations): P(positive) or values.

    Returns
    -------
    first : numpy.ndarray of int, shape (n_runs,)
        Position of each run's first row (its identifiers and target), in order of codes.
    means : numpy.ndarray, shape (P, n_runs)
        Mean prediction over the run's windows (the row itself for a whole run).
    """
    codes = np.asarray(codes)
    uniques, first, counts = np.unique(codes, return_index=True, return_counts=True)
    if len(uniques) == len(codes):  # whole runs only: nothing to average, keep the values
        order = np.argsort(codes, kind="stable")
        return order, np.asarray(preds)[:, order]
    inverse = np.searchsorted(uniques, codes)
    sums = np.stack([np.bincount(inverse, weights=p, minlength=len(uniques)) for p in preds])
    return first, sums / counts
