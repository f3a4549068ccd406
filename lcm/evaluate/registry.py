"""The models the protocol can evaluate: a registry of factories, one fresh model per fit.

Names are stable across runs so results compare: ``lcm``, ``lcm-no-pseudo``, ``lcm-ssl``,
``lcm-scratch`` (the method and its ablations), ``logreg``, ``svm``, ``ridge``,
``tangent-logreg``, ``cpm``, ``bei-linear`` (baselines; the last is the linear analogue of
LCM's mechanism, ridge maps from FC to the BEI variables fitted on the pretraining cohorts, see
:mod:`lcm.evaluate.bei_linear`), ``shuffled-labels`` (the control) and ``shuffled-lcm`` (the
control through the LCM path, at the largest label fraction only). Each entry says
which target kinds it handles (``binary``, ``continuous``); a task evaluates the configured models
of its kind and lists the others as skipped. A test or a user adds a model with
:func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lcm.config import pretrained_models
from lcm.evaluate.baselines import (
    ConnectomeLogReg,
    ConnectomeRidge,
    ConnectomeRidgeClassifier,
    ConnectomeSVM,
    ShuffledLabels,
    TangentLogReg,
)
from lcm.evaluate.cpm import CPM
from lcm.exceptions import ConfigError

KINDS = ("binary", "continuous")
LCM_MODELS = ("lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch")
BASELINE_MODELS = ("logreg", "svm", "ridge", "tangent-logreg", "cpm", "bei-linear")
CONTROL_MODELS = ("shuffled-labels", "shuffled-lcm")
# shuffled-lcm is opt-in: each fit is two full finetunings.
DEFAULT_MODELS = (*LCM_MODELS, *BASELINE_MODELS, "shuffled-labels")


class Model(Protocol):
    """What the protocol needs of a model (``predict_proba`` if binary, ``predict`` if not)."""

    def fit(self, fc: np.ndarray, y: np.ndarray, variables: pd.DataFrame) -> Any:
        """Fit on ``fc (n, R, R)``; ``y`` 0/1 (-1 unlabeled) or float (NaN unlabeled)."""


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
    """

    label: str
    levels: tuple[str, ...]
    finetune: dict[str, Any]
    seed: int
    checkpoint: Path | None = None
    kind: str = "binary"
    ssl_checkpoint: Path | None = None


ModelFactory = Callable[[ModelContext], Model]


@dataclass(frozen=True)
class _Entry:
    factory: ModelFactory
    kinds: tuple[str, ...]
    largest_fraction_only: bool = False


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    factory: ModelFactory,
    *,
    kinds: tuple[str, ...] = ("binary",),
    replace: bool = False,
    largest_fraction_only: bool = False,
) -> None:
    """Add a model factory under ``name``.

    Parameters
    ----------
    name : str
        Model name used in settings and in the ``model`` column of the tables.
    factory : callable
        ``factory(ModelContext) -> model``, called once per fit.
    kinds : tuple of str, default ("binary",)
        Target kinds the model handles.
    replace : bool, default False
        Allow replacing an existing entry.
    largest_fraction_only : bool, default False
        Fit the model at the largest label fraction of a sweep only (an expensive control).
    """
    if name in _REGISTRY and not replace:
        raise ConfigError(
            f"A model named {name!r} is already registered.",
            hint="Choose another name or pass replace=True.",
        )
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"register_model({name!r}): kinds must be among {KINDS}, got {kinds}.")
    _REGISTRY[name] = _Entry(factory, tuple(kinds), largest_fraction_only)


def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent)."""
    _REGISTRY.pop(name, None)


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(_REGISTRY)


def model_kinds(name: str) -> tuple[str, ...]:
    """Target kinds ``name`` handles (empty when not registered)."""
    entry = _REGISTRY.get(name)
    return entry.kinds if entry else ()


def largest_fraction_only(name: str) -> bool:
    """Whether ``name`` is fitted at the largest label fraction of a sweep only."""
    entry = _REGISTRY.get(name)
    return bool(entry and entry.largest_fraction_only)


def is_builtin_model(name: str) -> bool:
    """Whether ``name`` is registered as :mod:`lcm` registers it (so a fresh process knows it)."""
    return name in _BUILTIN and _REGISTRY.get(name) is _BUILTIN[name]


def make_model(name: str, context: ModelContext) -> Model:
    """A fresh, unfitted model ``name`` built for ``context``."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"Unknown model {name!r} in evaluate.models (registered: {available_models()}).",
            hint=f"Use some of {list(DEFAULT_MODELS)}.",
        )
    return _REGISTRY[name].factory(context)


def models_needing_checkpoint(models: list[str] | tuple[str, ...]) -> list[str]:
    """The models among ``models`` that read a checkpoint (one definition: lcm.config)."""
    return pretrained_models(models)


def _lcm_factory(init: str, pseudo_labels: bool | None, ssl_only: bool = False) -> ModelFactory:
    """Factory of an LCM variant; ``pseudo_labels=None`` keeps the configured setting."""

    def factory(context: ModelContext) -> Model:
        checkpoint = context.ssl_checkpoint if ssl_only else context.checkpoint
        if checkpoint is None:
            which = "--ssl-checkpoint (self-supervised-only" if ssl_only else "--checkpoint ("
            raise ConfigError(
                f"LCM models need a pretrained checkpoint, but no {which} pretraining) was given.",
                hint="Pass the checkpoint folder, or evaluate baselines only (evaluate.models).",
            )
        # Imported here so that baselines run (and tests pass) without the training stack.
        try:
            from lcm.train.finetune import LCMClassifier
            from lcm.train.regress import LCMRegressor
        except ImportError as exc:
            raise ConfigError(
                f"LCM models need lcm.train (LCMClassifier, LCMRegressor), which failed to "
                f"import: {exc}",
                hint="Install the complete lcm package, or evaluate baselines only.",
            ) from exc
        settings = dict(context.finetune)
        if pseudo_labels is not None:
            # One switch for both semi-supervised parts: (a) BEI soft pseudo-targets and
            # (b) confident diagnosis pseudo-labels (an ablation leaving one on measures nothing).
            settings["pseudo_labels"] = pseudo_labels
            settings["diagnosis_pseudo_labels"] = pseudo_labels
        if context.kind == "continuous":
            return LCMRegressor(
                checkpoint, context.label, settings=settings, seed=context.seed, init=init
            )
        return LCMClassifier(
            checkpoint,
            context.label,
            levels=tuple(context.levels),
            settings=settings,
            seed=context.seed,
            init=init,
        )

    return factory


def _ridge(context: ModelContext) -> Model:
    if context.kind == "continuous":
        return ConnectomeRidge(seed=context.seed)
    return ConnectomeRidgeClassifier(seed=context.seed)


def _bei_linear(context: ModelContext) -> Model:
    from lcm.evaluate.bei_linear import BEILinear, load_maps

    return BEILinear(load_maps(context.checkpoint), seed=context.seed,
                     binary=context.kind != "continuous")  # fmt: skip


# Permuted LCM refits per fit of the LCM-path control: each is a full finetuning (two with the
# diagnosis pseudo-labels), so one per fold; the report averages it over folds and seeds.
LCM_CONTROL_PERMUTATIONS = 1


def _shuffled_lcm(context: ModelContext) -> Model:
    inner = _lcm_factory("pretrained", None)(context)
    return ShuffledLabels(inner, seed=context.seed, n_permutations=LCM_CONTROL_PERMUTATIONS)


def _shuffled(context: ModelContext) -> Model:
    inner = ConnectomeRidge if context.kind == "continuous" else ConnectomeLogReg
    return ShuffledLabels(inner(seed=context.seed), seed=context.seed)


register_model("logreg", lambda c: ConnectomeLogReg(seed=c.seed))
register_model("svm", lambda c: ConnectomeSVM(seed=c.seed))
register_model("ridge", _ridge, kinds=KINDS)
register_model("tangent-logreg", lambda c: TangentLogReg(seed=c.seed))
register_model("cpm", lambda c: CPM(), kinds=("continuous",))
register_model("shuffled-labels", _shuffled, kinds=KINDS)
register_model("bei-linear", _bei_linear, kinds=KINDS)
# LCM variants classify a binary task (LCMClassifier) or regress a continuous one (LCMRegressor).
register_model("lcm", _lcm_factory("pretrained", None), kinds=KINDS)
register_model("lcm-no-pseudo", _lcm_factory("pretrained", False), kinds=KINDS)
# Self-supervised-only pretraining carries no BEI heads worth trusting: no pseudo-labels.
register_model("lcm-ssl", _lcm_factory("pretrained", False, ssl_only=True), kinds=KINDS)
register_model("lcm-scratch", _lcm_factory("scratch", None), kinds=KINDS)
# The shuffled-label control through the LCM path (pseudo-labels and all): permuted diagnosis
# labels, same finetuning; at the largest label fraction only (each permutation is a finetuning).
register_model("shuffled-lcm", _shuffled_lcm, kinds=("binary",), largest_fraction_only=True)
# As registered on import: what a fresh worker process builds (lcm.evaluate.parallel).
_BUILTIN: dict[str, _Entry] = dict(_REGISTRY)
