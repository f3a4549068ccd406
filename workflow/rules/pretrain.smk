# Stage 5: pretrain LCM on every dataset with role: pretrain (never on a downstream dataset, so
# no task's test subject is ever seen). A GPU rule on clusters (see profiles/slurm).
# More than one process (GPUs of a node, nodes of a SLURM job): the resources procs_per_node and
# tasks, set in the profile; the launcher param starts them through torchrun (lcm.train.launch).


rule pretrain:
    input:
        store=get_pretrain_store_files(),
        catalogue=CFG["variables"],
    output:
        weights=get_pretrained_model(),
        meta=paths.model_file(RESULTS, "pretrain", "model.json"),
        history=paths.model_file(RESULTS, "pretrain", "history.tsv"),
        bei_eval=paths.model_file(RESULTS, "pretrain", "bei_eval.tsv"),
        maps=get_bei_maps(),
    log:
        get_log("pretrain/pretrain.log"),
    conda:
        "../../envs/model.yaml"
    threads: 2
    params:
        rule="pretrain",
        launcher=get_launcher,
        threads=get_process_threads,
        store=get_store_root,
        atlas=ATLAS,
        datasets=PLAN.by_role("pretrain"),
        model=to_json(CFG["model"]),
        settings=to_json(PRETRAIN_SETTINGS),
        seed=CFG["seed"],
        out_dir=subpath(output.weights, parent=True),
        bei_maps="yes" if get_bei_maps() else "no",
        code=code_hash("pretrain"),
    shell:
        "{params.launcher} --log-file {log:q} --rule {params.rule:q} pretrain --store {params.store:q}"
        " --atlas {params.atlas:q} --catalogue {input.catalogue:q} --datasets {params.datasets:q}"
        " --model {params.model:q} --settings {params.settings:q} --seed {params.seed:q} --threads"
        " {params.threads:q} --out-dir {params.out_dir:q} --bei-maps {params.bei_maps:q}"
        " --checkpoint-every $LCM_CHECKPOINT_EVERY"


# The lcm-ssl ablation: the same pretraining with the BEI losses off (self-supervised only).
use rule pretrain as pretrain_ssl with:
    output:
        weights=get_pretrained_model("pretrain-ssl"),
        meta=paths.model_file(RESULTS, "pretrain-ssl", "model.json"),
        history=paths.model_file(RESULTS, "pretrain-ssl", "history.tsv"),
        bei_eval=paths.model_file(RESULTS, "pretrain-ssl", "bei_eval.tsv"),
    log:
        get_log("pretrain/pretrain_ssl.log"),
    params:
        rule="pretrain_ssl",
        settings=get_ssl_pretrain_settings(),
        bei_maps="no",  # bei-linear reads the BEI pretraining's maps only
