"""``lcm fmriprep``'s refusals of its request name the settings as the user gave them: its
options on the command line, the config's keys under a workflow rule (``lcm --rule``). A
message said ``--runner`` and its hint "Set fmriprep.runner in config.yaml"; a missing licence
or a work folder in the wrong place named the config's keys to a command-line user.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.connectome import SPACE, make_raw_bids

from lcm.commands.fmriprep import OPTION_NAMES
from lcm.exceptions import ConfigError, InputDataError
from lcm.preprocess.fmriprep_run import FmriprepRequest, run_fmriprep, write_settings

# How each caller names the settings: lcm fmriprep's options, or the config's keys (None).
NAMES = {"command_line": OPTION_NAMES, "rule": None}
# The name of each setting the refusals below name, by caller.
SAID = {
    "command_line": {
        "runner": "--runner",
        "image": "--image",
        "fs_license": "--fs-license",
        "work_dir": "--work-dir",
        "same_folder": "--runner existing",
    },
    "rule": {
        "runner": "fmriprep.runner",
        "image": "fmriprep.image",
        "fs_license": "fmriprep.fs_license",
        "work_dir": "fmriprep.work_dir",
        "same_folder": "datasets.tiny.entry: fmriprep",
    },
}


def _request(tmp: Path, how: str, **given: object) -> FmriprepRequest:
    """A docker run of subject 01 of a one-run raw dataset, ``given`` over its defaults."""
    make_raw_bids(tmp / "raw", subjects=("01",), runs=("1",))
    license_file = tmp / "license.txt"
    license_file.write_text("someone@example.org\n12345\n")
    settings = {
        "dataset": "tiny",
        "bids": tmp / "raw",
        "subject": "01",
        "runner": "docker",
        "output_space": SPACE,
        "derivatives": tmp / "deriv",
        "image": "nipreps/fmriprep:25.2.7",
        "work_dir": tmp / "work",
        "fs_license": license_file,
        "names": NAMES[how],
        **given,
    }
    return FmriprepRequest(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", sorted(NAMES))
def test_an_unknown_runner_is_named_as_given(tmp_path: Path, how: str) -> None:
    runner = SAID[how]["runner"]
    with pytest.raises(ConfigError) as err:
        write_settings(_request(tmp_path, how, runner="podman"), tmp_path / "s.json")
    assert err.value.message.startswith(f"{runner}: expected one of "), err.value.message
    assert err.value.hint == f"Set {runner} to one of them."


@pytest.mark.parametrize("how", sorted(NAMES))
def test_an_apptainer_image_it_cannot_run_is_named_as_given(tmp_path: Path, how: str) -> None:
    image = SAID[how]["image"]
    req = _request(tmp_path, how, runner="apptainer")
    with pytest.raises(ConfigError) as err:
        write_settings(req, tmp_path / "s.json")
    assert err.value.message.startswith(f"{image} 'nipreps/fmriprep:25.2.7' is neither")
    assert err.value.hint.startswith(f"Set {image} to a local .sif"), err.value.hint


@pytest.mark.parametrize("how", sorted(NAMES))
@pytest.mark.parametrize("setting", ["image", "work_dir"])
def test_a_missing_image_or_work_folder_is_named_as_given(
    tmp_path: Path, how: str, setting: str
) -> None:
    name = SAID[how][setting]
    with pytest.raises(ConfigError) as err:
        run_fmriprep(_request(tmp_path, how, **{setting: None}), tmp_path / "rec.json")
    assert err.value.message == f"fMRIPrep runner 'docker' needs {name}; none was given."
    assert err.value.hint == f"Set {name}."


@pytest.mark.parametrize("how", sorted(NAMES))
def test_a_missing_or_absent_licence_is_named_as_given(tmp_path: Path, how: str) -> None:
    name = SAID[how]["fs_license"]
    with pytest.raises(ConfigError) as err:
        run_fmriprep(_request(tmp_path, how, fs_license=None), tmp_path / "rec.json")
    assert err.value.hint == (
        f"Set {name} (free from https://surfer.nmr.mgh.harvard.edu/registration.html)."
    )
    absent = tmp_path / "nowhere.txt"
    with pytest.raises(InputDataError) as err:
        run_fmriprep(_request(tmp_path, how, fs_license=absent), tmp_path / "rec.json")
    assert err.value.hint == f"Set {name} to an existing license.txt."


@pytest.mark.parametrize("how", sorted(NAMES))
def test_derivatives_in_the_raw_folder_are_hinted_by_the_setting_given(
    tmp_path: Path, how: str
) -> None:
    """The command-line user chooses the runner; the workflow's, the entry (the workflow checks
    a dataset entering as derivatives, whatever fmriprep.runner says)."""
    req = _request(tmp_path, how, derivatives=tmp_path / "raw")
    with pytest.raises(ConfigError) as err:
        run_fmriprep(req, tmp_path / "rec.json")
    assert err.value.hint == (
        f"A dataset of existing fMRIPrep derivatives is only checked: {SAID[how]['same_folder']}."
    )


@pytest.mark.parametrize("how", sorted(NAMES))
def test_a_work_folder_inside_the_raw_folder_is_named_as_given(tmp_path: Path, how: str) -> None:
    work = tmp_path / "raw" / "work"
    with pytest.raises(ConfigError) as err:
        run_fmriprep(_request(tmp_path, how, work_dir=work), tmp_path / "rec.json")
    assert err.value.message.startswith(f"{SAID[how]['work_dir']} {work} lies inside")
