"""Where every output of the workflow lives: the one module that spells output paths.

The Snakemake rules (through ``workflow/rules/common.smk``) and the package's writers both call
these functions, so a rule's pattern and the file the package writes cannot drift apart.

Functions of ``results`` (the config's ``results_dir``) return ``str``; given Snakemake wildcards
as values (``dataset="{dataset}"``) they return the rule's pattern, e.g.
``ingest_manifest("results", "{dataset}") == "results/ingest/{dataset}/manifest.parquet"``.
Functions of a folder the package writes into (a connectome folder, the store root) return a
``Path``, as the package's readers and writers use them. File names inside BIDS-style folders
come from :mod:`lcm.io.bids_names`.

Layout under ``results``::

    ingest/<dataset>/manifest.parquet, summary.json, summary.tsv
    fmriprep/<dataset>/sub-<subject>_fmriprep.json, settings.json, derivatives/
    connectome/<dataset>/seg-<atlas>_qc.tsv, settings.json
    connectome/<dataset>/sub-<sub>/[ses-<ses>/]func/<run_key>_space-<space>[_res-<n>]_seg-<atlas>_qc.json
                                                  ..._stat-mean_timeseries.tsv, ..._relmat.tsv
    store/connectomes/atlas=<atlas>/dataset=<dataset>/part-0.parquet
    store/variables/dataset=<dataset>/part-0.parquet
    store/reports/missingness_dataset-<dataset>.tsv
    models/<pretrain|pretrain-ssl|finetune/<task>>/model.safetensors, model.json, history.tsv, ...
    splits/task-<task>_splits.parquet
    embeddings/task-<task>_embeddings.parquet, task-<task>_attention.parquet
    metrics/task-<task>_metrics.parquet, task-<task>_predictions.parquet, metrics.parquet, ...
    metrics/task-<task>_metrics_evaluate_state/   (an evaluation's finished fits)
    report/index.html
    configs/<sha256>.json   (each validated config a run was built from, named by its hash)
    logs/<stage>/...
    work/fmriprep/
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath

from lcm.docstrings import fill_doc
from lcm.io.bids_names import build_name, check_label, parse_entities, run_key
from lcm.io.output_space import space_entities

# The entries of ``results`` that the functions below write into (the layout above): the
# workflow's ownership check (:func:`lcm.io.ownership.claim_results`) looks at these alone.
RESULTS_ENTRIES = (
    "configs",
    "connectome",
    "embeddings",
    "fmriprep",
    "ingest",
    "logs",
    "metrics",
    "models",
    "report",
    "splits",
    "store",
    "work",
)

# What the workflow writes below RESULTS_ENTRIES without a provenance record of its own, as
# patterns of paths relative to ``results`` (a pattern that names a folder covers all below
# it), each with why. ``lcm provenance verify`` reports any other file there that no record
# names: an output whose record is gone says nowhere how it was made.
UNRECORDED = (
    ("configs/*.json", "a validated config, named by the sha256 of its content"),
    ("logs", "a job's log"),
    ("work", "fMRIPrep's work folder"),
    (
        "fmriprep/*/derivatives",
        "fMRIPrep's own output; each subject's record lists and hashes the files LCM reads",
    ),
    ("fmriprep/*/*.completed.json", "the stamp of a completed fMRIPrep run"),
    ("ingest/*/summary.json", "ingest's summary, written with the manifest"),
    ("ingest/*/summary.tsv", "ingest's summary, written with the manifest"),
    ("ingest/*/*.cache", "ingest's index cache"),
    # Named so by an earlier LCM, with no host: no later run can tell its writer is gone.
    ("ingest/*/*.cache.tmp[0-9]*", "an index cache a killed ingest left; delete it"),
    ("ingest/*/*.cache.old[0-9]*", "an index cache a killed ingest left; delete it"),
    ("connectome/*/dataset_description.json", "the BIDS description of a derivative folder"),
    ("store/_lcm", "the feature store's journal and locks"),
    ("models/*/train_state", "a training state, whose JSON holds the digest of its content"),
    (
        "metrics/*_evaluate_state",
        "an evaluation's finished fits, each file holding the digest of its content",
    ),
)


def unrecorded_reason(relative: str | PurePath) -> str | None:
    """Why the workflow writes ``relative`` (a path below ``results``) with no provenance record.

    Parameters
    ----------
    relative : str or path-like
        A path relative to the results folder, e.g. ``ingest/ds/summary.tsv``.

    Returns
    -------
    str or None
        The reason from :data:`UNRECORDED` whose pattern matches the path or a folder above
        it; None for every other path (an output, which has a provenance sidecar).
    """
    parts = PurePath(relative).parts
    for end in range(1, len(parts) + 1):
        prefix = "/".join(parts[:end])
        for pattern, why in UNRECORDED:
            if fnmatch.fnmatchcase(prefix, pattern):
                return why
    return None


# --- ingest ---------------------------------------------------------------------------------


@fill_doc
def ingest_manifest(results: str, dataset: str) -> str:
    """The manifest of ``dataset`` (one row per run), written by ``lcm ingest``.

    Parameters
    ----------
    %(results)s
    %(dataset)s
    """
    return f"{results}/ingest/{dataset}/manifest.parquet"


def ingest_summary(manifest: str | Path, extension: str) -> str:
    """``summary.json`` or ``summary.tsv`` (``extension``) beside a manifest.

    Parameters
    ----------
    manifest : str or pathlib.Path
        The manifest (:func:`ingest_manifest`).
    extension : str
        ``".json"`` or ``".tsv"``.
    """
    return os.path.join(os.path.dirname(manifest), f"summary{extension}")


# --- fMRIPrep -------------------------------------------------------------------------------


@fill_doc
def fmriprep_record(results: str, dataset: str, subject: str) -> str:
    """The record of one subject's fMRIPrep outputs (its runs' BOLD, mask, confounds).

    Parameters
    ----------
    %(results)s
    %(dataset)s
    subject : str
        The subject's label, without ``sub-``.
    """
    return f"{results}/fmriprep/{dataset}/sub-{subject}_fmriprep.json"


@fill_doc
def fmriprep_settings(results: str, dataset: str) -> str:
    """The options every fMRIPrep job of ``dataset`` runs with (the rule's settings stamp).

    Parameters
    ----------
    %(results)s
    %(dataset)s
    """
    return f"{results}/fmriprep/{dataset}/settings.json"


@fill_doc
def fmriprep_derivatives(results: str, dataset: str) -> str:
    """Where the fMRIPrep stage writes a dataset's derivatives when the config names none.

    Parameters
    ----------
    %(results)s
    %(dataset)s
    """
    return f"{results}/fmriprep/{dataset}/derivatives"


@fill_doc
def fmriprep_work_dir(results: str, given: str | None = None) -> str:
    """fMRIPrep work folder: ``given`` (fmriprep.work_dir), else ``<results>/work/fmriprep``.

    Parameters
    ----------
    %(results)s
    given : str, optional
        The ``fmriprep.work_dir`` setting; None or empty for the default.
    """
    return given or f"{results}/work/fmriprep"


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, both resolved (symlinks, ``..``).

    Parameters
    ----------
    path : str or pathlib.Path
        The path to place.
    folder : str or pathlib.Path
        The folder it may lie in.

    Returns
    -------
    bool
        True for ``folder`` itself too.
    """
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


# --- connectomes ----------------------------------------------------------------------------

# The connectome rule's wildcards naming one run: ``sub-{subject}/{func_dir}{run_key}_...``.
RUN_WILDCARDS: dict[str, str] = {
    "subject": "{subject}",
    "func_dir": "{func_dir}",
    "run_key": "{run_key}",
}

# connectome.kinds -> XCP-D's ``stat-`` label of the matrix file.
STAT_LABELS = {
    "pearson": "pearsoncorrelation",
    "partial": "partialcorrelation",
    "covariance": "covariance",
}


def run_location(entities: Mapping[str, object]) -> dict[str, str]:
    """Where a run's files sit: the values of :data:`RUN_WILDCARDS` for this run.

    Parameters
    ----------
    entities : mapping
        Acquisition entities of the run (``sub``, ``ses``, ``task``, ``run``, ...); absent ones
        are ``None`` or ``""``.

    Returns
    -------
    dict
        ``subject`` (label), ``func_dir`` (``func/`` or ``ses-<label>/func/``) and ``run_key``.
    """
    ses = entities.get("ses")
    func_dir = "func/" if ses in (None, "") else f"ses-{check_label('ses', ses)}/func/"
    return {
        "subject": check_label("sub", entities["sub"]),
        "func_dir": func_dir,
        "run_key": run_key(dict(entities)),
    }


def _run_file(
    root: str | Path,
    location: Mapping[str, str],
    entities: dict[str, object],
    suffix: str,
    extension: str,
) -> str:
    """``root/sub-S/<func_dir><run_key>_<entities>_<suffix><ext>``; patterns stay patterns."""
    name = build_name(entities, suffix, extension)
    return f"{root}/sub-{location['subject']}/{location['func_dir']}{location['run_key']}_{name}"


@fill_doc
def connectome_dir(results: str, dataset: str) -> str:
    """The connectome stage's BIDS-derivative folder of ``dataset``.

    Parameters
    ----------
    %(results)s
    %(dataset)s
    """
    return f"{results}/connectome/{dataset}"


@fill_doc
def connectome_settings(results: str, dataset: str) -> str:
    """The options every voxel-level run of ``dataset`` is processed with (the settings stamp).

    Parameters
    ----------
    %(results)s
    %(dataset)s
    """
    return f"{connectome_dir(results, dataset)}/settings.json"


@fill_doc
def qc_table(results: str, dataset: str, atlas: str) -> str:
    """The QC table of ``dataset`` (one row per run, included or excluded with its reason).

    Parameters
    ----------
    %(results)s
    %(dataset)s
    atlas : str
        The atlas's name (the ``seg`` entity).
    """
    return f"{connectome_dir(results, dataset)}/seg-{atlas}_qc.tsv"


@fill_doc
def run_qc_json(
    results: str, dataset: str, location: Mapping[str, str], space: str | None, atlas: str
) -> str:
    """The QC JSON of one voxel-level run (``location``: :func:`run_location` or wildcards).

    Parameters
    ----------
    %(results)s
    %(dataset)s
    location : mapping
        The run's folder and key: :func:`run_location`, or the rule's :data:`RUN_WILDCARDS`
        (then the path is a pattern).
    space : str or None
        The ``fmriprep.output_space`` setting (its ``space``, ``cohort`` and ``res`` entities
        name the file); None for data without a space.
    atlas : str
        The atlas's name (the ``seg`` entity).
    """
    root = connectome_dir(results, dataset)
    return _run_file(root, location, {**space_entities(space), "seg": atlas}, "qc", ".json")


def run_timeseries(
    out_dir: str | Path, location: Mapping[str, str], space: str | None, atlas: str
) -> Path:
    """``OUTDIR/sub-X/[ses-Y/]func/<run_key>_space-S_seg-A_stat-mean_timeseries.tsv``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The dataset's connectome folder (:func:`connectome_dir` in the workflow).
    location : mapping
        The run's folder and key: :func:`run_location`, or the rule's :data:`RUN_WILDCARDS`
        (then the path is a pattern).
    space : str or None
        The ``fmriprep.output_space`` setting (its ``space``, ``cohort`` and ``res`` entities
        name the file); None for data without a space.
    atlas : str
        The atlas's name (the ``seg`` entity).
    """
    ents = {**space_entities(space), "seg": atlas, "stat": "mean"}
    return Path(_run_file(out_dir, location, ents, "timeseries", ".tsv"))


# ``desc-`` of a window's matrix: ``win`` and its index among the run's windows, 3 digits or more.
_WINDOW_PREFIX = "win"


def window_desc(index: int) -> str:
    """The ``desc-`` label of window ``index``'s matrix (``win002``; Fisher z adds ``fisherz``).

    Parameters
    ----------
    index : int
        The window's place among the run's windows (0 for the first), kept when windows
        before it are left out.
    """
    return f"{_WINDOW_PREFIX}{index:03d}"


def window_index(path: str | os.PathLike[str]) -> int | None:
    """The window a relmat holds, from its ``desc-win###`` (``None``: no window's matrix).

    Parameters
    ----------
    path : path-like
        A relmat written by the connectome stage.
    """
    desc = parse_entities(Path(path).name).get("desc", "")
    # Every digit: window 1000 is ``win1000`` (3 digits are the least, not the most), which
    # read as window 100.
    found = re.match(rf"{_WINDOW_PREFIX}(\d+)", desc)
    return int(found.group(1)) if found else None


def run_relmat(
    out_dir: str | Path,
    location: Mapping[str, str],
    space: str | None,
    atlas: str,
    kind: str = "pearson",
    desc: str | None = None,
) -> Path:
    """``..._space-S_seg-A[_desc-D]_stat-<kind>_relmat.tsv`` beside the time series.

    ``desc`` marks derived matrices: ``win000`` (first window), ``fisherz``, ``win000fisherz``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        The dataset's connectome folder (:func:`connectome_dir` in the workflow).
    location : mapping
        The run's folder and key: :func:`run_location`, or the rule's :data:`RUN_WILDCARDS`
        (then the path is a pattern).
    space : str or None
        The ``fmriprep.output_space`` setting (its ``space``, ``cohort`` and ``res`` entities
        name the file); None for data without a space.
    atlas : str
        The atlas's name (the ``seg`` entity).
    kind : str
        The ``connectome.kinds`` entry: ``pearson``, ``partial`` or ``covariance``.
    desc : str, optional
        The ``desc`` entity of a derived matrix; None for the plain one.

    Raises
    ------
    KeyError
        For a ``kind`` not in :data:`STAT_LABELS`.
    """
    ents = {**space_entities(space), "seg": atlas, "desc": desc, "stat": STAT_LABELS[kind]}
    return Path(_run_file(out_dir, location, ents, "relmat", ".tsv"))


# --- feature store --------------------------------------------------------------------------


@fill_doc
def store_dir(results: str) -> str:
    """Root of the feature store.

    Parameters
    ----------
    %(results)s
    """
    return f"{results}/store"


# The store's top-level folders, one per table (see the three functions below).
STORE_TABLES = ("connectomes", "variables", "reports")


def store_root(file: str | Path) -> str:
    """Root of the feature store holding ``file`` (a path built by the functions below).

    Rules pass the store root derived from their input or output files (not from the config),
    so that it follows those files when Snakemake relocates them (remote storage).

    Parameters
    ----------
    file : str or pathlib.Path
        A file below one of the store's tables (:data:`STORE_TABLES`).

    Returns
    -------
    str
        The folder holding that table's folder.

    Raises
    ------
    ValueError
        When no folder above ``file`` is one of the store's tables.
    """
    for folder in Path(file).parents:
        if folder.name in STORE_TABLES:
            return str(folder.parent)
    raise ValueError(f"{file} is not inside a feature store (no {STORE_TABLES} folder above it)")


def connectome_path(store: str | Path, atlas: str, dataset: str) -> Path:
    """Parquet file holding ``dataset``'s connectomes for ``atlas`` (``"*"``: a glob pattern).

    Parameters
    ----------
    store : str or pathlib.Path
        The store's root (:func:`store_dir`).
    atlas : str
        The atlas's name, or ``"*"``.
    dataset : str
        The dataset's name, or ``"*"``.
    """
    return Path(store) / "connectomes" / f"atlas={atlas}" / f"dataset={dataset}" / "part-0.parquet"


def variables_path(store: str | Path, dataset: str) -> Path:
    """Parquet file holding ``dataset``'s brain–environment variables.

    Parameters
    ----------
    store : str or pathlib.Path
        The store's root (:func:`store_dir`).
    dataset : str
        The dataset's name.
    """
    return Path(store) / "variables" / f"dataset={dataset}" / "part-0.parquet"


def missingness_path(store: str | Path, dataset: str) -> Path:
    """The per-variable missingness report of ``dataset``.

    Parameters
    ----------
    store : str or pathlib.Path
        The store's root (:func:`store_dir`).
    dataset : str
        The dataset's name.
    """
    return Path(store) / "reports" / f"missingness_dataset-{dataset}.tsv"


def _present(store: str | Path, pattern: Path) -> list[Path]:
    """The paths under ``store`` matching ``pattern`` (``"*"`` labels, others escaped), sorted."""
    return sorted(Path(store).glob(str(pattern.relative_to(store))))


@fill_doc
def dataset_partitions(store: str | Path, dataset: str) -> list[Path]:
    """The partition folders of ``dataset`` in ``store``.

    Parameters
    ----------
    store : path-like
        The store's root.
    %(dataset)s

    Returns
    -------
    list of Path
        Its connectome folders of every atlas present, sorted, then its variables folder
        (whether or not it exists).
    """
    connectomes = _present(store, connectome_path(store, "*", glob.escape(dataset)).parent)
    return [*connectomes, variables_path(store, dataset).parent]


def stored_connectomes(store: str | Path, atlas: str) -> list[Path]:
    """The connectome files of every dataset stored for ``atlas``, sorted.

    Parameters
    ----------
    store : path-like
        The store's root.
    atlas : str
        Atlas name.

    Returns
    -------
    list of Path
        Paths as :func:`connectome_path` builds them.
    """
    return _present(store, connectome_path(store, glob.escape(atlas), "*"))


# --- models, splits, evaluation, report -----------------------------------------------------


@fill_doc
def model_dir(results: str, name: str) -> str:
    """Folder of a checkpoint: ``pretrain``, ``pretrain-ssl`` or ``finetune/<task>``.

    Parameters
    ----------
    %(results)s
    name : str
        The checkpoint's name below ``models/``.
    """
    return f"{results}/models/{name}"


@fill_doc
def model_file(results: str, name: str, file: str) -> str:
    """A file of a checkpoint folder (``model.safetensors``, ``model.json``, ``history.tsv``).

    Parameters
    ----------
    %(results)s
    name : str
        The checkpoint's name (:func:`model_dir`).
    file : str
        The file's name in that folder.
    """
    return f"{model_dir(results, name)}/{file}"


@fill_doc
def task_splits(results: str, task: str) -> str:
    """The outer folds of ``task`` (``lcm splits --task``).

    Parameters
    ----------
    %(results)s
    task : str
        The task's name in the config.
    """
    return f"{results}/splits/task-{task}_splits.parquet"


@fill_doc
def task_embeddings(results: str, task: str, kind: str = "embeddings") -> str:
    """Embeddings (``kind="embeddings"``) or attention maps (``"attention"``) of a task's runs.

    Parameters
    ----------
    %(results)s
    task : str
        The task's name in the config.
    kind : str
        ``"embeddings"`` or ``"attention"``.
    """
    return f"{results}/embeddings/task-{task}_{kind}.parquet"


@fill_doc
def task_metrics(results: str, task: str, kind: str = "metrics") -> str:
    """Cross-validated ``metrics`` or ``predictions`` of one task.

    Parameters
    ----------
    %(results)s
    task : str
        The task's name in the config.
    kind : str
        ``"metrics"`` or ``"predictions"``.
    """
    return f"{results}/metrics/task-{task}_{kind}.parquet"


@fill_doc
def metrics_file(results: str, name: str) -> str:
    """A table of the report stage: ``metrics.parquet``, ``summary.tsv``, ``headline.tsv``, ...

    Parameters
    ----------
    %(results)s
    name : str
        The table's file name.
    """
    return f"{results}/metrics/{name}"


@fill_doc
def report_html(results: str) -> str:
    """The HTML report.

    Parameters
    ----------
    %(results)s
    """
    return f"{results}/report/index.html"


@fill_doc
def config_dir(results: str) -> str:
    """The folder of the validated configs the workflow ran under (``lcm report --configs``).

    Parameters
    ----------
    %(results)s
    """
    return f"{results}/configs"


@fill_doc
def config_copy(results: str, sha256: str) -> str:
    """The validated config whose :func:`lcm.io.provenance.config_hash` is ``sha256``.

    Parameters
    ----------
    %(results)s
    sha256 : str
        The config's hash (``config_sha256`` in a record).
    """
    return f"{config_dir(results)}/{sha256}.json"


@fill_doc
def logs_dir(results: str) -> str:
    """The folder of the workflow's logs, one folder per stage (``lcm report --logs``).

    Parameters
    ----------
    %(results)s
    """
    return f"{results}/logs"


@fill_doc
def log_file(results: str, name: str) -> str:
    """A rule's log file, beside the results of its config: ``<results>/logs/<name>``.

    Parameters
    ----------
    %(results)s
    name : str
        The log's path below ``logs/``, e.g. ``connectome/<dataset>_collect.log``.
    """
    return f"{logs_dir(results)}/{name}"
