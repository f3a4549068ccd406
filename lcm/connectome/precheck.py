"""Checks made once per dataset before any run is processed.

A denoising strategy whose confound columns the dataset's confounds lack would exclude every
run, one at a time, after each run's work: :func:`check_strategy` reads the header of the first
included run's fMRIPrep confounds table (a few kilobytes) and refuses the strategy at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from lcm.bids.nifti_header import sniff_image
from lcm.connectome.confounds import (
    confound_columns,
    read_confounds_metadata,
    supported_strategies,
)
from lcm.exceptions import ConfigError, ExcludedRunError
from lcm.preprocess.derivatives import AmbiguousDerivativesError, confounds_file

log = logging.getLogger(__name__)

# The denoise keys :func:`check_strategy` reads: all that ``lcm ingest --denoise`` is given by the
# workflow, so that another key (low_pass, fd_threshold, ...) reruns no ingest, only the runs.
CHECKED_SETTINGS = ("strategy", "high_pass")


def confounds_of(bold: str | Path, run_key: str) -> Path:
    """fMRIPrep's confounds table of a preprocessed BOLD run (beside it, named by the run).

    Parameters
    ----------
    bold : str or Path
        The run's preprocessed BOLD file.
    run_key : str
        The run's key; the table is ``<run_key>_desc-confounds_timeseries.tsv`` (or fMRIPrep <
        20.2's name, :func:`lcm.preprocess.derivatives.confounds_file`).
    """
    return confounds_file(Path(bold).parent, run_key)


def check_strategy(
    dataset: str, manifest: pd.DataFrame, strategy: str, high_pass: float | None = None
) -> Path | None:
    """Refuse ``strategy`` when the first included run's confounds lack its columns.

    Parameters
    ----------
    dataset : str
        Named in the error.
    manifest : pandas.DataFrame
        The dataset's manifest (entry ``fmriprep``: ``path`` is the preprocessed BOLD).
    strategy : str
        ``denoise.strategy``.
    high_pass : float or None
        ``denoise.high_pass``: an aCompCor strategy on confounds without ``cosine_XX``
        columns needs it (:func:`lcm.connectome.confounds.confound_columns`).

    Returns
    -------
    pathlib.Path or None
        The confounds file checked; ``None`` when there is none to check (no included run, or
        its confounds are missing or not fetched: that run is then excluded with its own
        reason).

    Raises
    ------
    ConfigError
        One line naming the strategy, the missing columns, the file and the strategies that
        file supports.
    """
    included = manifest[manifest["included"]]
    if included.empty:
        return None
    first = included.iloc[0]
    try:
        path = confounds_of(first["path"], str(first["run_key"]))
    except AmbiguousDerivativesError:
        return None  # two fMRIPrep versions' tables: the fMRIPrep stage excludes the run
    if sniff_image(path) == "annex_pointer":
        # An unlocked git-annex table not fetched: its pointer line, read as the header,
        # refused every strategy for the whole dataset; the run's own check says `datalad get`.
        return None
    try:
        columns = list(pd.read_csv(path, sep="\t", nrows=0).columns)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None  # the run's own check says why
    metadata = read_confounds_metadata(path)
    try:
        confound_columns(strategy, columns, metadata, high_pass=high_pass)
    except ExcludedRunError as exc:
        usable = supported_strategies(columns, metadata, high_pass)
        raise ConfigError(
            f"Dataset {dataset!r}: denoise.strategy {strategy!r} cannot be applied: {path} "
            f"(first run, {first['run_key']}): {exc.message}.",
            hint=f"Set denoise.strategy to one of these confounds support ({', '.join(usable)})"
            if usable
            else exc.hint,
        ) from None
    log.info("%s: confounds of %s hold strategy %r's columns", dataset, first["run_key"], strategy)
    return path
