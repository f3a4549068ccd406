# Stage 7: one tidy metrics table, a summary with confidence intervals, and the HTML report.
import mimetypes

# `snakemake --report` embeds each file with the type its extension names, and Python's table
# lacks Parquet's (IANA-registered): the metrics table went in as text/plain.
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


localrules:
    report,


rule report:
    """Metrics tables, summary with confidence intervals, and the HTML report."""
    input:
        metrics=expand(paths.task_metrics(RESULTS, "{task}"), task=TASKS),
        predictions=expand(
            paths.task_metrics(RESULTS, "{task}", "predictions"), task=TASKS
        ),
        history=get_pretrain_output(HISTORY_NAME),
        ssl_history=get_ssl_history(),
        truth=get_ground_truth_files(),
        oracle_store=get_oracle_store_files(),
        bei_eval=get_pretrain_output(BEI_EVAL_NAME),
        qc=[paths.qc_table(RESULTS, ds, ATLAS) for ds in sorted(CFG["datasets"])],
        ingest=[
            paths.ingest_summary(paths.ingest_manifest(RESULTS, ds), ".tsv")
            for ds in sorted(CFG["datasets"])
        ],
        attention=expand(
            paths.task_embeddings(RESULTS, "{task}", "attention"), task=FINETUNE_TASKS
        ),
        # The brain maps are drawn on a user atlas's image: its files are tracked.
        atlas=get_atlas_files(),
        checkpoints=get_checkpoint_metadata(),
        bei_maps=get_report_bei_maps(),
    output:
        metrics=report(
            paths.metrics_file(RESULTS, "metrics.parquet"),
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        predictions=report(
            paths.metrics_file(RESULTS, "predictions.parquet"),
            caption="../report/predictions.rst",
            category="Metrics",
        ),
        summary=report(
            paths.metrics_file(RESULTS, "summary.tsv"),
            caption="../report/summary.rst",
            category="Metrics",
        ),
        headline=report(
            paths.metrics_file(RESULTS, "headline.tsv"),
            caption="../report/headline.rst",
            category="Metrics",
        ),
        contrasts=report(
            paths.metrics_file(RESULTS, "contrasts.tsv"),
            caption="../report/contrasts.rst",
            category="Metrics",
        ),
        html=report(
            paths.report_html(RESULTS),
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        get_log("report/report.log"),
    conda:
        "../../envs/report.yaml"
    params:
        code=code_hash("report"),
        # The params of the model jobs above it (common.smk, "what a job's inputs were made with").
        upstream=get_report_upstream,
        history_arg=get_optional_arg("--history", "history"),
        bei_eval_arg=get_optional_arg("--bei-eval", "bei_eval"),
        ssl_history_arg=get_optional_arg("--ssl-history", "ssl_history"),
        truth_arg=get_optional_arg("--ground-truth", "truth"),
        oracle_store_arg=get_oracle_store_arg,
        attention_arg=get_optional_arg("--attention", "attention"),
        bei_maps_arg=get_optional_arg("--bei-maps", "bei_maps"),
        atlas_args=get_atlas_args(with_seg=False),
        # Each task's published reference range (tasks.<task>.reference): editing one reruns
        # the report alone.
        references=get_report_references(),
        # Written before the first job and named by their content: read, never rerun for.
        configs=paths.config_dir(RESULTS),
        # Listed on the page, every stage's folder: not an input.
        logs=paths.logs_dir(RESULTS),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule report report --metrics {input.metrics:q}'
        " --predictions {input.predictions:q} {params.history_arg} {params.bei_eval_arg} --qc"
        " {input.qc:q} --ingest-summary {input.ingest:q} {params.ssl_history_arg}"
        " {params.truth_arg} {params.oracle_store_arg} {params.attention_arg} {params.atlas_args}"
        " --checkpoint {input.checkpoints:q} {params.bei_maps_arg} --configs {params.configs:q}"
        " --logs {params.logs:q} --references {params.references:q}"
        " --out-metrics {output.metrics:q} --out-predictions {output.predictions:q} --out-summary"
        " {output.summary:q} --out-headline {output.headline:q}"
        " --out-contrasts {output.contrasts:q} --out-html {output.html:q}"
