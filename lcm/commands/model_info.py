"""``lcm model-info``: parameter count of a model preset, computed without allocating it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lcm.commands._arguments import int_at_least
from lcm.commands._outputs import check_output_folders
from lcm.commands._path_text import path_text
from lcm.config import parse_settings
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError, OutputOwnershipError

# Preset names repeated here so that building the CLI parser does not import torch.
PRESET_NAMES = ("tiny", "small", "base", "big")

EXAMPLE = """examples:
  lcm model-info --preset big
  lcm model-info --preset small --n-rois 400 --n-queries 12
  lcm model-info --preset tiny --overrides '{"n_layers": 4}' --json
  # a checkpoint: what it was pretrained or finetuned on, its queries and parameters
  lcm model-info --checkpoint results/models/pretrain
  # its variables as a catalogue YAML, with your datasets' codings from your own catalogue
  lcm model-info --checkpoint results/models/pretrain --catalogue-out my_variables.yaml \\
      --datasets-from config/variables.yaml
"""

# The first words of a catalogue this verb writes; a file without them is not replaced.
EXPORT_MARK = "# Written by `lcm model-info --catalogue-out`"

# Queries of the demo catalogue: sex (2), five numeric variables, plus a 2-query diagnosis.
DEFAULT_N_QUERIES = 9


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``model-info`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "model-info",
        help="Print the parameter count of a model preset (no weights are allocated).",
        description="Build the model on torch's meta device and count its parameters, per part "
        "and in total. LCM-Big (preset big) has about 1.2e9.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", choices=PRESET_NAMES, default="tiny", help="Model preset.")
    p.add_argument(
        "--n-rois", type=int_at_least(2), default=116, help="Atlas regions (default 116, AAL)."
    )
    p.add_argument(
        "--n-queries",
        type=int_at_least(1),
        default=DEFAULT_N_QUERIES,
        help=f"Query tokens (default {DEFAULT_N_QUERIES}).",
    )
    p.add_argument("--overrides", default="{}", help="JSON of model config fields to replace.")
    p.add_argument(
        "--checkpoint",
        type=path_text,
        help="A checkpoint folder (lcm pretrain / finetune): what it was trained on and its "
        "parameters, from its model.json (replaces --preset, --n-rois, --n-queries).",
    )
    p.add_argument(
        "--catalogue-out",
        type=path_text,
        metavar="YAML",
        help="With --checkpoint: write the variables it was trained with as a variable "
        "catalogue (the form --catalogue reads), for finetuning, evaluating or storing data "
        "against it. A file not written by this option is not replaced.",
    )
    p.add_argument(
        "--datasets-from",
        type=path_text,
        metavar="YAML",
        help="With --catalogue-out: copy the datasets section (how each dataset's phenotype "
        "file codes the variables) from this catalogue; without it, the file has a commented "
        "datasets section to fill in.",
    )
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm model-info``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    from lcm.model.config import config_from_settings
    from lcm.model.info import parameter_counts

    if (args.catalogue_out or args.datasets_from) and not args.checkpoint:
        raise ConfigError(
            "--catalogue-out and --datasets-from need --checkpoint (the model whose variables "
            "are written)."
        )
    if args.datasets_from and not args.catalogue_out:
        raise ConfigError("--datasets-from needs --catalogue-out (the catalogue to write).")
    if args.catalogue_out:
        return _export_catalogue(args.checkpoint, args.catalogue_out, args.datasets_from)
    if args.checkpoint:
        return _checkpoint_info(args.checkpoint, args.json)
    overrides = parse_settings(args.overrides, "overrides")
    config = config_from_settings(
        {"preset": args.preset, "overrides": overrides},
        args.n_rois,
        args.n_queries,
        {"preset": "--preset", "overrides": "--overrides"},
    )
    counts = parameter_counts(config)
    if args.json:
        print(json.dumps({"preset": args.preset, "config": config.to_dict(), "parameters": counts}))
        return 0
    print(f"preset {args.preset}: {config.to_dict()}")
    for name, count in counts.items():
        print(f"  {name:<10} {count:>15,}")
    print(f"total parameters: {counts['total']:,} ({counts['total'] / 1e9:.3f} B)")
    return 0


def _checkpoint_info(checkpoint: str, as_json: bool) -> int:
    """What a checkpoint is: kind, atlas, training data, queries, label, parameters."""
    from lcm.io.provenance import sha256_file
    from lcm.model.checkpoint import WEIGHTS_NAME, checked_config, checkpoint_layout, read_meta
    from lcm.model.info import parameter_counts

    meta = read_meta(checkpoint)
    config = checked_config(checkpoint, meta)
    layout = checkpoint_layout(meta, checkpoint)  # an edited query_layout is said, not a traceback
    # Fields an edited model.json may hold as anything: shown where they are what LCM wrote.
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    label = meta.get("label") if isinstance(meta.get("label"), dict) else {}
    weights = Path(checkpoint) / WEIGHTS_NAME
    recorded = meta.get("weights_sha256")
    actual = sha256_file(weights) if weights.is_file() else None
    facts = {
        "checkpoint": str(checkpoint),
        "kind": meta.get("kind"),
        "atlas": meta.get("atlas"),
        "n_rois": meta.get("n_rois"),
        "datasets": data.get("datasets"),
        "n_subjects": data.get("n_subjects"),
        "queries": layout.names,
        "label": label.get("name"),
        "positive": label.get("positive"),
        "model_settings": meta.get("model_settings"),
        "selected_epoch": meta.get("selected_epoch"),
        "seed": meta.get("seed"),
        # The file's own, checked against the one model.json records (it printed the record's
        # beside weights cut short, which lcm embed then refused).
        "weights_sha256": actual,
        "weights_check": "matches model.json"
        if actual is not None and actual == recorded
        else f"DIFFERS from model.json's {recorded}"
        if actual is not None
        else f"{weights} is missing",
    }
    counts = parameter_counts(config)
    if as_json:
        print(json.dumps({**facts, "config": config.to_dict(), "parameters": counts}))
        return 0
    for key, value in facts.items():
        if value not in (None, [], {}):
            print(f"{key:<15} {value}")
    print(f"total parameters: {counts['total']:,} ({counts['total'] / 1e9:.3f} B)")
    return 0


DATASETS_TEMPLATE = """\
# datasets: how each dataset's phenotype file codes these variables (config/README.md), e.g.
#   mycohort:
#     id_column: participant_id
#     site_column: site
#     columns:
#       age: {column: age}
"""


def _export_catalogue(checkpoint: str, out: str, datasets_from: str | None) -> int:
    """Write the checkpoint's variables as a catalogue YAML (atomically, never over a user's)."""
    import yaml

    from lcm.catalogue import load_catalogue, variables_spec
    from lcm.io.atomic import atomic_path
    from lcm.model.checkpoint import read_meta

    meta = read_meta(checkpoint)
    stored = meta.get("catalogue")
    if not isinstance(stored, dict) or not stored:
        raise ConfigError(
            f"Checkpoint {checkpoint}: its model.json records no variable catalogue.",
            hint="Use a checkpoint written by lcm pretrain or lcm finetune.",
        )
    path = Path(out)
    check_output_folders([path])  # a read-only folder said, not the write's traceback
    _check_ours(path)
    datasets = None
    if datasets_from:
        load_catalogue(datasets_from)  # its own errors first, naming its file
        datasets = (yaml.safe_load(Path(datasets_from).read_text()) or {}).get("datasets")
    header = (
        f"{EXPORT_MARK}: the variables of checkpoint {checkpoint} "
        f"({meta.get('kind') or 'pretrained'}, atlas {meta.get('atlas')}).\n"
        "# Their kind, domain, units, range and levels are what the model's queries mean: keep "
        "them.\n"
    )
    text = header + yaml.safe_dump(
        {"variables": variables_spec(stored)}, sort_keys=False, allow_unicode=True
    )
    if datasets:
        text += f"# datasets: from {datasets_from}\n" + yaml.safe_dump(
            {"datasets": datasets}, sort_keys=False, allow_unicode=True
        )
    else:
        text += DATASETS_TEMPLATE
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        if datasets:
            try:
                load_catalogue(tmp)
            except ConfigError as exc:
                raise ConfigError(
                    f"The datasets section of {datasets_from} does not fit the variables of "
                    f"checkpoint {checkpoint}: {exc.message.replace(str(tmp), str(path))}",
                    hint=exc.hint,
                ) from None
    if datasets:
        print(f"wrote {path}: {len(stored)} variables, datasets {sorted(datasets)}")
    else:
        print(
            f"wrote {path}: {len(stored)} variables; add your datasets under its datasets: "
            "section (or rerun with --datasets-from your catalogue) before using it"
        )
    return 0


def _check_ours(path: Path) -> None:
    """Refuse to replace a file this option did not write."""
    if not path.exists():
        return
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        first = ""
    if not first.startswith(EXPORT_MARK):
        raise OutputOwnershipError(
            f"{path} exists and was not written by lcm model-info --catalogue-out; nothing "
            "was written.",
            hint="Give a new file name, or move that file.",
        )
