"""Speed of ``lcm evaluate`` at its default thread budget against ``--threads 1``.

Target (issue 18, item 7): ``ratio_default_vs_single <= 1.0``, the wall time of the same
evaluation at the default budget (no ``--threads``: the job's ``OMP_NUM_THREADS``, SLURM's
grant or the CPUs available) over its time at ``--threads 1``, both measured in this run, best
of ``--repeats`` alternating rounds (``better``: lower). The children inherit the environment,
so the default case keeps to a job's inherited ``OMP_NUM_THREADS`` as ``lcm evaluate`` in a rule
would (``--threads`` here sets it; the test suite's quick run has it at 1). Before the fix the
default let every BLAS/OpenMP pool (two OpenBLAS copies, two OpenMP runtimes, torch) take the
whole machine, and on a busy 2-core node each logistic-regression fit took 30x longer than at
one thread.

Each case runs in a fresh child process that sets its budget as the ``lcm`` command does
(:func:`lcm.threads.resolve_thread_budget`, :func:`~lcm.threads.apply_thread_budget`) and runs
:func:`lcm.evaluate.protocol.evaluate_task` with ``workers`` = the budget, on a synthetic cohort
built in code (class-dependent connectivity). The full run is the demo's autism task without
the LCM variants: 160 subjects, 116 ROIs, 5 folds, label fractions 0.1 and 1.0, logreg, svm,
ridge, tangent-logreg and the shuffled-label control (20 permuted refits). The metrics of both
cases must be identical. The last line is JSON.

    python benchmarks/evaluate_speed.py             # ~2-4 min on 2 cores
    python benchmarks/evaluate_speed.py --quick     # seconds: 30 subjects, 10 ROIs (make test)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from lcm.threads import cap_threads

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.0
FULL = {
    "n_subjects": 160,
    "n_rois": 116,
    "n_timepoints": 200,
    "n_folds": 5,
    "label_fractions": [0.1, 1.0],
    "models": ["logreg", "svm", "ridge", "tangent-logreg", "shuffled-labels"],
}
QUICK = {
    "n_subjects": 30,
    "n_rois": 10,
    "n_timepoints": 60,
    "n_folds": 3,
    "label_fractions": [1.0],
    "models": ["logreg", "tangent-logreg", "ridge"],
}


def make_cohort(n_subjects: int, n_rois: int, n_timepoints: int, seed: int = 0):
    """Runs whose FC differs by class (positives share a latent signal over a few ROIs)."""
    import numpy as np
    import pandas as pd

    from lcm.store.cohort import Cohort

    rng = np.random.default_rng(seed)
    ids, fcs, labels = [], [], []
    k = max(3, n_rois // 10)
    for s in range(n_subjects):
        cls = s % 2
        ts = rng.normal(size=(n_timepoints, n_rois))
        ts[:, :k] += (0.5 if cls else 0.3) * rng.normal(size=(n_timepoints, 1))
        fcs.append(np.corrcoef(ts.T).astype(np.float32))
        ids.append(("abidelike", f"s{s:04d}", "", "rest", "1", f"site{s % 3}"))
        labels.append(("control", "autism")[cls])
    ids_df = pd.DataFrame(ids, columns=["dataset", "subject", "session", "task", "run", "site"])
    variables = pd.DataFrame({"autism": pd.Series(labels, dtype=object)})
    return Cohort(ids_df, np.stack(fcs), variables, [f"roi{i}" for i in range(n_rois)], "toy")


def run_case(threads: int | None, spec: dict) -> dict:
    """One evaluation in this process at the budget ``threads`` (None: the default)."""
    from lcm.threads import apply_thread_budget, blas_threads, resolve_thread_budget

    budget = apply_thread_budget(resolve_thread_budget(threads))
    from lcm.evaluate.protocol import EvaluationSettings, Task, evaluate_task

    cohort = make_cohort(spec["n_subjects"], spec["n_rois"], spec["n_timepoints"])
    task = Task(name="autism", label="autism", negative="control", positive="autism")
    settings = EvaluationSettings(
        n_folds=spec["n_folds"],
        label_fractions=tuple(spec["label_fractions"]),
        models=tuple(spec["models"]),
    )
    start = time.perf_counter()
    cpu0 = time.process_time()
    result = evaluate_task(cohort, task, settings, master_seed=1, workers=budget)
    wall = time.perf_counter() - start
    table = result.metrics.sort_values(list(result.metrics.columns[:-1]))
    digest = hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    return {
        "threads": budget,
        "wall_s": round(wall, 3),
        "parent_cpu_s": round(time.process_time() - cpu0, 3),
        "blas_threads": blas_threads(),
        "metrics_sha256": digest,
        "mean_auc": {
            m: round(float(v), 4)
            for m, v in table[table.metric == "auc"].groupby("model")["value"].mean().items()
        },
    }


def child(threads: int | None, spec: dict) -> dict:
    """``run_case`` in a fresh process (its libraries load under its own budget).

    The child inherits this process's environment, ``OMP_NUM_THREADS`` and the BLAS variables
    included (set to the job's threads by :func:`lcm.threads.cap_threads`), as a user's job
    does: the default case resolves its budget from them, as ``lcm evaluate`` would in a rule.
    """
    cmd = [sys.executable, __file__, "--case", json.dumps({"threads": threads, "spec": spec})]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"case threads={threads} failed with exit code {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run both cases (``--repeats`` rounds, best of each) and print the ratio as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Tiny cohort, seconds.")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds; the best of each case.")
    parser.add_argument(
        "--threads",
        type=int,
        help="The job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available);"
        " the default case inherits them.",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(run_case(case["threads"], case["spec"])))
        return 0
    budget = cap_threads(args.threads)  # exported to the children as OMP_NUM_THREADS etc.
    spec = QUICK if args.quick else FULL
    runs: dict[str, list[dict]] = {"single": [], "default": []}
    cases = [("single", 1), ("default", None)]
    for round_ in range(max(1, args.repeats)):
        # Alternating, so that load from other work on the machine, and whatever the first
        # child of a round pays (cold caches), hit both cases alike: each goes first in turn.
        for name, threads in cases if round_ % 2 == 0 else cases[::-1]:
            res = child(threads, spec)
            runs[name].append(res)
            print(
                f"{name:8s} threads={res['threads']:2d} wall {res['wall_s']:8.2f} s  "
                f"BLAS {res['blas_threads']}",
                flush=True,
            )
    best = {name: min(r["wall_s"] for r in rs) for name, rs in runs.items()}
    digests = {r["metrics_sha256"] for rs in runs.values() for r in rs}
    result = {
        "quick": args.quick,
        "spec": spec,
        "threads": budget,
        "repeats": max(1, args.repeats),
        "default_threads": runs["default"][0]["threads"],
        "single_s": best["single"],
        "default_s": best["default"],
        "ratio_default_vs_single": round(best["default"] / best["single"], 3),
        "target": TARGET,
        "better": "lower",
        "identical_metrics": len(digests) == 1,
        "mean_auc": runs["single"][0]["mean_auc"],
    }
    print(json.dumps(result))
    return 0 if result["identical_metrics"] else 1


if __name__ == "__main__":
    sys.exit(main())
