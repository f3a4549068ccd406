"""How long Snakemake takes to plan the LCM workflow for large cohorts, against a minimal one.

For each N (default 1,000 and 10,000 subjects, one run each) this builds placeholder BIDS data
(empty images: planning never opens them), then times, in the same run and with the same flags,
``snakemake -n --forceall --profile profiles/slurm`` on

- the full LCM workflow (ingest, fMRIPrep and connectome jobs per subject, then the store,
  pretraining, finetuning, evaluation and report aggregates), and
- a reference Snakefile with two trivial per-subject rules and one aggregate.

It counts the planned jobs and the SLURM submissions after grouping (``group-components`` in the
profile batch the per-run connectome jobs). Targets at 10,000 subjects: ratio <= 1.5, growth
no worse than linear from 1,000 to 10,000, and per-run submissions <= per-run jobs / 20.

Usage: ``python benchmarks/dag_scale.py [--subjects 1000 10000]``; ``--quick`` (run by the test
suite) plans 10 and 20 subjects in seconds. The last line is JSON. Only dry runs: neither SLURM
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


def measure(n: int, tmp: Path) -> dict:
    """Plan the LCM workflow and the reference for ``n`` subjects; timings and counts."""
    work = tmp / f"n{n}"
    work.mkdir()
    cfg, config = placeholder_config(work, {"hcplike": 0, "abidelike": DOWNSTREAM_SUBJECTS})
    raw = Path(cfg["datasets"]["hcplike"]["path"])
    for i in range(n):
        add_subject(raw, f"{i:06d}")
    config.write_text(yaml.safe_dump(cfg))
    t_lcm, cpu_lcm, out = dry_run(ROOT / "Snakefile", work, "--configfile", str(config))
    ref = tmp / f"ref{n}"
    ref.mkdir()
    (ref / "Snakefile").write_text(REFERENCE)
    t_ref, cpu_ref, ref_out = dry_run(ref / "Snakefile", ref, "--config", f"raw={raw}")
    counts = job_counts(out)
    local = {"all", "report", "connectome_collect"}  # localrules: never submitted
    groups = len(re.findall(r"Group job connectome\b", out))
    grouped_rules = {"connectome_run"}
    submissions = groups + sum(c for r, c in counts.items() if r not in local | grouped_rules)
    return {
        "n": n,
        "t_dryrun_s": round(t_lcm, 2),
        "t_reference_s": round(t_ref, 2),
        "ratio": round(t_lcm / t_ref, 3),
        "cpu_dryrun_s": round(cpu_lcm, 2),
        "cpu_reference_s": round(cpu_ref, 2),
        "cpu_ratio": round(cpu_lcm / cpu_ref, 3),
        "jobs": sum(counts.values()),
        "submissions": submissions,
        "per_run_jobs": counts.get("connectome_run", 0),
        "per_run_submissions": groups,
        "reference_jobs": sum(job_counts(ref_out).values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long check that it runs (10 and 20 subjects)"
    )
    args = parser.parse_args()
    if args.quick:  # two sizes, so that growth_vs_linear is computed too: run by the test suite
        args.subjects = [10, 20]
    results = []
    with tempfile.TemporaryDirectory(prefix="lcm-dag-") as tmp:
        for n in args.subjects:
            results.append(measure(n, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    last = dict(results[-1])
    if len(results) > 1:
        first = results[0]
        # Seconds per subject at the largest N over that at the smallest: <= 1 is linear or better.
        last["growth_vs_linear"] = round(
            (last["t_dryrun_s"] / last["n"]) / (first["t_dryrun_s"] / first["n"]), 3
        )
    last["runs"] = results
    print(json.dumps(last))


if __name__ == "__main__":
    main()
