"""Splits as data: which fold each downstream subject is tested in, as a plain table.

A splits table has one row per (scheme, dataset, subject)::

    dataset  subject  site  scheme           seed  n_folds  fold
    abide    0051     NYU   subject          0     5        3
    abide    0051     NYU   site             0     5        1
    abide    0051     NYU   leave_site_out   0     17       9

``subject`` folds put each subject in one test fold (stratified by ``label`` when given);
``site`` folds put each whole site in one test fold (``n_folds`` sites or more);
``leave_site_out`` has one fold per site (two sites or more).
Every subject listed is a downstream *test* subject of exactly one fold per scheme, so
pretraining must never see any of them: :func:`downstream_test_keys` gives the keys to exclude,
and :func:`lcm.store.read.load_cohort` and :class:`lcm.store.loader.ConnectomeStream` take the
table as ``exclude=`` (for code of your own: the workflow's pretraining reads ``role: pretrain``
datasets only, and :func:`lcm.evaluate.protocol.check_pretraining_excludes` refuses a checkpoint
that saw a task's runs by name, content or rounded content). The table is deterministic given
the subjects (in any order) and the seed; adding subjects may move others to another fold
(stratified K-fold is not incremental).

This module is the one definition of the folds: :func:`subject_fold_ids` and
:func:`site_fold_ids` assign them, ``lcm splits`` writes them (per task, one repeat per
evaluation seed: :func:`make_repeated_splits`), and :mod:`lcm.evaluate.splits` turns that table,
read back or (without one) built in memory by :func:`make_splits`, into the outer folds of
``lcm evaluate``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import KFold, StratifiedKFold

from lcm.exceptions import InputDataError
from lcm.hints import set_to
from lcm.io.atomic import atomic_path
from lcm.io.file_kind import not_a_file
from lcm.io.provenance import environment

log = logging.getLogger(__name__)

SCHEMES = ("subject", "site", "leave_site_out")
# The schemes whose folds are whole sites: every subject must name one.
SITE_SCHEMES = ("site", "leave_site_out")
COLUMNS = ("dataset", "subject", "site", "scheme", "seed", "n_folds", "fold")


def make_splits(
    subjects: pd.DataFrame,
    n_folds: int = 5,
    seed: int = 0,
    schemes: tuple[str, ...] | list[str] = SCHEMES,
    label: str | None = None,
    names: Mapping[str, str] | None = None,
    *,
    continuous: bool = False,
) -> pd.DataFrame:
    """Assign every subject to one test fold per scheme.

    Parameters
    ----------
    subjects : pandas.DataFrame
        One row per run or per subject with ``dataset``, ``subject`` and ``site`` (and ``label``
        when stratifying). Runs of one subject collapse to one row; a subject must have one site.
    n_folds : int, default 5
        Folds of the ``subject`` and ``site`` schemes (``leave_site_out`` has one per site).
    seed : int, default 0
        Seed of the shuffles; the same subjects and seed give the same table.
    schemes : sequence of str
        Any of ``"subject"``, ``"site"``, ``"leave_site_out"``.
    label : str, optional
        Column to stratify the ``subject`` folds by (the diagnosis of a downstream task).
    names : mapping of str to str, optional
        How the user gave the folds' and the schemes' settings, named in the fixes
        (:func:`n_folds_name`, :func:`schemes_name`).
    continuous : bool, default False
        Whether ``label`` holds the lower/upper halves of a continuous label
        (:func:`lcm.evaluate.splits.strata`), not its levels: named so in errors.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset, subject, site, scheme, seed, n_folds, fold``, sorted.

    Raises
    ------
    InputDataError
        Unknown or repeated scheme, a subject with two sites, a subject without a site (``""``, the
        store's "no site") under a site-level scheme, fewer subjects than folds, fewer sites
        than ``n_folds`` under ``site`` or fewer than two under ``leave_site_out``
        (:func:`too_few_sites`).
    """
    unknown = sorted(set(schemes) - set(SCHEMES))
    if unknown:
        raise InputDataError(
            f"Unknown split scheme(s) {unknown}; expected some of {list(SCHEMES)}.",
            hint="Use subject, site or leave_site_out.",
        )
    repeated = sorted({s for s in schemes if list(schemes).count(s) > 1})
    if repeated:
        # Each would list every subject again: two rows per (scheme, dataset, subject).
        raise InputDataError(
            f"Split scheme(s) {repeated} named more than once in {list(schemes)}.",
            hint="Name each scheme once.",
        )
    table = _one_row_per_subject(subjects, label)
    site_schemes = [s for s in schemes if s in SITE_SCHEMES]
    if site_schemes:
        _check_sites(table, site_schemes, names)
    for scheme in site_schemes:
        problem = too_few_sites(table, scheme, n_folds)
        if problem:
            n_sites = sum(site_counts(table).values())
            # With one site no site-level scheme works: only the subject scheme is left.
            fix = _TOO_FEW_SITES_FIX[scheme if n_sites >= 2 else "leave_site_out"]
            keys = site_column_keys(site_counts(table))
            said = n_folds_name(names)
            hint = fix.format(
                n=n_sites,
                keys=keys,
                n_folds=said,
                subject=schemes_name(names, ["subject"]),
                both=schemes_name(names, ["subject", "leave_site_out"]),
            )
            raise InputDataError(problem, hint=hint)
    keys = (table["dataset"] + "/" + table["subject"]).to_numpy()
    site_keys = (table["dataset"] + "/" + table["site"]).to_numpy()
    frames = []
    for scheme in schemes:
        if scheme == "subject":
            strata = table[label].astype(str).to_numpy() if label else None
            folds = subject_fold_ids(
                keys, strata, n_folds, seed, label, names, continuous=continuous
            )
            k = n_folds
        else:
            k_site = n_folds if scheme == "site" else None
            folds, k = site_fold_ids(site_keys, k_site, seed, names)
        frames.append(
            table[["dataset", "subject", "site"]].assign(
                scheme=scheme, seed=seed, n_folds=k, fold=folds
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["scheme", "dataset", "subject"], kind="stable").reset_index(drop=True)
    return out[list(COLUMNS)]


def split_seed(master_seed: int, repeat: int) -> int:
    """The shuffle seed of one repeat of the folds (an ``evaluate.seeds`` entry).

    A 31-bit seed derived from the workflow seed and the repeat (NumPy ``SeedSequence``), the
    same derivation as :func:`lcm.evaluate.protocol.derived_seed`.

    Parameters
    ----------
    master_seed : int
        The workflow seed.
    repeat : int
        The repeat's index.

    Returns
    -------
    int
    """
    state = np.random.SeedSequence([master_seed, repeat]).generate_state(1)[0]
    return int(state & 0x7FFFFFFF)


def make_repeated_splits(
    subjects: pd.DataFrame,
    n_folds: int,
    master_seed: int,
    repeats: list[int] | tuple[int, ...],
    schemes: tuple[str, ...] | list[str] = SCHEMES,
    label: str | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """:func:`make_splits` once per repeat, the ``seed`` column holding the repeat.

    Repeat ``r`` shuffles with :func:`split_seed` ``(master_seed, r)``: this is the table that
    ``lcm evaluate`` reads for a task, one cross-validation per ``evaluate.seeds`` entry.

    Parameters
    ----------
    subjects, n_folds, schemes, label, names
        As for :func:`make_splits`.
    master_seed : int
        Workflow seed.
    repeats : sequence of int
        The ``evaluate.seeds`` entries.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; ``seed`` is the repeat.
    """
    frames = [
        make_splits(subjects, n_folds, split_seed(master_seed, r), schemes, label, names).assign(
            seed=r
        )
        for r in repeats
    ]
    return pd.concat(frames, ignore_index=True)


def subject_fold_ids(
    keys: np.ndarray,
    strata: np.ndarray | None,
    n_folds: int,
    seed: int,
    label: str | None = None,
    names: Mapping[str, str] | None = None,
    *,
    continuous: bool = False,
) -> np.ndarray:
    """Subject-level (stratified) K-fold: the test fold of each subject.

    Parameters
    ----------
    keys : numpy.ndarray of str, shape (n_subjects,)
        Unique subject keys (``dataset/subject``); the assignment does not depend on their order.
    strata : numpy.ndarray, shape (n_subjects,), optional
        Class of each subject to stratify by.
    n_folds : int
    seed : int
        Seed of the shuffle.
    label : str, optional
        Name of the stratifying variable, for messages.
    names : mapping of str to str, optional
        How the user gave the folds' setting, named in the fixes (:func:`n_folds_name`).
    continuous : bool, default False
        Whether ``strata`` are the lower/upper halves of a continuous label, not its levels.

    Returns
    -------
    numpy.ndarray of int, shape (n_subjects,)
        Fold in ``[0, n_folds)`` per subject, aligned with ``keys``.

    Raises
    ------
    InputDataError
        Fewer subjects than folds, or a stratum with fewer subjects than folds.
    """
    keys = np.asarray(keys).astype(str)
    if len(keys) < n_folds:
        raise InputDataError(
            f"Cannot split {len(keys)} subjects into {n_folds} subject-level folds.",
            hint=_fewer_folds(names, len(keys), "add subjects"),
        )
    # Sorting first makes the folds independent of the order the subjects came in.
    order = np.argsort(keys, kind="stable")
    folds = np.empty(len(keys), dtype=np.int64)
    x = np.zeros(len(keys))
    if strata is not None:
        y = np.asarray(strata).astype(str)[order]
        smallest = int(pd.Series(y).value_counts().min())
        if smallest < n_folds:
            # A continuous label is stratified by halves, not levels: "its rarest level"
            # of an age read as one of its ages.
            said = (
                " (a continuous label, stratified by the lower and upper half of its values by "
                "rank): its smaller half"
                if continuous
                else ": its rarest level"
            )
            raise InputDataError(
                f"Cannot stratify {n_folds} folds by {label or 'the label'!r}{said} has "
                f"{smallest} subjects.",
                hint=_fewer_folds(names, smallest, "drop stratification"),
            )
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(x, y)
    else:
        cv = KFold(n_folds, shuffle=True, random_state=seed).split(x)
    for fold, (_, test) in enumerate(cv):
        folds[order[test]] = fold
    return folds


def downstream_test_keys(splits: pd.DataFrame) -> set[str]:
    """``dataset/subject`` keys of every downstream test subject in a splits table.

    Parameters
    ----------
    splits : pandas.DataFrame
        A splits table (:func:`make_splits`), or any table with ``dataset`` and ``subject``.

    Returns
    -------
    set of str

    Raises
    ------
    InputDataError
        ``splits`` lacks ``dataset`` or ``subject``.
    """
    missing = {"dataset", "subject"} - set(splits.columns)
    if missing:
        raise InputDataError(
            f"A splits table needs columns 'dataset' and 'subject'; lacks {sorted(missing)}.",
            hint="Build it with lcm.store.splits.make_splits or `lcm splits`.",
        )
    return set((splits["dataset"].astype(str) + "/" + splits["subject"].astype(str)).unique())


def write_splits(path: str | Path, splits: pd.DataFrame, provenance: dict | None = None) -> Path:
    """Write a splits table as Parquet (atomically), provenance in the key-value metadata.

    Parameters
    ----------
    path : path-like
        The Parquet file to write.
    splits : pandas.DataFrame
        A splits table (:func:`make_splits`); its ``scheme`` values are listed in
        ``lcm.splits_schemes``.
    provenance : dict, optional
        Entries added to the environment record in ``lcm.provenance`` (a key here wins).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    table = pa.Table.from_pandas(splits, preserve_index=False)
    meta = {
        "lcm.splits_schemes": json.dumps(sorted(splits["scheme"].unique().tolist())),
        "lcm.provenance": json.dumps({**environment(), **(provenance or {})}, default=str),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def read_splits(path: str | Path) -> pd.DataFrame:
    """Read a splits table and check its columns.

    Parameters
    ----------
    path : path-like
        A table written by :func:`write_splits`.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputDataError
        The file is missing, not a readable Parquet file, or lacks one of :data:`COLUMNS`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(
            f"Splits table {not_a_file(path)}: {path}", hint="Run `lcm splits` first."
        )
    try:
        frame = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as exc:
        # An empty or truncated table ended `lcm evaluate --splits` in a pyarrow traceback.
        raise InputDataError(
            f"Cannot read splits table {path} as Parquet: {str(exc).splitlines()[0]}",
            hint="It is damaged (cut short by a full disk or a copy) or not a splits table: "
            "write it again with `lcm splits ... --out` (in the workflow: delete it and rerun).",
        ) from None
    missing = sorted(set(COLUMNS) - set(frame.columns))
    if missing:
        raise InputDataError(
            f"{path}: not a splits table; lacks columns {missing} (has {list(frame.columns)}).",
            hint="Build it with `lcm splits`.",
        )
    return frame


def _one_row_per_subject(subjects: pd.DataFrame, label: str | None) -> pd.DataFrame:
    need = ["dataset", "subject", "site", *([label] if label else [])]
    missing = [c for c in need if c not in subjects]
    if missing:
        raise InputDataError(
            f"Cannot build splits: the subjects table lacks {missing} (has {list(subjects)}).",
            hint="Pass the runs of the store (lcm.store.read.read_runs) with their sites.",
        )
    frame = subjects[need].astype({"dataset": str, "subject": str})
    frame = frame.assign(site=frame["site"].fillna("").astype(str))
    sites = frame.groupby(["dataset", "subject"])["site"].nunique()
    if (sites > 1).any():
        key = sites[sites > 1].index[0]
        raise InputDataError(
            f"Subject {key[1]!r} of dataset {key[0]!r} has runs at {int(sites[key])} sites.",
            hint="A subject belongs to one site; fix the site column of the phenotype file.",
        )
    frame = frame.drop_duplicates(["dataset", "subject"])
    # Sorting first makes the table independent of the order the runs were listed in.
    return frame.sort_values(["dataset", "subject"], kind="stable").reset_index(drop=True)


def unsited_subjects(subjects: pd.DataFrame) -> dict[str, int]:
    """Subjects without a site per dataset (site ``""``, missing, or absent), datasets sorted.

    The store writes ``""`` where a dataset has no site column or a participant's site cell is
    empty; such a subject can be in no site-level fold.

    Parameters
    ----------
    subjects : pandas.DataFrame
        One row per run or per subject with ``dataset`` and ``subject`` (and ``site``).

    Returns
    -------
    dict of str to int
        Dataset name to its number of subjects without a site; datasets with none left out.
    """
    site = subjects["site"] if "site" in subjects else pd.Series("", index=subjects.index)
    frame = subjects[["dataset", "subject"]].astype(str).assign(site=site.fillna("").astype(str))
    missing = frame[frame["site"].str.strip() == ""].drop_duplicates(["dataset", "subject"])
    return {str(k): int(v) for k, v in missing.groupby("dataset").size().sort_index().items()}


def site_counts(subjects: pd.DataFrame) -> dict[str, int]:
    """Named sites per dataset (a site ``""`` is none), datasets sorted.

    Parameters
    ----------
    subjects : pandas.DataFrame
        One row per run or per subject with ``dataset`` and ``site``.

    Returns
    -------
    dict of str to int
        Dataset name to its number of distinct named sites (0 for a dataset without any).
    """
    frame = subjects[["dataset", "site"]].astype({"dataset": str})
    frame = frame.assign(site=frame["site"].fillna("").astype(str).str.strip())
    named = frame[frame["site"] != ""].groupby("dataset")["site"].nunique()
    return {str(d): int(named.get(d, 0)) for d in sorted(frame["dataset"].unique())}


# How to get past too few sites when a site-level scheme was asked for ({n}: the sites;
# {keys}: the catalogue's site_column keys of the datasets, site_column_keys; {n_folds}: the
# folds' setting as the user gave it, n_folds_name; {subject} and {both}: the schemes' setting
# as the user gave it, set to the subject scheme, or to it and leave_site_out, schemes_name).
_TOO_FEW_SITES_FIX = {
    "site": "Lower {n_folds} to {n} or fewer (one fold per site at most), use the "
    "leave_site_out scheme (one fold per site) or the subject scheme ({both}), or add "
    "datasets with sites.",
    "leave_site_out": "Use the subject scheme ({subject}), or add datasets or sites ({keys} "
    "in the variable catalogue, then rerun lcm store).",
}

# The value of lcm evaluate's split (evaluate.split, --settings' split) that picks each scheme
# of a task's table; the 'site' scheme is no evaluation's (lcm.evaluate.splits.SPLITS).
_SPLIT_OF_SCHEME = {"subject": "subject", "leave_site_out": "site"}


def schemes_name(names: Mapping[str, str] | None, schemes: list[str]) -> str:
    """The setting that asks for ``schemes``, as the user gave the schemes.

    ``lcm splits`` names its ``--schemes`` (``names["schemes"]``): ``--schemes subject``.
    Under a workflow rule, or from ``lcm evaluate``, the schemes are no setting of the user's:
    the evaluation's split picks one (``names["split"]``, :func:`lcm.evaluate.splits
    .setting_names`), ``evaluate.split: subject`` or ``--settings' split to "subject"``
    (:func:`lcm.hints.set_to`). A Python caller that passes neither set the ``schemes``
    argument: ``schemes=['subject']``.

    Parameters
    ----------
    names : mapping of str to str, optional
        Setting to the name the user gave it by.
    schemes : list of str
        The schemes to ask for, of :data:`SCHEMES`.

    Returns
    -------
    str
    """
    names = names or {}
    if "schemes" in names:
        return set_to(names["schemes"], " ".join(schemes))
    split = [_SPLIT_OF_SCHEME[s] for s in schemes if s in _SPLIT_OF_SCHEME]
    if "split" in names and split:
        return " or ".join(set_to(names["split"], value) for value in split)
    return f"schemes={list(schemes)!r}"


def site_column_keys(datasets: Iterable[str]) -> str:
    """The variable catalogue's keys of ``datasets``' site columns, named in fixes.

    Parameters
    ----------
    datasets : iterable of str
        Dataset names.

    Returns
    -------
    str
        ``datasets.<name>.site_column`` of each, comma-separated.
    """
    return ", ".join(f"datasets.{d}.site_column" for d in datasets)


def too_few_sites(subjects: pd.DataFrame, scheme: str, n_folds: int) -> str:
    """Why a site-level scheme cannot be built on these subjects' sites, or ``""``.

    Like scikit-learn's ``GroupKFold``, ``site`` needs at least ``n_folds`` sites (each whole
    site in one fold, no fold empty); ``leave_site_out`` needs two (one site alone leaves no
    training part). Sites are counted over all datasets (a site is ``dataset/site``).

    Parameters
    ----------
    subjects : pandas.DataFrame
        One row per run or per subject with ``dataset`` and ``site``.
    scheme : str
        ``"site"`` or ``"leave_site_out"`` (other schemes need no site: ``""``).
    n_folds : int
        Folds of the ``site`` scheme.

    Returns
    -------
    str
        One sentence naming the scheme, the sites per dataset and the folds asked for.
    """
    needed = {"site": n_folds, "leave_site_out": 2}.get(scheme)
    counts = site_counts(subjects)
    total = sum(counts.values())
    if needed is None or total >= needed:
        return ""
    per = ", ".join(f"{d!r}: {n} site{'' if n == 1 else 's'}" for d, n in counts.items())
    if scheme == "site":
        return (
            f"Cannot split {total} site(s) into {n_folds} site-level folds (scheme 'site', "
            f"n_folds {n_folds}; dataset(s) {per}): each fold is one or more whole sites."
        )
    return (
        f"Cannot leave one site out of {total} site(s) (scheme 'leave_site_out'; dataset(s) "
        f"{per}): with one site, its only fold leaves nothing to train on."
    )


def _check_sites(
    table: pd.DataFrame, schemes: list[str], names: Mapping[str, str] | None = None
) -> None:
    """Refuse site-level schemes where a subject has no site: ``""`` would become a site of its
    own (one fold testing every site-less subject, or a whole site-less dataset). The fix
    names the schemes' setting as the user gave it (:func:`schemes_name`)."""
    missing = unsited_subjects(table)
    if not missing:
        return
    counts = ", ".join(
        f"{dataset!r} ({n} of {int((table['dataset'] == dataset).sum())})"
        for dataset, n in missing.items()
    )
    raise InputDataError(
        f"Split scheme(s) {schemes} need every subject's site; subjects without one in "
        f"dataset(s) {counts}.",
        hint="Name the dataset's site column in the variable catalogue "
        f"({site_column_keys(missing)}), fill its empty cells and rerun `lcm store`, or use "
        f"the subject scheme alone ({schemes_name(names, ['subject'])}).",
    )


def site_fold_ids(
    site_keys: np.ndarray,
    n_folds: int | None,
    seed: int,
    names: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, int]:
    """Whole sites per fold: one fold per site (``n_folds=None``), or ``n_folds`` balanced ones.

    Balanced folds are built largest site first, each into the fold with the fewest subjects so
    far. The seed orders sites of equal size, picks among folds of equal load, and numbers the
    folds (a seeded permutation); sites of distinct sizes are grouped alike under every seed,
    since that grouping is the balanced one, but each group's fold number changes with it.

    Parameters
    ----------
    site_keys : numpy.ndarray of str, shape (n_subjects,)
        Site of each subject (``dataset/site``).
    n_folds : int or None
        ``None`` for leave-one-site-out; else folds balanced by subject count.
    seed : int
        Seed of the site shuffle: the fold number of each site (leave-one-site-out), or of
        each group of sites and the ties between sites and folds (balanced folds).
    names : mapping of str to str, optional
        How the user gave the folds' setting, named in the fixes (:func:`n_folds_name`).

    Returns
    -------
    (numpy.ndarray of int, int)
        Fold per subject, and the number of folds.

    Raises
    ------
    InputDataError
        Fewer sites than ``n_folds``.
    """
    site_key = pd.Series(np.asarray(site_keys).astype(str))
    sizes = site_key.value_counts().sort_index()
    if n_folds is None:
        order = np.random.default_rng(seed).permutation(len(sizes))
        fold_of = dict(zip(sizes.index[order], range(len(sizes)), strict=True))
        return site_key.map(fold_of).to_numpy(dtype=np.int64), len(sizes)
    if len(sizes) < n_folds:
        raise InputDataError(
            f"Cannot split {len(sizes)} site(s) {sizes.index.tolist()[:10]} into {n_folds} "
            "site-level folds.",
            hint=_fewer_folds(names, len(sizes), "use the leave_site_out or subject scheme"),
        )
    # Shuffle, then largest site first into a currently smallest fold (balanced). The stable
    # sort and the first-smallest fold undid the shuffle wherever sizes differ: every seed gave
    # the same folds, so the seed also picks among equal loads and numbers the folds.
    rng = np.random.default_rng(seed)
    shuffled = sizes.iloc[rng.permutation(len(sizes))]
    loads = np.zeros(n_folds, dtype=np.int64)
    fold_of = {}
    for site, size in shuffled.sort_values(ascending=False, kind="stable").items():
        fold = int(rng.choice(np.flatnonzero(loads == loads.min())))
        fold_of[site] = fold
        loads[fold] += size
    number = rng.permutation(n_folds)
    fold_of = {site: int(number[fold]) for site, fold in fold_of.items()}
    return site_key.map(fold_of).to_numpy(dtype=np.int64), n_folds


def n_folds_name(names: Mapping[str, str] | None = None) -> str:
    """The folds' setting as the user gave it: ``names["n_folds"]``, else ``n_folds``.

    ``lcm splits`` passes its names (``--n-folds``, or under a workflow rule the config's
    ``evaluate.n_folds``: :func:`lcm.evaluate.splits.setting_names`); a Python caller that
    passes none set the ``n_folds`` argument.

    Parameters
    ----------
    names : mapping of str to str, optional
        Setting to the name the user gave it by.

    Returns
    -------
    str
    """
    return (names or {}).get("n_folds", "n_folds")


def _fewer_folds(names: Mapping[str, str] | None, most: int, other: str) -> str:
    """Lower the folds' setting to ``most`` or fewer, or do ``other``; only ``other`` when
    ``most`` is under 2, which no number of folds can be.

    "Lower X to N", not :func:`lcm.hints.set_to`'s "X N": the fix is a bound, and the phrase
    reads alike for an option, a config key and a key inside a JSON option.
    """
    if most < 2:
        return f"{other[0].upper()}{other[1:]}."
    return f"Lower {n_folds_name(names)} to {most} or fewer, or {other}."
