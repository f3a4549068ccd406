# Stage 7: one tidy metrics table, a summary with confidence intervals, and the HTML report.


localrules:
    report,


rule report:
    input:
        metrics=expand(task_metrics("{task}"), task=TASKS),
        predictions=expand(task_predictions("{task}"), task=TASKS),
        history=f"{RESULTS}/models/pretrain/history.tsv",
        bei_eval=f"{RESULTS}/models/pretrain/bei_eval.tsv",
        qc=[qc_table(ds) for ds in sorted(CFG["datasets"])],
    output:
        metrics=f"{RESULTS}/metrics/metrics.parquet",
        summary=f"{RESULTS}/metrics/summary.tsv",
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../report/index.rst",
            category="Report",
        ),
    log:
        "logs/report/report.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m lcm --log-file {log} report --metrics {input.metrics} --predictions {input.predictions}"
        " --history {input.history} --bei-eval {input.bei_eval} --qc {input.qc}"
        " --out-metrics {output.metrics} --out-summary {output.summary} --out-html {output.html}"
