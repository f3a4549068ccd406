"""What the SLURM profile submits: per-run connectome jobs in batches, and the documented
overrides for existing fMRIPrep derivatives (the subject's check joins its runs' batch)."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.workflow import ROOT, placeholder_config, snakemake

PROFILE = ["--profile", str(ROOT / "profiles" / "slurm")]
# README, "On a SLURM cluster": with fmriprep.runner: existing the fMRIPrep job only checks and
# hashes derivatives, so it is made light and batched with the subject's connectome runs.
EXISTING = [
    "--groups", "fmriprep=connectome",
    "--set-threads", "fmriprep=1",
    "--set-resources", "fmriprep:mem_mb=2000", "fmriprep:runtime=10",
]  # fmt: skip


def _plan(tmp_path: Path, n: int, *extra: str) -> str:
    _, config = placeholder_config(tmp_path, {"hcplike": n, "abidelike": 2})
    proc = snakemake(
        ROOT, tmp_path, "--configfile", str(config), *PROFILE, "-n", "--forceall", *extra
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
    got = _submissions(_plan(tmp_path, 118, *EXISTING))
    assert got == {
        "batches": 3, "fmriprep": 0, "fmriprep_batched": 120,
        "connectome_run": 0, "connectome_run_batched": 120,
    }  # fmt: skip
