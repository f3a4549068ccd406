"""``lcm model-info``: parameter count of a model preset, computed without allocating it."""

from __future__ import annotations

import argparse
import json

from lcm.commands._arguments import int_at_least
from lcm.config import parse_settings

# Preset names repeated here so that building the CLI parser does not import torch.
PRESET_NAMES = ("tiny", "small", "base", "big")

EXAMPLE = """examples:
  lcm model-info --preset big
  lcm model-info --preset small --n-rois 400 --n-queries 12
  lcm model-info --preset tiny --overrides '{"n_layers": 4}' --json
  # a checkpoint: what it was pretrained or finetuned on, its queries and parameters
  lcm model-info --checkpoint results/models/pretrained
"""

# Queries of the demo catalogue: sex (2), five numeric variables, plus a 2-query diagnosis.
DEFAULT_N_QUERIES = 9


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``model-info`` verb."""
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
        type=int,
        default=DEFAULT_N_QUERIES,
        help=f"Query tokens (default {DEFAULT_N_QUERIES}).",
    )
    p.add_argument("--overrides", default="{}", help="JSON of model config fields to replace.")
    p.add_argument(
        "--checkpoint",
        help="A checkpoint folder (lcm pretrain / finetune): what it was trained on and its "
        "parameters, from its model.json (replaces --preset, --n-rois, --n-queries).",
    )
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``lcm model-info``."""
    from lcm.model.config import config_from_settings
    from lcm.model.info import parameter_counts

    if args.checkpoint:
        return _checkpoint_info(args.checkpoint, args.json)
    overrides = parse_settings(args.overrides, "overrides")
    config = config_from_settings(
        {"preset": args.preset, "overrides": overrides}, args.n_rois, args.n_queries
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
    from lcm.model.checkpoint import checked_config, read_meta
    from lcm.model.info import parameter_counts

    meta = read_meta(checkpoint)
    config = checked_config(checkpoint, meta)
    data = meta.get("data") or {}
    label = meta.get("label") or {}
    facts = {
        "checkpoint": str(checkpoint),
        "kind": meta.get("kind"),
        "atlas": meta.get("atlas"),
        "n_rois": meta.get("n_rois"),
        "datasets": data.get("datasets"),
        "n_subjects": data.get("n_subjects"),
        "queries": [group["name"] for group in meta.get("query_layout", [])],
        "label": label.get("name"),
        "positive": label.get("positive"),
        "model_settings": meta.get("model_settings"),
        "selected_epoch": meta.get("selected_epoch"),
        "seed": meta.get("seed"),
        "weights_sha256": meta.get("weights_sha256"),
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
