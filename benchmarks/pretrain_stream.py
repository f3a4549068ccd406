"""Pretraining memory and speed: connectomes streamed from the store vs loaded whole.

Ours: ``lcm pretrain`` with ``pretrain.data_loading: stream`` (one pass in the store's order for
the fingerprint and digests, then :class:`lcm.store.loader.ConnectomeStream` batches each epoch).
Reference, same run, same store, same model and settings: ``data_loading: memory`` (every
connectome loaded before training). Each contender runs as a child process at two cohort sizes,
``n`` and ``2 n`` runs, and its peak RSS is read from the kernel (``wait4``): the memory a job
must ask SLURM for. Streaming's promise is that its peak does not grow with the runs
(``stream_growth_mb``, the peak at 2n minus the peak at n, beside ``memory_growth_mb``), at a
speed close to the in-memory run's (``ratio`` = stream samples/s over memory samples/s, wall time
of the whole command, loading included, at 2n). ``--repeats`` rounds per size (default 2; 1 with
``--quick``), the contender that goes first alternating by size and round (the first child of a
size ran 2-5x slower, whichever it was), the best speed and the largest peak kept.

The last line printed is JSON: n_runs, n_rois, epochs, per contender and size ``wall_s``,
``samples_s`` and ``peak_rss_mb``, ``ratio``, ``rss_ratio`` (stream / memory peak at 2n),
``stream_growth_mb``, ``memory_growth_mb``, ``same_training`` (every round's two runs trained
alike: :func:`disagreements`; ``mismatches`` lists what differed), ``pairs_checked`` (streamed
samples whose targets were checked against their connectome: :func:`pairing_errors`),
``better`` and ``threads``. It exits 1, after that line, unless ``same_training``: a fast
stream that trains on other data is no speed-up.

Each run's age and sex are a function of its own connectome (:func:`targets_of`), not noise: a
stream that paired a run's targets with another run's connectome trained on the same values,
in the same order and counts, and its losses matched the in-memory run's. The streamed batches
are read again as pretraining reads them (:func:`lcm.train.streamed.cohort_stream`,
:class:`lcm.train.streamed.StreamedConnectomes`), and each sample's targets are recomputed from
the connectome the batch carries: one that differs is a mismatch.

    python benchmarks/pretrain_stream.py --quick      # seconds (make test)
    python benchmarks/pretrain_stream.py              # 4,000 and 8,000 runs x 200 ROIs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lcm.catalogue import load_catalogue
from lcm.model.checkpoint_meta import META_NAME
from lcm.store.commit import commit_dataset
from lcm.store.layout import n_edges
from lcm.store.read import load_streamed_cohort
from lcm.store.writer import variables_id, write_connectome_arrays, write_variables
from lcm.threads import cap_threads
from lcm.train.outputs import HISTORY_NAME, STATE_DIR
from lcm.train.state import META_NAME as STATE_META
from lcm.train.streamed import (
    StreamedConnectomes,
    check_same_runs,
    cohort_stream,
    shuffle_runs,
)

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
MODEL = {"preset": "tiny", "overrides": {"d_model": 32, "n_heads": 4, "d_ffn": 48}}
POOL = 256  # distinct connectomes, cycled (generating them must not dominate the run)
# What both runs must share exactly (model.json): the data they read, by content (fingerprint,
# digests, sketches), the held-out subjects, the standardisation, the queries and the model.
SAME_META = ("data_fingerprint", "data", "standardisation", "query_layout", "config")
# ... and the optimiser steps and samples trained on per loss (the final training state).
SAME_STATE = ("step", "counts")
# Losses of the last epoch within LOSS_RTOL of each other. The stream orders the batches its
# own way (lcm.train.streamed: not the in-memory run's twin), so the weights, the learned task
# weights and the losses legitimately differ: measured within 4% at 200 and 400 runs x 20 ROIs
# over 1 and 3 epochs; a stream of zero connectomes moved loss_ssl by 25%. Age and sex are
# functions of the connectome (targets_of), which :func:`pairing_errors` checks batch by batch.
LOSSES = ("loss_ssl", "train_eval_loss", "val_loss")
LOSS_RTOL = 0.1


def targets_of(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Age and sex of runs, each a function of its own connectome.

    Parameters
    ----------
    triangles : numpy.ndarray, shape (b, E)
        Upper triangles (float32, as stored).

    Returns
    -------
    age : numpy.ndarray of float, shape (b,)
        50 + 15 z, z its projection on a fixed edge pattern (about standard normal on the
        pool's connectomes), clipped to [-2, 2]: 20 to 80 years.
    sex : numpy.ndarray of str, shape (b,)
        ``M`` where its projection on a second pattern is positive, else ``F``.
    """
    width = triangles.shape[1]
    patterns = np.random.default_rng(1).choice([-1.0, 1.0], size=(width, 2))
    # tanh(0.3 N(0, 1)) has SD ~0.28: a sum of E of them with signs +-1, SD ~0.28 sqrt(E).
    z = triangles.astype(np.float64) @ patterns / (0.28 * np.sqrt(width))
    age = 50.0 + 15.0 * np.clip(z[:, 0], -2.0, 2.0)
    return age, np.where(z[:, 1] > 0, "M", "F").astype(object)


def pool_rows(n: int) -> np.ndarray:
    """The pool row each of ``n`` runs stores (:func:`write_store` cycles the pool in blocks)."""
    rows = np.empty(n, dtype=np.int64)
    for start in range(0, n, 64):
        size = min(64, n - start)
        offset = (start * 7) % (POOL - size + 1)
        rows[start : start + size] = np.arange(offset, offset + size)
    return rows


def write_store(root: Path, catalogue_path: Path, n: int, n_rois: int) -> None:
    """A one-dataset store of ``n`` runs (one per subject) with age and sex, written in blocks:
    each run's age and sex are :func:`targets_of` its connectome."""
    rng = np.random.default_rng(0)
    pool = np.tanh(rng.standard_normal((POOL, n_edges(n_rois))) * 0.3).astype(np.float32)
    subjects = [f"s{i:06d}" for i in range(n)]
    runs = pd.DataFrame({"subject": subjects, "task": "rest", "run": "1"})
    runs["run_key"] = [f"sub-{s}_task-rest_run-1" for s in subjects]
    which = pool_rows(n)
    age, sex = targets_of(pool[which])
    phenotype = pd.DataFrame({"subject": subjects, "site": "", "age": age, "sex": sex})
    catalogue = load_catalogue(catalogue_path)

    def blocks():  # (b, E) float32 blocks, views of the pool
        for start in range(0, n, 64):
            yield pool[which[start] : which[start] + min(64, n - start)]

    names = [f"roi{i}" for i in range(n_rois)]
    with commit_dataset(root, "bench", variables_id(phenotype, catalogue)) as commit:
        write_connectome_arrays(root, "bench", "bench", runs, blocks(), names, commit=commit)
        write_variables(root, "bench", phenotype, catalogue, commit=commit)
        commit.apply()


def run_pretrain(
    root: Path, catalogue: Path, out: Path, loading: str, epochs: int, batch: int, threads: int
) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one ``lcm pretrain`` child."""
    settings = {"epochs": epochs, "batch_size": batch, "data_loading": loading}
    command = [sys.executable, "-m", "lcm", "pretrain", "--store", str(root), "--atlas", "bench"]
    command += ["--catalogue", str(catalogue), "--datasets", "bench", "--seed", "0"]
    command += ["--model", json.dumps(MODEL), "--settings", json.dumps(settings)]
    command += ["--out-dir", str(out), "--threads", str(threads)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
        raise SystemExit(f"lcm pretrain ({loading}) failed with status {child.returncode}")
    return wall, usage.ru_maxrss * 1024  # kilobytes on Linux


def pairing_errors(
    root: Path, catalogue: Path, n_rois: int, epochs: int, batch: int
) -> tuple[list[str], int]:
    """Samples of the streamed training batches whose targets are not their connectome's.

    The stream is built as ``lcm pretrain`` builds it (``data_loading: stream``, seed 0, one
    process; the held-out subjects left in), and each batch's connectomes are taken as a
    training step takes them (:meth:`~lcm.train.streamed.StreamedConnectomes.host_rows`).

    Parameters
    ----------
    root : Path
        The store :func:`write_store` wrote.
    catalogue : Path
        Its variable catalogue.
    n_rois, epochs, batch : int
        As the benchmark's pretraining runs.

    Returns
    -------
    errors : list of str
        One line per epoch with mismatched samples (how many, the first one's subject).
    checked : int
        Samples checked.
    """
    cohort = load_streamed_cohort(root, "bench", ["bench"], load_catalogue(catalogue))
    stream = cohort_stream(
        cohort,
        shuffle=True,
        shuffle_buffer=shuffle_runs(n_rois, batch),
        seed=0,
        batch_size=batch,
        drop_last=True,
    )
    check_same_runs(stream, cohort.ids, "pretrain_stream benchmark")
    fc = StreamedConnectomes(stream, torch.device("cpu"))
    age = cohort.variables["age"].to_numpy(dtype=float)
    sex = cohort.variables["sex"].astype(object).to_numpy()
    errors, checked = [], 0
    for epoch in range(epochs):
        wrong, first = 0, None
        for index in fc.batches(epoch):
            rows = index.numpy()
            got_age, got_sex = targets_of(fc.host_rows(index).numpy())
            bad = ~np.isclose(age[rows], got_age, rtol=0, atol=1e-6) | (sex[rows] != got_sex)
            wrong += int(bad.sum())
            checked += len(rows)
            if first is None and bad.any():
                first = cohort.ids["subject"].iloc[rows[np.argmax(bad)]]
        if wrong:
            errors.append(
                f"epoch {epoch + 1}: {wrong} streamed sample(s) carried another run's "
                f"connectome than their targets' (first: subject {first})"
            )
    return errors, checked


def disagreements(memory: Path, stream: Path) -> list[str]:
    """How the streamed run (output folder ``stream``) did not train like the in-memory one.

    Parameters
    ----------
    memory, stream : Path
        ``lcm pretrain`` output folders of the two runs, same store, seed and settings.

    Returns
    -------
    list of str
        One line per difference: a :data:`SAME_META` entry of ``model.json`` or a
        :data:`SAME_STATE` entry of the final training state that is not equal, or a last-epoch
        loss of ``history.tsv`` (:data:`LOSSES`) more than :data:`LOSS_RTOL` apart. Empty: alike.
    """
    found: list[str] = []
    runs = {"memory": memory, "stream": stream}
    meta = {k: json.loads((out / META_NAME).read_text()) for k, out in runs.items()}
    state = {k: json.loads((out / STATE_DIR / STATE_META).read_text()) for k, out in runs.items()}
    for name, of in [*((k, meta) for k in SAME_META), *((k, state) for k in SAME_STATE)]:
        if of["memory"].get(name) != of["stream"].get(name):
            found.append(f"{name} differs")
    last = {k: pd.read_csv(out / HISTORY_NAME, sep="\t").iloc[-1] for k, out in runs.items()}
    for name in LOSSES:
        a, b = float(last["memory"][name]), float(last["stream"][name])
        if not abs(b - a) <= LOSS_RTOL * abs(a):  # a NaN fails too
            found.append(f"{name} {b:.4g} (stream) vs {a:.4g} (memory): beyond {LOSS_RTOL:.0%}")
    return found


def main() -> int:
    """Run both contenders at n and 2n runs and print the JSON line (exit 1: not alike)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4000, help="Runs of the smaller cohort (and 2n).")
    p.add_argument("--rois", type=int, default=200)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--repeats", type=int, default=2, help="Rounds per size, each contender first in turn."
    )
    p.add_argument("--dir", type=Path, default=None, help="Scratch folder (default: /tmp).")
    p.add_argument("--quick", action="store_true", help="200 and 400 runs x 20 ROIs.")
    args = p.parse_args()
    if args.quick:
        args.n, args.rois, args.batch, args.repeats = 200, 20, 16, 1
    threads = cap_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="lcm-pretrain-stream-", dir=args.dir))
    try:
        catalogue = scratch / "variables.yaml"
        catalogue.write_text(CATALOGUE)
        result: dict[str, object] = {"n_runs": [args.n, 2 * args.n], "n_rois": args.rois}
        result["epochs"] = args.epochs
        peaks: dict[tuple[str, int], float] = {}
        speed: dict[tuple[str, int], float] = {}
        mismatches: list[str] = []
        for size, n in enumerate((args.n, 2 * args.n)):
            root = scratch / f"store-{n}"
            write_store(root, catalogue, n, args.rois)
            for round_ in range(max(1, args.repeats)):
                # The first child of a size ran 2-5x slower than the second, whichever it was:
                # each contender goes first in turn (by size and round), the best speed kept.
                first = ("memory", "stream") if (size + round_) % 2 == 0 else ("stream", "memory")
                for loading in first:
                    out = scratch / f"{loading}-{n}-{round_}"
                    wall, rss = run_pretrain(
                        root, catalogue, out, loading, args.epochs, args.batch, threads
                    )
                    summary = json.loads((out / META_NAME).read_text())
                    held = len(summary["data"]["heldout_subjects"])
                    samples_s = (summary["data"]["n_runs"] - held) * args.epochs / wall
                    if samples_s > speed.get((loading, n), 0.0):
                        speed[loading, n] = samples_s
                        result[f"{loading}_{n}"] = {"wall_s": round(wall, 2)}
                    peaks[loading, n] = max(rss / 2**20, peaks.get((loading, n), 0.0))
                    result[f"{loading}_{n}"].update(
                        samples_s=round(speed[loading, n], 1),
                        peak_rss_mb=round(peaks[loading, n], 1),
                    )
                for line in disagreements(
                    scratch / f"memory-{n}-{round_}", scratch / f"stream-{n}-{round_}"
                ):
                    mismatches.append(f"{n} runs, round {round_ + 1}: {line}")
            errors, checked = pairing_errors(root, catalogue, args.rois, args.epochs, args.batch)
            mismatches += [f"{n} runs, pairing: {line}" for line in errors]
            result["pairs_checked"] = int(result.get("pairs_checked", 0)) + checked
            shutil.rmtree(root)
        big = 2 * args.n
        result["ratio"] = round(speed["stream", big] / speed["memory", big], 3)
        result["rss_ratio"] = round(peaks["stream", big] / peaks["memory", big], 3)
        result["stream_growth_mb"] = round(peaks["stream", big] - peaks["stream", args.n], 1)
        result["memory_growth_mb"] = round(peaks["memory", big] - peaks["memory", args.n], 1)
        result["same_training"] = not mismatches
        result["mismatches"] = mismatches
        result["better"] = "higher"
        result["threads"] = threads
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if mismatches:
        print(
            "pretrain_stream: the streamed run did not train like the in-memory run:",
            file=sys.stderr,
        )
        for line in mismatches:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
