"""``lcm splits``: write the downstream splits table (folds per subject, site-level variants)."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd

from lcm.commands._arguments import MAX_SEED, int_at_least
from lcm.commands._atlas import add_atlas_arguments
from lcm.commands._path_text import path_text
from lcm.commands._sources import store_sources
from lcm.commands._task import task_name
from lcm.docstrings import fill_doc
from lcm.exceptions import ConfigError, InputDataError
from lcm.io.paths import variables_path
from lcm.io.provenance import write_sidecar
from lcm.store.read import read_runs, read_schema, read_table
from lcm.store.splits import (
    COLUMNS,
    SCHEMES,
    SITE_SCHEMES,
    make_splits,
    site_column_keys,
    too_few_sites,
    unsited_subjects,
    write_splits,
)

log = logging.getLogger(__name__)

# How this verb names the evaluate settings of a task's folds (lcm.evaluate.splits
# .setting_names): its options; under a workflow rule, the config's evaluate keys. The split
# and the label fractions are no options of its own: a task's table holds both schemes and
# every labelled subject, and `lcm evaluate` picks the scheme and draws the fractions inside
# its training folds, so they are named as that verb takes them (its --settings' keys), not
# as the config's evaluate keys a command-line user never wrote.
SETTINGS_NAMES = {
    "n_folds": "--n-folds",
    "seeds": "--repeats",
    "split": "lcm evaluate --settings' split",
    "label_fractions": "lcm evaluate --settings' label_fractions",
}

EXAMPLE = """examples:
  # the folds `lcm evaluate --splits` uses for a task (one cross-validation per repeat)
  lcm splits --store results/store --atlas aal116 --datasets abidelike --task autism \\
      --label autism --positive autism --catalogue config/variables.yaml \\
      --n-folds 5 --seed 0 --repeats 0 --out results/splits/task-autism_splits.parquet

  # every subject of downstream datasets, each scheme, one seed
  lcm splits --store results/store --atlas aal116 --datasets abidelike adnilike \\
      --n-folds 5 --seed 0 --label autism --out results/splits/splits.parquet

The table (dataset, subject, site, scheme, seed, n_folds, fold) is plain Parquet, one row per
subject, scheme and seed. With --task it holds the subjects whose runs have the task's target,
stratified as `lcm evaluate` stratifies (the class, or the lower/upper half by rank of a
continuous label), schemes subject and (where every run
names one of two or more sites) leave_site_out, and `seed` is the repeat. Without --task, --label
stratifies the subject folds by the labelled subjects' level (or half of a continuous label);
subjects without it are dealt over the folds and still listed. The schemes are subject, site and
leave_site_out, the last two only when every subject has a site (never a site ""); by default
site needs at least --n-folds sites and leave_site_out two (else left out, with a warning),
and named in --schemes they refuse fewer. Pretraining
can leave out every subject it lists: load_cohort(..., exclude=read_splits(path)).
"""


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``splits`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "splits",
        help="Assign downstream subjects to folds (subject, site, leave-site-out) as a table.",
        description="Read the subjects and sites of the datasets from the feature store and "
        "write, deterministically by seed, each subject's test fold under every scheme. Every "
        "subject listed is a downstream test subject that pretraining must not see. With "
        "--task, write the outer folds that `lcm evaluate --splits` uses for that task.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--store", required=True, type=path_text, help="Root of the feature store.")
    add_atlas_arguments(p)
    p.add_argument("--datasets", nargs="+", required=True, help="Downstream datasets.")
    p.add_argument(
        "--n-folds",
        type=int_at_least(2),
        help="Folds (default: the config's evaluate.n_folds default).",
    )
    p.add_argument(
        "--seed",
        type=int_at_least(0, MAX_SEED),
        help="Seed of the shuffles (default: the config's seed default); with --task, the "
        "workflow seed.",
    )
    p.add_argument(
        "--schemes",
        nargs="+",
        choices=SCHEMES,
        help="Split schemes (default: subject, and, when every subject has a site, site with "
        "--n-folds sites or more and leave_site_out with two or more; named here, a site-level "
        "scheme refuses subjects without a site and too few sites). Not with --task.",
    )
    p.add_argument("--label", help="Variable to stratify the subject-level folds by.")
    p.add_argument("--task", type=task_name, help="Task name: write that task's evaluation folds.")
    p.add_argument("--positive", help="With --task: positive level of a binary --label.")
    p.add_argument("--catalogue", type=path_text, help="With --task: variable catalogue (YAML).")
    p.add_argument(
        "--repeats",
        nargs="+",
        type=int_at_least(0),
        # None, not [0]: a --repeats given without --task is refused, not ignored.
        help="With --task: the evaluate.seeds entries, one cross-validation each (default 0).",
    )
    p.add_argument("--out", required=True, type=path_text, help="Parquet file to write.")
    p.set_defaults(func=run, recorded=("out",))


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm splits``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        The exit code, 0: errors are raised, not returned (:func:`lcm.cli.main` maps them).
    """
    _check_options(args)
    _schema_defaults(args)
    if args.task:
        splits, settings = _task_splits(args)
    else:
        from lcm.evaluate.splits import setting_names

        # The fixes name --n-folds and --schemes, or under a rule the config's evaluate.n_folds
        # and evaluate.split; the store said "n_folds" and "lcm splits --schemes subject"
        # whoever asked. Without --task (only) the schemes are this verb's option.
        said = setting_names(
            None if getattr(args, "rule", None) else {**SETTINGS_NAMES, "schemes": "--schemes"}
        )
        runs = read_runs(args.store, args.atlas, list(args.datasets))
        schemes = args.schemes or _default_schemes(runs, args.n_folds)
        if args.label:
            runs = _with_label(runs, args.store, args.label)
            splits = _labelled_splits(runs, args.label, args.n_folds, args.seed, schemes, said)
        else:
            splits = make_splits(runs, args.n_folds, args.seed, tuple(schemes), names=said)
        settings = {k: getattr(args, k) for k in ("atlas", "datasets", "n_folds", "seed", "label")}
        settings["schemes"] = list(schemes)
    write_splits(args.out, splits, provenance={"settings": settings})
    # A sidecar as every other output has: `lcm provenance trace` of the metrics reaches the
    # store (and the raw files) through it.
    sources = [*store_sources(args.store, args.atlas, list(args.datasets))]
    write_sidecar(args.out, [*sources, *([args.catalogue] if args.catalogue else [])])
    counts = splits.groupby("scheme")["fold"].nunique().to_dict()
    n_subjects = len(splits[["dataset", "subject"]].drop_duplicates())
    log.info("wrote %s: %d subjects, folds per scheme %s", args.out, n_subjects, json.dumps(counts))
    return 0


# The options only a task's folds read: without --task they were silently ignored.
_TASK_ONLY = ("positive", "catalogue", "repeats")


def _check_options(args: argparse.Namespace) -> None:
    """Refuse task-only options without ``--task``, and a scheme named twice in ``--schemes``.

    A repeated scheme wrote every subject twice under it, and ``lcm evaluate`` then refused the
    table (one row per scheme, dataset and subject).
    """
    if not args.task:
        given = [f"--{name}" for name in _TASK_ONLY if getattr(args, name) is not None]
        if given:
            raise ConfigError(
                f"lcm splits: {', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} "
                "with --task (a task's evaluation folds); without --task "
                f"{'it is' if len(given) == 1 else 'they are'} not used.",
                hint=f"Add --task <name> (with --label, --catalogue and one dataset) for a "
                f"task's folds, or leave out {', '.join(given)} for the pretraining splits.",
            )
    repeated = sorted({s for s in args.schemes or [] if args.schemes.count(s) > 1})
    if repeated:
        once = " ".join(dict.fromkeys(args.schemes))
        raise ConfigError(
            f"lcm splits: --schemes names {', '.join(map(repr, repeated))} more than once "
            f"({' '.join(args.schemes)}); each scheme gives every subject one fold.",
            hint=f"List each scheme once: --schemes {once}.",
        )


def _schema_defaults(args: argparse.Namespace) -> None:
    """Fill ``--n-folds`` and ``--seed`` not given with the config schema's defaults.

    The schema owns them (``evaluate.n_folds``, ``seed``); read here, not when the parser is
    built, so that other verbs do not parse the schema.
    """
    if args.n_folds is None or args.seed is None:
        from lcm.config import schema

        properties = schema()["properties"]
        if args.n_folds is None:
            args.n_folds = properties["evaluate"]["properties"]["n_folds"]["default"]
        if args.seed is None:
            args.seed = properties["seed"]["default"]


def _default_schemes(runs: pd.DataFrame, n_folds: int) -> list[str]:
    """Every scheme, less the site-level ones these runs cannot have (each logged).

    The store's ``""`` ("no site": a dataset without a site column, an empty cell) made a
    site of its own: one leave-site-out fold testing every site-less subject together. A
    default ``site`` scheme with fewer sites than ``n_folds``, or ``leave_site_out`` with one
    site, failed the whole command; named in ``--schemes``, they are still refused.
    """
    missing = unsited_subjects(runs)
    if missing:
        # Only lcm splits without --task comes here (a workflow rule passes its task).
        log.warning(
            "subject scheme only, no site-level folds: subjects without a site in %s (no site "
            "column in the catalogue, or empty cells); name %s in the catalogue (and fill their "
            "empty cells) and rerun lcm store for them",
            ", ".join(f"{d} ({n} subjects)" for d, n in missing.items()),
            site_column_keys(missing),
        )
        return [s for s in SCHEMES if s not in SITE_SCHEMES]
    schemes = []
    for scheme in SCHEMES:
        problem = too_few_sites(runs, scheme, n_folds)
        if problem:
            # Not fewer site folds: with as many folds as sites, 'site' is leave_site_out.
            log.warning("scheme %r left out of the default schemes: %s", scheme, problem)
        else:
            schemes.append(scheme)
    return schemes


def _task_splits(args: argparse.Namespace) -> tuple[pd.DataFrame, dict]:
    """The evaluation folds of one task: the runs with a target, stratified like evaluate."""
    # Imported here: the evaluate package is only needed for task tables.
    from lcm.catalogue import load_catalogue
    from lcm.evaluate.splits import (
        check_distinct_repeats,
        setting_names,
        strata,
        task_split_table,
    )
    from lcm.evaluate.tasks import TASK_OPTION_NAMES, target_values, task_from_catalogue
    from lcm.store.read import read_run_variables

    # Under a rule the folds and repeats are the config's evaluate keys.
    said = setting_names(None if getattr(args, "rule", None) else SETTINGS_NAMES)
    repeats = [0] if args.repeats is None else list(args.repeats)
    check_distinct_repeats(
        repeats,
        f"lcm splits --task {args.task}: --repeats",
        hint=f"List each {said['seeds']} entry once.",
    )
    if args.schemes:
        # Not honoured: a task's table holds the schemes its evaluation can use (silently
        # ignored, it wrote both when one was asked).
        raise ConfigError(
            f"lcm splits --task {args.task}: --schemes {' '.join(args.schemes)} does not apply "
            "to a task's folds, which hold the subject scheme and, where every subject has a "
            f"site, leave_site_out ({said['split']} picks one).",
            hint="Leave out --schemes with --task (or drop --task for the pretraining splits).",
        )
    if not args.label or not args.catalogue or len(args.datasets) != 1:
        raise InputDataError(
            f"lcm splits --task {args.task}: needs --label, --catalogue and exactly one dataset "
            f"(got label={args.label!r}, catalogue={args.catalogue!r}, datasets={args.datasets}).",
            hint="Pass the task's dataset, label (and --positive for a binary one) and catalogue.",
        )
    catalogue = load_catalogue(args.catalogue)
    # Under a rule the label and positive level are the config's tasks.<task> keys.
    names = None if getattr(args, "rule", None) else TASK_OPTION_NAMES
    task = task_from_catalogue(args.task, args.label, args.positive, catalogue, names)
    runs, variables = read_run_variables(args.store, args.atlas, list(args.datasets), catalogue)
    present, y = target_values(variables, task)
    if not present.any():
        # Not "one class only (class index: subjects {})", which sent users to the positive
        # level: no run has a value at all (as lcm evaluate says).
        dataset = args.datasets[0]
        raise InputDataError(
            f"lcm splits --task {args.task}: no subject of dataset {dataset!r} has a value of "
            f"{args.label!r} ({len(present)} run(s)), so the task has no subject to split.",
            hint=f"Check the catalogue's column for {args.label!r} (datasets.{dataset}.columns) "
            "and the phenotype file's subject IDs against the scans, then rerun lcm store; or "
            "name the dataset that records the label.",
        )
    ids = runs[present].reset_index(drop=True)
    splits = task_split_table(ids, strata(y), args.n_folds, args.seed, repeats, said)
    settings = {
        "task": args.task,
        "atlas": args.atlas,
        "datasets": args.datasets,
        "label": args.label,
        "positive": args.positive,
        "n_folds": args.n_folds,
        "master_seed": args.seed,
        "repeats": repeats,
    }
    return splits, settings


def _with_label(runs: pd.DataFrame, store: str, label: str) -> pd.DataFrame:
    frames = []
    for dataset, group in runs.groupby("dataset", sort=False):
        path = variables_path(store, str(dataset))
        columns = read_schema(path, str(dataset)).names if path.is_file() else []
        if label not in columns:
            raise InputDataError(
                f"Dataset {dataset!r} has no variable {label!r} in {path}.",
                hint="Name a catalogue variable the dataset provides, or drop --label.",
            )
        values = read_table(path, str(dataset), columns=["subject", label]).to_pandas()
        frames.append(group.merge(values, on="subject", how="left"))
    return pd.concat(frames, ignore_index=True)


def _labelled_splits(
    runs: pd.DataFrame,
    label: str,
    n_folds: int,
    seed: int,
    schemes: list[str],
    names: dict[str, str],
) -> pd.DataFrame:
    """:func:`make_splits` with the subject folds stratified by ``label``'s labelled subjects.

    A subject without the label is no stratum of its own (it was one, "missing"): the labelled
    subjects are stratified by their level, or by the lower/upper half of a continuous label
    (:func:`lcm.evaluate.splits.strata`, as ``--task`` stratifies), and the unlabelled ones
    are dealt over the folds in a seeded order. They stay in the table, so pretraining still
    leaves them out; no task tests them (a task's folds hold its labelled runs only).
    """
    from lcm.evaluate.splits import strata

    subjects = runs.drop_duplicates(["dataset", "subject"]).reset_index(drop=True)
    values = subjects[label]
    labelled = values.notna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    continuous = bool(numeric and values[labelled].nunique() > 2)
    if continuous:
        # A continuous label: its raw values made one stratum each (one subject per level).
        stratum = strata(values[labelled].to_numpy(dtype=float)).astype(str)
    else:
        stratum = values[labelled].astype(str).to_numpy()
    tables = []
    others = [s for s in schemes if s != "subject"]
    if others:
        tables.append(make_splits(runs, n_folds, seed, tuple(others), names=names))
    if "subject" in schemes:
        tables.append(
            _subject_scheme(subjects, label, labelled, stratum, n_folds, seed, names, continuous)
        )
    out = pd.concat(tables, ignore_index=True)
    out = out.sort_values(["scheme", "dataset", "subject"], kind="stable")
    return out.reset_index(drop=True)[list(COLUMNS)]


def _subject_scheme(
    subjects: pd.DataFrame,
    label: str,
    labelled: np.ndarray,
    stratum: np.ndarray,
    n_folds: int,
    seed: int,
    names: dict[str, str],
    continuous: bool = False,
) -> pd.DataFrame:
    """Subject folds: the labelled subjects stratified (by level, or by half of a
    ``continuous`` label), the others dealt round the folds."""
    frames = []
    if labelled.any():
        # The strata under the label's own name: make_splits names its column in errors, and
        # said "by 'stratum'", a column the user never gave.
        with_stratum = subjects[labelled].assign(**{label: stratum})
        frames.append(
            make_splits(
                with_stratum,
                n_folds,
                seed,
                ("subject",),
                label=label,
                names=names,
                continuous=continuous,
            )
        )
    rest = subjects[~labelled][["dataset", "subject", "site"]]
    rest = rest.assign(site=rest["site"].fillna("")).astype(str)
    if len(rest):
        rest = rest.sort_values(["dataset", "subject"], kind="stable").reset_index(drop=True)
        order = np.random.default_rng(seed).permutation(len(rest))
        fold = np.empty(len(rest), dtype=np.int64)
        fold[order] = np.arange(len(rest)) % n_folds
        frames.append(rest.assign(scheme="subject", seed=seed, n_folds=n_folds, fold=fold))
    return pd.concat(frames, ignore_index=True)
