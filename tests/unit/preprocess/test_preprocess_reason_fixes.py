"""Every reason the fMRIPrep stage excludes a run for says what is wrong and what to do.

One broken derivatives folder per reason code, written in tmp_path and checked with
``lcm fmriprep --runner existing`` from that folder, as a user runs it (fmriprep_failed with
the docker stand-in: only a launched fMRIPrep fails); the record's reason of the excluded run
must read ``<problem>. Fix: <what to do>``, the fix naming the setting, file or command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.connectome import SPACE, cli, make_fmriprep_run, make_raw_bids, write_json
from helpers.fmriprep import IMAGE, expect_standin

from lcm import reason_codes
from lcm.bids.ingest import ingest
from lcm.commands import fmriprep as fmriprep_cmd

RUN = "sub-01_task-rest_run-1"


def _derivatives(tmp: Path) -> dict[str, Path]:
    make_raw_bids(tmp / "raw", subjects=("01",), runs=("1", "2"), t_r=2.0)
    make_fmriprep_run(tmp / "deriv", "sub-01_task-rest_run-2")
    return make_fmriprep_run(tmp / "deriv", RUN)


def outputs_missing_confounds(tmp: Path) -> list[str]:
    _derivatives(tmp)["confounds"].unlink()
    return []


def outputs_missing_bold(tmp: Path) -> list[str]:
    _derivatives(tmp)["bold"].unlink()
    return []


def outputs_ambiguous_versions(tmp: Path) -> list[str]:
    files = _derivatives(tmp)
    old = files["confounds"].name.replace("_timeseries.tsv", "_regressors.tsv")
    files["confounds"].with_name(old).write_bytes(files["confounds"].read_bytes())
    return []


def outputs_ambiguous_index(tmp: Path) -> list[str]:
    _derivatives(tmp)
    make_fmriprep_run(tmp / "deriv", "sub-01_task-rest_run-01")
    return []


def not_in_space(tmp: Path) -> list[str]:
    _derivatives(tmp)
    return ["--output-space", "MNI152NLin6Asym"]


def tr_mismatch(tmp: Path) -> list[str]:
    write_json(_derivatives(tmp)["sidecar"], {"RepetitionTime": 1.0})  # header says 2 s
    return []


def no_repetition_time(tmp: Path) -> list[str]:
    """Neither the preprocessed sidecar nor the raw run gives a TR."""
    write_json(_derivatives(tmp)["sidecar"], {"TaskName": "rest"})
    write_json(tmp / "raw" / "task-rest_bold.json", {"TaskName": "rest"})
    return []


def excluded_at_ingest(tmp: Path) -> list[str]:
    _derivatives(tmp)
    write_json(tmp / "raw" / "sub-01" / "func" / f"{RUN}_bold.json", {"RepetitionTime": 3.0})
    ingest("tiny", "bids", tmp / "raw", tmp / "manifest.parquet", validate=False, use_cache=False)
    return ["--manifest", "manifest.parquet"]


# case: (make the folder, code, a word of the fix: the setting, file or command to act on)
CASES: dict[str, tuple[Callable[[Path], list[str]], str, str]] = {
    "outputs_missing-confounds": (
        outputs_missing_confounds,
        reason_codes.OUTPUTS_MISSING,
        "restore the file",
    ),
    "outputs_missing-bold": (outputs_missing_bold, reason_codes.OUTPUTS_MISSING, "--output-spaces"),
    "outputs_ambiguous-versions": (
        outputs_ambiguous_versions,
        reason_codes.OUTPUTS_AMBIGUOUS,
        "Remove the stale set",
    ),
    "outputs_ambiguous-index": (
        outputs_ambiguous_index,
        reason_codes.OUTPUTS_AMBIGUOUS,
        "Remove or move away the stale set",
    ),
    "not_in_space": (not_in_space, reason_codes.NOT_IN_SPACE, "--output-space"),
    "tr_mismatch": (tr_mismatch, reason_codes.TR_MISMATCH, "sidecar"),
    "no_repetition_time": (no_repetition_time, reason_codes.NO_REPETITION_TIME, "RepetitionTime"),
    "excluded_at_ingest": (excluded_at_ingest, reason_codes.TR_MISMATCH, "RepetitionTime"),
}

# "<problem>. Fix: <what to do>", as lcm.reason_codes.with_fix words it: one fix, the one
# to act on (a quoted reason of ingest's says its problem only).
WORDING = re.compile(r"^\S.*[^ .;]\. Fix: \S.+$", re.DOTALL)


def _one_fix(reason: str) -> str:
    """The fix of ``reason``, checked to be worded as with_fix words it, once."""
    assert WORDING.match(reason) and reason.count("Fix: ") == 1, reason
    return reason.split("Fix: ", 1)[1]


def _record(tmp: Path, extra: list[str], runner: str = "existing") -> dict:
    argv = ["fmriprep", "--dataset", "tiny", "--bids", "raw", "--subject", "01"]
    argv += ["--runner", runner, "--output-space", SPACE, "--derivatives", "deriv"]
    argv += ["--out", "rec.json", *extra]
    assert cli(fmriprep_cmd, argv) == 0
    return json.loads((tmp / "rec.json").read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_each_fmriprep_exclusion_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    make, code, fix = CASES[case]
    extra = make(tmp_path)
    monkeypatch.chdir(tmp_path)
    rec = _record(tmp_path, extra)
    excluded = {e["run_key"]: e for e in rec["excluded"]}
    assert RUN in excluded, rec
    row = excluded[RUN]
    assert row["reason_code"] == code, row
    assert fix.lower() in _one_fix(row["reason"]).lower(), row["reason"]


def test_a_failed_fmriprep_says_the_fix(
    tmp_path: Path, standins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fMRIPrep exits 1 (docker stand-in): every run's reason names the log to read and how to
    rerun the subject once fixed."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"))
    lic = expect_standin(monkeypatch, tmp_path, exit=1)
    monkeypatch.chdir(tmp_path)
    extra = ["--image", IMAGE, "--work-dir", "work", "--fs-license", str(lic)]
    rec = _record(tmp_path, extra, runner="docker")
    assert {e["reason_code"] for e in rec["excluded"]} == {reason_codes.FMRIPREP_FAILED}
    for row in rec["excluded"]:
        fix = _one_fix(row["reason"])
        assert "rec.json" in fix and "--forcerun" in fix, row["reason"]
