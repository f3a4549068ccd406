"""Reruns of a dataset entering as fMRIPrep derivatives (``entry: fmriprep``).

Its derivative files are what its jobs read: one of them edited in place (a value of a run's
confounds table) reruns that subject's jobs, as with ``entry: bids`` and ``runner: existing``
(tests/workflow/test_workflow_rerun.py), and no other subject's.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import ROOT
from helpers.connectome import make_fmriprep_run
from helpers.workflow import placeholder_config, planned_jobs, snakemake, touch_all, write_config


def _plan(workdir: Path, config: Path) -> dict[str, int]:
    proc = snakemake(ROOT, workdir, "--configfile", str(config), "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return planned_jobs(proc)


def test_an_edited_confounds_table_reruns_only_its_subject(tmp_path: Path) -> None:
    cfg, _ = placeholder_config(tmp_path, {"hcplike": 1, "abidelike": 1})
    deriv = tmp_path / "data" / "abidelike" / "fmriprep"
    files = {
        sub: make_fmriprep_run(deriv, f"sub-{sub}_task-rest_run-1", n_vol=20, res="2")
        for sub in ("01", "02")
    }
    cfg["datasets"]["abidelike"].update(entry="fmriprep", path=str(deriv))
    cfg["datasets"]["abidelike"].pop("derivatives")
    cfg["fmriprep"]["output_space"] = "MNI152NLin2009cAsym:res-2"
    config = write_config(tmp_path, cfg)
    proc = snakemake(ROOT, tmp_path, "--configfile", str(config), "--until", "ingest", "-c1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    touch_all(ROOT, tmp_path, config)
    assert _plan(tmp_path, config) == {}

    # One value of sub-02's confounds changed in place: same name, same size, a later mtime.
    confounds = files["02"]["confounds"]
    text = confounds.read_text()
    lines = text.splitlines(keepends=True)
    cells = lines[5].split("\t")
    cells[0] = cells[0][:-1] + ("1" if cells[0][-1] != "1" else "2")
    confounds.write_text("".join([*lines[:5], "\t".join(cells), *lines[6:]]))
    st = confounds.stat()
    os.utime(confounds, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    jobs = _plan(tmp_path, config)
    assert {k: jobs.get(k) for k in ("fmriprep", "connectome_run")} == {
        "fmriprep": 1,
        "connectome_run": 1,
    }, jobs
    assert "connectome_collect" in jobs and "ingest" not in jobs
