"""Every reason ``lcm ingest`` excludes a run for carries a fix a user can act on.

One folder per reason code, written in tmp_path, ingested through the command line as a user
would; the manifest's reason of each excluded row must say ``Fix:`` and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import SPACE, cli, make_fmriprep_run, make_raw_bids, save_nifti, write_json

from lcm import reason_codes
from lcm.bids.summary import read_summary_table
from lcm.commands import ingest as ingest_cmd


def _raw(tmp: Path) -> Path:
    return make_raw_bids(tmp / "raw", subjects=("01", "02"), t_r=2.0)


def _func(root: Path, sub: str = "01") -> Path:
    return root / f"sub-{sub}" / "func"


def invalid_name(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    save_nifti(_func(root) / "sub-01_task-rest_bogus_bold.nii.gz", np.zeros((4, 5, 6, 7)), 2.0)
    return "bids", root, []


def invalid_label_raw(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    save_nifti(
        _func(root, "0x;1") / "sub-0x;1_task-rest_run-1_bold.nii.gz", np.zeros((4, 5, 6, 7)), 2.0
    )
    return "bids", root, []


def invalid_label_roi(tmp: Path) -> tuple[str, Path, list[str]]:
    root = tmp / "series"
    for stem in ("sub-01_task-rest", "sub-sub-02_task-rest"):
        write_json(root / f"{stem}_timeseries.json", {"RepetitionTime": 2})
        (root / f"{stem}_timeseries.tsv").write_text("a\tb\n1\t2\n3\t4\n")
    return "roi_timeseries", root, []


def invalid_label_listing(tmp: Path) -> tuple[str, Path, list[str]]:
    root = tmp / "connectomes"
    root.mkdir(parents=True)
    np.savetxt(root / "a.tsv", np.eye(3), delimiter="\t")
    listing = pd.DataFrame({"participant_id": ["sub-01", "02_b"], "path": ["a.tsv", "a.tsv"]})
    listing.to_csv(root / "listing.tsv", sep="\t", index=False)
    return "connectome", root / "listing.tsv", []


def missing_file(tmp: Path) -> tuple[str, Path, list[str]]:
    root = tmp / "connectomes"
    root.mkdir(parents=True)
    np.savetxt(root / "a.tsv", np.eye(3), delimiter="\t")
    listing = pd.DataFrame({"participant_id": ["01", "02"], "path": ["a.tsv", "gone.tsv"]})
    listing.to_csv(root / "listing.tsv", sep="\t", index=False)
    return "connectome", root / "listing.tsv", []


def bad_sidecar(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    (_func(root) / "sub-01_task-rest_run-1_bold.json").write_text("{not json")
    return "bids", root, []


def bad_sidecar_roi(tmp: Path) -> tuple[str, Path, list[str]]:
    root = no_repetition_time_roi(tmp)[1]
    (root / "sub-01_task-rest_timeseries.json").write_text("{not json")
    return "roi_timeseries", root, []


def no_repetition_time_roi(tmp: Path) -> tuple[str, Path, list[str]]:
    root = tmp / "series"
    root.mkdir(parents=True)
    (root / "sub-01_task-rest_timeseries.tsv").write_text("a\tb\n1\t2\n3\t4\n")  # no sidecar
    return "roi_timeseries", root, []


def no_repetition_time(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    write_json(root / "task-rest_bold.json", {"TaskName": "rest"})
    return "bids", root, []


def not_4d(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    save_nifti(_func(root) / "sub-01_task-rest_run-1_bold.nii.gz", np.zeros((4, 5, 6)))
    return "bids", root, []


def bad_header(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    (_func(root) / "sub-01_task-rest_run-1_bold.nii.gz").write_bytes(b"<html>not found</html>")
    return "bids", root, []


def tr_mismatch(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    save_nifti(_func(root) / "sub-01_task-rest_run-1_bold.nii.gz", np.zeros((4, 5, 6, 7)), 3.0)
    return "bids", root, []


def duplicate(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    save_nifti(_func(root) / "sub-01_task-rest_run-1_bold.nii", np.zeros((4, 5, 6, 7)), 2.0)
    return "bids", root, []


def not_selected(tmp: Path) -> tuple[str, Path, list[str]]:
    return "bids", _raw(tmp), ["--select", '{"participants": {"exclude": ["02"]}}']


def other_echo(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    for echo in ("1", "2"):
        name = f"sub-01_task-rest_run-2_echo-{echo}_bold.nii.gz"
        save_nifti(_func(root) / name, np.zeros((4, 5, 6, 7)), 2.0)
        write_json(_func(root) / name.replace(".nii.gz", ".json"), {"EchoTime": 0.01 * int(echo)})
    return "bids", root, []


def other_part(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    for part in ("mag", "phase"):
        name = f"sub-01_task-rest_run-2_part-{part}_bold.nii.gz"
        save_nifti(_func(root) / name, np.zeros((4, 5, 6, 7)), 2.0)
    return "bids", root, []


def not_fetched(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    bold = _func(root) / "sub-01_task-rest_run-1_bold.nii.gz"
    bold.unlink()
    bold.symlink_to(os.path.relpath(root / ".git" / "annex" / "objects" / "XX", bold.parent))
    return "bids", root, []


def not_in_space(tmp: Path) -> tuple[str, Path, list[str]]:
    deriv = tmp / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest")
    make_fmriprep_run(deriv, "sub-02_task-rest", res="2")
    return "fmriprep", deriv, ["--space", f"{SPACE}:res-native"]


def outputs_missing(tmp: Path) -> tuple[str, Path, list[str]]:
    deriv = tmp / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest")
    save_nifti(
        deriv / "sub-02" / "func" / f"sub-02_task-rest_space-{SPACE}_desc-brain_mask.nii.gz",
        np.ones((2, 2, 2), np.uint8),
    )
    return "fmriprep", deriv, []


def other_atlas(tmp: Path) -> tuple[str, Path, list[str]]:
    root = tmp / "series"
    for seg in ("aal116", "schaefer100"):
        stem = f"sub-01_task-rest_seg-{seg}"
        write_json(root / f"{stem}_timeseries.json", {"RepetitionTime": 2})
        (root / f"{stem}_timeseries.tsv").write_text("a\tb\n1\t2\n3\t4\n")
    return "roi_timeseries", root, ["--atlas", "aal116"]


def validator(tmp: Path) -> tuple[str, Path, list[str]]:
    root = _raw(tmp)
    write_json(_func(root) / "sub-01_task-rest_run-1_bold.json", {"EchoTime": "thirty"})
    return "bids", root, ["--validate"]


CASES: dict[str, tuple[str, Callable[[Path], tuple[str, Path, list[str]]]]] = {
    "invalid_name": (reason_codes.INVALID_NAME, invalid_name),
    "invalid_label (raw BIDS)": (reason_codes.INVALID_LABEL, invalid_label_raw),
    "invalid_label (ROI file)": (reason_codes.INVALID_LABEL, invalid_label_roi),
    "invalid_label (listing)": (reason_codes.INVALID_LABEL, invalid_label_listing),
    "missing_file": (reason_codes.MISSING_FILE, missing_file),
    "bad_sidecar": (reason_codes.BAD_SIDECAR, bad_sidecar),
    "bad_sidecar (ROI file)": (reason_codes.BAD_SIDECAR, bad_sidecar_roi),
    "no_repetition_time": (reason_codes.NO_REPETITION_TIME, no_repetition_time),
    "no_repetition_time (ROI file)": (reason_codes.NO_REPETITION_TIME, no_repetition_time_roi),
    "not_4d": (reason_codes.NOT_4D, not_4d),
    "bad_header": (reason_codes.BAD_HEADER, bad_header),
    "tr_mismatch": (reason_codes.TR_MISMATCH, tr_mismatch),
    "duplicate": (reason_codes.DUPLICATE, duplicate),
    "not_selected": (reason_codes.NOT_SELECTED, not_selected),
    "other_echo": (reason_codes.OTHER_ECHO, other_echo),
    "other_part": (reason_codes.OTHER_PART, other_part),
    "not_fetched": (reason_codes.NOT_FETCHED, not_fetched),
    "not_in_space": (reason_codes.NOT_IN_SPACE, not_in_space),
    "fmriprep_outputs_missing": (reason_codes.OUTPUTS_MISSING, outputs_missing),
    "other_atlas": (reason_codes.OTHER_ATLAS, other_atlas),
    "validator:*": ("validator:JSON_SCHEMA_VALIDATION_ERROR", validator),
}


@pytest.mark.parametrize(("code", "build"), CASES.values(), ids=CASES.keys())
def test_each_ingest_exclusion_reason_says_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, build: Callable
) -> None:
    entry, path, extra = build(tmp_path / "data")
    monkeypatch.chdir(tmp_path)  # a user's folder, outside the repository
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["ingest", "--dataset", "ds", "--entry", entry, "--path", str(path), "--out", str(out)]
    # Raw BIDS unvalidated (its own checks), but for the validator's own codes.
    validate = "--validate" in extra
    extra = [a for a in extra if a != "--validate"]
    trusted = ["--no-validate"] if entry == "bids" and not validate else []
    assert cli(ingest_cmd, [*argv, *extra, *trusted]) == 0
    df = pd.read_parquet(out)
    bad = df[~df["included"]]
    assert code in set(bad["reason_code"]), bad[["path", "reason_code", "reason"]].to_string()
    for r in bad.itertuples():
        problem, _, fix = str(r.reason).partition(" Fix: ")
        assert fix.strip(), f"{r.reason_code}: no 'Fix:' in {r.reason!r}"
        assert problem.strip(), f"{r.reason_code}: no problem before the fix in {r.reason!r}"


@pytest.mark.parametrize(
    ("build", "said"),
    [
        (
            invalid_label_roi,
            [
                "Invalid BIDS 'sub' label 'sub-02' in sub-sub-02_task-rest_timeseries.tsv",
                "expected letters and digits only (sub-sub-02 writes 'sub-' twice: sub-02 if it "
                "is that participant, else a label of its own). Fix: Rename the participant so "
                "its label is alphanumeric, letters and digits only (A-Z, a-z, 0-9: no spaces, "
                "'_', '-', '.' or shell characters)",
            ],
        ),
        (
            invalid_label_listing,
            [
                "Invalid BIDS 'sub' label '02_b' in listing.tsv: expected letters and digits "
                "only, e.g. sub-02b for sub-02_b. Fix: Rename the participant so its label is "
                "alphanumeric",
                "the same in every file and folder name and table (participants.tsv, a listing)",
            ],
        ),
    ],
    ids=["ROI file", "listing"],
)
def test_an_invalid_label_names_the_label_the_characters_allowed_and_a_new_name(
    tmp_path: Path, build: Callable, said: list[str]
) -> None:
    entry, path, extra = build(tmp_path / "data")
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["ingest", "--dataset", "ds", "--entry", entry, "--path", str(path), "--out", str(out)]
    assert cli(ingest_cmd, [*argv, *extra]) == 0
    df = pd.read_parquet(out)
    (reason,) = df.loc[df["reason_code"] == reason_codes.INVALID_LABEL, "reason"]
    for s in said:
        assert s in reason, reason


@pytest.mark.parametrize(
    ("stem", "label"),
    [("sub-0.2_task-rest", "'sub' label '0.2'"), ("sub-03_task-rest_run-1.5", "'run' label '1.5'")],
    ids=["subject", "run"],
)
def test_a_dotted_label_of_an_roi_file_is_refused_not_read_as_another_run(
    tmp_path: Path, stem: str, label: str
) -> None:
    """sub-0.2_task-rest_timeseries.tsv was read as subject 0 (the name cut at its first dot),
    and run-1.5 as run 1: included under a run that is not theirs, without a word."""
    root = tmp_path / "series"
    for name in ("sub-01_task-rest", stem):
        write_json(root / f"{name}_timeseries.json", {"RepetitionTime": 2})
        (root / f"{name}_timeseries.tsv").write_text("a\tb\n1\t2\n3\t4\n")
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["ingest", "--dataset", "ds", "--entry", "roi_timeseries", "--path", str(root)]
    assert cli(ingest_cmd, [*argv, "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert df.loc[df["included"], "run_key"].tolist() == ["sub-01_task-rest"]
    (reason,) = df.loc[~df["included"], "reason"]
    assert df.loc[~df["included"], "reason_code"].tolist() == [reason_codes.INVALID_LABEL]
    assert label in reason and " Fix: Rename the " in reason


def test_a_subject_without_runs_says_the_fix_in_the_summary(tmp_path: Path) -> None:
    """no_runs is a subject, not a run: its row is in summary.tsv, with its fix too."""
    root = _raw(tmp_path / "data")
    save_nifti(root / "sub-03" / "anat" / "sub-03_T1w.nii.gz", np.zeros((4, 5, 6)))
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["ingest", "--dataset", "ds", "--entry", "bids", "--path", str(root), "--no-validate"]
    assert cli(ingest_cmd, [*argv, "--out", str(out)]) == 0
    summary = read_summary_table(out.parent / "summary.tsv")
    (example,) = summary.loc[summary["reason_code"] == reason_codes.NO_RUNS, "example"]
    assert "sub-03 has no run of task 'rest'" in example and ". Fix: add its func/" in example


def test_the_rename_of_a_label_is_in_its_message_and_the_hint_is_one_per_entity() -> None:
    """A table of many bad IDs (a phenotype file) joins its distinct hints: one text per
    entity gives it once; each label's own rename is in its message."""
    from lcm.exceptions import InputDataError
    from lcm.io.bids_names import check_label

    errors = []
    for label in ("1 02", "NAP.001"):
        with pytest.raises(InputDataError) as info:
            check_label("sub", label, source="participants.tsv")
        errors.append(info.value)
    assert errors[0].hint == errors[1].hint
    assert "e.g. sub-102 for sub-1 02." in errors[0].message
    assert "e.g. sub-NAP001 for sub-NAP.001." in errors[1].message


def test_an_roi_series_sidecar_with_a_byte_order_mark_gives_its_tr(tmp_path: Path) -> None:
    """An ROI series' sidecar was read in the locale's encoding, unlike a BOLD's: one saved with
    a byte-order mark (a Windows editor) was 'not valid JSON' and its run excluded."""
    root = no_repetition_time_roi(tmp_path / "data")[1]
    (root / "sub-01_task-rest_timeseries.json").write_bytes(b'\xef\xbb\xbf{"RepetitionTime": 2}')
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["--dataset", "ds", "--entry", "roi_timeseries", "--path", str(root), "--out", str(out)]
    assert cli(ingest_cmd, ["ingest", *argv]) == 0
    row = pd.read_parquet(out).iloc[0]
    assert row["included"] and row["t_r"] == 2.0, row["reason"]


def test_a_sidecar_that_cannot_be_opened_asks_for_read_access_not_a_json_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sidecar of mode 600 owned by another user was 'not valid JSON', with the fix to correct
    its JSON: the file was fine, read access was missing."""
    root = _raw(tmp_path / "data")
    side = write_json(_func(root) / "sub-01_task-rest_run-1_bold.json", {"RepetitionTime": 2.0})
    real_open = os.open

    def denied(path, *args, **kwargs):  # what a user without read access is told
        if str(path) == str(side):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    out = tmp_path / "out" / "manifest.parquet"
    argv = ["--dataset", "ds", "--entry", "bids", "--path", str(root), "--out", str(out)]
    assert cli(ingest_cmd, ["ingest", *argv, "--no-validate"]) == 0
    df = pd.read_parquet(out)
    (reason,) = df.loc[~df["included"], "reason"]
    assert f"sidecar {side.name} cannot be read (Permission denied)" in reason
    assert "Fix: give the user running lcm read access to that sidecar" in reason
