# Stage 0: the embedded synthetic consortia (the demo's data). One job per consortium writes its
# cohort-level files (and, for the ROI tier, every run); voxel-tier subjects get one job each.
# Their output paths come from lcm.synth.plan, which the jobs' writers use too.
SYNTH = CFG["synth"]["out_dir"]


rule synth_roi_cohort:
    """Simulate a synthetic consortium's ROI time series and phenotype table."""
    output:
        **synth_plan.cohort_patterns(SYNTH, "roi"),
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
    """Simulate a voxel-level synthetic consortium's cohort files: phenotype, ground truth."""
    output:
        **synth_plan.cohort_patterns(SYNTH, "voxel"),
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
    """Simulate one subject's BOLD runs and fMRIPrep-style derivatives."""
    output:
        **synth_plan.subject_patterns(SYNTH, SPACE),
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
