"""``lcm run``'s Snakemake side: the packaged workflow's files, the words after ``--``.

Snakemake keeps the last value of an option, so the words a user passes after ``--`` are read
here as Snakemake's own parser reads them, and those that would replace what ``lcm run`` sets
(the Snakefile, the working folder, the config, the profile, ``results_dir``) are refused.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lcm.exceptions import ConfigError


def workflow_files() -> Path:
    """Folder of the packaged workflow: ``Snakefile``, ``workflow/``, ``profiles/``, ``config/``.

    In a checkout ``lcm/workflow_files`` links to the repository's own files; a wheel holds
    copies of them.
    """
    return Path(__file__).resolve().parent.parent / "workflow_files"


class PassThroughParser(argparse.ArgumentParser):
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


def check_snakemake_words(words: list[str]) -> None:
    """Refuse Snakemake options after ``--`` that replace what ``lcm run`` sets.

    Snakemake keeps the last value of an option: ``-- --configfile my.yaml`` replaced the
    resolved config (the BIDS dataset gone, refused as "no datasets key: the workflow needs at
    least one dataset to run on", or another dataset's run with results under
    OUTPUT_DIR/results), and ``-- --config results_dir=DIR`` wrote every output to DIR, past
    OUTPUT_DIR's checks and lock. Snakemake's parser (argparse) also reads an unambiguous
    abbreviation (``--direc``) and a value attached to a short option (``-sFILE``, ``-nd DIR``,
    ``-Cresults_dir=DIR``): such words are read by its own parser.

    Parameters
    ----------
    words : list of str
        The words after ``--``.

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


def absolute_words(words: list[str]) -> list[str]:
    """Snakemake's extra words, each relative path that exists here made absolute.

    Snakemake runs in OUTPUT_DIR: ``-- --forcerun out/fmriprep/ds/sub-06_fmriprep.json``,
    relative to the folder lcm run is called from, was "No rule to produce" there. A word with
    a ``/`` naming an existing file or folder (a target, a record to force, a config file) is
    a path; rule names and option values without one are left alone.

    Parameters
    ----------
    words : list of str
        The words after ``--``.
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


def snakemake_hint(args: argparse.Namespace) -> str:
    """Where data that is not raw BIDS goes: `lcm run` reads BIDS_DIR as raw BIDS only, and a
    folder of ROI series given as BIDS_DIR failed on what raw BIDS lacks, without saying so.

    Parameters
    ----------
    args : argparse.Namespace
        ``lcm run``'s arguments.
    """
    files = workflow_files()
    target = "participant " if args.analysis_level == "participant" else ""
    return (
        "If BIDS_DIR is not raw BIDS (ROI time series, connectomes: entry roi_timeseries or "
        "connectome), run the workflow with Snakemake directly on a config naming it (README, "
        f"'Snakemake directly'): snakemake {target}--snakefile {files / 'Snakefile'} --profile "
        f"{files / 'profiles' / 'local'} --configfile {args.config_file or 'my.yaml'}"
    )
