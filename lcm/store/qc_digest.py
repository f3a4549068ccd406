"""The hash of a QC table that a dataset's store partitions record (``qc_table_sha256``).

A partition's ``lcm.provenance`` records the settings it was written from, and a rerun whose
partition holds the same rows and settings keeps the committed file, its bytes and commit id
(:func:`lcm.store.commit.same_content`): what is downstream of it stays current. ``lcm store``
stores only its ``--dataset``'s rows of a QC table (:func:`lcm.store.writer.dataset_rows`), so
the hash covers those rows alone: a table ``lcm connectome collect`` wrote of several datasets
changed in another dataset's rows left this one's runs as they were, yet its whole-file hash
rewrote the partitions with a new commit id. The table's file itself is still named with its
sha256 in the partition's sidecar (``SourcesSha256``: the file read, as it was).
"""

from __future__ import annotations

import hashlib
import json
import os

from lcm.io.provenance import sha256_file
from lcm.io.qc_table import DATASET, read_qc_table


def qc_rows_sha256(path: str | os.PathLike[str], dataset: str) -> str:
    """The sha256 of the rows of ``dataset`` in the QC table at ``path``.

    A table of that dataset alone (the connectome stage writes one per dataset) hashes as
    its file: the value partitions recorded before, so no store is rewritten for it. A table
    of several datasets hashes as the UTF-8 bytes of a compact JSON list (no spaces between
    separators, non-ASCII kept): the header's column names, then each row of ``dataset`` in
    the file's order, every cell the text written (:func:`lcm.io.qc_table.read_qc_table`,
    untyped). Another dataset's rows, and where they sit, leave it unchanged.

    Parameters
    ----------
    path : path-like
        The QC table (``--qc-table``).
    dataset : str
        The dataset stored (``--dataset``).

    Returns
    -------
    str
        64 hex digits.
    """
    qc = read_qc_table(path)
    values = qc[DATASET].astype(str)
    if (values == dataset).all():
        return sha256_file(path)
    rows = qc[values == dataset]
    cells = [list(map(str, qc.columns)), *rows.astype(str).values.tolist()]
    text = json.dumps(cells, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
