"""The index cache is staged under a temporary name of lcm.io.atomic (host, pid), so that what a
killed ingest leaves is swept by the next save on its host and never taken for an output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.connectome import make_raw_bids

from lcm.bids.index_cache import cache_dir_for
from lcm.bids.ingest import ingest
from lcm.io.atomic import temporary_name, temporary_owner


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_a_staging_folder_a_killed_ingest_left_is_swept_by_the_next_save(tmp_path: Path) -> None:
    root = make_raw_bids(tmp_path / "raw", subjects=("01",), t_r=2.0)
    out = tmp_path / "out" / "manifest.parquet"
    cache = cache_dir_for(out)
    host, _ = temporary_owner(temporary_name(cache).name)
    name = temporary_name(cache).name.split(".lcmtmp-")[0]
    killed = cache.with_name(f"{name}.lcmtmp-{host}-{_dead_pid()}-0a1b2c3d")
    elsewhere = cache.with_name(f"{name}.lcmtmp-otherhost-1-0a1b2c3d")  # may be in use there
    for folder in (killed, elsewhere):
        folder.mkdir(parents=True)
        (folder / "rows.parquet").write_bytes(b"half")
    ingest("tiny", "bids", root, out, validate=False)
    assert (cache / "rows.parquet").is_file()
    left = sorted(p.name for p in out.parent.iterdir() if p.name != cache.name)
    assert left == sorted([elsewhere.name, "manifest.json", "manifest.parquet", "summary.json",
                           "summary.tsv"])  # fmt: skip
