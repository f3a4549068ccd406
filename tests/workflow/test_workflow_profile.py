"""The SLURM profile against the workflow's rules: a rule the profile does not list runs with
``default-resources`` (60 minutes, 4000 MB), which nobody chose for it."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers.workflow import ROOT
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    OutputSettings,
    ResourceSettings,
    StorageSettings,
)

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"


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
