"""What the SLURM profile submits: per-run connectome jobs in batches, and the documented
profile copy for existing fMRIPrep derivatives (the subject's check joins its runs' batch)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from helpers.workflow import ROOT, placeholder_config, snakemake

PROFILE = ["--profile", str(ROOT / "profiles" / "slurm")]


def _existing_profile(tmp_path: Path) -> list[str]:
    """README, "On a SLURM cluster": with fmriprep.runner: existing the fMRIPrep job only checks
    and hashes derivatives, so a copy of the profile makes it light, and it is batched with the
    subject's connectome runs (command-line --set-* would replace the profile's mappings)."""
    folder = tmp_path / "profiles" / "mysite"
    shutil.copytree(ROOT / "profiles" / "slurm", folder)
    profile = yaml.safe_load((folder / "config.yaml").read_text())
    profile["set-threads"]["fmriprep"] = 1
    profile["set-resources"]["fmriprep"].update(mem_mb=2000, runtime=10)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return ["--profile", str(folder), "--groups", "fmriprep=connectome"]


def _plan(tmp_path: Path, n: int, *profile: str) -> str:
    _, config = placeholder_config(tmp_path, {"hcplike": n, "abidelike": 2})
    proc = snakemake(
        ROOT, tmp_path, "--configfile", str(config), *(profile or PROFILE), "-n", "--forceall"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def _submissions(out: str) -> dict[str, int]:
    """Standalone jobs per rule (column 0), batches, and jobs inside batches per rule."""
    counts = {"batches": len(re.findall(r"^\S.*Group job connectome\b", out, re.M))}
    for rule in ("fmriprep", "connectome_run"):
        counts[rule] = len(re.findall(rf"^rule {rule}:", out, re.M))
        counts[f"{rule}_batched"] = len(re.findall(rf"^\s+rule {rule}:", out, re.M))
    return counts


def test_connectome_runs_go_fifty_to_a_submission(tmp_path: Path) -> None:
    got = _submissions(_plan(tmp_path, 118))
    # 120 runs (118 + 2 subjects, one run each) -> 3 batches; fMRIPrep stays one job a subject.
    assert got == {
        "batches": 3, "fmriprep": 120, "fmriprep_batched": 0,
        "connectome_run": 0, "connectome_run_batched": 120,
    }  # fmt: skip


def test_existing_derivatives_checks_join_their_subjects_batch(tmp_path: Path) -> None:
    out = _plan(tmp_path, 118, *_existing_profile(tmp_path))
    assert _submissions(out) == {
        "batches": 3, "fmriprep": 0, "fmriprep_batched": 120,
        "connectome_run": 0, "connectome_run_batched": 120,
    }  # fmt: skip
    # The profile's other rules keep their resources: pretraining still asks for its GPU.
    pretrain = re.search(r"^rule pretrain:\n(?:\s+.*\n)*?\s+resources: (.*)$", out, re.M)
    assert pretrain and "gpu=1" in pretrain[1] and "mem_mb=64000" in pretrain[1], pretrain
