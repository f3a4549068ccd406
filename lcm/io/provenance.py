"""Provenance records: ``dataset_description.json`` for derivative folders and per-file sidecars.

A sidecar sits next to each output (same name, ``.json``) and lists its direct inputs in
``Sources`` with their sha256, so a metric or checkpoint can be traced back to raw files.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import lcm
from lcm.io.atomic import write_json

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> dict[str, Any]:
    """Commit and dirty flag of the LCM checkout, or ``None`` values outside a git checkout."""
    root = Path(lcm.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def environment() -> dict[str, Any]:
    """Versions and host facts recorded in every provenance record."""
    return {
        "lcm_version": lcm.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        **{f"git_{k}": v for k, v in git_commit().items()},
    }


def write_dataset_description(
    root: str | Path, name: str, *, container: str | None = None, extra: dict | None = None
) -> Path:
    """Write ``dataset_description.json`` of a derivative folder with ``GeneratedBy``."""
    generated_by: dict[str, Any] = {
        "Name": "LCM",
        "Version": lcm.__version__,
        "CodeURL": lcm.CODE_URL,
    }
    if container:
        generated_by["Container"] = {"Type": "docker", "Tag": container}
    desc = {
        "Name": name,
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        **(extra or {}),
    }
    path = Path(root) / "dataset_description.json"
    write_json(path, desc)
    return path


def sidecar_path(path: str | Path) -> Path:
    """``a/b/name.tsv`` (or ``.nii.gz``) -> ``a/b/name.json``."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".json")


def write_sidecar(output: str | Path, sources: list[str | Path], **metadata: Any) -> Path:
    """Write the JSON sidecar of ``output`` listing ``sources`` with their sha256.

    Parameters
    ----------
    output : path-like
        The file described; it must already exist (its sha256 is recorded).
    sources : list of path-like
        Direct inputs of ``output``.
    **metadata
        Any further keys (settings, QC values, ``RepetitionTime`` ...).
    """
    record = {
        **metadata,
        "Sources": [str(s) for s in sources],
        "SourcesSha256": {str(s): sha256_file(s) for s in sources if Path(s).is_file()},
        "Sha256": sha256_file(output),
        "Provenance": environment(),
    }
    side = sidecar_path(output)
    write_json(side, record)
    return side
