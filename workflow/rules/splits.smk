# Stage 6 (before evaluate): the outer cross-validation folds of each task as a table, from the
# one split definition in lcm.store.splits: stratified subject-level K-fold per evaluate seed and,
# where every run names its site, leave-site-out. Subjects never straddle folds; evaluate reads
# its folds from this table, which also lists the task's test subjects.


rule splits:
    """A task's outer cross-validation folds: K-fold per evaluate seed, leave-site-out."""
    input:
        store=get_task_store_files,
        catalogue=get_catalogue(),
    output:
        paths.task_splits(RESULTS, "{task}"),
    log:
        get_log("splits/{task}.log"),
    conda:
        "../../envs/evaluate.yaml"
    params:
        store=get_store_root,
        atlas=ATLAS,
        dataset=get_task_value("dataset"),
        label=get_task_value("label"),
        positive_arg=get_positive_arg,
        n_folds=CFG["evaluate"]["n_folds"],
        repeats=get_evaluate_repeats(),
        seed=CFG["seed"],
        catalogue=get_task_catalogue,
        code=code_hash("splits"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule splits splits --store {params.store:q}'
        " --atlas {params.atlas:q} --datasets {params.dataset:q} --task {wildcards.task:q} --label"
        " {params.label:q} {params.positive_arg} --catalogue {input.catalogue:q} --n-folds"
        " {params.n_folds:q} --seed {params.seed:q} --repeats {params.repeats:q} --out {output:q}"
