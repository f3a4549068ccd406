"""Feature store at cohort scale: write N connectomes, stream them back through the torch loader.

Ours: ``lcm.store.writer.write_connectome_arrays`` (Parquet, row groups of ~32 MiB, the
connectome a PLAIN, uncompressed fixed-size binary column) and ``lcm.store.loader.ConnectomeStream``
in a ``torch.utils.data.DataLoader`` (shuffled; the stream hands over ready batches).
Reference, same run, same bytes: plain ``file.write`` of the float32 blocks and plain
``file.readinto`` of that file. Both writes end with ``fsync`` and both reads start cold (the
file's pages dropped from the page cache with ``posix_fadvise``), so neither side reads back
what the other left in memory. The generated connectomes cycle through a pool of distinct
random vectors so that generating 16 GB does not dominate the run.

The last line printed is JSON: n, n_rois, gb, write_mb_s, raw_write_mb_s, write_ratio,
read_samples_s, read_mb_s, raw_read_mb_s, read_ratio, peak_rss_mb (while streaming the cohort:
this process plus, with ``--workers``, the largest child process, an upper bound for the largest
DataLoader worker), write_peak_rss_mb and the targets met. It exits with a message instead when
the stream does not hand back every run once, or a batch's first run is not the row written.

    python benchmarks/store.py --quick                   # seconds: 1,000 x 100 ROIs (make test)
    python benchmarks/store.py --n 5000                  # a quick look
    python benchmarks/store.py --n 50000 --dir /work/tmp # the issue's scale (~16 GB on disk)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from lcm.store.layout import n_edges
from lcm.store.loader import ConnectomeStream
from lcm.store.writer import write_connectome_arrays
from lcm.threads import cap_threads

POOL = 192  # distinct connectomes (61 MB at 400 ROIs)
BLOCK = 64  # rows per block handed to both writers (the store regroups them into row groups)


def block_offsets(pool_size: int, n: int, size: int) -> Iterator[tuple[int, int, int]]:
    """``(start, rows, offset)`` of each block: rows ``start:start + rows`` come from the pool's
    rows ``offset:offset + rows``."""
    for k, start in enumerate(range(0, n, size)):
        rows = min(size, n - start)
        yield start, rows, (k * 37) % (pool_size - rows + 1)


def blocks(pool: np.ndarray, n: int, size: int) -> Iterator[np.ndarray]:
    """``n`` rows in blocks of ``size``: views of the pool (no copy), starting at varied rows."""
    for _, rows, offset in block_offsets(len(pool), n, size):
        yield pool[offset : offset + rows]


def pool_rows(pool_size: int, n: int, size: int) -> np.ndarray:
    """The pool row that each of the ``n`` rows written by :func:`blocks` holds."""
    source = np.empty(n, dtype=np.int64)
    for start, rows, offset in block_offsets(pool_size, n, size):
        source[start : start + rows] = np.arange(offset, offset + rows)
    return source


def drop_cache(path: Path) -> None:
    """Evict a file's pages from the page cache so that the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_roundtrip(root: Path, pool: np.ndarray, n: int, size: int) -> tuple[float, float]:
    """Seconds to write (with fsync) and to read back cold the same bytes as plain files."""
    path = root / "raw.bin"
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for block in blocks(pool, n, size):
            f.write(memoryview(block))
        f.flush()
        os.fsync(f.fileno())
    t_write = time.perf_counter() - t0
    drop_cache(path)
    buffer = bytearray(size * pool.shape[1] * 4)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass
    t_read = time.perf_counter() - t0
    path.unlink()
    return t_write, t_read


def store_roundtrip(
    root: Path, pool: np.ndarray, n: int, n_rois: int, args: argparse.Namespace
) -> tuple[float, float, int]:
    """Seconds to write the store (with fsync) and to stream it back cold; runs streamed."""
    runs = pd.DataFrame(
        {
            "subject": [f"{i:06d}" for i in range(n)],
            "task": "rest",
            "run": "1",
            "site": [f"site{i % 20:02d}" for i in range(n)],
            "mean_fd": 0.1,
            "n_volumes": 490.0,
        }
    )
    names = [f"roi{i:03d}" for i in range(n_rois)]
    t0 = time.perf_counter()
    out = write_connectome_arrays(root, "bench", "synthetic", runs, blocks(pool, n, BLOCK), names)
    fsync(out)
    t_write = time.perf_counter() - t0
    del runs
    drop_cache(out)
    PEAKS["write"] = vm_hwm_mb()
    reset_vm_hwm()
    t0 = time.perf_counter()
    stream = ConnectomeStream(
        root,
        "bench",
        ["synthetic"],
        shuffle_buffer=args.shuffle_buffer,
        seed=0,
        batch_size=args.batch_size,
    )
    loader = DataLoader(
        stream,
        batch_size=None,  # the stream batches in numpy
        num_workers=args.workers,
        prefetch_factor=2 if args.workers else None,
    )
    seen = 0
    source = pool_rows(len(pool), n, BLOCK)
    indices, wrong = [], 0
    for batch in loader:
        index = batch["index"]
        seen += len(index)
        indices.append(index.numpy())
        # Touch the data as a consumer would, and check it: each batch's first run must be the
        # row written there (1/batch of the bytes, so the check barely weighs on the timing).
        wrong += not np.array_equal(batch["connectome"][0].numpy(), pool[source[int(index[0])]])
    t_read = time.perf_counter() - t0
    PEAKS["read"] = vm_hwm_mb()
    read = np.sort(np.concatenate(indices)) if indices else np.empty(0, dtype=np.int64)
    if wrong or not np.array_equal(read, np.arange(n)):
        raise SystemExit(
            f"the store streamed back other data than it was given ({wrong} batches whose first "
            f"run differs from the row written; {read.size} runs read of {n}, "
            f"{np.unique(read).size} distinct): its timings would be of a wrong answer"
        )
    return t_write, t_read, seen


def vm_hwm_mb() -> float:
    """Peak resident memory of this process since the last :func:`reset_vm_hwm`, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_vm_hwm() -> None:
    """Restart the peak-RSS count (Linux: writing 5 to clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def children_peak_mb() -> float:
    """Peak resident memory of the largest finished child (DataLoader workers), in MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


PEAKS: dict[str, float] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="connectomes (default 50,000)")
    parser.add_argument("--rois", type=int, default=400, help="ROIs (default 400: 79,800 edges)")
    parser.add_argument("--dir", default=None, help="scratch folder (default: system temp)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=256)
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long check that it runs (1,000 x 100 ROIs)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="the job's threads (default OMP_NUM_THREADS, SLURM's grant, or the CPUs available)",
    )
    args = parser.parse_args()
    threads = cap_threads(args.threads)  # BLAS/OpenMP pools and torch's
    if args.quick:  # the same write and stream on ~20 MB: run by the test suite
        args.n, args.rois = 1000, 100
    e = n_edges(args.rois)
    pool = np.random.default_rng(0).uniform(-0.6, 0.9, (POOL, e)).astype(np.float32)
    nbytes = args.n * e * 4
    root = Path(tempfile.mkdtemp(prefix="lcm-store-bench-", dir=args.dir))
    try:
        free = shutil.disk_usage(root).free
        if free < 1.2 * nbytes:
            raise SystemExit(f"{root}: {free / 1e9:.1f} GB free, the run needs {nbytes / 1e9:.1f}")
        t_raw_write, t_raw_read = raw_roundtrip(root, pool, args.n, BLOCK)
        t_write, t_read, seen = store_roundtrip(root, pool, args.n, args.rois, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mb = nbytes / 1e6
    result = {
        "n": args.n,
        "n_rois": args.rois,
        "gb": round(nbytes / 1e9, 2),
        "workers": args.workers,
        "samples_read": seen,
        "write_mb_s": round(mb / t_write, 1),
        "raw_write_mb_s": round(mb / t_raw_write, 1),
        "write_ratio": round(t_raw_write / t_write, 3),
        "better": "higher",  # write_ratio and read_ratio: ours over raw I/O
        "threads": threads,
        "read_samples_s": round(seen / t_read, 1),
        "read_mb_s": round(seen * e * 4 / 1e6 / t_read, 1),
        "raw_read_mb_s": round(mb / t_raw_read, 1),
        "read_ratio": round((seen * e * 4 / t_read) / (nbytes / t_raw_read), 3),
        # While iterating the cohort: this process plus the largest worker (an upper bound:
        # the largest child, which may be the writer's `git status`). No workers, no children.
        "peak_rss_mb": round(PEAKS["read"] + (children_peak_mb() if args.workers else 0.0), 1),
        "write_peak_rss_mb": round(PEAKS["write"], 1),
    }
    result["targets_met"] = {
        "write_mb_s >= 0.5 x raw": result["write_ratio"] >= 0.5,
        "read_mb_s >= 0.5 x raw": result["read_ratio"] >= 0.5,
        "peak_rss_mb <= 1500": result["peak_rss_mb"] <= 1500,
        "read_samples_s >= 2000": result["read_samples_s"] >= 2000,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
