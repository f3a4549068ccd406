"""Every benchmark runs: each script's ``--quick`` mode, as a subprocess, with its last-line JSON.

Benchmarks are run by hand, rarely; without this test a refactor of the package can break one
unseen (``synth_realism.py`` once crashed on a renamed attribute). Each ``benchmarks/*.py`` is
found on disk and run with ``--quick`` (seconds, tiny inputs, the same code path), so a new
benchmark is covered the moment it lands and must have a ``--quick`` mode. The JSON is checked for
the keys each benchmark documents, never for timings: performance is judged by reading the
ratios of the full runs, not by a test on a shared machine.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT
from helpers.benchmarks import load_benchmark

BENCHMARKS = ROOT / "benchmarks"
TIMEOUT_S = 300  # a hung benchmark fails the test instead of the suite
# dag_scale --quick plans 5 dry runs of the whole workflow (one per contender and size, 3 sizes
# of ours, 2 of the reference): ~1-2 min on 2 loaded cores.
SLOW_TIMEOUT_S = {"dag_scale.py": 600}
BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

TRAIN_KEYS = {
    "preset",
    "device",
    "batch",
    "threads",
    "gradient_checkpointing",
    "compile",
    "compile_scope",
    "sdp",
    "mark_step",
    "math_attention",
    "overlap",
    "inductor",
    "parameters",
    "train_flops_per_sample",
    "samples_s",
    "model_flops_s",
    "matmul_flops_s",
    "mfu",
    "executed_flops_per_sample",
    "hfu",
    "steps_trained",
    "loss",
    "compile_s",
    "warmup_s",
    "better",
}
# The losses of runs that trained the same steps agree to this on CPU (float32; fused or math
# attention, graphed or not): quick runs compile with aot_eager, the same kernels as eager.
LOSS_RTOL = 1e-4

# Keys each benchmark's last line documents (its docstring / benchmarks/README.md). A benchmark
# absent here (e.g. one just added) is still run; its last line need only be a JSON object.
KEYS: dict[str, set[str]] = {
    "dag_scale.py": {
        "n",
        "t_dryrun_s",
        "t_reference_s",
        "ratio",
        "cpu_dryrun_s",
        "cpu_reference_s",
        "cpu_ratio",
        "jobs",
        "submissions",
        "per_run_jobs",
        "per_run_submissions",
        "reference_jobs",
        "growth_vs_linear",
        "runs",
    },
    "ingest_scale.py": {
        "n",
        "t_ingest_s",
        "t_walk_s",
        "ratio",
        "t_second_s",
        "second_ratio",
        "t_touch_s",
        "t_job_runs_s",
        "job_ratio",
    },
    "parcellation.py": {
        "t_ours",
        "t_nilearn",
        "t_decompress",
        "ratio_vs_nilearn",
        "ratio_vs_decompress",
        "max_abs_diff_vs_nilearn",
        "max_abs_diff_vs_float64",
        "nilearn_diff_vs_float64",
        "rss_ours_mb",
        "rss_nilearn_mb",
        "rss_decompress_mb",
        "shape",
        "n_labels",
    },
    "bei_maps_memory.py": {
        "n_runs",
        "n_rois",
        "n_edges",
        "form",
        "new_peak_mb",
        "old_peak_mb",
        "ratio",
        "new_s",
        "old_s",
        "time_ratio",
        "max_rel_diff",
        "same_alpha",
        "better",
        "threads",
    },
    "pretrain_stream.py": {
        "n_runs",
        "n_rois",
        "epochs",
        "ratio",
        "rss_ratio",
        "stream_growth_mb",
        "memory_growth_mb",
        "same_training",
        "mismatches",
        "pairs_checked",
        "better",
        "threads",
    },
    "store.py": {
        "n",
        "n_rois",
        "gb",
        "workers",
        "samples_read",
        "write_mb_s",
        "raw_write_mb_s",
        "write_ratio",
        "read_samples_s",
        "read_mb_s",
        "raw_read_mb_s",
        "read_ratio",
        "peak_rss_mb",
        "write_peak_rss_mb",
        "targets_met",
    },
    "synth_realism.py": {
        "benchmark",
        "n_subjects",
        "voxel_subjects",
        "seed",
        "seconds",
        "all_in_range",
        "failures",
        "cohorts",
    },
    "synth_speed.py": {"benchmark", "cpus", "roi", "voxel", "all_targets_met"},
    "transfer.py": {
        "pretrain_gain",
        "pretrain_gain_ci_low",
        "linear_gap",
        "null_gain",
        "shared_rise",
        "shared_rise_ci_low",
        "oracle_spread",
        "pseudo_gain",
        "seeds",
        "targets_met",
    },
    "evaluate_speed.py": {
        "ratio_default_vs_single",
        "single_s",
        "default_s",
        "default_threads",
        "target",
        "identical_metrics",
    },
    "control_speed.py": {
        "ours_s",
        "reference_s",
        "ratio",
        "n_fits",
        "split",
        "identical_results",
    },
    "code_hash.py": {
        "verbs",
        "modules",
        "hash_s",
        "parse_s",
        "per_verb_s",
        "ratio",
        "per_verb_ratio",
        "identical_hashes",
    },
    "report_scale.py": {
        "growth_vs_linear",
        "auc_ratio_vs_pairwise",
        "identical_auc",
        "tangent_peak_over_fc",
        "tangent_reference_peak_over_fc",
        "tangent_same_reference",
        "oracle_ratio",
        "oracle_identical",
    },
    "train_throughput.py": TRAIN_KEYS,
    "gpu_smoke.sh": {"loss_agreement"},
}


def _dag(result: dict[str, Any]) -> None:
    # Both sizes were planned, and the connectome jobs were grouped into few submissions.
    assert [r["n"] for r in result["runs"]] == [10, 20]
    assert 0 < result["per_run_submissions"] < result["per_run_jobs"]


def _parcellation(result: dict[str, Any]) -> None:
    # Our engine is within the README's target of a float64 reference (measured ~4e-6), and
    # agrees with nilearn's float32 masker within both errors (nilearn's own ~2e-4): the
    # bounds and their check are the script's own (one owner), not repeated here.
    bench = load_benchmark("parcellation.py")
    assert not bench.accuracy_failures(result)


def _store(result: dict[str, Any]) -> None:
    assert result["samples_read"] == result["n"]


def _realism(result: dict[str, Any]) -> None:
    # Every preset's ROI tier and the voxel tier ran.
    assert {k.split("/")[1] for k in result["cohorts"]} == {"roi", "voxel-24P"}


# The variants of the compiled LCM-Base step (compile, mark_step, compile_scope, sdp, inductor,
# math_attention, overlap), in the order gpu_smoke.sh runs them.
VARIANTS = [
    ("reduce-overhead", False, "step", "auto", [], 0, False),
    ("reduce-overhead", False, "step", "auto", [], 16, True),
    ("reduce-overhead", False, "step", "auto", [], 0, True),
    ("reduce-overhead", False, "step", "auto", [], 16, False),
    ("max-autotune", False, "step", "auto", [], 16, True),
    ("reduce-overhead", False, "model", "auto", [], 0, False),
    ("reduce-overhead", True, "model", "auto", [], 0, False),
    ("reduce-overhead", False, "blocks", "math", [], 0, False),
    ("reduce-overhead", False, "model", "math", [], 0, False),
    ("reduce-overhead", False, "blocks", "flash", [], 0, False),
    ("reduce-overhead", False, "model", "auto", [], 0, False),  # LCM-Big
    ("reduce-overhead", False, "blocks", "mem_efficient", [], 0, False),
    ("reduce-overhead", False, "blocks", "auto", ["combo_kernels=True"], 0, False),
    ("reduce-overhead", True, "blocks", "auto", [], 0, False),
]


def _variants(runs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["compile"],
            r["mark_step"],
            r["compile_scope"],
            r["sdp"],
            r["inductor"],
            r["math_attention"],
            r["overlap"],
        )
        for r in runs
    ]


def _agreement(result: dict[str, Any]) -> list[dict[str, Any]]:
    """gpu_smoke.sh's last line: the runs that trained the same steps ended on the same loss."""
    groups = result["loss_agreement"]
    assert groups
    for group in groups:
        assert group["cases"] >= 2
        assert group["rel_spread"] <= LOSS_RTOL, group
    return groups


def _gpu_smoke(lines: list[str]) -> None:
    # Every case ran (none reports an error): eager and compiled, LCM-Big with gradient
    # checkpointing once (the variants: test_gpu_smoke_variants); then the agreement.
    runs = [json.loads(line) for line in lines[:-1]]
    assert all(set(TRAIN_KEYS) <= set(r) for r in runs)
    assert not [r for r in runs if "error" in r]
    assert {r["compile"] for r in runs} == {"off", "reduce-overhead"}
    # compile_s is compiling's time: none for eager cases (their warm-up is warmup_s).
    assert all((r["compile_s"] is None) == (r["compile"] == "off") for r in runs)
    assert [r["gradient_checkpointing"] for r in runs].count(True) == 1
    assert [r["compile_scope"] for r in runs] == ["blocks"] * len(runs)


def _code_hash(result: dict[str, Any]) -> None:
    # Shared caches give each verb the hash it gets alone; every contender was timed.
    assert result["identical_hashes"]
    assert result["hash_s"] > 0 and result["parse_s"] > 0 and result["per_verb_s"] > 0


def _report_scale(result: dict[str, Any]) -> None:
    # The new weighted AUC, tangent fit and oracle means equal the former ones exactly.
    assert result["identical_auc"] and result["tangent_same_reference"]
    assert result["oracle_identical"]


def _evaluate_speed(result: dict[str, Any]) -> None:
    # Same metrics at the default thread budget and at one thread; a ratio was measured.
    assert result["identical_metrics"]
    assert result["ratio_default_vs_single"] > 0


def _pretrain_stream(result: dict[str, Any]) -> None:
    # Both contenders trained at both sizes, and their peaks were read from the kernel.
    for loading in ("memory", "stream"):
        for n in result["n_runs"]:
            case = result[f"{loading}_{n}"]
            assert case["samples_s"] > 0 and case["peak_rss_mb"] > 50
    # ... and trained alike: the same data, held-out subjects and samples, losses close, and
    # every streamed sample's targets those of the connectome it carried.
    assert result["same_training"] is True and result["mismatches"] == []
    assert result["pairs_checked"] >= sum(result["n_runs"]) // 2


def _control_speed(result: dict[str, Any]) -> None:
    # The control's shared fits give the reference's metrics, predictions and null scores.
    assert result["identical_results"] is True
    assert result["n_fits"] > 0 and result["ratio"] > 0


def _bei_maps_memory(result: dict[str, Any]) -> None:
    # The maps read in pieces are the former fit's: the same penalties, coefficients within
    # 1e-8 (round-off; the tests' bound).
    assert result["same_alpha"] is True and result["max_rel_diff"] <= 1e-8
    assert result["new_peak_mb"] >= 0 and result["old_peak_mb"] >= 0


# Checks of a benchmark's non-timing output beyond its keys (given the last line's JSON).
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "bei_maps_memory.py": _bei_maps_memory,
    "code_hash.py": _code_hash,
    "control_speed.py": _control_speed,
    "dag_scale.py": _dag,
    "evaluate_speed.py": _evaluate_speed,
    "report_scale.py": _report_scale,
    "gpu_smoke.sh": _agreement,
    "parcellation.py": _parcellation,
    "pretrain_stream.py": _pretrain_stream,
    "store.py": _store,
    "synth_realism.py": _realism,
}

# Non-Python benchmarks, each with the command that runs its quick mode. A new one must be added.
# gpu_smoke.sh's variants run in a test of their own (test_gpu_smoke_variants), not twice.
SCRIPTS = {"gpu_smoke.sh": ["bash", str(BENCHMARKS / "gpu_smoke.sh"), "--quick", "--no-variants"]}
NOT_BENCHMARKS = {"README.md"}


def python_benchmarks() -> list[str]:
    """Every ``benchmarks/*.py`` on disk (a new one is run without editing this file)."""
    return sorted(p.name for p in BENCHMARKS.glob("*.py"))


def declares_quick(source: str) -> bool:
    """Whether ``source`` gives argparse a ``--quick`` option: an ``add_argument`` call naming
    it, not the string anywhere (a docstring's mention is no mode)."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and any(isinstance(a, ast.Constant) and a.value == "--quick" for a in node.args)
        ):
            return True
    return False


def command(name: str) -> list[str]:
    """The command that runs ``name``'s quick mode with this interpreter."""
    if name in SCRIPTS:
        return SCRIPTS[name]
    return [sys.executable, str(BENCHMARKS / name), "--quick"]


def quick_env(tmp: Path) -> dict[str, str]:
    """Environment of a quick run: one BLAS thread, scratch files under ``tmp``."""
    env = dict(os.environ)
    # Several BLAS threads per process on a shared 2-core machine only wait on each other.
    for var in BLAS_THREADS:
        env[var] = "1"
    env["TMPDIR"] = str(tmp)  # every benchmark writes through tempfile
    env["PYTHON"] = sys.executable  # gpu_smoke.sh's interpreter
    env["PROFILE_DIR"] = str(tmp / "profiles")  # gpu_smoke.sh: each case profiled there
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_quick(cmd: list[str], tmp: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """``cmd`` run in ``tmp`` with :func:`quick_env`, its output captured."""
    return subprocess.run(
        cmd,
        cwd=tmp,
        env=quick_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("name", python_benchmarks() + sorted(SCRIPTS))
def test_quick_run(name: str, tmp_path: Path) -> None:
    """``--quick`` exits 0 and its last line is JSON with the documented keys."""
    proc = run_quick(command(name), tmp_path, SLOW_TIMEOUT_S.get(name, TIMEOUT_S))
    output = proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, f"{name} --quick failed (status {proc.returncode}):\n{output}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{name} --quick printed nothing"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    missing = KEYS.get(name, set()) - set(result)
    assert not missing, f"{name}: last line lacks documented keys {sorted(missing)}"
    if name.endswith(".py"):
        # Every benchmark says which way its headline ratio is better and the threads it used.
        assert result.get("better", "absent") in ("higher", "lower", None), name
        assert isinstance(result.get("threads"), int), name
    if name in CHECKS:
        CHECKS[name](result)
    if name == "gpu_smoke.sh":
        _gpu_smoke(lines)
        # Five cases (base and big eager and compiled, big checkpointed): quick runs of base and
        # big are both the tiny model, their tables share a name.
        _gpu_smoke_profiles(tmp_path / "profiles", cases=5, tables=3)


def _gpu_smoke_profiles(folder: Path, cases: int, tables: int) -> None:
    """Each case (one process, one or two batch sizes) left its log, and the operator table and
    the timeline of its first batch size (cases with the same arguments share their names)."""
    logs = sorted(folder.glob("*.log"))
    found = sorted(folder.glob("*.txt"))
    traces = sorted(folder.glob("*.trace.json.gz"))
    assert len(logs) == cases
    assert [t.name.removesuffix(".txt") for t in found] == [
        t.name.removesuffix(".trace.json.gz") for t in traces
    ]
    assert len(found) == tables
    for table, trace in zip(found, traces, strict=True):
        assert json.loads(table.read_text().splitlines()[0])["steps"] >= 1
        with gzip.open(trace, "rt") as events:
            assert json.load(events)["traceEvents"], trace.name


def test_gpu_smoke_variants(tmp_path: Path) -> None:
    """``gpu_smoke.sh --quick --variants``: the reference compiled step, then every variant."""
    # Every variant compiles its own tiny model (inductor's C++ on the CPU): about 130 s alone
    # on 2 cores, and `make test` runs another test file beside it.
    cmd = ["bash", str(BENCHMARKS / "gpu_smoke.sh"), "--quick", "--variants"]
    proc = run_quick(cmd, tmp_path, timeout=3 * TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    *lines, last = proc.stdout.strip().splitlines()
    runs = [json.loads(line) for line in lines]
    assert not [r for r in runs if "error" in r]
    reference = ("reduce-overhead", False, "blocks", "auto", [], 0, False)
    assert _variants(runs) == [reference, *VARIANTS]
    assert {r["preset"] for r in runs} == {"tiny"}  # --quick's model replaced base
    # The same steps from the same weights in every case (LCM-Big's too: tiny here): one
    # group, every case in it, the graphed step's included.
    (group,) = _agreement(json.loads(last))
    assert group["cases"] == len(runs)
    # The reference and every variant; tiny LCM-Big compiled whole shares the name of the
    # tiny LCM-Base case compiled whole.
    _gpu_smoke_profiles(tmp_path / "profiles", cases=len(runs), tables=len(runs) - 1)


def test_every_benchmark_is_covered() -> None:
    """Every file in benchmarks/ is run above, and every Python benchmark has ``--quick``."""
    unknown = [
        p.name
        for p in BENCHMARKS.iterdir()
        if p.is_file()
        and p.suffix != ".py"
        and p.name not in SCRIPTS
        and p.name not in NOT_BENCHMARKS
    ]
    assert not unknown, f"benchmarks without a quick run in {Path(__file__).name}: {unknown}"
    no_quick = [n for n in python_benchmarks() if not declares_quick((BENCHMARKS / n).read_text())]
    assert not no_quick, f"benchmarks without a --quick mode: {no_quick}"
    # A key list for a benchmark that no longer exists is stale.
    stale = set(KEYS) - set(python_benchmarks()) - set(SCRIPTS)
    assert not stale, f"{Path(__file__).name} lists removed benchmarks: {sorted(stale)}"


@pytest.mark.parametrize(
    ("source", "declared"),
    [
        ('"""Run with --quick for seconds."""\nimport argparse\n', False),
        ('p.add_argument("--n", help="not --quick")\nprint("--quick")\n', False),
        ('p.add_argument("--quick-sizes", action="store_true")\n', False),
        ('p.add_argument("--quick", action="store_true")\n', True),
        ('p.add_argument("-q", "--quick", action="store_true")\n', True),
    ],
)
def test_a_quick_mode_is_an_argparse_option_not_a_mention(source: str, declared: bool) -> None:
    """A script passed as having a --quick mode when the string appeared anywhere in it, a
    docstring included; only an add_argument("--quick") call counts now."""
    assert declares_quick(source) is declared
