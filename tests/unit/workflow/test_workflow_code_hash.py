"""A verb's code hash (lcm.workflow.hash.code_hash) follows the code that executes, not its text.

Comments, docstrings and formatting change no result, so editing them must not rerun a user's
jobs; a changed constant, operator or default does, so it must. Each case edits a copy of the
package, as a user's checkout would be edited, and compares the hashes before and after.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lcm
import lcm.cli
import lcm.workflow.hash as wh

# Appended to lcm/connectome/denoise.py (the connectome verb's code, not the store verb's).
PROBE = '''

def _probe(x, scale=2):
    """Scale ``x``."""
    return x * scale + 3


class _Probe:
    """Fields."""

    size: int = 1
    label = f"{_probe!r:>4}"
'''


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of ``lcm/`` with :data:`PROBE` appended to ``connectome/denoise.py``, hashed."""
    root = tmp_path / "lcm"
    shutil.copytree(Path(lcm.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    module = root / "connectome" / "denoise.py"
    module.write_text(module.read_text() + PROBE)
    monkeypatch.setattr(wh, "PACKAGE_ROOT", root)
    _clear()
    yield module
    monkeypatch.undo()
    _clear()  # no cached walk over the copy outlives the test


def _clear() -> None:
    for cached in (wh._imports, wh.verb_modules, wh.code_hash):
        cached.cache_clear()


def _hashes() -> dict[str, str]:
    _clear()
    return {verb: wh.code_hash(verb) for verb in ("connectome", "store")}


def _edit(module: Path, change: Callable[[str], str]) -> dict[str, str]:
    """Hashes of both verbs after ``change`` rewrote ``module``'s source."""
    before = module.read_text()
    after = change(before)
    assert after != before, "the edit changed nothing"
    module.write_text(after)
    return _hashes()


RETURN = "    return x * scale + 3"
# What -> (text of the probe, or of the file, replaced; its replacement).
NEUTRAL = {
    "a comment": (RETURN, f"    # why\n{RETURN}"),
    "a function's docstring": ('"""Scale ``x``."""', '"""Scale x, then shift."""'),
    "a docstring removed": ('    """Scale ``x``."""\n', ""),
    "the module docstring": ('"""Scrubbing', '"""Edited. Scrubbing'),
    "spacing": ("x * scale + 3", "(x*scale)  +  3"),
    "blank lines": ("\ndef _probe", "\n\n\n\ndef _probe"),
}
CODE = {
    "a constant": ("x * scale + 3", "x * scale + 4"),
    "an operator": ("x * scale + 3", "x * scale - 3"),
    "a default": ("scale=2", "scale=3"),
    "a float for an int": ("scale=2", "scale=2.0"),
    "a string that is no docstring": (RETURN, f"    'shown'\n    x = x\n{RETURN}"),
    "True for 1": ("size: int = 1", "size: int = True"),
    "a field's annotation (a dataclass's type)": ("size: int = 1", "size: float = 1"),
    "a decorator": ("class _Probe:", "@dataclass\nclass _Probe:"),
    "an f-string's conversion": ("!r:>4", "!s:>4"),
    "an f-string's format": ("!r:>4", "!r:>5"),
}


def _replace(old: str, new: str) -> Callable[[str], str]:
    return lambda source: source.replace(old, new)


@pytest.mark.parametrize("what", NEUTRAL)
def test_an_edit_that_changes_no_code_keeps_every_hash(package: Path, what: str) -> None:
    before = _hashes()
    assert _edit(package, _replace(*NEUTRAL[what])) == before, f"{what} reran the connectome jobs"


def test_the_whole_file_reformatted_keeps_every_hash(package: Path) -> None:
    # Written out again by ast.unparse: other quotes and line breaks, no comments.
    before = _hashes()
    assert _edit(package, lambda source: ast.unparse(ast.parse(source)) + "\n") == before


@pytest.mark.parametrize("what", CODE)
def test_a_code_edit_changes_the_hash_of_the_verbs_that_run_it(package: Path, what: str) -> None:
    before = _hashes()
    after = _edit(package, _replace(*CODE[what]))
    assert after["connectome"] != before["connectome"], f"{what} did not rerun the connectome jobs"
    assert after["store"] == before["store"]  # the store verb does not import denoise


def test_a_file_that_does_not_parse_is_hashed_by_its_bytes(package: Path) -> None:
    package.write_text(package.read_text() + "\ndef broken(:\n")
    before = _hashes()
    assert _edit(package, lambda s: s + "# comment\n") != before


def test_a_deeply_nested_expression_is_hashed_as_code(package: Path) -> None:
    """A chain of 1000 additions parses and compiles, and nests 1000 deep: hashing it must
    not exceed Python's recursion limit (it raised RecursionError, failing the DAG's build)."""
    package.write_text(package.read_text() + "\n_DEEP = " + " + ".join(["1"] * 1000) + "\n")
    compile(package.read_text(), str(package), "exec")  # Python runs it
    before = _hashes()
    assert _edit(package, lambda s: s.replace("\n_DEEP = ", "\n# why\n_DEEP = ")) == before
    after = _edit(package, lambda s: s.rstrip("\n")[:-1] + "2\n")  # the last term
    assert after["connectome"] != before["connectome"]


def test_a_file_nested_beyond_the_parser_is_hashed_by_its_bytes() -> None:
    """Deeper than ``ast.parse`` goes (it raises RecursionError; Python cannot compile it
    either): hashed by its bytes, as a file that does not parse."""
    source = ("x = " + " + ".join(["1"] * 100_000) + "\n").encode()
    assert wh.executed_code(source) == source


@pytest.fixture
def entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of ``lcm/`` to edit the entry point of: ``cli.py``."""
    root = tmp_path / "lcm"
    shutil.copytree(Path(lcm.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(wh, "PACKAGE_ROOT", root)
    _clear()
    yield root / "cli.py"
    monkeypatch.undo()
    _clear()


def test_a_verb_added_to_the_entry_table_reruns_no_other_verb(entry: Path) -> None:
    """The verb table (``lcm.cli.VERBS``) lists every verb; each job runs one. Adding a verb
    (or reordering the table, which orders ``lcm --help``) changed ``cli.py`` and so reran every
    job of every workflow; only whether the job's own verb is listed is its code."""
    (entry.parent / "commands" / "audit.py").write_text(
        (entry.parent / "commands" / "report.py").read_text()
    )
    before = _hashes()
    added = _edit(entry, _replace('    "prune_states",\n', '    "prune_states",\n    "audit",\n'))
    assert added == before, "adding a verb reran the connectome and store jobs"
    assert _edit(entry, _replace('    "synth",\n', "")) == before, "removing another verb did"
    first = 'VERBS = (\n    "store",\n'
    moved = _replace('    "store",\n', "")
    reordered = _edit(entry, lambda s: moved(s).replace("VERBS = (\n", first))
    assert reordered == before, "reordering the table did"
    # Any other edit of the entry point is code of every verb.
    changed = _edit(entry, _replace("module in VERBS else None", "module in VERBS else ''"))
    assert changed["connectome"] != before["connectome"] and changed["store"] != before["store"]


def test_a_verb_removed_from_the_entry_table_changes_its_own_hash(entry: Path) -> None:
    before = _hashes()
    after = _edit(entry, _replace('    "store",\n', ""))
    assert after["store"] != before["store"]  # `lcm store` no longer runs
    assert after["connectome"] == before["connectome"]


def test_the_hashed_text_of_the_code_is_held_as_it_is() -> None:
    """Every workflow's params hold hashes of this text: a change of its form (a faster walk,
    another dump) would rerun every job of every user's workflow, fMRIPrep's included, with no
    code changed. Its form is therefore pinned: docstrings dropped at every level, no
    positions, no empty fields or None, constants by their repr (1 and 1.0 differ)."""
    source = (
        b'"""Module."""\nimport os\n\n\nclass A:\n    "doc"\n\n'
        b'    def f(self, x: int = 1) -> int:\n        """Doc."""\n        return x + 1.0\n'
    )
    assert wh.executed_code(source) == (
        b"Module(body=[Import(names=[alias(name='os')]),ClassDef(name='A',body=[FunctionDef("
        b"name='f',args=arguments(args=[arg(arg='self'),arg(arg='x',annotation=Name(id='int',"
        b"ctx=Load()))],defaults=[Constant(value=1)]),body=[Return(value=BinOp(left=Name("
        b"id='x',ctx=Load()),op=Add(),right=Constant(value=1.0)))],returns=Name(id='int',"
        b"ctx=Load()))])])"
    )
    # A body that is its docstring alone is an empty body, not omitted code.
    assert wh.executed_code(b'def f():\n    "only"\n') == (
        b"Module(body=[FunctionDef(name='f',args=arguments())])"
    )


# The code every verb runs (the entry point, its helpers, the provenance writer, this hash), as
# it is: see the test below before changing it. lcm.commands._path_text joined it
# (every verb's file options refuse an empty path), when every verb's own code changed too.
SHARED_CODE = "35ee53bf51e05ce5d96e1bc6bc78c50d7759ecfd25cc58f43f4554fd4daf605b"


def test_the_code_every_verb_runs_is_changed_only_on_purpose() -> None:
    """A tripwire. The modules below are in every verb's code hash (``lcm.cli`` imports them,
    this hash among them): an edit of their code, even a faster one with the same results,
    reruns every job of every user's workflow, fMRIPrep and pretraining included. When that
    is meant (a fix every output needs), set SHARED_CODE to the digest below and say so in the
    change's note; when it is not, keep the edit out of these modules."""
    shared = sorted(set.intersection(*(set(wh.verb_modules(v)) for v in lcm.cli.VERBS)))
    assert {"lcm.cli", "lcm.io.provenance", "lcm.workflow.hash"} <= set(shared)
    digest = hashlib.sha256()
    for module in shared:
        path = wh.module_file(module)
        source = path.read_bytes()
        # The entry point as a job runs it: the verb table cut to one verb.
        code = wh._entry_code(source, "synth") if module == "lcm.cli" else wh.executed_code(source)
        digest.update(str(path.relative_to(wh.PACKAGE_ROOT)).encode() + b"\0")
        digest.update(code + b"\0")
    assert digest.hexdigest() == SHARED_CODE, (
        f"the code of {shared} changed: every job of every workflow reruns "
        f"(new digest {digest.hexdigest()})"
    )


def test_every_module_is_parsed_once_for_all_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each module was parsed twice, once for its imports and once for its hash: half of the
    hashing every dry run does, paid on every ``snakemake`` call. Once each now, and the entry
    point once more for all verbs (its table cut to each verb; it was parsed, written out and
    parsed again per verb), with the same module lists and hashes."""
    _clear()
    wh._analysed.cache_clear()
    wh._entry_table.cache_clear()
    expected = {verb: (wh.verb_modules(verb), wh.code_hash(verb)) for verb in lcm.cli.VERBS}
    _clear()
    wh._analysed.cache_clear()
    wh._entry_table.cache_clear()
    parsed: list[int] = []
    real_parse = ast.parse

    def counted(source, *args, **kwargs):
        parsed.append(1)
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(wh.ast, "parse", counted)
    got = {verb: (wh.verb_modules(verb), wh.code_hash(verb)) for verb in lcm.cli.VERBS}
    assert got == expected
    modules = set().union(*(mods for mods, _ in got.values()))
    sources = {wh.module_file(module).read_bytes() for module in modules}
    # Each distinct source once; the entry point once more, its tree then cut to each verb.
    assert len(parsed) == len(sources) + 1


@pytest.mark.parametrize("collecting", [True, False])
def test_the_walk_leaves_the_cycle_collector_as_it_was(collecting: bool) -> None:
    """The walk turns Python's cycle collector off (a third of a dry run's hashing); it must
    turn it back on after, an unknown verb's error included, and leave it off when it was."""
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        _clear()
        assert len(wh.code_hash("store")) == 64
        assert gc.isenabled() is collecting
        with pytest.raises(ValueError, match="no lcm verb 'nope'"):
            wh.code_hash("nope")
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
