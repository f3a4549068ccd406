"""written_together: after a failed block, the outputs are the previous files, byte for byte."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import lcm.io.output_set as output_set
from lcm.io.atomic import write_text
from lcm.io.output_set import previous_path, written_together


def _fail_at_second(a: Path, b: Path) -> None:
    with written_together([a, b, None]) as written:
        write_text(a, "new a")
        written.append(a)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(b))


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_failed_block_puts_the_previous_files_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog, hard_links: bool
) -> None:
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("old a")
    b.write_text("old b")
    if not hard_links:  # a file system without them: the previous files are moved aside

        def no_link(*args: object) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(output_set.os, "link", no_link)
    with pytest.raises(OSError, match="No space left"):
        _fail_at_second(a, b)
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "b.tsv"]
    assert "this run's a.tsv removed; the earlier run's a.tsv, b.tsv put back" in caplog.text


def test_a_block_that_succeeds_keeps_the_new_files_only(tmp_path: Path) -> None:
    a = tmp_path / "a.tsv"
    a.write_text("old a")
    with written_together([a]) as written:
        write_text(a, "new a")
        written.append(a)
    assert [p.name for p in tmp_path.iterdir()] == ["a.tsv"] and a.read_text() == "new a"


def test_a_file_a_killed_run_moved_aside_is_put_back_not_deleted(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    previous_path(a).write_text("old a")  # moved aside, then the run was killed (SIGKILL)
    with pytest.raises(OSError):
        _fail_at_second(a, b)
    assert a.read_text() == "old a" and not previous_path(a).exists()
