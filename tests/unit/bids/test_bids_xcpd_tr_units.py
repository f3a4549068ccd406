"""An XCP-D time series whose TR is above 30 s (milliseconds given as seconds) is excluded.

A folder of plain series files refused a TR of 2000 at ingest; the same series in an XCP-D
tree (indexed by :mod:`lcm.bids.fast_index`) was included with a TR of 2000 s, and each run was
excluded later by the connectome stage with a high-pass 'above Nyquist' and the fix to lower
the filter. Both ways in now share one check (:func:`lcm.repetition_time.implausible_tr`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm import reason_codes
from lcm.bids.ingest import ingest_dataset

STEM = "sub-01_task-rest_space-MNI152NLin2009cAsym_seg-4S156Parcels_stat-mean_timeseries"


def _series(path: Path) -> None:
    """A series as XCP-D writes it: ROI names as the header, ``n/a`` for an uncovered ROI."""
    table = pd.DataFrame(np.random.default_rng(1).normal(size=(30, 4)), columns=list("abcd"))
    table["d"] = np.nan
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")


def _xcpd(root: Path, sidecar: dict | None) -> Path:
    func = root / "sub-01" / "func"
    func.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "xcp_d", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    _series(func / f"{STEM}.tsv")
    if sidecar is not None:
        (func / f"{STEM}.json").write_text(json.dumps(sidecar))
    return root


def _row(root: Path, repetition_time: float | None = None) -> dict:
    manifest = ingest_dataset("x", "roi_timeseries", root, repetition_time=repetition_time)
    (row,) = manifest.manifest.to_dict("records")
    return row


@pytest.mark.parametrize("value", [2000, 800.0])
def test_an_xcpd_sidecar_tr_in_milliseconds_is_excluded_naming_the_sidecar(
    tmp_path: Path, value: float
) -> None:
    row = _row(_xcpd(tmp_path / "xcpd", {"RepetitionTime": value}))
    assert not row["included"] and row["reason_code"] == reason_codes.NO_REPETITION_TIME
    assert row["t_r"] is None or np.isnan(row["t_r"])
    sidecar = f"RepetitionTime of {STEM}.json"
    assert row["reason"].startswith(f"{sidecar} is {value!r}: above 30 s"), row["reason"]
    assert f"in milliseconds it is {value / 1000:g} s" in row["reason"]
    assert f"set {sidecar} to the repetition time in seconds" in row["reason"]


def test_an_xcpd_tree_and_a_folder_refuse_the_dataset_tr_alike(tmp_path: Path) -> None:
    """``datasets.x.repetition_time: 2000`` for series without sidecars: one reason, whether
    the series lie in an XCP-D tree or in a plain folder."""
    xcpd = _row(_xcpd(tmp_path / "xcpd", None), repetition_time=2000)
    folder = tmp_path / "folder"
    folder.mkdir()
    _series(folder / f"{STEM}.tsv")
    plain = _row(folder, repetition_time=2000)
    assert not xcpd["included"] and xcpd["reason_code"] == reason_codes.NO_REPETITION_TIME
    assert xcpd["reason"] == plain["reason"]
    assert "datasets.x.repetition_time is 2000: above 30 s" in xcpd["reason"]


def test_a_tr_in_seconds_is_still_taken(tmp_path: Path) -> None:
    row = _row(_xcpd(tmp_path / "xcpd", {"RepetitionTime": 30}))
    assert row["included"], row["reason"]
    assert row["t_r"] == 30.0


# What XCP-D writes beside its parcellated series (ds_timeseries in its
# xcp_d/workflows/bold/outputs.py): SamplingFrequency "TR", a placeholder, and no RepetitionTime.
XCPD_SIDECAR = {"SamplingFrequency": "TR", "Sources": ["bids:xcp_d:sub-01/func/x_bold.nii.gz"]}


def test_an_xcpd_sidecar_without_a_tr_names_the_dataset_setting_first(tmp_path: Path) -> None:
    """The fix said to edit the run's sidecar "or one it inherits (task-<task>_bold.json)",
    which no _timeseries.json inherits from; the remedy for XCP-D outputs is the setting."""
    row = _row(_xcpd(tmp_path / "xcpd", XCPD_SIDECAR))
    assert not row["included"] and row["reason_code"] == reason_codes.NO_REPETITION_TIME
    problem, fix = reason_codes.split_fix(row["reason"])
    assert problem.startswith(f"RepetitionTime missing from the JSON sidecar of {STEM}.tsv")
    assert "SamplingFrequency 'TR' is not read as a TR" in problem
    assert fix.startswith("set datasets.x.repetition_time to the repetition time"), fix
    assert "XCP-D writes none" in fix and "task-<task>_bold.json" not in fix


def test_the_dataset_tr_is_taken_beside_xcpds_sidecar(tmp_path: Path) -> None:
    row = _row(_xcpd(tmp_path / "xcpd", XCPD_SIDECAR), repetition_time=0.8)
    assert row["included"], row["reason"]
    assert row["t_r"] == 0.8
