"""Reruns of a synthetic voxel-level consortium whose files are edited in place.

The workflow runs for real up to the QC table on two synthetic subjects; then a file of one
subject (an fMRIPrep sidecar, then a raw BOLD) is edited in place. ONE invocation reruns that
subject's fMRIPrep and connectome jobs with ingest, and no other subject's; the next has
nothing to do. Snakemake does not check a job downstream of a rerunning ingest whose input from
it is ``ancient`` (the manifest fMRIPrep reads), not even its inputs' times: the edited
subject's jobs went unseen until a second invocation, after the QC table had been rebuilt.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT
from helpers.workflow import planned_jobs, small_config, snakemake, write_config

from lcm.io import paths
from lcm.io.provenance import provenance_path, sha256_file

DATASET = "bidsdemo"
QC_TABLE = paths.qc_table("results", DATASET, "aal116")


def _run(workdir: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = snakemake(ROOT, workdir, QC_TABLE, "--configfile", str(config), "--cores", "2", *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _made(workdir: Path) -> dict[str, tuple[int, int]]:
    """Each subject's (fMRIPrep record, run QC JSON) modification times."""
    records = sorted((workdir / "results" / "fmriprep" / DATASET).glob("sub-*_fmriprep.json"))
    found = {}
    for record in records:
        subject = record.name.split("_")[0].removeprefix("sub-")
        (qc,) = (workdir / paths.connectome_dir("results", DATASET)).glob(
            f"sub-{subject}/func/*_qc.json"
        )
        found[subject] = (record.stat().st_mtime_ns, qc.stat().st_mtime_ns)
    return found


def _later(file: Path) -> None:
    """An edit in place: same name, new bytes, a later modification time."""
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.mark.slow
def test_a_synthetic_subject_edited_in_place_reruns_in_one_invocation(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["synth"]["consortia"] = {DATASET: cfg["synth"]["consortia"][DATASET]}
    cfg["datasets"] = {DATASET: cfg["datasets"][DATASET]}
    cfg["tasks"] = {}
    config = write_config(tmp_path, cfg)
    _run(tmp_path, config)
    before = _made(tmp_path)
    assert len(before) == 2
    edited, other = sorted(before)

    # Its fMRIPrep sidecar (existing derivatives, as the synth stage writes them).
    synth = (tmp_path / cfg["datasets"][DATASET]["path"]).parent  # <out_dir>/<dataset>/rawdata
    (sidecar,) = synth.glob(f"derivatives/fmriprep/sub-{edited}/func/*_desc-preproc_bold.json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "Note": "edited"}))
    _later(sidecar)
    _run(tmp_path, config)
    after = _made(tmp_path)
    assert after[other] == before[other]  # no other subject's job
    assert all(a > b for a, b in zip(after[edited], before[edited], strict=True))
    record = tmp_path / "results" / "fmriprep" / DATASET / f"sub-{edited}_fmriprep.json"
    # The record lists the derivatives as its job's products, hashed anew.
    recorded = json.loads(provenance_path(record).read_text())["ProductsSha256"]
    assert recorded[str(sidecar.relative_to(tmp_path))] == sha256_file(sidecar)
    assert planned_jobs(_run(tmp_path, config, "-n")) == {}

    # Its raw BOLD, rewritten with the same image.
    (bold,) = synth.glob(f"rawdata/sub-{other}/func/*_bold.nii.gz")
    bold.write_bytes(gzip.compress(gzip.decompress(bold.read_bytes()), mtime=1))
    _later(bold)
    before = after
    _run(tmp_path, config)
    after = _made(tmp_path)
    assert after[edited] == before[edited]
    assert all(a > b for a, b in zip(after[other], before[other], strict=True))
    assert planned_jobs(_run(tmp_path, config, "-n")) == {}
