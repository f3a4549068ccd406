# Stage 6b: cross-validated evaluation of each disease task: subject-level folds, label-fraction
# sweep, LCM and its ablations beside the baselines; everything is fit on training folds only.


rule evaluate:
    input:
        checkpoint=pretrained_model(),
        store=task_store_files,
        catalogue=CFG["variables"],
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
        positive=task_value("positive"),
        settings=as_json(CFG["evaluate"]),
        seed=CFG["seed"],
    shell:
        "python -m lcm --log-file {log} evaluate --store {params.store} --atlas {params.atlas}"
        " --catalogue {input.catalogue:q} --task {wildcards.task} --dataset {params.dataset}"
        " --label {params.label} --positive {params.positive} --checkpoint {params.checkpoint}"
        " --settings {params.settings} --seed {params.seed} --threads {threads} --out {output.metrics}"
        " --predictions {output.predictions}"
