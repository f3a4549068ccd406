"""The SLURM profile against the workflow's rules and the executor plugin it is written for.

A rule the profile does not list runs with ``default-resources`` (60 minutes, 4000 MB), which
nobody chose for it; a ``--slurm-*`` option the installed plugin does not define (or defines and
ignores) does nothing the README says it does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers.workflow import ROOT
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    OutputSettings,
    ResourceSettings,
    StorageSettings,
)

slurm = pytest.importorskip("snakemake_executor_plugin_slurm")

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
# Where the project tells users (or its own SLURM test) which plugin options to pass.
USES_PLUGIN_OPTIONS = (
    "README.md",
    "profiles/slurm/config.yaml",
    "tests/workflow/test_workflow_slurm.py",
)


def _rules(workdir: Path) -> tuple[list, set[str]]:
    """The workflow's rules as Snakemake loads them (``use rule`` included), and the names of
    those it runs on the submit host: ``localrules`` and rules with nothing to run (``all``)."""
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=workdir,
        )._workflow
        rules = list(workflow.rules)
        # Workflow.is_local's test, less the local executor's "everything is local".
        local = {r.name for r in rules if r.name in workflow._localrules or r.norun}
    return rules, local


def test_every_rule_submitted_as_a_job_has_its_resources_in_the_slurm_profile(
    tmp_path: Path,
) -> None:
    rules, local = _rules(tmp_path)
    assert {"report", "connectome_collect", "all"} <= local  # the walk sees localrules
    submitted = {r.name: r for r in rules if r.name not in local}
    assert {"synth_voxel_subject", "fmriprep", "pretrain_ssl"} <= set(submitted)
    profile = yaml.safe_load(PROFILE.read_text())["set-resources"]
    missing = sorted(set(submitted) - set(profile))
    assert missing == [], f"rules submitted with default-resources (profiles/slurm): {missing}"
    assert sorted(set(profile) - set(submitted)) == [], "set-resources of no submitted rule"
    # Each job's runtime and memory are chosen for it, by the profile or by its rule.
    unset = sorted(
        (name, key)
        for name, rule in submitted.items()
        for key in ("runtime", "mem_mb")
        if key not in profile[name] and key not in rule.resources.keys()
    )
    assert unset == [], f"(rule, resource) left to default-resources: {unset}"


def _plugin_flags() -> set[str]:
    """The ``--slurm-*`` options of the installed plugin, from its own settings class (Snakemake
    names each ``--slurm-`` + the field, underscores as dashes)."""
    fields = dataclasses.fields(slurm.ExecutorSettings)
    return {"--slurm-" + f.name.replace("_", "-") for f in fields}


def test_every_slurm_option_the_project_names_is_one_the_plugin_defines() -> None:
    flags = _plugin_flags()
    assert "--slurm-status-command" in flags  # the class read is the plugin's option list
    for doc in USES_PLUGIN_OPTIONS:
        named = set(re.findall(r"--slurm-[a-z-]*[a-z]", (ROOT / doc).read_text()))
        assert named, doc
        assert sorted(named - flags) == [], f"{doc} names options the plugin lacks"
    # A profile sets an option by its name without the dashes.
    keys = {f"--{k}" for k in yaml.safe_load(PROFILE.read_text()) if k.startswith("slurm-")}
    assert sorted(keys - flags) == [], "profiles/slurm sets options the plugin lacks"


def _fake_slurm_tools(folder: Path, accounts: str | None) -> None:
    """``sacct`` and ``sacctmgr`` of a cluster whose accounting knows ``accounts`` (None: no
    accounting database, as the test cluster of .ci/slurm_up.sh)."""
    folder.mkdir()
    for tool in ("sacct", "sacctmgr"):
        script = folder / tool
        if accounts is None:
            body = "echo 'Slurm accounting storage is disabled' >&2\nexit 1"
        else:
            body = f"echo {accounts}"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)


def _account_arg(no_account: bool) -> str:
    """The account option the plugin puts on sbatch's command line for a job of the profile's
    default resources (``slurm_account: ""``), given ``--slurm-no-account`` or not."""
    default = yaml.safe_load(PROFILE.read_text())["default-resources"]
    executor = SimpleNamespace(
        _fallback_account_arg=None,
        logger=logging.getLogger("slurm-plugin"),
        workflow=SimpleNamespace(executor_settings=slurm.ExecutorSettings(no_account=no_account)),
    )
    job = SimpleNamespace(resources=SimpleNamespace(get=default.get, **default))
    return next(slurm.Executor.get_account_arg(executor, job))


@pytest.mark.parametrize("accounting", [None, "mylab"])
def test_no_account_is_an_empty_slurm_account_not_the_ignored_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accounting: str | None
) -> None:
    """README, "On a SLURM cluster": plugin 2.8 defines --slurm-no-account but never reads it.
    What it honours is the slurm_account resource: empty (the profile's default), it guesses
    one with sacct and submits without -A when there is none. Where accounting knows one, -A
    is passed with or without the flag: when this fails, the plugin honours the flag again and
    the README should say so."""
    assert "--slurm-no-account" in _plugin_flags()
    _fake_slurm_tools(tmp_path / "bin", accounting)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    expected = "" if accounting is None else f" -A {accounting}"
    assert _account_arg(no_account=True) == _account_arg(no_account=False) == expected
