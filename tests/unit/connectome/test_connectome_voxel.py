"""lcm connectome run: one voxel-wise run, checked against nilearn, and its failure paths."""

from __future__ import annotations

import gzip
import json
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from helpers.connectome import (
    CROP_SHAPE,
    SPACE,
    cli,
    confounds_table,
    crop_affine,
    crop_labels,
    fmriprep_record,
    make_fmriprep_run,
    read_qc_table,
    save_nifti,
    templateflow_atlas,
    write_confounds,
)

from lcm import reason_codes
from lcm.atlas import load_atlas, resample_to
from lcm.commands import connectome as connectome_cmd
from lcm.connectome.confounds import confound_columns, strategy_columns
from lcm.connectome.qc import qc_frame
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import ConfigError, ExcludedRunError, InputDataError
from lcm.io.provenance import provenance_path
from lcm.io.relmat import read_relmat

RUN = "sub-01_task-rest_run-1"
N_VOL = 52
T_R = 2.0
DENOISE = {
    "strategy": "24P",
    "fd_threshold": 0.5,
    "high_pass": 0.01,
    "low_pass": 0.1,
    "detrend": True,
    "min_volumes": 40,
    # 52 volumes at TR 2 s hold fewer degrees of freedom in the band than 24P takes; the
    # denoise.min_dof floor that excludes such runs is tested apart.
    "min_dof": None,
}
HIGH_FD = (7, 20, 33)  # scrubbed volumes


@pytest.fixture(scope="module")
def atlas():
    return load_atlas("aal116")


@pytest.fixture
def run_files(tmp_path: Path) -> dict[str, Path]:
    return make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL, t_r=T_R, fd_high=HIGH_FD)


def _process(tmp_path: Path, files: dict[str, Path], atlas, denoise: dict = DENOISE) -> dict:
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, files)])
    return process_voxel_run(
        "tiny",
        record,
        RUN,
        atlas,
        DenoiseSettings.from_dict(denoise),
        tmp_path / "conn",
        tmp_path / "qc" / f"{RUN}.json",
    )


def _outputs(tmp_path: Path) -> tuple[Path, Path]:
    func = tmp_path / "conn" / "sub-01" / "func"
    stem = f"{RUN}_space-{SPACE}_seg-aal116"
    return (
        func / f"{stem}_stat-mean_timeseries.tsv",
        func / f"{stem}_stat-pearsoncorrelation_relmat.tsv",
    )


def _nilearn_reference(
    files: dict[str, Path], atlas, mask_img: nib.Nifti1Image | None = None
) -> tuple[np.ndarray, list[str]]:
    """What NiftiLabelsMasker gives for the run of ``files`` cleaned as :data:`DENOISE` says
    (24P, FD scrubbing): its time series and their ROI names."""
    from nilearn.interfaces.fmriprep import load_confounds
    from nilearn.maskers import NiftiLabelsMasker

    labels_img = nib.Nifti1Image(crop_labels().astype(np.int16), crop_affine())
    masker = NiftiLabelsMasker(
        labels_img=labels_img,
        mask_img=mask_img,
        standardize="zscore_sample",
        detrend=True,
        low_pass=0.1,
        high_pass=0.01,
        t_r=T_R,
    )
    # nilearn's own reading of the confounds: volume 0 (kept) has n/a derivatives, which
    # load_confounds fills from volume 1.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        confounds, _ = load_confounds(
            str(files["bold"]), strategy=("motion",), motion="full", demean=False
        )
    fd = confounds_table(N_VOL, seed=0, fd_high=HIGH_FD)["framewise_displacement"]
    keep = np.flatnonzero(~(fd.to_numpy() > 0.5))
    ref = masker.fit_transform(
        str(files["bold"]),
        confounds=confounds[strategy_columns("24P")].to_numpy(),
        sample_mask=keep,
    )
    assert ref.shape == (N_VOL - len(HIGH_FD), masker.n_elements_)
    name_of = dict(zip(atlas.labels["index"], atlas.labels["name"], strict=True))
    names = [name_of[int(i)] for i in masker.region_ids_.values() if i != 0 and i != "background"]
    return ref, names


@pytest.mark.slow
def test_matches_nilearn_labels_masker(tmp_path: Path, run_files, atlas) -> None:
    """Our parcel means + cleaning agree with NiftiLabelsMasker doing both itself."""
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"], qc["reason"]
    ts_path, _ = _outputs(tmp_path)
    ours = pd.read_csv(ts_path, sep="\t")
    assert list(ours.columns) == atlas.labels["name"].tolist()

    ref, ref_names = _nilearn_reference(run_files, atlas)
    assert len(ref_names) == ref.shape[1] > 20
    # Parcels cut by the crop below the coverage threshold are 0 by policy; the rest agree.
    covered = [n for n in ref_names if n not in qc["empty_rois"]]
    assert len(covered) > 20 and len(qc["empty_rois"]) > 0
    cols = [ref_names.index(n) for n in covered]
    np.testing.assert_allclose(ours[covered].to_numpy(), ref[:, cols], atol=1e-4)
    assert (ours[qc["empty_rois"]].to_numpy() == 0).all()
    assert qc["n_volumes"] == N_VOL and qc["n_volumes_kept"] == N_VOL - len(HIGH_FD)
    assert qc["pct_scrubbed"] == round(100 * len(HIGH_FD) / N_VOL, 2)
    live = [t for t in qc["tsnr"] if t is not None]
    assert qc["median_tsnr"] == round(float(np.median(live)), 3) > 0
    assert 0 < qc["mean_coverage"] < 1  # the crop leaves some parcels partly covered


def _cut_by_mask(files: dict[str, Path], atlas) -> tuple[int, int, np.ndarray]:
    """Brain mask of ``files`` without parcel ``out`` and without a quarter of parcel ``cut``,
    whose left-out voxels get a signal of their own (fMRIPrep's BOLD is not masked: the
    background varies). Returns ``out``, ``cut`` and the mask."""
    labels = crop_labels()
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    out, cut = (int(i) for i in ids[np.argsort(sizes)[-2:]])  # the two largest parcels
    mask = labels > 0
    mask[labels == out] = False
    cut_voxels = np.argwhere(labels == cut)
    gone = tuple(cut_voxels[: len(cut_voxels) // 4].T)
    mask[gone] = False
    data = np.asarray(nib.load(files["bold"]).dataobj)
    rng = np.random.default_rng(5)
    data[gone] += 5.0 * rng.standard_normal(data.shape[-1])[None, :]
    save_nifti(files["bold"], data, t_r=T_R)
    save_nifti(files["mask"], mask.astype(np.uint8))
    return out, cut, mask


def test_brain_mask_sets_coverage_and_parcel_means(tmp_path: Path, run_files, atlas) -> None:
    """fMRIPrep's BOLD varies outside its brain mask: a parcel outside the mask has coverage
    0 and is empty, and the voxels of a parcel outside the mask stay out of its mean, as in
    NiftiLabelsMasker(mask_img=...)."""
    out, cut, mask = _cut_by_mask(run_files, atlas)
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"], qc["reason"]
    rows = atlas.labels["index"].tolist()
    name_of = dict(zip(atlas.labels["index"], atlas.labels["name"], strict=True))
    assert qc["coverage"][rows.index(out)] == 0.0 and name_of[out] in qc["empty_rois"]
    assert qc["coverage"][rows.index(cut)] >= 0.5 and name_of[cut] not in qc["empty_rois"]
    ts_path, _ = _outputs(tmp_path)
    ours = pd.read_csv(ts_path, sep="\t")
    ref, ref_names = _nilearn_reference(
        run_files, atlas, nib.Nifti1Image(mask.astype(np.uint8), crop_affine())
    )
    j = ref_names.index(name_of[cut])
    np.testing.assert_allclose(ours[name_of[cut]].to_numpy(), ref[:, j], atol=1e-4)
    assert qc["coverage_rule"] == "brain_mask"
    side = json.loads(ts_path.with_suffix(".json").read_text())
    assert side["ParcelCoverageRule"].startswith("voxels inside the run's brain mask")


def test_brain_mask_on_another_grid_is_resampled(tmp_path: Path, run_files, atlas) -> None:
    """A mask on a 2 mm grid (each 4 mm BOLD voxel centre on one of its voxels) is resampled
    by nearest neighbour: the same coverage as the mask on the BOLD grid."""
    _, _, mask = _cut_by_mask(run_files, atlas)
    on_grid = _process(tmp_path / "on", run_files, atlas)
    fine = np.repeat(np.repeat(np.repeat(mask, 2, 0), 2, 1), 2, 2).astype(np.uint8)
    affine = crop_affine()
    affine[:3, :3] /= 2.0
    nib.save(nib.Nifti1Image(fine, affine), run_files["mask"])
    resampled = _process(tmp_path / "fine", run_files, atlas)
    assert resampled["coverage"] == on_grid["coverage"]
    assert resampled["empty_rois"] == on_grid["empty_rois"]


def test_small_parcels_are_covered_by_every_bold_voxel(tmp_path: Path, run_files) -> None:
    """power264's 5 mm spheres fall on 1 to 7 voxels of the 4 mm grid: with every voxel in the
    brain mask and varying, each parcel on the grid is fully covered (coverage counts voxels
    on the BOLD grid, never against the sphere's volume in the atlas), and a parcel outside
    the field of view has coverage 0 and is empty."""
    atlas = load_atlas("power264")
    save_nifti(run_files["mask"], np.ones(CROP_SHAPE, np.uint8))
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"], qc["reason"]
    ref = nib.Nifti1Image(np.zeros(CROP_SHAPE, np.uint8), crop_affine())
    on_grid = np.isin(atlas.labels["index"], np.asarray(resample_to(atlas, ref).dataobj))
    assert 50 < on_grid.sum() < len(on_grid)  # the crop leaves some spheres out
    coverage = np.array(qc["coverage"])
    assert (coverage[on_grid] == 1.0).all() and (coverage[~on_grid] == 0.0).all()
    empty = np.isin(atlas.labels["name"], qc["empty_rois"])
    np.testing.assert_array_equal(empty, ~on_grid)


def _run_edited_record(tmp_path: Path, run_files, atlas, edit) -> dict:
    """QC of the run processed from its fMRIPrep record after ``edit(record)``."""
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, run_files)])
    rec = json.loads(record.read_text())
    edit(rec)
    record.write_text(json.dumps(rec))
    denoise = DenoiseSettings.from_dict(DENOISE)
    return process_voxel_run(
        "tiny", record, RUN, atlas, denoise, tmp_path / "conn", tmp_path / "qc.json"
    )


def test_a_tr_from_the_raw_run_is_recorded_in_qc_and_the_sidecar(
    tmp_path: Path, run_files, atlas
) -> None:
    """The fMRIPrep record's t_r_source (raw_sidecar: the preprocessed sidecar gave no TR)
    reaches the run's QC record and table column and its time series' JSON sidecar."""
    note = "raw BIDS sidecar(s) of /raw/sub-01/func/x_bold.nii.gz (BIDS inheritance)"

    def from_raw(rec: dict) -> None:
        rec["runs"][0].update(t_r_source="raw_sidecar", t_r_note=note)

    qc = _run_edited_record(tmp_path, run_files, atlas, from_raw)
    assert qc["included"] and qc["t_r_source"] == "raw_sidecar"
    assert qc_frame([qc])["t_r_source"].tolist() == ["raw_sidecar"]
    meta = json.loads(_outputs(tmp_path)[0].with_suffix(".json").read_text())
    assert meta["RepetitionTimeSource"] == "raw_sidecar" and meta["RepetitionTimeNote"] == note


def test_a_tr_from_a_header_in_milliseconds_passes_the_stage_s_own_check(
    tmp_path: Path, run_files, atlas
) -> None:
    """A derivatives run whose TR ingest read from the BOLD header (t_r_source header): a
    header in milliseconds (pixdim[4] 2000, xyzt_units msec) is that TR in seconds here too,
    as ingest converted it, not a mismatch of 2000 s against 2 s."""
    img = nib.load(run_files["bold"])
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", "msec")
    img.header["pixdim"][4] = T_R * 1000
    nib.save(img, run_files["bold"])

    def from_header(rec: dict) -> None:
        rec["runs"][0].update(t_r_source="header", t_r_note="the NIfTI header (pixdim[4])")

    qc = _run_edited_record(tmp_path, run_files, atlas, from_header)
    assert qc["included"], qc["reason"]
    assert qc["t_r_source"] == "header"
    meta = json.loads(_outputs(tmp_path)[0].with_suffix(".json").read_text())
    assert meta["RepetitionTime"] == T_R and meta["RepetitionTimeSource"] == "header"


def _set_bold_tr(run_files, pixdim: float, unit: str) -> None:
    img = nib.load(run_files["bold"])
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    img.header.set_xyzt_units("mm", unit)
    img.header["pixdim"][4] = pixdim
    nib.save(img, run_files["bold"])


def test_a_header_of_unknown_time_unit_in_milliseconds_is_no_mismatch(
    tmp_path: Path, run_files, atlas
) -> None:
    """pixdim[4] 2000 whose xyzt_units names no time unit, sidecar 2 s: read as milliseconds
    the header agrees; the stage does not exclude the run blaming its sidecar."""
    _set_bold_tr(run_files, T_R * 1000, "unknown")
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"], qc["reason"]
    assert qc["t_r"] == T_R


def test_a_header_of_unknown_time_unit_that_disagrees_says_its_unit_is_unknown(
    tmp_path: Path, run_files, atlas
) -> None:
    _set_bold_tr(run_files, 3.0, "unknown")
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"] is False and qc["reason_code"] == reason_codes.TR_MISMATCH
    assert "no time unit" in qc["reason"] and "3" in qc["reason"]


def test_run_without_brain_mask_counts_live_voxels(tmp_path: Path, run_files, atlas) -> None:
    """A record without a mask: coverage counts the voxels that vary, and QC says so."""
    out, _, _ = _cut_by_mask(run_files, atlas)
    qc = _run_edited_record(tmp_path, run_files, atlas, lambda rec: rec["runs"][0].pop("mask"))
    assert qc["included"]
    row = atlas.labels["index"].tolist().index(out)
    assert qc["coverage"][row] > 0.5  # live, though outside the (unknown) brain
    assert qc["coverage_rule"] == "live_voxels"


def test_outputs_relmat_sidecars_and_qc(tmp_path: Path, run_files, atlas) -> None:
    qc = _process(tmp_path, run_files, atlas)
    ts_path, rm_path = _outputs(tmp_path)
    names, fc = read_relmat(rm_path)
    assert names == atlas.labels["name"].tolist() and fc.shape == (116, 116)
    np.testing.assert_allclose(fc, fc.T)
    ts = pd.read_csv(ts_path, sep="\t").to_numpy()
    empty = np.isin(names, qc["empty_rois"])
    assert 0 < empty.sum() < 116  # the crop leaves some parcels outside the field of view
    np.testing.assert_allclose(fc[~empty][:, ~empty], np.corrcoef(ts[:, ~empty].T), atol=1e-6)
    assert (fc[empty] == 0).all() and (fc[:, empty] == 0).all()
    np.testing.assert_allclose(np.diag(fc)[~empty], 1.0)

    with_qc = json.loads((tmp_path / "qc" / f"{RUN}.json").read_text())
    assert with_qc == json.loads(json.dumps(qc))
    assert qc["relmat"] == str(rm_path) and qc["timeseries"] == str(ts_path)
    assert qc["t_r"] == T_R and qc["n_rois"] == 116 and qc["reason"] == ""
    fd = confounds_table(N_VOL, seed=0, fd_high=HIGH_FD)["framewise_displacement"].to_numpy()
    assert qc["mean_fd"] == pytest.approx(np.mean(fd[1:]))
    for out in (ts_path, rm_path):
        side = json.loads(out.with_suffix(".json").read_text())
        # The brain mask set coverage and the empty parcels: it is a source too.
        assert side["Sources"][:3] == [str(run_files[k]) for k in ("bold", "mask", "confounds")], (
            side["Sources"]
        )
        assert side["RepetitionTime"] == T_R and side["Denoise"]["strategy"] == "24P"
        assert len(side["ConfoundColumns"]) == 24
    desc = json.loads((tmp_path / "conn" / "dataset_description.json").read_text())
    assert desc["GeneratedBy"][0]["Name"] == "LCM"


def _make_3d(files: dict[str, Path]) -> None:
    save_nifti(files["bold"], np.ones(CROP_SHAPE, np.float32))


def _make_nan(files: dict[str, Path]) -> None:
    img = nib.load(files["bold"])
    data = np.asarray(img.dataobj)
    data[3, 4, 5, 6] = np.nan
    save_nifti(files["bold"], data, t_r=T_R)


def _make_inf(files: dict[str, Path]) -> None:
    data = np.asarray(nib.load(files["bold"]).dataobj)
    data[3, 4, 5, 0] = np.inf
    data[10, 12, 10, -1] = -np.inf
    save_nifti(files["bold"], data, t_r=T_R)


def _make_far_affine(files: dict[str, Path]) -> None:
    """A BOLD whose header puts it 400 mm away (e.g. scanner space labelled as MNI)."""
    img = nib.load(files["bold"])
    affine = img.affine.copy()
    affine[:3, 3] += 400.0
    out = nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header)
    nib.save(out, files["bold"])


def _make_mask_unreadable(files: dict[str, Path]) -> None:
    files["mask"].write_bytes(b"not a nifti")


def _make_tr_mismatch(files: dict[str, Path]) -> None:
    files["sidecar"].write_text(json.dumps({"RepetitionTime": 0.8}))


def _make_missing_columns(files: dict[str, Path]) -> None:
    table = pd.read_csv(files["confounds"], sep="\t")
    write_confounds(files["confounds"], table.drop(columns=["rot_z_power2", "trans_x"]))


def _make_short_confounds(files: dict[str, Path]) -> None:
    table = pd.read_csv(files["confounds"], sep="\t")
    write_confounds(files["confounds"], table.iloc[:-3])


def _make_high_motion(files: dict[str, Path]) -> None:
    table = pd.read_csv(files["confounds"], sep="\t")
    table.loc[1:20, "framewise_displacement"] = 2.0
    write_confounds(files["confounds"], table)


def _make_corrupt(files: dict[str, Path]) -> None:
    raw = files["bold"].read_bytes()
    files["bold"].write_bytes(raw[: len(raw) // 2])  # truncated gzip stream


def _make_not_gzip(files: dict[str, Path]) -> None:
    files["bold"].write_bytes(gzip.compress(b"not a nifti at all"))


@pytest.mark.parametrize(
    ("breaker", "reason"),
    [
        (_make_3d, r"is 3D .* a 4D series is expected"),
        (_make_nan, r"holds NaN/Inf values in 1 voxel\(s\) inside the atlas"),
        (_make_inf, r"holds NaN/Inf values in 2 voxel\(s\)"),
        (_make_far_affine, r"no atlas parcel is covered .* affine places the image outside"),
        (_make_mask_unreadable, r"cannot read brain mask .*desc-brain_mask.nii.gz of BOLD"),
        (_make_tr_mismatch, r"TR mismatch .* 0.8 s .* 2 s"),
        (_make_missing_columns, r"lack the columns \['trans_x', 'rot_z_power2'\]"),
        (_make_short_confounds, rf"have {N_VOL - 3} rows but the BOLD series has {N_VOL}"),
        (_make_high_motion, r"only \d+ of 52 volumes left after scrubbing .* at least 40"),
        (_make_corrupt, r"cannot read (the data of )?BOLD"),
        (_make_not_gzip, r"cannot read BOLD"),
    ],
)
def test_bad_run_is_excluded_with_reason(
    tmp_path: Path, run_files, atlas, breaker, reason, caplog
) -> None:
    breaker(run_files)
    qc = _process(tmp_path, run_files, atlas)
    assert qc["included"] is False
    assert re.search(reason, qc["reason"]), qc["reason"]
    assert qc["timeseries"] == "" and qc["relmat"] == ""
    assert json.loads((tmp_path / "qc" / f"{RUN}.json").read_text())["included"] is False
    assert not (tmp_path / "conn" / "sub-01").exists()
    assert "excluded" in caplog.text


def test_cli_run_and_collect(tmp_path: Path, atlas) -> None:
    deriv = tmp_path / "fmriprep"
    good = make_fmriprep_run(deriv, RUN, n_vol=N_VOL, seed=1)
    short_key = "sub-02_ses-b_task-rest_run-1"
    short = make_fmriprep_run(deriv, short_key, n_vol=30, seed=2)
    qcs = []
    for key, files in ((RUN, good), (short_key, short)):
        record = fmriprep_record(tmp_path / f"{key}.json", "tiny", [(key, files)])
        qc = tmp_path / "qc" / f"{key}.json"
        rc = cli(
            connectome_cmd,
            [
                "connectome",
                "run",
                "--dataset",
                "tiny",
                "--fmriprep-record",
                str(record),
                "--run-key",
                key,
                "--atlas-name",
                "aal116",
                "--denoise",
                json.dumps({**DENOISE, "strategy": "acompcor", "fd_threshold": None}),
                "--out-dir",
                str(tmp_path / "conn"),
                "--qc-out",
                str(qc),
            ],
        )
        assert rc == 0
        qcs.append(str(qc))
    table_path = tmp_path / "qc.tsv"
    assert (
        cli(connectome_cmd, ["connectome", "collect", "--qc", *qcs, "--out", str(table_path)]) == 0
    )
    table = read_qc_table(table_path)
    assert table["run_key"].tolist() == [RUN, short_key]
    assert table["included"].tolist() == [True, False]
    assert table.loc[1, "session"] == "b" and "the run has 30 volumes" in table.loc[1, "reason"]
    assert table.loc[0, "n_volumes_kept"] == N_VOL  # fd_threshold null: nothing scrubbed
    assert table.loc[0, "empty_rois"].count(",") >= 1


def test_run_key_not_in_record(tmp_path: Path, run_files, atlas) -> None:
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, run_files)])
    with pytest.raises(InputDataError, match=r"sub-01_task-rest_run-9.* is not in fMRIPrep record"):
        process_voxel_run(
            "tiny",
            record,
            "sub-01_task-rest_run-9",
            atlas,
            DenoiseSettings(),
            tmp_path / "conn",
            tmp_path / "qc.json",
        )


def test_run_the_record_excludes_gets_an_excluded_qc(tmp_path: Path, run_files, atlas) -> None:
    """A run whose fMRIPrep outputs were incomplete is in the record's excluded list: its QC
    record says why and the job succeeds (the subject's fmriprep job failed before)."""
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, run_files)])
    content = json.loads(record.read_text())
    content["excluded"] = [{"run_key": "sub-01_task-rest_run-2", "reason": "no confounds.tsv"}]
    record.write_text(json.dumps(content))
    qc = process_voxel_run(
        "tiny",
        record,
        "sub-01_task-rest_run-2",
        atlas,
        DenoiseSettings(),
        tmp_path / "conn",
        tmp_path / "qc.json",
    )
    assert qc["included"] is False and qc["reason"] == "no confounds.tsv"
    # A record written before reason codes: the run is counted under the stage that left it out.
    assert qc["reason_code"] == "fmriprep_excluded"
    assert json.loads((tmp_path / "qc.json").read_text())["run_key"] == "sub-01_task-rest_run-2"
    assert not (tmp_path / "conn" / "sub-01").exists()


@pytest.mark.parametrize(
    ("strategy", "n", "some"),
    [
        ("6P", 6, "rot_z"),
        ("9P", 9, "global_signal"),
        ("24P", 24, "trans_x_derivative1_power2"),
        ("36P", 36, "white_matter_derivative1_power2"),
        ("acompcor", 20, "a_comp_cor_04"),  # 12 motion + 5 aCompCor + 3 cosines
    ],
)
def test_confound_columns(strategy: str, n: int, some: str) -> None:
    available = confounds_table(40).columns
    cols = confound_columns(strategy, available)
    assert len(cols) == len(set(cols)) == n and some in cols
    assert "a_comp_cor_05" not in cols and "framewise_displacement" not in cols
    with pytest.raises(ExcludedRunError, match=f"needed by strategy '{strategy}'"):
        confound_columns(strategy, [c for c in available if c != some])


@pytest.mark.parametrize(
    "bad",
    ['{"strategy": "99P"}', '{"high_pass": 0.2, "low_pass": 0.1}', '{"fd": 1}', "[1]"],
)
def test_denoise_settings_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="--denoise"):
        DenoiseSettings.from_json(bad)


def test_denoise_defaults_from_schema() -> None:
    s = DenoiseSettings.from_json('{"strategy": "9P"}')
    assert s.strategy == "9P" and s.fd_threshold == 0.5 and s.min_volumes == 50


def test_all_zero_parcel_is_empty_by_policy(tmp_path: Path, run_files, atlas) -> None:
    """A parcel whose voxels are all 0 (outside the brain mask) is kept as an empty ROI."""
    img = nib.load(run_files["bold"])
    data = np.asarray(img.dataobj)
    labels = crop_labels()
    covered = [i for i in np.unique(labels[labels > 0]) if (labels == i).sum() > 30]
    target = int(covered[0])
    data[labels == target] = 0.0
    save_nifti(run_files["bold"], data, t_r=T_R)
    qc = _process(tmp_path, run_files, atlas)
    name = atlas.labels.set_index("index").loc[target, "name"]
    assert qc["included"] and name in qc["empty_rois"]
    row = atlas.labels["index"].tolist().index(target)
    assert qc["coverage"][row] == 0.0 and qc["tsnr"][row] is None
    _, fc = read_relmat(_outputs(tmp_path)[1])
    assert (fc[row] == 0).all() and (fc[:, row] == 0).all()
    others = [c for c, t in zip(qc["coverage"], qc["tsnr"], strict=True) if c >= 0.5]
    assert others and all(t is not None and t > 10 for t in qc["tsnr"] if t is not None)


def test_high_pass_above_nyquist_is_the_reason(tmp_path: Path, run_files, atlas) -> None:
    """high_pass at or above Nyquist (0.25 Hz at TR 2 s) would zero every signal: the run is
    excluded for that reason, not as "every parcel flat once cleaned"."""
    denoise = {**DENOISE, "high_pass": 0.3, "low_pass": None}
    qc = _process(tmp_path, run_files, atlas, denoise)
    assert qc["included"] is False
    assert re.search(
        r"high_pass 0.3 Hz is at or above the Nyquist frequency 0.25 Hz .*TR 2 s", qc["reason"]
    ), qc["reason"]


def test_bold_in_another_space_than_the_atlas(tmp_path: Path, run_files, atlas) -> None:
    qc = _run_edited_record(
        tmp_path, run_files, atlas, lambda rec: rec.update(output_space="MNI152NLin6Asym")
    )
    assert not qc["included"]
    assert re.search(
        r"space 'MNI152NLin6Asym' but atlas 'aal116' is in 'MNI152NLin2009c", qc["reason"]
    )


def test_a_user_atlas_named_in_another_template_excludes_the_run(
    tmp_path: Path, run_files, atlas
) -> None:
    """XCP-D's atlases are tpl-MNI152NLin6Asym_...: the run in MNI152NLin2009cAsym is excluded
    as space_mismatch, as with a TemplateFlow atlas, not parcellated in the wrong template."""
    image = tmp_path / "tpl-MNI152NLin6Asym_atlas-Toy_res-02_dseg.nii.gz"
    nib.save(atlas.img, image)
    table = tmp_path / "atlas.tsv"
    atlas.labels[["index", "name"]].to_csv(table, sep="\t", index=False)
    user = load_atlas("toy", str(image), str(table))
    assert user.space == "MNI152NLin6Asym"
    qc = _process(tmp_path, run_files, user)
    assert not qc["included"]
    assert qc["reason_code"] == "space_mismatch"
    assert re.search(r"atlas 'toy' is in 'MNI152NLin6Asym'", qc["reason"])


def test_sidecars_record_the_atlas_files_absolute_and_templateflow_files(
    tmp_path: Path, atlas, monkeypatch
) -> None:
    """Sources named the atlas as typed (relative, while the BOLD is absolute) and a
    TemplateFlow atlas's files not at all."""
    import argparse

    image, table = templateflow_atlas(tmp_path / "tf", atlas)
    folder = image.parent
    monkeypatch.chdir(folder)
    query = {"template": "MNI152NLin2009cAsym", "atlas": "Toy"}
    for kind, settings in (
        ("files", {"atlas_path": image.name, "atlas_labels": table.name}),
        ("templateflow", {"atlas_templateflow": json.dumps(query)}),
    ):
        monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "tf"))
        args = argparse.Namespace(
            **{"atlas": "toy", "atlas_path": None, "atlas_labels": None, "atlas_templateflow": None}
            | settings
        )
        loaded = load_atlas(
            "toy", args.atlas_path, args.atlas_labels, query if kind != "files" else None
        )
        assert connectome_cmd._atlas_sources(args, loaded) == [str(image), str(table)], kind


def test_the_settings_stamp_holds_the_run_options_checked(tmp_path: Path) -> None:
    """`lcm connectome settings`: the workflow's per-dataset stamp of the options every
    voxel-level run takes (an input of each run's job), checked before any run is queued."""
    out = tmp_path / "settings.json"
    common = ["connectome", "settings", "--dataset", "bidsdemo", "--atlas", "aal116"]
    common += ["--out", str(out), "--connectome", '{"kinds": ["partial"]}']
    assert cli(connectome_cmd, [*common, "--denoise", '{"strategy": "36P"}']) == 0
    settings = json.loads(out.read_text())
    assert settings["denoise"]["strategy"] == "36P" and settings["denoise"]["low_pass"] == 0.1
    assert settings["connectome"]["kinds"] == ["pearson", "partial"]
    assert settings["atlas"]["name"] == "aal116" and settings["min_coverage"] == 0.5
    assert json.loads(provenance_path(out).read_text())["Output"] == "settings.json"
    with pytest.raises(ConfigError, match="high_pass"):
        cli(connectome_cmd, [*common, "--denoise", '{"high_pass": 0.2, "low_pass": 0.1}'])
    with pytest.raises(ConfigError, match="--min-coverage"):
        cli(connectome_cmd, [*common, "--min-coverage", "1.5"])
    assert json.loads(out.read_text())["denoise"]["strategy"] == "36P"  # not replaced


@pytest.mark.parametrize("space", ["T1w", "T1w:res-native", "func"])
def test_bold_in_a_subject_s_own_space_is_excluded_whatever_the_atlas(
    tmp_path: Path, run_files, atlas, space: str
) -> None:
    """A user atlas whose name says no template (space ``custom``) passed the space check:
    native-space BOLD of every subject was parcellated with one MNI image, without a word."""
    image, table = tmp_path / "toy.nii.gz", tmp_path / "toy.tsv"
    nib.save(atlas.img, image)
    atlas.labels[["index", "name"]].to_csv(table, sep="\t", index=False)
    user = load_atlas("toy", str(image), str(table))
    assert user.space == "custom"
    for used in (user, atlas):
        qc = _run_edited_record(
            tmp_path, run_files, used, lambda rec: rec.update(output_space=space)
        )
        assert not qc["included"]
        assert qc["reason_code"] == "space_mismatch"
        assert f"is in space {space!r}, the subject's own" in qc["reason"]
        assert f"atlas {used.name!r} is one image for every subject" in qc["reason"]
        assert "Set fmriprep.output_space" in qc["reason"]  # the fix, in the QC table
    assert not (tmp_path / "conn" / "sub-01").exists()


def test_the_subjects_fmriprep_version_reaches_the_runs_qc_json(
    tmp_path: Path, run_files, atlas
) -> None:
    """The version an existing-derivatives record names for its subject (its own logs' over
    the folder's description) is in the run's QC JSON, where the cohort's mix is gathered."""

    def made_by(rec: dict) -> None:
        rec["generated_by"] = {"version": "23.2.1", "subject": {"version": "20.2.7"}}

    assert _run_edited_record(tmp_path, run_files, atlas, made_by)["fmriprep_version"] == "20.2.7"
    qc = _run_edited_record(tmp_path, run_files, atlas, lambda rec: None)  # a container run's
    assert qc["included"] and qc["fmriprep_version"] is None
