# Stage 0: the embedded synthetic consortia (the demo's data). One job per consortium writes its
# cohort-level files (and, for the ROI tier, every run); voxel-tier subjects get one job each.
SYNTH = CFG["synth"]["out_dir"]


rule synth_roi_cohort:
    output:
        phenotype=f"{SYNTH}/{{consortium}}/phenotype.tsv",
        truth=f"{SYNTH}/{{consortium}}/ground_truth.json",
        description=f"{SYNTH}/{{consortium}}/timeseries/dataset_description.json",
    log:
        get_log("synth/{consortium}.log"),
    wildcard_constraints:
        consortium=one_of(PLAN.synth_consortia("roi")),
    conda:
        "../../envs/synth.yaml"
    params:
        settings=get_synth_settings,
        code=code_hash("synth"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule synth_roi_cohort synth --config-json'
        " {params.settings:q} --consortium {wildcards.consortium:q}"


rule synth_voxel_cohort:
    output:
        participants=f"{SYNTH}/{{consortium}}/rawdata/participants.tsv",
        participants_json=f"{SYNTH}/{{consortium}}/rawdata/participants.json",
        truth=f"{SYNTH}/{{consortium}}/ground_truth.json",
        description=f"{SYNTH}/{{consortium}}/rawdata/dataset_description.json",
        sidecar=f"{SYNTH}/{{consortium}}/rawdata/task-rest_bold.json",
        readme=f"{SYNTH}/{{consortium}}/rawdata/README",
        changes=f"{SYNTH}/{{consortium}}/rawdata/CHANGES",
        derivatives=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/dataset_description.json",
    log:
        get_log("synth/{consortium}.log"),
    wildcard_constraints:
        consortium=one_of(PLAN.synth_consortia("voxel")),
    conda:
        "../../envs/synth.yaml"
    params:
        settings=get_synth_settings,
        code=code_hash("synth"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule synth_voxel_cohort synth --config-json'
        " {params.settings:q} --consortium {wildcards.consortium:q}"


rule synth_voxel_subject:
    output:
        raw_bold=f"{SYNTH}/{{consortium}}/rawdata/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_bold.nii.gz",
        t1w=f"{SYNTH}/{{consortium}}/rawdata/sub-{{subject}}/anat/sub-{{subject}}_T1w.nii.gz",
        bold=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_{SPACE_NAME}_desc-preproc_bold.nii.gz",
        bold_json=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_{SPACE_NAME}_desc-preproc_bold.json",
        mask=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_{SPACE_NAME}_desc-brain_mask.nii.gz",
        confounds=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_desc-confounds_timeseries.tsv",
        confounds_json=f"{SYNTH}/{{consortium}}/derivatives/fmriprep/sub-{{subject}}/func/sub-{{subject}}_task-rest_run-1_desc-confounds_timeseries.json",
    log:
        get_log("synth/{consortium}_sub-{subject}.log"),
    wildcard_constraints:
        consortium=one_of(PLAN.synth_consortia("voxel")),
    group:
        "synth_subjects"
    conda:
        "../../envs/synth.yaml"
    params:
        settings=get_synth_subject_settings,
        code=code_hash("synth"),
    shell:
        '"$LCM_PYTHON" -m lcm --log-file {log:q} --rule synth_voxel_subject synth --config-json'
        " {params.settings:q} --consortium {wildcards.consortium:q} --subject {wildcards.subject:q}"
