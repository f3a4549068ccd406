"""What hashing the workflow verbs' code costs each ``snakemake`` call, against parsing alone.

Every rule carries :func:`lcm.workflow.hash.code_hash` of its verb as a param, so each
Snakemake process (the planning one and, on SLURM, every job's) hashes the code of every verb
its rules run when it reads the Snakefile. Three contenders, in this one process after
``import snakemake.api`` (a heap like a Snakefile's process: the cycle collector walks it),
every cache of :mod:`lcm.workflow.hash` cleared before each, as in a fresh process; CPU time,
best of ``--repeats`` rounds in alternating order:

- ours: ``code_hash`` of every verb in turn (each module parsed and written once for all);
- ``parse``: ``ast.parse`` alone of every module those verbs reach, the floor of any hash of
  the code's syntax tree (``ratio`` = ours / parse);
- ``per_verb``: ``code_hash`` with the caches cleared before each verb, each verb's modules
  parsed again (``per_verb_ratio`` = ours / per_verb); its hashes must equal ours (else exit 1).

The last line is JSON: verbs, modules, hash_s, parse_s, per_verb_s, ratio, per_verb_ratio,
identical_hashes, better (``lower``), threads.

    python benchmarks/code_hash.py            # every verb of lcm.cli.VERBS, 5 rounds (~1-2 min)
    python benchmarks/code_hash.py --quick    # three verbs, one round, seconds (make test)
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import sys
import time
from collections.abc import Callable

import snakemake.api  # noqa: F401  (the heap of a Snakefile's process; see the docstring)

import lcm.cli
import lcm.workflow.hash as wh
from lcm.threads import cap_threads

QUICK_VERBS = ("store", "connectome", "report")


def clear_caches() -> None:
    """Every cache of :mod:`lcm.workflow.hash` emptied: a fresh process's state."""
    for value in vars(wh).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def ours(verbs: tuple[str, ...]) -> dict[str, str]:
    """Each verb's hash as one process computes them (modules shared between verbs)."""
    clear_caches()
    return {verb: wh.code_hash(verb) for verb in verbs}


def per_verb(verbs: tuple[str, ...]) -> dict[str, str]:
    """Each verb's hash from cold caches: nothing shared between verbs."""
    hashes = {}
    for verb in verbs:
        clear_caches()
        hashes[verb] = wh.code_hash(verb)
    return hashes


def parse_only(sources: list[bytes]) -> None:
    """``ast.parse`` of every module's source, the tree dropped, the cycle collector off as
    ``code_hash`` runs it (else the floor would include collections that ours avoids)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        for source in sources:
            ast.parse(source)
    finally:
        if collecting:
            gc.enable()


def cpu_seconds(work: Callable[[], object]) -> float:
    """CPU seconds ``work`` takes in this process."""
    start = time.process_time()
    work()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three verbs, one round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best is kept")
    args = parser.parse_args(argv)
    threads = cap_threads(1)  # the hashing is single-threaded Python
    verbs = QUICK_VERBS if args.quick else tuple(lcm.cli.VERBS)
    repeats = 1 if args.quick else max(1, args.repeats)

    modules = sorted({mod for verb in verbs for mod in wh.verb_modules(verb)})
    sources = [path.read_bytes() for mod in modules if (path := wh.module_file(mod))]
    expected = ours(verbs)
    times: dict[str, list[float]] = {"hash": [], "parse": [], "per_verb": []}
    contenders = {
        "hash": lambda: ours(verbs),
        "parse": lambda: parse_only(sources),
        "per_verb": lambda: per_verb(verbs),
    }
    identical = per_verb(verbs) == expected
    for k in range(repeats):
        order = list(contenders) if k % 2 == 0 else list(reversed(contenders))
        for name in order:
            times[name].append(cpu_seconds(contenders[name]))
    best = {name: min(values) for name, values in times.items()}
    result = {
        "verbs": len(verbs),
        "modules": len(modules),
        "hash_s": round(best["hash"], 4),
        "parse_s": round(best["parse"], 4),
        "per_verb_s": round(best["per_verb"], 4),
        "ratio": round(best["hash"] / best["parse"], 3) if best["parse"] else None,
        "per_verb_ratio": round(best["hash"] / best["per_verb"], 3) if best["per_verb"] else None,
        "identical_hashes": identical,
        "better": "lower",
        "threads": threads,
    }
    print(json.dumps(result))
    if not identical:
        print("code_hash with shared caches differs from per-verb hashing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
