"""``lcm ingest``: index a dataset into a run manifest (Parquet)."""

from __future__ import annotations

import argparse

from lcm.bids.ingest import ENTRIES

EPILOG = """\
examples:
  lcm ingest --dataset bidsdemo --entry bids --path rawdata --out manifest.parquet
  lcm ingest --dataset hcp --entry fmriprep --path derivatives/fmriprep --out manifest.parquet
  lcm ingest --dataset ukb --entry roi_timeseries --path timeseries --out manifest.parquet

The manifest has one row per run: dataset, subject, session, task, run, run_key, entry, path,
t_r, included, reason. Unusable runs are kept with included=false and the reason.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` sub-command."""
    p = subparsers.add_parser(
        "ingest",
        help="Index a dataset (raw BIDS, fMRIPrep derivatives, ROI time series) into a manifest.",
        description="Index the runs of one dataset into a Parquet manifest (one row per run), "
        "with the repetition time from the sidecar (BIDS inheritance honoured) cross-checked "
        "against the NIfTI header.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="Dataset name (letters and digits).")
    p.add_argument("--entry", required=True, choices=ENTRIES, help="Entry level of the dataset.")
    p.add_argument("--path", required=True, help="Root of the raw BIDS, derivatives or series.")
    p.add_argument(
        "--derivatives", help="fMRIPrep derivatives root (entry fmriprep, when --path is raw)."
    )
    p.add_argument("--task", default="rest", help="BIDS task label (default: rest).")
    p.add_argument(
        "--space",
        default=None,
        help="Output space of preprocessed runs (default MNI152NLin2009cAsym); for "
        "roi_timeseries, keep only this space (default: any).",
    )
    p.add_argument("--out", required=True, help="Manifest to write (.parquet).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``lcm ingest``."""
    from lcm.bids.ingest import ingest

    ingest(
        args.dataset,
        args.entry,
        args.path,
        args.out,
        derivatives=args.derivatives,
        task=args.task,
        space=args.space,
    )
    return 0
