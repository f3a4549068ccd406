# Stage 2: fMRIPrep, one job per subject. runner existing checks derivatives already there;
# docker runs the real fmriprep-docker wrapper; apptainer runs a pinned image. The record lists
# each run's preprocessed BOLD, mask and confounds for the connectome stage.


rule fmriprep:
    input:
        # Real data has no per-subject inputs: a constant spares 10,000 function calls.
        raw=fmriprep_inputs if PLAN.consortia else [],
        # Ingest first (it validates the dataset), but a manifest rewritten because a subject
        # was added must not rerun every other subject.
        manifest=ancient(f"{RESULTS}/ingest/{{dataset}}/manifest.parquet"),
    output:
        record=f"{RESULTS}/fmriprep/{{dataset}}/sub-{{subject}}_fmriprep.json",
    log:
        "logs/fmriprep/{dataset}_sub-{subject}.log",
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/fmriprep.yaml"
    params:
        bids=dataset_value("path", quote=True),
        task=dataset_value("task"),
        derivatives=derivatives_quoted,
        runner=CFG["fmriprep"]["runner"],
        image=quoted(CFG["fmriprep"]["image"]),
        space=SPACE,
        license=license_arg(),
        work_dir=quoted(CFG["fmriprep"]["work_dir"]),
        extra=as_json(CFG["fmriprep"]["extra_args"]),
        rule_name="fmriprep",
        code=code_hash("fmriprep"),
    shell:
        "python -m lcm --log-file {log} --rule {params.rule_name} fmriprep --dataset {wildcards.dataset} --bids {params.bids}"
        " --subject {wildcards.subject} --task {params.task} --runner {params.runner}"
        " --image {params.image} --output-space {params.space} --derivatives {params.derivatives}"
        " --work-dir {params.work_dir} {params.license} --extra-args {params.extra}"
        " --out {output.record}"
