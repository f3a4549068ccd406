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
        log_file("pretrain/pretrain.log"),
    conda:
        "../../envs/model.yaml"
    threads: 2
    params:
        store=store_root_of_input,
        atlas=ATLAS,
        datasets=PLAN.by_role("pretrain"),
        model=to_json(CFG["model"]),
        settings=to_json(CFG["pretrain"]),
        seed=CFG["seed"],
        out_dir=output_dir,
        code=code_hash("pretrain"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule pretrain pretrain --store {params.store:q}'
        " --atlas {params.atlas:q} --catalogue {input.catalogue:q} --datasets {params.datasets:q}"
        " --model {params.model:q} --settings {params.settings:q} --seed {params.seed:q} --threads"
        " {threads:q} --out-dir {params.out_dir:q}"


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
        log_file("pretrain/pretrain_ssl.log"),
    conda:
        "../../envs/model.yaml"
    threads: 2
    params:
        store=store_root_of_input,
        atlas=ATLAS,
        datasets=PLAN.by_role("pretrain"),
        model=to_json(CFG["model"]),
        settings=ssl_pretrain_settings(),
        seed=CFG["seed"],
        out_dir=output_dir,
        code=code_hash("pretrain"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule pretrain_ssl pretrain --store'
        " {params.store:q} --atlas {params.atlas:q} --catalogue {input.catalogue:q} --datasets"
        " {params.datasets:q} --model {params.model:q} --settings {params.settings:q} --seed"
        " {params.seed:q} --threads {threads:q} --out-dir {params.out_dir:q}"
