"""Model names and capabilities have one owner, the registry (issue 16, item 4).

The schema's model list is the registry's (the file's literal list is checked against it, and
:func:`lcm.config.schema` fills it from the registry, so ``register_model`` reaches the config);
"needs a checkpoint", "needs torch" and "is an LCM variant" are entry attributes, not name
prefixes.
"""

from __future__ import annotations

import contextlib
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.evaluate import PrevalenceModel

from lcm.config import schema, validate_config
from lcm.evaluate import parallel
from lcm.evaluate.registry import (
    BASELINE_MODELS,
    CONTROL_MODELS,
    DEFAULT_MODELS,
    LCM_MODELS,
    ModelContext,
    checkpoint_models,
    is_builtin_model,
    model_entry,
    model_family,
    model_names,
    needs_torch,
    register_model,
    unregister_model,
)
from lcm.exceptions import ConfigError
from lcm.report.tables import model_kind

BUILTIN = [
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


def test_the_schema_file_lists_the_builtin_registry_once() -> None:
    text, tree = _file()
    assert model_names() == BUILTIN  # built-ins first, in the schema's order
    assert tree["$defs"]["model_name"]["enum"] == model_names()
    assert [n for n in model_names() if is_builtin_model(n)] == BUILTIN
    # One definition: every list of models is the anchored $defs.model_name.
    assert text.count("enum: [lcm,") == 1
    evaluate = tree["properties"]["evaluate"]["properties"]["models"]
    task = tree["properties"]["tasks"]["additionalProperties"]["properties"]["models"]
    assert evaluate["items"] is tree["$defs"]["model_name"] is task["items"]
    # The default list is the entries marked default, in the registry's order.
    assert evaluate["default"] == list(DEFAULT_MODELS)
    assert DEFAULT_MODELS == tuple(n for n in BUILTIN if n != "shuffled-lcm")


def test_families_are_entry_attributes() -> None:
    assert LCM_MODELS == ("lcm", "lcm-no-pseudo", "lcm-ssl", "lcm-scratch")
    assert BASELINE_MODELS == ("logreg", "svm", "ridge", "tangent-logreg", "cpm", "bei-linear")
    assert CONTROL_MODELS == ("shuffled-labels", "shuffled-lcm")
    assert [model_kind(m) for m in BUILTIN] == [model_family(m) for m in BUILTIN]
    # Not a name prefix: an unregistered "lcm..." is no LCM variant, a registered one may be.
    assert model_kind("lcm-unknown") == "other"
    register_model("mine", lambda c: PrevalenceModel(), family="LCM", replace=True)
    try:
        assert model_kind("mine") == "LCM"
    finally:
        unregister_model("mine")


def test_checkpoints_and_torch_are_entry_attributes() -> None:
    # As lcm.config.CHECKPOINT_MODELS listed them, now asked of the entries.
    assert set(checkpoint_models(BUILTIN)) == {
        "lcm",
        "lcm-no-pseudo",
        "lcm-ssl",
        "lcm-scratch",
        "shuffled-lcm",
        "bei-linear",
    }
    assert checkpoint_models(BUILTIN, "ssl") == ["lcm-ssl"]
    assert checkpoint_models(BUILTIN, "bei") == [
        "lcm",
        "lcm-no-pseudo",
        "lcm-scratch",
        "bei-linear",
        "shuffled-lcm",
    ]
    assert checkpoint_models(["nope", "logreg"]) == []
    assert [m for m in BUILTIN if needs_torch(m)] == [*LCM_MODELS, "shuffled-lcm"]
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
