"""Builders of tiny BIDS, fMRIPrep and ROI time-series datasets for the bids, preprocess and
connectome tests, :func:`connectome_timeseries`, which runs ``lcm connectome timeseries`` on
them, and :func:`read_qc_table`, which reads the QC tables the connectome stage writes.

Grids are a crop of the fMRIPrep MNI152NLin2009cAsym 4 mm grid with distinct axis sizes, so
an axis mix-up changes shapes; run lengths are 40-60 volumes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from lcm.atlas import load_atlas, mni_grid, resample_to
from lcm.bids.ingest import ingest
from lcm.commands import connectome as connectome_cmd
from lcm.connectome.qc import QC_COLUMNS
from lcm.io.derivatives import included_mask

SPACE = "MNI152NLin2009cAsym"
CROP_START = (12, 14, 12)  # voxel offset of the crop inside the 4 mm grid
CROP_SHAPE = (23, 27, 21)
ROI_VOLUMES = 61  # length of the ROI time series of :func:`roi_series`
MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
# Denoising of :func:`timeseries_qc`. min_dof off: runs of ROI_VOLUMES hold fewer degrees of
# freedom in the band than the default floor, which is tested apart (test_connectome_dof.py).
ROI_DENOISE = {
    "high_pass": 0.01,
    "low_pass": 0.1,
    "detrend": True,
    "min_volumes": 40,
    "min_dof": None,
}


def crop_affine() -> np.ndarray:
    """Affine of the cropped 4 mm MNI grid."""
    _, affine = mni_grid(4)
    affine = affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array(CROP_START, dtype=float)
    return affine


def save_nifti(path: Path, data: np.ndarray, t_r: float | None = None) -> Path:
    """Save ``data`` on the crop grid; 4D images get ``pixdim[4] = t_r`` in seconds."""
    img = nib.Nifti1Image(data, crop_affine())
    img.header.set_xyzt_units("mm", "sec")
    if data.ndim == 4 and t_r is not None:
        img.header.set_zooms((4.0, 4.0, 4.0, float(t_r)))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return path


_LABELS_CACHE: dict[str, np.ndarray] = {}


def crop_labels() -> np.ndarray:
    """AAL-116 labels on the crop grid (cached: resampling takes a moment)."""
    if "aal116" not in _LABELS_CACHE:
        ref = nib.Nifti1Image(np.zeros(CROP_SHAPE, dtype=np.uint8), crop_affine())
        labels = resample_to(load_atlas("aal116"), ref)
        _LABELS_CACHE["aal116"] = np.asarray(labels.dataobj).astype(np.int64)
    return _LABELS_CACHE["aal116"]


def bold_data(n_vol: int, seed: int = 0) -> np.ndarray:
    """4D float32 BOLD with network-structured parcel signals plus voxel noise."""
    rng = np.random.default_rng(seed)
    labels = crop_labels()
    ids = np.unique(labels[labels > 0])
    factors = rng.standard_normal((n_vol, 3))
    # smooth the factors a little, like a haemodynamic response
    factors = np.apply_along_axis(lambda f: np.convolve(f, [0.25, 0.5, 0.25], "same"), 0, factors)
    loadings = rng.standard_normal((ids.size, 3))
    parcel = factors @ loadings.T  # (T, R)
    data = 100.0 + rng.standard_normal((*CROP_SHAPE, n_vol)) * 0.5
    for j, label in enumerate(ids):
        data[labels == label] += parcel[:, j]
    return data.astype(np.float32)


def confounds_table(n_vol: int, seed: int = 0, fd_high: tuple[int, ...] = ()) -> pd.DataFrame:
    """fMRIPrep-like confounds: motion, csf/wm/gs with expansions, FD, DVARS, aCompCor, cosine.

    ``fd_high`` lists volumes whose framewise displacement is set to 0.9 mm.
    """
    rng = np.random.default_rng(seed + 100)
    cols: dict[str, np.ndarray] = {}
    for base in (*MOTION, "global_signal", "csf", "white_matter"):
        x = np.cumsum(rng.standard_normal(n_vol)) * 0.01
        d = np.r_[np.nan, np.diff(x)]
        cols[base] = x
        cols[f"{base}_derivative1"] = d
        cols[f"{base}_power2"] = x**2
        cols[f"{base}_derivative1_power2"] = d**2
    fd = np.r_[np.nan, np.abs(rng.standard_normal(n_vol - 1)) * 0.1]
    for v in fd_high:
        fd[v] = 0.9
    cols["framewise_displacement"] = fd
    cols["std_dvars"] = np.r_[np.nan, 1 + np.abs(rng.standard_normal(n_vol - 1)) * 0.1]
    for i in range(6):
        cols[f"a_comp_cor_{i:02d}"] = rng.standard_normal(n_vol)
    for i in range(3):
        cols[f"cosine{i:02d}"] = np.cos(np.pi * (i + 1) * (np.arange(n_vol) + 0.5) / n_vol)
    return pd.DataFrame(cols)


def write_confounds(path: Path, table: pd.DataFrame) -> Path:
    """Write confounds the way fMRIPrep does (tab-separated, ``n/a``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path


def write_json(path: Path, obj: dict) -> Path:
    """Write a small JSON file (fixtures only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def make_raw_bids(
    root: Path,
    subjects: tuple[str, ...] = ("01", "02"),
    n_vol: int = 44,
    t_r: float = 2.0,
    sessions: tuple[str, ...] = (),
    runs: tuple[str, ...] = ("1",),
) -> Path:
    """Raw BIDS skeleton with a top-level (inherited) ``task-rest_bold.json``."""
    write_json(root / "dataset_description.json", {"Name": "tiny", "BIDSVersion": "1.10.0"})
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]}).to_csv(
        root / "participants.tsv", sep="\t", index=False
    )
    write_json(root / "task-rest_bold.json", {"RepetitionTime": t_r, "TaskName": "rest"})
    data = np.zeros((*CROP_SHAPE[:2], 3, n_vol), dtype=np.int16)  # raw content is never read
    for sub in subjects:
        for ses in sessions or ("",):
            folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "func"
            for run in runs:
                ses_part = f"_ses-{ses}" if ses else ""
                name = f"sub-{sub}{ses_part}_task-rest_run-{run}_bold.nii.gz"
                save_nifti(folder / name, data, t_r=t_r)
    return root


def make_fmriprep_run(
    deriv: Path,
    run_key: str,
    n_vol: int = 48,
    t_r: float = 2.0,
    seed: int = 0,
    res: str | None = None,
    fd_high: tuple[int, ...] = (),
) -> dict[str, Path]:
    """fMRIPrep outputs of one run: preproc BOLD + sidecar, brain mask, confounds."""
    ents = dict(part.split("-", 1) for part in run_key.split("_"))
    func = deriv / f"sub-{ents['sub']}" / (f"ses-{ents['ses']}" if "ses" in ents else "") / "func"
    stem = f"{run_key}_space-{SPACE}" + (f"_res-{res}" if res else "")
    bold = save_nifti(func / f"{stem}_desc-preproc_bold.nii.gz", bold_data(n_vol, seed), t_r)
    mask = save_nifti(func / f"{stem}_desc-brain_mask.nii.gz", (crop_labels() > 0).astype(np.uint8))
    side = write_json(func / f"{stem}_desc-preproc_bold.json", {"RepetitionTime": t_r})
    conf = write_confounds(
        func / f"{run_key}_desc-confounds_timeseries.tsv", confounds_table(n_vol, seed, fd_high)
    )
    write_json(
        deriv / "dataset_description.json",
        {
            "Name": "fMRIPrep",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "25.2.7"}],
        },
    )
    return {"bold": bold, "mask": mask, "sidecar": side, "confounds": conf}


def fmriprep_record(path: Path, dataset: str, runs: list[tuple[str, dict[str, Path]]]) -> Path:
    """A record as ``lcm fmriprep`` writes it, for runs built by :func:`make_fmriprep_run`."""
    entries = []
    for run_key, files in runs:
        ents = dict(part.split("-", 1) for part in run_key.split("_"))
        t_r = json.loads(files["sidecar"].read_text())["RepetitionTime"]
        entries.append(
            {
                "run_key": run_key,
                "sub": ents["sub"],
                "ses": ents.get("ses", ""),
                "task": ents["task"],
                "run": ents.get("run", ""),
                "t_r": t_r,
                **{k: str(v) for k, v in files.items()},
            }
        )
    return write_json(
        path,
        {
            "dataset": dataset,
            "subject": entries[0]["sub"],
            "runner": "existing",
            "command": None,
            "image": "nipreps/fmriprep:25.2.7",
            "output_space": SPACE,
            "runs": entries,
        },
    )


def cli(module, argv: list[str]) -> int:
    """Parse ``argv`` with one verb module's parser and run it (what ``lcm`` does)."""
    parser = argparse.ArgumentParser(prog="lcm")
    module.register(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# QC columns read as text: identifiers ("01" stays "01"), reasons, paths and lists.
QC_TEXT = (
    "dataset",
    "subject",
    "session",
    "task",
    "run",
    "run_key",
    "reason",
    "reason_code",
    "timeseries",
    "relmat",
    "empty_rois",
    "strategy",
    "standardize",
    "window_note",
    "relmats",
    "window_relmats",
)


def read_qc_table(path: str | Path) -> pd.DataFrame:
    """A QC TSV written by the connectome stage, checked to hold every ``QC_COLUMNS``: text
    columns as strings (``n/a`` -> ""), numbers as floats (``n/a`` -> NaN), ``included`` bool."""
    df = pd.read_csv(
        path, sep="\t", dtype={c: str for c in QC_TEXT}, na_values=["n/a"], keep_default_na=False
    )
    missing = [c for c in QC_COLUMNS if c not in df.columns]
    assert not missing, f"{path} lacks QC columns {missing}"
    for col in QC_TEXT:
        df[col] = df[col].fillna("")
    df["included"] = included_mask(df["included"], str(path))
    return df


def imported_qc(tmp_path: Path, manifest: Path, dataset: str = "pcp") -> pd.DataFrame:
    """``lcm connectome import`` of a manifest (atlas aal116): its QC table, by subject."""
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_import(manifest, out_dir=tmp_path / "conn", qc_table=qc_path, dataset=dataset)
    assert rc == 0
    return read_qc_table(qc_path).set_index("subject")


def roi_series(n_rois: int = 116, seed: int = 0, n_vol: int = ROI_VOLUMES) -> np.ndarray:
    """ROI time series (volumes x ROIs) around 50 sharing one signal; an AAL116 run by default."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n_vol, 1))
    return 50 + shared * rng.uniform(0.5, 1.5, n_rois) + rng.standard_normal((n_vol, n_rois))


def write_roi_run(
    root: Path,
    sub: str,
    table: pd.DataFrame,
    t_r: float = 2.0,
    meta: dict | None = None,
    space: str | None = None,
) -> Path:
    """Write one subject's ROI time series (label ``seg-aal116``) as a BIDS derivative holds it.

    Parameters
    ----------
    root : Path
        The dataset's folder; its ``dataset_description.json`` (name ``ts``) is written with the
        first run.
    sub : str
        Subject label, without ``sub-``.
    table : pandas.DataFrame
        Volumes x columns (ROIs, and confounds such as ``framewise_displacement``), written as
        a TSV with ``n/a`` for NaN.
    t_r : float
        ``RepetitionTime`` of the JSON sidecar, in seconds.
    meta : dict, optional
        More sidecar fields.
    space : str, optional
        A ``space-`` entity for the file name.

    Returns
    -------
    Path
        ``sub-<sub>/func/sub-<sub>_task-rest[_space-<space>]_seg-aal116_stat-mean_timeseries.tsv``.
    """
    if not (root / "dataset_description.json").exists():
        write_json(root / "dataset_description.json", {"Name": "ts", "BIDSVersion": "1.10.0"})
    entities = f"sub-{sub}_task-rest" + (f"_space-{space}" if space else "")
    path = root / f"sub-{sub}" / "func" / f"{entities}_seg-aal116_stat-mean_timeseries.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    write_json(path.with_suffix(".json"), {"RepetitionTime": t_r, **(meta or {})})
    return path


def connectome_timeseries(
    manifest: str | Path,
    *,
    out_dir: str | Path,
    qc_table: str | Path,
    dataset: str = "ts",
    atlas: str = "aal116",
    labels: str | Path | None = None,
    denoise: dict | None = None,
    connectome: dict | None = None,
    extra: Sequence[str] = (),
) -> int:
    """Run ``lcm connectome timeseries`` on an ingested manifest of ROI time series.

    Parameters
    ----------
    manifest : str or Path
        The manifest ``lcm ingest`` wrote (entry ``roi_timeseries``).
    out_dir, qc_table : str or Path
        ``--out-dir`` and ``--qc-table``.
    dataset : str
        ``--dataset``.
    atlas : str
        ``--atlas``.
    labels : str or Path, optional
        ``--atlas-labels``: the table of an atlas known by its labels only.
    denoise, connectome : dict, optional
        The ``denoise`` / ``connectome`` settings, passed as JSON; left out when None (the
        defaults).
    extra : sequence of str
        More arguments, appended as given.

    Returns
    -------
    int
        The verb's exit status; its errors (``ConfigError``, ...) propagate.
    """
    argv = _connectome_argv("timeseries", manifest, dataset, atlas, labels)
    if denoise is not None:
        argv += ["--denoise", json.dumps(denoise)]
    if connectome is not None:
        argv += ["--connectome", json.dumps(connectome)]
    argv += ["--out-dir", str(out_dir), "--qc-table", str(qc_table), *extra]
    return cli(connectome_cmd, argv)


def connectome_import(
    manifest: str | Path,
    *,
    out_dir: str | Path,
    qc_table: str | Path,
    dataset: str = "pcp",
    atlas: str = "aal116",
    labels: str | Path | None = None,
) -> int:
    """Run ``lcm connectome import`` on an ingested manifest of connectivity matrices.

    Parameters
    ----------
    manifest : str or Path
        The manifest ``lcm ingest`` wrote (entry ``connectome``).
    out_dir, qc_table : str or Path
        ``--out-dir`` and ``--qc-table``.
    dataset : str
        ``--dataset``.
    atlas : str
        ``--atlas``.
    labels : str or Path, optional
        ``--atlas-labels``: the table of an atlas known by its labels only.

    Returns
    -------
    int
        The verb's exit status; its errors propagate.
    """
    argv = _connectome_argv("import", manifest, dataset, atlas, labels)
    return cli(connectome_cmd, [*argv, "--out-dir", str(out_dir), "--qc-table", str(qc_table)])


def _connectome_argv(
    verb: str, manifest: str | Path, dataset: str, atlas: str, labels: str | Path | None
) -> list[str]:
    """The arguments ``lcm connectome <verb>`` of a manifest shares: dataset, manifest, atlas."""
    labels_arg = ["--atlas-labels", str(labels)] if labels is not None else []
    return [
        "connectome",
        verb,
        "--dataset",
        dataset,
        "--manifest",
        str(manifest),
        "--atlas",
        atlas,
        *labels_arg,
    ]


def timeseries_qc(tmp_path: Path, source: Path, **ingest_kw: Any) -> pd.DataFrame:
    """Ingest a folder of ROI time series as dataset ``files`` and run ``lcm connectome
    timeseries`` on it (atlas aal116, :data:`ROI_DENOISE`), as :func:`imported_qc` does for
    matrices.

    Parameters
    ----------
    tmp_path : Path
        Where the manifest (``ingest/manifest.parquet``), ``conn/`` and ``qc.tsv`` go.
    source : Path
        The folder of series files.
    **ingest_kw
        Passed to :func:`lcm.bids.ingest.ingest` (``repetition_time``, ``atlas``, ``seg``);
        ``seg`` is passed on as ``--atlas-seg`` too.

    Returns
    -------
    pandas.DataFrame
        The QC table (:func:`read_qc_table`), indexed by subject.
    """
    manifest = tmp_path / "ingest" / "manifest.parquet"
    ingest("files", "roi_timeseries", source, manifest, **ingest_kw)
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="files",
        denoise=ROI_DENOISE,
        extra=["--atlas-seg", ingest_kw["seg"]] if ingest_kw.get("seg") else [],
    )
    assert rc == 0
    return read_qc_table(qc_path).set_index("subject")


def roi_fc(n: int = 116, seed: int = 0) -> np.ndarray:
    """A connectome (Pearson correlation) of :func:`roi_series`."""
    return np.corrcoef(roi_series(n, seed).T)


def templateflow_atlas(root: Path, atlas, name: str = "Toy") -> tuple[Path, Path]:
    """``atlas`` (a loaded :class:`lcm.atlas.Atlas`) written as TemplateFlow lays it out below
    ``root`` (a TEMPLATEFLOW_HOME) in MNI152NLin2009cAsym; returns (image, table)."""
    import nibabel as nib

    folder = root / "tpl-MNI152NLin2009cAsym"
    folder.mkdir(parents=True)
    image = folder / f"tpl-MNI152NLin2009cAsym_atlas-{name}_dseg.nii.gz"
    nib.save(atlas.img, image)
    table = folder / f"tpl-MNI152NLin2009cAsym_atlas-{name}_dseg.tsv"
    atlas.labels[["index", "name"]].to_csv(table, sep="\t", index=False)
    return image, table
