"""What a workflow job reads of the variable catalogue, as a digest (a rule param).

The catalogue is one file of two parts: the variables (kind, levels, range, units, domain),
which every job from the store on reads and which the store's partitions and a checkpoint
record, and each dataset's coding of its phenotype columns (``datasets.<name>``), which only
the jobs of that dataset's data read. As a plain input of those rules its modification time
reran them all for any edit: a new cohort's coding, or a fix to one downstream column, reran
pretraining and everything after it. The rules take the file as ``ancient`` and carry, as a
param, :func:`catalogue_digest` of the part the job reads; a change there still reruns it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

# The section of per-dataset codings; every other top-level key is read by every job.
CODINGS = "datasets"


@cache
def _document(data: bytes) -> dict[str, Any] | str:
    """The catalogue as YAML reads it, or a digest of its bytes when it is no mapping (of
    ``datasets`` a mapping too). Cached by content: Snakemake asks once per job."""
    try:
        document = yaml.safe_load(data.decode())
    except (UnicodeDecodeError, yaml.YAMLError):
        document = None
    if not isinstance(document, dict) or not isinstance(document.get(CODINGS, {}), dict):
        return hashlib.sha256(data).hexdigest()
    return document


def catalogue_digest(path: str | os.PathLike[str], datasets: Iterable[str]) -> str:
    """sha256 of what a job of ``datasets`` reads of the catalogue at ``path``.

    Parameters
    ----------
    path : path-like
        The catalogue YAML (config ``variables``).
    datasets : iterable of str
        The datasets whose data the job reads: the store's dataset, the pretraining datasets,
        a task's dataset.

    Returns
    -------
    str
        Hex sha256 of the whole catalogue but the codings of other datasets: every top-level
        key but ``datasets`` (the variables), and of ``datasets`` the entries of ``datasets``
        (one absent as null: adding its coding reruns its jobs). A file that cannot be read as
        a YAML mapping counts whole (its bytes): any edit reruns the jobs, which name the
        problem; a missing file counts as such.
    """
    try:
        document = _document(Path(path).read_bytes())
    except OSError as exc:  # missing or unreadable: the jobs that read it name it
        document = f"unreadable: {exc.strerror}"
    if isinstance(document, str):
        part: Any = document
    else:
        # As names: YAML reads a dataset named 123 as a number.
        codings = {str(k): v for k, v in document.get(CODINGS, {}).items()}
        part = {
            "catalogue": {k: v for k, v in document.items() if k != CODINGS},
            CODINGS: {name: codings.get(name) for name in sorted(set(datasets))},
        }
    text = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
