"""``lcm connectome collect --manifest`` given another dataset's manifest: it read the manifest
only when no record was left, so dataset ``alpha``'s manifest with dataset ``beta``'s QC
records wrote beta's table without a word (and ``lcm store --dataset alpha`` then refused it as
beta's, or ``--dataset beta`` stored it, the manifest never compared). A record of a dataset the
manifest does not name is refused before anything is written, naming both sides and the fix.
Records of runs the manifest excludes or lacks are collected as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.connectome import make_raw_bids

from lcm.bids.manifest import read_manifest
from lcm.cli import main, setup_logging
from lcm.connectome.qc import new_qc
from lcm.io.qc_table import read_qc_table


def _main(*argv: str) -> int:
    try:
        return main(list(argv))
    finally:
        setup_logging()


def _ingest(raw: Path, ingest: Path, dataset: str, exclude: tuple[str, ...] = ()) -> Path:
    """``lcm ingest`` of ``raw`` as ``dataset`` into ``ingest/<dataset>/manifest.parquet``."""
    manifest = ingest / dataset / "manifest.parquet"
    select = json.dumps({"participants": {"exclude": list(exclude)}})
    argv = ["ingest", "--dataset", dataset, "--entry", "bids", "--path", str(raw)]
    assert _main(*argv, "--no-validate", "--select", select, "--out", str(manifest)) == 0
    return manifest


def _records(manifest: Path, folder: Path, extra: tuple[str, ...] = ()) -> list[Path]:
    """One QC JSON per row of ``manifest`` (its dataset, subject and run), and per ``extra``
    subject (a run the manifest lacks)."""
    rows = read_manifest(manifest)
    extra_rows = pd.DataFrame(
        [
            {"dataset": rows["dataset"].iloc[0], "subject": s, "run_key": f"sub-{s}_task-rest"}
            for s in extra
        ]
    )
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for row in pd.concat([rows, extra_rows], ignore_index=True).itertuples():
        record = new_qc(
            row.dataset, subject=row.subject, run_key=row.run_key, included=True, mean_fd=0.1
        )
        path = folder / f"{row.dataset}_{row.run_key}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


@pytest.fixture
def two(tmp_path: Path) -> dict[str, Path]:
    """The manifests of datasets alpha (sub-02 excluded) and beta, in sibling folders."""
    raw = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"))
    ingest = tmp_path / "ingest"
    return {
        "alpha": _ingest(raw, ingest, "alpha", exclude=("02",)),
        "beta": _ingest(raw, ingest, "beta"),
    }


def _collect_fails(tmp_path: Path, manifest: Path, qc: list[Path], *rule: str) -> str:
    log, out = tmp_path / "collect.log", tmp_path / "out" / "qc.tsv"
    argv = [*rule, "connectome", "collect", "--qc", *map(str, qc), "--manifest", str(manifest)]
    assert _main("--log-file", str(log), *argv, "--out", str(out)) != 0
    assert not out.exists() and not out.parent.exists()
    return " ".join(log.read_text().split())


def test_another_datasets_manifest_is_refused_naming_the_one_to_pass(
    tmp_path: Path, two: dict[str, Path]
) -> None:
    beta = _records(two["beta"], tmp_path / "qc")
    text = _collect_fails(tmp_path, two["alpha"], beta)
    out = tmp_path / "out" / "qc.tsv"
    assert (
        f"--manifest {two['alpha']} is of dataset(s) ['alpha'], but QC records to collect into "
        f"{out} are of ['beta'] (beta: 3 record(s), {beta[0]}, {beta[1]}, {beta[2]}); nothing "
        "was written." in text
    ), text
    assert (
        f"Pass the manifest of 'beta' (e.g. {two['beta']}) with these records, or the QC "
        "records of ['alpha'] with this manifest." in text
    ), text


def test_records_of_the_manifests_dataset_and_another_are_refused(
    tmp_path: Path, two: dict[str, Path]
) -> None:
    qc = _records(two["alpha"], tmp_path / "qc") + _records(two["beta"], tmp_path / "qc")
    text = _collect_fails(tmp_path, two["alpha"], qc)
    assert "are of ['beta'] (beta: 3 record(s)" in text, text
    assert (
        "Pass only the QC records of ['alpha'] with this manifest; collect those of ['beta'] "
        "into a table of their own, with their dataset's manifest." in text
    ), text


def test_under_the_workflow_rule_the_fix_is_to_rerun(tmp_path: Path, two: dict[str, Path]) -> None:
    beta = _records(two["beta"], tmp_path / "qc")
    text = _collect_fails(tmp_path, two["alpha"], beta, "--rule", "connectome_collect")
    assert f"The manifest {two['alpha']} is of dataset(s) ['alpha']" in text, text
    assert "These records are not of dataset 'alpha': move them away" in text, text
    assert "--manifest" not in text, text


def test_own_records_are_collected_those_the_manifest_excludes_or_lacks_too(
    tmp_path: Path, two: dict[str, Path]
) -> None:
    # sub-02 excluded at alpha's ingest, sub-09 not in its manifest: collected as before (the
    # table is the records'; the manifest's datasets alone are compared).
    qc = _records(two["beta"], tmp_path / "qc", extra=("09",))
    alpha = [p.with_name(p.name.replace("beta_", "alpha_")) for p in qc]
    for src, dst in zip(qc, alpha, strict=True):
        dst.write_text(src.read_text().replace('"beta"', '"alpha"'))
    out = tmp_path / "qc.tsv"
    argv = ["connectome", "collect", "--qc", *map(str, alpha), "--manifest", str(two["alpha"])]
    assert _main(*argv, "--out", str(out)) == 0
    table = read_qc_table(out)
    assert set(table["dataset"]) == {"alpha"}
    assert sorted(table["subject"]) == ["01", "02", "03", "09"]
    assert sorted(read_manifest(two["alpha"]).query("included")["subject"]) == ["01", "03"]
