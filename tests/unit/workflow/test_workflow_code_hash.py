"""A verb's code hash (lcm.workflow.hash.code_hash) follows the code that executes, not its text.

Comments, docstrings and formatting change no result, so editing them must not rerun a user's
jobs; a changed constant, operator or default does, so it must. Each case edits a copy of the
package, as a user's checkout would be edited, and compares the hashes before and after.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lcm
import lcm.workflow.hash as wh

# Appended to lcm/connectome/denoise.py (the connectome verb's code, not the store verb's).
PROBE = '''

def _probe(x, scale=2):
    """Scale ``x``."""
    return x * scale + 3
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
