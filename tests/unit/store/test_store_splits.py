"""Splits as data: one fold per subject and scheme, deterministic, and honoured by pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcm.catalogue import Catalogue, Variable, load_catalogue
from lcm.cli import main
from lcm.evaluate.splits import folds_from_table
from lcm.exceptions import InputDataError
from lcm.store.layout import n_edges
from lcm.store.loader import ConnectomeStream
from lcm.store.read import load_cohort, read_runs
from lcm.store.splits import (
    SCHEMES,
    downstream_test_keys,
    make_splits,
    read_splits,
    split_seed,
    write_splits,
)
from lcm.store.writer import write_connectome_arrays, write_variables

ROIS = [f"roi{i}" for i in range(5)]
DX = Catalogue(
    variables={"dx": Variable("dx", "binary", "clinical", levels=("ctl", "pat"))}, datasets={}
)


def _subjects(n: int = 40, sites: int = 6) -> pd.DataFrame:
    """Two runs per subject, sites of unequal size, a binary label."""
    subj = [f"{i:03d}" for i in range(n)]
    frame = pd.DataFrame(
        {
            "dataset": "abide",
            "subject": subj,
            "site": [f"S{min(i % 9, sites - 1)}" for i in range(n)],
            "dx": ["asd" if i % 3 == 0 else "ctl" for i in range(n)],
        }
    )
    return pd.concat([frame, frame], ignore_index=True)  # runs, not subjects


def test_every_subject_in_exactly_one_fold_per_scheme() -> None:
    splits = make_splits(_subjects(), n_folds=4, seed=7, label="dx")
    assert set(splits["scheme"]) == {"subject", "site", "leave_site_out"}
    per = splits.groupby(["scheme", "dataset", "subject"]).size()
    assert (per == 1).all() and len(per) == 3 * 40
    for scheme, group in splits.groupby("scheme"):
        folds = group["fold"].to_numpy()
        assert set(folds) == set(range(int(group["n_folds"].iloc[0]))), scheme
    site = splits[splits["scheme"] == "site"]
    assert (site.groupby("site")["fold"].nunique() == 1).all()  # a site never straddles folds
    lso = splits[splits["scheme"] == "leave_site_out"]
    assert lso.groupby("fold")["site"].nunique().eq(1).all() and lso["n_folds"].iloc[0] == 6
    # Stratified: each subject-level fold has both classes in about the overall ratio.
    subj = splits[splits["scheme"] == "subject"].merge(_subjects().drop_duplicates("subject"))
    ratio = subj.groupby("fold")["dx"].apply(lambda s: (s == "asd").mean())
    assert ratio.between(0.2, 0.5).all(), ratio


def test_splits_are_deterministic_by_seed() -> None:
    runs = _subjects()
    a = make_splits(runs, n_folds=4, seed=1)
    b = make_splits(runs.sample(frac=1.0, random_state=3), n_folds=4, seed=1)  # other run order
    pd.testing.assert_frame_equal(a, b)
    c = make_splits(runs, n_folds=4, seed=2)
    assert not a["fold"].equals(c["fold"])


def test_site_folds_follow_the_seed_and_stay_balanced() -> None:
    """The `site` scheme ignored the seed: a seeded shuffle, then a stable sort by site size and
    the first smallest fold, gave sites of distinct sizes the same folds under every seed."""
    sizes = range(3, 12)  # nine sites, no two of one size
    runs = pd.DataFrame(
        [
            {"dataset": "d", "subject": f"S{size}-{i}", "site": f"S{size}"}
            for size in sizes
            for i in range(size)
        ]
    )
    seen, balance = set(), set()
    for seed in range(8):
        site = make_splits(runs, n_folds=4, seed=seed, schemes=["site"])
        assert (site.groupby("site")["fold"].nunique() == 1).all()  # a site never straddles
        loads = site["fold"].value_counts().reindex(range(4), fill_value=0)
        assert loads.min() > 0 and loads.max() - loads.min() <= max(sizes), loads
        balance.add(tuple(sorted(loads)))
        seen.add(tuple(site["fold"]))
        again = make_splits(runs.iloc[::-1], n_folds=4, seed=seed, schemes=["site"])
        assert again["fold"].tolist() == site["fold"].tolist()  # still deterministic
    assert len(seen) > 4 and len(balance) == 1, (seen, balance)  # as balanced as before


@pytest.mark.parametrize(
    ("runs", "kwargs", "match"),
    [
        (_subjects(3), {"n_folds": 5, "schemes": ["subject"]}, "Cannot split 3 subjects"),
        (_subjects(sites=2), {"n_folds": 3, "schemes": ["site"]}, r"2 site\(s\)"),
        (_subjects(), {"schemes": ["kfold"]}, r"Unknown split scheme\(s\) \['kfold'\]"),
        (_subjects(), {"schemes": ["subject", "subject"]}, r"\['subject'\] named more than once"),
        (
            _subjects().assign(site=["A"] * 40 + ["B"] * 40),
            {},
            "has runs at 2 sites",
        ),
    ],
)
def test_impossible_splits_are_refused(runs, kwargs, match) -> None:
    with pytest.raises(InputDataError, match=match):
        make_splits(runs, **kwargs)


@pytest.mark.parametrize("scheme", ["leave_site_out", "site"])
def test_a_subject_without_a_site_is_no_site_of_its_own(scheme: str) -> None:
    """The store's "" (no site column, an empty site cell) was a site: leave-site-out tested
    every site-less subject in one fold of site "", trained on the named sites."""
    runs = _subjects(sites=4)
    runs.loc[runs["subject"].astype(int) >= 30, "site"] = ""
    with pytest.raises(
        InputDataError, match=r"need every subject's site; .* 'abide' \(10 of 40\)"
    ) as info:
        make_splits(runs, n_folds=3, schemes=[scheme])
    # The dataset's key filled in (it said datasets.<name>.site_column).
    assert info.value.hint == (
        "Name the dataset's site column in the variable catalogue (datasets.abide.site_column), "
        "fill its empty cells and rerun `lcm store`, or use the subject scheme alone "
        "(schemes=['subject'])."
    )
    assert set(make_splits(runs, n_folds=3, schemes=["subject"])["site"]) >= {"", "S0"}


def test_one_site_names_the_site_column_key_of_the_dataset() -> None:
    """One site in all: the fix named datasets.<name>.site_column, its dataset unfilled."""
    with pytest.raises(InputDataError, match="Cannot leave one site out") as info:
        make_splits(_subjects(sites=1), schemes=["leave_site_out"])
    assert info.value.hint == (
        "Use the subject scheme (schemes=['subject']), or add datasets or sites "
        "(datasets.abide.site_column in the variable catalogue, then rerun lcm store)."
    )


@pytest.mark.parametrize(
    ("names", "subject", "both"),
    [
        # lcm splits: its own option.
        ({"n_folds": "--n-folds", "schemes": "--schemes"}, "--schemes subject", None),
        # A workflow rule, or lcm evaluate: the evaluation's split picks the scheme.
        (
            {"split": "evaluate.split"},
            "evaluate.split: subject",
            "evaluate.split: subject or evaluate.split: site",
        ),
        (
            {"split": "--settings' split"},
            '--settings\' split to "subject"',
            '--settings\' split to "subject" or --settings\' split to "site"',
        ),
        # A Python caller: the argument.
        (None, "schemes=['subject']", "schemes=['subject', 'leave_site_out']"),
    ],
)
def test_too_few_sites_names_the_schemes_setting_as_given(
    names: dict | None, subject: str, both: str | None
) -> None:
    """The too-few-sites and site-less fixes said `lcm splits --schemes subject` whoever asked:
    under a workflow rule the user picks the scheme with evaluate.split, not an option of a
    command the workflow runs. Each names the setting the way the user gave it."""
    with pytest.raises(InputDataError, match="Cannot leave one site out") as one:
        make_splits(_subjects(sites=1), schemes=["leave_site_out"], names=names)
    assert one.value.hint.startswith(f"Use the subject scheme ({subject}), or add datasets")
    runs = _subjects(sites=4)
    runs.loc[runs["subject"].astype(int) >= 30, "site"] = ""
    with pytest.raises(InputDataError, match="need every subject's site") as siteless:
        make_splits(runs, n_folds=3, schemes=["leave_site_out"], names=names)
    assert siteless.value.hint.endswith(f"or use the subject scheme alone ({subject}).")
    with pytest.raises(InputDataError, match="Cannot split 2 site") as few:
        make_splits(_subjects(sites=2), n_folds=5, schemes=["site"], names=names)
    said = both or f"{subject} leave_site_out"
    assert f"or the subject scheme ({said}), or add datasets" in few.value.hint
    if names and "split" in names:
        assert "--schemes" not in one.value.hint + siteless.value.hint + few.value.hint


@pytest.mark.parametrize(
    ("rule", "subject"),
    [([], "--schemes subject"), (["--rule", "splits"], "evaluate.split: subject")],
    ids=["command_line", "rule"],
)
def test_lcm_splits_names_the_schemes_and_a_continuous_labels_halves_as_given(
    tmp_path: Path, rule: list[str], subject: str
) -> None:
    """`lcm splits` on one site told a workflow rule's user to run `lcm splits --schemes
    subject`; and stratifying by a continuous label (by its lower and upper half) with too few
    subjects said "its rarest level has 3 subjects", as if one age value were short."""
    from lcm.cli import build_parser

    store = _sited_store(tmp_path, {"one": 1})
    ages = pd.DataFrame({"subject": [f"{i:02d}" for i in range(10)], "site": "S0"})
    ages["age"] = [20.0 + 3 * i for i in range(10)]
    age = Catalogue(
        variables={"age": Variable("age", "continuous", "sociodemographic")}, datasets={}
    )
    write_variables(store, "one", ages, age)
    argv = [*rule, "splits", "--store", str(store), "--atlas", "toy", "--datasets", "one"]
    argv += ["--out", str(tmp_path / "s.parquet"), "--n-folds"]
    args = build_parser().parse_args([*argv, "2", "--schemes", "subject", "leave_site_out"])
    with pytest.raises(InputDataError, match="Cannot leave one site out of 1 site") as info:
        args.func(args)
    assert info.value.hint.startswith(f"Use the subject scheme ({subject}), or add datasets")
    # 10 subjects, halves of 5: 6 folds cannot stratify them.
    args = build_parser().parse_args([*argv, "6", "--schemes", "subject", "--label", "age"])
    with pytest.raises(InputDataError) as info:
        args.func(args)
    assert info.value.message == (
        "Cannot stratify 6 folds by 'age' (a continuous label, stratified by the lower and "
        "upper half of its values by rank): its smaller half has 5 subjects."
    )
    assert "level" not in info.value.message
    args = build_parser().parse_args([*argv, "5", "--schemes", "subject", "--label", "age"])
    assert args.func(args) == 0


def test_lcm_splits_without_task_gives_site_less_datasets_subject_folds(tmp_path: Path) -> None:
    """`lcm splits` without --task on a dataset without sites made "" a site: its default
    schemes failed (site folds of one site "nosite/") and leave-site-out was one fold of every
    subject. Now the site-level schemes are left out, logged; asked for, they are refused."""
    n = 12
    runs = pd.DataFrame({"subject": [f"{i:02d}" for i in range(n)], "run": "1", "site": ""})
    vec = np.zeros((n, n_edges(len(ROIS))), dtype=np.float32)
    write_connectome_arrays(tmp_path, "toy", "nosite", runs, vec, ROIS)
    some = runs.assign(site=[f"S{i % 3}" if i < 9 else "" for i in range(n)])
    write_connectome_arrays(tmp_path, "toy", "somesite", some, vec, ROIS)
    base = ["splits", "--store", str(tmp_path), "--atlas", "toy", "--n-folds", "3"]
    for dataset in ("nosite", "somesite"):
        out = tmp_path / f"{dataset}.parquet"
        assert main([*base, "--datasets", dataset, "--out", str(out)]) == 0
        table = read_splits(out)
        assert set(table["scheme"]) == {"subject"} and len(table) == n
        assert sorted(table["fold"].value_counts()) == [4, 4, 4]
    refused = tmp_path / "refused.parquet"
    asked = ["--schemes", "subject", "leave_site_out", "--out", str(refused)]
    assert main([*base, "--datasets", "nosite", *asked]) == 3 and not refused.exists()
    sited = runs.assign(site=[f"S{i % 3}" for i in range(n)])
    write_connectome_arrays(tmp_path, "toy", "sited", sited, vec, ROIS)
    assert main([*base, "--datasets", "sited", "--out", str(refused)]) == 0
    assert set(read_splits(refused)["scheme"]) == set(SCHEMES)


def test_lcm_splits_names_the_site_column_of_each_site_less_dataset(tmp_path: Path) -> None:
    """The warning said "name datasets.<name>.site_column", the datasets it meant named apart."""
    from lcm.cli import setup_logging

    n = 12
    runs = pd.DataFrame({"subject": [f"{i:02d}" for i in range(n)], "run": "1", "site": ""})
    vec = np.zeros((n, n_edges(len(ROIS))), dtype=np.float32)
    for dataset in ("nosite", "alsonone"):
        write_connectome_arrays(tmp_path, "toy", dataset, runs, vec, ROIS)
    log = tmp_path / "splits.log"
    argv = ["--log-file", str(log), "splits", "--store", str(tmp_path), "--atlas", "toy"]
    argv += ["--datasets", "nosite", "alsonone", "--out", str(tmp_path / "s.parquet")]
    try:
        assert main(argv) == 0
    finally:
        setup_logging()
    assert (
        "name datasets.alsonone.site_column, datasets.nosite.site_column in the catalogue (and "
        "fill their empty cells) and rerun lcm store for them" in log.read_text()
    ), log.read_text()


def _store(tmp_path: Path) -> Path:
    """One dataset whose labeled subjects are a downstream task and the rest pretrain."""
    n = 30
    rng = np.random.default_rng(0)
    runs = pd.DataFrame(
        {
            "subject": [f"{i // 2:03d}" for i in range(n)],
            "run": [str(1 + i % 2) for i in range(n)],
            "site": [f"S{(i // 2) % 3}" for i in range(n)],
        }
    )
    vec = rng.uniform(-1, 1, (n, n_edges(len(ROIS)))).astype(np.float32)
    write_connectome_arrays(tmp_path, "toy", "cohort", runs, vec, ROIS, row_group_size=4)
    labeled = pd.DataFrame(
        {
            "subject": [f"{i:03d}" for i in range(15)],
            "site": [f"S{i % 3}" for i in range(15)],
            "dx": [("pat" if i % 2 else "ctl") if i < 9 else None for i in range(15)],
        }
    )
    write_variables(tmp_path, "cohort", labeled, DX)
    return tmp_path


def test_no_downstream_test_subject_reaches_pretraining(tmp_path: Path) -> None:
    store = _store(tmp_path)
    out = tmp_path / "splits.parquet"
    code = main(
        [
            "splits",
            "--store",
            str(store),
            "--atlas",
            "toy",
            "--datasets",
            "cohort",
            "--n-folds",
            "3",
            "--seed",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    every = read_splits(out)
    # The downstream task is the labeled subjects only: their splits are what pretraining avoids.
    runs = read_runs(store, "toy", ["cohort"])
    labeled = runs[runs["subject"].astype(int) < 9]
    splits = make_splits(labeled, n_folds=3, seed=4)
    write_splits(tmp_path / "task.parquet", splits)
    test_keys = downstream_test_keys(read_splits(tmp_path / "task.parquet"))
    assert len(test_keys) == 9 and len(downstream_test_keys(every)) == 15
    cohort = load_cohort(store, "toy", ["cohort"], DX, exclude=splits)
    seen = set(cohort.groups)
    assert seen and not seen & test_keys
    assert len(cohort) == 30 - 2 * 9
    stream = ConnectomeStream(store, "toy", ["cohort"], exclude=splits, shuffle_buffer=3)
    streamed = {f"cohort/{stream.runs['subject'][s['index']]}" for s in stream}
    assert streamed == seen
    # Without the exclusion the same call would have seen them: the test can fail.
    assert test_keys <= set(load_cohort(store, "toy", ["cohort"], DX).groups)


def test_task_table_from_the_cli_keeps_its_test_subjects_out_of_pretraining(tmp_path: Path) -> None:
    """`lcm splits --task`: the evaluation folds of the labeled subjects, and the exclusion list."""
    store = _store(tmp_path)
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(
        "schema_version: 1\n"
        "variables:\n  dx: {kind: binary, domain: clinical, levels: [ctl, pat]}\n"
        "datasets:\n  cohort: {id_column: participant_id, columns: {dx: {column: dx}}}\n"
    )
    out = tmp_path / "splits" / "task-dx_splits.parquet"
    args = [
        "splits",
        "--store",
        str(store),
        "--atlas",
        "toy",
        "--datasets",
        "cohort",
        "--task",
        "dx",
        "--label",
        "dx",
        "--positive",
        "pat",
        "--catalogue",
        str(catalogue_path),
        "--n-folds",
        "3",
        "--seed",
        "4",
        "--repeats",
        "0",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    table = read_splits(out)
    # Only the 9 subjects with a diagnosis are the task's; each once per scheme and repeat.
    assert set(table["subject"]) == {f"{i:03d}" for i in range(9)}
    assert set(table["scheme"]) == {"subject", "leave_site_out"} and set(table["seed"]) == {0, 1}
    assert (table.groupby(["scheme", "seed", "subject"]).size() == 1).all()
    subj = table[(table["scheme"] == "subject") & (table["seed"] == 0)]
    assert sorted(subj["fold"].value_counts()) == [3, 3, 3]
    # The repeats are the evaluate seeds: the same folds evaluate derives from the workflow seed.
    dx = subj.assign(dx=subj["subject"].astype(int) % 2)  # pat for odd subjects (_store)
    again = make_splits(dx, 3, seed=split_seed(4, 0), schemes=["subject"], label="dx")
    assert again["fold"].tolist() == subj["fold"].tolist()
    other = make_splits(dx, 3, seed=split_seed(4, 1), schemes=["subject"], label="dx")
    assert (
        other["fold"].tolist()
        == table[table["seed"] == 1].query("scheme == 'subject'")["fold"].tolist()
    )
    catalogue = load_catalogue(catalogue_path)
    cohort = load_cohort(store, "toy", ["cohort"], catalogue, exclude=table)
    assert len(cohort) == 30 - 2 * 9 and not set(cohort.groups) & downstream_test_keys(table)
    # A continuous or unlabeled task needs its label; a binary one its positive level.
    bad = [a for a in args if a not in ("--positive", "pat")]
    assert main(bad) != 0
    # The repeats are evaluate.seeds: listed twice, the same folds would be written twice.
    twice = [a if a != "1" else "0" for a in args]
    assert main(twice) == 2
    # --schemes is the pretraining table's: with --task it was ignored, both schemes written.
    out.unlink()
    assert main([*args, "--schemes", "subject"]) == 2 and not out.exists()
    # Without --repeats, one cross-validation: repeat 0.
    at = args.index("--repeats")
    assert main([*args[:at], *args[at + 3 :]]) == 0 and set(read_splits(out)["seed"]) == {0}


def _sited_store(tmp_path: Path, sites: dict[str, int]) -> Path:
    """One dataset per entry, its 10 subjects spread over that many named sites."""
    vec = np.zeros((10, n_edges(len(ROIS))), dtype=np.float32)
    for dataset, n_sites in sites.items():
        runs = pd.DataFrame({"subject": [f"{i:02d}" for i in range(10)], "run": "1"}).assign(
            site=[f"S{i % n_sites}" for i in range(10)]
        )
        write_connectome_arrays(tmp_path, "toy", dataset, runs, vec, ROIS)
    return tmp_path


def test_default_schemes_leave_out_what_too_few_sites_cannot_split(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """2 named sites and 5 folds: the default `site` scheme failed the whole `lcm splits`
    (GroupKFold needs a group per fold). Left out now, with the dataset and counts logged; the
    leave-site-out folds are there, and read back as `lcm evaluate` reads them."""
    store = _sited_store(tmp_path, {"two": 2, "one": 1})
    base = ["splits", "--store", str(store), "--atlas", "toy", "--n-folds", "5"]
    out = tmp_path / "two.parquet"
    assert main([*base, "--datasets", "two", "--out", str(out)]) == 0
    logged = capfd.readouterr().err
    assert "scheme 'site' left out of the default schemes: Cannot split 2 site(s) into 5" in (
        logged
    )
    assert "dataset(s) 'two': 2 sites" in logged
    table = read_splits(out)
    assert table.groupby("scheme")["n_folds"].first().to_dict() == {
        "leave_site_out": 2,
        "subject": 5,
    }
    groups = ("two/" + table.loc[table["scheme"] == "subject", "subject"]).to_numpy()
    folds = folds_from_table(table, groups, "leave_site_out", 0)
    assert [len(test) for _, test in folds] == [5, 5]
    refused = tmp_path / "refused.parquet"
    asked = ["--datasets", "two", "--schemes", "site", "--out", str(refused)]
    assert main([*base, *asked]) == 3 and not refused.exists()  # asked for: an error
    assert "hint: Lower --n-folds to 2 or fewer" in capfd.readouterr().err
    # One site: no site-level scheme at all, each left out with its reason.
    assert main([*base, "--datasets", "one", "--out", str(out)]) == 0
    logged = capfd.readouterr().err
    assert set(read_splits(out)["scheme"]) == {"subject"}
    assert "'leave_site_out' left out of the default schemes: Cannot leave one site out of 1" in (
        logged
    )
    # Two datasets pool their sites (a site is dataset/site): 3 sites, 3 folds.
    both = ["--datasets", "two", "one", "--n-folds", "3", "--out", str(out)]
    assert main([*base[:-2], *both]) == 0
    assert set(read_splits(out)["scheme"]) == set(SCHEMES)


@pytest.mark.parametrize(
    ("sites", "scheme", "message", "fix"),
    [
        (2, "site", r"Cannot split 2 site\(s\) into 5 site-level folds", "n_folds to 2 or fewer"),
        (1, "site", r"Cannot split 1 site\(s\) into 5", "schemes=['subject']"),
        (1, "leave_site_out", "Cannot leave one site out of 1 site", "schemes=['subject']"),
    ],
)
def test_site_schemes_asked_for_with_too_few_sites_are_refused(
    sites: int, scheme: str, message: str, fix: str
) -> None:
    """Named in --schemes, a site-level scheme the sites cannot give is an error, as
    GroupKFold's; leave-site-out of one site was one fold with nothing to train on."""
    runs = _subjects(n=20, sites=sites)
    with pytest.raises(InputDataError, match=rf"{message}.*'abide': {sites} site") as err:
        make_splits(runs, n_folds=5, schemes=["subject", scheme])
    assert fix in err.value.hint


def test_a_verbs_output_file_lcm_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """Every verb's recorded outputs (here `lcm splits --out`): a user's file at that path is
    refused before anything is written (it was replaced); LCM's own, recorded, is rerun over."""
    n = 12
    runs = pd.DataFrame({"subject": [f"{i:02d}" for i in range(n)], "run": "1", "site": ""})
    vec = np.zeros((n, n_edges(len(ROIS))), dtype=np.float32)
    write_connectome_arrays(tmp_path, "toy", "ds", runs, vec, ROIS)
    base = ["splits", "--store", str(tmp_path), "--atlas", "toy", "--datasets", "ds"]
    mine = tmp_path / "my folds.parquet"
    mine.write_bytes(b"the user's own table")
    assert main([*base, "--out", str(mine)]) == 6
    assert mine.read_bytes() == b"the user's own table"
    assert not (tmp_path / "my folds.json").exists()
    out = tmp_path / "splits.parquet"
    assert main([*base, "--out", str(out)]) == 0
    assert main([*base, "--n-folds", "3", "--out", str(out)]) == 0  # its own: replaced
    assert sorted(read_splits(out)["fold"].value_counts()) == [4, 4, 4]


def test_lcm_splits_defaults_are_the_config_schemas(tmp_path: Path, monkeypatch) -> None:
    # --n-folds and --seed default to evaluate.n_folds and seed of the schema (one owner):
    # `lcm splits` spelled its own 5 and 0 beside them.
    import lcm.config

    real = lcm.config.schema

    def schema() -> dict:
        tree = real()
        tree["properties"]["evaluate"]["properties"]["n_folds"]["default"] = 4
        tree["properties"]["seed"]["default"] = 3
        return tree

    monkeypatch.setattr(lcm.config, "schema", schema)
    store = _sited_store(tmp_path, {"ten": 10})
    out = tmp_path / "splits.parquet"
    args = ["splits", "--store", str(store), "--atlas", "toy", "--datasets", "ten"]
    assert main([*args, "--schemes", "subject", "--out", str(out)]) == 0
    table = read_splits(out)
    assert table["fold"].nunique() == 4 and set(table["seed"]) == {3}


def test_a_scheme_named_twice_is_refused(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`--schemes subject subject` wrote every subject twice under 'subject' (lcm evaluate then
    refused the table); with --label too, and `site site` the same."""
    store = _sited_store(tmp_path, {"ten": 10})
    base = ["splits", "--store", str(store), "--atlas", "toy", "--datasets", "ten", "--n-folds"]
    out = tmp_path / "splits.parquet"
    for schemes in (["subject", "subject"], ["subject", "site", "site"]):
        assert main([*base, "2", "--schemes", *schemes, "--out", str(out)]) == 2
        assert not out.exists()
        err = capfd.readouterr().err
        assert f"--schemes names {schemes[-1]!r} more than once" in err, err
        assert f"hint: List each scheme once: --schemes {' '.join(dict.fromkeys(schemes))}" in err
    assert main([*base, "2", "--schemes", "subject", "site", "--out", str(out)]) == 0
    assert (read_splits(out).groupby(["scheme", "subject"]).size() == 1).all()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--positive", "pat"], "--positive only applies with --task"),
        (["--catalogue", "variables.yaml"], "--catalogue only applies with --task"),
        (["--repeats", "0", "1"], "--repeats only applies with --task"),
        (["--positive", "pat", "--repeats", "0"], "--positive, --repeats only apply with --task"),
    ],
)
def test_task_options_without_task_are_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], given: list[str], named: str
) -> None:
    """--positive, --catalogue and --repeats are read by a task's folds only: without --task
    they were silently ignored (one seed written where --repeats asked for two)."""
    store = _sited_store(tmp_path, {"ten": 10})
    out = tmp_path / "splits.parquet"
    args = ["splits", "--store", str(store), "--atlas", "toy", "--datasets", "ten"]
    assert main([*args, "--n-folds", "2", *given, "--out", str(out)]) == 2
    assert not out.exists()
    err = capfd.readouterr().err
    assert named in err and "hint: Add --task <name>" in err, err


def test_a_task_with_no_labelled_subject_says_so(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """No subject with a value of the label: `lcm splits --task` said "the labelled subjects
    are of one class only (class index: subjects {})", sending users to the positive level."""
    store = _sited_store(tmp_path, {"ten": 10})
    subjects = [f"{i:02d}" for i in range(10)]
    unlabelled = pd.DataFrame({"subject": subjects, "site": "S0", "dx": None})
    write_variables(store, "ten", unlabelled, DX)
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(
        "schema_version: 1\n"
        "variables:\n  dx: {kind: binary, domain: clinical, levels: [ctl, pat]}\n"
        "datasets:\n  ten: {id_column: participant_id, columns: {dx: {column: dx}}}\n"
    )
    out = tmp_path / "task-dx_splits.parquet"
    args = ["splits", "--store", str(store), "--atlas", "toy", "--datasets", "ten", "--task"]
    args += ["dx", "--label", "dx", "--positive", "pat", "--catalogue", str(catalogue)]
    assert main([*args, "--n-folds", "2", "--out", str(out)]) == 3 and not out.exists()
    err = capfd.readouterr().err
    assert "no subject of dataset 'ten' has a value of 'dx' (10 run(s))" in err, err
    assert "one class only" not in err and "column for 'dx'" in err


@pytest.mark.parametrize(
    ("rule", "name"),
    [([], "--n-folds"), (["--rule", "splits"], "evaluate.n_folds")],
    ids=["command_line", "rule"],
)
def test_lcm_splits_without_task_names_the_folds_as_given(
    tmp_path: Path, rule: list[str], name: str
) -> None:
    """`lcm splits` without --task told its user to "Lower n_folds": a name they never wrote
    (their option is --n-folds; under a workflow rule, the config's evaluate.n_folds)."""
    from lcm.cli import build_parser
    from lcm.store.splits import site_fold_ids

    store = _sited_store(tmp_path, {"ten": 10})
    # 2 'pat' subjects: 3 folds cannot stratify by dx.
    dx = ["pat" if i < 2 else "ctl" for i in range(10)]
    labels = pd.DataFrame({"subject": [f"{i:02d}" for i in range(10)], "site": "S0", "dx": dx})
    write_variables(store, "ten", labels, DX)
    argv = [*rule, "splits", "--store", str(store), "--atlas", "toy", "--datasets", "ten"]
    argv += ["--schemes", "subject", "--out", str(tmp_path / "s.parquet")]
    cases = [
        (["--n-folds", "12"], "Cannot split 10 subjects into 12", "add subjects"),
        # By the label given, not the internal column ("by 'stratum'").
        (
            ["--n-folds", "3", "--label", "dx"],
            "Cannot stratify 3 folds by 'dx'",
            "drop stratification",
        ),
    ]
    for options, message, other in cases:
        args = build_parser().parse_args([*argv, *options])
        with pytest.raises(InputDataError, match=message) as info:
            args.func(args)
        most = 10 if other == "add subjects" else 2
        assert info.value.hint == f"Lower {name} to {most} or fewer, or {other}."
    # Balanced site folds name it as passed, and the argument without names.
    for names, said in (({"n_folds": name}, name), (None, "n_folds")):
        with pytest.raises(InputDataError, match=r"Cannot split 2 site\(s\)") as info:
            site_fold_ids(np.array(["a", "b", "a"]), 3, 0, names)
        assert info.value.hint == (
            f"Lower {said} to 2 or fewer, or use the leave_site_out or subject scheme."
        )
    # The site scheme asked for with fewer sites than folds (the check before the folds):
    # its fix named --n-folds whoever asked, a rule's user and a Python caller included.
    for names, said in (({"n_folds": name}, name), (None, "n_folds")):
        with pytest.raises(InputDataError, match=r"Cannot split 2 site\(s\) into 3") as info:
            make_splits(_subjects(n=12, sites=2), 3, 0, ["site"], names=names)
        assert (info.value.hint or "").startswith(f"Lower {said} to 2 or fewer (")


@pytest.mark.parametrize("damage", ["empty", "text", "truncated", "folder"])
def test_a_damaged_splits_table_is_refused_naming_it(tmp_path: Path, damage: str) -> None:
    """An empty, plain-text or truncated splits table ended `lcm evaluate --splits` in a
    pyarrow traceback; a folder was 'not found'."""
    splits = make_splits(_subjects(), n_folds=4, seed=7)
    path = write_splits(tmp_path / "splits.parquet", splits)
    assert len(read_splits(path)) == len(splits)
    whole = path.read_bytes()
    path.unlink()
    if damage == "folder":
        path.mkdir()
    else:
        body = {"empty": b"", "text": b"subject\tfold\n", "truncated": whole[: len(whole) // 2]}
        path.write_bytes(body[damage])
    said = "is a folder, not a file" if damage == "folder" else "Cannot read splits table"
    with pytest.raises(InputDataError, match=said) as caught:
        read_splits(path)
    assert str(path) in str(caught.value)
    if damage != "folder":
        assert "lcm splits ... --out" in caught.value.hint
