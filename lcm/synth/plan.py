"""What each synthetic job writes, computed without generating any data.

Snakemake calls these functions while it parses the workflow, so they only draw the roster
(subject labels and sites) and build paths. The roster depends on the consortium's name and
settings, not on the master seed, so output paths stay stable when only the seed changes; the
seed governs every value written (see :mod:`lcm.synth.streams`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lcm.exceptions import InputDataError
from lcm.io.bids_names import build_name, derivative_path
from lcm.io.output_space import parse_output_space
from lcm.synth.presets import ConsortiumSpec, resolve
from lcm.synth.streams import rng_for

TASK = "rest"
RUN = "1"
DEFAULT_SPACE = "MNI152NLin2009cAsym"

# The names of a consortium's files and folders under ``synth.out_dir/<name>``. The synth rules'
# outputs and both jobs' writers build every path through the functions below, which read them
# (dataset_description.json is BIDS's name, and lcm.io.provenance's for the ROI tier).
GROUND_TRUTH = "ground_truth.json"
PHENOTYPE = "phenotype.tsv"  # ROI tier; the voxel tier's table is participants.tsv
TIMESERIES_DIR = "timeseries"  # ROI tier: one XCP-D-like TSV per run
RAWDATA_DIR = "rawdata"  # voxel tier: the raw BIDS dataset
FMRIPREP_DIR = "derivatives/fmriprep"  # voxel tier: the fMRIPrep-like derivatives
DESCRIPTION = "dataset_description.json"
PARTICIPANTS = "participants.tsv"
PARTICIPANTS_JSON = "participants.json"
README = "README"
CHANGES = "CHANGES"

# Subject label ranges imitating each consortium's identifiers.
_ID_RANGES = {
    "hcp": (100000, 999999),
    "ukb": (1000000, 6099999),
    "abide": (50000, 99999),
    "ppmi": (3000, 75000),  # PATNO
    "cobre": (300, 99999),  # written as A00000300
}
_ID_FORMAT = {"cobre": "A{:08d}"}


@dataclass(frozen=True)
class Roster:
    """Subject labels and their site labels, in generation order."""

    subjects: list[str]
    sites: list[str]


def roster(name: str, consortium: dict[str, Any]) -> Roster:
    """Draw the subject labels and sites of a consortium (cheap, deterministic).

    Parameters
    ----------
    name : str
        Consortium name.
    consortium : dict
        Its ``synth.consortia.<name>`` mapping.
    """
    return roster_of(resolve(name, consortium))


def roster_of(spec: ConsortiumSpec) -> Roster:
    """:func:`roster` of an already resolved consortium.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.

    Returns
    -------
    Roster

    Raises
    ------
    InputDataError
        When ``n_subjects`` exceeds the identifiers the preset can draw.
    """
    name = spec.name
    rng = rng_for("roster", name)
    n = spec.n_subjects
    site_idx = _site_assignment(rng, n, spec.n_sites)
    if spec.preset.name == "adni":
        # ADNI PTID: three-digit site, "S", four-digit roster id (e.g. 127S4240).
        codes = np.sort(rng.choice(np.arange(100, 1000), size=spec.n_sites, replace=False))
        site_labels = [str(c) for c in codes]
        rids = rng.choice(np.arange(1000, 10000), size=n, replace=False)
        subjects = [f"{site_labels[s]}S{r:04d}" for s, r in zip(site_idx, rids, strict=True)]
    else:
        low, high = _ID_RANGES[spec.preset.name]
        if n > high - low:
            raise InputDataError(
                f"synth.consortia.{name}.n_subjects={n} exceeds the {high - low} identifiers "
                f"preset {spec.preset.name!r} can draw.",
                hint="Lower n_subjects or use another preset.",
            )
        ids = low + rng.choice(high - low, size=n, replace=False)
        fmt = _ID_FORMAT.get(spec.preset.name, "{}")
        subjects = [fmt.format(int(i)) for i in ids]
        site_labels = list(spec.preset.site_names[: spec.n_sites])
    return Roster(subjects=subjects, sites=[site_labels[s] for s in site_idx])


def _site_assignment(rng: np.random.Generator, n: int, n_sites: int) -> np.ndarray:
    # Unequal site sizes, as in multi-site consortia, but every site gets at least one subject.
    weights = rng.dirichlet(np.full(n_sites, 4.0))
    idx = rng.choice(n_sites, size=n, p=weights)
    idx[:n_sites] = np.arange(n_sites)
    return idx


def planned_subjects(name: str, consortium: dict[str, Any], seed: int = 0) -> list[str]:
    """BIDS subject labels (alphanumeric) of a consortium, in generation order.

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings.
    seed : int, optional
        Master seed. Accepted for symmetry with the generators; the roster does not depend on
        it (see the module docstring).

    Returns
    -------
    list of str
    """
    del seed  # the roster is seed-independent by design
    return roster(name, consortium).subjects


def planned_runs(name: str, consortium: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """One entity dict per run: ``{"sub", "ses": None, "task": "rest", "run": "1"}``.

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings.
    seed : int, optional
        Master seed; accepted as by :func:`planned_subjects`, the runs do not depend on it.

    Returns
    -------
    list of dict
    """
    del seed  # see planned_subjects
    return runs_of(resolve(name, consortium))


def runs_of(spec: ConsortiumSpec) -> list[dict[str, Any]]:
    """:func:`planned_runs` of an already resolved consortium.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.

    Returns
    -------
    list of dict
    """
    return [{"sub": s, "ses": None, "task": TASK, "run": RUN} for s in roster_of(spec).subjects]


def timeseries_path(root: str | Path, run: dict[str, Any], atlas: str) -> Path:
    """Path of one run's ROI time-series TSV under ``root`` (XCP-D naming).

    Parameters
    ----------
    root : path-like
        The consortium's ``timeseries`` folder.
    run : dict
        The run's entities, as :func:`planned_runs` gives them.
    atlas : str
        Atlas name (the ``seg`` entity).

    Returns
    -------
    pathlib.Path
    """
    return _timeseries_path(root, run, atlas, DEFAULT_SPACE)


def _timeseries_path(root: str | Path, run: dict[str, Any], atlas: str, space: str) -> Path:
    entities = {**run, "space": space, "seg": atlas, "stat": "mean"}
    return derivative_path(root, entities, "timeseries", ".tsv")


def consortium_root(out_dir: str | Path, name: str) -> Path:
    """``out_dir/name``.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    name : str
        Consortium name, or ``"{consortium}"`` for the synth rules' output patterns.

    Returns
    -------
    pathlib.Path
    """
    return Path(out_dir) / name


def consortium_folders(out_dir: str | Path, name: str) -> dict[str, Path]:
    """The folders of consortium ``name`` that hold ``sub-<label>`` folders, by tier.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    name : str
        Consortium name, or ``"{consortium}"`` for the synth rules' output patterns.

    Returns
    -------
    dict of str to Path
        ``"timeseries"`` (ROI tier), ``"rawdata"`` and ``"fmriprep"`` (voxel tier).
    """
    root = consortium_root(out_dir, name)
    return {
        "timeseries": root / TIMESERIES_DIR,
        "rawdata": root / RAWDATA_DIR,
        "fmriprep": root / FMRIPREP_DIR,
    }


def ground_truth_path(out_dir: str | Path, name: str) -> Path:
    """Path of consortium ``name``'s ``ground_truth.json`` (read by :mod:`lcm.synth.oracle`).

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    name : str
        Consortium name, or ``"{consortium}"`` for the synth rules' output patterns.

    Returns
    -------
    pathlib.Path
    """
    return consortium_root(out_dir, name) / GROUND_TRUTH


def cohort_files(out_dir: str | Path, name: str, tier: str) -> dict[str, Path]:
    """Named paths of the cohort job's files other than the ROI tier's per-run time series.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    name : str
        Consortium name, or ``"{consortium}"`` for the synth rules' output patterns.
    tier : str
        ``"roi"`` or ``"voxel"``.

    Returns
    -------
    dict of str to Path
        Keys are the synth rules' output names.
    """
    folders = consortium_folders(out_dir, name)
    files = {"truth": ground_truth_path(out_dir, name)}
    if tier == "roi":
        files |= {
            "phenotype": consortium_root(out_dir, name) / PHENOTYPE,
            "description": folders["timeseries"] / DESCRIPTION,
        }
    else:
        raw = folders["rawdata"]
        files |= {
            "description": raw / DESCRIPTION,
            "participants": raw / PARTICIPANTS,
            "participants_json": raw / PARTICIPANTS_JSON,
            "sidecar": raw / build_name({"task": TASK}, "bold", ".json"),
            "readme": raw / README,
            "changes": raw / CHANGES,
            "derivatives": folders["fmriprep"] / DESCRIPTION,
        }
    return files


def cohort_outputs(
    name: str, consortium: dict[str, Any], out_dir: str | Path, *, atlas: str = "aal116"
) -> list[str]:
    """Exact paths the cohort job (``lcm synth --consortium NAME``) writes.

    Parameters
    ----------
    name, consortium : str, dict
        Consortium name and settings.
    out_dir : path-like
        ``synth.out_dir``.
    atlas : str, optional
        Atlas name (``atlas.name`` of the config); used in ROI-tier file names.

    Returns
    -------
    list of str
    """
    spec = resolve(name, consortium)
    paths = list(cohort_files(out_dir, name, spec.tier).values())
    if spec.tier == "roi":
        for run in runs_of(spec):
            paths += roi_run_files(out_dir, name, run, atlas).values()
    return sorted(str(p) for p in paths)


def roi_run_files(
    out_dir: str | Path, name: str, run: dict[str, Any], atlas: str
) -> dict[str, Path]:
    """The two files the cohort job writes for one run of a ROI-tier consortium.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    name : str
        Consortium name.
    run : dict
        The run's entities, as :func:`planned_runs` gives them.
    atlas : str
        Atlas name (the ``seg`` entity).

    Returns
    -------
    dict of str to Path
        ``"timeseries"`` (the TSV) and ``"sidecar"`` (its JSON).
    """
    tsv = timeseries_path(consortium_folders(out_dir, name)["timeseries"], run, atlas)
    return {"timeseries": tsv, "sidecar": tsv.with_suffix(".json")}


def subject_files(
    spec: ConsortiumSpec, out_dir: str | Path, subject: str, output_space: str = DEFAULT_SPACE
) -> dict[str, Path]:
    """Named paths of one voxel-tier subject's files (keys used by the writers).

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.
    out_dir : path-like
        ``synth.out_dir``.
    subject : str
        Subject label, without ``sub-``.
    output_space : str, optional
        fMRIPrep's output space (the derivative names carry its entities).

    Returns
    -------
    dict of str to Path
    """
    return _subject_files(out_dir, spec.name, subject, output_space)


def _subject_files(
    out_dir: str | Path, name: str, subject: str, output_space: str
) -> dict[str, Path]:
    folders = consortium_folders(out_dir, name)
    raw, deriv = folders["rawdata"], folders["fmriprep"]
    run = {"sub": subject, "task": TASK, "run": RUN}
    spaced = {**run, **parse_output_space(output_space).entities}
    return {
        "t1w": derivative_path(raw, {"sub": subject}, "T1w", ".nii.gz", datatype="anat"),
        "raw_bold": derivative_path(raw, run, "bold", ".nii.gz"),
        "preproc_bold": derivative_path(deriv, {**spaced, "desc": "preproc"}, "bold", ".nii.gz"),
        "preproc_json": derivative_path(deriv, {**spaced, "desc": "preproc"}, "bold", ".json"),
        "mask": derivative_path(deriv, {**spaced, "desc": "brain"}, "mask", ".nii.gz"),
        "confounds": derivative_path(deriv, {**run, "desc": "confounds"}, "timeseries", ".tsv"),
        "confounds_json": derivative_path(
            deriv, {**run, "desc": "confounds"}, "timeseries", ".json"
        ),
    }


# Stands in for the rule's ``{subject}`` wildcard while BIDS names are built (they take
# alphanumeric labels only), then is swapped for it.
_SUBJECT_STANDIN = "LCMSUBJECTWILDCARD"
# Stands in for a label an earlier run may have chosen otherwise (atlas, output space).
_ANY_STANDIN = "LCMANYLABEL"


def subject_name_patterns(tier: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """The names the jobs write below a ``sub-<label>`` folder, as glob patterns.

    Built from the same functions as the files written, with any atlas and any output space
    (whichever an earlier run used), so the cohort job recognises the files of subjects no
    longer on the roster (:func:`lcm.synth.write.remove_departed`).

    Parameters
    ----------
    tier : str
        ``"roi"`` or ``"voxel"``.

    Returns
    -------
    dict
        :func:`consortium_folders` key -> datatype folder -> patterns of the names after
        ``sub-<label>_``.
    """
    out_dir, name = Path("out"), "consortium"
    run = {"sub": _SUBJECT_STANDIN, "ses": None, "task": TASK, "run": RUN}
    if tier == "roi":
        tsv = _timeseries_path(
            consortium_folders(out_dir, name)["timeseries"], run, _ANY_STANDIN, _ANY_STANDIN
        )
        files = [tsv, tsv.with_suffix(".json")]
    else:
        files = list(_subject_files(out_dir, name, _SUBJECT_STANDIN, _ANY_STANDIN).values())
    patterns: dict[str, dict[str, tuple[str, ...]]] = {}
    for key, folder in consortium_folders(out_dir, name).items():
        for path in files:
            if path.parent.parent.parent == folder:  # folder/sub-<label>/<datatype>/<name>
                rest = path.name.removeprefix(f"sub-{_SUBJECT_STANDIN}_")
                by_type = patterns.setdefault(key, {})
                by_type[path.parent.name] = (
                    *by_type.get(path.parent.name, ()),
                    rest.replace(_ANY_STANDIN, "*"),
                )
    return patterns


def cohort_patterns(out_dir: str | Path, tier: str) -> dict[str, str]:
    """The synth cohort rule's outputs: :func:`cohort_files` with a ``{consortium}`` wildcard.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    tier : str
        ``"roi"`` or ``"voxel"``.

    Returns
    -------
    dict of str to str
    """
    return {key: str(path) for key, path in cohort_files(out_dir, "{consortium}", tier).items()}


def subject_patterns(out_dir: str | Path, output_space: str = DEFAULT_SPACE) -> dict[str, str]:
    """The synth subject rule's outputs: :func:`subject_files` with ``{consortium}`` and
    ``{subject}`` wildcards.

    Parameters
    ----------
    out_dir : path-like
        ``synth.out_dir``.
    output_space : str, optional
        fMRIPrep's output space (the derivative names carry its entities).

    Returns
    -------
    dict of str to str
    """
    root = consortium_root(out_dir, "{consortium}")
    files = _subject_files(out_dir, "{consortium}", _SUBJECT_STANDIN, output_space)
    return {
        key: str(root / str(path.relative_to(root)).replace(_SUBJECT_STANDIN, "{subject}"))
        for key, path in files.items()
    }


def subject_outputs(
    name: str,
    consortium: dict[str, Any],
    out_dir: str | Path,
    subject: str,
    output_space: str = DEFAULT_SPACE,
) -> list[str]:
    """Exact paths the subject job (``lcm synth --consortium NAME --subject LABEL``) writes.

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings.
    out_dir : path-like
        ``synth.out_dir``.
    subject : str
        Subject label, with or without ``sub-``.
    output_space : str, optional
        fMRIPrep's output space (the derivative names carry its entities).

    Returns
    -------
    list of str

    Raises
    ------
    InputDataError
        When the consortium is not at tier ``voxel`` or ``subject`` is not on its roster.
    """
    spec = resolve(name, consortium)
    check_subject(spec, consortium, subject)
    files = subject_files(spec, out_dir, subject, output_space)
    return sorted(str(p) for p in files.values())


def check_subject(spec: ConsortiumSpec, consortium: dict[str, Any], subject: str) -> int:
    """Index of ``subject`` in the roster of a voxel-tier consortium, or raise.

    Parameters
    ----------
    spec : ConsortiumSpec
        The resolved consortium.
    consortium : dict
        Its settings (the roster is drawn from them).
    subject : str
        Subject label, with or without ``sub-``.

    Returns
    -------
    int

    Raises
    ------
    InputDataError
        When the consortium is not at tier ``voxel``, or ``subject`` is not an alphanumeric label
        on its roster.
    """
    if spec.tier != "voxel":
        raise InputDataError(
            f"synth.consortia.{spec.name} has tier {spec.tier!r}; per-subject files exist only "
            "at tier 'voxel'.",
            hint="Drop --subject: the cohort job writes every run of a roi-tier consortium.",
        )
    label = subject.removeprefix("sub-")
    build_name({"sub": label}, "x", ".x")  # validates the label (alphanumeric)
    subjects = planned_subjects(spec.name, consortium)
    if label not in subjects:
        raise InputDataError(
            f"Subject {label!r} is not on the roster of consortium {spec.name!r} "
            f"({len(subjects)} subjects, e.g. {subjects[:3]}).",
            hint="Use a label from lcm.synth.planned_subjects (the workflow does).",
        )
    return subjects.index(label)
