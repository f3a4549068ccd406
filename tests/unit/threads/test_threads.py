"""One thread budget per process: how it is decided, that every verb obeys it, and that the
evaluation's results do not depend on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from helpers.evaluate import TASK, make_cohort

from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
from lcm.threads import THREAD_VARIABLES, resolve_thread_budget, slurm_cpus

JOB = {"SLURM_JOB_ID": "42"}


def test_budget_is_the_explicit_threads_capped_by_the_cpus():
    assert resolve_thread_budget(3, env={}, cpus=8) == 3
    assert resolve_thread_budget(16, env={}, cpus=8) == 8  # never more threads than CPUs
    assert resolve_thread_budget(None, env={}, cpus=8) == 8


def test_budget_defaults_to_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert resolve_thread_budget(None, env={}) == 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({**JOB, "SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "32"}, 4),
        ({**JOB, "SLURM_CPUS_ON_NODE": "6"}, 6),
        ({**JOB, "SLURM_JOB_CPUS_PER_NODE": "5(x2),8"}, 5),
        ({**JOB, "SLURM_CPUS_PER_TASK": "junk", "SLURM_CPUS_ON_NODE": "2"}, 2),
        ({"SLURM_CPUS_PER_TASK": "4"}, None),  # left over from a login shell: no job
        (JOB, None),
    ],
)
def test_slurm_grant(env, expected):
    assert slurm_cpus(env) == expected


def test_budget_inside_a_slurm_job():
    env = {**JOB, "SLURM_CPUS_PER_TASK": "4"}
    assert resolve_thread_budget(None, env=env, cpus=64) == 4  # the grant, not the node
    assert resolve_thread_budget(2, env=env, cpus=64) == 2
    assert resolve_thread_budget(8, env=env, cpus=64) == 4  # --threads above the grant
    assert resolve_thread_budget(None, env=env, cpus=2) == 2  # affinity narrower than grant


_PROBE = textwrap.dedent(
    """
    import json, os, sys
    import lcm.commands.evaluate as verb
    from lcm import cli
    from lcm.threads import THREAD_VARIABLES

    def probe(args):
        # What the worker of a verb sees while it runs.
        import torch
        from threadpoolctl import threadpool_info
        print(json.dumps({
            "threads": args.threads,
            "pools": [i["num_threads"] for i in threadpool_info()],
            "torch": torch.get_num_threads(),
            "env": {k: os.environ.get(k) for k in THREAD_VARIABLES},
        }))
        return 0

    verb.run = probe
    sys.exit(cli.main(["evaluate", "--store", "s", "--atlas", "a", "--catalogue", "c",
                       "--task", "t", "--dataset", "d", "--label", "l", "--positive", "p",
                       "--out", "o", "--predictions", "p", *sys.argv[1:]]))
    """
)


def _probe(extra: list[str], env: dict[str, str]) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    for name in THREAD_VARIABLES:
        clean.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "env"),
    [
        (["--threads", "1"], {}),
        ([], {**JOB, "SLURM_CPUS_PER_TASK": "1"}),
    ],
    ids=["threads", "slurm"],
)
def test_blas_openmp_and_torch_capped_inside_a_verb(extra, env):
    seen = _probe(extra, env)
    assert seen["threads"] == 1
    assert seen["pools"] and set(seen["pools"]) == {1}, seen  # every BLAS/OpenMP pool loaded
    assert seen["torch"] == 1  # torch imported by the worker, after the budget was set
    assert set(seen["env"].values()) == {"1"}  # for child processes


@pytest.mark.slow
def test_budget_keeps_to_the_threads_snakemake_exported():
    """A rule's threads reach a verb without --threads as OMP_NUM_THREADS (Snakemake sets it)."""
    assert resolve_thread_budget(None, env={"OMP_NUM_THREADS": "1"}, cpus=8) == 1
    assert resolve_thread_budget(None, env={"OMP_NUM_THREADS": "16"}, cpus=8) == 8
    assert resolve_thread_budget(None, env={"OMP_NUM_THREADS": "junk"}, cpus=8) == 8
    assert resolve_thread_budget(4, env={"OMP_NUM_THREADS": "1"}, cpus=8) == 4  # --threads wins
    seen = _probe([], {"OMP_NUM_THREADS": "1"})
    assert seen["threads"] == 1 and set(seen["pools"]) == {1}


def test_cap_threads_applies_the_inherited_budget():
    """Benchmarks call cap_threads: OMP_NUM_THREADS (a job's threads) caps numpy's pools."""
    code = (
        "import json, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from lcm.threads import cap_threads\n"
        "print(json.dumps([cap_threads(), [i['num_threads'] for i in threadpool_info()]]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    budget, pools = json.loads(out.stdout)
    assert budget == 1 and set(pools) == {1}


@pytest.mark.slow
def test_default_budget_is_the_cpus_available():
    seen = _probe([], {})
    assert seen["threads"] == len(os.sched_getaffinity(0))
    assert set(seen["pools"]) == {seen["threads"]}


@pytest.mark.slow
def test_results_identical_at_one_and_two_workers():
    cohort = make_cohort(n_subjects=24, n_unlabeled=2)
    settings = EvaluationSettings(
        n_folds=3, label_fractions=(0.5, 1.0), models=("logreg", "tangent-logreg", "ridge")
    )
    one = evaluate_task(cohort, TASK, settings, master_seed=3, workers=1)
    two = evaluate_task(cohort, TASK, settings, master_seed=3, workers=2)
    pd.testing.assert_frame_equal(one.metrics, two.metrics)
    pd.testing.assert_frame_equal(one.predictions, two.predictions)
    assert np.isfinite(one.metrics["value"]).any()
