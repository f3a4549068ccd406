# Stage 5: pretrain LCM on every dataset with role: pretrain (never on a downstream dataset, so
# no task's test subject is ever seen). A GPU rule on clusters (see profiles/slurm).
# More than one process (GPUs of a node, nodes of a SLURM job): the resources procs_per_node and
# tasks, set in the profile; the launcher param starts them through torchrun (lcm.train.launch).


rule pretrain:
    """Pretrain the Large Connectome Model on the datasets of role pretrain."""
    input:
        store=get_pretrain_store_files(),
        catalogue=get_catalogue(),
    output:
        weights=get_pretrained_model(),
        meta=paths.model_file(RESULTS, "pretrain", META_NAME),
        history=paths.model_file(RESULTS, "pretrain", HISTORY_NAME),
        bei_eval=paths.model_file(RESULTS, "pretrain", BEI_EVAL_NAME),
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
        catalogue=get_pretrain_catalogue,
        code=code_hash("pretrain"),
        upstream=get_pretrain_upstream,
    shell:
        "{params.launcher} --log-file {log:q} --rule {params.rule:q} pretrain --store {params.store:q}"
        " --atlas {params.atlas:q} --catalogue {input.catalogue:q} --datasets {params.datasets:q}"
        " --model {params.model:q} --settings {params.settings:q} --seed {params.seed:q} --threads"
        " {params.threads:q} --out-dir {params.out_dir:q} --checkpoint-every"
        " $LCM_CHECKPOINT_EVERY"


# The lcm-ssl ablation: the same pretraining with the BEI losses off (self-supervised only).
use rule pretrain as pretrain_ssl with:
    """The lcm-ssl ablation: the same pretraining, self-supervised losses only."""
    output:
        weights=get_pretrained_model("pretrain-ssl"),
        meta=paths.model_file(RESULTS, "pretrain-ssl", META_NAME),
        history=paths.model_file(RESULTS, "pretrain-ssl", HISTORY_NAME),
        bei_eval=paths.model_file(RESULTS, "pretrain-ssl", BEI_EVAL_NAME),
    log:
        get_log("pretrain/pretrain_ssl.log"),
    params:
        rule="pretrain_ssl",
        settings=get_ssl_pretrain_settings(),


# The bei-linear baseline's ridge maps, fitted on CPUs on the pretraining cohort (the same
# datasets, store partitions, catalogue and seed as pretrain: the same subjects, never a task's)
# and written beside the BEI checkpoint, where evaluate reads them. A job of its own, needed
# only by the tasks that evaluate bei-linear: adding bei-linear to a task, or dropping it,
# reruns no pretraining (a param of pretrain, it reran it and everything after it).
rule bei_maps:
    """The bei-linear baseline's ridge maps, fitted on the pretraining cohort."""
    input:
        store=get_pretrain_store_files(),
        catalogue=get_catalogue(),
    output:
        maps=get_bei_maps(),
    log:
        get_log("pretrain/bei_maps.log"),
    conda:
        "../../envs/evaluate.yaml"
    # As pretrain's: BLAS sums by thread, and these are the maps pretraining wrote, to the bit.
    threads: 2
    params:
        store=get_store_root,
        atlas=ATLAS,
        datasets=PLAN.by_role("pretrain"),
        seed=CFG["seed"],
        min_values=CFG["evaluate"]["bei_linear_min_values"],
        out_dir=subpath(output.maps, parent=True),
        catalogue=get_pretrain_catalogue,
        code=code_hash("bei_maps"),
        upstream=get_pretrain_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule bei_maps bei-maps --store {params.store:q}'
        " --atlas {params.atlas:q} --catalogue {input.catalogue:q} --datasets {params.datasets:q}"
        " --seed {params.seed:q} --min-values {params.min_values:q} --threads {threads:q}"
        " --out-dir {params.out_dir:q}"
