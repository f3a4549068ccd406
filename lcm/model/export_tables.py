"""The Parquet tables of ``lcm embed``: written and read here only (no torch import).

Both tables (embeddings; query attention over ROIs) carry in their schema metadata the
checkpoint they come from (``lcm.checkpoint``, absolute), its weights' sha256
(``lcm.weights_sha256``), the atlas (``lcm.atlas``) and, JSON under ``lcm.label``, the diagnosis
of a finetuned checkpoint (``name``, ``levels``, ``positive``, a linear probe's features), null
for a pretrained one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path

CHECKPOINT_KEY = b"lcm.checkpoint"
WEIGHTS_KEY = b"lcm.weights_sha256"
ATLAS_KEY = b"lcm.atlas"
LABEL_KEY = b"lcm.label"


def write_export_table(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str],
    weights_sha256: str,
    atlas: str,
    label: dict[str, Any] | None,
) -> None:
    """Write an embeddings or attention table atomically, with what it was made from.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`lcm.model.export.embedding_frame` or :func:`~lcm.model.export.attention_frame`.
    path : path-like
        The Parquet file.
    checkpoint : path-like
        The checkpoint the values come from (recorded absolute: a relative path means nothing
        once the table is read from another folder).
    weights_sha256 : str
        Its weights' digest.
    atlas : str
        The atlas of the connectomes.
    label : dict or None
        A finetuned checkpoint's diagnosis (the report maps that query's attention, or, for a
        linear probe, the BEI queries it reads weighted by its coefficients); None otherwise.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = {
        CHECKPOINT_KEY: str(Path(checkpoint).resolve()).encode(),
        WEIGHTS_KEY: str(weights_sha256).encode(),
        ATLAS_KEY: atlas.encode(),
        LABEL_KEY: json.dumps(label).encode(),
    }
    table = _typed(pa.Table.from_pandas(frame, preserve_index=False))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _typed(table: Any) -> Any:
    """``table`` with its null-typed columns as strings: identifiers that happen to hold no
    value in these runs (no session, no empty ROI: ``empty_rois`` all ``[]``) were written as
    ``null`` / ``list<null>``, a schema that changed with the data and did not union with a table
    of other runs (the store types them ``string`` / ``list<string>``)."""
    import pyarrow as pa

    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_null(kind):
            kind = pa.string()
        elif pa.types.is_list(kind) and pa.types.is_null(kind.value_type):
            kind = pa.list_(pa.string())
        fields.append(field.with_type(kind))
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def read_attention_table(
    path: str | os.PathLike[str],
) -> tuple[pd.DataFrame, list[str], dict[str, Any] | None]:
    """An ``lcm embed --attention-out`` table, its ROI names and the checkpoint's diagnosis.

    Parameters
    ----------
    path : path-like
        The Parquet table.

    Returns
    -------
    (frame, roi_names, label)
        ``label`` is the ``lcm.label`` metadata (``name``, ``levels``, ``positive``) of a
        finetuned checkpoint, None for a pretrained one.

    Raises
    ------
    InputDataError
        When the file is unreadable or has no ``query`` column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    hint = "Pass the --attention-out files written by `lcm embed` (the embed rule)."
    if not Path(path).is_file():
        # pyarrow reads a folder as a dataset (an empty one: "no 'query' column (has [])"),
        # and names a missing file by its path alone.
        state = "is a folder" if Path(path).is_dir() else "does not exist"
        raise InputDataError(f"Cannot read attention table {path}: it {state}.", hint=hint)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputDataError(f"Cannot read attention table {path}: {exc}", hint=hint) from exc
    frame = table.to_pandas()
    if "query" not in frame.columns:
        raise InputDataError(
            f"{path}: no 'query' column (has {list(frame.columns)[:8]} ...).",
            hint="Pass the --attention-out table of `lcm embed`, not its embeddings table.",
        )
    roi_names = list(frame.columns[list(frame.columns).index("query") + 1 :])
    raw = (table.schema.metadata or {}).get(LABEL_KEY, b"null")
    return frame, roi_names, json.loads(raw)
