"""Model names and capabilities have one owner, the registry (issue 16, item 4).

The schema's model list and default model list are the registry's
(:func:`lcm.evaluate.config_schema.schema` fills them in; the file and :func:`lcm.config.schema`
list no model), so a built-in row or ``register_model`` reaches the config; "needs a
checkpoint", "needs torch" and "is an LCM variant" are entry attributes, not name prefixes. The
literal lists below are the models LCM shipped with when this was written: checked as a subset
and an order, so that adding a model needs no edit here. Only the stages that evaluate or report
depend on the registry's code: adding a model reruns no connectome.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.evaluate import PrevalenceModel

import lcm
from lcm.config import schema as base_schema
from lcm.config import validate_base
from lcm.evaluate import parallel
from lcm.evaluate.config_schema import schema, validate_config
from lcm.evaluate.registry import (
    _BUILTIN_TRAITS,
    BASELINE_MODELS,
    CONTROL_MODELS,
    DEFAULT_MODELS,
    LCM_MODELS,
    ModelContext,
    checkpoint_models,
    is_builtin_model,
    make_model,
    model_entry,
    model_family,
    model_names,
    needs_torch,
    register_model,
    unregister_model,
)
from lcm.exceptions import ConfigError
from lcm.report.tables import model_kind
from lcm.workflow import hash as code

KNOWN = [
    "lcm",
    "lcm-no-pseudo",
    "lcm-ssl",
    "lcm-scratch",
    "logreg",
    "svm",
    "ridge",
    "tangent-logreg",
    "cpm",
    "bei-linear",
    "shuffled-labels",
    "shuffled-lcm",
]
BUILTIN = [n for n in model_names() if is_builtin_model(n)]


def _file() -> tuple[str, dict]:
    text = resources.files("lcm.schemas").joinpath("config.schema.yaml").read_text()
    return text, yaml.safe_load(text)


def _config(models: list[str], role: str = "pretrain") -> dict:
    return {
        "datasets": {
            "a": {"entry": "roi_timeseries", "path": "x", "phenotype": "p.tsv", "role": role},
            "b": {
                "entry": "roi_timeseries",
                "path": "y",
                "phenotype": "q.tsv",
                "role": "downstream",
            },
        },
        "tasks": {"t": {"dataset": "b", "label": "autism", "positive": "autism"}},
        "evaluate": {"models": models},
    }


def test_the_schema_takes_its_model_lists_from_the_registry() -> None:
    text, tree = _file()
    # The file names no model: the registry fills the one shared node and the default.
    assert tree["$defs"]["model_name"] == {}
    assert "shuffled-labels, shuffled-lcm" not in text and "default: [lcm" not in text
    loaded = schema()
    evaluate = loaded["properties"]["evaluate"]["properties"]["models"]
    task = loaded["properties"]["tasks"]["additionalProperties"]["properties"]["models"]
    assert evaluate["items"] is loaded["$defs"]["model_name"] is task["items"]
    assert loaded["$defs"]["model_name"]["enum"] == model_names()
    assert model_names()[: len(BUILTIN)] == BUILTIN  # built-ins first, in their rows' order
    # The default list is the entries marked default, in the registry's order.
    assert evaluate["default"] == list(DEFAULT_MODELS)
    assert list(DEFAULT_MODELS) == [n for n in BUILTIN if model_entry(n).default]
    assert validate_config(_config(["logreg"]))["evaluate"]["models"] == ["logreg"]
    without = _config(["logreg"])
    del without["evaluate"]["models"]
    assert validate_config(without)["evaluate"]["models"] == list(DEFAULT_MODELS)


def test_the_shipped_models_keep_their_order_and_defaults() -> None:
    assert set(KNOWN) <= set(BUILTIN)
    assert [n for n in BUILTIN if n in KNOWN] == KNOWN
    assert [n for n in KNOWN if n in DEFAULT_MODELS] == [n for n in KNOWN if n != "shuffled-lcm"]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_row_names_a_factory_that_imports(name: str) -> None:
    row = _BUILTIN_TRAITS[name]
    module, _, attribute = row["factory"].partition(":")
    target = getattr(importlib.import_module(module), attribute)
    assert callable(getattr(target, "from_context", target))
    entry = model_entry(name)
    if entry.checkpoint is None and not entry.needs_torch:
        context = ModelContext(
            label="y", levels=("a", "b"), finetune={}, seed=3, kind=entry.kinds[0]
        )
        model = make_model(name, context)
        assert hasattr(model, "fit") and getattr(model, "seed", 3) == 3


def test_families_are_entry_attributes() -> None:
    assert LCM_MODELS[:4] == ("lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch")
    known = {"logreg", "svm", "ridge", "tangent-logreg", "cpm", "bei-linear"}
    assert [m for m in BASELINE_MODELS if m in known] == [m for m in KNOWN if m in known]
    assert {"shuffled-labels", "shuffled-lcm"} <= set(CONTROL_MODELS)
    assert set(LCM_MODELS) | set(BASELINE_MODELS) | set(CONTROL_MODELS) == set(BUILTIN)
    assert [model_kind(m) for m in BUILTIN] == [model_family(m) for m in BUILTIN]
    # Not a name prefix: an unregistered "lcm..." is no LCM variant, a registered one may be.
    assert model_kind("lcm-unknown") == "other"
    register_model("mine", lambda c: PrevalenceModel(), family="LCM", replace=True)
    try:
        assert model_kind("mine") == "LCM"
    finally:
        unregister_model("mine")


def test_checkpoints_and_torch_are_entry_attributes() -> None:
    # As the old lcm.config.CHECKPOINT_MODELS listed them, now asked of the entries.
    assert set(checkpoint_models(KNOWN)) == {
        "lcm",
        "lcm-no-pseudo",
        "lcm-ssl",
        "lcm-scratch",
        "shuffled-lcm",
        "bei-linear",
    }
    assert checkpoint_models(KNOWN, "ssl") == ["lcm-ssl"]
    assert checkpoint_models(KNOWN, "bei") == [
        "lcm",
        "lcm-no-pseudo",
        "lcm-scratch",
        "bei-linear",
        "shuffled-lcm",
    ]
    assert checkpoint_models(["nope", "logreg"]) == []
    assert [m for m in KNOWN if needs_torch(m)] == [*KNOWN[:4], "shuffled-lcm"]
    entry = model_entry("cpm")
    assert entry is not None and entry.kinds == ("continuous",) and entry.checkpoint is None
    with pytest.raises(ConfigError, match="checkpoint must be None or one of"):
        register_model("bad", lambda c: PrevalenceModel(), checkpoint="weights")
    with pytest.raises(ConfigError, match="family must be one of"):
        register_model("bad", lambda c: PrevalenceModel(), family="lcm")


def test_a_registered_model_can_be_named_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"key 'evaluate\.models\.0'.*'plug'"):
        validate_config(_config(["plug", "logreg"]))
    register_model("plug", lambda c: PrevalenceModel(), checkpoint="bei", replace=True)
    try:
        enum = schema()["properties"]["tasks"]["additionalProperties"]["properties"]["models"]
        assert "plug" in enum["items"]["enum"]
        cfg = validate_config(_config(["plug", "logreg"]))
        assert cfg["evaluate"]["models"] == ["plug", "logreg"]
        # Its checkpoint attribute is what the cross-reference check asks.
        with pytest.raises(ConfigError, match=r"evaluates \['plug'\], which need a pretrained"):
            validate_config(_config(["plug", "logreg"], role="downstream"))
    finally:
        unregister_model("plug")
    validate_config(_config(["logreg"], role="downstream"))


def test_run_fits_asks_the_registry_whether_torch_is_needed(monkeypatch) -> None:
    seen: list[bool] = []

    @contextlib.contextmanager
    def recording(torch_needed: bool = False):
        seen.append(torch_needed)
        yield

    monkeypatch.setattr(parallel, "single_threaded", recording)
    register_model("torchy", lambda c: PrevalenceModel(), needs_torch=True, replace=True)
    try:
        context = ModelContext(label="y", levels=("a", "b"), finetune={}, seed=0)
        idx = np.arange(2)

        def job(name: str) -> parallel.FitJob:
            return parallel.FitJob(name, context, idx, idx, np.zeros(2), pd.DataFrame(), idx)

        def fit(*args):
            return np.zeros(2), 0.0

        fc = np.zeros((2, 3, 3))
        parallel.run_fits([job("logreg"), job("torchy")], fc, fit)
        parallel.run_fits([job("logreg")], fc, fit)
    finally:
        unregister_model("torchy")
    assert seen == [True, False]


def test_the_base_schema_leaves_model_names_to_the_evaluation() -> None:
    # lcm.config, which the imaging and training settings read, knows no model name ...
    base = base_schema()
    assert base["$defs"]["model_name"] == {}
    assert "default" not in base["properties"]["evaluate"]["properties"]["models"]
    # ... nor the ridge maps' default threshold, lcm.train.bei_maps's (the evaluation's layer) ...
    maps = base["properties"]["evaluate"]["properties"]["bei_linear_min_values"]
    assert "default" not in maps
    # ... and is otherwise the full schema (every section and default of the file).
    full = schema()
    full["$defs"]["model_name"].clear()  # the node every list of models shares
    del full["properties"]["evaluate"]["properties"]["models"]["default"]
    del full["properties"]["evaluate"]["properties"]["bei_linear_min_values"]["default"]
    assert full == base
    # Alone, it checks everything but the model names and what they need (a checkpoint).
    assert validate_base(_config(["plug"], role="downstream"))["evaluate"]["models"] == ["plug"]
    with pytest.raises(ConfigError, match=r"invalid value at key 'evaluate\.models'"):
        validate_base(_config([]))


# Verbs whose workflow stages must not rerun when a model is added or edited.
BELOW_EVALUATION = ("synth", "ingest", "connectome", "store", "splits", "pretrain")


def test_editing_the_registry_or_baselines_reruns_only_the_stages_that_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The code hash of each verb, over a copy of the package before and after an edit of the
    # model rows (a new row is such an edit: the code of lcm/evaluate/registry.py changes).
    root = tmp_path / "lcm"
    shutil.copytree(Path(lcm.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "PACKAGE_ROOT", root)
    verbs = (*BELOW_EVALUATION, "evaluate", "report")

    def hashes() -> dict[str, str]:
        for cached in (code._imports, code.verb_modules, code.code_hash):
            cached.cache_clear()
        return {verb: code.code_hash(verb) for verb in verbs}

    try:
        before = hashes()
        registry = root / "evaluate" / "registry.py"
        registry.write_text(registry.read_text() + "\n_NEW_ROW = {'default': False}\n")
        after = hashes()
        # ... and a model class of its own beside the baselines (which lcm splits does not
        # import: it imported strata from there, so a new baseline reran every split).
        baselines = root / "evaluate" / "baselines.py"
        baselines.write_text(baselines.read_text() + "\n\nclass NewBaseline:\n    pass\n")
        with_class = hashes()
    finally:
        monkeypatch.undo()
        hashes()  # no cached walk over the copy outlives the test
    unchanged = {
        **dict.fromkeys(BELOW_EVALUATION, True),
        "evaluate": False,
        "report": False,
    }
    assert {v: after[v] == before[v] for v in verbs} == unchanged
    assert {v: with_class[v] == after[v] for v in verbs} == unchanged


def test_every_builtin_factory_module_is_in_the_evaluate_code_hash() -> None:
    # Factories are imported by name ("module:attribute"), which the static walk does not
    # follow; the evaluate verb imports both modules too. Without that, editing a baseline's
    # code would not rerun the evaluate jobs: this test says so if it ever stops being true.
    factories = {row["factory"].partition(":")[0] for row in _BUILTIN_TRAITS.values()}
    assert factories == {"lcm.evaluate.factories", "lcm.evaluate.baselines"}
    assert factories <= set(code.verb_modules("evaluate"))
