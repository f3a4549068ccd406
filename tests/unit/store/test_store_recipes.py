"""The store-reading recipes work on a store of two atlases (issue 18, item 6).

The README's recipe ``pd.read_parquet("results/store/connectomes")`` failed on such a store
(``ArrowInvalid: Failed casting from fixed_size_binary[...]``). Every code block of
``docs/store_recipes.md``, and every Python/SQL block of the README's section "Reading the
feature store without LCM", is run here as written, from a folder holding ``results/store``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT

from lcm.catalogue import load_catalogue
from lcm.store.layout import n_edges
from lcm.store.writer import write_connectome_arrays, write_variables

RECIPES = ROOT / "docs" / "store_recipes.md"
README_SECTION = "## Reading the feature store without LCM"
ATLASES = {"aal116": 116, "schaefer100": 100}

CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
datasets:
  abide: {id_column: participant_id, columns: {age: {column: age}}}
  hcp: {id_column: participant_id, columns: {age: {column: age}}}
"""


def _blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced python or sql block."""
    return re.findall(r"```(python|sql)\n(.*?)```", text, flags=re.S)


def _readme_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    return _blocks(text[start : end if end > 0 else None])


@pytest.fixture
def two_atlas_store(tmp_path: Path, monkeypatch) -> Path:
    """``results/store`` with datasets abide (aal116 and schaefer100) and hcp (schaefer100)."""
    store = tmp_path / "results" / "store"
    (tmp_path / "variables.yaml").write_text(CATALOGUE)
    catalogue = load_catalogue(tmp_path / "variables.yaml")
    rng = np.random.default_rng(0)
    for dataset, atlases in (("abide", ["aal116", "schaefer100"]), ("hcp", ["schaefer100"])):
        subjects = ["01", "02", "03"]
        pheno = pd.DataFrame({"subject": subjects, "site": "", "age": [20.0, 30.0, 40.0]})
        write_variables(store, dataset, pheno, catalogue)
        for atlas in atlases:
            r = ATLASES[atlas]
            runs = pd.DataFrame({"subject": subjects, "run": "1", "mean_fd": [0.1, 0.2, 0.3]})
            edges = rng.uniform(-1, 1, (3, n_edges(r))).astype(np.float32)
            names = [f"{atlas}_{i}" for i in range(r)]
            write_connectome_arrays(store, atlas, dataset, runs, edges, names)
    monkeypatch.chdir(tmp_path)
    return store


def _run(language: str, code: str) -> None:
    if language == "python":
        exec(compile(code, "<recipe>", "exec"), {"__name__": "__recipe__"})
        return
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(code).fetchall()
    assert rows, "the query returned no row"


def test_the_old_recipe_fails_on_two_atlases(two_atlas_store: Path) -> None:
    """What the issue reported: one pandas read of every atlas's connectomes."""
    import pyarrow as pa

    with pytest.raises(pa.ArrowInvalid, match="fixed_size_binary"):
        pd.read_parquet("results/store/connectomes")


def test_recipes_file_runs_on_two_atlases(two_atlas_store: Path) -> None:
    blocks = _blocks(RECIPES.read_text())
    assert [lang for lang, _ in blocks].count("python") >= 2 and ("sql", blocks[-1][1]) in blocks
    namespace: dict = {"__name__": "__recipe__"}
    for language, code in blocks:
        if language == "python":
            exec(compile(code, str(RECIPES), "exec"), namespace)
        else:
            _run(language, code)
    # The per-atlas recipe read aal116 only; the cross-atlas one every atlas, separately.
    by_atlas = namespace["by_atlas"]
    assert {a: e.shape for a, (_, e, _) in by_atlas.items()} == {
        "aal116": (3, n_edges(116)),
        "schaefer100": (6, n_edges(100)),
    }
    assert len(by_atlas["aal116"][2]) == 116
    assert len(namespace["all_runs"]) == 9 and set(namespace["all_runs"]["atlas"]) == set(ATLASES)
    # The settings recipe: one entry per file (written from arrays: no sidecar said how).
    made = namespace["made"]
    assert made["rows"].tolist() == [3, 3, 3] and set(made["origin"]) == {"unrecorded"}


def test_duckdb_recipe_counts_every_atlas(two_atlas_store: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    sql = next(code for lang, code in _blocks(RECIPES.read_text()) if lang == "sql")
    rows = duckdb.sql(sql).fetchall()
    got = {(atlas, dataset): (runs, edges) for atlas, dataset, runs, _, _, edges in rows}
    assert got == {
        ("aal116", "abide"): (3, n_edges(116)),
        ("schaefer100", "abide"): (3, n_edges(100)),
        ("schaefer100", "hcp"): (3, n_edges(100)),
    }


def test_readme_recipes_run_on_two_atlases(two_atlas_store: Path) -> None:
    """The README's own blocks, exactly as written (they must not read two atlases at once)."""
    blocks = _readme_blocks()
    for language, code in blocks:
        _run(language, code)


def test_the_atlas_identity_recipe_is_labels_identity(tmp_path: Path, monkeypatch) -> None:
    """lcm.atlas_identity was documented only as "a hash of the ROI names"; the recipe in
    docs/store_recipes.md gives it exactly: here on names with surrounding spaces, non-ASCII
    letters and quotes, which the JSON text must write as json.dumps(..., ensure_ascii=False)."""
    import json

    import pyarrow.parquet as pq

    from lcm.store.layout import labels_identity

    code = next(c for lang, c in _blocks(RECIPES.read_text()) if "lcm.atlas_identity" in c)
    names = [" Área 1", "Hipocampo_L ", 'say "x"', "海马"]
    runs = pd.DataFrame({"subject": ["01"], "run": "1"})
    edges = np.zeros((1, n_edges(len(names))), np.float32)
    write_connectome_arrays(tmp_path / "results" / "store", "odd", "d", runs, edges, names)
    monkeypatch.chdir(tmp_path)
    _run("python", code)  # its assert compares the recipe with the stored value
    part = next((tmp_path / "results" / "store" / "connectomes").rglob("*.parquet"))
    stored = pq.read_schema(part).metadata[b"lcm.atlas_identity"].decode()
    # Whitespace around a name is not part of it; the order is.
    assert stored == labels_identity([n.strip() for n in names]) == labels_identity(names)
    assert stored != labels_identity(names[::-1])
    assert json.loads(pq.read_schema(part).metadata[b"lcm.roi_names"]) == names
