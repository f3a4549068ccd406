"""The workflow's rules and stage envs as data, read statically (no Snakemake run).

Used by the env checks (tests/workflow/test_workflow_envs.py) and by the extension guide's
test (tests/unit/docs/test_docs_extending.py), which finds the envs that load atlases.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from helpers import ROOT

RULES = ROOT / "workflow" / "rules"
_RULE_RE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.M | re.S)


def workflow_rules() -> dict[str, dict[str, str | None]]:
    """Rule -> env (envs/<x>.yaml path), verb, code (its hash param), ``--rule`` name."""
    found = {}
    for smk in sorted(RULES.glob("*.smk")):
        for name, body in _RULE_RE.findall(smk.read_text()):
            conda = re.search(r'conda:\s*\n\s*"([^"]+)"', body)
            # Whatever runs the interpreter, and however the log path is quoted.
            verb = re.search(
                r"(?:-m lcm|\{params\.launcher\}) --log-file \S+ --rule (\S+) ([\w-]+)", body
            )
            named = re.search(r'^\s+rule="(\w+)",', body, re.M)  # --rule {params.rule:q}
            code = re.search(r'code=code_hash\("(\w+)"\)', body)
            found[name] = {
                "env": str((smk.parent / conda.group(1)).resolve()) if conda else None,
                # As its module is named: `bei-maps` is lcm.commands.bei_maps.
                "verb": verb.group(2).replace("-", "_") if verb else None,
                "rule": (named.group(1) if named else verb.group(1)) if verb else None,
                "code": code.group(1) if code else None,
            }
    return found


def env_packages(path: str) -> dict[str, str | None]:
    """Package -> pinned version (None if unpinned) of a conda env file, pip section included."""
    deps = yaml.safe_load(Path(path).read_text())["dependencies"]
    specs: list[str] = []
    for dep in deps:
        specs += dep["pip"] if isinstance(dep, dict) else [dep]
    packages = {}
    for spec in specs:
        name, _, version = re.split(r"(==|=)", spec, maxsplit=1) if "=" in spec else (spec, "", "")
        packages[name.strip().lower()] = version.strip() or None
    return packages
