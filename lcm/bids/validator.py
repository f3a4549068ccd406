"""The real BIDS validator (``bids-validator-deno``, the schema-based TypeScript validator).

It runs once per raw dataset, on the selected participants only: like fMRIPrep, the subject
folders a participant selection leaves out are ignored through a temporary validator config (never
a file written into the dataset). Like fMRIPrep too, the errors its own validation ignores
(:func:`fmriprep_ignores`: ``participants.tsv`` and ``dataset_description.json`` as files,
tabular and events content, DWI and EEG specifics, ...) stop nothing: they are kept as warnings
marked ``downgraded``, in the log and the ingestion summary. Any other error located inside one
subject folder (``/sub-XX/...``) excludes that subject's runs, or only the run whose file it
names (reason code ``validator:<CODE>``); one at the dataset level (a root file, ``phenotype/``)
stops the dataset with the validator's own codes and messages. Warnings are kept for the
ingestion summary. ``ingest.validate: false`` (``lcm run --skip-bids-validation``, ``lcm ingest
--no-validate``) skips it for trusted data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.bids.dataset import CONFIG_KEYS, turned_off
from lcm.bids.rows import VALIDATOR
from lcm.bids.selection import without_echo
from lcm.exceptions import BIDSError, ExternalToolError
from lcm.reason_codes import with_fix

log = logging.getLogger(__name__)

# The wheel's entry point execs the bundled deno runtime; calling it through this interpreter
# finds the copy installed beside lcm, whatever PATH says.
_VALIDATOR = "from bids_validator_deno import cli; cli()"
MAX_LISTED = 20  # issue codes listed in an error message
# How to skip the validator, in every hint that offers it (lcm run, the workflow, lcm ingest).


def skip_hint(setting: str = CONFIG_KEYS["validate"]) -> str:
    """The fix that skips the validator, by the setting as the user gave it: ``pass
    --no-validate for trusted data`` to ``lcm ingest``, ``set ingest.validate: false ...`` under
    the workflow (which ``lcm run --skip-bids-validation`` sets too).

    Parameters
    ----------
    setting : str
        The validation setting's name (:func:`lcm.bids.dataset.setting_names`'s
        ``validate``): ``--no-validate`` or the config's key.

    Returns
    -------
    str
    """
    return f"{turned_off(setting)} for trusted data"


# A location inside one subject folder: "/sub-06/func/..." (or the folder itself).
_SUBJECT_LOCATION = re.compile(r"^/(sub-[^/]+)(?:/|$)")
# What fMRIPrep's validation (nipreps' validate_input_dir, also qsiprep's and nibabies') tells
# the validator to ignore, as the schema validator names it: codes of tabular and events
# content, of other modalities (DWI, EEG/iEEG), of participant lists and stimuli, and every
# issue of two files, which fMRIPrep does not read for a subject's processing.
FMRIPREP_IGNORED_CODES = frozenset(
    {
        "ACQTIME_FMT",
        "B_FILE",
        "BVAL_MULTIPLE_ROWS",
        "BVEC_NUMBER_ROWS",
        "BVEC_ROW_LENGTH",
        "CHANNELS_COLUMN_HIGHCUT",
        "CHANNELS_COLUMN_LOWCUT",
        "CHANNELS_COLUMN_NOTCH",
        "CHANNELS_COLUMN_SFREQ",
        "CUSTOM_COLUMN_WITHOUT_DESCRIPTION",
        "DATASET_DESCRIPTION_JSON_MISSING",
        "DWI_MISSING_BVAL",
        "DWI_MISSING_BVEC",
        "FILENAME_COLUMN",
        "INCONSISTENT_PARAMETERS",
        "INCONSISTENT_SUBJECTS",
        "MALFORMED_BVAL",
        "MALFORMED_BVEC",
        "MISSING_SESSION",
        "MISSING_TSV_COLUMN_CHANNELS",
        "MISSING_TSV_COLUMN_EEG_ELECTRODES",
        "MISSING_TSV_COLUMN_IEEG_CHANNELS",
        "MISSING_TSV_COLUMN_IEEG_ELECTRODES",
        "PARTICIPANT_ID_COLUMN",
        "PARTICIPANT_ID_MISMATCH",
        "PHENOTYPE_SUBJECTS_MISSING",
        "STIMULUS_FILE_MISSING",
        "SUSPICIOUSLY_LONG_EVENT_DESIGN",
        "SUSPICIOUSLY_SHORT_EVENT_DESIGN",
        "TASK_NAME_MUST_DEFINE",
        "UNUSED_STIMULUS",
        "VOLUME_COUNT_MISMATCH",
        "WRONG_NEW_LINE",
    }
)
# Families fMRIPrep ignores by their legacy names (TSV_EQUAL_ROWS, TSV_EMPTY_CELL, ...,
# EVENTS_COLUMN_ONSET, EVENTS_TSV_MISSING ...): the schema validator's TSV_* and EVENTS_* codes.
FMRIPREP_IGNORED_PREFIXES = ("TSV_", "EVENTS_")
FMRIPREP_IGNORED_FILES = frozenset({"/dataset_description.json", "/participants.tsv"})


@dataclass
class ValidationReport:
    """Outcome of one validator run: issue counts by code, with the validator's messages."""

    version: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    # Every error inside a subject folder, one per issue ({code, sub_code, location, message}):
    # what excludes runs (``errors`` keeps five locations per code, for people to read).
    subject_errors: list[dict[str, str]] = field(default_factory=list)
    # Subject folders left out of the run (a participant selection): a report is reused only
    # for the same ones.
    ignored_subjects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the summary and the ingest cache)."""
        return {
            "version": self.version,
            "errors": self.errors,
            "warnings": self.warnings,
            "subject_errors": self.subject_errors,
            "ignored_subjects": self.ignored_subjects,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            A report as :meth:`to_dict` wrote it; missing keys read as empty.
        """
        return cls(
            data.get("version", ""),
            data.get("errors", []),
            data.get("warnings", []),
            data.get("subject_errors", []),
            data.get("ignored_subjects", []),
        )


def validator_version() -> str:
    """The installed ``bids-validator-deno`` version ("" when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bids-validator-deno")
    except PackageNotFoundError:
        return ""


def validation_inputs(root: str | Path) -> dict[str, str | None]:
    """What decides the validator's verdicts besides the files ingest indexes.

    ``.bidsignore`` (its sha256, ``None`` when absent) and the validator's version: the fix
    the validator itself recommends for a stray file (a ``.bidsignore`` pattern) or an upgrade
    changes a subject's verdict without touching its folder. Ingest records them in its
    summary (``validator.inputs``) and reuses a cached report only for the same ones; the
    workflow's plan compares them with the current ones (:mod:`lcm.workflow.plan`).

    Parameters
    ----------
    root : str or Path
        The raw dataset's top folder.

    Returns
    -------
    dict
        ``{"validator": version, "bidsignore": sha256 or None}``.
    """
    import hashlib

    try:
        ignore: str | None = hashlib.sha256(Path(root, ".bidsignore").read_bytes()).hexdigest()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        ignore = None
    return {"validator": validator_version(), "bidsignore": ignore}


def validate_bids(
    root: str | Path,
    timeout_s: float = 3600,
    ignore_subjects: Iterable[str] = (),
    setting: str = CONFIG_KEYS["validate"],
) -> ValidationReport:
    """Run the BIDS validator on ``root``, leaving out the subject folders ``ignore_subjects``.

    Parameters
    ----------
    root : path-like
        Raw BIDS dataset root.
    timeout_s : float
        Seconds the validator may run.
    ignore_subjects : iterable of str
        Subject folder names (``sub-06``) not to validate: those a participant selection
        leaves out. They are ignored as fMRIPrep does, through a validator config written to a
        temporary file (never into the dataset), and their issues are dropped from the report.
    setting : str
        How the user turns validation off (:func:`skip_hint`), named in the hints.

    Returns
    -------
    ValidationReport
        Issues grouped by code (``code``, ``sub_code``, ``severity``, ``count``, ``message``,
        ``locations`` (first five)); errors inside subject folders also one by one
        (``subject_errors``, see :func:`exclude_invalid_runs`). The errors fMRIPrep's
        validation ignores (:func:`fmriprep_ignores`) are warnings with ``downgraded: true``,
        listed in the log too: they neither stop the dataset nor exclude a run.

    Raises
    ------
    BIDSError
        When the validator reports other errors outside the subject folders (the dataset
        level: root files, ``phenotype/``); the message lists each such error code with the
        validator's explanation and the first files concerned.
    ExternalToolError
        When the validator is not installed or its output cannot be read.
    """
    root = Path(root)
    ignored = sorted(set(ignore_subjects))
    with tempfile.TemporaryDirectory(prefix="lcm-bids-validator-") as tmp:
        cmd = [sys.executable, "-c", _VALIDATOR, str(root), "--format", "json"]
        if ignored:
            config = Path(tmp, "config.json")
            config.write_text(json.dumps(_ignore_config(ignored)))
            cmd += ["--config", str(config)]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ExternalToolError(
                f"BIDS validator did not finish on {root} within {timeout_s:g} s.",
                hint=f"Validate it once by hand, or {skip_hint(setting)}.",
            ) from exc
    if "ModuleNotFoundError" in proc.stderr and "bids_validator_deno" in proc.stderr:
        raise ExternalToolError(
            "The BIDS validator is not installed (Python package bids-validator-deno).",
            hint=f"pip install bids-validator-deno, or {skip_hint(setting)}.",
        )
    try:
        output = json.loads(proc.stdout)
        issues = output["issues"]["issues"]
        messages = output["issues"].get("codeMessages", {})
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExternalToolError(
            f"BIDS validator on {root} gave no JSON report (exit code {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}",
            hint="Run 'bids-validator-deno <dataset>' by hand to see what fails.",
        ) from exc
    # The config already hides them; dropped here too, whatever the validator's glob rules.
    issues = [_as_fmriprep_reads(i) for i in issues if _subject_of(i) not in ignored]
    dataset_level = [i for i in issues if _subject_of(i) is None]
    report = ValidationReport(
        version=str(output.get("summary", {}).get("schemaVersion", "")),
        errors=_grouped(issues, messages, "error"),
        warnings=_grouped(issues, messages, "warning"),
        subject_errors=[
            {
                "code": str(i.get("code", "")),
                "sub_code": str(i.get("subCode", "") or ""),
                "location": str(i["location"]),
                "message": _issue_text(messages.get(str(i.get("code", "")), ""), i),
            }
            for i in issues
            if i.get("severity") == "error" and _subject_of(i) is not None
        ],
        ignored_subjects=ignored,
    )
    n_warn = sum(w["count"] for w in report.warnings)
    downgraded = [w for w in report.warnings if w.get("downgraded")]
    if downgraded:
        log.warning(
            "BIDS validator: %s: %d error(s) that fMRIPrep's own validation ignores are kept as "
            "warnings (summary.json, validator.warnings, downgraded): %s",
            root,
            sum(w["count"] for w in downgraded),
            "; ".join(
                f"{w['code']} x{w['count']} [{', '.join(w['locations'][:3])}]"
                for w in downgraded[:MAX_LISTED]
            ),
        )
    top = _grouped(dataset_level, messages, "error")
    if top:
        shown = ValidationReport(report.version, errors=top)
        raise BIDSError(
            _error_message(root, shown),
            hint="Fix the dataset (see https://bids-specification.readthedocs.io), drop the "
            f"offending files from the dataset, or {skip_hint(setting)}.",
        )
    n_sub = len({_SUBJECT_LOCATION.match(e["location"])[1] for e in report.subject_errors})
    log.info(
        "BIDS validator: %s: %d warning(s), errors in %d subject folder(s) (their runs are "
        "excluded)%s",
        root,
        n_warn,
        n_sub,
        f"; {len(ignored)} unselected subject folder(s) not validated" if ignored else "",
    )
    return report


def _ignore_config(subjects: list[str]) -> dict[str, Any]:
    """Validator config ignoring every issue inside ``subjects`` (fMRIPrep's way to validate
    selected participants only). bids-validator-deno matches ``sub-06/**`` (its locations
    start with ``/``, which it strips before matching); both forms are listed for versions
    that do not strip it."""
    ignore = [{"location": f"{prefix}{sub}/**"} for sub in subjects for prefix in ("", "/")]
    return {"ignore": ignore}


def fmriprep_ignores(code: str, location: str) -> bool:
    """Whether fMRIPrep's validation ignores an issue of ``code`` at ``location``: it is one of
    :data:`FMRIPREP_IGNORED_CODES`, of the families :data:`FMRIPREP_IGNORED_PREFIXES`, or
    located at one of :data:`FMRIPREP_IGNORED_FILES`.

    Parameters
    ----------
    code : str
        The validator's issue code.
    location : str
        Where the issue is, as the validator reports it (``/sub-06/func/...``).
    """
    return (
        code in FMRIPREP_IGNORED_CODES
        or code.startswith(FMRIPREP_IGNORED_PREFIXES)
        or location in FMRIPREP_IGNORED_FILES
    )


def _as_fmriprep_reads(issue: dict[str, Any]) -> dict[str, Any]:
    """An error fMRIPrep ignores as a warning marked ``downgraded``; any other issue as it is."""
    code, location = str(issue.get("code", "")), str(issue.get("location") or "")
    if issue.get("severity") != "error" or not fmriprep_ignores(code, location):
        return issue
    return {**issue, "severity": "warning", "downgraded": True}


def _subject_of(issue: dict[str, Any]) -> str | None:
    """The subject folder (``sub-06``) an issue is located in; ``None`` at the dataset level."""
    match = _SUBJECT_LOCATION.match(str(issue.get("location") or ""))
    return match[1] if match else None


def _stem(location: str) -> str:
    """A data file's location without its extension: the same for its own JSON sidecar."""
    for ext in (".nii.gz", ".nii", ".json"):
        if location.endswith(ext):
            return location[: -len(ext)]
    return location


def _first_paragraph(text: str) -> str:
    """A validator message's first paragraph on one line: its text is hard-wrapped, and the
    first line alone cut sentences short ("... should contain an array of values -")."""
    return " ".join(text.strip().split("\n\n", 1)[0].split())


def _issue_detail(issue: dict[str, Any]) -> str:
    """What one issue adds to its code's message: the first paragraph of its own
    ``issueMessage`` ("must be number", "Required initial column 1 not found."), unless it is
    only the schema's description of the field, and the line of a table it names."""
    detail = _first_paragraph(str(issue.get("issueMessage") or ""))
    if detail.startswith("Field description:"):
        detail = ""
    line = issue.get("line")
    if isinstance(line, int) and not isinstance(line, bool) and line > 0:
        detail += f"{' ' if detail else ''}(line {line})"
    return detail


def _issue_text(code_message: str, issue: dict[str, Any]) -> str:
    """The code's message with what this issue adds (:func:`_issue_detail`): the issue's own
    words were dropped, and a reason said the sidecar was invalid without saying why."""
    text, detail = _first_paragraph(code_message), _issue_detail(issue)
    return f"{text.rstrip('.')}: {detail}" if text and detail else text or detail


def exclude_invalid_runs(
    manifest: pd.DataFrame,
    report: ValidationReport,
    root: str | Path,
    setting: str = CONFIG_KEYS["validate"],
) -> pd.DataFrame:
    """Exclude the runs that the validator's errors inside subject folders concern.

    An error naming a run's file (its BOLD file or its own JSON sidecar, of any echo) excludes
    that run; any other
    error inside a subject folder (a sidecar, an anatomical image, ``sessions.tsv``) excludes
    every run of the subject, since fMRIPrep reads them all. The reason code is
    ``validator:<CODE>``; runs already excluded keep their own, more specific reason
    (``not_fetched`` names ``datalad get``).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows (``path``, ``subject``, ``run_key``, ``included``, ``reason_code``,
        ``reason``).
    report : ValidationReport
        The validator's report of the dataset.
    root : path-like
        The dataset root the rows' paths and the report's locations are relative to.
    setting : str
        How the user turns validation off (:func:`skip_hint`), named in the reasons.

    Returns
    -------
    pandas.DataFrame
        A copy (``manifest`` itself when no error concerns a subject).
    """
    if not report.subject_errors or manifest.empty:
        return manifest
    df = manifest.copy()
    location = df["path"].map(lambda p: _stem("/" + os.path.relpath(p, root).replace(os.sep, "/")))
    run = df["run_key"].astype(str).map(without_echo)
    folder = "sub-" + df["subject"].astype(str)
    out = pd.Series("", index=df.index, dtype=object)
    code = pd.Series("", index=df.index, dtype=object)
    for err in report.subject_errors:
        named = location == _stem(err["location"])
        if named.any():  # the runs of the named file, all their echoes
            hit = df["included"] & run.isin(set(run[named]))
        else:
            hit = df["included"] & (folder == _SUBJECT_LOCATION.match(err["location"])[1])
        hit &= out == ""  # the first error stands
        what = err["code"] + (f" ({err['sub_code']})" if err["sub_code"] else "")
        out[hit] = with_fix(
            f"BIDS validator error {what} at {err['location']}"
            + (f": {err['message']}" if err["message"] else "")
            + (" (this run's file)" if named.any() else " (in this subject's folder)"),
            f"{_correction(err, root)}, or {skip_hint(setting)}",
        )
        code[hit] = f"{VALIDATOR}:{err['code']}"
    hit = out != ""
    df.loc[hit, "included"] = False
    df.loc[hit, "reason_code"] = code[hit]
    df.loc[hit, "reason"] = out[hit]
    return df


def _correction(err: dict[str, Any], root: str | Path) -> str:
    """What to correct in the file a validator error names: a JSON file that begins with a
    byte-order mark (as Windows editors save UTF-8) is refused as "not valid UTF-8", which it
    is; the mark, not the text, is what to remove."""
    location = err["location"]
    if err["code"] == "INVALID_JSON_ENCODING":
        try:
            with open(Path(root) / location.lstrip("/"), "rb") as fh:
                bom = fh.read(3) == b"\xef\xbb\xbf"
        except OSError:
            bom = False
        if bom:
            return (
                f"remove the byte-order mark (BOM) that {location} begins with: save it as "
                "UTF-8 without BOM (its text is UTF-8; the validator refuses the mark)"
            )
    return f"correct {location} as the validator says"


def _grouped(
    issues: list[dict[str, Any]], messages: dict[str, str], severity: str
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, bool], list[str]] = {}
    details: dict[tuple[str, str, bool], list[str]] = {}
    counts: Counter[tuple[str, str, bool]] = Counter()
    for issue in issues:
        if issue.get("severity") != severity:
            continue
        key = (
            str(issue.get("code", "")),
            str(issue.get("subCode", "") or ""),
            bool(issue.get("downgraded")),
        )
        counts[key] += 1
        locations = groups.setdefault(key, [])
        if len(locations) < 5 and issue.get("location"):
            locations.append(str(issue["location"]))
        said = details.setdefault(key, [])
        detail = _issue_detail(issue)
        if detail and detail not in said and len(said) < 3:
            said.append(detail)
    return [
        {
            "code": code,
            "sub_code": sub,
            "severity": severity,
            "count": counts[(code, sub, down)],
            "message": messages.get(code, "").strip(),
            "locations": groups[(code, sub, down)],
            # What the first issues (up to 3 distinct) add to the code's message.
            "details": details[(code, sub, down)],
            # An error fMRIPrep's validation ignores, kept as a warning (fmriprep_ignores).
            **({"downgraded": True} if down else {}),
        }
        for code, sub, down in sorted(groups)
    ]


def _error_message(root: Path, report: ValidationReport) -> str:
    n = sum(e["count"] for e in report.errors)
    lines = [f"BIDS validator found {n} error(s) in {root}:"]
    for err in report.errors[:MAX_LISTED]:
        code = err["code"] + (f" ({err['sub_code']})" if err["sub_code"] else "")
        first = _first_paragraph(err["message"])
        said = "; ".join(err.get("details", []))
        first += f" ({said})" if said else ""
        where = ", ".join(err["locations"][:3])
        lines.append(f"  {code} x{err['count']}: {first} [{where}]")
    if len(report.errors) > MAX_LISTED:
        lines.append(f"  ... and {len(report.errors) - MAX_LISTED} more error code(s)")
    return "\n".join(lines)
