"""Linear probe on a frozen pretrained LCM: its BEI-head readouts as the task's features.

With a dozen labelled subjects, finetuning the whole transformer washes out what pretraining
learned (issue 15; ``docs/transfer.md``): the pretrained model reads the BEI variables of
held-out pretraining subjects at R² 0.7-0.8, and 14 labels then move every weight. The probe
keeps the model fixed and fits only a penalised linear model on its readouts: one value per
continuous or ordinal BEI variable and the logits of each categorical one (the model's
answer to "what does this brain say about age, sex, fluid intelligence ..."). A checkpoint
pretrained without BEI losses (``bei_weight`` 0, the lcm-ssl ablation) has untrained BEI
heads; its probe reads the subject embedding (mean ROI token) instead.

The penalty is chosen by an inner cross-validation on the labelled rows only, subjects kept
together; features are standardised on every row passed to ``fit`` (the training fold,
labelled or not; never test rows).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from lcm.model.lcm import LCM
from lcm.train.pretrain import EVAL_BATCH, predict_outputs

CLASSIFIER_GRID = (0.01, 0.1, 1.0, 10.0)  # inverse penalty C of the logistic regression
REGRESSOR_GRID = (0.1, 1.0, 10.0, 100.0)  # ridge alpha
MAX_FOLDS = 3

METHODS = ("finetune", "probe")


def reads_bei(meta: dict[str, Any]) -> bool:
    """Whether the checkpoint's BEI heads were trained (``bei_weight`` > 0, the default).

    Parameters
    ----------
    meta : dict
        The checkpoint's ``model.json``.

    Returns
    -------
    bool
    """
    return float(meta.get("training", {}).get("bei_weight", 1.0)) > 0


def probe_features(model: LCM, meta: dict[str, Any], fc: np.ndarray) -> np.ndarray:
    """Features ``[n, F]`` of the probe: BEI-head outputs, or the embedding (see module doc).

    Parameters
    ----------
    model : LCM
        The pretrained model (not modified; evaluated without gradients).
    meta : dict
        Its checkpoint metadata.
    fc : numpy.ndarray, shape (n, R, R)
    """
    device = next(model.parameters()).device
    if reads_bei(meta):
        return predict_outputs(model, fc, device).double().numpy()
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(fc), EVAL_BATCH):
            x = torch.as_tensor(fc[start : start + EVAL_BATCH], dtype=torch.float32, device=device)
            parts.append(model.embed(x).double().cpu())
    return torch.cat(parts).numpy()


@dataclass
class LinearProbe:
    """A fitted probe: standardisation, coefficients and the penalty chosen.

    Attributes
    ----------
    binary : bool
        Logistic regression (True) or ridge regression (False).
    mean, scale : list of float
        Feature standardisation (fitted on the ``fit`` rows).
    coef : list of float
    intercept : float
    penalty : float
        ``C`` (classifier) or ``alpha`` (regressor) chosen by inner CV.
    features : str
        ``"bei"`` or ``"embedding"``.
    """

    binary: bool
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    penalty: float
    features: str

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Linear score ``[n]`` (log-odds of the positive class, or the prediction).

        Parameters
        ----------
        features : numpy.ndarray, shape (n, F)
            Features of :attr:`features`' kind.
        """
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.coef) + self.intercept

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[n, 2]`` class probabilities (classifier only).

        Parameters
        ----------
        features : numpy.ndarray, shape (n, F)
            Features of :attr:`features`' kind.
        """
        p = 1.0 / (1.0 + np.exp(-self.decision(features)))
        return np.column_stack([1.0 - p, p])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in the finetuned checkpoint's metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearProbe:
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            The fields, as :meth:`to_dict` writes them.

        Returns
        -------
        LinearProbe
        """
        return cls(**data)


def fit_probe(
    features: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    groups: np.ndarray,
    *,
    binary: bool,
    seed: int,
    feature_kind: str,
) -> LinearProbe:
    """Fit a probe on ``features[rows]`` (standardised over all ``features`` rows).

    Parameters
    ----------
    features : numpy.ndarray, shape (n, F)
        Features of every ``fit`` row (labelled or not): they set the standardisation.
    y : numpy.ndarray, shape (n,)
        Targets; only ``rows`` are read.
    rows : numpy.ndarray of int
        The labelled (or pseudo-labelled) rows the model is fitted on.
    groups : numpy.ndarray, shape (n,)
        Subject of each row: inner CV folds keep a subject's runs together.
    binary : bool
    seed : int
    feature_kind : str
        Recorded in the probe (``"bei"`` or ``"embedding"``).
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    z = (features[rows] - mean) / scale
    target = y[rows]
    penalty = _choose_penalty(z, target, groups[rows], binary, seed)
    model = _estimator(binary, penalty, seed).fit(z, target)
    return LinearProbe(
        binary=binary,
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=np.ravel(model.coef_).tolist(),
        intercept=float(np.ravel(model.intercept_)[0]),
        penalty=float(penalty),
        features=feature_kind,
    )


def _estimator(binary: bool, penalty: float, seed: int) -> Any:
    if binary:
        return LogisticRegression(C=penalty, max_iter=5000, random_state=seed)
    return Ridge(alpha=penalty)


def _choose_penalty(
    z: np.ndarray, y: np.ndarray, groups: np.ndarray, binary: bool, seed: int
) -> float:
    """Penalty with the best inner-CV score (log-loss or squared error); the grid's middle
    value when too few labelled subjects exist for two folds."""
    grid = CLASSIFIER_GRID if binary else REGRESSOR_GRID
    if binary:
        per_class = [len(np.unique(groups[y == c])) for c in (0, 1)]
        k = min(MAX_FOLDS, *per_class)
        splitter: Any = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if k >= 2 else None
    else:
        k = min(MAX_FOLDS, len(np.unique(groups)))
        splitter = GroupKFold(k) if k >= 2 else None
    if splitter is None:
        return grid[len(grid) // 2]
    losses = np.zeros(len(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in splitter.split(z, y, groups):
            for i, value in enumerate(grid):
                model = _estimator(binary, value, seed).fit(z[train], y[train])
                losses[i] += _loss(model, z[test], y[test], binary)
    return grid[int(np.argmin(losses))]


def _loss(model: Any, z: np.ndarray, y: np.ndarray, binary: bool) -> float:
    if binary:
        p = np.clip(model.predict_proba(z)[:, 1], 1e-12, 1 - 1e-12)
        return float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(np.sum((model.predict(z) - y) ** 2))
