"""Embedded synthetic consortia: fMRI cohorts with known brain–environment effects.

Six presets imitate public consortia (``hcp``, ``ukb``, ``abide``, ``ppmi``, ``adni``, ``cobre``:
TR, run length, age range, sites, diagnostic classes, phenotype columns and codings). The full
model, the realism ranges and their references are in ``docs/synth.md``. A consortium is written
at one of two tiers: ``roi`` (one ROI time-series TSV per run, as UK Biobank or ABIDE-PCP
publish) or ``voxel`` (a raw BIDS dataset that passes the BIDS validator, plus fMRIPrep-like
derivatives: preprocessed BOLD, brain mask, confounds).

Generative model
----------------
1. **Networks.** Regions are assigned to the seven canonical networks (Visual, Somatomotor,
   Dorsal/Ventral attention, Limbic, Frontoparietal, Default): by name for AAL, by k-means of
   region centroids for any other atlas (:mod:`lcm.synth.networks`).
2. **Baseline.** A factor model: each region loads (~0.7) on its network's factor; network
   factors correlate through a 7x7 matrix; left/right homologues share an extra factor. Within-
   network correlation (~0.5) exceeds between-network correlation; the mean off-diagonal
   correlation is ~0.15-0.25 (real HCP/ABIDE data: 0.1-0.45).
3. **Effects** (:mod:`lcm.synth.connectivity`). Each environmental variable (age, sex, fluid
   intelligence, working memory, BMI, education) adds ``size * score * P_v``, a unit-norm pattern
   on two network blocks; each diagnosis (autism, parkinsons, alzheimers, schizophrenia) adds
   ``size * dose * P_dx`` (``dose`` of the subject's class: 0 control, 1 disease, 0.5 prodromal
   ...) with
   ``P_dx = s * M + sqrt(1 - s^2) * I`` (``M`` a mix of two environmental patterns, ``I`` on
   other blocks and orthogonal to all of them, ``s = synth.shared_structure``). Sites add a
   block offset; individuals vary in loadings and network coupling. The patterns depend only on
   the seed and atlas, so all consortia share them. Calibrated so that a logistic regression on
   Fisher-z connectomes of ~150 subjects reaches a cross-validated AUC of about 0.7-0.85.
4. **Time series** (:mod:`lcm.synth.signals`). Signals with the subject's correlation and a
   haemodynamic temporal model (white noise through the canonical HRF plus white noise: lag-1
   autocorrelation ~0.78 at TR 0.72 s, ~0.64 at TR 2 s, ~0.52 at TR 3 s); head motion with a
   heavy-tailed framewise displacement (median ~0.12-0.2 mm).
5. **Voxels** (:mod:`lcm.synth.voxel`). Region signal + voxel noise + motion artefact (a spatial
   pattern times motion parameters and derivatives) + global, white-matter and CSF components +
   drift; confounds in fMRIPrep's format (:mod:`lcm.synth.confounds`). Calibrated so that FC
   after the workflow's 24P denoising is in the real range, as for the ROI tier.

``ground_truth.json`` records the network of every region, each pattern's blocks and size, the
diagnosis mixes and classes, the generation parameters, the seed and the oracle: the accuracy
and AUC achievable from the true covariance (:mod:`lcm.synth.oracle`).
:mod:`lcm.synth.realism` compares a cohort's statistics with real resting-state data. Everything
is reproducible byte for byte from the master seed (:mod:`lcm.synth.streams`).
"""

from typing import Any

from lcm.synth.plan import cohort_outputs, planned_runs, planned_subjects, subject_outputs

# The writers (numpy/scipy/nibabel generation code) load on first use: the workflow's plan
# only asks for output names.
_WRITERS = ("subject_truth", "write_cohort", "write_subject")

__all__ = [
    "cohort_outputs",
    "planned_runs",
    "planned_subjects",
    "subject_outputs",
    "subject_truth",
    "write_cohort",
    "write_subject",
]


def __getattr__(name: str) -> Any:
    if name in _WRITERS:
        from lcm.synth import write

        return getattr(write, name)
    raise AttributeError(f"module 'lcm.synth' has no attribute {name!r}")
