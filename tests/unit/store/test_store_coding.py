"""The catalogue coding generated for a participants.tsv (lcm run): codes mapped to levels
where they are well known or participants.json names them, other columns left out."""

from __future__ import annotations

import pandas as pd

from lcm.catalogue import Variable
from lcm.store.coding import column_of, generated_columns

SEX = Variable("sex", "binary", "sociodemographic", levels=("F", "M"))
AUTISM = Variable("autism", "binary", "clinical", levels=("control", "autism"))
AGE = Variable("age", "continuous", "sociodemographic", "years", (5.0, 100.0))


def _table(**columns: list[str]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(n)], **columns})


def test_levels_are_matched_without_case_and_by_well_known_words() -> None:
    table = _table(sex=["Male", " f ", "n/a", "WOMAN"], autism=["Autism", "control", "", "x"])
    columns, left_out = generated_columns({"sex": SEX, "autism": AUTISM}, table)
    assert columns == {"sex": {"column": "sex", "map": {"Male": "M", "f": "F", "WOMAN": "F"}}}
    assert [(x.column, x.values) for x in left_out] == [("autism", ("Autism", "control", "x"))]
    assert "'x' name(s) no level of binary variable 'autism' (control, autism)" in (
        left_out[0].describe()
    )


def test_numeric_codes_need_participants_json() -> None:
    table = _table(sex=["1", "2", "2"])
    assert generated_columns({"sex": SEX}, table)[0] == {}
    sidecar = {"sex": {"Levels": {"1": "Male", "2": "Female"}}}
    columns, left_out = generated_columns({"sex": SEX}, table, sidecar)
    assert columns == {"sex": {"column": "sex", "map": {"1": "M", "2": "F"}}} and not left_out
    # Levels that name no catalogue level leave the column out.
    sidecar = {"sex": {"Levels": {"1": "first", "2": "second"}}}
    assert generated_columns({"sex": SEX}, table, sidecar)[0] == {}


def test_continuous_values_are_checked_as_the_store_checks_them() -> None:
    columns, left_out = generated_columns({"age": AGE}, _table(age=["30", "n/a", "2-3"]))
    assert columns == {}
    assert left_out[0].reason == "row 4, value '2-3': not a number for continuous variable 'age'."
    columns, left_out = generated_columns({"age": AGE}, _table(age=["30", "-999", "41.5"]))
    assert columns == {"age": {"column": "age"}} and not left_out


def test_a_column_named_like_a_variable_up_to_case_is_read() -> None:
    """``Age``/``Sex`` columns (BIDS only recommends lowercase names) matched no variable: the
    coding lcm run wrote had no column, and no variable was stored, without a word."""
    table = _table(Age=["30", "41.5", "n/a"], Sex=["1", "2", "1"])
    sidecar = {"Sex": {"Levels": {"1": "male", "2": "female"}}}
    columns, left_out = generated_columns({"age": AGE, "sex": SEX}, table, sidecar)
    assert columns == {
        "age": {"column": "Age"},
        "sex": {"column": "Sex", "map": {"1": "M", "2": "F"}},
    }
    assert not left_out
    # A value that does not fit names the table's own column.
    _, left_out = generated_columns({"age": AGE}, _table(Age=["30", "old"]))
    assert [x.column for x in left_out] == ["Age"]
    # The column of the variable's own name wins; two that differ only in case are ambiguous.
    assert column_of("age", ["Age", "age"]) == "age"
    assert column_of("age", ["Age", "AGE"]) is None
    assert column_of("age", ["participant_id", "ages"]) is None
