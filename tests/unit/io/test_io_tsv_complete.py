"""lcm.io.tsv_complete: a TSV written by lcm.io.atomic.write_tsv is whole; cut short, refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.exceptions import InputDataError
from lcm.io.atomic import write_tsv
from lcm.io.tsv_complete import check_complete

# Both of write_tsv's ways: its own float text (lcm.io.tsv.frame_tsv) and pandas' to_csv, the
# latter with cells pandas quotes (a tab, a newline, a quote) and a missing one (n/a).
_FRAMES = {
    "floats": pd.DataFrame(np.arange(12.0).reshape(4, 3) / 7, columns=["a", "b", "c"]),
    "quoted": pd.DataFrame(
        {
            "name": ["plain", "a\ttab", "two\nlines", 'a "quote"'],
            "value": [1.5, np.nan, 3.0, 4.0],
            "last": ["x", "", "y\tz", "w"],
        }
    ),
}


@pytest.mark.parametrize("frame", list(_FRAMES))
def test_a_table_write_tsv_wrote_is_whole(tmp_path: Path, frame: str) -> None:
    path = tmp_path / "t.tsv"
    write_tsv(path, _FRAMES[frame])
    assert path.read_bytes().endswith(b"\n")
    check_complete(path, "table", "lcm x")  # raises nothing
    assert len(pd.read_csv(path, sep="\t")) == 4


def test_a_header_alone_or_an_empty_file_is_not_cut(tmp_path: Path) -> None:
    write_tsv(tmp_path / "h.tsv", _FRAMES["quoted"].iloc[:0])
    (tmp_path / "e.tsv").write_bytes(b"")
    for name in ("h.tsv", "e.tsv"):
        check_complete(tmp_path / name, "table", "lcm x")


@pytest.mark.parametrize("frame", list(_FRAMES))
def test_a_table_cut_mid_row_is_refused_with_its_fix(tmp_path: Path, frame: str) -> None:
    path = tmp_path / "t.tsv"
    write_tsv(path, _FRAMES[frame])
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(InputDataError, match=r"history table .*t\.tsv is cut short \(") as e:
        check_complete(path, "history table", "lcm pretrain")
    assert e.value.hint.startswith("Rerun lcm pretrain, which writes the table again; or copy")
    assert "(a table you edited by hand: end its last row with a newline)" in e.value.hint


def test_a_short_row_is_named_by_its_line(tmp_path: Path) -> None:
    """A quoted newline is not a row's end: the short row, the fourth, is the file's sixth line."""
    path = tmp_path / "t.tsv"
    write_tsv(path, _FRAMES["quoted"])
    head, last = path.read_text().rstrip("\n").rsplit("\n", 1)
    path.write_text(f"{head}\n{last.split(chr(9))[0]}\n")
    with pytest.raises(InputDataError, match=r"\(line 6 has fewer fields than its header\)"):
        check_complete(path, "table", "lcm x")
