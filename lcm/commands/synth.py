"""``lcm synth``: write an embedded synthetic consortium (cohort files, or one voxel subject)."""

from __future__ import annotations

import argparse
import logging

from lcm.atlas import atlas_from_settings
from lcm.commands._path_text import path_text
from lcm.config import parse_settings, read_yaml_mapping, validate_base, validate_partial
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  # cohort files (for tier roi: phenotype, ground truth and every run's ROI time series)
  lcm synth --config config/config.yaml --consortium abidelike
  # a large ROI-tier cohort on two cores
  lcm synth --config config/config.yaml --consortium ukblike --workers 2
  # one subject of a voxel-tier consortium (raw BIDS + fMRIPrep-like derivatives)
  lcm synth --config config/config.yaml --consortium bidsdemo --subject 123456
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "synth",
        help="Write an embedded synthetic consortium.",
        description="Generate the synthetic consortium configured under synth.consortia.NAME "
        "into synth.out_dir/NAME, reproducibly from the config's seed. Without --subject, write "
        "the cohort files (ground truth, phenotype, and for tier roi every run's time series); "
        "with --subject (tier voxel only), write that subject's raw BIDS and fMRIPrep-like files.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=path_text, help="Workflow config (YAML).")
    source.add_argument(
        "--config-json",
        help="The config sections this job uses, as JSON (seed, atlas, synth, fmriprep); "
        "what the workflow passes, so that only a change to them reruns the job.",
    )
    p.add_argument("--consortium", required=True, help="Key under synth.consortia.")
    p.add_argument("--subject", help="Subject label (voxel tier): write only this subject.")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Processes writing a ROI-tier cohort's runs (default 1; the files are identical "
        "whatever the number).",
    )
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm synth``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.synth import write_cohort, write_subject

    if args.config_json is not None:
        config = validate_partial(parse_settings(args.config_json, "config-json"))
        args.config = "--config-json"
    else:
        # Every check but the model names, the evaluation's (lcm.evaluate.config_schema).
        config = validate_base(read_yaml_mapping(args.config), source=str(args.config))
    synth = config.get("synth", {})
    consortia = synth.get("consortia", {})
    if args.consortium not in consortia:
        raise ConfigError(
            f"{args.config}: synth.consortia has no {args.consortium!r} (has {sorted(consortia)}).",
            hint="Pass one of the configured consortium names to --consortium.",
        )
    # The config's atlas as every verb reads it: registry, user files or TemplateFlow query.
    atlas = atlas_from_settings(config.get("atlas", {}))
    common = {
        "out_dir": synth.get("out_dir", "results/synth"),
        "seed": int(config.get("seed", 0)),
        "atlas": atlas,
    }
    cons = consortia[args.consortium]
    # A consortium may override the knob: a null cohort (0) beside the demo's tasks.
    common["shared_structure"] = float(
        cons.get("shared_structure", synth.get("shared_structure", 0.7))
    )
    if args.subject:
        space = config.get("fmriprep", {}).get("output_space", "MNI152NLin2009cAsym")
        write_subject(args.consortium, cons, args.subject, output_space=space, **common)
    else:
        if args.workers < 1:
            raise ConfigError(
                f"--workers: expected an integer >= 1, got {args.workers}.",
                hint="Pass the number of CPU cores to use.",
            )
        write_cohort(args.consortium, cons, workers=args.workers, **common)
    return 0
