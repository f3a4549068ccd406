"""Atomic writes, BIDS names and provenance sidecars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lcm.exceptions import InputDataError
from lcm.io.atomic import atomic_path, write_json
from lcm.io.bids_names import build_name, check_label, derivative_path, parse_entities, run_key
from lcm.io.lineage import trace, verify
from lcm.io.provenance import sidecar_path, write_sidecar
from lcm.io.relmat import read_relmat, write_relmat


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


def test_package_versions_name_distributions_of_imported_modules() -> None:
    import importlib.metadata

    import yaml  # noqa: F401 (module yaml, distribution PyYAML)

    from lcm.io.provenance import package_versions

    versions = package_versions()
    assert versions["PyYAML"] == importlib.metadata.version("PyYAML")
    assert "yaml" not in versions and "lcm" not in versions


def test_write_tsv_bytes_are_pandas_for_every_frame(tmp_path: Path) -> None:
    # Float tables take lcm.io.tsv's fast path; its text must be what to_csv writes, and
    # anything it cannot be sure of (NaN, ints, quoting, unnamed columns) goes to pandas.
    import numpy as np
    import pandas as pd

    from lcm.io.atomic import write_tsv
    from lcm.io.tsv import frame_tsv

    rng = np.random.default_rng(2)
    floats = rng.standard_normal((5, 3)) * 10.0 ** rng.integers(-30, 30, (5, 3))
    floats[0] = [-0.0, np.inf, 5e-324]
    names = pd.DataFrame({"roi": ["a", "b c", "d", "e", "f"]})
    frames = {
        "floats": (pd.DataFrame(floats, columns=["x", "y", "z"]), True),
        "named rows": (names.join(pd.DataFrame(floats, columns=["x", "y", "z"])), True),
        "object names": (
            pd.DataFrame({"roi": np.array(list("vwxyz"), dtype=object), "x": 1.5}),
            True,
        ),
        "no rows": (pd.DataFrame({"x": np.zeros(0)}), True),
        "missing": (pd.DataFrame({"x": [1.0, np.nan]}), False),
        "ints": (pd.DataFrame({"n": [1, 2], "x": [0.5, 0.25]}), False),
        "float32": (pd.DataFrame({"x": np.ones(2, dtype=np.float32)}), False),
        "quoted name": (pd.DataFrame({'q"x': [0.5]}), False),
        "quoted row": (pd.DataFrame({"roi": ["a\tb"], "x": [0.5]}), False),
        "unnamed": (pd.DataFrame(floats), False),
        "strings only": (names, False),
    }
    for label, (df, fast) in frames.items():
        assert (frame_tsv(df) is not None) == fast, label
        write_tsv(tmp_path / "ours.tsv", df)
        df.to_csv(tmp_path / "ref.tsv", sep="\t", index=False, na_rep="n/a")
        assert (tmp_path / "ours.tsv").read_bytes() == (tmp_path / "ref.tsv").read_bytes(), label


@pytest.mark.parametrize("names", [["001", "002"], ["1", "2.0"]])
def test_relmat_roi_names_are_read_as_written(tmp_path: Path, names: list[str]) -> None:
    """ROI names are text: '001' and '002' stay so in the Node column as in the header (the
    Node column was parsed as the integers 1 and 2, and the file refused as not square)."""
    path = tmp_path / "sub-01_stat-pearsoncorrelation_relmat.tsv"
    matrix = np.array([[1.0, 0.25], [0.25, 1.0]])
    write_relmat(path, names, matrix)
    got, values = read_relmat(path)
    assert got == names
    np.testing.assert_array_equal(values, matrix)


def test_a_light_verb_imports_no_pandas() -> None:
    # Every verb imports lcm.io.atomic: its frame writer imports pandas when called, so that
    # lcm provenance (and --help) does not pay pandas' import at each start.
    code = (
        "import sys; from lcm import cli; import lcm.io.atomic; "
        "cli.build_parser(cli.requested_verb(['provenance', 'verify', 'x']));"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
