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
only when its validation part holds at least :data:`MIN_CLASS_VALIDATION` subjects of each
class (and :data:`MIN_VALIDATION_SUBJECTS` in all); otherwise the first model is trained on
every labelled row, the fixed :data:`FALLBACK_THRESHOLD` applies and each class keeps at most
:data:`FALLBACK_CAP` pseudo-labels per labelled subject of it, as many per labelled subject as
the other class (:func:`threshold_plan`, :func:`ratio_cap`), which is logged.

The threshold is chosen per predicted class, on a criterion the class balance cannot meet by
itself (:func:`choose_thresholds`). Overall accuracy could: with 5-12 % cases a first model
calling everyone "control" scored 0.88-0.95 on the inner validation subjects, passed the 0.9
target, and every unlabelled subject (most hidden cases among them) became a control; a model
with no information passed too.
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
# Fewest inner validation subjects of each class: a class's pseudo-labels are checked on its
# own subjects, and their errors on the other class's (one case among ten validation subjects
# decided whether every unlabelled subject became a control).
MIN_CLASS_VALIDATION = 4
# Below that: only predictions at least this confident become pseudo-labels. High on purpose:
# a wrong pseudo-label costs more than a missing one when labels are scarce.
FALLBACK_THRESHOLD = 0.95
# ... and, the threshold being unchecked, at most this many pseudo-labels of a class per
# labelled subject of it (with the user's ``pseudo_label_cap`` if lower), the same number per
# labelled subject for both classes (:func:`ratio_cap`): they keep the labelled class ratio
# and never outnumber the labels.
FALLBACK_CAP = 1.0


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
    per_class = {
        c: len(np.unique(groups[labelled & (y == c)])) for c in (0, 1)
    }  # labelled subjects of each class
    if split is not None:
        val = split[1]
        n_val = len(np.unique(groups[val]))
        val_class = {c: len(np.unique(groups[val][y[val] == c])) for c in (0, 1)}
        if n_val >= MIN_VALIDATION_SUBJECTS and min(val_class.values()) >= MIN_CLASS_VALIDATION:
            return ThresholdPlan("inner", val)
        why = (
            f"an inner split would hold {n_val} subject(s), {val_class[0]} of class 0 and "
            f"{val_class[1]} of class 1 (needs {MIN_VALIDATION_SUBJECTS}, at least "
            f"{MIN_CLASS_VALIDATION} of each class)"
        )
    elif min(per_class.values()) < 2:
        small = min(per_class, key=per_class.get)
        why = (
            f"class {small} has {per_class[small]} labelled subject(s), too few for an inner "
            f"split (needs 2 of each class)"
        )
    else:
        why = (
            f"{sum(per_class.values())} labelled subjects, too few for an inner split "
            f"(needs {MIN_LABELLED_GROUPS})"
        )
    # Not a validation split used: the first model trains on every labelled subject, so the
    # record (and the finetuning log) count 0 inner validation subjects.
    log.info(
        "diagnosis pseudo-labels: no inner validation (%s): fixed confidence threshold %.2f, "
        "at most %g pseudo-label(s) per labelled subject of each class, as many per labelled "
        "subject for both",
        why,
        FALLBACK_THRESHOLD,
        FALLBACK_CAP,
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


def balanced_precision(predicted: np.ndarray, y: np.ndarray, cls: int) -> tuple[float, int, int]:
    """Precision of ``cls`` among ``predicted`` as if the classes were balanced, smoothed.

    ``TPR / (TPR + FPR)``: the share of subjects predicted ``cls`` that are truly ``cls`` when
    both classes weigh the same, so that the majority class cannot reach it by its prevalence
    (calling all 95 controls and 5 cases "control" has accuracy 0.95, balanced precision 0.5).
    Both rates are Jeffreys-smoothed (``(k + 0.5) / (n + 1)``): a handful of validation
    subjects with no error does not prove a precision of 1 (a model with no information found
    a high threshold above which, by chance, no case fell).

    Parameters
    ----------
    predicted : numpy.ndarray of bool, shape (n,)
        The validation subjects confidently predicted ``cls``.
    y : numpy.ndarray of int, shape (n,)
        Their true classes (0/1).
    cls : int

    Returns
    -------
    (precision, true, false)
        The smoothed balanced precision, and the subjects predicted ``cls`` rightly and wrongly.
    """
    own, other = y == cls, y != cls
    true, false = int((predicted & own).sum()), int((predicted & other).sum())
    tpr = (true + 0.5) / (own.sum() + 1)
    fpr = (false + 0.5) / (other.sum() + 1)
    return float(tpr / (tpr + fpr)), true, false


def choose_thresholds(
    proba: np.ndarray, y: np.ndarray, target_precision: float
) -> dict[int, float | None]:
    """Per class, the lowest confidence threshold whose pseudo-labels reach the target precision.

    For each class ``c``, among the validation subjects predicted ``c`` at least as confidently
    as the threshold, the :func:`balanced_precision` of ``c`` must reach ``target_precision``
    and at least :data:`MIN_CLASS_VALIDATION` of them must be right.
    A class with fewer than :data:`MIN_CLASS_VALIDATION` validation subjects gets no threshold,
    nor does the other class (its errors would be counted on those few subjects), logged.

    Parameters
    ----------
    proba : numpy.ndarray, shape (n, 2)
        Predicted class probabilities of the validation subjects.
    y : numpy.ndarray of int, shape (n,)
        Their true labels.
    target_precision : float
        ``evaluate.finetune.pseudo_label_accuracy``.

    Returns
    -------
    dict
        Class -> a predicted probability of the validation set (subjects predicted that class
        at or above it are "confident"), or ``None`` when none reaches the target.
    """
    y = np.asarray(y)
    counts = {c: int((y == c).sum()) for c in (0, 1)}
    if min(counts.values()) < MIN_CLASS_VALIDATION:
        log.info(
            "diagnosis pseudo-labels: none; inner validation subjects per class %s, each class "
            "needs %d to check the pseudo-labels of both",
            counts,
            MIN_CLASS_VALIDATION,
        )
        return {0: None, 1: None}
    confidence = proba.max(axis=1)
    predicted = proba.argmax(axis=1)
    out: dict[int, float | None] = {}
    for cls in (0, 1):
        out[cls] = None
        for tau in np.unique(confidence[predicted == cls]):  # ascending: most subjects first
            precision, true, _ = balanced_precision(
                (predicted == cls) & (confidence >= tau), y, cls
            )
            # At least MIN_CLASS_VALIDATION right: a few lucky subjects above a high threshold
            # let a model with no information through (in ~13 % of draws with one right).
            if precision >= target_precision and true >= MIN_CLASS_VALIDATION:
                out[cls] = float(tau)
                break
    return out


def confident_labels(
    proba: np.ndarray, threshold: float | dict[int, float | None] | None
) -> np.ndarray:
    """Predicted class where ``max(proba)`` reaches its threshold, else -1.

    ``threshold`` is one for both classes, or per class (:func:`choose_thresholds`); ``None``
    (for both, or for a class) gives no pseudo-label.

    Parameters
    ----------
    proba : numpy.ndarray, shape (n, 2)
        Class probabilities.
    threshold : float, dict of int to float or None, or None
        The least ``max(proba)`` that labels a row.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        0 or 1 where confident, -1 elsewhere.
    """
    labels = np.full(len(proba), -1, dtype=np.int64)
    per_class = threshold if isinstance(threshold, dict) else {0: threshold, 1: threshold}
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    for cls, tau in per_class.items():
        if tau is None:
            continue
        confident = (predicted == cls) & (confidence >= tau)
        labels[confident] = cls
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
        keep = int(np.floor(cap * n_labelled.get(cls, 0) + 1e-9))  # 2/3 * 3 is 2, not 1
        if len(rows) > keep:
            order = rows[np.argsort(-confidence[rows], kind="stable")]
            out[order[keep:]] = -1
    return out


def ratio_cap(labels: np.ndarray, n_labelled: dict[int, int], cap: float) -> float:
    """The cap that keeps the labelled class ratio: the smallest class's share, at most ``cap``.

    Without a checked threshold, a first model confident of one class only (a model with no
    information at 5 % cases calls everyone "control") would add pseudo-labels of that class
    alone. Each class keeps the same number of pseudo-labels per labelled subject of it, the
    fewest any class has (none of a class: none at all), and at most ``cap``.

    Parameters
    ----------
    labels : numpy.ndarray of int
        Pseudo-labels, -1 where none, one per unlabeled subject.
    n_labelled : dict
        Labelled subjects per class (both present).
    cap : float
    """
    shares = [(labels == c).sum() / n_labelled[c] for c in (0, 1) if n_labelled.get(c, 0) > 0]
    return float(min([cap, *shares]))


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
    thresholds: dict[int, float | None] | None = None,
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
        The confidence threshold (None: not made, or none reached the target accuracy); with
        per-class thresholds the higher of those found.
    thresholds : dict, optional
        Per class (0, 1): its confidence threshold, None where the class got none (recorded
        by level name; both the fixed threshold when ``threshold_source`` is "fixed").
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
        ``status, unit ("subject"), threshold, thresholds, threshold_source,
        inner_validation_subjects,
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
        "thresholds": {
            str(levels[c]): (None if (thresholds or {}).get(c) is None else float(thresholds[c]))
            for c in (0, 1)
        },
        "threshold_source": threshold_source,
        "inner_validation_subjects": int(inner_validation_subjects),
        "inner_validation_rows": list(inner_validation_rows or []),
        "n_unlabeled": int(n_unlabeled),
        "n_unlabeled_rows": int(n_unlabeled_rows),
        "n_pseudo_labelled": int(sum(subjects)),
        "pseudo_labelled_subjects": {str(levels[c]): int(subjects[c]) for c in (0, 1)},
        "pseudo_labelled_rows": {str(levels[c]): int(rows[c]) for c in (0, 1)},
    }
