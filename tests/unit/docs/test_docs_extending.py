"""docs/extending.md stays true: its files exist, its names import, and the lists it says must
agree do (the schema's enums and the package's tables).

The model list has its own test (tests/unit/evaluate/test_evaluate_registry.py); the others
are here.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import ROOT
from helpers.envs import env_packages, workflow_rules

from lcm.atlas import atlas_files, available_atlases, load_atlas
from lcm.atlas import registry as atlas_registry
from lcm.atlas.registry import ATLASES, CoordinateAtlas, PackagedAtlas
from lcm.config import schema
from lcm.connectome import settings as connectome_settings
from lcm.connectome.confounds import MOTION_6P, STRATEGIES, Strategy, confound_columns
from lcm.connectome.settings import DenoiseSettings
from lcm.entries import Entry, names
from lcm.exceptions import ConfigError
from lcm.workflow.hash import verb_modules
from lcm.workflow.plan import WorkflowPlan

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
    assert "lcm/atlas/registry.py" in PATHS and "lcm.evaluate.registry.register_model" in NAMES


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


def test_a_new_strategy_is_a_table_entry_and_its_schema_name(monkeypatch) -> None:
    """Section 2 as a newcomer follows it: the table entry, the enum (here patched in)."""
    motion_12p = (*MOTION_6P, *(f"{c}_derivative1" for c in MOTION_6P))
    monkeypatch.setitem(STRATEGIES, "12P", Strategy(motion_12p))
    monkeypatch.setitem(STRATEGIES, "12Pscrub", Strategy(motion_12p, scrubs=True))

    def schema() -> dict:
        tree = _schema()
        tree["properties"]["denoise"]["properties"]["strategy"]["enum"] += ["12P", "12Pscrub"]
        return tree

    monkeypatch.setattr(connectome_settings, "schema", schema)
    assert DenoiseSettings.from_dict({"strategy": "12P", "fd_threshold": None}).strategy == "12P"
    assert confound_columns("12P", [*motion_12p, "csf"]) == list(motion_12p)
    # A strategy that scrubs, whatever its name, needs a threshold.
    with pytest.raises(ConfigError, match="both null"):
        DenoiseSettings.from_dict(
            {"strategy": "12Pscrub", "fd_threshold": None, "dvars_threshold": None}
        )
    # dvars_threshold auto (the default) is nilearn's 1.5 for a strategy that scrubs.
    got = DenoiseSettings.from_dict({"strategy": "12Pscrub", "fd_threshold": None})
    assert got.dvars_threshold == 1.5
    DenoiseSettings.from_dict({"strategy": "12Pscrub", "fd_threshold": 0.5})


def test_entries_are_the_tables_and_each_reaches_one_connectome_rule() -> None:
    # The file gives no enum: lcm.config.schema() fills it from the entry table.
    raw = _schema()["properties"]["datasets"]["additionalProperties"]["properties"]["entry"]
    assert "enum" not in raw
    enum = schema()["properties"]["datasets"]["additionalProperties"]["properties"]["entry"]
    assert enum["enum"] == names() == ["bids", "fmriprep", "roi_timeseries", "connectome"]
    config = {
        "datasets": {f"d{i}": {"entry": e, "role": "pretrain"} for i, e in enumerate(names())},
        "synth": {"enabled": False},
    }
    plan = WorkflowPlan(config)
    lists = sorted(m for m in dir(WorkflowPlan) if m.endswith("_datasets"))
    for i, entry in enumerate(names()):
        found = [m for m in lists if f"d{i}" in getattr(plan, m)()]
        assert len(found) == 1, f"entry {entry!r} is in the plan's lists {found}"
    # Each of those lists is some connectome rule's datasets.
    rules = (ROOT / "workflow" / "rules" / "connectome.smk").read_text()
    assert set(re.findall(r"one_of\(PLAN\.(\w+_datasets)\(\)\)", rules)) == set(lists)


def test_the_entry_section_names_every_trait_of_the_entry_table() -> None:
    section = DOC.read_text().split("## 4.", 1)[1]
    assert "takes two places" in section and "lcm/entries.py" in section
    traits = [f.name for f in dataclasses.fields(Entry) if f.name != "name"]
    assert len(traits) > 5 and [t for t in traits if f"`{t}`" not in section] == []
    assert all(f"`{n}`" in section for n in names()), "each built-in entry is described"


def test_registry_atlases_have_their_sources() -> None:
    assert available_atlases() == sorted(ATLASES)
    for name in available_atlases():
        files = atlas_files(name)
        assert files and all(Path(f).is_file() for f in files), (name, files)
    # The schema and the README do not list the names (nothing to keep in sync there).
    text = _schema()["properties"]["atlas"]["properties"]["name"]["description"]
    readme = (ROOT / "README.md").read_text()
    assert not [n for n in ATLASES if n != "aal116" and (n in text or n in readme)]


def test_registry_atlas_packages_are_dependencies_wherever_atlases_load() -> None:
    # The data is read from the package's folder without importing it, so the envs' import walk
    # (tests/workflow/test_workflow_envs.py) cannot see this dependency: the table says it.
    wanted = {entry.distribution for entry in ATLASES.values()}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in pyproject}
    assert wanted <= declared, f"pyproject.toml lacks {sorted(wanted - declared)}"
    envs = {
        rule["env"]
        for rule in workflow_rules().values()
        if rule["verb"] and rule["env"] and "lcm.atlas.registry" in verb_modules(rule["verb"])
    }
    assert envs, "no stage loads a registry atlas: the walk or the rules' parsing broke"
    for env in sorted(envs):
        missing = wanted - set(env_packages(env))
        assert not missing, f"{env} lacks {sorted(missing)}"


def _write_label_image(folder: Path) -> None:
    data = np.zeros((4, 4, 4), dtype=np.int16)
    data[:2], data[2:] = 1, 2
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "tiny.nii.gz")
    (folder / "tiny.tsv").write_text("index\tname\n1\tleft\n2\tright\n")
    (folder / "tiny_coords.csv").write_text("x,y,z\n-40,-20,10\n40,-20,10\n")


def test_a_new_registry_atlas_is_one_table_entry(tmp_path: Path, monkeypatch) -> None:
    """Section 1 as a newcomer follows it: one entry in ATLASES per atlas, of either kind."""
    package = tmp_path / "tinyatlases"
    (package / "data").mkdir(parents=True)
    _write_label_image(package / "data")
    monkeypatch.syspath_prepend(str(tmp_path))

    def read_tiny(files: list[Path]) -> pd.DataFrame:
        xyz = pd.read_csv(files[0])
        return pd.DataFrame({"name": ["L", "R"], "network": ["a", "b"], **xyz, "radius_mm": 5.0})

    monkeypatch.setitem(
        ATLASES,
        "tiny",
        PackagedAtlas(
            "tinyatlases.data", "tiny.nii.gz", "tiny.tsv", "MNI152NLin2009cAsym", "tinyatlases"
        ),
    )
    monkeypatch.setitem(
        ATLASES,
        "tinyspheres",
        CoordinateAtlas(("tiny_coords.csv",), "A test", read_tiny, package="tinyatlases.data"),
    )
    # A cache of its own: the test's atlas does not outlive it.
    build = functools.cache(atlas_registry.build_coordinate_atlas.__wrapped__)
    monkeypatch.setattr(atlas_registry, "build_coordinate_atlas", build)
    assert {"tiny", "tinyspheres"} <= set(available_atlases())
    tiny = load_atlas("tiny")
    assert tiny.roi_names == ["left", "right"] and tiny.space == "MNI152NLin2009cAsym"
    assert atlas_files("tiny") == [package / "data" / "tiny.nii.gz", package / "data" / "tiny.tsv"]
    spheres = load_atlas("tinyspheres")
    assert spheres.roi_names == ["L", "R"] and list(spheres.labels["network"]) == ["a", "b"]
    assert sorted(np.unique(np.asarray(spheres.img.dataobj)).tolist()) == [0, 1, 2]


_LASSO = """
from sklearn.linear_model import LogisticRegression

from lcm.evaluate.baselines import _TunedClassifier


class ConnectomeLassoLogReg(_TunedClassifier):
    grid = (0.1, 1.0)
    default = 1.0

    def _estimator(self, value):
        return LogisticRegression(C=value, penalty="l1", solver="liblinear",
                                  random_state=self.seed)
"""

# Runs lcm with lcm/evaluate/registry.py as section 3 edits it (one row more), in a fresh process.
_WITH_ROW = """
import importlib.util
import sys
from pathlib import Path

import numpy as np

import lcm.evaluate

path = Path(lcm.evaluate.__file__).with_name("registry.py")
row = ('    "lasso-logreg": {**_BASELINE, "default": False,'
       ' "factory": "lasso:ConnectomeLassoLogReg"},\\n')
anchor = '    "shuffled-labels": {'
assert anchor in path.read_text()
source = path.read_text().replace(anchor, row + anchor, 1)
module = importlib.util.module_from_spec(
    importlib.util.spec_from_loader("lcm.evaluate.registry", loader=None)
)
module.__file__ = str(path)
sys.modules["lcm.evaluate.registry"] = lcm.evaluate.registry = module
exec(compile(source, str(path), "exec"), module.__dict__)

from lcm.evaluate.config_schema import validate_config
from lcm.evaluate.registry import DEFAULT_MODELS, ModelContext, is_builtin_model, make_model
from lcm.evaluate.registry import model_names

names = model_names()
assert names.index("lasso-logreg") == names.index("bei-linear") + 1, names
assert is_builtin_model("lasso-logreg") and "lasso-logreg" not in DEFAULT_MODELS
config = {
    "datasets": {
        "a": {"entry": "roi_timeseries", "path": "x", "phenotype": "p.tsv", "role": "downstream"},
    },
    "tasks": {"t": {"dataset": "a", "label": "autism", "positive": "autism",
                    "models": ["lasso-logreg"]}},
    "evaluate": {"models": ["lasso-logreg", "logreg"]},
}
checked = validate_config(config)
assert checked["evaluate"]["models"] == ["lasso-logreg", "logreg"]
rng = np.random.default_rng(0)
fc = rng.normal(size=(24, 5, 5))
fc = np.tanh((fc + fc.transpose(0, 2, 1)) / 4)
y = np.tile([0, 1], 12)
fc[y == 1, 0, 1] = fc[y == 1, 1, 0] = 0.9
model = make_model("lasso-logreg", ModelContext(label="dx", levels=("no", "yes"), finetune={},
                                                seed=0))
proba = model.fit(fc, y, None, groups=np.arange(24)).predict_proba(fc)
assert proba.shape == (24, 2) and type(model).__name__ == "ConnectomeLassoLogReg"
print("ok")
"""


def test_a_new_builtin_model_is_its_class_and_one_registry_row(tmp_path: Path) -> None:
    """Section 3 as a newcomer follows it, in a fresh process (as lcm evaluate would run it):
    the class (here in its own module) and its row; the schema takes it without an edit."""
    (tmp_path / "lasso.py").write_text(_LASSO)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITH_ROW)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def _intro_and_sections() -> tuple[str, dict[str, str]]:
    text = DOC.read_text()
    intro, *parts = re.split(r"(?m)^## (?=\d\. )", text)
    return intro, {p.split("\n", 1)[0]: p for p in parts}


def test_the_intro_counts_the_places_each_section_names() -> None:
    # The intro said "each takes at most two places" while a built-in baseline takes three
    # (its figure style too) and an atlas's dependency is up to four files.
    intro, sections = _intro_and_sections()
    counts = {"one": 1, "two": 2, "three": 3, "four": 4}
    said = {
        kind: counts[n]
        for kind, n in re.findall(r"(?m)^- an? ([a-z -]+?): (one|two|three|four) place", intro)
    }
    assert set(said) == {"atlas", "denoising strategy", "built-in baseline model", "entry type"}
    heading = {
        "atlas": "1. An atlas",
        "denoising strategy": "2. A denoising strategy",
        "built-in baseline model": "3. A baseline model",
        "entry type": "4. An entry type (how a dataset enters)",
    }
    for kind, n in said.items():
        section = sections[heading[kind]]
        if kind == "atlas":  # one table row, and a second place: the dependency
            assert "The second place" in section and "up to four files" in section
            assert n == 1 and "up to four files" in intro
        else:
            word = next(w for w, v in counts.items() if v == n)
            assert re.search(rf"(?i)\b{word} places\b", section), (kind, word)
    assert "at most two places" not in intro


@pytest.mark.parametrize(
    ("module", "verbs"),
    [
        ("lcm.evaluate.registry", {"evaluate", "report"}),
        ("lcm.evaluate.baselines", {"evaluate", "report"}),
        ("lcm.report.plots", {"report"}),
        ("lcm.atlas.registry", {"synth", "connectome", "report"}),
        ("lcm.connectome.confounds", {"ingest", "connectome"}),
    ],
)
def test_what_reruns_is_what_the_page_says(module: str, verbs: set[str]) -> None:
    # "What reruns" names, for each addition, the verbs whose code hash covers its file.
    workflow_verbs = ("synth", "ingest", "connectome", "store", "splits", "pretrain")
    workflow_verbs += ("bei_maps", "evaluate", "report", "finetune", "embed")
    assert {v for v in workflow_verbs if module in verb_modules(v)} == verbs
    assert all("lcm.entries" in verb_modules(v) for v in workflow_verbs)
    assert "--touch" in DOC.read_text()
