"""Labels tables whose numbers a spreadsheet wrote for people: ``1,001``, ``1.001``, ``1,0``.

The index (and ``x``, ``y``, ``z``) of a labels table saved by Excel with "Use 1000 Separator"
or a European locale is text to a reader. It was refused as lacking an integer index with the
fix to write one, which the file seems to do; under a header such as ``id`` it was not read as
the index at all, and the names were paired with the image's labels by rank: on the wrong
regions. Each is refused naming the file, with the re-save of ROI tables' check
(:mod:`lcm.io.csv_dialect`); an index outside the image's labels (negative, past 2^31) is
refused too, and a stray tab after a name is whitespace, as a trailing space is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.atlas import label_image
from helpers.pandas_fix import run_pandas_fix

from lcm.atlas import load_atlas
from lcm.cli import main
from lcm.exceptions import AtlasError

NBSP = "\u00a0"
LABELS = [1, 7, 1001]


def _table(root: Path, text: str) -> Path:
    path = root / "atlas.tsv"
    path.write_text(text, encoding="utf-8")
    return path


GROUPED = {
    "quoted-comma": ('index\tname\n1\tA\n7\tB\n"1,001"\tC\n', "thousands separators ('1,001')"),
    "comma": ("index\tname\n1\tA\n7\tB\n1,001\tC\n", "thousands separators ('1,001')"),
    "space": ("index\tname\n1\tA\n7\tB\n1 001\tC\n", "thousands separators ('1 001')"),
    # German Excel: an integer's point is a thousands separator (1.001 is no label value).
    "point": ("index\tname\n1\tA\n7\tB\n1.001\tC\n", "thousands separators ('1.001')"),
    "nbsp": (f"index\tname\n1\tA\n7\tB\n1{NBSP}001\tC\n", "thousands separators"),
    "headerless": ("1\tA\n7\tB\n1,001\tC\n", "thousands separators ('1,001')"),
    "headerless-first": ("1,001\tC\n1\tA\n7\tB\n", "thousands separators ('1,001')"),
    "space-separated": ("1 A\n7 B\n1,001 C\n", "thousands separators ('1,001')"),
    "id-column": ("id\tname\n7\tB\n1\tA\n1,001\tC\n", "thousands separators ('1,001')"),
    "decimal-commas": ("index\tname\n1,0\tA\n7,0\tB\n1001,0\tC\n", "decimal commas ('1,0')"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("with_image", [True, False], ids=["image", "labels-only"])
@pytest.mark.parametrize("text, said", GROUPED.values(), ids=GROUPED.keys())
def test_an_index_written_with_separators_is_refused_with_a_resave(
    tmp_path, text, said, with_image
) -> None:
    """Before: 'lack an integer index', or (under ``id``, space-separated) names by rank."""
    path = _table(tmp_path, text)
    img = label_image(tmp_path, LABELS) if with_image else None
    with pytest.raises(AtlasError, match=r"no thousands separators") as caught:
        load_atlas("mine", img, str(path))
    message = str(caught.value)
    assert f"Labels table {path}" in message and said in message
    # The fix, as worded, makes a table that loads with every name on its own label.
    run_pandas_fix(path, caught.value.one_line())
    atlas = load_atlas("mine", img, str(path))
    assert dict(zip(atlas.labels["index"], atlas.roi_names, strict=True)) == {
        1: "A",
        7: "B",
        1001: "C",
    }


@pytest.mark.hostile
def test_coordinates_with_decimal_commas_are_refused_with_a_resave(tmp_path: Path) -> None:
    path = _table(tmp_path, "index\tname\tx\ty\tz\n1\tA\t1,5\t2\t3\n7\tB\t-2,5\t4\t5\n")
    with pytest.raises(AtlasError, match=r"decimal commas \('-2,5'\)") as caught:
        load_atlas("mine", labels=str(path))
    run_pandas_fix(path, caught.value.one_line())
    atlas = load_atlas("mine", labels=str(path))
    assert atlas.labels["x"].tolist() == [1.5, -2.5]


@pytest.mark.hostile
@pytest.mark.parametrize("index", ["-4", "1e20", "2147483648"])
def test_an_index_no_label_image_can_hold_is_refused(tmp_path: Path, index: str) -> None:
    """Before: a labels-only atlas kept ROI -4 (or -9223372036854775808, 1e20 cast to int64)."""
    path = _table(tmp_path, f"index\tname\n1\tA\n7\tB\n1001\tC\n{index}\tD\n")
    for img in (label_image(tmp_path, LABELS), None):
        with pytest.raises(AtlasError, match=rf"row\(s\) \[4\] .*\['{index}'\]") as caught:
            load_atlas("mine", img, str(path))
        assert str(path) in str(caught.value)
        assert "0 (the background) or positive integers" in str(caught.value)
        assert "Renumber" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "text",
    [
        "index\tname\n1\tA\n7\tB\n1001\tC\n",
        "index\tname\n1.0\tA\n7.0\tB\n1001.0\tC\n",
        "1.0\tA\n7.0\tB\n1001.0\tC\n",
        "1.0 A\n7.0 B\n1001.0 C\n",
        "id\tname\n1.0\tA\n7.0\tB\n1001.0\tC\n",
        "index\tname\n 1 \t A \n7\tB\t\n1001\tC \t\n",
    ],
    ids=["int", "float", "float-headerless", "float-spaces", "float-id", "stray-whitespace"],
)
def test_integral_floats_and_stray_whitespace_are_the_same_table(tmp_path, text) -> None:
    """nilearn reads label values as numbers: ``1.0`` is label 1, in every form of table; a
    tab after a name is whitespace, stripped as a space is (before: a pandas tokenizing error)."""
    path = _table(tmp_path, text)
    for img in (label_image(tmp_path, LABELS), None):
        atlas = load_atlas("mine", img, str(path))
        assert atlas.labels["index"].tolist() == [1, 7, 1001]
        assert atlas.roi_names == ["A", "B", "C"]


@pytest.mark.hostile
def test_a_row_with_a_cell_more_names_its_line_and_the_fix(tmp_path: Path) -> None:
    """Two tabs between an index and its name: pandas said 'Expected 2 fields in line 3' of the
    lines left once comments were dropped, with no fix."""
    path = _table(tmp_path, "# my atlas\nindex\tname\n1\tA\n7\t\tB\n1001\tC\n")
    with pytest.raises(
        AtlasError, match=r"line 4 has 3 tab-separated cells, the first line 2"
    ) as info:
        load_atlas("mine", labels=str(path))
    assert str(path) in str(info.value) and "stray tab" in (info.value.hint or "")


@pytest.mark.hostile
def test_the_atlases_verb_refuses_a_grouped_index_naming_the_file(tmp_path, capsys) -> None:
    path = _table(tmp_path, 'index\tname\n1\tA\n7\tB\n"1,001"\tC\n')
    argv = ["atlases", "--atlas", "mine", "--atlas-path", label_image(tmp_path, LABELS)]
    assert main([*argv, "--atlas-labels", str(path)]) != 0
    err = capsys.readouterr().err
    assert f"Labels table {path} writes its numbers with thousands separators" in err
    assert "thousands=','" in err
