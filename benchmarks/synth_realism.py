"""Realism of every synthetic consortium against ranges reported for real resting-state fMRI.

For each preset (HCP, UK Biobank, ABIDE, PPMI, ADNI, COBRE) the ROI tier's mean off-diagonal
Pearson FC, within- minus between-network FC, lag-1 autocorrelation at the cohort's TR, median
framewise displacement and FD tail are computed on the first ``--n-subjects`` runs; for the
voxel tier, a few 4 mm runs of three presets go through the workflow's own denoising
(``lcm.connectome``: 24P, scrubbing at 0.5 mm, 0.01-0.1 Hz band-pass) before their FC is
summarised. Each value is compared with its range (``lcm.synth.realism``; references in
docs/synth.md); ``position`` is where it sits in the range (0 = low end, 1 = high end), the
ratio against the reference. The last line is JSON; the exit status is 1 when any statistic of
any cohort is out of range.

    python benchmarks/synth_realism.py                 # ~1-2 min on 2 cores
    python benchmarks/synth_realism.py --quick        # seconds: 20 runs, 1 voxel run (make test)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lcm.atlas import load_atlas
from lcm.connectome.relmat import pearson_fc
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import run_connectome
from lcm.preprocess.derivatives import RunDerivatives
from lcm.synth import planned_subjects, write_subject
from lcm.synth.plan import subject_files
from lcm.synth.presets import PRESETS, resolve
from lcm.synth.realism import check, ranges_for, roi_statistics
from lcm.synth.subject import prepare
from lcm.threads import cap_threads

VOXEL_PRESETS = ("hcp", "abide", "adni")  # TR 0.72, 2 and 3 s


def position(value: float, rng: list) -> float | None:
    low, high = rng
    if low is None or high is None:
        return None
    return round((value - low) / (high - low), 3)


def voxel_statistics(preset: str, n: int, seed: int, atlas, out: Path) -> dict[str, float]:
    """Mean FC and within-between FC of ``n`` 4 mm voxel runs after the workflow's denoising."""
    name = f"{preset}vox"
    cons = {"preset": preset, "tier": "voxel", "n_subjects": max(n, 2), "resolution_mm": 4}
    spec = resolve(name, cons)
    ctx = prepare(spec, seed, atlas, 0.7)
    iu = np.triu_indices(atlas.n_rois, k=1)
    within = ctx.model.networks[iu[0]] == ctx.model.networks[iu[1]]
    fc, diff = [], []
    for subject in planned_subjects(name, cons)[:n]:
        write_subject(
            name, cons, subject, out_dir=out, seed=seed, shared_structure=0.7, atlas=atlas
        )
        f = subject_files(spec, out, subject)
        deriv = RunDerivatives(
            run_key=f"sub-{subject}_task-rest_run-1",
            sub=subject,
            ses="",
            task="rest",
            run="1",
            bold=str(f["preproc_bold"]),
            mask=str(f["mask"]),
            confounds=str(f["confounds"]),
            sidecar=str(f["preproc_json"]),
            t_r=spec.tr,
        )
        # RunConnectome holds cleaned signals; FC is computed from them, as the workflow does.
        run = run_connectome(deriv, atlas, DenoiseSettings(), {})
        vec = pearson_fc(run.signals, run.empty)[iu]
        fc.append(vec.mean())
        diff.append(vec[within].mean() - vec[~within].mean())
    return {"mean_fc": float(np.mean(fc)), "within_minus_between_fc": float(np.mean(diff))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-subjects", type=int, default=60, help="ROI-tier runs per cohort")
    parser.add_argument("--voxel-subjects", type=int, default=3, help="voxel runs per preset")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long check that it runs (20 ROI runs per cohort, 1 voxel run per preset)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="the job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available)",
    )
    args = parser.parse_args()
    threads = cap_threads(args.threads)
    if args.quick:  # every preset and both tiers, few runs: run by the test suite
        args.n_subjects, args.voxel_subjects = 20, 1
    atlas = load_atlas("aal116")
    report: dict[str, dict] = {}
    failures: list[str] = []
    start = time.perf_counter()
    for preset in PRESETS:
        spec = resolve(f"{preset}like", {"preset": preset, "n_subjects": args.n_subjects})
        stats = roi_statistics(prepare(spec, args.seed, atlas, 0.7), args.n_subjects)
        ranges = ranges_for(spec.tr)
        bad = check(stats, spec.tr)
        failures += [f"{preset}/roi: {b}" for b in bad]
        report[f"{preset}/roi"] = {
            "tr": spec.tr,
            "ok": not bad,
            **{
                k: {"value": round(v, 4), "range": ranges[k], "position": position(v, ranges[k])}
                for k, v in stats.items()
            },
        }
        print(
            f"{preset}/roi TR {spec.tr}: "
            + ", ".join(f"{k}={v:.3f}" for k, v in stats.items())
            + (f"  OUT OF RANGE: {bad}" if bad else ""),
            file=sys.stderr,
        )
    if args.voxel_subjects > 0:
        with tempfile.TemporaryDirectory(prefix="synth_realism_") as tmp:
            for preset in VOXEL_PRESETS:
                stats = voxel_statistics(preset, args.voxel_subjects, args.seed, atlas, Path(tmp))
                ranges = ranges_for(PRESETS[preset].tr)
                bad = check(stats, PRESETS[preset].tr)
                failures += [f"{preset}/voxel-24P: {b}" for b in bad]
                report[f"{preset}/voxel-24P"] = {
                    "tr": PRESETS[preset].tr,
                    "ok": not bad,
                    **{
                        k: {
                            "value": round(v, 4),
                            "range": ranges[k],
                            "position": position(v, ranges[k]),
                        }
                        for k, v in stats.items()
                    },
                }
                print(
                    f"{preset}/voxel-24P: "
                    + ", ".join(f"{k}={v:.3f}" for k, v in stats.items())
                    + (f"  OUT OF RANGE: {bad}" if bad else ""),
                    file=sys.stderr,
                )
    result = {
        "benchmark": "synth_realism",
        "n_subjects": args.n_subjects,
        "voxel_subjects": args.voxel_subjects,
        "seed": args.seed,
        "threads": threads,
        # No ratio: each statistic's position in its range (0-1 inside); no direction.
        "better": None,
        "seconds": round(time.perf_counter() - start, 1),
        "all_in_range": not failures,
        "failures": failures,
        "cohorts": report,
    }
    print(json.dumps(result))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
