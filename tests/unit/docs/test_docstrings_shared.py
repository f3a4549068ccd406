"""lcm.docstrings: shared parameter text filled into docstrings, indented as its placeholder."""

from __future__ import annotations

import inspect
import re

import pytest

from lcm.commands import report
from lcm.docstrings import DOCDICT, fill, fill_doc
from lcm.io import paths


def test_a_placeholder_becomes_the_entry_indented_as_it() -> None:
    doc = (
        "Summary.\n\n        Parameters\n        ----------\n        %(results)s\n        x : int\n"
    )
    filled = fill(doc)
    assert "        results : str\n            The workflow's ``results_dir``." in filled
    assert filled.endswith("        x : int\n")


def test_an_unknown_placeholder_fails_at_definition() -> None:
    with pytest.raises(KeyError, match="%\\(nothing\\)s"):

        @fill_doc
        def f(nothing: int) -> None:
            """Summary.

            Parameters
            ----------
            %(nothing)s
            """


def test_decorated_functions_show_the_shared_text() -> None:
    """What help() and the docs show: the entry, not the placeholder."""
    for func, name in (
        (report.run, "args"),
        (report.register, "sub"),
        (paths.ingest_manifest, "results"),
    ):
        doc = inspect.getdoc(func) or ""
        assert "%(" not in doc
        assert DOCDICT[name].splitlines()[0] in doc


def test_every_placeholder_in_lcm_is_filled_at_import() -> None:
    """A placeholder left in a function or class without @fill_doc would show as written."""
    import importlib
    import pkgutil

    import lcm

    left = []
    for info in pkgutil.walk_packages(lcm.__path__, "lcm."):
        if info.name.startswith("lcm.workflow_files") or info.name == "lcm.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isfunction(obj) or inspect.isclass(obj)
            ) and obj.__module__ == module.__name__:
                if re.search(r"^\s*%\(\w+\)s\s*$", obj.__doc__ or "", re.M):
                    left.append(f"{info.name}.{name}")
    assert left == []
