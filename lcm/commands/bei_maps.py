"""``lcm bei-maps``: the bei-linear baseline's ridge maps, fitted on the pretraining datasets."""

from __future__ import annotations

import argparse
import logging

from lcm.catalogue import load_catalogue
from lcm.commands._arguments import (
    add_seed_and_threads,
    add_store_arguments,
    int_at_least,
)
from lcm.commands._path_text import path_text
from lcm.commands._sources import store_sources
from lcm.docstrings import fill_doc
from lcm.io.provenance import record_outputs

log = logging.getLogger(__name__)

EXAMPLE = """example:
  lcm bei-maps --store results/store --atlas aal116 --catalogue config/variables.yaml \\
      --datasets hcplike ukblike --seed 1 --out-dir results/models/pretrain

output in --out-dir, the folder of the checkpoint `lcm pretrain` writes (or will write) from
the same --store, --atlas, --catalogue, --datasets and --seed: bei_linear.npz, one ridge map
from the Fisher-z connectome to each BEI variable of the pretraining cohort (penalties chosen
on a subject-level hold-out of that cohort, never downstream data), read by `lcm evaluate
--checkpoint` for the bei-linear baseline. A variable with fewer than --min-values training
subjects with a value (a level of a binary or categorical variable: training subjects in the
level or outside it; a subject of several runs counts once) gets no map: the maps name it
with its count and the threshold, as the log does, and one of a single value in every run
gets none either; when none is left, the maps map no variable and lcm evaluate skips
bei-linear, saying why. The maps record their atlas, ROI order
and the cohort's data fingerprint: lcm evaluate refuses them beside a checkpoint pretrained
on other data (other datasets, runs or variables), whose check that no test subject was seen
in pretraining would not hold for them. The maps get a provenance
sidecar (bei_linear.json); an existing bei_linear.npz is replaced only when that sidecar shows
LCM wrote it, and a bei_linear.json that is not LCM's record refuses the run: either is refused
before any data is read, with nothing written.

memory: the connectomes are streamed from the store into a temporary file (TMPDIR: n_runs x
R(R-1)/2 x 4 bytes) and read back by blocks; what is held is the Gram matrix of the training
runs and its eigenvectors, 16 m^2 bytes for m = the fewer of training runs and edges, with
the held-out runs' products with the training runs (40,000 runs, 6,000 held out: ~21 GB at
400 ROIs, ~1.2 GB at AAL-116's 6,670 edges). A job that cannot hold it is refused before any
connectome is read, naming the sizes.
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bei-maps`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "bei-maps",
        help="Fit the bei-linear baseline's ridge maps on the pretraining datasets.",
        description="Read the pretraining datasets' connectomes and variables from the feature "
        "store, as `lcm pretrain` does (the connectomes streamed, never loaded whole), and fit "
        "one ridge map per BEI variable (the first half of the bei-linear baseline; CPU only). "
        "Writes bei_linear.npz beside the checkpoint.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--datasets", nargs="+", required=True, help="Pretraining datasets.")
    p.add_argument(
        "--min-values",
        type=int_at_least(1),
        default=None,
        metavar="N",
        # The default is lcm.train.bei_maps.MIN_TRAIN_VALUES, the setting's owner (imported
        # in run(): scipy would slow every `lcm` call); a test holds this text to it.
        help="Training subjects with a value a variable needs to get a map (a level of a "
        "binary or categorical variable: training subjects in the level and outside it; a "
        "subject of several runs counts once); one with fewer gets none, named with its count "
        "in the log and the maps' record (default 20: the hold-out choosing each penalty then "
        "sees about 3 of its subjects).",
    )
    p.add_argument(
        "--out-dir",
        type=path_text,
        required=True,
        help="The pretraining checkpoint's folder (lcm pretrain's).",
    )
    add_store_arguments(p)
    add_seed_and_threads(p)
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm bei-maps``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    # Imported here: every `lcm` call builds all parsers.
    from lcm.store.read import load_streamed_cohort
    from lcm.train.bei_maps import MAPS_FILE, MIN_TRAIN_VALUES, fit_streamed_bei_maps
    from lcm.train.outputs import maps_out_dir

    catalogue = load_catalogue(args.catalogue)
    datasets = list(args.datasets)
    # Claimed in lcm pretrain's name (the checkpoint's folder) under the maps' own lock, and
    # the maps' record checked, before the cohort loads: a refusal writes nothing.
    with maps_out_dir(args.out_dir) as out:
        # The connectomes stay in the store: streamed once into a temporary file.
        cohort = load_streamed_cohort(args.store, args.atlas, datasets, catalogue)
        min_values = MIN_TRAIN_VALUES if args.min_values is None else args.min_values
        maps = fit_streamed_bei_maps(cohort, catalogue, args.seed, min_values=min_values)
        path = maps.save(out / MAPS_FILE)
        record_outputs([path], [*store_sources(args.store, args.atlas, datasets), args.catalogue])
    log.info("wrote %s (%d maps)", path, len(maps.names))
    return 0
