"""lcm connectome timeseries: ROI time-series datasets from a manifest to relmats and QC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    cli,
    connectome_timeseries,
    read_qc_table,
    roi_series,
    write_roi_run,
)
from nilearn import signal

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.catalogue import load_catalogue
from lcm.commands import store as store_cmd
from lcm.connectome.confounds import STRATEGIES
from lcm.connectome.coverage import cleaned_empty, constant_columns, empty_parcels
from lcm.connectome.roi_runs import settings_read
from lcm.exceptions import ExcludedRunError
from lcm.io.paths import connectome_path
from lcm.io.relmat import read_relmat, write_relmat, write_timeseries
from lcm.store.read import load_cohort

N_VOL = 57
T_R = 0.72
# min_dof: 57 volumes at TR 0.72 s hold fewer degrees of freedom in the band than the default
# floor; that floor is tested apart (test_connectome_dof.py).
DENOISE = {
    "high_pass": 0.01,
    "low_pass": 0.1,
    "detrend": True,
    "min_volumes": 45,
    "min_dof": None,
}


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _write_run(root: Path, sub: str, table: pd.DataFrame, meta: dict | None = None) -> Path:
    """This file's runs: TR 0.72 s (HCP's), files in MNI152NLin6Asym space."""
    return write_roi_run(root, sub, table, T_R, meta, space="MNI152NLin6Asym")


@pytest.fixture
def dataset(tmp_path: Path, atlas) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    paths = {}
    paths["01"] = _write_run(
        root,
        "01",
        pd.DataFrame(roi_series(seed=1, n_vol=N_VOL), columns=names),
        {"MeanFramewiseDisplacement": 0.12},
    )
    wrong_atlas = pd.DataFrame(roi_series(100, seed=2, n_vol=N_VOL))
    paths["02"] = _write_run(root, "02", wrong_atlas)
    with_fd = pd.DataFrame(roi_series(seed=3, n_vol=N_VOL), columns=names)
    fd = np.full(N_VOL, 0.1)
    fd[[5, 6, 30]] = 0.8
    fd[0] = np.nan
    with_fd["framewise_displacement"] = fd
    with_fd[names[4]] = 7.0  # a flat parcel
    paths["03"] = _write_run(root, "03", with_fd)
    nan = pd.DataFrame(roi_series(seed=4, n_vol=N_VOL), columns=names)
    nan.iloc[10, 3] = np.nan
    paths["04"] = _write_run(root, "04", nan)
    paths["05"] = _write_run(root, "05", pd.DataFrame(roi_series(seed=5, n_vol=30), columns=names))
    paths["06"] = _write_run(
        root, "06", pd.DataFrame(roi_series(seed=6, n_vol=N_VOL), columns=names)
    )
    paths["06"].with_suffix(".json").unlink()  # no TR: excluded by ingest already
    return root, paths


def _run(
    tmp_path: Path, root: Path, denoise: dict | None = None, connectome: dict | None = None
) -> pd.DataFrame:
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest)
    qc_path = tmp_path / "qc" / "ts.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        denoise=denoise or DENOISE,
        connectome=connectome,
    )
    assert rc == 0
    return read_qc_table(qc_path)


def _store(tmp_path: Path, subjects: list[str]) -> Path:
    """``lcm store`` of the QC table :func:`_run` wrote; the store's root."""
    pheno = tmp_path / "participants.tsv"
    pheno.write_text("participant_id\tsex\n" + "".join(f"sub-{s}\tF\n" for s in subjects))
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(
        "variables:\n  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}\n"
        "datasets:\n  ts:\n    id_column: participant_id\n    columns: {sex: {column: sex}}\n"
    )
    store = tmp_path / "store"
    args = ["--qc-table", str(tmp_path / "qc" / "ts.tsv"), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "aal116", "--store-dir", str(store)]
    assert cli(store_cmd, ["store", "--dataset", "ts", *args]) == 0
    return store


def test_timeseries_manifest_to_relmats(tmp_path: Path, dataset, atlas) -> None:
    root, paths = dataset
    qc = _run(tmp_path, root).set_index("subject")
    assert list(qc.index) == ["01", "02", "03", "04", "05", "06"]
    assert qc["included"].to_dict() == {
        "01": True,
        "02": False,
        "03": True,
        "04": False,
        "05": False,
        "06": False,
    }
    assert "100 ROI columns but atlas 'aal116' has 116" in qc.loc["02", "reason"]
    assert "missing or non-numeric" in qc.loc["04", "reason"]
    assert "the run has 30 volumes; at least 45" in qc.loc["05", "reason"]
    assert "no JSON sidecar" in qc.loc["06", "reason"]
    assert qc.loc["01", "mean_fd"] == pytest.approx(0.12)
    assert qc.loc["01", "timeseries"] == str(paths["01"])
    assert qc.loc["03", "n_volumes_kept"] == N_VOL - 3 and qc.loc["01", "n_volumes_kept"] == N_VOL
    assert qc.loc["03", "empty_rois"] == atlas.labels["name"][4]

    # Subject 01: FC is Pearson of nilearn's cleaned signals (no confounds, no scrubbing).
    names, fc = read_relmat(qc.loc["01", "relmat"])
    assert names == atlas.labels["name"].tolist()
    raw = pd.read_csv(paths["01"], sep="\t").to_numpy()
    ref = signal.clean(
        raw, detrend=True, standardize="zscore_sample", low_pass=0.1, high_pass=0.01, t_r=T_R
    )
    np.testing.assert_allclose(fc, np.corrcoef(ref.T), atol=1e-10)
    rel = Path(qc.loc["01", "relmat"])
    assert rel.name == (
        "sub-01_task-rest_space-MNI152NLin6Asym_seg-aal116_stat-pearsoncorrelation_relmat.tsv"
    )
    side = json.loads(rel.with_suffix(".json").read_text())
    assert side["Sources"][0] == str(paths["01"]) and side["RepetitionTime"] == T_R

    # Subject 03: volumes with FD > 0.5 are scrubbed; the flat parcel's row and column are 0.
    names, fc3 = read_relmat(qc.loc["03", "relmat"])
    assert (fc3[4] == 0).all() and (fc3[:, 4] == 0).all() and fc3[5, 5] == 1.0
    table = pd.read_csv(paths["03"], sep="\t", na_values=["n/a"])
    fd = table.pop("framewise_displacement").fillna(0).to_numpy()
    keep = np.flatnonzero(fd <= 0.5)
    ref3 = signal.clean(
        table.to_numpy(),
        detrend=True,
        standardize="zscore_sample",
        low_pass=0.1,
        high_pass=0.01,
        t_r=T_R,
        sample_mask=keep,
    )
    ok = np.arange(116) != 4
    np.testing.assert_allclose(fc3[np.ix_(ok, ok)], np.corrcoef(ref3[:, ok].T), atol=1e-10)
    assert not (tmp_path / "conn" / "sub-02").exists()
    assert (tmp_path / "conn" / "dataset_description.json").is_file()


def test_qc_records_the_scrubbing_that_applied(tmp_path: Path, dataset) -> None:
    """A series without an FD column (denoised elsewhere, XCP-D) is not scrubbed: its QC row
    and sidecar say fd_threshold n/a and % scrubbed n/a, not 0.5 and 0 %."""
    root, _ = dataset
    qc = _run(tmp_path, root).set_index("subject")
    assert qc.loc["01", "strategy"] == "none"
    assert np.isnan(qc.loc["01", "fd_threshold"]) and np.isnan(qc.loc["01", "pct_scrubbed"])
    side = json.loads(Path(qc.loc["01", "relmat"]).with_suffix(".json").read_text())
    assert side["Denoise"]["fd_threshold"] is None
    # Subject 03 carries framewise_displacement: scrubbed at 0.5 mm, 3 of its volumes.
    assert qc.loc["03", "fd_threshold"] == 0.5
    assert qc.loc["03", "pct_scrubbed"] == pytest.approx(round(300 / N_VOL, 2))
    side = json.loads(Path(qc.loc["03", "relmat"]).with_suffix(".json").read_text())
    assert side["Denoise"]["fd_threshold"] == 0.5
    assert np.isnan(qc.loc["02", "fd_threshold"])  # excluded before any scrubbing


def test_run_too_short_to_filter_is_excluded_not_fatal(tmp_path: Path, dataset, atlas) -> None:
    # 25 volumes pass min_volumes=10 but not scipy's filtfilt padding: that run is excluded
    # with the reason and the fix; the other runs still get their matrices.
    root, _ = dataset
    names = atlas.labels["name"].tolist()
    _write_run(root, "07", pd.DataFrame(roi_series(seed=7, n_vol=25), columns=names))
    qc = _run(tmp_path, root, {**DENOISE, "min_volumes": 10}).set_index("subject")
    assert not qc.loc["07", "included"]
    assert "25 volumes are too few to band-pass filter" in qc.loc["07", "reason"]
    assert qc.loc["01", "included"] and Path(qc.loc["01", "relmat"]).is_file()
    assert not (tmp_path / "conn" / "sub-07").exists()


def _pandas_tsv(path: Path, df: pd.DataFrame) -> bytes:
    df.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path.read_bytes()


def test_relmat_and_timeseries_text_as_pandas_writes_it(tmp_path: Path) -> None:
    # write_relmat/write_timeseries format floats themselves (pandas was a third of the
    # ROI time-series job): the bytes must be what pandas' to_csv wrote.
    rng = np.random.default_rng(5)
    odd = [0.0, -0.0, 1.0, 1e-05, 1e16, 1.5e300, 5e-324, np.inf, -np.inf, 0.1, 123456.789]
    a = rng.standard_normal((6, 6)) * 10.0 ** rng.integers(-20, 20, (6, 6))
    a.flat[: len(odd)] = odd
    sym = (a + a.T) / 2
    sym[0, 1], sym[1, 0] = 0.0, -0.0  # equal as numbers, printed apart
    names = [f"R{i}" for i in range(6)]
    for i, m in enumerate([a, sym, (a + a.T) / 2, np.where(a > 1, np.nan, a)]):
        path = tmp_path / f"m{i}_relmat.tsv"
        write_relmat(path, names, m)
        ref = pd.DataFrame(m, columns=names)
        ref.insert(0, "Node", names)
        assert path.read_bytes() == _pandas_tsv(tmp_path / "ref.tsv", ref), i
    for odd_names in (["a b", "c"], ['q"uote', "x"], ["tab\tbed", "y"], ["", "z"]):  # quoted
        write_relmat(tmp_path / "n_relmat.tsv", odd_names, np.eye(2))
        ref = pd.DataFrame(np.eye(2), columns=odd_names)
        ref.insert(0, "Node", odd_names)
        assert (tmp_path / "n_relmat.tsv").read_bytes() == _pandas_tsv(tmp_path / "r.tsv", ref)
    for signals in (a[:, :4], a[:, :4].astype(np.float32), np.zeros((0, 4))):
        write_timeseries(tmp_path / "t_timeseries.tsv", names[:4], signals)
        ref = pd.DataFrame(signals, columns=names[:4])
        assert (tmp_path / "t_timeseries.tsv").read_bytes() == _pandas_tsv(tmp_path / "r.tsv", ref)


def test_relmat_roundtrip_and_validation(tmp_path: Path) -> None:
    names = ["Precentral_L", "Precentral_R", "Frontal_Sup_L"]
    m = np.array([[1.0, 0.25, -0.5], [0.25, 1.0, 0.125], [-0.5, 0.125, 1.0]])
    path = tmp_path / "x_relmat.tsv"
    write_relmat(path, names, m)
    assert path.read_text().splitlines()[0].split("\t") == ["Node", *names]
    got_names, got = read_relmat(path)
    assert got_names == names
    np.testing.assert_array_equal(got, m)
    pd.DataFrame(m, columns=names).to_csv(path, sep="\t", index=False)
    with pytest.raises(Exception, match="first column must be 'Node'"):
        read_relmat(path)
    with pytest.raises(ValueError, match="does not match 2 ROI names"):
        write_relmat(path, names[:2], m)


def test_xcpd_uncovered_parcel_is_an_empty_roi(tmp_path: Path, atlas) -> None:
    """XCP-D writes a parcel below its --min-coverage as n/a throughout: the run stays, the
    parcel is empty (its FC row 0), as this stage writes its own (the run was excluded for its
    'missing or non-numeric values' before). A parcel with one n/a volume still excludes."""
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    uncovered = pd.DataFrame(roi_series(seed=1, n_vol=N_VOL), columns=names)
    uncovered[[names[9], names[70]]] = np.nan
    _write_run(root, "01", uncovered)
    holed = pd.DataFrame(roi_series(seed=2, n_vol=N_VOL), columns=names)
    holed.iloc[3, 9] = np.nan
    _write_run(root, "02", holed)
    assert next(root.glob("sub-01/func/*.tsv")).read_text().splitlines()[1].count("n/a") == 2
    qc = _run(tmp_path, root).set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": False}
    assert qc.loc["01", "empty_rois"] == f"{names[9]},{names[70]}"
    assert "missing or non-numeric" in qc.loc["02", "reason"]
    _, fc = read_relmat(qc.loc["01", "relmat"])
    assert not fc[[9, 70]].any() and not fc[:, [9, 70]].any()
    assert np.isfinite(fc).all() and np.abs(fc[0, 1:9]).max() > 0


def test_xcpd_motion_file_gives_the_runs_mean_fd(tmp_path: Path, atlas) -> None:
    """XCP-D keeps FD in <run>_desc-filtered_motion.tsv beside the series: its mean is the run's
    mean_fd (none was known before: the report's motion checks had no XCP-D run)."""
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    series = _write_run(root, "01", pd.DataFrame(roi_series(seed=1, n_vol=N_VOL), columns=names))
    fd = np.r_[np.nan, np.linspace(0.1, 0.3, N_VOL - 1)]
    motion = pd.DataFrame({"trans_x": 0.0, "framewise_displacement": fd})
    motion.to_csv(
        series.parent / "sub-01_task-rest_desc-filtered_motion.tsv",
        sep="\t",
        index=False,
        na_rep="n/a",
    )
    other = motion.assign(framewise_displacement=5.0)  # another run's: not this one's
    other.to_csv(series.parent / "sub-01_task-rest_run-2_desc-filtered_motion.tsv", sep="\t")
    _write_run(root, "02", pd.DataFrame(roi_series(seed=2, n_vol=N_VOL), columns=names))
    qc = _run(tmp_path, root).set_index("subject")
    assert qc.loc["01", "mean_fd"] == pytest.approx(0.2)
    assert np.isnan(qc.loc["02", "mean_fd"])  # no motion file, no FD column, no sidecar value
    assert qc.loc["01", "n_volumes_kept"] == N_VOL  # XCP-D censored already: nothing scrubbed


def test_series_columns_are_read_by_name(tmp_path: Path, atlas) -> None:
    """Columns sorted otherwise are the atlas's ROIs read by name (refused before); the index
    column of pandas' to_csv is left out (157 columns before); a file lacking ROIs names them."""
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    data = pd.DataFrame(roi_series(seed=1, n_vol=N_VOL), columns=names)
    _write_run(root, "01", data)
    _write_run(root, "02", data[sorted(names)])
    indexed = _write_run(root, "03", data)
    data.to_csv(indexed, sep="\t")  # with its index, as pandas writes by default
    _write_run(root, "04", data.drop(columns=names[:2]))
    qc = _run(tmp_path, root).set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": True, "03": True, "04": False}
    _, fc01 = read_relmat(qc.loc["01", "relmat"])
    for sub in ("02", "03"):
        got, fc = read_relmat(qc.loc[sub, "relmat"])
        assert got == names
        np.testing.assert_allclose(fc, fc01, atol=1e-10)
    assert f"lacks 2: {names[0]!r}, {names[1]!r}" in qc.loc["04", "reason"]


def test_roi_varying_only_in_scrubbed_volumes_is_empty_and_stored(tmp_path: Path, atlas) -> None:
    """An ROI constant over the kept volumes, varying only in scrubbed (high-FD) ones, is an
    empty ROI (its FC row 0, listed in EmptyROIs). It was judged constant over every volume
    before: not empty, its cleaned signal 0, its FC row NaN, and `lcm store` refused the whole
    dataset for that one included run."""
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    for sub, seed in (("01", 1), ("02", 2)):
        table = pd.DataFrame(roi_series(seed=seed, n_vol=N_VOL), columns=names)
        fd = np.full(N_VOL, 0.1)
        if sub == "02":
            fd[[5, 6, 30]] = 0.8
            table[names[7]] = 48.0
            table.loc[[5, 6, 30], names[7]] = [30.0, 70.0, 10.0]  # only where scrubbed
        table["framewise_displacement"] = fd
        _write_run(root, sub, table)
    qc = _run(tmp_path, root).set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": True}
    assert qc.loc["02", "n_volumes_kept"] == N_VOL - 3
    assert qc.loc["02", "empty_rois"] == names[7]
    _, fc = read_relmat(qc.loc["02", "relmat"])
    assert np.isfinite(fc).all()
    assert not fc[7].any() and not fc[:, 7].any() and fc[8, 8] == 1.0
    side = json.loads(Path(qc.loc["02", "relmat"]).with_suffix(".json").read_text())
    assert side["EmptyROIs"] == [names[7]]

    store = _store(tmp_path, ["01", "02"])
    assert connectome_path(store, "aal116", "ts").is_file()
    cohort = load_cohort(store, "aal116", ["ts"], load_catalogue(tmp_path / "variables.yaml"))
    assert list(cohort.ids["subject"]) == ["01", "02"] and np.isfinite(cohort.fc).all()


def test_window_with_a_flat_roi_excludes_the_run_not_the_dataset(tmp_path: Path, atlas) -> None:
    """Unfiltered, unstandardised series keep an ROI constant over one window but not the run:
    that window's r is undefined. The run is excluded with the reason; the dataset is stored
    (the run was included before, with NaN in its window matrix, and `lcm store` refused)."""
    root = tmp_path / "ts"
    names = atlas.labels["name"].tolist()
    _write_run(root, "01", pd.DataFrame(roi_series(seed=1, n_vol=N_VOL), columns=names))
    flat = pd.DataFrame(roi_series(seed=2, n_vol=N_VOL), columns=names)
    flat.loc[:19, names[3]] = 50.0  # constant over the first window of 20 volumes
    _write_run(root, "02", flat)
    raw = {"high_pass": None, "low_pass": None, "detrend": False, "standardize": "none"}
    # min_dof off: 20 unfiltered volumes hold 19 (windows under it: test_connectome_window_dof.py).
    denoise = {**raw, "min_volumes": 45, "min_dof": None}
    qc = _run(tmp_path, root, denoise, {"window": {"length": 20}})
    qc = qc.set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": False}
    assert f"ROI(s) [{names[3]!r}] are constant in window 0" in qc.loc["02", "reason"]
    store = _store(tmp_path, ["01", "02"])
    cohort = load_cohort(store, "aal116", ["ts"], load_catalogue(tmp_path / "variables.yaml"))
    assert set(cohort.ids["subject"]) == {"01"} and np.isfinite(cohort.fc).all()
    assert list(cohort.ids["window"]) == [0, 1]  # 57 volumes: two windows of 20


def test_constancy_is_judged_on_kept_volumes_and_cleaned_signals() -> None:
    """The one empty-parcel policy: constant over the kept volumes (for voxel runs too, given
    their mask), flat once cleaned; a NaN left after cleaning excludes the run."""
    signals = np.tile(np.arange(6.0)[:, None], (1, 3))
    signals[:, 1:] = 2.0
    signals[[0, 5], 2] = [9.0, -9.0]  # varies only in volumes 0 and 5
    kept = np.arange(1, 5)
    assert constant_columns(signals).tolist() == [False, True, False]
    assert constant_columns(signals, kept).tolist() == [False, True, True]
    assert constant_columns(signals[:0]).tolist() == [True, True, True]
    cover = np.ones(3)
    assert empty_parcels(cover, signals).tolist() == [False, True, False]
    assert empty_parcels(cover, signals, sample_mask=kept).tolist() == [False, True, True]
    cleaned = np.c_[np.linspace(-1, 1, 4), np.zeros(4), np.full(4, 1e-3)]
    empty = np.array([False, True, False])
    assert cleaned_empty(cleaned, empty, ["a", "b", "c"], "x.tsv").tolist() == [
        False,
        True,
        True,
    ]
    cleaned[2, 0] = np.nan
    cleaned[1, 1] = np.nan  # an empty parcel's values do not matter
    with pytest.raises(ExcludedRunError, match=r"cleaning x.tsv gave NaN .* 1 ROI\(s\) \['a'\]"):
        cleaned_empty(cleaned, empty, ["a", "b", "c"], "x.tsv")


def test_a_strategy_reaches_roi_series_only_through_its_scrubbing_rule(
    tmp_path: Path, dataset
) -> None:
    """What the workflow passes ROI series of the denoise section (``settings_read``): the
    strategy only where it has a scrubbing rule (min_segment). Any other strategy changes no
    matrix: left out, it gives the ones it gave (so switching among them reruns nothing)."""
    root, _ = dataset
    for name, strategy in STRATEGIES.items():
        kept = "strategy" in settings_read("denoise", {**DENOISE, "strategy": name})
        assert kept == bool(strategy.min_segment), name
    assert settings_read("connectome", {"kinds": ["pearson"]}) == {"kinds": ["pearson"]}
    left_out = settings_read("denoise", {**DENOISE, "strategy": "36P"})
    assert "strategy" not in left_out
    read = _run(tmp_path / "read", root, left_out).set_index("subject")
    for name in ("36P", "acompcor"):
        given = _run(tmp_path / name, root, {**DENOISE, "strategy": name}).set_index("subject")
        assert list(given["included"]) == list(read["included"]), name
        for sub in given.index[given["included"]]:
            _, fc = read_relmat(given.loc[sub, "relmat"])
            _, same = read_relmat(read.loc[sub, "relmat"])
            assert np.array_equal(fc, same), (name, sub)


def test_motion_columns_as_pandas_writes_them_and_text_in_them(tmp_path: Path, dataset) -> None:
    """An FD column saved again by pandas (an empty cell for n/a) stopped the whole dataset
    with "could not convert string to float: ''"; so did a text cell. The first is read as
    missing, the second excludes its run alone."""
    root, paths = dataset
    table = pd.read_csv(paths["03"], sep="\t", na_values=["n/a"], keep_default_na=False)
    table.to_csv(paths["03"], sep="\t", index=False)  # pandas' default: "" for NaN
    assert paths["03"].read_text().splitlines()[1].endswith("\t")  # FD of volume 0: empty
    text = pd.read_csv(paths["01"], sep="\t", na_values=["n/a"], keep_default_na=False)
    text["std_dvars"] = ["x" if i == 7 else "1.0" for i in range(len(text))]
    text.to_csv(paths["01"], sep="\t", index=False, na_rep="n/a")
    qc = _run(tmp_path, root).set_index("subject")
    assert qc.loc["03", "included"] and qc.loc["03", "pct_scrubbed"] == pytest.approx(
        round(300 / N_VOL, 2)
    )
    assert not qc.loc["01", "included"] and qc.loc["01", "reason_code"] == "non_numeric_values"
    assert "column 'std_dvars' holds values that are no numbers (rows [7]" in qc.loc["01", "reason"]
