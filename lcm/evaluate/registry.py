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

The registry is the one source of what a model is and needs: its entry says which target kinds
it handles, its ``family`` (``LCM``, ``baseline``, ``control``, ``other``: how the report groups
it), which pretraining ``checkpoint`` it reads (``bei``: the BEI pretraining folder, ``ssl``:
the self-supervised-only one, or none), whether it ``needs_torch``, whether it is in the
``default`` model list, and whether its fit is ``seed_dependent`` (each split seed refits it).
A built-in model is one row of ``_BUILTIN_TRAITS`` (its factory named there, imported at first
use). The config schema's model names and default model list are the
registry's (:func:`lcm.evaluate.config_schema.schema` fills them in); the workflow and the
config validation (:func:`lcm.evaluate.config_schema.validate_config`) ask
:func:`checkpoint_models`. What a factory is given and returns (:class:`ModelContext`,
:class:`Model`) is :mod:`lcm.evaluate.context`'s. Importing this module is cheap (no
scikit-learn, no torch): the workflow and the config validation ask it. Only the verbs that
evaluate, finetune or report reach it, so that editing a row reruns only those stages.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

# What a factory is given and returns: lcm.evaluate.context owns them, re-exported here.
from lcm.docstrings import fill_doc
from lcm.evaluate.context import CONTROL_PERMUTATIONS as CONTROL_PERMUTATIONS
from lcm.evaluate.context import Model, ModelContext, ModelFactory
from lcm.exceptions import ConfigError

KINDS = ("binary", "continuous")
FAMILIES = ("LCM", "baseline", "control", "other")
# Pretraining checkpoints a model may read: the BEI pretraining's, the self-supervised-only one's.
CHECKPOINTS = ("bei", "ssl")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory and what it is and needs (see :func:`register_model`)."""

    factory: ModelFactory
    kinds: tuple[str, ...]
    largest_fraction_only: bool = False
    family: str = "other"
    checkpoint: str | None = None
    needs_torch: bool = False
    default: bool = False
    seed_dependent: bool = True


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    factory: ModelFactory,
    *,
    kinds: tuple[str, ...] = ("binary",),
    replace: bool = False,
    largest_fraction_only: bool = False,
    family: str = "other",
    checkpoint: str | None = None,
    needs_torch: bool = False,
    default: bool = False,
    seed_dependent: bool = True,
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
    family : {"LCM", "baseline", "control", "other"}, default "other"
        How the report groups the model (LCM variants, baselines, shuffled-label controls).
    checkpoint : {"bei", "ssl"}, optional
        The pretraining checkpoint the model reads (the workflow pretrains it first): ``bei``
        the BEI pretraining folder (``--checkpoint``), ``ssl`` the self-supervised-only one
        (``--ssl-checkpoint``).
    needs_torch : bool, default False
        The model trains with torch (fits then run with torch at one thread).
    default : bool, default False
        The model is in ``evaluate.models``'s default list.
    seed_dependent : bool, default True
        The model's fit depends on its seed (``ModelContext.seed``: initialisation, dropout,
        sampling, shuffled inner folds, permutations), so each split seed refits it even where
        an earlier seed had the same training fold, test fold and labelled subset (split:
        site): that refit is its training variance. False only for a model whose refit on
        the same data is identical (it ignores the seed); then the one fit stands for every
        seed (:func:`seed_dependent`). The default is the safe one: a needless refit costs
        time, a missing one hides variance.
    """
    if name in _REGISTRY and not replace:
        raise ConfigError(
            f"A model named {name!r} is already registered.",
            hint="Choose another name or pass replace=True.",
        )
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"register_model({name!r}): kinds must be among {KINDS}, got {kinds}.")
    if family not in FAMILIES:
        raise ConfigError(
            f"register_model({name!r}): family must be one of {FAMILIES}, got {family!r}."
        )
    if checkpoint is not None and checkpoint not in CHECKPOINTS:
        raise ConfigError(
            f"register_model({name!r}): checkpoint must be None or one of {CHECKPOINTS}, "
            f"got {checkpoint!r}."
        )
    _REGISTRY[name] = ModelEntry(
        factory,
        tuple(kinds),
        largest_fraction_only,
        family,
        checkpoint,
        needs_torch,
        default,
        seed_dependent,
    )


@fill_doc
def unregister_model(name: str) -> None:
    """Remove ``name`` from the registry (no error if absent).

    Parameters
    ----------
    %(model_name)s
    """
    _REGISTRY.pop(name, None)


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(_REGISTRY)


def model_names() -> list[str]:
    """Registered model names in registration order (the built-in ones first)."""
    return list(_REGISTRY)


@fill_doc
def model_entry(name: str) -> ModelEntry | None:
    """The registry entry of ``name`` (None when not registered).

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    ModelEntry or None
    """
    return _REGISTRY.get(name)


@fill_doc
def model_family(name: str) -> str:
    """``LCM``, ``baseline``, ``control`` or ``other`` (also for an unregistered name).

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    str
    """
    entry = _REGISTRY.get(name)
    return entry.family if entry else "other"


@fill_doc
def needs_torch(name: str) -> bool:
    """Whether ``name`` trains with torch.

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    bool
        False for an unregistered name.
    """
    entry = _REGISTRY.get(name)
    return bool(entry and entry.needs_torch)


def checkpoint_models(
    models: list[str] | tuple[str, ...], checkpoint: str | None = None
) -> list[str]:
    """The models among ``models`` that read a pretraining checkpoint (``checkpoint``: that one).

    Parameters
    ----------
    models : sequence of str
        Model names (unregistered ones read none).
    checkpoint : {"bei", "ssl"}, optional
        Only the models reading this checkpoint; any checkpoint when omitted.
    """
    wanted = CHECKPOINTS if checkpoint is None else (checkpoint,)
    return [m for m in models if (e := _REGISTRY.get(m)) and e.checkpoint in wanted]


def maps_models(models: list[str] | tuple[str, ...]) -> list[str]:
    """The models among ``models`` that read the BEI pretraining's ridge maps (``bei-linear``).

    The baselines among the readers of its checkpoint: they read ``bei_linear.npz`` beside it
    (``lcm bei-maps``), the LCM variants its weights.

    Parameters
    ----------
    models : sequence of str
        Model names (unregistered ones read none).

    Returns
    -------
    list of str
        In the order of models.
    """
    return [m for m in checkpoint_models(models, "bei") if model_family(m) == "baseline"]


@fill_doc
def model_kinds(name: str) -> tuple[str, ...]:
    """Target kinds ``name`` handles (empty when not registered).

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    tuple of str
        Among binary and continuous.
    """
    entry = _REGISTRY.get(name)
    return entry.kinds if entry else ()


@fill_doc
def largest_fraction_only(name: str) -> bool:
    """Whether ``name`` is fitted at the largest label fraction of a sweep only.

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    bool
        False for an unregistered name.
    """
    entry = _REGISTRY.get(name)
    return bool(entry and entry.largest_fraction_only)


@fill_doc
def seed_dependent(name: str) -> bool:
    """Whether a fit of ``name`` depends on its seed, so that each split seed refits it.

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    bool
        True for an unregistered name (a refit is never wrong, only slower).
    """
    entry = _REGISTRY.get(name)
    return entry.seed_dependent if entry else True


@fill_doc
def is_builtin_model(name: str) -> bool:
    """Whether ``name`` is registered as :mod:`lcm` registers it (so a fresh process knows it).

    Parameters
    ----------
    %(model_name)s

    Returns
    -------
    bool
    """
    return name in _BUILTIN and _REGISTRY.get(name) is _BUILTIN[name]


@fill_doc
def make_model(name: str, context: ModelContext) -> Model:
    """A fresh, unfitted model ``name`` built for ``context``.

    Parameters
    ----------
    %(model_name)s
    context : ModelContext
        Everything the model's factory may use for this fit.

    Returns
    -------
    Model

    Raises
    ------
    ConfigError
        When name is not registered (or the factory refuses context, e.g. an LCM model
        without a checkpoint).
    """
    if name not in _REGISTRY:
        raise ConfigError(
            f"Unknown model {name!r} in evaluate.models (registered: {available_models()}).",
            hint=f"Use some of {list(DEFAULT_MODELS)}.",
        )
    return _REGISTRY[name].factory(context)


def models_needing_checkpoint(models: list[str] | tuple[str, ...]) -> list[str]:
    """The models among ``models`` that read a checkpoint (either pretraining's).

    Parameters
    ----------
    models : sequence of str
        Model names (unregistered ones read none).

    Returns
    -------
    list of str
        In the order of models.
    """
    return checkpoint_models(models)


def _builtin_factory(path: str) -> ModelFactory:
    """The factory a built-in row names as ``"module:attribute"``, imported at first use.

    The attribute is a callable ``f(ModelContext) -> model``, or a model class, whose
    ``from_context`` classmethod is then the factory (the tuned baselines of
    :mod:`lcm.evaluate.baselines` have one: a fresh model seeded by the fit's seed).
    """
    module_name, _, attribute = path.partition(":")

    def factory(context: ModelContext) -> Model:
        target = getattr(importlib.import_module(module_name), attribute)
        return getattr(target, "from_context", target)(context)

    return factory


# The built-in models, one row each, in the order of every model list (the schema's included):
# the method and its ablations, baselines, controls. ``factory`` is ``"module:attribute"``,
# imported when the model is first built (:func:`_builtin_factory`) so that asking the registry
# (the config validation, the workflow) needs neither scikit-learn nor torch; the other keys are
# register_model's. LCM variants classify a binary task (LCMClassifier) or regress a continuous
# one (LCMRegressor); all but lcm-ssl read the BEI pretraining folder (lcm-scratch borrows its
# architecture and catalogue), lcm-ssl the self-supervised-only one.
_LCM = {"kinds": KINDS, "family": "LCM", "needs_torch": True, "default": True}
_BASELINE = {"family": "baseline", "default": True}
_FACTORIES = "lcm.evaluate.factories"
_BASELINES = "lcm.evaluate.baselines"
_BUILTIN_TRAITS: dict[str, dict[str, Any]] = {
    "lcm": {**_LCM, "checkpoint": "bei", "factory": f"{_FACTORIES}:lcm_pretrained"},
    "lcm-no-pseudo": {**_LCM, "checkpoint": "bei", "factory": f"{_FACTORIES}:lcm_no_pseudo"},
    "lcm-ssl": {**_LCM, "checkpoint": "ssl", "factory": f"{_FACTORIES}:lcm_ssl"},
    "lcm-scratch": {**_LCM, "checkpoint": "bei", "factory": f"{_FACTORIES}:lcm_scratch"},
    "logreg": {**_BASELINE, "factory": f"{_BASELINES}:ConnectomeLogReg"},
    "svm": {**_BASELINE, "factory": f"{_BASELINES}:ConnectomeSVM"},
    "ridge": {**_BASELINE, "kinds": KINDS, "factory": f"{_FACTORIES}:ridge"},
    "tangent-logreg": {**_BASELINE, "factory": f"{_BASELINES}:TangentLogReg"},
    # CPM alone ignores the seed (edge selection by p-value, then least squares): a refit on
    # the same data is identical. Every other model's fit depends on it: the LCM variants'
    # initialisation and dropout, the tuned baselines' shuffled inner-CV folds that choose
    # C or alpha (lcm.evaluate.baselines.inner_splits), the controls' permutations.
    "cpm": {
        **_BASELINE,
        "kinds": ("continuous",),
        "seed_dependent": False,
        "factory": f"{_FACTORIES}:cpm",
    },
    # The BEI ridge maps are fitted by lcm pretrain and stored in its checkpoint folder.
    "bei-linear": {
        **_BASELINE,
        "kinds": KINDS,
        "checkpoint": "bei",
        "factory": f"{_FACTORIES}:bei_linear",
    },
    "shuffled-labels": {
        "kinds": KINDS,
        "family": "control",
        "default": True,
        "factory": f"{_FACTORIES}:shuffled_labels",
    },
    # The shuffled-label control through the LCM path (pseudo-labels and all): permuted
    # diagnosis labels, same finetuning; at the largest label fraction only (each permutation
    # is a finetuning), hence opt-in (not a default model).
    "shuffled-lcm": {
        "kinds": ("binary",),
        "largest_fraction_only": True,
        "family": "control",
        "checkpoint": "bei",
        "needs_torch": True,
        "factory": f"{_FACTORIES}:shuffled_lcm",
    },
}
for _name, _traits in _BUILTIN_TRAITS.items():
    _row = dict(_traits)
    register_model(_name, _builtin_factory(_row.pop("factory")), **_row)
# As registered on import: what a fresh worker process builds (lcm.evaluate.parallel).
_BUILTIN: dict[str, ModelEntry] = dict(_REGISTRY)


def _builtin(family: str) -> tuple[str, ...]:
    return tuple(name for name, entry in _BUILTIN.items() if entry.family == family)


LCM_MODELS = _builtin("LCM")
BASELINE_MODELS = _builtin("baseline")
CONTROL_MODELS = _builtin("control")
DEFAULT_MODELS = tuple(name for name, entry in _BUILTIN.items() if entry.default)
