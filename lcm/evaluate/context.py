"""What a model factory is given and must return: :class:`ModelContext` and :class:`Model`.

Apart from the model registry (:mod:`lcm.evaluate.registry`, the rows naming each model) so that
code that builds or is a model (the baselines, whose helpers the ``splits`` verb also uses) does
not depend on the list of models: adding a model then reruns only the workflow stages that
evaluate, finetune or report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from lcm.catalogue import Catalogue
    from lcm.train.bei_maps import BEIMaps


class Model(Protocol):
    """What the protocol needs of a model (``predict_proba`` if binary, ``predict`` if not)."""

    def fit(self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame) -> Any:
        """Fit on ``fc (n, R, R)``; ``y`` 0/1 (-1 unlabeled) or float (NaN unlabeled).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Training-fold connectomes (labeled and unlabeled).
        y : numpy.ndarray, shape (n,)
            The training targets.
        variables : pandas.DataFrame
            The training runs' catalogue variables (the LCM models' BEI targets).

        Returns
        -------
        Any
            The fitted model (``self`` by scikit-learn convention).
        """


# Permuted refits per fit of the shuffled-labels control (evaluate.control_permutations).
CONTROL_PERMUTATIONS = 20


@dataclass(frozen=True)
class ModelContext:
    """Everything a model factory may use to build one model for one fit.

    Attributes
    ----------
    label : str
        Catalogue variable of the task.
    levels : tuple of str
        ``(negative, positive)`` levels of ``label`` (empty for a continuous task).
    finetune : dict
        The ``evaluate.finetune`` settings.
    seed : int
        Seed of this fit (derived from the master seed, split seed and fold).
    checkpoint : pathlib.Path or None
        Pretrained LCM checkpoint folder (BEI + self-supervised pretraining).
    kind : {"binary", "continuous"}
        Kind of the task's target.
    ssl_checkpoint : pathlib.Path or None
        Checkpoint pretrained with the self-supervised loss only (``lcm-ssl``).
    control_permutations : int
        Permuted refits per fit of the ``shuffled-labels`` control.
    atlas : str or None
        Atlas of the task's connectomes: a model reading a checkpoint refuses one of another.
    roi_names : tuple of str or None
        Their ROI names in row order: a checkpoint or maps of another order are refused.
    catalogue : Catalogue or None
        The catalogue the task's cohort was loaded with: the LCM models give a BEI variable
        that a subject's dataset does not record the ``n/a`` class, as pretraining did.
    maps : BEIMaps or None
        The checkpoint's BEI ridge maps, loaded and checked once for the task, so that every
        fit reads the same maps (``None``: a reader of the maps loads them itself).
    """

    label: str
    levels: tuple[str, ...]
    finetune: dict[str, Any]
    seed: int
    checkpoint: Path | None = None
    kind: str = "binary"
    ssl_checkpoint: Path | None = None
    control_permutations: int = CONTROL_PERMUTATIONS
    atlas: str | None = None
    roi_names: tuple[str, ...] | None = None
    catalogue: Catalogue | None = None
    maps: BEIMaps | None = None


ModelFactory = Callable[[ModelContext], Model]
