"""Hostile and careless input data (issue 14): absurd NIfTI headers, dropout volumes, imported
matrices out of range, files whose ROIs all carry one signal. Each bad run is excluded with its
reason (or fails in one line) and the runs beside it keep their outputs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    fmriprep_record,
    imported_qc,
    make_fmriprep_run,
    make_raw_bids,
    roi_series,
    save_nifti,
    timeseries_qc,
    write_confounds,
    write_json,
)

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.bids.nifti_header import read_bold_header as read_ingest_header
from lcm.connectome.bold_stream import read_bold_header
from lcm.connectome.parcellate import parcellate_file
from lcm.connectome.qc import check_fc_spread
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import ExcludedRunError
from lcm.io.relmat import read_relmat, write_relmat

pytestmark = pytest.mark.hostile

T_R = 2.0
DENOISE = {
    "strategy": "24P",
    "fd_threshold": 0.5,
    "high_pass": 0.01,
    "low_pass": 0.1,
    "detrend": True,
    "min_volumes": 40,
    "min_dof": None,  # short runs: the denoise.min_dof floor is tested apart
}
HUGE = (30000, 30000, 30000, 10)  # 24.6 TiB of float32 per the header


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _huge_header(path: Path, kind=nib.Nifti1Header, shape=HUGE) -> Path:
    """A header claiming ``shape`` float32 voxels, followed by no data at all."""
    hdr = kind()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape(shape)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_zooms((4.0, 4.0, 4.0, T_R))
    raw = hdr.binaryblock + b"\0" * 4  # the extension flag, then nothing
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def _mean_abs_r(fc: np.ndarray) -> float:
    off = ~np.eye(fc.shape[0], dtype=bool) & (fc != 0)
    return float(np.abs(fc[off]).mean())


# -- absurd header dimensions ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["bold.nii", "bold.nii.gz"])
@pytest.mark.parametrize("kind", [nib.Nifti1Header, nib.Nifti2Header])
def test_huge_header_dims_fail_fast_without_allocating(tmp_path: Path, name: str, kind) -> None:
    path = _huge_header(tmp_path / name, kind)
    labels = np.zeros((2, 2, 2), dtype=np.int64)
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(ExcludedRunError, match=rf"{name}: .*30000 x 30000 x 30000.*1024"):
            read_bold_header(path)
        with pytest.raises(ExcludedRunError, match=rf"{name}: .*at most 1024 per axis"):
            parcellate_file(path, labels, np.array([1]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - began < 5
    assert peak < 50 * 2**20  # nothing sized from the header


@pytest.mark.parametrize("name", ["bold.nii", "bold.nii.gz"])
def test_header_too_big_for_its_file_is_refused(tmp_path: Path, name: str) -> None:
    # Plausible dimensions, but far more data than the file holds (no data follows).
    path = _huge_header(tmp_path / name, shape=(512, 512, 512, 2000))
    expected = r"more than a \d+-byte gzip file" if name.endswith(".gz") else r"ends in volume 0"
    with pytest.raises(ExcludedRunError, match=rf"{name}: .*{expected}"):
        read_bold_header(path)


def test_huge_header_excludes_the_run_and_the_cohort_continues(tmp_path: Path, atlas) -> None:
    deriv = tmp_path / "fmriprep"
    good = make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=48, t_r=T_R)
    bad = make_fmriprep_run(deriv, "sub-02_task-rest_run-1", n_vol=48, t_r=T_R, seed=1)
    _huge_header(bad["bold"])
    record = fmriprep_record(
        tmp_path / "rec.json",
        "tiny",
        [("sub-01_task-rest_run-1", good), ("sub-02_task-rest_run-1", bad)],
    )
    settings = DenoiseSettings.from_dict(DENOISE)
    qc_good = process_voxel_run(
        "tiny",
        record,
        "sub-01_task-rest_run-1",
        atlas,
        settings,
        tmp_path / "conn",
        tmp_path / "qc" / "sub-01.json",
    )
    began = time.perf_counter()
    qc_bad = process_voxel_run(
        "tiny",
        record,
        "sub-02_task-rest_run-1",
        atlas,
        settings,
        tmp_path / "conn",
        tmp_path / "qc" / "sub-02.json",
    )
    assert time.perf_counter() - began < 5
    assert qc_good["included"] and Path(qc_good["relmat"]).is_file()
    assert not qc_bad["included"]
    assert "desc-preproc_bold.nii.gz" in qc_bad["reason"] and "1024" in qc_bad["reason"]
    assert json.loads((tmp_path / "qc" / "sub-02.json").read_text())["reason"] == qc_bad["reason"]
    # The run written before is still there, untouched.
    assert Path(qc_good["relmat"]).is_file() and Path(qc_good["timeseries"]).is_file()


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_huge_header_dims_excluded_at_ingest(tmp_path: Path, ext: str) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    func = root / "sub-02" / "func"
    (func / "sub-02_task-rest_run-1_bold.nii.gz").unlink()
    _huge_header(func / f"sub-02_task-rest_run-1_bold{ext}")
    assert read_ingest_header(func / f"sub-02_task-rest_run-1_bold{ext}").shape == HUGE
    out = tmp_path / "out" / "manifest.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lcm",
            "ingest",
            "--dataset",
            "tiny",
            "--entry",
            "bids",
            "--path",
            str(root),
            "--out",
            str(out),
            "--no-validate",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    df = pd.read_parquet(out).set_index("subject")
    assert df.loc["01", "included"]
    assert not df.loc["02", "included"] and df.loc["02", "reason_code"] == "bad_header"
    assert f"sub-02_task-rest_run-1_bold{ext}" in df.loc["02", "reason"]
    assert "30000 x 30000 x 30000" in df.loc["02", "reason"]


def test_truncated_uncompressed_bold_excluded_at_ingest(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    func = root / "sub-01" / "func"
    gz = func / "sub-01_task-rest_run-1_bold.nii.gz"
    img = nib.load(gz)
    save_nifti(func / "sub-01_task-rest_run-1_bold.nii", np.asarray(img.dataobj), t_r=T_R)
    gz.unlink()
    nii = func / "sub-01_task-rest_run-1_bold.nii"
    nii.write_bytes(nii.read_bytes()[:2000])
    df = ingest("tiny", "bids", root, tmp_path / "out" / "manifest.parquet", validate=False)
    row = df.iloc[0]
    assert not row["included"] and row["reason_code"] == "bad_header"
    assert "the file has 2000" in row["reason"]


# -- dropout volumes ---------------------------------------------------------------------------


def _voxel_fc(tmp_path: Path, atlas, name: str, files: dict[str, Path]) -> tuple[dict, np.ndarray]:
    run = "sub-01_task-rest_run-1"
    record = fmriprep_record(tmp_path / f"{name}.json", "tiny", [(run, files)])
    qc = process_voxel_run(
        "tiny",
        record,
        run,
        atlas,
        DenoiseSettings.from_dict(DENOISE),
        tmp_path / name,
        tmp_path / "qc" / f"{name}.json",
    )
    assert qc["included"], qc["reason"]
    return qc, read_relmat(qc["relmat"])[1]


@pytest.mark.parametrize("value", [0.0, 500.0], ids=["all-zero", "constant"])
def test_dropout_volume_is_scrubbed_in_voxel_runs(tmp_path: Path, atlas, value: float) -> None:
    files = make_fmriprep_run(tmp_path / "fmriprep", "sub-01_task-rest_run-1", n_vol=52, t_r=T_R)
    qc_clean, _ = _voxel_fc(tmp_path, atlas, "clean", files)
    # The same run with volume 25 scrubbed for motion: what a dropout there must give.
    table = pd.read_csv(files["confounds"], sep="\t")
    fd = table["framewise_displacement"].copy()
    table.loc[25, "framewise_displacement"] = 2.0
    write_confounds(files["confounds"], table)
    qc_ref, fc_ref = _voxel_fc(tmp_path, atlas, "ref", files)
    table["framewise_displacement"] = fd
    write_confounds(files["confounds"], table)
    data = np.asarray(nib.load(files["bold"]).dataobj).copy()
    data[..., 25] = value  # one volume of scanner dropout
    save_nifti(files["bold"], data, t_r=T_R)
    qc, fc = _voxel_fc(tmp_path, atlas, "drop", files)
    assert qc["n_dropout_volumes"] == 1 and qc_clean["n_dropout_volumes"] == 0
    assert qc["n_volumes_kept"] == qc_clean["n_volumes_kept"] - 1 == qc_ref["n_volumes_kept"]
    assert qc["pct_scrubbed"] == qc_ref["pct_scrubbed"] > qc_clean["pct_scrubbed"]
    # Scrubbed, the dropout gives the connectome of the run without that volume (left in,
    # it drove mean |r| to 0.9995).
    np.testing.assert_allclose(fc, fc_ref, atol=1e-6)
    assert _mean_abs_r(fc) < 0.8
    assert qc["empty_rois"] == qc_clean["empty_rois"]
    assert qc["median_tsnr"] == pytest.approx(qc_clean["median_tsnr"], rel=0.05)


def test_dropout_volume_is_scrubbed_in_roi_timeseries(tmp_path: Path, atlas) -> None:
    root = tmp_path / "series"
    root.mkdir()
    series = roi_series()
    np.save(root / "sub-01.npy", series)
    dropped = series.copy()
    dropped[30] = 0.0
    np.save(root / "sub-02.npy", dropped)
    write_json(root / "sub-01.json", {"RepetitionTime": T_R})
    write_json(root / "sub-02.json", {"RepetitionTime": T_R})
    qc = timeseries_qc(tmp_path, root)
    assert qc["included"].all()
    assert qc.loc["02", "n_dropout_volumes"] == 1 and qc.loc["01", "n_dropout_volumes"] == 0
    assert qc.loc["02", "n_volumes_kept"] == 60 and qc.loc["01", "n_volumes_kept"] == 61
    fc_ref = read_relmat(qc.loc["01", "relmat"])[1]
    fc = read_relmat(qc.loc["02", "relmat"])[1]
    assert abs(_mean_abs_r(fc) - _mean_abs_r(fc_ref)) < 0.02
    assert _mean_abs_r(fc) < 0.9


# -- imported matrices out of range ----------------------------------------------------------


def test_imported_r_outside_unit_range_excludes_that_run(tmp_path: Path, atlas) -> None:
    names = atlas.labels["name"].tolist()
    mats = tmp_path / "mats"
    mats.mkdir()
    good = np.corrcoef(roi_series(seed=1).T)
    write_relmat(mats / "sub-01.tsv", names, good)
    bad = good.copy()
    bad[3, 4] = bad[4, 3] = 5.0
    np.save(mats / "sub-02.npy", bad)
    barely = good.copy()
    barely[5, 6] = barely[6, 5] = 1 + 1e-9  # rounding: accepted
    np.save(mats / "sub-03.npy", barely)
    listing = tmp_path / "listing.tsv"
    listing.write_text(
        "participant_id\tpath\nsub-01\tmats/sub-01.tsv\nsub-02\tmats/sub-02.npy\n"
        "sub-03\tmats/sub-03.npy\n"
    )
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("pcp", "connectome", listing, manifest)
    qc = imported_qc(tmp_path, manifest)
    assert qc["included"].to_dict() == {"01": True, "02": False, "03": True}
    assert "sub-02.npy has values outside [-1, 1] (max |r| = 5)" in qc.loc["02", "reason"]
    assert qc.loc["02", "relmat"] == ""
    np.testing.assert_allclose(read_relmat(qc.loc["01", "relmat"])[1], good, atol=1e-12)


# -- one signal in every ROI: a file mis-read ---------------------------------------------------


def _bold_scale_series(n_vol: int = 200, global_gain: float = 1.0, seed: int = 0) -> np.ndarray:
    """ROI series as raw BOLD means are (around 10000), sharing one signal ``global_gain``
    times as strong as each ROI's own."""
    rng = np.random.default_rng(seed)
    shared = global_gain * rng.standard_normal((n_vol, 1))
    own = rng.standard_normal((n_vol, 116))
    return 10000 + 10 * (shared * rng.uniform(0.5, 1.5, 116) + own)


def test_series_whose_rois_all_correlate_near_1_are_excluded(tmp_path: Path) -> None:
    """A row that is no volume (column numbers saved as numbers, 0.0 .. 115.0) is a spike of
    -10000 in every ROI: read as data, every r is ~1 (mean 0.9999), stored silently before.
    So is one series copied to every ROI. A strong global signal (mean r ~0.93) is a run."""
    root = tmp_path / "series"
    root.mkdir()
    data = _bold_scale_series()
    np.save(root / "sub-01.npy", data)
    np.savetxt(root / "sub-02.csv", np.vstack([np.arange(116.0), data]), delimiter=",")
    copied = data[:, :1] + np.random.default_rng(1).normal(0, 1e-3, data.shape)
    np.save(root / "sub-03.npy", copied)
    np.save(root / "sub-04.npy", _bold_scale_series(global_gain=5.0, seed=2))
    qc = timeseries_qc(tmp_path, root, repetition_time=T_R)
    assert qc["included"].to_dict() == {"01": True, "02": False, "03": False, "04": True}
    assert qc.loc[["02", "03"], "reason_code"].tolist() == ["fc_degenerate"] * 2
    reason = qc.loc["02", "reason"]
    assert reason.startswith("sub-02.csv: its 116 ROIs all correlate near 1 (mean r between ROIs")
    assert "a row that is no volume read as data" in reason and "header of ROI names" in reason
    assert qc.loc["02", "n_volumes"] == 201 and qc.loc["02", "relmat"] == ""
    strong = read_relmat(qc.loc["04", "relmat"])[1]
    assert 0.85 < _mean_abs_r(strong) < 0.99


def test_imported_matrix_with_every_r_near_1_excludes_that_run(tmp_path: Path, atlas) -> None:
    names = atlas.labels["name"].tolist()
    mats = tmp_path / "mats"
    mats.mkdir()
    good = np.corrcoef(_bold_scale_series().T)
    write_relmat(mats / "sub-01.tsv", names, good)
    misread = np.vstack([np.arange(116.0), _bold_scale_series()])
    np.save(mats / "sub-02.npy", np.corrcoef(misread.T))
    np.save(mats / "sub-03.npy", np.ones((116, 116)))  # a binary mask saved for r
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("pcp", "connectome", mats, manifest)
    qc = imported_qc(tmp_path, manifest)
    assert qc["included"].to_dict() == {"01": True, "02": False, "03": False}
    assert qc.loc[["02", "03"], "reason_code"].tolist() == ["fc_degenerate"] * 2
    assert (
        "sub-03.npy: its 116 ROIs all correlate near 1 (mean r between ROIs 1.0000"
        in (qc.loc["03", "reason"])
    )


def test_degenerate_rule_leaves_empty_rois_and_pairs_out() -> None:
    """Empty ROIs (rows of 0) are no part of the mean; two ROIs may truly correlate at 0.995."""
    near = np.full((6, 6), 0.995)
    np.fill_diagonal(near, 1.0)
    with pytest.raises(ExcludedRunError, match=r"m\.npy: its 6 ROIs all correlate near 1"):
        check_fc_spread(near, "m.npy")
    empty = near.copy()
    empty[:3, :] = empty[:, :3] = 0.0  # three empty ROIs: 3 left, still one signal
    with pytest.raises(ExcludedRunError, match="its 3 ROIs"):
        check_fc_spread(empty, "m.npy")
    empty[:4, :] = empty[:, :4] = 0.0
    check_fc_spread(empty, "m.npy")
    below = np.full((6, 6), 0.99)
    np.fill_diagonal(below, 1.0)
    check_fc_spread(below, "m.npy")
