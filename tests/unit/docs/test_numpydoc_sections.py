"""Public functions document their arguments in a numpydoc Parameters section (see PACKAGES).

A ratchet (STYLE.md: "numpydoc with shared parameter text"): every public function or method with
arguments in ``PACKAGES`` has a ``Parameters`` section that names each of its arguments, and names
no argument it does not take, so a renamed or removed argument fails here. Nested functions
(closures) and ``_private``/``__dunder__`` names are exempt.
"""

from __future__ import annotations

import ast
import re

from helpers import ROOT

from lcm.docstrings import fill

PACKAGES = (
    "lcm/bids",
    "lcm/preprocess",
    "lcm/atlas",
    "lcm/connectome",
    "lcm/io",
    "lcm/report",
    "lcm/commands",
    "lcm/workflow",
    "lcm/*.py",
    "lcm/evaluate",
    "lcm/synth",
    "lcm/train",
    "lcm/store",
    "lcm/model",
)

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _public_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level functions and methods of (nested) classes; not functions inside functions."""
    found = []
    todo: list[ast.AST] = [tree]
    while todo:
        for child in ast.iter_child_nodes(todo.pop()):
            if isinstance(child, _FUNCTIONS):
                # not descended into: the functions in its body are closures, exempt
                if not child.name.startswith("_"):
                    found.append(child)
            else:
                todo.append(child)
    return found


def _arguments(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    # A method's instance or class, never a later argument of that name (``cls``: a class label).
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def _documented(docstring: str) -> set[str] | None:
    """The names a numpydoc ``Parameters`` section lists, or None without one."""
    lines = docstring.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]):
            indent = len(line) - len(line.lstrip())
            body = lines[i + 2 :]
            break
    else:
        return None
    names: set[str] = set()
    for j, line in enumerate(body):
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) != indent:
            continue  # a description line
        if j + 1 < len(body) and re.fullmatch(r"\s*-{3,}\s*", body[j + 1]):
            break  # the next section's title
        head = line.split(" : ", 1)[0].strip()
        names.update(n.strip().lstrip("*") for n in head.split(","))
    return names


def _problems() -> list[str]:
    problems = []
    for package in PACKAGES:
        # a folder and every module under it, or a pattern: "lcm/*.py", the modules directly in lcm/
        found = ROOT.glob(package) if package.endswith(".py") else (ROOT / package).rglob("*.py")
        for path in sorted(found):
            where = path.relative_to(ROOT)
            for node in _public_functions(ast.parse(path.read_text())):
                arguments = _arguments(node)
                if not arguments:
                    continue
                # Shared parameter text (lcm.docstrings) counts as written.
                documented = _documented(fill(ast.get_docstring(node) or ""))
                name = f"{where}:{node.lineno} {node.name}"
                if documented is None:
                    problems.append(f"{name}: no Parameters section")
                    continue
                missing = [a for a in arguments if a not in documented]
                extra = sorted(documented - set(arguments))
                if missing:
                    problems.append(f"{name}: Parameters does not list {', '.join(missing)}")
                if extra:
                    problems.append(f"{name}: Parameters lists {', '.join(extra)}, not arguments")
    return problems


def test_public_functions_document_every_argument() -> None:
    problems = _problems()
    assert not problems, f"{len(problems)} docstrings to fix:\n" + "\n".join(problems)


def test_the_checker_sees_a_missing_a_renamed_and_a_stale_argument() -> None:
    doc = """Summary.

    Parameters
    ----------
    root : path-like
        The folder.
    entities, suffix
        The file's entities and suffix.
    *args
        Passed on.

    Returns
    -------
    out : dict
        Not a parameter.
    """
    assert _documented(ast.get_docstring(ast.parse(f'def f():\n    """{doc}"""\n').body[0])) == {
        "root",
        "entities",
        "suffix",
        "args",
    }
    assert _documented("Summary only.") is None
    tree = ast.parse(
        "def top(a):\n    def inner(b):\n        pass\n"
        "class C:\n    def m(self, x):\n        pass\n    def _p(self, y):\n        pass\n"
    )
    assert sorted(n.name for n in _public_functions(tree)) == ["m", "top"]


def test_the_checker_exempts_self_and_cls_only_as_a_method_s_first_argument() -> None:
    tree = ast.parse(
        "def precision(predicted, y, cls):\n    pass\n"
        "class C:\n    def m(self, x):\n        pass\n"
        "    @classmethod\n    def of(cls, names):\n        pass\n"
    )
    found = {n.name: _arguments(n) for n in _public_functions(tree)}
    assert found == {"precision": ["predicted", "y", "cls"], "m": ["x"], "of": ["names"]}


def test_every_package_is_covered() -> None:
    """A new package of lcm/ is named in PACKAGES (the ratchet covers all of lcm/ now)."""
    packages = {
        str(p.parent.relative_to(ROOT))
        for p in (ROOT / "lcm").glob("*/__init__.py")
        if p.parent.name != "workflow_files"
    }
    assert packages - set(PACKAGES) == set()
