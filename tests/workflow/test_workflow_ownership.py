"""A results_dir holding a user's files where the workflow writes is refused before any job.

Snakemake replaces whatever sits at a job's output path; the workflow's ``onstart`` claims
results_dir first (:func:`lcm.io.ownership.claim_results`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.workflow import run_snakemake, tiny_pretraining_config

from lcm.io import paths
from lcm.io.ownership import MARKER_NAME

pytestmark = pytest.mark.hostile


def test_a_users_report_under_results_dir_stops_the_run(tmp_path: Path) -> None:
    config = tiny_pretraining_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    results = tmp_path / "my-project"
    cfg["results_dir"] = str(results)
    config.write_text(yaml.safe_dump(cfg))
    mine = Path(paths.report_html(str(results)))
    mine.parent.mkdir(parents=True)
    mine.write_text("<p>my own report</p>")
    target = paths.ingest_manifest(str(results), "hcplike")

    # A dry run plans as usual; the run itself stops before its first job, naming the file.
    dry = run_snakemake(tmp_path, target, "-n", "--configfile", str(config))
    assert dry.returncode == 0, dry.stderr[-2000:]
    proc = run_snakemake(tmp_path, target, "--configfile", str(config))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"LCM did not write where LCM writes its outputs (e.g. {mine})" in out, out[-3000:]
    assert "Set results_dir to a new or empty folder" in out
    assert mine.read_text() == "<p>my own report</p>"
    assert sorted(p.name for p in results.iterdir()) == ["report"]  # nothing written

    # Moved away, the same run claims the folder and runs.
    mine.unlink()
    proc = run_snakemake(tmp_path, target, "--configfile", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / MARKER_NAME).is_file()
    assert Path(target).is_file()
