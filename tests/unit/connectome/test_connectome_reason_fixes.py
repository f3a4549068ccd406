"""Every reason the connectome stage excludes a run for says what is wrong and what to do.

One broken run per reason code, written in tmp_path and processed with ``lcm connectome run``
(a voxel run of an fMRIPrep record) or ``lcm connectome timeseries`` / ``import`` (files of
ROI time series or matrices, ingested first), from that folder as a user runs them; the QC
reason must read ``<problem>. Fix: <what to do>``, once, the fix naming the setting or file.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    cli,
    confounds_table,
    connectome_timeseries,
    fmriprep_record,
    imported_qc,
    make_fmriprep_run,
    read_qc_table,
    roi_series,
    save_nifti,
    write_confounds,
)

from lcm import reason_codes
from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.commands import connectome as connectome_cmd
from lcm.connectome.roi_formats import read_roi_series
from lcm.exceptions import ExcludedRunError

RUN = "sub-01_task-rest_run-1"
N_VOL = 48
# "<problem>. Fix: <what to do>", as lcm.reason_codes.with_fix words it, with one fix.
WORDING = re.compile(r"^\S.*[^ .;]\. Fix: \S.+$", re.DOTALL)


def _one_fix(reason: str) -> str:
    assert WORDING.match(reason) and reason.count("Fix: ") == 1, reason
    return reason.split("Fix: ", 1)[1]


# --- voxel runs: lcm connectome run -------------------------------------------------------


def bold_unreadable(files: dict[str, Path]) -> dict:
    files["bold"].write_bytes(b"<html>not found</html>")  # a download that failed
    return {}


def bold_short(files: dict[str, Path]) -> dict:
    files["bold"].write_bytes(gzip.compress(b"\0" * 100))
    return {}


def bold_not_4d(files: dict[str, Path]) -> dict:
    save_nifti(files["bold"], np.ones((4, 5, 6), np.float32), 2.0)
    return {}


def mask_not_3d(files: dict[str, Path]) -> dict:
    save_nifti(files["mask"], np.ones((4, 5, 6, 2), np.uint8))
    return {}


def confounds_unreadable(files: dict[str, Path]) -> dict:
    files["confounds"].write_bytes(b"\xff\xfe\x00\x81trans_x\n")
    return {}


def too_few_volumes(files: dict[str, Path]) -> dict:
    return {"min_volumes": N_VOL + 1}


def flat_signals(files: dict[str, Path]) -> dict:
    """Each voxel constant but in volume 10, which its FD scrubs: every parcel is flat."""
    still = 100.0 + np.random.default_rng(0).standard_normal(_shape(files))
    data = np.repeat(still[..., None], N_VOL, axis=3)
    data[..., 10] += np.random.default_rng(1).standard_normal(_shape(files))
    save_nifti(files["bold"], data.astype(np.float32), 2.0)
    write_confounds(files["confounds"], confounds_table(N_VOL, fd_high=(10,)))
    return {}


def tr_mismatch(files: dict[str, Path]) -> dict:
    files["sidecar"].write_text(json.dumps({"RepetitionTime": 1.0}))  # header says 2 s
    return {}


def too_few_dof(files: dict[str, Path]) -> dict:
    return {"min_dof": 200}


def bold_nonfinite(files: dict[str, Path]) -> dict:
    import nibabel as nib

    data = np.asarray(nib.load(files["bold"]).dataobj, dtype=np.float32)
    data[2, 2, 2, :] = np.nan
    save_nifti(files["bold"], data, 2.0)
    return {}


def no_coverage(files: dict[str, Path]) -> dict:
    save_nifti(files["mask"], np.zeros(_shape(files), np.uint8))
    return {}


def too_few_window_dof(files: dict[str, Path]) -> dict:
    """The whole run keeps 30 degrees of freedom (6P, no low-pass), no 20-volume window does."""
    window = {"window": {"length": 20, "step": 20}}
    return {"strategy": "6P", "low_pass": None, "min_dof": 30, "connectome": window}


def _shape(files: dict[str, Path]) -> tuple[int, ...]:
    import nibabel as nib

    return nib.load(files["mask"]).shape


VOXEL: dict[str, tuple[Callable[[dict[str, Path]], dict], str, str]] = {
    "bold_unreadable": (bold_unreadable, reason_codes.BOLD_UNREADABLE, "fmriprep"),
    "bold_unreadable-short": (bold_short, reason_codes.BOLD_UNREADABLE, "fmriprep"),
    "bold_not_4d": (bold_not_4d, reason_codes.BOLD_NOT_4D, "desc-preproc_bold"),
    "mask_unreadable": (mask_not_3d, reason_codes.MASK_UNREADABLE, "mask"),
    "confounds_unreadable": (confounds_unreadable, reason_codes.CONFOUNDS_UNREADABLE, "confounds"),
    "too_few_volumes": (too_few_volumes, reason_codes.TOO_FEW_VOLUMES, "denoise.min_volumes"),
    "flat_signals": (flat_signals, reason_codes.FLAT_SIGNALS, "fMRIPrep for a BOLD"),
    "tr_mismatch": (tr_mismatch, reason_codes.TR_MISMATCH, "RepetitionTime"),
    "too_few_window_dof": (too_few_window_dof, reason_codes.TOO_FEW_WINDOW_DOF, "window"),
    "too_few_dof": (too_few_dof, reason_codes.TOO_FEW_DOF, "denoise.low_pass"),
    "bold_nonfinite": (bold_nonfinite, reason_codes.BOLD_NONFINITE, ""),
    "no_coverage": (no_coverage, reason_codes.NO_COVERAGE, "mask"),
}


@pytest.mark.parametrize("case", list(VOXEL))
def test_each_voxel_exclusion_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    breaks, code, fix = VOXEL[case]
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    settings = breaks(files)
    connectome = settings.pop("connectome", {})
    denoise = {"strategy": "24P", "min_volumes": 20, "min_dof": None, **settings}
    fmriprep_record(tmp_path / "rec.json", "ds", [(RUN, files)])
    monkeypatch.chdir(tmp_path)
    argv = ["connectome", "run", "--dataset", "ds", "--fmriprep-record", "rec.json"]
    argv += ["--run-key", RUN, "--atlas", "aal116", "--out-dir", "conn", "--qc-out", "qc.json"]
    argv += ["--denoise", json.dumps(denoise), "--connectome", json.dumps(connectome)]
    assert cli(connectome_cmd, argv) == 0
    qc = json.loads((tmp_path / "qc.json").read_text())
    assert not qc["included"] and qc["reason_code"] == code, qc["reason"]
    assert fix.lower() in _one_fix(qc["reason"]).lower(), qc["reason"]


# --- ROI time series: lcm connectome timeseries -------------------------------------------


def _names() -> list[str]:
    return load_atlas("aal116").labels["name"].tolist()


def roi_count_mismatch(root: Path) -> None:
    np.savetxt(root / "sub-01_timeseries.csv", roi_series(n_rois=90), delimiter=",")


def timeseries_nonfinite(root: Path) -> None:
    table = pd.DataFrame(roi_series(), columns=_names())
    table.iloc[3, 5] = np.nan
    table.to_csv(root / "sub-01_timeseries.tsv", sep="\t", index=False, na_rep="n/a")


def roi_flat(root: Path) -> None:
    table = pd.DataFrame(np.ones((61, 116)), columns=_names())
    table.to_csv(root / "sub-01_timeseries.tsv", sep="\t", index=False)


def fc_degenerate(root: Path) -> None:
    one = np.random.default_rng(0).standard_normal((61, 1))
    table = pd.DataFrame(np.repeat(one, 116, axis=1) + 1e-6 * roi_series(), columns=_names())
    table.to_csv(root / "sub-01_timeseries.tsv", sep="\t", index=False)


def roi_names_mismatch(root: Path) -> None:
    names = [f"parcel{i}" for i in range(116)]
    pd.DataFrame(roi_series(), columns=names).to_csv(
        root / "sub-01_timeseries.tsv", sep="\t", index=False
    )


def non_numeric(root: Path) -> None:
    table = pd.DataFrame(roi_series(), columns=_names()).astype(object)
    table.iloc[3, 5] = "high"
    table.to_csv(root / "sub-01_timeseries.tsv", sep="\t", index=False)


def file_empty(root: Path) -> None:
    (root / "sub-01_timeseries.tsv").write_text("\t".join(_names()) + "\n")


SERIES: dict[str, tuple[Callable[[Path], None], tuple[str, ...], str]] = {
    "roi_count_mismatch": (roi_count_mismatch, (reason_codes.ROI_COUNT_MISMATCH,), "set --atlas ("),
    "timeseries_nonfinite": (
        timeseries_nonfinite,
        (reason_codes.TIMESERIES_NONFINITE,),
        "sub-01_timeseries.tsv",
    ),
    "flat_signals": (roi_flat, (reason_codes.FLAT_SIGNALS,), "the extraction"),
    "fc_degenerate": (fc_degenerate, (reason_codes.FC_DEGENERATE,), "one row per volume"),
    "roi_names_mismatch": (roi_names_mismatch, (reason_codes.ROI_NAMES_MISMATCH,), "set --atlas ("),
    "non_numeric_values": (
        non_numeric,
        (reason_codes.NON_NUMERIC_VALUES, reason_codes.TIMESERIES_NONFINITE),
        "sub-01_timeseries.tsv",
    ),
    "file_empty": (file_empty, (reason_codes.FILE_EMPTY,), "sub-01_timeseries.tsv"),
}


@pytest.mark.parametrize("case", SERIES)
def test_each_roi_series_exclusion_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    write, codes, fix = SERIES[case]
    root = tmp_path / "ts"
    root.mkdir()
    write(root)
    ingest("ts", "roi_timeseries", root, tmp_path / "manifest.parquet", repetition_time=2.0)
    monkeypatch.chdir(tmp_path)
    assert connectome_timeseries("manifest.parquet", out_dir="conn", qc_table="qc.tsv") == 0
    row = read_qc_table(tmp_path / "qc.tsv").iloc[0]
    assert row["reason_code"] in codes, row["reason"]
    assert fix.lower() in _one_fix(row["reason"]).lower(), row["reason"]


def test_a_workflow_rules_exclusion_names_the_config_keys_not_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run by a workflow rule (``lcm --rule``), whose ``--atlas*`` options it built from the
    user's config: the fix told that user to set ``--atlas``, an option they never saw."""
    import argparse

    root = tmp_path / "ts"
    root.mkdir()
    roi_count_mismatch(root)
    ingest("ts", "roi_timeseries", root, tmp_path / "manifest.parquet", repetition_time=2.0)
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser(prog="lcm")
    parser.add_argument("--rule")
    connectome_cmd.register(parser.add_subparsers(dest="verb", required=True))
    argv = ["--rule", "connectome_roi", "connectome", "timeseries", "--dataset", "ts"]
    argv += ["--manifest", "manifest.parquet", "--atlas", "aal116"]
    args = parser.parse_args([*argv, "--out-dir", "conn", "--qc-table", "qc.tsv"])
    assert args.func(args) == 0
    fix = _one_fix(read_qc_table(tmp_path / "qc.tsv").iloc[0]["reason"])
    assert "atlas.name" in fix and "--atlas" not in fix, fix


# --- imported connectomes: lcm connectome import ------------------------------------------


def _fc() -> np.ndarray:
    return np.corrcoef(roi_series().T)


def _save(root: Path, matrix: np.ndarray) -> None:
    np.savetxt(root / "sub-01.csv", matrix, delimiter=",", fmt="%.17g")


def not_square(root: Path) -> None:
    _save(root, _fc()[:, :-1])


def matrix_roi_count(root: Path) -> None:
    _save(root, _fc()[:90, :90])


def matrix_nonfinite(root: Path) -> None:
    m = _fc()
    m[3, 5] = m[5, 3] = np.inf
    _save(root, m)


def matrix_diagonal(root: Path) -> None:
    m = _fc()
    np.fill_diagonal(m, 0.5)
    _save(root, m)


def fisher_z_diagonal(root: Path) -> None:
    m = np.arctanh(np.clip(_fc(), -0.99, 0.99))
    np.fill_diagonal(m, np.inf)
    _save(root, m)


def asymmetric(root: Path) -> None:
    m = _fc()
    m[3, 5] += 0.3
    _save(root, m)


def out_of_range(root: Path) -> None:
    m = np.arctanh(np.clip(_fc(), -0.99, 0.99))
    np.fill_diagonal(m, 1.0)
    _save(root, m)


def non_numeric_cell(root: Path) -> None:
    m = _fc().astype(object)
    m[3, 5] = "high"
    pd.DataFrame(m).to_csv(root / "sub-01.csv", header=False, index=False)


def npy_3d(root: Path) -> None:
    np.save(root / "sub-01.npy", np.stack([_fc(), _fc()]))


def npy_unreadable(root: Path) -> None:
    (root / "sub-01.npy").write_bytes(b"<html>not found</html>")


def mat_v73(root: Path) -> None:
    (root / "sub-01.mat").write_bytes(b"MATLAB 7.3 MAT-file, HDF5 user block".ljust(512, b" "))


MATRICES: dict[str, tuple[Callable[[Path], None], tuple[str, ...], str]] = {
    "matrix_not_square": (not_square, (reason_codes.MATRIX_NOT_SQUARE,), "one full"),
    "roi_count_mismatch": (matrix_roi_count, (reason_codes.ROI_COUNT_MISMATCH,), "set --atlas ("),
    "matrix_nonfinite": (matrix_nonfinite, (reason_codes.MATRIX_NONFINITE,), "recompute"),
    "matrix_diagonal": (matrix_diagonal, (reason_codes.MATRIX_DIAGONAL,), "fill_diagonal"),
    "matrix_diagonal-fisher": (fisher_z_diagonal, (reason_codes.MATRIX_DIAGONAL,), "numpy.tanh"),
    "matrix_asymmetric": (asymmetric, (reason_codes.MATRIX_ASYMMETRIC,), "full correlation"),
    "matrix_out_of_range": (out_of_range, (reason_codes.MATRIX_OUT_OF_RANGE,), "numpy.tanh"),
    "non_numeric_values": (non_numeric_cell, (reason_codes.NON_NUMERIC_VALUES,), "numbers only"),
    "not_2d": (npy_3d, (reason_codes.NOT_2D,), "one run per file"),
    "file_unreadable": (npy_unreadable, (reason_codes.FILE_UNREADABLE,), "numpy.save"),
    "mat_v73": (mat_v73, (reason_codes.MAT_V73,), "-v7"),
}


@pytest.mark.parametrize("case", list(MATRICES))
def test_each_imported_matrix_exclusion_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    write, codes, fix = MATRICES[case]
    root = tmp_path / "mats"
    root.mkdir()
    write(root)
    ingest("pcp", "connectome", root, tmp_path / "manifest.parquet")
    monkeypatch.chdir(tmp_path)
    row = imported_qc(Path("."), Path("manifest.parquet")).iloc[0]
    assert row["reason_code"] in codes, row["reason"]
    assert fix.lower() in _one_fix(row["reason"]).lower(), row["reason"]


# --- codes not provoked above ---------------------------------------------------------------
# bold_too_large (a BOLD bigger than the job's memory), space_mismatch, cleaned_nonfinite,
# window_flat_signals, ragged_rows, mat_variable_ambiguous, ... are excluded at raise sites that
# no small folder reaches cheaply: each raise of ExcludedRunError must give its fix (hint=),
# save two whose reason is worded already: the fMRIPrep record's own (voxel_run, passed on)
# and ingest's TR check (compare_header_tr, with_fix).
WORDED = {("voxel_run.py", "reason"), ("voxel_run.py", "compared.mismatch")}


def test_every_connectome_exclusion_is_raised_with_its_fix() -> None:
    import ast

    import lcm.connectome

    lacking = []
    for path in sorted(Path(lcm.connectome.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ExcludedRunError"
            ):
                continue
            if any(k.arg == "hint" for k in node.keywords):
                continue
            if (path.name, ast.unparse(node.args[0])) not in WORDED:
                lacking.append(f"{path.name}:{node.lineno}")
    assert lacking == [], lacking


@pytest.mark.parametrize("ext", [".tsv", ".csv", ".npy"])
def test_a_series_with_no_volume_is_refused_in_every_format(tmp_path: Path, ext: str) -> None:
    """A header alone (or a 0 x R array) crashed the run's dropout check with numpy's
    "zero-size array" ValueError, stopping the whole dataset's job; it is `file_empty`."""
    path = tmp_path / f"sub-01_timeseries{ext}"
    if ext == ".npy":
        np.save(path, np.zeros((0, 116)))
    else:
        path.write_text(("\t" if ext == ".tsv" else ",").join(_names()) + "\n")
    with pytest.raises(ExcludedRunError) as caught:
        read_roi_series(path, _names())
    assert caught.value.code == reason_codes.FILE_EMPTY
    assert path.name in caught.value.one_line() and "Fix:" in caught.value.one_line()
