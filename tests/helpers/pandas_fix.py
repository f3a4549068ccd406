"""The pandas re-save a hint gives (:mod:`lcm.io.csv_dialect`), run exactly as it is worded."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd


def run_pandas_fix(path: Path, said: str) -> None:
    """Run the ``pd.read_csv(file, ...).to_csv(file, ...)`` that ``said`` ends with on ``path``."""
    found = re.search(r"(pd\.read_csv\(file.*?\)\.to_csv\(file.*?\))\.$", said)
    assert found is not None, said
    tree = ast.parse(found.group(1), mode="eval").body
    read = tree.func.value  # pd.read_csv(...) of .to_csv(...)
    assert isinstance(tree, ast.Call) and isinstance(read, ast.Call)
    read_kw = {k.arg: ast.literal_eval(k.value) for k in read.keywords}
    write_kw = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
    pd.read_csv(path, **read_kw).to_csv(path, **write_kw)
