"""How a connectome is laid out in the feature store: the strict upper triangle, row-major.

An ``R x R`` symmetric matrix is stored as its ``R * (R - 1) / 2`` entries above the diagonal
(``numpy.triu_indices(R, k=1)`` order); the diagonal of a correlation matrix carries no information.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np


def labels_identity(names: list[str]) -> str:
    """Identity of a parcellation from its ordered ROI names (hex sha256, first 16 digits).

    Stored with connectomes (relmat sidecars ``AtlasIdentity``, store metadata
    ``lcm.atlas_identity``) so that a reader tells two parcellations apart without comparing
    every name; here rather than in :mod:`lcm.atlas` so the store needs no imaging library.

    Parameters
    ----------
    names : list of str
        ROI names in atlas order; each is stripped of surrounding whitespace first.

    Returns
    -------
    str
    """
    text = json.dumps([str(n).strip() for n in names], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def roi_names_difference(expected: list[str], given: list[str], source: str) -> str | None:
    """Where two ordered ROI name lists differ, in words; ``None`` when they are the same.

    Names compare as :func:`labels_identity` reads them (stripped strings). A model or map
    fitted on one ROI order reads another order's connectomes without any error, each token
    or edge then standing for the wrong region: the order matters, not only the set.

    Parameters
    ----------
    expected : list of str
        The ROI names a model was fitted on (its checkpoint or maps file records them).
    given : list of str
        The ROI names of the data it is to read.
    source : str
        Where ``expected`` come from, in words (``"the checkpoint"``).

    Returns
    -------
    str or None
        E.g. ``"ROI 0 is 'roi12' in the checkpoint, 'roi0' in the data (same names in another
        order)"``.
    """
    a, b = [str(n).strip() for n in expected], [str(n).strip() for n in given]
    if a == b:
        return None
    if len(a) != len(b):
        return f"{len(a)} ROI names in {source}, {len(b)} in the data"
    i = next(k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    same_set = "same names in another order" if sorted(a) == sorted(b) else "other names"
    return f"ROI {i} is {a[i]!r} in {source}, {b[i]!r} in the data ({same_set})"


def n_edges(n_rois: int) -> int:
    """Number of stored entries for ``n_rois`` regions.

    Parameters
    ----------
    n_rois : int
        Number of regions ``R``.

    Returns
    -------
    int
        ``R * (R - 1) / 2``, the upper triangle without the diagonal.
    """
    return n_rois * (n_rois - 1) // 2


def n_rois_from_edges(edges: int) -> int:
    """Invert :func:`n_edges`; raise ``ValueError`` when ``edges`` is not triangular.

    Parameters
    ----------
    edges : int
        Length of a stored upper triangle.

    Returns
    -------
    int
        The number of regions ``R`` with ``R * (R - 1) / 2 == edges``.
    """
    n = round((1 + math.sqrt(1 + 8 * edges)) / 2)
    if n_edges(n) != edges:
        raise ValueError(f"{edges} is not R*(R-1)/2 for any whole number of regions R")
    return n


def matrix_to_vec(matrix: np.ndarray) -> np.ndarray:
    """``(..., R, R)`` symmetric matrices -> ``(..., R*(R-1)/2)`` upper triangles.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (..., R, R)
        Symmetric matrices; only the upper triangle is read.

    Returns
    -------
    numpy.ndarray, shape (..., R*(R-1)/2)
        Row-major upper triangles (``numpy.triu_indices(R, k=1)`` order), dtype kept.
    """
    r = matrix.shape[-1]
    iu = np.triu_indices(r, k=1)
    return matrix[..., iu[0], iu[1]]


def vec_to_matrix(vec: np.ndarray, n_rois: int | None = None, diagonal: float = 1.0) -> np.ndarray:
    """``(..., E)`` upper triangles -> ``(..., R, R)`` symmetric matrices with ``diagonal``.

    Parameters
    ----------
    vec : array-like, shape (..., E)
        Upper triangles in :func:`matrix_to_vec` order.
    n_rois : int, optional
        Number of regions; None infers it from ``E`` (:func:`n_rois_from_edges`).
    diagonal : float, default 1.0
        The value written on the diagonal.

    Returns
    -------
    numpy.ndarray, shape (..., R, R)
        Of ``vec``'s dtype.
    """
    vec = np.asarray(vec)
    r = n_rois if n_rois is not None else n_rois_from_edges(vec.shape[-1])
    out = np.zeros((*vec.shape[:-1], r, r), dtype=vec.dtype)
    iu = np.triu_indices(r, k=1)
    out[..., iu[0], iu[1]] = vec
    out[..., iu[1], iu[0]] = vec
    idx = np.arange(r)
    out[..., idx, idx] = diagonal
    return out


def fisher_z(r: np.ndarray, clip: float = 0.999999) -> np.ndarray:
    """Fisher z-transform ``arctanh(r)`` in float64, clipping ``|r|`` below 1 to keep it finite.

    The one implementation: edge vectors here, whole matrices through
    :func:`lcm.connectome.relmat.fisher_z_matrix` (which zeroes the diagonal).

    Parameters
    ----------
    r : array-like
        Correlations.
    clip : float, default 0.999999
        ``r`` is clipped to ``[-clip, clip]`` first.

    Returns
    -------
    numpy.ndarray of float64
        Of ``r``'s shape.
    """
    return np.arctanh(np.clip(np.asarray(r, dtype=np.float64), -clip, clip))
