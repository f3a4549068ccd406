"""Subject-level cross-validation folds and stratified label-fraction subsets.

A subject's runs always fall in the same fold (``StratifiedGroupKFold`` with the subject as
group), and the labeled part of a training fold is chosen per subject, so no subject is half
labeled. Subsets for increasing fractions are nested: the 10 % subset is part of the 50 % one,
which keeps the label-fraction curve free of resampling noise between fractions.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from lcm.exceptions import InputDataError

log = logging.getLogger(__name__)


def subject_labels(y: np.ndarray, groups: np.ndarray) -> pd.Series:
    """The label of each subject: the most frequent label over its runs.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run.

    Returns
    -------
    pandas.Series
        Indexed by subject key, in order of first appearance.
    """
    frame = pd.DataFrame({"group": groups, "y": y})
    # mode() sorts ties; taking the first keeps the choice deterministic.
    labels = frame.groupby("group", sort=False)["y"].agg(lambda s: s.mode().iloc[0])
    return labels.astype(int)


def subject_folds(
    y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds in which every subject lies in exactly one test fold.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
        Class per run (0 or 1).
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run (:attr:`lcm.store.cohort.Cohort.groups`).
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of (train_index, test_index)
        Run indices, each test set disjoint from its training set at the subject level.

    Raises
    ------
    InputDataError
        When a class has fewer subjects than folds.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    per_class = subject_labels(y, groups).value_counts()
    smallest = int(per_class.min()) if len(per_class) else 0
    if len(per_class) < 2 or smallest < n_folds:
        raise InputDataError(
            f"Cannot split into {n_folds} subject-level folds: subjects per class are "
            f"{per_class.sort_index().to_dict()}; each class needs at least {n_folds} subjects.",
            hint="Lower evaluate.n_folds or add labeled subjects to the task's dataset.",
        )
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(train, test) for train, test in cv.split(np.zeros(len(y)), y, groups)]


def labeled_subsets(
    y: np.ndarray,
    groups: np.ndarray,
    fractions: list[float],
    seed: int,
    min_per_class: int = 2,
) -> dict[float, np.ndarray]:
    """Which training runs keep their label, for each label fraction.

    Per class, subjects are shuffled once and the first ``max(min_per_class, round(f * n))``
    keep their labels, so the subsets are stratified, nested across fractions and whole
    subjects at a time.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
        Class per run of the training fold.
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run.
    fractions : list of float
        Label fractions in (0, 1].
    seed : int
        Seed of the subject shuffle.
    min_per_class : int, default 2
        Smallest number of labeled subjects per class.

    Returns
    -------
    dict
        ``fraction -> boolean mask of shape (n_runs,)``, True where the run keeps its label.

    Raises
    ------
    InputDataError
        When a class has fewer than ``min_per_class`` subjects in the training fold.
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    labels = subject_labels(y, groups)
    rng = np.random.default_rng(seed)
    order: dict[int, np.ndarray] = {}
    for cls in sorted(labels.unique()):
        subjects = labels.index[labels == cls].to_numpy()
        if len(subjects) < min_per_class:
            raise InputDataError(
                f"Training fold has {len(subjects)} subject(s) of class {cls}; a label-fraction "
                f"subset needs at least {min_per_class} per class.",
                hint="Lower evaluate.n_folds or add labeled subjects to the task's dataset.",
            )
        order[cls] = rng.permutation(subjects)
    masks: dict[float, np.ndarray] = {}
    for fraction in fractions:
        kept: list[np.ndarray] = []
        for subjects in order.values():
            k = min(len(subjects), max(min_per_class, round(fraction * len(subjects))))
            kept.append(subjects[:k])
        masks[fraction] = np.isin(groups, np.concatenate(kept))
    return masks


def site_folds(
    y: np.ndarray, groups: np.ndarray, sites: np.ndarray, min_per_class: int = 2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-site-out folds: each site is the test fold once.

    A site whose removal leaves the training part with fewer than ``min_per_class`` subjects
    of a class is skipped (logged): no model can be fitted without it.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
        Class per run (0/1), or median-split strata of a continuous target.
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run.
    sites : numpy.ndarray of str, shape (n_runs,)
        Site per run.

    Returns
    -------
    list of (train_index, test_index)
        In sorted site order.

    Raises
    ------
    InputDataError
        When fewer than two sites are named, a subject spans two sites, or no fold is usable.
    """
    sites = np.asarray(sites, dtype=object)
    named = sorted({str(s) for s in sites if s is not None and str(s) not in ("", "nan")})
    if len(named) < 2 or len(named) != len(set(map(str, sites))):
        raise InputDataError(
            f"Leave-site-out needs every run to name a site and at least two sites; got sites "
            f"{sorted(set(map(str, sites)))}.",
            hint="Set evaluate.split: subject, or map site_column in the variable catalogue.",
        )
    per_subject = pd.DataFrame({"g": groups, "s": sites.astype(str)}).groupby("g")["s"].nunique()
    if (per_subject > 1).any():
        raise InputDataError(
            f"Subject {per_subject[per_subject > 1].index[0]!r} has runs at several sites; "
            "leave-site-out would split it across folds.",
            hint="Fix the site column, or set evaluate.split: subject.",
        )
    folds = []
    for site in named:
        test = np.flatnonzero(sites.astype(str) == site)
        train = np.flatnonzero(sites.astype(str) != site)
        counts = subject_labels(np.asarray(y)[train], np.asarray(groups)[train]).value_counts()
        if len(counts) < 2 or int(counts.min()) < min_per_class:
            log.warning(
                "leave-site-out: skipping site %s, its training part has subjects per class %s",
                site, counts.to_dict(),
            )  # fmt: skip
            continue
        folds.append((train, test))
    if not folds:
        raise InputDataError(
            f"Leave-site-out: no site leaves at least {min_per_class} training subjects per class.",
            hint="Set evaluate.split: subject.",
        )
    return folds


def has_sites(sites: np.ndarray) -> bool:
    """Whether every run names a site and at least two sites occur."""
    values = [str(s) for s in np.asarray(sites, dtype=object)]
    named = {v for v in values if v not in ("", "nan", "None")}
    return len(named) >= 2 and len(named) == len(set(values))
