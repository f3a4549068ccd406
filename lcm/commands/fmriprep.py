"""``lcm fmriprep``: run (or reuse) fMRIPrep for one subject and record its derivatives."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcm.commands._outputs import check_output_folders
from lcm.commands._path_text import path_text
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError
from lcm.io.provenance import write_sidecar
from lcm.preprocess.fmriprep_run import RUNNERS

# The options' names of the dataset's settings, which the exclusion reasons' fixes name
# (lcm.bids.dataset.setting_names): a command-line user wrote no fmriprep.output_space. The
# runs expected come from lcm ingest's manifest, whose --select leaves a subject out.
OPTION_NAMES = {
    "dataset": "--dataset",
    "path": "--bids",
    "derivatives": "--derivatives",
    "task": "--task",
    "space": "--output-space",
    # Another verb's: a surface space's hint enters the data as ROI time series.
    "entry": "lcm ingest --entry",
    "roi_space": "lcm ingest --space",
    "select": "lcm ingest --select",
    "subject": "--subject",
    "extra_args": "--extra-args",
    "work_dir": "--work-dir",
    "fs_license": "--fs-license",
    "image": "--image",
    "runner": "--runner",
}

EPILOG = """\
examples:
  # derivatives already exist: only check them
  lcm fmriprep --dataset bidsdemo --bids rawdata --subject 01 --runner existing \\
      --output-space MNI152NLin2009cAsym --derivatives derivatives/fmriprep \\
      --out sub-01_fmriprep.json
  # run the fmriprep-docker wrapper
  lcm fmriprep --dataset ds --bids rawdata --subject 01 --runner docker \\
      --image nipreps/fmriprep:25.2.7 --output-space MNI152NLin2009cAsym \\
      --derivatives derivatives/fmriprep --work-dir work --fs-license license.txt \\
      --extra-args '["--nthreads", "8"]' --out sub-01_fmriprep.json

The record lists, per run: run_key, sub, ses, task, run, bold, mask, confounds, sidecar, t_r,
space_read, t_r_source (preproc_sidecar; raw_sidecar where the preprocessed BOLD's sidecar is
absent or names no RepetitionTime and the raw run's, by BIDS inheritance, stands in, checked
against the BOLD header; a raw run ingest refuses for its TR lends none, and the run is
excluded with ingest's reason code, tr_mismatch or no_repetition_time; for a dataset entering
as derivatives, from ingest's manifest or, without --manifest, from ingest's reading of the
--bids derivatives folder: inherited_sidecar where a sidecar the run inherits in the
derivatives tree gives it, header where none does and the BOLD header's pixdim[4] is in a
time unit xyzt_units names; with neither the run is excluded as no_repetition_time, naming
the files and the fix) and t_r_note. A preprocessed sidecar's TR is checked against its BOLD
header's pixdim[4] (as ingest checks a raw run's; t_r_note says "TR not checked: ..." where the
header does not confirm it) and against the raw run's TR (the manifest's, or ingest's reading
of --bids): a disagreement excludes the run as tr_mismatch, naming the files, both values and
the fix.
With --runner existing the record names the fMRIPrep that made the derivatives, generated_by:
name, version and container of their dataset_description.json (GeneratedBy, or the
PipelineDescription of fMRIPrep before 20.2); a file missing or naming no version gives a
null version and its reason, with a warning (the runs are still checked and recorded).
generated_by.subject is the version the subject's latest log/*/fmriprep.toml names, with a
warning where it is not the description's (subjects made by different fMRIPrep versions).
Docker and apptainer runs get --task-id (--task), --nthreads and --omp-nthreads (the job's
--nthreads; at most 8 per process) and --mem_mb (90 % of the job's --mem-mb); a larger value
in --extra-args is capped to them, with a warning.

A docker or apptainer run that completes (exit 0, every run's outputs there) leaves a stamp
beside --out (sub-01_fmriprep.completed.json: settings, image digest, raw files by size and
mtime). The same command again does not launch fMRIPrep while the stamp holds (it checks the
derivatives and writes the record): another setting, image, or raw file of the subject, or
outputs gone, launches it; so does removing the stamp. The subject's work folder
(--work-dir/sub-01) is then removed if LCM created it, unless --keep-work; a failed run keeps
it (crash files, and a rerun resumes from it). A raw BOLD of 5 volumes or fewer (4 with
--sloppy), which fMRIPrep skips with exit status 0, is recorded as excluded, too_few_volumes,
and not expected from it.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fmriprep`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        ``lcm``'s sub-commands (:func:`lcm.cli.build_parser`); the verb's parser is added to it.
    """
    p = subparsers.add_parser(
        "fmriprep",
        help="Run or check fMRIPrep for one subject and record its derivatives.",
        description="Obtain fMRIPrep derivatives of one subject (existing folder, "
        "fmriprep-docker, or apptainer (else singularity) run of a pinned image), check that "
        "every BOLD run has "
        "its preprocessed BOLD, mask, TR and confounds, and write a JSON record: a run that "
        "lacks any is recorded as excluded, naming the files, and the connectome stage "
        "excludes it (the other runs and subjects go on). fMRIPrep exiting non-zero writes a "
        "failure record, every run excluded with the exit code and the log to read, and exits "
        "0; fMRIPrep killed (a signal, exit status 137 or 143) fails, and so does the "
        "container tool failing itself (docker missing or its daemon not reachable, docker "
        "run's 125-127, apptainer's 255) or fMRIPrep refusing its setup before it reads "
        "the subject (126: the FreeSurfer licence; 127: a tool missing from the image), "
        "writing no record.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="Dataset name.")
    p.add_argument(
        "--bids",
        type=path_text,
        required=True,
        help="Raw BIDS root of the dataset; for a dataset entering as fMRIPrep derivatives, "
        "the derivatives folder ingest indexes (the dataset's path).",
    )
    p.add_argument(
        "--subject", help="Subject label (without sub-); required but with --settings-only."
    )
    p.add_argument("--runner", required=True, choices=RUNNERS, help="How to obtain derivatives.")
    p.add_argument(
        "--image", help="Docker image, or .sif for apptainer (docker, apptainer: required)."
    )
    p.add_argument(
        "--output-space",
        required=True,
        help="fMRIPrep --output-spaces value, also the space of the derivatives checked "
        "(MNI152NLin2009cAsym, or MNI152NLin2009cAsym:res-2 for one resolution, "
        ":res-native for the file without res-).",
    )
    p.add_argument("--derivatives", required=True, type=path_text, help="fMRIPrep output folder.")
    p.add_argument(
        "--work-dir",
        type=path_text,
        help="Work folder, sub-<label> inside (docker, apptainer: required).",
    )
    p.add_argument(
        "--fs-license", type=path_text, help="FreeSurfer license file (docker, apptainer)."
    )
    p.add_argument(
        "--extra-args", default="[]", help="Further fMRIPrep arguments as a JSON list of strings."
    )
    p.add_argument("--task", default="rest", help="BIDS task label (default: rest).")
    p.add_argument(
        "--nthreads",
        type=positive_int,
        help="CPUs of the job (docker, apptainer): fMRIPrep's --nthreads and --omp-nthreads.",
    )
    p.add_argument(
        "--mem-mb",
        type=positive_int,
        help="Memory of the job in MB (docker, apptainer): fMRIPrep gets --mem_mb 90 %% of it.",
    )
    p.add_argument(
        "--skip-bids-validation",
        action="store_true",
        help="The dataset passed the BIDS validator at ingest: fMRIPrep skips its own "
        "(docker, apptainer).",
    )
    p.add_argument(
        "--manifest",
        type=path_text,
        help="The dataset's manifest of 'lcm ingest': its included runs of the subject are "
        "the runs expected, and the subject's runs it excludes (a BIDS validator error in its "
        "folder) are recorded as excluded at ingest with its reasons; fMRIPrep is not run when "
        "it excludes them all (default: index the --bids folder).",
    )
    p.add_argument(
        "--keep-work",
        action="store_true",
        help="Keep the subject's work folder after a complete run (default: removed then, if "
        "LCM created it; kept after a failure, to resume or read crash files).",
    )
    p.add_argument(
        "--settings-only",
        action="store_true",
        help="Write to --out the options every subject's job of the dataset runs with, checked, "
        "and exit: no subject, nothing launched (the workflow's settings stamp).",
    )
    p.add_argument("--out", required=True, type=path_text, help="Record to write (.json).")
    p.set_defaults(func=run, recorded=("out",))


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1.

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    int
        The number.

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` is no whole number of at least 1 (argparse prints it as a usage error).
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, received {text!r}")
    return value


def parse_extra_args(text: str) -> list[str]:
    """Parse ``--extra-args``: a JSON list of strings.

    Parameters
    ----------
    text : str
        The option's value: a JSON list (the config's ``fmriprep.extra_args``).

    Returns
    -------
    list of str
        The words passed on to fMRIPrep.

    Raises
    ------
    lcm.exceptions.ConfigError
        When ``text`` is not JSON, or not a list of strings.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--extra-args: not valid JSON ({exc}): {text[:200]!r}",
            hint="Pass a JSON list, e.g. '[\"--low-mem\"]'.",
        ) from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"--extra-args: expected a JSON list of strings, received {value!r}.",
            hint="Write numbers as strings too: fmriprep.extra_args: ['--dummy-scans', '4'].",
        )
    return value


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm fmriprep``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.preprocess.derivatives import RUN_PATHS
    from lcm.preprocess.fmriprep_run import FmriprepRequest, run_fmriprep, write_settings

    if args.subject is None and not args.settings_only:
        raise ConfigError(
            "lcm fmriprep needs --subject (or --settings-only).",
            hint="Pass the subject's label without sub-, e.g. --subject 01.",
        )
    # The record's folder before fMRIPrep runs (hours): a file on its path was said only at
    # the write, once the subject's derivatives were made.
    check_output_folders([args.out])

    req = FmriprepRequest(
        dataset=args.dataset,
        bids=Path(args.bids),
        subject=args.subject or "",
        runner=args.runner,
        image=args.image,
        output_space=args.output_space,
        derivatives=Path(args.derivatives),
        work_dir=Path(args.work_dir) if args.work_dir else None,
        fs_license=Path(args.fs_license) if args.fs_license else None,
        extra_args=parse_extra_args(args.extra_args),
        task=args.task,
        nthreads=args.nthreads,
        mem_mb=args.mem_mb,
        skip_bids_validation=args.skip_bids_validation,
        manifest=Path(args.manifest) if args.manifest else None,
        log_file=Path(args.log_file) if getattr(args, "log_file", None) else None,
        keep_work=args.keep_work,
        # A workflow rule (lcm --rule) builds the options from its user's config: its keys.
        names=None if getattr(args, "rule", None) else OPTION_NAMES,
    )
    if args.settings_only:
        write_settings(req, args.out)
        write_sidecar(args.out, [])
        return 0
    record = run_fmriprep(req, args.out)
    # Provenance: the raw files fMRIPrep reads of the subject (the sources), the derivatives
    # each run's connectome will read (the job's products, listed in the record), and the
    # container that made them (none when existing derivatives are only checked).
    products = [run[k] for run in record["runs"] for k in RUN_PATHS]
    container = None if args.runner == "existing" else args.image
    # The digest resolved after the run: a .sif is not read again, a tag gets its registry one.
    digest = (record.get("image_digest") or {}).get("digest")
    # Existing derivatives: the fMRIPrep their description names (lcm provenance trace shows it).
    made_by = {"GeneratedBy": record["generated_by"]} if "generated_by" in record else {}
    write_sidecar(
        args.out,
        raw_sources(req.bids, req.subject, req.derivatives),
        products=[p for p in products if p],
        container=container,
        image_digest=digest,
        **made_by,
    )
    return 0


def raw_sources(bids: Path, subject: str, derivatives: Path) -> list[Path]:
    """The raw files of ``subject`` that fMRIPrep reads, hashed in
    the record's sidecar (:func:`lcm.preprocess.completed_run.raw_subject_files`): a trace
    from a metric reaches them through the record.

    Empty for a dataset entering as fMRIPrep derivatives (``--bids`` is the derivatives
    folder, or lies inside it): there is no raw data. Hashing them reads the subject's raw
    files once per job, as hashing its derivatives does.

    Parameters
    ----------
    bids : pathlib.Path
        The dataset's folder (``--bids``).
    subject : str
        The subject's label, without ``sub-``.
    derivatives : pathlib.Path
        fMRIPrep's output folder (``--derivatives``); files inside it are not raw.

    Returns
    -------
    list of pathlib.Path
        The subject's raw files; empty for a dataset entering as derivatives.
    """
    from lcm.io.paths import inside
    from lcm.preprocess.completed_run import raw_subject_files

    if inside(bids, derivatives):
        return []
    return [p for p in raw_subject_files(bids, subject) if not inside(p, derivatives)]
