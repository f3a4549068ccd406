"""How the evaluation and report stages scale with the number of subjects.

Three parts, each measured against a reference in the same run (CPU time, best of
``--repeats``; the last line is JSON):

- ``bootstrap``: :func:`lcm.evaluate.compare.paired_bootstrap` (the report's headline paired
  bootstrap, 2,000 replicates, 5 folds) at ``n`` and ``4n`` test subjects. ``growth_vs_linear``
  = time(4n) / time(n) / 4: 1 is linear, the former pairwise weighted AUC (a positives x
  negatives matrix per fold, einsummed over the replicates) grew as n^2 (exponent ~2.2 measured
  by the review). ``auc_ratio_vs_pairwise`` = the weighted AUC of one fold under every
  replicate's weights over that pairwise formula's time at ``4n`` (kept here as the
  reference), with ``identical_auc`` (bootstrap counts: every sum is exact, so equal).
- ``tangent``: peak RSS of :meth:`lcm.evaluate.tangent.TangentSpace.fit` in a fresh child
  process over the float32 training connectomes' bytes (``tangent_peak_over_fc``), beside the
  former whole-stack fit's (float64 copy, whole-stack eigendecompositions:
  ``tangent_reference_peak_over_fc``, ~6 at 3,200 x 116 ROIs).
- ``oracle``: the per-subject means of :func:`lcm.synth.oracle.scan_oracle` (one pass over the
  runs) against the former per-label set and per-subject mask loops (quadratic), at
  ``oracle_n`` subjects of one run: ``oracle_ratio`` = ours / former.

Headline ``ratio`` = the bootstrap's ``growth_vs_linear`` (``better``: lower; target <= 1.5).

    python benchmarks/report_scale.py            # ~1-2 min on 2 cores
    python benchmarks/report_scale.py --quick    # seconds (make test)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from lcm.threads import cap_threads

TARGET = 1.5
FULL = {"n": 2000, "n_boot": 2000, "tangent_n": 1600, "rois": 116, "oracle_n": 8000}
QUICK = {"n": 200, "n_boot": 200, "tangent_n": 600, "rois": 20, "oracle_n": 1000}


def _predictions(n: int, seed: int = 0) -> pd.DataFrame:
    """Two models' predictions for ``n`` test subjects in 5 folds, tied scores included."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    frames = [
        pd.DataFrame(
            {
                "task": "t",
                "model": model,
                "label_fraction": 1.0,
                "seed": 0,
                "fold": np.arange(n) % 5,
                "dataset": "d",
                "subject": [f"s{i}" for i in range(n)],
                "site": "",
                "y_true": y,
                "prediction": np.round(y * shift + rng.random(n), 2),
            }
        )
        for model, shift in (("lcm", 0.3), ("logreg", 0.2))
    ]
    return pd.concat(frames, ignore_index=True)


def _pairwise_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The former weighted AUC: the positives x negatives comparison matrix, einsummed."""
    pos, neg = y == 1, y == 0
    cmp = (scores[pos][:, None] > scores[neg][None, :]).astype(float)
    cmp += 0.5 * (scores[pos][:, None] == scores[neg][None, :])
    w_pos, w_neg = weights[:, pos], weights[:, neg]
    num = np.einsum("bi,ij,bj->b", w_pos, cmp, w_neg)
    return num / (w_pos.sum(axis=1) * w_neg.sum(axis=1))


def _best(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return min(times)


def bootstrap(spec: dict, repeats: int) -> dict:
    from lcm.evaluate.compare import _subject_weights, _weighted_auc, paired_bootstrap

    n, n_boot = spec["n"], spec["n_boot"]
    times = {}
    for size in (n, 4 * n):
        pred = _predictions(size)
        times[size] = _best(
            lambda pred=pred: paired_bootstrap(pred, "t", 1.0, "lcm", "logreg", n_boot), repeats
        )
    # One fold of the larger cohort: its scores and every replicate's weights.
    rng = np.random.default_rng(1)
    fold = _predictions(4 * n // 5, seed=2).query("model == 'lcm'")
    scores, y = fold["prediction"].to_numpy(), fold["y_true"].to_numpy()
    weights = _subject_weights(y.astype(int), n_boot, rng).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ours = _best(lambda: _weighted_auc(scores, y, weights), repeats)
        former = _best(lambda: _pairwise_auc(scores, y, weights), repeats)
        identical = bool(
            np.array_equal(
                _weighted_auc(scores, y, weights), _pairwise_auc(scores, y, weights), equal_nan=True
            )
        )
    return {
        "n": n,
        "n_boot": n_boot,
        "bootstrap_s": round(times[n], 3),
        "bootstrap_4n_s": round(times[4 * n], 3),
        "growth_vs_linear": round(times[4 * n] / max(times[n], 1e-9) / 4, 3),
        "auc_s": round(ours, 4),
        "auc_pairwise_s": round(former, 4),
        "auc_ratio_vs_pairwise": round(ours / max(former, 1e-9), 4),
        "identical_auc": identical,
    }


def _whole_stack_fit(fc: np.ndarray, shrinkage: float = 0.1) -> np.ndarray:
    """The former TangentSpace.fit: the whole float64 stack at once (reference)."""
    from lcm.evaluate.tangent import _eig_apply

    mats = (1 - shrinkage) * np.asarray(fc, dtype=np.float64) + shrinkage * np.eye(fc.shape[1])
    if np.linalg.eigvalsh(mats).min() <= 0:
        raise ValueError("not positive definite")
    mean = mats.mean(axis=0)
    for _ in range(30):
        sqrt = _eig_apply(mean, np.sqrt)
        inv_sqrt = _eig_apply(mean, lambda v: 1.0 / np.sqrt(v))
        grad = _eig_apply(inv_sqrt @ mats @ inv_sqrt, np.log).mean(axis=0)
        mean = sqrt @ _eig_apply(grad, np.exp) @ sqrt
        mean = (mean + mean.T) / 2.0
        if np.linalg.norm(grad) / np.sqrt(len(grad)) < 1e-5:
            break
    return mean


def tangent_case(which: str, n: int, rois: int) -> dict:
    """In a child: build ``n`` float32 correlation matrices one at a time, then fit."""
    from lcm.evaluate.tangent import TangentSpace

    rng = np.random.default_rng(0)
    fc = np.empty((n, rois, rois), np.float32)
    for i in range(n):
        fc[i] = np.corrcoef(rng.standard_normal((3 * rois, rois)), rowvar=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.process_time()
    if which == "ours":
        reference = TangentSpace().fit(fc).reference_
    else:
        reference = _whole_stack_fit(fc)
    cpu = time.process_time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "peak_over_fc": round((peak - before) / fc.nbytes, 3),
        "cpu_s": round(cpu, 3),
        "reference_sum": float(reference.sum()),
    }


def tangent(spec: dict) -> dict:
    out = {}
    for which in ("ours", "reference"):
        case = json.dumps({"which": which, "n": spec["tangent_n"], "rois": spec["rois"]})
        proc = subprocess.run(
            [sys.executable, __file__, "--case", case], capture_output=True, text=True, check=True
        )
        out[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "tangent_n": spec["tangent_n"],
        "rois": spec["rois"],
        "tangent_peak_over_fc": out["ours"]["peak_over_fc"],
        "tangent_reference_peak_over_fc": out["reference"]["peak_over_fc"],
        "tangent_cpu_s": out["ours"]["cpu_s"],
        "tangent_reference_cpu_s": out["reference"]["cpu_s"],
        "tangent_same_reference": out["ours"]["reference_sum"] == out["reference"]["reference_sum"],
    }


def oracle(spec: dict, repeats: int) -> dict:
    from lcm.synth.oracle import _subject_means

    n = spec["oracle_n"]
    run_subjects = np.array([str(5 * 10**6 + i) for i in range(n)])
    labels = {s: k % 2 for k, s in enumerate(run_subjects.tolist())}
    runs = np.random.default_rng(0).random((n, 16), dtype=np.float32)

    def ours():
        present = set(run_subjects.tolist())
        subjects = sorted(s for s in labels if s in present)
        return _subject_means(runs, run_subjects, subjects)

    def former():
        subjects = sorted(s for s in labels if s in set(run_subjects.tolist()))
        return np.stack([runs[run_subjects == s].mean(axis=0, dtype=np.float64) for s in subjects])

    t_ours, t_former = _best(ours, repeats), _best(former, 1)
    return {
        "oracle_n": n,
        "oracle_s": round(t_ours, 4),
        "oracle_former_s": round(t_former, 4),
        "oracle_ratio": round(t_ours / max(t_former, 1e-9), 5),
        "oracle_identical": bool(np.array_equal(ours(), former())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Tiny inputs, seconds.")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds; the best of each.")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the job's).")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = cap_threads(args.threads)
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(tangent_case(case["which"], case["n"], case["rois"])))
        return 0
    spec = QUICK if args.quick else FULL
    repeats = max(1, args.repeats)
    result = {"quick": args.quick, "threads": threads, "repeats": repeats}
    for part in (bootstrap(spec, repeats), tangent(spec), oracle(spec, repeats)):
        print(json.dumps(part), flush=True)
        result.update(part)
    result.update(ratio=result["growth_vs_linear"], target=TARGET, better="lower")
    print(json.dumps(result))
    exact = (result["identical_auc"], result["tangent_same_reference"], result["oracle_identical"])
    return 0 if all(exact) else 1


if __name__ == "__main__":
    sys.exit(main())
