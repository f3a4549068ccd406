# Stage 2: fMRIPrep, one job per subject. runner existing checks derivatives already there;
# docker runs the real fmriprep-docker wrapper; apptainer runs a pinned image. The record lists
# each run's preprocessed BOLD, mask and confounds for the connectome stage.


localrules:
    fmriprep_settings,


# The options every subject's job of a dataset runs with, as a file of their own: Snakemake does
# not check the params of a job downstream of one that reruns (ingest) through an ancient input
# (the manifest), so a setting both read (fmriprep.output_space) reruns the subjects through this.
rule fmriprep_settings:
    """Record the fMRIPrep options every subject of a dataset runs with."""
    output:
        settings=paths.fmriprep_settings(RESULTS, "{dataset}"),
    log:
        get_log("fmriprep/{dataset}_settings.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/fmriprep.yaml"
    params:
        dataset_args=get_fmriprep_dataset_args,
        code=code_hash("fmriprep"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule fmriprep_settings fmriprep'
        " {params.dataset_args} --settings-only --out {output.settings:q}"


rule fmriprep:
    """Preprocess one subject with fMRIPrep, or check its existing derivatives."""
    input:
        # Real data has no per-subject inputs: a constant spares 10,000 function calls.
        raw=get_fmriprep_inputs if PLAN.consortia else [],
        # Ingest first (it validates the dataset), but a manifest rewritten because a subject
        # was added must not rerun every other subject: ancient, but for a changed subject.
        manifest=get_fmriprep_manifest,
        settings=paths.fmriprep_settings(RESULTS, "{dataset}"),
    output:
        record=paths.fmriprep_record(RESULTS, "{dataset}", "{subject}"),
    log:
        get_log("fmriprep/{dataset}_sub-{subject}.log"),
    wildcard_constraints:
        dataset=one_of(PLAN.voxel_datasets()),
    conda:
        "../../envs/fmriprep.yaml"
    # fMRIPrep is sized to the job (--nthreads, --mem-mb): without them it takes the whole
    # machine, once per subject running side by side. Memory and runtime grow with the attempt
    # (lcm/workflow/resources.py; profiles/slurm leaves them to the rule).
    threads: get_fmriprep_threads
    resources:
        mem_mb=get_fmriprep_mem_mb,
        runtime=get_fmriprep_runtime,
    # One job per subject: its command has few fields, since a dry run formats each job's
    # command three times (see `get_fmriprep_dataset_args` in common.smk).
    params:
        dataset_args=get_fmriprep_dataset_args,
        # Not used by the command: a BOLD file or sidecar edited in place reruns the subject.
        sources=get_subject_sources,
        code=code_hash("fmriprep"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule fmriprep fmriprep {params.dataset_args}'
        " --subject {wildcards.subject:q} --nthreads {threads:q} --mem-mb {resources.mem_mb:q}"
        " --manifest {input.manifest:q} $LCM_KEEP_WORK_ARG --out {output.record:q}"
