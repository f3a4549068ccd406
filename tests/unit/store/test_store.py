"""Phenotype ingestion through the catalogue, and the Parquet feature store round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lcm.catalogue import load_catalogue
from lcm.cli import main
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.paths import connectome_path, variables_path
from lcm.store.layout import matrix_to_vec, n_rois_from_edges, vec_to_matrix
from lcm.store.phenotype import match_scanned_subjects, missingness, read_phenotype
from lcm.store.read import load_cohort
from lcm.store.writer import write_connectomes, write_variables

CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
  dx: {kind: binary, domain: clinical, levels: [control, patient]}
  edu: {kind: ordinal, domain: sociodemographic, range: [1, 5]}
datasets:
  alpha:
    id_column: SUB_ID
    site_column: SITE
    columns:
      age: {column: AGE_MONTHS, scale: 0.0833333333333}
      sex: {column: SEX, map: {"1": M, "2": F}}
      dx: {column: DX, map: {"1": patient, "2": control}}
      edu: {column: EDU, range_midpoint: true}
"""


@pytest.fixture
def catalogue(tmp_path: Path):
    p = tmp_path / "variables.yaml"
    p.write_text(CATALOGUE)
    return load_catalogue(p)


def _pheno(tmp_path: Path, rows: list[str], name: str = "pheno.tsv") -> Path:
    p = tmp_path / name
    p.write_text("SUB_ID\tSITE\tAGE_MONTHS\tSEX\tDX\tEDU\n" + "\n".join(rows) + "\n")
    return p


def test_phenotype_codings_are_applied(tmp_path: Path, catalogue) -> None:
    p = _pheno(tmp_path, ["101\tNYU\t240\t1\t1\t2-4", "102\tUCLA\tn/a\t2.0\t2\t5"])
    df = read_phenotype(p, "alpha", catalogue)
    assert df["subject"].tolist() == ["101", "102"]
    assert df["site"].tolist() == ["NYU", "UCLA"]
    assert df["age"].iloc[0] == pytest.approx(20.0) and np.isnan(df["age"].iloc[1])
    assert df["sex"].tolist() == ["M", "F"]
    assert df["dx"].tolist() == ["patient", "control"]
    assert df["edu"].tolist() == [3.0, 5.0]
    report = missingness(df, "alpha", catalogue)
    assert report.set_index("variable").loc["age", "n_missing"] == 1


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("101\tNYU\t2400\t1\t1\t3", r"row 2, column 'AGE_MONTHS'.*outside the allowed range"),
        ("101\tNYU\t240\t7\t1\t3", r"column 'SEX', value '7'.*not in the catalogue map"),
        ("101\tNYU\tabc\t1\t1\t3", r"column 'AGE_MONTHS', value 'abc'.*not a number"),
        # Python's float() reads both (as 240 and 24); no table reader does.
        ("101\tNYU\t2_40\t1\t1\t3", r"column 'AGE_MONTHS', value '2_40'.*not a number"),
        ("101\tNYU\t\u0662\u0664\t1\t1\t3", r"column 'AGE_MONTHS', value '..'.*not a number"),
        ("101\tNYU\t240\t1_0\t1\t3", r"column 'SEX', value '1_0'.*not in the catalogue map"),
        ("1 01\tNYU\t240\t1\t1\t3", r"value '1 01': invalid BIDS 'sub' label"),
    ],
)
def test_bad_phenotype_values_name_file_row_column(tmp_path: Path, catalogue, row, match) -> None:
    p = _pheno(tmp_path, [row])
    with pytest.raises(InputDataError, match=match) as info:
        read_phenotype(p, "alpha", catalogue)
    assert str(p) in str(info.value)


def test_duplicate_ids_and_missing_columns(tmp_path: Path, catalogue) -> None:
    p = _pheno(tmp_path, ["101\tA\t240\t1\t1\t3", "101\tA\t250\t1\t1\t3"])
    with pytest.raises(InputDataError, match=r"row 3, .*duplicate participant ID: row 2 has it"):
        read_phenotype(p, "alpha", catalogue)
    q = tmp_path / "noid.tsv"
    q.write_text("ID\tAGE_MONTHS\n1\t240\n")
    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['SUB_ID'"):
        read_phenotype(q, "alpha", catalogue)
    with pytest.raises(ConfigError, match="no entry for dataset 'beta'"):
        read_phenotype(p, "beta", catalogue)


def test_catalogue_validation_names_key(tmp_path: Path) -> None:
    p = tmp_path / "v.yaml"
    p.write_text(
        "variables:\n  sex: {kind: binary, domain: sociodemographic, levels: [F]}\n"
        "datasets:\n  a: {id_column: id}\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"v\.yaml: invalid value at key 'variables\.sex\.levels': \['F'\] is too short",
    ):
        load_catalogue(p)


def test_layout_roundtrip() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 7, 7))
    a = (a + a.transpose(0, 2, 1)) / 2
    np.einsum("kii->ki", a)[:] = 1.0
    vec = matrix_to_vec(a)
    assert vec.shape == (3, 21) and n_rois_from_edges(21) == 7
    np.testing.assert_allclose(vec_to_matrix(vec, 7), a)


def _relmats(tmp_path: Path, n_runs: int, names: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_runs):
        ts = rng.standard_normal((50, len(names)))
        mat = np.corrcoef(ts.T)
        path = tmp_path / f"sub-{101 + i}_relmat.tsv"
        pd.DataFrame(mat, index=pd.Index(names, name="Node"), columns=names).to_csv(path, sep="\t")
        rows.append(
            {
                # As `lcm connectome` writes it: the table's contract (lcm.io.qc_table).
                "dataset": "alpha",
                "subject": str(101 + i),
                "session": "",
                "task": "rest",
                "run": "1",
                "run_key": f"sub-{101 + i}_task-rest_run-1",
                "included": "True",
                "reason": "",
                "n_volumes": "50",
                "n_volumes_kept": "48",
                "mean_fd": "0.12",
                "t_r": "2.0",
                "relmat": str(path),
            }
        )
    rows.append(
        {
            **rows[0],
            "subject": "999",
            "included": "False",
            "reason": "too few volumes",
            "relmat": "",
        }
    )
    return pd.DataFrame(rows)


def test_store_roundtrip_is_plain_parquet(tmp_path: Path, catalogue) -> None:
    names = [f"roi{i}" for i in range(6)]
    qc = _relmats(tmp_path, 3, names, seed=1)
    pheno = read_phenotype(
        _pheno(tmp_path, ["101\tNYU\t240\t1\t1\t3", "102\tNYU\t300\t2\t2\t4"]), "alpha", catalogue
    )
    store = tmp_path / "store"
    out = write_connectomes(store, "toy", "alpha", qc, pheno)
    write_variables(store, "alpha", pheno, catalogue)
    # Readable without our code; hive partitions appear as columns.
    frame = pd.read_parquet(store / "connectomes")
    assert len(frame) == 3 and set(frame["dataset"].astype(str)) == {"alpha"}
    meta = pq.read_schema(out).metadata
    assert meta[b"lcm.schema_version"] == b"5" and b"roi5" in meta[b"lcm.roi_names"]
    # The upper triangle is one little-endian float32 blob per run, readable with numpy alone.
    edges = np.frombuffer(b"".join(frame["connectome"]), "<f4").reshape(len(frame), -1)
    assert edges.shape == (3, 15)
    cohort = load_cohort(store, "toy", ["alpha"], catalogue)
    assert cohort.fc.shape == (3, 6, 6) and cohort.fc.dtype == np.float32
    expected = pd.read_csv(qc["relmat"][1], sep="\t", index_col=0).to_numpy()
    np.testing.assert_allclose(cohort.fc[1], expected, atol=1e-6)
    assert cohort.ids["site"].tolist() == ["NYU", "NYU", ""]
    assert cohort.variables["sex"].tolist() == ["M", "F", None]  # 103 has no phenotype row
    assert cohort.groups.tolist() == ["alpha/101", "alpha/102", "alpha/103"]
    # A dataset named twice (lcm pretrain --datasets alpha alpha) loaded every run twice.
    with pytest.raises(InputDataError, match=r"name \['alpha'\] more than once"):
        load_cohort(store, "toy", ["alpha", "alpha"], catalogue)


def test_store_refuses_dataset_with_other_rois(tmp_path: Path, catalogue) -> None:
    pheno = read_phenotype(_pheno(tmp_path, ["101\tA\t240\t1\t1\t3"]), "alpha", catalogue)
    store = tmp_path / "store"
    write_connectomes(
        store,
        "toy",
        "alpha",
        _relmats(tmp_path / "a", 2, list("abcde"), 0) if (tmp_path / "a").mkdir() is None else None,
        pheno,
    )
    (tmp_path / "b").mkdir()
    other = _relmats(tmp_path / "b", 2, list("abcdf"), 1)
    with pytest.raises(InputDataError, match="differ from the 5 ROIs stored"):
        write_connectomes(store, "toy", "beta", other, pheno)
    assert not connectome_path(store, "toy", "beta").exists()


def test_a_matrix_cell_that_is_no_number_names_the_file(tmp_path: Path, catalogue) -> None:
    """An empty cell in a relmat (edited or cut short since the connectome stage wrote it)
    stopped `lcm store` with an unexpected error; an error names the file and the fix."""
    qc = _relmats(tmp_path, 2, [f"roi{i}" for i in range(4)], seed=1)
    bad = Path(qc["relmat"][1])
    lines = bad.read_text().splitlines()
    lines[2] = "\t".join([*lines[2].split("\t")[:-1], ""])
    bad.write_text("\n".join(lines) + "\n")
    pheno = read_phenotype(_pheno(tmp_path, ["101\tNYU\t240\t1\t1\t3"]), "alpha", catalogue)
    with pytest.raises(InputDataError, match=rf"{bad}: a value of the matrix is not a number"):
        write_connectomes(tmp_path / "store", "toy", "alpha", qc, pheno)
    assert not connectome_path(tmp_path / "store", "toy", "alpha").exists()


# Phenotype rows find their files when the release numbers subjects with leading zeros.
def _table(labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"subject": labels, "age": range(len(labels))})


def test_zero_padded_file_labels_take_the_tables_row() -> None:
    table, mapping = match_scanned_subjects(_table(["50002", "50003", "7"]), {"0050002", "0050003"})
    assert mapping == {"50002": "0050002", "50003": "0050003"}
    assert table["subject"].tolist() == ["0050002", "0050003", "7"]
    assert table["age"].tolist() == [0, 1, 2]


def test_labels_matching_as_written_are_kept() -> None:
    original = _table(["101", "0101", "abc"])
    table, mapping = match_scanned_subjects(original, {"101", "0101", "abc"})
    assert mapping == {} and table is original


@pytest.mark.parametrize(
    ("labels", "scanned"),
    [
        (["50002", "050002"], {"0050002"}),  # two table rows are the number: ambiguous
        (["50002"], {"0050002", "00050002"}),  # two scans are the number: ambiguous
        (["A50002"], {"0050002"}),  # not digits only
        (["500020"], {"0050002"}),  # another number
    ],
)
def test_ambiguous_or_other_labels_stay_unmatched(labels: list[str], scanned: set[str]) -> None:
    table, mapping = match_scanned_subjects(_table(labels), scanned)
    assert mapping == {} and table["subject"].tolist() == labels


def test_lcm_store_refuses_a_phenotype_matching_no_scan(tmp_path: Path, capsys) -> None:
    """IDs that match no scan: it stored every run without variables, exit 0, and lcm evaluate
    then said "one class only (subjects {})". A partial match stays a warning."""
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    qc_path = tmp_path / "qc.tsv"
    _relmats(tmp_path, 3, [f"roi{i}" for i in range(6)], seed=1).to_csv(
        qc_path, sep="\t", index=False
    )
    pheno = _pheno(
        tmp_path, ["X101\tNYU\t240\t1\t1\t3", "X102\tNYU\t300\t2\t2\t4"], "p_wrongids.tsv"
    )
    args = ["store", "--dataset", "alpha", "--qc-table", str(qc_path), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(tmp_path / "s")]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "none of the 3 stored subject(s) is in" in err and "p_wrongids.tsv" in err
    assert "'X101'" in err and "'101'" in err and "id_column" in err
    assert not (tmp_path / "s" / "variables").exists()
    partial = _pheno(tmp_path, ["101\tNYU\t240\t1\t1\t3"], "p_partial.tsv")
    args[args.index(str(pheno))] = str(partial)
    assert main(args) == 0
    assert "scanned subject(s) absent from" in capsys.readouterr().err  # a warning, as before


def test_lcm_store_joins_abide_style_ids(tmp_path: Path, capsys) -> None:
    """ABIDE: files say 0000101, the phenotype's SUB_ID 101 (every subject's variables were
    missing before, and the task had no labelled subject)."""
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    qc = _relmats(tmp_path, 3, [f"roi{i}" for i in range(6)], seed=1)
    qc["subject"] = qc["subject"].str.zfill(7)
    qc_path = tmp_path / "qc.tsv"
    qc.to_csv(qc_path, sep="\t", index=False)
    pheno = _pheno(tmp_path, ["101\tNYU\t240\t1\t1\t3", "102\tNYU\t300\t2\t2\t4"])
    args = ["store", "--dataset", "alpha", "--qc-table", str(qc_path), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(tmp_path / "s")]
    assert main(args) == 0
    log = capsys.readouterr().err
    assert "2 phenotype subject(s) matched to their files by number" in log
    assert "absent from" in log and "'0000103'" in log  # the subject without a row is named
    assert "labels without files" not in log  # every row found its files
    cohort = load_cohort(tmp_path / "s", "toy", ["alpha"], load_catalogue(catalogue))
    assert cohort.ids["subject"].tolist() == ["0000101", "0000102", "0000103"]
    assert cohort.variables["dx"].tolist() == ["patient", "control", None]
    assert cohort.ids["site"].tolist() == ["NYU", "NYU", ""]
    # The missingness report counts the stored subjects, the one without a row as missing.
    report = pd.read_csv(tmp_path / "s" / "reports" / "missingness_dataset-alpha.tsv", sep="\t")
    dx = report.set_index("variable").loc["dx"]
    assert (dx["n"], dx["n_missing"]) == (3, 1)
    # The table itself is read as written.
    assert read_phenotype(pheno, "alpha", load_catalogue(catalogue))["subject"].tolist() == [
        "101",
        "102",
    ]


def test_variables_the_catalogue_does_not_map_are_missing(tmp_path: Path, catalogue) -> None:
    """A store written with a catalogue mapping dx, read with one that does not map it for the
    dataset: dx is missing (pretraining used it as a target before)."""
    names = [f"roi{i}" for i in range(6)]
    qc = _relmats(tmp_path, 2, names, seed=1)
    pheno = read_phenotype(
        _pheno(tmp_path, ["101\tNYU\t240\t1\t1\t3", "102\tNYU\t300\t2\t2\t4"]), "alpha", catalogue
    )
    store = tmp_path / "store"
    write_connectomes(store, "toy", "alpha", qc, pheno)
    write_variables(store, "alpha", pheno, catalogue)
    assert load_cohort(store, "toy", ["alpha"], catalogue).variables["dx"].notna().sum() == 2
    without = tmp_path / "without.yaml"
    without.write_text(
        CATALOGUE.replace('      dx: {column: DX, map: {"1": patient, "2": control}}\n', "")
    )
    fewer = load_cohort(store, "toy", ["alpha"], load_catalogue(without))
    assert fewer.variables["dx"].isna().all() and fewer.variables["sex"].notna().sum() == 2


def test_every_bad_value_is_listed_in_one_error(tmp_path: Path, catalogue) -> None:
    """The reader stopped at the first bad cell: a file with 13 needed 13 runs to fix. One
    error lists the first 10 (row, column, value, rule) and counts the rest."""
    rows = [f"{101 + i}\tNYU\tabc\t7\t1\t3" for i in range(6)] + ["200\tNYU\t2400\t1\t1\t3"]
    p = _pheno(tmp_path, rows)
    with pytest.raises(InputDataError) as info:
        read_phenotype(p, "alpha", catalogue)
    message = info.value.message
    assert message.startswith(f"Phenotype file {p}: 13 value(s) the catalogue cannot read:")
    assert "row 2, column 'AGE_MONTHS', value 'abc': not a number" in message
    assert "row 2, column 'SEX', value '7': code not in the catalogue map" in message
    assert "row 6, column 'SEX', value '7'" in message  # rows in file order, 10 listed
    assert "row 7," not in message and "row 8," not in message
    assert message.endswith("... and 3 more")
    assert "range_midpoint" in info.value.hint and "Add the code to the map" in info.value.hint


def test_an_invalid_id_suggests_the_label_converters_write(tmp_path: Path, catalogue) -> None:
    """ABCD's NDAR_INV001 is NDARINV001 in the BIDS tree (converters drop '_' and '-'): the
    hint said only that labels are alphanumeric."""
    p = _pheno(tmp_path, ["NDAR_INV001\tA\t240\t1\t1\t3"])
    with pytest.raises(InputDataError, match=r"value 'NDAR_INV001': invalid BIDS 'sub' label") as e:
        read_phenotype(p, "alpha", catalogue)
    assert "converters write NDAR_INV001 as NDARINV001: write that in the phenotype" in e.value.hint


def test_an_invalid_id_of_no_scanned_subject_is_skipped(tmp_path: Path, catalogue, caplog) -> None:
    """A bad value in an unscanned row is read as missing, logged; an invalid ID in such a row
    stopped the whole store. It is left out, logged, when none of the labels it could be fixed
    to names a scanned subject (with its bad values); one that could still stops the store."""
    rows = [
        "NDAR_INV001\tA\tabc\t1\t1\t3",  # an unscanned row, with a bad value too
        "sub_02\tA\t240\t1\t1\t3",
        "03\tA\t240\t1\t1\t3",
        "4.0\tA\t240\t1\t1\t3",
    ]
    p = _pheno(tmp_path, rows)
    with caplog.at_level("WARNING", logger="lcm.store.phenotype"):
        got = read_phenotype(p, "alpha", catalogue, scanned={"03", "NDARINV002", "sub03"})
    assert got["subject"].tolist() == ["03"]
    assert "3 row(s) of" in caplog.text and "value 'NDAR_INV001'" in caplog.text
    # Could be a scanned subject once fixed: as written but '_', case aside, by number, or
    # without the 'sub_' prefix. Without `scanned`, every invalid ID stops.
    for scanned, value in [
        ({"NDARINV001"}, "NDAR_INV001"),
        ({"ndarinv001"}, "NDAR_INV001"),
        ({"004"}, "4.0"),
        ({"2"}, "sub_02"),
        (None, "NDAR_INV001"),
    ]:
        with pytest.raises(InputDataError, match=rf"value '{value}': invalid BIDS 'sub' label"):
            read_phenotype(p, "alpha", catalogue, scanned=scanned)
    # The prefix in another case (a sheet's SUB-003, Sub_005) names the scanned 003 and 005:
    # those rows were skipped as naming no one, and the subjects lost every variable.
    upper = _pheno(tmp_path, ["SUB-003\tA\t240\t1\t1\t3", "Sub_005\tA\t240\t1\t1\t3"], "u.tsv")
    with pytest.raises(InputDataError, match=r"2 bad participant ID") as info:
        read_phenotype(upper, "alpha", catalogue, scanned={"003", "005"})
    assert "value 'SUB-003': invalid BIDS 'sub' label: the prefix is not 'sub-'" in str(info.value)
    assert "write sub-003 (or 003)" in info.value.hint
    # No letter or digit to tell who it is: it stops.
    q = _pheno(tmp_path, ["?\tA\t240\t1\t1\t3", "03\tA\t240\t1\t1\t3"], "q.tsv")
    with pytest.raises(InputDataError, match=r"value '\?': invalid BIDS 'sub' label"):
        read_phenotype(q, "alpha", catalogue, scanned={"03"})


def test_ids_of_one_number_are_duplicates(tmp_path: Path, catalogue) -> None:
    """``1`` and ``001`` name one participant, as scans are matched to rows by number (and as
    ``sub-002`` and ``002`` already did): both rows were read, and either could take the other's
    scans. Labels that differ as numbers (``01`` and ``010``, ``0`` and ``00a``) stay apart.
    Rows alike in every value are one participant written twice, as rows of one label are: one
    is kept (``1`` and ``001`` alike were refused), unless the scans hold both labels."""
    rows = [
        "001\tA\t240\t1\t1\t3",
        "1\tA\t250\t1\t1\t3",
        "sub-0002\tA\t250\t1\t1\t3",
        "02\tA\t250\t2\t1\t3",
    ]
    p = _pheno(tmp_path, rows)
    with pytest.raises(InputDataError, match=r"2 bad participant ID\(s\)") as info:
        read_phenotype(p, "alpha", catalogue)
    listed = [line.strip() for line in info.value.message.splitlines()[1:]]
    assert listed == [
        "row 3, column 'SUB_ID', value '1': duplicate participant ID: row 2 has it ('001' and "
        "'1' name one participant: one number, leading zeros aside).",
        "row 5, column 'SUB_ID', value '02': duplicate participant ID: row 4 has it "
        "('sub-0002' and '02' name one participant: one number, leading zeros aside).",
    ]
    alike = _pheno(tmp_path, [rows[2], "02\tA\t250\t1\t1\t3", "1\tA\t99\t1\t1\t3"], "a.tsv")
    for scanned in (None, {"02", "1"}, {"0002"}):
        got = read_phenotype(alike, "alpha", catalogue, scanned=scanned)
        assert got["subject"].tolist() == ["0002", "1"], scanned
        assert got["age"].tolist() == pytest.approx([250 / 12, 99 / 12], rel=1e-9), scanned
    # sub-02 and sub-0002 scanned: two folders, two participants; each row is its own (their
    # rows stopped the store as one participant's, whatever their values).
    got = read_phenotype(alike, "alpha", catalogue, scanned={"02", "0002"})
    assert got["subject"].tolist() == ["0002", "02", "1"]
    apart = _pheno(tmp_path, [rows[0], rows[1]], "apart.tsv")  # 001 and 1, other ages
    got = read_phenotype(apart, "alpha", catalogue, scanned={"1", "001"})
    assert got.set_index("subject")["age"].to_dict() == pytest.approx({"001": 20, "1": 250 / 12})
    with pytest.raises(InputDataError, match=r"value '1': duplicate participant ID"):
        read_phenotype(apart, "alpha", catalogue, scanned={"001"})
    ids = ["01", "010", "1a", "01a", "0", "00a", "a0"]
    p = _pheno(tmp_path, [f"{i}\tA\t240\t1\t1\t3" for i in ids])
    assert read_phenotype(p, "alpha", catalogue)["subject"].tolist() == ids


def test_every_bad_participant_id_is_listed_in_one_error(tmp_path: Path, catalogue) -> None:
    """The reader stopped at the first bad participant ID: a table with several (spaces, a
    number a spreadsheet saved as 3.0, sub-01 beside 01 with other values) took one run each. One
    error lists every bad ID (row, value, what is wrong) before the bad values, with the fixes.
    A row without an ID is left out (test_blank_rows_and_rows_without_an_id_are_left_out)."""
    ids = ["sub-01", "1 02", "3.0", "01", "", "05", "sub 06", "05"]
    rows = [f"{i}\tNYU\t{240 + 10 * k}\t1\t1\t3" for k, i in enumerate(ids)]
    p = _pheno(tmp_path, [*rows, "07\tNYU\tabc\t1\t1\t3"])
    with pytest.raises(
        InputDataError, match=r"5 bad participant ID\(s\) in column 'SUB_ID' and 1 value\(s\)"
    ) as info:
        # Scanned: what the invalid IDs could be fixed to (those naming no scanned subject are
        # left out, logged: test_an_invalid_id_of_no_scanned_subject_is_skipped).
        read_phenotype(p, "alpha", catalogue, scanned={"01", "05", "07", "102", "3", "06"})
    message = info.value.message
    assert message.startswith(f"Phenotype file {p}: ")
    listed = [line.strip() for line in message.splitlines()[1:]]
    assert listed == [
        "row 3, column 'SUB_ID', value '1 02': invalid BIDS 'sub' label: expected letters and "
        "digits only.",
        "row 4, column 'SUB_ID', value '3.0': invalid BIDS 'sub' label: a number written as a "
        "decimal.",
        "row 5, column 'SUB_ID', value '01': duplicate participant ID: row 2 has it ('sub-01' "
        "and '01' name one participant).",
        "row 8, column 'SUB_ID', value 'sub 06': invalid BIDS 'sub' label: the prefix is not "
        "'sub-'.",
        "row 9, column 'SUB_ID', value '05': duplicate participant ID: row 7 has it.",
        "row 10, column 'AGE_MONTHS', value 'abc': not a number for continuous variable 'age'.",
    ]
    for fix in ("alphanumeric", "save it as text", "one row per participant", "sub-06 (or 06)"):
        assert fix in info.value.hint
    # Capped as bad values are: the first MAX_LISTED, then a count.
    many = _pheno(tmp_path, [f"s {i}\tNYU\t240\t1\t1\t3" for i in range(13)], "many.tsv")
    with pytest.raises(InputDataError, match=r"13 bad participant ID\(s\)") as info:
        read_phenotype(many, "alpha", catalogue)
    assert info.value.message.endswith("... and 3 more") and "row 11," in info.value.message
    assert "row 12," not in info.value.message


def test_bad_values_of_participants_without_connectomes_do_not_stop_the_store(
    tmp_path: Path, capsys
) -> None:
    """`lcm store` failed on a bad value in the row of a participant it stores nothing for (not
    scanned, or every run excluded): those read as missing, logged; a stored participant's bad
    value still stops it, also when the row matches its files by number (101 for 0000101)."""
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    qc = _relmats(tmp_path, 2, [f"roi{i}" for i in range(6)], seed=1)  # 101, 102; 999 excluded
    qc_path = tmp_path / "qc.tsv"
    qc.to_csv(qc_path, sep="\t", index=False)
    rows = ["101\tNYU\t240\t1\t1\t3", "102\tNYU\t300\t2\t2\t4", "500\tNYU\t240\t7\t1\t3"]
    pheno = _pheno(tmp_path, [*rows, "999\tNYU\tabc\t1\t1\t3"])
    args = ["store", "--dataset", "alpha", "--qc-table", str(qc_path), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(tmp_path / "s")]
    assert main(args) == 0
    log = capsys.readouterr().err
    assert "2 unreadable value(s)" in log and "rows of 2 participant(s) without connectomes" in log
    cohort = load_cohort(tmp_path / "s", "toy", ["alpha"], load_catalogue(catalogue))
    assert cohort.variables["sex"].tolist() == ["M", "F"]
    # A stored participant's bad value stops it, naming the row.
    pheno = _pheno(tmp_path, ["101\tNYU\t240\t7\t1\t3", *rows[1:]], name="bad.tsv")
    args[args.index("--phenotype") + 1] = str(pheno)
    assert main(args) == 3
    assert "row 2, column 'SEX', value '7'" in capsys.readouterr().err
    with pytest.raises(InputDataError, match=r"row 2, column 'SEX', value '7'"):
        read_phenotype(pheno, "alpha", load_catalogue(catalogue), scanned={"0000101"})


def _two_subject_store(tmp_path: Path, store: Path, catalogue) -> Path:
    """Dataset alpha of two subjects written to ``store``; its variables partition."""
    qc = _relmats(tmp_path, 2, [f"roi{i}" for i in range(6)], seed=1)
    rows = ["101\tNYU\t240\t1\t1\t3", "102\tNYU\t300\t2\t2\t4"]
    pheno = read_phenotype(_pheno(tmp_path, rows), "alpha", catalogue)
    write_connectomes(store, "toy", "alpha", qc, pheno)
    return write_variables(store, "alpha", pheno, catalogue)


@pytest.mark.parametrize(
    ("given", "stored_as"),
    [
        # A kind changed to numbers: a bare "could not convert string to float" before.
        (
            "sex: {kind: continuous, domain: sociodemographic}",
            r"kind 'binary', levels \['F', 'M'\]; the catalogue .* defines kind "
            r"'continuous', levels \[\]",
        ),
        # Levels renamed: the stored "F"/"M" were read as levels the catalogue no longer has.
        (
            "sex: {kind: binary, domain: sociodemographic, levels: [female, male]}",
            r"kind 'binary', levels \['F', 'M'\]; the catalogue .* defines kind 'binary', "
            r"levels \['female', 'male'\]",
        ),
    ],
)
def test_stored_variables_are_checked_against_the_given_catalogue(
    tmp_path: Path, catalogue, given: str, stored_as: str
) -> None:
    """The variables partition holds the catalogue it was written with: read with a catalogue
    that gives a variable another kind or other levels, the reader refuses, naming the
    partition, the variable, both definitions and the fix."""
    store = tmp_path / "store"
    out = _two_subject_store(tmp_path, store, catalogue)
    other = tmp_path / "other.yaml"
    other.write_text(
        CATALOGUE.replace(
            "sex: {kind: binary, domain: sociodemographic, levels: [F, M]}", given
        ).replace('sex: {column: SEX, map: {"1": M, "2": F}}', "sex: SEX")
    )
    with pytest.raises(
        InputDataError, match=rf"variable 'sex' of dataset 'alpha' .*{stored_as}"
    ) as e:
        load_cohort(store, "toy", ["alpha"], load_catalogue(other))
    assert e.value.message.startswith(f"{out}: ")
    assert f"--catalogue {other}" in e.value.hint and "lcm store --dataset alpha" in e.value.hint
    # Reordered levels are the same levels: the stored values read as before.
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(CATALOGUE.replace("levels: [F, M]", "levels: [M, F]"))
    got = load_cohort(store, "toy", ["alpha"], load_catalogue(reordered))
    assert got.variables["sex"].tolist() == ["M", "F"]


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (
            "units: years, range: [5, 22]",
            r"has 1 stored value\(s\) outside the catalogue's range \[5, 22\] ",
        ),
        ("units: months, range: [5, 100]", r"was stored in units 'years'; the catalogue gives"),
    ],
)
def test_a_variable_stored_in_other_units_or_range_is_refused(
    tmp_path: Path, catalogue, given: str, said: str
) -> None:
    """A catalogue of age in [5, 30] pretrained on stored ages 22-90, and its checkpoint
    recorded that range beside them: the catalogue checks of finetune and embed then passed on
    a record that did not describe the data. A wider range reads as before."""
    store = tmp_path / "store"
    _two_subject_store(tmp_path, store, catalogue)  # ages 20 and 25, years
    other = tmp_path / "other.yaml"
    other.write_text(CATALOGUE.replace("units: years, range: [5, 100]", given))
    with pytest.raises(InputDataError, match=rf"variable 'age' of dataset 'alpha' {said}"):
        load_cohort(store, "toy", ["alpha"], load_catalogue(other))
    wider = tmp_path / "wider.yaml"
    wider.write_text(CATALOGUE.replace("range: [5, 100]}", "range: [0, 120]}", 1))
    assert load_cohort(store, "toy", ["alpha"], load_catalogue(wider)).variables[
        "age"
    ].tolist() == (pytest.approx([20.0, 25.0]))


def test_a_partition_without_its_catalogue_is_checked_by_column_type(
    tmp_path: Path, catalogue
) -> None:
    """A variables partition written without LCM has no `lcm.catalogue`: a text column read as
    a numeric variable is refused by its type (a bare float conversion error before)."""
    store = tmp_path / "store"
    out = _two_subject_store(tmp_path, store, catalogue)
    pq.write_table(pq.read_table(out).replace_schema_metadata(None), out)
    assert load_cohort(store, "toy", ["alpha"], catalogue).variables["sex"].tolist() == ["M", "F"]
    other = tmp_path / "other.yaml"
    other.write_text(
        CATALOGUE.replace(
            "sex: {kind: binary, domain: sociodemographic, levels: [F, M]}",
            "sex: {kind: continuous, domain: sociodemographic}",
        ).replace('sex: {column: SEX, map: {"1": M, "2": F}}', "sex: SEX")
    )
    with pytest.raises(InputDataError, match=r"'sex' of dataset 'alpha' was stored as a text"):
        load_cohort(store, "toy", ["alpha"], load_catalogue(other))


def test_blank_rows_and_rows_without_an_id_are_left_out(tmp_path: Path, catalogue, caplog) -> None:
    """A master sheet's trailing blank lines (an Excel export writes them as rows of empty
    cells) and a row without an ID stopped the store ("empty participant ID"), though no run can
    be theirs. Blank rows are dropped, counted (INFO); a row with values but no ID is dropped
    with a WARNING naming its line, as a spreadsheet numbers it, and the fix. Line numbers count
    a blank line in the middle too (a bad value after it is named by its own line)."""
    p = tmp_path / "pheno.tsv"
    p.write_text(
        "SUB_ID\tSITE\tAGE_MONTHS\tSEX\tDX\tEDU\n"
        "101\tNYU\t240\t1\t1\t3\n"  # line 2
        "\n"  # line 3: blank, skipped by pandas (and its line lost) before
        "\tNYU\t250\t2\t1\t3\n"  # line 4: values, no ID
        "102\tNYU\t300\t2\t2\t4\n"  # line 5
        "\t\t\t\t\t\n"  # line 6: Excel's trailing rows
        "n/a\t\t\t\t\t\n"
    )
    with caplog.at_level("INFO", logger="lcm.store.phenotype"):
        got = read_phenotype(p, "alpha", catalogue, scanned={"101", "102"})
    assert got["subject"].tolist() == ["101", "102"]
    assert got["age"].tolist() == pytest.approx([20.0, 25.0])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "line 4" in warnings[0] and str(p) in warnings[0] and "SUB_ID" in warnings[0]
    assert "participant ID" in warnings[0] and "delete" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("3 blank row(s)" in m for m in infos), infos
    # Without `scanned` too: a row without an ID can be no participant's.
    assert read_phenotype(p, "alpha", catalogue)["subject"].tolist() == ["101", "102"]
    # The bad value of a stored subject after a blank line: its own line (6), not 5.
    q = tmp_path / "q.tsv"
    q.write_text(
        "SUB_ID\tSITE\tAGE_MONTHS\tSEX\tDX\tEDU\n101\tNYU\t240\t1\t1\t3\n\n\n"
        "102\tNYU\tabc\t2\t2\t4\n"
    )
    with pytest.raises(InputDataError, match=r"row 5, column 'AGE_MONTHS', value 'abc'"):
        read_phenotype(q, "alpha", catalogue, scanned={"101", "102"})


def test_duplicate_ids_stop_the_store_only_for_stored_subjects(
    tmp_path: Path, catalogue, caplog
) -> None:
    """An ID entered twice for someone outside the imaging cohort stopped the store; nothing LCM
    stores comes from those rows. Those rows are left out (their values are ambiguous), with a
    WARNING naming the ID and its lines. A stored subject's two rows that differ stay an error
    naming the subject, both lines and the fix; identical rows are one participant written twice
    (the values are not ambiguous): one is kept."""
    rows = [
        "101\tNYU\t240\t1\t1\t3",  # line 2
        "500\tNYU\t240\t1\t1\t3",  # line 3: not scanned
        "102\tNYU\t300\t2\t2\t4",  # line 4
        "0500\tNYU\t260\t2\t1\t3",  # line 5: 500 again (one number), other values
        "sub-101\tNYU\t240\t1\t1\t3",  # line 6: 101 again, identical
    ]
    p = _pheno(tmp_path, rows)
    with caplog.at_level("INFO", logger="lcm.store.phenotype"):
        got = read_phenotype(p, "alpha", catalogue, scanned={"101", "102"})
    assert got["subject"].tolist() == ["101", "102"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "'500'" in warnings[0] and "lines 3, 5" in warnings[0] and str(p) in warnings[0]
    assert "without connectomes" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert any("'101'" in m and "lines 2, 6" in m and "identical" in m for m in infos), infos
    # A stored subject's differing rows: the error names it, both lines, and the fix.
    q = _pheno(tmp_path, [*rows[:4], "sub-101\tNYU\t250\t1\t1\t3"], "q.tsv")
    with pytest.raises(
        InputDataError, match=r"row 6, column 'SUB_ID', value 'sub-101': duplicate participant "
    ) as info:
        read_phenotype(q, "alpha", catalogue, scanned={"101", "102"})
    assert "row 2 has it" in info.value.message and "'500'" not in info.value.message
    assert "one row per participant" in info.value.hint
    # Matched by number as the scans are (files 0000500): 500's rows are a stored subject's.
    with pytest.raises(InputDataError, match=r"value '0500': duplicate participant ID"):
        read_phenotype(p, "alpha", catalogue, scanned={"101", "102", "0000500"})
    # Without `scanned`, every row counts: a differing duplicate stops; identical ones do not.
    with pytest.raises(InputDataError, match=r"value '0500': duplicate participant ID"):
        read_phenotype(p, "alpha", catalogue)
    same = _pheno(tmp_path, [rows[0], rows[4]], "same.tsv")
    assert read_phenotype(same, "alpha", catalogue)["subject"].tolist() == ["101"]


def test_lcm_store_reads_a_master_sheet(tmp_path: Path, monkeypatch, capsys) -> None:
    """`lcm store` run from the user's own folder on a study's master sheet: people never
    scanned, one of them entered twice, a stored subject entered twice alike, a row without an
    ID and Excel's trailing blank rows. It stores the cohort's variables, once each, and logs
    what it left out; a stored subject's two differing rows stop it (exit 3), naming them."""
    study = tmp_path / "study"
    study.mkdir()
    monkeypatch.chdir(study)
    (study / "variables.yaml").write_text(CATALOGUE)
    _relmats(study, 2, [f"roi{i}" for i in range(6)], seed=1).to_csv(
        study / "qc.tsv", sep="\t", index=False
    )  # 101, 102 stored; 999's run excluded
    header = "SUB_ID\tSITE\tAGE_MONTHS\tSEX\tDX\tEDU\n"
    sheet = [
        "101\tNYU\t240\t1\t1\t3",
        "102\tNYU\t300\t2\t2\t4",
        "700\tNYU\t240\t1\t1\t3",  # never scanned, twice
        "999\tNYU\t250\t2\t1\t3",  # its run excluded, twice
        "700\tNYU\t260\t2\t2\t3",
        "999\tNYU\t255\t2\t1\t3",
        "102\tNYU\t300\t2\t2\t4",  # identical
        "\tNYU\t270\t1\t1\t3",  # no ID (line 9)
        "\t\t\t\t\t",
        "\t\t\t\t\t",
    ]
    (study / "participants.tsv").write_text(header + "\n".join(sheet) + "\n")
    args = ["store", "--dataset", "alpha", "--qc-table", "qc.tsv", "--phenotype"]
    args += ["participants.tsv", "--catalogue", "variables.yaml", "--atlas", "toy"]
    args += ["--store-dir", "store"]
    assert main(args) == 0
    log = capsys.readouterr().err
    assert "line 9" in log and "'700'" in log and "'999'" in log and "lines 4, 6" in log
    # The variables partition holds the cohort and nobody's ambiguous rows.
    stored = pq.read_table(variables_path(study / "store", "alpha")).to_pandas()
    assert sorted(stored["subject"]) == ["101", "102"]
    cohort = load_cohort(study / "store", "toy", ["alpha"], load_catalogue("variables.yaml"))
    assert cohort.variables["sex"].tolist() == ["M", "F"]
    (study / "participants.tsv").write_text(
        header + "\n".join([*sheet[:6], "102\tNYU\t310\t2\t2\t4"]) + "\n"
    )
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "row 8, column 'SUB_ID', value '102': duplicate participant ID: row 3 has it" in err
    assert "participants.tsv" in err and "value '700'" not in err


def test_lcm_store_keeps_sub_1_and_sub_001_apart(tmp_path: Path, monkeypatch) -> None:
    """A release holding both sub-1 and sub-001 (two folders): their phenotype rows stopped the
    store as one participant written twice. Each run now gets its own row's values."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "variables.yaml").write_text(CATALOGUE)
    qc = _relmats(tmp_path, 2, [f"roi{i}" for i in range(6)], seed=1)
    qc["subject"] = qc["subject"].replace({"101": "1", "102": "001"})
    qc["run_key"] = qc["run_key"].str.replace("sub-101", "sub-1").str.replace("sub-102", "sub-001")
    qc.to_csv("qc.tsv", sep="\t", index=False)
    sheet = ["1\tNYU\t240\t1\t1\t3", "001\tNYU\t600\t2\t2\t4"]
    Path("participants.tsv").write_text(
        "SUB_ID\tSITE\tAGE_MONTHS\tSEX\tDX\tEDU\n" + "\n".join(sheet)
    )
    args = ["store", "--dataset", "alpha", "--qc-table", "qc.tsv", "--phenotype"]
    args += ["participants.tsv", "--catalogue", "variables.yaml", "--atlas", "toy"]
    assert main([*args, "--store-dir", "store"]) == 0
    cohort = load_cohort(tmp_path / "store", "toy", ["alpha"], load_catalogue("variables.yaml"))
    got = dict(zip(cohort.ids["subject"], cohort.variables["sex"], strict=True))
    assert got == {"1": "M", "001": "F"}


def test_lcm_store_warns_of_a_variable_constant_or_missing_in_every_participant(
    tmp_path: Path, capsys
) -> None:
    """A dataset whose AGE_MONTHS was 240 for everyone and whose EDU column was empty was
    stored without a word: pretraining then dropped both, and the store's report did not say
    why."""
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(CATALOGUE)
    qc_path = tmp_path / "qc.tsv"
    _relmats(tmp_path, 3, [f"roi{i}" for i in range(6)], seed=1).to_csv(
        qc_path, sep="\t", index=False
    )
    rows = ["101\tNYU\t240\t1\t1\tn/a", "102\tNYU\t240\t2\t2\tn/a", "103\tNYU\t240\t1\t2\t"]
    pheno = _pheno(tmp_path, rows, "flat.tsv")
    args = ["store", "--dataset", "alpha", "--qc-table", str(qc_path), "--phenotype", str(pheno)]
    args += ["--catalogue", str(catalogue), "--atlas", "toy", "--store-dir", str(tmp_path / "s")]
    assert main(args) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    said = {name: [w for w in warned if f"variable {name!r}" in w] for name in ("age", "edu")}
    assert "column 'AGE_MONTHS' of " + str(pheno) in said["age"][0]
    assert "a single value (constant: 20)" in said["age"][0]
    assert "column 'EDU' of " + str(pheno) in said["edu"][0]
    assert "every value missing" in said["edu"][0]
    assert not [w for w in warned if "'sex'" in w or "'dx'" in w]  # these vary
    report = pd.read_csv(
        tmp_path / "s" / "reports" / "missingness_dataset-alpha.tsv",
        sep="\t",
        keep_default_na=False,
    ).set_index("variable")
    assert report.loc["age", "problem"] == "a single value (constant: 20)"
    assert report.loc["edu", "problem"] == "every value missing"
    assert (report.loc["sex", "problem"], report.loc["sex", "n_distinct"]) == ("", 2)
