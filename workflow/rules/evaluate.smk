# Stage 6b: cross-validated evaluation of each task: subject-level (or leave-site-out) folds read
# from the task's splits table (splits.smk), label-fraction sweep, LCM and its ablations beside
# the baselines and the shuffled-label control; everything, hyper-parameters included, is fit on
# training folds only.


rule evaluate:
    input:
        checkpoint=pretrained_model(),
        ssl=ssl_checkpoint_input,
        store=task_store_files,
        catalogue=CFG["variables"],
        splits=task_splits("{task}"),
    output:
        metrics=task_metrics("{task}"),
        predictions=task_predictions("{task}"),
    log:
        "logs/evaluate/{task}.log",
    conda:
        "../../envs/evaluate.yaml"
    threads: 1
    params:
        checkpoint=checkpoint_dir,
        store=store_root_of_input,
        atlas=ATLAS,
        dataset=task_value("dataset"),
        label=task_value("label"),
        positive=positive_arg,
        ssl=ssl_checkpoint_arg,
        settings=evaluate_settings,
        seed=CFG["seed"],
        code=code_hash("evaluate"),
    shell:
        "python -m lcm --log-file {log} --rule evaluate evaluate --store {params.store} --atlas {params.atlas}"
        " --catalogue {input.catalogue:q} --task {wildcards.task} --dataset {params.dataset}"
        " --label {params.label} {params.positive} --checkpoint {params.checkpoint} {params.ssl}"
        " --settings {params.settings} --seed {params.seed} --threads {threads} --out {output.metrics}"
        " --predictions {output.predictions} --splits {input.splits}"
