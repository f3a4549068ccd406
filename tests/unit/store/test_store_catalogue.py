"""The variable catalogue: its schema, and every synthetic consortium's quirks read through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT

from lcm.catalogue import load_catalogue
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.atomic import write_tsv
from lcm.store.phenotype import missingness, read_phenotype, read_table
from lcm.synth.latents import draw_latents
from lcm.synth.phenotype import phenotype_table
from lcm.synth.presets import resolve

CATALOGUE = ROOT / "config" / "variables.yaml"


@pytest.mark.parametrize(
    ("name", "consortium"),
    [
        ("hcplike", {"preset": "hcp"}),  # Gender M/F, SSAGA_Educ 11-17 mapped to levels
        ("ukblike", {"preset": "ukb"}),  # numeric column names, sex 0/1, score x3
        ("abidelike", {"preset": "abide"}),  # DX_GROUP and SEX coded 1/2, sites
        ("adnilike", {"preset": "adni"}),  # age in months, Female/Male
        ("bidsdemo", {"preset": "hcp", "tier": "voxel"}),  # sub- prefixed IDs, "26-30" ages
    ],
)
def test_catalogue_maps_each_synthetic_consortium(tmp_path: Path, name, consortium) -> None:
    catalogue = load_catalogue(CATALOGUE)
    spec = resolve(name, {**consortium, "n_subjects": 60})
    latents = draw_latents(spec, seed=3).set_index("subject")
    path = tmp_path / "phenotype.tsv"
    write_tsv(path, phenotype_table(spec, latents.reset_index(), seed=3))
    got = read_phenotype(path, name, catalogue).set_index("subject")
    assert got.index.tolist() == latents.index.tolist()
    coding = catalogue.coding(name)
    assert coding.columns, name
    for var, col in coding.columns.items():
        values, want = got[var], latents.loc[got.index, var]
        present = values.notna()
        assert 0.5 < present.mean() <= 1.0, (var, present.mean())
        if catalogue.variables[var].is_numeric:
            tol = 2.5 if col.range_midpoint else 0.05  # "26-30" -> 28; months rounded
            np.testing.assert_allclose(values[present], want[present].astype(float), atol=tol)
        else:
            assert (values[present] == want[present].astype(str)).all(), var
    for var in set(catalogue.variables) - set(coding.columns):
        assert got[var].isna().all(), var
    if coding.site_column:
        assert (got["site"] == latents.loc[got.index, "site"].astype(str)).all()
    report = missingness(got.reset_index(), name, catalogue)
    assert len(report) == len(catalogue.variables)
    assert report.loc[~report["provided"], "fraction_missing"].eq(1.0).all()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "variables.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "variables:\n  age: {kind: numeric, domain: sociodemographic}\n"
            "datasets:\n  a: {id_column: id}\n",
            r"key 'variables\.age\.kind': 'numeric' is not one of",
        ),
        (
            "variables:\n  dx: {kind: categorical, domain: clinical}\n"
            "datasets:\n  a: {id_column: id}\n",
            r"key 'variables\.dx': 'levels' is a required property",
        ),
        (
            "variables:\n  age: {kind: continuous, domain: sociodemographic}\n"
            "datasets:\n  a: {id_column: id, columns: {age: {column: AGE, scale: -1}}}\n",
            r"key 'datasets\.a\.columns\.age\.scale': -1 is less than or equal to the minimum of 0",
        ),
        (
            "variables:\n  age: {kind: continuous, domain: sociodemographic, unit: years}\n"
            "datasets:\n  a: {id_column: id}\n",
            r"unknown key 'unit' \(did you mean 'units'\?\) under 'variables\.age'\n",
        ),
        (
            "variables: {}\ndatasets:\n  a: {id_column: id}\n",
            r"key 'variables': \{\} should be non-empty",
        ),
    ],
)
def test_catalogue_schema_errors_name_the_key(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_catalogue(_write(tmp_path, text))
    assert "variables.yaml" in str(info.value)


CODING_CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]LEVELS}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]RANGE}
datasets:
  eu: {id_column: id, columns: {age: {column: Age, CODING}}}
"""


@pytest.mark.parametrize(
    ("fields", "key", "match", "hint"),
    [
        (
            {"CODING": "scael: 0.083"},
            "datasets.eu.columns.age",
            "unknown key 'scael' (did you mean 'scale'?) under 'datasets.eu.columns.age'",
            "Allowed keys here: ['column', 'map', 'range_midpoint', 'scale']",
        ),
        (
            {"CODING": "scale: -1"},
            "datasets.eu.columns.age.scale",
            "-1 is less than or equal to the minimum of 0",
            "Multiply numbers by this",
        ),
        (
            {"CODING": 'scale: "x"'},
            "datasets.eu.columns.age.scale",
            "'x' is not of type 'number'",
            "Multiply numbers by this",
        ),
        (
            {"CODING": 'range_midpoint: "yes"'},
            "datasets.eu.columns.age.range_midpoint",
            "'yes' is not of type 'boolean'",
            "midpoint",
        ),
        (
            {"CODING": "scale: 1", "LEVELS": ", levels: [a, b]"},
            "variables.age",
            "key 'levels' not allowed here",
            "Remove levels. A continuous or ordinal variable takes a range, not levels",
        ),
        (
            {"CODING": "scale: 1", "RANGE": ", range: [0, 1]"},
            "variables.sex",
            "key 'range' not allowed here",
            "Remove range. A binary or categorical variable takes levels, not a range",
        ),
    ],
)
def test_a_coding_error_names_its_key_not_the_whole_schema(
    tmp_path: Path, fields: dict, key: str, match: str, hint: str
) -> None:
    """A column coding is a string or a mapping (oneOf): its typos were reported as "... is not
    valid under any of the given schemas (rule: oneOf [...])" with the whole schema printed, and
    the variable rules as "should not be valid under {'required': ['levels']}"."""
    text = CODING_CATALOGUE
    for field in ("LEVELS", "RANGE", "CODING"):
        text = text.replace(field, fields.get(field, ""))
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    message = info.value.message
    # An unknown key is named alone (not the whole mapping), with the allowed key it is
    # likely a typo of.
    said = f"{path}: {match}" if match.startswith("unknown key") else None
    assert message == said or message.startswith(f"{path}: invalid value at key '{key}': "), message
    assert match in message
    assert "any of the given schemas" not in message and "should not be valid" not in message
    assert len(message) < 300
    assert hint in info.value.hint


def test_unknown_category_level_is_refused(tmp_path: Path) -> None:
    catalogue = load_catalogue(
        _write(
            tmp_path,
            "variables:\n  hand: {kind: categorical, domain: behavioural, levels: [L, R, A]}\n"
            "datasets:\n  a: {id_column: id, columns: {hand: HAND}}\n",
        )
    )
    table = tmp_path / "p.csv"
    table.write_text("id,HAND\n1,L\n2,Ambi\n")
    with pytest.raises(InputDataError, match=r"row 3, column 'HAND', value 'Ambi'.*unknown level"):
        read_phenotype(table, "a", catalogue)
    table.write_text("id,HAND\n1,L\n2,n/a\n")
    frame = read_phenotype(table, "a", catalogue)
    assert frame["hand"].tolist() == ["L", None]
    assert pd.isna(frame["hand"].iloc[1])


def test_the_catalogue_header_lists_every_missing_code() -> None:
    """config/variables.yaml tells users which phenotype codes read as missing: all of them."""
    from lcm.store.phenotype import NA_VALUES

    lines = (ROOT / "config" / "variables.yaml").read_text().splitlines()
    said = " ".join(line.removeprefix("#") for line in lines if line.startswith("#"))
    said = said.split("Missing values:")[1].split("read as missing")[0]
    words = {w.strip(",.()'") for w in said.split()}
    assert {v for v in NA_VALUES if v} <= words
    assert "an empty cell" in said


PHENOTYPE_CATALOGUE = """
variables:
  iq: {kind: continuous, domain: behavioural, units: points}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  d:
    id_column: participant_id
    columns:
      iq: FIQ
      sex: {column: SEX, map: {0: F, 1: M}}
"""


def test_numeric_missing_codes_are_missing_however_written(tmp_path: Path) -> None:
    """-999 and -9999 are missing codes as numbers: -999.0 and -9999.00 too (read as the
    numbers -999 and -9999 before), in numeric and mapped columns; -999.5 is a number."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(PHENOTYPE_CATALOGUE)
    table = tmp_path / "p.tsv"
    table.write_text(
        "participant_id\tFIQ\tSEX\n"
        "sub-01\t-999.0\t1\n02\t-9999.00\t-999.0\n03\t -999 \t0\n04\t-999.5\t-9999.0\n"
    )
    got = read_phenotype(table, "d", load_catalogue(catalogue_path))
    assert got["iq"].isna().tolist() == [True, True, True, False]
    assert got["iq"].iloc[3] == -999.5
    assert got["sex"].tolist() == ["M", None, "F", None]


def test_a_decimal_comma_is_named_and_excel_na_is_missing(tmp_path: Path) -> None:
    """25,5 (a table exported in a European locale) was "not a number" with the generic hint;
    Excel's #N/A was a bad value, not a missing one."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(PHENOTYPE_CATALOGUE)
    catalogue = load_catalogue(catalogue_path)
    table = tmp_path / "p.tsv"
    table.write_text("participant_id\tFIQ\tSEX\n01\t#N/A\t#N/A\n02\t101.5\t1\n")
    got = read_phenotype(table, "d", catalogue)
    assert got["iq"].isna().tolist() == [True, False] and got["sex"].tolist() == [None, "M"]
    table.write_text("participant_id\tFIQ\tSEX\n01\t-25,5\t0\n")
    with pytest.raises(InputDataError, match=r"value '-25,5': .*looks like a decimal comma") as err:
        read_phenotype(table, "d", catalogue)
    assert "thousands" not in err.value.message
    assert "Save the table with '.' as the decimal separator" in err.value.hint
    table.write_text("participant_id\tFIQ\tSEX\n01\t1,500\t0\n")
    with pytest.raises(InputDataError, match=r"decimal comma .*, or a thousands separator"):
        read_phenotype(table, "d", catalogue)
    table.write_text("participant_id\tFIQ\tSEX\n01\t25;5\t0\n")
    with pytest.raises(InputDataError, match=r"not a number") as err:
        read_phenotype(table, "d", catalogue)
    assert "decimal comma" not in err.value.message and "decimal" not in err.value.hint


def test_a_semicolon_csv_is_refused_with_a_fix_for_its_decimal_commas(tmp_path: Path) -> None:
    """A European spreadsheet's CSV: ';' between cells and 1,5 for 1.5. The refusal said to
    save it with commas, and the decimal commas were refused on the next run; the hint's
    pandas line converts both, participant IDs kept as written."""
    table = tmp_path / "participants.csv"
    table.write_text("participant_id;age;sex\n01;1,5;1\n02;n/a;2\n")
    with pytest.raises(InputDataError, match="its separator is a semicolon") as err:
        read_table(table)
    hint = err.value.hint
    assert "decimal commas too (1,5 for 1.5)" in hint
    recipe = hint.split("IDs kept as text: ")[1].removesuffix(".")
    exec(recipe, {"pd": pd})  # the line a user pastes
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(
        "variables:\n  age: {kind: continuous, domain: sociodemographic, range: [0, 100]}\n"
        "datasets:\n  d: {id_column: participant_id, columns: {age: {column: age}}}\n"
    )
    got = read_phenotype(tmp_path / "participants.tsv", "d", load_catalogue(catalogue))
    assert got["subject"].tolist() == ["01", "02"]
    assert got["age"].iloc[0] == 1.5 and np.isnan(got["age"].iloc[1])


@pytest.mark.parametrize("code", ["1.9", "-0.5", "0.5", "inf"])
def test_a_fractional_code_matches_no_integer_code(tmp_path: Path, code: str) -> None:
    """ "1.0" names code 1, but "1.9" and "-0.5" name none: they were truncated to codes 1 and
    0 (and "inf" crashed with an OverflowError). The error names the file, the value and the
    catalogue entry to fix."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(PHENOTYPE_CATALOGUE)
    catalogue = load_catalogue(catalogue_path)
    table = tmp_path / "p.tsv"
    table.write_text(f"participant_id\tFIQ\tSEX\n01\t100\t1.0\n02\t100\t{code}\n")
    with pytest.raises(InputDataError, match=r"code not in the catalogue map") as err:
        read_phenotype(table, "d", catalogue)
    assert f"{table}, row 3, column 'SEX', value '{code}'" in err.value.message
    assert f"{catalogue_path} (datasets.d.columns.sex)" in err.value.hint
    table.write_text("participant_id\tFIQ\tSEX\n01\t100\t1.0\n02\t100\t0\n")
    assert read_phenotype(table, "d", catalogue)["sex"].tolist() == ["M", "F"]


def test_a_code_mapped_to_null_reads_as_missing(tmp_path: Path) -> None:
    """A dataset's own missing codes (UK Biobank's -1 "do not know", -3 "prefer not to
    answer") are declared as ``map: {"-3": null}``: the schema refused null, and a code mapped
    to a string such as "n/a" was read as data."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(
        "variables:\n"
        "  edu: {kind: ordinal, domain: sociodemographic, range: [1, 3]}\n"
        "  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}\n"
        "datasets:\n"
        "  ukb:\n"
        "    id_column: eid\n"
        "    columns:\n"
        '      edu: {column: EDU, map: {"1": 1, "2": 2, "3": 3, "-1": null, "-3": null}}\n'
        '      sex: {column: SEX, map: {"0": F, "1": M, "-3": null}}\n'
    )
    catalogue = load_catalogue(catalogue_path)
    assert catalogue.datasets["ukb"].columns["edu"].map["-3"] is None
    table = tmp_path / "p.tsv"
    table.write_text("eid\tEDU\tSEX\n1\t2\t0\n2\t-1\t-3\n3\t-3.0\t1\n")
    got = read_phenotype(table, "ukb", catalogue)
    assert got["edu"].isna().tolist() == [False, True, True]
    assert got["edu"].iloc[0] == 2.0
    assert got["sex"].tolist() == ["F", None, "M"]
    table.write_text("eid\tEDU\tSEX\n1\t-7\t0\n")
    with pytest.raises(InputDataError, match=r"value '-7': code not in the catalogue map") as err:
        read_phenotype(table, "ukb", catalogue)
    assert "mapped to null, it reads as missing" in err.value.hint


MAP_CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
  edu: {kind: ordinal, domain: sociodemographic, range: [1, 5]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  d:
    id_column: id
    columns:
      CODING
"""


@pytest.mark.parametrize(
    ("coding", "key", "match", "hint"),
    [
        (
            "sex: {column: SEX, map: {F: F, M: Male}}",
            "sex.map.M",
            r"'Male' is not a level of binary variable 'sex' \(levels \['F', 'M'\]\)",
            "Map code 'M' to one of ['F', 'M']",
        ),
        (
            'sex: {column: SEX, map: {F: F, M: "n/a"}}',
            "sex.map.M",
            r"'n/a' is not a level",
            "or to null to read the code as missing",
        ),
        (
            'edu: {column: EDU, map: {"2": 7, "3": 3}}',
            "edu.map.2",
            r"7 is outside the range \[1, 5\] of 'edu'",
            "Map code '2' to a number in variables.edu.range",
        ),
        (
            'edu: {column: EDU, map: {"2": 2, "3": three}}',
            "edu.map.3",
            r"'three' is not a number, but 'edu' is numeric \(ordinal\)",
            "or to null to read the code as missing",
        ),
        (
            'age: {column: AGE, scale: 12, map: {"1": 10, "2": 2}}',
            "age.map.1",
            r"120 \(10 x scale 12\) is outside the range \[5, 100\]",
            "variables.age.range",
        ),
        (
            "sex: {column: SEX, scale: 12}",
            "sex",
            r"scale reads numbers, but 'sex' is a binary variable",
            "Remove scale",
        ),
        (
            "sex: {column: SEX, range_midpoint: true}",
            "sex",
            r"range_midpoint reads numbers",
            "Remove range_midpoint",
        ),
    ],
)
def test_map_values_are_checked_against_the_variable_at_load(
    tmp_path: Path, coding: str, key: str, match: str, hint: str
) -> None:
    """A map value that is no level of the variable (or no number in its range) is refused
    when the catalogue is loaded, naming the code; it was reported once per phenotype row, as
    an unknown level of the data ("Map the dataset's codes with map:")."""
    path = _write(tmp_path, MAP_CATALOGUE.replace("CODING", coding))
    with pytest.raises(ConfigError, match=match) as info:
        load_catalogue(path)
    assert info.value.message.startswith(f"{path}: datasets.d.columns.{key}: ")
    assert hint in info.value.hint


def test_map_values_in_range_and_null_are_accepted(tmp_path: Path) -> None:
    """Levels written as numbers, numbers written as strings, ranges read by range_midpoint
    and null all pass the load-time check."""
    coding = (
        'age: {column: AGE, range_midpoint: true, map: {"1": "26-30", "2": "90+", "3": null}}\n'
        '      edu: {column: EDU, scale: 0.5, map: {"1": 2, "2": "10", "-3": null}}\n'
        '      sex: {column: SEX, map: {"1": F, "2": M, "-3": null}}'
    )
    catalogue = load_catalogue(_write(tmp_path, MAP_CATALOGUE.replace("CODING", coding)))
    table = tmp_path / "p.tsv"
    table.write_text("id\tAGE\tEDU\tSEX\n1\t1\t2\t2\n2\t2\t-3\t-3\n")
    got = read_phenotype(table, "d", catalogue)
    assert got["age"].tolist() == [28.0, 90.0]
    assert got["edu"].iloc[0] == 5.0 and np.isnan(got["edu"].iloc[1])
    assert got["sex"].tolist() == ["M", None]


@pytest.mark.parametrize(
    "name", ["subject", "site", "dataset", "atlas", "session", "window", "mean_fd", "Site"]
)
def test_a_variable_named_like_a_store_column_is_refused(tmp_path: Path, name: str) -> None:
    """A variable `site` crashed `lcm store` with Arrow's "Duplicate column names found",
    `subject` overwrote the participant IDs, `dataset` clashed with the hive partition key on
    reading: the catalogue refuses them, naming the file, the variable and the fix."""
    path = _write(
        tmp_path,
        f"variables:\n  {name}: {{kind: categorical, domain: sociodemographic, levels: [a, b]}}\n"
        f"datasets:\n  d: {{id_column: id, columns: {{{name}: SITE}}}}\n",
    )
    with pytest.raises(ConfigError, match=rf"variables\.{name}: the name '{name}' is taken") as err:
        load_catalogue(path)
    assert str(path) in err.value.message
    assert err.value.hint.startswith(f"Rename variables.{name} in {path}")


def test_reserved_names_cover_every_column_the_writer_writes(tmp_path: Path) -> None:
    """The catalogue's list of taken names is the writer's own: every column of both tables and
    the partition keys."""
    from lcm.io.store_columns import PARTITION_KEYS, reserved_names
    from lcm.store.writer import _variables_schema, connectome_schema

    catalogue = load_catalogue(_write(tmp_path, PHENOTYPE_CATALOGUE))
    written = {*connectome_schema(4).names, *_variables_schema(catalogue).names}
    assert written - set(catalogue.variables) | set(PARTITION_KEYS) <= set(reserved_names())


@pytest.mark.parametrize(
    ("variable", "coding", "where"),
    [
        ("{kind: binary, domain: clinical, levels: [no, yes]}", "DX", r"variables\.dx\.levels"),
        (
            "{kind: binary, domain: clinical, levels: ['no', 'yes']}",
            "{column: DX, map: {'1': yes, '0': 'no'}}",
            r"datasets\.d\.columns\.dx\.map",
        ),
        (
            "{kind: binary, domain: clinical, levels: ['0', '1']}",
            "{column: DX, map: {yes: '1', no: '0'}}",
            r"datasets\.d\.columns\.dx\.map",
        ),
    ],
)
def test_yaml_booleans_in_levels_and_maps_are_refused(
    tmp_path: Path, variable: str, coding: str, where: str
) -> None:
    """Unquoted yes/no are YAML booleans: `levels: [no, yes]` became ["False", "True"] and a
    map's yes became "True", silently; the catalogue refuses them and says to quote them."""
    path = _write(
        tmp_path,
        f"variables:\n  dx: {variable}\ndatasets:\n  d: {{id_column: id, columns: "
        f"{{dx: {coding}}}}}\n",
    )
    with pytest.raises(ConfigError, match=rf"{where}: .* holds YAML booleans") as err:
        load_catalogue(path)
    assert str(path) in err.value.message
    assert "Quote them: 'yes', 'no'" in err.value.hint
    path.write_text(
        "variables:\n  dx: {kind: binary, domain: clinical, levels: ['no', 'yes']}\n"
        "datasets:\n  d:\n    id_column: id\n"
        "    columns: {dx: {column: DX, map: {'1': 'yes', 'no': 'no'}}}\n"
    )
    quoted = load_catalogue(path)
    assert quoted.variables["dx"].levels == ("no", "yes")
    assert quoted.datasets["d"].columns["dx"].map == {"1": "yes", "no": "no"}


def test_missing_codes_and_whitespace_in_the_site_column_are_no_sites(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The site column was stored as written: "n/a", "-9999", " " and "NA" became sites (a
    leave-site-out fold of their own) and " NYU" another site than "NYU". It follows the rule
    of every other column: stripped, missing codes stored as "" (no site), counted in the log."""
    path = _write(
        tmp_path, PHENOTYPE_CATALOGUE.replace("    columns:", "    site_column: SITE\n    columns:")
    )
    catalogue = load_catalogue(path)
    table = tmp_path / "p.tsv"
    sites = ["NYU", " NYU", "n/a", "-9999", " ", "NA", "UCLA ", "-999.0"]
    table.write_text(
        "participant_id\tFIQ\tSEX\tSITE\n"
        + "".join(f"{i:02d}\t100\t1\t{s}\n" for i, s in enumerate(sites))
    )
    with caplog.at_level("WARNING", logger="lcm.store.phenotype"):
        got = read_phenotype(table, "d", catalogue)
    assert got["site"].tolist() == ["NYU", "NYU", "", "", "", "", "UCLA", ""]
    assert "d: 5 of 8 participant(s) have no site in column 'SITE'" in caplog.text


def test_shipped_ukb_education_reads_its_special_codes(tmp_path: Path) -> None:
    """UK Biobank field 6138: -3 "Prefer not to answer" is missing, -7 "None of the above" the
    lowest level; without them in the shipped map a real UKB export stopped the store."""
    path = tmp_path / "ukb.tsv"
    path.write_text(
        "eid\t21003-2.0\t31-0.0\t21001-2.0\t6138-2.0\t20016-2.0\n"
        "1000001\t60\t0\t24.1\t1\t6\n"
        "1000002\t55\t1\t27.3\t-3\t7\n"
        "1000003\t70\t1\t22.0\t-7\t5\n"
    )
    got = read_phenotype(path, "ukblike", load_catalogue(CATALOGUE)).set_index("subject")
    assert got["education"].tolist()[0] == 5
    assert np.isnan(got.loc["1000002", "education"])
    assert got.loc["1000003", "education"] == 1


def test_a_missing_or_unreadable_catalogue_is_refused_naming_it(tmp_path: Path) -> None:
    """The hint spoke of config only (wrong for --catalogue on the command line), and a file
    that was not UTF-8 raised a bare UnicodeDecodeError."""
    with pytest.raises(ConfigError, match="not found") as info:
        load_catalogue(tmp_path / "nope.yaml")
    assert "path of a catalogue YAML" in info.value.hint
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("variables:\n  \xe2ge: {type: continuous}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"Cannot read the variable catalogue {latin}"):
        load_catalogue(latin)


def test_a_code_given_twice_in_a_map_or_a_variable_twice_is_refused(tmp_path: Path) -> None:
    """YAML kept the last of two equal keys: ``"1": autism`` then ``"1": control`` stored
    every subject as a control, without a word; ``1:`` and ``"1":`` merged so too."""
    path = tmp_path / "variables.yaml"
    base = PHENOTYPE_CATALOGUE.replace("{0: F, 1: M}", "{%s}")
    path.write_text(base % '"1": M, "0": F, "1": F')
    with pytest.raises(ConfigError, match=r"line 10: key '1' is given twice .*first at line 10"):
        load_catalogue(path)
    path.write_text(base % '1: M, 0: F, "1": F')
    with pytest.raises(ConfigError, match=r"columns\.sex\.map: code '1' is given twice"):
        load_catalogue(path)
    path.write_text(
        PHENOTYPE_CATALOGUE.replace(
            "datasets:", "  Iq: {kind: continuous, domain: behavioural}\ndatasets:"
        )
    )
    with pytest.raises(ConfigError, match="variables 'iq' and 'Iq' differ only in case"):
        load_catalogue(path)


def test_a_missing_code_the_catalogue_names_is_that_value(tmp_path: Path) -> None:
    """A medication map's "None": none and a region level NA (North America) were read as
    missing values, every such cell of the cohort; codes it does not name still are."""
    path = tmp_path / "variables.yaml"
    path.write_text(
        "variables:\n"
        "  region: {kind: categorical, domain: sociodemographic, levels: [EU, NA, AS]}\n"
        "  med: {kind: categorical, domain: clinical, levels: [none, SSRI]}\n"
        "  iq: {kind: continuous, domain: behavioural}\n"
        "datasets:\n"
        "  d:\n"
        "    id_column: participant_id\n"
        "    columns:\n"
        "      region: REGION\n"
        '      med: {column: MED, map: {"None": none, "1": SSRI}}\n'
        '      iq: {column: IQ, map: {"-999": 0, "1": 1}}\n'
    )
    table = tmp_path / "p.tsv"
    table.write_text(
        "participant_id\tREGION\tMED\tIQ\n01\tNA\tNone\t-999.0\n02\tn/a\t1\t1\n03\tEU\tn/a\tNaN\n"
    )
    got = read_phenotype(table, "d", load_catalogue(path))
    assert got["region"].tolist() == ["NA", None, "EU"]
    assert got["med"].tolist() == ["none", "SSRI", None]
    assert got["iq"].tolist()[:2] == [0.0, 1.0] and np.isnan(got["iq"].iloc[2])


def test_a_short_row_or_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    """A row cut after its second field stored the subject with its other variables missing
    (pandas fills the absent fields), and a second 'FIQ' column was read as 'FIQ.1', the first
    stored without a word. Blank lines stay allowed."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(PHENOTYPE_CATALOGUE)
    catalogue = load_catalogue(catalogue_path)
    table = tmp_path / "p.tsv"
    table.write_text("participant_id\tFIQ\tSEX\n01\t100\t1\n\n02\t90\n03\t95\t0\n")
    with pytest.raises(InputDataError, match=r"line\(s\) 4 have fewer fields than its header's 3"):
        read_phenotype(table, "d", catalogue)
    table.write_text("participant_id\tFIQ\tSEX\n01\t100\t1\n  \n\n03\t95\t0\n")
    assert read_phenotype(table, "d", catalogue)["subject"].tolist() == ["01", "03"]
    assert read_table(table)["participant_id"].tolist() == ["01", "03"]
    table.write_text("participant_id\tFIQ\tSEX\tFIQ\n01\t100\t1\t99\n")
    with pytest.raises(InputDataError, match=r"has the column\(s\) \['FIQ'\] twice"):
        read_phenotype(table, "d", catalogue)
