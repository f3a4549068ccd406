"""``lcm ingest``'s refusals and fixes as the user gave the settings: on the command line its
options, under a workflow rule (``lcm --rule``) the config's keys.

``--space`` of a connectome dataset was silently ignored, on the command line and as the
workflow passed it (every space's files kept); a run in several spaces was told to use
``--select's space.include`` where ``--space`` keeps one; a ``--select`` that is no JSON object
was named ``--select`` to a workflow user, who wrote ``ingest.select.<dataset>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import make_raw_bids, roi_series

from lcm.cli import main, setup_logging

SPACES = ("MNI152NLin6Asym", "fsLR")
RULE = ["--rule", "ingest"]


def _ingest(tmp_path: Path, rule: bool, *options: str) -> tuple[int, str, pd.DataFrame | None]:
    """Run ``lcm [--rule ingest] ingest --dataset d ...``: its exit code, log and manifest."""
    log = tmp_path / "ingest.log"
    out = tmp_path / "results" / "d" / "manifest.parquet"
    argv = ["--log-file", str(log), *(RULE if rule else []), "ingest", "--dataset", "d"]
    try:
        code = main([*argv, *options, "--out", str(out)])
    finally:
        setup_logging()
    return code, log.read_text(), pd.read_parquet(out) if out.is_file() else None


def _runs(tmp_path: Path, entry: str) -> Path:
    """A folder of sub-01's run in both :data:`SPACES`: connectomes or ROI time series."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for space in SPACES:
        stem = f"sub-01_task-rest_space-{space}"
        if entry == "connectome":
            np.save(folder / f"{stem}_relmat.npy", np.eye(5))
        else:
            np.save(folder / f"{stem}_timeseries.npy", roi_series(5))
    return folder


@pytest.mark.parametrize("rule", [False, True], ids=["command_line", "rule"])
def test_space_of_a_connectome_dataset_is_refused(tmp_path: Path, rule: bool) -> None:
    """A connectome is kept whatever its space: --space did nothing, silently. Under a rule
    too: the workflow no longer passes it there (get_ingest_space_arg)."""
    path = _runs(tmp_path, "connectome")
    options = ["--entry", "connectome", "--path", str(path), "--space", "fsLR"]
    code, text, manifest = _ingest(tmp_path, rule, *options)
    assert code != 0 and manifest is None
    assert (
        "--space fsLR: entry 'connectome' does not filter on space (its files are kept whatever "
        "their space-<label>), so --space would be ignored." in text
    ), text
    assert (
        """Leave --space out; to keep only this space's runs, pass --select """
        """'{"space": {"include": ["fsLR"]}}'.""" in text
    ), text


def test_the_selection_the_space_refusal_names_keeps_that_space(tmp_path: Path) -> None:
    """The refusal's fix works: --select's space.include keeps the fsLR connectome."""
    path = _runs(tmp_path, "connectome")
    select = json.dumps({"space": {"include": ["fsLR"]}})
    options = ["--entry", "connectome", "--path", str(path), "--select", select]
    code, _, manifest = _ingest(tmp_path, False, *options)
    assert code == 0 and manifest is not None
    assert manifest.loc[manifest["included"], "space"].tolist() == ["fsLR"]


def test_a_connectome_dataset_under_a_rule_keeps_every_space(tmp_path: Path) -> None:
    """Without --space (as the workflow runs it), no run is left out for its space (one is a
    duplicate, the selection's key its fix)."""
    path = _runs(tmp_path, "connectome")
    options = ["--entry", "connectome", "--path", str(path)]
    code, _, manifest = _ingest(tmp_path, True, *options)
    assert code == 0 and manifest is not None
    assert sorted(manifest["space"]) == sorted(SPACES)
    [reason] = manifest.loc[~manifest["included"], "reason"]
    assert reason.endswith("several spaces: choose one with ingest.select.d.space.include"), reason


def test_space_of_a_raw_dataset_is_still_taken_on_the_command_line(tmp_path: Path) -> None:
    """A voxel-level entry's space is checked (volumetric) and recorded: not refused."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    options = [
        "--entry",
        "bids",
        "--path",
        str(root),
        "--no-validate",
        "--space",
        "MNI152NLin6Asym",
    ]
    code, text, manifest = _ingest(tmp_path, False, *options)
    assert code == 0 and manifest is not None, text
    summary = json.loads((tmp_path / "results" / "d" / "summary.json").read_text())
    assert summary["space"] == "MNI152NLin6Asym"


@pytest.mark.parametrize(
    ("entry", "rule", "fix"),
    [
        ("roi_timeseries", False, "--space"),
        ("roi_timeseries", True, "ingest.select.d.space.include"),
        ("connectome", False, "--select's space.include"),
        ("connectome", True, "ingest.select.d.space.include"),
    ],
    ids=["roi_command_line", "roi_rule", "connectome_command_line", "connectome_rule"],
)
def test_a_run_in_several_spaces_is_fixed_by_the_setting_that_keeps_one(
    tmp_path: Path, entry: str, rule: bool, fix: str
) -> None:
    """ROI time series on the command line: --space keeps one space (the workflow does not
    pass it to them, so its user chooses by the selection); a connectome only by the selection."""
    path = _runs(tmp_path, entry)
    options = ["--entry", entry, "--path", str(path)]
    tr = ["--repetition-time", "2"] if entry == "roi_timeseries" else []
    code, text, manifest = _ingest(tmp_path, rule, *options, *tr)
    assert code == 0 and manifest is not None, text
    [reason] = manifest.loc[~manifest["included"], "reason"]
    assert reason.endswith(f"several spaces: choose one with {fix}"), reason


@pytest.mark.parametrize("rule", [False, True], ids=["command_line", "rule"])
@pytest.mark.parametrize("text", ["{participants", '["01"]'], ids=["not_json", "not_object"])
def test_a_selection_that_is_no_json_object_is_named_as_given(
    tmp_path: Path, rule: bool, text: str
) -> None:
    """The error named --select to a workflow user, whose selection is ingest.select.d."""
    path = _runs(tmp_path, "connectome")
    options = ["--entry", "connectome", "--path", str(path), "--select", text]
    code, log, manifest = _ingest(tmp_path, rule, *options)
    assert code != 0 and manifest is None
    name = "ingest.select.d" if rule else "--select"
    assert f"{name}: expected a JSON object, received {text!r}" in log, log
    example = '{"participants": {"include": ["01", "02"]}}'
    fix = f"ingest.select.d: {example}" if rule else f"--select '{example}'"
    assert f"e.g. {fix}\n" in log, log
    assert rule or "ingest.select" not in log, log


@pytest.mark.parametrize("rule", [False, True], ids=["command_line", "rule"])
def test_a_duplicate_roi_series_names_the_files_fix(tmp_path: Path, rule: bool) -> None:
    """Two XCP-D series of one run, space and parcellation: no setting tells them apart (the fix
    once named a space and atlas selection, which were equal), so the fix is the tree's, the
    same to either user."""
    func = tmp_path / "xcpd" / "sub-01" / "func"
    func.mkdir(parents=True)
    (tmp_path / "xcpd" / "dataset_description.json").write_text(
        json.dumps({"Name": "x", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    for run in ("01", "1"):  # the same run: indices compare as numbers
        stem = f"sub-01_task-rest_run-{run}_space-fsLR_seg-aal_stat-mean_timeseries"
        series = pd.DataFrame(roi_series(5), columns=[f"r{i}" for i in range(5)])
        series.to_csv(func / f"{stem}.tsv", sep="\t", index=False)
        (func / f"{stem}.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    options = ["--entry", "roi_timeseries", "--path", str(tmp_path / "xcpd")]
    code, text, manifest = _ingest(tmp_path, rule, *options)
    assert code == 0 and manifest is not None, text
    [reason] = manifest.loc[~manifest["included"], "reason"]
    assert reason.endswith(
        "keep one series file per run, space and atlas (run-01 and run-1 are one run; "
        "a second stat- or desc- of it is a duplicate)"
    ), reason
    assert "select" not in reason and "--space" not in reason, reason
