"""Store round trip: LCM's Parquet connectome partition vs. raw float32 file I/O, same run.

Prints one JSON line: n, n_rois, write_mb_s, raw_write_mb_s, read_mb_s, raw_read_mb_s and the
ratios ours / raw (higher is better, 1.0 = as fast as raw bytes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lcm.store.catalogue import catalogue_from_dict
from lcm.store.layout import n_edges
from lcm.store.read import load_cohort
from lcm.store.writer import write_connectomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="runs in the store")
    parser.add_argument("--rois", type=int, default=116)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = [f"roi{i:03d}" for i in range(args.rois)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Relmat files are the store's input; write a few and reuse them so input I/O is small.
        mats = []
        for i in range(8):
            m = np.corrcoef(rng.standard_normal((args.rois, 60)))
            p = root / f"m{i}.tsv"
            pd.DataFrame(m, index=pd.Index(names, name="Node"), columns=names).to_csv(p, sep="\t")
            mats.append(str(p))
        qc = pd.DataFrame(
            {
                "subject": [f"{i:06d}" for i in range(args.n)],
                "session": "",
                "task": "rest",
                "run": "1",
                "run_key": [f"sub-{i:06d}_task-rest_run-1" for i in range(args.n)],
                "included": "True",
                "n_volumes": 300,
                "n_volumes_kept": 290,
                "mean_fd": 0.1,
                "t_r": 2.0,
                "relmat": [mats[i % 8] for i in range(args.n)],
            }
        )
        pheno = pd.DataFrame({"subject": qc["subject"], "site": "A"})
        nbytes = args.n * n_edges(args.rois) * 4
        t0 = time.perf_counter()
        write_connectomes(root / "store", "bench", "d", qc, pheno)
        t_write = time.perf_counter() - t0
        raw = rng.standard_normal(args.n * n_edges(args.rois)).astype(np.float32)
        t0 = time.perf_counter()
        raw.tofile(root / "raw.bin")
        t_raw_write = time.perf_counter() - t0
        catalogue = catalogue_from_dict(
            {"age": {"kind": "continuous", "domain": "sociodemographic"}}
        )
        t0 = time.perf_counter()
        cohort = load_cohort(root / "store", "bench", ["d"], catalogue)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        np.fromfile(root / "raw.bin", dtype=np.float32)
        t_raw_read = time.perf_counter() - t0
    mb = nbytes / 1e6
    result = {
        "n": args.n,
        "n_rois": args.rois,
        "runs_loaded": len(cohort),
        "write_mb_s": round(mb / t_write, 1),
        "raw_write_mb_s": round(mb / t_raw_write, 1),
        "read_mb_s": round(mb / t_read, 1),
        "raw_read_mb_s": round(mb / t_raw_read, 1),
        "write_ratio": round(t_raw_write / t_write, 3),
        "read_ratio": round(t_raw_read / t_read, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
