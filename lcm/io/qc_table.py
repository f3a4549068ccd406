"""The connectome QC table: its column names, its reader and its check, in one module.

``lcm connectome`` writes one QC table per dataset and atlas (``seg-<atlas>_qc.tsv``, one row
per run, :data:`QC_COLUMNS` in that order; :mod:`lcm.connectome.qc` builds the rows), and
``lcm store``, ``lcm report`` and the report's motion checks (:mod:`lcm.evaluate.motion`) read
it. They name its columns through the constants here and read or check it with
:func:`read_qc_table` / :func:`check_qc_columns`, so that a column renamed by the writer is
renamed for every reader and a table without a column a reader needs is refused in one
wording, naming the file and the columns. The module sits in :mod:`lcm.io`, below the
connectome stage, because evaluation may not import the imaging chain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lcm.exceptions import InputDataError
from lcm.io.derivatives import list_cell
from lcm.io.tsv_complete import check_complete

# The columns other stages read, by name.
DATASET = "dataset"
SUBJECT = "subject"
SESSION = "session"
TASK = "task"
RUN = "run"
RUN_KEY = "run_key"
# true/false (lcm.io.derivatives.included_mask parses it): the run gave a connectome.
INCLUDED = "included"
# Why a run was excluded, in words, and its code (lcm.reason_codes; "" in tables written
# before codes).
REASON = "reason"
REASON_CODE = "reason_code"
N_VOLUMES = "n_volumes"
N_VOLUMES_KEPT = "n_volumes_kept"
# Mean framewise displacement of the run's volumes (mm); n/a where the entry has no motion.
MEAN_FD = "mean_fd"
T_R = "t_r"
TIMESERIES = "timeseries"
# The whole-run matrix, and the windowed ones as a comma-separated list.
RELMAT = "relmat"
EMPTY_ROIS = "empty_rois"
N_WINDOWS = "n_windows"
# Windows left out for too few degrees of freedom (denoise.min_dof; lcm.connectome.windows).
N_WINDOWS_DROPPED = "n_windows_dropped"
RELMATS = "relmats"
WINDOW_RELMATS = "window_relmats"
PCT_SCRUBBED = "pct_scrubbed"

# Every column, in the order written.
QC_COLUMNS = (
    DATASET,
    SUBJECT,
    SESSION,
    TASK,
    RUN,
    RUN_KEY,
    INCLUDED,
    REASON,
    REASON_CODE,
    N_VOLUMES,
    N_VOLUMES_KEPT,
    MEAN_FD,
    T_R,
    "n_rois",
    TIMESERIES,
    RELMAT,
    EMPTY_ROIS,
    "strategy",
    "fd_threshold",
    "dvars_threshold",
    "standardize",
    N_WINDOWS,
    N_WINDOWS_DROPPED,
    "window_note",
    RELMATS,
    WINDOW_RELMATS,
    PCT_SCRUBBED,
    "median_tsnr",
    "mean_coverage",
    "n_dropout_volumes",
    "n_non_steady_volumes",
    "space_read",
    "dof",
    "t_r_source",
)
# The columns every reader requires (`lcm store` and `lcm report` alike, through
# read_qc_table): the table's contract. `lcm store` accepted a table without `dataset` that
# `lcm report` then refused; a reader needing more passes it as `required`.
QC_REQUIRED = (DATASET, SUBJECT, RUN_KEY, INCLUDED, REASON, MEAN_FD)
# Label columns, kept as written by the typed read: subject 0050002 is not 50002, nor run 01
# run 1.
QC_LABELS = (DATASET, SUBJECT, SESSION, TASK, RUN, RUN_KEY, REASON_CODE)
# The cells of a label column the typed read takes as missing (the writer's n/a and "").
_MISSING_LABEL = ["", "n/a"]


def check_qc_columns(qc: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Refuse a QC table without a column the caller needs.

    Parameters
    ----------
    qc : pandas.DataFrame
        The table as read.
    required : sequence of str
        Columns the caller needs (names from this module).
    source : str
        What the table is, named first in the error (``QC table <path>``).

    Raises
    ------
    InputDataError
        Naming ``source``, the columns it lacks and those it has.
    """
    lacking = [c for c in required if c not in qc.columns]
    if lacking:
        raise InputDataError(
            f"{source} lacks column(s) {lacking} (has {list(qc.columns)[:12]}).",
            hint="Pass the QC table written by `lcm connectome` for this dataset and atlas.",
        )


def read_qc_table(
    path: str | os.PathLike[str], required: Sequence[str] = (), *, typed: bool = False
) -> pd.DataFrame:
    """A connectome QC table as text cells (``keep_default_na=False``: ``n/a`` stays text).

    The one reader of the table (``lcm connectome``, ``lcm store`` and ``lcm report``).

    Parameters
    ----------
    path : path-like
        ``<results>/connectome/<dataset>/seg-<atlas>_qc.tsv``.
    required : sequence of str
        Columns the caller needs beyond :data:`QC_REQUIRED`, which every read checks.
    typed : bool, optional
        Read it as the report does instead: ``n/a`` and empty cells missing, numbers as
        numbers, the :data:`QC_LABELS` columns text, as written (a subject ``NA`` or
        ``None`` is a label, not a missing cell); output paths are left as written.

    Raises
    ------
    InputDataError
        The file cannot be read as a UTF-8 TSV, or lacks a column of :data:`QC_REQUIRED` or
        ``required``.
    """
    try:
        if typed:
            qc = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype=dict.fromkeys(QC_LABELS, str))
            # pandas' missing-value words (NA, None, nan, null ...) are BIDS labels too: the
            # labels are read again with only an empty or n/a cell missing, as `lcm store` does.
            labels = [c for c in QC_LABELS if c in qc.columns]
            if labels:
                qc[labels] = pd.read_csv(
                    path,
                    sep="\t",
                    usecols=labels,
                    dtype=str,
                    keep_default_na=False,
                    na_values=_MISSING_LABEL,
                )[labels]
        else:
            qc = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(
            f"Cannot read QC table {path}: {str(exc).splitlines()[0]}",
            hint="Pass the connectome stage's QC table (UTF-8 TSV); rerun that stage if damaged.",
        ) from None
    check_qc_columns(qc, list(dict.fromkeys((*QC_REQUIRED, *required))), f"QC table {path}")
    # The connectome stage writes every field and a final newline: a table cut short since
    # left its last run with a relmat path cut short (refused as a missing matrix, the table
    # unnamed) or with fields pandas filled as empty cells.
    check_complete(
        path, "QC table", "the connectome stage for this dataset and atlas (lcm connectome)"
    )
    if typed:
        return qc
    table = Path(path)
    if RELMAT in qc:
        qc[RELMAT] = [found_path(cell, table) if cell else cell for cell in qc[RELMAT]]
    for column in (RELMATS, WINDOW_RELMATS):  # comma-separated lists
        if column in qc:
            qc[column] = [
                ",".join(found_path(c, table) for c in items) if (items := list_cell(v)) else v
                for v in qc[column]
            ]
    return qc


def found_path(item: str, recorded_in: str | Path) -> str:
    """A path a stage recorded, found from any folder: a relative path that does not exist
    from here is looked up from the folders of the file that records it upwards.

    A stage writes its paths as given, relative to where it ran (``--out-dir out/...``,
    ``lcm fmriprep --derivatives deriv``); ``lcm store`` or ``lcm connectome`` run from
    another folder could not find them, and blamed the stage or the file.

    Parameters
    ----------
    item : str
        The path as recorded.
    recorded_in : str or Path
        The file that records it (a QC table, an fMRIPrep record).

    Returns
    -------
    str
        ``item`` when it is absolute, exists from here or is found nowhere; else the path
        found under the nearest folder above ``recorded_in``.
    """
    path = Path(item)
    if path.is_absolute() or path.exists():
        return item
    above = Path(recorded_in).resolve().parents
    return next((str(a / item) for a in above if (a / item).exists()), item)
