"""Every setting of the configuration schema carries a description of its own (DESIGN §3:
"defaults + descriptions live in the schema").

The schema is :func:`lcm.evaluate.config_schema.schema` (``lcm/schemas/config.schema.yaml``,
which ``workflow/schemas/config.schema.yaml`` links to). Users read a setting's description
there and in the hint of a validation error, which quotes the ``description`` of the failing
key's own node (:func:`lcm.schema_errors.hint`); a node without one (a list's item, a map's
entry) quotes its nearest described ancestor's, naming that ancestor. The rule:

- The settings are the schema's settable leaves (:func:`helpers.schema.settable_leaves`, the
  walk ``test_docs_config.py`` uses): keys that hold no keys of their own, a map's entry written
  ``<name>``. A list is one leaf whose description covers its items (the items are not walked);
  a key that takes a top-level section's keys (``datasets.<name>.denoise``) is one leaf, the
  section describing those keys.
- Each has a ``description`` of its own: a string of at least ``MIN_WORDS`` words, a sentence
  rather than a placeholder.
- No exemption for a key that its parent's description names (``atlas.templateflow``'s example
  ``{template: ..., atlas: ...}``, ``ingest.select``'s "include and exclude lists"): an error at
  that key would quote the parent's description, which says what the parent is for, not the key.

Sections (``atlas``, ``evaluate.finetune``, ``synth.consortia.<name>``) need no description:
their errors name keys, which the hint takes from the schema (the allowed keys of an unknown
one, with the closest as "did you mean"; the keys a section holds where it was given a value;
a missing required key's own description), as the last tests show.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers.schema import schema_node, settable_leaves

from lcm.evaluate.config_schema import schema, validate_config
from lcm.exceptions import ConfigError

# The shortest description that says something ("Remove linear trends (nilearn.signal.clean
# detrend)." has five words).
MIN_WORDS = 4
SCHEMA_FILE = "lcm/schemas/config.schema.yaml"


def test_every_setting_of_the_schema_has_a_description_of_its_own() -> None:
    leaves = settable_leaves(schema())
    lacking = [
        path
        for path, node in leaves.items()
        if not isinstance(node.get("description"), str)
        or len(node["description"].split()) < MIN_WORDS
    ]
    assert not lacking, (
        f"Settings of {SCHEMA_FILE} without a description of their own (at least {MIN_WORDS} "
        f"words): {lacking}. Add a `description:` to each key: what it does, its unit and what "
        "it affects (a parent's description does not reach the key's validation errors)."
    )


def test_the_walk_reaches_the_settings_a_parent_describes() -> None:
    """The rule is only as strict as the walk: it must reach nested and anchored keys."""
    leaves = settable_leaves(schema())
    for path in (
        "atlas.templateflow.resolution",
        "ingest.select.<name>.participants.include",
        "ingest.select.<name>.space.exclude",
        "synth.consortia.<name>.n_subjects",
        "evaluate.seeds",
        "evaluate.finetune.pseudo_weight",
        "tasks.<name>.reference.range",
        "datasets.<name>.denoise",
    ):
        assert path in leaves, f"{path} is no settable leaf of the walk"
    # The denoise overrides are one leaf: their keys are the denoise section's.
    assert not any(p.startswith("datasets.<name>.denoise.") for p in leaves)


# A config of one dataset, "a", that each case below adds one invalid setting to.
MINIMAL = {
    "datasets": {
        "a": {"entry": "roi_timeseries", "path": "x", "phenotype": "p.tsv", "role": "pretrain"}
    }
}
TEMPLATEFLOW = {"template": "MNI152NLin2009cAsym", "atlas": "Schaefer2018", "resolution": 0}


@pytest.mark.parametrize(
    ("setting", "section"),
    [
        ("pretrain.lr", {"pretrain": {"lr": 0}}),
        ("evaluate.n_folds", {"evaluate": {"n_folds": 1}}),
        ("evaluate.seeds", {"evaluate": {"seeds": [0, 0]}}),
        ("evaluate.finetune.pseudo_weight", {"evaluate": {"finetune": {"pseudo_weight": -1}}}),
        ("atlas.templateflow.resolution", {"atlas": {"templateflow": TEMPLATEFLOW}}),
        (
            "ingest.select.<name>.participants.include",
            {"ingest": {"select": {"a": {"participants": {"include": "sub-01"}}}}},
        ),
    ],
)
def test_a_validation_error_shows_the_setting_s_own_description(
    setting: str, section: dict[str, Any]
) -> None:
    key = setting.replace("<name>", "a")
    with pytest.raises(ConfigError, match=f"key {re.escape(repr(key))}") as info:
        validate_config({**MINIMAL, **section}, "config.yaml")
    described = schema_node(schema(), setting) or {}
    expected = described.get("description")
    if setting == "evaluate.seeds":
        # A repeated value: which one, then what the setting is for.
        expected = f"List each value once (drop the repeat of 0). {expected}"
    assert info.value.hint == expected, "the hint is not the key's own description"


@pytest.mark.parametrize(
    ("setting", "index", "section"),
    [
        ("evaluate.label_fractions", 1, {"evaluate": {"label_fractions": [0.1, 0]}}),
        ("evaluate.seeds", 0, {"evaluate": {"seeds": [""]}}),
        ("fmriprep.extra_args", 1, {"fmriprep": {"extra_args": ["--a", 1]}}),
        (
            "tasks.<name>.reference.range",
            1,
            {
                "tasks": {
                    "a": {
                        "dataset": "a",
                        "label": "sex",
                        "reference": {"metric": "auc", "range": [0.5, "x"], "source": "s"},
                    }
                }
            },
        ),
    ],
)
def test_an_error_on_a_list_item_quotes_the_list_s_description(
    setting: str, index: int, section: dict[str, Any]
) -> None:
    """An item's own schema has no description: the list's is quoted, naming the list."""
    key = setting.replace("<name>", "a")
    with pytest.raises(ConfigError, match=re.escape(repr(f"{key}.{index}"))) as info:
        validate_config({**MINIMAL, **section}, "config.yaml")
    described = " ".join((schema_node(schema(), setting) or {})["description"].split())
    assert info.value.hint == f"{key} (item {index}): {described}"


def test_an_invalid_map_name_quotes_the_map_s_description() -> None:
    with pytest.raises(ConfigError, match="invalid name 'a_b' under key 'datasets'") as info:
        validate_config({"datasets": {"a_b": MINIMAL["datasets"]["a"]}}, "config.yaml")
    described = " ".join(schema()["properties"]["datasets"]["description"].split())
    assert info.value.hint.endswith(f"datasets: {described}")


@pytest.mark.parametrize(
    ("section", "key", "typo"),
    [("evaluate", "n_folds", "n_fold"), ("atlas", "name", "nmae"), ("synth", "enabled", "enable")],
)
def test_an_unknown_key_in_a_section_names_the_key_it_is_likely_a_typo_of(
    section: str, key: str, typo: str
) -> None:
    with pytest.raises(ConfigError, match=f"did you mean {key!r}") as info:
        validate_config({**MINIMAL, section: {typo: 1}}, "config.yaml")
    assert key in info.value.hint


@pytest.mark.parametrize(
    ("setting", "section"),
    [
        ("atlas", {"atlas": "aal116"}),
        ("evaluate.finetune", {"evaluate": {"finetune": True}}),
        ("synth.consortia.<name>", {"synth": {"consortia": {"a": 5}}}),
    ],
)
def test_a_section_given_a_value_lists_the_keys_it_takes(
    setting: str, section: dict[str, Any]
) -> None:
    key = setting.replace("<name>", "a")
    with pytest.raises(ConfigError, match=f"key {re.escape(repr(key))}: .* not of type") as info:
        validate_config({**MINIMAL, **section}, "config.yaml")
    keys = sorted((schema_node(schema(), setting) or {})["properties"])
    assert info.value.hint == f"A mapping of the keys {keys}."


@pytest.mark.parametrize(
    ("setting", "missing", "section"),
    [
        ("synth.consortia.<name>", "preset", {"synth": {"consortia": {"a": {"tier": "roi"}}}}),
        ("tasks.<name>", "label", {"tasks": {"a": {"dataset": "a"}}}),
    ],
)
def test_a_missing_required_key_quotes_that_key_s_description(
    setting: str, missing: str, section: dict[str, Any]
) -> None:
    key = setting.replace("<name>", "a")
    with pytest.raises(ConfigError, match=f"{missing!r} is a required property") as info:
        validate_config({**MINIMAL, **section}, "config.yaml")
    described = (schema_node(schema(), f"{setting}.{missing}") or {})["description"]
    assert key in str(info.value)
    assert info.value.hint == f"Add {missing!r}: {described}"
