"""The entry table (:mod:`lcm.entries`) owns the entry types.

A new entry is one row there plus its processing function (docs/extending.md, section 4): the
config, ``lcm ingest``, the workflow plan and ``lcm connectome dataset`` take it with nothing
else edited. Here a throwaway parcellated entry, ``npyconn``, is added that way.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import cli

import lcm.commands.connectome
import lcm.commands.ingest
from lcm.bids.manifest import read_manifest
from lcm.connectome.settings import ConnectomeSettings
from lcm.entries import TABLE, Entry, entry_type, names
from lcm.evaluate.config_schema import validate_config
from lcm.exceptions import ConfigError
from lcm.io.provenance import provenance_path
from lcm.workflow.hash import verb_modules
from lcm.workflow.plan import WorkflowPlan

CALLS: list[dict] = []


def process_npyconn(
    dataset: str,
    manifest_path: str | Path,
    atlas,
    out_dir: str | Path,
    qc_table: str | Path,
    connectome: ConnectomeSettings,
    seg: str | None = None,
    names: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The throwaway entry's processing: one QC row per manifest row, the call recorded."""
    manifest = read_manifest(manifest_path)
    CALLS.append({"dataset": dataset, "atlas": atlas.name, "connectome": connectome, "seg": seg})
    # The columns every QC read checks (lcm.io.qc_table.QC_REQUIRED); no motion measured here.
    table = manifest[["dataset", "subject", "run_key", "included", "reason"]].assign(mean_fd="")
    table.to_csv(qc_table, sep="\t", index=False)
    return table


@pytest.fixture
def npyconn(monkeypatch: pytest.MonkeyPatch) -> Entry:
    """The table with one more row: connectomes as .npy files, reading the connectome section."""
    row = Entry(
        "npyconn",
        voxel=False,
        tree=None,
        files="always",
        process=f"{__name__}:process_npyconn",
        settings=("connectome",),
    )
    monkeypatch.setitem(TABLE, "npyconn", row)
    CALLS.clear()
    return row


def _connectomes(folder: Path, subjects: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    for i, sub in enumerate(subjects):
        np.save(folder / f"sub-{sub}.npy", np.eye(4) + i)
    return folder


def test_a_new_entry_reaches_config_plan_ingest_and_connectome(npyconn, tmp_path: Path) -> None:
    data = _connectomes(tmp_path / "npy", ["01", "02"])
    dataset = {"entry": "npyconn", "path": str(data), "phenotype": "p.tsv", "role": "pretrain"}
    config = validate_config({"datasets": {"conn": dataset}})  # the schema's enum has it

    plan = WorkflowPlan(config)
    assert plan.parcellated_datasets() == ["conn"] and plan.voxel_datasets() == []
    before = plan.listing_hash("conn")
    _connectomes(data, ["03"])
    assert WorkflowPlan(config).listing_hash("conn") != before  # a subject added is seen

    manifest = tmp_path / "ingest" / "manifest.parquet"
    manifest.parent.mkdir()
    args = ["ingest", "--dataset", "conn", "--entry", "npyconn", "--path", str(data)]
    assert cli(lcm.commands.ingest, [*args, "--atlas", "aal116", "--out", str(manifest)]) == 0
    rows = read_manifest(manifest)
    assert sorted(rows["subject"]) == ["01", "02", "03"] and rows["included"].all()
    assert set(rows["entry"]) == {"npyconn"}
    assert set(rows["tr_check"]) == {"not needed (npyconn)"}  # needs_tr is false

    qc = tmp_path / "qc.tsv"
    args = [
        "connectome",
        "dataset",
        "--entry",
        "npyconn",
        "--dataset",
        "conn",
        "--manifest",
        str(manifest),
        "--atlas",
        "aal116",
        "--out-dir",
        str(tmp_path / "out"),
        "--qc-table",
        str(qc),
    ]
    assert cli(lcm.commands.connectome, [*args, "--connectome", '{"fisher_z": true}']) == 0
    (call,) = CALLS
    assert call["dataset"] == "conn" and call["atlas"] == "aal116" and call["seg"] is None
    assert call["connectome"].fisher_z is True
    assert len(pd.read_csv(qc, sep="\t")) == 3
    assert json.loads(provenance_path(qc).read_text())["Sources"]
    # A section the entry does not read is refused, naming what it reads.
    with pytest.raises(ConfigError, match=r"--denoise: entry 'npyconn' reads no denoise.*"):
        cli(lcm.commands.connectome, [*args, "--denoise", "{}"])


def test_an_entry_not_in_the_table_is_refused_by_config_and_ingest(tmp_path: Path) -> None:
    dataset = {"entry": "cifti", "path": "x", "phenotype": "p.tsv", "role": "pretrain"}
    with pytest.raises(ConfigError, match=r"datasets\.d\.entry"):
        validate_config({"datasets": {"d": dataset}})
    with pytest.raises(SystemExit):
        cli(
            lcm.commands.ingest,
            [
                "ingest",
                "--dataset",
                "d",
                "--entry",
                "cifti",
                "--path",
                str(tmp_path),
                "--out",
                str(tmp_path / "m.parquet"),
            ],
        )


def test_each_entry_is_voxel_or_has_a_processing_function_the_workflow_hashes() -> None:
    reached = set(verb_modules("connectome"))
    for name in names():
        row = entry_type(name)
        assert row.tree is not None or row.files == "always", f"{name}: indexed by nothing"
        if row.voxel:
            assert row.process is None and row.settings == (), name
            continue
        function = row.processor()
        params = inspect.signature(function).parameters
        # Called with three positional arguments, the others by name.
        assert list(params)[:3] == ["dataset", "manifest_path", "atlas"], (name, list(params))
        assert {"out_dir", "qc_table", "seg", "names"} <= set(params), (name, list(params))
        assert set(row.settings) <= set(params), (name, row.settings)
        # Imported by name, not by `import`: the connectome rule's code hash still covers it.
        assert row.process.partition(":")[0] in reached, name
        # What it reads of each section (all of it, or settings_read's part); none of another.
        if row.settings_read:
            assert row.settings and row.settings_read.partition(":")[0] in reached, name
        assert all(isinstance(row.read_settings(s, {}), dict) for s in row.settings), name
        with pytest.raises(ValueError, match="reads no model settings"):
            row.read_settings("model", {})
    assert names(voxel=True) == ["bids", "fmriprep"]
    assert names(voxel=False) == ["roi_timeseries", "connectome"]


def test_each_synthetic_tier_is_read_by_an_entry() -> None:
    tiers = {entry_type(n).synth_tier for n in names()} - {None}
    assert tiers == {"roi", "voxel"}
    # The first reader of a tier is the entry a consortium's dataset is told to use.
    assert next(n for n in names() if entry_type(n).synth_tier == "voxel") == "bids"
