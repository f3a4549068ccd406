"""Config values found wrong when the config loads, not by a job hours into a run.

A review found configs that `snakemake -n` planned and a job refused mid-workflow: a band-pass
whose high_pass is not below its low_pass (the section's or a dataset's), scrubbing with both
thresholds null, a window step without a length, a model override no model is built from, an
atlas name not in the registry with every dataset ROI-level, a typo of a dataset's name under
ingest.select (silently ignored), a key given twice in one YAML mapping (silently last-wins).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.config import load_yaml_text, read_yaml_mapping
from lcm.connectome.config_check import check_config as check_connectome_config
from lcm.evaluate.config_schema import load_config, validate_config
from lcm.exceptions import ConfigError
from lcm.model.config import check_model_settings
from lcm.workflow.plan import WorkflowPlan


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            {"denoise": {"high_pass": 0.2, "low_pass": 0.1}},
            r"my\.yaml: denoise: high_pass \(0\.2 Hz\) must be below low_pass \(0\.1 Hz\)",
        ),
        (
            {"datasets.abidelike.denoise": {"high_pass": 0.3}},
            r"my\.yaml: datasets\.abidelike\.denoise: high_pass \(0\.3 Hz\) must be below "
            r"low_pass \(0\.1 Hz\)",
        ),
        (
            {
                "denoise": {
                    "strategy": "scrubbing",
                    "fd_threshold": None,
                    "dvars_threshold": None,
                }
            },
            r"my\.yaml: denoise: strategy 'scrubbing' scrubs volumes, but fd_threshold and "
            r"dvars_threshold are both null",
        ),
        (
            {"connectome": {"window": {"length": None, "step": 10}}},
            r"my\.yaml: connectome: window\.step \(10\) is set but window\.length is null",
        ),
    ],
)
def test_denoise_and_connectome_values_are_checked_at_load(
    demo: dict, change: dict, said: str
) -> None:
    for key, value in change.items():
        if key.startswith("datasets."):
            demo["datasets"][key.split(".")[1]]["denoise"] = value
        else:
            demo[key] = value
    cfg = validate_config(demo, source="my.yaml")
    with pytest.raises(ConfigError, match=said):
        check_connectome_config(cfg, "my.yaml")


def test_a_dataset_overriding_a_bad_section_band_is_checked_merged(demo: dict) -> None:
    demo["denoise"] = {"high_pass": 0.05, "low_pass": 0.1}
    demo["datasets"]["abidelike"]["denoise"] = {"high_pass": None, "low_pass": None}
    check_connectome_config(validate_config(demo), "my.yaml")  # both bands valid


def test_an_unknown_override_hint_offers_the_settable_keys_only(demo: dict) -> None:
    # n_rois and n_queries come from the atlas and the catalogue: offering them is a trap.
    demo["model"] = {"overrides": {"n_layer": 2}}
    with pytest.raises(ConfigError) as caught:
        check_model_settings(validate_config(demo)["model"], "my.yaml")
    assert "Did you mean 'n_layers' for 'n_layer'?" in caught.value.hint
    assert "'n_rois'" not in caught.value.hint and "'n_queries'" not in caught.value.hint
    assert "'d_model'" in caught.value.hint


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"n_layer": 2}, r"my\.yaml: model\.overrides: unknown keys \['n_layer'\]"),
        # Typed in the schema: refused by the config's validation, at the key.
        (
            {"d_model": -4},
            r"my\.yaml: invalid value at key 'model\.overrides\.d_model': -4 is less than",
        ),
        ({"d_model": 30, "n_heads": 4}, r"my\.yaml: model: d_model \(30\) must be divisible"),
        ({"n_rois": 10}, r"my\.yaml: model\.overrides: \['n_rois'\] are set by the atlas"),
    ],
)
def test_model_overrides_are_checked_at_load(demo: dict, overrides: dict, said: str) -> None:
    demo["model"] = {"overrides": overrides}
    with pytest.raises(ConfigError, match=said):
        check_model_settings(validate_config(demo, source="my.yaml")["model"], "my.yaml")
    check_model_settings(validate_config({**demo, "model": {"preset": "small"}})["model"], "x")


def test_an_unknown_registry_atlas_is_refused_with_roi_level_datasets_only(demo: dict) -> None:
    demo["synth"]["consortia"].pop("bidsdemo")
    demo["datasets"].pop("bidsdemo")
    demo["atlas"] = {"name": "schaefer"}
    cfg = validate_config(demo, source="my.yaml")
    with pytest.raises(ConfigError, match=r"my\.yaml: atlas\.name is 'schaefer', which is not"):
        WorkflowPlan(cfg, source="my.yaml")
    # A job's own process does not check again; a registry name passes.
    WorkflowPlan(cfg, check_files=False, source="my.yaml")
    WorkflowPlan(validate_config({**demo, "atlas": {"name": "aal116"}}), source="my.yaml")


def test_an_ingest_selection_of_no_dataset_is_refused(demo: dict) -> None:
    demo["ingest"] = {"select": {"abidelik": {"participants": {"exclude": ["01"]}}}}
    with pytest.raises(ConfigError, match=r"my\.yaml: ingest\.select names \['abidelik'\]") as i:
        validate_config(demo, source="my.yaml")
    assert "'abidelike'" in i.value.message  # the known names listed


def test_a_key_given_twice_in_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text(
        "datasets:\n  a: {role: pretrain}\n  b: {role: downstream}\n  a: {role: downstream}\n"
    )
    with pytest.raises(ConfigError) as info:
        read_yaml_mapping(path, "Config file")
    assert info.value.message.startswith(f"Config file {path}: line 4: key 'a' is given twice")
    assert "(first at line 2)" in info.value.message
    # A merge key may still be overridden by the mapping's own keys; JSON reads as before.
    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n"
    assert load_yaml_text(text, "t")["other"] == {"x": 1, "y": 3}
    assert load_yaml_text('{"a": [1, {"b": null}]}', "t") == {"a": [1, {"b": None}]}


def test_an_unknown_key_is_named_alone_with_its_likely_spelling(demo: dict) -> None:
    bad = copy.deepcopy(demo)
    bad["pretrian"] = {"epochs": 3}
    with pytest.raises(ConfigError) as info:
        validate_config(bad, source="my.yaml")
    assert (
        info.value.message
        == "my.yaml: unknown key 'pretrian' (did you mean 'pretrain'?) at top level"
    )
    bad = copy.deepcopy(demo)
    bad["denoise"]["zzz"] = 1
    with pytest.raises(ConfigError) as info:
        validate_config(bad, source="my.yaml")
    assert info.value.message == "my.yaml: unknown key 'zzz' under 'denoise'"
    assert "strategy" in (info.value.hint or "")


def test_a_binary_task_without_positive_says_it_is_missing(demo: dict) -> None:
    del demo["tasks"]["autism"]["positive"]
    with pytest.raises(ConfigError) as info:
        validate_config(demo, source="my.yaml")
    message = info.value.message
    assert "tasks.autism.positive is missing: a binary label needs one of [" in message
    assert "None" not in message


def test_nested_config_overrides_are_typed_as_the_schema_wants() -> None:
    """snakemake --config 'evaluate={n_folds: 5}' hands '5' (YAML's base loader): refused as
    "'5' is not of type 'integer'", no nested setting could be overridden. Text the schema
    allows stays text; a value that is no number stays refused."""
    import copy

    import yaml
    from helpers import ROOT

    from lcm.config import retype_overrides
    from lcm.evaluate.config_schema import validate_config

    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    overrides = {
        "evaluate": {"n_folds": "5", "label_fractions": ["0.2", "1"]},
        "pretrain": {"epochs": "3"},
    }
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        merged[key] = {**merged.get(key, {}), **value}
    typed = retype_overrides(merged, overrides)
    assert typed["evaluate"]["n_folds"] == 5 and typed["evaluate"]["label_fractions"] == [0.2, 1]
    assert typed["pretrain"]["epochs"] == 3
    validate_config(typed)
    assert merged["evaluate"]["n_folds"] == "5"  # a copy: the merged config is left as it was
    typed["evaluate"]["n_folds"] = "five"
    with pytest.raises(ConfigError, match="'five' is not of type 'integer'"):
        validate_config(retype_overrides(typed, {"evaluate": {"n_folds": "five"}}))


@pytest.mark.parametrize("value", [2000, 2000.0, 45])
def test_a_repetition_time_in_milliseconds_is_refused_at_load(
    demo: dict, tmp_path: Path, value: float
) -> None:
    """datasets.<name>.repetition_time: 2000 (2 s written in milliseconds) passed the schema (a
    positive number) and every run that took it was excluded at ingest as no_repetition_time;
    the load now refuses it with ingest's own rule and words, naming the file and the key."""
    demo["datasets"]["abidelike"]["repetition_time"] = value
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(demo))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    said = refused.value.message
    assert said.startswith(f"{path}: datasets.abidelike.repetition_time is {value!r}: above 30 s")
    assert f"in milliseconds it is {value / 1000:g} s" in said
    assert refused.value.hint.startswith("Set datasets.abidelike.repetition_time to the ")
    assert "e.g. 2.0" in refused.value.hint and "BIDS RepetitionTime is in seconds" in (
        refused.value.hint
    )
    # A TR in seconds, sparse designs up to 30 s included, still loads.
    demo["datasets"]["abidelike"]["repetition_time"] = 30
    path.write_text(yaml.safe_dump(demo))
    assert load_config(path)["datasets"]["abidelike"]["repetition_time"] == 30
