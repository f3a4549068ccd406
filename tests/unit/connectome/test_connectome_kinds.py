"""Connectivity kinds (partial correlation, covariance, Fisher z) and windowed FC per run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    CROP_SHAPE,
    SPACE,
    cli,
    connectome_timeseries,
    crop_labels,
    fmriprep_record,
    make_fmriprep_run,
    read_qc_table,
    save_nifti,
    write_roi_run,
)
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import LedoitWolf

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.commands import connectome as connectome_cmd
from lcm.connectome.qc import collect_qc
from lcm.connectome.relmat import (
    fisher_z_matrix,
    ledoit_wolf_covariance,
    partial_correlation,
    pearson_fc,
    window_starts,
)
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import ConfigError
from lcm.io.relmat import read_relmat

RUN = "sub-01_task-rest_run-1"
N_VOL = 64
# Short runs: the denoise.min_dof floor is tested apart (test_connectome_dof.py).
DENOISE = {"strategy": "24P", "fd_threshold": None, "min_volumes": 20, "min_dof": None}


def _signals(n_vol: int = 90, n_rois: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_vol, 3)) @ rng.standard_normal((3, n_rois))
    x += rng.standard_normal((n_vol, n_rois))
    return (x - x.mean(0)) / x.std(0, ddof=1)


@pytest.mark.parametrize("n_vol", [90, 8])  # more, then fewer volumes than ROIs
def test_partial_correlation_matches_nilearn(n_vol: int) -> None:
    x = _signals(n_vol)
    measure = ConnectivityMeasure(
        kind="partial correlation",
        cov_estimator=LedoitWolf(store_precision=False),
        standardize=False,
    )
    ref = measure.fit_transform([x])[0]
    np.testing.assert_allclose(partial_correlation(x), ref, atol=1e-10)
    cov = ledoit_wolf_covariance(x)
    np.testing.assert_allclose(cov, LedoitWolf().fit(x).covariance_, atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0  # positive definite even when T < R


def test_empty_parcels_are_zero_in_every_kind() -> None:
    x = _signals()
    x[:, 3] = 0.0
    empty = np.zeros(12, dtype=bool)
    empty[3] = True
    keep = np.flatnonzero(~empty)
    for func in (pearson_fc, partial_correlation, ledoit_wolf_covariance):
        m = func(x, empty)
        assert not m[3].any() and not m[:, 3].any() and np.allclose(m, m.T)
    np.testing.assert_allclose(
        partial_correlation(x, empty)[np.ix_(keep, keep)], partial_correlation(x[:, keep])
    )


def test_fisher_z_and_windows() -> None:
    r = pearson_fc(_signals())
    z = fisher_z_matrix(r)
    assert np.all(np.diag(z) == 0) and np.isfinite(z).all()
    iu = np.triu_indices(12, 1)
    np.testing.assert_allclose(np.tanh(z[iu]), r[iu])
    assert window_starts(1200, 500) == [0, 500]
    assert window_starts(1250, 500, 250) == [0, 250, 500, 750]
    assert window_starts(1200, 500, 250) == [0, 250, 500]
    assert window_starts(499, 500) == []


def test_connectome_settings() -> None:
    s = ConnectomeSettings.from_json('{"kinds": ["covariance"], "window": {"length": 30}}')
    assert s.kinds == ("pearson", "covariance") and s.window_length == 30 and s.window_step is None
    assert ConnectomeSettings.from_dict({}).to_dict() == {
        "kinds": ["pearson"],
        "fisher_z": False,
        "window": {"length": None, "step": None},
    }
    for bad, message in [
        ({"kinds": ["tangent"]}, "invalid connectome setting at 'kinds.0'"),
        ({"window": {"step": 5}}, "window.step .* window.length is null"),
        ({"window": {"length": 3}}, "invalid connectome setting at 'window.length'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ConnectomeSettings.from_dict(bad)


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _voxel_run(tmp_path: Path, atlas, connectome: dict) -> dict:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, files)])
    return process_voxel_run(
        "tiny",
        record,
        RUN,
        atlas,
        DenoiseSettings.from_dict(DENOISE),
        tmp_path / "conn",
        tmp_path / "qc" / f"{RUN}.json",
        connectome=ConnectomeSettings.from_dict(connectome),
    )


def test_voxel_run_writes_kinds_fisher_z_and_windows(tmp_path: Path, atlas) -> None:
    connectome = {
        "kinds": ["pearson", "partial", "covariance"],
        "fisher_z": True,
        "window": {"length": 30, "step": 15},
    }
    qc = _voxel_run(tmp_path, atlas, connectome)
    assert qc["included"] and qc["n_windows"] == 3 and qc["window_note"] == ""
    func = tmp_path / "conn" / "sub-01" / "func"
    stem = f"{RUN}_space-{SPACE}_seg-aal116"
    names = {Path(p).name for p in qc["relmats"]}
    assert {
        f"{stem}_stat-pearsoncorrelation_relmat.tsv",
        f"{stem}_stat-partialcorrelation_relmat.tsv",
        f"{stem}_stat-covariance_relmat.tsv",
        f"{stem}_desc-fisherz_stat-pearsoncorrelation_relmat.tsv",
        f"{stem}_desc-fisherz_stat-partialcorrelation_relmat.tsv",
        f"{stem}_desc-win002_stat-pearsoncorrelation_relmat.tsv",
        f"{stem}_desc-win002fisherz_stat-pearsoncorrelation_relmat.tsv",
    } <= names
    assert f"{stem}_desc-fisherz_stat-covariance_relmat.tsv" not in names
    assert qc["relmat"] == str(func / f"{stem}_stat-pearsoncorrelation_relmat.tsv")

    ts = pd.read_csv(func / f"{stem}_stat-mean_timeseries.tsv", sep="\t").to_numpy()
    empty = ~ts.any(axis=0)
    _, cov = read_relmat(func / f"{stem}_stat-covariance_relmat.tsv")
    np.testing.assert_allclose(cov, ledoit_wolf_covariance(ts, empty), atol=1e-9)
    _, win = read_relmat(func / f"{stem}_desc-win001_stat-pearsoncorrelation_relmat.tsv")
    np.testing.assert_allclose(win, pearson_fc(ts[15:45], empty), atol=1e-9)
    _, whole = read_relmat(qc["relmat"])
    assert not np.allclose(win, whole)
    side = json.loads(
        (func / f"{stem}_desc-win001_stat-pearsoncorrelation_relmat.json").read_text()
    )
    assert side["Window"] == 1 and side["WindowVolumes"] == [15, 45]
    assert side["Denoise"]["strategy"] == "24P" and side["Connectome"]["window"]["length"] == 30
    table = collect_qc([tmp_path / "qc" / f"{RUN}.json"], tmp_path / "qc.tsv")
    assert table.loc[0, "n_windows"] == 3 and table.loc[0, "strategy"] == "24P"


def test_run_shorter_than_window_keeps_whole_run(tmp_path: Path, atlas) -> None:
    qc = _voxel_run(tmp_path, atlas, {"window": {"length": 500}})
    assert qc["included"] and qc["n_windows"] == 0 and Path(qc["relmat"]).is_file()
    assert "fewer than one window of 500" in qc["window_note"]
    with pytest.raises(ConfigError, match=r"longer than every run .* keeps 64 volumes"):
        collect_qc([tmp_path / "qc" / f"{RUN}.json"], tmp_path / "qc.tsv")
    assert not (tmp_path / "qc.tsv").exists()


def test_timeseries_cli_kinds_and_too_long_window(tmp_path: Path, atlas) -> None:
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    for sub, n_vol in (("01", 80), ("02", 50)):
        write_roi_run(root, sub, pd.DataFrame(_signals(n_vol, 116, int(sub)), columns=names))
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest)

    def run(connectome: dict) -> int:
        return connectome_timeseries(
            manifest,
            out_dir=tmp_path / "conn",
            qc_table=tmp_path / "qc.tsv",
            denoise={"min_volumes": 20, "min_dof": None},
            connectome=connectome,
        )

    assert run({"kinds": ["partial"], "window": {"length": 60}}) == 0
    qc = read_qc_table(tmp_path / "qc.tsv").set_index("subject")
    assert qc.loc["01", "n_windows"] == 1 and qc.loc["02", "n_windows"] == 0
    assert "fewer than one window" in qc.loc["02", "window_note"]
    assert "partialcorrelation" in qc.loc["02", "relmats"]
    with pytest.raises(ConfigError, match=r"longer than every run .* keeps 80 volumes"):
        run({"window": {"length": 100}})
    before = sorted((tmp_path / "conn").rglob("*.tsv"))  # refused: nothing removed
    assert any("partialcorrelation" in p.name for p in before)
    # Rerun with the defaults: no partial correlation or window of the first run is left.
    assert run({}) == 0
    left = sorted(p.name for p in (tmp_path / "conn").rglob("*_relmat.tsv"))
    assert len(left) == 2 and all("_stat-pearsoncorrelation_relmat" in n for n in left)
    assert not any("desc-win" in n for n in left)


def test_cli_run_min_coverage_and_kinds(tmp_path: Path) -> None:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    # A brain mask cut at a z plane: parcels across it are partly covered.
    mask = crop_labels() > 0
    mask[:, :, : CROP_SHAPE[2] // 2] = False
    save_nifti(files["mask"], mask.astype(np.uint8))
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, files)])

    def run(min_coverage: str, tag: str) -> dict:
        qc_out = tmp_path / tag / "qc.json"
        rc = cli(
            connectome_cmd,
            [
                "connectome",
                "run",
                "--dataset",
                "tiny",
                "--fmriprep-record",
                str(record),
                "--run-key",
                RUN,
                "--atlas-name",
                "aal116",
                "--min-coverage",
                min_coverage,
                "--denoise",
                json.dumps(DENOISE),
                "--connectome",
                '{"kinds": ["covariance"]}',
                "--out-dir",
                str(tmp_path / tag),
                "--qc-out",
                str(qc_out),
            ],
        )
        assert rc == 0
        return json.loads(qc_out.read_text())

    loose, strict = run("0.1", "loose"), run("1.0", "strict")
    assert len(strict["empty_rois"]) > len(loose["empty_rois"])
    assert set(loose["empty_rois"]) <= set(strict["empty_rois"])
    assert any(p.endswith("stat-covariance_relmat.tsv") for p in strict["relmats"])
    side = json.loads(Path(strict["relmat"]).with_suffix(".json").read_text())
    assert side["EmptyROIPolicy"].startswith("coverage below 1.0")
    with pytest.raises(ConfigError, match=r"--min-coverage must lie in \[0, 1\]"):
        run("1.5", "bad")


def test_a_rerun_with_other_settings_leaves_none_of_the_earlier_files(
    tmp_path: Path, atlas
) -> None:
    """Snakemake knows a run's QC record only: the partial correlation and windows of an
    earlier run stayed beside the new files, and so did every matrix of a run since excluded.
    A file LCM did not write, or one changed since, is left."""
    func = tmp_path / "conn" / "sub-01" / "func"
    stem = f"{RUN}_space-{SPACE}_seg-aal116"
    first = _voxel_run(tmp_path, atlas, {"kinds": ["partial"], "window": {"length": 30}})
    assert len(first["window_relmats"]) == 2
    mine = func / f"{stem}_desc-notes_stat-pearsoncorrelation_relmat.tsv"
    mine.write_text("a user's file\n")  # no LCM record: never removed
    other_run = func / f"{RUN}0_space-{SPACE}_seg-aal116_stat-pearsoncorrelation_relmat.tsv"
    changed = func / f"{stem}_desc-win001_stat-pearsoncorrelation_relmat.tsv"

    qc = _voxel_run(tmp_path, atlas, {"window": {"length": 60}})
    written = {Path(p).name for p in [qc["timeseries"], *qc["relmats"]]}
    on_disk = {p.name for p in func.glob("*.tsv")}
    assert on_disk == written | {mine.name}
    for name in written:  # each with its record
        assert (func / name).with_suffix(".json").is_file()
    assert not (func / f"{stem}_stat-partialcorrelation_relmat.json").exists()

    # Excluded now (too few volumes): its files go; one edited since LCM wrote it stays.
    _voxel_run(tmp_path, atlas, {"window": {"length": 30}})
    changed.write_text(changed.read_text() + "\n")
    other_run.write_text("another run's\n")
    excluded = process_voxel_run(
        "tiny",
        tmp_path / "rec.json",
        RUN,
        atlas,
        DenoiseSettings.from_dict({**DENOISE, "min_volumes": 500}),
        tmp_path / "conn",
        tmp_path / "qc" / f"{RUN}.json",
    )
    assert not excluded["included"]
    assert {p.name for p in func.glob("*.tsv")} == {mine.name, changed.name, other_run.name}
