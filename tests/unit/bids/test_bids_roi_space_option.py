"""``lcm ingest --space`` for ROI time series keeps one space, whatever indexes the runs.

A listing TSV (or a plain folder) returned before ``--space`` became a selection: both spaces'
files of a run went on as duplicates, ``--space`` silently ignored. On an XCP-D tree, a run of
the other space was "not in --select's space.include" though the user typed ``--space``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.connectome import roi_series

from lcm.cli import main, setup_logging

SPACES = ("MNI152NLin6Asym", "fsLR")


def _series(folder: Path, subject: str, space: str | None) -> Path:
    """A run's ROI series (with its TR sidecar), named with ``space`` when one is given."""
    folder.mkdir(parents=True, exist_ok=True)
    label = f"_space-{space}" if space else ""
    path = folder / f"sub-{subject}_task-rest{label}_seg-aal_stat-mean_timeseries.tsv"
    pd.DataFrame(roi_series(5), columns=[f"r{i}" for i in range(5)]).to_csv(
        path, sep="\t", index=False
    )
    path.with_suffix(".json").write_text(json.dumps({"RepetitionTime": 2.0}))
    return path


def _listing(tmp_path: Path, spaces: tuple[str | None, ...] = SPACES) -> Path:
    """A listing TSV of subject 01's series, one per space of ``spaces``, and 02's in each."""
    rows = []
    for subject in ("01", "02"):
        for space in spaces:
            path = _series(tmp_path / "series", subject, space)
            rows.append(f"{subject}\tseries/{path.name}")
    listing = tmp_path / "listing.tsv"
    listing.write_text("participant_id\tpath\n" + "\n".join(rows) + "\n")
    return listing


def _tree(tmp_path: Path) -> Path:
    """An XCP-D derivative folder of subject 01 and 02's series in both spaces."""
    root = tmp_path / "xcpd"
    for subject in ("01", "02"):
        for space in SPACES:
            _series(root / f"sub-{subject}" / "func", subject, space)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "x", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    return root


def _ingest(tmp_path: Path, *options: str) -> tuple[int, pd.DataFrame | None]:
    """Run ``lcm ingest --dataset d --entry roi_timeseries ...``: its exit code and manifest."""
    out = tmp_path / "results" / "d" / "manifest.parquet"
    argv = ["--log-file", str(tmp_path / "ingest.log"), "ingest", "--dataset", "d"]
    try:
        code = main([*argv, "--entry", "roi_timeseries", *options, "--out", str(out)])
    finally:
        setup_logging()
    return code, pd.read_parquet(out) if out.is_file() else None


@pytest.mark.parametrize("layout", ["listing", "tree"])
def test_space_keeps_only_that_spaces_runs(tmp_path: Path, layout: str) -> None:
    """Each run keeps its fsLR series; the MNI one stays in the manifest, left out by --space."""
    path = _listing(tmp_path) if layout == "listing" else _tree(tmp_path)
    code, manifest = _ingest(tmp_path, "--path", str(path), "--space", "fsLR")
    assert code == 0 and manifest is not None
    kept = manifest.loc[manifest["included"]]
    assert sorted(kept["subject"]) == ["01", "02"]
    assert set(kept["space"]) == {"fsLR"}, kept["path"].tolist()
    other = manifest.loc[~manifest["included"]]
    assert set(other["space"]) == {"MNI152NLin6Asym"} and len(other) == 2
    assert set(other["reason_code"]) == {"not_selected"}
    assert set(other["reason"]) == {
        "not selected: space MNI152NLin6Asym is not --space fsLR. Fix: to keep it, set "
        "--space MNI152NLin6Asym, or leave --space out to keep every space"
    }


def test_space_no_file_is_in_is_refused_naming_the_listing(tmp_path: Path) -> None:
    """A space no listed file is in left every run out, one by one, not_selected."""
    listing = _listing(tmp_path)
    code, manifest = _ingest(tmp_path, "--path", str(listing), "--space", "MNI152NLin2009cAsym")
    text = (tmp_path / "ingest.log").read_text()
    assert code != 0 and manifest is None
    assert (
        f"--space MNI152NLin2009cAsym: no run of {listing} is in space MNI152NLin2009cAsym "
        "(their spaces: MNI152NLin6Asym, fsLR)" in text
    ), text
    assert "Set --space MNI152NLin6Asym or --space fsLR, or leave --space out" in text, text


def test_space_of_files_naming_none_is_refused(tmp_path: Path) -> None:
    """Files whose names carry no space- entity: --space could keep none of them."""
    listing = _listing(tmp_path, spaces=(None,))
    code, _ = _ingest(tmp_path, "--path", str(listing), "--space", "fsLR")
    text = (tmp_path / "ingest.log").read_text()
    assert code != 0
    assert f"--space fsLR: no run of {listing} is in space fsLR (no file name gives one)" in text
    assert "Leave --space out" in text, text


def test_space_outside_the_selections_space_is_refused(tmp_path: Path) -> None:
    """--space fsLR with --select's space.include [MNI...]: together they keep no run."""
    select = json.dumps({"space": {"include": ["MNI152NLin6Asym"]}})
    options = ["--path", str(_listing(tmp_path)), "--space", "fsLR", "--select", select]
    code, _ = _ingest(tmp_path, *options)
    text = (tmp_path / "ingest.log").read_text()
    assert code != 0
    assert (
        "--space fsLR is not in --select's space.include (MNI152NLin6Asym): together they "
        "keep no run" in text
    ), text
