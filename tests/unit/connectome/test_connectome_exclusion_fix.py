"""An excluded run's QC reason and log line carry the fix, not the fault alone.

The fixes written where a run is refused (the error's ``hint``) were dropped: the QC table and
the job log kept the message only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import read_qc_table

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.connectome.roi_runs import process_timeseries_manifest
from lcm.connectome.settings import DenoiseSettings
from lcm.exceptions import ExcludedRunError


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


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
