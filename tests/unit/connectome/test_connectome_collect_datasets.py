"""``lcm connectome collect`` given the QC records of several datasets: it wrote them into one
table without a word. The workflow collects one dataset's records per table; a table of
several is written all the same (``lcm store`` keeps its ``--dataset``'s rows), with a warning
naming the datasets and the files of their records.
"""

from __future__ import annotations

import json
from pathlib import Path

from lcm.cli import main, setup_logging
from lcm.connectome.qc import new_qc
from lcm.io.qc_table import read_qc_table


def _records(folder: Path, counts: dict[str, int]) -> list[Path]:
    """``counts[dataset]`` included QC records of each dataset, one JSON each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset, n in counts.items():
        for i in range(n):
            key = f"sub-{i:02d}_task-rest"
            record = new_qc(dataset, subject=f"{i:02d}", run_key=key, included=True, mean_fd=0.1)
            path = folder / f"{dataset}_{key}.json"
            path.write_text(json.dumps(record))
            paths.append(path)
    return paths


def _collect(paths: list[Path], out: Path) -> str:
    """The log of ``lcm connectome collect`` of ``paths``, which must succeed."""
    log = out.with_suffix(".log")
    argv = ["--log-file", str(log), "connectome", "collect", "--qc", *map(str, paths)]
    try:
        assert main([*argv, "--out", str(out)]) == 0
    finally:
        setup_logging()
    return log.read_text()


def test_records_of_several_datasets_are_written_with_a_warning_naming_them(
    tmp_path: Path,
) -> None:
    paths = _records(tmp_path / "qc", {"alpha": 2, "beta": 5})
    out = tmp_path / "qc.tsv"
    log = _collect(paths, out)
    table = read_qc_table(out)
    assert table["dataset"].value_counts().to_dict() == {"alpha": 2, "beta": 5}
    warnings = [line for line in log.splitlines() if "records collected are of" in line]
    assert len(warnings) == 1 and " WARNING " in warnings[0], log
    text = warnings[0]
    assert f"{out}: the QC records collected are of 2 datasets" in text
    # Each dataset with its records' files (the first three, then how many more).
    alpha = [str(p) for p in paths if p.name.startswith("alpha_")]
    beta = [str(p) for p in paths if p.name.startswith("beta_")]
    assert f"alpha: 2 record(s), {', '.join(alpha)}; " in text
    assert f"beta: 5 record(s), {', '.join(beta[:3])} and 2 more)" in text
    assert "Collect each dataset's records into a table of its own" in text


def test_one_datasets_records_are_collected_without_that_warning(tmp_path: Path) -> None:
    paths = _records(tmp_path / "qc", {"alpha": 3})
    log = _collect(paths, tmp_path / "qc.tsv")
    assert "records collected are of" not in log and "WARNING" not in log, log
    assert len(read_qc_table(tmp_path / "qc.tsv")) == 3
