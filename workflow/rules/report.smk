# Stage 7: one tidy metrics table, a summary with confidence intervals, and the HTML report.


localrules:
    report,


rule report:
    input:
        metrics=expand(task_metrics("{task}"), task=TASKS),
        predictions=expand(task_predictions("{task}"), task=TASKS),
        history=f"{RESULTS}/models/pretrain/history.tsv",
        ssl_history=ssl_history_input(),
        truth=ground_truth_inputs(),
        bei_eval=f"{RESULTS}/models/pretrain/bei_eval.tsv",
        qc=[qc_table(ds) for ds in sorted(CFG["datasets"])],
        ingest=[f"{RESULTS}/ingest/{ds}/summary.tsv" for ds in sorted(CFG["datasets"])],
        attention=expand(task_attention("{task}"), task=CLASSIFICATION_TASKS),
    output:
        metrics=report(
            f"{RESULTS}/metrics/metrics.parquet",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
        summary=report(
            f"{RESULTS}/metrics/summary.tsv",
            caption="../report/summary.rst",
            category="Metrics",
        ),
        headline=report(
            f"{RESULTS}/metrics/headline.tsv",
            caption="../report/headline.rst",
            category="Metrics",
        ),
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=code_hash("report"),
        ssl_history=optional_arg("--ssl-history", "ssl_history"),
        truth=optional_arg("--ground-truth", "truth"),
        attention=optional_arg("--attention", "attention"),
        atlas=atlas_args(),
    shell:
        "python -m lcm --log-file {log} --rule report report --metrics {input.metrics} --predictions {input.predictions}"
        " --history {input.history} --bei-eval {input.bei_eval} --qc {input.qc}"
        " --ingest-summary {input.ingest}"
        " {params.ssl_history} {params.truth} {params.attention} {params.atlas} --out-metrics {output.metrics} --out-summary {output.summary}"
        " --out-headline {output.headline} --out-html {output.html}"
