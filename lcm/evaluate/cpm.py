"""Connectome-based predictive modelling (Shen et al. 2017, Nature Protocols) of a continuous
target.

On the labeled training runs, every edge's Fisher-z value is correlated with the target; edges
with ``p < p_threshold`` enter a positive or a negative network by the sign of ``r``; a subject's
summary is the strength of the positive network minus that of the negative network, and a
straight line maps it to the target. The edge mask and the line are fitted on the training
fold only. The threshold is the protocol's canonical value, fixed beforehand (not tuned).

The unit is the subject, as in the protocol: a subject's runs and windows are averaged before
the edges are tested. Tested as independent samples, ten windows of each of 40 subjects
selected ~50 edges where one row per subject selected ~2 (p < 0.01 on 10x the degrees of
freedom), and the held-out r fell from 0.90 to 0.49: a baseline weakened by pseudo-replication.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from lcm.evaluate.baselines import _labeled_rows, connectome_features
from lcm.exceptions import InputDataError

log = logging.getLogger(__name__)


class CPM:
    """Connectome-based predictive model (combined positive - negative network strength).

    Parameters
    ----------
    p_threshold : float, default 0.01
        Edge-selection threshold of the Pearson correlation test.

    Attributes
    ----------
    positive_, negative_ : numpy.ndarray of bool, shape (n_edges,)
        Selected edges.
    slope_, intercept_ : float
        The line from network strength to target (slope 0 when no edge is selected).
    """

    uses_groups = True

    def __init__(self, p_threshold: float = 0.01) -> None:
        self.p_threshold = p_threshold

    def fit(
        self,
        fc: np.ndarray,
        y: np.ndarray,
        variables: pd.DataFrame | None = None,
        groups: np.ndarray | None = None,
    ) -> CPM:
        """Select edges and fit the line on the labeled runs (``y`` finite) of ``fc``, one
        sample per subject.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Training-fold connectomes (labeled and unlabeled).
        y : numpy.ndarray, shape (n,)
            Continuous target, NaN for unlabeled runs.
        variables : pandas.DataFrame, optional
            Not used.
        groups : numpy.ndarray, optional
            Subject key per run: a subject's labeled runs (and windows) are averaged into one
            sample (default: each run a subject).

        Returns
        -------
        CPM
            ``self``, fitted.

        Raises
        ------
        InputDataError
            When ``fc`` is not ``(n, R, R)`` with one target per run, or fewer than 3 runs are
            labeled.
        """
        x, y_lab, g = _labeled_rows(fc, np.asarray(y, dtype=float), groups, "CPM", binary=False)
        feats = connectome_features(x)
        if g is not None:
            feats, y_lab = _subject_means(feats, y_lab, np.asarray(g).astype(str))
            if len(y_lab) < 3:
                raise InputDataError(
                    f"CPM.fit: {len(y_lab)} labeled training subject(s); at least 3 are needed.",
                    hint="Raise the label fraction or add labeled subjects.",
                )
        n = len(y_lab)
        fc_c = feats - feats.mean(axis=0)
        y_c = y_lab - y_lab.mean()
        denom = np.sqrt((fc_c**2).sum(axis=0) * (y_c**2).sum())
        r = np.divide(fc_c.T @ y_c, denom, out=np.zeros(feats.shape[1]), where=denom > 0)
        r = np.clip(r, -0.999999, 0.999999)
        t = r * np.sqrt((n - 2) / (1.0 - r**2))
        p = 2.0 * stats.t.sf(np.abs(t), df=n - 2)
        self.positive_ = (p < self.p_threshold) & (r > 0)
        self.negative_ = (p < self.p_threshold) & (r < 0)
        strength = self._strength(feats)
        if self.positive_.any() or self.negative_.any():
            self.slope_, self.intercept_ = (float(v) for v in np.polyfit(strength, y_lab, 1))
        else:
            self.slope_, self.intercept_ = 0.0, float(y_lab.mean())
        log.debug(
            "CPM: %d positive and %d negative edges at p < %g",
            int(self.positive_.sum()),
            int(self.negative_.sum()),
            self.p_threshold,
        )
        return self

    def _strength(self, feats: np.ndarray) -> np.ndarray:
        return feats[:, self.positive_].sum(axis=1) - feats[:, self.negative_].sum(axis=1)

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predicted target ``(n,)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.
        """
        return self.intercept_ + self.slope_ * self._strength(connectome_features(fc))


def _subject_means(
    feats: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each subject's mean edge values and target, one row per subject (sorted by key)."""
    order = np.argsort(groups, kind="stable")
    _, starts, counts = np.unique(groups[order], return_index=True, return_counts=True)
    mean_feats = np.add.reduceat(feats[order], starts, axis=0) / counts[:, None]
    return mean_feats, np.add.reduceat(y[order], starts) / counts
