# Stage 5: pretrain LCM on every dataset with role: pretrain (never on a downstream dataset, so
# no task's test subject is ever seen). A GPU rule on clusters (see profiles/slurm).


rule pretrain:
    input:
        store=pretrain_inputs,
        catalogue=CFG["variables"],
    output:
        weights=pretrained_model(),
        meta=f"{RESULTS}/models/pretrain/model.json",
        history=f"{RESULTS}/models/pretrain/history.tsv",
        bei_eval=f"{RESULTS}/models/pretrain/bei_eval.tsv",
    log:
        "logs/pretrain/pretrain.log",
    conda:
        "../../envs/model.yaml"
    threads: 2
    params:
        store=store_root_of_input,
        atlas=ATLAS,
        datasets=" ".join(PLAN.by_role("pretrain")),
        model=as_json(CFG["model"]),
        settings=as_json(CFG["pretrain"]),
        seed=CFG["seed"],
        out_dir=output_dir,
        code=code_hash("pretrain"),
    shell:
        "python -m lcm --log-file {log} --rule pretrain pretrain --store {params.store} --atlas {params.atlas}"
        " --catalogue {input.catalogue:q} --datasets {params.datasets} --model {params.model}"
        " --settings {params.settings} --seed {params.seed} --threads {threads} --out-dir {params.out_dir}"


# The lcm-ssl ablation: the same pretraining with the BEI losses off (self-supervised only).
rule pretrain_ssl:
    input:
        store=pretrain_inputs,
        catalogue=CFG["variables"],
    output:
        weights=ssl_pretrained_model(),
        meta=f"{RESULTS}/models/pretrain-ssl/model.json",
        history=f"{RESULTS}/models/pretrain-ssl/history.tsv",
        bei_eval=f"{RESULTS}/models/pretrain-ssl/bei_eval.tsv",
    log:
        "logs/pretrain/pretrain_ssl.log",
    conda:
        "../../envs/model.yaml"
    threads: 2
    params:
        store=store_root_of_input,
        atlas=ATLAS,
        datasets=" ".join(PLAN.by_role("pretrain")),
        model=as_json(CFG["model"]),
        settings=ssl_pretrain_settings(),
        seed=CFG["seed"],
        out_dir=output_dir,
        code=code_hash("pretrain"),
    shell:
        "python -m lcm --log-file {log} --rule pretrain_ssl pretrain --store {params.store} --atlas {params.atlas}"
        " --catalogue {input.catalogue:q} --datasets {params.datasets} --model {params.model}"
        " --settings {params.settings} --seed {params.seed} --threads {threads} --out-dir {params.out_dir}"
