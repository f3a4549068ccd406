"""One reader of labels tables, with an image or without: columns by header name.

A table gives the same regions whether or not its image is given: a header is read by its
column names (``index``, ``name`` or XCP-D's ``label``, in any order), headerless rows as
``<index><TAB><name>``, nilearn's label lists (one name per line, ``Background`` first) by
rank; a first column without a header (pandas' index) is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers.atlas import label_image, with_and_without_image

from lcm.atlas import load_atlas
from lcm.exceptions import AtlasError

NAMES = ["Frontal Pole", "B", "C"]
LABELS = [1, 7, 42]


@pytest.mark.parametrize(
    "table",
    [
        "index\tname\n1\tFrontal Pole\n7\tB\n42\tC\n",
        "index\tcolor\tname\n1\t00000b\tFrontal Pole\n7\t000016\tB\n42\t000021\tC\n",
        "name\tindex\nFrontal Pole\t1\nB\t7\nC\t42\n",
        "index\themi\tname\n1\tL\tFrontal Pole\n7\tR\tB\n42\tL\tC\n",
        "index\tlabel\tnetwork_label\n1\tFrontal Pole\tVis\n7\tB\tVis\n42\tC\tDMN\n",
        "0\tBackground\n1\tFrontal Pole\n7\tB\n42\tC\n",
        "1.0\tFrontal Pole\n7.0\tB\n42.0\tC\n",
        "label\tname\n42\tC\n1\tFrontal Pole\n7\tB\n",
        "ID\tName\tHemisphere\n7\tB\tR\n1\tFrontal Pole\tL\n42\tC\tL\n",
        "roi\tlabel\tname\tsize\n1\tFP\tFrontal Pole\t10\n7\tb\tB\t5\n42\tc\tC\t8\n",
    ],
    ids=[
        "index-name",
        "color-first",
        "name-first",
        "hemi-mid",
        "xcpd-label",
        "no-header",
        "float-index-no-header",
        "label-name-unsorted",
        "id-name",
        "mist-roi",
    ],
)
def test_a_table_names_the_same_regions_with_and_without_its_image(tmp_path, table) -> None:
    with_image, labels_only = with_and_without_image(tmp_path, "atlas.tsv", table, LABELS)
    assert with_image.roi_names == labels_only.roi_names == NAMES
    assert with_image.labels["index"].tolist() == [1, 7, 42]
    assert labels_only.labels["index"].tolist() == [1, 7, 42]


@pytest.mark.parametrize(
    "table",
    [
        "name\tvolume\nFrontal Pole\t10\nB\t5\nC\t8\n",
        "value\tid\tname\n1\t3\tFrontal Pole\n7\t2\tB\n42\t1\tC\n",
    ],
    ids=["unknown-numbers", "two-candidates"],
)
def test_numbers_that_may_be_the_labels_are_never_paired_by_rank(tmp_path, table) -> None:
    """A table whose label values stood under another header than 'index' was read as a list
    of names, paired with the image's labels in ascending order: names on the wrong regions."""
    (tmp_path / "atlas.tsv").write_text(table)
    for img in (label_image(tmp_path, LABELS), None):
        with pytest.raises(AtlasError, match=r"names no 'index' column, but column") as info:
            load_atlas("mine", img, str(tmp_path / "atlas.tsv"))
        assert "Name the column of label values 'index'" in (info.value.hint or "")


def test_a_pandas_index_column_is_refused_with_the_fix(tmp_path: Path) -> None:
    """pandas' to_csv with its index: the unnamed first column is row numbers, not labels."""
    table = "\tindex\tname\n0\t1\tFrontal Pole\n1\t7\tB\n2\t42\tC\n"
    (tmp_path / "atlas.tsv").write_text(table)
    for img in (label_image(tmp_path, LABELS), None):
        with pytest.raises(AtlasError, match=r"(?s)first column has no header.*index=False"):
            load_atlas("mine", img, str(tmp_path / "atlas.tsv"))


def test_a_header_without_a_name_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "atlas.tsv").write_text("index\tregion\n1\tA\n7\tB\n42\tC\n")
    for img in (label_image(tmp_path, LABELS), None):
        with pytest.raises(AtlasError, match=r"header 'index\\tregion' names no"):
            load_atlas("mine", img, str(tmp_path / "atlas.tsv"))


@pytest.mark.parametrize("header", ["index\tname\n", "index\tname", "name\n"])
def test_a_header_alone_is_refused_as_holding_no_rows(tmp_path: Path, header: str) -> None:
    """A labels file cut short after its first line said "0 row(s) without a name (0 rows)"."""
    (tmp_path / "atlas.tsv").write_text(header)
    for img in (label_image(tmp_path, LABELS), None):
        with pytest.raises(AtlasError, match=r"atlas.tsv holds no rows \(its first line") as e:
            load_atlas("mine", img, str(tmp_path / "atlas.tsv"))
        assert "below the header" in e.value.hint


def test_a_float_index_without_a_header_keeps_its_first_row(tmp_path: Path) -> None:
    """``1.0`` is a number: the first row is a region, not a header dropped silently."""
    (tmp_path / "atlas.tsv").write_text("1.0\tA\n7.0\tB\n")
    atlas = load_atlas("mine", labels=str(tmp_path / "atlas.tsv"))
    assert atlas.roi_names == ["A", "B"]
    (tmp_path / "atlas.tsv").write_text("1.5\tA\n7\tB\n")
    with pytest.raises(AtlasError, match=r"lack an integer index \(received \['1.5'\]\)"):
        load_atlas("mine", labels=str(tmp_path / "atlas.tsv"))


def test_an_error_names_the_line_read_as_the_header(tmp_path: Path) -> None:
    (tmp_path / "atlas.tsv").write_text("index\tname\nx\tA\n7\tB\n")
    with pytest.raises(AtlasError, match=r"first line 'index\\tname' read as the header"):
        load_atlas("mine", labels=str(tmp_path / "atlas.tsv"))


@pytest.mark.parametrize("background", ["Background\n", "background\n", ""])
def test_a_nilearn_label_list_drops_its_background(tmp_path, background, caplog) -> None:
    """One name per line, as nilearn's fetchers give (names with spaces); with an image the
    names go to the image's labels in ascending order, as NiftiLabelsMasker pairs them."""
    table = background + "\n".join(NAMES) + "\n"
    with caplog.at_level(logging.INFO, logger="lcm.atlas.files"):
        with_image, labels_only = with_and_without_image(tmp_path, "atlas.tsv", table, LABELS)
    assert with_image.roi_names == labels_only.roi_names == NAMES
    assert with_image.labels["index"].tolist() == [1, 7, 42]
    assert labels_only.labels["index"].tolist() == [1, 2, 3]
    assert ("is the background" in caplog.text) == bool(background)


def test_a_label_list_of_another_count_is_refused_with_the_form(tmp_path: Path) -> None:
    (tmp_path / "atlas.tsv").write_text("Background\nA\nB\n")
    with pytest.raises(AtlasError, match=r"list of 2 names without indices.*holds 3 labels"):
        load_atlas("mine", label_image(tmp_path, LABELS), str(tmp_path / "atlas.tsv"))


@pytest.mark.parametrize(
    ("text", "more"),
    [("hello, I am text\n", "Z\n"), ("index\tname\n1\tA\n", "2\tZ\n"), ("Background\nA\n", "Z\n")],
)
def test_a_labels_file_alone_naming_one_region_is_refused(
    tmp_path: Path, text: str, more: str
) -> None:
    """One name per line is a labels table, so a one-line text file given by mistake was an
    atlas of one region named by its line; a connectome needs two regions or more."""
    (tmp_path / "notes.txt").write_text(text)
    with pytest.raises(AtlasError, match=r"notes\.txt names one region \('(hello|A)") as e:
        load_atlas("mine", labels=str(tmp_path / "notes.txt"))
    assert "one row per region" in e.value.hint
    (tmp_path / "notes.txt").write_text(text + more)  # two regions: an atlas
    assert load_atlas("mine", labels=str(tmp_path / "notes.txt")).n_rois == 2
