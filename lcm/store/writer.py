"""Write one dataset's partitions of the Parquet feature store.

Layout (hive partitioning; partition columns live in folder names, not in the files)::

    <store>/connectomes/atlas=<atlas>/dataset=<dataset>/part-0.parquet   one row per run
    <store>/variables/dataset=<dataset>/part-0.parquet                  one row per participant
    <store>/reports/missingness_dataset-<dataset>.tsv

Adding a dataset rewrites only its own partitions; each file is written atomically.
Schema version, atlas, ROI names, catalogue and provenance sit in the Parquet key-value metadata.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path, write_tsv
from lcm.io.provenance import environment
from lcm.store.catalogue import Catalogue
from lcm.store.layout import matrix_to_vec, n_edges

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
ID_COLUMNS = ("subject", "session", "task", "run", "run_key", "site")
QC_COLUMNS = ("n_volumes", "n_volumes_kept", "mean_fd", "t_r")


def connectome_path(store: str | Path, atlas: str, dataset: str) -> Path:
    """Parquet file holding ``dataset``'s connectomes for ``atlas``."""
    return Path(store) / "connectomes" / f"atlas={atlas}" / f"dataset={dataset}" / "part-0.parquet"


def variables_path(store: str | Path, dataset: str) -> Path:
    """Parquet file holding ``dataset``'s brain–environment variables."""
    return Path(store) / "variables" / f"dataset={dataset}" / "part-0.parquet"


def read_relmat(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read an XCP-D-style ``relmat.tsv`` (first column ``Node``) -> (ROI names, matrix)."""
    df = pd.read_csv(path, sep="\t", index_col=0)
    names = [str(c) for c in df.columns]
    if [str(i) for i in df.index] != names:
        raise InputDataError(f"{path}: row and column ROI names differ; not a relmat table.")
    return names, df.to_numpy(dtype=np.float64)


def write_connectomes(
    store: str | Path,
    atlas: str,
    dataset: str,
    qc: pd.DataFrame,
    phenotype: pd.DataFrame,
    provenance: dict | None = None,
) -> Path:
    """Write the connectome partition of ``dataset`` from its connectome-stage QC table.

    Parameters
    ----------
    store : path-like
        Store root.
    atlas, dataset : str
    qc : pandas.DataFrame
        QC table of the connectome stage (one row per run; ``included``, ``relmat`` path, ...).
    phenotype : pandas.DataFrame
        Output of :func:`lcm.store.phenotype.read_phenotype` (for the ``site`` column).
    provenance : dict, optional
        Extra key-value metadata (settings, config hash).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    runs = qc[qc["included"].astype(str).str.lower().isin(["true", "1"])].reset_index(drop=True)
    if runs.empty:
        raise InputDataError(
            f"Dataset {dataset!r}: no included run in its QC table; nothing to store.",
            hint="Check the exclusion reasons in the connectome QC table.",
        )
    sites = dict(zip(phenotype["subject"], phenotype["site"], strict=True))
    roi_names: list[str] | None = None
    vectors = []
    for path in runs["relmat"]:
        names, mat = read_relmat(path)
        if roi_names is None:
            roi_names = names
        elif names != roi_names:
            raise InputDataError(
                f"{path}: ROI names differ from the dataset's other runs; one atlas per partition.",
                hint="Re-run the connectome stage of this dataset with one atlas.",
            )
        vectors.append(matrix_to_vec(mat).astype(np.float32))
    assert roi_names is not None  # runs is non-empty
    _check_store_atlas(store, atlas, roi_names, dataset)
    n_e = n_edges(len(roi_names))
    flat = pa.array(np.concatenate(vectors), type=pa.float32())
    columns = {
        "subject": runs["subject"].astype(str),
        "session": runs["session"].fillna("").astype(str) if "session" in runs else "",
        "task": runs["task"].astype(str),
        "run": runs["run"].fillna("").astype(str),
        "run_key": runs["run_key"].astype(str),
        "site": [str(sites.get(s, "")) for s in runs["subject"].astype(str)],
    }
    table = pa.table(
        {
            **{
                k: pa.array(list(v) if not isinstance(v, str) else [v] * len(runs), pa.string())
                for k, v in columns.items()
            },
            **{
                k: pa.array(pd.to_numeric(runs[k], errors="coerce"), pa.float64())
                for k in QC_COLUMNS
            },
            "connectome": pa.FixedSizeListArray.from_arrays(flat, n_e),
        }
    )
    meta = {
        "lcm.schema_version": SCHEMA_VERSION,
        "lcm.atlas": atlas,
        "lcm.n_rois": str(len(roi_names)),
        "lcm.roi_names": json.dumps(roi_names),
        "lcm.layout": "strict upper triangle (numpy.triu_indices(R, k=1)) of Pearson r, float32",
        "lcm.provenance": json.dumps({**environment(), **(provenance or {})}, default=str),
    }
    table = table.replace_schema_metadata(meta)
    out = connectome_path(store, atlas, dataset)
    with atomic_path(out) as tmp:
        # Row groups of ~1,000 runs let loaders stream without reading a whole partition.
        pq.write_table(table, tmp, row_group_size=1024, compression="zstd")
    log.info("stored %d runs of %s (%d ROIs) in %s", len(runs), dataset, len(roi_names), out)
    return out


def write_variables(
    store: str | Path, dataset: str, phenotype: pd.DataFrame, catalogue: Catalogue
) -> Path:
    """Write the variables partition of ``dataset`` (typed columns, catalogue in metadata)."""
    fields = [pa.field("subject", pa.string()), pa.field("site", pa.string())]
    for name, var in catalogue.variables.items():
        fields.append(pa.field(name, pa.float64() if var.is_numeric else pa.string()))
    table = pa.Table.from_pandas(
        phenotype[[f.name for f in fields]], schema=pa.schema(fields), preserve_index=False
    )
    table = table.replace_schema_metadata(
        {
            "lcm.schema_version": SCHEMA_VERSION,
            "lcm.catalogue": json.dumps(catalogue.to_dict()),
            "lcm.provenance": json.dumps(environment(), default=str),
        }
    )
    out = variables_path(store, dataset)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return out


def write_missingness(store: str | Path, dataset: str, report: pd.DataFrame) -> Path:
    """Write the per-variable missingness report of ``dataset``."""
    out = Path(store) / "reports" / f"missingness_dataset-{dataset}.tsv"
    write_tsv(out, report)
    return out


def _check_store_atlas(store: str | Path, atlas: str, roi_names: list[str], dataset: str) -> None:
    """Refuse a dataset whose ROIs differ from those already stored under the same atlas."""
    folder = Path(store) / "connectomes" / f"atlas={atlas}"
    for other in sorted(folder.glob("dataset=*/part-0.parquet")):
        if other.parent.name == f"dataset={dataset}":
            continue
        meta = pq.read_schema(other).metadata or {}
        stored = json.loads(meta.get(b"lcm.roi_names", b"[]"))
        if stored != roi_names:
            raise InputDataError(
                f"Dataset {dataset!r}: its {len(roi_names)} ROIs differ from the "
                f"{len(stored)} ROIs stored for atlas {atlas!r} in {other}.",
                hint="Parcellate every dataset with the same atlas, or use another atlas name.",
            )
        return
