"""``snakemake --list-rules`` and ``--list-target-rules`` say what each rule does.

Snakemake prints a rule's docstring beside its name; without one a user listing the targets
(``all``, ``participant``, ``pretrain``, ...) saw bare names and had to read the rule files.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers.envs import workflow_rules
from helpers.workflow import ROOT, snakemake

# `name (Description.)`: Snakemake's listing, one rule a line, the docstring in parentheses.
_LISTED = re.compile(r"^(\w+) \(([^()]+)\)$")


def _listing(workdir: Path, option: str) -> dict[str, str]:
    proc = snakemake(ROOT, workdir, option)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    bare = [line for line in lines if not _LISTED.match(line)]
    assert not bare, f"rules listed without a description: {bare}"
    return dict(_LISTED.match(line).groups() for line in lines)


def test_every_rule_is_listed_with_what_it_does(tmp_path: Path) -> None:
    listed = _listing(tmp_path, "--list-rules")
    # Every rule of the rule files, the Snakefile's targets and the rules made with `use rule`.
    assert set(workflow_rules()) | {"all", "participant", "pretrain_ssl"} <= set(listed)
    assert all(text.endswith(".") and len(text) <= 90 for text in listed.values()), listed
    assert "feature store" in listed["participant"] and "report" in listed["all"]

    targets = _listing(tmp_path, "--list-target-rules")
    assert {"all", "participant", "report"} <= set(targets)
    assert targets == {name: listed[name] for name in targets}
