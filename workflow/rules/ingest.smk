# Stage 1: index each dataset (raw BIDS, fMRIPrep derivatives or ROI time series) into a manifest
# with one row per run, its resolved metadata and an included flag with a reason; beside it a
# summary (what was included and excluded, and why) for the report, and an index cache.


rule ingest:
    """Index a dataset into a manifest of its runs, included or excluded with a reason."""
    input:
        get_synth_files,
    output:
        manifest=paths.ingest_manifest(RESULTS, "{dataset}"),
        summary=paths.ingest_summary(
            paths.ingest_manifest(RESULTS, "{dataset}"), ".json"
        ),
        summary_table=paths.ingest_summary(
            paths.ingest_manifest(RESULTS, "{dataset}"), ".tsv"
        ),
    log:
        get_log("ingest/{dataset}.log"),
    conda:
        "../../envs/ingest.yaml"
    params:
        entry=get_dataset_value("entry"),
        path=get_dataset_value("path"),
        derivatives_arg=get_derivatives_arg,
        task=get_dataset_value("task"),
        space_arg=get_ingest_space_arg,
        listing=get_listing_hash,
        options=get_ingest_options,
        code=code_hash("ingest"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule ingest ingest --dataset'
        " {wildcards.dataset:q} --entry {params.entry:q} --path {params.path:q}"
        " {params.derivatives_arg} --task {params.task:q} {params.space_arg} {params.options}"
        " $LCM_INGEST_CACHE_ARG --out {output.manifest:q}"
