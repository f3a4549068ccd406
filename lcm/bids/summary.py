"""What ingestion found, kept and skipped: participants check and the summary files.

``summary.json`` (everything: counts per reason, validator warnings, participants mismatches,
cache use) and ``summary.tsv`` (one row per included/excluded reason, with a count and an
example) are written next to the manifest for the report.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lcm import reason_codes
from lcm.bids.dataset import part_of, setting_names
from lcm.bids.rows import TR_NOT_CHECKED
from lcm.bids.sidecars import entities_of
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.atomic import write_json, write_tsv
from lcm.io.paths import ingest_summary

log = logging.getLogger(__name__)

SUMMARY_TSV_COLUMNS = ("dataset", "included", "reason_code", "n_runs", "example_path", "example")
# The columns a summary.tsv must hold to be read as one.
SUMMARY_REQUIRED = ("dataset", "included", "reason_code", "n_runs")


def summary_paths(manifest: str | Path) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.tsv`` beside a manifest.

    Parameters
    ----------
    manifest : str or Path
        The manifest (``lcm ingest --out``).
    """
    return Path(ingest_summary(manifest, ".json")), Path(ingest_summary(manifest, ".tsv"))


def derivatives_without_raw(
    raw: str | Path, derivatives: str | Path, selection: Mapping[str, Any] | None = None
) -> list[str]:
    """The subjects of an fMRIPrep folder that have no folder in the raw dataset, warned of.

    A dataset entering as raw BIDS takes its subjects from the raw folder: one whose
    derivatives are there but whose raw folder is not (not copied, renamed) was left out of
    the cohort without a word.

    Parameters
    ----------
    raw : str or Path
        The raw dataset's root.
    derivatives : str or Path
        Its fMRIPrep derivatives root (a missing folder gives none).
    selection : mapping, optional
        The participant selection (``{"participants": {"include": [...], "exclude": [...]}}``):
        subjects it leaves out are not named.

    Returns
    -------
    list of str
        Their labels, without ``sub-``.
    """

    def labels(root: str | Path) -> set[str]:
        root = Path(root)
        if not root.is_dir():
            return set()
        return {p.name.removeprefix("sub-") for p in root.glob("sub-*") if p.is_dir()}

    chosen = (selection or {}).get("participants") or {}
    include, exclude = set(chosen.get("include") or []), set(chosen.get("exclude") or [])
    missing = sorted(
        s
        for s in labels(derivatives) - labels(raw)
        if (not include or s in include) and s not in exclude
    )
    if missing:
        shown = ", ".join(f"sub-{s}" for s in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        log.warning(
            "%d subject(s) of the fMRIPrep derivatives %s have no folder in the raw dataset %s, "
            "whose subjects are the cohort's: %s%s are not in it. Fix: copy their raw folders "
            "into %s, or, to read the derivatives alone, make the dataset entry: fmriprep with "
            "path %s (config/README.md)",
            len(missing),
            derivatives,
            raw,
            shown,
            more,
            raw,
            derivatives,
        )
    return missing


def participants_mismatch(root: str | Path, subjects_with_data: list[str]) -> dict[str, Any]:
    """Compare ``participants.tsv`` with the ``sub-*`` folders (reported, never fatal).

    Parameters
    ----------
    root : str or Path
        The dataset's top folder, where ``participants.tsv`` would be.
    subjects_with_data : list of str
        The subject folders found (``sub-<label>`` or bare labels).

    Returns
    -------
    dict
        ``participants_tsv`` (whether one was found), ``without_data`` (listed, no folder) and
        ``not_listed`` (folder, not listed); labels without ``sub-``.
    """
    path = Path(root) / "participants.tsv"
    data = sorted(s.removeprefix("sub-") for s in subjects_with_data)
    if not path.is_file():
        return {"participants_tsv": False, "without_data": [], "not_listed": []}
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        ids = table["participant_id"].str.strip().str.removeprefix("sub-")
        listed = sorted(set(ids) - {""})
    except (KeyError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        log.warning("%s unreadable or without participant_id: %s", path, exc)
        return {"participants_tsv": True, "error": str(exc), "without_data": [], "not_listed": []}
    without = sorted(set(listed) - set(data))
    not_listed = sorted(set(data) - set(listed))
    if without:
        log.warning(
            "%s lists %d participant(s) with no data folder: %s",
            path,
            len(without),
            ", ".join(f"sub-{s}" for s in without[:10]),
        )
    if not_listed:
        log.warning(
            "%d subject folder(s) are not in %s: %s",
            len(not_listed),
            path,
            ", ".join(f"sub-{s}" for s in not_listed[:10]),
        )
    return {"participants_tsv": True, "without_data": without, "not_listed": not_listed}


NO_RUNS = reason_codes.NO_RUNS


def subjects_without_runs(
    root: str | Path,
    subject_folders: Iterable[str],
    manifest: pd.DataFrame,
    dataset: str,
    task: str,
    left_out: Iterable[str] = (),
    names: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """The subject folders that gave the manifest no row: no run of ``task`` at all.

    An anatomical-only subject (``anat/``, no ``func/`` runs) is no run, so no manifest row
    said where it went. Listed here with :data:`NO_RUNS`, what its folder holds and the fixes;
    never an error (the cohort goes on). Folders the participant selection leaves out
    (``left_out``, ``sub-<label>``) are not listed: the user chose that.

    Parameters
    ----------
    root : str or Path
        The dataset's top folder, whose subject folders are looked into.
    subject_folders : iterable of str
        Every ``sub-<label>`` folder of the dataset.
    manifest : pandas.DataFrame
        The manifest; a subject with any row in it is not listed.
    dataset : str
        Dataset name, named in the fixes (``datasets.<name>.task``).
    task : str
        The task indexed; a subject's runs of other tasks are named beside it.
    left_out : iterable of str, default ()
        ``sub-<label>`` folders the participant selection leaves out.
    names : mapping of str to str, optional
        How the user gave the dataset's settings (:func:`lcm.bids.dataset.setting_names`),
        named in the fixes; by default the config's keys.

    Returns
    -------
    list of dict
        ``{subject, reason_code, reason}`` per subject (label without ``sub-``), sorted.
    """
    keys = setting_names(dataset, names)
    have = set(manifest["subject"].astype(str))
    skip = set(left_out)
    found = []
    for folder in sorted(subject_folders):
        label = folder.removeprefix("sub-")
        if label in have or folder in skip:
            continue
        found.append(
            {
                "subject": label,
                "reason_code": NO_RUNS,
                "reason": _no_runs_reason(Path(root) / folder, task, keys),
            }
        )
    return found


def _no_runs_reason(folder: Path, task: str, keys: dict[str, str]) -> str:
    """What a subject folder without a run of ``task`` holds, and the fixes."""
    datatypes: set[str] = set()
    tasks: set[str] = set()
    for path in [folder, *sorted(folder.glob("ses-*"))]:
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("ses-"):
                datatypes.add(f"{entry.name}/")
            if entry.name == "func" and entry.is_dir():
                tasks |= {
                    t for name in os.listdir(entry.path) if (t := entities_of(name).get("task"))
                }
    holds = ", ".join(sorted(datatypes)) or "no data folder"
    others = sorted(tasks - {task})
    other_tasks = f"; its func/ files are of task(s) {', '.join(others)}" if others else ""
    task_fix = f", set {keys['task']} to the one to read" if others else ""
    leave_out = part_of(keys["select"], "participants.exclude")
    return (
        f"{folder.name} has no run of task {task!r} (it holds {holds}{other_tasks}): it is "
        "not in the cohort, the other subjects go on. Fix: add its func/ runs (or `datalad "
        f"get` them){task_fix}, or leave it out ({leave_out}) "
        "to stop this notice"
    )


def build_summary(manifest: pd.DataFrame, **facts: Any) -> dict[str, Any]:
    """Counts of a manifest by reason, plus ``facts`` (validator, participants, cache ...).

    Parameters
    ----------
    manifest : pandas.DataFrame
        The manifest (``included``, ``reason_code``, ``subject`` and ``tr_check`` columns).
    **facts
        Further keys copied into the summary as they are.

    Returns
    -------
    dict
        ``facts`` plus the run, subject and reason counts.
    """
    included = manifest["included"].astype(bool)
    excluded = manifest.loc[~included]
    by_code = excluded.groupby("reason_code", sort=True).size().astype(int).to_dict()
    not_checked = manifest.loc[included, "tr_check"].str.startswith(TR_NOT_CHECKED)
    return {
        **facts,
        "n_runs": len(manifest),
        "n_included": int(included.sum()),
        "n_excluded": int((~included).sum()),
        "n_subjects_included": int(manifest.loc[included, "subject"].nunique()),
        "excluded_by_reason": {str(k): int(v) for k, v in by_code.items()},
        "n_tr_not_checked": int(not_checked.sum()),
        "tr_not_checked_examples": manifest.loc[included & not_checked, "tr_check"]
        .head(3)
        .tolist(),
    }


def summary_table(
    manifest: pd.DataFrame, dataset: str, without_runs: list[dict[str, str]] | None = None
) -> pd.DataFrame:
    """One row per (included, reason_code) with the number of runs and an example reason.

    Subjects without any run (``without_runs``, :func:`subjects_without_runs`) are one more
    row, :data:`NO_RUNS` with 0 runs, its example naming them, so that the report's ingestion
    table says where they went.

    Parameters
    ----------
    manifest : pandas.DataFrame
        The manifest.
    dataset : str
        Dataset name, written in each row.
    without_runs : list of dict, optional
        Subjects without any run (:func:`subjects_without_runs`).

    Returns
    -------
    pandas.DataFrame
        The rows of ``summary.tsv`` (:data:`SUMMARY_TSV_COLUMNS`).
    """
    rows = []
    for (inc, code), group in manifest.groupby(["included", "reason_code"], sort=True):
        first = group.iloc[0]
        rows.append(
            {
                "dataset": dataset,
                "included": bool(inc),
                "reason_code": code or ("included" if inc else ""),
                "n_runs": len(group),
                "example_path": Path(first["path"]).name,
                "example": first["reason"] if not inc else first["tr_check"],
            }
        )
    if without_runs:
        named = ", ".join(f"sub-{s['subject']}" for s in without_runs[:10])
        more = f" and {len(without_runs) - 10} more" if len(without_runs) > 10 else ""
        rows.append(
            {
                "dataset": dataset,
                "included": False,
                "reason_code": NO_RUNS,
                "n_runs": 0,
                "example_path": f"sub-{without_runs[0]['subject']}",
                "example": f"{len(without_runs)} subject(s) without a run ({named}{more}); "
                f"{without_runs[0]['reason']}",
            }
        )
    table = pd.DataFrame(rows, columns=list(SUMMARY_TSV_COLUMNS))
    return table.sort_values(["included", "n_runs"], ascending=[False, False])


# Keys every summary.json that write_summary wrote holds: how an earlier one is told from a
# file of the same name that LCM did not write.
_SUMMARY_KEYS = ("n_runs", "n_included", "n_excluded", "excluded_by_reason")


def check_summary_files_own(manifest_path: str | Path, dataset: str | None = None) -> None:
    """Refuse, before ingesting, to replace a ``summary.json``/``.tsv`` beside the manifest
    that an earlier ingest did not write (a user's file of that name in ``--out``'s folder),
    or that an ingest of another dataset wrote (its manifest under another name beside it).

    Parameters
    ----------
    manifest_path : str or Path
        The manifest about to be written (``--out``).
    dataset : str, optional
        The dataset about to be ingested; a summary of another dataset is refused.

    Raises
    ------
    ConfigError
        Naming the file and the fix.
    """
    json_path, tsv_path = summary_paths(manifest_path)
    ours = True
    if json_path.exists():
        try:
            record = json.loads(json_path.read_text())
            ours = isinstance(record, dict) and all(k in record for k in _SUMMARY_KEYS)
        except (OSError, UnicodeDecodeError, ValueError):
            ours = False
        if not ours:
            bad = json_path
    if ours and tsv_path.exists():
        try:
            with tsv_path.open(errors="replace") as handle:
                ours = handle.readline().rstrip("\r\n").split("\t") == list(SUMMARY_TSV_COLUMNS)
        except OSError:
            ours = False
        if not ours:
            bad = tsv_path
    if (
        ours
        and dataset is not None
        and json_path.exists()
        and record.get("dataset", dataset) != dataset
    ):
        # Summaries are named by folder, not by manifest: a second dataset's ingest into the
        # same folder would silently replace the first's account of its exclusions.
        raise ConfigError(
            f"{json_path} is the ingest summary of dataset {record['dataset']!r}; ingesting "
            f"{dataset!r} to {Path(manifest_path).name} would replace it.",
            hint="Write each dataset's manifest to a folder of its own "
            f"(e.g. --out {dataset}/{Path(manifest_path).name}).",
        )
    if not ours:
        raise ConfigError(
            f"{bad} exists and was not written by lcm ingest; the ingest summary of "
            f"{Path(manifest_path).name} would replace it.",
            hint=f"Move or rename {bad}, or write the manifest to a folder of its own.",
        )


def write_summary(manifest_path: str | Path, summary: dict[str, Any], table: pd.DataFrame) -> None:
    """Write ``summary.json`` and ``summary.tsv`` beside the manifest (atomically).

    Parameters
    ----------
    manifest_path : str or Path
        The manifest; the two files go beside it.
    summary : dict
        The summary (:func:`build_summary`), written as JSON.
    table : pandas.DataFrame
        Its table (:func:`summary_table`), written as TSV.
    """
    json_path, tsv_path = summary_paths(manifest_path)
    write_json(json_path, summary)
    write_tsv(tsv_path, table)


def read_summary_table(path: str | Path) -> pd.DataFrame:
    """Read a ``summary.tsv`` :func:`write_summary` wrote, every cell as text.

    Parameters
    ----------
    path : path-like
        The summary table.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputDataError
        The file is missing, empty (a write cut short before writes were atomic, a copy),
        not UTF-8, not a table, or lacks one of :data:`SUMMARY_REQUIRED`.
    """
    hint = (
        "Pass the summary.tsv files written by `lcm ingest`; an empty or damaged one: delete "
        "it and the manifest beside it and rerun the workflow (or `lcm ingest ... --out`), "
        "which writes both again."
    )
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    except (
        OSError,
        UnicodeDecodeError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
    ) as exc:
        raise InputDataError(f"Cannot read ingestion summary {path}: {exc}", hint=hint) from exc
    # Another table (a QC table, a text file) read as one column made a report section of it.
    missing = [c for c in SUMMARY_REQUIRED if c not in frame.columns]
    if missing:
        raise InputDataError(
            f"{path} is not an ingestion summary: it lacks column(s) {missing} (has "
            f"{list(frame.columns)[:8]}).",
            hint=hint,
        )
    return frame
