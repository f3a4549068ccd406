# Stage 6a: the deliverable per-disease model, finetuned from the pretrained checkpoint on every
# labelled subject of the task's dataset (its cross-validated performance comes from evaluate).


rule finetune:
    """Finetune the pretrained model on every labelled subject of a binary task."""
    input:
        checkpoint=get_pretrained_model(),
        store=get_task_store_files,
        catalogue=get_catalogue(),
    output:
        weights=paths.model_file(RESULTS, "finetune/{task}", WEIGHTS_NAME),
        meta=paths.model_file(RESULTS, "finetune/{task}", META_NAME),
        history=paths.model_file(RESULTS, "finetune/{task}", HISTORY_NAME),
    log:
        get_log("finetune/{task}.log"),
    # Ahead of the evaluate jobs that become ready with them: a short job left for the end
    # keeps one core idle beside it.
    priority: 1
    conda:
        "../../envs/model.yaml"
    threads: 1
    params:
        checkpoint=subpath(input.checkpoint, parent=True),
        store=get_store_root,
        atlas=ATLAS,
        dataset=get_task_value("dataset"),
        label=get_task_value("label"),
        positive=get_task_value("positive"),
        settings=to_json(CFG["evaluate"]["finetune"]),
        seed=CFG["seed"],
        out_dir=subpath(output.weights, parent=True),
        catalogue=get_task_catalogue,
        code=code_hash("finetune"),
        upstream=get_finetune_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule finetune finetune --checkpoint'
        " {params.checkpoint:q} --store {params.store:q} --atlas {params.atlas:q} --catalogue"
        " {input.catalogue:q} --dataset {params.dataset:q} --label {params.label:q} --positive"
        " {params.positive:q} --settings {params.settings:q} --seed {params.seed:q} --threads"
        " {threads:q} --out-dir {params.out_dir:q}"


# What the finetuned model looks at: one embedding per run and the attention of every query
# (the diagnosis pair included) over the ROIs, for the task's runs; the report maps the latter.
rule embed:
    """Embeddings and attention maps of a task's runs under its finetuned model."""
    input:
        checkpoint=paths.model_file(RESULTS, "finetune/{task}", WEIGHTS_NAME),
        store=get_task_store_files,
        catalogue=get_catalogue(),
    output:
        embeddings=paths.task_embeddings(RESULTS, "{task}"),
        attention=paths.task_embeddings(RESULTS, "{task}", "attention"),
    log:
        get_log("embed/{task}.log"),
    priority: 1
    conda:
        "../../envs/model.yaml"
    threads: 1
    params:
        checkpoint=subpath(input.checkpoint, parent=True),
        store=get_store_root,
        atlas=ATLAS,
        dataset=get_task_value("dataset"),
        catalogue=get_task_catalogue,
        code=code_hash("embed"),
        upstream=get_embed_upstream,
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule embed embed --checkpoint'
        " {params.checkpoint:q} --store {params.store:q} --atlas {params.atlas:q} --catalogue"
        " {input.catalogue:q} --datasets {params.dataset:q} --out {output.embeddings:q}"
        " --attention-out {output.attention:q}"
