"""`lcm bei-maps` memory: connectomes streamed and a Gram matrix vs the cohort loaded whole.

Ours: what ``lcm bei-maps`` runs, :func:`lcm.store.read.load_streamed_cohort` then
:func:`lcm.train.bei_maps.fit_streamed_bei_maps` (the connectomes streamed into a temporary
file, the fit holding the Gram matrix and its eigenvectors). Reference: the former code, kept
here only (:func:`reference_fit_bei_maps`): the cohort loaded whole (``load_cohort``), float64
Fisher-z features, their standardised copy and scikit-learn ``Ridge`` refits. Both on the same
synthetic one-dataset store, each in a child process whose peak RSS above its RSS before the
fit (the kernel's high-water mark, reset once the imports are done) is the memory the fit
adds; the maps of the two are compared (``max_rel_diff``: largest coefficient, intercept or
held-out R² difference over that array's largest magnitude; ``same_alpha``).

The last line printed is JSON: ``n_runs``, ``n_rois``, ``n_edges``, ``form`` (``dual`` when
the training runs are fewer than the edges), ``new_peak_mb``, ``old_peak_mb``, ``ratio`` (new /
old peak, ``better``: lower), ``new_s``, ``old_s``, ``time_ratio`` (new / old seconds),
``max_rel_diff``, ``same_alpha`` and ``threads``. It exits 1, after that line, unless the
penalties are the same and ``max_rel_diff <= 1e-8`` (inf where the NaN entries differ).

    python benchmarks/bei_maps_memory.py --quick     # seconds (make test)
    python benchmarks/bei_maps_memory.py             # 3,000 runs x 150 ROIs (dual form)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from lcm.catalogue import load_catalogue
from lcm.store.commit import commit_dataset
from lcm.store.layout import n_edges
from lcm.store.writer import variables_id, write_connectome_arrays, write_variables
from lcm.threads import cap_threads
from lcm.train.bei_maps import (
    ALPHAS,
    DEFAULT_ALPHA,
    HOLDOUT_FRACTION,
    BEIMaps,
    bei_target_matrix,
    connectome_features,
)
from lcm.train.bei_maps import _not_scorable as not_scorable

CATALOGUE = """
variables:
  age: {kind: continuous, domain: sociodemographic, units: years, range: [5, 100]}
  sex: {kind: binary, domain: sociodemographic, levels: [F, M]}
datasets:
  bench:
    id_column: SUB_ID
    columns:
      age: {column: AGE}
      sex: {column: SEX}
"""
ATLAS = "bench"
BLOCK = 64  # runs generated and written at a time


def write_store(root: Path, catalogue_path: Path, n: int, n_rois: int, seed: int = 0) -> None:
    """A one-dataset store of ``n`` runs (two per subject) whose edges carry age and sex.

    Edge values are ``tanh`` of noise plus age on the first tenth of the edges and sex on the
    next tenth; one age in seven is missing.
    """
    rng = np.random.default_rng(seed)
    e = n_edges(n_rois)
    subjects = [f"s{i // 2:06d}" for i in range(n)]
    runs = pd.DataFrame(
        {"subject": subjects, "task": "rest", "run": [str(1 + i % 2) for i in range(n)]}
    )
    runs["run_key"] = [
        f"sub-{s}_task-rest_run-{r}" for s, r in zip(subjects, runs["run"], strict=True)
    ]
    people = sorted(set(subjects))
    age = rng.uniform(20, 80, len(people))
    sex = np.where(rng.random(len(people)) < 0.5, "F", "M").astype(object)
    phenotype = pd.DataFrame({"subject": people, "site": "", "age": age, "sex": sex})
    phenotype.loc[::7, "age"] = np.nan
    catalogue = load_catalogue(catalogue_path)
    who = np.repeat(np.arange(len(people)), 2)[:n]
    signal_age = (age[who] - 50.0) / 30.0
    signal_sex = np.where(sex[who] == "M", 0.5, -0.5)
    tenth = max(1, e // 10)

    def blocks():  # (b, E) float32
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            z = 0.3 * rng.standard_normal((stop - start, e)) + 0.3
            z[:, :tenth] += 0.3 * signal_age[start:stop, None]
            z[:, tenth : 2 * tenth] += 0.3 * signal_sex[start:stop, None]
            yield np.tanh(z).astype(np.float32)

    names = [f"roi{i}" for i in range(n_rois)]
    with commit_dataset(root, "bench", variables_id(phenotype, catalogue)) as commit:
        write_connectome_arrays(root, "bench", ATLAS, runs, blocks(), names, commit=commit)
        write_variables(root, "bench", phenotype, catalogue, commit=commit)
        commit.apply()


def _reference_path(
    x: np.ndarray, y: np.ndarray, x_val: np.ndarray, alphas: tuple[float, ...]
) -> np.ndarray:
    """The former ``_ridge_path``: held-out predictions ``(A, n_val, V)`` per penalty."""
    n, p = x.shape
    out = np.empty((len(alphas), len(x_val), y.shape[1]))
    if n <= p:
        evals, q = np.linalg.eigh(x @ x.T)
        qty = q.T @ y
        kv = x_val @ x.T @ q
        for a, alpha in enumerate(alphas):
            out[a] = kv @ (qty / (evals + alpha)[:, None])
    else:
        evals, v = np.linalg.eigh(x.T @ x)
        vtxty = v.T @ (x.T @ y)
        xv = x_val @ v
        for a, alpha in enumerate(alphas):
            out[a] = xv @ (vtxty / (evals + alpha)[:, None])
    return out


def reference_fit_bei_maps(
    fc: np.ndarray,
    variables: pd.DataFrame,
    groups: np.ndarray,
    seed: int = 0,
    alphas: tuple[float, ...] = ALPHAS,
) -> BEIMaps:
    """The former ``fit_bei_maps`` (every feature in memory, scikit-learn ``Ridge`` refits):
    the reference of this benchmark and of the tests that the new fit gives the same maps."""
    y, names = bei_target_matrix(variables.reset_index(drop=True))
    feats = connectome_features(fc)
    subjects = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_out = max(1, round(HOLDOUT_FRACTION * len(subjects))) if len(subjects) >= 10 else 0
    held = np.isin(groups, rng.permutation(subjects)[:n_out])
    train = ~held if n_out else np.ones(len(groups), dtype=bool)
    x_mean = feats[train].mean(axis=0)
    x_scale = feats[train].std(axis=0)
    x_scale[x_scale == 0] = 1.0
    x = (feats - x_mean) / x_scale
    y_mean = np.nanmean(y[train], axis=0)
    y_c = np.where(np.isfinite(y), y - y_mean, 0.0)
    alpha = np.full(len(names), DEFAULT_ALPHA)
    r2 = np.full(len(names), np.nan)
    if n_out:
        pred = _reference_path(x[train], y_c[train], x[held], alphas)
        truth, present = y_c[held], np.isfinite(y[held])
        for v in range(len(names)):
            ok = present[:, v]
            if not_scorable(y[held][ok, v], np.nanmax(np.abs(y[:, v]))):
                continue
            sse = ((pred[:, ok, v] - truth[ok, v][None]) ** 2).sum(axis=1)
            best = int(np.argmin(sse))
            alpha[v] = alphas[best]
            sst = ((truth[ok, v] - truth[ok, v].mean()) ** 2).sum()
            r2[v] = 1.0 - sse[best] / sst
    coef = np.empty((x.shape[1], len(names)))
    for a in np.unique(alpha):
        cols = np.flatnonzero(alpha == a)
        model = Ridge(alpha=float(a), fit_intercept=False, solver="auto")
        model.fit(x[train], y_c[train][:, cols])
        coef[:, cols] = np.atleast_2d(model.coef_).T
    return BEIMaps(names, x_mean, x_scale, coef, y_mean, alpha, r2)


def _rss_kb(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, kB (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(which: str, store: Path, catalogue_path: Path, out: Path) -> None:
    """Fit the maps one way, save them to ``out`` and print ``{"peak_mb", "seconds"}``."""
    from lcm.store.read import load_cohort, load_streamed_cohort
    from lcm.train.bei_maps import fit_streamed_bei_maps
    from lcm.train.streamed import cohort_stream  # noqa: F401  (torch: imported before the mark)

    catalogue = load_catalogue(catalogue_path)
    before = _rss_kb("VmRSS")
    try:  # reset the high-water mark to the current RSS: the imports' peak is not the fit's
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    if which == "new":
        cohort = load_streamed_cohort(store, ATLAS, ["bench"], catalogue)
        maps = fit_streamed_bei_maps(cohort, catalogue)
    else:
        cohort = load_cohort(store, ATLAS, ["bench"], catalogue)
        maps = reference_fit_bei_maps(cohort.fc, cohort.variables, cohort.groups)
        del cohort
    seconds = time.perf_counter() - started
    peak = _rss_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maps.save(out)
    print(json.dumps({"peak_mb": (peak - before) / 1024, "seconds": seconds}))


def run_child(which: str, store: Path, catalogue: Path, out: Path) -> dict:
    """One child's JSON line."""
    command = [sys.executable, __file__, "--child", which, "--store", str(store)]
    command += ["--catalogue", str(catalogue), "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the {which} fit failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


MAX_REL_DIFF = 1e-8  # round-off between the two fits (the tests' bound)


def max_rel_diff(new: BEIMaps, old: BEIMaps) -> float:
    """Largest difference of coefficients, intercepts or held-out R² over the array's scale.

    ``inf`` where an array's shape or its missing (NaN) entries differ: ``nanmax`` alone
    skipped a NaN the new fit put where the former had a value.
    """
    worst = 0.0
    for name in ("coef", "intercept", "heldout_r2", "x_mean", "x_scale"):
        a, b = np.asarray(getattr(new, name)), np.asarray(getattr(old, name))
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return float("inf")
        scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 1.0
        diff = np.nanmax(np.abs(a - b)) if np.isfinite(b).any() else 0.0
        worst = max(worst, float(diff / max(scale, 1e-300)))
    return worst


def main() -> int:
    """Write the store, run both contenders and print the JSON line (exit 1: the maps differ)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3000)
    p.add_argument("--rois", type=int, default=150)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dir", type=Path, default=None, help="Scratch folder (default: TMPDIR).")
    p.add_argument("--quick", action="store_true", help="300 runs x 30 ROIs.")
    p.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--catalogue", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    threads = cap_threads(args.threads)
    if args.child:
        child(args.child, args.store, args.catalogue, args.out)
        return 0
    if args.quick:
        args.runs, args.rois = 300, 30
    scratch = Path(tempfile.mkdtemp(prefix="lcm-bei-maps-", dir=args.dir))
    try:
        catalogue = scratch / "variables.yaml"
        catalogue.write_text(CATALOGUE)
        store = scratch / "store"
        write_store(store, catalogue, args.runs, args.rois)
        runs = {}
        for which in ("old", "new"):  # the first child warms the page cache for the second
            runs[which] = run_child(which, store, catalogue, scratch / f"{which}.npz")
        new, old = (BEIMaps.load(scratch / f"{w}.npz") for w in ("new", "old"))
        edges = n_edges(args.rois)
        n_subjects = (args.runs + 1) // 2
        n_train = args.runs - 2 * max(1, round(HOLDOUT_FRACTION * n_subjects))  # about
        result = {
            "n_runs": args.runs,
            "n_rois": args.rois,
            "n_edges": edges,
            "form": "dual" if n_train <= edges else "primal",
            "new_peak_mb": round(runs["new"]["peak_mb"], 1),
            "old_peak_mb": round(runs["old"]["peak_mb"], 1),
            "ratio": round(runs["new"]["peak_mb"] / max(runs["old"]["peak_mb"], 1e-9), 3),
            "new_s": round(runs["new"]["seconds"], 2),
            "old_s": round(runs["old"]["seconds"], 2),
            "time_ratio": round(runs["new"]["seconds"] / max(runs["old"]["seconds"], 1e-9), 3),
            "max_rel_diff": max_rel_diff(new, old),
            "same_alpha": bool(np.array_equal(new.alpha, old.alpha)),
            "better": "lower",
            "threads": threads,
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not (result["same_alpha"] and result["max_rel_diff"] <= MAX_REL_DIFF):
        # A smaller peak for other maps is not a saving.
        print(
            f"bei_maps_memory: the new fit's maps differ from the former's (same_alpha "
            f"{result['same_alpha']}, max_rel_diff {result['max_rel_diff']} > {MAX_REL_DIFF})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
