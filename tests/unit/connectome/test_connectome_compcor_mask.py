"""Which aCompCor components the aCompCor strategies regress: those of the combined mask.

fMRIPrep 1.4-20.x number the CSF, WM and combined-mask components in one ``a_comp_cor_`` series,
in mask order, and only the confounds JSON's ``Mask`` tells them apart; fMRIPrep >= 21 names the
CSF and WM ones ``c_comp_cor_`` and ``w_comp_cor_``. nilearn's ``load_confounds`` with
``compcor="anat_combined"`` is the reference.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.connectome import confounds_table, make_fmriprep_run, write_confounds
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

from lcm import reason_codes
from lcm.connectome.confounds import (
    confound_columns,
    read_confounds_metadata,
    supported_strategies,
)
from lcm.exceptions import ExcludedRunError

RUN = "sub-01_task-rest_run-1"
N_VOL = 40
MASKS = ["CSF"] * 5 + ["combined"] * 5 + ["WM"] * 5 + ["combined"] * 2  # 00 .. 16
NILEARN = {
    "acompcor": {
        "strategy": ("motion", "high_pass", "compcor"),
        "motion": "derivatives",
        "compcor": "anat_combined",
        "n_compcor": 5,
    },
    "acompcor_gsr": {
        "strategy": ("motion", "high_pass", "compcor", "global_signal"),
        "motion": "derivatives",
        "global_signal": "basic",
        "compcor": "anat_combined",
        "n_compcor": 5,
    },
}


def _one_series(table, masks: list[str]):
    """``table`` with fMRIPrep 1.4-20.x's single a_comp_cor_ series of ``masks``' components."""
    rng = np.random.default_rng(7)
    table = table[[c for c in table.columns if not c.startswith("a_comp_cor_")]].copy()
    for i in range(len(masks)):
        table[f"a_comp_cor_{i:02d}"] = rng.standard_normal(len(table))
    meta = {
        f"a_comp_cor_{i:02d}": {"Method": "aCompCor", "Mask": mask, "Retained": True}
        for i, mask in enumerate(masks)
    }
    return table, meta


@pytest.fixture
def csf_first(tmp_path: Path) -> dict[str, Path]:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    table, meta = _one_series(confounds_table(N_VOL), MASKS)
    write_confounds(files["confounds"], table)
    files["confounds"].with_suffix(".json").write_text(json.dumps(meta))
    return files


@pytest.mark.parametrize("strategy", sorted(NILEARN))
def test_acompcor_takes_the_combined_mask_components_named_by_the_json(
    csf_first, strategy: str
) -> None:
    """a_comp_cor_00 .. _04 are CSF components here: the strategy takes 05 .. 09, the first five
    of the combined mask, as nilearn's load_confounds(compcor="anat_combined", n_compcor=5)."""
    meta = read_confounds_metadata(csf_first["confounds"])
    have = pd.read_csv(csf_first["confounds"], sep="\t", nrows=0).columns
    ours = confound_columns(strategy, have, meta)
    assert [c for c in ours if c.startswith("a_comp_cor_")] == [
        f"a_comp_cor_{i:02d}" for i in range(5, 10)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = load_confounds(str(csf_first["bold"]), **NILEARN[strategy])
    assert sorted(ours) == sorted(ref.columns)


def test_compcor_preset_takes_every_combined_component(csf_first) -> None:
    have = pd.read_csv(csf_first["confounds"], sep="\t", nrows=0).columns
    ours = confound_columns("compcor", have, read_confounds_metadata(csf_first["confounds"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = load_confounds_strategy(str(csf_first["bold"]), denoise_strategy="compcor")
    assert sorted(ours) == sorted(ref.columns)
    assert [c for c in ours if c.startswith("a_comp_cor_")] == [
        *(f"a_comp_cor_{i:02d}" for i in range(5, 10)),
        "a_comp_cor_15",
        "a_comp_cor_16",
    ]


def test_json_with_fewer_combined_components_takes_them_as_nilearn(tmp_path: Path) -> None:
    """fMRIPrep retains the components of 50 % of the variance: with 3 combined-mask ones the
    strategies take those 3, as nilearn's n_compcor=5 does; with none the run is excluded."""
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    table, meta = _one_series(confounds_table(N_VOL), ["CSF"] * 5 + ["combined"] * 3 + ["WM"])
    write_confounds(files["confounds"], table)
    files["confounds"].with_suffix(".json").write_text(json.dumps(meta))
    three = ["a_comp_cor_05", "a_comp_cor_06", "a_comp_cor_07"]
    ours = confound_columns("acompcor", table.columns, meta)
    assert [c for c in ours if c.startswith("a_comp_cor_")] == three
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, _ = load_confounds(str(files["bold"]), **NILEARN["acompcor"])
    assert sorted(ours) == sorted(ref.columns)
    none = {c: {**m, "Mask": "CSF"} for c, m in meta.items()}
    with pytest.raises(ExcludedRunError, match=r"a_comp_cor_\* \(combined mask\)") as err:
        confound_columns("acompcor", table.columns, none, source="c.tsv")
    assert err.value.code == reason_codes.CONFOUNDS_MISSING_COLUMNS


@pytest.mark.parametrize("strategy", ["acompcor", "acompcor_gsr", "compcor"])
def test_one_series_without_json_is_excluded_naming_the_file_and_the_fix(strategy: str) -> None:
    """Without the JSON nothing tells which of a 1.4-20.x table's components are of the combined
    mask: the run is excluded (no guess), naming the file and the JSON to put beside it; ingest's
    list of the strategies the table serves leaves the aCompCor ones out."""
    table, _ = _one_series(confounds_table(N_VOL), MASKS)
    source = f"{RUN}_desc-confounds_timeseries.tsv"
    with pytest.raises(ExcludedRunError) as err:
        confound_columns(strategy, table.columns, None, source=source)
    assert err.value.code == reason_codes.CONFOUNDS_COMPCOR_MASK_UNKNOWN
    assert source in err.value.message and "no confounds JSON" in err.value.message
    assert f"{RUN}_desc-confounds_timeseries.json" in (err.value.hint or "")
    usable = supported_strategies(table.columns)
    assert "24P" in usable and not {"acompcor", "acompcor_gsr", "compcor"} & set(usable)


def test_split_prefixes_and_six_components_keep_their_columns() -> None:
    """fMRIPrep >= 21 (c_comp_cor_, w_comp_cor_, a_comp_cor_ the combined mask) and tables of at
    most fMRIPrep < 1.4's six combined components: the columns are those taken before, with
    or without the JSON."""
    six = confounds_table(N_VOL)  # a_comp_cor_00 .. _05
    first5 = [f"a_comp_cor_{i:02d}" for i in range(5)]
    modern = six.copy()
    for i in range(8):
        modern[f"a_comp_cor_{i:02d}"] = np.arange(N_VOL) * (i + 1.0)
        modern[f"c_comp_cor_{i:02d}"] = np.arange(N_VOL) * (i + 2.0)
        modern[f"w_comp_cor_{i:02d}"] = np.arange(N_VOL) * (i + 3.0)
    meta = {
        f"{p}_comp_cor_{i:02d}": {"Mask": m, "Retained": True}
        for p, m in (("a", "combined"), ("c", "CSF"), ("w", "WM"))
        for i in range(8)
    }
    for table, md in ((six, None), (modern, None), (modern, meta)):
        got = confound_columns("acompcor", table.columns, md)
        assert [c for c in got if "comp_cor" in c] == first5
        every = [c for c in table.columns if c.startswith("a_comp_cor_")]
        got = confound_columns("compcor", table.columns, md)
        assert [c for c in got if "comp_cor" in c] == every
