"""Workflows on placeholder data, for rerun tests, the SLURM test and the DAG benchmark.

A placeholder dataset is a real BIDS tree whose images are tiny (2x2x2 voxels, 10 volumes):
enough for ingest's index to include each run and for Snakemake to build the whole DAG (and,
with ``--touch``, to pretend every job ran) without computing anything.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
# What a workflow run needs from the repository (a copy can have its code edited safely).
REPO_PARTS = ("Snakefile", "lcm", "workflow", "config", "envs", "profiles")


def copy_repo(dest: Path) -> Path:
    """Copy the workflow and the package to ``dest`` (no results, caches or git)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in REPO_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dest / part)
    return dest


@cache
def tiny_bold() -> bytes:
    """A valid 4D ``.nii.gz`` of 2x2x2 voxels and 10 volumes, TR 2 s (about 80 bytes)."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2, 10), np.int16), np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    return gzip.compress(img.to_bytes(), mtime=0)


def bids_root(raw: Path, task: str = "rest") -> None:
    """The top-level files of a BIDS dataset (description, task sidecar with the TR)."""
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "dataset_description.json").write_text(
        json.dumps({"Name": raw.parent.name, "BIDSVersion": "1.10.0"})
    )
    (raw / f"task-{task}_bold.json").write_text(
        json.dumps({"RepetitionTime": 2.0, "TaskName": task})
    )


def add_subject(raw: Path, label: str, task: str = "rest") -> Path:
    """One placeholder BOLD run of subject ``label`` under the BIDS folder ``raw``."""
    func = raw / f"sub-{label}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    bold = func / f"sub-{label}_task-{task}_run-1_bold.nii.gz"
    bold.write_bytes(tiny_bold())
    return bold


def placeholder_config(
    workdir: Path, n_subjects: dict[str, int], repo: Path = ROOT
) -> tuple[dict, Path]:
    """The demo config over placeholder BIDS datasets; returns it and its written path.

    Parameters
    ----------
    workdir : Path
        Where data, config and results go.
    n_subjects : dict
        Dataset name -> number of subjects; ``hcplike`` is used for pretraining and
        ``abidelike`` (the autism task's dataset) downstream.
    repo : Path
        Repository whose config/variables.yaml the config points at.
    """
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["variables"] = str(repo / "config" / "variables.yaml")
    cfg["synth"]["enabled"] = False
    cfg["datasets"] = {}
    for name, n in n_subjects.items():
        base = workdir / "data" / name
        bids_root(base / "rawdata")
        for i in range(n):
            add_subject(base / "rawdata", f"{i:05d}")
        (base / "phenotype.tsv").write_text("participant_id\n")
        cfg["datasets"][name] = {
            "entry": "bids",
            "path": str(base / "rawdata"),
            "derivatives": str(base / "derivatives"),
            "phenotype": str(base / "phenotype.tsv"),
            "role": "downstream" if name == "abidelike" else "pretrain",
        }
    cfg["tasks"] = {"autism": cfg["tasks"]["autism"]}
    path = write_config(workdir, cfg)
    return cfg, path


def write_config(workdir: Path, cfg: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(
    repo: Path, workdir: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run Snakemake on ``repo``'s Snakefile in ``workdir`` with this interpreter first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile")]
    cmd += ["--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run ({} when nothing to do)."""
    counts: dict[str, int] = {}
    lines = (proc.stdout + proc.stderr).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    except StopIteration:
        return counts
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total" or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def touch_all(repo: Path, workdir: Path, config: Path) -> None:
    """Create every output as an empty file and record it as made by its job (``--touch``)."""
    proc = snakemake(repo, workdir, "--configfile", str(config), "-n", "--summary", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in proc.stdout.splitlines()[1:]:
        out = line.split("\t")[0]
        if out and not out.startswith(("/", "Building")):
            (workdir / out).parent.mkdir(parents=True, exist_ok=True)
            (workdir / out).touch()
    proc = snakemake(
        repo, workdir, "--configfile", str(config), "--touch", "--forceall", "--cores", "1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
