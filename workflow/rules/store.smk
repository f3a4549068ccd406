# Stage 4: the Parquet feature store. One job per dataset writes that dataset's partitions only,
# so adding a dataset never rewrites the others.


rule store:
    input:
        qc=qc_table("{dataset}"),
        phenotype=phenotype_file,
        catalogue=CFG["variables"],
    output:
        connectomes=f"{RESULTS}/store/connectomes/atlas={ATLAS}/dataset={{dataset}}/part-0.parquet",
        variables=f"{RESULTS}/store/variables/dataset={{dataset}}/part-0.parquet",
        missingness=f"{RESULTS}/store/reports/missingness_dataset-{{dataset}}.tsv",
    log:
        log_file("store/{dataset}.log"),
    conda:
        "../../envs/store.yaml"
    params:
        atlas=ATLAS,
        store=store_root,
        code=code_hash("store"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule store store --dataset {wildcards.dataset:q}'
        " --qc-table {input.qc:q} --phenotype {input.phenotype:q} --catalogue {input.catalogue:q}"
        " --atlas {params.atlas:q} --store-dir {params.store:q}"
