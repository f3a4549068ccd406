"""Subject-level folds, label-fraction subsets, and the splits table evaluate reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcm.evaluate.protocol import EvaluationSettings, derived_seed, evaluate_task
from lcm.evaluate.splits import (
    Fold,
    folds_from_table,
    has_sites,
    labeled_subsets,
    outer_folds,
    site_folds,
    subject_folds,
    subject_labels,
    task_split_table,
    usable_site_folds,
)
from lcm.evaluate.tasks import Task, task_targets
from lcm.exceptions import InputDataError
from lcm.store.cohort import Cohort
from lcm.store.splits import make_splits, read_splits, split_seed, write_splits


@pytest.fixture
def runs() -> tuple[np.ndarray, np.ndarray]:
    """37 subjects (21 negative, 16 positive) with 1-3 runs each."""
    rng = np.random.default_rng(3)
    y_subj = np.array([0] * 21 + [1] * 16)
    n_runs = rng.integers(1, 4, size=len(y_subj))
    groups = np.repeat([f"ds/{i:02d}" for i in range(len(y_subj))], n_runs)
    y = np.repeat(y_subj, n_runs)
    order = rng.permutation(len(y))  # runs of a subject need not be adjacent
    return y[order], groups[order]


def test_subject_never_straddles_folds(runs):
    y, groups = runs
    folds = subject_folds(y, groups, n_folds=4, seed=11)
    assert len(folds) == 4
    seen_in_test = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(seen_in_test), np.arange(len(y)))  # each run tested once
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert len(np.intersect1d(train, test)) == 0
        # stratified: both classes in every test fold
        assert set(y[test]) == {0, 1}


def test_folds_depend_on_seed(runs):
    y, groups = runs
    a = subject_folds(y, groups, 4, seed=1)
    b = subject_folds(y, groups, 4, seed=2)
    assert any(not np.array_equal(ta, tb) for (_, ta), (_, tb) in zip(a, b, strict=True))
    again = subject_folds(y, groups, 4, seed=1)
    assert all(np.array_equal(ta, tb) for (_, ta), (_, tb) in zip(a, again, strict=True))


def test_too_few_subjects_per_class_raises(runs):
    y, groups = runs
    with pytest.raises(InputDataError, match=r"each class needs at least 20 subjects"):
        subject_folds(y, groups, n_folds=20, seed=0)
    with pytest.raises(InputDataError, match="of one class only"):
        subject_folds(np.zeros_like(y), groups, n_folds=2, seed=0)


def test_labeled_subsets_stratified_nested_whole_subjects(runs):
    y, groups = runs
    fractions = [0.1, 0.5, 1.0]
    masks = labeled_subsets(y, groups, fractions, seed=5)
    labels = subject_labels(y, groups)
    per_class = labels.value_counts()
    for f, mask in masks.items():
        kept = subject_labels(y[mask], groups[mask])
        # whole subjects: a labeled subject has all its runs labeled
        assert set(groups[mask]).isdisjoint(set(groups[~mask]))
        for cls in (0, 1):
            want = min(per_class[cls], max(2, round(f * per_class[cls])))
            assert (kept == cls).sum() == want
    assert masks[1.0].all()
    assert not (masks[0.1] & ~masks[0.5]).any()  # nested
    assert not (masks[0.5] & ~masks[1.0]).any()


def test_labeled_subsets_minimum_two_per_class(runs):
    y, groups = runs
    mask = labeled_subsets(y, groups, [0.01], seed=0)[0.01]
    kept = subject_labels(y[mask], groups[mask])
    assert kept.value_counts().to_dict() == {0: 2, 1: 2}
    one_positive = np.isin(groups, groups[y == 0]) | (groups == groups[y == 1][0])
    with pytest.raises(InputDataError, match="1 subject"):
        labeled_subsets(y[one_positive], groups[one_positive], [0.5], seed=0)


# --- one split definition: the `lcm splits` table and evaluate's own folds agree ---------------


def _ids(n_subjects: int = 30, n_sites: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Runs (1-2 per subject) at ``n_sites`` sites, listed out of subject order, with classes."""
    rng = np.random.default_rng(8)
    rows, y = [], []
    for s in rng.permutation(n_subjects):
        for run in range(1 + s % 2):
            rows.append(("ds", f"sub{s:02d}", str(run + 1), f"site{s % n_sites}"))
            y.append(int(s % 3 == 0))
    return pd.DataFrame(rows, columns=["dataset", "subject", "run", "site"]), np.array(y)


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(ta, tb) and np.array_equal(ea, eb)
        for (ta, ea), (tb, eb) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("split", ["subject", "site"])
def test_table_folds_are_the_folds_evaluate_computes(split):
    ids, y = _ids()
    groups = (ids["dataset"] + "/" + ids["subject"]).to_numpy()
    sites = ids["site"].to_numpy()
    table = task_split_table(ids, y, n_folds=3, master_seed=5, repeats=[0, 1])
    assert set(table["scheme"]) == {"subject", "leave_site_out"}
    assert set(table["seed"]) == {0, 1}
    assert (table.groupby(["scheme", "seed", "subject"]).size() == 1).all()
    folds_by_repeat = []
    for repeat in (0, 1):
        seed = split_seed(5, repeat)
        assert seed == derived_seed(5, repeat)  # evaluate's seed derivation
        used, computed = outer_folds(y, groups, sites, split, 3, seed)
        used_t, from_table = outer_folds(y, groups, sites, split, 3, seed, table, repeat)
        assert used == used_t == split
        assert _same(computed, from_table)
        for train, test in from_table:
            assert not set(groups[train]) & set(groups[test])  # no subject straddles folds
            if split == "site":
                assert len(set(sites[test])) == 1 and not set(sites[train]) & set(sites[test])
            else:
                assert set(y[test]) == {0, 1}  # stratified
        folds_by_repeat.append(from_table)
    if split == "subject":  # repeats are different cross-validations
        assert not _same(folds_by_repeat[0], folds_by_repeat[1])


def test_table_errors_name_the_file_and_the_fix():
    ids, y = _ids()
    groups = (ids["dataset"] + "/" + ids["subject"]).to_numpy()
    sites = ids["site"].to_numpy()
    table = task_split_table(ids, y, n_folds=3, master_seed=5, repeats=[0])
    with pytest.raises(InputDataError, match=r"t\.parquet: no 'subject' folds for seed 2"):
        folds_from_table(table, groups, "subject", 2, "t.parquet")
    with pytest.raises(InputDataError, match=r"t\.parquet: 1 subject\(s\) of the task have no"):
        folds_from_table(table[table["subject"] != "sub04"], groups, "subject", 0, "t.parquet")
    # A subject given two folds (a hand-edited table): refused, not the last row taken.
    row = table[(table["subject"] == "sub04") & (table["scheme"] == "subject")]
    twice = pd.concat([table, row.assign(fold=(row["fold"] + 1) % 3)])
    with pytest.raises(InputDataError, match=r"t\.parquet: 1 subject\(s\) have more than one row"):
        folds_from_table(twice, groups, "subject", 0, "t.parquet")
    with pytest.raises(InputDataError, match=r"ds/sub04"):
        folds_from_table(twice, groups, "subject", 0, "t.parquet")
    with pytest.raises(InputDataError, match=r"3 subject-level folds, but evaluate.n_folds is 4"):
        outer_folds(y, groups, sites, "subject", 4, 0, table, 0, "t.parquet")
    # Without sites there is no leave-site-out scheme, and "site" falls back to subject folds.
    no_site = task_split_table(ids.assign(site=""), y, 3, 5, [0])
    assert set(no_site["scheme"]) == {"subject"}
    used, _ = outer_folds(y, groups, np.full(len(y), ""), "site", 3, 0, no_site, 0)
    assert used == "subject"


def test_a_table_whose_sites_the_runs_no_longer_name_is_refused_for_site_folds():
    """A splits table written before the site column changed gave 'leave-site-out' folds whose
    test fold mixed every site, each also in training, and the metrics still said split: site."""
    ids, y = _ids()
    groups = (ids["dataset"] + "/" + ids["subject"]).to_numpy()
    table = task_split_table(ids, y, n_folds=3, master_seed=5, repeats=[0])
    # The same subjects, now each at another site (site_column remapped, the store rewritten).
    moved = ids["site"].map({"site0": "site1", "site1": "site2", "site2": "site0"}).to_numpy()
    with pytest.raises(InputDataError, match=r"t\.parquet: .*site.*ds/sub\d\d") as err:
        outer_folds(y, groups, moved, "site", 3, 0, table, 0, "t.parquet")
    assert "lcm splits" in err.value.hint
    # The table's own sites still give its folds, and subject folds do not read the sites.
    sites = ids["site"].to_numpy()
    used, folds = outer_folds(y, groups, sites, "site", 3, split_seed(5, 0), table, 0)
    assert used == "site" and _same(folds, outer_folds(y, groups, sites, "site", 3, 0)[1])
    assert outer_folds(y, groups, moved, "subject", 3, 0, table, 0)[0] == "subject"


def test_evaluate_reads_its_folds_from_the_table(tmp_path, prevalence_model):
    """evaluate_task with the table tests each subject in the table's fold, and nowhere else."""
    ids, y = _ids(24)
    levels = np.where(y == 1, "autism", "control").astype(object)
    levels[:2] = None  # runs without a target are dropped before the folds
    n = len(ids)
    cohort = Cohort(
        ids.assign(session="", task="rest"),
        np.repeat(np.eye(4, dtype=np.float32)[None], n, axis=0),
        pd.DataFrame({"autism": pd.Series(levels, dtype=object)}),
        [f"roi{i}" for i in range(4)],
        "toy",
    )
    task = Task(name="autism", label="autism", negative="control", positive="autism")
    settings = EvaluationSettings.from_dict(
        {"n_folds": 3, "seeds": [0, 1], "label_fractions": [1.0], "models": [prevalence_model]}
    )
    kept, target = task_targets(cohort, task)
    table = task_split_table(kept.ids, target, 3, master_seed=2, repeats=[0, 1])
    path = write_splits(tmp_path / "task-autism_splits.parquet", table)
    stored = read_splits(path)
    with_table = evaluate_task(cohort, task, settings, 2, splits=stored).predictions
    without = evaluate_task(cohort, task, settings, 2).predictions
    pd.testing.assert_frame_equal(with_table, without)
    fold_of = stored[stored["scheme"] == "subject"].set_index(["seed", "subject"])["fold"]
    tested = with_table.set_index(["seed", "subject"])["fold"]
    assert (tested.to_numpy() == fold_of.loc[tested.index].to_numpy()).all()
    # A table of other subjects is refused rather than silently re-split.
    other = stored.assign(subject=stored["subject"] + "x")
    other.attrs["source"] = str(path)
    with pytest.raises(
        InputDataError, match=r"task-autism_splits\.parquet: 23 subject\(s\) .* e\.g\. \['ds/sub00'"
    ):
        evaluate_task(cohort, task, settings, 2, splits=other)


def test_a_fraction_that_keeps_every_label_says_so(caplog):
    """3 subjects per class, fraction 0.5, at least 3 kept: every label, silently reported as
    a label fraction of its own before."""
    y = np.array([0, 0, 0, 1, 1, 1])
    groups = np.array([f"s{i}" for i in range(6)])
    with caplog.at_level("WARNING", logger="lcm.evaluate.splits"):
        masks = labeled_subsets(y, groups, [0.5, 1.0], seed=0, min_per_class=3)
    assert masks[0.5].all() and masks[1.0].all()
    assert "label fraction 0.5 keeps every labelled subject" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="lcm.evaluate.splits"):
        labeled_subsets(np.tile([0, 1], 10), np.arange(20), [0.5, 1.0], seed=0)
    assert caplog.text == ""


def test_one_class_and_small_class_are_told_apart():
    """One class only was told to lower evaluate.n_folds, which cannot help."""
    groups = np.array([f"d/s{i}" for i in range(12)])
    with pytest.raises(InputDataError, match="of one class only") as info:
        subject_folds(np.ones(12, dtype=int), groups, 3, seed=0)
    assert "n_folds" not in (info.value.hint or "")
    y = np.array([1] * 10 + [0] * 2)
    with pytest.raises(InputDataError, match=r"\{0: 2, 1: 10\} \(1: the positive level"):
        subject_folds(y, groups, 3, seed=0)


def test_a_run_without_a_site_gets_no_leave_site_out_fold():
    """A missing site is stored as "" (lcm.store.phenotype): leave-site-out never makes it a
    site of its own. The task's table has no leave_site_out scheme, and asking for site folds
    directly is refused with the fix."""
    ids, y = _ids()
    ids.loc[ids["subject"] == "sub04", "site"] = ""
    groups = (ids["dataset"] + "/" + ids["subject"]).to_numpy()
    sites = ids["site"].to_numpy()
    assert not has_sites(sites)
    table = task_split_table(ids, y, 3, 5, [0])
    assert set(table["scheme"]) == {"subject"}
    with pytest.raises(InputDataError, match=r"every run to name a site.*''"):
        site_folds(y, groups, sites, seed=0)


def test_label_fraction_one_draws_no_subset_and_asks_for_none():
    """One subject of a class is enough for every label: the subset check is a fraction's."""
    y = np.array([0, 0, 0, 1])
    groups = np.array(["a", "b", "c", "d"])
    assert labeled_subsets(y, groups, [1.0], seed=0)[1.0].all()
    levels = ("lower half of age", "upper half of age")
    with pytest.raises(InputDataError, match=r"class 'upper half of age'") as info:
        labeled_subsets(y, groups, [0.2, 1.0], seed=0, task="age", class_names=levels, n_folds=5)
    assert info.value.hint.startswith("Lower evaluate.n_folds (now 5; 2 at least)")


def test_a_skipped_site_leaves_the_other_folds_their_table_numbers():
    """Leave-site-out folds keep the table's fold number when a site before them is skipped
    (the protocol renumbered them 0, 1, ...); a fold is still a (train, test) pair."""
    import copy
    import pickle

    # Site a: the only negatives but one, so its training part has one negative.
    groups = np.array([f"d/s{i}" for i in range(9)])
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1])
    sites = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c"], dtype=object)
    for seed in range(4):
        numbered = folds_from_table(
            make_splits(
                pd.DataFrame({"dataset": "d", "subject": [g[2:] for g in groups], "site": sites}),
                seed=seed,
                schemes=("leave_site_out",),
            ),
            groups,
            "leave_site_out",
            seed,
        )
        site_of = {f.fold: str(sites[f[1][0]]) for f in numbered}
        kept = usable_site_folds(numbered, y, groups, sites)
        assert {f.fold: str(sites[f[1][0]]) for f in kept} == {
            k: s for k, s in site_of.items() if s != "a"
        }
    fold = kept[0]
    train, test = fold
    assert len(train) == 6 and len(test) == 3
    for again in (pickle.loads(pickle.dumps(fold)), copy.deepcopy(fold)):
        assert isinstance(again, Fold) and again.fold == fold.fold
        assert all(np.array_equal(a, b) for a, b in zip(again, fold, strict=True))


def test_a_class_of_one_subject_is_not_told_to_lower_n_folds():
    """{0: 436, 1: 1}: the hint said "Lower evaluate.n_folds", which is 2 at least."""
    y = np.r_[np.zeros(436, int), [1]]
    groups = np.array([f"d/s{i}" for i in range(len(y))])
    with pytest.raises(InputDataError, match=r"class 1 has 1 labelled subject") as info:
        subject_folds(y, groups, 5, seed=0)
    assert "Lower evaluate.n_folds" not in info.value.hint
    assert "Add labelled subjects of class 1" in info.value.hint
    assert "{0: 436, 1: 1}" in str(info.value)


def test_site_less_runs_are_sent_to_their_datasets_site_column(caplog) -> None:
    """Leave-site-out without sites hinted "map site_column in the variable catalogue": the
    key of the dataset lacking them is named, filled in (every dataset's with one site)."""
    groups = np.array([f"abide/{i:02d}" for i in range(8)] + [f"adhd/{i:02d}" for i in range(8)])
    y = np.tile([0, 1], 8)
    sites = np.array(["A", "B"] * 4 + [""] * 8, dtype=object)
    with pytest.raises(InputDataError, match="needs every run to name a site") as err:
        site_folds(y, groups, sites, seed=0)
    assert err.value.hint == (
        "Set evaluate.split: subject, or name every subject's site in the variable catalogue "
        "(datasets.adhd.site_column) and rerun lcm store."
    )
    with pytest.raises(InputDataError, match="needs every run to name a site") as err:
        site_folds(y, groups, np.full(len(y), "A", dtype=object), seed=0)
    assert "(datasets.abide.site_column, datasets.adhd.site_column)" in err.value.hint
    with caplog.at_level("WARNING", logger="lcm.evaluate.splits"):
        assert outer_folds(y, groups, sites, "site", 2, 0)[0] == "subject"
    assert "(datasets.adhd.site_column in the variable catalogue)" in caplog.text


@pytest.mark.parametrize("command_line", [True, False], ids=["command_line", "rule"])
def test_leave_site_out_fixes_name_the_split_and_folds_as_given(command_line: bool) -> None:
    """Leave-site-out's fixes said "set evaluate.split: subject" and the label fractions'
    "lower evaluate.n_folds" to `lcm evaluate --settings` users too; a rule's job (no names)
    still reads the config's keys."""
    from lcm.commands.evaluate import SETTINGS_NAMES

    names = SETTINGS_NAMES if command_line else None
    split = '--settings\' split to "subject"' if command_line else "evaluate.split: subject"
    groups = np.array([f"d/s{i}" for i in range(8)])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # A subject at two sites.
    runs, both = np.r_[groups, groups[:1]], np.r_[y, y[:1]]
    sites = np.array(["a", "b"] * 4 + ["b"], dtype=object)
    with pytest.raises(InputDataError, match="runs at several sites") as info:
        site_folds(both, runs, sites, seed=0, names=names)
    assert info.value.hint == f"Fix the site column, or set {split}."
    # Each site holds one class: leaving it out leaves none of that class to train on.
    sites = np.where(y == 0, "a", "b").astype(object)
    with pytest.raises(InputDataError, match="no site leaves at least 2") as info:
        site_folds(y, groups, sites, seed=0, names=names)
    assert info.value.hint == f"Set {split}."
    with pytest.raises(InputDataError, match="needs every run to name a site") as info:
        site_folds(y, groups, np.full(len(y), "a", dtype=object), seed=0, names=names)
    assert info.value.hint.startswith(f"Set {split}, or name every subject's site")
    with pytest.raises(InputDataError, match="a training fold has 1 subject") as info:
        labeled_subsets(y[3:], groups[3:], [0.5, 1.0], seed=0, n_folds=5, names=names)
    n_folds, fractions = (
        ("--settings' n_folds", "--settings' label_fractions to [1.0]")
        if command_line
        else ("evaluate.n_folds", "evaluate.label_fractions: [1.0]")
    )
    assert info.value.hint.startswith(f"Lower {n_folds} (now 5; 2 at least)")
    assert f"every label only ({fractions})" in info.value.hint
