"""Confident diagnosis pseudo-labels (part b of the paper's semi-supervised finetuning).

A first model is finetuned with an inner validation split of the *labelled training* subjects
hidden; on that split the confidence threshold is chosen as the lowest one whose confident
predictions reach a target accuracy. Unlabeled training subjects whose prediction is at least
that confident then count as labelled for the final model. The unit is the subject throughout:
a subject's prediction is the mean of its runs' or windows' probabilities (:func:`subject_means`),
and one pseudo-label applies to all its rows. The test fold is never involved:
everything here sees only the rows given to ``fit``.

A threshold chosen on a handful of validation rows is noise (at a 10 % label fraction the
inner split held ~2 rows, and one lucky row set the threshold). So the inner split is used
only when its validation part holds at least :data:`MIN_VALIDATION_SUBJECTS` subjects with both
classes present; otherwise the first model is trained on every labelled row and the fixed
:data:`FALLBACK_THRESHOLD` applies (:func:`threshold_plan`), which is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Fewer labelled subjects than this: no inner split (the threshold would be noise).
MIN_LABELLED_GROUPS = 6
# Fewest inner validation subjects (both classes among them) to choose the threshold on.
MIN_VALIDATION_SUBJECTS = 8
# Below that: only predictions at least this confident become pseudo-labels. High on purpose:
# a wrong pseudo-label costs more than a missing one when labels are scarce.
FALLBACK_THRESHOLD = 0.95


@dataclass(frozen=True)
class ThresholdPlan:
    """How the confidence threshold is set for one ``fit``.

    Attributes
    ----------
    source : {"inner", "fixed"}
        ``inner``: chosen on ``validation_rows`` (hidden from the first model); ``fixed``:
        :data:`FALLBACK_THRESHOLD`, and ``validation_rows`` is empty.
    validation_rows : numpy.ndarray of int
    """

    source: str
    validation_rows: np.ndarray


def threshold_plan(
    y: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> ThresholdPlan | None:
    """The inner validation split when it is large enough, else the fixed threshold.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n,)
        0/1 labels, -1 for unlabeled rows.
    groups : numpy.ndarray, shape (n,)
        Subject of each row.
    fraction : float
        Share of each class's labelled subjects held out (see :func:`inner_split`).
    seed : int

    Returns
    -------
    ThresholdPlan or None
        None when the labelled rows lack a class (no pseudo-label can be trusted).
    """
    labelled = y >= 0
    if not ((y[labelled] == 0).any() and (y[labelled] == 1).any()):
        return None
    split = inner_split(y, groups, fraction, seed)
    if split is not None:
        val = split[1]
        n_val = len(np.unique(groups[val]))
        if n_val >= MIN_VALIDATION_SUBJECTS and len(np.unique(y[val])) == 2:
            return ThresholdPlan("inner", val)
    n_val = 0 if split is None else len(np.unique(groups[split[1]]))
    # Not a validation split used: the first model trains on every labelled subject, so the
    # record (and the finetuning log) count 0 inner validation subjects.
    log.info(
        "diagnosis pseudo-labels: no inner validation (%s, fewer than %d with both classes): "
        "fixed confidence threshold %.2f",
        f"an inner split would hold {n_val} subject(s)"
        if split is not None
        else f"too few labelled subjects for an inner split (needs {MIN_LABELLED_GROUPS})",
        MIN_VALIDATION_SUBJECTS,
        FALLBACK_THRESHOLD,
    )
    return ThresholdPlan("fixed", np.array([], dtype=np.int64))


def inner_split(
    y: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Stratified, subject-level inner split of the labelled rows.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n,)
        0/1 labels, -1 for unlabeled rows (never chosen).
    groups : numpy.ndarray, shape (n,)
        Subject of each row: all runs of a subject fall on the same side.
    fraction : float
        Share of each class's labelled subjects held out for validation (at least one each).
    seed : int

    Returns
    -------
    (train_rows, validation_rows) or None
        Row indices among the labelled rows; ``None`` with fewer than
        :data:`MIN_LABELLED_GROUPS` labelled subjects or fewer than two of a class.
    """
    labelled = np.flatnonzero(y >= 0)
    rng = np.random.default_rng(seed)
    held: list = []
    for cls in (0, 1):
        subjects = np.unique(groups[labelled][y[labelled] == cls])
        if len(subjects) < 2:
            return None
        held.extend(rng.permutation(subjects)[: max(1, round(fraction * len(subjects)))])
    if len(np.unique(groups[labelled])) < MIN_LABELLED_GROUPS:
        return None
    is_val = np.isin(groups[labelled], held)
    return labelled[~is_val], labelled[is_val]


def choose_threshold(proba: np.ndarray, y: np.ndarray, target_accuracy: float) -> float | None:
    """Lowest confidence threshold whose confident predictions reach ``target_accuracy``.

    Parameters
    ----------
    proba : numpy.ndarray, shape (n, 2)
        Predicted class probabilities of the validation rows.
    y : numpy.ndarray of int, shape (n,)
        Their true labels.
    target_accuracy : float

    Returns
    -------
    float or None
        A predicted probability of the validation set (rows at or above it are "confident");
        ``None`` when no threshold reaches the target.
    """
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    for tau in np.unique(confidence):  # ascending: the first that works keeps the most rows
        chosen = confidence >= tau
        if correct[chosen].mean() >= target_accuracy:
            return float(tau)
    return None


def confident_labels(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    """Predicted class where ``max(proba) >= threshold``, else -1 (all -1 without threshold)."""
    labels = np.full(len(proba), -1, dtype=np.int64)
    if threshold is None:
        return labels
    confident = proba.max(axis=1) >= threshold
    labels[confident] = proba.argmax(axis=1)[confident]
    return labels


def subject_means(
    proba: np.ndarray, groups: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean class probabilities of each subject over its ``rows``.

    A subject's runs or windows are one subject: its pseudo-label, and the threshold's accuracy,
    rest on one prediction, the mean of its rows', not on each row's vote.

    Parameters
    ----------
    proba : numpy.ndarray, shape (n, K)
        Class probabilities of every row.
    groups : numpy.ndarray, shape (n,)
        Subject of each row.
    rows : numpy.ndarray of int
        The rows to average.

    Returns
    -------
    (subjects, mean_proba, inverse)
        Sorted subjects of ``rows``, their mean probabilities ``[s, K]``, and the subject of each
        of ``rows`` as an index into ``subjects``.
    """
    subjects, inverse = np.unique(np.asarray(groups)[rows], return_inverse=True)
    sums = np.zeros((len(subjects), proba.shape[1]))
    np.add.at(sums, inverse, proba[rows])
    counts = np.bincount(inverse, minlength=len(subjects))
    return subjects, sums / counts[:, None], inverse


def cap_labels(
    labels: np.ndarray, proba: np.ndarray, n_labelled: dict[int, int], cap: float | None
) -> np.ndarray:
    """Keep at most ``cap * n_labelled[c]`` pseudo-labels of each class ``c``, most confident first.

    A first model fit on 13 labels pseudo-labelled 53-86 of 115 unlabeled subjects at the fixed
    0.95 threshold: its errors then outnumber the true labels. The cap bounds the pseudo-labels
    by the evidence behind them (``cap`` = 1: no more pseudo-labels of a class than labelled
    subjects of it). Finetuning counts both in subjects: ``labels`` and ``proba`` are one per
    unlabeled subject (:func:`subject_means`), ``n_labelled`` labelled subjects.

    Parameters
    ----------
    labels : numpy.ndarray of int
        Pseudo-labels, -1 where none (:func:`confident_labels`), one per unlabeled subject.
    proba : numpy.ndarray, shape (n, 2)
        The probabilities they came from.
    n_labelled : dict
        Labelled subjects per class.
    cap : float or None
        None: no cap.
    """
    if cap is None:
        return labels
    out = labels.copy()
    confidence = proba.max(axis=1)
    for cls in (0, 1):
        rows = np.flatnonzero(labels == cls)
        keep = int(np.floor(cap * n_labelled.get(cls, 0)))
        if len(rows) > keep:
            order = rows[np.argsort(-confidence[rows], kind="stable")]
            out[order[keep:]] = -1
    return out


# What a fit's diagnosis pseudo-labelling did: ``made`` (it ran; it may have labelled nobody),
# or why it did not run: ``off`` (switched off, or a model trained from scratch),
# ``no_unlabeled`` (every training subject kept its label), ``one_class`` (the labelled
# subjects hold one class). ``continuous`` is a regression's: no diagnosis to pseudo-label.
DIAGNOSIS_STATUSES = ("made", "off", "no_unlabeled", "one_class", "continuous")


def diagnosis_record(
    status: str,
    levels: tuple[str, str],
    *,
    n_unlabeled: int,
    n_unlabeled_rows: int,
    threshold: float | None = None,
    threshold_source: str | None = None,
    inner_validation_rows: list[int] | None = None,
    inner_validation_subjects: int = 0,
    pseudo_labelled_subjects: list[int] | None = None,
    pseudo_labelled_rows: list[int] | None = None,
) -> dict:
    """The outcome of one fit's diagnosis pseudo-labels, the same keys whatever ``status``.

    Parameters
    ----------
    status : str
        One of :data:`DIAGNOSIS_STATUSES`.
    levels : (str, str)
        Names of classes 0 and 1.
    n_unlabeled, n_unlabeled_rows : int
        Subjects none of whose rows is labelled, and their rows.
    threshold : float or None
        The confidence threshold (None: not made, or none reached the target accuracy).
    threshold_source : {"inner", "fixed"} or None
        Chosen on the inner validation split, or :data:`FALLBACK_THRESHOLD`.
    inner_validation_rows : list of int, optional
        Rows hidden from the first model to choose the threshold on (empty when fixed).
    inner_validation_subjects : int, default 0
        Their subjects: 0 with a fixed threshold (no inner split was used).
    pseudo_labelled_subjects, pseudo_labelled_rows : list of int, optional
        Per class (0, 1): subjects and rows pseudo-labelled (zeros when not made).

    Returns
    -------
    dict
        ``status, unit ("subject"), threshold, threshold_source, inner_validation_subjects,
        inner_validation_rows, n_unlabeled, n_unlabeled_rows, n_pseudo_labelled,
        pseudo_labelled_subjects, pseudo_labelled_rows`` (the last two by level name).
    """
    if status not in DIAGNOSIS_STATUSES:
        raise ValueError(f"status: expected one of {DIAGNOSIS_STATUSES}, got {status!r}")
    subjects = pseudo_labelled_subjects or [0, 0]
    rows = pseudo_labelled_rows or [0, 0]
    return {
        "status": status,
        "unit": "subject",
        "threshold": threshold,
        "threshold_source": threshold_source,
        "inner_validation_subjects": int(inner_validation_subjects),
        "inner_validation_rows": list(inner_validation_rows or []),
        "n_unlabeled": int(n_unlabeled),
        "n_unlabeled_rows": int(n_unlabeled_rows),
        "n_pseudo_labelled": int(sum(subjects)),
        "pseudo_labelled_subjects": {str(levels[c]): int(subjects[c]) for c in (0, 1)},
        "pseudo_labelled_rows": {str(levels[c]): int(rows[c]) for c in (0, 1)},
    }
