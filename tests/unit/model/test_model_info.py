"""Parameter counts on the meta device, and the model-info command."""

from __future__ import annotations

import json

import pytest

from lcm.cli import main
from lcm.model.config import config_from_settings
from lcm.model.info import parameter_counts
from lcm.model.lcm import LCM


def test_big_preset_is_about_1_2_billion() -> None:
    counts = parameter_counts(config_from_settings({"preset": "big"}, n_rois=116, n_queries=9))
    assert counts["total"] == pytest.approx(1.175e9, rel=0.05)
    assert counts["decoder"] == 32 * 36_731_648  # 32 layers of width 2048, FFN 768
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]


def test_meta_count_equals_allocated_count() -> None:
    cfg = config_from_settings({"preset": "tiny"}, n_rois=13, n_queries=7)
    assert parameter_counts(cfg)["total"] == sum(p.numel() for p in LCM(cfg).parameters())


def test_model_info_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model-info", "--preset", "big", "--n-rois", "116", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["n_layers"] == 32
    assert report["parameters"]["total"] == pytest.approx(1.175e9, rel=0.05)
    assert main(["model-info", "--preset", "tiny", "--n-queries", "5"]) == 0
    assert "total parameters:" in capsys.readouterr().out
    assert main(["model-info", "--overrides", '{"d_model": 30}']) == 2  # ConfigError exit code


@pytest.mark.parametrize("value", ["0", "-3"])
def test_model_info_refuses_no_queries_as_an_option_error(value: str, capsys) -> None:
    """--n-queries 0 was refused with the hint "Fix model.overrides in the config", which a
    user of the command line never wrote; --n-rois already said what it expected."""
    with pytest.raises(SystemExit) as exc:
        main(["model-info", "--n-queries", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--n-queries" in err and "expected an integer >= 1" in err
    assert "model.overrides" not in err


PRETRAIN = ["pretrain", "--store", "s", "--atlas", "aal116", "--catalogue", "c.yaml"]
PRETRAIN += ["--datasets", "a", "--out-dir", "o"]


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["model-info", "--overrides", '{"d_model": 0}'], "Set it in --overrides"),
        (["model-info", "--overrides", '{"n_layer": 2}'], "Settable in --overrides:"),
        (["model-info", "--overrides", '{"n_rois": 3}'], "Remove them from --overrides."),
        (
            [*PRETRAIN, "--model", '{"overrides": {"d_model": -1}}'],
            "Set it in --model's overrides",
        ),
        (
            [*PRETRAIN, "--model", '{"preset": "huge"}'],
            "Pick one in --model's preset and adjust it with --model's overrides.",
        ),
    ],
)
def test_a_bad_model_option_is_hinted_by_the_option_not_the_config_key(
    argv: list[str], hint: str, tmp_path, monkeypatch, capsys
) -> None:
    """The hint said "Fix model.overrides in the config" to a user who gave the sizes as
    --overrides or in --model on the command line, and wrote no config."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert hint in said
    assert "in the config" not in said and not (tmp_path / "o").exists()


def test_a_bad_model_section_in_a_config_is_hinted_by_its_key() -> None:
    from lcm.exceptions import ConfigError
    from lcm.model.config import check_model_settings

    with pytest.raises(ConfigError) as caught:
        check_model_settings({"overrides": {"n_heads": 0}}, "my.yaml")
    assert caught.value.message.startswith("my.yaml: model.n_heads: expected a positive")
    assert "model.overrides in the config" in caught.value.hint


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ({"deep_supervision": "no"}, "model.deep_supervision: expected true or false, got 'no'"),
        ({"dropout": "0.2"}, r"model.dropout: expected a number in [0, 1), got '0.2'"),
        ({"d_model": True, "n_heads": 1}, "model.d_model: expected a positive integer, got True"),
    ],
)
def test_a_model_override_of_the_wrong_type_is_refused(override: dict, said: str) -> None:
    """ "no" for deep_supervision was kept as a true string (deep supervision on), "0.2" for
    dropout passed float() and failed the model's build after the data load, true was 1."""
    from lcm.exceptions import ConfigError
    from lcm.model.config import check_model_settings

    with pytest.raises(ConfigError) as caught:
        check_model_settings({"overrides": override}, "lcm pretrain --model")
    assert said in caught.value.message
    check_model_settings({"overrides": {"deep_supervision": False, "dropout": 0}}, "x")


def test_the_schema_types_model_overrides_as_the_model_config_declares_them() -> None:
    """model.overrides was a bare object: a nested --config value ('model={overrides:
    {d_model: 128}}', read as text) stayed '128' and was refused. The schema now lists the
    keys; they must stay LCMConfig's settable fields with their types."""
    import dataclasses
    import typing

    from lcm.config import schema
    from lcm.model.config import _DATA_KEYS, LCMConfig

    listed = schema()["properties"]["model"]["properties"]["overrides"]["properties"]
    json_type = {int: "integer", float: "number", bool: "boolean"}
    hints = typing.get_type_hints(LCMConfig)
    declared = {
        f.name: json_type[hints[f.name]]
        for f in dataclasses.fields(LCMConfig)
        if f.name not in _DATA_KEYS
    }
    assert {key: node["type"] for key, node in listed.items()} == declared
    # No default: a config's resolved model section (and so every rule's params) is unchanged.
    assert not [key for key, node in listed.items() if "default" in node]


def test_a_nested_config_override_of_the_model_is_read_as_the_number_it_is() -> None:
    from lcm.config import retype_overrides
    from lcm.model.config import check_model_settings

    given = {"model": {"overrides": {"d_model": "128", "dropout": "0.2"}}}
    given["model"]["overrides"]["deep_supervision"] = "false"
    typed = retype_overrides(given, given)
    assert typed["model"]["overrides"] == {
        "d_model": 128,
        "dropout": 0.2,
        "deep_supervision": False,
    }
    check_model_settings(typed["model"], "--config")
