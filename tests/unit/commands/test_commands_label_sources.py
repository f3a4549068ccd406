"""A bad label is refused naming what its user typed: the verb's option on the command line,
the config's key when a workflow rule (``lcm --rule``) ran the verb from the config.

``check_label_arguments`` named ``--dataset`` to a workflow user, who wrote a key under
``datasets``, and did not check ``--datasets`` (lcm splits, pretrain, bei-maps, embed) at all:
``lcm splits --datasets ../x`` read ``dataset=../x`` of the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lcm.bids.dataset import CONFIG_KEYS
from lcm.cli import build_parser, main
from lcm.commands._labels import LABEL_OPTIONS, RULE_SOURCES

BAD = "../x"
STORE = ["--store", "s", "--atlas", "aal116"]
FMRIPREP = ["--bids", "raw", "--task", "rest", "--runner", "existing", "--image", "img"]
FMRIPREP += ["--output-space", "MNI", "--derivatives", "d", "--work-dir", "w", "--out", "o.json"]
CONNECTOME = ["--entry", "connectome", "--manifest", "m", "--atlas", "aal116", "--out-dir", "o"]
CONNECTOME += ["--qc-table", "q"]
CALLS = {
    "connectome_dataset": (["connectome", "dataset", "--dataset", BAD, *CONNECTOME], "--dataset"),
    "splits": (["splits", *STORE, "--datasets", "ok", BAD, "--out", "o.parquet"], "--datasets"),
    "fmriprep_subject": (["fmriprep", "--dataset", "ds", "--subject", BAD, *FMRIPREP], "--subject"),
    "synth_consortium": (["synth", "--config-json", "{}", "--consortium", BAD], "--consortium"),
}
RULE_SAID = {
    "connectome_dataset": "datasets",
    "splits": "datasets",
    "fmriprep_subject": "ingest.select.ds.participants.include",
    "synth_consortium": "synth.consortia",
}


@pytest.mark.parametrize("rule", [False, True], ids=["command_line", "rule"])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_bad_label_names_the_setting_given(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    call: str,
    rule: bool,
) -> None:
    argv, option = CALLS[call]
    said = RULE_SAID[call] if rule else option
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main([*(["--rule", "r"] if rule else []), *argv])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"label {BAD!r} in {said}:" in err, err
    assert not list(tmp_path.iterdir())  # refused before anything was read or written


def _label_dests(parser: argparse.ArgumentParser) -> set[str]:
    """The dests of every option of every verb (and sub-verb) that names a dataset, subject
    or consortium."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _label_dests(sub)
        elif action.dest in ("dataset", "datasets", "subject", "consortium"):
            found.add(action.dest)
    return found


def test_every_verbs_label_option_is_checked() -> None:
    assert _label_dests(build_parser()) == set(LABEL_OPTIONS)


def test_the_rules_sources_are_the_config_keys_of_lcm_bids_dataset() -> None:
    assert {k: v for k, v in RULE_SOURCES.items() if k != "consortium"} == {
        "dataset": CONFIG_KEYS["dataset"],
        "datasets": CONFIG_KEYS["dataset"],
        "subject": CONFIG_KEYS["subject"],
    }
