"""A listing row without a path is refused naming its line, not excluded as its folder.

An empty ``path`` cell (a row cut short, a blank cell) was joined to the listing's folder: the
run was excluded as "<folder> listed in listing.tsv does not exist", of a folder that exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.bids.file_entries import listing_stats, read_listing
from lcm.exceptions import InputDataError


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("participant_id\tpath\n01\tsub-01.tsv\n02\t", [3]),
        ("participant_id\tpath\n01\t \n02\tsub-02.tsv\n03\t\n", [2, 4]),
        ("participant_id\tpath\tsession\n01\t\t1\n", [2]),
    ],
    ids=["cut-last-row", "blank-cells", "empty-between"],
)
def test_an_empty_path_cell_is_refused_naming_its_line(
    tmp_path: Path, text: str, lines: list[int]
) -> None:
    listing = tmp_path / "listing.tsv"
    listing.write_text(text)
    with pytest.raises(InputDataError) as caught:
        read_listing(listing)
    assert f"listing.tsv: line(s) {lines} give no path" in str(caught.value)
    # The workflow's change detection still reads it (ingest reports the refusal).
    assert listing_stats(listing)[0] == text


def test_a_listing_with_every_path_reads(tmp_path: Path) -> None:
    listing = tmp_path / "listing.tsv"
    listing.write_text("participant_id\tpath\n01\tsub-01.tsv\n02\tsub-02.tsv\n")
    assert read_listing(listing)["path"].tolist() == ["sub-01.tsv", "sub-02.tsv"]
