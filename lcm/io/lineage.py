"""Audit trails over provenance sidecars: trace an artifact's inputs, verify hashes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from lcm.io.provenance import sha256_file, sidecar_path


def trace(artifact: str | Path, _depth: int = 0, _seen: set | None = None) -> Iterator[str]:
    """Yield indented lines: ``artifact``, then its sources from sidecars, recursively.

    Parameters
    ----------
    artifact : path-like
        Any LCM output with a JSON sidecar (``<stem>.json``).
    """
    seen = _seen if _seen is not None else set()
    path = Path(artifact)
    side = sidecar_path(path)
    recorded = None
    sources: list[str] = []
    if side.is_file() and side != path:
        record = json.loads(side.read_text())
        recorded = record.get("Sha256")
        sources = record.get("Sources", [])
    status = "missing" if not path.exists() else ("no sidecar" if recorded is None else "")
    if recorded is not None and path.is_file():
        status = "ok" if sha256_file(path) == recorded else "CHANGED since recorded"
    yield f"{'  ' * _depth}{path} [{status}]" + (f" sha256={recorded[:12]}" if recorded else "")
    if path in seen:
        return
    seen.add(path)
    for src in sources:
        yield from trace(src, _depth + 1, seen)


def verify(root: str | Path) -> list[str]:
    """Re-hash every file described by a sidecar under ``root``; return the drifts found."""
    problems = []
    for side in sorted(Path(root).rglob("*.json")):
        try:
            record = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(record, dict) or "Sha256" not in record:
            continue
        outputs = [p for p in side.parent.glob(side.name.split(".")[0] + ".*") if p != side]
        if not outputs:
            problems.append(f"{side}: the file it describes is missing")
        for out in outputs:
            if sha256_file(out) != record["Sha256"]:
                problems.append(f"{out}: sha256 differs from {side}")
        for src, digest in record.get("SourcesSha256", {}).items():
            if not Path(src).is_file():
                problems.append(f"{src}: input of {side} is missing")
            elif sha256_file(src) != digest:
                problems.append(f"{src}: input of {side} changed since it was used")
    return problems
