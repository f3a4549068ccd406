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


def source_path(source: str | Path, base: str | Path = ".") -> Path:
    """Where a recorded source lies: a relative path is relative to ``base``, not the cwd."""
    path = Path(source)
    return path if path.is_absolute() else Path(base) / path


def read_record(artifact: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The provenance sidecar of ``artifact`` and its content, or None when it has none."""
    path = Path(artifact)
    # Last, the name older LCM gave, cut at the first dot (emb.attn.parquet -> emb.json); the
    # record's Output says whether it describes this file.
    legacy = path.with_name(path.name.split(".")[0] + ".json")
    for side in (provenance_path(path), sidecar_path(path), legacy):
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


def trace(artifact: str | Path, base: str | Path = ".") -> Iterator[str]:
    """Yield indented lines: ``artifact``, then its sources from sidecars, recursively.

    Each line is ``path [status] sha256=<first 12> rule=<rule>``; status is ``ok`` (the file
    still has the recorded hash), ``CHANGED since recorded``, ``missing``, ``raw`` (a file
    without a sidecar: a lineage root) or ``dir``. ``artifact`` is judged against its own
    sidecar; each source against the sha256 its consumer recorded when it used it (as
    :func:`verify` does), so a source rebuilt after its consumer was made shows as changed.
    A source already shown is not expanded again.

    Parameters
    ----------
    artifact : path-like
        Any LCM output with a provenance sidecar (a relative path is relative to the cwd).
    base : path-like
        Folder that relative source paths are relative to (where the workflow ran).
    """
    yield from _trace(str(artifact), Path(artifact), base, None, 0, set(), _Hashes())


def _trace(
    label: str,
    path: Path,
    base: str | Path,
    expected: str | None,
    depth: int,
    seen: set[Path],
    hashes: _Hashes,
) -> Iterator[str]:
    """Lines of :func:`trace` for ``path``, which its consumer recorded with ``expected``."""
    found = read_record(path) if path.is_file() else None
    record = found[1] if found else {}
    # A source's own sidecar describes its current build; what matters is whether it is still
    # the file its consumer used. Its own record is the fallback when the consumer has none.
    recorded = expected or record.get("Sha256")
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
    line = f"{'  ' * depth}{label} [{status}]"
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
        yield from _trace(
            src, source_path(src, base), base, digests.get(src), depth + 1, seen, hashes
        )


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
            path = source_path(src, base)
            if not path.is_file():
                problems.append(f"{src}: input of {side} is missing")
            elif hashes(path) != digest:
                problems.append(f"{src}: input of {side} changed since it was used")
    return problems
