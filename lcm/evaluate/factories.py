"""Factories of the built-in models that need more than a seed (the registry's rows name them).

A model class with a ``from_context`` classmethod (the tuned baselines of
:mod:`lcm.evaluate.baselines`) needs no function here: its registry row names the class.

Kept apart from the registry so that importing the registry (the config validation and the
workflow ask it what each model needs) pulls in neither scikit-learn nor torch, and so that the
code hash of a workflow stage that only validates the config does not follow the training code.
The registry imports this module when one of these models is first built.
"""

from __future__ import annotations

from lcm.evaluate.context import Model, ModelContext, ModelFactory
from lcm.exceptions import ConfigError


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
        # The task's atlas and ROI order: each fit refuses a checkpoint of others. Its
        # catalogue: BEI variables a dataset does not record are n/a, as in pretraining.
        data = {
            "atlas": context.atlas,
            "roi_names": None if context.roi_names is None else list(context.roi_names),
            "catalogue": context.catalogue,
        }
        if context.kind == "continuous":
            return LCMRegressor(
                checkpoint, context.label, settings=settings, seed=context.seed, init=init, **data
            )
        return LCMClassifier(
            checkpoint,
            context.label,
            levels=tuple(context.levels),
            settings=settings,
            seed=context.seed,
            init=init,
            **data,
        )

    return factory


def cpm(context: ModelContext) -> Model:
    """Connectome-based predictive modelling (:class:`lcm.evaluate.cpm.CPM`).

    Parameters
    ----------
    context : ModelContext
        The fit's context; not used (CPM draws nothing at random).

    Returns
    -------
    Model
    """
    from lcm.evaluate.cpm import CPM

    return CPM()


def ridge(context: ModelContext) -> Model:
    """Ridge on the connectome edges: a regressor for a continuous task, else a classifier.

    Parameters
    ----------
    context : ModelContext
        The fit's context: its ``kind`` chooses regressor or classifier, its ``seed`` seeds it.

    Returns
    -------
    Model
    """
    from lcm.evaluate.baselines import ConnectomeRidge, ConnectomeRidgeClassifier

    if context.kind == "continuous":
        return ConnectomeRidge(seed=context.seed)
    return ConnectomeRidgeClassifier(seed=context.seed)


def bei_linear(context: ModelContext) -> Model:
    """Linear model on the BEI ridge maps of the task's checkpoint (``bei_linear.npz``).

    Parameters
    ----------
    context : ModelContext
        The fit's context: its ``maps`` (loaded once for the task), else those beside its
        ``checkpoint``, which must match its ``atlas`` and ``roi_names``.

    Returns
    -------
    Model

    Raises
    ------
    ConfigError
        When no checkpoint was given, or it has no ``bei_linear.npz`` beside it.
    CheckpointError
        When the maps are of another atlas or ROI order, or fitted on other data than the
        checkpoint (:func:`lcm.evaluate.bei_linear.load_maps`).
    """
    from lcm.evaluate.bei_linear import BEILinear, load_maps

    maps = context.maps
    if maps is None:
        maps = load_maps(context.checkpoint, atlas=context.atlas, roi_names=context.roi_names)
    return BEILinear(maps, seed=context.seed, binary=context.kind != "continuous")


# Permuted LCM refits per fit of the LCM-path control: each is a full finetuning (two with the
# diagnosis pseudo-labels), so one per fold; the report averages it over folds and seeds.
LCM_CONTROL_PERMUTATIONS = 1


def shuffled_lcm(context: ModelContext) -> Model:
    """Control: the pretrained LCM finetuned on permuted labels (one permutation per fit).

    Parameters
    ----------
    context : ModelContext
        The fit's context (the pretrained LCM's checkpoint, settings and seed).

    Returns
    -------
    Model

    Raises
    ------
    ConfigError
        When no checkpoint was given or :mod:`lcm.train` cannot be imported.
    """
    from lcm.evaluate.baselines import ShuffledLabels

    inner = _lcm_factory("pretrained", None)(context)
    return ShuffledLabels(inner, seed=context.seed, n_permutations=LCM_CONTROL_PERMUTATIONS)


# The registered model whose estimator each control refits on permuted labels, per task kind:
# its permutation p compares that model's metric with the permuted refits' (built below from
# the same classes and seed, so each permutation differs from it by the labels alone).
PERMUTED_MODELS: dict[str, dict[str, str]] = {
    "shuffled-labels": {"binary": "logreg", "continuous": "ridge"},
    "shuffled-lcm": {"binary": "lcm"},
}


def permuted_model(control: str, kind: str) -> str | None:
    """The model ``control`` permutes on a ``kind`` task (None for an unknown control).

    Parameters
    ----------
    control : str
        A control's registered name (``shuffled-labels``, ``shuffled-lcm``).
    kind : {"binary", "continuous"}

    Returns
    -------
    str or None
    """
    return PERMUTED_MODELS.get(control, {}).get(kind)


def shuffled_labels(context: ModelContext) -> Model:
    """Control: the linear baseline of the task's kind (:data:`PERMUTED_MODELS`) refitted on
    ``control_permutations`` permutations of the training labels.

    Parameters
    ----------
    context : ModelContext
        The fit's context: its ``kind``, ``seed`` and ``control_permutations``.

    Returns
    -------
    Model
    """
    from lcm.evaluate.baselines import ConnectomeLogReg, ConnectomeRidge, ShuffledLabels

    inner = ConnectomeRidge if context.kind == "continuous" else ConnectomeLogReg
    return ShuffledLabels(
        inner(seed=context.seed), seed=context.seed, n_permutations=context.control_permutations
    )


lcm_pretrained = _lcm_factory("pretrained", None)
lcm_no_pseudo = _lcm_factory("pretrained", False)
# Self-supervised-only pretraining carries no BEI heads worth trusting: no pseudo-labels.
lcm_ssl = _lcm_factory("pretrained", False, ssl_only=True)
lcm_scratch = _lcm_factory("scratch", None)
