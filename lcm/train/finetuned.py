"""What the finetuned LCM estimators share: set-up checks, the base model, checked outputs.

:class:`~lcm.train.finetune.LCMClassifier` and :class:`~lcm.train.regress.LCMRegressor` keep
their own constructors (the classifier also takes ``levels``) and targets; this holds the rest,
so that both refuse the same bad input with the same message.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from lcm.exceptions import ConfigError, InputDataError
from lcm.model.checkpoint import load_checkpoint
from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM
from lcm.train.pretrain import check_connectomes, predict_outputs
from lcm.train.probe import probe_features, reads_bei

log = logging.getLogger(__name__)

INITS = ("pretrained", "scratch")


class FinetunedLCM:
    """Mixin of the finetuned estimators (needs ``checkpoint``, ``init``, ``seed``, ``atlas``,
    ``roi_names``).

    ``n_task_queries`` is the number of queries a model trained from scratch starts with (the
    task head: two diagnosis logits, or one continuous value). ``atlas`` and ``roi_names``
    (``None``: not checked) describe the connectomes ``fit`` gets: the checkpoint is refused
    when it was pretrained on another atlas or ROI order, which a ROI count cannot tell.
    """

    n_task_queries = 1
    atlas: str | None = None
    roi_names: list[str] | None = None

    def _check_setup(self, fc: np.ndarray, variables: pd.DataFrame | None) -> None:
        """Raise on an unknown init, a missing checkpoint, bad connectomes or variables."""
        name = type(self).__name__
        if self.init not in INITS:
            raise ConfigError(f"{name} init: expected one of {INITS}, got {self.init!r}.")
        if self.checkpoint is None and self.init != "scratch":
            raise ConfigError(
                f"{name}: checkpoint is None but init is 'pretrained'.",
                hint="Pass a pretrained checkpoint folder, or init='scratch'.",
            )
        check_connectomes(fc, "finetuning data")
        if variables is not None and len(variables) != len(fc):
            raise InputDataError(
                f"finetuning variables: {len(variables)} rows for {len(fc)} connectomes.",
                hint="Pass the variables row-aligned with fc.",
            )

    def _base_model(self, n_rois: int) -> tuple[LCM, dict[str, Any]]:
        """The pretrained model and its metadata, or a seeded fresh one (``init="scratch"``)."""
        if self.checkpoint is None:
            torch.manual_seed(self.seed)
            return LCM(LCMConfig(n_rois=n_rois, n_queries=self.n_task_queries)), {}
        roi_names = None if self.roi_names is None else list(self.roi_names)
        return load_checkpoint(
            self.checkpoint, atlas=self.atlas, n_rois=n_rois, roi_names=roi_names
        )

    def _row_datasets(self, groups: np.ndarray | None) -> np.ndarray | None:
        """Dataset of each ``fit`` row from its ``dataset/subject`` key (None when unknown).

        Needs ``groups`` and the estimator's ``catalogue``: without either, no BEI variable can
        be told not applicable (logged).
        """
        catalogue = getattr(self, "catalogue", None)
        if groups is None or catalogue is None:
            log.info(
                "%s: %s, so BEI variables a dataset does not record are pseudo-labelled like "
                "missing values, not given the n/a class as in pretraining",
                type(self).__name__,
                "no groups" if groups is None else "no catalogue",
            )
            return None
        return pd.Series(np.asarray(groups), dtype=str).str.partition("/")[0].to_numpy()

    def pseudo_label_record(self) -> dict[str, Any]:
        """What this fit's pseudo-labels did, for the evaluation's metadata.

        Returns
        -------
        dict
            ``diagnosis``: the confident diagnosis pseudo-labels (part b,
            :func:`lcm.train.confident.diagnosis_record` less the inner validation rows;
            ``status`` ``continuous`` for a regression, which has none); ``bei_targets_filled``:
            per BEI variable, the training rows whose missing value the pretrained heads filled
            (part a; None when switched off or not used, as in ``method: probe``).
        """
        if not hasattr(self, "model_"):
            raise InputDataError(f"{type(self).__name__} is not fitted.", hint="Call fit() first.")
        diagnosis = getattr(self, "diagnosis_pseudo_", None) or {"status": "continuous"}
        return {
            "diagnosis": {k: v for k, v in diagnosis.items() if k != "inner_validation_rows"},
            "bei_targets_filled": getattr(self, "bei_pseudo_filled_", None),
        }

    def _outputs(self, fc: np.ndarray) -> torch.Tensor:
        """The fitted model's outputs on ``fc`` ``[n, n_outputs]``, after checking ``fc``."""
        self._check_predict(fc)
        return predict_outputs(self.model_, fc, next(self.model_.parameters()).device)

    def _probe_inputs(
        self, base: LCM, meta: dict[str, Any], fc: np.ndarray, groups: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """``method: probe``: the probe's features of the ``fit`` rows, their subjects (one per
        row when not given) and the kind of features (``"bei"`` or ``"embedding"``)."""
        groups = np.arange(len(fc)) if groups is None else np.asarray(groups)
        kind = "bei" if reads_bei(meta) else "embedding"
        return probe_features(base, meta, fc), groups, kind

    def _probe_features(self, fc: np.ndarray) -> np.ndarray:
        """Features of the fitted linear probe on ``fc`` (``method: probe``), after checks."""
        self._check_predict(fc)
        return probe_features(self.model_, self.meta_, fc)

    def _check_predict(self, fc: np.ndarray) -> None:
        if not hasattr(self, "model_"):
            raise InputDataError(
                f"{type(self).__name__} is not fitted.", hint="Call fit() before predicting."
            )
        check_connectomes(fc, "prediction data")
        if fc.shape[1] != self.model_.config.n_rois:
            raise InputDataError(
                f"prediction data: {fc.shape[1]} ROIs, the model expects "
                f"{self.model_.config.n_rois}.",
                hint="Use connectomes of the atlas the model was trained on.",
            )
