"""The store's volume counts read as integers, a missing count as a typed missing value.

Schema 5 stores ``n_volumes`` and ``n_volumes_kept`` as int32, missing where unknown (imported
connectomes have no volumes to count). Read through pandas, an int32 column with a null became
float64: beside a dataset without counts, ``n_volumes`` read 100.0 (and 100 alone), a missing
count NaN, and every CSV of the runs (the data fingerprint's included) said ``100.0``. Every
reader now gives pandas' nullable ``Int32``, whatever the other datasets hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lcm.catalogue import Catalogue
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.store.loader import ConnectomeStream
from lcm.store.read import (
    load_cohort,
    load_streamed_cohort,
    read_connectome_triangles,
    read_run_variables,
    read_runs,
)
from lcm.store.writer import write_connectome_arrays

NAMES = [f"Net_{i:02d}" for i in range(7)]  # 21 edges
EMPTY = Catalogue(variables={}, datasets={})
COUNTS = ["n_volumes", "n_volumes_kept"]


def _store(tmp_path: Path) -> Path:
    """``counted`` (two runs with counts) beside ``imported`` (two matrices without)."""
    store = tmp_path / "store"
    counted = pd.DataFrame(
        {"subject": ["01", "02"], "n_volumes": [100, 120], "n_volumes_kept": [95, 120]}
    )
    imported = pd.DataFrame({"subject": ["03", "04"], "mean_fd": [0.1, np.nan]})
    vecs = np.zeros((2, 21), np.float32)
    write_connectome_arrays(store, "toy", "counted", counted, vecs, NAMES)
    write_connectome_arrays(store, "toy", "imported", imported, vecs, NAMES)
    return store


READERS = {
    "read_runs": lambda s, d: read_runs(s, "toy", d),
    "read_run_variables": lambda s, d: read_run_variables(s, "toy", d, EMPTY)[0],
    "load_cohort": lambda s, d: load_cohort(s, "toy", d, EMPTY).ids,
    "load_streamed_cohort": lambda s, d: load_streamed_cohort(s, "toy", d, EMPTY).ids,
    "stream": lambda s, d: ConnectomeStream(s, "toy", d, shuffle=False).runs,
}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_counts_read_as_integers_beside_a_dataset_without_them(tmp_path: Path, read) -> None:
    store = _store(tmp_path)
    for datasets in (["counted", "imported"], ["imported", "counted"], ["counted"]):
        runs = read(store, datasets).set_index("subject").sort_index()
        for column in COUNTS:
            assert runs[column].dtype == pd.Int32Dtype(), (datasets, column)
        if "imported" in datasets:
            assert runs.loc[["03", "04"], COUNTS].isna().all().all()
            assert runs.loc["03", "n_volumes"] is pd.NA
        assert runs.loc["01", "n_volumes"] == 100 and runs.loc["02", "n_volumes_kept"] == 120
        text = runs[COUNTS].to_csv(sep="\t", na_rep="n/a")
        assert "100\t95" in text and ".0" not in text, text
    # Arithmetic and comparisons see integers and missing values, not NaN.
    runs = read(store, ["counted", "imported"])
    assert (runs["n_volumes"] - runs["n_volumes_kept"]).dropna().tolist() == [5, 0]
    assert (runs["n_volumes"] >= 100).fillna(False).tolist() == [True, True, False, False]


def test_connectomes_of_one_dataset_without_counts_read_them_as_missing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids, _, _ = read_connectome_triangles(store, "toy", "imported")
    assert ids["n_volumes"].dtype == pd.Int32Dtype() and ids["n_volumes"].isna().all()
    ids, _, _ = read_connectome_triangles(store, "toy", "counted")
    assert ids["n_volumes"].tolist() == [100, 120]
    assert ids["n_volumes"].dtype == pd.Int32Dtype()
    assert ids["window"].dtype == np.int32  # never missing: stays a numpy int32


def _as_version_4(store: Path, dataset: str, counts: dict[str, list]) -> Path:
    """Rewrite a partition as schema version 4 wrote it: float64 counts."""
    path = connectome_path(store, "toy", dataset)
    table = pq.read_table(path)
    for column, values in counts.items():
        at = table.schema.get_field_index(column)
        table = table.set_column(at, pa.field(column, pa.float64()), pa.array(values, pa.float64()))
    meta = dict(table.schema.metadata)
    meta[b"lcm.schema_version"] = b"4"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def test_float_counts_of_older_stores_read_as_integers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _as_version_4(store, "counted", {"n_volumes": [100.0, None]})
    runs = read_runs(store, "toy", ["counted", "imported"])
    assert runs["n_volumes"].dtype == pd.Int32Dtype()
    assert runs["n_volumes"].iloc[0] == 100 and runs["n_volumes"].isna().tolist()[1:] == [True] * 3


def test_a_count_that_is_no_whole_number_is_refused_naming_the_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = _as_version_4(store, "counted", {"n_volumes_kept": [95.5, 120.0]})
    with pytest.raises(InputDataError, match="whole numbers") as exc:
        read_runs(store, "toy", ["counted"])
    assert str(path) in str(exc.value) and "n_volumes_kept" in str(exc.value)
    assert "lcm store" in exc.value.hint


def test_an_embeddings_table_keeps_the_counts_integers(tmp_path: Path) -> None:
    """``lcm embed`` writes the cohort's run identifiers beside the embeddings: a user's
    table of a cohort with imported runs held the counts as float64 (100.0)."""
    from lcm.model.export import embedding_frame
    from lcm.model.export_tables import write_export_table

    ids = load_cohort(_store(tmp_path), "toy", ["counted", "imported"], EMPTY).ids
    out = tmp_path / "embeddings.parquet"
    frame = embedding_frame(ids, np.zeros((len(ids), 3), np.float32))
    write_export_table(frame, out, checkpoint=tmp_path, weights_sha256="0", atlas="toy", label=None)
    assert pq.read_schema(out).field("n_volumes").type == pa.int32()
    plain = pd.read_parquet(out)  # the pandas metadata written with it says Int32
    assert plain["n_volumes"].dtype == pd.Int32Dtype()
    text = plain[COUNTS].to_csv(sep="\t", index=False, na_rep="n/a")
    assert text.splitlines() == [
        "n_volumes\tn_volumes_kept",
        "100\t95",
        "120\t120",
        *["n/a\tn/a"] * 2,
    ]
