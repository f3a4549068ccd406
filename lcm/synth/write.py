"""The two synthetic jobs: the cohort job and (voxel tier) the subject job.

Files are written atomically, one subject at a time, and are byte-for-byte reproducible from
the seed: no timestamps, host names or absolute paths go into them.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

import lcm
from lcm.atlas import Atlas
from lcm.exceptions import InputDataError
from lcm.io.atomic import (
    TMP_TAG,
    atomic_path,
    temporary_owner,
    write_json,
    write_text,
    write_tsv,
)
from lcm.io.ownership import claim_tree, remove_owned
from lcm.io.provenance import BIDS_VERSION, write_dataset_description
from lcm.synth.confounds import N_ACOMPCOR, confounds_sidecar
from lcm.synth.networks import NETWORKS
from lcm.synth.nifti import write_bold_stream, write_nifti
from lcm.synth.oracle import oracle_metrics, read_ground_truth
from lcm.synth.phenotype import participants_sidecar, phenotype_table
from lcm.synth.plan import (
    DEFAULT_SPACE,
    TASK,
    check_subject,
    cohort_files,
    consortium_folders,
    consortium_root,
    ground_truth_path,
    roi_run_files,
    roster_of,
    runs_of,
    subject_files,
    subject_name_patterns,
)
from lcm.synth.presets import resolve
from lcm.synth.signals import HRF_LENGTH_S, SLOW_WEIGHT, lag1_autocorrelation
from lcm.synth.subject import Context, prepare, roi_timeseries, simulate_subject
from lcm.synth.voxel import simulate_voxels

log = logging.getLogger(__name__)

FMRIPREP_VERSION = "25.2.7"
DECIMALS = 5  # ROI time series precision: far below the signal's noise, keeps files small

# The generator multiplies small matrices (regions x regions): BLAS threads only add spinning
# overhead, up to 20x slower on a loaded machine, so every job runs BLAS single-threaded.
_SINGLE_BLAS = {"limits": 1, "user_api": "blas"}


@threadpool_limits.wrap(**_SINGLE_BLAS)
def write_cohort(
    name: str,
    consortium: dict[str, Any],
    *,
    out_dir: str | Path,
    seed: int,
    shared_structure: float,
    atlas: Atlas,
    workers: int = 1,
) -> list[Path]:
    """Write the cohort-level files of consortium ``name`` (see :func:`cohort_outputs`).

    Files written for subjects of an earlier roster (another ``n_subjects``) are removed first
    (:func:`remove_departed`): the folder then holds the configured cohort only.

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings.
    out_dir : path-like
        ``synth.out_dir``.
    seed : int
        Master seed.
    shared_structure : float
        ``synth.shared_structure``.
    atlas : Atlas
        The workflow's atlas.
    workers : int, optional
        Processes writing the ROI tier's runs (same bytes whatever the number).

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    spec = resolve(name, consortium)
    ctx = prepare(spec, seed, atlas, shared_structure)
    root = claim_tree(consortium_root(out_dir, name), "lcm synth", vouch=_vouched)
    # Every path below comes from lcm.synth.plan, which the synth rules' outputs come from too.
    files, folders = cohort_files(out_dir, name, spec.tier), consortium_folders(out_dir, name)
    # Another n_subjects draws another roster: the files of subjects no longer on it go first,
    # or ingest would take them into the dataset beside the configured cohort.
    roster = set(roster_of(spec).subjects)
    for folder, owned in subject_name_patterns(spec.tier).items():
        remove_departed(folders[folder], roster, owned)
    written = [_write_ground_truth(ctx, files["truth"])]
    pheno = phenotype_table(spec, ctx.latents, seed)
    if spec.tier == "roi":
        write_tsv(files["phenotype"], pheno)
        written.append(files["phenotype"])
        written += _write_roi_runs(ctx, out_dir, files["description"], workers)
    else:
        written += _write_bids_skeleton(ctx, files, pheno)
    log.info("synth %s: wrote %d files under %s", name, len(written), root)
    return written


@threadpool_limits.wrap(**_SINGLE_BLAS)
def write_subject(
    name: str,
    consortium: dict[str, Any],
    subject: str,
    *,
    out_dir: str | Path,
    seed: int,
    shared_structure: float,
    atlas: Atlas,
    output_space: str = DEFAULT_SPACE,
) -> list[Path]:
    """Write one voxel-tier subject's raw BIDS and fMRIPrep-like derivative files.

    Does not need the cohort job's files: the subject's values come from the seed.

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings (tier ``voxel``).
    subject : str
        Subject label on the consortium's roster, with or without ``sub-``.
    out_dir : path-like
        ``synth.out_dir``.
    seed : int
        Master seed.
    shared_structure : float
        ``synth.shared_structure``.
    atlas : Atlas
        The workflow's atlas.
    output_space : str, optional
        fMRIPrep's output space the derivative names carry; the data stay on the
        MNI152NLin2009cAsym grid whatever it is (a warning says so).

    Returns
    -------
    list of pathlib.Path
        Every file written (:func:`lcm.synth.plan.subject_outputs`).

    Raises
    ------
    InputDataError
        When the consortium is not at tier ``voxel`` or ``subject`` is not on its roster.
    lcm.exceptions.OutputOwnershipError
        When the consortium's folder holds files and no ``lcm synth`` marker.
    """
    spec = resolve(name, consortium)
    index = check_subject(spec, consortium, subject)
    label = subject.removeprefix("sub-")
    if output_space != DEFAULT_SPACE:  # another template, or a resolution of it
        log.warning(
            "synth %s: data are on the %s grid but named space-%s as requested",
            name,
            DEFAULT_SPACE,
            output_space,
        )
    claim_tree(consortium_root(out_dir, name), "lcm synth", vouch=_vouched)
    ctx = prepare(spec, seed, atlas, shared_structure)
    draw = simulate_subject(ctx, index)
    run = simulate_voxels(ctx, index, draw)
    files = subject_files(spec, out_dir, label, output_space)
    tr = spec.tr
    write_nifti(files["t1w"], run.t1w, run.affine, dtype=np.int16)
    write_bold_stream(files["preproc_bold"], run.bold_vox, run.brain, run.affine, tr)
    # The stand-in "preprocessing" is the identity: the run was simulated on the template grid,
    # so the raw run is the same file (copied rather than compressed twice).
    with atomic_path(files["raw_bold"]) as tmp:
        shutil.copyfile(files["preproc_bold"], tmp)
    write_nifti(files["mask"], (run.labels > 0).astype(np.uint8), run.affine, dtype=np.uint8)
    raw_rel = files["raw_bold"].relative_to(consortium_folders(out_dir, name)["rawdata"])
    write_json(
        files["preproc_json"],
        {
            "RepetitionTime": tr,
            "SkullStripped": False,
            "TaskName": TASK,
            "Sources": [f"bids:raw:{raw_rel.as_posix()}"],
        },
    )
    write_tsv(files["confounds"], run.confounds)
    write_json(files["confounds_json"], confounds_sidecar(run.singular_values, N_ACOMPCOR))
    log.info("synth %s: subject %s written (%d volumes)", name, label, spec.n_volumes)
    return list(files.values())


def subject_truth(
    name: str,
    consortium: dict[str, Any],
    subject: str,
    *,
    seed: int,
    shared_structure: float,
    atlas: Atlas,
) -> np.ndarray:
    """Intended (ground-truth) correlation matrix of one subject, shape (n_rois, n_rois).

    Parameters
    ----------
    name : str
        Consortium name (``synth.consortia`` key).
    consortium : dict
        Its settings.
    subject : str
        Subject label on the consortium's roster, with or without ``sub-``.
    seed : int
        Master seed.
    shared_structure : float
        ``synth.shared_structure``.
    atlas : Atlas
        The workflow's atlas.

    Raises
    ------
    ValueError
        When ``subject`` is not on the consortium's roster.
    """
    spec = resolve(name, consortium)
    index = roster_of(spec).subjects.index(subject.removeprefix("sub-"))
    ctx = prepare(spec, seed, atlas, shared_structure)
    return simulate_subject(ctx, index).corr


def remove_departed(top: Path, roster: set[str], owned: dict[str, tuple[str, ...]]) -> list[str]:
    """Remove what ``lcm synth`` wrote below ``top`` for subjects that are not on ``roster``.

    Parameters
    ----------
    top : pathlib.Path
        A folder of ``sub-<label>`` folders (``timeseries/``, ``rawdata/``,
        ``derivatives/fmriprep/`` of a consortium LCM owns).
    roster : set of str
        The labels of the cohort as now configured: their folders are left alone.
    owned : dict
        Datatype folder -> patterns of the names ``lcm synth`` writes there, after
        ``sub-<label>_`` (:func:`lcm.synth.plan.subject_name_patterns`).

    Returns
    -------
    list of str
        The labels whose files were removed. Only those files (and interrupted writes of them)
        are deleted; a folder that holds anything else is kept, with a warning naming it.
    """
    departed = []
    for folder in sorted(top.glob("sub-*")) if top.is_dir() else ():
        label = folder.name.removeprefix("sub-")
        if label in roster or folder.is_symlink() or not folder.is_dir():
            continue
        for datatype, patterns in owned.items():
            sub = folder / datatype
            if sub.is_dir() and not sub.is_symlink():
                mine = [p.name for p in sub.iterdir() if _written_for(p.name, label, patterns)]
                remove_owned(sub, mine)
        remove_owned(folder, [])
        departed.append(label)
    if departed:
        log.info(
            "synth: removed the files of %d subject(s) no longer in the cohort under %s",
            len(departed),
            top,
        )
    return departed


def _written_for(name: str, label: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of subject ``label``'s files (or an interrupted write of one)."""
    if name.startswith(".") and f".{TMP_TAG}-" in name:
        name = name[1:].split(f".{TMP_TAG}-", 1)[0]
    prefix = f"sub-{label}_"
    rest = name.removeprefix(prefix)
    return name.startswith(prefix) and any(fnmatch.fnmatchcase(rest, p) for p in patterns)


def _write_roi_runs(
    ctx: Context, out_dir: str | Path, description: Path, workers: int = 1
) -> list[Path]:
    spec = ctx.spec
    # lcm.io.provenance names the file (BIDS's dataset_description.json) in the planned folder.
    written = [
        write_dataset_description(
            description.parent,
            f"{spec.name}: synthetic ROI time series",
            extra={"SynthPreset": spec.preset.name, "Seed": ctx.seed},
        )
    ]
    runs = runs_of(spec)
    if workers <= 1 or len(runs) < 2 * workers:
        bar = tqdm(
            range(len(runs)), desc=f"synth {spec.name}", unit="run", disable=not sys.stderr.isatty()
        )
        for index in bar:
            written += _write_roi_run(ctx, out_dir, runs[index], index)
        return written
    # Every run has its own random stream, so splitting them over processes changes no byte.
    # Forked workers inherit the context (population model, latents) instead of rebuilding it.
    global _FORK_CTX
    _FORK_CTX = (ctx, out_dir, runs)
    chunks = [list(range(w, len(runs), workers)) for w in range(workers)]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        for paths in pool.map(_write_roi_chunk, chunks):
            written += paths
    finally:
        pool.shutdown()
        _FORK_CTX = None
    return written


_FORK_CTX: tuple[Context, str | Path, list[dict[str, Any]]] | None = None


@threadpool_limits.wrap(**_SINGLE_BLAS)
def _write_roi_chunk(indices: list[int]) -> list[Path]:
    assert _FORK_CTX is not None  # set by the parent before forking
    ctx, out_dir, runs = _FORK_CTX
    return [p for i in indices for p in _write_roi_run(ctx, out_dir, runs[i], i)]


def _write_roi_run(
    ctx: Context, out_dir: str | Path, run: dict[str, Any], index: int
) -> list[Path]:
    spec, atlas = ctx.spec, ctx.atlas
    ts, draw = roi_timeseries(ctx, index)
    files = roi_run_files(out_dir, spec.name, run, atlas.name)
    path, sidecar = files["timeseries"], files["sidecar"]
    write_matrix_tsv(path, ts, atlas.labels["name"].tolist())
    write_json(
        sidecar,
        {
            "RepetitionTime": spec.tr,
            "MeanFramewiseDisplacement": round(float(draw.fd[1:].mean()), 6),
            "Atlas": atlas.name,
            "Sources": [],
            "GeneratedBy": {"Name": "lcm synth", "Version": lcm.__version__},
        },
    )
    return [path, sidecar]


def write_matrix_tsv(path: Path, values: np.ndarray, columns: list[str]) -> None:
    """Write a float matrix as TSV with a header row, ``DECIMALS`` fixed decimals, atomically.

    numpy's formatter is several times faster than pandas' for the many ROI time series.

    Parameters
    ----------
    path : pathlib.Path
        Destination.
    values : numpy.ndarray, shape (n_rows, n_columns)
        The matrix (a run's ROI time series: one row per volume).
    columns : list of str
        Header names, one per column (the atlas's region names).
    """
    buffer = io.StringIO()
    np.savetxt(
        buffer, values, fmt=f"%.{DECIMALS}f", delimiter="\t", comments="", header="\t".join(columns)
    )
    write_text(path, buffer.getvalue())


def _write_bids_skeleton(ctx: Context, files: dict[str, Path], pheno: pd.DataFrame) -> list[Path]:
    """Write the voxel tier's cohort files; ``files`` is :func:`lcm.synth.plan.cohort_files`."""
    spec = ctx.spec
    jsons = {
        files["description"]: {
            "Name": f"{spec.name}: synthetic BIDS dataset (LCM)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["LCM synthetic data generator", "LCM contributors"],
            "GeneratedBy": [
                {"Name": "lcm synth", "Version": lcm.__version__, "CodeURL": lcm.CODE_URL}
            ],
        },
        files["participants_json"]: participants_sidecar(spec, list(pheno.columns)),
        files["sidecar"]: {"RepetitionTime": spec.tr, "TaskName": TASK},
        files["derivatives"]: {
            "Name": f"{spec.name}: fMRIPrep derivatives (synthetic stand-in)",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": "fMRIPrep",
                    "Version": FMRIPREP_VERSION,
                    "Description": "Stand-in: these files were simulated by lcm synth directly "
                    "on the MNI152NLin2009cAsym grid; fMRIPrep did not run.",
                },
                {"Name": "lcm synth", "Version": lcm.__version__, "CodeURL": lcm.CODE_URL},
            ],
            "SourceDatasets": [{"URL": "bids:raw:"}],
        },
    }
    for path, content in jsons.items():
        write_json(path, content)
    write_tsv(files["participants"], pheno)
    # A fixed date keeps the files identical from run to run (no timestamps).
    changes = f"1.0.0 2000-01-01\n  - Generated by lcm synth {lcm.__version__} (seed {ctx.seed}).\n"
    truth = Path(os.path.relpath(files["truth"], files["readme"].parent)).as_posix()
    texts = {files["readme"]: _readme(ctx, truth), files["changes"]: changes}
    for path, text in texts.items():
        write_text(path, text)
    return [*jsons, files["participants"], *texts]


def _readme(ctx: Context, truth: str) -> str:
    spec = ctx.spec
    return (
        f"# {spec.name}: a synthetic BIDS dataset\n\n"
        f"Simulated by `lcm synth` (LCM {lcm.__version__}) from seed {ctx.seed}, imitating the "
        f"{spec.preset.name.upper()} consortium: {spec.n_subjects} subjects, one resting-state "
        f"run each ({spec.n_volumes} volumes, TR {spec.tr} s) and a T1-weighted image, on the "
        f"MNI152NLin2009cAsym {spec.resolution_mm:g} mm grid. No real person was scanned.\n\n"
        f"The generative model and the ground truth (`{truth}`) are described in "
        "docs/synth.md of the LCM repository.\n"
    )


def _vouched(root: Path) -> bool:
    """Whether the unmarked ``root`` is a synthetic consortium's tree all the same: one written
    before trees were marked (:func:`_synth_tree`), or one whose only files are LCM's own
    temporaries, the marker another job of this consortium is writing at this moment.

    The subject jobs of a voxel cohort run side by side and each claims the tree: one saw the
    other's marker half-written (``..lcm-owned.lcmtmp-<host>-<pid>-<random>``) and refused the
    folder as holding files LCM did not write, failing the job."""
    files = [name for _, _, names in os.walk(root) for name in names]
    if files and all(temporary_owner(name) is not None for name in files):
        return True
    return _synth_tree(root)


def _synth_tree(root: Path) -> bool:
    """Whether ``root`` holds the ground truth of a synthetic consortium of its name (trees
    written before they were marked)."""
    try:
        truth = read_ground_truth(ground_truth_path(root.parent, root.name))
    except InputDataError:
        return False
    return truth.get("consortium") == root.name and "network_assignment" in truth


def _write_ground_truth(ctx: Context, path: Path) -> Path:
    spec, model = ctx.spec, ctx.model
    names = ctx.atlas.labels["name"].tolist()
    lat = ctx.latents
    truth = {
        "consortium": spec.name,
        "preset": spec.preset.name,
        "tier": spec.tier,
        "seed": ctx.seed,
        "shared_structure": model.shared_structure,
        "atlas": ctx.atlas.name,
        "networks": list(NETWORKS),
        "network_assignment": ctx.network_method,
        "roi_networks": {n: NETWORKS[k] for n, k in zip(names, model.networks, strict=True)},
        "variables_present": list(spec.preset.variables),
        "diagnosis": spec.preset.diagnosis,
        "effects": model.describe(),
        "baseline": {
            "network_correlation": np.round(model.network_corr, 6).tolist(),
            "loading_mean": round(float(model.loadings.mean()), 6),
        },
        "generation": {
            "repetition_time": spec.tr,
            "n_volumes": spec.n_volumes,
            "n_subjects": spec.n_subjects,
            "resolution_mm": spec.resolution_mm if spec.tier == "voxel" else None,
            "temporal_model": {
                "hrf": "SPM canonical double gamma",
                "hrf_length_s": HRF_LENGTH_S,
                "haemodynamic_weight": SLOW_WEIGHT,
                "expected_lag1_autocorrelation": round(lag1_autocorrelation(spec.tr), 6),
            },
            "motion": {"fd_median_mm": spec.preset.fd_median, "fd_outlier_mm": 0.5},
            "score_definitions": "age (y-50)/20, bmi (x-27)/5, working_memory (x-100)/15, "
            "education level-3.5, sex M=+1 F=-1, fluid_intelligence latent z, diagnosis: the "
            "dose of the subject's class (diagnosis_classes)",
        },
        "sites": {str(k): int(v) for k, v in lat["site"].value_counts().sort_index().items()},
        "n_patients": int(lat["diagnosis"].sum()),
        "diagnosis_classes": [
            {
                "level": level,
                "probability": prob,
                "dose": dose,
                "n_subjects": int((lat["dx_class"] == k).sum()),
            }
            for k, (level, prob, dose) in enumerate(spec.preset.classes)
        ],
        "oracle": oracle_metrics(ctx),
    }
    write_json(path, truth)
    return path
