# Stage 4: the Parquet feature store. One job per dataset writes that dataset's partitions only,
# so adding a dataset never rewrites the others. The partitions are update() outputs: Snakemake
# would otherwise delete them before a rerun, and a failed rerun (a bad phenotype value) then
# left the dataset out of the store, where `lcm store` itself keeps the old partitions whole.
# The price: Snakemake copies them to .snakemake/backups first, and after a failure copies them
# back with a new modification time, newer than the edited phenotype table or the QC table that
# failed it, and over what a killed `lcm store` had renamed into place (its journal, rolled
# forward by the next job, finishes the commit). So the job is not judged by times alone: params
# `upstream` and `phenotype_sha256` (common.smk) keep it due until it has run with them.


rule store:
    input:
        qc=paths.qc_table(RESULTS, "{dataset}", ATLAS),
        phenotype=get_dataset_value("phenotype"),
        catalogue=get_catalogue(),
    output:
        connectomes=update(str(paths.connectome_path(STORE, ATLAS, "{dataset}"))),
        variables=update(str(paths.variables_path(STORE, "{dataset}"))),
        missingness=update(str(paths.missingness_path(STORE, "{dataset}"))),
    log:
        get_log("store/{dataset}.log"),
    conda:
        "../../envs/store.yaml"
    params:
        atlas=ATLAS,
        store=get_written_store_root,
        catalogue=get_dataset_catalogue,
        code=code_hash("store"),
        # Not used by the command (see "what a job's inputs were made with" in common.smk).
        upstream=get_dataset_upstream,
        phenotype_sha256=get_phenotype_digest,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule store store --dataset {wildcards.dataset:q}'
        " --qc-table {input.qc:q} --phenotype {input.phenotype:q} --catalogue {input.catalogue:q}"
        " --atlas {params.atlas:q} --store-dir {params.store:q}"
