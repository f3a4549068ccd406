"""lcm ingest: BIDS (with inherited sidecars), fMRIPrep derivatives and ROI time series."""

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
    make_fmriprep_run,
    make_raw_bids,
    save_nifti,
    write_json,
)

from lcm.bids.ingest import ingest, ingest_dataset
from lcm.bids.manifest import MANIFEST_COLUMNS, read_manifest
from lcm.cli import main
from lcm.commands import ingest as ingest_cmd
from lcm.exceptions import BIDSError, InputDataError


def _by_key(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.run_key or Path(row.path).name: row for row in df.itertuples()}


def test_bids_inherited_sidecar_gives_tr(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), n_vol=44, t_r=2.0)
    df = ingest_dataset("tiny", "bids", root).manifest
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert df["run_key"].tolist() == ["sub-01_task-rest_run-1", "sub-02_task-rest_run-1"]
    assert df["included"].all() and (df["reason"] == "").all()
    np.testing.assert_allclose(df["t_r"], [2.0, 2.0])
    assert (df["session"] == "").all() and (df["entry"] == "bids").all()
    assert df["path"].str.endswith("_bold.nii.gz").all()


def test_bids_sessions_and_runs_are_keyed(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), sessions=("a", "b"), runs=("1", "2"))
    df = ingest_dataset("tiny", "bids", root).manifest
    assert df["run_key"].tolist() == [
        "sub-01_ses-a_task-rest_run-1",
        "sub-01_ses-a_task-rest_run-2",
        "sub-01_ses-b_task-rest_run-1",
        "sub-01_ses-b_task-rest_run-2",
    ]
    assert df["session"].tolist() == ["a", "a", "b", "b"]
    assert df["run"].tolist() == ["1", "2", "1", "2"]


def test_bids_subject_sidecar_overrides_and_mismatch_excludes(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    # A subject-level sidecar closer to the file wins over the top-level one (inheritance).
    write_json(
        root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.json", {"RepetitionTime": 0.8}
    )
    rows = _by_key(ingest_dataset("tiny", "bids", root).manifest)
    assert rows["sub-01_task-rest_run-1"].included
    bad = rows["sub-02_task-rest_run-1"]
    assert not bad.included
    assert bad.t_r == pytest.approx(0.8)
    assert "TR mismatch" in bad.reason and "0.8" in bad.reason and "2" in bad.reason


def test_bids_3d_and_invalid_label_are_excluded_not_fatal(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    func = root / "sub-01" / "func"
    save_nifti(func / "sub-01_task-rest_run-2_bold.nii.gz", np.zeros(CROP_SHAPE, np.int16))
    save_nifti(func / "sub-01_task-rest_run-x.y_bold.nii.gz", np.zeros((4, 5, 6, 7), np.int16))
    df = ingest_dataset("tiny", "bids", root).manifest
    assert len(df) == 3
    rows = _by_key(df)
    assert rows["sub-01_task-rest_run-1"].included
    assert "3D" in rows["sub-01_task-rest_run-2"].reason
    bad = df[df["path"].str.contains("run-x.y")].iloc[0]
    assert not bad["included"] and "Invalid BIDS 'run' label 'x.y'" in bad["reason"]
    assert bad["run_key"] == "" and bad["reason_code"] == "invalid_label"


def test_invalid_label_in_derivatives_is_excluded(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    func = deriv / "sub-01" / "func"
    save_nifti(
        func / f"sub-01_task-rest_run-1+2_space-{SPACE}_desc-preproc_bold.nii.gz",
        np.zeros((4, 5, 6, 7), np.float32),
        t_r=2.0,
    )
    df = ingest_dataset("fp", "fmriprep", deriv).manifest
    assert sorted(df["included"].tolist()) == [False, True]
    bad = df[~df["included"]].iloc[0]
    assert "'run' label '1+2'" in bad["reason"] and bad["run_key"] == ""


def test_missing_dataset_description_names_folder(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw")
    (root / "dataset_description.json").unlink()
    with pytest.raises(BIDSError, match=r"raw has no dataset_description.json") as info:
        ingest_dataset("tiny", "bids", root)
    assert "BIDSVersion" in info.value.hint


def test_bids_entry_refuses_a_derivative_dataset(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40)
    with pytest.raises(BIDSError, match="derivative dataset"):
        ingest_dataset("tiny", "bids", deriv)


def test_fmriprep_entry_accepts_res_and_drops_duplicates(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5)
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5, res="2")
    make_fmriprep_run(deriv, "sub-02_task-rest_run-1", n_vol=40, t_r=1.5, res="2")
    df = ingest_dataset("fp", "fmriprep", tmp_path / "raw-unused", derivatives=deriv).manifest
    assert len(df) == 3
    inc = df[df["included"]]
    assert inc["run_key"].tolist() == ["sub-01_task-rest_run-1", "sub-02_task-rest_run-1"]
    assert inc["path"].iloc[0].endswith(f"_space-{SPACE}_desc-preproc_bold.nii.gz")
    assert "_res-2_" in inc["path"].iloc[1]
    np.testing.assert_allclose(inc["t_r"], 1.5)
    dup = df[~df["included"]].iloc[0]
    assert "duplicate" in dup["reason"] and "_res-2_" in dup["path"]
    # Another template: no run included, each a row saying which spaces there are.
    other = ingest_dataset("fp", "fmriprep", deriv, space="MNI152NLin6Asym").manifest
    assert not other["included"].any() and set(other["reason_code"]) == {"not_in_space"}
    assert "fmriprep.output_space" in dup["reason"]  # how to keep the other one


@pytest.mark.parametrize("res", ["2", "02"])
def test_fmriprep_entry_reads_the_resolution_the_output_space_names(
    tmp_path: Path, res: str
) -> None:
    """fmriprep.output_space MNI152NLin2009cAsym:res-2: every run's res-2 file is the run
    (res-02 too: the index is a number), the native one of the same run no duplicate of it; a
    run with res-1 only is excluded, not_in_space."""
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5)
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5, res=res)
    make_fmriprep_run(deriv, "sub-02_task-rest_run-1", n_vol=40, t_r=1.5, res="1")
    df = ingest_dataset("fp", "fmriprep", deriv, space=f"{SPACE}:res-2").manifest
    assert df["reason_code"].tolist() == ["", "not_in_space"]
    assert df["path"].str.contains(f"_space-{SPACE}_res-{res}_desc-preproc").tolist() == [
        True,
        False,
    ]


def _roi_file(root: Path, run_key: str, space: str = SPACE, t_r: float | None = 0.72) -> Path:
    ents = dict(p.split("-", 1) for p in run_key.split("_"))
    path = (
        root
        / f"sub-{ents['sub']}"
        / "func"
        / f"{run_key}_space-{space}_seg-aal116_stat-mean_timeseries.tsv"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(np.zeros((5, 3)), columns=["a", "b", "c"]).to_csv(path, sep="\t", index=False)
    if t_r is not None:
        write_json(path.with_name(path.name.replace(".tsv", ".json")), {"RepetitionTime": t_r})
    return path


def test_roi_timeseries_entry(tmp_path: Path) -> None:
    root = tmp_path / "ts"
    write_json(root / "dataset_description.json", {"Name": "ts", "BIDSVersion": "1.10.0"})
    _roi_file(root, "sub-01_task-rest_run-1")
    _roi_file(root, "sub-01_task-rest_run-1", space="fsLR")  # second space of the same run
    _roi_file(root, "sub-02_task-rest_run-1", t_r=None)  # no sidecar
    _roi_file(root, "sub-03_task-other_run-1")  # other task: not indexed
    df = ingest_dataset("ts", "roi_timeseries", root).manifest
    assert len(df) == 3
    rows = df.set_index("path")
    keep = df[df["included"]]
    assert keep["run_key"].tolist() == ["sub-01_task-rest_run-1"]
    assert keep["t_r"].iloc[0] == pytest.approx(0.72)
    reasons = " | ".join(df.loc[~df["included"], "reason"])
    assert "duplicate" in reasons and "no JSON sidecar" in reasons
    assert rows.index.str.contains("task-other").sum() == 0
    only = ingest_dataset("ts", "roi_timeseries", root, space="fsLR").manifest
    assert (
        only["included"].sum() == 1 and "space-fsLR" in only.loc[only["included"], "path"].iloc[0]
    )
    # The other space's file stays in the manifest, saying why (it vanished before).
    other = only.loc[only["path"].str.contains("MNI152"), ["reason_code", "reason"]].iloc[0]
    assert other["reason_code"] == "not_selected" and "space" in other["reason"]


def test_ingest_cli_writes_parquet_and_sidecar(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), t_r=2.0)
    out = tmp_path / "out" / "manifest.parquet"
    rc = cli(
        ingest_cmd,
        ["ingest", "--dataset", "tiny", "--entry", "bids", "--path", str(root), "--out", str(out)],
    )
    assert rc == 0
    df = read_manifest(out)
    assert len(df) == 3 and df["included"].dtype == bool and df["t_r"].dtype == np.float64
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["NumberOfRuns"] == 3 and side["NumberOfIncludedRuns"] == 3
    assert side["Sources"] == [str(root / "dataset_description.json")]
    assert len(side["Sha256"]) == 64


def test_ingest_function_returns_same_as_file(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("07",), t_r=3.0)
    out = tmp_path / "m.parquet"
    df = ingest("tiny", "bids", root, out)
    pd.testing.assert_frame_equal(df, read_manifest(out))


def test_a_truncated_manifest_says_how_to_make_it_again(tmp_path: Path) -> None:
    """A manifest cut short said "Parquet magic bytes not found" and nothing else."""
    path = tmp_path / "manifest.parquet"
    pd.DataFrame({"run_key": ["a"]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(InputDataError, match="Cannot read manifest") as info:
        read_manifest(path)
    assert "delete it and rerun the workflow, whose ingest job writes it again" in (
        info.value.hint or ""
    )


def test_a_manifest_folder_is_answered_with_the_manifest_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--manifest results/ingest/ds`` (the manifest's folder) was hinted "Create it with
    'lcm ingest'" while the manifest sat inside it; the hint now names that file."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    folder = tmp_path / "ingest" / "ds"
    ingest("ds", "bids", root, folder / "manifest.parquet", validate=False)
    with pytest.raises(InputDataError) as caught:
        read_manifest(folder)
    assert caught.value.message == f"Manifest is a folder, not a file: {folder}"
    assert caught.value.hint == f"Pass the manifest inside it: {folder / 'manifest.parquet'}"
    assert "lcm ingest" not in caught.value.hint
    assert len(read_manifest(caught.value.hint.rsplit(": ", 1)[1])) == 1  # the fix works
    # The same through a verb's --manifest.
    argv = ["connectome", "timeseries", "--dataset", "ds", "--manifest", str(folder)]
    argv += ["--atlas", "aal116", "--out-dir", str(tmp_path / "conn")]
    capsys.readouterr()
    assert main([*argv, "--qc-table", str(tmp_path / "qc.tsv")]) == InputDataError.exit_code
    assert f"hint: Pass the manifest inside it: {folder / 'manifest.parquet'}" in (
        capsys.readouterr().err
    )


def test_a_folder_without_a_manifest_is_hinted_to_ingest(tmp_path: Path) -> None:
    """A folder holding no manifest: pass the file, or write it with lcm ingest."""
    with pytest.raises(InputDataError) as caught:
        read_manifest(tmp_path)
    assert caught.value.message == f"Manifest is a folder, not a file: {tmp_path}"
    assert f"{tmp_path} holds no manifest.parquet" in caught.value.hint
    assert "lcm ingest ... --out" in caught.value.hint
    with pytest.raises(InputDataError) as missing:
        read_manifest(tmp_path / "absent.parquet")
    assert missing.value.hint == "Create it with 'lcm ingest ... --out'."
