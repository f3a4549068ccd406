"""Workflows on placeholder data (rerun tests, the SLURM test, the DAG benchmark), and the
workflow run as a user runs it: small configurations and Snakemake in a subprocess.

A placeholder dataset is a real BIDS tree whose images are tiny (2x2x2 voxels, 10 volumes):
enough for ingest's index to include each run and for Snakemake to build the whole DAG (and,
with ``--touch``, to pretend every job ran) without computing anything.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

from helpers import ROOT

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
    datasets = {}
    for name, n in n_subjects.items():
        base = workdir / "data" / name
        bids_root(base / "rawdata")
        for i in range(n):
            add_subject(base / "rawdata", f"{i:05d}")
        (base / "phenotype.tsv").write_text("participant_id\n")
        (base / "derivatives").mkdir(exist_ok=True)  # read as they are (runner existing)
        role = "downstream" if name == "abidelike" else "pretrain"
        datasets[name] = dataset(
            "bids", base / "rawdata", base / "phenotype.tsv", role, derivatives=base / "derivatives"
        )
    cfg = user_config(datasets, repo, tasks=("autism",))
    path = write_config(workdir, cfg)
    return cfg, path


def user_config(
    datasets: dict[str, dict],
    repo: Path = ROOT,
    tasks: Sequence[str] = (),
    short_runs: int | None = None,
) -> dict:
    """The demo config over a user's own datasets: synthetic data off, the demo's other settings.

    Parameters
    ----------
    datasets : dict
        Dataset name -> its ``datasets`` entry (:func:`dataset`).
    repo : Path
        Repository whose ``config/`` is read (a copy may have its code edited).
    tasks : sequence of str
        The demo's tasks kept (default none).
    short_runs : int, optional
        ``denoise.min_volumes`` for test runs shorter than the demo's floor; their
        degrees-of-freedom floor is lifted too (``min_dof: null``), so they are kept.
    """
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["variables"] = str(repo / "config" / "variables.yaml")
    cfg["synth"]["enabled"] = False
    cfg["datasets"] = datasets
    cfg["tasks"] = {name: cfg["tasks"][name] for name in tasks}
    if short_runs is not None:
        cfg["denoise"]["min_volumes"] = short_runs
        cfg["denoise"]["min_dof"] = None
    return cfg


def dataset(
    entry: str, path: Path, phenotype: Path, role: str = "pretrain", **folders: Path
) -> dict:
    """One ``datasets`` entry of a config; ``folders`` adds path keys (``derivatives``)."""
    paths = {"path": str(path), **{k: str(v) for k, v in folders.items()}}
    return {"entry": entry, **paths, "phenotype": str(phenotype), "role": role}


def code_datasets(cfg: dict, folder: Path, codings: dict[str, dict] | Sequence[str]) -> Path:
    """Point ``cfg`` at a copy of its catalogue, in ``folder``, that codes more datasets (the
    workflow refuses a dataset the catalogue does not code, before any job).

    ``codings``: dataset -> its coding, or names coded by their ID column only (a workflow run
    up to the connectomes reads no variable).
    """
    if not isinstance(codings, dict):
        codings = {name: {"id_column": "participant_id"} for name in codings}
    catalogue = yaml.safe_load(Path(cfg["variables"]).read_text())
    catalogue["datasets"].update(codings)
    path = folder / "variables.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    cfg["variables"] = str(path)
    return path


def write_config(workdir: Path, cfg: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snakemake_command(repo: Path, workdir: Path, args: Sequence[str]) -> tuple[list, dict]:
    """The command and environment of :func:`snakemake` and :func:`start_snakemake`."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(repo / "Snakefile")]
    cmd += ["--directory", str(workdir), *args]
    return cmd, env


def snakemake(
    repo: Path, workdir: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run Snakemake on ``repo``'s Snakefile in ``workdir`` with this interpreter first on PATH."""
    cmd, env = _snakemake_command(repo, workdir, args)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


class StartedSnakemake:
    """A :func:`snakemake` run started in the background (:func:`start_snakemake`)."""

    def __init__(self, repo: Path, workdir: Path, args: Sequence[str], output: Path) -> None:
        cmd, env = _snakemake_command(repo, workdir, args)
        self.output = output
        # Output to a file, not a pipe: a pipe nobody reads fills up and stalls Snakemake.
        with output.open("w") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def join(self, timeout: float) -> subprocess.CompletedProcess:
        """Wait for the run; its output (stdout and stderr together) comes as ``stderr``."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        text = self.output.read_text()
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, "", text)

    def stop(self) -> None:
        """Interrupt the run if still going (Snakemake then cancels its cluster jobs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_snakemake(repo: Path, workdir: Path, *args: str) -> StartedSnakemake:
    """:func:`snakemake` without waiting: to run beside other work; :meth:`~StartedSnakemake.join`
    returns what :func:`snakemake` would (output in ``workdir.parent / "snakemake.out"``)."""
    return StartedSnakemake(repo, workdir, args, workdir.parent / "snakemake.out")


def run_workflow(
    workdir: Path,
    config: Path,
    *args: str,
    targets: Sequence[str | Path] = (),
    repo: Path = ROOT,
    cores: int = 2,
) -> subprocess.CompletedProcess:
    """Snakemake on ``targets`` (default: every output) with ``config`` in ``workdir``, which
    must succeed: a failure fails the test with the tail of Snakemake's output."""
    # Targets before --configfile, which takes every word after it as a config file.
    proc = snakemake(
        repo, workdir, *map(str, targets), "--configfile", str(config), "--cores", str(cores), *args
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


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


# -- the workflow as a user runs it ------------------------------------------------------

SNAKEMAKE_MODULE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def small_config(tmp: Path) -> dict:
    """The demo config shrunk to run in a couple of minutes on 2 cores."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    cfg["synth"]["consortia"] = {
        "hcplike": {"preset": "hcp", "tier": "roi", "n_subjects": 48, "n_volumes": 120},
        "bidsdemo": {
            "preset": "hcp",
            "tier": "voxel",
            "n_subjects": 2,
            "n_volumes": 80,
            "resolution_mm": 4,
        },
        "abidelike": {"preset": "abide", "tier": "roi", "n_subjects": 60, "n_volumes": 120},
    }
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if k in cfg["synth"]["consortia"]}
    cfg["tasks"] = {"autism": cfg["tasks"]["autism"]}
    cfg["denoise"]["min_volumes"] = 30
    # The shrunk runs hold fewer degrees of freedom than the demo's floor: kept, as before it.
    cfg["denoise"]["min_dof"] = None
    cfg["pretrain"]["epochs"] = 3
    cfg["evaluate"].update({"n_folds": 3, "label_fractions": [0.5, 1.0]})
    cfg["evaluate"]["finetune"]["epochs"] = 3
    return cfg


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on the repository's Snakefile in ``workdir``, 2 cores, this interpreter first."""
    # Rules call `python -m lcm`: the interpreter running the tests must be the one found.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path}
    return subprocess.run(
        [*SNAKEMAKE_MODULE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )


def tiny_pretraining_config(workdir: Path, d_model: int = 16) -> Path:
    """The demo config reduced to one small synthetic pretraining consortium, dropout off."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["variables"] = str(ROOT / "config" / "variables.yaml")
    consortia = {
        "hcplike": {"preset": "hcp", "tier": "roi", "n_subjects": 24, "n_volumes": 100},
        "abidelike": {"preset": "abide", "tier": "roi", "n_subjects": 20, "n_volumes": 100},
    }
    cfg["synth"]["consortia"] = consortia
    cfg["datasets"] = {k: v for k, v in cfg["datasets"].items() if k in consortia}
    cfg["tasks"] = {"autism": cfg["tasks"]["autism"]}
    cfg["denoise"]["min_volumes"] = 30
    cfg["denoise"]["min_dof"] = None  # 100 volumes: under the floor, kept
    # Dropout draws differ between one process and two; without it the runs must agree.
    cfg["model"] = {"preset": "tiny", "overrides": {"d_model": d_model, "dropout": 0.0}}
    cfg["pretrain"].update({"epochs": 3, "batch_size": 16, "checkpoint_every": 0})
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


SNAKEMAKE_SCRIPT = Path(sys.executable).parent / "snakemake"
# What a user's shell may hold: no virtualenv on PATH.
BARE_ENV = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONUNBUFFERED": "1"}


def user_snakemake(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``<venv>/bin/snakemake --snakefile <repo>/Snakefile ARGS`` in ``cwd`` with a bare PATH."""
    cmd = [str(SNAKEMAKE_SCRIPT), "--snakefile", str(ROOT / "Snakefile"), "--cores", "2", *args]
    return subprocess.run(
        cmd, cwd=cwd, env=BARE_ENV, capture_output=True, text=True, timeout=timeout
    )
