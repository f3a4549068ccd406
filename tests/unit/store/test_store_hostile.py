"""`lcm store` killed mid-write, written twice at once, or fed damaged files (issue 14).

The kill tests run ``python -m lcm store`` as a subprocess on an input large enough that writing
takes a moment, and ``kill -9`` it at random moments and, deterministically, at the named points
of the commit (``LCM_STORE_PAUSE_AT``, lcm.store.commit.pause_point). After every kill LCM's
reader must see the complete old store or the complete new one, judged from the data (row count
and phenotype values); a rerun then succeeds and leaves no temporary or staged file.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.catalogue import load_catalogue
from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.io.paths import connectome_path, variables_path
from lcm.store.commit import PAUSE_ENV, journal_path
from lcm.store.loader import ConnectomeStream
from lcm.store.read import load_cohort, read_runs

pytestmark = pytest.mark.hostile

ATLAS = "toy"
N_ROIS = 60
OLD, NEW = (100, 20.0), (140, 60.0)  # (runs = participants, first age) of the two versions
CATALOGUE = """variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [0, 120]}
datasets:
  alpha: {id_column: participant_id, site_column: site, columns: {age: {column: age}}}
  beta: {id_column: participant_id, site_column: site, columns: {age: {column: age}}}
"""
COMMITTED = {  # every file of a committed dataset 'alpha' (the lock file stays, by design)
    "_lcm/dataset=alpha/.lcm.lock",
    "connectomes/atlas=toy/dataset=alpha/_part-0.prov.json",
    "connectomes/atlas=toy/dataset=alpha/part-0.parquet",
    "reports/missingness_dataset-alpha.json",
    "reports/missingness_dataset-alpha.tsv",
    "variables/dataset=alpha/_part-0.prov.json",
    "variables/dataset=alpha/part-0.parquet",
}


def _inputs(root: Path, version: tuple[int, float], dataset: str = "alpha") -> tuple[Path, Path]:
    """QC table and phenotype of one version: every run reads the same relmat (slow enough)."""
    n, age0 = version
    root.mkdir(parents=True, exist_ok=True)
    names = [f"roi{i}" for i in range(N_ROIS)]
    mat = np.corrcoef(np.random.default_rng(n).standard_normal((100, N_ROIS)).T)
    relmat = root / "relmat.tsv"
    pd.DataFrame(mat, index=pd.Index(names, name="Node"), columns=names).to_csv(relmat, sep="\t")
    ids = [f"{i:04d}" for i in range(n)]
    qc = pd.DataFrame(
        {
            "dataset": dataset,  # the columns every reader requires (lcm.io.qc_table)
            "subject": ids,
            "session": "",
            "task": "rest",
            "run": "1",
            "included": "True",
            "run_key": [f"sub-{s}_task-rest_run-1" for s in ids],
            "reason": "",
            "mean_fd": "0.1",
            "relmat": str(relmat),
        }
    )
    qc.to_csv(root / "qc.tsv", sep="\t", index=False)
    pheno = pd.DataFrame({"participant_id": ids, "site": "S1", "age": age0 + np.arange(n) % 30})
    pheno.to_csv(root / "pheno.tsv", sep="\t", index=False)
    return root / "qc.tsv", root / "pheno.tsv"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("store_inputs")
    (root / "variables.yaml").write_text(CATALOGUE)
    old_qc, old_pheno = _inputs(root / "old", OLD)
    new_qc, new_pheno = _inputs(root / "new", NEW)
    # Another dataset's table: `lcm store --dataset beta` refuses alpha's.
    beta_qc, beta_pheno = _inputs(root / "beta", OLD, dataset="beta")
    return {
        "catalogue": root / "variables.yaml",
        "old_qc": old_qc,
        "old_pheno": old_pheno,
        "new_qc": new_qc,
        "new_pheno": new_pheno,
        "beta_qc": beta_qc,
        "beta_pheno": beta_pheno,
    }


def _args(world: dict[str, Path], store: Path, which: str, dataset: str = "alpha") -> list[str]:
    return [
        "store",
        "--dataset",
        dataset,
        "--qc-table",
        str(world[f"{which}_qc"]),
        "--phenotype",
        str(world[f"{which}_pheno"]),
        "--catalogue",
        str(world["catalogue"]),
        "--atlas",
        ATLAS,
        "--store-dir",
        str(store),
    ]


def _store(world: dict[str, Path], store: Path, which: str, dataset: str = "alpha") -> None:
    assert main(_args(world, store, which, dataset)) == 0


def _seen(world: dict[str, Path], store: Path) -> str:
    """'old' or 'new': which complete version LCM's reader (pretrain's load_cohort) returns."""
    cohort = load_cohort(store, ATLAS, ["alpha"], load_catalogue(world["catalogue"]))
    ages = cohort.variables["age"].to_numpy()
    for name, (n, age0) in (("old", OLD), ("new", NEW)):
        if len(cohort) == n and np.array_equal(ages, age0 + np.arange(n) % 30):
            assert cohort.fc.shape == (n, N_ROIS, N_ROIS)
            return name
    raise AssertionError(f"mixed store: {len(cohort)} runs with ages from {ages.min()}")


def _files(store: Path) -> set[str]:
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()}


def _duckdb_runs(store: Path) -> int:
    """The README's DuckDB glob over the store (fails on any stray file matching *.parquet)."""
    query = (
        f"SELECT count(*) FROM read_parquet('{store}/connectomes/*/*/*.parquet', "
        f"hive_partitioning = true) AS c JOIN read_parquet('{store}/variables/*/*.parquet', "
        "hive_partitioning = true) AS v USING (dataset, subject)"
    )
    return duckdb.sql(query).fetchall()[0][0]


class _Writer:
    """``python -m lcm store`` in a subprocess; its stderr is collected on a thread."""

    def __init__(self, args: list[str], pause: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
        if pause:
            env[PAUSE_ENV] = pause
        # SIGINT as a terminal delivers it: a background job (CI's) starts with SIGINT ignored,
        # which Python then keeps ignoring (no KeyboardInterrupt).
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lcm", *args],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, marker: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(marker in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {marker!r} in {self.lines}"
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.thread.join(timeout=5)
        return rc


@pytest.mark.slow
def test_kill_9_mid_write_leaves_old_or_new_store_never_a_mix(world, tmp_path: Path) -> None:
    store, snapshot = tmp_path / "store", tmp_path / "old_store"
    _store(world, snapshot, "old")
    assert _seen(world, snapshot) == "old"
    rng = np.random.default_rng(14)
    # Named points of the commit, then random moments after the writer started staging.
    points = ["staged", "journal", "renamed-1"] + [f"{d:.2f}s" for d in rng.uniform(0, 0.4, 2)]
    expected = {"staged": "old", "journal": "new", "renamed-1": "new"}
    partition = connectome_path(store, ATLAS, "alpha").parent
    for point in points:
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(snapshot, store)
        if point in expected:
            writer = _Writer(_args(world, store, "new"), pause=point)
            writer.wait_for(f"LCM_STORE_PAUSED {point}")
        else:
            writer = _Writer(_args(world, store, "new"))
            deadline = time.monotonic() + 120
            while not any(".lcmstaged-" in p.name for p in partition.iterdir()):
                assert writer.proc.poll() is None and time.monotonic() < deadline, writer.lines
                time.sleep(0.01)
            time.sleep(float(point[:-1]))
        writer.kill()
        if point == "renamed-1":
            # The reported state: new connectomes beside the old variables, journal pending.
            assert len(pd.read_parquet(connectome_path(store, ATLAS, "alpha"))) == NEW[0]
            assert pd.read_parquet(variables_path(store, "alpha"))["age"].min() == OLD[1]
            assert journal_path(store, "alpha").is_file()
        # No stray file matches the README's globs, whatever the kill left behind.
        assert _duckdb_runs(store) in (OLD[0], NEW[0]), point
        seen = _seen(world, store)
        assert seen == expected.get(point, seen) and seen in ("old", "new"), (point, seen)
        # Files planted as a pre-fix atomic write left them; the rerun removes them too.
        planted = connectome_path(store, ATLAS, "alpha").parent / ".part-0.parquet.x1y2.tmp.parquet"
        planted.write_bytes(b"PAR1")
        _store(world, store, "new")
        assert _seen(world, store) == "new"
        assert _files(store) == COMMITTED, point
        assert _duckdb_runs(store) == NEW[0]


@pytest.mark.parametrize("point", ["journal", "renamed-1"])
def test_ctrl_c_after_the_journal_finishes_the_commit(world, tmp_path: Path, point: str) -> None:
    """Ctrl-C between the journal and the last rename discarded the staged files: new
    connectomes stood beside old variables, refused by readers until the next lcm store."""
    store = tmp_path / "store"
    _store(world, store, "old")
    writer = _Writer(_args(world, store, "new"), pause=point)
    writer.wait_for(f"LCM_STORE_PAUSED {point}")
    assert writer.kill(signal.SIGINT) == 130
    assert not journal_path(store, "alpha").exists()  # finished at once, not left pending
    assert _seen(world, store) == "new" and _files(store) == COMMITTED


@pytest.mark.parametrize(
    "planted", ["variables/dataset=alpha/part-0.parquet", "reports/missingness_dataset-alpha.tsv"]
)
def test_a_first_store_keeps_a_users_file_at_an_output_path(
    world, tmp_path: Path, capsys: pytest.CaptureFixture[str], planted: str
) -> None:
    """Before a dataset's first commit no lock of LCM's guards its paths: a user's file there
    was replaced without a word. A store of an LCM before the commit journal (no _lcm/) is
    still rewritten: its partitions say they are LCM's."""
    store = tmp_path / "store"
    mine = store / planted
    mine.parent.mkdir(parents=True)
    mine.write_text("my own notes\n")
    capsys.readouterr()
    assert main(_args(world, store, "old")) == 6
    err = capsys.readouterr().err
    assert f"{mine} exists and LCM did not write it" in err and "--store-dir" in err
    assert mine.read_text() == "my own notes\n" and not (store / "connectomes").exists()
    mine.unlink()
    _store(world, store, "old")
    shutil.rmtree(store / "_lcm")
    _store(world, store, "new")
    assert _seen(world, store) == "new"


def test_partitions_snakemake_put_back_after_a_kill_are_named_and_rewritten(
    world, tmp_path: Path
) -> None:
    """Killed between its renames, a store job's old partitions are copied back by Snakemake
    (update() outputs) over the one renamed, its journal pending: the next reader rolled it
    forward, pairing old connectomes with new variables (MixedStoreError). The commit undone
    from outside is dropped instead: the old store reads whole; the next `lcm store` writes the
    new one whole."""
    store = tmp_path / "store"
    _store(world, store, "old")
    parts = [connectome_path(store, ATLAS, "alpha"), variables_path(store, "alpha")]
    backups = {path: path.read_bytes() for path in parts}
    writer = _Writer(_args(world, store, "new"), pause="renamed-1")
    writer.wait_for("LCM_STORE_PAUSED renamed-1")
    writer.kill()
    for path, data in backups.items():  # Snakemake's restore of its backups
        path.write_bytes(data)
    assert journal_path(store, "alpha").is_file()
    assert _seen(world, store) == "old"
    assert not journal_path(store, "alpha").exists() and _files(store) == COMMITTED
    _store(world, store, "new")
    assert _seen(world, store) == "new"
    assert _files(store) == COMMITTED
    # The same state met by the next store job before any reader: journal finished, rewritten.
    _store(world, store, "old")
    backups = {path: path.read_bytes() for path in parts}
    writer = _Writer(_args(world, store, "new"), pause="renamed-1")
    writer.wait_for("LCM_STORE_PAUSED renamed-1")
    writer.kill()
    for path, data in backups.items():
        path.write_bytes(data)
    _store(world, store, "new")
    assert _seen(world, store) == "new"
    assert not journal_path(store, "alpha").exists() and _files(store) == COMMITTED


def test_users_hidden_tmp_files_beside_partitions_are_kept(world, tmp_path: Path) -> None:
    """Every `lcm store` deleted any hidden '.tmp' file in its partition folders as a killed
    writer's leftover; only LCM's own temporary names are removed."""
    store = tmp_path / "store"
    _store(world, store, "old")
    folder = connectome_path(store, ATLAS, "alpha").parent
    mine = [folder / ".notes.tmp", folder / ".my-edits.tmp.bak", folder / ".old.tmp"]
    for path in mine:
        path.write_text("mine")
    _store(world, store, "new")
    assert all(p.read_text() == "mine" for p in mine)


def test_mixed_store_is_refused_by_pretrain_reader(world, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _store(world, store, "old")
    old_variables = variables_path(store, "alpha").read_bytes()
    _store(world, store, "new")
    # New connectomes beside old variables and no journal to finish (e.g. restored by hand).
    variables_path(store, "alpha").write_bytes(old_variables)
    catalogue = load_catalogue(world["catalogue"])
    one_line = r"come from different `lcm store` runs of dataset 'alpha'[^\n]*refusing to mix"
    with pytest.raises(InputDataError, match=one_line) as info:
        load_cohort(store, ATLAS, ["alpha"], catalogue)
    assert str(connectome_path(store, ATLAS, "alpha")) in info.value.message
    assert f"lcm store --dataset alpha --atlas {ATLAS}" in (info.value.hint or "")  # which
    assert "in the workflow: `snakemake --forcerun store`" in (info.value.hint or "")
    with pytest.raises(InputDataError, match=one_line):
        ConnectomeStream(store, ATLAS, ["alpha"])
    # Stores written before commit ids (none in either file) still read, mixed or not.
    for path in (connectome_path(store, ATLAS, "alpha"), variables_path(store, "alpha")):
        table = pq.read_table(path)
        meta = table.schema.metadata
        keep = {k: v for k, v in meta.items() if k not in (b"lcm.commit", b"lcm.variables_id")}
        pq.write_table(table.replace_schema_metadata(keep), path)
    assert len(load_cohort(store, ATLAS, ["alpha"], catalogue)) == NEW[0]


def test_second_writer_of_a_dataset_is_refused_others_write_in_parallel(
    world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    _store(world, store, "old")
    first = _Writer(_args(world, store, "new"), pause="staged")
    try:
        first.wait_for("LCM_STORE_PAUSED staged")
        capsys.readouterr()
        assert main(_args(world, store, "new")) == 6
        err = capsys.readouterr().err
        assert "being written by another `lcm store --dataset alpha`" in err
        assert f"pid {first.proc.pid}" in err and "Traceback" not in err
        _store(world, store, "beta", dataset="beta")  # another dataset: not blocked
    finally:
        first.kill()
    assert _seen(world, store) == "old"
    assert len(read_runs(store, ATLAS, ["beta"])) == OLD[0]


def test_truncated_partition_is_one_line_error(
    world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    _store(world, store, "old")
    catalogue = load_catalogue(world["catalogue"])
    conn = connectome_path(store, ATLAS, "alpha")
    data = conn.read_bytes()
    conn.write_bytes(data[: len(data) // 2])
    for read in (
        lambda: load_cohort(store, ATLAS, ["alpha"], catalogue),
        lambda: read_runs(store, ATLAS, ["alpha"]),
        lambda: ConnectomeStream(store, ATLAS, ["alpha"]),
    ):
        with pytest.raises(InputDataError, match="not a readable Parquet file") as info:
            read()
        assert info.value.message.startswith(str(conn)) and "\n" not in info.value.message
        assert "lcm store --dataset alpha" in (info.value.hint or "")
    conn.write_bytes(data)
    variables = variables_path(store, "alpha")
    variables.write_bytes(variables.read_bytes()[:100])
    with pytest.raises(InputDataError, match=re.escape(f"{variables}: not a readable Parquet")):
        load_cohort(store, ATLAS, ["alpha"], catalogue)
    # Writing another dataset compares ROIs with a damaged partition: named, no traceback.
    conn.write_bytes(b"garbage")
    capsys.readouterr()
    assert main(_args(world, store, "beta", "beta")) == 3
    err = capsys.readouterr().err
    assert f"{conn}, which is not a readable Parquet file" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is binary \(NUL byte at offset 8\)"),
        (b"participant_id\tsite\tage\n\xff\xfe01\tS1\t20\n", r"is not UTF-8 text"),
        # Excel's "Unicode Text": named as UTF-16, not as a binary (NUL bytes) spreadsheet.
        ("participant_id\tage\n01\t20\n".encode("utf-16"), r"is UTF-16 text"),
        # A comma-separated table saved as .tsv: one column, its separator named.
        (
            b"participant_id,site,age\n01,S1,20\n",
            r"reads as one column .*: its separator is a "
            r"comma, not a tab",
        ),
    ],
)
def test_binary_phenotype_is_one_line_error(
    world, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, match: str
) -> None:
    pheno = tmp_path / "pheno.tsv"
    pheno.write_bytes(content)
    args = _args(world, tmp_path / "store", "old")
    args[args.index("--phenotype") + 1] = str(pheno)
    capsys.readouterr()
    assert main(args) == 3
    err = capsys.readouterr().err
    assert re.search(re.escape(f"Phenotype file {pheno} ") + match, err), err
    assert "hint: Save it " in err and "Traceback" not in err
    assert not (tmp_path / "store" / "connectomes").exists()


def test_rerun_with_the_same_inputs_keeps_the_partitions_bytes(
    world, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun of `lcm store` with identical arguments rewrote every partition with a new
    commit id (time and random hex), so `lcm provenance verify` called everything downstream
    stale and the log said "commit ... complete". Unchanged content keeps the committed files;
    changed content still commits."""
    import hashlib

    store = tmp_path / "store"
    files = [connectome_path(store, ATLAS, "alpha"), variables_path(store, "alpha")]
    report = store / "reports" / "missingness_dataset-alpha.tsv"

    def digests() -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in [*files, report]]

    _store(world, store, "old")
    before = digests()
    capsys.readouterr()
    _store(world, store, "old")
    assert digests() == before
    log = capsys.readouterr().err
    assert "alpha unchanged" in log and "complete" not in log
    assert _files(store) == COMMITTED  # no staged file left, no journal
    assert _seen(world, store) == "old"
    # Changed inputs still commit, all files together.
    _store(world, store, "new")
    after = digests()
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert "complete" in capsys.readouterr().err
    assert _seen(world, store) == "new"
    # The same dataset stored for a second atlas: its variables partition (shared by the
    # atlases) is unchanged and kept, so nothing read from the first atlas goes stale.
    args = _args(world, store, "new")
    args[args.index("--atlas") + 1] = "toy2"
    assert main(args) == 0
    assert digests() == after
    assert connectome_path(store, "toy2", "alpha").is_file()
    assert len(load_cohort(store, "toy2", ["alpha"], load_catalogue(world["catalogue"]))) == NEW[0]
