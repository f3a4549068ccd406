"""Atomic writes, BIDS names and provenance sidecars."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path, write_json
from lcm.io.bids_names import build_name, check_label, derivative_path, parse_entities, run_key
from lcm.io.lineage import trace, verify
from lcm.io.provenance import sidecar_path, write_sidecar


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    write_json(out, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert out.read_text().strip().endswith("}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left


def test_build_name_orders_entities_like_xcpd() -> None:
    name = build_name(
        {
            "stat": "pearsoncorrelation",
            "seg": "aal116",
            "sub": "01",
            "run": 1,
            "task": "rest",
            "space": "MNI152NLin2009cAsym",
            "ses": None,
        },
        "relmat",
        ".tsv",
    )
    assert name == (
        "sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_seg-aal116_stat-pearsoncorrelation_relmat.tsv"
    )
    assert parse_entities(name)["seg"] == "aal116"


def test_derivative_path_with_session() -> None:
    p = derivative_path("/d", {"sub": "01", "ses": "2", "task": "rest"}, "bold", ".nii.gz")
    assert p == Path("/d/sub-01/ses-2/func/sub-01_ses-2_task-rest_bold.nii.gz")
    assert run_key({"sub": "01", "ses": "2", "task": "rest", "run": "1", "space": "X"}) == (
        "sub-01_ses-2_task-rest_run-1"
    )


@pytest.mark.parametrize("label", ["0 1", "a;b", "..", "x$(id)", "a_b", ""])
def test_unsafe_labels_are_refused(label: str) -> None:
    with pytest.raises(InputDataError, match=r"alphanumeric|letters and digits"):
        check_label("sub", label, source="participants.tsv")


def test_sidecar_records_sources_and_detects_tampering(tmp_path: Path) -> None:
    src = tmp_path / "in.tsv"
    src.write_text("a\n1\n")
    out = tmp_path / "sub-01_relmat.tsv"
    out.write_text("x\n")
    side = write_sidecar(out, [src], Setting=3)
    assert side == sidecar_path(out) == tmp_path / "sub-01_relmat.json"
    assert verify(tmp_path) == []
    lines = list(trace(out))
    assert "[ok]" in lines[0] and str(src) in lines[1]
    src.write_text("a\n2\n")
    problems = verify(tmp_path)
    assert len(problems) == 1 and "changed" in problems[0]


def test_atomic_outputs_follow_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "b.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644


def test_atomic_temp_names_never_match_reader_globs(tmp_path: Path) -> None:
    from lcm.io.atomic import temporary_name

    parquet = temporary_name(tmp_path / "part-0.parquet")
    assert parquet.name.startswith(".part-0.parquet.lcmtmp-") and parquet.suffix != ".parquet"
    assert not temporary_name(tmp_path / "a.tsv").name.endswith(".tsv")
    # nibabel and pandas infer the format from these: they are kept.
    assert temporary_name(tmp_path / "bold.nii.gz").name.endswith(".nii.gz")
    seen = []
    with atomic_path(tmp_path / "part-0.parquet") as tmp:
        seen = sorted(p.name for p in tmp_path.glob("*.parquet"))
        tmp.write_bytes(b"x")
    assert seen == []


def test_atomic_write_removes_temps_of_dead_writers_only(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from lcm.io.atomic import temporary_name

    out = tmp_path / "part-0.parquet"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    mine = temporary_name(out)  # this process: alive
    left = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{pid}-"))
    other_host = tmp_path / f".part-0.parquet.lcmtmp-elsewhere-{pid}-abcd"
    for p in (mine, left, other_host):
        p.write_bytes(b"half")
    write_json(out, {})
    assert mine.exists() and other_host.exists() and not left.exists()


def test_package_map_is_what_importlib_metadata_gives(tmp_path: Path, monkeypatch) -> None:
    # provenance reads the module -> distribution map itself (the standard function cost
    # ~0.3 s per job); it must be the same map, odd installations included.
    import importlib.metadata

    from lcm.io import provenance

    (tmp_path / "declared-1.0.dist-info").mkdir()
    (tmp_path / "declared-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Declared\nVersion: 1.0\n\nName: not-this\n"
    )
    (tmp_path / "declared-1.0.dist-info" / "top_level.txt").write_text("decl\ndecl_two\n")
    inferred = tmp_path / "inferred-2.0.dist-info"
    inferred.mkdir()
    (inferred / "METADATA").write_text("Name: inferred\r\nVersion: 2.0\r\n\r\nbody\r\n")
    (inferred / "RECORD").write_text(
        "inf/__init__.py,sha256=x,1\nsolo.py,,\n./dotted/a.py,,\nb.py/,,\n//two/x.py,,\n"
        '"comma,pkg/x.py",,\ninf/__pycache__/a.cpython-311.pyc,,\ndata/.py,,\nREADME,,\n'
    )
    egg = tmp_path / "old.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Name: old\n  folded\nVersion: 0.1\n")
    (egg / "SOURCES.txt").write_text("setup.py\nold/core.py\nold, comma/x.py\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ours = provenance._distributions.__wrapped__()  # uncached; the fast reading on 3.11
    assert ours == importlib.metadata.packages_distributions()
    assert ours["decl"] == ["Declared"] and ours["solo"] == ["inferred"]
