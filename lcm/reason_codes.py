"""The short codes of why a run is excluded (``reason_code`` of the manifest and QC tables).

The one list: ingest, the fMRIPrep stage and the connectome stage raise these names, summaries
and ``lcm store`` count a dataset's runs per code, and ``config/README.md`` (Reason codes)
lists every one with its meaning (a test keeps the two equal). A leaf module: every layer that
excludes a run imports it.
"""

from __future__ import annotations

# --- ingest (manifest rows) -------------------------------------------------------------------
INVALID_NAME = "invalid_name"
INVALID_LABEL = "invalid_label"
BAD_SIDECAR = "bad_sidecar"
NO_REPETITION_TIME = "no_repetition_time"
NOT_4D = "not_4d"
BAD_HEADER = "bad_header"
TR_MISMATCH = "tr_mismatch"
DUPLICATE = "duplicate"
NOT_SELECTED = "not_selected"
OTHER_ATLAS = "other_atlas"
OTHER_ECHO = "other_echo"
OTHER_PART = "other_part"
NOT_FETCHED = "not_fetched"
MISSING_FILE = "missing_file"
# A subject folder with no run of the task at all (anat/ only): a subject, not a run, listed in
# the ingest summary (summary.json's subjects_without_runs, a summary.tsv row of 0 runs).
NO_RUNS = "no_runs"
# Prefix of the codes of runs excluded by a BIDS validator error: "validator:SYMLINK_BROKEN".
VALIDATOR = "validator"
# --- fMRIPrep derivatives (ingest of entry fmriprep, the fMRIPrep stage's record) --------------
NOT_IN_SPACE = "not_in_space"
OUTPUTS_MISSING = "fmriprep_outputs_missing"
OUTPUTS_AMBIGUOUS = "fmriprep_outputs_ambiguous"
FMRIPREP_FAILED = "fmriprep_failed"
FMRIPREP_EXCLUDED = "fmriprep_excluded"
# --- voxel runs (connectome stage) -------------------------------------------------------------
BOLD_UNREADABLE = "bold_unreadable"
BOLD_TOO_LARGE = "bold_too_large"
BOLD_NOT_4D = "bold_not_4d"
BOLD_NONFINITE = "bold_nonfinite"
SPACE_MISMATCH = "space_mismatch"
MASK_UNREADABLE = "mask_unreadable"
NO_COVERAGE = "no_coverage"
CONFOUNDS_UNREADABLE = "confounds_unreadable"
CONFOUNDS_LENGTH = "confounds_length"
CONFOUNDS_NON_NUMERIC = "confounds_non_numeric"
CONFOUNDS_MISSING_COLUMNS = "confounds_missing_columns"
CONFOUNDS_COMPCOR_MASK_UNKNOWN = "confounds_compcor_mask_unknown"
# --- time series, voxel and ROI -----------------------------------------------------------------
TOO_FEW_VOLUMES = "too_few_volumes"
TOO_FEW_DOF = "too_few_dof"
# Windowed FC: no window of the run keeps denoise.min_dof (lcm.connectome.windows).
TOO_FEW_WINDOW_DOF = "too_few_window_dof"
HIGH_PASS_ABOVE_NYQUIST = "high_pass_above_nyquist"
FLAT_SIGNALS = "flat_signals"
WINDOW_FLAT_SIGNALS = "window_flat_signals"
CLEANED_NONFINITE = "cleaned_nonfinite"
TIMESERIES_NONFINITE = "timeseries_nonfinite"
# --- ROI time series and imported connectome files ------------------------------------------
FILE_UNREADABLE = "file_unreadable"
FILE_EMPTY = "file_empty"
UNKNOWN_FORMAT = "unknown_format"
NON_NUMERIC_VALUES = "non_numeric_values"
NOT_2D = "not_2d"
RAGGED_ROWS = "ragged_rows"
MAT_V73 = "mat_v73"
MAT_VARIABLE_AMBIGUOUS = "mat_variable_ambiguous"
ROI_HEADER_MISSING = "roi_header_missing"
ROI_COUNT_MISMATCH = "roi_count_mismatch"
ROI_NAMES_MISMATCH = "roi_names_mismatch"
ROI_ORDER_MISMATCH = "roi_order_mismatch"
ROW_COLUMN_NAMES_DIFFER = "row_column_names_differ"
MATRIX_NOT_SQUARE = "matrix_not_square"
MATRIX_NONFINITE = "matrix_nonfinite"
MATRIX_DIAGONAL = "matrix_diagonal"
MATRIX_ASYMMETRIC = "matrix_asymmetric"
MATRIX_OUT_OF_RANGE = "matrix_out_of_range"
FC_DEGENERATE = "fc_degenerate"


def with_fix(problem: str, fix: str) -> str:
    """The one wording of an exclusion reason: ``"<problem>. Fix: <fix>"``.

    As :meth:`lcm.exceptions.LCMError.one_line` words an error that excludes a run: the
    manifest, the summary and the QC tables name what is wrong and what to do in one cell.
    Every reason ingest excludes a run for is worded by it (a test holds each code to it).

    Parameters
    ----------
    problem : str
        What is wrong, naming the file.
    fix : str
        What the user can do about it (rename, set, rerun ...).
    """
    return f"{problem.rstrip(' .;')}. Fix: {fix}"


def split_fix(reason: str) -> tuple[str, str]:
    """A reason :func:`with_fix` worded, as ``(problem, fix)``; ``fix`` is ``""`` without one.

    For a reason quoted inside another (the fMRIPrep and connectome stages citing ingest's
    TR check): its fix joins the outer one, so that one cell says ``Fix:`` once.

    Parameters
    ----------
    reason : str
        An exclusion reason, with or without a fix.
    """
    problem, _, fix = reason.partition(". Fix: ")
    return problem, fix


# Every code (the validator's as its prefix).
CODES = frozenset(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str))
