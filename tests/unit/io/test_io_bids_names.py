"""Labels typed by a user may carry their entity's prefix; labels in file names may not."""

from __future__ import annotations

import pytest

from lcm.exceptions import InputDataError
from lcm.io.bids_names import build_name, check_label, check_name_label, run_key


def test_a_prefix_is_stripped_from_typed_labels_only() -> None:
    assert check_label("sub", "sub-01", source="--subject") == "01"
    assert check_name_label("sub", "01") == "01"
    with pytest.raises(InputDataError, match=r"'sub' label 'sub-01' in sub-sub-01_bold\.nii"):
        check_name_label("sub", "sub-01", source="sub-sub-01_bold.nii")
    # Names are built from labels as they are: a prefixed one is an error, not another run.
    with pytest.raises(InputDataError, match="'sub' label 'sub-01'"):
        run_key({"sub": "sub-01", "task": "rest"})
    with pytest.raises(InputDataError, match="'run' label 'run-1'"):
        build_name({"sub": "01", "run": "run-1"}, "bold", ".nii.gz")


@pytest.mark.parametrize("label", ["01\n", "sub-01\n"])
def test_a_trailing_newline_is_not_a_label(label: str) -> None:
    with pytest.raises(InputDataError, match="letters and digits"):
        check_label("sub", label)


def test_a_number_saved_as_a_decimal_gets_its_own_hint() -> None:
    """A participant column saved from a spreadsheet as numbers (50002.0): the hint said to
    rename the participant, where the fix is to save the column as text."""
    with pytest.raises(InputDataError, match=r"label '50002\.0'") as info:
        check_label("sub", "50002.0", source="pheno.csv row 2 column 'SUB_ID'")
    assert "the number 50002 written as a decimal" in (info.value.hint or "")
    with pytest.raises(InputDataError) as info:
        check_label("sub", "50 002")
    assert "Rename" in (info.value.hint or "")
