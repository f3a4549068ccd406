"""``lcm ingest``: index a dataset into a run manifest (Parquet)."""

from __future__ import annotations

import argparse
import json
import shlex
from typing import TYPE_CHECKING

from lcm.bids.dataset import setting_names
from lcm.commands._atlas import add_atlas_arguments
from lcm.commands._outputs import check_output_folders
from lcm.commands._path_text import path_text
from lcm.docstrings import fill_doc
from lcm.entries import entry_type, names
from lcm.exceptions import ConfigError
from lcm.hints import set_to

if TYPE_CHECKING:
    from lcm.connectome.settings import DenoiseSettings

# The options' names of a dataset's settings, which ingest's messages and hints name
# (lcm.bids.dataset.setting_names): a command-line user wrote no datasets.<name>.path.
OPTION_NAMES = {
    "dataset": "--dataset",
    "path": "--path",
    "derivatives": "--derivatives",
    "entry": "--entry",
    "task": "--task",
    "repetition_time": "--repetition-time",
    "space": "--space",
    "roi_space": "--space",
    "select": "--select",
    "seg": "--atlas-seg",
    "validate": "--no-validate",
}

EPILOG = """\
examples:
  lcm ingest --dataset bidsdemo --entry bids --path rawdata --out bidsdemo/manifest.parquet
  lcm ingest --dataset hcp --entry fmriprep --path derivatives/fmriprep --out hcp/manifest.parquet
  lcm ingest --dataset ukb --entry roi_timeseries --path timeseries --out ukb/manifest.parquet
  lcm ingest --dataset abide --entry roi_timeseries --path abide/listing.tsv \\
      --repetition-time 2.0 --out abide/manifest.parquet
  lcm ingest --dataset pcp --entry connectome --path connectomes/listing.tsv \\
      --out pcp/manifest.parquet

  lcm ingest --dataset ukb --entry bids --path /data/ukb --out ukb/manifest.parquet --no-validate \\
      --select '{"participants": {"exclude": ["1000001"]}, "sessions": {"include": ["2"]}}'

The manifest has one row per run: entities (subject, session, task, run, acq, dir, echo,
space), run_key, entry, path, t_r (resolved sidecar, BIDS inheritance), tr_check (header
cross-check, "not checked: ..." when the header is unreadable, gives no pixdim[4] or names
no time unit in xyzt_units (compared then only where pixdim[4] is a plausible TR in seconds or
milliseconds); "from the NIfTI header ..."
for a run of fMRIPrep derivatives whose TR no sidecar gives, read from pixdim[4] in the time
unit xyzt_units names), included, reason_code, reason.
Unusable or unselected runs are kept with included=false and the reason. Beside it:
summary.json and summary.tsv (what was included and excluded, and why; subject folders
without any run of the task, e.g. anat/ only, as reason code no_runs; validator warnings;
participants.tsv mismatches; for fmriprep datasets, fmriprep_versions: the subjects of each
fMRIPrep version their log/*/fmriprep.toml names, a mix warned of) and the cache folder
<out>.cache (unchanged subjects are not re-indexed next time). The summaries are named by
folder: one dataset's manifest per folder, as in the examples (another dataset's summaries
there are refused, not replaced).

roi_timeseries and connectome datasets may also be plain files, one per run (.tsv, .csv, .npy,
MATLAB .mat such as DPARSF's ROISignals_<id>.mat, AFNI .1D): --path is then a folder of files
named sub-<label>[_ses-<label>][_run-<n>]..., ROISignals_<id>... or as ABIDE Preprocessed names
them, <site>_<id>_rois_<atlas>.1D (the atlas is the file's seg), or a listing TSV with columns
participant_id, path (relative to the listing), optional session, run, task, repetition_time,
seg. Files of several parcellations (seg-<label> in their names, or the listing's seg column)
are told apart; with --atlas only the configured atlas's are included:
  lcm ingest --dataset xcpd --entry connectome --path xcpd/ --atlas 4S156Parcels \\
      --out manifest.parquet

With --denoise (the config's denoise section as JSON: its strategy and high_pass), an fmriprep
dataset's first included run's confounds are checked for the strategy's columns before any run
is processed:
  lcm ingest --dataset hcp --entry fmriprep --path derivatives/fmriprep \\
      --denoise '{"strategy": "36P"}' --out manifest.parquet
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` sub-command.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        ``lcm``'s sub-commands (:func:`lcm.cli.build_parser`); the verb's parser is added to it.
    """
    p = subparsers.add_parser(
        "ingest",
        help="Index a dataset (raw BIDS, fMRIPrep derivatives, ROI time series, connectomes) "
        "into a manifest.",
        description="Index the runs of one dataset into a Parquet manifest (one row per run), "
        "with the repetition time from the sidecar (BIDS inheritance honoured) cross-checked "
        "against the NIfTI header.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="Dataset name (letters and digits).")
    p.add_argument("--entry", required=True, choices=names(), help="Entry level of the dataset.")
    p.add_argument(
        "--path",
        type=path_text,
        required=True,
        help="Root of the raw BIDS, derivatives or series; or a listing TSV of per-run files.",
    )
    p.add_argument(
        "--derivatives",
        type=path_text,
        help="fMRIPrep derivatives root (entry fmriprep, when --path is raw).",
    )
    p.add_argument("--task", default="rest", help="BIDS task label (default: rest).")
    p.add_argument(
        "--space",
        default=None,
        help="Output space of preprocessed runs (default MNI152NLin2009cAsym; "
        "MNI152NLin2009cAsym:res-2 for one resolution, :res-native for the file without res-, "
        "as fMRIPrep's --output-spaces); for "
        "roi_timeseries, keep only this space (default: any; the others stay in the manifest as "
        "not_selected); refused for connectome, whose files --select's space chooses.",
    )
    p.add_argument(
        "--select",
        default=None,
        help="Runs to keep, as JSON: {key: {include: [...], exclude: [...]}} with keys "
        "participants, sessions, runs, acq, dir, echo, space (config ingest.select.<dataset>).",
    )
    p.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="Skip the BIDS validator (trusted data); it runs on raw BIDS datasets by default.",
    )
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_false",
        help="Index every subject again, ignoring and not writing <out>.cache.",
    )
    p.add_argument(
        "--repetition-time",
        type=float,
        default=None,
        help="roi_timeseries: TR in seconds of runs without a sidecar RepetitionTime.",
    )
    add_atlas_arguments(
        p,
        required=False,
        seg=True,
        help="roi_timeseries / connectome: the configured atlas; files whose seg- entity names "
        "another parcellation are excluded (reason other_atlas). Default: keep every one.",
    )
    p.add_argument(
        "--denoise",
        default=None,
        help="fmriprep: the config's denoise section as JSON (strategy and high_pass are read); "
        "its strategy's confound columns (with high_pass: an aCompCor strategy needs cosine_XX "
        "columns or a high_pass) are checked in the first included run's confounds (refused at "
        "once, not per run).",
    )
    p.add_argument("--out", required=True, type=path_text, help="Manifest to write (.parquet).")
    p.set_defaults(func=run, recorded=("out",))


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm ingest``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.bids.ingest import ingest
    from lcm.bids.selection import Selection

    # The manifest's folder before the dataset is indexed (minutes on a large one): a file on
    # its path was said only at the write, after the cache beside it warned it unreadable.
    check_output_folders([args.out])
    # A workflow rule (lcm --rule) builds the options from its user's config: named by its keys.
    names = None if getattr(args, "rule", None) else OPTION_NAMES
    keys = setting_names(args.dataset, names)
    # Under a rule too: the workflow passes fmriprep.output_space only where it is used
    # (get_ingest_space_arg in workflow/rules/common.smk).
    _check_space_used(args.entry, args.space)
    selection = Selection.from_config(
        _json_arg(args.select, keys["select"]), source=keys["select"], task=keys["task"]
    )
    checks = entry_type(args.entry).ingest_checks_confounds
    denoise = _denoise(args.denoise) if checks else None
    manifest = ingest(
        args.dataset,
        args.entry,
        args.path,
        args.out,
        derivatives=args.derivatives,
        task=args.task,
        space=args.space,
        selection=selection,
        validate=args.validate,
        use_cache=args.cache,
        repetition_time=args.repetition_time,
        atlas=args.atlas,
        seg=args.atlas_seg,
        names=names,
    )
    if denoise is not None:
        from lcm.connectome.precheck import check_strategy

        check_strategy(args.dataset, manifest, denoise.strategy, denoise.high_pass)
    return 0


def _denoise(text: str | None) -> DenoiseSettings | None:
    """The denoising settings of ``--denoise`` (schema-checked), ``None`` without it."""
    if text is None:
        return None
    from lcm.connectome.settings import DenoiseSettings

    return DenoiseSettings.from_json(text)


def _check_space_used(entry: str, space: str | None) -> None:
    """Refuse ``--space`` for an entry that neither checks nor filters on it (connectomes,
    :data:`lcm.entries.TABLE`): it was silently ignored, every space's runs kept."""
    kind = entry_type(entry)
    # A voxel-level entry's space is checked (volumetric) and recorded; a tree's "required" or
    # "optional" space keeps that space's runs (lcm.bids.ingest.ingest_dataset).
    if space is None or kind.voxel or (kind.tree is not None and kind.tree.space != "ignored"):
        return
    # Pasteable as it is, whatever the label holds.
    include = shlex.quote(json.dumps({"space": {"include": [space]}}))
    raise ConfigError(
        f"--space {space}: entry {entry!r} does not filter on space (its files are kept "
        "whatever their space-<label>), so --space would be ignored.",
        hint=f"Leave --space out; to keep only this space's runs, pass --select {include}.",
    )


def _json_arg(text: str | None, name: str) -> dict | None:
    """The selection ``text`` (JSON) as a mapping; ``name`` is how the user gave it
    (``--select``, or ``ingest.select.<dataset>`` under a workflow rule), named in errors."""
    if text is None:
        return None
    # On the command line, a shell-quoted option; in a config, a (YAML flow) mapping.
    example = '{"participants": {"include": ["01", "02"]}}'
    quoted = f"'{example}'" if name == OPTION_NAMES["select"] else example
    fix = f"e.g. {set_to(name, quoted)}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{name}: expected a JSON object, received {text!r} ({exc}).", hint=fix
        ) from exc
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a JSON object, received {text!r}.", hint=fix)
    return value
