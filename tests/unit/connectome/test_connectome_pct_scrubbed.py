"""``pct_scrubbed`` counts censoring after dummy-scan removal, as XCP-D does.

A run with fMRIPrep's 2 non-steady-state volumes and no threshold read 1 % scrubbed (of 200):
those volumes are no data of the run (``n_non_steady_volumes`` counts them), not scrubbed ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.connectome import confounds_table, fmriprep_record, make_fmriprep_run, write_confounds

from lcm.atlas import load_atlas
from lcm.connectome.qc import new_qc
from lcm.connectome.settings import DenoiseSettings
from lcm.connectome.voxel_run import process_voxel_run

RUN = "sub-01_task-rest_run-1"
N_VOL = 48


@pytest.mark.parametrize(
    ("n", "non_steady", "kept", "pct"),
    [(200, 2, 198, 0.0), (200, 2, 188, 5.05), (200, 0, 190, 5.0), (200, None, 190, 5.0)],
)
def test_pct_scrubbed_leaves_non_steady_volumes_out(n, non_steady, kept, pct) -> None:
    qc = new_qc("ds", n_volumes=n, n_volumes_kept=kept, n_non_steady_volumes=non_steady)
    assert qc["pct_scrubbed"] == pct


def test_a_run_with_only_non_steady_volumes_left_out_reads_0_scrubbed(tmp_path: Path) -> None:
    files = make_fmriprep_run(tmp_path / "fmriprep", RUN, n_vol=N_VOL)
    table = confounds_table(N_VOL)
    for i in range(2):
        table[f"non_steady_state_outlier{i:02d}"] = (np.arange(N_VOL) == i).astype(float)
    write_confounds(files["confounds"], table)
    record = fmriprep_record(tmp_path / "rec.json", "ds", [(RUN, files)])
    settings = DenoiseSettings.from_dict(
        {
            "strategy": "6P",
            "fd_threshold": None,
            "dvars_threshold": None,
            "min_volumes": 20,
            "min_dof": None,
        }
    )
    qc = process_voxel_run(
        "ds", record, RUN, load_atlas("aal116"), settings, tmp_path / "conn", tmp_path / "qc.json"
    )
    assert qc["included"], qc["reason"]
    assert qc["n_non_steady_volumes"] == 2 and qc["n_volumes_kept"] == N_VOL - 2
    assert qc["pct_scrubbed"] == 0.0
