"""Runs without the degrees of freedom their denoising takes are excluded, the cohort goes on.

Voxel runs regress their confounds, band-passed like the signals: each takes one of the band's
degrees of freedom. ROI time series regress nothing: the band alone decides. The run's QC says
how many were left (``dof``) and, when too few, why (``too_few_dof``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import fmriprep_record, make_fmriprep_run

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.connectome.roi_runs import process_timeseries_manifest
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run

RUN = "sub-01_task-rest_run-1"


def _voxel_qc(tmp_path: Path, n_vol: int, denoise: dict) -> dict:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=n_vol, t_r=2.0)
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, files)])
    return process_voxel_run(
        "tiny",
        record,
        RUN,
        load_atlas("aal116"),
        DenoiseSettings.from_dict({"fd_threshold": None, **denoise}),
        tmp_path / "conn",
        tmp_path / "qc.json",
    )


def test_voxel_run_too_short_for_its_confounds_is_excluded(tmp_path: Path) -> None:
    """60 volumes at TR 2 s hold 21.6 degrees of freedom in the band; 24P takes 24: excluded,
    the QC saying how many were left. 36P's 36 columns on 240 volumes leave 49.4: included."""
    qc = _voxel_qc(tmp_path / "short", 60, {"strategy": "24P"})
    assert not qc["included"] and qc["reason_code"] == "too_few_dof"
    assert qc["dof"] == pytest.approx(-3.4) and "less 24 confound regressor(s)" in qc["reason"]
    assert not qc["relmat"] and qc["n_volumes_kept"] == 60
    qc = _voxel_qc(tmp_path / "long", 240, {"strategy": "36P"})
    assert qc["included"], qc["reason"]
    assert qc["dof"] == pytest.approx(2 * 480 * 0.09 - 36 - 1)
    assert json.loads((tmp_path / "long" / "qc.json").read_text())["dof"] == qc["dof"]


def test_cosines_count_as_regressors(tmp_path: Path) -> None:
    """acompcor regresses 12 motion columns, 5 aCompCor and the 3 cosines: 20, each one."""
    qc = _voxel_qc(tmp_path, 200, {"strategy": "acompcor"})
    assert qc["included"] and qc["n_cosine_regressors"] == 3
    assert qc["dof"] == pytest.approx(2 * 400 * 0.09 - 20 - 1)


def test_roi_series_too_short_for_the_band_are_excluded_the_others_go_on(
    tmp_path: Path,
) -> None:
    """ROI time series regress nothing: the band alone decides. 50 volumes at TR 2 s hold 18
    degrees of freedom in 0.01-0.1 Hz (17 once detrended): under the floor; 200 hold 71."""
    atlas = load_atlas("aal116")
    names = atlas.labels["name"].tolist()
    root = tmp_path / "ts"
    root.mkdir()
    rng = np.random.default_rng(0)
    for sub, n_vol in (("01", 50), ("02", 200)):
        frame = pd.DataFrame(rng.standard_normal((n_vol, len(names))), columns=names)
        frame.to_csv(root / f"sub-{sub}_timeseries.tsv", sep="\t", index=False)
    manifest = tmp_path / "manifest.parquet"
    ingest("ts", "roi_timeseries", root, manifest, repetition_time=2.0)
    qc = process_timeseries_manifest(
        "ts", manifest, atlas, DenoiseSettings(), tmp_path / "conn", tmp_path / "qc.tsv"
    ).set_index("subject")
    assert qc.loc["01", "reason_code"] == "too_few_dof"
    assert "17.0 degrees of freedom left" in qc.loc["01", "reason"]
    assert "less the linear trend" in qc.loc["01", "reason"]
    assert "confound regressor" not in qc.loc["01", "reason"]
    assert qc.loc["02", "included"] and qc.loc["02", "dof"] == pytest.approx(71.0)
    assert qc.loc["01", "dof"] == pytest.approx(17.0)
