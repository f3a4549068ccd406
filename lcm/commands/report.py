"""``lcm report``: merge the tasks' metrics, summarise them with CIs, and write the HTML report."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from lcm.bids.summary import read_summary_table
from lcm.commands._arguments import int_at_least
from lcm.commands._atlas import add_atlas_arguments
from lcm.commands._atlas_load import atlas_from_args
from lcm.commands._outputs import Recorded, check_output_folders, record_job
from lcm.commands._path_text import path_text
from lcm.commands._stopped import WritingStopped
from lcm.config import parse_settings
from lcm.docstrings import fill_doc
from lcm.evaluate.compare import (
    N_BOOT,
    contrast_table,
    control_table,
    headline_table,
    motion_confound,
    motion_correlation,
    site_table,
)
from lcm.evaluate.config_schema import validate_references
from lcm.evaluate.kinds import recorded_kinds
from lcm.evaluate.metrics import (
    METRIC_COLUMNS,
    METRIC_DTYPES,
    PREDICTION_COLUMNS,
    PREDICTION_DTYPES,
    summarise,
    write_tidy_parquet,
)
from lcm.evaluate.motion import motion_scores
from lcm.evaluate.record import check_evaluation_pairs, read_evaluation_records
from lcm.exceptions import InputDataError
from lcm.io.atomic import write_text, write_tsv
from lcm.io.derivatives import included_mask
from lcm.io.output_set import written_together
from lcm.io.provenance import provenance_path
from lcm.report.html import ReportData, render_report
from lcm.report.provenance_section import checkpoint_beside, checkpoint_file, collect_provenance
from lcm.report.tables import (
    concat_tidy,
    read_bei_eval,
    read_history,
    read_qc,
)

log = logging.getLogger(__name__)

# The options naming files the report writes, each with a provenance sidecar.
REPORT_OUTPUTS = (
    "out_metrics",
    "out_predictions",
    "out_summary",
    "out_headline",
    "out_contrasts",
    "out_html",
)

EXAMPLE = """example:
  lcm report --metrics results/metrics/task-autism_metrics.parquet \\
                       results/metrics/task-alzheimers_metrics.parquet \\
      --predictions results/metrics/task-autism_predictions.parquet \\
                    results/metrics/task-alzheimers_predictions.parquet \\
      --history results/models/pretrain/history.tsv \\
      --ssl-history results/models/pretrain-ssl/history.tsv \\
      --ground-truth results/synth/abidelike/ground_truth.json \\
      --bei-eval results/models/pretrain/bei_eval.tsv \\
      --qc results/connectome/abidelike/seg-aal116_qc.tsv \\
           results/connectome/adnilike/seg-aal116_qc.tsv \\
      --out-metrics results/metrics/metrics.parquet \\
      --out-predictions results/metrics/predictions.parquet \\
      --out-summary results/metrics/summary.tsv --out-headline results/metrics/headline.tsv \\
      --out-contrasts results/metrics/contrasts.tsv --out-html results/report/index.html \\
      --attention results/embeddings/task-autism_attention.parquet --atlas aal116 \\
      --checkpoint results/models/pretrain results/models/finetune/autism \\
      --bei-maps results/models/pretrain/bei_linear.npz --configs results/configs \\
      --logs results/logs

outputs:
  --out-metrics  tidy Parquet: task, model, label_fraction, seed, fold, metric, value
  --out-predictions tidy Parquet: task, model, label_fraction, seed, fold, dataset, subject,
                 site, y_true, prediction: every task's, and head motion's (motion-fd), which
                 the report fits itself: the per-site tables and ROC curves read these
  --out-summary  TSV: task, model, label_fraction, metric, mean, ci_low, ci_high, n
                 (95 % corrected resampled t interval over folds x seeds: training
                 variance included, not narrowed by adding seeds; one value, or values
                 equal up to float rounding: no interval, ci_low = ci_high = mean)
  --out-headline TSV: per task and label fraction, LCM against the best baseline:
                 difference, its CI (spanning the paired bootstrap of test subjects, one
                 draw per subject across seeds and folds, and the corrected resampled t
                 of the folds' differences), p (the larger of the two p values) and a
                 verdict
  --out-contrasts TSV: per task and label fraction, LCM against lcm-scratch (pretraining
                 gain, self-training included), lcm-no-pseudo (pseudo-label gain) and
                 lcm-ssl, and lcm-no-pseudo against lcm-scratch (pretraining alone), with corrected
                 resampled t intervals over seeds x folds (training variance included)
  --out-html     one self-contained page (figures embedded, no external resources); with
                 --attention, a brain map of each diagnosis query's attention over the ROIs
"""
# One fit; the same fit in two input files means a task was passed twice.
_KEY = ("task", "model", "label_fraction", "seed", "fold")


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "report",
        help="Summarise evaluation metrics and write the HTML report.",
        description="Concatenate the tasks' tidy metrics, summarise every task, model, label "
        "fraction and metric with a 95 % corrected resampled t interval over folds x seeds, "
        "and write a self-contained HTML report with ROC curves, label-fraction curves, "
        "pretraining loss curves, the BEI held-out table, QC counts and provenance.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--metrics", type=path_text, nargs="+", required=True, help="Metrics Parquet per task."
    )
    p.add_argument(
        "--predictions",
        type=path_text,
        nargs="+",
        required=True,
        help="Predictions Parquet per task.",
    )
    p.add_argument(
        "--history",
        type=path_text,
        help="Pretraining history TSV (optional); with the checkpoint of its folder among "
        "--checkpoint, the Pretraining section states and marks the checkpoint's epoch.",
    )
    p.add_argument("--bei-eval", type=path_text, help="BEI held-out evaluation TSV (optional).")
    p.add_argument(
        "--qc", type=path_text, nargs="*", default=[], help="Connectome QC TSVs (optional)."
    )
    p.add_argument(
        "--ingest-summary",
        type=path_text,
        nargs="*",
        default=[],
        help="Ingestion summary TSVs, results/ingest/<dataset>/summary.tsv (optional).",
    )
    p.add_argument(
        "--ssl-history",
        type=path_text,
        help="History TSV of the self-supervised-only pretraining (optional).",
    )
    p.add_argument(
        "--ground-truth",
        type=path_text,
        nargs="*",
        default=[],
        help="ground_truth.json of synthetic task datasets: oracle ceilings (optional).",
    )
    p.add_argument(
        "--store",
        type=path_text,
        help="Feature store holding the synthetic task datasets (with --ground-truth): the "
        "oracle's readout on the pipeline's own connectomes beside the ceiling (optional).",
    )
    p.add_argument(
        "--attention",
        type=path_text,
        nargs="*",
        default=[],
        help="Attention tables of the finetuned models, results/embeddings/task-<task>_attention"
        ".parquet (lcm embed --attention-out): brain maps of the diagnosis queries (optional).",
    )
    add_atlas_arguments(
        p,
        required=False,
        default="aal116",
        files=True,
        help="Atlas of the ROIs (for --attention; default aal116).",
    )
    p.add_argument(
        "--checkpoint",
        type=path_text,
        nargs="*",
        default=[],
        help="Checkpoints the tasks were evaluated with and the finetuned models the attention "
        "maps come from (folders or their model.json): the Provenance section gives their "
        "weights' sha256 and training data (optional).",
    )
    p.add_argument(
        "--bei-maps",
        type=path_text,
        nargs="*",
        default=[],
        help="Ridge maps of the bei-linear baseline (bei_linear.npz beside the pretrained "
        "checkpoint, lcm bei-maps): the Provenance section gives their sha256 (optional).",
    )
    p.add_argument(
        "--configs",
        type=path_text,
        help="Folder of the validated configs the workflow ran under, results/configs: the "
        "config each input's sidecar names by its sha256 is shown (optional).",
    )
    p.add_argument(
        "--logs",
        type=path_text,
        help="The workflow's logs folder, results/logs: the Provenance section lists every "
        "stage's log folder in it (optional).",
    )
    p.add_argument(
        "--out-headline",
        type=path_text,
        help="Headline comparison TSV to write: LCM against the best baseline, the interval "
        "spanning the paired bootstrap and the corrected resampled t, p the larger of their "
        "two (optional).",
    )
    p.add_argument(
        "--out-contrasts",
        type=path_text,
        help="TSV of LCM against its ablations (pretraining and pseudo-label gains, with "
        "corrected resampled t intervals over seeds x folds) to write (optional).",
    )
    p.add_argument(
        "--out-metrics", type=path_text, required=True, help="Merged metrics Parquet to write."
    )
    p.add_argument(
        "--out-predictions",
        type=path_text,
        help="Merged out-of-fold predictions Parquet to write, head motion's (motion-fd) among "
        "them (optional).",
    )
    p.add_argument("--out-summary", type=path_text, required=True, help="Summary TSV to write.")
    p.add_argument("--out-html", type=path_text, required=True, help="HTML report to write.")
    p.add_argument(
        "--references",
        default="{}",
        help="JSON of each task's published reference range, as tasks.<task>.reference: "
        '\'{"autism": {"metric": "accuracy", "range": [0.65, 0.72], "source": "..."}}\'; a '
        "model's mean above its task's range gets a warning (default: {}, none).",
    )
    p.add_argument("--title", default="LCM evaluation report", help="Title of the page.")
    p.add_argument(
        "--n-boot",
        type=int_at_least(20),
        default=N_BOOT,
        help=f"Resamples of the headline's paired bootstrap (default {N_BOOT}; at least 20, "
        "which a bootstrap p below 0.05 needs).",
    )
    p.set_defaults(func=run, recorded=REPORT_OUTPUTS)


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm report``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    check_evaluation_pairs(args.metrics, args.predictions)
    check_output_folders(getattr(args, o) for o in REPORT_OUTPUTS)
    metrics = concat_tidy(args.metrics, METRIC_COLUMNS, METRIC_DTYPES, _KEY)
    predictions = concat_tidy(
        args.predictions, PREDICTION_COLUMNS, PREDICTION_DTYPES, _KEY, ("y_true", "prediction")
    )
    history = read_history(args.history) if args.history else None
    bei_eval = read_bei_eval(args.bei_eval) if args.bei_eval else None
    qc = read_qc(args.qc) if args.qc else None
    ingest = read_ingest_summaries(args.ingest_summary)
    task_meta = read_evaluation_records(args.metrics)
    kinds = recorded_kinds(task_meta)  # AUC or Pearson r by the record, not by y_true's values
    # Checked before anything is computed: a bad range fails here, naming it.
    references = validate_references(
        parse_settings(args.references, "references"),
        {t: kinds.get(str(t), "binary") for t in metrics["task"].unique()},
    )
    # Head motion alone, scored on the models' own folds: a row of every table beside them.
    motion_metrics, motion_predictions, motion_not_scored = motion_scores(
        qc, predictions, task_meta
    )
    metrics = pd.concat([metrics, motion_metrics], ignore_index=True)
    predictions = pd.concat([predictions, motion_predictions], ignore_index=True)
    summary = summarise(metrics)
    headline = headline_table(summary, predictions, n_boot=args.n_boot, kinds=kinds)
    contrasts = contrast_table(metrics, predictions, kinds)
    oracles, oracle_inputs = _oracles(args, task_meta, predictions)
    motion = motion_confound(qc, predictions, kinds)
    motion_r = motion_correlation(qc, predictions, kinds)
    inputs = [
        Path(p)
        for p in (
            *args.metrics,
            *args.predictions,
            args.history,
            args.ssl_history,
            args.bei_eval,
            *args.qc,
            *args.ingest_summary,
            *args.ground_truth,
            *oracle_inputs,
            *args.attention,
            *_atlas_inputs(args),
            *map(checkpoint_file, args.checkpoint),
            *args.bei_maps,
        )
        if p
    ]
    provenance = collect_provenance(
        inputs,
        args.checkpoint,
        args.configs,
        report_log=getattr(args, "log_file", None),
        trace_target=args.metrics[0],  # an input: the page names nothing of where it is written
        maps=args.bei_maps,
        logs_dir=args.logs,
    )
    inputs.extend(provenance.config_files)
    # Everything is computed before the first output is written: a failure or a kill while
    # rendering leaves the last report whole, never new tables beside an old page.
    page = render_report(
        ReportData(
            metrics=metrics,
            predictions=predictions,
            summary=summary,
            history=history,
            bei_eval=bei_eval,
            qc=qc,
            ingest=ingest,
            inputs=inputs,
            title=args.title,
            headline=headline,
            control=control_table(summary, predictions, task_meta),
            sites=site_table(predictions, kinds=kinds),
            oracles=oracles,
            task_meta=task_meta,
            ssl_history=read_history(args.ssl_history) if args.ssl_history else None,
            attention_html=_attention_html(args),
            contrasts=contrasts if len(contrasts) else None,
            motion=motion,
            motion_r=motion_r,
            motion_not_scored=motion_not_scored,
            provenance=provenance,
            references=references,
            history_checkpoint=checkpoint_beside(provenance.checkpoints, args.history),
        )
    )
    # motion-fd's rows come from the QC tables and the predictions: sources of every table.
    motion_sources = [*args.predictions, *args.qc] if len(motion_metrics) else []
    tables_from = [*args.metrics, *motion_sources]
    # The ranges the page compared with are settings of the page (none set, none recorded);
    # the page's numbers no table holds (the oracles' AUCs, motion's in-sample AUC or r) are in
    # its record: every number on the page is then in a file a script can read.
    readouts = _json_ready(
        {
            "oracles": oracles,
            "motion_fd_auc_in_sample": motion,
            "motion_fd_pearson_r_in_sample": motion_r,
        }
    )
    # The means and their intervals come from the metrics, the difference from both.
    headline_from = [*args.metrics, *args.predictions, *(args.qc if len(motion_metrics) else [])]
    page_keys = {"readouts": readouts, **({"references": references} if references else {})}
    # Each output once, in the order of the set (REPORT_OUTPUTS), as they are written: its
    # option, its sources, its record's further keys, its writer and what it writes. An
    # optional one not asked for (no option value) is neither written nor recorded.
    parquet = partial(write_tidy_parquet, metadata={"sources": [str(p) for p in tables_from]})
    predictions_from = [*args.predictions, *motion_sources]
    method = "corrected resampled t"
    declared: list[tuple[str | None, list, dict[str, Any], Callable[[str, Any], None], Any]] = [
        (args.out_metrics, tables_from, {}, parquet, metrics),
        # motion-fd's are fitted here, on a draw of training subjects no file keeps else.
        (args.out_predictions, predictions_from, {}, write_tidy_parquet, predictions),
        (args.out_summary, tables_from, {"interval": method, "level": 0.95}, write_tsv, summary),
        (args.out_headline, headline_from, {"n_boot": args.n_boot}, write_tsv, headline),
        (args.out_contrasts, tables_from, {"method": method}, write_tsv, contrasts),
        (args.out_html, inputs, page_keys, write_text, page),
    ]
    asked = [row for row in declared if row[0]]
    jobs = [Recorded(Path(out), sources, keys) for out, sources, keys, _, _ in asked]
    outputs = [job.output for job in jobs]
    # The tables and the page are kept only together, with their records (a full disk at the
    # page left new tables beside the last run's page; one at a record, written after the
    # set, this run's files beside the last run's records). Written in the set's order.
    with (
        WritingStopped("lcm report", outputs),
        written_together([*outputs, *map(provenance_path, outputs)]) as written,
    ):
        for out, _, _, write, content in asked:
            write(out, content)
            written.append(Path(out))
        # Each record names the others as its job's products: nothing reads the page, the
        # headline or the contrasts, so without it one deleted or rewritten (its own record's
        # sha256 updated) passed lcm provenance verify.
        written += record_job(jobs)
    log.info(
        "report: %d tasks, %d metric rows -> %s, %s, %s",
        metrics["task"].nunique(),
        len(metrics),
        args.out_metrics,
        args.out_summary,
        args.out_html,
    )
    return 0


def _json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _oracles(
    args: argparse.Namespace, task_meta: dict[str, dict], predictions: pd.DataFrame
) -> tuple[dict[str, dict], list[Path]]:
    """The oracle of each binary task on a synthetic cohort whose classes it separates.

    Returns
    -------
    oracles : dict
        ``task -> ceiling`` (:func:`lcm.synth.oracle.ceiling`) with ``scan``: the same readout
        on the store's connectomes of the subjects the task tested
        (:func:`lcm.synth.oracle.scan_oracle`) when ``--store`` was given.
    inputs : list of Path
        The connectome partitions read.
    """
    if not args.ground_truth:
        return {}, []
    from lcm.synth.oracle import ceiling, read_ground_truth

    truths = {Path(p).parent.name: (read_ground_truth(p), p) for p in args.ground_truth}
    oracles: dict[str, dict] = {}
    inputs: list[Path] = []
    read: dict[tuple[str, str], tuple] = {}  # each dataset's connectomes read once for its tasks
    for task, meta in task_meta.items():
        truth, path = truths.get(str(meta.get("dataset", "")), (None, ""))
        found = ceiling(truth, path) if truth is not None else None
        # The diagnosis's ceiling says nothing of a task on another variable (sex, ...).
        levels = [str(v) for v in meta.get("levels") or []]
        if not found or meta.get("kind", "binary") != "binary":
            continue
        if not levels or not set(levels) <= set(found["levels"]):
            continue
        if args.store:
            found["scan"], files = _scan_oracle(args.store, task, meta, truth, predictions, read)
            inputs.extend(f for f in files if f not in inputs)
        oracles[task] = found
    return oracles, inputs


def _scan_oracle(
    store: str, task: str, meta: dict, truth: dict, predictions: pd.DataFrame, read: dict
) -> tuple[dict, list[Path]]:
    """The oracle's readout on the store's connectomes of the subjects ``task`` tested
    (``read``: connectomes already read, by dataset and atlas, as the store's upper
    triangles; filled here)."""
    from lcm.io.paths import connectome_path
    from lcm.store.read import read_connectome_triangles
    from lcm.synth.oracle import scan_oracle

    dataset, atlas = str(meta["dataset"]), str(meta.get("atlas", ""))
    tested = predictions[(predictions["task"] == task) & (predictions["dataset"] == dataset)]
    labels = tested.groupby("subject", sort=True)["y_true"].first().round().astype(int)
    try:
        if (dataset, atlas) not in read:
            read[dataset, atlas] = read_connectome_triangles(store, atlas, dataset)
        ids, fc, names = read[dataset, atlas]
    except InputDataError as exc:  # the page is still written, saying why
        log.warning("oracle of %s on the pipeline's connectomes not computed: %s", task, exc)
        return {"auc": None, "n_subjects": len(labels), "note": f"not computed: {exc}"}, []
    result = scan_oracle(truth, fc, names, ids["subject"].astype(str).to_numpy(), labels.to_dict())
    log.info("oracle of %s on the pipeline's connectomes: %s", task, result)
    return result, [connectome_path(store, atlas, dataset)]


def _atlas_inputs(args: argparse.Namespace) -> list[str]:
    """The atlas files the brain maps were drawn from, absolute (none without attention
    tables; a TemplateFlow atlas's as found in its tree, as the connectome sidecars list them)."""
    if not args.attention:
        return []
    from lcm.connectome.outputs import atlas_sources

    if args.atlas_templateflow:
        return list(atlas_from_args(args).files)
    return atlas_sources(args.atlas, args.atlas_path, args.atlas_labels)


def _attention_html(args: argparse.Namespace) -> str:
    """The diagnosis queries' brain maps, or nothing when no attention table was given."""
    if not args.attention:
        return ""
    from lcm.report.attention import attention_section

    return attention_section(list(args.attention), atlas_from_args(args))


def read_ingest_summaries(paths: list[str]) -> pd.DataFrame | None:
    """Concatenate ingestion summary TSVs (None when none were given).

    Parameters
    ----------
    paths : list of str
        The ``summary.tsv`` files of ingest (``--ingest-summary``), one per dataset.

    Returns
    -------
    pandas.DataFrame or None
        Their rows, the ``included`` column as booleans.

    Raises
    ------
    lcm.exceptions.InputDataError
        When a table cannot be read, or its ``included`` holds a value other than true/false.
    """
    if not paths:
        return None
    frames = []
    for path in paths:
        frame = read_summary_table(path)
        if "included" in frame:  # a flag, shown yes/no (read as text it printed True)
            frame["included"] = included_mask(frame["included"], f"ingestion summary {path}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
