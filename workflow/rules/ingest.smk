# Stage 1: index each dataset (raw BIDS, fMRIPrep derivatives or ROI time series) into a manifest
# with one row per run, its resolved metadata and an included flag with a reason.


rule ingest:
    input:
        synth_inputs,
    output:
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
    log:
        "logs/ingest/{dataset}.log",
    conda:
        "../../envs/ingest.yaml"
    params:
        entry=dataset_value("entry"),
        path=dataset_value("path", quote=True),
        derivatives=derivatives_arg,
        task=dataset_value("task"),
        space=SPACE,
    shell:
        "python -m lcm --log-file {log} ingest --dataset {wildcards.dataset} --entry {params.entry}"
        " --path {params.path} {params.derivatives} --task {params.task} --space {params.space}"
        " --out {output.manifest}"
