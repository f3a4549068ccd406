"""Baselines evaluated beside LCM: logistic regression on Fisher-z connectomes, and the
shuffled-label control that must sit at chance.

Every classifier of the protocol has the same small interface, ``fit(fc, y, variables) -> self``
with ``y = -1`` for unlabeled runs, and ``predict_proba(fc) -> (n, 2)``. Scalers live inside the
scikit-learn pipeline, so they are fitted on the training rows only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from lcm.exceptions import InputDataError
from lcm.store.layout import fisher_z, matrix_to_vec

log = logging.getLogger(__name__)


def connectome_features(fc: np.ndarray) -> np.ndarray:
    """Fisher-z upper triangles of ``(n, R, R)`` correlation matrices -> ``(n, R(R-1)/2)``."""
    return fisher_z(matrix_to_vec(np.asarray(fc, dtype=np.float64)))


def _labeled(fc: np.ndarray, y: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    """The labeled rows (``y >= 0``), checked to hold both classes."""
    y = np.asarray(y, dtype=int)
    if fc.ndim != 3 or fc.shape[1] != fc.shape[2] or len(fc) != len(y):
        raise InputDataError(
            f"{who}.fit: expected fc of shape (n, R, R) and y of shape (n,), "
            f"got fc {fc.shape} and y {y.shape}."
        )
    keep = y >= 0
    classes = np.unique(y[keep])
    if not np.array_equal(classes, [0, 1]):
        raise InputDataError(
            f"{who}.fit: labeled training runs must hold both classes 0 and 1, got {classes}.",
            hint="Each label-fraction subset keeps at least two subjects per class.",
        )
    return fc[keep], y[keep]


class ConnectomeLogReg:
    """StandardScaler + L2 logistic regression on Fisher-z upper triangles.

    Only labeled runs are used; ``C`` is fixed rather than tuned, so no choice ever looks at
    the test fold (and tiny label fractions leave too few runs for an inner search).

    Parameters
    ----------
    C : float, default 1.0
        Inverse regularisation strength.
    max_iter : int, default 2000
    seed : int, default 0
        Seed of the solver.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 2000, seed: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def _pipeline(self) -> Pipeline:
        return make_pipeline(
            FunctionTransformer(connectome_features),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed),
        )

    def fit(
        self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame | None = None
    ) -> ConnectomeLogReg:
        """Fit on the labeled runs of ``fc`` (``y >= 0``); ``variables`` is not used."""
        x, y_lab = _labeled(np.asarray(fc), y, type(self).__name__)
        self.pipeline_ = self._pipeline().fit(x, y_lab)
        self.n_train_ = len(y_lab)
        return self

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 2)``, column 1 the positive class."""
        return self.pipeline_.predict_proba(np.asarray(fc))


class ShuffledLabels:
    """Control: fit ``estimator`` on labels permuted among the labeled training runs.

    Its AUC must sit at chance; if it does not, something leaks between folds.

    Parameters
    ----------
    estimator : object
        A protocol classifier (``fit(fc, y, variables)``, ``predict_proba(fc)``).
    seed : int, default 0
        Seed of the permutation.
    """

    def __init__(self, estimator: Any, seed: int = 0) -> None:
        self.estimator = estimator
        self.seed = seed

    def fit(
        self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame | None = None
    ) -> ShuffledLabels:
        """Permute the labeled entries of ``y`` and fit the wrapped estimator."""
        y = np.array(y, dtype=int)
        labeled = np.flatnonzero(y >= 0)
        y[labeled] = np.random.default_rng(self.seed).permutation(y[labeled])
        self.estimator.fit(fc, y, variables)
        return self

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """Probabilities of the estimator fitted on shuffled labels."""
        return self.estimator.predict_proba(fc)
