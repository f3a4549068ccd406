"""fMRIPrep derivatives of a run found by its index as a number: ``run-01`` is ``run-1``.

fMRIPrep 20.2.x drops the zero padding of raw run indices (nipreps/fmriprep#2666), so the
derivatives of ``sub-01_task-rest_run-01_bold.nii.gz`` are named ``..._run-1_...``. The record
keeps the raw run key (the run's identity) and the paths of the files found; two spellings of
one run's derivatives are refused, not chosen between.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_fmriprep_run, make_raw_bids
from helpers.fmriprep import fmriprep_request

from lcm.preprocess.fmriprep_run import run_fmriprep


@pytest.mark.parametrize(
    ("raw", "written"),
    [(("01", "10"), ("1", "10")), (("1", "10"), ("01", "10"))],
    ids=["raw-padded", "derivatives-padded"],
)
def test_padded_and_unpadded_run_indices_are_one_run(
    tmp_path: Path, raw: tuple[str, ...], written: tuple[str, ...]
) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=raw)
    files = {
        run: make_fmriprep_run(tmp_path / "deriv", f"sub-01_task-rest_run-{w}", n_vol=40, res=r)
        for run, w, r in zip(raw, written, ("2", None), strict=True)
    }
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["excluded"] == []
    assert [r["run_key"] for r in rec["runs"]] == [f"sub-01_task-rest_run-{r}" for r in raw]
    for r in rec["runs"]:
        f = files[r["run"]]  # run-1 is not taken for run-10, nor the reverse
        assert [r[k] for k in ("bold", "mask", "sidecar", "confounds")] == [
            str(f[k]) for k in ("bold", "mask", "sidecar", "confounds")
        ]


def test_both_spellings_of_one_run_are_refused_as_ambiguous(tmp_path: Path) -> None:
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("01", "2"))
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-01", n_vol=40)
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-2", n_vol=40)
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert [r["run_key"] for r in rec["runs"]] == ["sub-01_task-rest_run-2"]
    (out,) = rec["excluded"]
    assert out["run_key"] == "sub-01_task-rest_run-01"
    assert "ambiguous" in out["reason"] and out["reason_code"] == "fmriprep_outputs_ambiguous"
    assert "'sub-01_task-rest_run-01_*' and 'sub-01_task-rest_run-1_*'" in out["reason"]
    assert json.loads((tmp_path / "rec.json").read_text()) == rec


def test_unfetched_derivative_bold_is_missing_with_the_fix(tmp_path: Path) -> None:
    """A DataLad derivatives clone: the BOLD is a link to absent content, not a run to record."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    files = make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40)
    files["bold"].unlink()
    files["bold"].symlink_to(tmp_path / "deriv" / ".git" / "annex" / "objects" / "absent")
    rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    assert rec["runs"] == []
    assert f"datalad get {files['bold']}" in rec["excluded"][0]["reason"]


def test_several_resolutions_of_one_run_are_said_not_chosen_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """fMRIPrep asked for a space at two resolutions (res-1 and res-2): the shortest name was
    taken without a word, and could differ between runs of one subject."""
    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    for res in ("1", "2"):
        make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40, res=res)
    with caplog.at_level("WARNING"):
        rec = run_fmriprep(fmriprep_request(tmp_path, "existing"), tmp_path / "rec.json")
    (run,) = rec["runs"]
    assert "_res-1_desc-preproc_bold" in run["bold"]
    assert "fMRIPrep wrote 2 versions of space" in caplog.text
    assert f"using {Path(run['bold']).name}" in caplog.text


@pytest.mark.parametrize("wanted", ["2", "02"])
def test_a_resolution_named_in_the_output_space_is_the_one_read(
    tmp_path: Path, wanted: str
) -> None:
    """fmriprep.output_space takes fMRIPrep's own spelling, MNI152NLin2009cAsym:res-2: of the
    two resolutions fMRIPrep wrote, the run's BOLD, mask and sidecar are res-2's. Before, the
    setting was refused and res-1 (the shorter name) was read; a run with res-1 only is
    not_in_space, as ingest says it, and its missing res-2 is the file with its res entity."""
    from lcm.bids.runs import run_ids_from_name
    from lcm.preprocess.derivatives import find_run_derivatives

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1", "2"))
    for res in ("1", wanted):
        make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-1", n_vol=40, res=res)
    make_fmriprep_run(tmp_path / "deriv", "sub-01_task-rest_run-2", n_vol=40, res="1")
    req = fmriprep_request(tmp_path, "existing", output_space=f"{SPACE}:res-2")
    rec = run_fmriprep(req, tmp_path / "rec.json")
    (run,) = rec["runs"]
    for key in ("bold", "mask", "sidecar"):
        assert f"_space-{SPACE}_res-{wanted}_desc-" in run[key], run[key]
    (out,) = rec["excluded"]
    assert (out["run_key"], out["reason_code"]) == ("sub-01_task-rest_run-2", "not_in_space")
    assert f"fMRIPrep wrote this run's in {SPACE}:res-1." in out["reason"]
    assert f"--output-spaces {SPACE}:res-2" in out["reason"]
    ids = run_ids_from_name("sub-01_task-rest_run-2")
    _, missing = find_run_derivatives(tmp_path / "deriv", ids, f"{SPACE}:res-2")
    assert missing[0].endswith(f"run-2_space-{SPACE}_res-2_desc-preproc_bold.nii.gz (or .nii)")


def test_an_output_space_of_another_form_is_refused_naming_the_option(tmp_path: Path) -> None:
    """`lcm fmriprep` is called outside the workflow too (the schema checks the config's)."""
    from lcm.commands.fmriprep import OPTION_NAMES
    from lcm.exceptions import ConfigError

    make_raw_bids(tmp_path / "raw", subjects=("01",), runs=("1",))
    req = fmriprep_request(
        tmp_path, "existing", output_space=f"{SPACE}:res-nat", names=OPTION_NAMES
    )
    with pytest.raises(ConfigError, match=r"--output-space: output space .*res-nat") as err:
        run_fmriprep(req, tmp_path / "rec.json")
    assert f"{SPACE}:res-2" in (err.value.hint or "")
    assert not (tmp_path / "rec.json").exists()
