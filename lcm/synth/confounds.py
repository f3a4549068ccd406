"""A confounds table with fMRIPrep's column names and conventions.

Columns (fMRIPrep 25 names): ``global_signal``, ``csf``, ``white_matter`` and the six motion
parameters, each with ``_derivative1``, ``_power2`` and ``_derivative1_power2``;
``std_dvars``, ``dvars``, ``framewise_displacement``; ``a_comp_cor_00``..``05``; ``cosine_XX``
(discrete cosine basis for a 128 s high-pass); one ``motion_outlier_XX`` spike regressor per
volume with framewise displacement above 0.5 mm (fMRIPrep also flags std_dvars > 1.5; the stand-in
flags FD only). The first row of every derivative, of FD and of DVARS is missing (``n/a``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MOTION = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
N_ACOMPCOR = 6
FD_OUTLIER_MM = 0.5
HIGH_PASS_PERIOD_S = 128.0


def expand(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """``name``, ``name_derivative1``, ``name_power2``, ``name_derivative1_power2``.

    Parameters
    ----------
    name : str
        The column's fMRIPrep name (``global_signal``, ``csf``, ``trans_x`` ...).
    values : numpy.ndarray, shape (n_volumes,)
        The column's values.

    Returns
    -------
    dict of str to numpy.ndarray
        The four columns by name; the derivatives' first value is NaN.
    """
    values = np.asarray(values, dtype=float)
    deriv = np.concatenate([[np.nan], np.diff(values)])
    return {
        name: values,
        f"{name}_derivative1": deriv,
        f"{name}_power2": values**2,
        f"{name}_derivative1_power2": deriv**2,
    }


def cosine_basis(n_volumes: int, tr: float) -> np.ndarray:
    """DCT-II regressors below 1/128 Hz (as fMRIPrep), shape (n_volumes, n), constant excluded.

    Parameters
    ----------
    n_volumes : int
        Volumes in the run.
    tr : float
        Repetition time in seconds.
    """
    n = int(np.floor(2 * n_volumes * tr / HIGH_PASS_PERIOD_S))
    t = np.arange(n_volumes)
    basis = [
        np.sqrt(2.0 / n_volumes) * np.cos(np.pi * (t + 0.5) * k / n_volumes)
        for k in range(1, n + 1)
    ]
    return np.array(basis).T if basis else np.zeros((n_volumes, 0))


def acompcor(
    noise_pool: np.ndarray, n_components: int = N_ACOMPCOR
) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of a (n_volumes, n_voxels) noise pool, as fMRIPrep's aCompCor.

    Columns are mean-centred and linearly detrended first; each component has unit norm and a
    fixed sign (largest absolute entry positive) so reruns give identical files.

    Parameters
    ----------
    noise_pool : numpy.ndarray, shape (n_volumes, n_voxels)
        Signals of the white-matter and CSF voxels the components are drawn from.
    n_components : int, optional
        Components kept (fMRIPrep's six ``a_comp_cor_XX`` columns by default).

    Returns
    -------
    components : numpy.ndarray, shape (n_volumes, n_components)
    singular_values : numpy.ndarray, shape (n_components,)
    """
    t = np.linspace(-1, 1, noise_pool.shape[0])
    design = np.column_stack([np.ones_like(t), t])
    resid = noise_pool - design @ np.linalg.lstsq(design, noise_pool, rcond=None)[0]
    u, s, _ = np.linalg.svd(resid, full_matrices=False)
    u = u[:, :n_components]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    return u * signs, s


def dvars(bold: np.ndarray, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardised DVARS of (n_volumes, n_voxels) data; first value NaN.

    ``std_dvars`` divides by the DVARS expected without artefact, estimated from each voxel's
    robust standard deviation and lag-1 autocorrelation (Nichols' standardisation). Voxels are
    read in blocks of ``block`` (any dtype, integers included), so memory stays bounded.

    Parameters
    ----------
    bold : numpy.ndarray, shape (n_volumes, n_voxels)
        The run's brain voxels.
    block : int, optional
        Voxels read at a time.

    Returns
    -------
    dvars : numpy.ndarray, shape (n_volumes,)
        Root mean square of the volume-to-volume differences, in the data's units.
    std_dvars : numpy.ndarray, shape (n_volumes,)
        ``dvars`` divided by its expected value without artefact.
    """
    n_vol, n_vox = bold.shape
    sq_diff = np.zeros(n_vol - 1)
    expected_sq = 0.0
    for lo in range(0, n_vox, block):
        x = bold[:, lo : lo + block].astype(np.float64)
        sq_diff += (np.diff(x, axis=0) ** 2).sum(axis=1)
        q75, q25 = np.percentile(x, [75, 25], axis=0)
        sd = (q75 - q25) / 1.349
        centred = x - x.mean(axis=0)
        denom = np.maximum((centred**2).sum(axis=0), 1e-12)
        ar1 = (centred[1:] * centred[:-1]).sum(axis=0) / denom
        expected_sq += float((sd**2 * 2 * (1 - ar1)).sum())
    raw = np.sqrt(sq_diff / n_vox)
    expected = np.sqrt(expected_sq / n_vox)
    return np.concatenate([[np.nan], raw]), np.concatenate([[np.nan], raw / expected])


def confounds_table(
    *,
    global_signal: np.ndarray,
    csf: np.ndarray,
    white_matter: np.ndarray,
    motion: np.ndarray,
    fd: np.ndarray,
    dvars_raw: np.ndarray,
    dvars_std: np.ndarray,
    compcor: np.ndarray,
    tr: float,
) -> pd.DataFrame:
    """Assemble the confounds table (NaN where fMRIPrep writes ``n/a``).

    Parameters
    ----------
    global_signal, csf, white_matter : numpy.ndarray, shape (n_volumes,)
        Mean signal of the brain, of the CSF and of the white matter.
    motion : numpy.ndarray, shape (n_volumes, 6)
        Head motion: translations in millimetres, then rotations in radians (``MOTION`` order).
    fd : numpy.ndarray, shape (n_volumes,)
        Framewise displacement in millimetres; its first value is written as missing.
    dvars_raw, dvars_std : numpy.ndarray, shape (n_volumes,)
        DVARS and standardised DVARS, as :func:`dvars` returns them.
    compcor : numpy.ndarray, shape (n_volumes, n_components)
        aCompCor components, as :func:`acompcor` returns them.
    tr : float
        Repetition time in seconds (sets the number of cosine regressors).

    Returns
    -------
    pandas.DataFrame
        One row per volume, fMRIPrep's columns (see the module docstring).
    """
    n = len(fd)
    cols: dict[str, np.ndarray] = {}
    cols.update(expand("global_signal", global_signal))
    cols.update(expand("csf", csf))
    cols.update(expand("white_matter", white_matter))
    cols["std_dvars"] = dvars_std
    cols["dvars"] = dvars_raw
    fd_col = np.asarray(fd, dtype=float).copy()
    fd_col[0] = np.nan
    cols["framewise_displacement"] = fd_col
    for i in range(compcor.shape[1]):
        cols[f"a_comp_cor_{i:02d}"] = compcor[:, i]
    cosines = cosine_basis(n, tr)
    for i in range(cosines.shape[1]):
        cols[f"cosine_{i:02d}"] = cosines[:, i]
    for j, name in enumerate(MOTION):
        cols.update(expand(name, motion[:, j]))
    for i, vol in enumerate(np.flatnonzero(fd_col > FD_OUTLIER_MM)):
        spike = np.zeros(n)
        spike[vol] = 1.0
        cols[f"motion_outlier_{i:02d}"] = spike
    # Ten significant digits: exact enough, and identical text on every platform.
    return pd.DataFrame({k: _round(v) for k, v in cols.items()})


def confounds_sidecar(singular_values: np.ndarray, n_components: int) -> dict[str, Any]:
    """fMRIPrep-style metadata of the aCompCor columns (read by nilearn's load_confounds).

    Parameters
    ----------
    singular_values : numpy.ndarray
        Singular values of the noise pool, as :func:`acompcor` returns them (all of them: the
        variance explained is relative to their sum).
    n_components : int
        Components described (the ``a_comp_cor_XX`` columns of the table).

    Returns
    -------
    dict
        One entry per ``a_comp_cor_XX`` column.
    """
    var = singular_values**2
    explained = var / var.sum()
    cumulative = np.cumsum(explained)
    return {
        f"a_comp_cor_{i:02d}": {
            "Method": "aCompCor",
            "Mask": "combined",
            "Retained": True,
            "SingularValue": round(float(singular_values[i]), 6),
            "VarianceExplained": round(float(explained[i]), 6),
            "CumulativeVarianceExplained": round(float(cumulative[i]), 6),
        }
        for i in range(n_components)
    }


def _round(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(values == 0, 0, np.floor(np.log10(np.abs(values))))
    mag = np.nan_to_num(mag)
    return np.array(
        [round(v, int(9 - m)) if np.isfinite(v) else v for v, m in zip(values, mag, strict=True)]
    )
