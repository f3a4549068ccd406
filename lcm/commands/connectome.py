"""``lcm connectome``: parcel time series, denoising and connectivity matrices per run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from lcm.commands._atlas import add_atlas_arguments, atlas_names
from lcm.commands._atlas_load import atlas_from_args
from lcm.commands._path_text import path_text
from lcm.entries import entry_type, names
from lcm.io.provenance import write_sidecar

if TYPE_CHECKING:  # the verb imports lcm.atlas only when it runs
    from lcm.atlas import Atlas

# How a command-line user sets the dataset's settings that the fMRIPrep record of
# 'lcm connectome run' carries (lcm.bids.dataset.setting_names): the options of the verbs that
# took them, not the config's fmriprep.output_space, which a rule (lcm --rule) names.
RECORD_OPTION_NAMES = {"space": "lcm fmriprep --output-space", "entry": "lcm ingest --entry"}

EPILOG = """\
sub-commands:
  run          one voxel-wise run of an fMRIPrep record (BOLD -> parcels -> clean -> FC)
  settings     the options every voxel-wise run of a dataset takes, checked, to a file
  collect      gather per-run QC JSONs into one QC table
  dataset      every run of a parcellated dataset's manifest, as its entry says (--entry)
  timeseries   = dataset --entry roi_timeseries (clean -> FC)
  import       = dataset --entry connectome (check -> relmat)

examples:
  lcm connectome run --dataset bidsdemo --fmriprep-record sub-01_fmriprep.json \\
      --run-key sub-01_task-rest_run-1 --atlas aal116 \\
      --denoise '{"strategy": "24P", "fd_threshold": 0.5}' \\
      --connectome '{"kinds": ["pearson", "partial"], "window": {"length": 500}}' \\
      --out-dir connectome/bidsdemo --qc-out qc/sub-01_task-rest_run-1.json
  lcm connectome dataset --entry roi_timeseries --dataset hcplike --manifest manifest.parquet \\
      --atlas aal116 --denoise '{"high_pass": 0.01, "low_pass": 0.1}' \\
      --out-dir connectome/hcplike --qc-table qc/hcplike.tsv
  lcm connectome collect --qc qc/*.json --out qc/bidsdemo.tsv
"""

DATASET_EPILOG = """\
examples:
  lcm connectome dataset --entry roi_timeseries --dataset hcplike --manifest manifest.parquet \\
      --atlas aal116 --denoise '{"high_pass": 0.01, "low_pass": 0.1}' \\
      --out-dir connectome/hcplike --qc-table qc/hcplike.tsv
  lcm connectome dataset --entry connectome --dataset pcp --manifest manifest.parquet \\
      --atlas aal116 --out-dir connectome/pcp --qc-table qc/pcp.tsv

Each entry's processing (lcm.entries) reads the settings it names: roi_timeseries reads
--denoise and --connectome, connectome neither (giving one is refused).
"""

RUN_EPILOG = """\
example:
  lcm connectome run --dataset bidsdemo --fmriprep-record sub-01_fmriprep.json \\
      --run-key sub-01_task-rest_run-1 --atlas aal116 --denoise '{"strategy": "24P"}' \\
      --out-dir connectome/bidsdemo --qc-out qc/sub-01_task-rest_run-1.json

An unusable run (3D or corrupt BOLD, NaN values, TR mismatch, missing confound columns, too few
volumes after scrubbing) is not an error: its QC JSON says included=false with the reason.

TemplateFlow atlas (resolved offline in $TEMPLATEFLOW_HOME):
  lcm connectome run ... --atlas schaefer100 \\
      --atlas-templateflow '{"template": "MNI152NLin2009cAsym", "atlas": "Schaefer2018",
                             "desc": "100Parcels7Networks", "resolution": 2}' ...
"""

SETTINGS_EPILOG = """\
example:
  lcm connectome settings --dataset bidsdemo --atlas aal116 --min-coverage 0.5 \\
      --denoise '{"strategy": "24P"}' --connectome '{"kinds": ["pearson"]}' \\
      --out connectome/bidsdemo/settings.json

The workflow's settings stamp: every 'connectome run' job of the dataset reads it, so a changed
option (or connectome code) reruns them all in the same invocation, whatever else reruns.
"""

TIMESERIES_EPILOG = """\
example:
  lcm connectome timeseries --dataset hcplike --manifest manifest.parquet --atlas aal116 \\
      --denoise '{"high_pass": 0.01, "low_pass": 0.1}' --out-dir connectome/hcplike \\
      --qc-table qc/hcplike.tsv
"""

IMPORT_EPILOG = """\
example:
  lcm connectome import --dataset pcp --manifest results/ingest/pcp/manifest.parquet \\
      --atlas aal116 --out-dir connectome/pcp --qc-table qc/pcp.tsv

Each matrix (.tsv relmat with a Node column, .csv, .npy, MATLAB .mat up to v7) must be square,
the atlas's size, finite, symmetric, within [-1, 1] and 1 on the diagonal (0 only for an empty
ROI's all-zero row). A matrix that is not is excluded with the reason; the others go on.
"""

COLLECT_EPILOG = """\
example:
  lcm connectome collect --qc qc/sub-01_task-rest_run-1.json qc/sub-02_task-rest_run-1.json \\
      --manifest results/ingest/bidsdemo/manifest.parquet --out qc/bidsdemo.tsv

With no QC file (every run of the dataset was excluded at ingest), it stops with one line naming
the dataset and the exclusion reasons the manifest gives. Give one dataset's QC files: those of
several are written into one table all the same, with a warning naming each dataset's files.
With --manifest, a QC record of a dataset the manifest does not name stops it before anything is
written, naming the datasets on each side.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``connectome`` and its ``run``, ``collect`` and ``dataset`` commands.

    ``timeseries`` and ``import`` are ``dataset`` with ``--entry roi_timeseries`` and
    ``--entry connectome``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        ``lcm``'s sub-commands (:func:`lcm.cli.build_parser`); ``connectome``'s parser is
        added to it.
    """
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "connectome",
        help="Parcel time series, denoising and connectivity matrices per run.",
        description="Compute per-run ROI time series and connectivity matrices (Pearson, "
        "partial correlation, covariance, windows; XCP-D naming) with a QC record per run.",
        epilog=EPILOG,
        formatter_class=raw,
    )
    sub = p.add_subparsers(dest="connectome_command", metavar="<command>", required=True)

    r = sub.add_parser(
        "run",
        help="One voxel-wise run of an fMRIPrep record.",
        description="Parcellate one preprocessed BOLD run with the atlas, regress the "
        "strategy's confounds, scrub high-motion volumes (FD, DVARS), detrend, band-pass and "
        "standardise, then write the time series and the connectivity matrices with sidecars, "
        "and the run's QC JSON.",
        epilog=RUN_EPILOG,
        formatter_class=raw,
    )
    r.add_argument("--dataset", required=True, help="Dataset name.")
    r.add_argument(
        "--fmriprep-record",
        type=path_text,
        required=True,
        help="Record from 'lcm fmriprep'; its relative paths (a relative --derivatives) are "
        "read from here, else from the record's folders upwards.",
    )
    r.add_argument("--run-key", required=True, help="Run, e.g. sub-01_task-rest_run-1.")
    add_atlas_arguments(r, files=True, seg=True)
    _min_coverage_arg(r)
    _denoise_arg(r)
    r.add_argument(
        "--out-dir", required=True, type=path_text, help="Connectome derivatives folder."
    )
    r.add_argument("--qc-out", required=True, type=path_text, help="QC JSON of the run.")
    r.set_defaults(func=run_voxel, recorded=("qc_out",))

    s = sub.add_parser(
        "settings",
        help="The options every voxel-wise run of a dataset takes, checked, to a file.",
        description="Check the atlas, coverage, denoising and connectome options of a "
        "dataset's 'connectome run' jobs and write them to --out, as the workflow's settings "
        "stamp (an input of every run: no run is processed).",
        epilog=SETTINGS_EPILOG,
        formatter_class=raw,
    )
    s.add_argument("--dataset", required=True, help="Dataset name.")
    add_atlas_arguments(s, files=True)
    _min_coverage_arg(s)
    _denoise_arg(s)
    s.add_argument("--out", required=True, type=path_text, help="Settings JSON to write.")
    s.set_defaults(func=run_settings, recorded=("out",))

    d = sub.add_parser(
        "dataset",
        help="Every run of a parcellated dataset's manifest, as its entry says.",
        description="Turn a parcellated dataset's manifest (ROI time series, precomputed "
        "connectomes) into relmats with sidecars and one QC table for all manifest rows, with "
        "the processing its entry names in lcm.entries.",
        epilog=DATASET_EPILOG,
        formatter_class=raw,
    )
    d.add_argument(
        "--entry", required=True, choices=names(voxel=False), help="The dataset's entry."
    )
    d.add_argument("--dataset", required=True, help="Dataset name.")
    d.add_argument("--manifest", required=True, type=path_text, help="Manifest from 'lcm ingest'.")
    add_atlas_arguments(d, files=True, seg=True)
    _denoise_arg(d, default=None)
    d.add_argument(
        "--out-dir", required=True, type=path_text, help="Connectome derivatives folder."
    )
    d.add_argument(
        "--qc-table", required=True, type=path_text, help="QC TSV, one row per manifest row."
    )
    d.set_defaults(func=run_dataset, recorded=("qc_table",))

    t = sub.add_parser(
        "timeseries",
        help="Every run of an ROI time-series manifest (dataset --entry roi_timeseries).",
        description="Detrend, band-pass and standardise each included ROI time series of a "
        "manifest (no confound regression; scrubbing when a framewise_displacement or std_dvars "
        "column is present), write its matrices, and one QC table for all manifest rows.",
        epilog=TIMESERIES_EPILOG,
        formatter_class=raw,
    )
    t.add_argument("--dataset", required=True, help="Dataset name.")
    t.add_argument("--manifest", required=True, type=path_text, help="Manifest from 'lcm ingest'.")
    add_atlas_arguments(t, files=True, seg=True)
    _denoise_arg(t)
    t.add_argument(
        "--out-dir", required=True, type=path_text, help="Connectome derivatives folder."
    )
    t.add_argument(
        "--qc-table", required=True, type=path_text, help="QC TSV, one row per manifest row."
    )
    t.set_defaults(func=run_dataset, entry="roi_timeseries", recorded=("qc_table",))

    m = sub.add_parser(
        "import",
        help="Every precomputed connectome of a manifest (dataset --entry connectome).",
        description="Check each precomputed connectivity matrix of a manifest (entry "
        "connectome) and write it as an XCP-D-style relmat TSV with a sidecar, and one QC "
        "table for all manifest rows.",
        epilog=IMPORT_EPILOG,
        formatter_class=raw,
    )
    m.add_argument("--dataset", required=True, help="Dataset name.")
    m.add_argument("--manifest", required=True, type=path_text, help="Manifest from 'lcm ingest'.")
    add_atlas_arguments(m, files=True, seg=True)
    m.add_argument(
        "--out-dir", required=True, type=path_text, help="Connectome derivatives folder."
    )
    m.add_argument(
        "--qc-table", required=True, type=path_text, help="QC TSV, one row per manifest row."
    )
    m.set_defaults(func=run_dataset, entry="connectome", recorded=("qc_table",))

    c = sub.add_parser(
        "collect",
        help="Gather per-run QC JSONs into a table.",
        description="Gather per-run QC JSONs (from 'lcm connectome run') into one QC TSV.",
        epilog=COLLECT_EPILOG,
        formatter_class=raw,
    )
    c.add_argument(
        "--qc",
        type=path_text,
        nargs="*",
        default=[],
        help="Per-run QC JSON files (none when ingest excluded every run: see --manifest).",
    )
    c.add_argument(
        "--manifest",
        type=path_text,
        default=None,
        help="The dataset's manifest: its exclusion reasons are named when no run is left; "
        "QC records of a dataset it does not name are refused.",
    )
    c.add_argument("--out", required=True, type=path_text, help="QC TSV to write.")
    c.set_defaults(func=run_collect, recorded=("out",))


def _min_coverage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-coverage",
        type=float,
        default=None,
        help="Parcels covered below this fraction are empty (atlas.min_coverage; default "
        "from the schema).",
    )


def _min_coverage(args: argparse.Namespace) -> float:
    """``--min-coverage``, the schema's default when not given, checked to lie in [0, 1]."""
    from lcm.config import schema

    min_coverage = args.min_coverage
    if min_coverage is None:
        min_coverage = schema()["properties"]["atlas"]["properties"]["min_coverage"]["default"]
    if not 0.0 <= min_coverage <= 1.0:
        from lcm.exceptions import ConfigError

        raise ConfigError(
            f"--min-coverage must lie in [0, 1], received {min_coverage}.",
            hint="Set atlas.min_coverage to a fraction such as 0.5.",
        )
    return float(min_coverage)


def _denoise_arg(p: argparse.ArgumentParser, default: str | None = "{}") -> None:
    p.add_argument(
        "--denoise",
        default=default,
        help="The config's denoise section as JSON (strategy, fd_threshold, "
        "dvars_threshold, high_pass, low_pass, detrend, standardize, min_volumes, min_dof); "
        "missing keys take the schema defaults.",
    )
    p.add_argument(
        "--connectome",
        default=default,
        help="The config's connectome section as JSON (kinds, fisher_z, window); missing "
        "keys take the schema defaults.",
    )


def _atlas_sources(args: argparse.Namespace, atlas: Atlas) -> list[str]:
    from lcm.connectome.outputs import atlas_sources

    if atlas.files:  # as read: a user's files, a TemplateFlow atlas's found in its tree
        return list(atlas.files)
    return atlas_sources(args.atlas, args.atlas_path, args.atlas_labels)


def run_voxel(args: argparse.Namespace) -> int:
    """Run ``lcm connectome run``.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``lcm connectome run``, as parsed.

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
    from lcm.connectome.voxel_run import process_voxel_run

    _check_out_dir(args.out_dir)
    settings = DenoiseSettings.from_json(args.denoise)
    connectome = ConnectomeSettings.from_json(args.connectome)
    min_coverage = _min_coverage(args)
    atlas = atlas_from_args(args)
    atlas.require_image("'lcm connectome run' (voxel-wise parcellation)", atlas_names(args))
    process_voxel_run(
        args.dataset,
        args.fmriprep_record,
        args.run_key,
        atlas,
        settings,
        args.out_dir,
        args.qc_out,
        atlas_files=_atlas_sources(args, atlas),
        connectome=connectome,
        min_coverage=min_coverage,
        names=None if getattr(args, "rule", None) else RECORD_OPTION_NAMES,
    )
    # The QC record stands for the run: its sources are the run's outputs (whose own sidecars
    # lead to the preprocessed BOLD), or the fMRIPrep record when the run was excluded.
    qc = json.loads(Path(args.qc_out).read_text())
    made = [qc["timeseries"]] if qc.get("timeseries") else []
    made += qc.get("relmats") or ([qc["relmat"]] if qc.get("relmat") else [])
    made = [p for p in made if Path(p).is_file()]
    write_sidecar(args.qc_out, made or [args.fmriprep_record])
    return 0


def run_settings(args: argparse.Namespace) -> int:
    """Run ``lcm connectome settings``: the workflow's stamp of a dataset's run options.

    Snakemake does not check the params of a job downstream of one that reruns through an input
    it reads as ``ancient``: the runs' fMRIPrep jobs read the manifest so (an added subject
    reruns no other), so when ingest reran, the runs' own param and code changes went unseen and
    the QC table, store and pretraining were rebuilt from stale connectomes until the next
    invocation. The stamp has no input from ingest: it reruns on its own params and reruns every
    run with it.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``lcm connectome settings``, as parsed.

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.commands._atlas import atlas_settings
    from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
    from lcm.io.atomic import write_json

    atlas = atlas_settings(args)
    atlas.pop("seg")  # a voxel run is parcellated with the atlas itself
    settings = {
        "dataset": args.dataset,
        "atlas": atlas,
        "min_coverage": _min_coverage(args),
        "denoise": DenoiseSettings.from_json(args.denoise).to_dict(),
        "connectome": ConnectomeSettings.from_json(args.connectome).to_dict(),
    }
    write_json(args.out, settings)
    write_sidecar(args.out, [])
    return 0


def _check_out_dir(out_dir: str) -> None:
    """Refuse, before any run is read, an ``--out-dir`` that is a file (or lies under one).

    The first run's folder under it failed with a traceback (NotADirectoryError) after the
    atlas was loaded and the run parcellated.
    """
    from lcm.commands._outputs import check_output_folders

    check_output_folders([Path(out_dir) / "dataset_description.json"])


def run_dataset(args: argparse.Namespace) -> int:
    """Run ``lcm connectome dataset`` (and its aliases ``timeseries`` and ``import``).

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``lcm connectome dataset``, as parsed.

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
    from lcm.exceptions import ConfigError

    # The config sections an entry's processing may read, each with its parser.
    sections = {"denoise": DenoiseSettings.from_json, "connectome": ConnectomeSettings.from_json}
    kind = entry_type(args.entry)
    unread = [s for s in sections if getattr(args, s, None) is not None and s not in kind.settings]
    if unread:
        raise ConfigError(
            f"--{unread[0]}: entry {args.entry!r} reads no {unread[0]} settings (it reads "
            f"{list(kind.settings) or 'none'}).",
            hint=f"Leave --{unread[0]} out for {args.entry} datasets.",
        )
    _check_out_dir(args.out_dir)
    settings = {s: sections[s](getattr(args, s, None) or "{}") for s in kind.settings}
    atlas = atlas_from_args(args)
    kind.processor()(
        args.dataset,
        args.manifest,
        atlas,
        out_dir=args.out_dir,
        qc_table=args.qc_table,
        seg=args.atlas_seg,
        names=atlas_names(args),
        **settings,
    )
    write_sidecar(args.qc_table, [args.manifest, *_run_outputs(args.qc_table)])
    return 0


def run_collect(args: argparse.Namespace) -> int:
    """Run ``lcm connectome collect``.

    Parameters
    ----------
    args : argparse.Namespace
        The options of ``lcm connectome collect``, as parsed.

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.connectome.qc import collect_qc, no_run_error

    names = None if getattr(args, "rule", None) else RECORD_OPTION_NAMES
    if not args.qc:
        raise no_run_error(args.manifest, args.out, names)
    collect_qc(args.qc, args.out, names, manifest=args.manifest)
    write_sidecar(args.out, list(args.qc))
    return 0


def _run_outputs(qc_table: str) -> list[str]:
    """Time series and matrices listed in a QC table (the runs' outputs, with sidecars)."""
    from lcm.io.derivatives import list_cell
    from lcm.io.qc_table import RELMAT, RELMATS, TIMESERIES, read_qc_table

    qc = read_qc_table(qc_table)
    cols = [c for c in (TIMESERIES, RELMATS) if c in qc.columns]
    if RELMATS not in qc.columns and RELMAT in qc.columns:
        cols.append(RELMAT)
    paths = [p for c in cols for cell in qc[c] for p in list_cell(cell)]
    return [p for p in paths if Path(p).is_file()]
