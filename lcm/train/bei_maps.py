"""Ridge maps from Fisher-z connectomes to BEI variables, fitted on the pretraining cohorts.

The first half of the ``bei-linear`` baseline (:mod:`lcm.evaluate.bei_linear`), kept apart so
that ``lcm bei-maps`` fits and saves the maps with numpy and scikit-learn only, beside the
pretraining checkpoint of the same cohort (a job of its own: adding or dropping bei-linear
reruns no pretraining).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from lcm.exceptions import CheckpointError, InputDataError
from lcm.io.atomic import atomic_path
from lcm.store.layout import fisher_z, matrix_to_vec, n_edges, roi_names_difference
from lcm.train.outputs import MAPS_FILE  # noqa: F401  (re-exported: the maps' file name)

log = logging.getLogger(__name__)


def connectome_features(fc: np.ndarray) -> np.ndarray:
    """Fisher-z upper triangles ``(n, R(R-1)/2)`` (as the connectome baselines use).

    Parameters
    ----------
    fc : array-like, shape (n, R, R)
        Correlation matrices.

    Returns
    -------
    numpy.ndarray of float64
    """
    return fisher_z(matrix_to_vec(np.asarray(fc, dtype=np.float64)))


ALPHAS = tuple(float(a) for a in np.logspace(0, 6, 13))
HOLDOUT_FRACTION = 0.15
MIN_PRESENT = 10
# The penalty of a map whose hold-out cannot choose one (too few values, or a single value).
DEFAULT_ALPHA = 1e3
# A held-out spread this small relative to the variable's largest magnitude is round-off.
RELATIVE_SPREAD = 1e-9


@dataclass
class BEIMaps:
    """Ridge maps from Fisher-z connectome features to BEI variables.

    Attributes
    ----------
    names : list of str
        One per output column (``age``, ``sex=M``, ``parkinsons=PD`` ...).
    x_mean, x_scale : numpy.ndarray, shape (E,)
        Feature standardisation (pretraining training part).
    coef : numpy.ndarray, shape (E, V)
    intercept : numpy.ndarray, shape (V,)
    alpha : numpy.ndarray, shape (V,)
        Penalty chosen per output on the pretraining hold-out (:data:`DEFAULT_ALPHA` where
        the hold-out cannot score the variable).
    heldout_r2 : numpy.ndarray, shape (V,)
        Hold-out R² of each map at its penalty (how well the variable is read from FC); NaN
        where the variable is not scorable on the hold-out (fewer than 3 values, or one value).
    atlas : str or None
        Atlas of the connectomes the maps were fitted on (``None``: maps written before it was
        recorded).
    roi_names : list of str or None
        Their ROI names in row order: each feature is the edge of two of them, so connectomes
        of another order would be read through the wrong edges (``None``: not recorded).
    data_fingerprint : str or None
        The pretraining cohort's data fingerprint (:func:`lcm.model.checkpoint.cohort_fingerprint`),
        as the checkpoint fitted on the same cohort records it in ``model.json``: maps beside
        a checkpoint of other data are refused (``None``: not recorded).
    """

    names: list[str]
    x_mean: np.ndarray
    x_scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    alpha: np.ndarray
    heldout_r2: np.ndarray
    atlas: str | None = None
    roi_names: list[str] | None = None
    data_fingerprint: str | None = None

    def transform(self, fc: np.ndarray) -> np.ndarray:
        """Predicted variables ``(n, V)`` of connectomes ``(n, R, R)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Correlation matrices, ROIs in :attr:`roi_names` order.

        Returns
        -------
        numpy.ndarray, shape (n, V)
            Columns in :attr:`names` order.
        """
        x = (connectome_features(fc) - self.x_mean) / self.x_scale
        return x @ self.coef + self.intercept

    def save(self, path: str | Path) -> Path:
        """Write the maps as a ``.npz`` (no pickled objects), atomically (:mod:`lcm.io.atomic`:
        a hidden temporary file renamed onto ``path`` once complete).

        Parameters
        ----------
        path : path-like
            The file to write, taken as given (no ``.npz`` is appended).

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        path = Path(path)
        data = {} if self.atlas is None else {"atlas": np.array(self.atlas, dtype=str)}
        if self.roi_names is not None:
            data["roi_names"] = np.array(self.roi_names, dtype=str)
        if self.data_fingerprint is not None:
            data["data_fingerprint"] = np.array(self.data_fingerprint, dtype=str)
        # Through an open file: given a name without .npz, np.savez would append one.
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                names=np.array(self.names, dtype=str),
                x_mean=self.x_mean,
                x_scale=self.x_scale,
                coef=self.coef,
                intercept=self.intercept,
                alpha=self.alpha,
                heldout_r2=self.heldout_r2,
                **data,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> BEIMaps:
        """Read maps written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            A ``.npz`` file of :meth:`save`.

        Returns
        -------
        BEIMaps
            ``atlas``, ``roi_names`` and ``data_fingerprint`` None where the file predates them.

        Raises
        ------
        InputDataError
            The file is missing, unreadable or lacks an array.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    names=[str(n) for n in z["names"]],
                    x_mean=z["x_mean"],
                    x_scale=z["x_scale"],
                    coef=z["coef"],
                    intercept=z["intercept"],
                    alpha=z["alpha"],
                    heldout_r2=z["heldout_r2"],
                    # Absent from maps written before they were recorded.
                    atlas=str(z["atlas"]) if "atlas" in z.files else None,
                    roi_names=[str(n) for n in z["roi_names"]] if "roi_names" in z.files else None,
                    data_fingerprint=(
                        str(z["data_fingerprint"]) if "data_fingerprint" in z.files else None
                    ),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputDataError(
                f"Cannot read the BEI ridge maps {path}: {exc}",
                hint="Rerun `lcm bei-maps`, which writes them beside the checkpoint.",
            ) from exc

    def check_fits(
        self, source: str | Path, atlas: str | None = None, roi_names: list[str] | None = None
    ) -> None:
        """Refuse connectomes of another atlas, ROI count or ROI order than the maps'.

        Parameters
        ----------
        source : path-like
            Where the maps come from (named in errors).
        atlas : str, optional
            Atlas of the data the maps are to read.
        roi_names : list of str, optional
            Their ROI names in row order. Maps that record none (written before the record)
            are checked for the ROI count only.

        Raises
        ------
        CheckpointError
            A mismatch: the maps would read every edge as another pair of regions.
        """
        hint = (
            "Rerun `lcm pretrain` and `lcm bei-maps` on this store's atlas, or rebuild the "
            "store with the maps' atlas and its labels order."
        )
        if atlas is not None and self.atlas is not None and atlas != self.atlas:
            raise CheckpointError(
                f"BEI ridge maps {source} were fitted on atlas {self.atlas!r}, the data use "
                f"{atlas!r}.",
                hint=hint,
            )
        if roi_names is None:
            return
        if self.roi_names is None:
            log.debug("maps %s record no ROI names: only the ROI count is checked", source)
            if len(self.x_mean) != n_edges(len(roi_names)):
                raise CheckpointError(
                    f"BEI ridge maps {source} read {len(self.x_mean)} edges, the data's "
                    f"{len(roi_names)} ROIs have {n_edges(len(roi_names))}.",
                    hint=hint,
                )
            return
        difference = roi_names_difference(self.roi_names, list(roi_names), "the maps")
        if difference is not None:
            raise CheckpointError(
                f"BEI ridge maps {source} were fitted on other ROIs than the data's: {difference}.",
                hint=hint,
            )


def bei_target_matrix(variables: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Targets ``(n, V)`` (NaN where missing) and their names, from catalogue-typed variables.

    Numeric columns (float: continuous, ordinal) are kept as they are; object columns (levels of
    binary and categorical variables) become one 0/1 indicator per level (a binary variable
    keeps one). Columns with fewer than :data:`MIN_PRESENT` values, or constant, are dropped.

    Parameters
    ----------
    variables : pandas.DataFrame
        Catalogue-typed variables, one row per run (:attr:`lcm.store.cohort.Cohort.variables`).

    Returns
    -------
    targets : numpy.ndarray, shape (n, V)
    names : list of str
        ``variable`` for a numeric column, ``variable=level`` for an indicator; empty (and
        ``targets`` of width 0) when no column is kept.
    """
    cols, names = [], []
    for name in variables.columns:
        col = variables[name]
        if pd.api.types.is_numeric_dtype(col):
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            cols.append(values)
            names.append(str(name))
            continue
        present = col.notna().to_numpy()
        levels = sorted({str(v) for v in col[present]})
        for level in levels[1:] if len(levels) == 2 else levels:
            values = np.where(present, (col.astype(str) == level).to_numpy(float), np.nan)
            cols.append(values)
            names.append(f"{name}={level}")
    keep = [
        i for i, c in enumerate(cols) if np.isfinite(c).sum() >= MIN_PRESENT and np.nanstd(c) > 0
    ]
    if not keep:
        return np.zeros((len(variables), 0)), []
    return np.column_stack([cols[i] for i in keep]), [names[i] for i in keep]


def _ridge_path(
    x: np.ndarray, y: np.ndarray, x_val: np.ndarray, alphas: tuple[float, ...]
) -> np.ndarray:
    """Held-out predictions ``(A, n_val, V)`` of ridge (no intercept: centred data) per alpha.

    One eigendecomposition serves every alpha and output: of ``X X^T`` when samples are fewer
    than features, else of ``X^T X``.
    """
    n, p = x.shape
    out = np.empty((len(alphas), len(x_val), y.shape[1]))
    if n <= p:
        evals, q = np.linalg.eigh(x @ x.T)
        qty = q.T @ y  # (n, V)
        kv = x_val @ x.T @ q  # (n_val, n)
        for a, alpha in enumerate(alphas):
            out[a] = kv @ (qty / (evals + alpha)[:, None])
    else:
        evals, v = np.linalg.eigh(x.T @ x)
        vtxty = v.T @ (x.T @ y)  # (p, V)
        xv = x_val @ v
        for a, alpha in enumerate(alphas):
            out[a] = xv @ (vtxty / (evals + alpha)[:, None])
    return out


def _not_scorable(values: np.ndarray, scale: float) -> str | None:
    """Why a variable's held-out ``values`` cannot score a map (``None`` when they can).

    R² divides by their spread: fewer than 3 values, a single value, or a spread at round-off
    level of the variable's ``scale`` (a constant whose centred copy differs in the last bit)
    gave nonsense such as an R² of -3e31.
    """
    if len(values) < 3:
        return f"{len(values)} value(s)"
    if len(np.unique(values)) < 2 or np.ptp(values) <= RELATIVE_SPREAD * max(scale, 1e-300):
        return "a single value"
    return None


def fit_bei_maps(
    fc: np.ndarray,
    variables: pd.DataFrame,
    groups: np.ndarray,
    seed: int = 0,
    alphas: tuple[float, ...] = ALPHAS,
    *,
    atlas: str | None = None,
    roi_names: list[str] | None = None,
    data_fingerprint: str | None = None,
) -> BEIMaps:
    """Fit one ridge map per BEI variable on a pretraining cohort.

    Parameters
    ----------
    fc : numpy.ndarray, shape (n, R, R)
    variables : pandas.DataFrame
        ``n`` rows of catalogue variables (the pretraining cohort's).
    groups : numpy.ndarray, shape (n,)
        Subject of each row: the hold-out choosing each penalty is subject-level.
    seed : int
    alphas : tuple of float
        Candidate penalties (on standardised features).
    atlas : str, optional
    roi_names : list of str, optional
        The atlas and ROI order of ``fc``, recorded in the maps so that they refuse
        connectomes of others (:meth:`BEIMaps.check_fits`).
    data_fingerprint : str, optional
        The cohort's fingerprint, recorded (:attr:`BEIMaps.data_fingerprint`).

    Returns
    -------
    BEIMaps
        Fitted on the training part with the penalty chosen on the held-out part; a missing
        target is imputed by its training mean (which only shrinks its map).
    """
    y, names = bei_target_matrix(variables.reset_index(drop=True))
    if not names:
        raise InputDataError(
            "bei-linear: the pretraining cohort has no BEI variable with enough values.",
            hint="Check the pretraining datasets' phenotype files.",
        )
    feats = connectome_features(fc)
    subjects = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_out = max(1, round(HOLDOUT_FRACTION * len(subjects))) if len(subjects) >= 10 else 0
    held = np.isin(groups, rng.permutation(subjects)[:n_out])
    train = ~held if n_out else np.ones(len(groups), dtype=bool)
    x_mean = feats[train].mean(axis=0)
    x_scale = feats[train].std(axis=0)
    x_scale[x_scale == 0] = 1.0
    x = (feats - x_mean) / x_scale
    y_mean = np.nanmean(y[train], axis=0)
    y_c = np.where(np.isfinite(y), y - y_mean, 0.0)
    alpha = np.full(len(names), DEFAULT_ALPHA)
    r2 = np.full(len(names), np.nan)
    unscorable: dict[str, str] = {}
    if n_out:
        pred = _ridge_path(x[train], y_c[train], x[held], alphas)
        truth, present = y_c[held], np.isfinite(y[held])
        for v in range(len(names)):
            ok = present[:, v]
            why = _not_scorable(y[held][ok, v], np.nanmax(np.abs(y[:, v])))
            if why:
                unscorable[names[v]] = why
                continue
            sse = ((pred[:, ok, v] - truth[ok, v][None]) ** 2).sum(axis=1)
            best = int(np.argmin(sse))
            alpha[v] = alphas[best]
            sst = ((truth[ok, v] - truth[ok, v].mean()) ** 2).sum()
            r2[v] = 1.0 - sse[best] / sst
    coef = np.empty((x.shape[1], len(names)))
    for a in np.unique(alpha):  # one fit per distinct penalty, all its outputs at once
        cols = np.flatnonzero(alpha == a)
        model = Ridge(alpha=float(a), fit_intercept=False, solver="auto")
        model.fit(x[train], y_c[train][:, cols])
        coef[:, cols] = np.atleast_2d(model.coef_).T
    log.info(
        "bei-linear maps: %s",
        ", ".join(
            f"{n} (alpha {a:g}, held-out R2 {r:.2f})"
            if n not in unscorable
            else f"{n} (alpha {a:g} by default, not scorable on the hold-out: {unscorable[n]})"
            for n, a, r in zip(names, alpha, r2, strict=True)
        ),
    )
    roi_names = None if roi_names is None else [str(n) for n in roi_names]
    return BEIMaps(
        names, x_mean, x_scale, coef, y_mean, alpha, r2, atlas, roi_names, data_fingerprint
    )
