"""``lcm atlases``: the registry atlases, or one atlas's regions as the workflow would load it."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from lcm.commands._atlas import add_atlas_arguments
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  lcm atlases                       the registry: name, kind, regions, space, voxel size, source
  lcm atlases --json
  lcm atlases --atlas power264      its regions (TSV): index, name, network, voxels, mm^3, x, y, z
  lcm atlases --atlas mine --atlas-path mine.nii.gz --atlas-labels mine.tsv > regions.tsv
                                    check your own atlas before a run: loaded as connectome would
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``atlases`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "atlases",
        help="List the registry atlases, or print one atlas's regions.",
        description="Without --atlas: one line per registry atlas (the names atlas.name accepts "
        "without files). With --atlas (and --atlas-path/--atlas-labels/--atlas-templateflow for "
        "your own): load the atlas exactly as the connectome stage does and print its regions as "
        "TSV, with each region's voxel count, volume and centre (MNI mm); a summary goes to "
        "stderr.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_atlas_arguments(
        p,
        required=False,
        files=True,
        help="Atlas to describe: a registry name, or the name given to your own or a "
        "TemplateFlow atlas.",
    )
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p.set_defaults(func=run)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm atlases``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    if args.atlas is None:
        given = [
            f"--{name.replace('_', '-')}"
            for name in ("atlas_path", "atlas_labels", "atlas_templateflow")
            if getattr(args, name) is not None
        ]
        if given:  # the listing printed instead of the user's atlas, which nobody checked
            raise ConfigError(
                f"lcm atlases: {' and '.join(given)} given without --atlas: your atlas needs the "
                "name the workflow would give it.",
                hint="Add --atlas NAME (letters and digits, not a registry atlas's), e.g. "
                "`lcm atlases --atlas mine --atlas-path mine.nii.gz --atlas-labels mine.tsv`.",
            )
        return _list(args.json)
    return _describe(args)


def _list(as_json: bool) -> int:
    from lcm.atlas.registry import describe_atlases

    table = describe_atlases()
    if as_json:
        print(json.dumps(table.to_dict(orient="records")))
        return 0
    table["networks"] = table["networks"].map({True: "yes", False: "no"})
    widths = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in table.columns}
    for row in [dict(zip(table.columns, table.columns, strict=True)), *table.to_dict("records")]:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in table.columns).rstrip())
    print(
        "\nUse one as atlas.name (config) or --atlas NAME; your own atlas: atlas.path + "
        "atlas.labels (--atlas-path/--atlas-labels), or atlas.templateflow."
    )
    return 0


def _describe(args: argparse.Namespace) -> int:
    import numpy as np

    from lcm.commands._atlas_load import atlas_from_args

    atlas = atlas_from_args(args)
    table = atlas.labels.copy()
    if atlas.img is not None:
        volumes = atlas.parcel_volumes_mm3()
        voxel_mm3 = abs(float(np.linalg.det(atlas.img.affine[:3, :3])))
        table["voxels"] = (volumes / voxel_mm3).round().astype(int)
        table["volume_mm3"] = volumes.round(1)
    if not {"x", "y", "z"} <= set(table.columns):
        centres = atlas.centroids().round(1)
        table["x"], table["y"], table["z"] = centres[:, 0], centres[:, 1], centres[:, 2]
    empty = int((table["voxels"] == 0).sum()) if "voxels" in table else 0
    log.info(
        "atlas %s: %d regions, space %s%s",
        atlas.name,
        atlas.n_rois,
        atlas.space,
        f", {empty} without a voxel" if empty else "",
    )
    if args.json:
        # NaN centres (no voxel; labels-only without coordinates) become JSON null.
        regions = json.loads(table.to_json(orient="records"))
        print(json.dumps({"name": atlas.name, "space": atlas.space, "regions": regions}))
    else:
        table.to_csv(sys.stdout, sep="\t", index=False, na_rep="n/a")
    return 0
