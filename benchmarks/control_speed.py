"""Speed of the shuffled-label control's fits against the straightforward fit it replaces.

``lcm evaluate``'s ``shuffled-labels`` control refits the task's linear baseline (logistic
regression for a binary task) on ``control_permutations`` permutations of the training labels,
each choosing its ``C`` by inner cross-validation. Ours (:mod:`lcm.evaluate.baselines`)
computes the features and the scaler of all labeled training runs once per control fit (the
permutations keep the labeled runs) and fits each inner fold's scaler once for every grid
value. The reference, kept here (:func:`reference_fit`), is the former fit: features per
permutation, scikit-learn's ``GridSearchCV`` over a fresh scaler + estimator pipeline per grid
value and fold. Both run :func:`lcm.evaluate.protocol.evaluate_task` with the control alone on
the same synthetic cohort (three sites, ``split: site`` by default: every seed refits the same
training folds) in this process, best of ``--repeats`` alternating rounds; their metrics,
predictions and permutation scores must be identical (else exit 1). The last line is JSON:
``ratio`` = ours / reference wall time (``better``: lower).

    python benchmarks/control_speed.py             # ~3-5 min on 2 cores
    python benchmarks/control_speed.py --quick     # seconds: 30 subjects, 10 ROIs (make test)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lcm.threads import cap_threads

FULL = {
    "n_subjects": 160,
    "n_rois": 116,
    "n_timepoints": 200,
    "seeds": [0, 1],
    "permutations": 20,
}
QUICK = {"n_subjects": 30, "n_rois": 10, "n_timepoints": 60, "seeds": [0, 1], "permutations": 3}


def reference_fit(self: Any, fc: Any, y: Any, variables: Any = None, groups: Any = None) -> Any:
    """The former ``_TunedLinear.fit``: features per fit, ``GridSearchCV``'s own loop.

    Parameters
    ----------
    self : lcm.evaluate.baselines._TunedLinear
        The model fitted (this replaces its ``fit``).
    fc, y, variables, groups
        As :meth:`lcm.evaluate.baselines._TunedLinear.fit`.

    Returns
    -------
    The fitted model.
    """
    import numpy as np
    import sklearn
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lcm.evaluate.baselines import _labeled_rows, inner_splits

    self._fit_features(np.asarray(fc))
    x, y_lab, g = _labeled_rows(fc, y, groups, type(self).__name__, self.binary)
    feats = self._features(x)
    with sklearn.config_context(assume_finite=True):
        splits = inner_splits(y_lab, g, self.seed)
        pipeline = make_pipeline(StandardScaler(), self._estimator(self.default))
        if splits is None:
            self.best_param_ = self.default
            self.model_ = pipeline.fit(feats, y_lab)
        else:
            name = f"{self._step()}__{self.param}"
            search = GridSearchCV(
                pipeline,
                {name: list(self.grid)},
                scoring=self.scoring,
                cv=splits,
                error_score=np.nan,
            )
            search.fit(feats, y_lab)
            self.best_param_ = float(search.best_params_[name])
            self.model_ = search.best_estimator_
    self.n_train_ = len(y_lab)
    return self


def run_case(reference: bool, spec: dict, split: str) -> tuple[float, Any]:
    """One evaluation of the control alone (the reference fit when ``reference``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from evaluate_speed import make_cohort

    from lcm.evaluate import baselines
    from lcm.evaluate.protocol import EvaluationSettings, Task, evaluate_task

    cohort = make_cohort(spec["n_subjects"], spec["n_rois"], spec["n_timepoints"])
    task = Task(name="autism", label="autism", negative="control", positive="autism")
    settings = EvaluationSettings(
        split=split,
        n_folds=3,
        seeds=tuple(spec["seeds"]),
        label_fractions=(1.0,),
        models=("shuffled-labels",),
        control_permutations=spec["permutations"],
    )
    ours = baselines._TunedLinear.fit
    if reference:
        baselines._TunedLinear.fit = reference_fit
    try:
        start = time.perf_counter()
        result = evaluate_task(cohort, task, settings, master_seed=1, workers=1)
        return time.perf_counter() - start, result
    finally:
        baselines._TunedLinear.fit = ours


def main(argv: list[str] | None = None) -> int:
    """Run both contenders (``--repeats`` alternating rounds, best of each); print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Tiny cohort, seconds.")
    parser.add_argument("--repeats", type=int, default=2, help="Rounds; the best of each.")
    parser.add_argument("--split", choices=["site", "subject"], default="site")
    parser.add_argument(
        "--threads",
        type=int,
        help="The job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available).",
    )
    args = parser.parse_args(argv)
    budget = cap_threads(args.threads)
    spec = QUICK if args.quick else FULL
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    results: dict[str, Any] = {}
    cases = [("ours", False), ("reference", True)]
    for round_ in range(max(1, args.repeats)):
        # Alternating, so that other load on the machine hits both alike.
        for name, reference in cases if round_ % 2 == 0 else cases[::-1]:
            seconds, result = run_case(reference, spec, args.split)
            times[name].append(seconds)
            results[name] = result
            print(f"{name:9s} {seconds:8.2f} s", flush=True)
    ours, ref = results["ours"], results["reference"]
    identical = (
        ours.metrics.equals(ref.metrics)
        and ours.predictions.equals(ref.predictions)
        and ours.permutation_scores == ref.permutation_scores
    )
    best = {name: min(t) for name, t in times.items()}
    summary = {
        "quick": args.quick,
        "spec": spec,
        "split": args.split,
        "threads": budget,
        "repeats": max(1, args.repeats),
        "n_fits": len(ours.permutation_scores),
        "ours_s": round(best["ours"], 3),
        "reference_s": round(best["reference"], 3),
        "ratio": round(best["ours"] / best["reference"], 3),
        "better": "lower",
        "identical_results": identical,
    }
    print(json.dumps(summary))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
