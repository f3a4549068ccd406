# Stage 3: connectomes. Voxel-level runs: confound regression, parcellation and FC matrices, one
# job per run (grouped per subject on clusters); parcellated entries, ROI time series and
# precomputed connectomes (checked, then rewritten as relmats): one job per dataset. Each
# dataset ends in one QC table listing every run, included or excluded with its reason.


# Gathering per-run QC JSONs is light: on clusters it runs on the submit host, not as a job.
localrules:
    connectome_collect,


rule connectome_run:
    input:
        record=fmriprep_record("{dataset}", "{subject}"),
        atlas=atlas_files(),
    output:
        qc=f"{RESULTS}/connectome/{{dataset}}/sub-{{subject}}/{{func_dir}}{{run_key}}_space-{SPACE}_seg-{ATLAS}_qc.json",
    log:
        log_file("connectome/{dataset}/sub-{subject}/{func_dir}{run_key}.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    group:
        "connectome"
    conda:
        "../../envs/connectome.yaml"
    # Memory grows with the run's BOLD file (profiles/slurm sets runtime; see config/README.md).
    resources:
        mem_mb=connectome_mem_mb,
    # One job per run: few params and command fields (see `fmriprep_dataset_args`).
    params:
        options=connectome_options(),
        out_dir=f"{RESULTS}/connectome/{{dataset}}",
        code=code_hash("connectome"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_run connectome run --dataset'
        " {wildcards.dataset:q} --fmriprep-record {input.record:q} --run-key {wildcards.run_key:q}"
        " {params.options} --out-dir {params.out_dir:q} --qc-out {output.qc:q}"


rule connectome_collect:
    input:
        qc=run_qc_files,
        # Not read, but a rewritten manifest (a subject added) must reach the dataset's
        # aggregates: fMRIPrep reads it as ancient, so this is the path Snakemake follows.
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
    output:
        table=f"{RESULTS}/connectome/{{dataset}}/seg-{ATLAS}_qc.tsv",
    log:
        log_file("connectome/{dataset}_collect.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        code=code_hash("connectome"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_collect connectome collect --qc'
        " {input.qc:q} --manifest {input.manifest:q} --out {output.table:q}"


# Every parcellated entry (lcm.entries): the processing its row names, the settings it reads.
rule connectome_dataset:
    input:
        manifest=f"{RESULTS}/ingest/{{dataset}}/manifest.parquet",
        atlas=atlas_files(),
    output:
        table=f"{RESULTS}/connectome/{{dataset}}/seg-{ATLAS}_qc.tsv",
    log:
        log_file("connectome/{dataset}_dataset.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.parcellated_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        entry=dataset_value("entry"),
        atlas_args=atlas_args(),
        settings=entry_settings,
        out_dir=connectome_dir,
        code=code_hash("connectome"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_dataset connectome dataset'
        " --entry {params.entry:q} --dataset {wildcards.dataset:q} --manifest {input.manifest:q}"
        " {params.atlas_args} {params.settings} --out-dir {params.out_dir:q} --qc-table"
        " {output.table:q}"
