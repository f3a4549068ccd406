# Stage 6b: cross-validated evaluation of each task: subject-level (or leave-site-out) folds read
# from the task's splits table (splits.smk), label-fraction sweep, LCM and its ablations beside
# the baselines and the shuffled-label control; everything, hyper-parameters included, is fit on
# training folds only.


rule evaluate:
    """Cross-validated evaluation of a task's models, scored on held-out folds only."""
    input:
        checkpoint=get_checkpoint,
        ssl=get_ssl_checkpoint,
        maps=get_task_bei_maps,
        store=get_task_store_files,
        catalogue=get_catalogue(),
        splits=paths.task_splits(RESULTS, "{task}"),
    output:
        metrics=paths.task_metrics(RESULTS, "{task}"),
        predictions=paths.task_metrics(RESULTS, "{task}", "predictions"),
    log:
        get_log("evaluate/{task}.log"),
    conda:
        "../../envs/evaluate.yaml"
    # Fits run across a pool of single-threaded processes (lcm.evaluate.parallel): two keep both
    # cores of a small machine busy when one task is left; profiles raise it.
    threads: 2
    # A GPU only for a task whose models train with torch (a task of baselines runs on CPUs);
    # the SLURM executor asks --gpus from gpu (0: none). Locally nothing limits gpu.
    resources:
        gpu=get_evaluate_gpu,
        runtime=get_evaluate_runtime,
    params:
        checkpoint_arg=get_checkpoint_arg,
        store=get_store_root,
        atlas=ATLAS,
        dataset=get_task_value("dataset"),
        label=get_task_value("label"),
        positive_arg=get_positive_arg,
        ssl_arg=get_ssl_checkpoint_arg,
        settings=get_evaluate_settings,
        seed=CFG["seed"],
        catalogue=get_task_catalogue,
        code=code_hash("evaluate"),
        upstream=get_evaluate_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule evaluate evaluate --store {params.store:q}'
        " --atlas {params.atlas:q} --catalogue {input.catalogue:q} --task {wildcards.task:q}"
        " --dataset {params.dataset:q} --label {params.label:q} {params.positive_arg}"
        " {params.checkpoint_arg} {params.ssl_arg} --settings {params.settings:q} --seed"
        " {params.seed:q} --threads {threads:q} --out {output.metrics:q} --predictions"
        " {output.predictions:q} --splits {input.splits:q}"
