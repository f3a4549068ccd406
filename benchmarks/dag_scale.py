"""How long Snakemake takes to plan the LCM workflow for large cohorts, against a minimal one.

For each N (default 1,000 and 10,000 subjects, one run each) this builds placeholder BIDS data
(empty images: planning never opens them), then times, in the same run and with the same flags,
``snakemake -n --forceall --profile profiles/slurm`` on

- the full LCM workflow (ingest, fMRIPrep and connectome jobs per subject, then the store,
  pretraining, finetuning, evaluation and report aggregates), and
- a reference Snakefile with two trivial per-subject rules and one aggregate.

It counts the planned jobs and the SLURM submissions after grouping (``group-components`` in the
profile batch the per-run connectome jobs). Each contender is planned ``--repeats`` (>= 2) times
per size, alternating which goes first, best kept. The headline ``ratio`` is on CPU time (user +
system; wall time on a shared machine swung 1.18 -> 2.18 between two sizes while CPU held at
1.9): ours / the reference's (``better``: lower), with ``wall_ratio`` beside it. The workflow
plans ~2-3x the reference's jobs, so ``job_ratio`` (more jobs) and ``marginal_per_job_ratio``
(slower per job: the CPU each added job costs, ours over the reference's, between the two sizes)
say which of the two a ratio above 1 comes from. ``growth_vs_linear`` is the marginal CPU per
planned job from N1 to N2 over that from a small base size (N1 / 10, ours only) to N1: Snakemake's
fixed start-up cancels out of both, so a super-linear term shows as > 1 (it was computed from
total wall time per subject, start-up included, which hid such terms). Targets at 10,000
subjects: ratio <= 1.5, growth_vs_linear <= 1, and per-run submissions <= per-run jobs / 20.
Threads: the job's (``--threads``, else ``OMP_NUM_THREADS``, SLURM's grant or the CPUs
available), exported to Snakemake.

Usage: ``python benchmarks/dag_scale.py [--subjects 1000 10000]``; ``--quick`` (run by the test
suite) plans 1 (base), 10 and 20 subjects once per contender (a check that it runs, not a
measurement), ~1-2 min on a busy machine (its slopes are noise: ``null`` where a marginal cost
is not positive). The last line is JSON. Only dry runs: neither SLURM
nor its commands are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers.workflow import add_subject, placeholder_config  # noqa: E402

from lcm.threads import cap_threads  # noqa: E402

PROFILE = ROOT / "profiles" / "slurm"
DOWNSTREAM_SUBJECTS = 20  # the autism task's dataset; the N subjects are for pretraining

REFERENCE = """\
import os

SUBJECTS = sorted(e.name[4:] for e in os.scandir(config["raw"]) if e.name.startswith("sub-"))


rule all:
    input:
        "agg.txt",


rule first:
    input:
        config["raw"] + "/sub-{s}/func/sub-{s}_task-rest_run-1_bold.nii.gz",
    output:
        "first/sub-{s}.txt",
    shell:
        "touch {output}"


rule second:
    input:
        "first/sub-{s}.txt",
    output:
        "second/sub-{s}.txt",
    shell:
        "touch {output}"


rule aggregate:
    input:
        expand("second/sub-{s}.txt", s=SUBJECTS),
    output:
        "agg.txt",
    shell:
        "touch {output}"
"""


def dry_run(snakefile: Path, workdir: Path, *args: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and output of one ``snakemake -n --forceall`` (SLURM profile).

    CPU time (user + system of the child) is reported beside wall time: on a shared machine it
    is the steadier of the two.
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
    cmd += ["--directory", str(workdir), "--profile", str(PROFILE), "-n", "--forceall", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PATH": path})
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return elapsed, cpu, proc.stdout + proc.stderr


def job_counts(output: str) -> dict[str, int]:
    """Rule -> planned jobs, from the dry run's 'Job stats' table."""
    table = output.split("Job stats:", 1)[1].splitlines()[3:]
    counts = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def lcm_tree(n: int, tmp: Path) -> tuple[Path, Path]:
    """Placeholder BIDS data for ``n`` subjects and its config: (config file, raw folder)."""
    work = tmp / f"n{n}"
    work.mkdir()
    cfg, config = placeholder_config(work, {"hcplike": 0, "abidelike": DOWNSTREAM_SUBJECTS})
    raw = Path(cfg["datasets"]["hcplike"]["path"])
    for i in range(n):
        add_subject(raw, f"{i:06d}")
    config.write_text(yaml.safe_dump(cfg))
    return config, raw


def best(runs: list[tuple[float, float, str]]) -> tuple[float, float, str]:
    """The best of repeated dry runs: the least wall and the least CPU time (each its own min)."""
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]


def measure(n: int, tmp: Path, repeats: int, reference: bool = True) -> dict:
    """Plan the LCM workflow (and the reference) for ``n`` subjects; timings and counts.

    Each contender is planned ``repeats`` times, alternating which goes first (the first dry run
    of a round pays for cold caches), and keeps its best wall and best CPU time.
    """
    config, raw = lcm_tree(n, tmp)
    ref = tmp / f"ref{n}"
    ref.mkdir()
    (ref / "Snakefile").write_text(REFERENCE)
    ours, theirs = [], []
    for i in range(repeats):
        order = ["ours", "reference"] if i % 2 == 0 else ["reference", "ours"]
        for who in order if reference else ["ours"]:
            if who == "ours":
                ours.append(dry_run(ROOT / "Snakefile", tmp / f"n{n}", "--configfile", str(config)))
            else:
                theirs.append(dry_run(ref / "Snakefile", ref, "--config", f"raw={raw}"))
    t_lcm, cpu_lcm, out = best(ours)
    counts = job_counts(out)
    local = {"all", "report", "connectome_collect"}  # localrules: never submitted
    groups = len(re.findall(r"Group job connectome\b", out))
    grouped_rules = {"connectome_run"}
    submissions = groups + sum(c for r, c in counts.items() if r not in local | grouped_rules)
    jobs = sum(counts.values())
    result = {
        "n": n,
        "t_dryrun_s": round(t_lcm, 2),
        "cpu_dryrun_s": round(cpu_lcm, 2),
        "jobs": jobs,
        "cpu_ms_per_job": round(1000 * cpu_lcm / jobs, 2),
        "submissions": submissions,
        "per_run_jobs": counts.get("connectome_run", 0),
        "per_run_submissions": groups,
    }
    if not reference:
        return result
    t_ref, cpu_ref, ref_out = best(theirs)
    reference_jobs = sum(job_counts(ref_out).values())
    return {
        **result,
        "t_reference_s": round(t_ref, 2),
        "cpu_reference_s": round(cpu_ref, 2),
        "reference_jobs": reference_jobs,
        "reference_cpu_ms_per_job": round(1000 * cpu_ref / reference_jobs, 2),
        # Headline on CPU time (steady on a shared machine); wall beside it.
        "ratio": round(cpu_lcm / cpu_ref, 3),
        "cpu_ratio": round(cpu_lcm / cpu_ref, 3),
        "wall_ratio": round(t_lcm / t_ref, 3),
        "job_ratio": round(jobs / reference_jobs, 3),
        "better": "lower",
    }


def slope(a: dict, b: dict, key: str, per: str) -> float:
    """Marginal CPU seconds of ``key`` per unit of ``per`` between two sizes (start-up cancels)."""
    return (b[key] - a[key]) / max(b[per] - a[per], 1e-9)


def quotient(num: float, den: float) -> float | None:
    """``num / den`` rounded, or None where the denominator is not positive: a marginal cost
    lost in the noise (tiny sizes, as ``--quick``'s) has no meaningful ratio."""
    return round(num / den, 3) if den > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, nargs=2, default=[1000, 10000])
    parser.add_argument(
        "--repeats", type=int, default=2, help="dry runs per contender and size, best kept (>= 2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="the job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long check that it runs (10 and 20 subjects, one dry run each)",
    )
    args = parser.parse_args()
    threads = cap_threads(args.threads)  # OMP_NUM_THREADS and the BLAS variables for Snakemake
    if args.quick:  # two sizes, so that growth_vs_linear is computed too: run by the test suite
        args.subjects = [10, 20]
    n1, n2 = sorted(args.subjects)
    base = max(1, n1 // 10)  # a third, small size: the marginal cost per job below n1
    # Best of two or more alternating runs for a measurement; --quick's timings are noise
    # anyway (tiny sizes), so one run each shows that every step works at half the dry runs.
    repeats = 1 if args.quick else max(2, args.repeats)
    with tempfile.TemporaryDirectory(prefix="lcm-dag-") as tmp:
        base_run = measure(base, Path(tmp), repeats, reference=False)
        print(json.dumps(base_run), flush=True)
        results = []
        for n in (n1, n2):
            results.append(measure(n, Path(tmp), repeats))
            print(json.dumps(results[-1]), flush=True)
    first, last = results
    marginal = slope(first, last, "cpu_dryrun_s", "jobs")
    reference_marginal = slope(first, last, "cpu_reference_s", "reference_jobs")
    below = slope(base_run, first, "cpu_dryrun_s", "jobs")
    summary = {
        **last,
        "threads": threads,
        "repeats": repeats,
        # CPU seconds per added subject between the two sizes: start-up cancels out.
        "marginal_cpu_s_per_subject": round(slope(first, last, "cpu_dryrun_s", "n"), 5),
        "marginal_cpu_ms_per_job": round(1000 * marginal, 3),
        "reference_marginal_cpu_ms_per_job": round(1000 * reference_marginal, 3),
        # Slower per job (this > 1) versus more jobs (job_ratio > 1).
        "marginal_per_job_ratio": quotient(marginal, reference_marginal),
        # Marginal CPU per job from n1 to n2 over that from the base size to n1: <= 1 is linear
        # or better (the fixed start-up is out of both; per job, so a changing mix of rules
        # per subject does not count as growth).
        "growth_vs_linear": quotient(marginal, below),
        "base_run": base_run,
        "runs": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
