# Stage 7: one tidy metrics table, a summary with confidence intervals, and the HTML report.


localrules:
    report,


rule report:
    input:
        metrics=expand(task_metrics("{task}"), task=TASKS),
        predictions=expand(task_predictions("{task}"), task=TASKS),
        history=pretrain_report_input("history"),
        ssl_history=ssl_history_input(),
        truth=ground_truth_inputs(),
        bei_eval=pretrain_report_input("bei_eval"),
        qc=[qc_table(ds) for ds in sorted(CFG["datasets"])],
        ingest=[f"{RESULTS}/ingest/{ds}/summary.tsv" for ds in sorted(CFG["datasets"])],
        attention=expand(task_attention("{task}"), task=FINETUNE_TASKS),
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
        contrasts=report(
            f"{RESULTS}/metrics/contrasts.tsv",
            caption="../report/contrasts.rst",
            category="Metrics",
        ),
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        log_file("report/report.log"),
    conda:
        "../../envs/report.yaml"
    params:
        code=code_hash("report"),
        history_arg=optional_arg("--history", "history"),
        bei_eval_arg=optional_arg("--bei-eval", "bei_eval"),
        ssl_history_arg=optional_arg("--ssl-history", "ssl_history"),
        truth_arg=optional_arg("--ground-truth", "truth"),
        attention_arg=optional_arg("--attention", "attention"),
        atlas_args=atlas_args(with_seg=False),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule report report --metrics {input.metrics:q}'
        " --predictions {input.predictions:q} {params.history_arg} {params.bei_eval_arg} --qc"
        " {input.qc:q} --ingest-summary {input.ingest:q} {params.ssl_history_arg}"
        " {params.truth_arg} {params.attention_arg} {params.atlas_args} --out-metrics"
        " {output.metrics:q} --out-summary {output.summary:q} --out-headline {output.headline:q}"
        " --out-contrasts {output.contrasts:q} --out-html {output.html:q}"
