"""Phenotype tables in each consortium's own raw coding.

The latent values are in catalogue units (``config/variables.yaml``); here they are encoded the
way the imitated consortium publishes them, so that applying the catalogue's transform
(``map``, ``scale``, ``range_midpoint``) gives the latent value back: UKB sex ``0/1``, ABIDE
``DX_GROUP``/``SEX`` ``1/2``, ADNI age in months and ``Female``/``Male``, HCP ``Gender`` ``M/F``
and years of schooling ``SSAGA_Educ`` 11-17, PPMI ``COHORT`` codes 1-4 (PD, healthy control,
SWEDD, prodromal), ``SEX`` ``0/1`` and ``EDUCYRS``, COBRE ``Subject Type`` ``Control/Patient``
with ``Gender`` ``Male/Female`` and ``Current Age``, and a BIDS ``participants.tsv`` with an age
range such as ``26-30`` (column ``age_range``) at the voxel tier. Each variable (never the
identifier, site or diagnosis) is missing for 5-15 % of subjects, at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lcm.synth.presets import ConsortiumSpec
from lcm.synth.streams import rng_for

# Inverse codings: catalogue education level -> candidate raw codes.
_HCP_EDUCATION = {2: [11], 3: [12, 13], 4: [14, 15, 16], 5: [17]}
_UKB_EDUCATION = {2: [3, 4], 3: [2], 4: [5, 6], 5: [1]}
_PPMI_EDUCATION = {1: [6, 8], 2: [10, 11], 3: [12, 13], 4: [14, 15, 16], 5: [18, 20]}
_PPMI_COHORT = {"PD": 1, "control": 2, "SWEDD": 3, "prodromal": 4}


def phenotype_table(spec: ConsortiumSpec, latents: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The raw phenotype table of a consortium (ROI tier: ``phenotype.tsv``; voxel tier:
    ``participants.tsv``), with missing values as ``NaN``/``<NA>``.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium (its tier and preset choose the columns and codings).
    latents : pandas.DataFrame
        The cohort's latent values, as :func:`lcm.synth.latents.draw_latents` returns them.
    seed : int
        Master seed (draws the codings and the missing values).

    Returns
    -------
    pandas.DataFrame
    """
    rng = rng_for("phenotype", seed, spec.name)
    if spec.tier == "voxel":
        table, keep = _bids_participants(spec, latents, rng)
    else:
        table, keep = {
            "hcp": _hcp,
            "ukb": _ukb,
            "abide": _abide,
            "ppmi": _ppmi,
            "adni": _adni,
            "cobre": _cobre,
        }[spec.preset.name](latents, rng)
    df = pd.DataFrame(table)
    for column in df.columns:
        if column in keep:
            continue
        rate = rng.uniform(0.05, 0.15)
        missing = rng.random(len(df)) < rate
        df[column] = df[column].mask(missing)
    return df


def participants_sidecar(spec: ConsortiumSpec, columns: list[str]) -> dict[str, Any]:
    """``participants.json`` describing the columns of the voxel tier's ``participants.tsv``.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.
    columns : list of str
        The columns of its ``participants.tsv``; those without a description are left out.

    Returns
    -------
    dict
        Description (and levels or units) by column.
    """
    descriptions: dict[str, Any] = {
        "participant_id": {"Description": "Participant label, 'sub-' followed by the label."},
        # No "Units": the validator would then require numbers, and "26-30" is a label.
        "age_range": {
            "Description": "Age at scan in years, as a five-year range such as "
            "26-30 (HCP open-access style)."
        },
        "sex": {"Description": "Sex", "Levels": {"F": "female", "M": "male"}},
        "site": {"Description": "Acquisition site."},
        "fluid_intelligence": {
            "Description": "Penn matrix reasoning, correct responses.",
            "Units": "correct responses",
        },
        "working_memory": {"Description": "List sorting, unadjusted standard score."},
        "bmi": {"Description": "Body-mass index.", "Units": "kg/m^2"},
        "education": {"Description": "Education level (1 = primary ... 5 = postgraduate)."},
        "autism": {"Description": "Diagnosis", "Levels": {"control": "typical", "autism": "ASD"}},
        "alzheimers": {
            "Description": "Diagnosis",
            "Levels": {"CN": "cognitively normal", "AD": "Alzheimer's disease"},
        },
        "parkinsons": {
            "Description": "Enrolment cohort",
            "Levels": {
                "control": "healthy control",
                "PD": "Parkinson's disease",
                "prodromal": "prodromal",
                "SWEDD": "scan without evidence of dopaminergic deficit",
            },
        },
        "schizophrenia": {
            "Description": "Diagnosis",
            "Levels": {"control": "healthy control", "schizophrenia": "schizophrenia"},
        },
    }
    return {c: descriptions[c] for c in columns if c in descriptions}


def _int(values: np.ndarray | pd.Series) -> pd.Series:
    # Nullable integers print as "22", not "22.0", and as n/a once masked.
    return pd.Series(np.asarray(values), dtype="Int64")


def _pick(rng: np.random.Generator, codes: dict[int, list[int]], levels: pd.Series) -> pd.Series:
    return _int([int(rng.choice(codes[int(level)])) for level in levels])


def _hcp(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "Subject": lat["subject"],
        "Gender": lat["sex"],
        "Age_in_Yrs": _int(lat["age"]),
        "PMAT24_A_CR": _int(lat["fluid_intelligence"]),
        "ListSort_Unadj": lat["working_memory"],
        "BMI": lat["bmi"],
        "SSAGA_Educ": _pick(rng, _HCP_EDUCATION, lat["education"]),
    }, {"Subject"}


def _ukb(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "eid": lat["subject"],
        "31-0.0": _int((lat["sex"] == "M").astype(int)),
        "21003-2.0": _int(lat["age"]),
        "21001-2.0": lat["bmi"],
        "6138-2.0": _pick(rng, _UKB_EDUCATION, lat["education"]),
        "20016-2.0": _int(np.round(lat["fluid_intelligence"] / 3.0)),
    }, {"eid"}


def _abide(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "SUB_ID": lat["subject"],
        "SITE_ID": lat["site"],
        "DX_GROUP": _int(np.where(lat["autism"] == "autism", 1, 2)),
        "AGE_AT_SCAN": lat["age"],
        "SEX": _int(np.where(lat["sex"] == "M", 1, 2)),
    }, {"SUB_ID", "SITE_ID", "DX_GROUP"}


def _ppmi(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "PATNO": lat["subject"],
        "SITE": lat["site"],
        "COHORT": _int(lat["parkinsons"].map(_PPMI_COHORT)),
        "AGE_AT_VISIT": lat["age"],
        "SEX": _int((lat["sex"] == "M").astype(int)),
        "EDUCYRS": _pick(rng, _PPMI_EDUCATION, lat["education"]),
    }, {"PATNO", "SITE", "COHORT"}


def _cobre(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "Subject ID": lat["subject"],
        "Current Age": _int(lat["age"]),
        "Gender": np.where(lat["sex"] == "F", "Female", "Male"),
        "Subject Type": np.where(lat["schizophrenia"] == "schizophrenia", "Patient", "Control"),
    }, {"Subject ID", "Subject Type"}


def _adni(lat: pd.DataFrame, rng: np.random.Generator) -> tuple[dict, set]:
    return {
        "PTID": lat["subject"],
        "SITE": lat["site"],
        "DX_bl": lat["alzheimers"],
        "AGE_MONTHS": _int(np.round(lat["age"] * 12)),
        "PTGENDER": np.where(lat["sex"] == "F", "Female", "Male"),
        "PTEDUCAT_LEVEL": _int(lat["education"]),
    }, {"PTID", "SITE", "DX_bl"}


def age_range(age: np.ndarray | pd.Series) -> list[str]:
    """Five-year bins ``21-25``, ``26-30`` ... (HCP open-access style) of integer-floored ages.

    Parameters
    ----------
    age : numpy.ndarray or pandas.Series
        Ages in years.

    Returns
    -------
    list of str
    """
    low = 5 * ((np.floor(np.asarray(age, dtype=float)).astype(int) - 1) // 5) + 1
    return [f"{lo}-{lo + 4}" for lo in low]


def _bids_participants(
    spec: ConsortiumSpec, lat: pd.DataFrame, rng: np.random.Generator
) -> tuple[dict, set]:
    table: dict[str, Any] = {
        "participant_id": ["sub-" + s for s in lat["subject"]],
        "age_range": age_range(lat["age"]),
        "sex": lat["sex"],
    }
    if spec.n_sites > 1:
        table["site"] = lat["site"]
    for var in spec.preset.variables:
        if var in ("age", "sex"):
            continue
        value = lat[var]
        table[var] = _int(value) if var in ("fluid_intelligence", "education") else value
    keep = {"participant_id", "site"}
    if spec.preset.diagnosis:
        keep.add(spec.preset.diagnosis)
    return table, keep
