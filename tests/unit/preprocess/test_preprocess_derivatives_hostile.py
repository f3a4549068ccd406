"""Existing fMRIPrep derivatives that are mixed or incomplete, as found in shared folders.

A newer fMRIPrep rerun into the folder of an older one leaves both confounds names beside the
BOLDs of both versions: LCM picked the BOLD and the confounds independently, so the BOLD of one
version was cleaned with the other's confounds, silently. Derivatives without brain masks are
common too: the run is read with the live-voxels coverage rule, not excluded; and a run that
lacks only its sidecar says which file to restore, not to rerun fMRIPrep for a space it has.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids
from helpers.fmriprep import fmriprep_request

from lcm.bids.runs import run_ids_from_name
from lcm.connectome.precheck import check_strategy
from lcm.preprocess.derivatives import (
    OUTPUTS_AMBIGUOUS,
    AmbiguousDerivativesError,
    check_subject_derivatives,
    find_run_derivatives,
)
from lcm.preprocess.fmriprep_run import run_fmriprep

pytestmark = pytest.mark.hostile

KEY = "sub-01_task-rest_run-1"


def _two_versions(deriv: Path) -> dict[str, Path]:
    """A 20.x run (no res-, regressors.tsv) with a 23.x rerun (res-2, timeseries.tsv) beside it."""
    old = make_fmriprep_run(deriv, KEY, n_vol=20)
    old_table = old["confounds"].with_name(f"{KEY}_desc-confounds_regressors.tsv")
    old["confounds"].rename(old_table)
    new = make_fmriprep_run(deriv, KEY, n_vol=20, seed=1, res="2")
    return {"old": old_table, "new": new["confounds"]}


@pytest.mark.parametrize("space", [SPACE, f"{SPACE}:res-native", f"{SPACE}:res-2"])
def test_confounds_of_two_fmriprep_versions_are_refused(tmp_path: Path, space: str) -> None:
    tables = _two_versions(tmp_path / "deriv")
    with pytest.raises(AmbiguousDerivativesError) as caught:
        find_run_derivatives(tmp_path / "deriv", run_ids_from_name(KEY), space)
    assert tables["old"].name in caught.value.message and tables["new"].name in caught.value.message
    assert "stale set from the older fMRIPrep" in caught.value.hint
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], space)
    assert found == [] and excluded[KEY][0] == OUTPUTS_AMBIGUOUS
    assert "Fix: Remove the stale set" in excluded[KEY][1]


def test_strategy_check_leaves_two_versions_to_the_fmriprep_stage(tmp_path: Path) -> None:
    """Ingest's strategy check reads the first run's confounds: with two tables it checks none
    (the fMRIPrep stage excludes that run with its reason), instead of failing the dataset."""
    _two_versions(tmp_path / "deriv")
    bold = next((tmp_path / "deriv/sub-01/func").glob("*res-2_desc-preproc_bold.nii.gz"))
    manifest = pd.DataFrame({"path": [str(bold)], "run_key": [KEY], "included": [True]})
    assert check_strategy("ds", manifest, "24P") is None


def test_strategy_check_leaves_confounds_not_fetched_to_the_fmriprep_stage(tmp_path: Path) -> None:
    """The first run's confounds an unlocked git-annex file not fetched: its pointer line, read
    as the header, refused the strategy for the whole dataset ("confounds lack the columns ...
    Regenerate them with fMRIPrep"); the run's own check says `datalad get`."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    manifest = pd.DataFrame({"path": [str(files["bold"])], "run_key": [KEY], "included": [True]})
    assert check_strategy("ds", manifest, "24P") == files["confounds"]
    files["confounds"].write_text("/annex/objects/MD5E-s27--0a1b2c3d.tsv\n")
    assert check_strategy("ds", manifest, "24P") is None


def test_run_without_brain_mask_is_recorded_for_live_voxels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=40)
    files["mask"].unlink()
    with caplog.at_level(logging.WARNING, logger="lcm.preprocess.derivatives"):
        rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["excluded"] == []
    (run,) = rec["runs"]
    assert run["mask"] == "" and run["bold"] == str(files["bold"])
    assert "no brain mask" in caplog.text and "live_voxels" in caplog.text


def test_unfetched_brain_mask_is_still_missing(tmp_path: Path) -> None:
    """A dangling symlink is content the user has (DataLad): get it rather than do without."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    files["mask"].unlink()
    files["mask"].symlink_to(tmp_path / "annex" / "absent")
    found, missing = find_run_derivatives(tmp_path / "deriv", run_ids_from_name(KEY), SPACE)
    assert found is None and "datalad get" in missing[0]


def test_an_unfetched_file_s_datalad_get_is_quoted_for_the_shell(tmp_path: Path) -> None:
    """The ``datalad get`` of a missing BOLD or mask was pasted unquoted: a study folder with a
    space (``my study``) split the path in two."""
    files = make_fmriprep_run(tmp_path / "my study's deriv", KEY, n_vol=20)
    files["mask"].unlink()
    files["mask"].symlink_to(tmp_path / "annex" / "absent")
    _, missing = find_run_derivatives(tmp_path / "my study's deriv", run_ids_from_name(KEY), SPACE)
    command = missing[0].split("run `", 1)[1].split("`", 1)[0]
    assert shlex.split(command) == ["datalad", "get", str(files["mask"])]


def test_run_without_sidecar_names_it_and_not_another_space(tmp_path: Path) -> None:
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    files["sidecar"].unlink()
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    assert found == []
    _, reason = excluded[KEY]
    assert str(files["sidecar"]) in reason and "Fix: The BOLD in space" in reason
    assert "--output-spaces" not in reason


def test_run_without_bold_still_says_run_fmriprep_for_the_space(tmp_path: Path) -> None:
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    shutil.rmtree(files["bold"].parent)
    files["bold"].parent.mkdir()
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    assert (
        found == []
        and f"Fix: Run fMRIPrep for this run with --output-spaces {SPACE}" in (excluded[KEY][1])
    )


def test_a_run_with_only_cifti_outputs_says_so_and_names_one(tmp_path: Path) -> None:
    """fMRIPrep run with --cifti-output and no volumetric space: the run was told to rerun
    fMRIPrep for the space, without a word on why the BOLD it did write was not read."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    for name in ("bold", "sidecar", "mask"):
        files[name].unlink()
    cifti = files["bold"].with_name(f"{KEY}_space-fsLR_den-91k_bold.dtseries.nii")
    cifti.write_bytes(b"")
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    code, reason = excluded[KEY]
    assert found == [] and code == "fmriprep_outputs_missing"
    assert f"only CIFTI (grayordinate) outputs, e.g. {cifti.name}" in reason
    assert f"Fix: Run fMRIPrep for this run with --output-spaces {SPACE}" in reason


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_preprocessed_sidecar_ingest_reads_is_read_by_the_fmriprep_stage(
    tmp_path: Path, encoding: str
) -> None:
    """A sidecar saved by a Windows editor (byte-order mark, or UTF-16) passed ingest, whose
    reader detects the encoding, and was then 'not a JSON object' here: every run excluded."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    meta = {"RepetitionTime": 2.0, "TaskDescription": "Ruhe \u2013 Augen geschlossen"}
    files["sidecar"].write_bytes(json.dumps(meta, ensure_ascii=False).encode(encoding))
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    assert excluded == {} and [run.t_r for run in found] == [2.0]


def test_an_unreadable_preprocessed_sidecar_excludes_its_run_with_read_access_as_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sidecar of mode 600 owned by another user stopped the subject's job with a
    PermissionError traceback; its run is now excluded, naming the file and the fix."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    denied = str(files["sidecar"])
    real_os_open, real_io_open = os.open, io.open

    def os_open(path, *args, **kwargs):  # what the file system says to a user without read access
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real_os_open(path, *args, **kwargs)

    def io_open(path, *args, **kwargs):
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return real_io_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", io_open)
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    assert found == []
    code, reason = excluded[KEY]
    assert code == "fmriprep_outputs_missing"
    said = f"{denied} (sidecar {files['sidecar'].name} cannot be read (Permission denied))"
    assert said in reason
    assert "Fix: Give the user running lcm read access to the file(s) named above" in reason


@pytest.mark.parametrize("which", ["confounds", "bold", "mask"])
def test_an_unlocked_annex_image_or_confounds_not_fetched_says_datalad_get(
    tmp_path: Path, which: str
) -> None:
    """Unlocked git-annex derivatives not fetched are pointer lines: confounds were read as a
    table of 0 rows ("from another run or fMRIPrep version") and a BOLD as an image it is not;
    `datalad get` was the fix, and a BOLD that is there is no BOLD to make again."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    files[which].write_text("/annex/objects/MD5E-s27--0a1b2c3d\n")
    found, excluded = check_subject_derivatives(tmp_path / "deriv", [run_ids_from_name(KEY)], SPACE)
    assert found == []
    code, reason = excluded[KEY]
    assert code == "fmriprep_outputs_missing"
    assert (
        f"{files[which]} (a git-annex pointer, its content not fetched: run "
        f"`datalad get {files[which]}`)" in reason
    )
    assert "--output-spaces" not in reason and "Fix: The BOLD in space" in reason


def test_an_unlocked_annex_sidecar_not_fetched_says_datalad_get(tmp_path: Path) -> None:
    """An unlocked git-annex sidecar not fetched holds a pointer line: 'not a JSON object'
    sent the user to fix a JSON they never wrote, where `datalad get` was the fix."""
    files = make_fmriprep_run(tmp_path / "deriv", KEY, n_vol=20)
    files["sidecar"].write_text("/annex/objects/MD5E-s27--0a1b2c3d.json\n")
    found, missing = find_run_derivatives(tmp_path / "deriv", run_ids_from_name(KEY), SPACE)
    assert found is None
    assert missing == [
        f"{files['sidecar']} (a git-annex pointer, its content not fetched: run "
        f"`datalad get {files['sidecar']}`)"
    ]
