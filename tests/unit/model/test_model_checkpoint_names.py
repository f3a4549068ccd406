"""A checkpoint's file names are spelled once (lcm.model.checkpoint_meta, lcm.train.outputs):
renaming one must not leave a rule, a verb or a reader looking for the old name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import lcm

PACKAGE = Path(lcm.__file__).parent
RULES = PACKAGE.parent / "workflow" / "rules"
NAMES = {"model.json", "model.safetensors", "history.tsv", "bei_eval.tsv"}
OWNERS = {PACKAGE / "model" / "checkpoint_meta.py", PACKAGE / "train" / "outputs.py"}


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants equal to one of NAMES (docstrings and messages only mention them)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in NAMES
    ]


def test_no_module_but_the_owners_spells_a_checkpoint_file_name() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in OWNERS
        for line, name in _literals(path)
    ]
    assert found == []


def test_no_rule_spells_a_checkpoint_file_name() -> None:
    pattern = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in NAMES))
    found = [
        f"{path.name}:{number}"
        for path in sorted(RULES.glob("*.smk"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
