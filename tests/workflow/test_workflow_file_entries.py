"""The workflow routes runs brought as plain files (ROI time series, connectomes) to their rules.

The file formats themselves are tested in tests/unit/connectome/test_connectome_entry_files.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
from helpers.connectome import read_qc_table, roi_fc, roi_series
from helpers.workflow import code_datasets, planned_jobs, run_snakemake, small_config, write_config
from scipy.io import savemat

from lcm.atlas import load_atlas


def test_workflow_routes_file_entries(tmp_path: Path) -> None:
    abide = tmp_path / "abide"
    abide.mkdir()
    savemat(abide / "ROISignals_0050002.mat", {"ROISignals": roi_series(seed=1)})
    np.save(abide / "ROISignals_0050003.npy", roi_series(seed=2))
    (abide / "listing.tsv").write_text(
        "participant_id\tpath\n0050002\tROISignals_0050002.mat\n0050003\tROISignals_0050003.npy\n"
    )
    conn = tmp_path / "conn"
    conn.mkdir()
    np.save(conn / "sub-01.npy", roi_fc(seed=1))
    np.save(conn / "sub-02.npy", roi_fc(seed=2)[:, :-1])  # bad: excluded, the other goes on
    (conn / "listing.tsv").write_text("participant_id\tpath\n01\tsub-01.npy\n02\tsub-02.npy\n")
    pheno = tmp_path / "phenotype.tsv"
    pheno.write_text("participant_id\tage\n0050002\t20\n0050003\t30\n01\t40\n02\t50\n")
    cfg = small_config(tmp_path)
    common = {"phenotype": str(pheno), "role": "pretrain"}
    cfg["datasets"]["abidefiles"] = {
        "entry": "roi_timeseries",
        "path": str(abide / "listing.tsv"),
        "repetition_time": 2.0,
        # Already filtered (as XCP-D's are): no second band-pass for this dataset.
        "denoise": {"high_pass": None, "low_pass": None},
        **common,
    }
    cfg["datasets"]["pcpconn"] = {
        "entry": "connectome",
        "path": str(conn / "listing.tsv"),
        **common,
    }
    coding = {"id_column": "participant_id", "columns": {"age": "age"}}
    code_datasets(cfg, tmp_path, {"abidefiles": coding, "pcpconn": coding})
    config = write_config(tmp_path, cfg)
    stores = [
        f"results/store/connectomes/atlas=aal116/dataset={d}/part-0.parquet"
        for d in ("abidefiles", "pcpconn")
    ]
    proc = run_snakemake(tmp_path, *stores, "--configfile", str(config), "-n", "-p")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "connectome dataset --entry connectome --dataset pcpconn" in out
    assert "connectome dataset --entry roi_timeseries --dataset abidefiles" in out
    assert "--repetition-time 2.0" in out and "--entry connectome" in out
    # fMRIPrep's space is no filter of either entry (lcm ingest refuses it for connectomes).
    ingests = [x for x in out.splitlines() if "--rule ingest ingest --dataset" in x]
    assert {shlex.split(x.split("--entry ", 1)[1])[0] for x in ingests} == {
        "roi_timeseries",
        "connectome",
    }
    assert not [x for x in ingests if "--space" in x], ingests
    line = next(x for x in out.splitlines() if "--dataset abidefiles" in x and "--denoise" in x)
    denoise = json.loads(shlex.split(line.split("--denoise ", 1)[1])[0])
    # The dataset's overrides applied, and no strategy: ROI series regress no confounds, and 24P
    # has no scrubbing rule (lcm.connectome.roi_runs.settings_read).
    section = {k: v for k, v in cfg["denoise"].items() if k != "strategy"}
    assert denoise == {**section, "high_pass": None, "low_pass": None}

    # The ingest and connectome jobs of both datasets, run for real.
    tables = [f"results/connectome/{d}/seg-aal116_qc.tsv" for d in ("abidefiles", "pcpconn")]
    proc = run_snakemake(tmp_path, *tables, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    abide_qc = read_qc_table(tmp_path / tables[0]).set_index("subject")
    assert abide_qc["included"].all() and abide_qc["t_r"].eq(2.0).all()
    conn_qc = read_qc_table(tmp_path / tables[1]).set_index("subject")
    assert conn_qc["included"].to_dict() == {"01": True, "02": False}
    assert "sub-02.npy is 116 x 115" in conn_qc.loc["02", "reason"]
    assert (tmp_path / conn_qc.loc["01", "relmat"]).is_file()
    summary = pd.read_csv(tmp_path / "results/ingest/pcpconn/summary.tsv", sep="\t")
    assert summary["n_runs"].sum() == 2

    # The store, then a rerun that fails (a phenotype value out of range): the dataset's
    # partitions stay as they were. Snakemake deleted them before the job ran.
    proc = run_snakemake(tmp_path, stores[1], "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    partition = (tmp_path / stores[1]).parent
    before = {p.name: p.read_bytes() for p in partition.iterdir()}
    # The table's participants.json (its Units and Levels change the stored values) is an
    # input of the store: written after it, the store is due again.
    dry = ["--configfile", str(config), "-n"]
    assert planned_jobs(run_snakemake(tmp_path, stores[1], *dry)) == {}
    pheno.with_suffix(".json").write_text(json.dumps({"age": {"Units": "years"}}))
    assert planned_jobs(run_snakemake(tmp_path, stores[1], *dry)) == {"store": 1}
    pheno.write_text("participant_id\tage\n0050002\t20\n0050003\t30\n01\t2200\n02\t50\n")
    proc = run_snakemake(tmp_path, stores[1], "--configfile", str(config))
    assert (
        proc.returncode != 0 and "2200" in (tmp_path / "results/logs/store/pcpconn.log").read_text()
    )
    assert {p.name: p.read_bytes() for p in partition.iterdir()} == before


def _xcpd_cifti_tree(root: Path, subjects: list[str]) -> None:
    """XCP-D's CIFTI outputs (space-fsLR, den-91k), one sidecar without a TR."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        '{"Name": "xcpd", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}'
    )
    names = load_atlas("aal116").labels["name"].tolist()
    for i, sub in enumerate(subjects):
        func = root / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        stem = f"sub-{sub}_task-rest_space-fsLR_seg-aal116_den-91k_stat-mean_timeseries"
        pd.DataFrame(roi_series(seed=i), columns=names).to_csv(
            func / f"{stem}.tsv", sep="\t", index=False
        )
        (func / f"{stem}.json").write_text("{}" if i == 0 else '{"RepetitionTime": 2.0}')


def test_xcpd_cifti_runs_are_found_and_a_fixed_sidecar_reruns(tmp_path: Path) -> None:
    """fMRIPrep's output space is not passed to ROI time series (XCP-D's space-fsLR runs were
    left out without a reason), and a sidecar given its missing TR reruns the dataset (the
    listing hash held file names only)."""
    root = tmp_path / "xcpd"
    _xcpd_cifti_tree(root, ["01", "02", "03"])
    pheno = tmp_path / "phenotype.tsv"
    pheno.write_text("participant_id\tage\n01\t20\n02\t30\n03\t40\n")
    cfg = small_config(tmp_path)
    cfg["datasets"]["xcpd"] = {
        "entry": "roi_timeseries",
        "path": str(root),
        "phenotype": str(pheno),
        "role": "pretrain",
    }
    code_datasets(cfg, tmp_path, ["xcpd"])
    config = write_config(tmp_path, cfg)
    table = "results/connectome/xcpd/seg-aal116_qc.tsv"
    proc = run_snakemake(tmp_path, table, "--configfile", str(config), "-n", "-p")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ingest_cmd = next(x for x in proc.stdout.splitlines() if "--rule ingest ingest" in x)
    assert "--space" not in ingest_cmd
    proc = run_snakemake(tmp_path, table, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    qc = read_qc_table(tmp_path / table).set_index("subject")
    assert qc["included"].to_dict() == {"01": False, "02": True, "03": True}
    assert "RepetitionTime" in qc.loc["01", "reason"]

    proc = run_snakemake(tmp_path, table, "--configfile", str(config), "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    sidecar = next(root.glob("sub-01/func/*.json"))
    sidecar.write_text('{"RepetitionTime": 2.0}')  # the fix the reason asks for
    proc = run_snakemake(tmp_path, table, "--configfile", str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert read_qc_table(tmp_path / table)["included"].all()
