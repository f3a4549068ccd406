"""Consortium presets: acquisition and cohort facts each synthetic consortium imitates.

Numbers follow the public descriptions of the real consortia (TR, run length, age range, sites,
diagnosis prevalence); they are knobs of a generator, not claims about the real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lcm.exceptions import ConfigError

TIERS = ("roi", "voxel")


@dataclass(frozen=True)
class Preset:
    """Facts of one imitated consortium.

    Attributes
    ----------
    name : str
        ``hcp``, ``ukb``, ``abide``, ``ppmi``, ``adni`` or ``cobre``.
    tr : float
        Repetition time in seconds.
    n_volumes : int
        Default volumes per run.
    age_range : tuple of float
        Youngest and oldest age in years.
    variables : tuple of str
        Catalogue variables the consortium's phenotype carries.
    diagnosis : str or None
        Catalogue name of the diagnosis (``autism``, ``parkinsons``, ``alzheimers``,
        ``schizophrenia``) or ``None``.
    classes : tuple of (str, float, float)
        Diagnostic classes as ``(catalogue level, probability, dose)``; the first is the
        control class (dose 0). The dose scales the diagnosis pattern: 1 for the full disease,
        in between for prodromal or atypical groups.
    site_names : tuple of str
        Candidate site labels (alphanumeric); one site when a single name is given.
    subjects_per_site : int
        Roughly how many subjects each site contributes (sets the number of sites).
    fd_median : float
        Median framewise displacement (mm) of a typical subject.
    """

    name: str
    tr: float
    n_volumes: int
    age_range: tuple[float, float]
    variables: tuple[str, ...]
    diagnosis: str | None = None
    classes: tuple[tuple[str, float, float], ...] = ()
    site_names: tuple[str, ...] = ()
    subjects_per_site: int = 10**9
    fd_median: float = 0.15


PRESETS: dict[str, Preset] = {
    "hcp": Preset(
        name="hcp", tr=0.72, n_volumes=400, age_range=(22, 37),
        variables=("age", "sex", "fluid_intelligence", "working_memory", "bmi", "education"),
        site_names=("WashU",), fd_median=0.12,
    ),
    "ukb": Preset(
        name="ukb", tr=0.735, n_volumes=300, age_range=(45, 82),
        variables=("age", "sex", "bmi", "education", "fluid_intelligence"),
        site_names=("Cheadle",), fd_median=0.14,
    ),
    "abide": Preset(
        name="abide", tr=2.0, n_volumes=200, age_range=(7, 64),
        variables=("age", "sex", "autism"), diagnosis="autism",
        classes=(("control", 0.55, 0.0), ("autism", 0.45, 1.0)),
        site_names=(
            "NYU", "UCLA", "USM", "UM", "PITT", "KKI", "LEUVEN", "YALE", "SDSU", "STANFORD",
            "TRINITY", "OLIN", "OHSU", "CALTECH", "MAXMUN", "SBL", "CMU",
        ),
        subjects_per_site=25, fd_median=0.18,
    ),
    # PPMI: Siemens rs-fMRI (TR 2.4 s, 210 volumes) at many sites; four enrolment cohorts.
    # SWEDD ("scans without evidence of dopaminergic deficit") get a weak dose of the PD pattern,
    # prodromal subjects half of it.
    "ppmi": Preset(
        name="ppmi", tr=2.4, n_volumes=210, age_range=(30, 85),
        variables=("age", "sex", "education", "parkinsons"), diagnosis="parkinsons",
        classes=(("control", 0.25, 0.0), ("PD", 0.45, 1.0), ("prodromal", 0.2, 0.5),
                 ("SWEDD", 0.1, 0.25)),
        site_names=("290", "32", "51", "52", "55", "59", "88", "101", "105", "106", "107",
                    "113", "117", "120", "121", "122", "123", "124", "125", "126"),
        subjects_per_site=15, fd_median=0.16,
    ),
    "adni": Preset(
        name="adni", tr=3.0, n_volumes=140, age_range=(55, 90),
        variables=("age", "sex", "alzheimers", "education"), diagnosis="alzheimers",
        classes=(("CN", 0.55, 0.0), ("AD", 0.45, 1.0)), subjects_per_site=20, fd_median=0.17,
    ),
    # COBRE (Mind Research Network): one site, TR 2 s, 150 volumes, schizophrenia vs controls.
    "cobre": Preset(
        name="cobre", tr=2.0, n_volumes=150, age_range=(18, 65),
        variables=("age", "sex", "schizophrenia"), diagnosis="schizophrenia",
        classes=(("control", 0.5, 0.0), ("schizophrenia", 0.5, 1.0)),
        site_names=("MRN",), fd_median=0.17,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class ConsortiumSpec:
    """A consortium's settings with defaults filled and checked."""

    name: str
    preset: Preset
    tier: str
    n_subjects: int
    n_volumes: int
    resolution_mm: float

    @property
    def tr(self) -> float:
        """Repetition time in seconds (always the preset's)."""
        return self.preset.tr

    @property
    def n_sites(self) -> int:
        """Number of acquisition sites for this cohort size."""
        if self.preset.subjects_per_site >= 10**9:
            return 1
        cap = len(self.preset.site_names) or 50
        return int(min(cap, max(2, self.n_subjects // self.preset.subjects_per_site)))


def resolve(name: str, consortium: dict[str, Any]) -> ConsortiumSpec:
    """Fill defaults of ``synth.consortia.<name>`` and check its values.

    Parameters
    ----------
    name : str
        Consortium name (the config key).
    consortium : dict
        The config mapping (``preset``, ``tier``, ``n_subjects``, ``n_volumes``, ``resolution_mm``).

    Raises
    ------
    ConfigError
        Naming the key, the value received and what is allowed.
    """
    key = f"synth.consortia.{name}"
    if not isinstance(consortium, dict):
        raise ConfigError(f"{key}: expected a mapping, got {consortium!r}.")
    preset = consortium.get("preset")
    if preset not in PRESETS:
        raise ConfigError(
            f"{key}.preset: expected one of {sorted(PRESETS)}, got {preset!r}.",
            hint="Pick the consortium the synthetic cohort should imitate.",
        )
    tier = consortium.get("tier") or "roi"
    if tier not in TIERS:
        raise ConfigError(f"{key}.tier: expected one of {TIERS}, got {tier!r}.")
    n_subjects = consortium.get("n_subjects") or 100
    n_volumes = consortium.get("n_volumes") or PRESETS[preset].n_volumes
    resolution = consortium.get("resolution_mm") or 2
    for field, value, low in (("n_subjects", n_subjects, 2), ("n_volumes", n_volumes, 20)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{key}.{field}: expected an integer >= {low}, got {value!r}.")
    if resolution not in (2, 3, 4):
        raise ConfigError(f"{key}.resolution_mm: expected 2, 3 or 4, got {resolution!r}.")
    return ConsortiumSpec(name, PRESETS[preset], tier, n_subjects, n_volumes, float(resolution))
