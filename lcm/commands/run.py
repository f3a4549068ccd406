"""``lcm run``: the BIDS-App front door, a thin wrapper around the packaged Snakemake workflow.

``lcm run BIDS_DIR OUTPUT_DIR participant|group`` writes one resolved configuration (a config file
of the user's, if any, with the BIDS dataset added and ``results_dir`` set to OUTPUT_DIR) to
``OUTPUT_DIR/config.yaml`` and runs the workflow shipped in the package on it, from any folder.
Snakemake's own command line keeps working on the same files.

The checks it makes before Snakemake starts live beside it, one module per subject:
``_run_output_dir`` (OUTPUT_DIR: its lock and its place), ``_run_dataset`` (BIDS_DIR's entry
and name), ``_run_participants`` (``--participant-label``), ``_run_config`` (the config file's
sections and paths), ``_run_catalogue`` (the generated variable coding) and ``_run_snakemake``
(the packaged workflow and the words after ``--``).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from lcm.catalogue import RUN_MARK
from lcm.commands._outputs import nearest_existing
from lcm.commands._path_text import path_text
from lcm.commands._run_catalogue import catalogue_with
from lcm.commands._run_config import (
    absolute_paths,
    check_container_files,
    config_section,
    drop_empty,
    synth_paths,
)
from lcm.commands._run_dataset import (
    check_dataset_name,
    check_derivatives,
    check_earlier_name,
    dataset_entry,
    dataset_name,
    existing_folder,
    listed_name,
)
from lcm.commands._run_output_dir import (
    check_output_place,
    check_results_dir,
    check_snakemake_lock,
    output_dir_held,
)
from lcm.commands._run_participants import (
    check_labels_have_runs,
    check_labels_not_excluded,
    check_participant_labels,
    subject_labels,
    with_earlier_participants,
)
from lcm.commands._run_snakemake import (
    PassThroughParser,
    absolute_words,
    check_snakemake_words,
    workflow_files,
)
from lcm.config import read_yaml_mapping, validate_base
from lcm.connectome.config_check import check_config as check_connectome_config
from lcm.docstrings import fill_doc
from lcm.entries import entry_type
from lcm.evaluate.config_schema import validate_config
from lcm.exceptions import ConfigError, ExternalToolError, OutputOwnershipError
from lcm.io.atomic import write_text
from lcm.io.ownership import RESULTS_OWNER, claim_results
from lcm.io.paths import RESULTS_ENTRIES
from lcm.model.config import check_model_settings

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
    p.add_argument(
        "bids_dir", type=path_text, help="Raw BIDS dataset (its participants.tsv is the phenotype)."
    )
    p.add_argument(
        "output_dir", type=path_text, help="Folder of every output (the config's results_dir)."
    )
    p.add_argument("analysis_level", choices=sorted(LEVELS), help="participant or group.")
    p.add_argument(
        "--derivatives",
        type=path_text,
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
        type=path_text,
        help="fMRIPrep's work folder (sets fmriprep.work_dir; docker and apptainer runners), as "
        "fMRIPrep's -w: outside BIDS_DIR, which fMRIPrep refuses to hold it. Default "
        "OUTPUT_DIR/work/fmriprep; with OUTPUT_DIR inside BIDS_DIR (derivatives/<name>) a "
        "container run needs it.",
    )
    p.add_argument(
        "--config-file",
        type=path_text,
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
    # Everything after `--` goes to Snakemake untouched (see PassThroughParser).
    p.__class__ = PassThroughParser
    p.set_defaults(func=run, snakemake_args=[])
    p.usage = f"{p.format_usage().removeprefix('usage: ').rstrip()} [-- SNAKEMAKE_ARGS ...]"


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
    _check_not_under_a_file(args.output_dir, out)
    cmd = snakemake_command(args, out / "config.yaml", out)  # checks the profile, first
    # Where OUTPUT_DIR is, before its lock file is written there (build_config checks again,
    # each path with its own error where it is no folder).
    bids, derivatives = Path.cwd() / args.bids_dir, Path.cwd() / (args.derivatives or "")
    if bids.is_dir():
        given = derivatives.resolve() if args.derivatives and derivatives.is_dir() else None
        check_output_place(bids.resolve(), given, out)
    with output_dir_held(out):
        check_snakemake_lock(out, args)
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


def _check_not_under_a_file(given: str, out: Path) -> None:
    """Refuse an OUTPUT_DIR that is a file, or whose folder a file on its path blocks.

    Said so, not as the lock's "cannot write in ... (File exists)"; and with the exit code
    (6, :class:`lcm.exceptions.OutputOwnershipError`) of every other verb's output under a
    file (:func:`lcm.commands._outputs.check_output_folders`), not a configuration error (2).
    """
    blocker = nearest_existing(out)
    if blocker.is_dir():
        return
    where = "is a file" if blocker == out else f"cannot be made: {blocker} is a file"
    raise OutputOwnershipError(
        f"OUTPUT_DIR {given} ({out}) {where}, not a folder; nothing was written.",
        hint=f"Give a folder (lcm run makes it if it does not exist), or move {blocker} away.",
    )


def _absolute_templateflow_home(cwd: Path) -> None:
    """Make ``TEMPLATEFLOW_HOME`` absolute against ``cwd`` (the folder lcm run is called from).

    Snakemake runs in OUTPUT_DIR: a relative ``TEMPLATEFLOW_HOME`` named a folder there, which
    did not exist, and apptainer refused to bind it in every subject's job.
    """
    value = os.environ.get("TEMPLATEFLOW_HOME")
    if value:
        os.environ["TEMPLATEFLOW_HOME"] = os.path.abspath(Path(cwd, value))


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
        config_section(config, ["datasets"], source)  # walked by the path fixes below
    config = synth_paths(copy.deepcopy(config), cwd, out)
    config = absolute_paths(config, cwd)
    bids = existing_folder(cwd / args.bids_dir, "BIDS_DIR")
    if args.dataset_name is not None:
        check_dataset_name(args.dataset_name)
    name = listed_name(config, bids, args.dataset_name, source) or dataset_name(bids, out)
    check_earlier_name(out, bids, name)
    # The config file's entry for this dataset (its task, repetition time, phenotype, site
    # column ...) is kept; BIDS_DIR and the options given here set the rest.
    dataset = dataset_entry(config, name, bids, args, source)
    fmriprep = config_section(config, ["fmriprep"], source)
    if args.derivatives:
        derivatives = existing_folder(cwd / args.derivatives, "--derivatives")
        check_derivatives(derivatives, bids)
        dataset["derivatives"] = str(derivatives)
        fmriprep["runner"] = "existing"
    config_section(config, ["datasets"], source)[name] = dataset
    check_output_place(bids, Path(dataset["derivatives"]) if args.derivatives else None, out)
    check_results_dir(config.get("results_dir"), cwd, out, source)
    config["results_dir"] = str(out)
    if args.participant_label:
        labels = [label.removeprefix("sub-") for label in args.participant_label]
        check_participant_labels(bids, labels)
        ingest = config_section(config, ["ingest"], source)
        chosen = config_section(config, ["ingest", "select", name, "participants"], source)
        # The config file's exclude list still applies.
        included = with_earlier_participants(labels, out, name, chosen.get("exclude") or [])
        if "include" in chosen or set(included) < subject_labels(bids):
            chosen["include"] = included
        else:
            # Every subject of the dataset: no include list, so that the selection (a param of
            # ingest and the store) reads as a run without labels does. Spelled out, it reran
            # ingest, the store and every job after it, for the same participants.
            drop_empty(ingest, ["select", name, "participants"])
    if args.work_dir:  # fMRIPrep's -w
        fmriprep["work_dir"] = str(Path(cwd, args.work_dir))
    if args.skip_bids_validation:  # fMRIPrep's flag of the same name
        config_section(config, ["ingest"], source)["validate"] = False
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
        check_labels_not_excluded(labels, chosen.get("exclude", []), name, source)
        check_labels_have_runs(bids, labels, config["datasets"][name]["task"])
    voxel = sorted(n for n, ds in config["datasets"].items() if entry_type(ds["entry"]).voxel)
    from lcm.atlas.load import check_atlas_files, check_atlas_space

    if voxel:  # and the atlas in the runs' space
        check_atlas_space(config, voxel, source=source)
    check_atlas_files(config, source=source)  # its files read, before fMRIPrep runs
    check_container_files(config, cwd, source)
    tasks = {k: v for k, v in (config.get("tasks") or {}).items() if v["dataset"] == name}
    config["variables"] = catalogue_with(
        config["variables"], name, dataset["phenotype"], out, tasks, subject_labels(bids)
    )
    return validate_config(config, source=source)


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
    check_snakemake_words(args.snakemake_args)
    return [*cmd, LEVELS[args.analysis_level], *absolute_words(args.snakemake_args)]
