"""Subject-level latent values: demographics, behaviour, diagnosis and motion, in catalogue units.

All subjects of a consortium are drawn at once from the ``latents`` stream (cheap, no imaging
data), so a subject job recomputes exactly the row the cohort job writes. Values are in the
catalogue's units and levels (years, ``F``/``M``, ``control``/``autism`` ...); the phenotype
writer then encodes them in each consortium's raw coding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcm.synth.plan import roster_of
from lcm.synth.presets import ConsortiumSpec
from lcm.synth.streams import rng_for

# Female fraction, mean BMI and motion factor of patients (relative to controls), per preset.
FEMALE_FRACTION = {
    "hcp": 0.54,
    "ukb": 0.52,
    "abide": 0.2,
    "ppmi": 0.38,
    "adni": 0.47,
    "cobre": 0.22,
}
BMI_MEAN = {"hcp": 26.5, "ukb": 27.4, "abide": 21.0, "ppmi": 27.0, "adni": 26.8, "cobre": 28.5}
PATIENT_MOTION = {"autism": 1.2, "parkinsons": 1.3, "alzheimers": 1.2, "schizophrenia": 1.3}
# Score used by the connectivity model: (value - centre) / scale, shared by every consortium so
# that the same age or BMI has the same effect everywhere.
SCORE_REFERENCE = {
    "age": (50.0, 20.0),
    "bmi": (27.0, 5.0),
    "working_memory": (100.0, 15.0),
    "education": (3.5, 1.0),
}


def draw_latents(spec: ConsortiumSpec, seed: int) -> pd.DataFrame:
    """One row per subject (roster order) with every latent value of the consortium.

    Columns: ``subject, site, age, sex, fluid_intelligence_z, fluid_intelligence,
    working_memory, bmi, education, diagnosis (0 control / 1 any patient class), dx_class
    (index into the preset's classes), dx_dose (the class's dose of the diagnosis pattern),
    <diagnosis name> (level), motion_scale``.
    Variables the preset lacks are still drawn (the connectivity model uses them) but are not
    written to the phenotype.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.
    seed : int
        Master seed.
    """
    ros = roster_of(spec)
    rng = rng_for("latents", seed, spec.name)
    n = spec.n_subjects
    p = spec.preset
    dx_class = np.zeros(n, dtype=int)
    dose = np.zeros(n)
    if p.diagnosis:
        dx_class = rng.choice(len(p.classes), size=n, p=[c[1] for c in p.classes])
        dose = np.array([c[2] for c in p.classes])[dx_class]
    dx = (dx_class > 0).astype(int)
    age = _age(rng, p.name, n, dx)
    female_p = FEMALE_FRACTION[p.name]
    # Autism, Parkinson's and schizophrenia are all diagnosed more often in men.
    female = rng.random(n) < np.where(dx == 1, female_p * 0.6, female_p)
    fi_z = rng.normal(0, 1, n) - 0.02 * np.maximum(age - 45, 0)
    wm = 100 + 15 * (0.45 * fi_z + np.sqrt(1 - 0.45**2) * rng.normal(0, 1, n))
    bmi = np.clip(rng.lognormal(np.log(BMI_MEAN[p.name]), 0.17, n), 14, 58)
    edu_z = 0.4 * fi_z + np.sqrt(1 - 0.16) * rng.normal(0, 1, n)
    low = 1 if p.name in ("adni", "ppmi") else 2  # HCP/UKB codings have no "primary only" level
    education = np.clip(np.digitize(edu_z, [-1.6, -0.8, 0.2, 1.1]) + 1, low, 5)
    fi = _fluid_intelligence(p.name, fi_z)
    factor = PATIENT_MOTION.get(p.diagnosis or "", 1.0)
    motion = rng.lognormal(0.0, 0.35, n) * np.where(dx == 1, factor, 1.0)
    table = pd.DataFrame(
        {
            "subject": ros.subjects,
            "site": ros.sites,
            "age": age,
            "sex": np.where(female, "F", "M"),
            "fluid_intelligence_z": fi_z,
            "fluid_intelligence": fi,
            "working_memory": np.round(np.clip(wm, 40, 160), 2),
            "bmi": np.round(bmi, 1),
            "education": education.astype(int),
            "diagnosis": dx,
            "dx_class": dx_class,
            "dx_dose": dose,
            "motion_scale": motion,
        }
    )
    if p.diagnosis:
        table[p.diagnosis] = np.array([c[0] for c in p.classes])[dx_class]
    return table


def scores(row: pd.Series, diagnosis: str | None) -> dict[str, float]:
    """Standardised scores of one subject for :func:`lcm.synth.connectivity.subject_correlation`.

    Parameters
    ----------
    row : pandas.Series
        The subject's row of :func:`draw_latents`.
    diagnosis : str or None
        The preset's diagnosis name, or None when the consortium has none.

    Returns
    -------
    dict of str to float
        Score by effect name: age, BMI, working memory and education standardised by
        ``SCORE_REFERENCE``, fluid intelligence as its z-score, sex as +1 (male) or -1, and the
        diagnosis (when there is one) as the subject's dose.
    """
    out = {name: (float(row[name]) - c) / s for name, (c, s) in SCORE_REFERENCE.items()}
    out["sex"] = 1.0 if row["sex"] == "M" else -1.0
    out["fluid_intelligence"] = float(row["fluid_intelligence_z"])
    if diagnosis:
        out[diagnosis] = float(row["dx_dose"])
    return out


def _age(rng: np.random.Generator, preset: str, n: int, dx: np.ndarray) -> np.ndarray:
    if preset == "hcp":
        return np.clip(np.round(rng.normal(29, 3.7, n)), 22, 37)
    if preset == "ukb":
        return np.clip(np.round(rng.normal(63, 7.5, n)), 45, 82)
    if preset == "abide":
        # Mostly children and adolescents with a long adult tail (median about 15 years).
        return np.round(np.clip(7 + rng.gamma(1.6, 5.5, n), 7, 64), 2)
    if preset == "ppmi":
        return np.round(np.clip(rng.normal(61 + 1.5 * dx, 9.5, n), 30, 85), 1)
    if preset == "cobre":
        return np.clip(np.round(rng.normal(37 + 1.0 * dx, 12.5, n)), 18, 65)
    # ADNI: patients slightly older than controls.
    return np.clip(rng.normal(73 + 1.5 * dx, 6.5, n), 55, 90)


def _fluid_intelligence(preset: str, z: np.ndarray) -> np.ndarray:
    """Catalogue value: HCP PMAT24 correct responses (0-24); UKB 0-13 items scaled by 3."""
    if preset == "ukb":
        return 3.0 * np.clip(np.round(6 + 2.1 * z), 0, 13)
    return np.clip(np.round(17 + 4.5 * z), 0, 24)
