"""One contract, one owner: a hint builder (a public ``*_fix`` or ``*_hint`` function) is
defined in one module of ``lcm``, so that its wording cannot drift between two copies."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import lcm

PACKAGE = Path(lcm.__file__).parent


def _hint_builders() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.FunctionDef)
                and not node.name.startswith("_")
                and node.name.endswith(("_fix", "_hint"))
            ):
                found[node.name].append(str(path.relative_to(PACKAGE)))
    return found


def test_hint_builders_found():
    # The scan reads the package: the atlas's native-space hint is one of them.
    assert "native_space_fix" in _hint_builders()


def test_each_hint_builder_has_one_module():
    twice = {name: where for name, where in _hint_builders().items() if len(where) > 1}
    assert twice == {}
