"""``lcm ingest``'s hints name the settings as the user gave them: its options on the command
line, the config's keys when a workflow rule runs it (``lcm --rule``, options built from the
config). They named ``datasets.<name>.task``, ``ingest.select.<name>`` ... to a command-line
user who had typed ``--task`` and ``--select``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import make_raw_bids, roi_series, save_nifti

from lcm.cli import main, setup_logging

# How each run names the settings: lcm ingest's options, or the config's keys of dataset d.
HOW = {
    "command_line": ([], {"task": "--task motor", "path": "--path", "tr": "--repetition-time"}),
    "rule": (
        ["--rule", "ingest"],
        {
            "task": "datasets.d.task: motor",
            "path": "datasets.d.path",
            "tr": "datasets.d.repetition_time",
        },
    ),
}
# A key inside the selection, as named: "{SELECT[how]}participants".
SELECT = {"command_line": "--select's ", "rule": "ingest.select.d."}


def _ingest(tmp_path: Path, how: str, *options: str) -> tuple[int, str, Path]:
    """Run ``lcm [--rule ingest] ingest --dataset d ...``: its exit code, log and manifest."""
    log = tmp_path / "ingest.log"
    out = tmp_path / "results" / "d" / "manifest.parquet"
    argv = ["--log-file", str(log), *HOW[how][0], "ingest", "--dataset", "d", *options]
    try:
        code = main([*argv, "--out", str(out)])
    finally:
        setup_logging()
    return code, log.read_text(), out


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_folder_of_another_tasks_files_is_hinted_by_the_settings_given(
    tmp_path: Path, how: str
) -> None:
    """Runs of task-motor where rest was asked: the fix said datasets.d.task: motor (lcm run
    --task motor) to a user of lcm ingest --task."""
    ts = tmp_path / "ts"
    ts.mkdir()
    np.save(ts / "sub-01_task-motor_timeseries.npy", roi_series())
    code, text, _ = _ingest(tmp_path, how, "--entry", "roi_timeseries", "--path", str(ts))
    assert code != 0 and "no run of task 'rest'" in text, text
    said = HOW[how][1]
    assert f"set {said['task']};" in text and f"or set {said['path']} to a tab-separated" in text
    assert how == "rule" or "datasets." not in text, text


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_repetition_time_in_milliseconds_is_named_as_given(tmp_path: Path, how: str) -> None:
    """--repetition-time 2000 (milliseconds): each run's reason named
    datasets.<name>.repetition_time, the key of no config."""
    ts = tmp_path / "ts"
    ts.mkdir()
    np.save(ts / "sub-01.npy", roi_series())
    options = ["--entry", "roi_timeseries", "--path", str(ts), "--repetition-time", "2000"]
    code, _, out = _ingest(tmp_path, how, *options)
    assert code == 0
    reason = pd.read_parquet(out)["reason"].iloc[0]
    assert reason.startswith(f"{HOW[how][1]['tr']} is 2000"), reason
    assert f"set {HOW[how][1]['tr']} to the repetition time in seconds" in reason, reason


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_subject_without_runs_is_left_out_by_the_selection_given(
    tmp_path: Path, how: str
) -> None:
    """An anatomical-only subject's summary reason told a command-line user to leave it out
    with ingest.select.d.participants.exclude."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    save_nifti(root / "sub-02" / "anat" / "sub-02_T1w.nii.gz", np.zeros((4, 5, 6)))
    options = ["--entry", "bids", "--path", str(root), "--no-validate"]
    code, _, out = _ingest(tmp_path, how, *options)
    assert code == 0
    summary = json.loads((out.parent / "summary.json").read_text())
    [reason] = [s["reason"] for s in summary["subjects_without_runs"]]
    assert f"leave it out ({SELECT[how]}participants.exclude)" in reason, reason
    assert how == "rule" or "ingest.select" not in reason, reason


@pytest.mark.parametrize("how", sorted(HOW))
@pytest.mark.parametrize(
    ("select", "said"),
    [
        ({"task": {"include": ["rest"]}}, "The task is set by {task}"),
        ({"participants": {"exclude": ["7"]}}, "{select}participants names sub-7"),
    ],
    ids=["unknown_key", "label_no_file_has"],
)
def test_a_selection_refused_is_named_as_given(
    tmp_path: Path, how: str, select: dict, said: str
) -> None:
    """A --select refused: an unknown key's hint named datasets.<name>.task, a label no file
    has was said of ingest.select.d.participants, to a user of --select and --task."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    options = ["--entry", "bids", "--path", str(root), "--no-validate"]
    code, text, _ = _ingest(tmp_path, how, *options, "--select", json.dumps(select))
    assert code != 0
    task = "--task" if how == "command_line" else "datasets.d.task"
    assert said.format(task=task, select=SELECT[how]) in text, text
    assert how == "rule" or ("datasets." not in text and "ingest.select" not in text), text


@pytest.mark.parametrize("how", sorted(HOW))
def test_an_xcpd_run_without_a_sidecar_is_hinted_by_the_repetition_time_given(
    tmp_path: Path, how: str
) -> None:
    """An XCP-D series with no sidecar was told to set datasets.<name>.repetition_time (lcm
    ingest --repetition-time), its dataset's name left unfilled, both ways named to either
    user; the reason is cached per subject, so a cache of the other way is not reused."""
    xcpd = tmp_path / "xcpd"
    func = xcpd / "sub-01" / "func"
    func.mkdir(parents=True)
    (xcpd / "dataset_description.json").write_text(
        json.dumps({"Name": "x", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    series = pd.DataFrame(roi_series(5), columns=[f"r{i}" for i in range(5)])
    series.to_csv(func / "sub-01_task-rest_seg-aal_stat-mean_timeseries.tsv", sep="\t", index=False)
    options = ["--entry", "roi_timeseries", "--path", str(xcpd)]
    for way in (*{"command_line", "rule"} - {how}, how):  # the other way's cache first
        code, _, out = _ingest(tmp_path, way, *options)
        assert code == 0
    reason = pd.read_parquet(out)["reason"].iloc[0]
    assert "no JSON sidecar" in reason and f"Fix: set {HOW[how][1]['tr']} to" in reason
    assert "<name>" not in reason and "lcm ingest" not in reason, reason


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_run_left_out_by_the_selection_is_named_as_given(tmp_path: Path, how: str) -> None:
    """A run left out by --select was said to be 'in ingest.select participants.exclude', its
    fix naming ingest.select.<dataset>... (lcm ingest --select) with the name unfilled; the
    participants the selection kept are still read from the reasons, old wording included."""
    from lcm.bids.selection import participants_kept

    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"))
    select = json.dumps({"participants": {"exclude": ["02"]}})
    options = ["--entry", "bids", "--path", str(root), "--no-validate", "--select", select]
    code, _, out = _ingest(tmp_path, how, *options)
    assert code == 0
    manifest = pd.read_parquet(out)
    [reason] = manifest.loc[manifest["reason_code"] == "not_selected", "reason"]
    listed = f"{SELECT[how]}participants.exclude"
    assert (
        reason
        == f"not selected: subject 02 is in {listed}. Fix: to keep it, remove 02 from {listed}"
    )
    assert participants_kept(manifest) == {"01"}
    old = manifest.assign(  # a manifest an earlier LCM wrote
        reason=manifest["reason"].where(
            manifest["reason_code"] != "not_selected",
            "not selected: subject 02 is in ingest.select participants.exclude. Fix: ...",
        )
    )
    assert participants_kept(old) == {"01"}


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_run_in_another_space_only_is_hinted_by_the_space_setting_given(
    tmp_path: Path, how: str
) -> None:
    """fMRIPrep derivatives in another space: the reason named fmriprep.output_space (lcm
    ingest --space, lcm fmriprep --output-space), the config's key and two options, to either
    user; the reason is cached per subject, so a cache of the other way is not reused."""
    from helpers.connectome import SPACE, make_fmriprep_run

    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest")
    options = ["--entry", "fmriprep", "--path", str(deriv), "--space", "MNI152NLin6Asym"]
    for way in (*{"command_line", "rule"} - {how}, how):  # the other way's cache first
        code, _, out = _ingest(tmp_path, way, *options)
        assert code == 0
    [reason] = pd.read_parquet(out)["reason"]
    setting = {"command_line": "--space", "rule": "fmriprep.output_space"}[how]
    wrote = f"{SPACE}:res-native"  # its file names no res-
    assert reason == (
        f"no preprocessed BOLD in space MNI152NLin6Asym ({setting}); fMRIPrep wrote this run's "
        f"in {wrote}. Fix: Set {setting} to the one to read, e.g. {wrote}, the same for every "
        "run, or run fMRIPrep with --output-spaces MNI152NLin6Asym"
    )


@pytest.mark.parametrize("how", sorted(HOW))
def test_roi_series_in_several_spaces_are_hinted_by_the_selection_given(
    tmp_path: Path, how: str
) -> None:
    """XCP-D's series of one run in two spaces: the fix said "choose one with --select's
    space" (ingest.select.d.space under a rule), a key either selection refuses: its
    include list is space.include, and on the command line --space is the simpler fix."""
    func = tmp_path / "xcpd" / "sub-01" / "func"
    func.mkdir(parents=True)
    (tmp_path / "xcpd" / "dataset_description.json").write_text(
        json.dumps({"Name": "x", "BIDSVersion": "1.9.0", "DatasetType": "derivative"})
    )
    for space in ("MNI152NLin6Asym", "fsLR"):
        stem = f"sub-01_task-rest_space-{space}_seg-aal_stat-mean_timeseries"
        series = pd.DataFrame(roi_series(5), columns=[f"r{i}" for i in range(5)])
        series.to_csv(func / f"{stem}.tsv", sep="\t", index=False)
        (func / f"{stem}.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    options = ["--entry", "roi_timeseries", "--path", str(tmp_path / "xcpd")]
    code, _, out = _ingest(tmp_path, how, *options)
    assert code == 0
    manifest = pd.read_parquet(out)
    [reason] = manifest.loc[~manifest["included"], "reason"]
    # On the command line --space keeps one space; the workflow passes none to ROI series.
    fix = "--space" if how == "command_line" else f"{SELECT[how]}space.include"
    assert reason.endswith(f". Fix: several spaces: choose one with {fix}"), reason


@pytest.mark.parametrize(("names", "said"), [(None, "in datasets:"), ("options", "in --dataset:")])
def test_an_invalid_dataset_name_is_named_as_given(
    tmp_path: Path, names: str | None, said: str
) -> None:
    """ingest_dataset's own check of the name said --dataset to a caller of the config's."""
    from lcm.bids.ingest import ingest_dataset
    from lcm.commands.ingest import OPTION_NAMES
    from lcm.exceptions import InputDataError

    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    with pytest.raises(InputDataError) as err:
        ingest_dataset("my-data", "bids", root, names=OPTION_NAMES if names else None)
    assert f"'my-data' {said}" in err.value.message, err.value.message


# How each run turns the BIDS validator off: lcm ingest's flag, or the config's key (which
# lcm run --skip-bids-validation sets too): the hint named the key and both options at once.
SKIP = {
    "command_line": "pass --no-validate for trusted data",
    "rule": "set ingest.validate: false for trusted data",
}


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_validator_error_of_a_run_is_hinted_by_the_validation_setting_given(
    tmp_path: Path, how: str
) -> None:
    """A run's invalid sidecar: its reason's fix names the one way this user turns it off."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"))
    side = root / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.json"
    side.write_text(json.dumps({"RepetitionTime": 2.0, "EchoTime": "thirty"}))
    code, _, out = _ingest(tmp_path, how, "--entry", "bids", "--path", str(root))
    assert code == 0
    manifest = pd.read_parquet(out)
    [reason] = manifest.loc[~manifest["included"], "reason"]
    location = "/sub-01/func/sub-01_task-rest_run-2_bold.json"
    assert reason.endswith(f". Fix: correct {location} as the validator says, or {SKIP[how]}"), (
        reason
    )


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_dataset_level_validator_error_is_hinted_by_the_validation_setting_given(
    tmp_path: Path, how: str
) -> None:
    """An empty README stops the dataset: the hint names the one way this user turns it off."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    (root / "README").write_text("")
    code, text, _ = _ingest(tmp_path, how, "--entry", "bids", "--path", str(root))
    assert code != 0
    assert (
        "Fix the dataset (see https://bids-specification.readthedocs.io), drop the offending "
        f"files from the dataset, or {SKIP[how]}." in text
    ), text
