"""``lcm provenance``: trace an artifact back to its inputs, or verify recorded hashes."""

from __future__ import annotations

import argparse
import logging

from lcm.io.lineage import trace, verify

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  lcm provenance trace results/metrics/task-autism_metrics.parquet
  lcm provenance verify results/connectome
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``provenance`` verb."""
    p = sub.add_parser(
        "provenance",
        help="Trace an artifact's lineage or verify recorded sha256 hashes.",
        description="trace prints the artifact and, from JSON sidecars, each input it was made "
        "from, recursively, with its hash status; verify re-hashes every file described by a "
        "sidecar under a folder and exits 1 on any drift.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["trace", "verify"])
    p.add_argument("target", help="Artifact (trace) or folder (verify).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``lcm provenance``."""
    if args.action == "trace":
        for line in trace(args.target):
            print(line)
        return 0
    problems = verify(args.target)
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) under {args.target}")
    return 1 if problems else 0
