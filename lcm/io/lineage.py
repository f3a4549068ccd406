"""Audit trails over provenance sidecars: trace an artifact's inputs, verify hashes.

Every LCM output has a JSON sidecar (see :func:`lcm.io.provenance.provenance_path`) recording
its own sha256, its direct inputs (``Sources``) with theirs, and how it was made. Following
``Sources`` from sidecar to sidecar leads from a metric or checkpoint back to the raw files.
Relative source paths are relative to the folder the workflow ran in (``base``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lcm.io.provenance import provenance_path, sha256_file, sidecar_path


class _Hashes:
    """sha256 of files, each computed once per audit (inputs are shared by many outputs)."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        key = path.resolve()
        if key not in self._known:
            self._known[key] = sha256_file(path)
        return self._known[key]


def read_record(artifact: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The provenance sidecar of ``artifact`` and its content, or None when it has none."""
    path = Path(artifact)
    for side in (provenance_path(path), sidecar_path(path)):
        if side == path or not side.is_file():
            continue
        try:
            record = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(record, dict) and "Sha256" in record:
            if record.get("Output", path.name) == path.name:
                return side, record
    return None


def trace(
    artifact: str | Path,
    base: str | Path = ".",
    _depth: int = 0,
    _seen: set | None = None,
    _expected: str | None = None,
    _hashes: _Hashes | None = None,
) -> Iterator[str]:
    """Yield indented lines: ``artifact``, then its sources from sidecars, recursively.

    Each line is ``path [status] sha256=<first 12> rule=<rule>``; status is ``ok`` (the file
    still has the recorded hash), ``CHANGED since recorded``, ``missing``, ``raw`` (a file
    without a sidecar: a lineage root) or ``dir``. A source already shown is not expanded again.

    Parameters
    ----------
    artifact : path-like
        Any LCM output with a provenance sidecar.
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).
    """
    seen = _seen if _seen is not None else set()
    hashes = _hashes or _Hashes()
    path = Path(artifact)
    if not path.is_absolute() and not path.exists():
        path = Path(base) / path
    found = read_record(path) if path.is_file() else None
    record = found[1] if found else {}
    recorded = record.get("Sha256") or _expected
    if not path.exists():
        status = "missing"
    elif path.is_dir():
        status = "dir"
    else:
        actual = hashes(path)
        recorded = recorded or actual
        status = "ok" if actual == recorded else "CHANGED since recorded"
        if not found and status == "ok":
            status = "raw"
    rule = (record.get("Provenance") or {}).get("rule")
    line = f"{'  ' * _depth}{artifact} [{status}]"
    line += f" sha256={recorded[:12]}" if recorded else ""
    line += f" rule={rule}" if rule else ""
    key = path.resolve()
    if key in seen and record.get("Sources"):
        yield line + " (sources shown above)"
        return
    yield line
    seen.add(key)
    digests = record.get("SourcesSha256", {})
    for src in record.get("Sources", []):
        yield from trace(src, base, _depth + 1, seen, digests.get(src), hashes)


def verify(root: str | Path, base: str | Path = ".") -> list[str]:
    """Re-hash every file described by a sidecar under ``root`` and its recorded inputs.

    Parameters
    ----------
    root : path-like
        Folder to audit (searched recursively for provenance sidecars).
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).

    Returns
    -------
    list of str
        One line per drift: an output or input whose content differs from what was recorded,
        or that is gone. Empty when everything matches.
    """
    hashes = _Hashes()
    problems = []
    for side in sorted(Path(root).rglob("*.json")):
        if any(part.startswith(".") for part in side.relative_to(root).parts[:-1]):
            continue  # .snakemake/ and LCM's hidden bookkeeping hold no provenance sidecars
        try:
            record = json.loads(side.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        if not isinstance(record, dict) or "Sha256" not in record:
            continue
        if "Output" in record:
            outputs = [side.parent / record["Output"]]
        else:  # sidecars written before "Output" existed: <stem>.<ext> beside <stem>.json
            stem = side.name.split(".")[0]
            outputs = [p for p in side.parent.glob(stem + ".*") if p != side]
        for out in outputs:
            if not out.is_file():
                problems.append(f"{out}: described by {side} but missing")
            elif hashes(out) != record["Sha256"]:
                problems.append(f"{out}: sha256 differs from {side}")
        for src, digest in record.get("SourcesSha256", {}).items():
            path = Path(src) if Path(src).is_absolute() else Path(base) / src
            if not path.is_file():
                problems.append(f"{src}: input of {side} is missing")
            elif hashes(path) != digest:
                problems.append(f"{src}: input of {side} changed since it was used")
    return problems
