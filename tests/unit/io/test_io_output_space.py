"""``fmriprep.output_space`` as fMRIPrep spells it: a template, one resolution or cohort of it."""

from __future__ import annotations

import pytest

from lcm.config import schema
from lcm.io import paths
from lcm.io.output_space import PATTERN, parse_output_space, space_entities, space_of


def test_the_schema_checks_the_form_this_module_parses() -> None:
    assert schema()["properties"]["fmriprep"]["properties"]["output_space"]["pattern"] == PATTERN


@pytest.mark.parametrize(
    ("text", "entities", "name"),
    [
        ("MNI152NLin2009cAsym", {"space": "MNI152NLin2009cAsym"}, "space-MNI152NLin2009cAsym"),
        (
            "MNI152NLin6Asym:res-2",
            {"space": "MNI152NLin6Asym", "res": "2"},
            "space-MNI152NLin6Asym_res-2",
        ),
        # fMRIPrep's own spelling of the BOLD's resolution: its files carry no res entity.
        (
            "MNI152NLin2009cAsym:res-native",
            {"space": "MNI152NLin2009cAsym"},
            "space-MNI152NLin2009cAsym",
        ),
        (
            "MNIPediatricAsym:cohort-1:res-2",
            {"space": "MNIPediatricAsym", "cohort": "1", "res": "2"},
            "space-MNIPediatricAsym_cohort-1_res-2",
        ),
    ],
)
def test_a_setting_names_files_as_fmriprep_does(text: str, entities: dict, name: str) -> None:
    space = parse_output_space(text)
    assert space.entities == entities and space.name_part == name and str(space) == text


@pytest.mark.parametrize(
    "text",
    [
        "MNI152NLin2009cAsym:res-2:res-1",
        "X:res-nat",
        "X:res-native:res-2",
        "X:res-2:cohort-1",
        "X:den-91k",
    ],
)
def test_other_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a template label"):
        parse_output_space(text)


def test_a_resolution_selects_its_files_only() -> None:
    space = parse_output_space("MNI152NLin2009cAsym:res-2")
    assert space.selects({"space": "MNI152NLin2009cAsym", "res": "02"})
    assert not space.selects({"space": "MNI152NLin2009cAsym"})
    assert not space.selects({"space": "MNI152NLin2009cAsym", "res": "1"})
    assert not space.selects({"space": "MNI152NLin6Asym", "res": "2"})
    bare = parse_output_space("MNI152NLin2009cAsym")
    assert bare.selects({"space": "MNI152NLin2009cAsym", "res": "1"})  # the caller chooses


def test_outputs_of_a_resolution_carry_it_in_their_names() -> None:
    """LCM's per-run outputs of res-2 data are named ..._space-X_res-2_seg-..., never with the
    setting's colon."""
    location = paths.run_location({"sub": "01", "task": "rest", "run": "1"})
    qc = paths.run_qc_json("results", "ds", location, "MNI152NLin2009cAsym:res-2", "aal116")
    assert qc.endswith("sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_seg-aal116_qc.json")
    ts = paths.run_timeseries("out", location, "MNI152NLin2009cAsym:res-2", "aal116")
    assert "_space-MNI152NLin2009cAsym_res-2_seg-aal116_stat-mean_" in ts.name
    assert space_entities(None) == {"space": None}


def test_res_native_selects_the_file_without_res_only() -> None:
    """A bare label reads any resolution (the caller chooses one); :res-native only the file
    fMRIPrep wrote at the BOLD's own resolution, the one without res-."""
    native = parse_output_space("MNI152NLin2009cAsym:res-native")
    assert native.native and not parse_output_space("MNI152NLin2009cAsym").native
    assert native.selects({"space": "MNI152NLin2009cAsym", "desc": "preproc"})
    assert not native.selects({"space": "MNI152NLin2009cAsym", "res": "2"})
    assert not native.selects({"space": "MNI152NLin6Asym"})
    assert PATTERN.endswith("(:res-([0-9]+|native))?$")


def test_a_files_space_is_spelled_with_its_resolution() -> None:
    """What a run read, as the setting that reads exactly it."""
    assert space_of({"space": "MNI152NLin2009cAsym", "res": "2"}) == "MNI152NLin2009cAsym:res-2"
    assert space_of({"space": "MNI152NLin2009cAsym"}) == "MNI152NLin2009cAsym:res-native"
    assert space_of({"space": "X", "cohort": "1", "res": "1"}) == "X:cohort-1:res-1"
    # ... and that setting selects the file it was read from.
    for ents in ({"space": "MNI152NLin2009cAsym", "res": "2"}, {"space": "MNI152NLin2009cAsym"}):
        assert parse_output_space(space_of(ents)).selects(ents)
