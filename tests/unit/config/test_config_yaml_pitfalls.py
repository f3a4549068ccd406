"""Config files as users write them: YAML 1.1's readings, and paths nothing expands.

PyYAML (and Snakemake's reader) follow YAML 1.1: ``1e-3`` is text, ``yes``/``on``/``no`` are
booleans, keys included, and ``.nan``/``.inf`` are numbers. A QA pass found ``lr: 1e-3``
refused as "not of type 'number'" without a word of why, ``datasets: {on: ...}`` accepted and
then a TypeError traceback, ``lr: .nan`` accepted, ``results_dir: $SCRATCH/lcm`` written to a
folder named ``$SCRATCH``, and a tab in the file reported as "while scanning for the next
token" without its line. Each is now one ConfigError naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.evaluate.config_schema import load_config
from lcm.exceptions import ConfigError

MARK = "@@raw@@"


def write_config(tmp_path: Path, keys: tuple, raw: str) -> Path:
    """The demo config as ``my.yaml``, the value at ``keys`` written as the YAML text ``raw``."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    node = cfg
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = MARK
    text = yaml.safe_dump(cfg, sort_keys=False)
    path = tmp_path / "my.yaml"
    path.write_text(text.replace(f"'{MARK}'", raw))
    return path


@pytest.mark.parametrize(
    ("keys", "raw", "fix", "fixed"),
    [
        (("pretrain", "lr"), "1e-3", "write 1.0e-3", 0.001),
        (("evaluate", "finetune", "lr"), "-2E5", "write -2.0e+5", None),
        (("denoise", "fd_threshold"), "5e-1", "write 5.0e-1", 0.5),
        (("evaluate", "n_folds"), "'5'", "'5' is quoted, so it is text: write 5 without", 5),
    ],
)
def test_a_number_yaml_reads_as_text_says_how_to_write_it(
    tmp_path: Path, keys: tuple, raw: str, fix: str, fixed: float | None
) -> None:
    path = write_config(tmp_path, keys, raw)
    with pytest.raises(ConfigError, match="not of type") as info:
        load_config(path)
    assert str(path) in info.value.message
    assert f"'{'.'.join(keys)}'" in info.value.message
    assert fix in info.value.hint
    if fixed is not None:  # the spelling the hint gives is the number
        written = fix.removeprefix("write ").split()[0]
        if "quoted" in fix:
            written = raw.strip("'")
        config = load_config(write_config(tmp_path, keys, written))
        node = config
        for key in keys:
            node = node[key]
        assert node == fixed


@pytest.mark.parametrize(
    ("keys", "raw", "boolean_note"),
    [
        (("tasks", "alzheimers", "positive"), "yes", True),
        (("denoise", "standardize"), "no", True),
        (("denoise", "dvars_threshold"), "on", True),
        (("seed",), "true", False),  # an integer: quoting would not help
    ],
)
def test_a_yaml_boolean_where_text_is_asked_says_to_quote_it(
    tmp_path: Path, keys: tuple, raw: str, boolean_note: bool
) -> None:
    path = write_config(tmp_path, keys, raw)
    with pytest.raises(ConfigError, match=rf"key '{'.'.join(keys)}'") as info:
        load_config(path)
    assert ("is a boolean in YAML: quote the word" in info.value.hint) is boolean_note


def test_a_yaml_date_where_text_is_asked_says_to_quote_it(tmp_path: Path) -> None:
    reference = "{metric: auc, range: [0.6, 0.7], source: 2019-01-01}"
    path = write_config(tmp_path, ("tasks", "alzheimers", "reference"), reference)
    with pytest.raises(ConfigError, match=r"key 'tasks\.alzheimers\.reference\.source'") as info:
        load_config(path)
    assert "YAML reads 2019-01-01 as a date: quote it" in info.value.hint


@pytest.mark.parametrize(
    ("section", "key", "said"),
    [
        ("datasets", "on", r"the key True \(an unquoted yes, no, on, off, true or false"),
        ("tasks", "yes", r"the key True \(an unquoted yes"),
        ("datasets", "2019", r"the key 2019 \(a number, not text\)"),
        ("datasets", "2019-01-01", r"the key datetime.date\(2019, 1, 1\) \(a date, not text\)"),
    ],
)
def test_a_key_yaml_reads_as_no_text_is_refused_naming_its_section(
    tmp_path: Path, section: str, key: str, said: str
) -> None:
    """Accepted before (the schema's name patterns test text only), then a TypeError
    traceback where the workflow sorted the datasets."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    first = next(iter(cfg[section]))
    cfg[section]["@@key@@"] = cfg[section][first]
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False).replace("'@@key@@'", key))
    with pytest.raises(ConfigError, match=said) as info:
        load_config(path)
    assert str(path) in info.value.message and f"under '{section}'" in info.value.message
    assert "Quote the key" in info.value.hint


@pytest.mark.parametrize(
    ("keys", "raw"),
    [
        (("pretrain", "lr"), ".nan"),
        (("denoise", "fd_threshold"), ".inf"),
        (("evaluate", "label_fractions"), "[0.5, -.inf]"),
    ],
)
def test_nan_and_infinity_are_refused(tmp_path: Path, keys: tuple, raw: str) -> None:
    """``lr: .nan`` passed every bound of the schema (NaN compares false)."""
    path = write_config(tmp_path, keys, raw)
    with pytest.raises(ConfigError, match=r"is not a finite number") as info:
        load_config(path)
    assert f"key '{'.'.join(keys)}" in info.value.message
    assert "finite value" in info.value.hint


@pytest.mark.parametrize(
    ("keys", "value", "what"),
    [
        (("results_dir",), "$SCRATCH/lcm", "$SCRATCH"),
        (("results_dir",), "${SCRATCH}x/lcm", None),  # braces: refused by the schema
        (("results_dir",), "~/lcm", "~"),
        (("fmriprep", "work_dir"), "/home/$USER/work", "$USER"),
        (("synth", "out_dir"), "~me/synth", "~"),
        (("datasets", "hcplike", "phenotype"), "$HOME/p.tsv", "$HOME"),
        # lcm run makes a path absolute before the check: the ~ is then inside.
        (("variables",), "/work/here/~/vars.yaml", "~"),
    ],
)
def test_a_path_with_a_tilde_or_a_shell_variable_is_refused(
    tmp_path: Path, keys: tuple, value: str, what: str | None
) -> None:
    """Nothing expands them: results_dir: $SCRATCH/lcm wrote into a folder named $SCRATCH."""
    path = write_config(tmp_path, keys, yaml.safe_dump(value).splitlines()[0])
    with pytest.raises(ConfigError) as info:
        load_config(path)
    if what is None:
        return
    assert info.value.message.startswith(f"{path}: {'.'.join(keys)} is {value!r}")
    assert f"nothing expands {what}" in info.value.message
    assert f"echo {what}" in info.value.hint


def test_a_dollar_inside_a_folder_name_is_kept(tmp_path: Path) -> None:
    """Only a name starting with $NAME is a variable: a folder's own $ (the workflow's
    shell-quoting tests use such names) is a path like any other."""
    value = "/data/cost $5 and $HOME &/lcm"
    path = write_config(tmp_path, ("results_dir",), yaml.safe_dump(value).splitlines()[0])
    assert load_config(path)["results_dir"] == value


def test_a_tab_in_the_file_names_its_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    path.write_text("seed: 1\nevaluate:\n\tn_folds: 5\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: line 3, column 1: .*'\\t'") as info:
        load_config(path)
    assert str(path) in info.value.message and "\n" not in info.value.message
    assert "replace the tab with spaces" in info.value.hint


@pytest.mark.parametrize(
    ("raw", "text", "value"),
    [
        ("{participants: {include: [01, 12]}}", "01", 1),
        ("{participants: {exclude: [010]}}", "010", 8),  # octal: sub-8, not sub-010
        ("{sessions: {include: [0x1A]}}", "0x1A", 26),  # hexadecimal
    ],
)
def test_an_integer_yaml_reads_otherwise_than_its_digits_is_refused(
    tmp_path: Path, raw: str, text: str, value: int
) -> None:
    """``include: [01, 010]`` selected subjects 1 and 8: planned by the dry run, refused by the
    ingest job (or, with a sub-8, the wrong subject kept)."""
    path = write_config(tmp_path, ("ingest", "select"), f"{{hcplike: {raw}}}")
    with pytest.raises(
        ConfigError, match=rf"line \d+: {text} is read by YAML as the number"
    ) as info:
        load_config(path)
    assert str(path) in info.value.message and f"number {value} " in info.value.message
    assert f"Quote it ('{text}')" in info.value.hint
    quoted = write_config(
        tmp_path, ("ingest", "select"), f"{{hcplike: {raw}}}".replace(text, f"'{text}'")
    )
    assert load_config(quoted)["ingest"]["select"]["hcplike"]


def test_plain_integers_are_read_as_before(tmp_path: Path) -> None:
    path = write_config(tmp_path, ("evaluate", "seeds"), "[0, 7, -3, +12]")
    with pytest.raises(ConfigError, match=r"evaluate\.seeds\.2'.*-3"):  # a negative seed
        load_config(path)
    path = write_config(tmp_path, ("evaluate", "seeds"), "[0, 7, +12]")
    assert load_config(path)["evaluate"]["seeds"] == [0, 7, 12]
