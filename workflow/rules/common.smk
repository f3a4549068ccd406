# Helpers shared by the rules: small `get_*` functions over the `lcm` package (run lists, params,
# option fragments) on Snakemake's public API. No domain logic and no path spelled here: every
# output path comes from `lcm.io.paths` (imported as `paths`, called by the rules too), or for the
# synthetic consortia from `lcm.synth.plan` (imported as `synth_plan`).
#
# Shell quoting, one convention (tests/workflow/test_workflow_injection_hostile.py): params hold raw
# values and every field of a `shell:` command is `:q`-quoted ({input.x:q}, {params.x:q}, ...),
# except the option fragments named in SHELL_FRAGMENTS below, whose functions build them with
# `quoted`/`as_json` around every value they insert. No config value reaches a shell unquoted.
import functools
import hashlib
import inspect
import json
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod

import lcm
from lcm.config import dataset_denoise, read_yaml_mapping, retype_overrides, task_models
from lcm.connectome.config_check import check_config as check_connectome_config
from lcm.connectome.precheck import CHECKED_SETTINGS
from lcm.entries import entry_type
from lcm.evaluate.config_schema import validate_config
from lcm.evaluate.registry import checkpoint_models, maps_models, model_family
from lcm.evaluate.registry import needs_torch
from lcm.io import paths
from lcm.io.config_copy import write_config_copy
from lcm.io.ownership import RESULTS_OWNER, claim_results
from lcm.io.provenance import CONFIG_HASH_ENV, config_hash
from lcm.store.phenotype import sidecar_path
from lcm.model.config import check_model_settings
from lcm.synth import plan as synth_plan
from lcm.train.settings import BOOKKEEPING_SETTINGS
from lcm.train.outputs import (
    BEI_EVAL_NAME,
    HISTORY_NAME,
    MAPS_FILE,
    META_NAME,
    WEIGHTS_NAME,
)
from lcm.workflow.catalogue import catalogue_digest
from lcm.workflow.plan import WorkflowPlan
from lcm.workflow.pythonpath import package_pythonpath
from lcm.workflow.records import ADOPT_KEY, check_records, write_records_marker
from lcm.workflow.hash import code_hash
from lcm.workflow.resources import connectome_mem_mb as connectome_memory
from lcm.preprocess.container import NO_TEMPLATEFLOW_WARNING, docker_templateflow_note
from lcm.workflow.resources import evaluate_gpu, evaluate_runtime
from lcm.workflow.resources import fmriprep_mem_mb, fmriprep_runtime, fmriprep_threads


def config_source():
    """Where the config comes from, for messages: its files, and any ``--config`` overrides."""
    files = (
        ", ".join(os.path.abspath(path) for path in workflow.configfiles) or "config"
    )
    return files + (
        " with --config overrides" if workflow.config_settings.config else ""
    )


# The one validation of the config (defaults filled; errors name its file and the key, in
# one line). Each config file read again first, refusing a key given twice in one mapping
# (Snakemake's reader keeps the last silently: a second dataset of the same name replaced the
# first); then the values the schema cannot relate, which the jobs' own settings check (a
# band-pass, scrubbing thresholds, a window, the model's sizes): said by `snakemake -n`, not
# by a job hours into the run.
for _path in workflow.configfiles:
    read_yaml_mapping(_path, "Config file")
# Nested --config values arrive as text ('evaluate={n_folds: 5}' gives '5'): typed as the
# schema wants them, or no nested setting could be overridden.
if workflow.config_settings.config:
    config.update(retype_overrides(config, workflow.config_settings.config))
CONFIG_SOURCE = config_source()
CFG = validate_config(config, source=CONFIG_SOURCE)
check_connectome_config(CFG, CONFIG_SOURCE)
check_model_settings(CFG["model"], CONFIG_SOURCE)
# Not a setting of any output (see `snakemake_records` below): kept out of the config and of
# its hash, which the sidecars record.
ADOPT_RECORDS = CFG.pop(ADOPT_KEY)


def get_rule_python():
    """The interpreter rules run ``-m lcm`` with, as one shell word.

    The one running Snakemake, so that ``.venv/bin/snakemake`` works with a bare PATH; under
    ``--sdm conda`` the rule's own env's ``python`` (first on PATH once the env is active).
    """
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return shlex.quote(sys.executable)


# Every rule runs `"$LCM_PYTHON" -m lcm`. PYTHONPATH makes the package importable inside per-rule
# conda envs too; the prefix also hands every job the hash of the config it was built from
# (recorded in its sidecars). The prefix is not part of a rule's code: it triggers no rerun.
# (Snakemake formats the prefix once, hence the doubled braces.)
# Settings that change no output reach the jobs the same way, as variables of the prefix:
# switching them reruns no job (as params they reran ingest or pretraining and all after).
UNTRACKED_SETTINGS = {
    # lcm ingest: the index cache only makes it faster.
    "LCM_INGEST_CACHE_ARG": "" if CFG["ingest"]["cache"] else "--no-cache",
    # lcm fmriprep: whether a completed run's work folder stays.
    "LCM_KEEP_WORK_ARG": "--keep-work" if CFG["fmriprep"]["keep_work"] else "",
    # lcm pretrain: how often the training state is saved (BOOKKEEPING_SETTINGS).
    "LCM_CHECKPOINT_EVERY": str(CFG["pretrain"]["checkpoint_every"]),
}
# The folder above the package: the repository of a checkout, or, for an installed lcm, a
# folder holding the package alone (its site-packages would shadow a conda env's packages).
LCM_PYTHONPATH = package_pythonpath(Path(lcm.__file__).parent, ".snakemake")
shell.prefix(
    f"export LCM_PYTHON={get_rule_python()}; export PYTHONPATH="
    + shlex.quote(str(LCM_PYTHONPATH))
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
    + f"export {CONFIG_HASH_ENV}={config_hash(CFG)}; "
    + "".join(
        f"{name}={shlex.quote(value)}; " for name, value in UNTRACKED_SETTINGS.items()
    )
)
# A job that Snakemake runs in a process of its own (each SLURM job re-reads this file on its
# node) skips what the main process already checked and said: the atlas files, the warnings.
IN_JOB = workflow.remote_exec or workflow.subprocess_exec
PLAN = WorkflowPlan(CFG, check_files=not IN_JOB, source=CONFIG_SOURCE)
if not IN_JOB:
    # Real datasets' folders, phenotype tables and the catalogue: a mistyped path said now.
    PLAN.check_inputs(variables_given="variables" in config)
RESULTS = CFG["results_dir"]


def snakemake_records():
    """Where Snakemake keeps its records of the outputs (params, code: what decides a rerun),
    or None where they do not depend on the folder it runs in (a database URL).

    ``.snakemake`` of the working directory: Snakemake 9 sets ``workflow.persistence`` up only
    after this file is read (``snakemake.persistence``: ``os.path.abspath(".snakemake")``).
    """
    if workflow.workflow_settings.persistence_backend_db_url:
        return None
    if workflow.persistence is not None:
        return str(workflow.persistence.path)
    return os.path.abspath(".snakemake")


# results_dir may lie outside the folder Snakemake runs in, which holds its records: run from
# another folder, it found none of the results', so a changed setting reran nothing (stale
# results). Refused before any job, dry runs included (lcm.workflow.records), unless adopted;
# not in a job's own process, nor by `snakemake --lint` (which Snakemake runs without checking
# environment variables, its one mark at parse time). The first run notes its records below.
RECORDS = snakemake_records()
WRITE_RECORDS = (
    RECORDS is not None
    and not IN_JOB
    and getattr(workflow, "check_envvars", True)
    and check_records(RESULTS, RECORDS, ADOPT_RECORDS, CONFIG_SOURCE)
)
STORE = paths.store_dir(RESULTS)
ATLAS = CFG["atlas"]["name"]
SPACE = CFG["fmriprep"]["output_space"]
TASKS = sorted(CFG["tasks"])
# Tasks evaluating an LCM variant that starts from the (BEI) pretrained checkpoint, and those
# evaluating the self-supervised-only one: baseline-only tasks need no pretraining at all
# (lcm.evaluate.config_schema refuses an LCM model without a role: pretrain dataset, in one line).
CHECKPOINT_TASKS = [t for t in TASKS if checkpoint_models(task_models(CFG, t), "bei")]
SSL_TASKS = [t for t in TASKS if checkpoint_models(task_models(CFG, t), "ssl")]
# Binary tasks with an LCM model get the deliverable finetuned classifier (not those whose only
# checkpoint reader is bei-linear: it reads the ridge maps and finetunes nothing).
FINETUNE_TASKS = [
    t
    for t in CHECKPOINT_TASKS
    if "positive" in CFG["tasks"][t]
    and any(
        model_family(m) == "LCM" for m in checkpoint_models(task_models(CFG, t), "bei")
    )
]
# Tasks whose bei-linear baseline reads the pretraining's ridge maps (bei_linear.npz, rule
# bei_maps): their evaluation alone takes the maps as an input.
BEI_MAPS_TASKS = [t for t in CHECKPOINT_TASKS if maps_models(task_models(CFG, t))]


# Before the first job: results_dir is LCM's, or the run stops with nothing written. Snakemake
# replaces whatever sits at an output path; a user's own models/ or report/ under a mistyped
# results_dir must not be it. Then the validated config is kept as configs/<sha256>.json: the
# sidecars record only its hash; and results_dir notes where Snakemake's records of it are, on
# the first run (or adopting others). (Dry runs and --touch, which only dates files, write
# nothing.)
onstart:
    if not workflow.touch:
        claim_results(RESULTS, RESULTS_OWNER, paths.RESULTS_ENTRIES)
        write_config_copy(RESULTS, CFG)
        if WRITE_RECORDS:
            write_records_marker(RESULTS, snakemake_records())


wildcard_constraints:
    dataset="[A-Za-z0-9]+",
    consortium="[A-Za-z0-9]+",
    subject="[A-Za-z0-9]+",
    # A run's folder below its subject's: func/ or ses-<label>/func/.
    func_dir="(ses-[A-Za-z0-9]+/)?func/",
    run_key="[A-Za-z0-9_-]+",
    task="[A-Za-z0-9]+",


def per_job(func):
    """Mark a function Snakemake calls for every job of a per-subject or per-run rule.

    Snakemake inspects such a function's signature about three times per call;
    ``inspect.signature`` returns a function's ``__signature__`` when it has one (plain Python,
    no Snakemake internals): computed once here. benchmarks/dag_scale.py at 3,000 subjects: the
    dry run's CPU time is 21.3 s with it, 23.7 s without (about 10%; wall time within noise).
    """
    func.__signature__ = inspect.signature(func)
    return func


def one_of(names):
    """Regex matching exactly these names (and nothing when the list is empty)."""
    return "|".join(names) if names else "(?!x)x"


# Params holding ready-quoted option fragments (empty or several words): the only fields a
# rule's shell command may use without `:q`.
SHELL_FRAGMENTS = (
    "atlas_args",
    "attention_arg",
    "dataset_args",
    "derivatives_arg",
    "bei_eval_arg",
    "bei_maps_arg",
    "checkpoint_arg",
    "history_arg",
    "launcher",
    "options",
    "oracle_store_arg",
    "positive_arg",
    "settings_args",
    "space_arg",
    "ssl_arg",
    "ssl_history_arg",
    "truth_arg",
)


def to_json(value):
    """A config value as JSON text, for a param quoted in the command (``{params.x:q}``)."""
    return json.dumps(value, sort_keys=True)


def as_json(value):
    """A config value as one shell-quoted JSON word, for option fragments."""
    return shlex.quote(to_json(value))


def quoted(value):
    """A value (path, label, number) as one shell word, for option fragments."""
    return shlex.quote(str(value))


def get_log(name):
    """A rule's log file (``lcm.io.paths.log_file``)."""
    return paths.log_file(RESULTS, name)


def get_dataset_value(key):
    """A param: ``datasets.<dataset>.<key>`` of the job's dataset."""
    return lookup(dpath=f"datasets/{{dataset}}/{key}", within=CFG)


def get_task_value(key):
    """A param: ``tasks.<task>.<key>`` of the job's task."""
    return lookup(dpath=f"tasks/{{task}}/{key}", within=CFG)


# --- synth and ingest -----------------------------------------------------------------------


# The atlas keys that say which atlas it is (lcm.atlas.atlas_from_settings): all `lcm synth`
# reads of the section (min_coverage and seg are the connectome and ingest stages').
ATLAS_IDENTITY = ("name", "path", "labels", "templateflow")


def synth_settings(name):
    """What ``lcm synth --consortium NAME`` reads of the config, and nothing else.

    The consortium carries its effective shared_structure (its own, else the global one), so
    the global value reruns only the consortia that use it (not a null cohort's override).
    """
    synth = CFG["synth"]
    consortium = {
        "shared_structure": synth["shared_structure"],
        **synth["consortia"][name],
    }
    return {
        "seed": CFG["seed"],
        "atlas": {key: CFG["atlas"].get(key) for key in ATLAS_IDENTITY},
        "synth": {"out_dir": synth["out_dir"], "consortia": {name: consortium}},
    }


def get_synth_settings(wildcards):
    """A synth cohort job's settings, as a JSON param (a change reruns only that job)."""
    return to_json(synth_settings(wildcards.consortium))


@per_job
def get_synth_subject_settings(wildcards):
    """A synth subject job's settings: the cohort's and fMRIPrep's output space (its names)."""
    settings = synth_settings(wildcards.consortium)
    return to_json({**settings, "fmriprep": {"output_space": SPACE}})


def get_synth_files(wildcards):
    """Files the synth stage writes for this dataset (empty for real data)."""
    return PLAN.synth_files(wildcards.dataset)


def get_listing_hash(wildcards):
    """Hash of a dataset's file listing, found at parse time (a param of ingest).

    Real datasets are not produced by a rule, so Snakemake cannot see a subject being added:
    this param changes when one is, and ingest (an aggregate) reruns; the other subjects' jobs
    do not, since they read the manifest as ``ancient``.
    """
    return PLAN.listing_hash(wildcards.dataset)


def get_ingest_space_arg(wildcards):
    """``--space`` (fMRIPrep's output space) for the entries whose space ingest checks or
    requires: voxel-level runs, a tree whose ``space-`` must be fMRIPrep's.

    ROI time series of any space are runs: passing fMRIPrep's space left XCP-D's CIFTI
    outputs (space-fsLR) out without a reason; ``ingest.select.<dataset>.space`` chooses.
    A connectome dataset's ingest ignored it, and ``lcm ingest`` refuses it there.
    """
    kind = entry_type(CFG["datasets"][wildcards.dataset]["entry"])
    checked = kind.voxel or (kind.tree is not None and kind.tree.space == "required")
    return f"--space {quoted(SPACE)}" if checked else ""


def get_ingest_options(wildcards):
    """``lcm ingest`` options: the dataset's selection and TR fallback, validator (raw BIDS),
    atlas (parcellated entries), the strategy its confounds are checked for (fMRIPrep's).

    ``--no-validate`` only where the validator runs (a raw BIDS dataset): on another entry it
    changes nothing, so it reran every dataset's ingest and what follows. The cache is not
    here: UNTRACKED_SETTINGS.
    """
    ingest = CFG["ingest"]
    opts = f"--select {as_json(ingest['select'].get(wildcards.dataset, {}))}"
    dataset = CFG["datasets"][wildcards.dataset]
    kind = entry_type(dataset["entry"])
    opts += "" if ingest["validate"] or not kind.raw else " --no-validate"
    tr = dataset.get("repetition_time")
    opts += "" if tr is None else f" --repetition-time {quoted(float(tr))}"
    if kind.parcellated:
        # Files of other parcellations (seg-) are left out at ingest, named in the summary.
        opts += f" --atlas {quoted(CFG['atlas']['name'])}"
        if CFG["atlas"].get("seg"):
            opts += f" --atlas-seg {quoted(CFG['atlas']['seg'])}"
    if kind.ingest_checks_confounds:
        # The strategy's confound columns are checked on the first run, before any run starts:
        # the keys that check reads, and no other (each reran ingest).
        denoise = {key: CFG["denoise"][key] for key in CHECKED_SETTINGS}
        opts += f" --denoise {as_json(denoise)}"
    return opts


def get_derivatives_dir(dataset):
    """fMRIPrep derivatives of a voxel-level dataset: configured, or written by the stage."""
    return PLAN.derivatives_dir(dataset, RESULTS)


def get_derivatives_arg(wildcards):
    """``--derivatives DIR`` where the dataset has (or fMRIPrep will write) derivatives."""
    path = get_derivatives_dir(wildcards.dataset)
    return f"--derivatives {quoted(path)}" if path else ""


# --- fMRIPrep and connectomes ---------------------------------------------------------------


@per_job
def get_fmriprep_inputs(wildcards):
    """Raw (and, for synthetic data, derivative) files of one subject."""
    return PLAN.synth_subject_files(wildcards.dataset, wildcards.subject)


@per_job
def get_fmriprep_manifest(wildcards):
    """The dataset's manifest: ancient (a subject added reruns no other subject's job) unless
    this subject's files changed since its job last ran (see `WorkflowPlan.subject_changed`):
    then it reruns with ingest, in the same invocation.
    """
    manifest = paths.ingest_manifest(RESULTS, wildcards.dataset)
    if PLAN.subject_changed(wildcards.dataset, wildcards.subject):
        return manifest
    return ancient(manifest)


@per_job
def get_subject_sources(wildcards):
    """Digest of one real subject's files (a param of fmriprep): an edited BOLD reruns it."""
    return PLAN.subject_sources(wildcards.dataset, wildcards.subject)


def fmriprep_runner_options(runner):
    """The fmriprep section as ``lcm fmriprep`` options for ``runner``, the same for every subject.

    ``runner: existing`` only checks derivatives already there: the image, work folder,
    licence and extra arguments are a container run's, left out (a change to them reruns no
    subject, and the record names no image that did not produce the derivatives).
    """
    fmriprep = CFG["fmriprep"]
    args = f"--runner {quoted(runner)} --output-space {quoted(SPACE)}"
    if runner == "existing":
        return args
    work_dir = paths.fmriprep_work_dir(RESULTS, fmriprep["work_dir"])
    args += f" --image {quoted(fmriprep['image'])} --work-dir {quoted(work_dir)}"
    if fmriprep["fs_license"]:
        args += f" --fs-license {quoted(fmriprep['fs_license'])}"
    if CFG["ingest"]["validate"]:
        # Ingest validated the dataset and excluded the runs it faults: fMRIPrep's validator
        # would stop a whole subject for an error in one run.
        args += " --skip-bids-validation"
    return args + f" --extra-args {as_json(fmriprep['extra_args'])}"


# Built once: fmriprep.runner applies to raw BIDS datasets only. A dataset that enters as
# fMRIPrep derivatives is always read as they are: a container run would take its derivatives
# folder as input and output at once.
FMRIPREP_OPTIONS = {
    raw: fmriprep_runner_options(CFG["fmriprep"]["runner"] if raw else "existing")
    for raw in (True, False)
}


def runs_fmriprep(dataset):
    """Whether the dataset's fMRIPrep jobs run a container (raw BIDS, runner not existing)."""
    raw = entry_type(CFG["datasets"][dataset]["entry"]).raw
    return raw and CFG["fmriprep"]["runner"] != "existing"


# Said once when the workflow loads (each fMRIPrep job's log says it again): fMRIPrep in apptainer
# without TEMPLATEFLOW_HOME downloads its templates, which fails on offline compute nodes.
if (
    not IN_JOB
    and CFG["fmriprep"]["runner"] == "apptainer"
    and any(runs_fmriprep(d) for d in CFG["datasets"])
    and not os.environ.get("TEMPLATEFLOW_HOME")
):
    logger.warning(f"fmriprep.runner apptainer: {NO_TEMPLATEFLOW_WARNING}")
# Said once too: fmriprep-docker cannot mount the folder, so docker's fMRIPrep never sees it.
if (
    not IN_JOB
    and CFG["fmriprep"]["runner"] == "docker"
    and any(runs_fmriprep(d) for d in CFG["datasets"])
    and (note := docker_templateflow_note(os.environ.get("TEMPLATEFLOW_HOME")))
):
    logger.warning(f"fmriprep.runner docker: {note}")


@per_job
def get_fmriprep_threads(wildcards):
    """threads of an fMRIPrep job (lcm.workflow.resources): 8 for a container run, else 1."""
    return fmriprep_threads(runs_fmriprep(wildcards.dataset))


@per_job
def get_fmriprep_mem_mb(wildcards, attempt):
    """mem_mb of an fMRIPrep job per attempt (lcm.workflow.resources)."""
    return fmriprep_mem_mb(runs_fmriprep(wildcards.dataset), attempt)


@per_job
def get_fmriprep_runtime(wildcards, attempt):
    """runtime (minutes) of an fMRIPrep job per attempt (lcm.workflow.resources): a subject
    killed at its time limit is resubmitted with longer, not to time out again."""
    return fmriprep_runtime(runs_fmriprep(wildcards.dataset), attempt)


@per_job
def get_fmriprep_dataset_args(wildcards):
    """``lcm fmriprep`` options of the job's dataset: name, BIDS path, task, derivatives, and
    the runner options its entry takes (`FMRIPREP_OPTIONS`).

    One param for them all: a per-job rule pays for every param and every field of its
    command, 10,000 times over (benchmarks/dag_scale.py).
    """
    ds = wildcards.dataset
    dataset = CFG["datasets"][ds]
    return (
        f"--dataset {quoted(ds)} --bids {quoted(dataset['path'])}"
        f" --task {quoted(dataset['task'])}"
        f" --derivatives {quoted(get_derivatives_dir(ds))}"
        f" {FMRIPREP_OPTIONS[entry_type(dataset['entry']).raw]}"
    )


@per_job
def get_connectome_mem_mb(wildcards, input, attempt):
    """mem_mb of a connectome run from its BOLD size, per attempt (lcm.workflow.resources)."""
    planned = PLAN.bold_path(wildcards.dataset, wildcards.run_key)
    return connectome_memory(input.record, wildcards.run_key, planned, attempt)


@per_job
def get_connectome_dir(wildcards):
    """The dataset's connectome folder (``--out-dir`` of a run). A function, not a pattern: the
    settings stamp, an input of the run, lies in it, and a hardcoded prefix of an input fails on
    executors without a shared filesystem (``snakemake --lint``)."""
    return paths.connectome_dir(RESULTS, wildcards.dataset)


def get_run_qc_files(wildcards):
    """Every run's QC JSON of a dataset, the inputs of its QC table."""
    ds = wildcards.dataset
    return [
        paths.run_qc_json(RESULTS, ds, paths.run_location(run), SPACE, ATLAS)
        for run in PLAN.runs(ds)
    ]


def get_atlas_args(with_seg=True):
    """Atlas options of `lcm connectome` and `lcm report`.

    A user atlas by image and labels, by labels alone (ROI-level entries) or by a TemplateFlow
    query; ``--atlas-seg`` (the seg- label of input files) only for the connectome verbs.
    """
    atlas = CFG["atlas"]
    args = f"--atlas {quoted(atlas['name'])}"
    if atlas["path"]:
        args += f" --atlas-path {quoted(atlas['path'])}"
    if atlas["labels"]:
        args += f" --atlas-labels {quoted(atlas['labels'])}"
    if with_seg and atlas.get("seg"):
        args += f" --atlas-seg {quoted(atlas['seg'])}"
    if atlas.get("templateflow"):
        args += f" --atlas-templateflow {as_json(atlas['templateflow'])}"
    return args


def get_connectome_options():
    """Atlas, coverage, denoising and connectome options of ``lcm connectome run`` (a voxel run
    is parcellated with the atlas itself: no ``--atlas-seg``, which would rerun every run).
    """
    return (
        f"{get_atlas_args(with_seg=False)} --min-coverage {quoted(CFG['atlas']['min_coverage'])}"
        f" --denoise {as_json(CFG['denoise'])} --connectome {as_json(CFG['connectome'])}"
    )


def get_entry_settings(wildcards):
    """The config sections a parcellated entry's processing reads, as options: of each, the
    keys it reads (lcm.entries); denoise with the dataset's own overrides
    (datasets.<name>.denoise)."""
    kind = entry_type(CFG["datasets"][wildcards.dataset]["entry"])
    values = {"denoise": dataset_denoise(CFG, wildcards.dataset)}
    return " ".join(
        f"--{name} {as_json(kind.read_settings(name, values.get(name, CFG[name])))}"
        for name in kind.settings
    )


def get_atlas_files():
    """A user atlas's files (tracked inputs); the registry atlases ship with the package."""
    atlas = CFG["atlas"]
    return [path for path in (atlas["path"], atlas["labels"]) if path]


# --- store and models -----------------------------------------------------------------------


def get_store_files(dataset):
    """The feature-store partitions of ``dataset`` (the connectomes' first), and its
    missingness report: not read by the jobs taking it, but the one output of the store job
    that Snakemake deletes when the job fails (the partitions are update() outputs, put back
    with a new time; store.smk), so that the job stays due."""
    return [
        str(paths.connectome_path(STORE, ATLAS, dataset)),
        str(paths.variables_path(STORE, dataset)),
        str(paths.missingness_path(STORE, dataset)),
    ]


def get_store_root(wildcards, input):
    """Root of the feature store, from the job's first input partition."""
    return paths.store_root(input.store[0])


def get_written_store_root(wildcards, output):
    """Root of the feature store, from the partition the job writes."""
    return paths.store_root(output.connectomes)


def get_pretrain_store_files():
    """The partitions of every dataset with ``role: pretrain``."""
    return [f for ds in PLAN.by_role("pretrain") for f in get_store_files(ds)]


def get_task_store_files(wildcards):
    """The partitions of the task's dataset."""
    return get_store_files(CFG["tasks"][wildcards.task]["dataset"])


# The catalogue is an ancient() input of the rules that read it: editing the file reruns only the
# jobs whose part of it changed, which a param holds (lcm.workflow.catalogue): the variables
# and the codings of the datasets the job reads (its mtime reran every job from the store on).
def get_catalogue():
    """The catalogue file, as an input whose modification time reruns nothing."""
    return ancient(CFG["variables"])


def get_dataset_catalogue(wildcards):
    """A param: what a store job reads of the catalogue (the variables, its dataset's coding)."""
    return catalogue_digest(CFG["variables"], [wildcards.dataset])


def get_pretrain_catalogue(wildcards):
    """A param: what pretraining (and its ridge maps) reads of the catalogue: the variables, the
    pretraining datasets' codings."""
    return catalogue_digest(CFG["variables"], PLAN.by_role("pretrain"))


def get_task_catalogue(wildcards):
    """A param: what a task's jobs read of the catalogue: the variables, its dataset's coding
    (the pretraining datasets' reach them through the checkpoint, an input)."""
    return catalogue_digest(CFG["variables"], [CFG["tasks"][wildcards.task]["dataset"]])


def get_bei_maps():
    """The ridge maps of bei-linear (rule bei_maps), beside the pretrained checkpoint."""
    return paths.model_file(RESULTS, "pretrain", MAPS_FILE)


def get_task_bei_maps(wildcards):
    """The ridge maps the task's bei-linear baseline reads, or nothing."""
    return [get_bei_maps()] if wildcards.task in BEI_MAPS_TASKS else []


def get_pretrained_model(name="pretrain"):
    """Weights of the pretrained checkpoint: ``pretrain`` (BEI) or ``pretrain-ssl``."""
    return paths.model_file(RESULTS, name, WEIGHTS_NAME)


# The pretrain settings that change no weight (how often the state is saved) are no param:
# changing them reruns no pretraining; UNTRACKED_SETTINGS gives them to the command.
PRETRAIN_SETTINGS = {
    k: v for k, v in CFG["pretrain"].items() if k not in BOOKKEEPING_SETTINGS
}


def get_ssl_pretrain_settings():
    """The pretrain settings with the BEI losses off: the lcm-ssl ablation's checkpoint."""
    return to_json({**PRETRAIN_SETTINGS, "bei_weight": 0})


def get_checkpoint(wildcards):
    """The pretrained checkpoint, where the task evaluates an LCM model that needs it."""
    return [get_pretrained_model()] if wildcards.task in CHECKPOINT_TASKS else []


def get_checkpoint_arg(wildcards, input):
    """``--checkpoint DIR`` when the task needs the pretrained checkpoint, else nothing."""
    if not input.checkpoint:
        return ""
    return f"--checkpoint {quoted(Path(input.checkpoint[0]).parent)}"


def get_ssl_checkpoint(wildcards):
    """The self-supervised-only checkpoint, where the task evaluates lcm-ssl."""
    return [get_pretrained_model("pretrain-ssl")] if wildcards.task in SSL_TASKS else []


def get_ssl_checkpoint_arg(wildcards, input):
    """``--ssl-checkpoint DIR`` when lcm-ssl is evaluated on this task, else nothing."""
    if not input.ssl:
        return ""
    return f"--ssl-checkpoint {quoted(Path(input.ssl[0]).parent)}"


# --- splits, evaluation and report ----------------------------------------------------------


def get_evaluate_settings(wildcards):
    """A param: what the job's task reads of the evaluate section (``evaluate_settings``)."""
    return evaluate_settings(wildcards.task)


def evaluate_settings(task):
    """What one task's evaluation reads of the evaluate section (its model list applied).

    Every task reads the folds, seeds, label fractions and split; ``finetune`` only where a
    model finetunes LCM (the LCM family and shuffled-lcm, lcm.evaluate.factories),
    ``control_permutations`` only where ``shuffled-labels`` runs: changing either reruns only
    those tasks. ``lcm evaluate`` takes the defaults for keys left out; none is used then.
    """
    evaluate = CFG["evaluate"]
    models = task_models(CFG, task)
    settings = {
        key: evaluate[key] for key in ("n_folds", "seeds", "label_fractions", "split")
    }
    settings["models"] = models
    if any(model_family(m) == "LCM" or needs_torch(m) for m in models):
        settings["finetune"] = evaluate["finetune"]
    if "shuffled-labels" in models:
        settings["control_permutations"] = evaluate["control_permutations"]
    return to_json(settings)


def get_evaluate_gpu(wildcards):
    """gpu of a task's evaluation: 1 where a model trains with torch (lcm.workflow.resources)."""
    return evaluate_gpu(task_models(CFG, wildcards.task))


def get_evaluate_runtime(wildcards, attempt):
    """runtime (minutes) of a task's evaluation, from its models, per attempt
    (lcm.workflow.resources)."""
    return evaluate_runtime(task_models(CFG, wildcards.task), attempt)


def get_positive_arg(wildcards):
    """``--positive LEVEL`` for a binary task; nothing for a continuous one."""
    positive = CFG["tasks"][wildcards.task].get("positive")
    return "" if positive is None else f"--positive {quoted(positive)}"


def get_evaluate_repeats():
    """``evaluate.seeds``, the ``--repeats`` of ``lcm splits`` (a list: one word per seed)."""
    return [str(seed) for seed in CFG["evaluate"]["seeds"]]


# --- what a job's inputs were made with ------------------------------------------------------
# Snakemake remakes a missing input only for a job that has to run. A model job killed while it
# reran for a changed setting (its outputs deleted, its record already holding the new params)
# left every job after it current: the next run did nothing, the report showing the old model.
# So each job after a model rule carries, as its param `upstream`, a digest of the params of the
# model jobs above it (these functions, beside the rules' own): it stays out of date until it
# has itself run with them, and asking for it brings the missing job back. Where those params
# change, the job above reruns and this one with it (a newer input): nothing more reruns.


def params_digest(value):
    """sha256 of a value's canonical JSON: a param that names settings without listing them."""
    return hashlib.sha256(to_json(value).encode()).hexdigest()


def pretrain_params(name="pretrain"):
    """What rule ``pretrain`` (or ``pretrain_ssl``) takes from the config and code."""
    settings = (
        to_json(PRETRAIN_SETTINGS)
        if name == "pretrain"
        else get_ssl_pretrain_settings()
    )
    return {
        "atlas": ATLAS,
        "datasets": PLAN.by_role("pretrain"),
        "model": to_json(CFG["model"]),
        "settings": settings,
        "seed": CFG["seed"],
        "catalogue": catalogue_digest(CFG["variables"], PLAN.by_role("pretrain")),
        "code": code_hash("pretrain"),
        "store": {ds: store_params(ds) for ds in PLAN.by_role("pretrain")},
    }


def bei_maps_params():
    """What rule ``bei_maps`` takes from the config and code."""
    return {
        "atlas": ATLAS,
        "datasets": PLAN.by_role("pretrain"),
        "seed": CFG["seed"],
        "min_values": CFG["evaluate"]["bei_linear_min_values"],
        "catalogue": catalogue_digest(CFG["variables"], PLAN.by_role("pretrain")),
        "code": code_hash("bei_maps"),
        "store": {ds: store_params(ds) for ds in PLAN.by_role("pretrain")},
    }


def task_params(task, verb):
    """What a task's job of ``verb`` takes from the task, the seed and the catalogue."""
    spec = CFG["tasks"][task]
    return {
        "atlas": ATLAS,
        "dataset": spec["dataset"],
        "label": spec["label"],
        "positive": spec.get("positive"),
        "seed": CFG["seed"],
        "catalogue": catalogue_digest(CFG["variables"], [spec["dataset"]]),
        "code": code_hash(verb),
        "store": store_params(spec["dataset"]),
    }


def finetune_params(task):
    """What a task's finetuned model is made with: its checkpoint's and its own settings."""
    return {
        **task_params(task, "finetune"),
        "pretrain": pretrain_params(),
        "settings": to_json(CFG["evaluate"]["finetune"]),
    }


def evaluate_params(task):
    """What a task's evaluation is made with: its inputs' (checkpoints, maps, splits) and its own
    settings."""
    splits = {"n_folds": CFG["evaluate"]["n_folds"], "repeats": get_evaluate_repeats()}
    params = {
        **task_params(task, "evaluate"),
        "splits": {**task_params(task, "splits"), **splits},
        "settings": evaluate_settings(task),
    }
    if task in CHECKPOINT_TASKS:
        params["pretrain"] = pretrain_params()
    if task in SSL_TASKS:
        params["pretrain_ssl"] = pretrain_params("pretrain-ssl")
    if task in BEI_MAPS_TASKS:
        params["bei_maps"] = bei_maps_params()
    return params


# The same for the jobs up to a dataset's QC table and its store partitions: a connectome_collect
# (or ingest) job killed while it reran for a setting or a changed file lost its output, and the
# store, newer than every input left, was not remade ("Nothing to be done", the store holding
# connectomes of the old settings). The QC table's and the store's jobs carry the digest of the
# params of the jobs above them (`dataset_params`), built from the config, the code and the
# dataset's files as the plan lists them (never from a file a job writes: the digest is the same
# before and after the jobs run); the jobs reading the store carry the store's (`store_params`).


def dataset_params(dataset):
    """What the jobs up to ``dataset``'s QC table take from the config, its files and the code:
    synth's (a synthetic dataset), ingest's, fMRIPrep's and the connectome rules' params, from
    the functions that give the rules theirs."""
    w = SimpleNamespace(dataset=dataset)
    spec = CFG["datasets"][dataset]
    params = {
        "ingest": {
            **{key: spec.get(key) for key in ("entry", "path", "task")},
            "derivatives": get_derivatives_arg(w),
            "space": get_ingest_space_arg(w),
            # A voxel-level dataset's runs and each subject's files (fMRIPrep's `sources`).
            "listing": get_listing_hash(w),
            "options": get_ingest_options(w),
            "code": code_hash("ingest"),
        },
    }
    if dataset in PLAN.consortia:
        params["synth"] = synth_settings(dataset)
    if dataset in PLAN.voxel_datasets():
        params["fmriprep"] = {
            "dataset_args": get_fmriprep_dataset_args(w),
            "code": code_hash("fmriprep"),
        }
        params["connectome"] = {
            "options": get_connectome_options(),
            "code": code_hash("connectome"),
        }
    else:
        params["connectome"] = {
            "entry": spec["entry"],
            "atlas_args": get_atlas_args(),
            "settings_args": get_entry_settings(w),
            "code": code_hash("connectome"),
        }
    return params


def get_dataset_upstream(wildcards):
    """A param of connectome_collect, connectome_dataset and store: the digest of the params of
    the jobs up to the dataset's QC table."""
    return params_digest(dataset_params(wildcards.dataset))


@functools.lru_cache
def file_digest(path, size, mtime_ns):
    """sha256 of a file's bytes (computed again when its size or modification time changes)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def phenotype_digest(dataset):
    """sha256 of a real dataset's phenotype table ("" for a synthetic one's, which rule synth
    writes from its settings, and for a missing file)."""
    if dataset in PLAN.consortia:
        return ""
    return _existing_file_digest(CFG["datasets"][dataset]["phenotype"])


def _existing_file_digest(path):
    """sha256 of the file at ``path`` ("" when there is none)."""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    return file_digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def phenotype_sidecar(dataset):
    """A real dataset's phenotype sidecar (participants.json beside participants.tsv), whose
    Units the store converts, or None (none there; a synthetic dataset's is written by
    rule synth from its settings)."""
    if dataset in PLAN.consortia:
        return None
    path = sidecar_path(CFG["datasets"][dataset]["phenotype"])
    return str(path) if path.is_file() else None


def get_phenotype_sidecar(wildcards):
    """An input of the store rule, the dataset's phenotype sidecar, where it has one."""
    path = phenotype_sidecar(wildcards.dataset)
    return [path] if path else []


def store_params(dataset):
    """What a dataset's store partitions are made from: the params of the jobs up to its QC
    table, its phenotype table's content (and its sidecar's, where it has one), its part of
    the catalogue, the store's code.

    A param of the jobs reading the store (in `pretrain_params`, `task_params`): a store job
    that failed keeps the params it started with in Snakemake's record and its partitions put
    back with a new time, so only a job after it notices, and, due, brings it back through its
    missingness report (deleted with the failed job; `get_store_files`).
    """
    params = {
        "upstream": dataset_params(dataset),
        "phenotype": phenotype_digest(dataset),
        "catalogue": catalogue_digest(CFG["variables"], [dataset]),
        "code": code_hash("store"),
    }
    sidecar = phenotype_sidecar(dataset)
    if sidecar:
        # Only where there is one: the params of the other datasets (and their jobs) stay.
        params["phenotype_sidecar"] = _existing_file_digest(sidecar)
    return params


def get_pretrain_upstream(wildcards):
    """A param of pretrain, pretrain_ssl and bei_maps: the digest of their datasets'
    `store_params` (Snakemake calls partitions put back after a failed store job unchanged:
    same content as recorded, a new time)."""
    return params_digest({ds: store_params(ds) for ds in PLAN.by_role("pretrain")})


def get_finetune_upstream(wildcards):
    """A param of finetune: the digest of its checkpoint's pretraining params."""
    return params_digest(pretrain_params())


def get_embed_upstream(wildcards):
    """A param of embed: the digest of its finetuned model's params."""
    return params_digest(finetune_params(wildcards.task))


def get_evaluate_upstream(wildcards):
    """A param of evaluate: the digest of the params of the jobs its inputs come from."""
    return params_digest(evaluate_params(wildcards.task))


def get_report_upstream(wildcards):
    """A param of report: the digest of the evaluations' and finetuned models' params."""
    return params_digest(
        {
            "evaluate": {t: evaluate_params(t) for t in TASKS},
            "embed": {t: finetune_params(t) for t in FINETUNE_TASKS},
        }
    )


def get_report_references():
    """A param of report: the tasks' published reference ranges, ``{task: reference}`` as JSON
    (tasks without one left out: ``{}`` when none sets one)."""
    tasks = CFG["tasks"]
    return to_json({t: tasks[t]["reference"] for t in TASKS if "reference" in tasks[t]})


def get_pretrain_output(file):
    """A pretraining output the report reads (``history.tsv``, ``bei_eval.tsv``), if it runs."""
    return [paths.model_file(RESULTS, "pretrain", file)] if CHECKPOINT_TASKS else []


def get_checkpoint_metadata():
    """``model.json`` of each checkpoint the tasks were evaluated with and of each finetuned
    model whose attention the report maps (the report's Provenance)."""
    names = {"pretrain": CHECKPOINT_TASKS, "pretrain-ssl": SSL_TASKS}
    return [
        *(paths.model_file(RESULTS, n, META_NAME) for n, used in names.items() if used),
        *(
            paths.model_file(RESULTS, f"finetune/{t}", META_NAME)
            for t in FINETUNE_TASKS
        ),
    ]


def get_report_bei_maps():
    """The ridge maps behind the bei-linear baseline's numbers, if a task evaluates it."""
    return [get_bei_maps()] if BEI_MAPS_TASKS else []


def get_ssl_history():
    """History of the self-supervised-only pretraining, when lcm-ssl is evaluated."""
    return (
        [paths.model_file(RESULTS, "pretrain-ssl", HISTORY_NAME)] if SSL_TASKS else []
    )


def get_synthetic_task_datasets():
    """The task datasets that ``lcm synth`` simulates (they have a ground truth)."""
    return sorted({CFG["tasks"][t]["dataset"] for t in TASKS} & set(PLAN.consortia))


def get_ground_truth_files():
    """ground_truth.json of the synthetic task datasets (their oracle ceilings)."""
    return [
        str(synth_plan.ground_truth_path(CFG["synth"]["out_dir"], d))
        for d in get_synthetic_task_datasets()
    ]


def get_oracle_store_files():
    """Connectomes of the synthetic task datasets: the oracle's readout on them."""
    return [
        str(paths.connectome_path(STORE, ATLAS, d))
        for d in get_synthetic_task_datasets()
    ]


def get_oracle_store_arg(wildcards, input):
    """``--store`` with the root of the oracle's connectomes, or nothing."""
    files = list(input.oracle_store)
    return f"--store {quoted(str(paths.store_root(files[0])))}" if files else ""


def get_optional_arg(flag, name):
    """A param function: ``flag`` followed by the rule's input ``name`` files, or nothing."""

    def arg(wildcards, input):
        files = list(getattr(input, name))
        return " ".join([flag, *(quoted(f) for f in files)]) if files else ""

    return arg


# --- targets --------------------------------------------------------------------------------


def get_participant_targets():
    """Every dataset up to the feature store (``lcm run ... participant``)."""
    return [f for ds in sorted(CFG["datasets"]) for f in get_store_files(ds)]


def get_default_targets():
    """The default target: the report and the finetuned models, or the store if no task."""
    if not TASKS:
        return get_participant_targets()
    return [
        paths.report_html(RESULTS),
        paths.metrics_file(RESULTS, "metrics.parquet"),
        paths.metrics_file(RESULTS, "summary.tsv"),
        *(
            paths.model_file(RESULTS, f"finetune/{t}", WEIGHTS_NAME)
            for t in FINETUNE_TASKS
        ),
    ]


# --- data parallel training (issue #17): how pretrain starts its processes -----------------
from lcm.train.launch import launcher, threads_per_process


def get_launcher(wildcards, threads, resources):
    """Command prefix of a training rule: one process, torchrun, or srun + torchrun.

    From the rule's resources ``procs_per_node`` and ``tasks`` (profiles/slurm/config.yaml);
    every value in it is shell-quoted (lcm.train.launch).
    """
    return launcher(resources, threads)


def get_process_threads(wildcards, threads, resources):
    """``--threads`` of each training process: the rule's threads over its processes."""
    return threads_per_process(resources, threads)
