"""The ``benchmarks/`` scripts imported as modules, so tests can call their functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"


def load_benchmark(name: str, *, register: bool = False) -> ModuleType:
    """``benchmarks/<name>`` imported as a module ``<stem>_bench`` (its functions, not run).

    Parameters
    ----------
    name : str
        The script's file name (``store.py``).
    register : bool, default False
        Put the module in ``sys.modules`` before running it: dataclasses and pickling (worker
        processes) look a module up there by name.

    Returns
    -------
    types.ModuleType
    """
    module_name = Path(name).stem + "_bench"
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
