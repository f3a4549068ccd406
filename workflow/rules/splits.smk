# Stage 6 (before evaluate): the outer cross-validation folds of each task as a table, from the
# one split definition in lcm.store.splits: stratified subject-level K-fold per evaluate seed and,
# where every run names its site, leave-site-out. Subjects never straddle folds; evaluate reads
# its folds from this table, which also lists the task's test subjects.


rule splits:
    input:
        store=task_store_files,
        catalogue=CFG["variables"],
    output:
        task_splits("{task}"),
    log:
        log_file("splits/{task}.log"),
    conda:
        "../../envs/evaluate.yaml"
    params:
        store=store_root_of_input,
        atlas=ATLAS,
        dataset=task_value("dataset"),
        label=task_value("label"),
        positive_arg=positive_arg,
        n_folds=CFG["evaluate"]["n_folds"],
        repeats=evaluate_repeats(),
        seed=CFG["seed"],
        code=code_hash("splits"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule splits splits --store {params.store:q}'
        " --atlas {params.atlas:q} --datasets {params.dataset:q} --task {wildcards.task:q} --label"
        " {params.label:q} {params.positive_arg} --catalogue {input.catalogue:q} --n-folds"
        " {params.n_folds:q} --seed {params.seed:q} --repeats {params.repeats:q} --out {output:q}"
