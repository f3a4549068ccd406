"""Each window of a run is held to ``denoise.min_dof``, as the run is.

Windows are cut over the run's *kept* volumes (``connectome.window.length`` of them each), so a
window never keeps fewer volumes than its length; what it may lack is degrees of freedom: the
seconds its kept volumes span hold ``2 * seconds * (f_high - f_low)`` of them in the band, and a
short window at a slow TR holds few. The confounds and the trend were regressed over the whole
run: each window pays its share of them, the share of the run's band it holds. A window under
the floor is left out with a logged reason and counted (QC ``n_windows_dropped``); a run left
with none is excluded (``too_few_window_dof``), naming the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    cli,
    connectome_timeseries,
    fmriprep_record,
    make_fmriprep_run,
    read_qc_table,
    roi_series,
    write_roi_run,
)

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.catalogue import load_catalogue
from lcm.commands import store as store_cmd
from lcm.connectome.denoise import degrees_of_freedom
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.io.paths import window_desc, window_index
from lcm.store.read import load_cohort

T_R = 2.0
RUN = "sub-01_task-rest_run-1"


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def test_a_window_counts_its_band_and_its_share_of_the_regressors() -> None:
    """The run's own count over the window's kept volumes: 100 s of 0.01-0.1 Hz hold 18; the
    24 regressors and the trend, fitted over the whole run (400 s, 72), take a quarter of 25."""
    settings = DenoiseSettings()
    keep = np.arange(200)
    confounds = np.random.default_rng(0).standard_normal((200, 24))
    run = degrees_of_freedom(keep, T_R, settings, confounds)
    assert degrees_of_freedom(keep, T_R, settings, confounds, window=slice(0, 200)) == run
    win = degrees_of_freedom(keep, T_R, settings, confounds, window=slice(50, 100))
    assert win.in_band == pytest.approx(18.0) and win.n_kept == 50 and win.seconds == 100.0
    assert win.share == pytest.approx(0.25) and win.regressors == 24
    assert win.residual == pytest.approx(18.0 - 25 / 4)
    # A window over scattered censoring (one volume in four, neighbours 4 s apart: the band is
    # still sampled) spans more seconds than a contiguous one of as many kept volumes.
    scattered = np.flatnonzero(np.arange(300) % 4 != 3)
    wide = degrees_of_freedom(scattered, T_R, settings, window=slice(0, 50))
    assert wide.seconds == pytest.approx(66 * T_R) and wide.in_band > win.in_band


def _scattered_then_contiguous(segments: int, length: int) -> np.ndarray:
    """FD per volume: ``segments`` times a stretch of ``length`` kept volumes with one volume
    scrubbed after every 3 kept, then ``length`` contiguous kept volumes."""
    fd: list[float] = []
    for _ in range(segments):
        for i in range(length):
            fd.append(0.1)
            if i % 3 == 2 and i < length - 1:
                fd.append(0.9)
        fd += [0.1] * length
    return np.array(fd)


def _timeseries(tmp_path: Path, root: Path, denoise: dict, connectome: dict | None) -> int:
    manifest = tmp_path / "manifest.parquet"
    if not manifest.exists():
        ingest("ts", "roi_timeseries", root, manifest)
    return connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=tmp_path / "qc.tsv",
        denoise=denoise,
        connectome=connectome,
    )


def test_lcm_connectome_leaves_out_windows_under_min_dof(
    tmp_path: Path, atlas, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows of 56 kept volumes at TR 2 s: contiguous ones hold 20.16 in the band, 19.9 once
    their share of the trend is taken, under the floor of 20; those over scattered censoring
    span 74 volumes (26.6). sub-01 alternates them: windows 0 and 2 written, 1 and 3 left out.
    sub-02 is contiguous: no window left, the run excluded with the fix. Before, every window
    of both runs was written and counted as a sample."""
    names = atlas.labels["name"].tolist()
    root = tmp_path / "ts"
    fd = _scattered_then_contiguous(2, 56)
    mixed = pd.DataFrame(roi_series(seed=1, n_vol=len(fd)), columns=names)
    mixed["framewise_displacement"] = fd
    write_roi_run(root, "01", mixed, T_R)
    write_roi_run(root, "02", pd.DataFrame(roi_series(seed=2, n_vol=240), columns=names), T_R)
    caplog.set_level(logging.INFO)
    assert _timeseries(tmp_path, root, {}, {"window": {"length": 56}}) == 0
    qc = read_qc_table(tmp_path / "qc.tsv").set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": False}
    assert qc.loc["01", "n_windows"] == 2 and qc.loc["01", "n_windows_dropped"] == 2
    listed = [Path(p).name for p in qc.loc["01", "window_relmats"].split(",")]
    assert [n.split("_desc-")[1][:6] for n in listed] == ["win000", "win002"]
    func = tmp_path / "conn" / "sub-01" / "func"
    assert not list(func.glob("*desc-win001*")) and not list(func.glob("*desc-win003*"))
    side = json.loads((func / listed[1].replace(".tsv", ".json")).read_text())
    assert side["Window"] == 2 and side["WindowVolumes"] == [112, 168]
    assert side["DegreesOfFreedom"] == pytest.approx(26.4, abs=0.1)
    assert side["WindowAcquiredVolumes"] == [130, 204]  # 56 kept of 74 acquired
    dropped = [r.getMessage() for r in caplog.records if "windows left out" in r.getMessage()]
    assert len(dropped) == 1 and "2 of 4 windows left out" in dropped[0]  # one line per run
    assert "window 1 (kept volumes 56 to 111): 19.9 degrees of freedom left" in dropped[0]
    assert "denoise.min_dof" in dropped[0]

    assert qc.loc["02", "reason_code"] == "too_few_window_dof"
    reason = qc.loc["02", "reason"]
    assert "none of its 4 windows of 56 kept volumes keeps enough" in reason and "Fix:" in reason
    assert "about 57 kept volumes" in reason and "confound strategy" not in reason
    assert "connectome.window.length" in reason and "denoise.min_dof" in reason
    assert pd.isna(qc.loc["02", "n_windows"]) and qc.loc["02", "n_windows_dropped"] == 4
    assert qc.loc["02", "dof"] == pytest.approx(2 * 480 * 0.09 - 1)  # the run's: it had enough
    assert not (tmp_path / "conn" / "sub-02").exists()
    # lcm store takes the run's two windows as its samples, under their own index (the
    # files'), and leaves sub-02 out.
    pheno = tmp_path / "participants.tsv"
    pheno.write_text("participant_id\tsex\nsub-01\tF\nsub-02\tM\n")
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(
        "variables:\n  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}\n"
        "datasets:\n  ts:\n    id_column: participant_id\n    columns: {sex: {column: sex}}\n"
    )
    store = tmp_path / "store"
    args = ["--qc-table", str(tmp_path / "qc.tsv"), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "aal116", "--store-dir", str(store)]
    assert cli(store_cmd, ["store", "--dataset", "ts", *args]) == 0
    cohort = load_cohort(store, "aal116", ["ts"], load_catalogue(catalogue))
    assert list(cohort.ids["subject"]) == ["01", "01"] and list(cohort.ids["window"]) == [0, 2]


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_runs_without_windows_are_unchanged(tmp_path: Path, atlas) -> None:
    """Windows off: the same files, byte for byte, as the whole-run files of a windowed run
    whose windows all pass; QC n_windows and n_windows_dropped 0."""
    names = atlas.labels["name"].tolist()
    root = tmp_path / "ts"
    write_roi_run(root, "01", pd.DataFrame(roi_series(seed=3, n_vol=240), columns=names), T_R)
    assert _timeseries(tmp_path, root, {}, None) == 0
    plain = _digests(tmp_path / "conn")
    qc = read_qc_table(tmp_path / "qc.tsv")
    assert qc.loc[0, "n_windows"] == 0 and qc.loc[0, "n_windows_dropped"] == 0
    assert _timeseries(tmp_path / "w", root, {}, {"window": {"length": 120}}) == 0
    windowed = _digests(tmp_path / "w" / "conn")
    assert {k: windowed[k] for k in plain if "relmat.json" not in k} == {
        k: v for k, v in plain.items() if "relmat.json" not in k
    }
    qc = read_qc_table(tmp_path / "w" / "qc.tsv")
    assert qc.loc[0, "n_windows"] == 2 and qc.loc[0, "n_windows_dropped"] == 0


def _voxel(tmp_path: Path, atlas, n_vol: int, length: int) -> dict:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=n_vol, t_r=T_R)
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, files)])
    return process_voxel_run(
        "tiny",
        record,
        RUN,
        atlas,
        DenoiseSettings.from_dict({"strategy": "24P", "fd_threshold": None}),
        tmp_path / "conn",
        tmp_path / "qc.json",
        connectome=ConnectomeSettings.from_dict({"window": {"length": length}}),
    )


def test_voxel_windows_pay_their_share_of_the_confounds(tmp_path: Path, atlas) -> None:
    """240 volumes at TR 2 s, 24P: the run keeps 86.4 - 25 = 61.4. A window of 120 holds 43.2
    in the band and pays half the 25 (30.7: written; charged all 25 it would fall to 18.2); a
    window of 50 holds 18, under the floor before any regressor: the run is excluded before
    any file is written."""
    qc = _voxel(tmp_path / "long", atlas, 240, 120)
    assert qc["included"] and qc["n_windows"] == 2 and qc["n_windows_dropped"] == 0
    side = json.loads(Path(qc["window_relmats"][1]).with_suffix(".json").read_text())
    assert side["DegreesOfFreedom"] == pytest.approx(43.2 - 25 / 2, abs=0.05)
    qc = _voxel(tmp_path / "short", atlas, 240, 50)
    assert not qc["included"] and qc["reason_code"] == "too_few_window_dof"
    assert "of 24 confound regressor(s) and the linear trend" in qc["reason"]
    assert "6P instead of 24P" in qc["reason"]
    assert qc["n_windows_dropped"] == 4 and qc["dof"] == pytest.approx(61.4)
    assert not (tmp_path / "short" / "conn" / "sub-01").exists()


def test_window_names_give_their_index() -> None:
    """One naming of window files (lcm.io.paths), read back by the store."""
    stem = "sub-01_task-rest_seg-aal116"
    assert window_desc(2) == "win002"
    assert (
        window_index(f"/d/{stem}_desc-{window_desc(12)}_stat-pearsoncorrelation_relmat.tsv") == 12
    )
    assert window_index(f"{stem}_stat-pearsoncorrelation_relmat.tsv") is None
    assert window_index(f"{stem}_desc-fisherz_stat-pearsoncorrelation_relmat.tsv") is None
    # Window 1000 (a long run, short windows, stride 1) read as window 100.
    for index in (999, 1000, 12345):
        for desc in (window_desc(index), f"{window_desc(index)}fisherz"):
            assert window_index(f"{stem}_desc-{desc}_stat-pearsoncorrelation_relmat.tsv") == index
