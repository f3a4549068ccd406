"""README.md's list of exit codes names every class of lcm/exceptions.py with its own code.

DESIGN §2: exit codes map an ``lcm.exceptions`` hierarchy; a script or a scheduler that reacts to
them reads the codes in README.md, so a class added or renumbered there must be listed here too.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import lcm.exceptions as exceptions
from lcm.exceptions import LCMError

README = Path(__file__).parents[3] / "README.md"


def _exit_code_paragraph() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("Exit codes of `lcm`")
    return text[start : text.index("\n\n", start)]


def _classes_with_own_code() -> dict[str, int]:
    return {
        name: cls.exit_code
        for name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, LCMError) and cls is not LCMError and "exit_code" in vars(cls)
    }


def test_every_exception_class_is_listed_with_its_code() -> None:
    paragraph = " ".join(_exit_code_paragraph().split())
    # Each entry reads "<code> <words> (`ClassName` ...)": the code is the number that opens
    # the entry (after "; ") holding the class name.
    listed = {}
    for entry in re.split(r"; (?=\d+ )", paragraph):
        code = re.match(r"(\d+) ", entry)
        for name in re.findall(r"`([A-Z]\w+Error)`", entry):
            assert code, f"README.md lists {name} in an entry without a code: {entry!r}"
            listed[name] = int(code.group(1))
    assert listed == _classes_with_own_code()


def test_the_base_and_the_cli_codes_are_listed() -> None:
    paragraph = " ".join(_exit_code_paragraph().split())
    for code in (0, LCMError.exit_code, 130, 141):
        assert re.search(rf"(^|; |: ){code} ", paragraph), f"exit code {code} is not listed"
