"""Index runs brought as plain files: ROI time series or precomputed connectomes, one per run.

Two ways to point a dataset at its files (``datasets.<name>.path``):

- a **listing TSV** (a file): columns ``participant_id`` and ``path`` (relative to the listing's
  folder, or absolute), optional ``session``, ``run``, ``task``, ``repetition_time`` and ``seg``
  (the parcellation, when the file name does not carry a ``seg-`` entity). This is
  how ABIDE-style releases (``ROISignals_0050002.mat``) or any other naming get mapped to
  subjects;
- a **folder**, scanned recursively for ``.tsv``, ``.csv``, ``.npy``, ``.mat`` and ``.1D``
  files named BIDS-like (``sub-<label>[_ses-<label>][_task-<label>][_run-<n>]...``),
  DPARSF-style (``ROISignals_<subject>.<ext>``) or as ABIDE Preprocessed names its ROI time
  series (``<site>_<subject>_rois_<atlas>.1D``, the atlas becoming the file's ``seg``);
  other files (``participants.tsv`` ...) are ignored, and so are BIDS-named files whose suffix
  is not the entry's (:attr:`lcm.entries.Entry.file_suffixes`: XCP-D's ``_stat-coverage_bold``
  and ``_motion`` beside its ``_timeseries`` and ``_relmat``). A folder where these rules
  find no run though files of a run's extension are there stops with those files counted by
  why they were skipped, a few named, and the fix.

A folder holding ``dataset_description.json`` and XCP-D time series is a BIDS derivative and is
indexed by :mod:`lcm.bids.fast_index` instead (see :func:`uses_file_index`).

Repetition time of a time-series run: ``RepetitionTime`` of a sidecar ``<stem>.json`` beside the
file, else the listing's ``repetition_time`` cell, else the dataset's ``repetition_time``
(config), else the run is excluded with the reason; a run file or sidecar not fetched
(DataLad) is ``not_fetched``, as a BOLD run's. Connectomes need no TR. File contents are
checked by the connectome stage (reading every matrix here would make ingest as slow as it).

Parcellation: a file's ``seg-`` entity (XCP-D's ``..._seg-4S156Parcels_...``) is kept in the
manifest's ``seg`` column; files of one run in different parcellations are not duplicates, and
only those of the configured atlas go on (:func:`lcm.bids.selection.select_parcellation`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lcm import reason_codes
from lcm.bids.dataset import setting_names
from lcm.bids.manifest import exclude_duplicates
from lcm.bids.nifti_header import sniff_image
from lcm.bids.rows import (
    BAD_SIDECAR,
    FIX_SIDECAR_JSON,
    FIX_SIDECAR_READ,
    INVALID_LABEL,
    NO_REPETITION_TIME,
    NOT_FETCHED,
    base_row,
    excluded,
    not_fetched_reason,
)
from lcm.bids.sidecars import UNREADABLE, NotFetched, read_json_object
from lcm.entries import TABLE, entry_type
from lcm.exceptions import InputDataError
from lcm.hints import set_to
from lcm.io.bids_names import check_label, check_name_label, parse_entities, run_key
from lcm.reason_codes import with_fix
from lcm.repetition_time import implausible_tr, set_tr_fix

log = logging.getLogger(__name__)

# Lower case: names compare lower-cased (ABIDE writes ``.1D``).
EXTENSIONS = (".tsv", ".csv", ".npy", ".mat", ".1d")
LISTING_COLUMNS = ("participant_id", "path")
LISTING_OPTIONAL = ("session", "run", "task", "repetition_time", "seg")
# The listing's columns, in every hint that asks for one.
_LISTING_HINT = (
    f"a tab-separated listing with a header: {', '.join(LISTING_COLUMNS)} (relative to the "
    f"listing), optional {', '.join(LISTING_OPTIONAL)}"
)
MISSING_FILE = reason_codes.MISSING_FILE
# DPARSF / ABIDE-preprocessed names: ROISignals_<subject id>.mat
_DPARSF_RE = re.compile(r"^ROISignals_(?:sub-)?(?P<sub>[A-Za-z0-9]+)$")
# ABIDE Preprocessed (C-PAC, DPARSF, ... pipelines): <FILE_ID>_rois_<atlas>, FILE_ID being
# <site>_<zero-padded SUB_ID> (Pitt_0050002, Leuven_1_0050682, MaxMun_a_0051606).
_PCP_RE = re.compile(
    r"^(?P<site>[A-Za-z][A-Za-z0-9_]*?)_(?P<sub>[0-9]+)_rois_(?P<seg>[A-Za-z0-9]+)$"
)


def uses_file_index(entry: str, path: str | Path) -> bool:
    """Whether a dataset is indexed here rather than as a BIDS(-derivative) tree.

    The entry's :attr:`lcm.entries.Entry.files` says: never (``bids``, ``fmriprep``), always
    (``connectome``), or when ``path`` is a listing file or a folder without
    ``dataset_description.json``, not an XCP-D derivative (``roi_timeseries``).

    Parameters
    ----------
    entry : str
        The dataset's entry (:mod:`lcm.entries`).
    path : str or Path
        The dataset's configured path: a folder or a listing file.
    """
    files = entry_type(entry).files
    if files != "plain":
        return files == "always"
    path = Path(path)
    return path.is_file() or (path.is_dir() and not (path / "dataset_description.json").is_file())


def index_files(
    dataset: str,
    entry: str,
    path: str | Path,
    task: str = "rest",
    repetition_time: float | None = None,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Manifest rows of a listing TSV or a scanned folder (see the module docstring).

    Parameters
    ----------
    dataset : str
        Dataset name written in each row.
    entry : str
        An entry of :mod:`lcm.entries` with a file index (``roi_timeseries``, ``connectome``);
        runs of one whose :attr:`lcm.entries.Entry.needs_tr` is false need no TR.
    path : path-like
        Listing TSV or folder.
    task : str
        Task label of the runs (files naming another task are skipped).
    repetition_time : float, optional
        Dataset-level TR in seconds, used where no sidecar or listing cell gives one.
    names : mapping of str to str, optional
        How the user gave the dataset's settings (:func:`lcm.bids.dataset.setting_names`),
        named in the fixes; by default the config's keys.

    Raises
    ------
    InputDataError
        ``path`` missing, a listing that cannot be read or lacks required columns, or a
        folder without a run whose files of a run's extension are all skipped (another
        suffix, task or naming: counted by why, a few named, with the fix).
    """
    path = Path(path)
    keys = setting_names(dataset, names)
    if path.is_file():
        candidates = _from_listing(path, task)
    elif path.is_dir():
        candidates = _from_folder(path, task, entry_type(entry).file_suffixes, dataset, keys)
    else:
        raise InputDataError(
            f"Dataset {dataset!r}: {path} does not exist.",
            hint=f"Set {keys['path']} to a folder of per-run files or to {_LISTING_HINT}.",
        )
    tr_name = keys["repetition_time"]
    rows = [_row(dataset, entry, c, repetition_time, tr_name) for c in candidates]
    hint = "list each run once (one file per run, parcellation and format)"
    return exclude_duplicates(rows, hint=hint) if len(rows) > 1 else rows


def read_listing(path: str | Path) -> pd.DataFrame:
    """Read a listing TSV (or CSV) of per-run files; identifiers stay strings.

    Parameters
    ----------
    path : str or Path
        The listing; a ``.csv`` suffix reads it comma-separated, anything else tab-separated.

    Returns
    -------
    pandas.DataFrame
        Its rows, column names stripped, every cell a string (empty cells ``""``).

    Raises
    ------
    InputDataError
        Unreadable, or without ``participant_id`` and ``path`` columns.
    """
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(
            f"Cannot read the listing {path}: {exc}",
            hint=f"Pass {_LISTING_HINT}.",
        ) from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in LISTING_COLUMNS if c not in table.columns]
    if missing:
        raise InputDataError(
            f"The listing {path} lacks column(s) {missing} (has {list(table.columns)}).",
            hint=f"Pass {_LISTING_HINT}.",
        )
    # An empty path cell was joined to the listing's folder: the run was excluded as "<folder>
    # listed in ... does not exist", naming a folder that exists (a row cut short, a blank cell).
    empty = [i + 2 for i, cell in enumerate(table["path"]) if not str(cell).strip()]
    if empty:
        raise InputDataError(
            f"The listing {path}: line(s) {empty[:5]} give no path (an empty 'path' cell).",
            hint="Give every row its run's file (relative to the listing's folder), or remove "
            "the row.",
        )
    return table


def _from_listing(listing: Path, task: str) -> list[dict[str, Any]]:
    table = read_listing(listing)
    out = []
    for rec in table.to_dict("records"):
        file = Path(str(rec["path"]).strip())
        if not file.is_absolute():
            file = listing.parent / file
        ents = {
            "sub": str(rec["participant_id"]).strip(),
            "ses": str(rec.get("session", "")).strip(),
            "task": str(rec.get("task", "")).strip() or task,
            "run": str(rec.get("run", "")).strip(),
        }
        if ents["task"] != task:
            continue  # another task's run
        tr = str(rec.get("repetition_time", "")).strip()
        seg = str(rec.get("seg", "")).strip()
        out.append(
            {"path": file, "ents": ents, "listing_tr": tr, "source": listing.name, "seg": seg}
        )
    return out


def _from_folder(
    root: Path, task: str, suffixes: tuple[str, ...], dataset: str, keys: dict[str, str]
) -> list[dict[str, Any]]:
    out = []
    # Files that look like data (a run file's extension) but are no run of this dataset, by
    # why: ("suffix", <suffix>), ("task", <label>) or ("name", ""); relative names.
    skipped: dict[tuple[str, str], list[str]] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in EXTENSIONS:
                continue
            relative = str(Path(folder, name).relative_to(root))
            ents = _name_entities(stem)
            if ents is None:
                if stem.lower() != "participants":  # the documented companion, not data
                    skipped.setdefault(("name", ""), []).append(relative)
                continue
            if ents["task"] not in ("", task):
                skipped.setdefault(("task", ents["task"]), []).append(relative)
                continue
            suffix = ents.pop("suffix", "")
            if suffix and suffix not in suffixes:
                skipped.setdefault(("suffix", suffix), []).append(relative)
                continue  # another output beside the runs (XCP-D's coverage, motion)
            seg = ents.pop("seg", "")
            out.append(
                {
                    "path": Path(folder, name),
                    "ents": {**ents, "task": task},
                    "listing_tr": "",
                    "source": name,
                    "seg": seg,
                    "from_name": True,
                }
            )
    if not out and skipped:
        # Left to the connectome stage and the store, this was an empty QC table and an error
        # that named no file.
        raise _no_run_error(dataset, root, task, suffixes, skipped, keys)
    other = {k: len(v) for (why, k), v in sorted(skipped.items()) if why == "suffix"}
    if other:
        log.info(
            "%s: %s under %s are not runs (run files end _%s, or name no suffix)",
            dataset,
            ", ".join(f"{n} _{k} file(s)" for k, n in other.items()),
            root,
            " or _".join(suffixes),
        )
    return out


def _no_run_error(
    dataset: str,
    root: Path,
    task: str,
    suffixes: tuple[str, ...],
    skipped: dict[tuple[str, str], list[str]],
    keys: dict[str, str],
    shown: int = 3,
) -> InputDataError:
    """The error of a folder with data-like files but no run: the files skipped, counted by
    why with a few named, and how to name them (or list them) instead."""
    ends = " or ".join(f"_{s}" for s in suffixes)
    # Another entry's files (time series where connectomes were expected) want that entry, not
    # a new name.
    owner = {s: e.name for e in TABLE.values() for s in e.file_suffixes if s not in suffixes}
    parts, fixes = [], []
    for (kind, key), names in sorted(skipped.items(), key=lambda item: -len(item[1])):
        if kind == "suffix" and key in owner:
            why = f"end _{key}, files of entry {owner[key]!r}"
            fixes.append(f"set {set_to(keys['entry'], owner[key])} if these are the runs")
        elif kind == "suffix":
            why = f"end _{key}, not {ends}"
            renamed = re.sub(rf"_{re.escape(key)}(\.[^.]+)$", rf"_{suffixes[0]}\1", names[0])
            fixes.append(f"rename them ({Path(names[0]).name} -> {Path(renamed).name})")
        elif kind == "task":
            why = f"name task-{key}, not task-{task}"
            fixes.append(f"set {set_to(keys['task'], key)}")
        else:
            why = (
                "are named neither sub-<label>..., ROISignals_<subject> nor "
                "<site>_<subject>_rois_<atlas>"
            )
            fixes.append("rename them so")
        more = f", +{len(names) - shown} more" if len(names) > shown else ""
        parts.append(f"{len(names)} {why} ({', '.join(names[:shown])}{more})")
    return InputDataError(
        f"Dataset {dataset!r}: no run of task {task!r} under {root}: its "
        f"{sum(map(len, skipped.values()))} file(s) with a run file's extension are skipped: "
        f"{'; '.join(parts)}.",
        hint="Files in a folder are runs when named sub-<label>[_ses-<label>][_task-<label>]"
        f"[_run-<n>] ending {ends} (or with no suffix), ROISignals_<subject>, or "
        "<site>_<subject>_rois_<atlas>.1D (config/README.md, 'ROI time series and precomputed "
        f"connectomes'): {'; or '.join(dict.fromkeys(fixes))}; or set {keys['path']} "
        f"to {_LISTING_HINT}, which maps any file name to its subject.",
    )


def _name_entities(stem: str) -> dict[str, str] | None:
    """Run entities of a BIDS-like, DPARSF- or ABIDE-Preprocessed-style file stem (ABIDE's
    with its atlas as ``seg``; BIDS-like with its ``suffix``, ``""`` when the last word is an
    entity), ``None`` for other files."""
    match = _DPARSF_RE.match(stem)
    if match:
        return {"sub": match["sub"], "ses": "", "task": "", "run": ""}
    match = _PCP_RE.match(stem)
    if match:
        return {"sub": match["sub"], "ses": "", "task": "", "run": "", "seg": match["seg"]}
    if not stem.startswith("sub-"):
        return None
    # The extension is cut already: a dot left is a label's (sub-0.2), refused by _row, not
    # a cut that made it subject 0.
    ents = parse_entities(stem, has_extension=False)
    last = stem.rsplit("_", 1)[-1]
    return {
        **{k: ents.get(k, "") for k in ("sub", "ses", "task", "run")},
        "suffix": "" if "-" in last else last,
    }


def _row(
    dataset: str,
    entry: str,
    cand: dict[str, Any],
    repetition_time: float | None,
    tr_name: str,
) -> dict[str, Any]:
    file: Path = cand["path"]
    ents = {k: v for k, v in cand["ents"].items() if v}
    named = parse_entities(file.name)
    seg = cand.get("seg") or named.get("seg") or named.get("atlas") or ""
    row = base_row(dataset, entry, file, {**ents, "space": named.get("space"), "seg": seg})
    row["space"] = row["space"] or ""
    try:
        # A listing's participant_id may read sub-01; a file name's label is taken as written.
        check = check_name_label if cand.get("from_name") else check_label
        labels = {k: check(k, v, source=cand["source"]) for k, v in ents.items()}
    except InputDataError as exc:
        return excluded(row, INVALID_LABEL, exc.one_line())
    row.update(
        subject=labels["sub"],
        session=labels.get("ses", ""),
        task=labels.get("task", ""),
        run=labels.get("run", ""),
        run_key=run_key(labels),
    )
    if file.is_symlink() and not file.exists():
        # A locked DataLad/git-annex file not fetched: its path is right, its content absent.
        return excluded(row, NOT_FETCHED, not_fetched_reason(file))
    if not file.is_file():
        return excluded(
            row,
            MISSING_FILE,
            with_fix(
                f"{file} listed in {cand['source']} does not exist",
                f"correct its path in {cand['source']} (relative to the listing's folder), or "
                "remove its row",
            ),
        )
    if sniff_image(file) == "annex_pointer":  # an unlocked one: a pointer in its place
        return excluded(row, NOT_FETCHED, not_fetched_reason(file, pointer=True))
    if not entry_type(entry).needs_tr:
        return {**row, "included": True, "tr_check": f"not needed ({entry})"}
    t_r, where, problem = _repetition_time(file, cand["listing_tr"], repetition_time, tr_name)
    if problem:
        code = {_BAD_SIDECAR: BAD_SIDECAR, _NOT_FETCHED: NOT_FETCHED}.get(where, NO_REPETITION_TIME)
        return excluded(row, code, problem)
    return {**row, "t_r": t_r, "included": True, "tr_check": f"from {where}"}


# The ``where`` of a sidecar not fetched: the run is not_fetched (as a BOLD run whose sidecar is
# not), not bad_sidecar: `datalad get` fixes it, no edit of the JSON.
_NOT_FETCHED = "sidecar not fetched"
# The ``where`` of a sidecar that is no JSON object (bad_sidecar); one whose RepetitionTime is
# unusable is no_repetition_time, as a BOLD run's.
_BAD_SIDECAR = "sidecar unreadable"


def _repetition_time(
    file: Path, listing_tr: str, dataset_tr: float | None, tr_name: str
) -> tuple[float | None, str, str]:
    """``(t_r, where it came from, problem)`` of one time-series file; ``tr_name`` names the
    dataset's TR setting (``--repetition-time`` or its config key)."""
    sidecar = file.with_suffix(".json")
    if sidecar.is_symlink() and not sidecar.exists():
        # Its TR is the run's own: never fall back to the listing's or the dataset's for it.
        return None, _NOT_FETCHED, not_fetched_reason(sidecar, "its sidecar ")
    if sidecar.is_file():
        # Ingest's one reader of sidecars: UTF-8 whatever the locale, a byte-order mark skipped.
        meta = read_json_object(str(sidecar))
        if isinstance(meta, NotFetched):
            return None, _NOT_FETCHED, not_fetched_reason(sidecar, "its sidecar ", pointer=True)
        if isinstance(meta, str):
            fix = FIX_SIDECAR_READ if f" {UNREADABLE} (" in meta else FIX_SIDECAR_JSON
            return None, _BAD_SIDECAR, with_fix(meta, fix)
        value = meta.get("RepetitionTime")
        if value is not None:
            return _positive(value, f"RepetitionTime of {sidecar.name}", "sidecar")
    if listing_tr:
        return _positive(listing_tr, f"repetition_time of {file.name} in the listing", "listing")
    if dataset_tr is not None:
        return _positive(dataset_tr, tr_name, "dataset repetition_time")
    return (
        None,
        "",
        with_fix(
            f"no repetition time for {file.name}",
            f"add {sidecar.name} with RepetitionTime (seconds), a repetition_time column to the "
            f"listing, or set {tr_name}",
        ),
    )


def _positive(value: object, what: str, where: str) -> tuple[float | None, str, str]:
    try:
        t_r = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, where, with_fix(f"{what} is not a number: {value!r}", set_tr_fix(what))
    if not math.isfinite(t_r) or t_r <= 0:
        problem = f"{what} must be a positive number of seconds: {value!r}"
        return None, where, with_fix(problem, set_tr_fix(what))
    problem = implausible_tr(t_r, what, value)
    if problem:
        return None, where, with_fix(problem, set_tr_fix(what))
    return t_r, where, ""


def listing_stats(path: str | Path) -> list[str]:
    """What a file-entry dataset holds, for the workflow's change detection.

    Each run file (and sidecar) as ``name<TAB>size<TAB>mtime_ns``: a file added, removed,
    replaced or edited (a sidecar given the missing ``RepetitionTime``) changes the list. For
    a listing, its own bytes and the files it lists; for a folder, its run files by relative
    name. Only names were listed before: a fixed file was not read again.

    Parameters
    ----------
    path : str or Path
        The dataset's configured path: a listing file or a folder of run files.

    Returns
    -------
    list of str
        For a listing, its text then the stats of the files it lists; for a folder, its run
        files' stats; ``[]`` when ``path`` is neither.
    """
    path = Path(path)
    if path.is_file():
        listed = []
        try:
            table = read_listing(path)
        except InputDataError:
            table = None  # ingest reports it; the listing's bytes still change when fixed
        for cell in [] if table is None else table["path"]:
            file = Path(str(cell).strip())
            file = file if file.is_absolute() else path.parent / file
            listed += [file, file.with_suffix(".json")]
        return [path.read_text(errors="replace"), *filter(None, map(file_stat, listed))]
    if not path.is_dir():
        return []
    files = sorted(
        Path(d, f)
        for d, _, names in os.walk(path)
        for f in names
        if os.path.splitext(f)[1].lower() in (*EXTENSIONS, ".json")
    )
    return [s for f in files if (s := file_stat(f, path))]


def file_stat(file: Path, root: Path | None = None) -> str:
    """``name<TAB>size<TAB>mtime_ns`` of a file (relative to ``root``), ``""`` if absent.

    What the workflow hashes to see a data file changed (:func:`listing_stats`).

    Parameters
    ----------
    file : Path
        The file to stat.
    root : Path, optional
        Folder ``file`` is named relative to; the full path when None.
    """
    try:
        st = file.stat()
    except OSError:
        return ""
    name = file.relative_to(root) if root is not None else file
    return f"{name}\t{st.st_size}\t{st.st_mtime_ns}"
