# Stage 3: connectomes. Voxel-level runs: confound regression, parcellation and FC matrices, one
# job per run (grouped per subject on clusters); ROI time series and precomputed connectomes
# (checked, then rewritten as relmats): one job per dataset. Each dataset ends in one QC table
# listing every run, included or excluded with its reason.


# Gathering per-run QC JSONs is light: on clusters it runs on the submit host, not as a job.
localrules:
    connectome_collect,


rule connectome_run:
    input:
        record=connectome_record,
        atlas=atlas_files(),
    output:
        qc=f"{RESULTS}/connectome/{{dataset}}/{{subdir}}/func/{{run_key}}_space-{SPACE}_seg-{ATLAS}_qc.json",
    log:
        "logs/connectome/{dataset}/{subdir}/{run_key}.log",
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    group:
        "connectome"
    conda:
        "../../envs/connectome.yaml"
    # Memory grows with the run's BOLD file (profiles/slurm sets runtime; see config/README.md).
    resources:
        mem_mb=connectome_mem_mb,
    params:
        atlas=atlas_args(),
        min_coverage=CFG["atlas"]["min_coverage"],
        denoise=as_json(CFG["denoise"]),
        connectome=as_json(CFG["connectome"]),
        out_dir=f"{RESULTS}/connectome/{{dataset}}",
        rule_name="connectome_run",
        code=code_hash("connectome"),
    shell:
        "python -m lcm --log-file {log} --rule {params.rule_name} connectome run --dataset {wildcards.dataset}"
        " --fmriprep-record {input.record} --run-key {wildcards.run_key} {params.atlas}"
        " --min-coverage {params.min_coverage} --denoise {params.denoise}"
        " --connectome {params.connectome} --out-dir {params.out_dir} --qc-out {output.qc}"


rule connectome_collect:
    input:
        qc=run_qc_files,
        # Not read, but a rewritten manifest (a subject added) must reach the dataset's
        # aggregates: fMRIPrep reads it as ancient, so this is the path Snakemake follows.
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
    output:
        table=f"{RESULTS}/connectome/{{dataset}}/seg-{ATLAS}_qc.tsv",
    log:
        "logs/connectome/{dataset}_collect.log",
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        rule_name="connectome_collect",
        code=code_hash("connectome"),
    shell:
        "python -m lcm --log-file {log} --rule {params.rule_name} connectome collect --qc {input.qc} --out {output.table}"


rule connectome_timeseries:
    input:
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
        atlas=atlas_files(),
    output:
        table=f"{RESULTS}/connectome/{{dataset}}/seg-{ATLAS}_qc.tsv",
    log:
        "logs/connectome/{dataset}_timeseries.log",
    wildcard_constraints:
        dataset=one_of(PLAN.roi_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        atlas=atlas_args(),
        denoise=as_json(CFG["denoise"]),
        connectome=as_json(CFG["connectome"]),
        out_dir=connectome_dir,
        rule_name="connectome_timeseries",
        code=code_hash("connectome"),
    shell:
        "python -m lcm --log-file {log} --rule {params.rule_name} connectome timeseries --dataset {wildcards.dataset}"
        " --manifest {input.manifest} {params.atlas} --denoise {params.denoise}"
        " --connectome {params.connectome} --out-dir {params.out_dir} --qc-table {output.table}"


rule connectome_import:
    input:
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
        atlas=atlas_files(),
    output:
        table=f"{RESULTS}/connectome/{{dataset}}/seg-{ATLAS}_qc.tsv",
    log:
        "logs/connectome/{dataset}_import.log",
    wildcard_constraints:
        dataset=one_of(PLAN.connectome_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        atlas=atlas_args(),
        out_dir=connectome_dir,
        rule_name="connectome_import",
        code=code_hash("connectome"),
    shell:
        "python -m lcm --log-file {log} --rule {params.rule_name} connectome import --dataset {wildcards.dataset}"
        " --manifest {input.manifest} {params.atlas} --out-dir {params.out_dir} --qc-table {output.table}"
