"""The ``lcm`` command: one verb per workflow stage.

Each verb is a thin function in ``lcm.commands.<verb>`` that runs one worker inside the error
boundary below, which maps :mod:`lcm.exceptions` to exit codes and prints a hint; any other
exception is logged with its traceback (to ``--log-file`` too) and exits with 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from functools import partial

import lcm
from lcm.commands._labels import check_label_arguments
from lcm.exceptions import LCMError
from lcm.io.disk_full import disk_full_error
from lcm.io.ownership import check_replaceable
from lcm.io.provenance import check_recordable, set_invocation
from lcm.startup import global_options, log_startup_failure, setup_logging
from lcm.threads import cap_threads

VERBS = (
    "synth",
    "ingest",
    "fmriprep",
    "connectome",
    "store",
    "splits",
    "pretrain",
    "bei_maps",
    "finetune",
    "evaluate",
    "report",
    "provenance",
    "model_info",
    "atlases",
    "embed",
    "run",
    "prune_states",
)

log = logging.getLogger("lcm")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """Parser with one sub-command per verb, or only ``verb``'s.

    Parameters
    ----------
    verb : str, optional
        The verb this invocation runs: only its module is imported. Importing every verb costs
        seconds (scikit-learn, matplotlib, torch), paid by each of a workflow's many jobs.
    """
    parser = argparse.ArgumentParser(
        prog="lcm",
        description="Large Connectome Model workflow: from fMRI to a pretrained connectome model.",
        epilog="Run 'lcm <verb> --help' for a verb's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"lcm {lcm.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    parser.add_argument("--log-file", help="Also write the log to this file.")
    parser.add_argument(
        "--rule", help="Workflow rule running this command (recorded in provenance sidecars)."
    )
    sub = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    for name in VERBS if verb is None else (verb,):
        importlib.import_module(f"lcm.commands.{name}").register(sub)
    return parser


def requested_verb(argv: list[str]) -> str | None:
    """The verb named on the command line after the global options, or None.

    None (no verb, ``--help``, ``--version`` or an unknown word) builds the full parser, so
    help lists every verb and argparse names the valid choices.

    Parameters
    ----------
    argv : list of str
        The command line, without the program.

    Returns
    -------
    str or None
        The verb as its module is named (``model_info`` for ``model-info``).
    """
    _, rest = global_options(argv)
    module = rest[0].replace("-", "_") if rest else None  # `model-info` lives in model_info
    return module if module in VERBS else None


# Options that name a verb's output folder, besides the outputs it records (``recorded``:
# its files, first). ``--qc-table`` and ``--predictions`` are outputs of some verbs only.
_OUTPUT_OPTIONS = ("out", "out_dir", "store_dir")


def verb_outputs(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The outputs ``args`` names, and the option of the first (``--out-dir``), if any.

    Parameters
    ----------
    args : argparse.Namespace
        A verb's parsed arguments.

    Returns
    -------
    list of str
        The output paths: those the verb records (``args.recorded``), then ``--out``,
        ``--out-dir`` and ``--store-dir``, where given.
    str or None
        The option of the first (``--out-dir``), None when there is none.
    """
    names = dict.fromkeys([*getattr(args, "recorded", ()), *_OUTPUT_OPTIONS])
    given = [(n, v) for n in names if isinstance(v := getattr(args, n, None), str | os.PathLike)]
    option = "--" + given[0][0].replace("_", "-") if given else None
    return [os.fspath(v) for _, v in given], option


def verb_code_hash(verb: str) -> str | None:
    """Hash of the ``lcm`` code ``verb`` runs (recorded in sidecars), or None for no such verb.

    ``verb`` as typed (``bei-maps``) or as its module is named (``bei_maps``).

    Parameters
    ----------
    verb : str
        A verb of ``lcm``.

    Returns
    -------
    str or None
        The hash of :func:`lcm.workflow.hash.code_hash`.
    """
    from lcm.workflow.hash import code_hash

    try:
        return code_hash(verb.replace("-", "_"))
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lcm``; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The command line, without the program; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 on success; an :class:`lcm.exceptions.LCMError`'s exit code; 130 when interrupted, 141
        when stdout's reader went away, 1 for any other error.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    verb = requested_verb(words)
    try:
        parser = build_parser(verb)
    except Exception:
        # The verb's module, or one it imports, failed to import (a missing dependency, a
        # broken edit): said in the job's log too, which is set up only once parsed.
        return log_startup_failure(words, f"lcm {verb or ''}".strip())
    args = parser.parse_args(words)
    setup_logging(args.verbose, args.log_file)
    set_invocation(words, args, partial(verb_code_hash, args.verb))
    # Every verb runs within one thread budget (--threads, else SLURM's grant, else the CPUs
    # available): BLAS/OpenMP pools sized to the machine oversubscribe a shared node.
    budget = cap_threads(getattr(args, "threads", None))
    if hasattr(args, "threads"):
        args.threads = budget  # the torch verbs' set_threads and evaluate's workers read it
    log.debug("thread budget %d", budget)
    try:
        check_label_arguments(args)
        # A verb's files get provenance records: a record that could not be written (a
        # user's JSON in its place) is refused now, before any output is.
        recorded = [path for o in getattr(args, "recorded", ()) if (path := getattr(args, o, None))]
        check_recordable(recorded)
        # ... and an output file there that LCM did not write (a user's table given as --out)
        # is never replaced: refused now, with nothing written.
        check_replaceable(recorded, f"lcm {args.verb}")
        return int(args.func(args) or 0)
    except LCMError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`lcm atlases --atlas x | head`): stop quietly, as `cat` does;
        # stdout goes to devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        # Out of room: the writer's error (pyarrow's, safetensors') names no output and no fix.
        outputs, option = verb_outputs(args)
        if (full := disk_full_error(exc, outputs, f"lcm {args.verb}", option)) is not None:
            log.error("%s", full)
            return full.exit_code
        # Not an error LCM checks for (a bug): the workflow's rules give the job's log as
        # --log-file and leave stderr to Snakemake, so the traceback goes through the log
        # handlers too, not only to the interpreter's stderr.
        log.exception("lcm %s failed with an unexpected error", args.verb)
        return 1
