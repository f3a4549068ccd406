# Stage 1: index each dataset (raw BIDS, fMRIPrep derivatives or ROI time series) into a manifest
# with one row per run, its resolved metadata and an included flag with a reason; beside it a
# summary (what was included and excluded, and why) for the report, and an index cache.


rule ingest:
    input:
        synth_inputs,
    output:
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
        summary=f"{RESULTS}/ingest/{{dataset}}/summary.json",
        summary_table=f"{RESULTS}/ingest/{{dataset}}/summary.tsv",
    log:
        log_file("ingest/{dataset}.log"),
    conda:
        "../../envs/ingest.yaml"
    params:
        entry=dataset_value("entry"),
        path=dataset_value("path"),
        derivatives_arg=derivatives_arg,
        task=dataset_value("task"),
        space=SPACE,
        listing=dataset_listing,
        options=ingest_options,
        code=code_hash("ingest"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule ingest ingest --dataset'
        " {wildcards.dataset:q} --entry {params.entry:q} --path {params.path:q}"
        " {params.derivatives_arg} --task {params.task:q} --space {params.space:q} {params.options}"
        " --out {output.manifest:q}"
