"""``lcm run``: the BIDS-App front door, a thin wrapper around the packaged Snakemake workflow.

``lcm run BIDS_DIR OUTPUT_DIR participant|group`` writes one resolved configuration (a config file
of the user's, if any, with the BIDS dataset added and ``results_dir`` set to OUTPUT_DIR) to
``OUTPUT_DIR/config.yaml`` and runs the workflow shipped in the package on it, from any folder.
Snakemake's own command line keeps working on the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.util
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from lcm.bids.manifest import read_manifest
from lcm.bids.selection import participants_kept
from lcm.catalogue import RUN_MARK, generated_header, parse_variable
from lcm.config import read_yaml_mapping, validate_base
from lcm.connectome.config_check import check_config as check_connectome_config
from lcm.docstrings import fill_doc
from lcm.entries import entry_type
from lcm.evaluate.config_schema import validate_config
from lcm.exceptions import ConfigError, ExternalToolError, InputDataError, OutputBusyError
from lcm.io.atomic import write_text
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.io.ownership import MARKER_NAME, RESULTS_OWNER, claim_results
from lcm.io.paths import RESULTS_ENTRIES, ingest_manifest
from lcm.model.config import check_model_settings
from lcm.schema_errors import excerpt
from lcm.store.coding import generated_columns
from lcm.store.phenotype import is_missing, read_sidecar, read_table

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  # Existing fMRIPrep derivatives -> connectomes and the feature store, per participant:
  lcm run /data/mystudy /scratch/lcm participant \\
      --derivatives /data/mystudy/derivatives/fmriprep --participant-label 01 02
  # Then the tasks of a config file (evaluation, report) on a SLURM cluster:
  lcm run /data/mystudy /scratch/lcm group --derivatives /data/mystudy/derivatives/fmriprep \\
      --config-file tasks.yaml --profile slurm
  # Extra Snakemake options after `--`:
  lcm run /data/mystudy /scratch/lcm participant --derivatives ... -- --forceall
"""

# Analysis levels (BIDS-App style) -> the workflow's target rules (see the Snakefile).
LEVELS = {"participant": "participant", "group": "all"}

# Config keys holding paths: made absolute against the folder `lcm run` is called from, since
# the workflow runs inside OUTPUT_DIR (where a relative path would otherwise point).
_PATH_KEYS = (
    ("variables",),
    ("synth", "out_dir"),
    ("atlas", "path"),
    ("atlas", "labels"),
    ("fmriprep", "fs_license"),
    ("fmriprep", "work_dir"),
)
_DATASET_PATH_KEYS = ("path", "derivatives", "phenotype")


def workflow_files() -> Path:
    """Folder of the packaged workflow: ``Snakefile``, ``workflow/``, ``profiles/``, ``config/``.

    In a checkout ``lcm/workflow_files`` links to the repository's own files; a wheel holds
    copies of them.
    """
    return Path(__file__).resolve().parent.parent / "workflow_files"


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "run",
        help="Run the workflow on a BIDS dataset (BIDS-App style), from any folder.",
        description="Write the resolved config to OUTPUT_DIR/config.yaml and run the packaged "
        "Snakemake workflow on it. participant: every dataset up to the Parquet feature store; "
        "group: everything the config asks (tasks, evaluation, report). Needs Snakemake "
        "(pip install 'lcm[workflow]').",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bids_dir", help="Raw BIDS dataset (its participants.tsv is the phenotype).")
    p.add_argument("output_dir", help="Folder of every output (the config's results_dir).")
    p.add_argument("analysis_level", choices=sorted(LEVELS), help="participant or group.")
    p.add_argument(
        "--derivatives",
        help="Existing fMRIPrep derivatives of BIDS_DIR (sets fmriprep.runner: existing).",
    )
    p.add_argument(
        "--participant-label",
        nargs="+",
        default=[],
        metavar="LABEL",
        help="Participants this call processes ('sub-' optional; default all). Those earlier "
        "calls put in OUTPUT_DIR stay in its manifest, QC table and store.",
    )
    p.add_argument(
        "--skip-bids-validation",
        action="store_true",
        help="Do not run the BIDS validator on BIDS_DIR (trusted data; sets ingest.validate: "
        "false). By default it runs on the selected participants: errors in a subject's folder "
        "exclude its runs, errors at the dataset level stop the run; those fMRIPrep's own "
        "validation ignores (PARTICIPANT_ID_MISMATCH, TSV_*, EVENTS_* ...) are warnings.",
    )
    p.add_argument(
        "-w",
        "--work-dir",
        help="fMRIPrep's work folder (sets fmriprep.work_dir; docker and apptainer runners), as "
        "fMRIPrep's -w: outside BIDS_DIR, which fMRIPrep refuses to hold it. Default "
        "OUTPUT_DIR/work/fmriprep; with OUTPUT_DIR inside BIDS_DIR (derivatives/<name>) a "
        "container run needs it.",
    )
    p.add_argument(
        "--config-file",
        help="A config of your own (tasks, models, denoising ...): the BIDS dataset is added to "
        "it and results_dir set to OUTPUT_DIR (a results_dir of its own is replaced, with a "
        "warning). Relative paths in it are read from this folder; "
        "its synthetic consortia go to OUTPUT_DIR/synth unless it sets synth.out_dir.",
    )
    p.add_argument(
        "--dataset-name",
        help="Name of the BIDS dataset in the config and the store (letters and digits). "
        "Default, logged: the name --config-file gives BIDS_DIR (datasets.<name>.path); else "
        "the name an earlier lcm run into OUTPUT_DIR gave BIDS_DIR; else "
        "BIDS_DIR's folder name, but for a common one (rawdata, raw, bids, input, data, "
        "sourcedata) its parent folder's (study/rawdata: study), or dataset_description.json's "
        "Name where that is common too.",
    )
    p.add_argument(
        "--role",
        choices=("downstream", "pretrain"),
        help="Role of the dataset (default: the config file's datasets.<name>.role, else "
        "downstream: tasks; pretrain: pretraining only).",
    )
    p.add_argument(
        "--task",
        help="BIDS task of the resting-state runs (default: the config file's "
        "datasets.<name>.task, else rest): task-restingstate -> --task restingstate.",
    )
    p.add_argument(
        "--profile",
        default="local",
        help="Snakemake profile: local (default), slurm, or a profile folder of your own.",
    )
    p.add_argument(
        "--cores", type=_cores, help="Cores Snakemake may use: N or all (default: the profile's)."
    )
    p.add_argument("-n", "--dry-run", action="store_true", help="Show the plan; run nothing.")
    # Everything after `--` goes to Snakemake untouched (see _PassThroughParser).
    p.__class__ = _PassThroughParser
    p.set_defaults(func=run, snakemake_args=[])
    p.usage = f"{p.format_usage().removeprefix('usage: ').rstrip()} [-- SNAKEMAKE_ARGS ...]"


class _PassThroughParser(argparse.ArgumentParser):
    """A parser that keeps the words after ``--`` as ``snakemake_args``, unparsed.

    argparse alone gives them to no positional once BIDS_DIR, OUTPUT_DIR and the level are
    matched, and rejects them.
    """

    def parse_known_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse the words before ``--``; keep those after it as ``snakemake_args``.

        Parameters
        ----------
        args : sequence of str, optional
            The words to parse; ``sys.argv[1:]`` when omitted.
        namespace : argparse.Namespace, optional
            The namespace to fill, as :meth:`argparse.ArgumentParser.parse_known_args` takes it.

        Returns
        -------
        argparse.Namespace
            The parsed options, with the words after ``--`` as ``snakemake_args``.
        list of str
            The words before ``--`` that no option matched.
        """
        words = list(sys.argv[1:] if args is None else args)
        extra: list[str] = []
        if "--" in words:
            cut = words.index("--")
            words, extra = words[:cut], words[cut + 1 :]
        parsed, unknown = super().parse_known_args(words, namespace)
        parsed.snakemake_args = extra
        return parsed, unknown


def _cores(value: str) -> str:
    """``--cores``: a positive integer or ``all``, as Snakemake takes it."""
    if value == "all" or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}")


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm run``; returns Snakemake's exit code.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        Snakemake's exit code; a configuration refused before Snakemake starts is raised as
        an :class:`lcm.exceptions.LCMError`.
    """
    if importlib.util.find_spec("snakemake") is None:
        raise ExternalToolError(
            "lcm run needs Snakemake, which this environment lacks: pip install 'lcm[workflow]'",
            hint="Snakemake is in the workflow (and dev) extras of lcm.",
        )
    out = Path(args.output_dir).resolve()
    if out.exists() and not out.is_dir():
        # Said so, not as the lock's "cannot write in ... (File exists)".
        raise ConfigError(
            f"OUTPUT_DIR {args.output_dir} ({out}) is a file, not a folder.",
            hint="Give a folder (lcm run makes it if it does not exist), or move that file.",
        )
    cmd = snakemake_command(args, out / "config.yaml", out)  # checks the profile, first
    # Where OUTPUT_DIR is, before its lock file is written there (build_config checks again,
    # each path with its own error where it is no folder).
    bids, derivatives = Path.cwd() / args.bids_dir, Path.cwd() / (args.derivatives or "")
    if bids.is_dir():
        given = derivatives.resolve() if args.derivatives and derivatives.is_dir() else None
        _check_output_place(bids.resolve(), given, out)
    with _output_dir_held(out):
        _check_snakemake_lock(out, args)
        # OUTPUT_DIR is the results_dir: the workflow claims it before its first job, which
        # was after this verb had written its config, catalogue and .snakemake/ beside a
        # user's files (and a dry run never claimed it at all). Claimed here, or refused with
        # nothing but the lock file written.
        claim_results(out, RESULTS_OWNER, RESULTS_ENTRIES)
        config = build_config(args, Path.cwd(), out)
        if args.analysis_level == "group" and not config.get("tasks"):
            log.warning(
                "group: the config has no tasks, so only the participant stage runs (no "
                "evaluation, no report); give them with --config-file (tasks: ..., see "
                "config/README.md)"
            )
        out.mkdir(parents=True, exist_ok=True)
        write_text(
            out / "config.yaml",
            f"{RUN_MARK}: the resolved configuration of the runs in this folder.\n"
            + yaml.safe_dump(config, sort_keys=False),
        )
        log.info("running: %s", shlex.join(cmd))
        _absolute_templateflow_home(Path.cwd())  # Snakemake and its jobs inherit it
        return subprocess.run(cmd, check=False).returncode


def _absolute_templateflow_home(cwd: Path) -> None:
    """Make ``TEMPLATEFLOW_HOME`` absolute against ``cwd`` (the folder lcm run is called from).

    Snakemake runs in OUTPUT_DIR: a relative ``TEMPLATEFLOW_HOME`` named a folder there, which
    did not exist, and apptainer refused to bind it in every subject's job.
    """
    value = os.environ.get("TEMPLATEFLOW_HOME")
    if value:
        os.environ["TEMPLATEFLOW_HOME"] = os.path.abspath(Path(cwd, value))


# Held by each `lcm run` on its OUTPUT_DIR while it writes there (lcm.io.lock: the kernel
# releases it when the process ends, even on kill -9).
RUN_LOCK = LOCK_NAME
ONE_AT_A_TIME = (
    "Snakemake runs one workflow in a folder at a time: run the calls one after another; or, "
    "instead of one call per participant (a SLURM array of lcm run into one OUTPUT_DIR), run "
    "`participant` once with every label (--participant-label 01 02 ...): with --profile "
    "slurm that one call submits each participant's jobs to SLURM, side by side."
)


@contextlib.contextmanager
def _output_dir_held(out: Path) -> Iterator[None]:
    """Hold OUTPUT_DIR for one ``lcm run`` at a time, or refuse it at once.

    Two calls into one OUTPUT_DIR (a SLURM array of ``--participant-label`` calls): the second
    replaced ``config.yaml`` of the first, then Snakemake refused it with a ``LockException``
    that advised ``--unlock``, which would have let both write the same manifest and store.
    A folder this call created and left holding only the lock (and the results marker) is
    removed.
    """
    created = not out.exists()
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(exclusive_lock(out / RUN_LOCK, "`lcm run`"))
    except OutputBusyError:
        try:
            holder = (out / RUN_LOCK).read_text(errors="replace").strip() or "holder unknown"
        except OSError:
            holder = "holder unknown"
        raise OutputBusyError(
            f"OUTPUT_DIR {out} is in use by another `lcm run` ({holder}); nothing was written.",
            hint=ONE_AT_A_TIME,
        ) from None
    try:
        with stack:
            yield
    finally:
        # (The results marker too: claim_results wrote it, and the call wrote nothing else.)
        # A folder removed meanwhile (by hand, or another job's cleanup) leaves nothing to do:
        # listing it raised FileNotFoundError over the run's own outcome.
        left = {p.name for p in out.iterdir()} if created and out.is_dir() else set()
        if created and RUN_LOCK in left and left <= {RUN_LOCK, MARKER_NAME}:
            for name in left:
                (out / name).unlink()
            out.rmdir()


def _check_snakemake_lock(out: Path, args: argparse.Namespace) -> None:
    """Refuse an OUTPUT_DIR that Snakemake's own lock holds, before anything is written.

    No other ``lcm run`` holds it (:func:`_output_dir_held`): the lock is a ``snakemake`` run
    started by hand, or one killed before it could unlock.
    """
    locks = out / ".snakemake" / "locks"
    if "--unlock" in args.snakemake_args or not locks.is_dir() or not any(locks.iterdir()):
        return
    raise OutputBusyError(
        f"OUTPUT_DIR {out} is locked by Snakemake ({locks}): a `snakemake` run in it started "
        "outside lcm run, or one killed before it could unlock (a kill signal, a SLURM job "
        "past its time limit); nothing was written.",
        hint="If such a snakemake is running, wait for it to end. If none is, add `-- --unlock` "
        "to this command once (it only removes the lock), then run it again. " + ONE_AT_A_TIME,
    )


def build_config(args: argparse.Namespace, cwd: Path, out: Path) -> dict[str, Any]:
    """The resolved configuration: the user's file, the BIDS dataset, OUTPUT_DIR; validated.

    Parameters
    ----------
    args : argparse.Namespace
        ``lcm run``'s arguments.
    cwd : Path
        Folder relative paths (arguments and the config file's) are read from.
    out : Path
        OUTPUT_DIR, absolute.

    Returns
    -------
    dict
        The configuration with defaults filled and every path absolute.

    Raises
    ------
    ConfigError
        When the config file or the resulting configuration is invalid.
    InputDataError
        When BIDS_DIR (or --derivatives) is not a folder, or the phenotype table cannot be
        read as the store reads it (not UTF-8 text, not a table).
    """
    config: dict[str, Any] = {}
    # Messages name the user's file: "lcm run" alone left a typo to be searched for there.
    source = f"lcm run --config-file {args.config_file}" if args.config_file else "lcm run"
    if args.config_file:
        config = read_yaml_mapping(Path(cwd, args.config_file), "--config-file")
        _section(config, ["datasets"], source)  # walked by the path fixes below
    config = _synth_paths(copy.deepcopy(config), cwd, out)
    config = _absolute_paths(config, cwd)
    bids = _folder(cwd / args.bids_dir, "BIDS_DIR")
    if args.dataset_name is not None:
        _check_dataset_name(args.dataset_name)
    name = _listed_name(config, bids, args.dataset_name, source) or _dataset_name(bids, out)
    _check_earlier_name(out, bids, name)
    # The config file's entry for this dataset (its task, repetition time, phenotype, site
    # column ...) is kept; BIDS_DIR and the options given here set the rest.
    dataset = _dataset_entry(config, name, bids, args, source)
    fmriprep = _section(config, ["fmriprep"], source)
    if args.derivatives:
        derivatives = _folder(cwd / args.derivatives, "--derivatives")
        _check_derivatives(derivatives, bids)
        dataset["derivatives"] = str(derivatives)
        fmriprep["runner"] = "existing"
    _section(config, ["datasets"], source)[name] = dataset
    _check_output_place(bids, Path(dataset["derivatives"]) if args.derivatives else None, out)
    _check_results_dir(config.get("results_dir"), cwd, out, source)
    config["results_dir"] = str(out)
    if args.participant_label:
        labels = [label.removeprefix("sub-") for label in args.participant_label]
        _check_participant_labels(bids, labels)
        ingest = _section(config, ["ingest"], source)
        chosen = _section(config, ["ingest", "select", name, "participants"], source)
        # The config file's exclude list still applies.
        included = _with_earlier_participants(labels, out, name, chosen.get("exclude") or [])
        if "include" in chosen or set(included) < _subject_labels(bids):
            chosen["include"] = included
        else:
            # Every subject of the dataset: no include list, so that the selection (a param of
            # ingest and the store) reads as a run without labels does. Spelled out, it reran
            # ingest, the store and every job after it, for the same participants.
            _drop_empty(ingest, ["select", name, "participants"])
    if args.work_dir:  # fMRIPrep's -w
        fmriprep["work_dir"] = str(Path(cwd, args.work_dir))
    if args.skip_bids_validation:  # fMRIPrep's flag of the same name
        _section(config, ["ingest"], source)["validate"] = False
    packaged = workflow_files() / "config"
    config.setdefault("variables", str(packaged / "variables.yaml"))
    config = validate_base(config, source=source)  # the shape, before a file is written
    # The values the schema cannot relate, which the jobs' settings check: said now, as the
    # workflow's dry run says them, not by a job hours into the run.
    check_connectome_config(config, source)
    check_model_settings(config["model"], source)
    if args.participant_label:
        labels = [x.removeprefix("sub-") for x in args.participant_label]
        chosen = config["ingest"].get("select", {}).get(name, {}).get("participants", {})
        _check_labels_not_excluded(labels, chosen.get("exclude", []), name, source)
        _check_labels_have_runs(bids, labels, config["datasets"][name]["task"])
    voxel = sorted(n for n, ds in config["datasets"].items() if entry_type(ds["entry"]).voxel)
    from lcm.atlas.load import check_atlas_files, check_atlas_space

    if voxel:  # and the atlas in the runs' space
        check_atlas_space(config, voxel, source=source)
    check_atlas_files(config, source=source)  # its files read, before fMRIPrep runs
    _check_container_files(config, cwd, source)
    tasks = {k: v for k, v in (config.get("tasks") or {}).items() if v["dataset"] == name}
    config["variables"] = _catalogue_with(
        config["variables"], name, dataset["phenotype"], out, tasks
    )
    return validate_config(config, source=source)


def _check_results_dir(given: Any, cwd: Path, out: Path, source: str) -> None:
    """Warn when the config file's ``results_dir`` is not OUTPUT_DIR, which replaces it.

    OUTPUT_DIR is the BIDS App's output folder, so it wins; a config file written for
    Snakemake directly (``results_dir: /scratch/old``) had it replaced without a word, and
    its user looked for the outputs there.
    """
    if given is None:
        return
    where = Path(cwd, given).resolve() if isinstance(given, str) and given else None
    if where == out:
        return
    shown = str(where) if where else excerpt(given)
    log.warning(
        "results_dir %s of %s is not OUTPUT_DIR: OUTPUT_DIR %s is used (lcm run writes "
        "every output there). Remove results_dir from the config file, or give that folder "
        "as OUTPUT_DIR.",
        shown,
        source,
        out,
    )


def _section(config: dict[str, Any], keys: list[str], source: str) -> dict[str, Any]:
    """The mapping at ``config[k0][k1]...``, each missing level made empty.

    ``lcm run`` adds to these sections of the user's config file: one that is not a mapping
    (``ingest: 3``, ``datasets:`` with nothing under it) stopped it with an AttributeError
    traceback, and a ``datasets.<name>`` that was none was silently replaced.

    Raises
    ------
    ConfigError
        Naming the key and what it holds, when a level is present but not a mapping.
    """
    node = config
    for depth, key in enumerate(keys):
        if key not in node:
            node[key] = {}
        elif not isinstance(node[key], dict):
            dotted = ".".join(keys[: depth + 1])
            raise ConfigError(
                f"{source}: invalid value at key {dotted!r}: expected a mapping (received "
                f"{excerpt(node[key])}); nothing was written.",
                hint=f"Put keys under {dotted} (config/README.md lists them), or remove it "
                "from the config file.",
            )
        node = node[key]
    return node


def _check_container_files(config: dict[str, Any], cwd: Path, source: str) -> None:
    """A container run's licence file and TemplateFlow folder: refused now if missing.

    The workflow's dry run checks them too (:meth:`lcm.workflow.plan.WorkflowPlan.check_inputs`);
    said here, the error names the user's config file, not OUTPUT_DIR/config.yaml.
    """
    fmriprep = config["fmriprep"]
    raw = any(entry_type(ds["entry"]).raw for ds in config["datasets"].values())
    if fmriprep["runner"] == "existing" or not raw:
        return
    licence = fmriprep.get("fs_license")
    if licence and not Path(licence).is_file():
        raise ConfigError(
            f"{source}: fmriprep.fs_license is {licence!r}, which is not a file.",
            hint="Set fmriprep.fs_license to your FreeSurfer license.txt (free from "
            "https://surfer.nmr.mgh.harvard.edu/registration.html), absolute or relative to "
            "the folder lcm run is called from.",
        )
    if fmriprep["runner"] == "apptainer":
        from lcm.preprocess.container import templateflow_home

        templateflow_home(os.environ.get("TEMPLATEFLOW_HOME"), str(cwd))


def _dataset_entry(
    config: dict[str, Any], name: str, bids: Path, args: argparse.Namespace, source: str
) -> dict[str, Any]:
    """The config's ``datasets.<name>`` for BIDS_DIR: the config file's entry, if any, with
    ``entry: bids`` and ``path`` set, and ``--task`` / ``--role`` where given.

    Raises
    ------
    ConfigError
        When the config file's entry reads another folder, or no phenotype table exists.
    """
    dataset = dict(_section(config, ["datasets", name], source))
    if dataset.get("path") and Path(dataset["path"]).resolve() != bids:
        raise ConfigError(
            f"--config-file: datasets.{name}.path is {dataset['path']}, but BIDS_DIR is {bids}.",
            hint=f"Remove datasets.{name}.path from the config file (BIDS_DIR sets it), or "
            "pass --dataset-name to add BIDS_DIR under another name.",
        )
    if dataset.get("entry", "bids") != "bids":
        raise ConfigError(
            f"--config-file: datasets.{name}.entry is {dataset['entry']!r}; lcm run reads "
            "BIDS_DIR as raw BIDS (entry: bids).",
            hint="Pass --dataset-name to add BIDS_DIR under another name. " + _snakemake_hint(args),
        )
    dataset.update(entry="bids", path=str(bids))
    _check_bids_root(bids, args)
    dataset.setdefault("phenotype", str(bids / "participants.tsv"))
    dataset["role"] = args.role or dataset.get("role", "downstream")
    if args.task:
        dataset["task"] = args.task
    phenotype = Path(dataset["phenotype"])
    if not phenotype.is_file():
        raise ConfigError(
            f"No phenotype table: {phenotype} does not exist (BIDS only recommends "
            "participants.tsv, and the feature store reads each subject's row of it).",
            hint=f"Write {bids / 'participants.tsv'} (a participant_id column: sub-01, ...), or "
            f"give datasets.{name}.phenotype in a --config-file. " + _snakemake_hint(args),
        )
    return dataset


def _check_bids_root(bids: Path, args: argparse.Namespace) -> None:
    """Refuse a BIDS_DIR that holds no ``sub-*`` folder, naming the folder in it that looks
    like the dataset (``study/rawdata`` for ``study``): one level too high, it was refused for
    lacking ``participants.tsv``, with no word of where the dataset is."""
    if any(p.is_dir() for p in bids.glob("sub-*")):
        return

    def subjects(folder: Path) -> bool:
        return any(p.is_dir() for p in folder.glob("sub-*"))

    inner = sorted(
        (p for p in bids.iterdir() if p.is_dir() and subjects(p)),
        key=lambda p: (not (p / "dataset_description.json").is_file(), p.name),
    )
    said = f"BIDS_DIR {bids} holds no sub-* folder: it is not the root of a BIDS dataset"
    if inner:
        others = f" ({', '.join(p.name for p in inner[1:])} too)" if inner[1:] else ""
        raise ConfigError(
            f"{said}; {inner[0]} holds subject folders{others}.",
            hint=f"Pass {inner[0]} as BIDS_DIR (the folder with dataset_description.json, "
            "participants.tsv and sub-*/).",
        )
    raise ConfigError(
        f"{said} (dataset_description.json, participants.tsv and sub-*/ in one folder).",
        hint="Pass the dataset's root folder. " + _snakemake_hint(args),
    )


def _snakemake_hint(args: argparse.Namespace) -> str:
    """Where data that is not raw BIDS goes: `lcm run` reads BIDS_DIR as raw BIDS only, and a
    folder of ROI series given as BIDS_DIR failed on what raw BIDS lacks, without saying so."""
    files = workflow_files()
    target = "participant " if args.analysis_level == "participant" else ""
    return (
        "If BIDS_DIR is not raw BIDS (ROI time series, connectomes: entry roi_timeseries or "
        "connectome), run the workflow with Snakemake directly on a config naming it (README, "
        f"'Snakemake directly'): snakemake {target}--snakefile {files / 'Snakefile'} --profile "
        f"{files / 'profiles' / 'local'} --configfile {args.config_file or 'my.yaml'}"
    )


def _check_derivatives(derivatives: Path, bids: Path) -> None:
    """Refuse a --derivatives folder that holds no fMRIPrep subject folders, naming the one
    inside it that does (``derivatives/`` for ``derivatives/fmriprep``): each subject's
    fMRIPrep job reported its files missing instead."""
    if derivatives == bids:
        raise ConfigError(
            f"--derivatives {derivatives} is BIDS_DIR itself, not fMRIPrep's output folder.",
            hint=f"Pass the fMRIPrep output folder, e.g. {bids / 'derivatives' / 'fmriprep'}.",
        )
    if any(p.is_dir() for p in derivatives.glob("sub-*")):
        return
    inner = sorted(p.parent for p in derivatives.glob("*/sub-*") if p.is_dir())
    hint = (
        f"Pass {inner[0]}, which holds subject folders."
        if inner
        else "Pass the folder fMRIPrep wrote (dataset_description.json and sub-*/ in it)."
    )
    raise ConfigError(f"--derivatives {derivatives} holds no sub-* folder.", hint=hint)


def _check_own_file(path: Path) -> None:
    """Refuse to replace a file at ``path`` that ``lcm run`` did not write (its first line).

    OUTPUT_DIR's ``config.yaml`` and ``variables.yaml`` are rewritten by every ``lcm run``;
    a user's own files of those names were replaced, even by a dry run.
    """
    if not path.exists():
        return
    try:
        with path.open(errors="replace") as handle:
            first = handle.readline()
    except OSError:
        first = ""
    if not first.startswith(RUN_MARK):
        raise ConfigError(
            f"{path} exists and was not written by lcm run; nothing was written.",
            hint="Choose a new OUTPUT_DIR (or one an earlier lcm run wrote), or move the file.",
        )


def _check_output_place(bids: Path, derivatives: Path | None, out: Path) -> None:
    """Refuse an OUTPUT_DIR in BIDS_DIR (but its ``derivatives/lcm``-like folders), in or
    above the ``--derivatives`` folder, or whose ``config.yaml``/``variables.yaml`` are not
    lcm run's."""
    _check_output_dir(bids, out)
    if derivatives is not None:
        _check_output_outside(derivatives, bids, out)
    for written in ("config.yaml", "variables.yaml"):
        _check_own_file(out / written)


def _check_output_outside(derivatives: Path, bids: Path, out: Path) -> None:
    """Refuse an OUTPUT_DIR that is the ``--derivatives`` folder, inside it, or holds it.

    LCM's outputs went into fMRIPrep's derivative dataset, beside (and mixed with) the
    subject folders it reads. An OUTPUT_DIR holding it (``/scratch`` for ``/scratch/fmriprep``)
    put fMRIPrep's dataset inside LCM's results folder, LCM's own folders (``fmriprep/``
    among them) written around it.
    """
    resolved = out.resolve()
    own = derivatives.parent / "lcm"
    if own.is_relative_to(bids) and not own.is_relative_to(bids / "derivatives"):
        own = bids / "derivatives" / "lcm"
    if resolved != derivatives and derivatives.is_relative_to(resolved):
        raise ConfigError(
            f"OUTPUT_DIR {resolved} holds the --derivatives folder {derivatives}, fMRIPrep's "
            "derivative dataset: it would be inside LCM's results folder, LCM's outputs "
            "written around it.",
            hint=f"Use a folder of its own, e.g. {own} (beside it), or a new folder outside "
            "it (OUTPUT_DIR is made if it does not exist).",
        )
    if not resolved.is_relative_to(derivatives):
        return
    where = "is the" if resolved == derivatives else "is inside the"
    raise ConfigError(
        f"OUTPUT_DIR {out} {where} --derivatives folder {derivatives}, fMRIPrep's derivative "
        "dataset: LCM's outputs would be written into it.",
        hint=f"Use a folder of its own, e.g. {own} (beside it), or a folder outside it.",
    )


def _check_output_dir(bids: Path, out: Path) -> None:
    """Refuse an OUTPUT_DIR inside BIDS_DIR but outside its ``derivatives/``, or above it.

    The BIDS validator reads everything under BIDS_DIR but ``derivatives/``: LCM's outputs
    there made the dataset invalid (its own ingest failed, and every later run until the
    folder was removed by hand). An OUTPUT_DIR holding BIDS_DIR (``lcm run /d/study /d``) put
    the dataset inside LCM's results folder, its marker and outputs written beside it.
    """
    resolved = out.resolve()
    if resolved != bids and bids.is_relative_to(resolved):
        raise ConfigError(
            f"OUTPUT_DIR {resolved} holds BIDS_DIR {bids}: the dataset would be inside LCM's "
            "results folder, LCM's outputs written beside it.",
            hint=f"Use a folder of its own, e.g. {bids / 'derivatives' / 'lcm'}, or a new "
            "folder outside BIDS_DIR (OUTPUT_DIR is made if it does not exist).",
        )
    if resolved == bids / "derivatives":
        raise ConfigError(
            f"OUTPUT_DIR {out} is BIDS_DIR's derivatives folder itself, which holds other "
            "pipelines' outputs (fMRIPrep's).",
            hint=f"Use a folder of its own, e.g. {bids / 'derivatives' / 'lcm'}.",
        )
    if resolved.is_relative_to(bids) and not resolved.is_relative_to(bids / "derivatives"):
        where = "is BIDS_DIR itself" if resolved == bids else f"is inside BIDS_DIR {bids}"
        raise ConfigError(
            f"OUTPUT_DIR {out} {where}, where the BIDS validator would read LCM's outputs as "
            "part of the dataset.",
            hint=f"Use {bids / 'derivatives' / 'lcm'} or a folder outside BIDS_DIR.",
        )


def _check_participant_labels(bids: Path, labels: list[str]) -> None:
    """Refuse --participant-label values that name no ``sub-<label>`` folder of BIDS_DIR."""
    present = sorted(p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir())
    unknown = [label for label in labels if label not in present]
    if unknown:
        shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
        raise ConfigError(
            f"--participant-label {' '.join(unknown)}: no such subject in {bids} "
            f"(it has {len(present)}: {shown}).",
            hint="Pass labels of sub-<label> folders of BIDS_DIR, with or without 'sub-'.",
        )


def _check_labels_not_excluded(
    labels: list[str], exclude: list[str], name: str, source: str
) -> None:
    """Refuse ``--participant-label`` values all of which the config file excludes; warn of
    those it excludes.

    ``ingest.select.<name>.participants.exclude`` wins over the labels: a call for excluded
    participants alone ran ingest over the whole dataset, then stopped with "no included run"
    about every subject of it.
    """
    excluded = {str(x).removeprefix("sub-") for x in exclude}
    chosen = list(dict.fromkeys(labels))
    hit = [label for label in chosen if label in excluded]
    if not hit:
        return
    said = (
        f"--participant-label {' '.join(hit)}: excluded by ingest.select.{name}.participants."
        f"exclude of {source}"
    )
    fix = f"Remove them from ingest.select.{name}.participants.exclude to process them."
    if len(hit) == len(chosen):
        raise ConfigError(f"{said}; nothing to process.", hint=fix)
    log.warning("%s; they are not processed. %s", said, fix)


def _check_labels_have_runs(bids: Path, labels: list[str], task: str) -> None:
    """Refuse ``--participant-label`` values none of which has a BOLD run of ``task``; warn
    of those that have none.

    A chosen subject without one ended the run with "no included run ... not_selected" about
    the other subjects, never saying that the chosen one has no run of the task.
    """
    lacking: dict[str, list[str]] = {}
    for label in dict.fromkeys(labels):
        folder = bids / f"sub-{label}"
        names = [p.name for g in ("func", "ses-*/func") for p in folder.glob(f"{g}/*_bold.nii*")]
        tasks = sorted({m.group(1) for n in names if (m := re.search(r"_task-([^_]+)_", n))})
        if task not in tasks:
            lacking[label] = tasks
    if not lacking:
        return
    said = "; ".join(
        f"sub-{label}: "
        + (f"BOLD runs of task(s) {', '.join(tasks)} only" if tasks else "no BOLD file in func/")
        for label, tasks in lacking.items()
    )
    fix = (
        f"Choose participants with BOLD runs of task {task!r}, or give the task of their "
        "resting-state runs with --task (task-restingstate: --task restingstate)."
    )
    if len(lacking) == len(dict.fromkeys(labels)):
        raise ConfigError(
            f"--participant-label {' '.join(lacking)}: no BOLD run of task {task!r} in {bids} "
            f"({said}); nothing to process.",
            hint=fix,
        )
    log.warning(
        "--participant-label: no BOLD run of task %r for %s; they add nothing. %s",
        task,
        said,
        fix,
    )


def _with_earlier_participants(
    labels: list[str], out: Path, name: str, exclude: list[str]
) -> list[str]:
    """``--participant-label``'s participants and those earlier runs put in OUTPUT_DIR.

    The manifest, QC table and store of a dataset describe the participants its selection
    includes: with this call's labels alone, ``--participant-label 02`` after a call of ``01``
    (a BIDS App's one call per participant into one OUTPUT_DIR) rebuilt them without ``01``.
    The selection is both: this call processes its labels, and the participants of the
    dataset's manifest in OUTPUT_DIR stay (rerun only where their files or settings changed).

    Raises
    ------
    InputDataError
        When the manifest of earlier runs cannot be read (its participants would be dropped).
    """
    manifest = Path(ingest_manifest(str(out), name))
    if not manifest.is_file():
        return sorted(set(labels))
    try:
        earlier = participants_kept(
            read_manifest(manifest, columns=["subject", "reason_code", "reason"])
        )
    except InputDataError as exc:
        raise InputDataError(
            f"--participant-label: cannot read {manifest}, the participants earlier runs put "
            f"in OUTPUT_DIR ({exc.message}); nothing was written.",
            hint="Run participant once without --participant-label (every participant) to "
            "rebuild it, or use a new OUTPUT_DIR.",
        ) from None
    others = sorted(earlier - set(labels))
    if others:
        shown = ", ".join(others[:20]) + (" ..." if len(others) > 20 else "")
        log.info(
            "--participant-label %s: OUTPUT_DIR %s holds %d other participant(s) of dataset "
            "%r from earlier runs (%s); they stay in its manifest, QC table and store, rerun "
            "only where their files or settings changed (a new OUTPUT_DIR starts a cohort "
            "of its own)",
            " ".join(labels),
            out,
            len(others),
            name,
            shown,
        )
        dropped = sorted(set(others) & {str(x).removeprefix("sub-") for x in exclude})
        if dropped:
            log.warning(
                "participant(s) %s of earlier runs are in ingest.select.%s.participants."
                "exclude of the config file: they leave the manifest, QC table and store of %s",
                ", ".join(dropped),
                name,
                out,
            )
    return sorted(set(labels) | earlier)


def _subject_labels(bids: Path) -> set[str]:
    """The labels of the ``sub-<label>`` folders of BIDS folder ``bids``."""
    return {p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir()}


def _drop_empty(section: dict, keys: list[str]) -> None:
    """Remove ``section[k0][k1]...`` and each parent left empty by it (made empty here)."""
    if not keys or not isinstance(section.get(keys[0]), dict):
        return
    _drop_empty(section[keys[0]], keys[1:])
    if not section[keys[0]]:
        del section[keys[0]]


def snakemake_command(args: argparse.Namespace, config_path: Path, out: Path) -> list[str]:
    """The Snakemake command line: packaged Snakefile, profile, the level's target, extras.

    Parameters
    ----------
    args : argparse.Namespace
        ``lcm run``'s arguments (``--profile``, ``--cores``, ``--dry-run``, the analysis level,
        the words after ``--``).
    config_path : pathlib.Path
        The resolved configuration written for this run (``OUTPUT_DIR/config.yaml``).
    out : pathlib.Path
        OUTPUT_DIR, absolute: Snakemake's working folder.

    Returns
    -------
    list of str
        The command, starting with this interpreter's ``-m snakemake``.

    Raises
    ------
    lcm.exceptions.ConfigError
        When ``--profile`` is neither a shipped profile nor a folder with a ``config.yaml``.
    """
    files = workflow_files()
    profile = files / "profiles" / args.profile
    if not profile.is_dir():
        profile = Path(args.profile).resolve()
    if not (profile / "config.yaml").is_file():
        shipped = sorted(p.name for p in (files / "profiles").iterdir() if p.is_dir())
        raise ConfigError(
            f"--profile {args.profile}: neither a shipped profile ({', '.join(shipped)}) nor a "
            "folder holding a Snakemake profile's config.yaml.",
            hint="Pass local, slurm, or your profile's folder.",
        )
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(files / "Snakefile")]
    cmd += ["--directory", str(out), "--configfile", str(config_path), "--profile", str(profile)]
    if args.cores:
        cmd += ["--cores", str(args.cores)]
    if args.dry_run:
        cmd.append("--dry-run")
    # The level's target before the user's options: after one that takes several values
    # (--default-resources, --set-resources, --groups, --config) it was read as one of them.
    _check_snakemake_words(args.snakemake_args)
    return [*cmd, LEVELS[args.analysis_level], *_absolute_words(args.snakemake_args)]


# Snakemake options after `--` that replace what lcm run sets (Snakemake keeps the last value
# given), with what to do instead.
_OWN_OPTIONS = {
    ("--configfile", "--configfiles"): "Give your config with lcm run --config-file FILE (the "
    "BIDS dataset is added to it and results_dir set to OUTPUT_DIR), or one key with "
    "`-- --config KEY=VALUE`.",
    ("--snakefile", "-s", "--directory", "-d"): "lcm run runs the packaged workflow in "
    "OUTPUT_DIR; for another Snakefile or working folder, run snakemake directly (README, "
    "'Snakemake directly').",
    ("--profile",): "Give the profile with lcm run --profile (local, slurm or a folder), before "
    "`--`.",
}


def _check_snakemake_words(words: list[str]) -> None:
    """Refuse Snakemake options after ``--`` that replace what ``lcm run`` sets.

    Snakemake keeps the last value of an option: ``-- --configfile my.yaml`` replaced the
    resolved config (the BIDS dataset gone: "Add 'datasets'", or another dataset's run with
    results under OUTPUT_DIR/results), and ``-- --config results_dir=DIR`` wrote every output
    to DIR, past OUTPUT_DIR's checks and lock. Snakemake's parser (argparse) also reads an
    unambiguous abbreviation (``--direc``) and a value attached to a short option (``-sFILE``,
    ``-nd DIR``, ``-Cresults_dir=DIR``): such words are read by its own parser.

    Raises
    ------
    ConfigError
        Naming the option and what to give instead.
    """
    in_config = False  # the word is a KEY=VALUE of --config (which takes several)
    for word in words:
        if word == "--":
            break  # Snakemake reads the words after it as targets
        name, sep, value = word.partition("=") if word.startswith("-") else (word, "", "")
        items: list[str] = []
        if any(name in options for options in _OWN_OPTIONS) or name in ("--config", "-C"):
            own = name
        else:
            own, items = _snakemake_reads(word)
            if items[-1:] == [_VALUE]:  # it opens --config (-nC): the next words are items
                in_config, items = True, items[:-1]
                continue
        for options, fix in _OWN_OPTIONS.items():
            if own in options:
                said = word if own == name else f"{word} (Snakemake reads it as {own})"
                raise ConfigError(
                    f"lcm run ... -- {said}: replaces what lcm run sets (Snakemake keeps the "
                    "last value given); nothing was written.",
                    hint=fix,
                )
        if name in ("--config", "-C"):
            # A value attached (--config=K=V) is the option's only one, as argparse reads it.
            in_config, items = not sep, [value] if sep else []
        else:
            in_config = in_config and not word.startswith("-")
            items += [word] if in_config else []
        for item in items:
            if item.partition("=")[0].strip() == "results_dir":
                raise ConfigError(
                    f"lcm run ... -- --config {item}: OUTPUT_DIR is lcm run's results_dir; "
                    "nothing was written.",
                    hint="Give that folder as OUTPUT_DIR.",
                )


# Snakemake's names (argparse dests) of the options in _OWN_OPTIONS, and their long spelling.
_OWN_DESTS = {
    "configfile": "--configfile",
    "snakefile": "--snakefile",
    "directory": "--directory",
    "profile": "--profile",
}


# The value given after a word to Snakemake's parser, for an option that takes one.
_VALUE = "lcm-run-value"


def _snakemake_reads(word: str) -> tuple[str | None, list[str]]:
    """Which of lcm run's own options Snakemake reads ``word`` as, and its ``--config`` items.

    Only a word that may be one (a prefix of such a long option; a short form with letters
    after the dash, ``s``, ``d`` or ``C`` among them) is given to Snakemake's own parser,
    whose import takes a second or more: ``--direc`` (unambiguous) is ``--directory``, while
    ``--configf`` (``--configfile`` or ``--configfiles``) is refused by Snakemake itself.

    Returns
    -------
    str or None
        The option's long name (``--directory``), or None.
    list of str
        The ``KEY=VALUE`` items of ``--config`` it holds (``-Cresults_dir=DIR``); the last
        one is ``_VALUE`` when it opens ``--config`` (``-nC``), whose items follow.
    """
    name = word.partition("=")[0]
    if name.startswith("--"):
        longs = [*_OWN_DESTS.values(), "--configfiles", "--config"]
        maybe = len(name) > 2 and any(option.startswith(name) for option in longs)
    else:
        maybe = len(word) > 2 and word.startswith("-") and any(c in word[1:] for c in "sdC")
    if not maybe:
        return None, []
    try:
        parser = _snakemake_parser()
        # No environment: a set SNAKEMAKE_PROFILE is no word of the user's.
        plain = parser.parse_known_args([_VALUE], env_vars={}, ignore_help_args=True)[0]
        read = parser.parse_known_args([word, _VALUE], env_vars={}, ignore_help_args=True)[0]
    except (ImportError, argparse.ArgumentError, SystemExit):
        return None, []  # an ambiguous or bad option: Snakemake says so itself
    for dest, option in _OWN_DESTS.items():
        if getattr(read, dest, None) != getattr(plain, dest, None):
            return option, []
    config = getattr(read, "config", None)
    return None, [str(x) for x in config] if config != getattr(plain, "config", None) else []


@functools.cache
def _snakemake_parser() -> argparse.ArgumentParser:
    """Snakemake's command-line parser (without a profile), raising instead of exiting."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()

    def error(message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)

    parser.error = error  # type: ignore[method-assign]
    return parser


def _absolute_words(words: list[str]) -> list[str]:
    """Snakemake's extra words, each relative path that exists here made absolute.

    Snakemake runs in OUTPUT_DIR: ``-- --forcerun out/fmriprep/ds/sub-06_fmriprep.json``,
    relative to the folder lcm run is called from, was "No rule to produce" there. A word with
    a ``/`` naming an existing file or folder (a target, a record to force, a config file) is
    a path; rule names and option values without one are left alone.
    """
    cwd = Path.cwd()
    return [
        str(cwd / word)
        if "/" in word
        and not word.startswith("-")
        and not os.path.isabs(word)
        and (cwd / word).exists()
        else word
        for word in words
    ]


def _absolute_paths(config: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Make the config's relative paths absolute against ``cwd`` (where the user called)."""

    def absolute(value: Any) -> Any:
        return str(Path(cwd, value)) if isinstance(value, str) and value else value

    for section, *rest in _PATH_KEYS:
        if not rest:
            if section in config:
                config[section] = absolute(config[section])
        elif isinstance(config.get(section), dict) and rest[0] in config[section]:
            config[section][rest[0]] = absolute(config[section][rest[0]])
    for ds in (config.get("datasets") or {}).values():
        if isinstance(ds, dict):
            for key in _DATASET_PATH_KEYS:
                if key in ds:
                    ds[key] = absolute(ds[key])
    # An apptainer image file (a URI, docker://..., is none; a docker runner's is a name).
    fmriprep = config.get("fmriprep")
    if isinstance(fmriprep, dict) and fmriprep.get("runner") == "apptainer":
        image = fmriprep.get("image")
        if isinstance(image, str) and "://" not in image:
            fmriprep["image"] = absolute(image)
    return config


# The schema's default synth.out_dir: relative to the folder the workflow runs in.
SYNTH_DEFAULT_OUT_DIR = "results/synth"


def _synth_paths(config: dict[str, Any], cwd: Path, out: Path) -> dict[str, Any]:
    """Put ``synth.out_dir`` and the synthetic datasets' paths in one place.

    The synthetic consortia are the workflow's to write: without an ``out_dir`` of the user's
    they go to ``OUTPUT_DIR/synth`` (the schema's default, ``results/synth``, would be read
    from OUTPUT_DIR, where the workflow runs, while the datasets' ``results/synth/...`` paths
    were made absolute against the calling folder: the store found no input, or stale files
    of the calling folder). A synthetic dataset's relative path under ``out_dir`` as the file
    writes it (or under ``results/synth`` by default) follows ``out_dir``; a path elsewhere,
    where ``lcm synth`` writes nothing, is refused.
    """
    synth = config.get("synth")
    if not isinstance(synth, dict) or not synth.get("enabled"):
        return config
    consortia = synth.get("consortia")
    given = synth.get("out_dir")
    if not isinstance(consortia, dict) or not (given is None or isinstance(given, str)):
        return config  # the schema check names what is wrong
    base = Path(given or SYNTH_DEFAULT_OUT_DIR)
    resolved = Path(cwd, given) if given else out / "synth"
    synth["out_dir"] = str(resolved)
    for name, ds in (config.get("datasets") or {}).items():
        if name not in consortia or not isinstance(ds, dict):
            continue
        for key in _DATASET_PATH_KEYS:
            value = ds.get(key)
            if not isinstance(value, str) or not value or Path(value).is_absolute():
                continue
            if Path(value).is_relative_to(base):
                ds[key] = str(resolved / Path(value).relative_to(base))
        written = resolved / name
        for key in _DATASET_PATH_KEYS:
            value = ds.get(key)
            if not isinstance(value, str) or not value:
                continue
            path = Path(cwd, value)
            if not path.is_relative_to(written):
                raise ConfigError(
                    f"lcm run: datasets.{name}.{key} is {value!r} ({path}), outside "
                    f"{written}, where synth.consortia.{name} is written (synth.out_dir "
                    f"{'is ' + repr(given) if given else 'not set: OUTPUT_DIR/synth'}).",
                    hint=f"Point datasets.{name}.{key} into synth.out_dir/{name} (e.g. "
                    f"{SYNTH_DEFAULT_OUT_DIR}/{name}/... with no out_dir set), or set "
                    f"synth.out_dir to the folder its paths are in.",
                )
    return config


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputDataError(f"{what} {path} is not a folder.", hint="Check the path.")
    return path.resolve()


def _check_dataset_name(given: str) -> None:
    """Refuse a ``--dataset-name`` that is no config name (letters and digits, at most 64).

    The schema's refusal named "key 'datasets'" only, not the option, and an empty name fell
    back to the folder's without a word.
    """
    if re.fullmatch(r"[A-Za-z0-9]{1,64}", given):
        return
    cleaned = re.sub(r"[^A-Za-z0-9]", "", given)[:64]
    raise ConfigError(
        f"--dataset-name {given!r}: a dataset name is 1 to 64 letters and digits (it names "
        "the dataset's folders in OUTPUT_DIR and its partition of the store).",
        hint=f"Pass --dataset-name {cleaned}, say." if cleaned else "Pass letters and digits.",
    )


# Folder names that name no study (``study/rawdata``, BIDS' own layout beside ``derivatives/``).
COMMON_FOLDER_NAMES = frozenset({"rawdata", "raw", "bids", "input", "inputs", "data", "sourcedata"})


def _config_name(text: str) -> str:
    """Letters and digits of ``text``, at most 64 (config names allow nothing else)."""
    return re.sub(r"[^A-Za-z0-9]", "", text)[:64]


def _listed_name(config: dict[str, Any], bids: Path, given: str | None, source: str) -> str | None:
    """The name the config file gives BIDS_DIR (``datasets.<name>.path``), else ``given``.

    Without it, BIDS_DIR was added a second time under the folder's name: the config file's
    entry, lacking what lcm run fills in, was refused for it ("'phenotype' is a required
    property" about a name the user never saw lcm run use), or the dataset was read twice.

    Raises
    ------
    ConfigError
        When the config file lists BIDS_DIR under several names, or under another name than
        ``--dataset-name``.
    """
    datasets = config.get("datasets") or {}
    listed = [
        str(name)
        for name, ds in datasets.items()
        if isinstance(ds, dict)
        and ds.get("entry", "bids") == "bids"
        and isinstance(ds.get("path"), str)
        and ds["path"]
        and Path(ds["path"]).resolve() == bids
    ]
    if len(listed) > 1:
        raise ConfigError(
            f"{source}: BIDS_DIR {bids} is listed under several datasets "
            f"({', '.join(listed)}); its participants would be read once for each.",
            hint="Keep one of these entries in the config file.",
        )
    if listed and given is not None and given != listed[0]:
        raise ConfigError(
            f"--dataset-name {given}, but {source} lists BIDS_DIR {bids} as datasets."
            f"{listed[0]}; the dataset would be added twice.",
            hint=f"Pass --dataset-name {listed[0]}, or leave it out (the config file's name "
            "is used), or rename the entry in the config file.",
        )
    if listed and given is None:
        log.info("dataset %r (its name in %s; --dataset-name sets another)", listed[0], source)
    return listed[0] if listed else given


def _dataset_name(bids: Path, out: Path) -> str:
    """The name of BIDS_DIR's dataset without ``--dataset-name``, logged with how it was chosen.

    The name an earlier ``lcm run`` into OUTPUT_DIR gave this folder (another would add its
    participants to the store a second time); else the folder's name in letters and digits,
    but for a common folder name (``rawdata``, ``bids`` ...: ``/data/abide/rawdata`` named
    every study so laid out 'rawdata') its parent folder's, or ``dataset_description.json``'s
    ``Name`` when that is a common name too. The name reaches OUTPUT_DIR's folders and the
    store's partitions.
    """
    fix = "--dataset-name sets another"
    earlier = _earlier_names(out, bids)
    if len(earlier) == 1:
        log.info("dataset %r (its name in the earlier runs of %s; %s)", earlier[0], out, fix)
        return earlier[0]
    name = _config_name(bids.name)
    if name.lower() not in COMMON_FOLDER_NAMES:
        if name != bids.name:
            log.info("dataset %r (from folder %r; %s)", name, bids.name, fix)
        return name or "bids"
    parent = _config_name(bids.parent.name)
    source = "its parent folder's name"
    if not parent or parent.lower() in COMMON_FOLDER_NAMES:
        parent = _config_name(_description_name(bids))
        source = "the Name of its dataset_description.json"
    if parent:
        log.info(
            "dataset %r (from folder %s: %r names no study, so %s; %s)",
            parent,
            bids,
            bids.name,
            source,
            fix,
        )
        return parent
    log.info("dataset %r (from folder %s; %s)", name, bids, fix)
    return name


def _description_name(bids: Path) -> str:
    """``Name`` of BIDS_DIR's ``dataset_description.json``; empty if it has none."""
    try:
        name = json.loads((bids / "dataset_description.json").read_text()).get("Name")
    except (OSError, ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def _check_earlier_name(out: Path, bids: Path, name: str) -> None:
    """Refuse a name for BIDS_DIR other than the one the earlier runs of OUTPUT_DIR gave it.

    Its participants were then read again under the new name, beside the old one: the same
    subjects twice in the store, as two datasets.
    """
    earlier = _earlier_names(out, bids)
    if earlier and name not in earlier:
        raise ConfigError(
            f"BIDS_DIR {bids} was dataset {earlier[0]!r} in the earlier runs of OUTPUT_DIR "
            f"{out}; as {name!r} its participants would be added to the store again.",
            hint=f"Pass --dataset-name {earlier[0]} (or rename the entry of the --config-file "
            "to it), or give a new OUTPUT_DIR to start afresh under the new name.",
        )


def _earlier_names(out: Path, bids: Path) -> list[str]:
    """Names the ``config.yaml`` an earlier ``lcm run`` wrote in OUTPUT_DIR gives ``bids``."""
    try:
        text = (out / "config.yaml").read_text()
        written = yaml.safe_load(text) if text.startswith(RUN_MARK) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    datasets = written.get("datasets") if isinstance(written, dict) else None
    return [
        name
        for name, ds in (datasets if isinstance(datasets, dict) else {}).items()
        if isinstance(ds, dict)
        and ds.get("entry") == "bids"
        and isinstance(ds.get("path"), str)
        and Path(ds["path"]) == bids
        and re.fullmatch(r"[A-Za-z0-9]{1,64}", str(name))
    ]


def _catalogue_with(
    catalogue: str,
    dataset: str,
    phenotype: str,
    out: Path,
    tasks: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The variable catalogue, with a coding for ``dataset`` added when it has none.

    The added coding reads ``participant_id`` and each catalogue variable whose name is a
    column of ``participants.tsv``, its codes mapped to the catalogue's levels where they are
    well known (``male``/``female`` for ``M``/``F``) or ``participants.json`` names them
    (:mod:`lcm.store.coding`); a column whose values do not fit its variable is left out,
    logged with the fix (a task's label is refused). A task of ``dataset`` whose label is a
    ``participants.tsv`` column but no catalogue variable (``diagnosis``, say) adds it: a
    binary clinical variable of the column's two values, when it has two and ``positive`` is
    one. It is written to ``OUTPUT_DIR/variables.yaml`` (the given catalogue is never
    modified). A catalogue that codes the dataset is used as is.
    """
    path = Path(catalogue)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"variables: cannot read the catalogue {path}: {exc}") from None
    if dataset in (raw.get("datasets") or {}):
        return str(path)
    # The store's reader: a table it cannot read (not UTF-8, not a table) is refused here, with
    # its reason; read as empty, it gave a coding of no column and a misleading error later.
    table = read_table(phenotype)
    variables = raw.setdefault("variables", {})
    for task in (tasks or {}).values():
        label, positive = task["label"], task.get("positive")
        if label in variables or label not in table.columns or positive is None:
            continue
        levels = sorted(v for v in set(table[label]) if not is_missing(str(v)))
        if len(levels) != 2 or positive not in levels:
            # Said here, before variables.yaml is written: the catalogue check would only
            # say the label is no variable.
            shown = ", ".join(repr(v) for v in levels[:8]) + (" ..." if len(levels) > 8 else "")
            raise ConfigError(
                f"Task label {label!r} is a column of {phenotype} with {len(levels)} value(s) "
                f"({shown}); a binary task needs two, one of them positive: {positive!r}.",
                hint=f"Code the column with two values (e.g. fix case: 'control' vs 'Control'),"
                f" or add {label!r} to a catalogue of your own (variables: in --config-file).",
            )
        negative = next(level for level in levels if level != positive)
        variables[label] = {"kind": "binary", "domain": "clinical"}
        variables[label]["levels"] = [negative, positive]
        log.info("task label %r: binary variable of %s, levels %s", label, phenotype, levels)
    named = {v: parse_variable(path, v, variables[v]) for v in variables if v in table.columns}
    columns, left_out = generated_columns(named, table, read_sidecar(phenotype))
    own = (
        f"give a catalogue of your own with --config-file (variables: my_variables.yaml, with "
        f"datasets.{dataset}: id_column participant_id and columns, e.g. "
        "sex: {column: sex, map: {'1': M, '2': F}})"
    )
    for task_name, task in (tasks or {}).items():
        gone = next((x for x in left_out if x.column == task["label"]), None)
        if gone is not None:
            raise ConfigError(
                f"Task {task_name!r}: its label's {gone.describe()}, in {phenotype}.",
                hint=f"Fix the column's values, or {own}.",
            )
    for gone in left_out:
        log.warning(
            "%s: %s; left out of the coding lcm run generates for %r (its variable is missing "
            "for every participant). To store it, %s",
            phenotype,
            gone.describe(),
            dataset,
            own,
        )
    for name, spec in columns.items():
        if "map" in spec:
            codes = ", ".join(f"{code} -> {level}" for code, level in spec["map"].items())
            log.info("%s: column %r read as catalogue levels: %s", phenotype, name, codes)
    raw.setdefault("datasets", {})[dataset] = {"id_column": "participant_id", "columns": columns}
    target = out / "variables.yaml"
    out.mkdir(parents=True, exist_ok=True)
    # ASCII, as yaml.safe_dump writes: the file is read back in the locale's encoding.
    notes = "".join(f"# Left out: {x.describe()}.\n" for x in left_out)
    notes = notes.encode("ascii", "backslashreplace").decode()
    write_text(
        target,
        generated_header(path, dataset) + "\n" + notes + yaml.safe_dump(raw, sort_keys=False),
    )
    log.info("catalogue %s has no coding for %s: wrote %s", path, dataset, target)
    return str(target)
