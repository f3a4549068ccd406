"""Every exclusion reason ends with ``Fix:``, as the README promises.

A TR mismatch between header and sidecar, confounds of another length than the BOLD, a
truncated ``.nii.gz`` and an FD column of ``n/a`` excluded their run with what was wrong and no
fix (and a word in the FD column crashed the stage with a pandas TypeError). Each broken run
here goes through the connectome stage as a user's would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.connectome import (
    confounds_table,
    fmriprep_record,
    make_fmriprep_run,
    write_confounds,
)

from lcm.atlas import load_atlas
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run

pytestmark = pytest.mark.hostile

RUN = "sub-01_task-rest_run-1"
N_VOL = 48


def _tr_mismatch(files: dict[str, Path]) -> None:
    files["sidecar"].write_text(json.dumps({"RepetitionTime": 1.0}))  # header says 2 s


def _short_confounds(files: dict[str, Path]) -> None:
    write_confounds(files["confounds"], confounds_table(N_VOL).iloc[:-1])


def _truncated_gzip(files: dict[str, Path]) -> None:
    data = files["bold"].read_bytes()
    files["bold"].write_bytes(data[: len(data) * 3 // 5])


def _fd_all_na(files: dict[str, Path]) -> None:
    table = confounds_table(N_VOL).astype(object)
    table["framewise_displacement"] = "n/a"
    write_confounds(files["confounds"], table)


def _fd_text(files: dict[str, Path]) -> None:
    table = confounds_table(N_VOL).astype(object)
    table.loc[7, "framewise_displacement"] = "high"
    write_confounds(files["confounds"], table)


CASES: dict[str, tuple[Callable[[dict[str, Path]], None], str, str]] = {
    "tr-mismatch": (_tr_mismatch, "tr_mismatch", "pixdim[4]"),
    "confounds-rows": (_short_confounds, "confounds_length", "have 47 rows"),
    "truncated-gz": (_truncated_gzip, "bold_unreadable", "cannot read the data of BOLD"),
    "fd-all-na": (_fd_all_na, "confounds_non_numeric", "framewise_displacement"),
    "fd-non-numeric": (_fd_text, "confounds_non_numeric", "framewise_displacement"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_exclusion_reason_says_the_fix(tmp_path: Path, case: str) -> None:
    breaks, code, what = CASES[case]
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    breaks(files)
    record = fmriprep_record(tmp_path / "rec.json", "ds", [(RUN, files)])
    # No degrees-of-freedom floor: the short run would be excluded before its BOLD is read.
    settings = DenoiseSettings.from_dict({"strategy": "24P", "min_volumes": 20, "min_dof": None})
    qc = process_voxel_run(
        "ds", record, RUN, load_atlas("aal116"), settings, tmp_path / "conn", tmp_path / "qc.json"
    )
    assert not qc["included"] and qc["reason_code"] == code, qc["reason"]
    assert what in qc["reason"]
    assert "Fix: " in qc["reason"], qc["reason"]


@pytest.mark.parametrize(
    ("text", "why"),
    [('{"a_comp_cor_00": {"Mask": "comb', "is not valid JSON"), ("[1, 2]", "is not a JSON object")],
    ids=["truncated", "not-an-object"],
)
def test_an_unreadable_confounds_json_is_said_not_read_as_absent_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, why: str
) -> None:
    """Its CompCor masks were silently unknown (a 20.x run excluded for 'no confounds JSON'
    beside its JSON) or inferred from the column names."""
    from lcm.connectome.confounds import read_confounds_metadata

    table = tmp_path / f"{RUN}_desc-confounds_timeseries.tsv"
    table.write_text("trans_x\n0\n")
    side = table.with_suffix(".json")
    side.write_text(text)
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.confounds"):
        assert read_confounds_metadata(table) is None
    assert f"unreadable confounds JSON {side}: sidecar {side.name} {why}" in caplog.text
    caplog.clear()
    side.unlink()
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.confounds"):
        assert read_confounds_metadata(table) is None  # absent: nothing to say
    assert caplog.text == ""


@pytest.mark.parametrize("kind", ["pointer", "dangling_symlink"])
def test_a_confounds_json_not_fetched_says_datalad_get(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """An unlocked annex pointer was warned of as "not JSON" (a locked file's dangling link was
    read as absent without a word), never with the `datalad get` every other unfetched file
    gets."""
    from lcm.connectome.confounds import read_confounds_metadata

    table = tmp_path / f"{RUN}_desc-confounds_timeseries.tsv"
    table.write_text("trans_x\n0\n")
    side = table.with_suffix(".json")
    if kind == "pointer":
        side.write_text("/annex/objects/MD5E-s27--0a1b2c3d.json\n")
        state = "a git-annex pointer, not its content"
    else:
        side.symlink_to(tmp_path / ".git" / "annex" / "objects" / "MD5E-s27--0a1b2c3d.json")
        state = "a symlink to content that is not present"
    with caplog.at_level(logging.WARNING, logger="lcm.connectome.confounds"):
        assert read_confounds_metadata(table) is None
    assert f"confounds JSON {side} is {state} (a DataLad/git-annex file not fetched)" in (
        caplog.text
    )
    assert f"Run `datalad get {side}` and run lcm again." in caplog.text
    assert "not JSON" not in caplog.text and "unreadable" not in caplog.text
