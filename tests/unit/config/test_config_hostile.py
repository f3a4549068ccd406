"""Hostile configuration (issue 14): an alias bomb, an over-long name, NaN in --settings.

Each is refused fast, in one bounded line naming the key (or flag) and the fix, never with a
traceback or gigabytes of memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.cli import main
from lcm.config import MAX_CONFIG_VALUES, expanded_size, parse_settings
from lcm.evaluate.config_schema import load_config, validate_config
from lcm.exceptions import ConfigError

pytestmark = pytest.mark.hostile


def demo() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_alias_bomb_is_refused_before_validation(bomb: Path) -> None:
    raw = yaml.safe_load(bomb.read_text())  # loading shares the aliases: cheap
    assert expanded_size(raw) > 100 * MAX_CONFIG_VALUES
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"expands to [\d,]+ values .*YAML aliases") as info:
        load_config(bomb)
    assert time.monotonic() - start < 5
    assert "\n" not in info.value.message and len(info.value.message) < 400
    assert str(bomb) in info.value.message and info.value.hint


def test_recursive_alias_is_refused() -> None:
    raw = yaml.safe_load("datasets: &d {x: *d}\n")
    with pytest.raises(ConfigError, match=r"key 'datasets\.x' contains itself"):
        validate_config(raw)


def test_300_character_dataset_name_is_refused_in_one_line() -> None:
    cfg = demo()
    cfg["datasets"]["a" * 300] = cfg["datasets"].pop("hcplike")
    with pytest.raises(ConfigError, match=r"invalid name 'aaa.*' under key 'datasets'") as info:
        validate_config(cfg)
    message = info.value.message
    assert "\n" not in message and len(message) < 400
    assert "at most 64 characters, got 300" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("tasks", "autism", "label"), "x" * 65),
        (("atlas", "name"), "a" * 100),
        (("fmriprep", "output_space"), "MNI152NLin2009cAsym:res-2/../x"),
        (("fmriprep", "output_space"), "MNI152NLin2009cAsym:res-2:res-1"),
    ],
)
def test_long_or_odd_names_are_refused(key: tuple[str, ...], value: str) -> None:
    cfg = demo()
    cfg.setdefault(key[0], {})
    node = cfg
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = value
    with pytest.raises(ConfigError, match=f"key '{'.'.join(key)}'"):
        validate_config(cfg)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"lr": NaN}', r"--settings: key 'lr' is NaN; expected a finite number"),
        ('{"a": {"b": [1, -Infinity]}}', r"--settings: key 'a\.b\.1' is -Infinity"),
        ('{"lr": Infinity}', r"key 'lr' is Infinity"),
    ],
)
def test_non_finite_settings_are_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        parse_settings(text, "settings")
    assert "\n" not in info.value.message and info.value.hint


PRETRAIN = "pretrain --store s --atlas a --catalogue c --datasets d --out-dir o".split()


def test_nan_lr_through_the_cli_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*PRETRAIN, "--settings", '{"lr": NaN}']) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert "--settings: key 'lr' is NaN" in err and "Traceback" not in err


@pytest.mark.slow
def test_nan_lr_in_a_subprocess_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", *PRETRAIN, "--settings", '{"lr": NaN}'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == ConfigError.exit_code
    assert "Traceback" not in proc.stderr
    assert "--settings: key 'lr' is NaN; expected a finite number" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # the message and its hint


@pytest.mark.parametrize("value", [2.0, True])
def test_a_float_or_boolean_where_an_integer_is_asked_is_refused(value: object) -> None:
    """JSON Schema's "integer" takes 2.0: ``evaluate.n_folds: 2.0`` in a config file passed
    validation and the dry run, then failed in the splits job after the store was built."""
    cfg = demo()
    cfg.setdefault("evaluate", {})["n_folds"] = value
    with pytest.raises(ConfigError, match=r"key 'evaluate\.n_folds'.*integer"):
        validate_config(cfg)
    cfg["evaluate"]["n_folds"] = 2
    validate_config(cfg)
