"""``lcm evaluate`` end to end: a tiny feature store on disk -> metrics and predictions Parquet."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from lcm.catalogue import load_catalogue
from lcm.commands import evaluate as evaluate_cmd
from lcm.evaluate.metrics import METRIC_COLUMNS, PREDICTION_COLUMNS
from lcm.exceptions import ConfigError, InputDataError, OutputOwnershipError
from lcm.store.writer import write_connectomes, write_variables

N_ROIS = 7  # distinct from the subject and time-point counts


@pytest.fixture
def store(tmp_path):
    """A store holding 24 subjects of 'toyds' (one run each) with an autism label."""
    catalogue_path = tmp_path / "variables.yaml"
    catalogue_path.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "variables": {
                    "autism": {
                        "kind": "binary",
                        "domain": "clinical",
                        "levels": ["control", "autism"],
                    },
                    "age": {
                        "kind": "continuous",
                        "domain": "sociodemographic",
                        "units": "years",
                        "range": [5, 100],
                    },
                },
                "datasets": {
                    "toyds": {"id_column": "SUB_ID", "columns": {"autism": "DX", "age": "AGE"}}
                },
            }
        )
    )
    catalogue = load_catalogue(catalogue_path)
    rng = np.random.default_rng(0)
    names = [f"R{i}" for i in range(N_ROIS)]
    qc_rows, pheno = [], []
    for s in range(24):
        cls = s % 2
        ts = rng.normal(size=(45, N_ROIS))
        ts[:, :3] += (1.0 if cls else 0.2) * rng.normal(size=(45, 1))
        relmat = tmp_path / f"sub-{s:02d}_relmat.tsv"
        pd.DataFrame(np.corrcoef(ts.T), index=pd.Index(names, name="Node"), columns=names).to_csv(
            relmat, sep="\t"
        )
        qc_rows.append(
            {
                "subject": f"{s:02d}",
                "session": "",
                "task": "rest",
                "run": "1",
                "run_key": f"sub-{s:02d}_task-rest",
                "included": True,
                "relmat": str(relmat),
                "n_volumes": 45,
                "n_volumes_kept": 45,
                "mean_fd": 0.1,
                "t_r": 2.0,
            }
        )
        label = None if s == 23 else ("control", "autism")[cls]
        pheno.append({"subject": f"{s:02d}", "site": "A", "autism": label, "age": 20.0 + s})
    phenotype = pd.DataFrame(pheno)
    root = tmp_path / "store"
    write_connectomes(root, "toy", "toyds", pd.DataFrame(qc_rows), phenotype)
    write_variables(root, "toyds", phenotype, catalogue)
    return {"root": root, "catalogue": catalogue_path}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lcm")
    evaluate_cmd.register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.mark.slow
def test_evaluate_command_end_to_end(store, tmp_path):
    out, pred = tmp_path / "out" / "m.parquet", tmp_path / "out" / "p.parquet"
    settings = {
        "n_folds": 3,
        "seeds": [0, 2],
        "label_fractions": [0.5, 1.0],
        "models": ["logreg", "shuffled-labels"],
    }
    args = _parse(
        [
            "evaluate",
            "--store",
            str(store["root"]),
            "--atlas",
            "toy",
            "--catalogue",
            str(store["catalogue"]),
            "--task",
            "asd",
            "--dataset",
            "toyds",
            "--label",
            "autism",
            "--positive",
            "autism",
            "--settings",
            json.dumps(settings),
            "--seed",
            "3",
            "--out",
            str(out),
            "--predictions",
            str(pred),
        ]
    )
    assert args.func(args) == 0
    metrics, predictions = pd.read_parquet(out), pd.read_parquet(pred)
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert tuple(predictions.columns) == PREDICTION_COLUMNS
    assert set(metrics["task"]) == {"asd"}
    assert len(metrics) == 2 * 3 * 2 * 2 * 6
    # the unlabeled subject 23 is dropped; the 23 others are predicted once per fit setting
    assert "23" not in set(predictions["subject"])
    assert len(predictions) == 23 * 2 * 2 * 2
    auc = metrics.query("metric == 'auc' and label_fraction == 1.0").groupby("model")["value"]
    assert auc.mean()["logreg"] > 0.8
    sidecar = json.loads((tmp_path / "out" / "m.json").read_text())
    assert sidecar["settings"]["seeds"] == [0, 2] and sidecar["master_seed"] == 3
    assert str(store["catalogue"]) in sidecar["Sources"]


def test_evaluate_command_rejects_bad_positive(store, tmp_path):
    args = _parse(
        [
            "evaluate",
            "--store",
            str(store["root"]),
            "--atlas",
            "toy",
            "--catalogue",
            str(store["catalogue"]),
            "--task",
            "asd",
            "--dataset",
            "toyds",
            "--label",
            "autism",
            "--positive",
            "ASD",
            "--settings",
            '{"models": ["logreg"]}',
            "--out",
            str(tmp_path / "m.parquet"),
            "--predictions",
            str(tmp_path / "p.parquet"),
        ]
    )
    with pytest.raises(ConfigError, match=r"levels \['control', 'autism'\]"):
        args.func(args)
    assert not (tmp_path / "m.parquet").exists()


def test_evaluate_names_the_cause_when_no_subject_is_labelled(store, tmp_path):
    # Phenotype IDs that match no scan: every run stored without variables, and evaluate said
    # "the labelled subjects are of one class only (class index: subjects {})".
    from lcm.io.paths import variables_path
    from lcm.io.provenance import write_sidecar
    from lcm.store.read import load_cohort

    catalogue = load_catalogue(store["catalogue"])
    root = tmp_path / "wrongids"
    wrong = pd.DataFrame(
        {"subject": [f"X{s:02d}" for s in range(24)], "site": "A", "autism": "autism", "age": 30.0}
    )
    cohort = load_cohort(store["root"], "toy", ["toyds"], catalogue)
    write_variables(root, "toyds", wrong, catalogue)
    pheno = tmp_path / "p_wrongids.tsv"
    pheno.write_text("SUB_ID\tDX\n")
    write_sidecar(variables_path(root, "toyds"), [pheno, store["catalogue"]])
    unlabelled = evaluate_cmd.Cohort(
        cohort.ids,
        cohort.fc,
        cohort.variables.assign(autism=None, age=np.nan),
        cohort.roi_names,
        cohort.atlas,
    )
    task = evaluate_cmd.Task(name="asd", label="autism", negative="control", positive="autism")
    with pytest.raises(InputDataError) as caught:
        evaluate_cmd.check_task_labelled(unlabelled, task, root, "toyds")
    message = str(caught.value)
    assert "none of the 24 run(s) of 'toyds'" in message and "one class" not in message
    assert "match no scanned subject" in message and "p_wrongids.tsv" in message
    assert "missingness_dataset-toyds.tsv" in caught.value.hint
    evaluate_cmd.check_task_labelled(cohort, task, root, "toyds")  # labelled: passes
    # The protocol itself says so too, not "one class only".
    from lcm.evaluate.protocol import EvaluationSettings, evaluate_task

    with pytest.raises(InputDataError, match="no labelled subject: none of the 24 run"):
        evaluate_task(unlabelled, task, EvaluationSettings.from_dict({"models": ["logreg"]}), 0)


def test_evaluate_uses_the_folds_of_lcm_splits(store, tmp_path, prevalence_model):
    """As in the workflow: `lcm splits --task` writes folds that `lcm evaluate --splits` reads."""
    from lcm.cli import main

    table = tmp_path / "splits" / "task-asd_splits.parquet"
    common = [
        "--store",
        str(store["root"]),
        "--atlas",
        "toy",
        "--catalogue",
        str(store["catalogue"]),
    ]
    assert (
        main(
            [
                "splits",
                *common,
                "--datasets",
                "toyds",
                "--task",
                "asd",
                "--label",
                "autism",
                "--positive",
                "autism",
                "--n-folds",
                "3",
                "--seed",
                "3",
                "--repeats",
                "0",
                "2",
                "--out",
                str(table),
            ]
        )
        == 0
    )
    out, pred = tmp_path / "m.parquet", tmp_path / "p.parquet"
    settings = {
        "n_folds": 3,
        "seeds": [0, 2],
        "label_fractions": [1.0],
        "models": [prevalence_model],
    }
    argv = [
        "evaluate",
        *common,
        "--task",
        "asd",
        "--dataset",
        "toyds",
        "--label",
        "autism",
        "--positive",
        "autism",
        "--seed",
        "3",
        "--splits",
        str(table),
        "--out",
        str(out),
        "--predictions",
        str(pred),
    ]
    args = _parse([*argv, "--settings", json.dumps(settings)])
    assert args.func(args) == 0
    folds = pd.read_parquet(table).query("scheme == 'subject'")
    predictions = pd.read_parquet(pred)
    merged = predictions.merge(folds, on=["subject", "seed"], suffixes=("", "_table"))
    assert len(merged) == len(predictions) == 23 * 2
    assert (merged["fold"] == merged["fold_table"]).all()
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert str(table) in sidecar["Sources"] and sidecar["splits_table"] == str(table)
    # The metrics' lineage reaches the store, through their sidecar and the splits table's
    # (trace stopped at the splits table, which had none, and never named the store).
    partition = str(
        store["root"] / "connectomes" / "atlas=toy" / "dataset=toyds" / "part-0.parquet"
    )
    assert partition in sidecar["Sources"]
    assert partition in json.loads(table.with_suffix(".json").read_text())["Sources"]
    # Settings that disagree with the table are refused, naming the table and the fix.
    args = _parse([*argv, "--settings", json.dumps({**settings, "n_folds": 4})])
    with pytest.raises(InputDataError, match=r"task-asd_splits\.parquet: 3 subject-level"):
        args.func(args)


def test_metrics_record_the_checkpoints_model_files_only(tmp_path):
    """The folder's lock (the writer's pid), ownership mark, sidecars and history changed
    with every pretraining run, and `provenance verify` reported the metrics stale."""
    from lcm.commands.evaluate import _checkpoint_files

    names = ["model.safetensors", "model.json", "bei_linear.npz", "history.tsv", ".lcm.lock"]
    names += [".lcm-owned", "model.safetensors.prov.json", "bei_eval.tsv"]
    for name in names:
        (tmp_path / name).write_text("x")
    got = [p.name for p in _checkpoint_files(str(tmp_path), maps=True)]
    assert got == ["model.safetensors", "model.json", "bei_linear.npz"]
    assert _checkpoint_files(None) == []
    # The ridge maps (rewritten on their own by lcm bei-maps) only where a model reads them.
    got = [p.name for p in _checkpoint_files(str(tmp_path))]
    assert got == ["model.safetensors", "model.json"]


@pytest.mark.parametrize("label", ["autism", "age"])
def test_lcm_splits_label_stratifies_labelled_subjects_only(store, tmp_path, label):
    """`lcm splits --label` made unlabelled subjects a stratum ("missing"; subject 23 here)
    and every value of a continuous label a level of its own; both refused 3 folds."""
    from lcm.cli import main

    table = tmp_path / "splits.parquet"
    argv = ["splits", "--store", str(store["root"]), "--atlas", "toy", "--datasets", "toyds"]
    argv += ["--n-folds", "3", "--schemes", "subject", "--label", label, "--out", str(table)]
    assert main(argv) == 0
    folds = pd.read_parquet(table).set_index("subject")["fold"]
    # Every subject is listed (pretraining leaves them all out), the unlabelled one too.
    assert sorted(folds.index) == [f"{s:02d}" for s in range(24)]
    labelled = [f"{s:02d}" for s in range(23)]
    # autism: subjects alternate control/autism; age 20 + s: the lower half is 00 to 11.
    upper = [s for s in labelled if (int(s) % 2 if label == "autism" else int(s) >= 12)]
    per_fold = folds[upper].value_counts().sort_index().tolist()
    assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == len(upper)


def _argv(store, out, pred) -> list[str]:
    settings = {"n_folds": 3, "seeds": [0], "label_fractions": [1.0], "models": ["logreg"]}
    return [
        "evaluate",
        *("--store", str(store["root"]), "--atlas", "toy", "--catalogue", str(store["catalogue"])),
        *("--task", "asd", "--dataset", "toyds", "--label", "autism", "--positive", "autism"),
        *("--settings", json.dumps(settings), "--out", str(out), "--predictions", str(pred)),
    ]


def test_an_output_that_cannot_be_written_is_refused_before_the_fits(store, tmp_path, monkeypatch):
    """--predictions below a file failed after every fit, the metrics table already written
    (without record: its rerun was refused as a file LCM did not write). Refused first now;
    a predictions write failing later takes the metrics table with it."""
    out = tmp_path / "m.parquet"
    (tmp_path / "notadir").write_text("")
    args = _parse(_argv(store, out, tmp_path / "notadir" / "p.parquet"))
    with pytest.raises(
        OutputOwnershipError, match=r"notadir is a file, not a folder; nothing was computed"
    ):
        args.func(args)
    assert not out.exists()

    real = evaluate_cmd.write_tidy_parquet

    def full(path, *a, **k):
        if str(path).endswith("p.parquet"):
            raise OSError(28, "No space left on device")
        return real(path, *a, **k)

    monkeypatch.setattr(evaluate_cmd, "write_tidy_parquet", full)
    args = _parse(_argv(store, out, tmp_path / "p.parquet"))
    with pytest.raises(OSError, match="No space left"):
        args.func(args)
    assert not out.exists()
    monkeypatch.setattr(evaluate_cmd, "write_tidy_parquet", real)
    assert args.func(args) == 0 and out.exists() and (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize(
    ("rule", "said"),
    [([], "--settings: unknown"), (["--rule", "evaluate"], "evaluate: unknown")],
    ids=["command_line", "rule"],
)
def test_an_unknown_evaluate_key_gets_its_likely_key(tmp_path, rule: list[str], said: str):
    """--settings '{"n_fold": 3}' was told only "unknown evaluate keys ['n_fold']", where
    every other settings error says which key was likely meant; a rule's names its section."""
    from lcm.cli import build_parser

    argv = [*rule, "evaluate", "--task", "dx", "--settings", json.dumps({"n_fold": 3})]
    argv += ["--out", str(tmp_path / "m.parquet"), "--predictions", str(tmp_path / "p.parquet")]
    argv += ["--store", str(tmp_path / "store"), "--atlas", "toy", "--catalogue", "v.yaml"]
    argv += ["--dataset", "d", "--label", "dx"]
    args = build_parser().parse_args(argv)
    with pytest.raises(ConfigError) as info:
        evaluate_cmd.run(args)
    assert f"{said} evaluate key 'n_fold' (did you mean 'n_folds'?)" in str(info.value)


@pytest.mark.parametrize(
    ("rule", "folds", "repeats", "split"),
    [
        (
            [],
            "Lower --n-folds",
            "List each --repeats entry once.",
            "(lcm evaluate --settings' split picks one)",
        ),
        (
            ["--rule", "splits"],
            "Lower evaluate.n_folds",
            "List each evaluate.seeds entry once.",
            "(evaluate.split picks one)",
        ),
    ],
    ids=["command_line", "rule"],
)
def test_lcm_splits_names_the_folds_and_repeats_as_given(
    store, tmp_path, rule: list[str], folds: str, repeats: str, split: str
):
    """`lcm splits --task` told a command-line user to lower evaluate.n_folds and to list each
    evaluate.seeds entry once: config keys it never wrote (its options are --n-folds and
    --repeats); a workflow rule's job still names the config's keys. The split is no option
    of lcm splits (its table holds both schemes): named as `lcm evaluate` takes it."""
    from lcm.cli import build_parser

    argv = [*rule, "splits", "--store", str(store["root"]), "--atlas", "toy"]
    argv += ["--datasets", "toyds", "--task", "asd", "--label", "autism", "--positive", "autism"]
    argv += ["--catalogue", str(store["catalogue"]), "--out", str(tmp_path / "s.parquet")]
    # 11 labelled autism subjects: fewer than 12 folds.
    args = build_parser().parse_args([*argv, "--n-folds", "12"])
    with pytest.raises(InputDataError, match="each class needs at least 12 subjects") as info:
        args.func(args)
    assert info.value.hint.startswith(f"{folds} or add labeled subjects")
    args = build_parser().parse_args([*argv, "--repeats", "0", "1", "0"])
    with pytest.raises(ConfigError, match=r"--repeats must be distinct") as info:
        args.func(args)
    assert info.value.hint == repeats
    args = build_parser().parse_args([*argv, "--schemes", "subject"])
    with pytest.raises(ConfigError, match="does not apply to a task's folds") as info:
        args.func(args)
    assert split in str(info.value) and "task's evaluate.split" not in str(info.value)


def test_lcm_splits_names_the_split_and_fractions_as_lcm_evaluate_takes_them():
    """`lcm splits` has no option for the split nor the label fractions (`lcm evaluate` picks
    the scheme of its table and draws the fractions): a fix reached through its names said
    "set evaluate.split: subject" on the command line; it names lcm evaluate's --settings'
    keys, spelt as that verb spells them."""
    from lcm.commands.evaluate import SETTINGS_NAMES as EVALUATE_NAMES
    from lcm.commands.splits import SETTINGS_NAMES
    from lcm.evaluate.splits import setting_names
    from lcm.hints import set_to

    said = setting_names(SETTINGS_NAMES)
    for key in ("split", "label_fractions"):
        assert said[key] == f"lcm evaluate {EVALUATE_NAMES[key]}"
    assert set_to(said["split"], "subject") == 'lcm evaluate --settings\' split to "subject"'
    assert set_to(said["label_fractions"], [1.0]) == (
        "lcm evaluate --settings' label_fractions to [1.0]"
    )


@pytest.mark.parametrize(
    ("rule", "folds", "split"),
    [
        ([], "Lower --settings' n_folds", 'set --settings\' split to "subject"'),
        (["--rule", "evaluate"], "Lower evaluate.n_folds", "set evaluate.split: subject"),
    ],
    ids=["command_line", "rule"],
)
def test_lcm_evaluate_names_the_folds_and_split_as_given(
    store, tmp_path, caplog, rule: list[str], folds: str, split: str
):
    """`lcm evaluate` told a command-line user to lower evaluate.n_folds or set
    evaluate.split: subject, where they gave both in --settings."""
    from lcm.cli import build_parser

    argv = _argv(store, tmp_path / "m.parquet", tmp_path / "p.parquet")
    at = argv.index("--settings") + 1
    settings = json.loads(argv[at])
    argv[at] = json.dumps({**settings, "n_folds": 12})
    args = build_parser().parse_args([*rule, *argv])
    with pytest.raises(InputDataError, match="each class needs at least 12 subjects") as info:
        evaluate_cmd.run(args)
    assert info.value.hint.startswith(f"{folds} or add labeled subjects")
    # Every subject at one site: leave-site-out falls back to subject folds, saying how to
    # ask for them.
    argv[at] = json.dumps({**settings, "split": "site"})
    args = build_parser().parse_args([*rule, *argv])
    with caplog.at_level("WARNING", logger="lcm.evaluate.splits"):
        assert evaluate_cmd.run(args) == 0
    assert "split: site asked, but" in caplog.text and split in caplog.text
