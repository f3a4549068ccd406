# Stage 4: the Parquet feature store. One job per dataset writes that dataset's partitions only,
# so adding a dataset never rewrites the others. The partitions are update() outputs: Snakemake
# would otherwise delete them before a rerun, and a failed rerun (a bad phenotype value) then
# left the dataset out of the store, where `lcm store` itself keeps the old partitions whole.
# The price: Snakemake copies them to .snakemake/backups first, and after a failure copies them
# back with a new modification time, over what a killed `lcm store` had renamed into place, and
# its record of the job keeps the params the job started with: the next run called them current
# (an edited phenotype never stored; a mixed commit). So the missingness report is a plain
# output, an input of every job reading the store (get_store_files): Snakemake deletes it when
# the job fails, which keeps the job due; the next job finishes (or drops) the killed commit's
# journal before it writes the dataset again, whole.


rule store:
    """Write a dataset's partitions of the Parquet feature store."""
    input:
        qc=paths.qc_table(RESULTS, "{dataset}", ATLAS),
        phenotype=get_dataset_value("phenotype"),
        # participants.json: its Units change the stored values (its Levels, read by the
        # coding lcm run generates, change the catalogue).
        phenotype_sidecar=get_phenotype_sidecar,
        catalogue=get_catalogue(),
    output:
        connectomes=update(str(paths.connectome_path(STORE, ATLAS, "{dataset}"))),
        variables=update(str(paths.variables_path(STORE, "{dataset}"))),
        missingness=str(paths.missingness_path(STORE, "{dataset}")),
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
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule store store --dataset {wildcards.dataset:q}'
        " --qc-table {input.qc:q} --phenotype {input.phenotype:q} --catalogue {input.catalogue:q}"
        " --atlas {params.atlas:q} --store-dir {params.store:q}"
