"""Units of a phenotype column: participants.json's ``Units`` converted to the catalogue
variable's units where the conversion is exact and well known, a column in units LCM cannot
convert refused (lcm store) or left out (the coding lcm run generates), the user's own
transform (scale:, map:) taken as the conversion."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.catalogue import ColumnCoding, Variable, load_catalogue
from lcm.cli import main
from lcm.exceptions import InputDataError
from lcm.store.coding import generated_columns
from lcm.store.phenotype import read_phenotype
from lcm.store.units import UnitsMismatch, column_units, parse_unit

AGE = Variable("age", "continuous", "sociodemographic", "years", (0.0, 100.0))
CHILD_AGE = Variable("age", "continuous", "sociodemographic", "years", (5.0, 100.0))
HEIGHT = Variable("height", "continuous", "physiological", "cm", (40.0, 250.0))
BMI = Variable("bmi", "continuous", "physiological", "kg/m^2", (12.0, 60.0))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Months", "months"),
        ("month", "months"),
        (" MO ", "months"),
        ("year", "years"),
        ("Yrs", "years"),
        ("weeks", "weeks"),
        ("wk", "weeks"),
        ("Days", "days"),
        ("d", "days"),
        ("Millimetres", "mm"),
        ("centimeter", "cm"),
        ("M", "m"),
        ("metres", "m"),
        ("Grams", "g"),
        ("KG", "kg"),
        ("kilogram", "kg"),
        ("inches", "in"),
        ("lbs", "lb"),
    ],
)
def test_unit_spellings_are_read_without_case_singular_or_plural(text: str, name: str) -> None:
    unit = parse_unit(text)
    assert unit is not None and unit.name == name


@pytest.mark.parametrize("text", ["", "kg/m^2", "correct responses", "score", "months old"])
def test_other_units_are_no_unit_lcm_knows(text: str) -> None:
    assert parse_unit(text) is None


@pytest.mark.parametrize(
    ("var", "declared", "factor", "text"),
    [
        (AGE, "months", Fraction(1, 12), "age: months -> years (x 1/12)"),
        (AGE, "days", Fraction(4, 1461), "age: days -> years (x 1/365.25)"),
        (AGE, "Weeks", Fraction(28, 1461), "age: Weeks -> years (x 0.019165)"),
        (HEIGHT, "m", Fraction(100), "height: m -> cm (x 100)"),
        (HEIGHT, "mm", Fraction(1, 10), "height: mm -> cm (x 1/10)"),
        (
            Variable("weight", "continuous", "physiological", "kg"),
            "grams",
            Fraction(1, 1000),
            "weight: grams -> kg (x 1/1000)",
        ),
    ],
)
def test_exact_conversions(var: Variable, declared: str, factor: Fraction, text: str) -> None:
    units = column_units(var, ColumnCoding(var.name), declared)
    assert units is not None and units.factor == factor and units.describe() == text


@pytest.mark.parametrize("declared", [None, "", "year", "YEARS", 12, {"x": 1}])
def test_absent_or_equal_units_change_nothing(declared: object) -> None:
    assert column_units(AGE, ColumnCoding("age"), declared) is None


def test_units_lcm_does_not_know_are_read_as_written_with_a_note() -> None:
    units = column_units(BMI, ColumnCoding("bmi"), "kg/m2")
    assert units is not None and units.factor is None
    assert "'kg/m2'" in units.note and "'kg/m^2'" in units.note and "as written" in units.note


@pytest.mark.parametrize(
    ("var", "declared", "match"),
    [
        (AGE, "cm", r"'cm'.*'years'.*a length, not a time"),
        (HEIGHT, "inches", r"'inches'.*'cm'.*LCM does not convert inches"),
        (HEIGHT, "kg", r"'kg'.*'cm'.*a mass, not a length"),
    ],
)
def test_units_known_to_differ_that_lcm_cannot_convert(
    var: Variable, declared: str, match: str
) -> None:
    with pytest.raises(UnitsMismatch, match=match) as err:
        column_units(var, ColumnCoding(var.name), declared, where="datasets.d.columns.x")
    # The fix: a transform in the catalogue's dataset entry, with an example.
    assert "datasets.d.columns.x" in err.value.hint and "scale:" in err.value.hint
    assert f"{{column: {var.name}, scale: " in err.value.hint


def test_a_transform_of_the_users_is_the_conversion() -> None:
    """scale: or map: converts to the catalogue's units already: not converted twice, and a
    transform silences units LCM cannot convert (scale: 1 reads them as written)."""
    units = column_units(AGE, ColumnCoding("age", scale=1 / 12), "months")
    assert units is not None and units.factor is None and "scale: 0.0833333" in units.note
    assert column_units(HEIGHT, ColumnCoding("height", scale=2.54), "inches").factor is None
    assert column_units(AGE, ColumnCoding("age", map={"1": 30.0}), "months").factor is None
    # A scale far from the exact factor is named.
    units = column_units(AGE, ColumnCoding("age", scale=12.0), "months")
    assert "x 1/12" in units.note and "check" in units.note


CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [0, 100]}
  height: {kind: continuous, domain: physiological, units: cm, range: [40, 250]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  infants:
    id_column: participant_id
    columns:
      age: {column: age}
      height: {column: height}
      sex: {column: sex, map: {"1": M, "2": F}}
  scaled:
    id_column: participant_id
    columns:
      age: {column: age, scale: 0.0833333333333}
"""


def _dataset(folder: Path, units: dict[str, str], rows: str | None = None) -> Path:
    """participants.tsv and participants.json in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "participants.tsv"
    table.write_text(
        "participant_id\tage\theight\tsex\n"
        + (rows or "sub-101\t6\t0.7\t1\nsub-102\t18\t0.82\t2\nsub-103\t36\t0.95\t1\n")
    )
    sidecar = {c: {"Description": c, "Units": u} for c, u in units.items()}
    (folder / "participants.json").write_text(json.dumps(sidecar))
    return table


@pytest.fixture
def catalogue(tmp_path: Path):
    path = tmp_path / "variables.yaml"
    path.write_text(CATALOGUE)
    return load_catalogue(path)


def test_an_age_in_months_is_read_in_years(tmp_path: Path, catalogue, caplog) -> None:
    """6-36 months fell inside [0, 100] and were stored as 6-36 years."""
    table = _dataset(tmp_path / "ds", {"age": "months", "height": "m"})
    with caplog.at_level(logging.INFO, logger="lcm.store.phenotype"):
        got = read_phenotype(table, "infants", catalogue)
    np.testing.assert_allclose(got["age"], [0.5, 1.5, 3.0])
    np.testing.assert_allclose(got["height"], [70.0, 82.0, 95.0])
    assert "age: months -> years (x 1/12)" in caplog.text
    assert "height: m -> cm (x 100)" in caplog.text and "participants.json" in caplog.text


def test_absent_or_equal_units_read_as_before(tmp_path: Path, catalogue) -> None:
    rows = "sub-101\t30\t170\t1\n"
    for units in ({}, {"age": "Year", "height": "centimetres"}):
        got = read_phenotype(_dataset(tmp_path / "ds", units, rows), "infants", catalogue)
        assert got["age"].tolist() == [30.0] and got["height"].tolist() == [170.0]


def test_the_users_scale_is_not_converted_twice(tmp_path: Path, catalogue, caplog) -> None:
    table = _dataset(tmp_path / "ds", {"age": "months"})
    with caplog.at_level(logging.INFO, logger="lcm.store.phenotype"):
        got = read_phenotype(table, "scaled", catalogue)
    np.testing.assert_allclose(got["age"], [0.5, 1.5, 3.0])
    assert "months -> years" not in caplog.text and "scale: 0.0833333" in caplog.text


def test_units_lcm_cannot_convert_stop_the_store_naming_both_and_the_fix(
    tmp_path: Path, catalogue
) -> None:
    table = _dataset(tmp_path / "ds", {"height": "inches"}, "sub-101\t30\t67\t1\n")
    with pytest.raises(InputDataError, match=r"participants\.json.*'height'.*'inches'.*'cm'") as e:
        read_phenotype(table, "infants", catalogue)
    assert "datasets.infants.columns.height" in e.value.hint
    assert "{column: height, scale: 2.54}" in e.value.hint


def test_an_out_of_range_value_names_the_units_it_was_converted_from(
    tmp_path: Path, catalogue
) -> None:
    table = _dataset(tmp_path / "ds", {"age": "days"}, "sub-101\t40000\t170\t1\n")
    with pytest.raises(InputDataError, match=r"109\.514 years \(40000 days x 1/365\.25\)"):
        read_phenotype(table, "infants", catalogue)


def test_the_generated_coding_converts_or_leaves_out_naming_the_units() -> None:
    """lcm run's coding: months within the range of years were taken as years; months out of
    it were left out with a reason that did not mention units."""
    table = pd.DataFrame({"participant_id": ["sub-1", "sub-2"], "age": ["6", "36"]})
    sidecar = {"age": {"Units": "months"}}
    columns, left_out = generated_columns({"age": CHILD_AGE}, table, sidecar)
    assert columns == {} and len(left_out) == 1
    assert "0.5 years (6 months x 1/12) is outside" in left_out[0].reason
    columns, left_out = generated_columns({"age": AGE}, table, sidecar)
    assert columns == {"age": {"column": "age"}} and not left_out
    columns, left_out = generated_columns({"age": AGE}, table, {"age": {"Units": "cm"}})
    assert columns == {} and "'cm'" in left_out[0].reason and "'years'" in left_out[0].reason
    assert "scale:" in left_out[0].reason
    # Without Units, 6-36 are years (as before); an age out of range says where units are given.
    assert generated_columns({"age": CHILD_AGE}, table)[0] == {"age": {"column": "age"}}
    table["age"] = ["2", "36"]
    columns, left_out = generated_columns({"age": CHILD_AGE}, table)
    assert '"Units": "months"' in left_out[0].reason


def _relmats(folder: Path, subjects: list[str]) -> Path:
    names = [f"roi{i}" for i in range(5)]
    rng = np.random.default_rng(0)
    rows = []
    for s in subjects:
        mat = np.corrcoef(rng.standard_normal((40, len(names))).T)
        path = folder / f"sub-{s}_relmat.tsv"
        pd.DataFrame(mat, index=pd.Index(names, name="Node"), columns=names).to_csv(path, sep="\t")
        rows.append(
            {
                # As `lcm connectome` writes it: the table's contract (lcm.io.qc_table).
                "dataset": "infants",
                "subject": s,
                "session": "",
                "task": "rest",
                "run": "1",
                "run_key": f"sub-{s}_task-rest_run-1",
                "included": "True",
                "reason": "",
                "n_volumes": "40",
                "n_volumes_kept": "40",
                "mean_fd": "0.1",
                "t_r": "2.0",
                "relmat": str(path),
            }
        )
    qc = folder / "qc.tsv"
    pd.DataFrame(rows).to_csv(qc, sep="\t", index=False)
    return qc


def test_lcm_store_converts_and_records_units(tmp_path: Path, monkeypatch, capsys) -> None:
    """Through `lcm store`, from a folder outside the repository: the stored ages are years,
    the log and the partition's provenance say so."""
    work = tmp_path / "study"
    bids = work / "rawdata"
    table = _dataset(bids, {"age": "months", "height": "m"})
    (work / "variables.yaml").write_text(CATALOGUE)
    qc = _relmats(work, ["101", "102", "103"])
    monkeypatch.chdir(work)
    args = ["store", "--dataset", "infants", "--qc-table", "qc.tsv"]
    args += ["--phenotype", str(table.relative_to(work)), "--catalogue", "variables.yaml"]
    args += ["--atlas", "toy", "--store-dir", "store"]
    assert main(args) == 0, capsys.readouterr().err
    assert "age: months -> years (x 1/12)" in capsys.readouterr().err
    variables = pd.read_parquet(work / "store" / "variables")
    np.testing.assert_allclose(variables.sort_values("subject")["age"], [0.5, 1.5, 3.0])
    np.testing.assert_allclose(variables.sort_values("subject")["height"], [70, 82, 95])
    (part,) = (work / "store" / "connectomes").rglob("*.parquet")
    provenance = json.loads(pq.read_schema(part).metadata[b"lcm.provenance"])
    assert provenance["unit_conversions"] == {
        "age": "age: months -> years (x 1/12)",
        "height": "height: m -> cm (x 100)",
    }
    assert provenance["settings"]["phenotype_sidecar_sha256"]
    assert qc.is_file()
    # Units LCM cannot convert stop it, naming both and the fix.
    (bids / "participants.json").write_text(json.dumps({"height": {"Units": "inches"}}))
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "'inches'" in err and "'cm'" in err and "scale: 2.54" in err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"age": {"Units": "months",}}', "is not valid JSON: Expecting property name"),
        ('[{"age": {"Units": "months"}}]', "holds a JSON array, not an object of columns"),
        (b"\xff\xfe{", "is not UTF-8"),
    ],
)
def test_lcm_store_refuses_a_broken_participants_json_writing_nothing(
    tmp_path: Path, monkeypatch, capsys, text: str | bytes, said: str
) -> None:
    """A participants.json that did not parse was skipped with a warning: its ages in months
    were stored as years. Refused, naming the file and the fix; the store is left as it was."""
    work = tmp_path / "study"
    bids = work / "raw data"
    table = _dataset(bids, {"age": "months", "height": "m"})
    (work / "variables.yaml").write_text(CATALOGUE)
    _relmats(work, ["101", "102", "103"])
    monkeypatch.chdir(work)
    args = ["store", "--dataset", "infants", "--qc-table", "qc.tsv", "--phenotype", str(table)]
    args += ["--catalogue", "variables.yaml", "--atlas", "toy", "--store-dir", "store"]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    store = {p: p.read_bytes() for p in (work / "store").rglob("*") if p.is_file()}
    sidecar = bids / "participants.json"
    sidecar.write_bytes(text if isinstance(text, bytes) else text.encode())
    # A store written before: its files untouched.
    assert main(args) == 3
    err = capsys.readouterr().err
    assert f"Phenotype sidecar {sidecar} {said}" in err
    assert f"hint: Save {sidecar} as UTF-8" in err or f"hint: Fix the JSON of {sidecar}" in err
    assert {p: p.read_bytes() for p in (work / "store").rglob("*") if p.is_file()} == store
    # A new store: nothing written.
    assert main([*args[:-1], "new store"]) == 3
    assert not (work / "new store").exists()
