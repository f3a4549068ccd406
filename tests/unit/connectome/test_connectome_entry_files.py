"""Runs brought as plain files: ROI time series (.tsv .csv .npy .mat .1D), precomputed connectomes.

Each format round-trips its values; each bad file excludes only its own run, with a reason that
names the file and the fix, while the other runs still produce their outputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.connectome import (
    ROI_VOLUMES,
    imported_qc,
    roi_fc,
    roi_series,
    timeseries_qc,
    write_json,
)
from scipy.io import savemat

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest, ingest_dataset
from lcm.bids.selection import Selection
from lcm.cli import main
from lcm.connectome.imported import check_connectome
from lcm.connectome.roi_formats import read_matrix, read_roi_series
from lcm.exceptions import ExcludedRunError, InputDataError
from lcm.io.relmat import read_relmat, write_relmat
from lcm.store.read import connectome_values
from lcm.store.writer import write_connectomes

N_VOL, T_R = ROI_VOLUMES, 2.0


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


@pytest.fixture(scope="module")
def names(atlas) -> list[str]:
    return atlas.labels["name"].tolist()


def _v73(path: Path) -> Path:
    """A file with the 128-byte text header MATLAB writes in front of a v7.3 (HDF5) file."""
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    path.write_bytes(head.ljust(128, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(400))
    return path


# -- readers ---------------------------------------------------------------------------------


def _abide_1d(path: Path, data: np.ndarray) -> Path:
    """As ABIDE Preprocessed writes ``<FILE_ID>_rois_aal.1D``: a ``#`` line of the AAL codes
    (2001, 2002, 2101, ...), then one tab-separated row of values per volume."""
    codes = [2001 + 100 * (i // 2) + i % 2 for i in range(data.shape[1])]
    head = "\t".join(f"#{c}" for c in codes)
    body = "\n".join("\t".join(f"{v:.17g}" for v in row) for row in data)
    path.write_text(f"{head}\n{body}\n")
    return path


@pytest.mark.parametrize("ext", [".tsv", ".csv", ".npy", ".mat", ".1D"])
def test_series_formats_round_trip(tmp_path: Path, names, ext: str) -> None:
    data = roi_series(seed=1)
    path = tmp_path / f"sub-01{ext}"
    if ext == ".tsv":
        pd.DataFrame(data, columns=names).to_csv(path, sep="\t", index=False)
    elif ext == ".csv":
        np.savetxt(path, data, delimiter=",", fmt="%.17g")
    elif ext == ".npy":
        np.save(path, data)
    elif ext == ".1D":
        _abide_1d(path, data)
    else:
        savemat(path, {"ROISignals": data, "other": np.arange(3.0)[None]})
    table = read_roi_series(path, names)
    assert list(table.columns) == names and table.shape == (N_VOL, 116)
    np.testing.assert_array_equal(table.to_numpy(np.float64), data)


@pytest.mark.parametrize("layout", ["relmat", "csv_header", "csv_plain", "npy", "mat"])
def test_matrix_formats_round_trip(tmp_path: Path, names, layout: str) -> None:
    fc = roi_fc(seed=2)
    if layout == "relmat":
        path = tmp_path / "m.tsv"
        write_relmat(path, names, fc)
    elif layout == "csv_header":
        path = tmp_path / "m.csv"
        pd.DataFrame(fc, index=names, columns=names).to_csv(path, float_format="%.17g")
    elif layout == "csv_plain":
        path = tmp_path / "m.csv"
        np.savetxt(path, fc, delimiter=",", fmt="%.17g")
    elif layout == "npy":
        path = tmp_path / "m.npy"
        np.save(path, fc)
    else:
        path = tmp_path / "m.mat"
        savemat(path, {"connectivity": fc})
    found, matrix = read_matrix(path)
    assert found == (names if layout in ("relmat", "csv_header") else None)
    np.testing.assert_allclose(matrix, fc, rtol=0, atol=1e-15)


def test_afni_1d_names_and_faults(tmp_path: Path, names) -> None:
    """A ``#`` line of words names the columns (checked against the atlas by the caller); a
    line of another length is ignored as a comment; ragged or non-numeric rows are refused."""
    data = roi_series(seed=2)[:, :3]
    named = tmp_path / "sub-01.1D"
    named.write_text(
        "# Precentral_L  Precentral_R  Frontal_Sup_L\n"
        + "\n".join(" ".join(map(str, row)) for row in data)
    )
    assert list(read_roi_series(named, names).columns) == names[:3]
    comment = tmp_path / "sub-02.1D"
    comment.write_text("# made by 3dmaskave\n# two lines\n1 2\n3 4\n")
    header, values = read_matrix(comment)
    assert header is None and values.tolist() == [[1, 2], [3, 4]]
    ragged = tmp_path / "sub-03.1D"
    ragged.write_text("1 2 3\n4 5\n")
    with pytest.raises(ExcludedRunError, match=r"sub-03\.1D: line 2 has 2 values, the first row 3"):
        read_roi_series(ragged, names)
    text = tmp_path / "sub-04.1D"
    text.write_text("1 2\n3 x\n")
    with pytest.raises(ExcludedRunError, match=r"(?s)sub-04\.1D: .*numbers only"):
        read_roi_series(text, names)
    (tmp_path / "sub-05.1D").write_text("# only a comment\n")
    with pytest.raises(ExcludedRunError, match=r"sub-05\.1D holds no rows"):
        read_roi_series(tmp_path / "sub-05.1D", names)


def test_series_bad_files_name_the_file_and_fix(tmp_path: Path, names) -> None:
    wrong = tmp_path / "sub-02.npy"
    np.save(wrong, roi_series(100))
    with pytest.raises(ExcludedRunError, match=r"sub-02\.npy has 100 ROI columns .* 116 ROIs"):
        read_roi_series(wrong, names)
    transposed = tmp_path / "sub-03.csv"
    np.savetxt(transposed, roi_series().T, delimiter=",")
    with pytest.raises(ExcludedRunError, match=r"(?s)sub-03\.csv .*hint: It looks transposed"):
        read_roi_series(transposed, names)
    with pytest.raises(ExcludedRunError, match=r"(?s)sub-04\.mat is a MATLAB v7\.3 .*'-v7'"):
        read_roi_series(_v73(tmp_path / "sub-04.mat"), names)
    two = tmp_path / "sub-05.mat"
    savemat(two, {"a": roi_series(), "b": roi_series(seed=3)})
    with pytest.raises(ExcludedRunError, match=r"sub-05\.mat: cannot tell which variable.*"):
        read_roi_series(two, names)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda m: m[:, :-1], r"is 116 x 115, not a square"),
        (lambda m: m[:100, :100], r"has 100 ROIs but atlas 'aal116' has 116"),
        (lambda m: np.where(np.eye(116, k=3) > 0, np.nan, m), r"3 ?|NaN or infinite"),
        (lambda m: m + np.triu(np.full_like(m, 0.05), 1), r"not symmetric"),
        (lambda m: np.arctanh(np.clip(m, -0.999, 0.999)) * 3, r"(?s)outside \[-1, 1\].*tanh"),
        (lambda m: m - np.eye(116), r"(?s)diagonal value 0.*fill_diagonal"),
    ],
    ids=["non-square", "wrong-size", "nan", "asymmetric", "fisher-z", "zero-diagonal"],
)
def test_bad_connectomes_are_refused_with_the_fix(make, pattern: str) -> None:
    with pytest.raises(ExcludedRunError, match=r"m\.npy") as err:
        check_connectome(make(roi_fc()), "m.npy", 116, "aal116")
    assert err.match(pattern)


def test_empty_roi_rows_are_accepted() -> None:
    fc = roi_fc()
    fc[7, :] = fc[:, 7] = 0.0
    out = check_connectome(fc, "m.npy", 116, "aal116")
    assert out[7, 7] == 0 and np.array_equal(out, out.T)


def test_xcpd_nan_parcels_become_empty_rois() -> None:
    """XCP-D writes a parcel below its coverage threshold as a NaN row and column (the
    diagonal NaN or 1): an empty ROI, as the connectome stage writes them (excluded before)."""
    fc = roi_fc()
    fc[7, :] = fc[:, 7] = np.nan
    fc[20, :] = fc[:, 20] = np.nan
    fc[20, 20] = 1.0
    out = check_connectome(fc, "m.npy", 116, "aal116")
    assert np.isfinite(out).all() and not out[[7, 20]].any() and not out[:, [7, 20]].any()
    np.testing.assert_allclose(np.delete(out, [7, 20], 0)[:, 0], np.delete(roi_fc()[:, 0], [7, 20]))
    half = roi_fc()
    half[7, :] = np.nan  # a row without its column: not a parcel XCP-D left out
    with pytest.raises(ExcludedRunError, match="NaN or infinite"):
        check_connectome(half, "m.npy", 116, "aal116")
    with pytest.raises(ExcludedRunError, match="NaN or infinite"):
        check_connectome(np.full((116, 116), np.nan), "m.npy", 116, "aal116")


# -- ROI time-series datasets ----------------------------------------------------------------


def test_folder_of_series_files(tmp_path: Path, names) -> None:
    root = tmp_path / "series"
    root.mkdir()
    data = roi_series(seed=5)
    np.save(root / "sub-01_ses-1_run-1.npy", data)
    pd.DataFrame(data, columns=names).to_csv(root / "sub-05.tsv", sep="\t", index=False)
    np.savetxt(root / "sub-02.csv", roi_series(100), delimiter=",")  # wrong atlas
    savemat(root / "ROISignals_0050003.mat", {"ROISignals": roi_series(seed=6)})
    _v73(root / "ROISignals_0050004.mat")
    write_json(root / "sub-06.json", {"RepetitionTime": 0.8})  # sidecar beats the dataset TR
    np.save(root / "sub-06.npy", roi_series(seed=7))
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")  # not a run: ignored
    qc = timeseries_qc(tmp_path, root, repetition_time=T_R)

    assert sorted(qc.index) == ["0050003", "0050004", "01", "02", "05", "06"]
    assert qc["included"].to_dict() == {
        "0050003": True,
        "0050004": False,
        "01": True,
        "02": False,
        "05": True,
        "06": True,
    }
    assert "sub-02.csv has 100 ROI columns" in qc.loc["02", "reason"]
    assert "ROISignals_0050004.mat is a MATLAB v7.3" in qc.loc["0050004", "reason"]
    assert qc.loc["06", "t_r"] == 0.8 and qc.loc["01", "t_r"] == T_R
    assert qc.loc["01", "run_key"] == "sub-01_ses-1_task-rest_run-1"
    # The .npy run and the .tsv run hold the same numbers: the same connectome.
    names01, fc01 = read_relmat(qc.loc["01", "relmat"])
    _, fc05 = read_relmat(qc.loc["05", "relmat"])
    assert names01 == names
    np.testing.assert_allclose(fc01, fc05, atol=1e-12)
    assert Path(qc.loc["0050003", "relmat"]).name == (
        "sub-0050003_task-rest_seg-aal116_stat-pearsoncorrelation_relmat.tsv"
    )


def test_series_as_pandas_and_numpy_write_them(tmp_path: Path, names) -> None:
    """The usual ways to save a run to text give its connectome: pandas' ``to_csv(index=False)``
    (first row ``0,1,...``: it was read as a volume, 62 volumes and every r near 1) and
    numpy.savetxt with ``header=`` (``# Precentral_L,...``: refused as another atlas)."""
    root = tmp_path / "series"
    root.mkdir()
    data = roi_series(seed=5)
    np.save(root / "sub-01.npy", data)
    pd.DataFrame(data).to_csv(root / "sub-02.csv", index=False)
    pd.DataFrame(data, columns=range(1, 117)).to_csv(root / "sub-03.csv", index=False)
    np.savetxt(root / "sub-04.csv", data, delimiter=",", header=",".join(names))
    np.savetxt(root / "sub-05.tsv", data, delimiter="\t", header="\t".join(names))
    qc = timeseries_qc(tmp_path, root, repetition_time=T_R)
    assert qc["included"].all(), qc["reason"].to_dict()
    assert (qc["n_volumes"] == N_VOL).all()
    _, reference = read_relmat(qc.loc["01", "relmat"])
    for sub in ("02", "03", "04", "05"):
        got, fc = read_relmat(qc.loc[sub, "relmat"])
        assert got == names
        np.testing.assert_allclose(fc, reference, atol=1e-9)


def test_matrices_as_pandas_and_numpy_write_them(tmp_path: Path, names) -> None:
    """A connectome saved with ``to_csv(index=False)`` (refused as 117 x 116, not square) or
    numpy.savetxt's ``header=`` (refused as another atlas's names) is imported."""
    mats = tmp_path / "mats"
    mats.mkdir()
    fc = roi_fc(seed=3)
    pd.DataFrame(fc).to_csv(mats / "sub-01.csv", index=False)
    pd.DataFrame(fc).to_csv(mats / "sub-02.tsv", sep="\t", index=False)
    np.savetxt(mats / "sub-03.csv", fc, delimiter=",", header=",".join(names), fmt="%.17g")
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("pcp", "connectome", mats, manifest)
    qc = imported_qc(tmp_path, manifest)
    assert qc["included"].to_dict() == {"01": True, "02": True, "03": True}, qc["reason"]
    for sub in ("01", "02", "03"):
        got, matrix = read_relmat(qc.loc[sub, "relmat"])
        assert got == names
        np.testing.assert_allclose(matrix, fc, atol=1e-9)
        # Column numbers name no ROI: the sidecar says the atlas order was assumed.
        sidecar = json.loads(Path(qc.loc[sub, "relmat"]).with_suffix(".json").read_text())
        expected = "matched" if sub == "03" else "none (atlas order assumed)"
        assert sidecar["SourceROINames"] == expected


def test_folder_of_abide_preprocessed_files(tmp_path: Path, names, caplog) -> None:
    """ABIDE Preprocessed as nilearn's fetch_abide_pcp saves it: <FILE_ID>_rois_<atlas>.1D
    for several atlases in one folder. The files' atlas is their seg: with atlas.seg aal the
    AAL files are the runs, the CC200 ones other_atlas (the folder was ignored before)."""
    root = tmp_path / "ABIDE_pcp" / "cpac" / "filt_noglobal"
    root.mkdir(parents=True)
    _abide_1d(root / "Pitt_0050002_rois_aal.1D", roi_series(seed=1))
    _abide_1d(root / "Leuven_1_0050682_rois_aal.1D", roi_series(seed=2))
    _abide_1d(root / "Pitt_0050002_rois_cc200.1D", roi_series(200, seed=3))
    _abide_1d(root / "Leuven_1_0050682_rois_cc200.1D", roi_series(200, seed=4))
    with caplog.at_level(logging.INFO, logger="lcm.bids.ingest"):
        qc = timeseries_qc(tmp_path, root, repetition_time=T_R, atlas="aal116", seg="aal")
    # One line for the other parcellation's files, not a warning per file.
    other_lines = [r for r in caplog.records if "seg-cc200" in r.getMessage()]
    assert len(other_lines) == 1 and other_lines[0].levelno == logging.INFO
    assert "2 file(s) of parcellation seg-cc200 left out" in other_lines[0].getMessage()
    assert qc.groupby(level=0)["included"].sum().to_dict() == {"0050002": 1, "0050682": 1}
    assert (qc.loc[qc["included"], "t_r"] == T_R).all()
    runs = qc.loc["0050002"]
    other = runs.loc[~runs["included"], "reason"].iloc[0]
    assert "Pitt_0050002_rois_cc200.1D is of parcellation seg-cc200" in other
    assert "set atlas.seg: cc200" in other
    got, fc = read_relmat(runs.loc[runs["included"], "relmat"].iloc[0])
    assert got == names and np.isfinite(fc).all()
    # Without atlas.seg, the reason says what to set.
    qc = timeseries_qc(tmp_path / "noseg", root, repetition_time=T_R, atlas="aal116")
    assert not qc["included"].any()
    assert "set atlas.seg: aal (--atlas-seg aal)" in " ".join(qc["reason"])


def test_missing_repetition_time_excludes_only_that_run(tmp_path: Path) -> None:
    root = tmp_path / "series"
    root.mkdir()
    np.save(root / "sub-01.npy", roi_series(seed=1))
    np.save(root / "sub-02.npy", roi_series(seed=2))
    write_json(root / "sub-02.json", {"RepetitionTime": T_R})
    qc = timeseries_qc(tmp_path, root)
    assert not qc.loc["01", "included"] and qc.loc["02", "included"]
    reason = qc.loc["01", "reason"]
    assert "sub-01.npy" in reason and "repetition_time" in reason and "sub-01.json" in reason
    assert Path(qc.loc["02", "relmat"]).is_file()


def test_a_repetition_time_in_milliseconds_excludes_its_run_at_ingest(tmp_path: Path) -> None:
    """ROI series have no header to cross-check a TR with: a sidecar's 2000 (ms) was taken as
    2000 s, and the run was excluded later for a high-pass 'above Nyquist', told to lower it.
    An unusable sidecar TR is no_repetition_time, as a BOLD run's, not bad_sidecar."""
    root = tmp_path / "series"
    root.mkdir()
    for sub, t_r in (("01", 2000), ("02", "two"), ("03", 0.72), ("04", None)):
        np.save(root / f"sub-{sub}.npy", roi_series(seed=int(sub)))
        if t_r is not None:
            write_json(root / f"sub-{sub}.json", {"RepetitionTime": t_r})
    df = ingest_dataset("x", "roi_timeseries", root, repetition_time=1500).manifest
    df = df.set_index("subject")
    assert df["reason_code"].to_dict() == {
        "01": "no_repetition_time",
        "02": "no_repetition_time",
        "03": "",
        "04": "no_repetition_time",
    }
    assert "RepetitionTime of sub-01.json is 2000" in df.loc["01", "reason"]
    assert "in milliseconds it is 2 s" in df.loc["01", "reason"]
    assert "datasets.x.repetition_time" in df.loc["04", "reason"]
    assert "in milliseconds it is 1.5 s" in df.loc["04", "reason"]
    assert df.loc["03", "t_r"] == 0.72


def test_dataset_repetition_time_fills_xcpd_runs_without_sidecar(tmp_path: Path, names) -> None:
    root = tmp_path / "xcpd"
    write_json(root / "dataset_description.json", {"Name": "x", "BIDSVersion": "1.10.0"})
    for sub in ("01", "02"):
        path = root / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_stat-mean_timeseries.tsv"
        path.parent.mkdir(parents=True)
        pd.DataFrame(roi_series(seed=int(sub)), columns=names).to_csv(path, sep="\t", index=False)
    write_json(
        root / "sub-02" / "func" / "sub-02_task-rest_stat-mean_timeseries.json",
        {"RepetitionTime": 0.72},
    )
    without = ingest_dataset("x", "roi_timeseries", root).manifest.set_index("subject")
    assert not without.loc["01", "included"] and "no JSON sidecar" in without.loc["01", "reason"]
    assert "datasets.x.repetition_time" in without.loc["01", "reason"]  # the fix named
    filled = ingest_dataset("x", "roi_timeseries", root, repetition_time=T_R).manifest
    filled = filled.set_index("subject")
    assert filled["included"].all()
    assert filled.loc["01", "t_r"] == T_R and filled.loc["02", "t_r"] == 0.72
    assert filled.loc["01", "tr_check"] == "from dataset repetition_time"


def test_listing_maps_abide_names(tmp_path: Path) -> None:
    files = tmp_path / "abide"
    files.mkdir()
    savemat(files / "ROISignals_0050002.mat", {"ROISignals": roi_series(seed=1)})
    savemat(files / "ROISignals_0050009.mat", {"ROISignals": roi_series(seed=2)})
    listing = tmp_path / "listing.tsv"
    listing.write_text(
        "participant_id\tsession\tpath\trepetition_time\n"
        "sub-A2\t1\tabide/ROISignals_0050002.mat\t2.0\n"
        "A9\t\tabide/ROISignals_0050009.mat\t\n"
        "A10\t\tabide/ROISignals_0050010.mat\t2.0\n"
    )
    manifest = ingest_dataset("abide", "roi_timeseries", listing, repetition_time=1.5).manifest
    rows = manifest.set_index("subject")
    assert rows.loc["A2", "session"] == "1" and rows.loc["A2", "t_r"] == 2.0
    assert rows.loc["A9", "t_r"] == 1.5  # the dataset TR fills the empty cell
    assert not rows.loc["A10", "included"] and rows.loc["A10", "reason_code"] == "missing_file"
    assert "ROISignals_0050010.mat" in rows.loc["A10", "reason"]


def test_bad_listing_stops_with_the_file_named(tmp_path: Path) -> None:
    listing = tmp_path / "listing.tsv"
    listing.write_text("subject\tfile\n01\tx.npy\n")
    with pytest.raises(InputDataError, match=r"listing\.tsv lacks column\(s\) \['participant_id'"):
        ingest_dataset("x", "connectome", listing)
    rc = main(
        [
            "ingest",
            "--dataset",
            "x",
            "--entry",
            "connectome",
            "--path",
            str(listing),
            "--out",
            str(tmp_path / "m.parquet"),
        ]
    )
    assert rc == InputDataError.exit_code and not (tmp_path / "m.parquet").exists()


# -- precomputed connectomes -----------------------------------------------------------------


def _xcpd_outputs(func: Path, names: list[str]) -> None:
    """What XCP-D writes per run and atlas: series, relmat, coverage, and the run's motion."""
    func.mkdir(parents=True)
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym_seg-aal116"
    pd.DataFrame(roi_series(seed=1), columns=names).to_csv(
        func / f"{stem}_stat-mean_timeseries.tsv", sep="\t", index=False
    )
    write_relmat(func / f"{stem}_stat-pearsoncorrelation_relmat.tsv", names, roi_fc(seed=1))
    pd.DataFrame([np.ones(len(names))], columns=names).to_csv(
        func / f"{stem}_stat-coverage_bold.tsv", sep="\t", index=False
    )
    pd.DataFrame({"framewise_displacement": np.full(N_VOL, 0.1)}).to_csv(
        func / "sub-01_task-rest_desc-filtered_motion.tsv", sep="\t", index=False
    )


@pytest.mark.parametrize(
    ("entry", "kept"),
    [("connectome", "_relmat.tsv"), ("roi_timeseries", "_timeseries.tsv")],
)
def test_folder_of_xcpd_outputs_keeps_the_entrys_files(
    tmp_path: Path, names, entry: str, kept: str
) -> None:
    """XCP-D's outputs without dataset_description.json: the entry's own file is the run, the
    coverage and motion files beside it are no runs (the coverage file, first by name, was the
    run and the relmat its 'duplicate' before)."""
    _xcpd_outputs(tmp_path / "xcpd" / "sub-01" / "func", names)
    manifest = ingest_dataset("x", entry, tmp_path / "xcpd", repetition_time=T_R).manifest
    assert len(manifest) == 1 and manifest["included"].all()
    assert manifest["path"].iloc[0].endswith(kept)


def test_folder_of_misnamed_files_stops_ingest_naming_them(tmp_path: Path, capsys) -> None:
    """A folder of connectomes named sub-<label>_fc.csv: no file is a run. Ingest said so at
    INFO only, and `lcm store` then failed with "all 0 run(s) excluded: no run listed"; now
    ingest stops, counting the files skipped, naming a few and giving the fix."""
    root = tmp_path / "fc"
    root.mkdir()
    for label in ("101309", "101410", "101915", "102008"):
        np.savetxt(root / f"sub-{label}_fc.csv", roi_fc(seed=1), delimiter=",")
    (root / "participants.tsv").write_text("participant_id\nsub-101309\n")
    out = tmp_path / "ingest" / "m.parquet"
    args = ["--dataset", "hcp", "--entry", "connectome", "--path", str(root), "--out", str(out)]
    assert main(["ingest", *args]) == InputDataError.exit_code
    err = capsys.readouterr().err
    assert "4 end _fc, not _relmat or _conmat" in err
    assert "sub-101309_fc.csv, sub-101410_fc.csv, sub-101915_fc.csv, +1 more" in err
    assert "participants.tsv" not in err.split("hint:")[0]  # the companion, not a data file
    assert "rename them (sub-101309_fc.csv -> sub-101309_relmat.csv)" in err
    assert "set --path to a tab-separated listing" in err  # the option given
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "said", "fix"),
    [
        ("sub-01_task-movie_relmat.tsv", "1 name task-movie, not task-rest", "task: movie"),
        ("sub-01_stat-mean_timeseries.tsv", "files of entry 'roi_timeseries'", "entry:"),
        ("101309_fc.csv", "1 are named neither sub-<label>", "rename them so"),
    ],
)
def test_folder_without_a_run_says_why_each_file_was_skipped(
    tmp_path: Path, name: str, said: str, fix: str
) -> None:
    """Another task's files, another entry's (time series where connectomes were expected:
    renaming them would be wrong) and files of no known naming: each with its own fix."""
    (tmp_path / name).write_text("1,0\n0,1\n")
    with pytest.raises(InputDataError) as info:
        ingest_dataset("x", "connectome", tmp_path)
    assert said in info.value.message and name in info.value.message
    assert fix in info.value.hint


@pytest.mark.parametrize("tree", [True, False], ids=["xcpd_tree", "plain_folder"])
def test_the_space_the_selection_keeps_is_the_run(tmp_path: Path, names, tree: bool) -> None:
    """A run in two spaces: ingest.select.<dataset>.space keeps the one it names (the other
    was marked a duplicate first, before the selection, and the run could be lost)."""
    root = tmp_path / "xcpd"
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    if tree:
        write_json(root / "dataset_description.json", {"Name": "x", "BIDSVersion": "1.9"})
    for space in ("MNI152NLin2009cAsym", "MNI152NLin6Asym"):
        stem = f"sub-01_task-rest_space-{space}_seg-aal116_stat-mean_timeseries"
        pd.DataFrame(roi_series(seed=1), columns=names).to_csv(
            func / f"{stem}.tsv", sep="\t", index=False
        )
    kept = Selection.from_config({"space": {"include": ["MNI152NLin6Asym"]}})
    rows = ingest_dataset("x", "roi_timeseries", root, selection=kept, repetition_time=T_R)
    chosen = rows.manifest.loc[rows.manifest["included"], "path"].tolist()
    assert len(chosen) == 1 and "space-MNI152NLin6Asym" in chosen[0]
    rows = ingest_dataset("x", "roi_timeseries", root, repetition_time=T_R).manifest
    assert rows["included"].sum() == 1
    assert "ingest.select.x.space" in rows.loc[~rows["included"], "reason"].iloc[0]


def test_xcpd_before_0_7_names_its_atlas_atlas(tmp_path: Path, names) -> None:
    """XCP-D 0.4-0.6: ..._atlas-X_timeseries.tsv and ..._atlas-X_measure-..._conmat.tsv. The
    atlas- entity is the file's parcellation (such trees gave no run, such files 'duplicates').
    fMRIPrep's confounds (a _timeseries.tsv too) are no run."""
    func = tmp_path / "xcpd" / "sub-01" / "func"
    func.mkdir(parents=True)
    write_json(tmp_path / "xcpd" / "dataset_description.json", {"Name": "x", "BIDSVersion": "1.8"})
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym"
    for atlas, n in (("aal116", 116), ("Glasser", 360)):
        table = pd.DataFrame(roi_series(n, seed=1), columns=[*names, *range(n - 116)][:n])
        table.to_csv(func / f"{stem}_atlas-{atlas}_timeseries.tsv", sep="\t", index=False)
        np.savetxt(func / f"{stem}_atlas-{atlas}_measure-pearsoncorrelation_conmat.tsv", np.eye(n))
    write_json(func / f"{stem}_atlas-aal116_timeseries.json", {"RepetitionTime": T_R})
    pd.DataFrame({"csf": np.ones(N_VOL)}).to_csv(
        func / "sub-01_task-rest_desc-confounds_timeseries.tsv", sep="\t", index=False
    )
    for entry, kept in (("roi_timeseries", "_timeseries.tsv"), ("connectome", "_conmat.tsv")):
        rows = ingest_dataset("x", entry, tmp_path / "xcpd", atlas="aal116", repetition_time=T_R)
        rows = rows.manifest
        assert sorted(rows["seg"]) == ["Glasser", "aal116"], entry
        chosen = rows.loc[rows["included"], "path"].tolist()
        assert len(chosen) == 1 and "atlas-aal116" in chosen[0], (entry, chosen)
        assert chosen[0].endswith(kept), (entry, chosen)
        other = rows.loc[~rows["included"]]
        assert other["reason_code"].tolist() == ["other_atlas"], entry


def test_connectome_listing_to_store(tmp_path: Path, names) -> None:
    mats = tmp_path / "mats"
    mats.mkdir()
    good = {"01": roi_fc(seed=1), "02": roi_fc(seed=2), "03": roi_fc(seed=3), "04": roi_fc(seed=4)}
    write_relmat(mats / "sub-01.tsv", names, good["01"])
    np.savetxt(mats / "sub-02.csv", good["02"], delimiter=",", fmt="%.17g")
    np.save(mats / "sub-03.npy", good["03"])
    savemat(mats / "sub-04.mat", {"FC": good["04"]})
    np.save(mats / "sub-05.npy", roi_fc()[:, :-1])  # non-square
    np.save(mats / "sub-06.npy", roi_fc() + np.triu(np.full((116, 116), 0.1), 1))  # asymmetric
    nan = roi_fc()
    nan[3, 4] = nan[4, 3] = np.nan
    np.save(mats / "sub-07.npy", nan)
    _v73(mats / "sub-08.mat")
    lines = ["participant_id\trun\tpath"] + [
        f"sub-{s}\t1\tmats/{f}"
        for s, f in [
            ("01", "sub-01.tsv"),
            ("02", "sub-02.csv"),
            ("03", "sub-03.npy"),
            ("04", "sub-04.mat"),
            ("05", "sub-05.npy"),
            ("06", "sub-06.npy"),
            ("07", "sub-07.npy"),
            ("08", "sub-08.mat"),
        ]
    ]
    listing = tmp_path / "listing.tsv"
    listing.write_text("\n".join(lines) + "\n")
    manifest = tmp_path / "ingest" / "manifest.parquet"
    df = ingest("pcp", "connectome", listing, manifest)
    assert df["included"].all() and (tmp_path / "ingest" / "summary.tsv").is_file()

    qc = imported_qc(tmp_path, manifest)
    assert qc["included"].to_dict() == {
        "01": True,
        "02": True,
        "03": True,
        "04": True,
        "05": False,
        "06": False,
        "07": False,
        "08": False,
    }
    assert "sub-05.npy is 116 x 115" in qc.loc["05", "reason"]
    assert "sub-06.npy is not symmetric" in qc.loc["06", "reason"]
    assert "sub-07.npy holds 2 NaN" in qc.loc["07", "reason"]
    assert "sub-08.mat is a MATLAB v7.3" in qc.loc["08", "reason"]
    for sub, fc in good.items():
        got_names, got = read_relmat(qc.loc[sub, "relmat"])
        assert got_names == names
        np.testing.assert_allclose(got, fc, atol=1e-12)
    side = json.loads(Path(qc.loc["03", "relmat"]).with_suffix(".json").read_text())
    assert side["Sources"] == [str(mats / "sub-03.npy")]

    # The store takes these runs like computed ones.
    phenotype = pd.DataFrame({"subject": list(good), "site": ["s1"] * 4})
    out = write_connectomes(
        tmp_path / "store",
        "aal116",
        "pcp",
        pd.read_csv(tmp_path / "qc.tsv", sep="\t", dtype=str),
        phenotype,
    )
    stored = pq.read_table(out)
    subjects = stored["subject"].to_pylist()
    assert sorted(subjects) == ["01", "02", "03", "04"]
    row = connectome_values(stored["connectome"], out)[subjects.index("03")]
    np.testing.assert_array_equal(row, good["03"][np.triu_indices(116, k=1)].astype(np.float32))
