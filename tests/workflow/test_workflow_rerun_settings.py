"""Reruns on the demo workflow: a setting reruns the jobs that read it, and no other.

The demo config (synthetic consortia, four tasks) is "run" with ``--touch`` (every job recorded
as done, with its params), then each change is made and a dry run lists the jobs that would
rerun. Each change is one a job's params used to carry without the job reading it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from helpers.workflow import planned_jobs, snakemake, touch_all, write_config

from lcm.io import paths

SYNTH_RULES = {"synth_roi_cohort", "synth_voxel_cohort", "synth_voxel_subject"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(work dir, config) of the demo workflow with every job recorded as done."""
    workdir = tmp_path_factory.mktemp("rerun-settings")
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    # A task of baselines only: it finetunes nothing.
    autism = cfg["tasks"]["autism"]
    cfg["tasks"]["autismbase"] = {**autism, "models": ["logreg", "svm"]}
    touch_all(ROOT, workdir, write_config(workdir, cfg))
    return workdir, cfg


def plan(workdir: Path, cfg: dict, *extra: str) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Rule -> job count of a dry run, and the (rule, wildcards) of each planned job."""
    config = write_config(workdir, cfg)
    proc = snakemake(ROOT, workdir, "--configfile", str(config), "-n", "--cores", "1", *extra)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", text, re.MULTILINE)
    return planned_jobs(proc), set(jobs)


def changed(cfg: dict, *keys: str, value: object) -> dict:
    """A copy of ``cfg`` with ``value`` at the key path ``keys``."""
    new = yaml.safe_load(yaml.safe_dump(cfg))
    node = new
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return new


def test_nothing_changed_nothing_runs(done) -> None:
    workdir, cfg = done
    assert plan(workdir, cfg)[0] == {}


def test_min_coverage_reruns_connectomes_not_the_synthetic_data(done) -> None:
    workdir, cfg = done
    counts, _ = plan(workdir, changed(cfg, "atlas", "min_coverage", value=0.3))
    assert counts["connectome_run"] == 3  # the voxel-level runs: they parcellate images
    assert not SYNTH_RULES & set(counts), counts


def test_a_strategy_reruns_no_roi_series_but_for_its_scrubbing_rule(done) -> None:
    """ROI time series regress no confounds (QC strategy none): 36P for 24P reruns the voxel
    runs alone (every ROI dataset's job reran, for identical matrices, and the store and
    pretraining after them). A scrubbing preset also drops kept segments under 5 volumes,
    which ROI series with a framewise_displacement column undergo: it reruns them."""
    workdir, cfg = done
    roi = {n for n, d in cfg["datasets"].items() if d["entry"] == "roi_timeseries"}
    assert cfg["denoise"]["strategy"] == "24P" and len(roi) > 1
    counts, jobs = plan(workdir, changed(cfg, "denoise", "strategy", value="36P"))
    assert counts["connectome_run"] == 3 and "connectome_dataset" not in counts, counts
    assert not {r for r, w in jobs if w.removeprefix("dataset=") in roi}, jobs
    counts, jobs = plan(workdir, changed(cfg, "denoise", "strategy", value="scrubbing"))
    rerun = {w.removeprefix("dataset=") for r, w in jobs if r == "connectome_dataset"}
    assert rerun == roi and counts["connectome_run"] == 3, counts


def test_shared_structure_reruns_only_the_consortia_that_use_it(done) -> None:
    workdir, cfg = done
    assert cfg["synth"]["consortia"]["abidenull"]["shared_structure"] == 0
    counts, jobs = plan(workdir, changed(cfg, "synth", "shared_structure", value=0.5))
    rerun = {w.removeprefix("consortium=") for rule, w in jobs if rule == "synth_roi_cohort"}
    roi = {n for n, c in cfg["synth"]["consortia"].items() if c.get("tier", "roi") == "roi"}
    assert rerun == roi - {"abidenull"}
    assert counts["synth_voxel_cohort"] == 1 and counts["synth_voxel_subject"] == 3
    # Its own override changed: the null cohort (only) reruns.
    null = ("synth", "consortia", "abidenull", "shared_structure")
    counts, jobs = plan(workdir, changed(cfg, *null, value=0.1))
    assert counts["synth_roi_cohort"] == 1 and ("synth_roi_cohort", "consortium=abidenull") in jobs


def test_control_permutations_rerun_only_the_tasks_with_the_control(done) -> None:
    workdir, cfg = done
    models = {t: task.get("models", cfg["evaluate"]["models"]) for t, task in cfg["tasks"].items()}
    with_control = {t for t, names in models.items() if "shuffled-labels" in names}
    assert with_control == {"autism"} and len(cfg["tasks"]) == 5
    counts, jobs = plan(workdir, changed(cfg, "evaluate", "control_permutations", value=5))
    assert {w for rule, w in jobs if rule == "evaluate"} == {"task=autism"}
    assert set(counts) == {"evaluate", "report", "all"}, counts
    # The finetuning settings: read by the tasks with an LCM model, not by autismbase's.
    counts, jobs = plan(workdir, changed(cfg, "evaluate", "finetune", "epochs", value=3))
    evaluated = {w.removeprefix("task=") for rule, w in jobs if rule == "evaluate"}
    assert evaluated == set(cfg["tasks"]) - {"autismbase"}


def test_the_ridge_maps_threshold_reruns_the_maps_and_their_evaluations_only(done) -> None:
    """evaluate.bei_linear_min_values reaches lcm bei-maps as --min-values: rule bei_maps
    reruns with the evaluations that read its maps and the report, never pretraining."""
    workdir, cfg = done
    counts, jobs = plan(workdir, changed(cfg, "evaluate", "bei_linear_min_values", value=30))
    assert counts == {"bei_maps": 1, "evaluate": 4, "report": 1, "all": 1}, counts
    assert {w for r, w in jobs if r == "evaluate"} == {f"task={t}" for t in bei_linear_tasks(cfg)}
    config = write_config(workdir, changed(cfg, "evaluate", "bei_linear_min_values", value=30))
    forced = ["-n", "-p", "--forcerun", "bei_maps", "--cores", "1"]
    proc = snakemake(ROOT, workdir, "--configfile", str(config), *forced)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    command = next(x for x in proc.stdout.splitlines() if " bei-maps --store " in x)
    assert " --min-values 30 " in command


def test_a_published_reference_range_reruns_the_report_alone(done) -> None:
    """tasks.<name>.reference is read by lcm report alone (--references, a param of the
    report): setting or editing it reruns the report and no evaluation."""
    workdir, cfg = done
    reference = {"metric": "auc", "range": [0.65, 0.72], "source": "Author et al. 2020"}
    ranged = changed(cfg, "tasks", "autism", "reference", value=reference)
    counts, _ = plan(workdir, ranged)
    assert counts == {"report": 1, "all": 1}, counts
    config = write_config(workdir, ranged)
    forced = ["-n", "-p", "--forcerun", "report", "--cores", "1"]
    proc = snakemake(ROOT, workdir, "--configfile", str(config), *forced)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    command = next(x for x in proc.stdout.splitlines() if " report --metrics " in x)
    passed = re.search(r" --references '(\{.*?\})' ", command)
    assert passed and json.loads(passed.group(1)) == {"autism": reference}, command


def test_how_often_the_training_state_is_saved_reruns_no_pretraining(done) -> None:
    """checkpoint_every changes no weight: it reaches `lcm pretrain` on the command line, not
    as a param (it reran pretraining and everything after it)."""
    workdir, cfg = done
    new = changed(cfg, "pretrain", "checkpoint_every", value=7)
    assert plan(workdir, new)[0] == {}
    config = write_config(workdir, new)
    proc = snakemake(
        ROOT, workdir, "--configfile", str(config), "-n", "-p", "--forcerun", "pretrain"
    )
    assert "--checkpoint-every $LCM_CHECKPOINT_EVERY" in proc.stdout + proc.stderr
    # A setting that does change the weights still reruns it.
    assert plan(workdir, changed(cfg, "pretrain", "lr", value=0.01))[0]["pretrain"] == 1


def test_container_settings_rerun_nothing_with_existing_derivatives(done) -> None:
    workdir, cfg = done
    assert cfg["fmriprep"]["runner"] == "existing"
    new = changed(cfg, "fmriprep", "image", value="nipreps/fmriprep:24.1.0")
    new["fmriprep"].update(work_dir="/scratch/fmriprep", extra_args=["--nthreads", "4"])
    assert plan(workdir, new)[0] == {}


def test_a_container_run_reruns_fmriprep_with_its_work_folder_under_the_results(done) -> None:
    """Switching from existing derivatives to docker is a change fMRIPrep's jobs read; the work
    folder is then ``<results_dir>/work/fmriprep`` unless the config names one."""
    workdir, cfg = done
    new = changed(cfg, "fmriprep", "runner", value="docker")
    (workdir / "license.txt").write_text("FreeSurfer licence\n")
    new["fmriprep"]["fs_license"] = str(workdir / "license.txt")
    config = write_config(workdir, new)
    proc = snakemake(ROOT, workdir, "--configfile", str(config), "-n", "-p", "--cores", "1")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert planned_jobs(proc).get("fmriprep", 0) > 0
    assert f"--work-dir {cfg['results_dir']}/work/fmriprep" in text


def test_the_ingest_cache_reruns_nothing(done) -> None:
    """ingest.cache makes ingest faster and changes no manifest: switching it reruns no job (it
    reran every dataset's ingest down to pretraining)."""
    workdir, cfg = done
    assert cfg["ingest"].get("cache", True) is not False
    assert plan(workdir, changed(cfg, "ingest", "cache", value=False))[0] == {}


def test_the_validator_reruns_only_the_raw_bids_ingest(done) -> None:
    """ingest.validate applies to raw BIDS datasets only: the other datasets' ingests (ROI
    time series here) do not rerun, nor anything only they feed."""
    workdir, cfg = done
    raw = {n for n, d in cfg["datasets"].items() if d["entry"] == "bids"}
    assert raw == {"bidsdemo"} and len(cfg["datasets"]) > 1
    counts, jobs = plan(workdir, changed(cfg, "ingest", "validate", value=False))
    assert {w for rule, w in jobs if rule == "ingest"} == {"dataset=bidsdemo"}, counts
    connectomes = {w for rule, w in jobs if rule == "connectome_dataset"}
    assert connectomes <= {"dataset=bidsdemo"}, connectomes
    assert not SYNTH_RULES & set(counts), counts


def test_the_seg_label_of_input_files_reruns_no_voxel_run(done) -> None:
    """atlas.seg names the seg- label of parcellated inputs: the voxel runs never read it."""
    workdir, cfg = done
    counts, _ = plan(workdir, changed(cfg, "atlas", "seg", value="AAL"))
    assert counts.get("connectome_dataset") and "connectome_run" not in counts, counts


def test_a_task_of_baselines_and_bei_linear_finetunes_nothing(done) -> None:
    """bei-linear reads the pretraining's ridge maps: its task gets no finetuned classifier."""
    workdir, cfg = done
    new = yaml.safe_load(yaml.safe_dump(cfg))
    new["tasks"]["autismlin"] = {**cfg["tasks"]["autism"], "models": ["logreg", "bei-linear"]}
    _, jobs = plan(workdir, new)
    assert ("evaluate", "task=autismlin") in jobs
    assert not [(r, w) for r, w in jobs if w == "task=autismlin" and r in ("finetune", "embed")]


def test_the_ridge_maps_are_an_output_of_their_own_rule_and_an_input_of_bei_linear(done) -> None:
    """bei_linear.npz gone (an intermediate file, as Snakemake sees it): an evaluation of
    bei-linear run again has rule bei_maps make it first, instead of failing for want of it,
    and pretraining does not run for it."""
    workdir, cfg = done
    maps = workdir / "results" / "models" / "pretrain" / "bei_linear.npz"
    stat = maps.stat()
    maps.unlink()
    target = "results/metrics/task-autism_metrics.parquet"
    try:
        counts, _ = plan(workdir, cfg, "--forcerun", "evaluate", "--", target)
    finally:  # as it was, for the module's other tests
        maps.touch()
        os.utime(maps, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "bei-linear" in cfg["tasks"]["autism"].get("models", cfg["evaluate"]["models"])
    assert counts == {"bei_maps": 1, "evaluate": 1}, counts  # the target named, no "all"


def test_the_ridge_maps_are_fitted_on_pretrainings_cohort_and_pretraining_fits_none(done):
    """pretrain no longer carries --bei-maps (a param: adding bei-linear reran it); rule
    bei_maps reads the same store, catalogue, datasets and seed, so the maps describe the
    checkpoint's very cohort, and its hold-out is the same subjects'."""
    workdir, cfg = done
    config = write_config(workdir, cfg)
    forced = ["-n", "-p", "--forcerun", "pretrain", "bei_maps", "--cores", "1"]
    proc = snakemake(ROOT, workdir, "--configfile", str(config), *forced)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    pretrain = next(x for x in lines if " pretrain --store " in x)
    maps = next(x for x in lines if " bei-maps --store " in x)
    assert "--bei-maps" not in pretrain and "--rule bei_maps " in maps

    def cohort(line: str) -> dict[str, str]:
        words = line.split(" --")
        keep = ("store ", "atlas ", "catalogue ", "datasets ", "seed ")
        return {w.split(" ", 1)[0]: w.split(" ", 1)[1] for w in words if w.startswith(keep)}

    assert cohort(maps) == cohort(pretrain) and len(cohort(maps)) == 5, cohort(maps)
    assert "--out-dir results/models/pretrain" in maps
    assert "--out-dir results/models/pretrain " in pretrain


def test_the_report_reads_the_finetuned_models_and_the_ridge_maps(done) -> None:
    """The report names the models behind its numbers: the finetuned models its attention
    maps come from (their model.json) and the ridge maps behind bei-linear; without
    bei-linear, no maps."""
    workdir, cfg = done
    forced = ["-n", "-p", "--forcerun", "report", "--cores", "1"]

    def report_command(config: dict) -> str:
        path = write_config(workdir, config)
        proc = snakemake(ROOT, workdir, "--configfile", str(path), *forced)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return next(x for x in proc.stdout.splitlines() if " --rule report report " in x)

    command = report_command(cfg)
    assert " results/models/finetune/autism/model.json" in command
    assert "--bei-maps results/models/pretrain/bei_linear.npz " in command
    assert "finetune/autismbase" not in command  # a task of baselines finetunes nothing
    assert " --logs results/logs " in command  # every stage's log folder listed
    assert "--bei-maps" not in report_command(without_bei_linear(cfg))


def without_bei_linear(cfg: dict) -> dict:
    """A copy of ``cfg`` in which no task evaluates bei-linear."""
    new = yaml.safe_load(yaml.safe_dump(cfg))
    for section in (new["evaluate"], *new["tasks"].values()):
        if "models" in section:
            section["models"] = [m for m in section["models"] if m != "bei-linear"]
    return new


def bei_linear_tasks(cfg: dict) -> set[str]:
    """The tasks that evaluate bei-linear."""
    default = cfg["evaluate"]["models"]
    return {t for t, task in cfg["tasks"].items() if "bei-linear" in task.get("models", default)}


def test_dropping_bei_linear_everywhere_reruns_no_pretraining(done) -> None:
    """Only the evaluations that ran it and the report: pretraining (a day on a GPU, and every
    LCM evaluation, finetuning and embedding after it) reran for it."""
    workdir, cfg = done
    assert bei_linear_tasks(cfg) == {"autism", "alzheimers", "autismnull", "age"}
    counts, jobs = plan(workdir, without_bei_linear(cfg))
    assert set(counts) == {"evaluate", "report", "all"}, counts
    assert {w for r, w in jobs if r == "evaluate"} == {f"task={t}" for t in bei_linear_tasks(cfg)}


@pytest.fixture(scope="module")
def done_without_bei_linear(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The demo workflow run to the end with no task evaluating bei-linear: no ridge maps."""
    workdir = tmp_path_factory.mktemp("rerun-no-bei-linear")
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    cfg = without_bei_linear(cfg)
    touch_all(ROOT, workdir, write_config(workdir, cfg))
    assert not (workdir / "results" / "models" / "pretrain" / "bei_linear.npz").exists()
    return workdir, cfg


def test_adding_bei_linear_runs_the_maps_and_its_evaluations_only(done_without_bei_linear):
    workdir, cfg = done_without_bei_linear
    one = yaml.safe_load(yaml.safe_dump(cfg))
    one["tasks"]["autismnull"]["models"].append("bei-linear")
    counts, jobs = plan(workdir, one)
    assert counts == {"bei_maps": 1, "evaluate": 1, "report": 1, "all": 1}, counts
    assert ("evaluate", "task=autismnull") in jobs
    # Back in every task of the demo: the maps once, the evaluations that read them.
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    demo["variables"] = cfg["variables"]
    counts, _ = plan(workdir, demo)
    assert counts == {"bei_maps": 1, "evaluate": 4, "report": 1, "all": 1}, counts


# -- the variable catalogue: each job reruns for the part of it that it reads -----------------


@pytest.fixture(scope="module")
def done_catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """The demo workflow with every job done, its catalogue a copy that a test may edit."""
    workdir = tmp_path_factory.mktemp("rerun-catalogue")
    catalogue = workdir / "variables.yaml"
    catalogue.write_text((ROOT / "config" / "variables.yaml").read_text())
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(catalogue)
    touch_all(ROOT, workdir, write_config(workdir, cfg))
    return workdir, cfg, catalogue


def plan_with_catalogue(done_catalogue, edit) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """The dry run after ``edit(catalogue dict)`` is written to the file (then put back)."""
    workdir, cfg, catalogue = done_catalogue
    text = catalogue.read_text()
    document = yaml.safe_load(text)
    edit(document)
    catalogue.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        return plan(workdir, cfg)
    finally:
        catalogue.write_text(text)  # newer than every output: ancient, it reruns nothing


def task_jobs(cfg: dict, tasks: set[str]) -> set[tuple[str, str]]:
    """The jobs of ``tasks`` in the demo: splits and evaluate, and finetune and embed for
    those that finetune an LCM classifier (binary, an LCM model)."""
    default = cfg["evaluate"]["models"]
    jobs = set()
    for t in tasks:
        rules = ["splits", "evaluate"]
        task = cfg["tasks"][t]
        if "positive" in task and "lcm" in task.get("models", default):
            rules += ["finetune", "embed"]
        jobs |= {(r, f"task={t}") for r in rules}
    return jobs


def test_the_catalogue_file_edited_but_not_what_a_job_reads_reruns_nothing(done_catalogue):
    """A new cohort's coding, a comment: its modification time reran every job from the store
    on, pretraining included."""
    workdir, cfg, catalogue = done_catalogue
    assert plan(workdir, cfg)[0] == {}
    text = catalogue.read_text()
    try:
        catalogue.write_text("# a comment\n" + text)
        assert plan(workdir, cfg)[0] == {}
    finally:
        catalogue.write_text(text)

    def new_cohort(document: dict) -> None:
        document["datasets"]["newcohort"] = {"id_column": "ID", "columns": {"age": {"column": "A"}}}

    assert plan_with_catalogue(done_catalogue, new_cohort)[0] == {}


def test_a_downstream_datasets_coding_reruns_its_store_and_tasks_only(done_catalogue) -> None:
    _, cfg, _ = done_catalogue

    def education(document: dict) -> None:
        document["datasets"]["adnilike"]["columns"]["education"] = {"column": "PTEDUCAT"}

    counts, jobs = plan_with_catalogue(done_catalogue, education)
    assert "pretrain" not in counts and "bei_maps" not in counts, counts
    expected = {("store", "dataset=adnilike"), *task_jobs(cfg, {"alzheimers"})}
    assert {j for j in jobs if j[0] != "report"} == expected, jobs
    assert counts["report"] == 1 and sum(counts.values()) == len(expected) + 2, counts

    # abidelike: two tasks read it.
    def site(document: dict) -> None:
        document["datasets"]["abidelike"]["site_column"] = "SITE_NAME"

    _, jobs = plan_with_catalogue(done_catalogue, site)
    expected = {("store", "dataset=abidelike"), *task_jobs(cfg, {"autism", "age"})}
    assert {j for j in jobs if j[0] != "report"} == expected, jobs


def test_a_pretraining_datasets_coding_reruns_pretraining_not_the_others_stores(done_catalogue):
    _, cfg, _ = done_catalogue

    def education(document: dict) -> None:
        document["datasets"]["hcplike"]["columns"]["education"]["map"]["17"] = 4

    counts, jobs = plan_with_catalogue(done_catalogue, education)
    assert {w for r, w in jobs if r == "store"} == {"dataset=hcplike"}, jobs
    assert counts["pretrain"] == 1 and counts["bei_maps"] == 1, counts
    assert "splits" not in counts, counts  # a task's folds read its own dataset only
    assert counts["evaluate"] == len(cfg["tasks"]), counts


@pytest.mark.parametrize(
    ("variable", "key", "value"),
    [("age", "range", [5, 90]), ("sex", "levels", ["M", "F"]), ("bmi", "units", "kg/m2")],
)
def test_a_variables_definition_reruns_every_job_that_reads_the_catalogue(
    done_catalogue, variable: str, key: str, value: object
) -> None:
    """The variables are every job's (the store's partitions and a checkpoint record them):
    a range, levels or units changed is never left to stale results."""
    _, cfg, _ = done_catalogue

    def change(document: dict) -> None:
        document["variables"][variable][key] = value

    counts, _ = plan_with_catalogue(done_catalogue, change)
    assert counts["pretrain"] == 1 and counts["bei_maps"] == 1, counts
    assert counts["store"] == len(cfg["datasets"]), counts
    for rule in ("splits", "evaluate"):
        assert counts[rule] == len(cfg["tasks"]), counts


# -- a job killed while it reruns for a setting ---------------------------------------------


@pytest.fixture
def done_fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(work dir, config) of the demo workflow recorded as done, for one test to break."""
    workdir = tmp_path_factory.mktemp("rerun-killed")
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    touch_all(ROOT, workdir, write_config(workdir, cfg))
    return workdir, cfg


def killed(workdir: Path, cfg: dict, outputs: list[Path]) -> None:
    """What a job killed under ``cfg`` leaves: Snakemake's record of its outputs holds the new
    params (written when it started) and the outputs themselves are deleted (incomplete)."""
    config = write_config(workdir, cfg)
    proc = snakemake(ROOT, workdir, "--configfile", str(config), "--touch", "--cores", "1",
                     *(str(p.relative_to(workdir)) for p in outputs))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in outputs:
        path.unlink()


def test_a_pretraining_killed_after_a_setting_changed_reruns_with_what_follows(
    done_fresh,
) -> None:
    """A kill deletes the outputs and keeps the new settings in the pretraining's record: the
    jobs after it carry those settings too, so they stay out of date and bring it back (the
    next run said "Nothing to be done", the report showing the old model)."""
    workdir, cfg = done_fresh
    new = changed(cfg, "pretrain", "epochs", value=40)
    names = ("model.safetensors", "model.json", "history.tsv", "bei_eval.tsv")
    outputs = [workdir / paths.model_file(cfg["results_dir"], "pretrain", n) for n in names]
    killed(workdir, new, outputs)
    counts, _ = plan(workdir, new)
    assert counts.get("pretrain") == 1, counts
    for rule in ("finetune", "embed", "evaluate", "report"):
        assert counts.get(rule), (rule, counts)
    assert "bei_maps" not in counts, counts


def test_an_evaluation_killed_after_a_setting_changed_reruns_with_the_report(
    done_fresh,
) -> None:
    workdir, cfg = done_fresh
    new = changed(cfg, "evaluate", "control_permutations", value=5)
    kinds = ("metrics", "predictions")
    outputs = [workdir / paths.task_metrics(cfg["results_dir"], "autism", k) for k in kinds]
    killed(workdir, new, outputs)
    counts, jobs = plan(workdir, new)
    assert {w for rule, w in jobs if rule == "evaluate"} == {"task=autism"}, jobs
    assert set(counts) == {"evaluate", "report", "all"}, counts
