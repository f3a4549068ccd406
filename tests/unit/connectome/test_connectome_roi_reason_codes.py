"""ROI time series and imported connectomes: every excluded run has a ``reason_code``.

Messages name their file, so a dataset whose runs fail the same way had as many reasons as
runs in the "no included run" summary; the code counts them together, as for voxel runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import read_qc_table, write_json
from scipy.io import savemat

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.connectome.imported import check_connectome, process_connectome_manifest
from lcm.connectome.roi_formats import check_roi_names, read_matrix, read_roi_series
from lcm.connectome.roi_runs import process_timeseries_manifest
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.exceptions import ExcludedRunError, InputDataError
from lcm.store.writer import stored_rows

N_VOL = 60
T_R = 2.0
NAMES = [f"roi_{i}" for i in range(4)]


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _series(n_vol: int, n_rois: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_vol, 1)) + rng.standard_normal((n_vol, n_rois))


def _fc(n: int, seed: int) -> np.ndarray:
    return np.corrcoef(_series(80, n, seed).T)


def _xcpd_tsv(root: Path, sub: str, table: pd.DataFrame) -> None:
    func = root / f"sub-{sub}" / "func"
    func.mkdir(parents=True)
    path = func / f"sub-{sub}_task-rest_space-MNI152NLin6Asym_seg-aal116_stat-mean_timeseries.tsv"
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    write_json(path.with_suffix(".json"), {"RepetitionTime": T_R})


def test_all_excluded_xcpd_series_are_counted_per_code(tmp_path: Path, atlas) -> None:
    root = tmp_path / "xcpd"
    write_json(root / "dataset_description.json", {"Name": "ts", "BIDSVersion": "1.10.0"})
    names = atlas.labels["name"].tolist()
    other = [f"Schaefer_{i}" for i in range(116)]
    for sub in ("01", "02", "03"):  # another parcellation of as many ROIs
        _xcpd_tsv(root, sub, pd.DataFrame(_series(N_VOL, 116, int(sub)), columns=other))
    for sub in ("04", "05"):  # a value missing mid-run
        table = pd.DataFrame(_series(N_VOL, 116, int(sub)), columns=names)
        table.iloc[10, 3] = np.nan
        _xcpd_tsv(root, sub, table)
    _xcpd_tsv(root, "06", pd.DataFrame(np.ones((N_VOL, 116)), columns=names))
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest)
    qc_path = tmp_path / "qc.tsv"
    process_timeseries_manifest(
        "ts", manifest, atlas, DenoiseSettings(min_volumes=30), tmp_path / "conn", qc_path
    )
    qc = read_qc_table(qc_path).set_index("subject")
    assert not qc["included"].any()
    assert qc["reason_code"].to_dict() == {
        "01": "roi_names_mismatch",
        "02": "roi_names_mismatch",
        "03": "roi_names_mismatch",
        "04": "timeseries_nonfinite",
        "05": "timeseries_nonfinite",
        "06": "flat_signals",
    }
    with pytest.raises(InputDataError) as err:
        stored_rows(read_qc_table(qc_path), "ts", qc_path)
    message = err.value.message
    assert "all 6 run(s) excluded: roi_names_mismatch: 3 runs (sub-01_task-rest" in message
    assert "; timeseries_nonfinite: 2 runs (sub-04_task-rest" in message
    assert "; flat_signals: 1 run (sub-06_task-rest" in message
    assert "other reason" not in message  # three codes, no run left over as its own reason


def test_all_excluded_imported_connectomes_are_counted_per_code(tmp_path: Path, atlas) -> None:
    mats = tmp_path / "mats"
    mats.mkdir()
    for sub in ("01", "02"):
        m = _fc(116, int(sub))
        m[0, 1] += 0.2  # not symmetric
        np.save(mats / f"sub-{sub}.npy", m)
    for sub in ("03", "04", "05"):
        np.save(mats / f"sub-{sub}.npy", _fc(116, int(sub)) * 3)  # not correlations
    np.save(mats / "sub-06.npy", _fc(100, 6))  # another atlas's ROI count
    manifest = tmp_path / "manifest.parquet"
    ingest("mats", "connectome", mats, manifest)
    qc_path = tmp_path / "qc.tsv"
    process_connectome_manifest("mats", manifest, atlas, tmp_path / "conn", qc_path)
    qc = read_qc_table(qc_path).set_index("subject")
    assert qc["reason_code"].to_dict() == {
        "01": "matrix_asymmetric",
        "02": "matrix_asymmetric",
        "03": "matrix_out_of_range",
        "04": "matrix_out_of_range",
        "05": "matrix_out_of_range",
        "06": "roi_count_mismatch",
    }
    with pytest.raises(InputDataError) as err:
        stored_rows(read_qc_table(qc_path), "mats", qc_path)
    message = err.value.message
    assert "excluded: matrix_out_of_range: 3 runs (sub-03_task-rest, sub-04_task-rest, " in message
    assert "; matrix_asymmetric: 2 runs (sub-01_task-rest, sub-02_task-rest)" in message
    assert "; roi_count_mismatch: 1 run (sub-06_task-rest)" in message


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _series_case(tmp_path: Path, case: str) -> Path:
    """A broken ROI time-series file of one kind."""
    rows = "\n".join(",".join(str(v) for v in r) for r in _series(20, 4, 0)) + "\n"
    if case == "unreadable_tsv":
        return _write(tmp_path / "a.tsv", b"\xff\xfe\x00bad")
    if case == "unknown_format":
        return _write(tmp_path / "a.xlsx", "x")
    if case == "non_numeric":
        return _write(tmp_path / "a.csv", rows + "1,2,abc,4\n")
    if case == "npy_3d":
        np.save(tmp_path / "a.npy", np.zeros((2, 3, 4)))
        return tmp_path / "a.npy"
    if case == "npy_broken":
        return _write(tmp_path / "a.npy", b"not numpy")
    if case == "mat_v73":
        return _write(tmp_path / "a.mat", b"MATLAB 7.3 MAT-file" + b"\0" * 200)
    if case == "mat_two":
        savemat(tmp_path / "a.mat", {"x": np.zeros((5, 4)), "y": np.ones((5, 4))})
        return tmp_path / "a.mat"
    if case == "1d_ragged":
        return _write(tmp_path / "a.1D", "1 2 3 4\n1 2 3\n")
    if case == "1d_empty":
        return _write(tmp_path / "a.1D", "# only a comment\n")
    if case == "1d_text":
        return _write(tmp_path / "a.1D", "1 2 3 x\n")
    if case == "columns":
        return _write(tmp_path / "a.csv", rows.replace("\n", ",0\n"))
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unreadable_tsv", "file_unreadable"),
        ("unknown_format", "unknown_format"),
        ("non_numeric", "non_numeric_values"),
        ("npy_3d", "not_2d"),
        ("npy_broken", "file_unreadable"),
        ("mat_v73", "mat_v73"),
        ("mat_two", "mat_variable_ambiguous"),
        ("1d_ragged", "ragged_rows"),
        ("1d_empty", "file_empty"),
        ("1d_text", "non_numeric_values"),
        ("columns", "roi_count_mismatch"),
    ],
)
def test_each_unreadable_series_file_has_its_code(tmp_path: Path, case: str, code: str) -> None:
    path = _series_case(tmp_path, case)
    with pytest.raises(ExcludedRunError) as err:
        read_roi_series(path, NAMES)
    assert err.value.code == code, err.value.message


def test_matrix_and_name_problems_have_their_codes(tmp_path: Path) -> None:
    def code_of(call, *args) -> str:
        with pytest.raises(ExcludedRunError) as err:
            call(*args)
        return err.value.code

    names = _write(tmp_path / "m.csv", ",a,b\nc,1,0\nd,0,1\n")
    assert code_of(read_matrix, names) == "row_column_names_differ"
    assert code_of(read_matrix, _write(tmp_path / "m.txt", "1")) == "unknown_format"
    fc = _fc(4, 1)
    assert code_of(check_connectome, fc[:3], "m", 4, "a") == "matrix_not_square"
    assert code_of(check_connectome, fc, "m", 5, "a") == "roi_count_mismatch"
    nan = fc.copy()
    nan[0, 1] = nan[1, 0] = np.nan
    assert code_of(check_connectome, nan, "m", 4, "a") == "matrix_nonfinite"
    inf_diagonal = fc.copy()
    np.fill_diagonal(inf_diagonal, np.inf)
    assert code_of(check_connectome, inf_diagonal, "m", 4, "a") == "matrix_diagonal"
    assert code_of(check_connectome, fc * 2, "m", 4, "a") == "matrix_out_of_range"
    assert code_of(check_roi_names, ["1.5", "2.5"], ["a", "b"], "f", "x") == "roi_header_missing"
    assert code_of(check_roi_names, ["a"], ["a", "b"], "f", "x") == "roi_count_mismatch"
    assert code_of(check_roi_names, ["a", "a", "b"], ["a", "b", "a"], "f", "x") == (
        "roi_order_mismatch"
    )
    assert code_of(check_roi_names, ["a", "c"], ["a", "b"], "f", "x") == "roi_names_mismatch"


def test_series_problems_found_while_cleaning_have_their_codes(tmp_path: Path, atlas) -> None:
    """No TR, and a window in which an ROI is flat, are coded like the voxel runs' problems."""
    root = tmp_path / "ts"
    root.mkdir()
    names = atlas.labels["name"].tolist()
    pd.DataFrame(_series(N_VOL, 116, 1), columns=names).to_csv(
        root / "sub-01_timeseries.tsv", sep="\t", index=False
    )
    flat = _series(N_VOL, 116, 2)
    flat[:20, 5] = 1.0  # flat for the first window only
    pd.DataFrame(flat, columns=names).to_csv(root / "sub-02_timeseries.tsv", sep="\t", index=False)
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest, repetition_time=T_R)
    table = pd.read_parquet(manifest)
    table["t_r"] = table["t_r"].where(table["subject"] != "01", np.nan)
    table.to_parquet(manifest)
    qc = process_timeseries_manifest(
        "ts",
        manifest,
        atlas,
        # min_dof off: windows of 15 unfiltered volumes hold 14 (test_connectome_window_dof.py).
        DenoiseSettings(
            min_volumes=30,
            detrend=False,
            high_pass=None,
            low_pass=None,
            standardize="none",
            min_dof=None,
        ),
        tmp_path / "conn",
        tmp_path / "qc.tsv",
        ConnectomeSettings(window_length=15, window_step=15),
    ).set_index("subject")
    assert qc["reason_code"].to_dict() == {"01": "no_repetition_time", "02": "window_flat_signals"}


def test_runs_are_processed_with_one_blas_thread(tmp_path: Path, atlas, monkeypatch) -> None:
    # Small per-run matrices: with the default budget (every CPU) two BLAS threads spent
    # 2.25x the CPU for the same connectomes; the per-run loop runs at one, as lcm synth does.
    from threadpoolctl import threadpool_info

    import lcm.connectome.roi_runs as roi_runs

    seen = []
    process_row = roi_runs._process_row

    def recording(*args, **kwargs):
        seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return process_row(*args, **kwargs)

    monkeypatch.setattr(roi_runs, "_process_row", recording)
    root = tmp_path / "xcpd"
    write_json(root / "dataset_description.json", {"Name": "ts", "BIDSVersion": "1.10.0"})
    names = atlas.labels["name"].tolist()
    for sub in ("01", "02"):
        _xcpd_tsv(root, sub, pd.DataFrame(_series(N_VOL, 116, int(sub)), columns=names))
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest)
    qc = process_timeseries_manifest(
        "ts", manifest, atlas, DenoiseSettings(min_volumes=30), tmp_path / "conn", tmp_path / "q"
    )
    assert qc["included"].all()
    assert seen == [{1}, {1}]


@pytest.mark.parametrize("entry", ["roi_timeseries", "connectome"])
def test_a_file_of_another_parcellation_is_hinted_by_the_atlas_options_given(
    entry: str, tmp_path: Path, monkeypatch
) -> None:
    """`lcm connectome dataset --atlas mine --atlas-labels ...` excluded a file of another
    parcellation with "Set atlas.name (or atlas.path and atlas.labels)", keys of a config the
    command-line user never wrote."""
    from lcm.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.tsv").write_text("name\n" + "\n".join(NAMES) + "\n")
    files = tmp_path / "files"
    files.mkdir()
    if entry == "roi_timeseries":  # 5 columns, no header, for an atlas of 4
        np.savetxt(files / "sub-01.csv", _series(N_VOL, 5, 1), delimiter=",")
        write_json(files / "sub-01.json", {"RepetitionTime": T_R})
    else:
        np.save(files / "sub-01.npy", _fc(5, 1))
    ingest("mine", entry, files, tmp_path / "manifest.parquet")
    argv = ["connectome", "dataset", "--entry", entry, "--dataset", "mine"]
    argv += ["--manifest", "manifest.parquet", "--atlas", "mine", "--atlas-labels", "mine.tsv"]
    assert main([*argv, "--out-dir", "conn", "--qc-table", "qc.tsv"]) == 0
    (reason,) = read_qc_table(tmp_path / "qc.tsv")["reason"]
    assert "has 5 ROI" in reason
    assert "Set --atlas (or --atlas-path and --atlas-labels) to the parcellation" in reason
    assert "atlas.name" not in reason
