"""``lcm fmriprep``'s exclusion reasons name the settings as the user gave them: its options on
the command line, the config's keys when a workflow rule runs it (``lcm --rule``). A run in
another space named fmriprep.output_space (lcm ingest --space, lcm fmriprep --output-space) to
either user, and a run of fMRIPrep's legacy layout --derivatives and
ingest.select.<dataset>.participants.exclude, its dataset's name unfilled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids

from lcm.cli import main, setup_logging
from lcm.exceptions import ConfigError

RUN = "sub-01_task-rest_run-1"
# How each run names the settings: lcm fmriprep's options, or the config's keys of dataset tiny.
HOW = {
    "command_line": (
        [],
        {
            "space": "--output-space",
            "derivatives": "--derivatives {}",
            "select": "lcm ingest --select's participants.exclude",
        },
    ),
    "rule": (
        ["--rule", "fmriprep"],
        {
            "space": "fmriprep.output_space",
            "derivatives": "datasets.tiny.derivatives: {}",
            "select": "ingest.select.tiny.participants.exclude",
        },
    ),
}


def _reason(tmp: Path, how: str, space: str, deriv: Path) -> str:
    """The reason ``lcm [--rule fmriprep] fmriprep --runner existing`` excludes RUN for."""
    argv = [*HOW[how][0], "fmriprep", "--dataset", "tiny", "--bids", str(tmp / "raw")]
    argv += ["--subject", "01", "--runner", "existing", "--output-space", space]
    argv += ["--derivatives", str(deriv), "--out", str(tmp / "rec.json")]
    try:
        assert main(argv) == 0
    finally:
        setup_logging()
    rec = json.loads((tmp / "rec.json").read_text())
    return {e["run_key"]: e["reason"] for e in rec["excluded"]}[RUN]


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_run_in_another_space_names_the_space_setting_given(tmp_path: Path, how: str) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",), t_r=2.0)
    make_fmriprep_run(tmp_path / "deriv", RUN)
    reason = _reason(tmp_path, how, "MNI152NLin6Asym", tmp_path / "deriv")
    setting, wrote = HOW[how][1]["space"], f"{SPACE}:res-native"
    assert reason == (
        f"no preprocessed BOLD in space MNI152NLin6Asym ({setting}); fMRIPrep wrote this run's "
        f"in {wrote}. Fix: Set {setting} to the one to read, e.g. {wrote}, the same for every "
        "run, or run fMRIPrep with --output-spaces MNI152NLin6Asym"
    )


@pytest.mark.parametrize("how", sorted(HOW))
def test_a_legacy_layout_names_the_derivatives_and_selection_given(
    tmp_path: Path, how: str
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",), t_r=2.0)
    legacy = tmp_path / "deriv" / "fmriprep"
    make_fmriprep_run(legacy, RUN)
    reason = _reason(tmp_path, how, SPACE, tmp_path / "deriv")
    said = HOW[how][1]
    fix = (
        f"Fix: {legacy} is there, fMRIPrep's legacy output layout: point the dataset's "
        f"derivatives at it ({said['derivatives'].format(legacy)}), or leave the subject out "
        f"({said['select']})"
    )
    assert reason.endswith(fix), reason
    assert "<dataset>" not in reason


@pytest.mark.parametrize(
    ("how", "said"),
    [
        (
            "command_line",
            "--extra-args: '--participant-label' sets what LCM passes fMRIPrep itself",
        ),
        ("rule", "fmriprep.extra_args: '--participant-label' sets what LCM passes"),
    ],
)
def test_a_reserved_extra_arg_is_refused_by_the_settings_given(
    tmp_path: Path, how: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--extra-args '["--participant-label", "02"]': the fix said "Remove it from
    fmriprep.extra_args; choose subjects with ingest.select.<dataset>.participants (lcm run:
    --participant-label)" to either user, the dataset's name unfilled."""
    make_raw_bids(tmp_path / "raw", subjects=("01",))
    argv = [*HOW[how][0], "fmriprep", "--dataset", "tiny", "--bids", str(tmp_path / "raw")]
    argv += ["--runner", "apptainer", "--image", "docker://nipreps/fmriprep:25.2.7"]
    argv += ["--output-space", SPACE, "--derivatives", str(tmp_path / "deriv")]
    argv += ["--extra-args", '["--participant-label", "02"]', "--settings-only"]
    capsys.readouterr()
    try:
        assert main([*argv, "--out", str(tmp_path / "s.json")]) == ConfigError.exit_code
    finally:
        setup_logging()
    err = capsys.readouterr().err
    assert said in err, err
    option, subject = {
        "command_line": ("--extra-args", "--subject"),
        "rule": ("fmriprep.extra_args", "ingest.select.tiny.participants.include"),
    }[how]
    hint = err.split("hint:", 1)[1].strip()
    assert hint == (
        f"Remove '--participant-label' from {option}; LCM runs fMRIPrep once per subject, "
        f"with that subject's --participant-label: choose subjects with {subject}."
    ), hint
