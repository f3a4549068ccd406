"""lcm.io.paths: the rules' patterns and the package's writers name the same files."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from helpers import ROOT
from snakemake.io import apply_wildcards, regex_from_filepattern, update_wildcard_constraints

from lcm.bids.summary import summary_paths
from lcm.io import paths
from lcm.io.bids_names import derivative_path

COMMON_SMK = ROOT / "workflow" / "rules" / "common.smk"
RUNS = [
    {"sub": "01", "task": "rest", "run": "1"},
    {"sub": "02", "ses": "b", "task": "rest", "acq": "mb", "run": None},
]


def wildcard_constraints() -> dict[str, str]:
    """The workflow's global wildcard constraints, as common.smk declares them."""
    block = COMMON_SMK.read_text().split("wildcard_constraints:", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r'^\s+(\w+)="(.*)",$', block, re.MULTILINE))


@pytest.mark.parametrize("entities", RUNS)
def test_connectome_rule_pattern_matches_the_qc_json_collect_reads(entities) -> None:
    pattern = paths.run_qc_json("res", "{dataset}", paths.RUN_WILDCARDS, "MNI", "aal116")
    constraints = wildcard_constraints()
    assert {"dataset", "subject", "func_dir", "run_key"} <= set(constraints)
    regex = regex_from_filepattern(update_wildcard_constraints(pattern, {}, constraints))
    location = paths.run_location(entities)
    concrete = paths.run_qc_json("res", "abide", location, "MNI", "aal116")
    match = re.match(regex, concrete)
    assert match, f"{concrete} does not match the rule's pattern {pattern}"
    assert match.groupdict() == {"dataset": "abide", **location}
    assert apply_wildcards(pattern, match.groupdict()) == concrete
    # The BIDS-derivative name the package has always written.
    ents = {**entities, "space": "MNI", "seg": "aal116"}
    assert concrete == str(derivative_path("res/connectome/abide", ents, "qc", ".json"))


@pytest.mark.parametrize("entities", RUNS)
def test_run_files_sit_beside_their_qc_json_with_xcpd_names(entities) -> None:
    location = paths.run_location(entities)
    out = paths.connectome_dir("res", "abide")
    ts = paths.run_timeseries(out, location, "MNI", "aal116")
    mat = paths.run_relmat(out, location, "MNI", "aal116", kind="partial", desc="fisherz")
    qc = Path(paths.run_qc_json("res", "abide", location, "MNI", "aal116"))
    assert ts.parent == mat.parent == qc.parent
    base = {**entities, "space": "MNI", "seg": "aal116"}
    assert ts == derivative_path(out, {**base, "stat": "mean"}, "timeseries", ".tsv")
    stat = {"desc": "fisherz", "stat": "partialcorrelation"}
    assert mat == derivative_path(out, {**base, **stat}, "relmat", ".tsv")
    assert mat.name.endswith(
        "_space-MNI_seg-aal116_desc-fisherz_stat-partialcorrelation_relmat.tsv"
    )


def test_run_location_refuses_labels_that_are_not_bids() -> None:
    with pytest.raises(Exception, match="Invalid BIDS 'sub' label"):
        paths.run_location({"sub": "0 1", "task": "rest"})


def test_ingest_rule_outputs_are_the_summaries_the_writer_puts_beside_the_manifest() -> None:
    manifest = paths.ingest_manifest("res", "{dataset}")
    rule_outputs = [paths.ingest_summary(manifest, ext) for ext in (".json", ".tsv")]
    written = summary_paths(paths.ingest_manifest("res", "abide"))
    assert [apply_wildcards(p, {"dataset": "abide"}) for p in rule_outputs] == [
        str(p) for p in written
    ]


def test_store_root_is_found_from_every_store_file() -> None:
    store = paths.store_dir("some/results")
    for file in (
        paths.connectome_path(store, "aal116", "abide"),
        paths.variables_path(store, "abide"),
        paths.missingness_path(store, "abide"),
    ):
        assert paths.store_root(file) == store
        assert paths.store_root(str(file)) == store
    with pytest.raises(ValueError, match="not inside a feature store"):
        paths.store_root("some/results/metrics/metrics.parquet")


def test_results_entries_are_where_every_results_path_goes() -> None:
    """``RESULTS_ENTRIES`` (what the workflow's ownership check looks at) is exactly the set of
    first folders of every path function of ``results``: a new one cannot escape the check."""
    firsts = set()
    for name, func in inspect.getmembers(paths, inspect.isfunction):
        params = inspect.signature(func).parameters
        if func.__module__ != paths.__name__ or next(iter(params), None) != "results":
            continue
        args = [
            paths.run_location(RUNS[0]) if "Mapping" in str(p.annotation) else "x"
            for p in list(params.values())[1:]
            if p.default is inspect.Parameter.empty
        ]
        path = Path(func("R", *args))
        assert path.parts[0] == "R", name
        firsts.add(path.parts[1])
    assert firsts == set(paths.RESULTS_ENTRIES)


SYNTH_SMK = ROOT / "workflow" / "rules" / "synth.smk"


def rule_outputs(smk: Path) -> dict[str, str]:
    """Each rule's ``output:`` block in ``smk``, as written (after the rule's docstring)."""
    pattern = r'^rule (\w+):\n(?:    """[^\n]*"""\n)?    output:\n(.*?)\n    \w+:'
    blocks = re.findall(pattern, smk.read_text(), re.M | re.S)
    return {name: block.strip() for name, block in blocks}


def test_synth_rules_take_their_outputs_from_lcm_synth_plan() -> None:
    # One owner: the rules call the builders the writers use, and spell no path of their own.
    outputs = rule_outputs(SYNTH_SMK)
    assert outputs == {
        "synth_roi_cohort": '**synth_plan.cohort_patterns(SYNTH, "roi"),',
        "synth_voxel_cohort": '**synth_plan.cohort_patterns(SYNTH, "voxel"),',
        "synth_voxel_subject": "**synth_plan.subject_patterns(SYNTH, SPACE),",
    }
    assert "/ground_truth.json" not in COMMON_SMK.read_text()


@pytest.mark.parametrize("space", ["MNI152NLin2009cAsym", "MNI152NLin6Asym:res-2"])
def test_synth_rule_patterns_name_every_file_the_jobs_write(tmp_path: Path, space: str) -> None:
    # The jobs run into a folder and their tree is compared with the rules' outputs: a file a
    # writer names itself, outside lcm.synth.plan, would be left out of the rules.
    from lcm.atlas import load_atlas
    from lcm.io.ownership import MARKER_NAME
    from lcm.synth import plan, write_cohort, write_subject

    kw = {"out_dir": tmp_path, "seed": 1, "shared_structure": 0.7, "atlas": load_atlas("aal116")}
    for tier, name in (("roi", "abidenull"), ("voxel", "tiny")):
        cohort = {"preset": "abide", "tier": tier, "n_subjects": 3, "n_sites": 1, "n_volumes": 20}
        cohort |= {"resolution_mm": 4} if tier == "voxel" else {}
        write_cohort(name, cohort, **kw)
        declared = {
            apply_wildcards(p, {"consortium": name})
            for p in plan.cohort_patterns(tmp_path, tier).values()
        }
        if tier == "voxel":
            subject = plan.planned_subjects(name, cohort)[0]
            write_subject(name, cohort, subject, output_space=space, **kw)
            wildcards = {"consortium": name, "subject": subject}
            declared |= {
                apply_wildcards(p, wildcards)
                for p in plan.subject_patterns(tmp_path, space).values()
            }
        root = tmp_path / name
        written = {str(p) for p in root.rglob("*") if p.is_file() and p.name != MARKER_NAME}
        assert declared <= written
        # What the rules leave out is the ROI tier's per-run time series alone, which the
        # plan lists (for the store) and the job writes.
        runs = set(plan.cohort_outputs(name, cohort, tmp_path)) - declared
        assert written - declared == (runs if tier == "roi" else set())
        assert len(written - declared) == (2 * 3 if tier == "roi" else 0)  # TSV + JSON a run
        assert all("_timeseries." in p for p in runs)
        assert str(plan.ground_truth_path(tmp_path, name)) in declared


def test_store_partition_folders_come_from_lcm_io_paths(tmp_path: Path) -> None:
    # The store's writer and its commit used to rebuild its table folders themselves (the
    # commit's own state folder, _lcm/dataset=<D>, is its to name).
    for module in ("commit", "writer"):
        source = (ROOT / "lcm" / "store" / f"{module}.py").read_text()
        code = [line for line in source.splitlines() if not line.lstrip().startswith(("#", "<"))]
        spelled = [
            line
            for line in code
            if re.search(r'atlas=|"connectomes"|"variables"|missingness_dataset', line)
        ]
        assert not spelled, f"store/{module}.py spells the store layout: {spelled}"
    store = tmp_path / "store"
    for atlas in ("aal116", "schaefer100"):
        paths.connectome_path(store, atlas, "abide").parent.mkdir(parents=True)
    paths.connectome_path(store, "aal116", "hcp").parent.mkdir(parents=True)
    assert paths.dataset_partitions(store, "abide") == [
        paths.connectome_path(store, "aal116", "abide").parent,
        paths.connectome_path(store, "schaefer100", "abide").parent,
        paths.variables_path(store, "abide").parent,
    ]
    for file in (paths.connectome_path(store, "aal116", d) for d in ("abide", "hcp")):
        file.touch()
    assert paths.stored_connectomes(store, "aal116") == [
        paths.connectome_path(store, "aal116", "abide"),
        paths.connectome_path(store, "aal116", "hcp"),
    ]
