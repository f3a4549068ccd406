"""README.md stays true where a reader checks it: the pipeline table names every rule and the
outputs the rules write, and the memory figures of lcm bei-maps are those the code computes.
"""

from __future__ import annotations

import fnmatch
import importlib
import re

import pytest
import yaml
from helpers import ROOT

from lcm.io import paths
from lcm.train.bei_maps import HOLDOUT_FRACTION, solve_memory_bytes
from lcm.workflow import resources

README = ROOT / "README.md"
# Rules that are targets, not stages: they write nothing of their own.
TARGETS = {"all", "participant"}


def _rules() -> set[str]:
    names = set()
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = smk.read_text()
        names |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M))
        names |= set(re.findall(r"^use rule \w+ as (\w+)", text, re.M))
    return names - TARGETS


def _table() -> list[list[str]]:
    text = README.read_text()
    start = text.index("| stage | rule(s) | command | what it does |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_the_pipeline_table_names_every_rule_and_no_other() -> None:
    listed = [name for row in _table() for name in re.findall(r"`([\w*]+)`", row[1])]
    rules = _rules()
    unlisted = {r for r in rules if not any(fnmatch.fnmatchcase(r, p) for p in listed)}
    stale = {p for p in listed if not fnmatch.filter(rules, p)}
    assert not unlisted, f"rules the README's pipeline table does not name: {sorted(unlisted)}"
    assert not stale, f"names in the table that are no rule: {sorted(stale)}"


def _expand(path: str) -> list[str]:
    """``a_{x,y}.b`` -> ``a_x.b``, ``a_y.b``."""
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    head, tail = path[: m.start()], path[m.end() :]
    return [e for alt in m[1].split(",") for e in _expand(head + alt + tail)]


def _written() -> list[str]:
    """What the rules write, as lcm.io.paths builds it, with the README's placeholders."""
    r, d, t, a = "results", "<dataset>", "<task>", "<atlas>"
    store = paths.store_dir(r)
    files = [
        paths.ingest_manifest(r, d),
        paths.fmriprep_record(r, d, "<label>"),
        paths.fmriprep_settings(r, d),
        paths.fmriprep_derivatives(r, d) + "/",
        paths.connectome_dir(r, d) + "/sub-<label>/",
        paths.qc_table(r, d, a),
        store + "/",
        str(paths.connectome_path(store, a, d).parent) + "/",
        str(paths.variables_path(store, d).parent) + "/",
        str(paths.missingness_path(store, d)),
        paths.model_dir(r, "pretrain") + "/",
        paths.model_dir(r, "pretrain-ssl") + "/",
        paths.model_file(r, "pretrain", "bei_linear.npz"),
        paths.model_dir(r, f"finetune/{t}") + "/",
        paths.task_splits(r, t),
        paths.task_embeddings(r, t),
        paths.task_embeddings(r, t, "attention"),
        paths.task_metrics(r, t),
        paths.task_metrics(r, t, "predictions"),
        paths.metrics_file(r, ""),
        paths.report_html(r),
        # What the report names in its provenance section.
        paths.config_copy(r, "<sha256>"),
        paths.log_file(r, "<stage>/"),
    ]
    return files


def test_every_path_in_the_pipeline_table_is_one_the_rules_write() -> None:
    cited = [
        p
        for row in _table()
        for path in re.findall(r"`(results/[^`]*)`", row[3])
        for p in _expand(path)
    ]
    assert len(cited) >= 15, cited
    written = _written()
    unknown = [p for p in cited if p not in written]
    assert not unknown, f"paths in the README's table that no rule writes: {unknown}"
    # Every stage's outputs are named: each row but synth's cites a path.
    silent = [row[0] for row in _table() if row[0] != "synth" and "results/" not in row[3]]
    assert not silent, f"stages whose outputs the table does not name: {silent}"


def _figures(text: str) -> tuple[float, float]:
    m = re.search(r"~?([\d.]+) GB at 400 ROIs, ~?([\d.]+) GB at AAL-116", " ".join(text.split()))
    assert m, "the 400-ROI and AAL-116 memory figures are not where they were"
    return float(m[1]), float(m[2])


@pytest.mark.parametrize(
    "doc", ["README.md", "lcm/commands/bei_maps.py", "profiles/slurm/config.yaml"]
)
def test_the_bei_maps_memory_figures_are_what_the_fit_holds(doc: str) -> None:
    text = (ROOT / doc).read_text().replace("\n  # ", " ")
    held = round(HOLDOUT_FRACTION * 40_000)  # runs of as many subjects
    for said, rois in zip(_figures(text), (400, 116), strict=True):
        # A few dozen BEI variables: their maps are a small part of it.
        need = [solve_memory_bytes(40_000 - held, held, rois, n) / 1e9 for n in (5, 60)]
        assert min(need) * 0.9 <= said <= max(need) * 1.1, (doc, rois, said, need)
    assert f"40,000 runs, {held:,} held out" in " ".join(text.split()), "say how many held out"


def _resolves(name: str) -> bool:
    """Whether ``name`` (``lcm.store.read.load_cohort``) is a module or an attribute of one."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attribute in parts[i:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("doc", ["README.md", "config/README.md"])
def test_every_lcm_name_the_docs_cite_exists(doc: str) -> None:
    """A cited module, function or constant (`lcm.io.paths`, `lcm.train.bei_maps.
    solve_memory_bytes`) exists where the doc says, so that a reader finds it; a Parquet
    metadata key the code writes (`lcm.atlas_identity`) is a key, not code."""
    text = (ROOT / doc).read_text()
    names = set(re.findall(r"`(lcm(?:\.\w+)+)", text))
    assert len(names) >= 3 or doc != "README.md", names
    source = "".join(p.read_text() for p in (ROOT / "lcm").rglob("*.py"))
    keys = {n for n in names if f'"{n}"' in source}
    missing = sorted(n for n in names - keys if not _resolves(n))
    assert not missing, f"{doc} cites names no module has: {missing}"


@pytest.mark.parametrize("doc", ["README.md", "config/README.md"])
def test_every_repository_file_the_docs_cite_exists(doc: str) -> None:
    """`lcm/workflow/resources.py`, `tests/unit/docs/test_docs_config.py`, `docs/transfer.md`:
    a cited file of the repository is there (placeholders and globs aside)."""
    top = ("lcm/", "tests/", "benchmarks/", "docs/", "config/", "profiles/", "workflow/", "envs/")
    cited = {
        span.split(" ")[0].rstrip(",;:")
        for span in re.findall(r"`([^`\s]+)", (ROOT / doc).read_text())
        if span.startswith(top)
    }
    cited = {c for c in cited if not re.search(r"[<>*{}$]", c)}
    assert len(cited) >= 3, cited
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"{doc} cites files the repository lacks: {missing}"


def test_the_slurm_profiles_values_the_readme_quotes_are_the_profiles() -> None:
    """README's *On a SLURM cluster* quotes the profile's retries, caps, per-rule memory,
    batch size and default resources: each as profiles/slurm/config.yaml sets it."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    rules, default = profile["set-resources"], profile["default-resources"]
    model_mb = {rules[rule]["mem_mb"] for rule in ("finetune", "evaluate", "embed")}
    assert len(model_mb) == 1, "the README gives finetuning, evaluation and embedding one figure"
    batch = dict(g.split("=") for g in profile["group-components"])["connectome"]
    quoted = [
        f"(`retries: {profile['retries']}`)",
        f"at most `cores: {profile['cores']}` at a time",
        f"`resources: mem_mb: {profile['resources']['mem_mb']}`",
        f"`mem_mb: {rules['pretrain']['mem_mb']}` for pretraining, {rules['bei_maps']['mem_mb']} "
        f"for `bei_maps`, {model_mb.pop()} for finetuning, evaluation and embedding",
        f"`{rules['connectome_dataset']['mem_mb']}` in the profile",
        f"per-run connectome jobs go {batch} to a submission",
        # fMRIPrep's resources are its rule's (the profile's entry is empty: a line there
        # would replace them).
        f"{resources.FMRIPREP_THREADS} CPUs, {resources.FMRIPREP_MEM_MB // 1000} GB and "
        f"{resources.FMRIPREP_RUNTIME / 60:g} h",
        f"at most {resources.MEM_MB_MAX // 1000} GB and {resources.RUNTIME_MAX / 60:g} h",
        f"runtime={default['runtime']} mem_mb={default['mem_mb']}`",
    ]
    assert not rules["fmriprep"], rules["fmriprep"]
    text = " ".join(README.read_text().split())
    stale = [q for q in quoted if q not in text]
    assert not stale, f"README.md no longer quotes profiles/slurm/config.yaml as it is: {stale}"
