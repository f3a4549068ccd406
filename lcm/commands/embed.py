"""``lcm embed``: subject embeddings (and per-query attention over ROIs) of a checkpoint."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lcm.commands._arguments import add_store_arguments
from lcm.commands._outputs import check_output_folders, record_together
from lcm.commands._path_text import path_text
from lcm.commands._sources import existing, named_store, store_sources
from lcm.commands._stopped import WritingStopped
from lcm.docstrings import fill_doc
from lcm.io.output_set import written_together
from lcm.io.provenance import provenance_path
from lcm.model.checkpoint_meta import CHECKPOINT_NAMES

log = logging.getLogger(__name__)

EXAMPLE = """example:
  lcm embed --checkpoint results/models/pretrain --store results/store --atlas aal116 \\
      --catalogue config/variables.yaml --datasets abidelike adnilike \\
      --out results/embeddings/pretrain_embeddings.parquet \\
      --attention-out results/embeddings/pretrain_attention.parquet

outputs: --out, one row per run (per window, for a store of windows): identifiers, then
pretraining, then emb_000 ... (float32: the mean ROI token after the ROI mixer, d_model values);
pretraining says what the checkpoint's training did with the run: 'trained' (an embedding of
a pretraining run, not of a new subject), 'held_out' (pretraining's held-out subjects),
'finetuned' (a finetuned checkpoint's own finetuning runs, labelled or not: all of the
workflow's embeddings of a task) or 'unseen'; a finetuned checkpoint's other runs take their
role in the pretraining of the checkpoint it started from (model.json's pretrained_data). By
dataset name and by connectome content; null for a checkpoint whose model.json names no runs
(finetuned before LCM recorded them). --attention-out, one row per run and query:
identifiers, pretraining, query
('variable' or 'variable=level'), then one column per ROI named by the ROI (an atlas with an
ROI named like one of the other columns is refused; last decoder layer, heads averaged,
rows sum to 1). Parquet key-value metadata name the checkpoint (absolute path), its weights'
sha256, the atlas and (lcm.label, JSON) the diagnosis of a finetuned checkpoint: name, levels,
positive. Each output gets a provenance sidecar (<name>.json: sources with their sha256, the
output's sha256), so `lcm provenance verify` detects an edited table. An existing --out (or
--attention-out) is replaced only when its sidecar shows LCM wrote it; else nothing is written.
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``embed`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "embed",
        help="Write subject embeddings (and query attention over ROIs) of a checkpoint to Parquet.",
        description="Run a pretrained or finetuned checkpoint over the runs of some datasets of "
        "the feature store and write one embedding per run; optionally the attention of every "
        "query over the ROIs, for maps such as the diagnosis query's attention on the brain.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", type=path_text, required=True, help="Checkpoint folder.")
    p.add_argument("--datasets", nargs="+", required=True, help="Datasets to embed.")
    p.add_argument("--out", type=path_text, required=True, help="Embeddings Parquet file to write.")
    p.add_argument(
        "--attention-out",
        type=path_text,
        default=None,
        help="Query attention Parquet (optional).",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available).")
    add_store_arguments(p)
    # lcm.cli checks them before the model runs and before any output is written: two outputs
    # sharing a record, a record's place taken by a file LCM did not write (--out
    # dir/model.parquet beside a checkpoint's model.json), an existing output LCM did not write.
    p.set_defaults(func=run, recorded=("out", "attention_out"))


def probe_label(meta: dict) -> dict | None:
    """The checkpoint's ``label``, with its probe's coefficient per BEI query when it has one.

    Parameters
    ----------
    meta : dict
        A checkpoint's ``model.json`` (:func:`lcm.model.checkpoint.load_checkpoint`'s metadata).

    Returns
    -------
    dict or None
        The ``label`` entry; with a probe, its ``probe`` entry added: its features, and for a probe
        on the BEI queries its coefficient per query name. None for a checkpoint with no label (a
        pretrained one).
    """
    from lcm.model.checkpoint import checkpoint_layout
    from lcm.model.export import query_names

    label, probe = meta.get("label"), meta.get("probe")
    if not label or not probe:
        return label
    if probe["features"] != "bei":
        return {**label, "probe": {"features": probe["features"]}}
    names = query_names(checkpoint_layout(meta))
    coef = dict(zip(names, probe["coef"], strict=True))
    return {**label, "probe": {"features": "bei", "coef": coef}}


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm embed``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    # Imported here: every `lcm` call builds all parsers, and torch takes seconds to import.
    import pandas as pd

    from lcm.catalogue import load_catalogue
    from lcm.model.checkpoint import (
        WEIGHTS_NAME,
        check_fits,
        checkpoint_layout,
        load_checkpoint,
        read_meta,
    )
    from lcm.model.export import (
        FINETUNED,
        HELD_OUT,
        PRETRAINING,
        TRAINED,
        UNSEEN,
        attention_frame,
        check_roi_columns,
        embedding_frame,
        embeddings,
        pretraining_roles,
        query_attention,
    )
    from lcm.model.export_tables import write_export_table
    from lcm.model.weights import read_header
    from lcm.store.read import load_cohort
    from lcm.train.loop import pick_device

    check_output_folders([args.out, args.attention_out])
    device = pick_device(args.device)  # a device this machine lacks, refused first
    catalogue = load_catalogue(args.catalogue)
    # Its files, atlas and catalogue before the cohort: a store's connectomes take minutes and
    # gigabytes to load, which a checkpoint lacking its weights then refused.
    recorded_meta = read_meta(args.checkpoint)
    data = named_store(args.store)
    check_fits(args.checkpoint, recorded_meta, atlas=args.atlas, catalogue=catalogue, data=data)
    # Weights cut short (a copy or a job interrupted) were refused only after the cohort was
    # loaded; their header's offsets beyond the file's end tell it in a few bytes' read.
    read_header(Path(args.checkpoint) / WEIGHTS_NAME)
    # An ROI named like a column of the attention table was refused by pyarrow at the end.
    if args.attention_out and isinstance(recorded_meta.get("roi_names"), list):
        check_roi_columns([str(n) for n in recorded_meta["roi_names"]], args.atlas)
    cohort = load_cohort(args.store, args.atlas, list(args.datasets), catalogue)
    model, meta = load_checkpoint(
        args.checkpoint,
        atlas=args.atlas,
        n_rois=cohort.fc.shape[1],
        roi_names=list(cohort.roi_names),
        catalogue=catalogue,
        device=device,
        data=data,
    )
    ids = cohort.ids.reset_index(drop=True)
    if args.attention_out:  # a checkpoint that records no ROI names, or other run columns
        check_roi_columns(list(cohort.roi_names), args.atlas, [*ids.columns])
    roles = pretraining_roles(meta, cohort.fc, cohort.groups)
    # A string column either way: a null-typed one would not union with another table's.
    ids[PRETRAINING] = pd.Series(roles if roles is not None else [None] * len(ids), dtype="string")
    if roles is not None and (roles != UNSEEN).any():
        log.warning(
            "%d of %d runs embedded were in checkpoint %s's training data (%d finetuned on, "
            "%d pretrained on, %d held out of pretraining): column 'pretraining' marks them; "
            "their embeddings are not those of new subjects",
            int((roles != UNSEEN).sum()),
            len(roles),
            args.checkpoint,
            int((roles == FINETUNED).sum()),
            int((roles == TRAINED).sum()),
            int((roles == HELD_OUT).sum()),
        )
    recorded = {
        "checkpoint": args.checkpoint,
        "weights_sha256": str(meta.get("weights_sha256", "")),
        "atlas": args.atlas,
        "label": probe_label(meta),
    }

    def write(frame: pd.DataFrame, path: str) -> None:
        write_export_table(frame, path, **recorded)

    tables = [(embedding_frame(ids, embeddings(model, cohort.fc, device)), args.out)]
    if args.attention_out:
        attention = query_attention(model, cohort.fc, device)
        frame = attention_frame(
            ids, attention, checkpoint_layout(meta, args.checkpoint), list(cohort.roi_names)
        )
        tables.append((frame, args.attention_out))
    sources = [
        *existing(args.checkpoint, CHECKPOINT_NAMES),
        *store_sources(args.store, args.atlas, list(args.datasets)),
        args.catalogue,
    ]
    outputs = [Path(p) for p in (args.out, args.attention_out) if p]
    # Both or neither, with their records: an embeddings table left without its record
    # blocked the rerun; a full disk or a SIGTERM at a record (written after the set) left
    # this run's tables beside the earlier run's records, or none.
    with (
        WritingStopped("lcm embed", outputs),
        written_together([*outputs, *(provenance_path(p) for p in outputs)]) as written,
    ):
        for frame, path in tables:
            write(frame, path)
            written.append(Path(path))
        written += record_together(outputs, sources)
    log.info(
        "embeddings of %d runs (%d dimensions) -> %s", len(cohort), model.config.d_model, args.out
    )
    if args.attention_out:
        log.info("query attention over %d ROIs -> %s", attention.shape[2], args.attention_out)
    return 0
