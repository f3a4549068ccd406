"""What code each workflow verb runs: its ``lcm`` modules (hashed) and third-party imports.

Snakemake reruns a job when its rule's shell command or params change, but it does not see the
code of a package the command imports. Each rule therefore carries, as a param, the hash of the
``lcm`` modules its verb can execute: a code edit in one of them reruns exactly the rules whose
verb reaches it. What is hashed is the code that executes, each module's syntax tree without
its docstrings (:func:`executed_code`): an edit of comments, docstrings or formatting alone
reruns nothing, any other (a constant, an operator, a default, a type hint) does. The same
static walk over ``import`` statements lists the third-party packages a verb needs, which the
tests compare against the stage's conda env.

The walk is static (AST, no import), so it is fast at DAG-build time and sees imports inside
functions too. It follows ``lcm.<module>`` imports from the verb's command module, plus the
entry point (``lcm.cli``, ``lcm.__main__``) and the package ``__init__`` files on the way,
and the processing modules that ``lcm connectome dataset`` imports by name (:mod:`lcm.entries`);
the other verbs' command modules, which the entry point imports only to register their
options, are left out so that editing one verb never reruns another, and of the entry point's
verb table (``lcm.cli.VERBS``) only the verb's own entry is hashed, so that adding a verb
reruns no other.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import lcm

# This module is in every verb's code hash (lcm.cli imports it): a change of its code, even a
# faster walk with the same hashes, reruns every job of every workflow. The tripwire test
# (tests/unit/workflow/test_workflow_code_hash.py, SHARED_CODE) names the modules concerned.
log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(lcm.__file__).resolve().parent
_ENTRY = ("lcm", "lcm.__main__", "lcm.cli", "lcm.exceptions")


def module_file(module: str) -> Path | None:
    """Source file of ``lcm.<...>`` module ``module`` (a package's ``__init__.py``), or None.

    Parameters
    ----------
    module : str
        A dotted module name under ``lcm`` (``lcm.io.atomic``).

    Returns
    -------
    pathlib.Path or None
        The file under :data:`PACKAGE_ROOT`; None for a name that is no module of ``lcm`` (a
        class or function imported by ``from lcm.x import y``).
    """
    parts = module.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# An import statement as the walk needs it: (level, module, names), level -1 for ``import a.b``
# (names the dotted modules), else ``from <level dots><module> import <names>``.
_Import = tuple[int, str, tuple[str, ...]]


@cache
def _analysed(source: bytes) -> tuple[tuple[_Import, ...] | None, bytes]:
    """A module's import statements and the code that executes of it, from one parse.

    Cached by content: each module is parsed once however many verbs reach it (parsing twice,
    once for the imports and once for the hash, took half of every dry run's hashing). One
    walk over the tree (:func:`_dump`) both writes the code and collects the imports: a
    second walk for the imports (``ast.walk``) took a third of the hashing.

    Parameters
    ----------
    source : bytes
        A module's source file.

    Returns
    -------
    tuple
        The imports (None where the source does not parse) and :func:`executed_code`'s text.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):  # null bytes; nested beyond the parser
        return None, source
    imports: list[_Import] = []
    code = _dump(tree, imports).encode()
    return tuple(imports), code


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(lcm modules, third-party top-level names) imported anywhere in ``module``'s source."""
    path = module_file(module)
    if path is None:
        return frozenset(), frozenset()
    statements, _ = _analysed(path.read_bytes())
    if statements is None:
        # code_hash counts its bytes instead; Python reports the error when the job runs.
        log.warning("%s: cannot parse; its imports are not followed", path)
        return frozenset(), frozenset()
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    ours: set[str] = set()
    theirs: set[str] = set()
    for level, from_module, imported in statements:
        if level < 0:
            names = list(imported)
        else:
            if level:  # relative import: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - level + 1]
                prefix = ".".join(base + ([from_module] if from_module else []))
            else:
                prefix = from_module
            # `from lcm.x import y` may name a submodule y: keep both candidates.
            names = [prefix] + [f"{prefix}.{name}" for name in imported]
        for name in names:
            top = name.split(".")[0]
            if top == "lcm":
                if module_file(name) is not None:
                    ours.add(name)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                theirs.add(top)
    return frozenset(ours), frozenset(theirs)


def _parents(module: str) -> list[str]:
    """``lcm.a.b`` -> ``["lcm", "lcm.a"]``: packages whose ``__init__`` runs first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def verb_modules(verb: str) -> tuple[str, ...]:
    """Every ``lcm`` module that ``python -m lcm <verb>`` can execute, sorted.

    Parameters
    ----------
    verb : str
        A verb of :data:`lcm.cli.VERBS` (its module is ``lcm.commands.<verb>``).
    """
    start = f"lcm.commands.{verb}"
    if module_file(start) is None:
        raise ValueError(f"no lcm verb {verb!r}: {start} has no source file")
    seen: set[str] = set()
    todo = [start, *_ENTRY, *_dispatched(verb)]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        ours, _ = _imports(mod)
        for dep in [*ours, *_parents(mod)]:
            # The entry point imports every command module to register it: not this verb's code.
            if dep.startswith("lcm.commands.") and dep != start and not _is_shared_command(dep):
                continue
            if dep not in seen:
                todo.append(dep)
    return tuple(sorted(seen))


def _dispatched(verb: str) -> list[str]:
    """Modules a verb imports by name, not by ``import``: the entry table's processing."""
    if verb != "connectome":
        return []
    from lcm.entries import TABLE

    return [e.process.partition(":")[0] for e in TABLE.values() if e.process]


def _is_shared_command(module: str) -> bool:
    """Helper modules of the command layer (``lcm.commands._arguments``) belong to every verb."""
    return module.rsplit(".", 1)[-1].startswith("_")


def executed_code(source: bytes) -> bytes:
    """What of a module's source executes: its syntax tree without docstrings, as text.

    Comments, blank lines, line breaks, quotes and docstrings (the first string of a module,
    class or function; LCM reads none at run time for a result) leave it unchanged; any other
    edit changes it. Cached by content (:func:`_analysed`).

    Parameters
    ----------
    source : bytes
        A module's source file.

    Returns
    -------
    bytes
        The tree as text; ``source`` itself where it does not parse, or nests deeper than the
        parser goes (Python reports the error when the job runs), so that any edit of it
        still counts.
    """
    return _analysed(source)[1]


# Nodes whose body's first statement, when a string, is a docstring (dropped from the code).
_SCOPES = frozenset({ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef})


def _is_docstring(statement: ast.AST) -> bool:
    """Whether ``statement`` (the first of a body) is a string expression: a docstring."""
    return (
        type(statement) is ast.Expr
        and type(statement.value) is ast.Constant
        and type(statement.value.value) is str
    )


def _dump(root: ast.AST, imports: list[_Import] | None = None) -> str:
    """``ast.dump`` without positions, empty fields, None or docstrings: the same text from
    every Python that parses the code to the same tree (``ast.dump`` omits empty fields only
    since 3.13, and 3.12 added empty ``type_params`` to every function). A body that was its
    docstring alone is an empty body, omitted as any empty field. The import statements met
    on the way are appended to ``imports`` (as :data:`_Import`).

    Written with a stack, not recursion: a chain of a thousand ``+`` nests a thousand deep,
    which Python compiles but a recursive walk cannot follow within the recursion limit. It
    runs once per node of every module each ``snakemake`` call hashes (300,000 of them), so
    text is written as soon as it is known and only nodes and lists wait on the stack; the
    tree is read, never changed."""
    parts: list[str] = []
    emit = parts.append
    # Items: text to write as is (str), or a node or list still to write. Any other value (a
    # name, a constant) is written as its repr when met, never pushed: 1, 1.0 and True differ.
    todo: list[str | ast.AST | list[object]] = [root]
    push = todo.append
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is str:
            emit(item)
            continue
        if kind is list:
            emit("[")
            push("]")
            for k in range(len(item) - 1, -1, -1):
                element = item[k]
                push(element if isinstance(element, ast.AST) else repr(element))
                if k:
                    push(",")
            continue
        if imports is not None and kind is ast.Import:
            imports.append((-1, "", tuple(alias.name for alias in item.names)))
        elif imports is not None and kind is ast.ImportFrom:
            names = tuple(alias.name for alias in item.names)
            imports.append((item.level, item.module or "", names))
        # The text up to the first node or list to write, then the rest in order.
        head = [kind.__name__, "("]
        rest: list[str | ast.AST | list[object]] = []
        sep = ""
        for name in kind._fields:
            value = getattr(item, name, None)
            if value is None:
                continue
            if type(value) is list:
                if name == "body" and value and kind in _SCOPES and _is_docstring(value[0]):
                    value = value[1:]
                if not value:
                    continue
            elif not isinstance(value, ast.AST):
                (rest if rest else head).append(f"{sep}{name}={value!r}")
                sep = ","
                continue
            elif not type(value)._fields:
                # A node without fields (Load(), Add()), a third of all: written at once.
                (rest if rest else head).append(f"{sep}{name}={type(value).__name__}()")
                sep = ","
                continue
            (rest if rest else head).append(f"{sep}{name}=")
            rest.append(value)
            sep = ","
        emit("".join(head))
        push(")")
        todo.extend(reversed(rest))
    return "".join(parts)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off for the walk (back to how it was after).

    The walk's trees hold no reference cycle (their count alone frees them), yet their
    300,000 nodes set the collector off again and again, and a full collection walks every
    object of the Snakemake process: a third of the hashing in a dry run (0.75 s of 2.1)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@cache
def code_hash(verb: str) -> str:
    """sha256 over the code that executes of every ``lcm`` module of ``verb`` (sorted by path).

    Used as a rule param: a code edit changes the param, so Snakemake reruns the rule; an edit
    of comments, docstrings or formatting alone does not (:func:`executed_code`).

    Parameters
    ----------
    verb : str
        A verb of :data:`lcm.cli.VERBS`, as its module is named (``bei_maps``).

    Returns
    -------
    str
        The hex digest.

    Raises
    ------
    ValueError
        When ``verb`` has no module ``lcm.commands.<verb>`` (:func:`verb_modules`).
    """
    digest = hashlib.sha256()
    with _no_cycle_collection():
        for mod in verb_modules(verb):
            path = module_file(mod)
            if path is None:
                continue
            source = path.read_bytes()
            code = _entry_code(source, verb) if mod == "lcm.cli" else executed_code(source)
            digest.update(str(path.relative_to(PACKAGE_ROOT)).encode() + b"\0")
            digest.update(code + b"\0")
    return digest.hexdigest()


def _entry_code(source: bytes, verb: str) -> bytes:
    """The code that executes of the entry point as ``verb`` runs it: its verb table
    (``VERBS``) cut to ``verb`` alone.

    Each job runs one verb, and the table's other entries (which verbs exist, in what order
    ``lcm --help`` lists them) change nothing it computes: without this cut, adding a verb
    reran every job of every workflow. Whether the job's own verb is listed still counts.
    :func:`executed_code` of the whole source where it does not parse or holds no such table.

    Parameters
    ----------
    source : bytes
        The entry point's source (``lcm/cli.py``).
    verb : str
        A verb of :data:`lcm.cli.VERBS`, as its module is named.

    Returns
    -------
    bytes
        The text :func:`executed_code` gives for the source with the table cut.
    """
    entry = _entry_table(source)
    if entry is None:
        return executed_code(source)
    tree, index = entry
    table = tree.body[index]
    listed = any(isinstance(e, ast.Constant) and e.value == verb for e in table.value.elts)
    # A new module sharing every other statement with the cached tree, which stays as parsed.
    cut = ast.Assign(
        targets=table.targets,
        value=ast.Tuple(elts=[ast.Constant(verb)] if listed else [], ctx=table.value.ctx),
        type_comment=table.type_comment,
    )
    body = [*tree.body[:index], cut, *tree.body[index + 1 :]]
    return _dump(ast.Module(body=body, type_ignores=tree.type_ignores)).encode()


@cache
def _entry_table(source: bytes) -> tuple[ast.Module, int] | None:
    """The entry point's tree and the index of its ``VERBS = (...)`` statement, or None.

    Cached by content, so that the entry point is parsed once for every verb (it was parsed,
    written out and parsed again per verb)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    for index, node in enumerate(tree.body):
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["VERBS"]
            and isinstance(node.value, ast.Tuple)
        ):
            return tree, index
    return None


def third_party_imports(verb: str) -> set[str]:
    """Top-level names of non-stdlib, non-lcm modules that ``verb``'s code imports.

    Parameters
    ----------
    verb : str
        A verb of :data:`lcm.cli.VERBS`, as its module is named.

    Returns
    -------
    set of str
        The names (``numpy``, ``torch``), as imported, not as the distributions are named.

    Raises
    ------
    ValueError
        When ``verb`` has no module ``lcm.commands.<verb>`` (:func:`verb_modules`).
    """
    found: set[str] = set()
    for mod in verb_modules(verb):
        found |= _imports(mod)[1]
    return found
