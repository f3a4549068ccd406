"""Baselines evaluated beside LCM, and the shuffled-label control that must sit at chance.

Binary classifiers: logistic regression, linear SVM and ridge on Fisher-z upper triangles;
tangent-space + logistic regression. Continuous targets: ridge regression and connectome-based
predictive modelling (:mod:`lcm.evaluate.cpm`). Every hyper-parameter (``C``, ``alpha``) is
chosen by an inner, subject-level cross-validation on the labeled runs of the *training fold*
(:func:`inner_splits`); scalers and the tangent reference live inside the fitted estimator, so
they see training runs only.

Interface shared with LCM: ``fit(fc, y, variables, groups=None) -> self``; binary models have
``predict_proba(fc) -> (n, 2)`` and take ``y = -1`` for unlabeled runs, continuous models have
``predict(fc) -> (n,)`` and take ``y = NaN`` for unlabeled runs. ``uses_groups = True`` tells the
protocol to pass the subject key of every run, which keeps a subject's runs in one inner fold.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections import OrderedDict
from typing import Any, Self

import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from lcm.evaluate.context import CONTROL_PERMUTATIONS, ModelContext
from lcm.evaluate.splits import strata, subject_labels
from lcm.evaluate.tangent import TangentSpace
from lcm.exceptions import InputDataError
from lcm.store.layout import fisher_z, matrix_to_vec

log = logging.getLogger(__name__)

INNER_FOLDS = 3
# Permuted refits per fit of the shuffled-label control (see ShuffledLabels).
N_PERMUTATIONS = CONTROL_PERMUTATIONS


def connectome_features(fc: np.ndarray) -> np.ndarray:
    """Fisher-z upper triangles of ``(n, R, R)`` correlation matrices -> ``(n, R(R-1)/2)``.

    Parameters
    ----------
    fc : array-like, shape (n, R, R)
        Correlation matrices.

    Returns
    -------
    numpy.ndarray, shape (n, R(R-1)/2)
    """
    return fisher_z(matrix_to_vec(np.asarray(fc, dtype=np.float64)))


def is_labeled(y: np.ndarray) -> np.ndarray:
    """Runs that keep their target: ``y >= 0`` for 0/1 integer labels, finite for floats.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Targets: 0/1 with -1 for unlabeled (binary), or floats with NaN for unlabeled.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    y = np.asarray(y)
    return np.isfinite(y) if np.issubdtype(y.dtype, np.floating) else y >= 0


def inner_splits(
    y: np.ndarray, groups: np.ndarray | None, seed: int, n_splits: int = INNER_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Subject-level stratified inner folds of the labeled training runs, or ``None``.

    ``None`` when a class (or median half) has fewer than two subjects: then the estimator
    keeps its default hyper-parameter rather than choose one on a single subject.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Targets of the labeled training runs (0/1, or floats split at their median by rank).
    groups : numpy.ndarray or None
        Subject key per run (runs of a subject stay in one fold); None makes each run a subject.
    seed : int
        Seed of the fold shuffle (the fit's seed).
    n_splits : int, optional
        Folds wanted; fewer when the smaller class has fewer subjects.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray) or None
        ``(train, validation)`` row indices per fold.
    """
    y_s = strata(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    per_class = subject_labels(y_s, groups).value_counts()
    k = min(n_splits, int(per_class.min())) if len(per_class) == 2 else 0
    if k < 2:
        return None
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y_s, groups))


def _labeled_rows(
    fc: np.ndarray, y: np.ndarray, groups: np.ndarray | None, who: str, binary: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The labeled rows of ``fc``, ``y`` and ``groups``, checked."""
    fc = np.asarray(fc)
    y = np.asarray(y)
    if fc.ndim != 3 or fc.shape[1] != fc.shape[2] or len(fc) != len(y):
        raise InputDataError(
            f"{who}.fit: expected fc of shape (n, R, R) and y of shape (n,), "
            f"got fc {fc.shape} and y {y.shape}.",
            hint="Pass stacked square connectomes and one target per run.",
        )
    keep = is_labeled(y)
    if binary:
        classes = np.unique(y[keep])
        if not np.array_equal(classes, [0, 1]):
            raise InputDataError(
                f"{who}.fit: labeled training runs must hold both classes 0 and 1, got {classes}.",
                hint="Each label-fraction subset keeps at least two subjects per class.",
            )
    elif keep.sum() < 3:
        raise InputDataError(
            f"{who}.fit: {int(keep.sum())} labeled training run(s); at least 3 are needed.",
            hint="Raise the label fraction or add labeled subjects.",
        )
    g = None if groups is None else np.asarray(groups)[keep]
    return fc[keep], y[keep], g


class _TunedLinear:
    """Scaler + linear model on a feature map, its hyper-parameter chosen by inner CV.

    Subclasses set ``binary``, ``param`` (grid key), ``grid``, ``default`` and ``scoring``, and
    define ``_estimator(value)``; ``_features(fc_train_all, fc)`` maps connectomes to vectors.
    """

    uses_groups = True
    binary = True
    param = "C"
    grid: tuple[float, ...] = ()
    default = 1.0
    scoring = "roc_auc"

    # A memo that permuted refits of one control share (set by ShuffledLabels.fit).
    _shared: dict[Any, Any] | None = None

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @classmethod
    def from_context(cls, context: ModelContext) -> Self:
        """A fresh model for one fit, seeded by the fit's seed (the registry's factory).

        Parameters
        ----------
        context : ModelContext
            The fit's context; only its ``seed`` is used.

        Returns
        -------
        Self
        """
        return cls(seed=context.seed)

    def _estimator(self, value: float) -> Any:
        raise NotImplementedError

    def _fit_features(self, fc: np.ndarray) -> None:
        """Fit anything the feature map learns (on the whole training fold, never test)."""

    def _features(self, fc: np.ndarray) -> np.ndarray:
        return connectome_features(fc)

    def fit(
        self,
        fc: np.ndarray,
        y: np.ndarray,
        variables: pd.DataFrame | None = None,
        groups: np.ndarray | None = None,
    ) -> _TunedLinear:
        """Fit on the labeled runs, choosing the hyper-parameter by inner subject-level CV.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Training-fold connectomes (labeled and unlabeled).
        y : numpy.ndarray, shape (n,)
            0/1 with -1 for unlabeled (binary), or floats with NaN for unlabeled.
        variables : pandas.DataFrame, optional
            Not used.
        groups : numpy.ndarray, optional
            Subject key per run; runs of a subject stay in one inner fold.
        """
        who = type(self).__name__
        self._fit_features(np.asarray(fc))
        x, y_lab, g = _labeled_rows(fc, y, groups, who, self.binary)
        # A control's permuted refits share one memo (ShuffledLabels): their labeled runs are
        # the same, so the features and the scaler of all of them are computed once.
        memo = self._shared if self._shared is not None else {}
        key = ("features", is_labeled(np.asarray(y)).tobytes())
        if key not in memo:
            feats = self._features(x)
            if not np.isfinite(feats).all():
                raise InputDataError(
                    f"{who}.fit: non-finite connectome features (NaN or infinite values).",
                    hint="Exclude runs with NaN connectome entries (constant or missing ROI "
                    "signals).",
                )
            feats.flags.writeable = False  # shared by the permuted refits: never modified
            memo[key] = feats
        # Checked once above: scikit-learn's own finite checks re-scan the features in every
        # inner fit, scaler and scorer (about a fifth of the control's 260 fits per fold).
        with sklearn.config_context(assume_finite=True):
            self._fit_tuned(memo[key], y_lab, g, who, memo)
        self.n_train_ = len(y_lab)
        return self

    def _fit_tuned(
        self,
        feats: np.ndarray,
        y_lab: np.ndarray,
        g: np.ndarray | None,
        who: str,
        memo: dict[Any, Any],
    ) -> None:
        """Choose the hyper-parameter by inner CV, then refit on every labeled run.

        What ``GridSearchCV(make_pipeline(StandardScaler(), estimator), cv=inner folds,
        error_score=nan)`` computes, bit for bit, without refitting each inner fold's scaler
        once per grid value: the best value is the first with the highest mean fold score
        (NaN scores last), and the final model is the scaler and estimator fitted on ``feats``.
        """
        splits = inner_splits(y_lab, g, self.seed)
        if splits is None:
            self.best_param_ = self.default
            log.debug("%s: too few subjects for inner CV, %s=%g", who, self.param, self.default)
        else:
            self.best_param_ = float(self._search(feats, y_lab, splits, who))
            log.debug("%s: inner CV chose %s=%g", who, self.param, self.best_param_)
        key = ("scaled", feats.shape)
        if key not in memo:
            scaler = StandardScaler()
            scaled = scaler.fit_transform(feats)
            scaled.flags.writeable = False  # shared by the permuted refits: never modified
            memo[key] = (scaler, scaled)
        scaler, scaled = memo[key]
        self.model_ = make_pipeline(scaler, self._estimator(self.best_param_).fit(scaled, y_lab))

    def _search(
        self,
        feats: np.ndarray,
        y_lab: np.ndarray,
        splits: list[tuple[np.ndarray, np.ndarray]],
        who: str,
    ) -> float:
        """The grid value of the best mean inner-fold score (GridSearchCV's choice)."""
        scorer = get_scorer(self.scoring)
        scores = np.full((len(self.grid), len(splits)), np.nan)
        failed = 0
        last_error: Exception | None = None
        for j, (train, val) in enumerate(splits):
            # One scaler per inner fold serves every grid value (fitted on its training rows).
            scaler = StandardScaler()
            x_train = scaler.fit_transform(feats[train])
            x_train.flags.writeable = False
            x_val = scaler.transform(feats[val])
            for i, value in enumerate(self.grid):
                try:
                    estimator = self._estimator(value).fit(x_train, y_lab[train])
                except Exception as err:  # GridSearchCV's error_score=nan
                    failed += 1
                    last_error = err
                    continue
                try:
                    scores[i, j] = scorer(estimator, x_val, y_lab[val])
                except Exception as err:  # a fold's score that cannot be computed
                    last_error = err
        if failed == scores.size:
            raise InputDataError(
                f"{who}.fit: every inner-CV fit failed ({failed}); the last error: {last_error}",
                hint="Check the training runs' labels and connectomes.",
            )
        if last_error is not None:
            log.warning("%s: some inner-CV fits or scores failed: %s", who, last_error)
        means = np.average(scores, axis=1)
        if np.isnan(means).all():
            return self.grid[0]
        return self.grid[int(np.argmax(np.where(np.isnan(means), -np.inf, means)))]

    def _step(self) -> str:
        return type(self._estimator(self.default)).__name__.lower()

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise InputDataError(f"{type(self).__name__} is not fitted.", hint="Call fit() first.")

    def decision(self, fc: np.ndarray) -> np.ndarray:
        """Decision values (binary) or predictions (continuous), ``(n,)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.

        Returns
        -------
        numpy.ndarray, shape (n,)

        Raises
        ------
        InputDataError
            When the model is not fitted.
        """
        self._check_fitted()
        feats = self._features(np.asarray(fc))
        if self.binary and hasattr(self.model_, "decision_function"):
            return np.asarray(self.model_.decision_function(feats), dtype=float)
        return np.asarray(self.model_.predict(feats), dtype=float)


class _TunedClassifier(_TunedLinear):
    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """``(n, 2)`` class scores, column 1 the positive class.

        Logistic regression gives probabilities; SVM and ridge give ``sigmoid(decision)``, a
        monotone score whose 0.5 threshold is the classifier's own boundary (AUC and the
        thresholded metrics are exact; the values are not calibrated probabilities).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.

        Returns
        -------
        numpy.ndarray, shape (n, 2)

        Raises
        ------
        InputDataError
            When the model is not fitted.
        """
        self._check_fitted()
        feats = self._features(np.asarray(fc))
        if isinstance(self.model_[-1], LogisticRegression):
            return np.asarray(self.model_.predict_proba(feats), dtype=float)
        p = expit(np.asarray(self.model_.decision_function(feats), dtype=float))
        return np.column_stack([1.0 - p, p])


class ConnectomeLogReg(_TunedClassifier):
    """StandardScaler + L2 logistic regression on Fisher-z upper triangles (``C`` by inner CV)."""

    grid = (0.001, 0.01, 0.1, 1.0)
    default = 0.1

    def _estimator(self, value: float) -> Any:
        return LogisticRegression(C=value, max_iter=2000, random_state=self.seed)


class ConnectomeSVM(_TunedClassifier):
    """StandardScaler + linear SVM (hinge loss) on Fisher-z upper triangles (``C`` by inner CV)."""

    grid = (1e-4, 1e-3, 1e-2, 1e-1)
    default = 1e-3

    def _estimator(self, value: float) -> Any:
        return LinearSVC(C=value, max_iter=5000, random_state=self.seed)


class ConnectomeRidgeClassifier(_TunedClassifier):
    """StandardScaler + ridge classifier on Fisher-z upper triangles (``alpha`` by inner CV)."""

    param = "alpha"
    grid = (10.0, 100.0, 1000.0, 10000.0)
    default = 1000.0

    def _estimator(self, value: float) -> Any:
        return RidgeClassifier(alpha=value)


class TangentLogReg(ConnectomeLogReg):
    """Tangent-space embedding + StandardScaler + logistic regression (``C`` by inner CV).

    The tangent reference (geometric mean) is fitted on every run of the training fold —
    labeled or not, never a test run — before the labeled runs are embedded.
    """

    def _fit_features(self, fc: np.ndarray) -> None:
        self.tangent_ = fitted_tangent(fc)

    def _features(self, fc: np.ndarray) -> np.ndarray:
        return self.tangent_.transform(fc)


# Tangent references of recent training folds. Every label fraction of a fold fits the reference
# on the same runs (labeled or not), and the geometric mean was most of tangent-logreg's time.
_TANGENT_CACHE: OrderedDict[tuple, TangentSpace] = OrderedDict()
_TANGENT_CACHE_SIZE = 4


def fitted_tangent(fc: np.ndarray, shrinkage: float = 0.1) -> TangentSpace:
    """``TangentSpace(shrinkage).fit(fc)``, reused when the same matrices were fitted recently.

    The key is a digest of the matrices' bytes, so only identical training runs share a
    reference (the fitted transformer is never modified afterwards).

    Parameters
    ----------
    fc : numpy.ndarray, shape (n, R, R)
        Training runs' correlation matrices.
    shrinkage : float, optional
        Shrinkage towards the identity (see :class:`lcm.evaluate.tangent.TangentSpace`).

    Returns
    -------
    TangentSpace
    """
    fc = np.ascontiguousarray(fc)
    key = (fc.shape, fc.dtype.str, float(shrinkage), hashlib.blake2b(fc.data).hexdigest())
    if key in _TANGENT_CACHE:
        _TANGENT_CACHE.move_to_end(key)
        return _TANGENT_CACHE[key]
    tangent = TangentSpace(shrinkage=shrinkage).fit(fc)
    _TANGENT_CACHE[key] = tangent
    while len(_TANGENT_CACHE) > _TANGENT_CACHE_SIZE:
        _TANGENT_CACHE.popitem(last=False)
    return tangent


class ConnectomeRidge(_TunedLinear):
    """StandardScaler + ridge regression on Fisher-z upper triangles (``alpha`` by inner CV)."""

    binary = False
    param = "alpha"
    grid = (10.0, 100.0, 1000.0, 10000.0)
    default = 1000.0
    scoring = "r2"

    def _estimator(self, value: float) -> Any:
        return Ridge(alpha=value)

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predicted target ``(n,)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.

        Returns
        -------
        numpy.ndarray, shape (n,)

        Raises
        ------
        InputDataError
            When the model is not fitted.
        """
        return self.decision(fc)


class ShuffledLabels:
    """Control: refit ``estimator`` on targets permuted among the labeled training runs.

    Its AUC (or Pearson r) must sit at chance; if it does not, something leaks between folds.
    One permutation per fold made a poor control: its fold AUC swings by +-0.2 on ~20 test
    subjects, and the mean of five such values sat "significantly" off chance in about one cell
    in six. Here every fit draws ``n_permutations`` independent permutations of the labeled
    targets and refits a fresh clone for each; the protocol scores each permuted model on the
    test fold and averages the metric (:meth:`permutation_predictions`), so the fold's value
    estimates the null expectation instead of one draw of it. Subjects are permuted as units
    (all runs of a subject keep one label), so a multi-run subject cannot straddle classes.
    The protocol also keeps each permutation's own metric: permutation ``i`` over every fold
    is one draw of the null distribution of the unpermuted estimator's metric, whose
    permutation p :func:`lcm.evaluate.compare.permutation_tests` gives, with no further fit.

    Parameters
    ----------
    estimator : object
        A protocol model (``fit(fc, y, variables, groups=None)``); cloned for each permutation.
    seed : int, default 0
        Seed of the permutations.
    n_permutations : int, default 20
        Permuted refits per fit.
    """

    uses_groups = True

    def __init__(self, estimator: Any, seed: int = 0, n_permutations: int = N_PERMUTATIONS) -> None:
        self.estimator = estimator
        self.seed = seed
        self.n_permutations = n_permutations

    def fit(
        self,
        fc: np.ndarray,
        y: np.ndarray,
        variables: pd.DataFrame | None = None,
        groups: np.ndarray | None = None,
    ) -> ShuffledLabels:
        """Fit one clone of the estimator per permutation of the labeled entries of ``y``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Training-fold connectomes (labeled and unlabeled).
        y : numpy.ndarray, shape (n,)
            0/1 with -1 for unlabeled (binary), or floats with NaN for unlabeled.
        variables : pandas.DataFrame, optional
            Passed on to the estimator's ``fit``.
        groups : numpy.ndarray, optional
            Subject key per run: subjects are permuted as units, and passed on to an estimator
            with ``uses_groups``.

        Returns
        -------
        ShuffledLabels
            ``self``, with one fitted clone per permutation in ``estimators_``.

        Raises
        ------
        InputDataError
            When ``n_permutations`` is below 1.
        """
        if self.n_permutations < 1:
            raise InputDataError(
                f"ShuffledLabels: n_permutations must be >= 1, got {self.n_permutations}.",
                hint="Use the default (20).",
            )
        y = np.asarray(y)
        rng = np.random.default_rng(self.seed)
        self.estimators_ = []
        # The permutations keep the labeled runs, so a tuned baseline's features and its scaler
        # on all of them are the same for every refit: computed by the first, shared after.
        memo: dict[Any, Any] = {}
        for _ in range(self.n_permutations):
            estimator = copy.deepcopy(self.estimator)
            permuted = permute_by_subject(y, groups, rng)
            if isinstance(estimator, _TunedLinear):
                estimator._shared = memo
            try:
                if getattr(estimator, "uses_groups", False):
                    estimator.fit(fc, permuted, variables, groups=groups)
                else:
                    estimator.fit(fc, permuted, variables)
            finally:
                if isinstance(estimator, _TunedLinear):
                    estimator._shared = None
            self.estimators_.append(estimator)
        return self

    def permutation_predictions(self, fc: np.ndarray) -> np.ndarray:
        """Predictions of every permuted model: ``(P, n, 2)`` probabilities or ``(P, n)``.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.
        """
        if hasattr(self.estimator, "predict_proba"):
            return np.stack([e.predict_proba(fc) for e in self.estimators_])
        return np.stack([e.predict(fc) for e in self.estimators_])

    def predict_proba(self, fc: np.ndarray) -> np.ndarray:
        """Probabilities of the first permuted model (one genuine null fit).

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.

        Returns
        -------
        numpy.ndarray, shape (n, 2)
        """
        return self.estimators_[0].predict_proba(fc)

    def predict(self, fc: np.ndarray) -> np.ndarray:
        """Predictions of the first permuted model.

        Parameters
        ----------
        fc : numpy.ndarray, shape (n, R, R)
            Connectomes of the runs to predict.

        Returns
        -------
        numpy.ndarray, shape (n,)
        """
        return self.estimators_[0].predict(fc)


def permute_by_subject(
    y: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """``y`` with the labeled subjects' targets permuted among them (unlabeled rows kept).

    Each subject takes the target of another labeled subject for all of its labeled runs.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Targets: 0/1 with -1 for unlabeled (binary), or floats with NaN for unlabeled; not
        modified.
    groups : numpy.ndarray or None
        Subject key per run; None makes each run a subject.
    rng : numpy.random.Generator
        Draws the permutation.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    y = np.array(y)
    labeled = np.flatnonzero(is_labeled(y))
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    subjects, first = np.unique(groups[labeled], return_index=True)
    shuffled = dict(zip(subjects, rng.permutation(y[labeled][first]), strict=True))
    y[labeled] = [shuffled[g] for g in groups[labeled]]
    return y
