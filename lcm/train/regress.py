"""Finetuning a pretrained LCM on a continuous target (age, a behavioural score), sklearn style.

The same architecture and training as :class:`~lcm.train.finetune.LCMClassifier`, with one
continuous query instead of the diagnosis pair: MSE on the target standardised with the mean and
standard deviation of the *labelled fit() rows* (never the test fold; each subject weighing the
same, however many runs or windows it has), plus ``pseudo_weight``
times the BEI loss with soft pseudo-targets (part a) where ``pseudo_labels`` is on. Confident
diagnosis pseudo-labels (part b) have no continuous counterpart and are not used.

When the target is itself a pretrained BEI variable (``age``), its pretrained query becomes the
task head (finetuned on the task's standardisation) and leaves the BEI targets, so that the
target is neither predicted twice nor pseudo-filled for the unlabeled rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcm.catalogue import Catalogue
from lcm.exceptions import InputDataError
from lcm.model.checkpoint import checkpoint_layout
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout, subject_moments
from lcm.train.finetune import _Finetuning, bei_targets
from lcm.train.finetuned import FinetunedLCM
from lcm.train.loop import pick_device
from lcm.train.probe import fit_probe
from lcm.train.settings import resolve_settings

log = logging.getLogger(__name__)


class LCMRegressor(FinetunedLCM):
    """Finetune an LCM checkpoint into a regressor of one continuous target (fit / predict).

    Parameters
    ----------
    checkpoint : path-like or None
        Pretrained checkpoint folder; ``None`` only with ``init="scratch"``.
    label : str
        Catalogue variable predicted.
    settings : dict
        Config ``evaluate.finetune`` section (epochs, batch_size, lr, pseudo_labels,
        pseudo_weight; the diagnosis pseudo-label keys are ignored).
    seed : int
    init : {"pretrained", "scratch"}
    device : str, optional
    atlas : str, optional
        Atlas of the connectomes ``fit`` gets; a checkpoint of another atlas is refused.
    roi_names : list of str, optional
        Their ROI names in row order; a checkpoint of other ROIs or another order is refused.
    catalogue : Catalogue, optional
        The catalogue the ``fit`` data were loaded with: with ``groups`` in ``fit``, a BEI
        variable a row's dataset does not record gets the ``n/a`` class, as in pretraining,
        not a pseudo-label.

    Attributes
    ----------
    model_ : LCM
    layout_ : QueryLayout
    mean_, scale_ : float
        Standardisation of the target, fitted on the labelled ``fit`` rows, each subject
        weighing the same (``groups``).
    pseudo_targets_ : dict of Target or None
    history_ : list of dict
    probe_ : LinearProbe or None
        ``method: probe``: the ridge regression on the frozen model's readouts; ``model_`` is
        then the pretrained model itself.
    """

    uses_groups = True

    def __init__(
        self,
        checkpoint: str | Path | None,
        label: str,
        settings: dict[str, Any],
        seed: int,
        init: str = "pretrained",
        *,
        device: str | None = None,
        atlas: str | None = None,
        roi_names: list[str] | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.label = label
        self.settings = settings
        self.seed = seed
        self.init = init
        self.device = device
        self.atlas = atlas
        self.roi_names = roi_names
        self.catalogue = catalogue

    def fit(
        self,
        fc: np.ndarray,
        y: np.ndarray,
        variables: pd.DataFrame | None = None,
        groups: np.ndarray | None = None,
    ) -> LCMRegressor:
        """Finetune on ``fc`` with targets ``y`` (NaN = unlabeled: BEI loss only).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
        y : numpy.ndarray of float, shape (n,)
        variables : pandas.DataFrame, optional
            ``n`` rows of catalogue variables (BEI targets where present).
        groups : numpy.ndarray, optional
            Subject of each row as ``dataset/subject`` keys: weights the target's
            standardisation per subject, and the dataset part says which BEI variables a row's
            dataset records (default: one subject per row, datasets unknown).

        Returns
        -------
        LCMRegressor
            ``self``.
        """
        settings = resolve_settings("finetune", self.settings)
        y = self._check_fit_inputs(fc, y, variables)
        labelled = y[np.isfinite(y)]
        # No diagnosis pseudo-labels for a regression; the unlabelled it trains with, counted
        # (the report said "0 unlabelled" at label fraction 0.1).
        keys = np.arange(len(y)) if groups is None else np.asarray(groups)
        unlabeled = ~np.isfinite(y) & ~np.isin(keys, keys[np.isfinite(y)])
        self.diagnosis_pseudo_ = {
            "status": "continuous",
            "n_unlabeled": len(np.unique(keys[unlabeled])),
            "n_unlabeled_rows": int(unlabeled.sum()),
        }
        # Per subject: a subject with several runs or windows weighs as much as one with one.
        self.mean_, self.scale_ = subject_moments(y, groups)
        dev = pick_device(self.device)
        base, meta = self._base_model(fc.shape[1])
        bei_layout = checkpoint_layout(meta, self.checkpoint) if meta else QueryLayout()
        self.probe_ = None
        if settings["method"] == "probe" and self.init == "pretrained":
            self.layout_, self.settings_ = bei_layout, settings
            return self._fit_probe(base.to(dev), meta, fc, y, groups)
        if self.label in bei_layout:
            if not bei_layout[self.label].is_numeric:
                raise InputDataError(
                    f"Label {self.label!r} is a {bei_layout[self.label].kind} query group of "
                    f"checkpoint {self.checkpoint}, not a continuous one.",
                    hint="A continuous task needs a continuous or ordinal catalogue variable.",
                )
            layout = bei_layout  # the pretrained query of this variable is the task head
        else:
            layout = bei_layout.append(self.label, "continuous")
        use_pseudo = settings["pseudo_labels"] and self.init == "pretrained"
        bei, self.pseudo_targets_, self.bei_pseudo_filled_ = bei_targets(
            base,
            meta,
            bei_layout,
            fc,
            variables,
            use_pseudo,
            dev,
            drop=(self.label,),
            datasets=self._row_datasets(groups),
            catalogue=self.catalogue,
        )
        log.info(
            "finetuning %s (continuous): %d labelled, %d unlabeled; mean %.3g, sd %.3g",
            self.label,
            len(labelled),
            int(len(y) - len(labelled)),
            self.mean_,
            self.scale_,
        )
        train = _Finetuning(base, self.init, bei, layout, self.label, settings, self.seed, dev)
        self.model_, self.history_ = train(fc, (y - self.mean_) / self.scale_)
        self.layout_ = layout
        self.settings_ = settings
        return self

    def _fit_probe(
        self, base: LCM, meta: dict[str, Any], fc: np.ndarray, y: np.ndarray, groups: Any
    ) -> LCMRegressor:
        """``method: probe``: ridge regression (alpha by inner CV) on the frozen model's
        readouts (:mod:`lcm.train.probe`)."""
        features, groups, kind = self._probe_inputs(base, meta, fc, groups)
        z = (y - self.mean_) / self.scale_
        rows = np.flatnonzero(np.isfinite(y))
        self.probe_ = fit_probe(
            features, z, rows, groups, binary=False, seed=self.seed, feature_kind=kind
        )
        error = float(np.mean((self.probe_.decision(features[rows]) - z[rows]) ** 2))
        self.history_ = [{"epoch": 0, "loss_total": error, "penalty": self.probe_.penalty}]
        self.model_, self.meta_ = base.eval(), meta
        self.pseudo_targets_ = self.bei_pseudo_filled_ = None
        log.info(
            "probe %s: ridge on %d %s features, alpha %s, %d labelled rows",
            self.label,
            features.shape[1],
            kind,
            self.probe_.penalty,
            len(rows),
        )
        return self

    def _check_fit_inputs(
        self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame | None
    ) -> np.ndarray:
        self._check_setup(fc, variables)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(fc),) or np.isinf(y).any():
            raise InputDataError(
                f"finetuning targets: expected {len(fc)} finite floats (NaN = unlabeled), got "
                f"shape {y.shape}.",
                hint="Pass one value per connectome, NaN where the target is withheld.",
            )
        if np.isfinite(y).sum() < 3:
            raise InputDataError(
                f"finetuning targets: {int(np.isfinite(y).sum())} labelled row(s); at least 3.",
                hint="Raise the label fraction or add labelled subjects.",
            )
        return y

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predicted target ``[n]`` in the original units.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
        """
        if getattr(self, "probe_", None) is not None:
            return self.probe_.decision(self._probe_features(fc)) * self.scale_ + self.mean_
        out = self._outputs(fc)[:, self.layout_[self.label].start]
        return out.double().numpy() * self.scale_ + self.mean_
