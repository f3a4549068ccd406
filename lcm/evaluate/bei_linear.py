"""``bei-linear``: the honest linear analogue of LCM's mechanism (DESIGN.md sections 4-5).

LCM's claim is that learning to read brain–environment variables (BEI) from connectomes on large
pretraining cohorts helps diagnosis from few labels. The linear version of that claim:

1. on the pretraining cohorts, one ridge map per BEI variable (standardised value of a
   continuous/ordinal variable, indicator of each level of a binary/categorical one) from the
   Fisher-z connectome to the variable; the ridge penalty of each map is chosen on a
   subject-level hold-out of the *pretraining* cohort (never downstream data);
2. downstream, the classifier (logistic regression, ``C`` by inner CV on the training fold) or
   regressor (ridge) sees only the predicted variables (optionally beside the connectome).

The maps are fitted once by ``lcm bei-maps`` on the pretraining cohort and saved in the
checkpoint folder as :data:`MAPS_FILE`, where they must describe the checkpoint's very data
(:func:`load_maps`); the transfer benchmark fits them in memory. When LCM does not beat this
model, its pretraining buys nothing a ridge regression could not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

from lcm.evaluate.baselines import _TunedLinear, connectome_features
from lcm.exceptions import CheckpointError, ConfigError
from lcm.model.checkpoint_meta import read_meta_fields
from lcm.train.bei_maps import (  # noqa: F401 (re-exported: one import for users)
    ALPHAS,
    MAPS_FILE,
    BEIMaps,
    bei_target_matrix,
    fit_bei_maps,
)

log = logging.getLogger(__name__)


class BEILinear(_TunedLinear):
    """Classifier (or regressor) on the BEI variables predicted by pretraining ridge maps.

    Parameters
    ----------
    maps : BEIMaps
        Fitted on the pretraining cohorts only.
    seed : int, default 0
    binary : bool, default True
        Logistic regression (``C`` by inner CV) when True, ridge (``alpha``) when False.
    with_fc : bool, default False
        Append the Fisher-z connectome to the predicted variables.
    """

    grid = (0.01, 0.1, 1.0, 10.0)
    default = 1.0

    def __init__(
        self, maps: BEIMaps, seed: int = 0, binary: bool = True, with_fc: bool = False
    ) -> None:
        super().__init__(seed)
        self.maps = maps
        self.binary = binary
        self.with_fc = with_fc
        if not binary:
            self.param, self.grid, self.default, self.scoring = (
                "alpha",
                (0.1, 1.0, 10.0, 100.0),
                10.0,
                "r2",
            )

    def _estimator(self, value: float) -> Any:
        if self.binary:
            return LogisticRegression(C=value, max_iter=2000, random_state=self.seed)
        return Ridge(alpha=value)

    def _features(self, fc: np.ndarray) -> np.ndarray:
        predicted = self.maps.transform(np.asarray(fc))
        return np.hstack([predicted, connectome_features(fc)]) if self.with_fc else predicted

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """``(n, 2)`` class probabilities, column 1 the positive class.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict (the atlas and ROI order of the maps).

        Returns
        -------
        numpy.ndarray, shape (n, 2)

        Raises
        ------
        InputDataError
            When the model is not fitted.
        """
        self._check_fitted()
        return np.asarray(self.model_.predict_proba(self._features(fc)), dtype=float)

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predicted target (continuous) or class (binary).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict (the atlas and ROI order of the maps).

        Returns
        -------
        numpy.ndarray, shape (n,)

        Raises
        ------
        InputDataError
            When the model is not fitted.
        """
        self._check_fitted()
        return np.asarray(self.model_.predict(self._features(fc)), dtype=float)


def load_maps(
    checkpoint: str | Path | None,
    atlas: str | None = None,
    roi_names: list[str] | tuple[str, ...] | None = None,
) -> BEIMaps:
    """The maps saved beside a pretraining checkpoint (:data:`MAPS_FILE`), checked against the
    checkpoint and the data they are to read.

    The evaluation checks that the checkpoint's pretraining saw none of the task's subjects
    (:func:`lcm.evaluate.protocol.check_pretraining_excludes`); the maps are fitted apart
    (``lcm bei-maps``), so they must record the checkpoint's own data fingerprint for that
    check to hold for them too.

    Parameters
    ----------
    checkpoint : path-like or None
        The pretraining checkpoint folder.
    atlas : str, optional
        Atlas of the task's connectomes.
    roi_names : sequence of str, optional
        Their ROI names in row order (:meth:`BEIMaps.check_fits`).

    Raises
    ------
    ConfigError
        Without a checkpoint, or when the checkpoint predates the maps.
    CheckpointError
        Maps of another atlas, ROI count or ROI order than ``atlas`` and ``roi_names``, or
        fitted on other data than the checkpoint's (``model.json``'s ``data_fingerprint``).
    """
    if checkpoint is None:
        raise ConfigError(
            "bei-linear needs the pretraining checkpoint (--checkpoint): its ridge maps are "
            "fitted on the pretraining cohorts.",
            hint="Pass the pretrain stage's output folder, or drop bei-linear from "
            "evaluate.models.",
        )
    path = Path(checkpoint) / MAPS_FILE
    if not path.is_file():
        raise ConfigError(
            f"bei-linear: {path} is missing (the ridge maps are not written by `lcm pretrain`).",
            hint="Run `lcm bei-maps` with the pretraining's --store, --atlas, --catalogue, "
            f"--datasets and --seed, and --out-dir {checkpoint}; or drop bei-linear.",
        )
    maps = BEIMaps.load(path)
    _check_same_data(maps, path, Path(checkpoint))
    maps.check_fits(path, atlas, None if roi_names is None else list(roi_names))
    return maps


def no_maps_reason(maps: BEIMaps, source: str | Path) -> str | None:
    """Why bei-linear cannot run on ``maps``, or None when they map a variable.

    ``lcm bei-maps`` writes maps of no variable when every BEI variable of the pretraining
    cohort has too few training subjects with a value (a small cohort) or one value in every
    run: bei-linear would have no feature, so ``lcm evaluate`` skips it and records this reason.

    Parameters
    ----------
    maps : BEIMaps
    source : path-like
        Where the maps come from (named in the reason).

    Returns
    -------
    str or None
    """
    if maps.names:
        return None
    parts = []
    if maps.left_out or not maps.constant:
        counts = ", ".join(f"{name} {count}" for name, count in maps.left_out.items())
        threshold = "" if maps.min_values is None else f" (needs {maps.min_values})"
        parts.append(
            "too few training subjects with a value in the pretraining cohort"
            f"{threshold}: {counts or 'none recorded'}"
        )
    if maps.constant:
        parts.append(f"one value in every run: {', '.join(maps.constant)}")
    fixes = "Add pretraining datasets that carry them"
    if maps.left_out or not maps.constant:
        fixes += ", or lower evaluate.bei_linear_min_values (lcm bei-maps --min-values)"
    return f"its ridge maps {source} map no BEI variable: each has {'; or '.join(parts)}. {fixes}"


def _check_same_data(maps: BEIMaps, path: Path, checkpoint: Path) -> None:
    """Refuse maps fitted on other data than the checkpoint beside them was pretrained on.

    Maps or a checkpoint that record no fingerprint (written before maps did) pass: the
    checkpoint's other checks still apply.
    """
    # A missing model.json is refused by the leakage check (check_pretraining_excludes); a
    # damaged one is refused here, never read as one that records no fingerprint.
    meta = read_meta_fields(checkpoint, missing_ok=True) or {}
    recorded = meta.get("data_fingerprint")
    if maps.data_fingerprint is None or not isinstance(recorded, str):
        return
    if maps.data_fingerprint != recorded:
        raise CheckpointError(
            f"BEI ridge maps {path} were fitted on other data than the checkpoint beside them "
            f"(data fingerprint {maps.data_fingerprint[:12]}..., its model.json "
            f"{recorded[:12]}...): what the checkpoint was checked not to have seen says "
            "nothing of what the maps saw.",
            hint="Rerun `lcm bei-maps` on the checkpoint's pretraining data (its --store, "
            "--atlas, --catalogue, --datasets), or pretrain again on the maps' data.",
        )
