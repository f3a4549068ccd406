"""``lcm provenance``: trace an artifact back to its inputs, or verify recorded hashes."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
from pathlib import Path

from lcm.commands._path_text import path_text
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError
from lcm.io.lineage import MAX_MISSING_LISTED, audit, base_hint, results_entry, trace
from lcm.io.ownership import claimed_results
from lcm.io.paths import unrecorded_reason

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  lcm provenance trace results/metrics/task-autism_metrics.parquet
  lcm provenance trace results/models/pretrain/model.safetensors
  lcm provenance verify results
  lcm provenance verify /archive/run1/results --base /archive/run1
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``provenance`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "provenance",
        help="Trace an artifact's lineage or verify recorded sha256 hashes.",
        description="trace prints the artifact and, from its provenance sidecar, each input it "
        "was made from, recursively down to the raw files, with sha256 and the rule that made "
        "each, and exits 1 when one differs from its record (given a sidecar, it traces the "
        "output the sidecar records); verify re-hashes every file "
        "described by a sidecar under a folder, and the inputs each sidecar records, reports "
        "every output of the workflow that no sidecar names and every config copy changed "
        "since it was written, says what to do about each, and exits 1 on any drift. When most "
        "files recorded as relative paths (inputs, a job's products) are missing, --base is "
        "wrong: verify lists a few and names the --base to pass.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["trace", "verify"])
    p.add_argument("target", type=path_text, help="Artifact (trace) or folder (verify).")
    p.add_argument(
        "--base",
        type=path_text,
        default=".",
        help="Folder the workflow ran in: recorded relative paths are relative to it "
        "(default: the current folder).",
    )
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm provenance``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code: 1 when ``verify`` found problems or a file ``trace`` showed differs
        from its record, else 0; a target that does not exist, or of the other kind (a folder
        to trace, a file to verify), or a folder to verify that holds no provenance record
        (and no problem), is raised as an :class:`lcm.exceptions.InputDataError`.
    """
    target = Path(args.target)
    if not target.exists():
        raise InputDataError(
            f"provenance {args.action}: {target} does not exist.",
            hint="Give an LCM output file (trace) or a results folder (verify).",
        )
    _check_kind(args.action, target)
    if args.action == "trace":
        drift: list[str] = []
        for line in trace(target, base=args.base, drift=drift):
            print(line)
        if drift:
            base = ""
            if any(d.endswith("[missing]") for d in drift):
                base = " (or, for inputs recorded as relative paths, pass --base: the folder "
                base += "the workflow ran in)"
            print(
                f"{len(drift)} file(s) of the lineage of {target} differ from their records "
                f"(CHANGED, missing or without a record), the first {drift[0]}: restore them, "
                f"or rerun the workflow with the command that made them{base}"
            )
        return 1 if drift else 0
    found = audit(target, base=args.base)
    if not found.records and not found.problems:
        raise _nothing_verified(target)
    missing = found.missing_relative()
    hint = base_hint([p.path for p in missing], found.relative_inputs, args.base, target)
    # Most inputs missing: --base is wrong, not the data; a few of them say which.
    left_out = set(map(id, missing[MAX_MISSING_LISTED:])) if hint else set()
    for p in found.problems:
        if id(p) not in left_out:
            print(p)
    if left_out:
        print(f"... and {len(left_out)} more missing files recorded as relative paths")
    print(f"{len(found.problems)} problem(s) under {target}")
    if hint:
        print(hint)
    return 1 if found.problems else 0


def _check_kind(action: str, target: Path) -> None:
    """Refuse a folder to trace or a file to verify: verify of a file found no record under
    it and said "0 problem(s)", an audit that audited nothing."""
    shown = shlex.quote(str(target))  # the commands in the hints can be pasted as they are
    if action == "verify" and not target.is_dir():
        results = claimed_results(target.parent)
        folder = shlex.quote(str(results)) if results else "<folder>"
        raise InputDataError(
            f"provenance verify: {target} is a file: verify audits every record under a folder.",
            hint=f"To check this file and everything it was made from, run `lcm provenance "
            f"trace {shown}` (exit 1 when one of them differs from its record); to audit its "
            f"results folder, `lcm provenance verify {folder}`.",
        )
    if action == "trace" and target.is_dir():
        raise InputDataError(
            f"provenance trace: {target} is a folder: trace follows one file's lineage.",
            hint=f"Give one of its files, or audit the folder with `lcm provenance verify "
            f"{shown}`.",
        )


def _nothing_verified(target: Path) -> InputDataError:
    """The error for a folder holding no provenance record: "0 problem(s)" there, exit 0, read
    as a pass of an audit that audited nothing (``config/``, an empty folder, a train_state)."""
    results = claimed_results(target)
    entry = results_entry(target, results)
    why = unrecorded_reason(entry) if entry is not None else None
    hint: list[str] = []
    if why:  # the workflow fills it without records (train_state): its outputs lie elsewhere
        hint.append(f"{target} holds what the workflow writes without a record ({why}).")
    if results is None:
        hint.append(
            "Give the results folder the workflow wrote (results_dir in its config), e.g. "
            "`lcm provenance verify results`."
        )
    elif os.path.abspath(target) == str(results):
        hint.append("It holds no output yet: run the workflow first.")
    else:
        hint.append(
            f"Audit its results folder: `lcm provenance verify {shlex.quote(str(results))}`."
        )
    return InputDataError(
        f"provenance verify: no provenance records under {target}: nothing was verified.",
        hint=" ".join(hint),
    )
