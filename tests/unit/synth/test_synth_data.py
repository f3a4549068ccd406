"""lcm synth: phenotype codings, confounds format, realistic statistics and recoverable effects."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from nilearn.signal import clean
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lcm.atlas import load_atlas
from lcm.catalogue import load_catalogue
from lcm.store.layout import fisher_z, matrix_to_vec
from lcm.synth import planned_subjects, subject_outputs, subject_truth, write_cohort, write_subject
from lcm.synth.connectivity import DIAGNOSES, ENV_VARIABLES, build_effect_model
from lcm.synth.latents import draw_latents
from lcm.synth.networks import assign_networks, homotopic_partners
from lcm.synth.presets import resolve
from lcm.synth.subject import prepare, roi_timeseries

CATALOGUE = ROOT / "config" / "variables.yaml"
SEED = 5


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


def _apply(raw: pd.Series, coding, numeric: bool) -> pd.Series:
    """The catalogue transform, re-implemented here: map, scale, range midpoint."""
    values = raw.dropna().astype(str)
    if not numeric and not coding.map:
        return values
    if coding.map:
        return values.map(lambda v: coding.map[v])
    if coding.range_midpoint:
        return values.map(lambda v: np.mean([float(x) for x in v.split("-")]))
    numbers = values.astype(float)
    return numbers * coding.scale if coding.scale else numbers


@pytest.mark.parametrize(
    ("name", "cons", "table"),
    [
        ("hcplike", {"preset": "hcp", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        ("ukblike", {"preset": "ukb", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        ("abidelike", {"preset": "abide", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        ("adnilike", {"preset": "adni", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        ("ppmilike", {"preset": "ppmi", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        ("cobrelike", {"preset": "cobre", "n_subjects": 83, "n_volumes": 20}, "phenotype.tsv"),
        (
            "bidsdemo",
            {"preset": "hcp", "tier": "voxel", "n_subjects": 83},
            "rawdata/participants.tsv",
        ),
    ],
)
def test_phenotype_round_trips_through_catalogue(tmp_path, atlas, name, cons, table):
    write_cohort(name, cons, out_dir=tmp_path, seed=SEED, shared_structure=0.7, atlas=atlas)
    raw = pd.read_csv(tmp_path / name / table, sep="\t", dtype=str, na_values=["n/a"])
    coding = load_catalogue(CATALOGUE).coding(name)
    ids = raw[coding.id_column].str.removeprefix("sub-")
    assert ids.tolist() == planned_subjects(name, cons)
    assert raw[coding.id_column].notna().all()
    latents = draw_latents(resolve(name, cons), SEED).set_index("subject")
    catalogue = load_catalogue(CATALOGUE)
    for var, col in coding.columns.items():
        got = _apply(raw[col.column], col, catalogue.variables[var].is_numeric)
        want = latents.loc[ids[got.index], var]
        missing = raw[col.column].isna().mean()
        kind = catalogue.variables[var].kind
        if kind in ("binary", "categorical"):
            assert missing == 0 if var in DIAGNOSES else 0.0 < missing < 0.3, (var, missing)
            assert set(got) <= set(catalogue.variables[var].levels)
            assert (got.to_numpy() == want.to_numpy()).all(), var
        else:
            assert 0.0 < missing < 0.3, (var, missing)
            tol = 2.5 if col.range_midpoint else 0.05
            np.testing.assert_allclose(got.astype(float), want.astype(float), atol=tol)
            lo, hi = catalogue.variables[var].range
            assert got.astype(float).between(lo, hi).all(), var
    if coding.site_column:
        assert raw[coding.site_column].str.isalnum().all()
        assert raw[coding.site_column].nunique() >= 2


def test_diagnosis_effect_is_learnable_but_not_trivial(atlas):
    spec = resolve("abidelike", {"preset": "abide", "n_subjects": 130, "n_volumes": 150})
    ctx = prepare(spec, SEED, atlas, 0.7)
    features, fc_means, lag1, fd_medians = [], [], [], []
    for i in range(spec.n_subjects):
        ts, draw = roi_timeseries(ctx, i)
        fc = np.corrcoef(ts.T)
        features.append(fisher_z(matrix_to_vec(fc)))
        fc_means.append(matrix_to_vec(fc).mean())
        z = ts - ts.mean(axis=0)
        lag1.append(np.mean((z[1:] * z[:-1]).sum(axis=0) / (z * z).sum(axis=0)))
        fd_medians.append(np.median(draw.fd[1:]))
    y = ctx.latents["diagnosis"].to_numpy()
    assert 0.3 < y.mean() < 0.6
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    auc = cross_val_score(clf, np.array(features), y, cv=cv, scoring="roc_auc").mean()
    assert 0.6 < auc < 0.95, auc
    # Calibration against real resting-state statistics (TR 2 s).
    assert 0.1 < np.mean(fc_means) < 0.35
    assert 0.5 < np.mean(lag1) < 0.9  # issue #3 range at TR 2 s (docs/synth.md)
    assert 0.1 < np.median(fd_medians) < 0.3


@pytest.mark.parametrize("shared", [0.0, 0.7, 1.0])
def test_shared_structure_sets_overlap_with_environmental_patterns(atlas, shared):
    networks, method = assign_networks(atlas)
    assert method == "aal-names" and len(set(networks.tolist())) == 7
    model = build_effect_model(
        networks, homotopic_partners(atlas.labels["name"].tolist()), 1, shared
    )
    env = np.stack([matrix_to_vec(model.patterns[v]) for v in ENV_VARIABLES])
    q, _ = np.linalg.qr(env.T)
    for dx in DIAGNOSES:
        vec = matrix_to_vec(model.patterns[dx])
        assert np.linalg.norm(vec) == pytest.approx(1.0)
        assert np.linalg.norm(q.T @ vec) == pytest.approx(shared, abs=1e-9)
        if shared == 0.0:
            assert np.abs(env @ vec).max() < 1e-12


def _read_tsv_text(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def voxel_subject(tmp_path_factory, atlas):
    out = tmp_path_factory.mktemp("voxel")
    cons = {
        "preset": "abide",
        "tier": "voxel",
        "n_subjects": 2,
        "n_volumes": 200,
        "resolution_mm": 4,
    }
    subject = planned_subjects("vox", cons)[0]
    kw = {"seed": SEED, "shared_structure": 0.7, "atlas": atlas}
    write_subject("vox", cons, subject, out_dir=out, **kw)
    files = {
        Path(p).name.split("_", 1)[1]: Path(p) for p in subject_outputs("vox", cons, out, subject)
    }
    truth = subject_truth("vox", cons, subject, **kw)
    return files, truth


def test_confounds_have_fmriprep_columns_and_na_first_rows(voxel_subject):
    files, _ = voxel_subject
    rows = _read_tsv_text(files["task-rest_run-1_desc-confounds_timeseries.tsv"])
    header, first, second = rows[0], rows[1], rows[2]
    assert len(rows) == 201
    expected = ["framewise_displacement", "std_dvars", "dvars", "cosine_00", "cosine_01"]
    for base in (
        "global_signal",
        "csf",
        "white_matter",
        "trans_x",
        "trans_y",
        "trans_z",
        "rot_x",
        "rot_y",
        "rot_z",
    ):
        expected += [base, f"{base}_derivative1", f"{base}_power2", f"{base}_derivative1_power2"]
    expected += [f"a_comp_cor_{i:02d}" for i in range(6)]
    assert set(expected) <= set(header)
    col = dict(zip(header, first, strict=True))
    for name in header:
        na_first = name.endswith(("_derivative1", "_derivative1_power2")) or name in (
            "framewise_displacement",
            "std_dvars",
            "dvars",
        )
        assert (col[name] == "n/a") == na_first, name
    assert "n/a" not in second
    df = pd.read_csv(
        files["task-rest_run-1_desc-confounds_timeseries.tsv"], sep="\t", na_values=["n/a"]
    )
    fd = df["framewise_displacement"]
    outliers = [c for c in df.columns if c.startswith("motion_outlier_")]
    assert len(outliers) == int((fd > 0.5).sum())
    assert all(df[c].sum() == 1 for c in outliers)
    np.testing.assert_allclose(df["trans_x_power2"], df["trans_x"] ** 2, rtol=1e-6)


def test_bold_header_and_recovered_connectivity(voxel_subject, atlas):
    files, truth = voxel_subject
    img = nib.load(files["task-rest_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"])
    assert img.shape == (49, 58, 49, 200)
    assert img.header.get_zooms()[3] == pytest.approx(2.0)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    mask = np.asarray(
        nib.load(files["task-rest_run-1_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"]).dataobj
    )
    from lcm.synth.voxel import grid_labels

    labels, _ = grid_labels(atlas, 4)
    assert ((labels > 0) == (mask > 0)).all()
    data = np.asarray(img.dataobj, dtype=np.float64)[mask > 0]  # (voxels, T)
    region = labels[mask > 0]
    counts = np.bincount(region, minlength=atlas.n_rois + 1)[1:]
    sums = np.stack(
        [
            np.bincount(region, weights=data[:, t], minlength=atlas.n_rois + 1)[1:]
            for t in range(data.shape[1])
        ]
    )
    parcels = sums / counts  # (T, R)
    conf = pd.read_csv(
        files["task-rest_run-1_desc-confounds_timeseries.tsv"], sep="\t", na_values=["n/a"]
    ).fillna(0.0)
    motion = [c for c in conf.columns if c.startswith(("trans_", "rot_"))]
    assert len(motion) == 24
    kw = {
        "t_r": 2.0,
        "detrend": True,
        "high_pass": 0.01,
        "low_pass": 0.1,
        "standardize": "zscore_sample",
    }
    cleaned = clean(parcels, confounds=conf[motion].to_numpy(), **kw)
    uncleaned = clean(parcels, **kw)
    true_vec = matrix_to_vec(truth)
    r_clean = np.corrcoef(matrix_to_vec(np.corrcoef(cleaned.T)), true_vec)[0, 1]
    r_raw = np.corrcoef(matrix_to_vec(np.corrcoef(uncleaned.T)), true_vec)[0, 1]
    assert r_clean > 0.5, r_clean
    assert r_clean > r_raw + 0.1, (r_clean, r_raw)  # confound regression matters
