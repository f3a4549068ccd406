"""The store rule's phenotype sidecar (``participants.json``, an input of the store job since
session 29) as a user runs the workflow: ``snakemake`` by absolute path with a bare PATH, from a
folder outside the repository, the phenotype table in a folder whose name holds spaces, quotes,
``$( )``, backquotes and ``;``. Its ``Units`` convert the stored values; adding, editing or
breaking it reruns the dataset's store job alone; an untouched rerun does nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import ROOT
from helpers.connectome import roi_fc
from helpers.workflow import dataset, planned_jobs, user_config, user_snakemake, write_config

from lcm.io import paths
from lcm.store.phenotype import sidecar_path

pytestmark = [pytest.mark.slow, pytest.mark.hostile]

# Ages in months that read as years too (inside the catalogue's [5, 100]): without the
# sidecar's Units they are stored as written, with them divided by 12.
PARTICIPANTS = "participant_id\tage\tgroup\nsub-01\t60\t1\nsub-02\t84\t2\nsub-03\t96\t1\n"
CODING = {
    "id_column": "participant_id",
    "columns": {
        "age": {"column": "age"},
        "parkinsons": {"column": "group", "map": {"1": "control", "2": "PD"}},
    },
}


def hostile_folder(markers: Path) -> str:
    """A folder name (relative to the working folder) that runs ``touch`` if a shell ever reads
    it unquoted or half quoted."""
    marker = markers / "pwned"
    return f'kids\' "data" $(touch {marker}) `touch {marker}`;touch {marker}; $HOME &'


def stored(results: Path) -> pd.DataFrame:
    """The dataset's stored variables, by subject."""
    table = pd.read_parquet(paths.variables_path(results / "store", "kids"))
    return table.sort_values("subject").reset_index(drop=True)


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_participants_json_at_a_hostile_path_converts_and_reruns_only_the_store(
    tmp_path: Path,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    work = tmp_path / "my study"  # the working folder, outside the repository
    conn = work / "conn"
    conn.mkdir(parents=True)
    for i in (1, 2, 3):
        np.save(conn / f"sub-0{i}.npy", roi_fc(seed=i))
    (conn / "listing.tsv").write_text(
        "participant_id\tpath\n" + "".join(f"0{i}\tsub-0{i}.npy\n" for i in (1, 2, 3))
    )
    folder = hostile_folder(markers)
    table = Path(folder) / "participants.tsv"  # relative to the working folder, as typed
    (work / table).parent.mkdir(parents=True)
    (work / table).write_text(PARTICIPANTS)
    sidecar = work / sidecar_path(table)
    assert sidecar.name == "participants.json"
    catalogue = yaml.safe_load((ROOT / "config" / "variables.yaml").read_text())
    catalogue["datasets"] = {"kids": CODING}
    (work / folder / "variables.yaml").write_text(yaml.safe_dump(catalogue))
    cfg = user_config({"kids": dataset("connectome", Path("conn/listing.tsv"), table)})
    cfg["variables"] = f"{folder}/variables.yaml"
    config = write_config(work, cfg)
    # The store job's outputs: its partitions (kept through a failed rerun, update() outputs)
    # and the missingness report (deleted by one: the job stays due; workflow/rules/store.smk).
    store = Path("results") / "store"
    targets = [str(paths.variables_path(store, "kids")), str(paths.missingness_path(store, "kids"))]
    args = (*targets, "--configfile", str(config))
    results = work / "results"
    log = results / "logs" / "store" / "kids.log"
    start = time.monotonic()

    # 1. No participants.json: the store runs, the ages as written.
    proc = user_snakemake(work, *args)
    assert proc.returncode == 0, output(proc)[-5000:]
    first = stored(results)
    assert first["subject"].tolist() == ["01", "02", "03"]
    assert first["age"].tolist() == [60.0, 84.0, 96.0]
    assert first["parkinsons"].tolist() == ["control", "PD", "control"]
    assert planned_jobs(user_snakemake(work, *args, "-n")) == {}

    # 2. Added later, with the ages' Units: the store job alone is due (not the connectome
    # jobs above it), and reruns with the ages in years.
    levels = {"1": "healthy control", "2": "Parkinson's disease"}
    columns = {"age": {"Description": "Age", "Units": "months"}, "group": {"Levels": levels}}
    sidecar.write_text(json.dumps(columns))
    assert planned_jobs(user_snakemake(work, *args, "-n")) == {"store": 1}
    proc = user_snakemake(work, *args)
    assert proc.returncode == 0, output(proc)[-5000:]
    second = stored(results)
    np.testing.assert_allclose(second["age"], first["age"] / 12)
    assert second["parkinsons"].tolist() == ["control", "PD", "control"]
    assert "age: months -> years (x 1/12)" in log.read_text()
    (part,) = (results / "store" / "connectomes").rglob("*.parquet")
    provenance = json.loads(pq.read_schema(part).metadata[b"lcm.provenance"])
    assert provenance["unit_conversions"] == {"age": "age: months -> years (x 1/12)"}
    assert provenance["settings"]["phenotype_sidecar_sha256"]

    # 3. An untouched rerun does nothing.
    proc = user_snakemake(work, *args)
    assert proc.returncode == 0 and "Nothing to be done" in output(proc), output(proc)[-3000:]

    # 4. Its Units edited: the store job alone again, the ages as written again.
    columns["age"]["Units"] = "years"
    sidecar.write_text(json.dumps(columns))
    assert planned_jobs(user_snakemake(work, *args, "-n")) == {"store": 1}
    proc = user_snakemake(work, *args)
    assert proc.returncode == 0, output(proc)[-5000:]
    assert stored(results)["age"].tolist() == [60.0, 84.0, 96.0]

    # 5. Broken (a trailing comma): the job fails naming the file, the store stays as it was,
    # and the job stays due.
    partitions = {p: p.read_bytes() for p in (results / "store").rglob("*.parquet")}
    sidecar.write_text(json.dumps(columns)[:-1] + ",}")
    proc = user_snakemake(work, *args)
    assert proc.returncode != 0
    # The path as the config gives it (relative), in the job's own log.
    assert f"Phenotype sidecar {sidecar_path(table)} is not valid JSON" in log.read_text()
    assert {p: p.read_bytes() for p in (results / "store").rglob("*.parquet")} == partitions
    assert not (work / targets[1]).exists()
    assert planned_jobs(user_snakemake(work, *args, "-n")) == {"store": 1}
    elapsed = time.monotonic() - start

    assert not list(markers.iterdir()), f"injected commands ran: {list(markers.iterdir())}"
    print(f"participants.json at a hostile path, 5 store runs: {elapsed:.0f} s")
