"""An excluded run's QC reason and log line name its file and the fix, not the fault alone.

The fixes written where a run is refused (the error's ``hint``) were dropped: the QC table and
the job log kept the message only. The confounds check named no file, suggested 6P to a table
that lacks trans_x, and read fMRIPrep < 1.2's column names (X, RotX, ...) as columns missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    confounds_table,
    fmriprep_record,
    make_fmriprep_run,
    read_qc_table,
    write_confounds,
)

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.connectome.confounds import confound_columns
from lcm.connectome.roi_runs import process_timeseries_manifest
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import ExcludedRunError

RUN = "sub-01_task-rest_run-1"
N_VOL = 48
CONFOUNDS = f"{RUN}_desc-confounds_timeseries.tsv"
# fMRIPrep < 1.2's names of the columns a strategy reads (nipreps/fmriprep#1343 renamed them).
OLD_NAMES = {
    "trans_x": "X",
    "trans_y": "Y",
    "trans_z": "Z",
    "rot_x": "RotX",
    "rot_y": "RotY",
    "rot_z": "RotZ",
    "framewise_displacement": "FramewiseDisplacement",
    "global_signal": "GlobalSignal",
    "a_comp_cor_00": "aCompCor00",
}


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _voxel_qc(tmp_path: Path, atlas, edit, strategy: str = "24P") -> dict:
    """QC of a voxel run whose confounds table is ``edit(table)``."""
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    write_confounds(files["confounds"], edit(confounds_table(N_VOL)))
    record = fmriprep_record(tmp_path / "rec.json", "ds", [(RUN, files)])
    settings = DenoiseSettings.from_dict({"strategy": strategy, "min_volumes": 20})
    return process_voxel_run(
        "ds", record, RUN, atlas, settings, tmp_path / "conn", tmp_path / "qc.json"
    )


def test_confounds_lacking_motion_name_the_file_and_the_fix(
    tmp_path: Path, atlas, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.voxel_run"):
        qc = _voxel_qc(tmp_path, atlas, lambda t: t.drop(columns=["trans_x"]))
    assert qc["reason_code"] == "confounds_missing_columns"
    assert f"confounds {CONFOUNDS} lack the columns ['trans_x']" in qc["reason"]
    # No strategy regresses motion without trans_x: none is suggested (6P was).
    assert "e.g. 6P" not in qc["reason"]
    assert "Regenerate them with fMRIPrep" in qc["reason"]
    assert qc["reason"] in caplog.text  # the job log says the same, fix included


def test_confounds_lacking_a_strategy_s_columns_name_the_strategies_they_serve(
    tmp_path: Path, atlas
) -> None:
    qc = _voxel_qc(
        tmp_path,
        atlas,
        lambda t: t.drop(columns=[c for c in t if c.startswith("global_signal")]),
        strategy="36P",
    )
    assert qc["reason_code"] == "confounds_missing_columns"
    assert f"confounds {CONFOUNDS} lack the columns ['global_signal'," in qc["reason"]
    assert (
        "Fix: Set denoise.strategy to one of these confounds support, e.g. 6P, 24P" in qc["reason"]
    )
    assert "9P" not in qc["reason"] and "36P," not in qc["reason"]


def test_confounds_of_fmriprep_before_1_2_are_said_to_be(tmp_path: Path, atlas) -> None:
    qc = _voxel_qc(tmp_path, atlas, lambda t: t.rename(columns=OLD_NAMES))
    assert qc["reason_code"] == "confounds_missing_columns"
    assert CONFOUNDS in qc["reason"]
    assert "looks like fMRIPrep < 1.2's" in qc["reason"]
    assert "Fix: Rerun a current fMRIPrep" in qc["reason"]
    # The table holds columns of every new name: no such hint for a table merely lacking some.
    with pytest.raises(ExcludedRunError) as err:
        confound_columns("24P", ["trans_x", "CSF_mean"], source="c.tsv")
    assert "< 1.2" not in err.value.message and "c.tsv" in err.value.message


def test_supported_strategies_are_those_whose_columns_are_there() -> None:
    from lcm.connectome.confounds import supported_strategies

    table = confounds_table(N_VOL)
    assert supported_strategies(table.columns)[:2] == ["6P", "9P"]
    assert supported_strategies([c for c in table if c != "trans_x"]) == []
    for strategy in supported_strategies(table.columns):
        confound_columns(strategy, table.columns)


def test_exclusion_reason_carries_the_fix() -> None:
    from lcm.connectome.qc import exclusion_reason

    assert exclusion_reason(ExcludedRunError("a.tsv is bad")) == "a.tsv is bad"
    err = ExcludedRunError("a.tsv is bad.", hint="Replace it.")
    assert exclusion_reason(err) == "a.tsv is bad. Fix: Replace it."


def test_an_excluded_roi_run_s_reason_carries_the_fix(
    tmp_path: Path, atlas, caplog: pytest.LogCaptureFixture
) -> None:
    """A run of ROI time series whose Nyquist frequency is below high_pass: the setting to
    change reaches its QC row."""
    root = tmp_path / "ts"
    root.mkdir()
    names = atlas.labels["name"].tolist()
    rng = np.random.default_rng(0)
    series = rng.standard_normal((60, 1)) + rng.standard_normal((60, len(names)))
    pd.DataFrame(series, columns=names).to_csv(
        root / "sub-01_timeseries.tsv", sep="\t", index=False
    )
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest, repetition_time=2.0)
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.roi_runs"):
        process_timeseries_manifest(
            "ts",
            manifest,
            atlas,
            DenoiseSettings(min_volumes=30, high_pass=0.3, low_pass=None),
            tmp_path / "conn",
            tmp_path / "qc.tsv",
        )
    row = read_qc_table(tmp_path / "qc.tsv").iloc[0]
    assert row["reason_code"] == "high_pass_above_nyquist"
    assert "Fix: Set denoise.high_pass below 0.25 Hz" in row["reason"]
    assert row["reason"] in caplog.text  # and the job log says the same
