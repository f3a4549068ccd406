# Stage 4: the Parquet feature store. One job per dataset writes that dataset's partitions only,
# so adding a dataset never rewrites the others. The partitions are update() outputs: Snakemake
# would otherwise delete them before a rerun, and a failed rerun (a bad phenotype value) then
# left the dataset out of the store, where `lcm store` itself keeps the old partitions whole.


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
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule store store --dataset {wildcards.dataset:q}'
        " --qc-table {input.qc:q} --phenotype {input.phenotype:q} --catalogue {input.catalogue:q}"
        " --atlas {params.atlas:q} --store-dir {params.store:q}"
