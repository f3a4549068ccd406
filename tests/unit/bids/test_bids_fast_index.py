"""The fast scandir indexer gives the same rows as the pybids reference on small trees."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    CROP_SHAPE,
    SPACE,
    make_fmriprep_run,
    make_raw_bids,
    save_nifti,
    write_json,
)
from helpers.pybids_index import index_bold_runs

from lcm.bids.ingest import ingest_dataset
from lcm.bids.manifest import manifest_frame
from lcm.bids.sidecars import Sidecar, SidecarReader

COMPARED = [
    "subject",
    "session",
    "task",
    "run",
    "run_key",
    "path",
    "t_r",
    "tr_check",
    "included",
    "reason_code",
    "reason",
]


def _same_rows(root: Path, entry: str, **kwargs) -> pd.DataFrame:
    fast = ingest_dataset("tiny", entry, root, **kwargs).manifest
    ref = manifest_frame(index_bold_runs("tiny", root, entry, **kwargs))
    assert len(fast) > 0
    pd.testing.assert_frame_equal(fast[COMPARED], ref[COMPARED])
    return fast


def test_raw_layouts_match_pybids(tmp_path: Path) -> None:
    root = make_raw_bids(
        tmp_path / "raw", subjects=("01", "02"), sessions=("a", "b"), runs=("1", "02"), t_r=2.0
    )
    func = root / "sub-01" / "ses-a" / "func"
    # overrides at session and run level, a 3D image, a bad name. (Labels with dots are not
    # compared: pybids cuts such names at the first dot, the fast index names the label.)
    write_json(
        root / "sub-02" / "ses-b" / "sub-02_ses-b_task-rest_bold.json", {"RepetitionTime": 3.0}
    )
    write_json(func / "sub-01_ses-a_task-rest_run-02_bold.json", {"RepetitionTime": 1.0})
    save_nifti(func / "sub-01_ses-a_task-rest_run-3_bold.nii.gz", np.zeros(CROP_SHAPE, np.int16))
    save_nifti(func / "sub-01_ses-a_task-rest_bogus_bold.nii.gz", np.zeros((4, 5, 6, 7), np.int16))
    df = _same_rows(root, "bids")
    codes = dict(zip(df["path"].map(lambda p: Path(p).name), df["reason_code"], strict=True))
    assert codes["sub-01_ses-a_task-rest_run-02_bold.nii.gz"] == "tr_mismatch"
    assert codes["sub-01_ses-a_task-rest_run-3_bold.nii.gz"] == "not_4d"
    assert codes["sub-01_ses-a_task-rest_bogus_bold.nii.gz"] == "invalid_name"
    assert codes["sub-02_ses-b_task-rest_run-1_bold.nii.gz"] == "tr_mismatch"  # 3.0 vs 2.0
    assert df["included"].sum() == 5


def test_derivatives_match_pybids(tmp_path: Path) -> None:
    deriv = tmp_path / "fmriprep"
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5)
    make_fmriprep_run(deriv, "sub-01_task-rest_run-1", n_vol=40, t_r=1.5, res="2")
    make_fmriprep_run(deriv, "sub-02_ses-x_task-rest_run-1", n_vol=40, t_r=1.5)
    df = _same_rows(deriv, "fmriprep", space=SPACE)
    assert df["reason_code"].tolist().count("duplicate") == 1


def test_inheritance_nearest_and_most_specific_wins(tmp_path: Path) -> None:
    levels = [
        [
            Sidecar.from_path(
                str(
                    write_json(
                        tmp_path / "task-rest_bold.json",
                        {"RepetitionTime": 2, "A": "top", "B": "top"},
                    )
                )
            )
        ],
        [
            Sidecar.from_path(
                str(write_json(tmp_path / "sub-1_task-rest_bold.json", {"A": "sub"}))
            ),
            Sidecar.from_path(
                str(write_json(tmp_path / "sub-1_task-rest_run-2_bold.json", {"B": "run2"}))
            ),
            Sidecar.from_path(str(write_json(tmp_path / "sub-1_task-rest_sbref.json", {"A": "x"}))),
            Sidecar.from_path(str(write_json(tmp_path / "sub-1_task-other_bold.json", {"A": "y"}))),
        ],
    ]
    ents = {"sub": "1", "task": "rest", "run": "1"}
    meta, sources, problem = SidecarReader().resolve(levels, ents, "bold")
    assert problem == "" and meta == {"RepetitionTime": 2, "A": "sub", "B": "top"}
    assert [Path(s).name for s in sources] == ["task-rest_bold.json", "sub-1_task-rest_bold.json"]
    meta, _, _ = SidecarReader().resolve(levels, {**ents, "run": "2"}, "bold")
    assert meta["B"] == "run2"


def test_unreadable_sidecar_excludes_the_run(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",))
    (root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.json").write_text("{oops")
    row = ingest_dataset("tiny", "bids", root).manifest.iloc[0]
    assert not row["included"] and row["reason_code"] == "bad_sidecar"
    assert "not valid JSON" in row["reason"]


@pytest.mark.parametrize("n_slices", [0, 5, 8000, 20000])
def test_sidecars_of_any_size_read_whole(tmp_path: Path, n_slices: int) -> None:
    # Sidecars are read in 64 KiB chunks: sizes around and beyond one chunk come back whole.
    content = {"RepetitionTime": 2.0, "SliceTiming": [i / 7 for i in range(n_slices)]}
    path = write_json(tmp_path / "task-rest_bold.json", content)
    assert SidecarReader().read(str(path)) == content


@pytest.mark.parametrize("content", [b"", b"\x1f\x8b\x08\x00 truncated"])
def test_unreadable_header_is_recorded_not_excluded(tmp_path: Path, content: bytes) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    (root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz").write_bytes(content)
    df = ingest_dataset("tiny", "bids", root).manifest
    assert df["included"].all()
    assert df["tr_check"].iloc[0] == "ok"
    assert df["tr_check"].iloc[1].startswith("not checked: NIfTI header unreadable")
    assert df["t_r"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("content", "code", "reason"),
    [
        # An unlocked git-annex file not fetched: its pointer, in place of the image.
        (b"/annex/objects/MD5E-s1234--0a1b.nii.gz\n", "not_fetched", "a git-annex pointer file"),
        (b"<html><body>404 Not Found</body></html>\n", "bad_header", "is not a gzip-compressed"),
        (b"\x00" * 600, "bad_header", "incorrect header check"),
    ],
)
def test_a_file_that_is_no_image_excludes_its_run(
    tmp_path: Path, content: bytes, code: str, reason: str
) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    bold = root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz"
    bold.write_bytes(content)
    df = ingest_dataset("tiny", "bids", root).manifest.set_index("subject")
    assert df.loc["01", "included"] and not df.loc["02", "included"]
    assert df.loc["02", "reason_code"] == code and reason in df.loc["02", "reason"]
    if code == "not_fetched":
        assert f"`datalad get {bold}`" in df.loc["02", "reason"]


def test_runs_whose_header_was_not_read_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated gzip (a download in progress) stays included, but not silently."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01", "02", "03"), t_r=2.0)
    for sub in ("02", "03"):
        bold = root / f"sub-{sub}" / "func" / f"sub-{sub}_task-rest_run-1_bold.nii.gz"
        bold.write_bytes(bold.read_bytes()[:20])
    with caplog.at_level(logging.WARNING, logger="lcm.bids.ingest"):
        df = ingest_dataset("tiny", "bids", root).manifest
    assert df["included"].all()
    (record,) = [r for r in caplog.records if "could not be read" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "tiny: 2 included run(s) whose NIfTI header could not be read" in message
    assert str(root / "sub-02" / "func" / "sub-02_task-rest_run-1_bold.nii.gz") in message


@pytest.mark.parametrize("entry", ["bids", "fmriprep"])
def test_a_gzip_cut_short_or_a_single_volume_is_excluded_at_ingest(
    tmp_path: Path, entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A .nii.gz cut short after its header, and a 4D BOLD of one volume (x, y, z, 1), were
    included (tr_check ok) and failed only in fMRIPrep or the connectome stage."""
    root = tmp_path / "ds"
    if entry == "bids":
        make_raw_bids(root, subjects=("01", "02", "03"), t_r=2.0)
        name = "sub-{}_task-rest_run-1_bold.nii.gz"
    else:
        for sub in ("01", "02", "03"):
            make_fmriprep_run(root, f"sub-{sub}_task-rest_run-1")
        name = f"sub-{{}}_task-rest_run-1_space-{SPACE}_desc-preproc_bold.nii.gz"
    cut = root / "sub-02" / "func" / name.format("02")
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) * 3 // 5])
    single = root / "sub-03" / "func" / name.format("03")
    save_nifti(single, np.zeros((*CROP_SHAPE, 1), np.int16), t_r=2.0)
    with caplog.at_level(logging.WARNING, logger="lcm.bids.ingest"):
        df = ingest_dataset("tiny", entry, root).manifest.set_index("subject")
    assert df.loc["01", "included"] and not df.loc[["02", "03"], "included"].any()
    assert df.loc["02", "reason_code"] == "bad_header"
    assert "truncated" in df.loc["02", "reason"] and "Fix: replace it" in df.loc["02", "reason"]
    assert df.loc["03", "reason_code"] == "not_4d"
    assert "one volume" in df.loc["03", "reason"]
    logged = caplog.text
    assert f"excluded {cut.name}" in logged and f"excluded {single.name}" in logged


def test_a_broken_fmriprep_output_is_to_be_recopied_or_rerun_not_converted(
    tmp_path: Path,
) -> None:
    """A cut-short or one-volume fMRIPrep BOLD was to be 'downloaded or converted again' (from
    DICOMs), a raw run's fix: it comes from fMRIPrep's output folder, or a rerun of fMRIPrep."""
    root = tmp_path / "deriv"
    for sub in ("01", "02", "03"):
        make_fmriprep_run(root, f"sub-{sub}_task-rest_run-1")
    name = f"sub-{{}}_task-rest_run-1_space-{SPACE}_desc-preproc_bold.nii.gz"
    cut = root / "sub-02" / "func" / name.format("02")
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) * 3 // 5])
    save_nifti(root / "sub-03" / "func" / name.format("03"), np.zeros((*CROP_SHAPE, 1)), t_r=2.0)
    df = ingest_dataset("tiny", "fmriprep", root).manifest.set_index("subject")
    for sub in ("02", "03"):
        reason = df.loc[sub, "reason"].partition(" Fix: ")[2]
        assert "re-copy it from the fMRIPrep output folder it came from" in reason
        assert f"or rerun fMRIPrep for sub-{sub}" in reason
        assert "convert" not in reason and "download" not in reason


def test_a_gzip_of_several_members_is_not_taken_for_a_truncated_one(tmp_path: Path) -> None:
    """bgzip and concatenated gzip files end with the size of their last member only."""
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    bold = root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz"
    raw = gzip.decompress(bold.read_bytes())
    bold.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    df = ingest_dataset("tiny", "bids", root).manifest
    assert df["included"].all() and df["tr_check"].tolist() == ["ok"]
