"""What the SLURM profile submits: per-run connectome jobs in batches, and, with the documented
`--groups` for existing fMRIPrep derivatives, the subject's check in its runs' batch."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.workflow import ROOT, placeholder_config, snakemake

PROFILE = ["--profile", str(ROOT / "profiles" / "slurm")]


def _existing_profile() -> list[str]:
    """README, "On a SLURM cluster": with fmriprep.runner: existing the fMRIPrep job only checks
    and hashes derivatives, and its rule asks little for it (1 CPU, 2000 MB, 10 minutes), so it
    is batched with the subject's connectome runs by one option on the command line."""
    return [*PROFILE, "--groups", "fmriprep=connectome"]


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
    out = _plan(tmp_path, 118, *_existing_profile())
    assert _submissions(out) == {
        "batches": 3, "fmriprep": 0, "fmriprep_batched": 120,
        "connectome_run": 0, "connectome_run_batched": 120,
    }  # fmt: skip
    # Each check asks what its rule gives a check, not a container run's 8 CPUs and 12 hours.
    checks = re.findall(r"^\s+rule fmriprep:\n(?:\s+.*\n)*?\s+resources: (.*)$", out, re.M)
    assert len(checks) == 120, out[-3000:]
    assert all(re.search(r"\bruntime=10\b", r) and "mem_mb=2000" in r for r in checks), checks[0]
    # The profile's other rules keep their resources: pretraining still asks for its GPU.
    pretrain = re.search(r"^rule pretrain:\n(?:\s+.*\n)*?\s+resources: (.*)$", out, re.M)
    assert pretrain and "gpu=1" in pretrain[1] and "mem_mb=64000" in pretrain[1], pretrain
