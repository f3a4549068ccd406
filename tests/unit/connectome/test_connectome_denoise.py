"""Denoising strategies (XCP-D names, nilearn presets), FD + DVARS scrubbing, standardisation.

nilearn's ``load_confounds_strategy`` and ``signal.clean`` are the references.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.connectome import (
    confounds_table,
    crop_labels,
    fmriprep_record,
    make_fmriprep_run,
    write_confounds,
)
from nilearn import signal
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

from lcm.atlas import load_atlas
from lcm.config import schema
from lcm.connectome.confounds import STRATEGIES, confound_columns, read_confounds_metadata
from lcm.connectome.denoise import (
    clean_signals,
    confound_matrix,
    non_steady_volumes,
    read_confounds,
    scrub_mask,
    short_segments,
    std_dvars,
)
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run
from lcm.exceptions import ConfigError, ExcludedRunError
from lcm.io.relmat import read_relmat

RUN = "sub-01_task-rest_run-1"
N_VOL = 60
FD_HIGH = (2, 10, 13, 40)  # leaves kept segments of 2 volumes at the start and after 10
DVARS_HIGH = (25,)


@pytest.mark.parametrize(
    ("strategy", "n", "has", "lacks"),
    [
        ("27P", 27, "global_signal", "global_signal_derivative1"),
        ("36P", 36, "global_signal_derivative1_power2", "a_comp_cor_00"),
        ("acompcor", 20, "a_comp_cor_04", "global_signal"),  # 12 + 5 + 3 cosines
        ("acompcor_gsr", 21, "global_signal", "a_comp_cor_05"),
    ],
)
def test_xcpd_strategies(strategy: str, n: int, has: str, lacks: str) -> None:
    cols = confound_columns(strategy, confounds_table(40).columns)
    assert len(cols) == len(set(cols)) == n and has in cols and lacks not in cols
    assert "trans_x" in cols and "framewise_displacement" not in cols


@pytest.fixture
def run_files(tmp_path: Path) -> dict[str, Path]:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL, fd_high=FD_HIGH)
    table = read_confounds(files["confounds"], N_VOL)
    table.loc[list(DVARS_HIGH), "std_dvars"] = 2.5
    table.loc[0, ["std_dvars", "framewise_displacement"]] = np.nan  # as fMRIPrep writes
    write_confounds(files["confounds"], table)
    # Four combined-mask components and two of the WM mask: the compcor preset takes the former.
    meta = {
        f"a_comp_cor_{i:02d}": {
            "Method": "aCompCor",
            "Mask": "combined" if i < 4 else "WM",
            "Retained": True,
        }
        for i in range(6)
    }
    files["confounds"].with_suffix(".json").write_text(json.dumps(meta))
    return files


# Our preset name -> nilearn's preset and the extra arguments it stands for.
NILEARN_PRESETS = {
    "simple": ("simple", {}),
    "simple_gsr": ("simple", {"global_signal": "basic"}),
    "scrubbing": ("scrubbing", {}),
    "scrubbing_gsr": ("scrubbing", {"global_signal": "full"}),
    "compcor": ("compcor", {}),
}


@pytest.mark.parametrize("strategy", sorted(NILEARN_PRESETS))
def test_presets_agree_with_nilearn_load_confounds(run_files, strategy: str) -> None:
    preset, extra = NILEARN_PRESETS[strategy]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ref_mask = load_confounds_strategy(
            str(run_files["bold"]), denoise_strategy=preset, **extra
        )
    table = read_confounds(run_files["confounds"], N_VOL)
    meta = read_confounds_metadata(run_files["confounds"])
    ours = confound_columns(strategy, table.columns, meta)
    assert sorted(ours) == sorted(ref.columns)
    if strategy == "compcor":
        assert "a_comp_cor_03" in ours and "a_comp_cor_04" not in ours
    settings = DenoiseSettings.from_dict(
        {"strategy": strategy, "fd_threshold": 0.5, "dvars_threshold": 1.5, "min_volumes": 10}
    )
    keep = scrub_mask(
        table["framewise_displacement"].to_numpy(),
        settings,
        N_VOL,
        dvars=table["std_dvars"].to_numpy(),
    )
    if strategy.startswith("scrubbing"):
        np.testing.assert_array_equal(keep, ref_mask)
        assert {0, 1, 11, 12, 25}.isdisjoint(keep)  # short segments and the DVARS spike
    else:
        assert ref_mask is None and 11 in keep and 25 not in keep


@pytest.mark.parametrize("strategy", sorted(NILEARN_PRESETS))
def test_presets_under_default_thresholds_scrub_as_documented(run_files, strategy: str) -> None:
    """With fd_threshold and dvars_threshold left at their defaults, the scrubbing presets keep
    the volumes nilearn's preset keeps (std_dvars 1.5 and FD 0.5 mm: dvars_threshold auto);
    simple, simple_gsr and compcor scrub FD > 0.5 mm, which nilearn's presets do not, and
    fd_threshold null gives nilearn's (no) scrubbing, as the schema says."""
    preset, extra = NILEARN_PRESETS[strategy]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, ref_mask = load_confounds_strategy(
            str(run_files["bold"]), denoise_strategy=preset, **extra
        )
    table = read_confounds(run_files["confounds"], N_VOL)
    fd, dvars = table["framewise_displacement"].to_numpy(), table["std_dvars"].to_numpy()
    settings = DenoiseSettings.from_dict({"strategy": strategy, "min_volumes": 10})
    keep = scrub_mask(fd, settings, N_VOL, dvars=dvars)
    described = schema()["properties"]["denoise"]["properties"]
    if strategy.startswith("scrubbing"):
        assert settings.dvars_threshold == 1.5
        np.testing.assert_array_equal(keep, ref_mask)
        assert 25 not in keep  # the std_dvars spike
        assert "1.5 when left unset" in " ".join(described["strategy"]["description"].split())
    else:
        assert settings.dvars_threshold is None and ref_mask is None
        assert 25 in keep and not set(FD_HIGH) & set(keep)
        off = DenoiseSettings.from_dict({"strategy": strategy, "fd_threshold": None})
        assert scrub_mask(fd, off, N_VOL, dvars=dvars).tolist() == list(range(N_VOL))
        text = " ".join(described["strategy"]["description"].split())
        assert "simple, simple_gsr and compcor also scrub by fd_threshold" in text
        assert "set fd_threshold null to match them" in text


def test_dvars_threshold_auto_explicit_null_and_config() -> None:
    """auto (the default, and config.yaml's) is 1.5 under the scrubbing presets only; an explicit
    value, null included, holds for every strategy."""
    cfg = yaml.safe_load((Path(__file__).parents[3] / "config" / "config.yaml").read_text())
    assert cfg["denoise"]["dvars_threshold"] == "auto"
    for strategy, auto in [("scrubbing", 1.5), ("scrubbing_gsr", 1.5), ("24P", None)]:
        got = DenoiseSettings.from_dict({**cfg["denoise"], "strategy": strategy})
        assert got.dvars_threshold == auto and got.to_dict()["dvars_threshold"] == auto
        off = DenoiseSettings.from_dict({"strategy": strategy, "dvars_threshold": None})
        assert off.dvars_threshold is None
        two = DenoiseSettings.from_dict({"strategy": strategy, "dvars_threshold": 2.0})
        assert two.dvars_threshold == 2.0
    with pytest.raises(ConfigError, match="dvars_threshold"):
        DenoiseSettings.from_dict({"dvars_threshold": "off"})


# Our XCP-D strategy -> the arguments of nilearn's load_confounds that select its columns.
NILEARN_XCPD = {
    "24P": {"strategy": ("motion",), "motion": "full"},
    "36P": {
        "strategy": ("motion", "wm_csf", "global_signal"),
        "motion": "full",
        "wm_csf": "full",
        "global_signal": "full",
    },
}


@pytest.mark.parametrize("strategy", sorted(NILEARN_XCPD))
def test_first_row_filled_as_nilearn_load_confounds(tmp_path: Path, strategy: str) -> None:
    """fMRIPrep's derivative columns are n/a at volume 0; with no non-steady-state volume
    flagged, volume 0 is kept, and its confounds are nilearn's: the second row's values."""
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL, fd_high=FD_HIGH)
    raw = pd.read_csv(files["confounds"], sep="\t", na_values=["n/a"], keep_default_na=False)
    assert raw.iloc[0].isna().sum() >= 12 and not raw.iloc[1:].isna().any().any()
    assert not [c for c in raw.columns if c.startswith("non_steady_state_outlier")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ref_mask = load_confounds(str(files["bold"]), demean=False, **NILEARN_XCPD[strategy])
    table = read_confounds(files["confounds"], N_VOL)
    columns = confound_columns(strategy, table.columns)
    assert ref_mask is None and sorted(columns) == sorted(ref.columns)
    ours = confound_matrix(table, columns, "x.tsv")
    np.testing.assert_allclose(ours, ref[columns].to_numpy(), rtol=0, atol=1e-12)
    # Scrubbing measures are no regressors: no motion before the first volume.
    assert table.loc[0, "framewise_displacement"] == 0 and table.loc[0, "std_dvars"] == 0


# Our aCompCor strategy -> nilearn's load_confounds arguments selecting the same columns.
NILEARN_ACOMPCOR = {
    "acompcor": {"strategy": ("motion", "high_pass", "compcor"), "motion": "derivatives"},
    "acompcor_gsr": {
        "strategy": ("motion", "high_pass", "compcor", "global_signal"),
        "motion": "derivatives",
        "global_signal": "basic",
    },
}


def _combined_mask_metadata(confounds: Path) -> None:
    """fMRIPrep's confounds JSON: every a_comp_cor_XX of the combined mask, retained."""
    meta = {
        f"a_comp_cor_{i:02d}": {"Method": "aCompCor", "Mask": "combined", "Retained": True}
        for i in range(6)
    }
    confounds.with_suffix(".json").write_text(json.dumps(meta))


@pytest.mark.parametrize("strategy", sorted(NILEARN_ACOMPCOR))
def test_acompcor_takes_the_cosines_as_xcpd_and_nilearn(tmp_path: Path, strategy: str) -> None:
    """fMRIPrep computes aCompCor after its cosine high-pass: XCP-D's acompcor regresses the
    cosine_XX columns with the components, and nilearn's load_confounds refuses compcor
    without high_pass. Ours select what nilearn selects for 5 combined-mask components."""
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    _combined_mask_metadata(files["confounds"])
    kwargs = {**NILEARN_ACOMPCOR[strategy], "compcor": "anat_combined", "n_compcor": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = load_confounds(str(files["bold"]), **kwargs)
        no_cosines = [c for c in kwargs["strategy"] if c != "high_pass"]
        with pytest.raises(ValueError, match="high_pass"):
            load_confounds(str(files["bold"]), **{**kwargs, "strategy": tuple(no_cosines)})
    table = read_confounds(files["confounds"], N_VOL)
    ours = confound_columns(strategy, table.columns, read_confounds_metadata(files["confounds"]))
    assert sorted(ours) == sorted(ref.columns)
    assert {"cosine00", "cosine01", "cosine02"} <= set(ours)


@pytest.mark.parametrize("strategy", ["acompcor", "acompcor_gsr", "compcor"])
def test_acompcor_without_cosines_needs_the_high_pass_filter(strategy: str) -> None:
    """Confounds without cosine_XX columns (hand-made, stripped): with denoise.high_pass null
    nothing would remove the frequencies fMRIPrep filtered out before aCompCor, so the run is
    excluded naming the setting; with a high_pass filter the run goes on without cosines."""
    columns = [c for c in confounds_table(40).columns if not c.startswith("cosine")]
    with pytest.raises(ExcludedRunError, match=r"denoise\.high_pass null") as err:
        confound_columns(strategy, columns)
    assert "cosine_XX" in err.value.message and "denoise.high_pass" in (err.value.hint or "")
    assert err.value.code == "confounds_missing_columns"  # counted with the QC table's kind
    got = confound_columns(strategy, columns, high_pass=0.01)
    assert "a_comp_cor_00" in got and not [c for c in got if c.startswith("cosine")]


def test_acompcor_run_regresses_the_cosines_or_is_excluded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With high_pass null, an acompcor run regresses fMRIPrep's cosines (sidecar and QC say
    so); without them it is excluded naming the setting. A preset without aCompCor goes on
    without cosines, as nilearn's (whose high_pass component is optional), with a warning and
    QC's count at 0."""
    atlas = load_atlas("aal116")
    # 60 volumes hold fewer degrees of freedom than the default floor: min_dof is tested apart.
    settings = {
        "fd_threshold": None,
        "high_pass": None,
        "low_pass": None,
        "min_volumes": 10,
        "min_dof": None,
    }
    qcs, runs = {}, {}
    for name, strategy, strip in [
        ("with", "acompcor", False),
        ("without", "acompcor", True),
        ("simple", "simple", True),
    ]:
        files = runs[name] = make_fmriprep_run(tmp_path / name, RUN, n_vol=N_VOL)
        if strip:
            table = read_confounds(files["confounds"], N_VOL)
            kept = [c for c in table.columns if not c.startswith("cosine")]
            write_confounds(files["confounds"], table[kept])
        record = fmriprep_record(tmp_path / name / "rec.json", "tiny", [(RUN, files)])
        qcs[name] = process_voxel_run(
            "tiny",
            record,
            RUN,
            atlas,
            DenoiseSettings.from_dict({**settings, "strategy": strategy}),
            tmp_path / name / "conn",
            tmp_path / name / "qc.json",
        )
    assert qcs["with"]["included"] and qcs["with"]["n_cosine_regressors"] == 3
    sidecar = json.loads(Path(qcs["with"]["timeseries"]).with_suffix(".json").read_text())
    assert {"cosine00", "cosine01", "cosine02"} <= set(sidecar["ConfoundColumns"])
    assert sidecar["Denoise"]["high_pass"] is None
    assert not qcs["without"]["included"]
    assert "cosine_XX" in qcs["without"]["reason"]
    assert "denoise.high_pass null" in qcs["without"]["reason"]
    assert qcs["simple"]["included"] and qcs["simple"]["n_cosine_regressors"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = load_confounds_strategy(str(runs["simple"]["bold"]), denoise_strategy="simple")
    sidecar = json.loads(Path(qcs["simple"]["timeseries"]).with_suffix(".json").read_text())
    assert sorted(sidecar["ConfoundColumns"]) == sorted(ref.columns)
    assert "have no cosine_XX columns" in caplog.text and "'simple'" in caplog.text


NON_STEADY = (0, 1, 2)  # volume 2 is an FD outlier too


def _with_non_steady(confounds: Path) -> pd.DataFrame:
    """Add fMRIPrep's one-hot ``non_steady_state_outlierXX`` columns for :data:`NON_STEADY`."""
    table = read_confounds(confounds, N_VOL)
    for i, t in enumerate(NON_STEADY):
        table[f"non_steady_state_outlier{i:02d}"] = (np.arange(N_VOL) == t).astype(float)
    write_confounds(confounds, table)
    return read_confounds(confounds, N_VOL)


@pytest.mark.parametrize("strategy", sorted(NILEARN_PRESETS))
def test_non_steady_volumes_are_left_out_as_nilearn_does(run_files, strategy: str) -> None:
    table = _with_non_steady(run_files["confounds"])
    preset, extra = NILEARN_PRESETS[strategy]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ref_mask = load_confounds_strategy(
            str(run_files["bold"]), denoise_strategy=preset, **extra
        )
    meta = read_confounds_metadata(run_files["confounds"])
    ours = confound_columns(strategy, table.columns, meta)
    assert sorted(ours) == sorted(ref.columns)  # flags of volumes, not regressors
    scrubs = strategy.startswith("scrubbing")
    settings = DenoiseSettings.from_dict(
        {
            "strategy": strategy,
            "fd_threshold": 0.5 if scrubs else None,
            "dvars_threshold": 1.5 if scrubs else None,
            "min_volumes": 10,
        }
    )
    keep = scrub_mask(
        table["framewise_displacement"].to_numpy(),
        settings,
        N_VOL,
        dvars=table["std_dvars"].to_numpy(),
        non_steady=non_steady_volumes(table, "x.tsv"),
    )
    np.testing.assert_array_equal(keep, ref_mask)
    assert set(NON_STEADY).isdisjoint(keep)


def test_non_steady_volumes_never_reach_the_connectome(tmp_path: Path) -> None:
    """A run whose first volumes are still saturating (twice as bright) gives the same series as
    the run with ordinary first volumes; QC counts them and mean FD leaves them out."""
    series = {}
    for name, transient in [("plain", 0.0), ("bright", 100.0)]:
        files = make_fmriprep_run(tmp_path / name, RUN, n_vol=N_VOL, fd_high=FD_HIGH)
        table = _with_non_steady(files["confounds"])
        table.loc[list(NON_STEADY), "framewise_displacement"] = 3.0
        write_confounds(files["confounds"], table)
        img = nib.load(files["bold"])
        data = np.asarray(img.dataobj, dtype=np.float32)
        data[..., list(NON_STEADY)] += transient * (data[..., :1] != 0)
        nib.save(nib.Nifti1Image(data, img.affine, img.header), files["bold"])
        record = fmriprep_record(tmp_path / name / "rec.json", "tiny", [(RUN, files)])
        qc = process_voxel_run(
            "tiny",
            record,
            RUN,
            load_atlas("aal116"),
            DenoiseSettings.from_dict({"strategy": "24P", "fd_threshold": None, "min_dof": None}),
            tmp_path / name / "conn",
            tmp_path / name / "qc.json",
        )
        assert qc["included"], qc["reason"]
        assert qc["n_non_steady_volumes"] == 3 and qc["n_volumes_kept"] == N_VOL - 3
        fd = table["framewise_displacement"].to_numpy()
        assert qc["mean_fd"] == pytest.approx(fd[3:].mean())
        series[name] = pd.read_csv(qc["timeseries"], sep="\t").to_numpy()
    assert series["plain"].shape[0] == N_VOL - 3
    # Not bit for bit: float32 voxels are summed as deviations from the first volume, which in
    # the bright run is 100 higher (its sums keep ~1e-7 of 100 per voxel, not of ~1).
    np.testing.assert_allclose(series["bright"], series["plain"], rtol=0, atol=5e-4)


def test_parcel_varying_only_in_scrubbed_volumes_is_empty(run_files, tmp_path: Path) -> None:
    """A parcel whose mean changes only at high-motion volumes has no signal once they are
    scrubbed: it is empty (zero row, listed), not a NaN row that the store would refuse."""
    labels = crop_labels()
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    target = int(ids[np.argmax(counts)])  # well inside the cropped grid: covered
    img = nib.load(run_files["bold"])
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[labels == target] = 100.0
    data[labels == target, FD_HIGH[-1]] = 130.0  # changes only at a scrubbed volume
    nib.save(nib.Nifti1Image(data, img.affine, img.header), run_files["bold"])
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, run_files)])
    atlas = load_atlas("aal116")
    qc = process_voxel_run(
        "tiny",
        record,
        RUN,
        atlas,
        DenoiseSettings.from_dict({"strategy": "24P", "fd_threshold": 0.5, "min_dof": None}),
        tmp_path / "conn",
        tmp_path / "qc.json",
    )
    assert qc["included"], qc["reason"]
    name = atlas.labels.set_index("index").loc[target, "name"]
    assert name in qc["empty_rois"]
    names, matrix = read_relmat(qc["relmat"])
    assert np.isfinite(matrix).all()
    row = matrix[names.index(name)]
    assert not row.any()


def test_short_segments() -> None:
    kept = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    got = short_segments(kept, 5)
    np.testing.assert_array_equal(np.flatnonzero(got), [0, 1, 3, 4, 5, 14])


def test_dvars_scrubbing_excludes_below_min_volumes() -> None:
    dvars = np.r_[0.0, np.full(29, 1.0)]
    dvars[5:20] = 3.0
    settings = DenoiseSettings.from_dict(
        {"fd_threshold": None, "dvars_threshold": 1.5, "min_volumes": 20}
    )
    with pytest.raises(ExcludedRunError, match=r"only 15 of 30 .*std_dvars > 1.5"):
        scrub_mask(None, settings, 30, dvars=dvars)
    loose = DenoiseSettings.from_dict({"dvars_threshold": 1.5, "min_volumes": 10})
    assert scrub_mask(None, loose, 30, dvars=dvars).size == 15


def test_short_run_with_non_steady_volumes_is_called_short_not_scrubbed() -> None:
    """A 40-volume run with fMRIPrep's 2 non-steady volumes and no motion read "only 38 of
    40 volumes left after scrubbing (FD > 0.5 mm ...)" and "Nothing, if the run moved"."""
    settings = DenoiseSettings.from_dict({"fd_threshold": 0.5, "min_volumes": 50})
    non_steady = np.zeros(40, dtype=bool)
    non_steady[:2] = True
    with pytest.raises(ExcludedRunError) as info:
        scrub_mask(np.full(40, 0.1), settings, 40, non_steady=non_steady)
    assert "the run has 40 volumes (2 non-steady-state volume(s) left out: 38 usable)" in str(
        info.value
    )
    assert "scrubbing" not in str(info.value) and "moved" not in info.value.hint
    assert "min_volumes to 38" in info.value.hint


def test_a_run_shorter_than_any_min_volumes_is_not_told_to_lower_it() -> None:
    """An 8-volume run was told "Lower denoise.min_volumes to 8", which the schema refuses
    (its minimum is 10): advice that could not be followed."""
    settings = DenoiseSettings.from_dict({"min_volumes": 10})
    with pytest.raises(ExcludedRunError, match="the run has 8 volumes") as info:
        scrub_mask(np.full(8, 0.1), settings, 8)
    assert "Lower" not in info.value.hint
    assert "fewer than any denoise.min_volumes allows (at least 10)" in info.value.hint
    with pytest.raises(ExcludedRunError) as info:
        scrub_mask(np.full(12, 0.1), DenoiseSettings.from_dict({"min_volumes": 20}), 12)
    assert "Lower denoise.min_volumes to 12 or less" in info.value.hint


def test_scrubbing_reason_counts_the_volumes_each_rule_flagged() -> None:
    """The reason listed every rule in force (FD > 0.5 mm) whether or not it flagged any
    volume, so a run lost to DVARS alone read as one lost to head motion."""
    dvars = np.r_[0.0, np.full(29, 1.0)]
    dvars[5:20] = 3.0
    settings = DenoiseSettings.from_dict(
        {"fd_threshold": 0.5, "dvars_threshold": 1.5, "min_volumes": 20}
    )
    with pytest.raises(ExcludedRunError, match=r"0 with FD > 0.5 mm, 15 with std_dvars > 1.5"):
        scrub_mask(np.full(30, 0.1), settings, 30, dvars=dvars)


def test_missing_std_dvars_excludes_run(tmp_path: Path, run_files) -> None:
    table = read_confounds(run_files["confounds"], N_VOL).drop(columns="std_dvars")
    with pytest.raises(ExcludedRunError, match="lack the column 'std_dvars'"):
        std_dvars(table, "x.tsv")
    write_confounds(run_files["confounds"], table)
    record = fmriprep_record(tmp_path / "rec.json", "tiny", [(RUN, run_files)])
    settings = DenoiseSettings.from_dict(
        {"strategy": "27P", "dvars_threshold": 1.5, "min_volumes": 20}
    )
    qc = process_voxel_run(
        "tiny", record, RUN, load_atlas("aal116"), settings, tmp_path / "conn", tmp_path / "qc.json"
    )
    assert not qc["included"] and "std_dvars" in qc["reason"]
    saved = json.loads((tmp_path / "qc.json").read_text())
    assert saved["strategy"] == "27P" and saved["dvars_threshold"] == 1.5
    assert saved["fd_threshold"] == 0.5


def test_strategy_lacking_columns_excludes(run_files) -> None:
    table = read_confounds(run_files["confounds"], N_VOL)
    no_compcor = [c for c in table.columns if not c.startswith("a_comp_cor")]
    with pytest.raises(ExcludedRunError, match=r"a_comp_cor_\* \(combined mask\)"):
        confound_columns("compcor", no_compcor)
    with pytest.raises(ExcludedRunError, match="needed by strategy 'acompcor_gsr'"):
        confound_columns("acompcor_gsr", [c for c in table.columns if c != "global_signal"])


def _signals(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        100 + rng.standard_normal((80, 7)) * [1, 2, 3, 4, 5, 6, 7] + np.arange(80)[:, None] * 0.02
    )


@pytest.mark.parametrize(
    ("ours", "theirs"), [("zscore", "zscore_sample"), ("psc", "psc"), ("none", None)]
)
def test_standardize_matches_nilearn_clean(ours: str, theirs) -> None:
    x = _signals()
    settings = DenoiseSettings.from_dict({"standardize": ours, "low_pass": 0.2})
    got = clean_signals(x, 1.5, settings)
    ref = signal.clean(
        x,
        detrend=True,
        standardize=theirs,
        filter="butterworth",
        low_pass=0.2,
        high_pass=0.01,
        t_r=1.5,
    )
    np.testing.assert_allclose(got, ref, atol=1e-10)


def test_censored_volumes_never_reach_the_kept_ones() -> None:
    """Whatever a scrubbed volume holds (a motion spike), the cleaned kept volumes are the same:
    the band-pass filter sees a spline through the kept volumes in its place, in signals and
    confounds. Censored here: both ends of the run, and volumes whose mirror image (T-1-t) is
    censored too, which nilearn 0.13's own interpolation leaves as they are."""
    x = _signals(5)
    conf = np.random.default_rng(6).standard_normal((80, 3))
    censored = np.zeros(80, dtype=bool)
    censored[[0, 1, 10, 39, 40, 69, 78, 79]] = True
    keep = np.flatnonzero(~censored)
    spiked_x, spiked_conf = x.copy(), conf.copy()
    spiked_x[censored] += 500.0
    spiked_conf[censored] -= 50.0
    settings = DenoiseSettings.from_dict({"low_pass": 0.1})
    for confounds, spiked in [(None, None), (conf, spiked_conf)]:
        clean = clean_signals(x, 2.0, settings, confounds=confounds, sample_mask=keep)
        dirty = clean_signals(spiked_x, 2.0, settings, confounds=spiked, sample_mask=keep)
        assert clean.shape == (keep.size, 7)
        np.testing.assert_allclose(dirty, clean, rtol=0, atol=1e-9)


def test_clean_signals_equal_nilearn_bit_for_bit() -> None:
    # clean_signals filters every column at once (butterworth__copy); nilearn's default filters
    # column by column in place. Same numbers, to the last bit, with and without scrubbing.
    x = _signals(3)
    conf = np.random.default_rng(4).standard_normal((80, 3))
    settings = DenoiseSettings.from_dict({"low_pass": 0.2})
    mask = np.flatnonzero(np.arange(80) % 9 != 4)
    for confounds, sample_mask in [(None, None), (None, mask), (conf, mask)]:
        got = clean_signals(x, 1.5, settings, confounds=confounds, sample_mask=sample_mask)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = signal.clean(
                x.copy(),
                detrend=True,
                standardize="zscore_sample",
                filter="butterworth",
                low_pass=0.2,
                high_pass=0.01,
                t_r=1.5,
                confounds=confounds,
                sample_mask=None if sample_mask is None else sample_mask.copy(),
            )
        assert got.tobytes() == ref.tobytes()


def test_standardize_semantics() -> None:
    x = _signals(1)
    plain = {"detrend": False, "high_pass": None, "low_pass": None}
    z = clean_signals(x, 2.0, DenoiseSettings.from_dict({**plain, "standardize": "zscore"}))
    np.testing.assert_allclose(z.std(axis=0, ddof=1), 1.0)
    psc = clean_signals(x, 2.0, DenoiseSettings.from_dict({**plain, "standardize": "psc"}))
    np.testing.assert_allclose(psc, 100 * (x - x.mean(0)) / x.mean(0), rtol=1e-10)
    raw = clean_signals(x, 2.0, DenoiseSettings.from_dict({**plain, "standardize": "none"}))
    np.testing.assert_allclose(raw, x)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"strategy": "scrubbing", "fd_threshold": None, "dvars_threshold": None}, "both null"),
        ({"strategy": "aroma"}, "invalid denoise setting at 'strategy'"),
        ({"standardize": "robust"}, "invalid denoise setting at 'standardize'"),
        ({"dvars_threshold": 0}, "invalid denoise setting at 'dvars_threshold'"),
    ],
)
def test_bad_denoise_settings(value: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DenoiseSettings.from_dict(value)


def test_every_strategy_resolves_on_fmriprep_like_confounds(run_files) -> None:
    table = read_confounds(run_files["confounds"], N_VOL)
    meta = read_confounds_metadata(run_files["confounds"])
    for name in STRATEGIES:
        cols = confound_columns(name, table.columns, meta)
        assert len(cols) == len(set(cols)) >= 6, name


@pytest.mark.parametrize("na_rep", ["", "NaN"])
def test_confounds_saved_again_by_pandas_read_as_fmripreps(tmp_path: Path, na_rep: str) -> None:
    """A confounds table read and saved with pandas (empty cells, or NaN, for n/a) excluded
    every run as 'confounds_non_numeric'; nilearn's load_confounds reads it."""
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL, fd_high=FD_HIGH)
    original = read_confounds(files["confounds"], N_VOL)
    raw = pd.read_csv(files["confounds"], sep="\t", na_values=["n/a"], keep_default_na=False)
    raw.to_csv(files["confounds"], sep="\t", index=False, na_rep=na_rep)
    again = read_confounds(files["confounds"], N_VOL)
    pd.testing.assert_frame_equal(again, original)
    columns = confound_columns("24P", again.columns)
    assert np.isfinite(confound_matrix(again, columns, "x.tsv")).all()
