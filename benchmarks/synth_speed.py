"""Speed and memory of ``lcm synth``: a large ROI-tier cohort and one 2 mm voxel run.

Targets (issue #3): 10,000 ROI-level subjects in under 2 minutes on 2 cores; one voxel-level
2 mm (97x115x97), 300-volume run in under 20 s; bounded memory (peak RSS reported per part).
Each part runs in its own child process; its peak RSS (the largest of the process and of its
workers) is read right after our code ran, before the reference.

References measured in the same run: for the ROI tier, writing the same number of equally
sized TSV files of random numbers with ``numpy.savetxt`` (the text I/O floor; measured on a
sample of runs and scaled) with as many forked workers as ours, so the ratio compares equal
cores (against one core, two workers looked ~1.6x better than they are); for the voxel tier,
``nibabel.save`` of the same int16 4D array (default gzip), the plain way to write such a
file. ``ratio_vs_reference`` is ours / the reference's time (``better``: lower). Threads
are capped to the job's (``--threads``, else ``OMP_NUM_THREADS``, SLURM's grant or the CPUs
available; ``lcm.threads.cap_threads``), split between the ROI tier's workers.
The last line is JSON.

    python benchmarks/synth_speed.py                      # 10,000 subjects, ~1.5-2 min
    python benchmarks/synth_speed.py --n 1000             # a quick look
    python benchmarks/synth_speed.py --quick              # seconds: 40 subjects, 4 mm (make test)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from lcm.threads import cap_threads

ROI_TARGET_S = 120.0
VOXEL_TARGET_S = 20.0


def _savetxt_files(indices: list[int], folder: Path, shape: tuple, header: str) -> None:
    """The reference's work for ``indices``: one random TSV and one JSON sidecar each."""
    import numpy as np

    rng = np.random.default_rng(indices[0] if indices else 0)
    for i in indices:
        np.savetxt(
            folder / f"{i}.tsv",
            rng.standard_normal(shape),
            fmt="%.5f",
            delimiter="\t",
            header=header,
            comments="",
        )
        (folder / f"{i}.json").write_text("{}")


def _check_roi_files(folder: Path, n: int, shape: tuple[int, int]) -> None:
    """Exit 1 unless ``folder`` holds one time series per subject, the first of ``shape``:
    a fast run that wrote too few (or empty) files must not pass as fast."""
    import numpy as np

    series = sorted(folder.rglob("*_timeseries.tsv"))
    if len(series) != n:
        sys.exit(f"synth_speed: {len(series)} time series written for {n} subjects")
    values = np.loadtxt(series[0], delimiter="\t", skiprows=1, ndmin=2)
    if values.shape != shape or not np.isfinite(values).all():
        sys.exit(f"synth_speed: {series[0]} holds {values.shape}, not {shape} finite values")


def part_roi(n: int, workers: int, threads: int, out: Path) -> dict:
    # Each of the workers gets its share of the job's threads (forked: they inherit the caps).
    threads_per_worker = cap_threads(max(1, threads // max(1, workers)))
    from lcm.atlas import load_atlas
    from lcm.synth import write_cohort
    from lcm.synth.presets import PRESETS

    atlas = load_atlas("aal116")
    start = time.perf_counter()
    write_cohort(
        "ukblike",
        {"preset": "ukb", "n_subjects": n},
        out_dir=out / "ours",
        seed=1,
        shared_structure=0.7,
        atlas=atlas,
        workers=workers,
    )
    ours = time.perf_counter() - start
    rss = peak_rss_mb()
    _check_roi_files(out / "ours", n, (PRESETS["ukb"].n_volumes, atlas.n_rois))
    # Reference: the same files' worth of random numbers through numpy.savetxt, on a sample,
    # with as many forked workers as ours (equal cores: the ratio is per core, not 2 vs 1).
    sample = min(n, 500)
    shape = (PRESETS["ukb"].n_volumes, atlas.n_rois)
    header = "\t".join(atlas.labels["name"])
    ref_dir = out / "reference"
    ref_dir.mkdir()
    chunks = [list(range(w, sample, workers)) for w in range(workers)]
    start = time.perf_counter()
    if workers <= 1:
        _savetxt_files(chunks[0], ref_dir, shape, header)
    else:
        fork = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=fork) as pool:
            list(
                pool.map(
                    partial(_savetxt_files, folder=ref_dir, shape=shape, header=header), chunks
                )
            )
    reference = (time.perf_counter() - start) * n / sample
    return {
        "subjects": n,
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "seconds": round(ours, 2),
        "reference_seconds": round(reference, 2),
        "reference_workers": workers,
        "ratio_vs_reference": round(ours / reference, 3),
        "better": "lower",
        "peak_rss_mb": rss,
        "target_seconds": ROI_TARGET_S,
        "meets_target": ours < ROI_TARGET_S,
    }


def part_voxel(n_volumes: int, threads: int, out: Path, resolution_mm: float = 2) -> dict:
    cap_threads(threads)
    import nibabel as nib
    import numpy as np

    from lcm.atlas import load_atlas
    from lcm.synth import planned_subjects, write_subject
    from lcm.synth.plan import subject_files
    from lcm.synth.presets import resolve

    atlas = load_atlas("aal116")
    cons = {
        "preset": "hcp",
        "tier": "voxel",
        "n_subjects": 2,
        "n_volumes": n_volumes,
        "resolution_mm": resolution_mm,
    }
    subject = planned_subjects("vox", cons)[0]
    start = time.perf_counter()  # includes resampling the atlas to the grid, as a job does
    write_subject("vox", cons, subject, out_dir=out, seed=1, shared_structure=0.7, atlas=atlas)
    ours = time.perf_counter() - start
    rss = peak_rss_mb()
    bold = subject_files(resolve("vox", cons), out, subject)["preproc_bold"]
    img = nib.load(bold)
    data = np.asarray(img.dataobj, dtype=np.int16)
    start = time.perf_counter()
    nib.save(nib.Nifti1Image(data, img.affine, img.header), out / "reference_bold.nii.gz")
    reference = time.perf_counter() - start
    return {
        "shape": list(img.shape),
        "seconds": round(ours, 2),
        "reference_nibabel_save_seconds": round(reference, 2),
        "ratio_vs_reference": round(ours / reference, 3),
        "better": "lower",
        "file_mb": round(bold.stat().st_size / 1e6, 1),
        "peak_rss_mb": rss,
        "target_seconds": VOXEL_TARGET_S,
        "meets_target": ours < VOXEL_TARGET_S,
    }


def peak_rss_mb() -> float:
    """Peak resident memory so far of this process and of its finished workers, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, workers) / 1024, 1)


def run_child(args: list[str]) -> dict:
    """Run this script as a child for one part and return its JSON line."""
    proc = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="ROI-tier subjects")
    parser.add_argument("--workers", type=int, default=2, help="ours and the reference's")
    parser.add_argument(
        "--threads",
        type=int,
        help="the job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available)",
    )
    parser.add_argument("--n-volumes", type=int, default=300, help="voxel run length")
    parser.add_argument("--resolution", type=float, default=2, help="voxel run grid, mm")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long check that it runs (40 subjects; one 4 mm, 60-volume voxel run)",
    )
    parser.add_argument("--part", choices=["roi", "voxel"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:  # both parts, both references, tiny: run by the test suite
        args.n, args.n_volumes, args.resolution = 40, 60, 4
    threads = cap_threads(args.threads)
    if args.part == "roi":
        print(json.dumps(part_roi(args.n, args.workers, threads, Path(args.out))))
        return 0
    if args.part == "voxel":
        print(json.dumps(part_voxel(args.n_volumes, threads, Path(args.out), args.resolution)))
        return 0
    with tempfile.TemporaryDirectory(prefix="synth_speed_") as tmp:
        roi = run_child(
            [
                "--part",
                "roi",
                "--n",
                str(args.n),
                "--workers",
                str(args.workers),
                "--threads",
                str(threads),
                "--out",
                f"{tmp}/roi",
            ]
        )
        voxel = run_child(
            [
                "--part",
                "voxel",
                "--n-volumes",
                str(args.n_volumes),
                "--resolution",
                str(args.resolution),
                "--threads",
                str(threads),
                "--out",
                f"{tmp}/voxel",
            ]
        )
    result = {
        "benchmark": "synth_speed",
        "cpus": os.cpu_count(),
        "threads": threads,
        "better": "lower",  # roi and voxel ratio_vs_reference: ours / reference
        "roi": roi,
        "voxel": voxel,
        # The targets are for the full sizes: --quick (40 subjects) checks that it runs, and
        # its status never hangs on a machine's load (a timed test, which benchmarks are not).
        "all_targets_met": None if args.quick else roi["meets_target"] and voxel["meets_target"],
    }
    print(json.dumps(result))
    return 1 if result["all_targets_met"] is False else 0


if __name__ == "__main__":
    sys.exit(main())
