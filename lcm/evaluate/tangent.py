"""Tangent-space embedding of connectivity matrices (Varoquaux et al. 2010; Dadi et al. 2019).

Matrices are projected at a reference point, the geometric (Riemannian) mean of the *training*
matrices: ``T = logm(R^-1/2 C R^-1/2)``. The reference is a fitted attribute, so a pipeline
fitted on a training fold never sees a test matrix. nilearn's ``ConnectivityMeasure(kind=
"tangent")`` does the same from time series; the feature store holds correlation matrices, so
this transformer takes those directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from lcm.exceptions import InputDataError

log = logging.getLogger(__name__)


# Matrices processed at once: float64 copies, eigendecompositions and products of one chunk
# at a time (~256 x 116^2 x 8 B = 28 MB per array), not of the whole training stack.
CHUNK = 256


def _eig_apply(mats: np.ndarray, func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``func`` applied to the eigenvalues of symmetric matrices ``(..., R, R)``."""
    vals, vecs = np.linalg.eigh(mats)
    return (vecs * func(vals)[..., None, :]) @ np.swapaxes(vecs, -1, -2)


# Maps a chunk of matrices to the float64 matrices used (:func:`geometric_mean`).
Prepare = Callable[[np.ndarray], np.ndarray]


def _float64(mats: np.ndarray) -> np.ndarray:
    return np.asarray(mats, dtype=np.float64)


def _chunks(mats: np.ndarray, prepare: Prepare = _float64) -> Iterator[np.ndarray]:
    """``prepare`` applied to consecutive chunks of :data:`CHUNK` matrices."""
    for start in range(0, len(mats), CHUNK):
        yield prepare(mats[start : start + CHUNK])


def _mean(chunks: Iterable[np.ndarray], n: int) -> np.ndarray:
    """Mean over the matrices of ``chunks``, added in order as ``ndarray.mean(axis=0)`` does."""
    total = None
    for chunk in chunks:
        for mat in chunk:
            total = mat.copy() if total is None else np.add(total, mat, out=total)
    return total / n


def geometric_mean(
    mats: np.ndarray, max_iter: int = 30, tol: float = 1e-5, prepare: Prepare = _float64
) -> np.ndarray:
    """Riemannian (affine-invariant) geometric mean of SPD matrices ``(n, R, R)``.

    Gradient descent on the manifold from the arithmetic mean, as in nilearn's private
    ``_geometric_mean``; stops when the RMS of the mean tangent vector falls below ``tol``
    (convergence is linear with ratio ~0.1, so ``1e-5`` takes about five iterations).
    ``prepare`` maps a chunk of ``mats`` to the float64 matrices averaged (e.g. shrinks them):
    the matrices are processed :data:`CHUNK` at a time, the gradient (a mean over matrices)
    accumulated, so memory holds a few chunks beside ``mats``.

    Parameters
    ----------
    mats : numpy.ndarray, shape (n, R, R)
        The matrices (symmetric positive definite once ``prepare`` is applied).
    max_iter : int, default 30
        Most gradient steps.
    tol : float, default 1e-5
        Stopping threshold on the RMS of the mean tangent vector.
    prepare : callable, optional
        Maps a chunk ``(m, R, R)`` of ``mats`` to float64 matrices; a float64 copy by default.

    Returns
    -------
    numpy.ndarray, shape (R, R)
    """
    n = len(mats)
    mean = _mean(_chunks(mats, prepare), n)
    for _ in range(max_iter):
        sqrt = _eig_apply(mean, np.sqrt)
        inv_sqrt = _eig_apply(mean, lambda v: 1.0 / np.sqrt(v))
        logs = (_eig_apply(inv_sqrt @ m @ inv_sqrt, np.log) for m in _chunks(mats, prepare))
        grad = _mean(logs, n)
        mean = sqrt @ _eig_apply(grad, np.exp) @ sqrt
        mean = (mean + mean.T) / 2.0
        if np.linalg.norm(grad) / np.sqrt(len(grad)) < tol:
            break
    return mean


class TangentSpace(TransformerMixin, BaseEstimator):
    """Tangent-space vectors of correlation matrices at the training geometric mean.

    Parameters
    ----------
    shrinkage : float, default 0.1
        Each matrix is shrunk towards the identity, ``(1 - s) C + s I``, so that rank-deficient
        correlation matrices (fewer volumes than ROIs) stay positive definite.

    Attributes
    ----------
    reference_ : numpy.ndarray, shape (R, R)
        Geometric mean of the (shrunk) training matrices.
    whitening_ : numpy.ndarray, shape (R, R)
        ``reference_ ** -1/2``.
    """

    def __init__(self, shrinkage: float = 0.1) -> None:
        self.shrinkage = shrinkage

    def _checked(self, fc: np.ndarray) -> np.ndarray:
        fc = np.asarray(fc)
        if fc.ndim != 3 or fc.shape[1] != fc.shape[2]:
            raise InputDataError(
                f"TangentSpace: expected matrices of shape (n, R, R), got {fc.shape}.",
                hint="Pass stacked square correlation matrices.",
            )
        return fc

    def _shrunk(self, fc: np.ndarray) -> np.ndarray:
        """``(1 - s) C + s I`` in float64, of a chunk of matrices."""
        eye = np.eye(fc.shape[1])
        return (1.0 - self.shrinkage) * np.asarray(fc, dtype=np.float64) + self.shrinkage * eye

    def fit(self, fc: np.ndarray, y: np.ndarray | None = None) -> TangentSpace:
        """Fit the reference on ``fc`` (the training matrices only).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Training correlation matrices.
        y : numpy.ndarray, optional
            Not used (scikit-learn's signature).

        Returns
        -------
        TangentSpace
            ``self``, with ``reference_`` and ``whitening_``.

        Raises
        ------
        InputDataError
            When ``fc`` is not ``(n, R, R)``, or a matrix is not positive definite after shrinkage.
        """
        fc = self._checked(fc)
        if any(np.linalg.eigvalsh(m).min() <= 0 for m in _chunks(fc, self._shrunk)):
            raise InputDataError(
                f"TangentSpace: a matrix is not positive definite after shrinkage "
                f"{self.shrinkage}.",
                hint="Raise the shrinkage or exclude runs with constant ROI signals.",
            )
        self.reference_ = geometric_mean(fc, prepare=self._shrunk)
        self.whitening_ = _eig_apply(self.reference_, lambda v: 1.0 / np.sqrt(v))
        return self

    def transform(self, fc: np.ndarray) -> np.ndarray:
        """Upper triangles (diagonal included, off-diagonal scaled by sqrt 2) of the tangent
        matrices, ``(n, R(R+1)/2)``; Euclidean norms of the vectors equal Frobenius norms.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices of the atlas the reference was fitted on.

        Raises
        ------
        InputDataError
            When ``fc`` is not ``(n, R, R)`` or has another number of ROIs than the reference.
        """
        fc = self._checked(fc)
        if fc.shape[1] != self.reference_.shape[0]:
            raise InputDataError(
                f"TangentSpace: {fc.shape[1]} ROIs, the reference has {self.reference_.shape[0]}.",
                hint="Use connectomes of the atlas the transformer was fitted on.",
            )
        rows, cols = np.triu_indices(fc.shape[1])
        scale = np.where(rows == cols, 1.0, np.sqrt(2.0))
        out = np.empty((len(fc), len(rows)))
        for start in range(0, len(fc), CHUNK):
            mats = self._shrunk(fc[start : start + CHUNK])
            tangent = _eig_apply(self.whitening_ @ mats @ self.whitening_, np.log)
            out[start : start + len(mats)] = tangent[:, rows, cols] * scale
        return out
