"""Outer folds as run indices, and stratified label-fraction subsets.

Folds are assigned in one place, :mod:`lcm.store.splits`; this module only turns a splits table
into ``(train, test)`` run indices (:func:`folds_from_table`), each a :class:`Fold` that keeps
the table's fold number. The table is the one that ``lcm splits`` wrote for the task
(:func:`task_split_table` builds it), or, without one, the same table built here in memory for
one scheme and seed (:func:`subject_folds`, :func:`site_folds`); :func:`outer_folds` picks.
A subject's runs always fall in the same fold, and the labeled part of a training fold is
chosen per subject, so no subject is half labeled. Subsets for increasing fractions are nested:
the 10 % subset is part of the 50 % one, which keeps the label-fraction curve free of
resampling noise between fractions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lcm.exceptions import ConfigError, InputDataError
from lcm.hints import set_to
from lcm.store.splits import make_repeated_splits, make_splits, site_column_keys

log = logging.getLogger(__name__)


class Fold(tuple):
    """``(train, test)`` run indices of one outer fold, with its number in the splits table.

    Still a pair (``train, test = fold``); :attr:`fold` is the table's ``fold`` of its test
    subjects, so that leaving a fold out (a leave-site-out site whose removal leaves a class
    without training subjects) does not renumber the others: the metrics and predictions name
    each fold as the splits table does.

    Parameters
    ----------
    train, test : numpy.ndarray of int
        Run indices.
    fold : int
        The splits table's fold number.
    """

    fold: int

    def __new__(cls, train: np.ndarray, test: np.ndarray, fold: int) -> Fold:
        """The ``(train, test)`` pair, numbered ``fold``."""
        pair = super().__new__(cls, (train, test))
        pair.fold = int(fold)
        return pair

    def __getnewargs__(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self[0], self[1], self.fold


# The config's keys of the evaluate settings that the fold messages name, unless told how the
# user gave them: a command passes its own names (lcm.commands.evaluate: keys of --settings,
# lcm.commands.splits: its options, and lcm evaluate's --settings' keys for the split and the
# label fractions, which it takes no option for), as for a task's label (lcm.evaluate.tasks);
# under a workflow rule they are these keys.
SETTING_KEYS = {
    "n_folds": "evaluate.n_folds",
    "seeds": "evaluate.seeds",
    "label_fractions": "evaluate.label_fractions",
    "split": "evaluate.split",
}


def setting_names(names: Mapping[str, str] | None = None) -> dict[str, str]:
    """``names`` over :data:`SETTING_KEYS`: how each evaluate setting is named to the user.

    Parameters
    ----------
    names : mapping of str to str, optional
        Setting (a key of :data:`SETTING_KEYS`) to the name the user gave it by (an option,
        ``--n-folds``, or a key of one, ``--settings' n_folds``); None, or a setting left
        out, names it by its config key.

    Returns
    -------
    dict of str to str
    """
    return {**SETTING_KEYS, **(names or {})}


def check_distinct_repeats(repeats: Sequence[float], what: str, hint: str) -> None:
    """Refuse a repeat (an ``evaluate.seeds`` or ``evaluate.label_fractions`` entry) listed
    more than once.

    A seed listed twice is the same cross-validation twice: its fits are copies, which the
    summary would count as new evidence, narrowing its intervals. A label fraction listed
    twice was dropped silently: refused too, naming it.

    Parameters
    ----------
    repeats : sequence of int or float
    what : str
        Where they were given, e.g. ``"config.yaml: evaluate.seeds"``.
    hint : str
        The fix, for the error.

    Raises
    ------
    ConfigError
        Naming ``what``, the values and those repeated.
    """
    values = list(repeats)
    repeated = sorted({r for r in values if values.count(r) > 1})
    if repeated:
        raise ConfigError(
            f"{what} must be distinct, got {values} (repeated: {repeated}).", hint=hint
        )


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
    y: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    seed: int,
    names: Mapping[str, str] | None = None,
) -> list[Fold]:
    """Stratified folds in which every subject lies in exactly one test fold.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
        Class per run (0 or 1).
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run, ``dataset/subject`` (:attr:`lcm.store.cohort.Cohort.groups`).
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Seed of the shuffle (the ``subject`` scheme of :func:`lcm.store.splits.make_splits`).
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    list of Fold
        ``(train, test)`` run indices, each test set disjoint from its training set at the
        subject level, numbered 0 to ``n_folds - 1``.

    Raises
    ------
    InputDataError
        When a class has fewer subjects than folds.
    """
    y = np.asarray(y)
    groups = np.asarray(groups).astype(str)
    _check_classes(y, groups, n_folds, names)
    labels = subject_labels(y, groups)
    runs = _subjects_frame(groups).assign(label=labels.reindex(groups).to_numpy())
    said = setting_names(names)
    table = make_splits(runs, n_folds, seed, ("subject",), label="label", names=said)
    return folds_from_table(table, groups, "subject", seed)


def _subjects_frame(groups: np.ndarray, sites: np.ndarray | None = None) -> pd.DataFrame:
    """``dataset``, ``subject`` (and ``site``) per run from ``dataset/subject`` keys."""
    parts = pd.Series(groups, dtype=str).str.partition("/")
    site = "" if sites is None else np.asarray(sites).astype(str)
    return pd.DataFrame({"dataset": parts[0], "subject": parts[2], "site": site})


def _check_classes(
    y: np.ndarray, groups: np.ndarray, n_folds: int, names: Mapping[str, str] | None = None
) -> None:
    """Refuse stratified subject folds when a class has fewer subjects than folds, naming the
    folds' setting as the user gave it (``names``, :func:`setting_names`)."""
    said = setting_names(names)
    per_class = subject_labels(np.asarray(y), np.asarray(groups)).value_counts()
    smallest = int(per_class.min()) if len(per_class) else 0
    if len(per_class) < 2:
        # Lowering n_folds cannot help: one class is absent (0 is the negative level).
        raise InputDataError(
            f"Cannot split into subject-level folds: the labelled subjects are of one class "
            f"only (class index: subjects {per_class.sort_index().to_dict()}; {_STRATA}).",
            hint="Binary task: check its positive level and the catalogue's map of its label "
            "for this dataset (a diagnosis needs subjects of both classes). Continuous target: "
            "it needs labelled subjects of different values.",
        )
    if smallest < 2:
        # n_folds is 2 at least: lowering it cannot make one subject two folds.
        small = int(per_class.idxmin())
        raise InputDataError(
            f"Cannot split into subject-level folds: class {small} has {smallest} labelled "
            f"subject (subjects per class {per_class.sort_index().to_dict()}; {_STRATA}); "
            f"every class needs at least 2, one per fold of the smallest {said['n_folds']} (2).",
            hint=f"Add labelled subjects of class {small} to the task's dataset (their label in "
            "the phenotype file, then rerun lcm store), or check the task's positive level and "
            "the catalogue's map of its label for this dataset.",
        )
    if smallest < n_folds:
        raise InputDataError(
            f"Cannot split into {n_folds} subject-level folds: subjects per class are "
            f"{per_class.sort_index().to_dict()} ({_STRATA}); each class needs at least "
            f"{n_folds} subjects.",
            hint=f"Lower {said['n_folds']} or add labeled subjects to the task's dataset.",
        )


def strata(y: np.ndarray) -> np.ndarray:
    """Classes to stratify on: the labels themselves, or the lower/upper half if continuous.

    Here, not in :mod:`lcm.evaluate.baselines` (which uses it): ``lcm splits`` needs it, and
    its code hash would otherwise cover every baseline, so that adding one reran the splits.

    A continuous target is split by rank, not by ``y > median``: ties at the median (ages
    30 x 9 among 12) put nearly every run in one half and made an evaluable task look like a
    single class. Runs are ordered by value, ties by position, and the first ``ceil(n / 2)``
    finite values are stratum 0 (the same halves as the median split when no value repeats);
    non-finite (unlabeled) runs are stratum 0.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
        Targets: 0/1 ints (binary), or floats with NaN for unlabeled (continuous).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.floating):
        out = np.zeros(len(y), dtype=int)
        finite = np.flatnonzero(np.isfinite(y))
        order = finite[np.argsort(y[finite], kind="stable")]
        out[order[(len(order) + 1) // 2 :]] = 1
        return out
    return y.astype(int)


# The classes of :func:`strata`, named in messages.
_STRATA = (
    "1: the positive level, 0: the other; for a continuous target, 1: the upper half of its "
    "values by rank, 0: the lower"
)


def _run_folds(groups: np.ndarray, fold_of: dict, n_folds: int) -> list[Fold]:
    """The :class:`Fold` of each fold number with a test run, from a subject -> fold map."""
    run_fold = np.array([fold_of[g] for g in groups], dtype=np.int64)
    folds = []
    for fold in range(n_folds):
        test = np.flatnonzero(run_fold == fold)
        if len(test):
            folds.append(Fold(np.flatnonzero(run_fold != fold), test, fold))
    return folds


def labeled_subsets(
    y: np.ndarray,
    groups: np.ndarray,
    fractions: list[float],
    seed: int,
    min_per_class: int = 2,
    *,
    task: str = "",
    class_names: Sequence[str] = (),
    n_folds: int | None = None,
    names: Mapping[str, str] | None = None,
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
    task : str, optional
        The task's name, for messages.
    class_names : sequence of str, optional
        What each class is (``class_names[cls]``: a binary task's level, a continuous one's
        half), for messages.
    n_folds : int, optional
        The subject-level folds' ``evaluate.n_folds`` (None for leave-site-out folds): fewer
        folds give a training fold more subjects, a fix the message offers while above 2.
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    dict
        ``fraction -> boolean mask of shape (n_runs,)``, True where the run keeps its label.

    Raises
    ------
    InputDataError
        When a class has fewer than ``min_per_class`` subjects in the training fold and a
        fraction below 1 asks for a subset (at 1 every labelled subject is kept, none chosen).
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    said = setting_names(names)
    labels = subject_labels(y, groups)
    rng = np.random.default_rng(seed)
    subsets = sorted(f for f in fractions if f < 1)
    order: dict[int, np.ndarray] = {}
    for cls in sorted(labels.unique()):
        subjects = labels.index[labels == cls].to_numpy()
        if len(subjects) < min_per_class and subsets:
            name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
            fixes = [f"add labelled subjects of {name!r} to the task's dataset"]
            if n_folds is not None and n_folds > 2:
                fixes.insert(0, f"lower {said['n_folds']} (now {n_folds}; 2 at least)")
            every = set_to(said["label_fractions"], [1.0])
            fixes.append(f"evaluate with every label only ({every})")
            hint = ", or ".join(fixes)
            raise InputDataError(
                f"Task {task or '?'!r}: a training fold has {len(subjects)} subject(s) of class "
                f"{name!r}; label fraction(s) {subsets} keep at least {min_per_class} labelled "
                "subjects per class.",
                hint=hint[0].upper() + hint[1:] + ".",
            )
        order[cls] = rng.permutation(subjects)
    masks: dict[float, np.ndarray] = {}
    for fraction in fractions:
        kept: list[np.ndarray] = []
        for subjects in order.values():
            k = min(len(subjects), max(min_per_class, round(fraction * len(subjects))))
            kept.append(subjects[:k])
        whole = all(len(k) == len(s) for k, s in zip(kept, order.values(), strict=True))
        if fraction < 1 and whole:
            # Tiny folds: the minimum per class is every labelled subject, and this fraction's
            # results are those of fraction 1 (they were reported as a point of their own).
            log.warning(
                "label fraction %g keeps every labelled subject of a training fold (%s per "
                "class, at least %d kept): its results repeat those of all labels",
                fraction,
                "/".join(str(len(s)) for s in order.values()),
                min_per_class,
            )
        masks[fraction] = np.isin(groups, np.concatenate(kept))
    return masks


def site_folds(
    y: np.ndarray,
    groups: np.ndarray,
    sites: np.ndarray,
    seed: int,
    min_per_class: int = 2,
    names: Mapping[str, str] | None = None,
) -> list[Fold]:
    """Leave-one-site-out folds: each site is the test fold once.

    A site whose removal leaves the training part with fewer than ``min_per_class`` subjects
    of a class is skipped (logged): no model can be fitted without it.

    Parameters
    ----------
    y : numpy.ndarray of int, shape (n_runs,)
        Class per run (0/1), or median-split strata of a continuous target.
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run, ``dataset/subject``.
    sites : numpy.ndarray of str, shape (n_runs,)
        Site per run.
    seed : int
        Seed of the site order (the ``leave_site_out`` scheme of
        :func:`lcm.store.splits.make_splits`).
    min_per_class : int, default 2
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    list of Fold
        ``(train, test)`` run indices in site order, each numbered as in the splits table (a
        skipped site leaves a gap).

    Raises
    ------
    InputDataError
        When fewer than two sites are named, a subject spans two sites, or no fold is usable.
    """
    sites = np.asarray(sites, dtype=object)
    said = setting_names(names)
    named = sorted({str(s) for s in sites if s is not None and str(s) not in ("", "nan")})
    if len(named) < 2 or len(named) != len(set(map(str, sites))):
        raise InputDataError(
            f"Leave-site-out needs every run to name a site and at least two sites; got sites "
            f"{sorted(set(map(str, sites)))}.",
            hint=f"Set {set_to(said['split'], 'subject')}, or name every subject's site in the "
            f"variable catalogue ({site_keys(sites, groups)}) and rerun lcm store.",
        )
    per_subject = pd.DataFrame({"g": groups, "s": sites.astype(str)}).groupby("g")["s"].nunique()
    if (per_subject > 1).any():
        raise InputDataError(
            f"Subject {per_subject[per_subject > 1].index[0]!r} has runs at several sites; "
            "leave-site-out would split it across folds.",
            hint=f"Fix the site column, or set {set_to(said['split'], 'subject')}.",
        )
    groups = np.asarray(groups).astype(str)
    table = make_splits(
        _subjects_frame(groups, sites), seed=seed, schemes=("leave_site_out",), names=said
    )
    folds = folds_from_table(table, groups, "leave_site_out", seed)
    return usable_site_folds(folds, y, groups, sites, min_per_class, names)


def usable_site_folds(
    folds: list[Fold],
    y: np.ndarray,
    groups: np.ndarray,
    sites: np.ndarray,
    min_per_class: int = 2,
    names: Mapping[str, str] | None = None,
) -> list[Fold]:
    """Leave-site-out folds whose training part keeps ``min_per_class`` subjects per class.

    A skipped site is logged: no model can be fitted without the missing class. The folds
    kept keep their numbers (:attr:`Fold.fold`).

    Parameters
    ----------
    folds : list of Fold
        Leave-site-out folds.
    y, groups, sites : numpy.ndarray, shape (n_runs,)
        Strata, subject key and site per run.
    min_per_class : int, default 2
        Training subjects needed in each class.
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    list of Fold

    Raises
    ------
    InputDataError
        When no fold is usable.
    """
    y, groups, sites = np.asarray(y), np.asarray(groups), np.asarray(sites, dtype=object)
    usable = []
    for fold in folds:
        train, test = fold
        counts = subject_labels(y[train], groups[train]).value_counts()
        if len(counts) < 2 or int(counts.min()) < min_per_class:
            log.warning(
                "leave-site-out: skipping site %s, its training part has subjects per class %s",
                sorted({str(s) for s in sites[test]}),
                counts.to_dict(),
            )
            continue
        usable.append(fold)  # with its number
    folds = usable
    if not folds:
        raise InputDataError(
            f"Leave-site-out: no site leaves at least {min_per_class} training subjects per class.",
            hint=f"Set {set_to(setting_names(names)['split'], 'subject')}.",
        )
    return folds


def has_sites(sites: np.ndarray) -> bool:
    """Whether every run names a site and at least two sites occur.

    Parameters
    ----------
    sites : numpy.ndarray, shape (n_runs,)
        Site per run; empty, NaN or None where a run names none.

    Returns
    -------
    bool
    """
    values = [str(s) for s in np.asarray(sites, dtype=object)]
    named = {v for v in values if v not in _NO_SITE}
    return len(named) >= 2 and len(named) == len(set(values))


# How a run without a site reads as text (empty in the store; NaN or None once in a frame).
_NO_SITE = ("", "nan", "None")


def why_no_sites(sites: np.ndarray, groups: np.ndarray) -> str:
    """Why runs give no leave-site-out folds (:func:`has_sites` is False), naming the subjects
    without a site where some have none.

    Parameters
    ----------
    sites, groups : numpy.ndarray, shape (n_runs,)
        Site and subject key (``dataset/subject``) per run.

    Returns
    -------
    str
    """
    values = [str(s) for s in np.asarray(sites, dtype=object)]
    bare = sorted({str(g) for g, v in zip(groups, values, strict=True) if v in _NO_SITE})
    named = sorted(set(values) - set(_NO_SITE))
    if bare:
        listed = ", ".join(bare[:5]) + (f" and {len(bare) - 5} more" if len(bare) > 5 else "")
        return f"{len(bare)} subject(s) name no site ({listed}; sites named: {named})"
    return f"the runs name fewer than two sites ({named})"


def site_keys(sites: np.ndarray, groups: np.ndarray) -> str:
    """The catalogue's site_column keys to set for leave-site-out folds: those of the datasets
    whose runs name no site, else (fewer than two sites) of every dataset of the runs.

    Parameters
    ----------
    sites, groups : numpy.ndarray, shape (n_runs,)
        Site and subject key (``dataset/subject``) per run.

    Returns
    -------
    str
        :func:`lcm.store.splits.site_column_keys` of those datasets.
    """
    values = [str(s) for s in np.asarray(sites, dtype=object)]
    datasets = [str(g).split("/", 1)[0] for g in groups]
    bare = {d for d, v in zip(datasets, values, strict=True) if v in _NO_SITE}
    return site_column_keys(sorted(bare or set(datasets)))


def task_split_table(
    ids: pd.DataFrame,
    y_strata: np.ndarray,
    n_folds: int,
    master_seed: int,
    repeats: list[int] | tuple[int, ...],
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The splits table of a task: its subject-level and (where sites exist) site-level folds.

    ``lcm splits`` writes this table and ``lcm evaluate`` reads it back; without a table,
    :func:`outer_folds` computes the same folds from the same inputs.

    Parameters
    ----------
    ids : pandas.DataFrame
        ``dataset``, ``subject`` and ``site`` per run, of the runs that have a target.
    y_strata : numpy.ndarray of int, shape (n_runs,)
        Class per run (0/1), or median-split strata of a continuous target
        (:func:`strata`); a subject is stratified by its most frequent.
    n_folds : int
        Subject-level folds.
    master_seed : int
        Workflow seed.
    repeats : sequence of int
        The ``evaluate.seeds`` entries: one cross-validation each.
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    pandas.DataFrame
        :data:`lcm.store.splits.COLUMNS`; schemes ``subject``, and ``leave_site_out`` when
        every run names a site, there are two sites or more, and no subject spans two.

    Raises
    ------
    InputDataError
        When a class has fewer subjects than folds.
    """
    groups = (ids["dataset"].astype(str) + "/" + ids["subject"].astype(str)).to_numpy()
    sites = ids["site"].astype(str).to_numpy() if "site" in ids else np.full(len(ids), "")
    _check_classes(y_strata, groups, n_folds, names)
    labels = subject_labels(np.asarray(y_strata), groups)
    frame = pd.DataFrame(
        {
            "dataset": ids["dataset"].astype(str),
            "subject": ids["subject"].astype(str),
            "site": sites,
            "group": groups,
        }
    ).drop_duplicates("group")
    frame["label"] = frame["group"].map(labels).to_numpy()
    one_site = pd.Series(sites).groupby(groups).nunique().le(1).all()
    schemes = ["subject"]
    if has_sites(sites) and one_site:
        schemes.append("leave_site_out")
    elif not one_site:
        frame["site"] = ""  # a subject at two sites: no site-level scheme for this task
    said = setting_names(names)
    return make_repeated_splits(frame, n_folds, master_seed, repeats, schemes, "label", said)


def folds_from_table(
    table: pd.DataFrame,
    groups: np.ndarray,
    scheme: str,
    repeat: int,
    source: str | Path = "splits table",
) -> list[Fold]:
    """The ``(train, test)`` run indices of one scheme and repeat of a splits table.

    Each is a :class:`Fold` numbered with the table's ``fold``; a fold none of ``groups``
    falls in is left out, without renumbering the others.

    Parameters
    ----------
    table : pandas.DataFrame
        A splits table (:func:`lcm.store.splits.read_splits`).
    groups : numpy.ndarray, shape (n_runs,)
        Subject key per run (``dataset/subject``).
    scheme : str
        ``subject`` or ``leave_site_out``.
    repeat : int
        The ``seed`` column's value (an ``evaluate.seeds`` entry).
    source : path-like
        Named in errors.

    Raises
    ------
    InputDataError
        When the table has no rows for ``scheme`` and ``repeat``, lacks a subject of the runs,
        or gives a subject more than one row there.
    """
    rows = table[(table["scheme"] == scheme) & (table["seed"].astype(int) == int(repeat))]
    if rows.empty:
        pairs = zip(table["scheme"], table["seed"], strict=True)
        have = sorted({(str(a), int(b)) for a, b in pairs})
        raise InputDataError(
            f"{source}: no {scheme!r} folds for seed {repeat}; it holds (scheme, seed) {have}.",
            hint="Re-run `lcm splits` with the task's evaluate settings (the splits rule does).",
        )
    keys = rows["dataset"].astype(str) + "/" + rows["subject"].astype(str)
    twice = sorted(set(keys[keys.duplicated()]))
    if twice:  # which of its rows holds would be chance (the last one did)
        raise InputDataError(
            f"{source}: {len(twice)} subject(s) have more than one row in the {scheme!r} folds "
            f"for seed {repeat}, e.g. {twice[:3]}: a subject belongs to one fold.",
            hint="Keep one row per (dataset, subject) for each scheme and seed, or re-run "
            "`lcm splits` (the splits rule does).",
        )
    fold_of = dict(zip(keys, rows["fold"].astype(int), strict=True))
    missing = sorted(str(g) for g in set(np.asarray(groups).astype(str)) - set(fold_of))
    if missing:
        raise InputDataError(
            f"{source}: {len(missing)} subject(s) of the task have no {scheme!r} fold, e.g. "
            f"{missing[:3]}.",
            hint="Re-run `lcm splits` on the current feature store (the splits rule does).",
        )
    return _run_folds(np.asarray(groups).astype(str), fold_of, int(rows["n_folds"].iloc[0]))


def outer_folds(
    y_strata: np.ndarray,
    groups: np.ndarray,
    sites: np.ndarray,
    split: str,
    n_folds: int,
    seed: int,
    table: pd.DataFrame | None = None,
    repeat: int = 0,
    source: str | Path = "splits table",
    names: Mapping[str, str] | None = None,
) -> tuple[str, list[Fold]]:
    """The outer folds of one repeat: leave-one-site-out when asked and possible, else subjects.

    Parameters
    ----------
    y_strata, groups, sites : numpy.ndarray, shape (n_runs,)
        Strata, subject key and site per run.
    split : {"subject", "site"}
        The ``evaluate.split`` setting.
    n_folds : int
        Subject-level folds.
    seed : int
        Shuffle seed of this repeat (:func:`lcm.store.splits.split_seed`), used without a table.
    table : pandas.DataFrame, optional
        The task's splits table (``lcm splits``): its folds are used as they are.
    repeat : int, default 0
        The ``evaluate.seeds`` entry, selecting the table's rows.
    source : path-like
        The table's file, named in errors.
    names : mapping of str to str, optional
        How the user gave the evaluate settings named in the errors (:func:`setting_names`);
        None names their config keys.

    Returns
    -------
    (str, list of Fold)
        The split used (``subject`` or ``site``) and the folds, each numbered as the splits
        table numbers it (:attr:`Fold.fold`; a skipped site leaves a gap).
    """
    said = setting_names(names)
    if split == "site":
        if has_sites(sites):
            if table is None:
                return "site", site_folds(y_strata, groups, sites, seed=seed, names=names)
            _check_table_sites(table, groups, sites, repeat, source)
            folds = folds_from_table(table, groups, "leave_site_out", repeat, source)
            return "site", usable_site_folds(folds, y_strata, groups, sites, names=names)
        log.warning(
            "split: site asked, but %s: subject folds. Give every subject its site (%s in "
            "the variable catalogue), or set %s",
            why_no_sites(sites, groups),
            site_keys(sites, groups),
            set_to(said["split"], "subject"),
        )
    if table is None:
        return "subject", subject_folds(y_strata, groups, n_folds, seed, names)
    _check_classes(y_strata, groups, n_folds, names)
    stored = table.loc[table["scheme"] == "subject", "n_folds"]
    if len(stored) and int(stored.iloc[0]) != n_folds:
        raise InputDataError(
            f"{source}: {int(stored.iloc[0])} subject-level folds, but {said['n_folds']} is "
            f"{n_folds}.",
            hint=f"Re-run `lcm splits` with --n-folds equal to {said['n_folds']}.",
        )
    return "subject", folds_from_table(table, groups, "subject", repeat, source)


def _check_table_sites(
    table: pd.DataFrame, groups: np.ndarray, sites: np.ndarray, repeat: int, source: str | Path
) -> None:
    """Refuse leave-site-out folds of a table whose sites are not the runs' sites.

    The table's folds are its sites as they were when it was written: after the site column
    changed, its "site" test folds would mix sites that training also holds, and the metrics
    would still say ``split: site``.
    """
    rows = table[(table["scheme"] == "leave_site_out") & (table["seed"].astype(int) == int(repeat))]
    if rows.empty or "site" not in rows:
        return  # folds_from_table names what is missing
    keys = rows["dataset"].astype(str) + "/" + rows["subject"].astype(str)
    written = dict(zip(keys, rows["site"].astype(str), strict=False))
    now = pd.Series(np.asarray(sites).astype(str), index=np.asarray(groups).astype(str))
    moved = sorted(
        f"{g} ({written[g]!r} there, {s!r} now)"
        for g, s in now[~now.index.duplicated()].items()
        if g in written and written[g] != s
    )
    if moved:
        raise InputDataError(
            f"{source}: {len(moved)} subject(s) of the task are at another site than the "
            f"table's leave-site-out folds say, e.g. {moved[:3]}: its test folds would not "
            "leave one site out.",
            hint="Re-run `lcm splits --task` on the current feature store (the splits rule does).",
        )
