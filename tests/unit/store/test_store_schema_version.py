"""A store partition written by a newer LCM is refused, naming the file and the fix.

Readers read every older schema version (lcm.store.writer.SCHEMA_VERSION says how), but until
this check none read ``lcm.schema_version`` at all: a partition whose layout a later version
changed would have been decoded as this version's, silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.catalogue import Catalogue
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path
from lcm.store.loader import ConnectomeStream
from lcm.store.read import load_cohort, read_runs
from lcm.store.writer import SCHEMA_VERSION, write_connectome_arrays

NAMES = [f"Net_{i:02d}" for i in range(7)]


def _store(tmp_path: Path, version: bytes | None) -> Path:
    """A two-run partition of dataset ``ds``, its schema version rewritten (None: key removed)."""
    store = tmp_path / "results" / "store"
    runs = pd.DataFrame({"subject": ["01", "02"], "n_volumes": [100, 120]})
    write_connectome_arrays(store, "toy", "ds", runs, np.zeros((2, 21), np.float32), NAMES)
    path = connectome_path(store, "toy", "ds")
    table = pq.read_table(path)
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"lcm.schema_version"}
    if version is not None:
        meta[b"lcm.schema_version"] = version
    pq.write_table(table.replace_schema_metadata(meta), path)
    return store


@pytest.mark.parametrize(
    "read",
    [
        lambda store: read_runs(store, "toy", ["ds"]),
        lambda store: load_cohort(store, "toy", ["ds"], Catalogue(variables={}, datasets={})),
        lambda store: ConnectomeStream(store, "toy", ["ds"], shuffle=False),
    ],
    ids=["read_runs", "load_cohort", "stream"],
)
def test_a_partition_of_a_newer_schema_is_refused(tmp_path: Path, read) -> None:
    newer = str(int(SCHEMA_VERSION) + 1).encode()
    store = _store(tmp_path, newer)
    with pytest.raises(InputDataError, match="newer than the") as exc:
        read(store)
    assert str(connectome_path(store, "toy", "ds")) in str(exc.value)
    assert "upgrade LCM" in exc.value.hint


@pytest.mark.parametrize("version", [SCHEMA_VERSION.encode(), b"4", None])
def test_this_and_older_versions_read(tmp_path: Path, version: bytes | None) -> None:
    store = _store(tmp_path, version)
    assert read_runs(store, "toy", ["ds"])["n_volumes"].tolist() == [100, 120]


def test_a_version_that_is_no_number_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path, b"5-beta")
    with pytest.raises(InputDataError, match="is not a number"):
        read_runs(store, "toy", ["ds"])
