"""What ``lcm`` does before its own modules are imported: the global options and the log.

Standard library only, so that an import that fails (a missing dependency, a broken edit of a
module a verb imports) still reaches the job's log: the workflow's rules give it as
``--log-file`` and Snakemake empties it before the job, so a traceback on stderr alone left it
empty while the job failed.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("lcm")


def global_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``-v``, ``--log-file`` and ``--rule`` of a command line, and the words after them.

    Parameters
    ----------
    argv : list of str
        The command line, without the program.

    Returns
    -------
    argparse.Namespace
        ``verbose``, ``log_file`` and ``rule``.
    list of str
        The words not parsed as global options: the verb and its own options.

    Raises
    ------
    SystemExit
        A global option is malformed (``--log-file`` without its value), as argparse exits.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--log-file")
    parser.add_argument("--rule")
    return parser.parse_known_args(argv)


def setup_logging(verbose: bool = False, log_file: str | None = None) -> None:
    """stdlib logging to stderr (and ``log_file``), one format for every verb.

    Parameters
    ----------
    verbose : bool
        Log at DEBUG level, else INFO.
    log_file : str, optional
        A file to write the log to as well (``--log-file``); appended to.

    Raises
    ------
    OSError
        When ``log_file`` cannot be opened.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def log_startup_failure(argv: list[str], what: str) -> int:
    """Log the exception being handled, with its traceback, to stderr and ``--log-file``.

    Call it from an ``except`` block around an import; returns the exit code, 1.

    Parameters
    ----------
    argv : list of str
        The command line (without the program), for ``-v`` and ``--log-file``.
    what : str
        What could not start, for the message (``"lcm store"``).
    """
    try:
        args, _ = global_options(argv)
        verbose, log_file = args.verbose, args.log_file
    except SystemExit:  # a malformed global option: stderr alone
        verbose, log_file = False, None
    try:
        setup_logging(verbose, log_file)
    except OSError:  # the log file cannot be opened: stderr alone
        setup_logging(verbose)
    log.exception("%s could not start: importing its code failed", what)
    return 1
