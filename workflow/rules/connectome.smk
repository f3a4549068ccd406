# Stage 3: connectomes. Voxel-level runs: confound regression, parcellation and FC matrices, one
# job per run (grouped per subject on clusters); parcellated entries, ROI time series and
# precomputed connectomes (checked, then rewritten as relmats): one job per dataset. Each
# dataset ends in one QC table listing every run, included or excluded with its reason.


# Gathering per-run QC JSONs and writing the settings stamp are light: on clusters they run on
# the submit host, not as jobs.
localrules:
    connectome_collect,
    connectome_settings,


# The options every run of a dataset is processed with, as a file of their own (as
# fmriprep_settings): Snakemake does not check the params of a job downstream of one that reruns
# (ingest) through an ancient input (the manifest fMRIPrep reads), so when ingest reran with a
# setting or code change of the runs (denoise, lcm/connectome/), the runs went unseen and the
# QC table was rebuilt from stale connectomes. The stamp takes nothing from ingest: it reruns on
# its own params (and a user atlas's files) and reruns every run with it, in one invocation.
rule connectome_settings:
    """Record the denoising and parcellation options of a dataset's runs."""
    input:
        atlas=get_atlas_files(),
    output:
        settings=paths.connectome_settings(RESULTS, "{dataset}"),
    log:
        get_log("connectome/{dataset}_settings.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        options=get_connectome_options(),
        code=code_hash("connectome"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_settings connectome settings'
        " --dataset {wildcards.dataset:q} {params.options} --out {output.settings:q}"


# The QC JSON stands for the run: it is written last, once the run's time series and matrices
# are in place (each atomically), so a run with a QC JSON is complete. Those files cannot be
# declared: an excluded run writes none, and the number of window matrices depends on the
# volumes kept; Snakemake 9 has no optional outputs. The QC JSON lists them (`timeseries`,
# `relmats`) and its provenance sidecar names them as its sources.
rule connectome_run:
    """Denoise, parcellate and correlate one BOLD run into its matrices and QC JSON."""
    input:
        record=paths.fmriprep_record(RESULTS, "{dataset}", "{subject}"),
        # Not read (the options are params too): see connectome_settings.
        settings=paths.connectome_settings(RESULTS, "{dataset}"),
        atlas=get_atlas_files(),
    output:
        qc=paths.run_qc_json(RESULTS, "{dataset}", paths.RUN_WILDCARDS, SPACE, ATLAS),
    log:
        get_log("connectome/{dataset}/sub-{subject}/{func_dir}{run_key}.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    group:
        "connectome"
    conda:
        "../../envs/connectome.yaml"
    # Memory grows with the run's BOLD file (profiles/slurm sets runtime; see config/README.md).
    resources:
        mem_mb=get_connectome_mem_mb,
    # One job per run: few params and command fields (see `get_fmriprep_dataset_args`).
    params:
        options=get_connectome_options(),
        out_dir=get_connectome_dir,
        code=code_hash("connectome"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_run connectome run --dataset'
        " {wildcards.dataset:q} --fmriprep-record {input.record:q} --run-key {wildcards.run_key:q}"
        " {params.options} --out-dir {params.out_dir:q} --qc-out {output.qc:q}"


rule connectome_collect:
    """Gather a voxel-level dataset's run QC JSONs into its QC table."""
    input:
        qc=get_run_qc_files,
        # Read for its dataset alone (records of another are refused), but a rewritten
        # manifest (a subject added) must reach the dataset's aggregates: fMRIPrep reads it
        # as ancient, so this is the path Snakemake follows.
        manifest=paths.ingest_manifest(RESULTS, "{dataset}"),
    output:
        table=paths.qc_table(RESULTS, "{dataset}", ATLAS),
    log:
        get_log("connectome/{dataset}_collect.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        code=code_hash("connectome"),
        upstream=get_dataset_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_collect connectome collect --qc'
        " {input.qc:q} --manifest {input.manifest:q} --out {output.table:q}"


# Every parcellated entry (lcm.entries): the processing its row names, the settings it reads.
rule connectome_dataset:
    """Connectomes and QC table of a parcellated dataset: ROI time series or matrices."""
    input:
        manifest=paths.ingest_manifest(RESULTS, "{dataset}"),
        atlas=get_atlas_files(),
    output:
        table=paths.qc_table(RESULTS, "{dataset}", ATLAS),
    log:
        get_log("connectome/{dataset}_dataset.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.parcellated_datasets()),
    conda:
        "../../envs/connectome.yaml"
    params:
        entry=get_dataset_value("entry"),
        atlas_args=get_atlas_args(),
        settings_args=get_entry_settings,
        out_dir=paths.connectome_dir(RESULTS, "{dataset}"),
        code=code_hash("connectome"),
        upstream=get_dataset_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule connectome_dataset connectome dataset'
        " --entry {params.entry:q} --dataset {wildcards.dataset:q} --manifest {input.manifest:q}"
        " {params.atlas_args} {params.settings_args} --out-dir {params.out_dir:q} --qc-table"
        " {output.table:q}"
