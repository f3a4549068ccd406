"""docs/extending.md stays true: its files exist, its names import, and the lists it says must
agree do (the schema's enums and the package's tables).

The model list has its own test (tests/unit/evaluate/test_evaluate_registry.py); the others
are here.
"""

from __future__ import annotations

import importlib
import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from lcm.atlas import atlas_files, available_atlases
from lcm.atlas_spheres import COORDINATE_ATLASES
from lcm.bids.ingest import ENTRIES
from lcm.connectome.confounds import STRATEGIES
from lcm.workflow_plan import WorkflowPlan

DOC = ROOT / "docs" / "extending.md"
# Inline code spans of the prose (fenced blocks hold examples of code that does not exist).
_SPANS = re.findall(r"`([^`\n]+)`", re.sub(r"(?ms)^```.*?^```", "", DOC.read_text()))
_TOP = ("lcm/", "workflow/", "tests/", "config/", "docs/", "envs/", "profiles/", "benchmarks/")
_FILES = ("pyproject.toml", "README.md", "Snakefile")
PATHS = sorted(
    {s for s in _SPANS if (s.startswith(_TOP) or s in _FILES) and not re.search(r"[<>*{}\s]", s)}
)
NAMES = sorted({s for s in _SPANS if re.fullmatch(r"lcm(\.[A-Za-z_]\w*)+", s)})


def _schema() -> dict:
    text = resources.files("lcm.schemas").joinpath("config.schema.yaml").read_text()
    return yaml.safe_load(text)


def test_the_doc_names_files_and_names() -> None:
    # The extraction itself works: an empty list would pass every test below.
    assert "lcm/atlas.py" in PATHS and "lcm.evaluate.registry.register_model" in NAMES


@pytest.mark.parametrize("path", PATHS)
def test_every_file_the_doc_names_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/extending.md names {path}, which does not exist"


@pytest.mark.parametrize("name", NAMES)
def test_every_name_the_doc_gives_imports(name: str) -> None:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"docs/extending.md names {name}: no {attr!r}"
            obj = getattr(obj, attr)
        return
    pytest.fail(f"docs/extending.md names {name}, whose module does not import")


def test_denoise_strategies_are_the_strategy_table() -> None:
    enum = _schema()["properties"]["denoise"]["properties"]["strategy"]["enum"]
    assert enum == list(STRATEGIES)


def test_entries_are_ingests_and_each_reaches_one_connectome_rule() -> None:
    enum = _schema()["properties"]["datasets"]["additionalProperties"]["properties"]["entry"]
    assert enum["enum"] == list(ENTRIES)
    config = {
        "datasets": {f"d{i}": {"entry": e, "role": "pretrain"} for i, e in enumerate(ENTRIES)},
        "synth": {"enabled": False},
    }
    plan = WorkflowPlan(config)
    lists = sorted(m for m in dir(WorkflowPlan) if m.endswith("_datasets"))
    for i, entry in enumerate(ENTRIES):
        found = [m for m in lists if f"d{i}" in getattr(plan, m)()]
        assert len(found) == 1, f"entry {entry!r} is in the plan's lists {found}"
    # Each of those lists is some connectome rule's datasets.
    rules = (ROOT / "workflow" / "rules" / "connectome.smk").read_text()
    assert set(re.findall(r"one_of\(PLAN\.(\w+_datasets)\(\)\)", rules)) == set(lists)


def test_registry_atlases_are_the_schemas_and_have_their_sources() -> None:
    text = _schema()["properties"]["atlas"]["properties"]["name"]["description"]
    listed = re.search(r"Registry name \(([^)]*)\)", text)
    assert listed, text
    assert sorted(n.strip() for n in listed.group(1).split(",")) == available_atlases()
    # lcm.atlas names the coordinate atlases that lcm.atlas_spheres builds: the same names.
    assert set(COORDINATE_ATLASES) <= set(available_atlases())
    for name in available_atlases():
        files = atlas_files(name)
        assert files and all(Path(f).is_file() for f in files), (name, files)
