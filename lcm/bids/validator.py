"""The real BIDS validator (``bids-validator-deno``, the schema-based TypeScript validator).

It runs once per raw dataset; its errors stop that dataset with the validator's own codes and
messages, its warnings are kept for the ingestion summary. ``ingest.validate: false`` skips it
for trusted data.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcm.exceptions import BIDSError, ExternalToolError

log = logging.getLogger(__name__)

# The wheel's entry point execs the bundled deno runtime; calling it through this interpreter
# finds the copy installed beside lcm, whatever PATH says.
_VALIDATOR = "from bids_validator_deno import cli; cli()"
MAX_LISTED = 20  # issue codes listed in an error message


@dataclass
class ValidationReport:
    """Outcome of one validator run: issue counts by code, with the validator's messages."""

    version: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in the summary and the ingest cache)."""
        return {"version": self.version, "errors": self.errors, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Inverse of :meth:`to_dict`."""
        return cls(data.get("version", ""), data.get("errors", []), data.get("warnings", []))


def validate_bids(root: str | Path, timeout_s: float = 3600) -> ValidationReport:
    """Run the BIDS validator on ``root``.

    Returns
    -------
    ValidationReport
        Issues grouped by code (``code``, ``sub_code``, ``severity``, ``count``, ``message``,
        ``locations`` (first five)).

    Raises
    ------
    BIDSError
        When the validator reports errors; the message lists each error code with the
        validator's explanation and the first files concerned.
    ExternalToolError
        When the validator is not installed or its output cannot be read.
    """
    root = Path(root)
    cmd = [sys.executable, "-c", _VALIDATOR, str(root), "--format", "json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExternalToolError(
            f"BIDS validator did not finish on {root} within {timeout_s:g} s.",
            hint="Set ingest.validate: false for trusted data, or validate it once by hand.",
        ) from exc
    if "ModuleNotFoundError" in proc.stderr and "bids_validator_deno" in proc.stderr:
        raise ExternalToolError(
            "The BIDS validator is not installed (Python package bids-validator-deno).",
            hint="pip install bids-validator-deno, or set ingest.validate: false for trusted data.",
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
    report = ValidationReport(
        version=str(output.get("summary", {}).get("schemaVersion", "")),
        errors=_grouped(issues, messages, "error"),
        warnings=_grouped(issues, messages, "warning"),
    )
    n_warn = sum(w["count"] for w in report.warnings)
    if report.errors:
        raise BIDSError(_error_message(root, report), hint=_ERROR_HINT)
    log.info("BIDS validator: %s is valid (%d warning(s))", root, n_warn)
    return report


_ERROR_HINT = (
    "Fix the dataset (see https://bids-specification.readthedocs.io), drop the offending "
    "subjects from the dataset, or set ingest.validate: false if you trust the data as it is."
)


def _grouped(
    issues: list[dict[str, Any]], messages: dict[str, str], severity: str
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for issue in issues:
        if issue.get("severity") != severity:
            continue
        key = (str(issue.get("code", "")), str(issue.get("subCode", "") or ""))
        counts[key] += 1
        locations = groups.setdefault(key, [])
        if len(locations) < 5 and issue.get("location"):
            locations.append(str(issue["location"]))
    return [
        {
            "code": code,
            "sub_code": sub,
            "severity": severity,
            "count": counts[(code, sub)],
            "message": messages.get(code, "").strip(),
            "locations": groups[(code, sub)],
        }
        for code, sub in sorted(groups)
    ]


def _error_message(root: Path, report: ValidationReport) -> str:
    n = sum(e["count"] for e in report.errors)
    lines = [f"BIDS validator found {n} error(s) in {root}:"]
    for err in report.errors[:MAX_LISTED]:
        code = err["code"] + (f" ({err['sub_code']})" if err["sub_code"] else "")
        first = err["message"].splitlines()[0] if err["message"] else ""
        where = ", ".join(err["locations"][:3])
        lines.append(f"  {code} x{err['count']}: {first} [{where}]")
    if len(report.errors) > MAX_LISTED:
        lines.append(f"  ... and {len(report.errors) - MAX_LISTED} more error code(s)")
    return "\n".join(lines)
