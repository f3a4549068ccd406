"""The report's Provenance section and its list of runs dropped before evaluation: what the
inputs' sidecars, the checkpoint's model.json and the task metadata hold is on the page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.report import (
    CONFIG,
    WEIGHTS,
    bare,
    run_report,
    with_provenance,
    with_records,
    write_record,
)

from lcm.evaluate.bei_linear import MAPS_FILE, fit_bei_maps
from lcm.io.config_copy import read_config_copy, write_config_copy
from lcm.io.provenance import config_hash, sha256_file
from lcm.report.dropped import MAX_LISTED_IDS, dropped_rows
from lcm.report.findings import provenance_summary
from lcm.report.html import table_html
from lcm.report.provenance_section import collect_provenance, provenance_section


@pytest.fixture
def recorded(inputs: dict, tmp_path: Path) -> dict:
    """The report inputs, each metrics table with its sidecar and the checkpoint's metadata."""
    return with_provenance(inputs, tmp_path)


def test_the_page_says_what_the_inputs_record(recorded: dict, tmp_path: Path) -> None:
    out = run_report(
        recorded["inputs"],
        tmp_path / "out",
        ["--checkpoint", str(recorded["checkpoint"]), "--configs", str(recorded["configs"])],
    )
    page = out["html"].read_text()
    section = page.split('<h2 id="provenance">', 1)[1].split("<footer>", 1)[0]
    assert '<a href="#provenance">' in page
    assert "LCM 0.1.0, git c0ffee &mdash; all 2 recorded inputs agree" in section
    assert f"Config sha256: {recorded['sha']} &mdash; all 2 recorded inputs agree" in section
    # The config itself, from its copy, which re-hashes to the recorded sha256.
    assert f"{recorded['sha']}.json</code> (its content re-hashes" in section
    assert "&quot;n_folds&quot;: 4" in section
    assert "<code>results/logs/evaluate/</code>" in section
    assert f"lcm provenance trace {recorded['inputs']['metrics'][0]}" in section
    cells = [
        str(recorded["checkpoint"]),
        "pretrained",
        WEIGHTS,
        "bidsdemo, hcplike, ppmilike, ukblike",
        "463",
        "470",
        "46",
        "alzheimers, autism",
        "same sha256",
    ]
    assert "<tr><td>" + "</td><td>".join(cells) + "</td></tr>" in bare(section)
    # model.json and the config copy are inputs of the page: in its sidecar.
    sources = json.loads(out["html"].with_suffix(".json").read_text())["Sources"]
    assert str(recorded["checkpoint"] / "model.json") in sources
    assert str(recorded["configs"] / f"{recorded['sha']}.json") in sources


def test_the_finetuned_models_and_the_ridge_maps_are_named(recorded: dict, tmp_path: Path) -> None:
    """The attention maps come from a finetuned model and bei-linear's numbers from the ridge
    maps: both are named on the page with their sha256, and with the inputs made from them."""
    pretrained = recorded["checkpoint"]
    tuned = pretrained.parent / "finetune" / "autism"
    tuned.mkdir(parents=True)
    (tuned / "model.safetensors").write_bytes(b"tuned weights")
    tuned_sha = sha256_file(tuned / "model.safetensors")
    meta = {
        "kind": "finetuned",
        "weights_sha256": tuned_sha,
        "label": {"name": "dx", "levels": ["control", "patient"], "positive": "patient"},
        "pretrained_from": str(pretrained),
    }
    (tuned / "model.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    fc = np.tanh(rng.normal(size=(30, 4, 4)) * 0.3)
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    variables = pd.DataFrame({"age": rng.normal(40, 10, 30)})
    maps = fit_bei_maps(fc, variables, np.arange(30).astype(str)).save(pretrained / MAPS_FILE)
    maps_sha = sha256_file(maps)
    # As lcm embed and lcm evaluate record them: the attention from the finetuned weights,
    # one task's metrics from the maps.
    attention = tmp_path / "task-autism_attention.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(attention)
    write_record(
        attention,
        recorded["sha"],
        "logs/embed/autism.log",
        {str(tuned / "model.safetensors"): tuned_sha},
    )
    first = recorded["inputs"]["metrics"][0]
    write_record(first, recorded["sha"], "logs/evaluate/a.log", {str(maps): maps_sha})
    facts = collect_provenance(
        [*recorded["inputs"]["metrics"], attention], [pretrained, tuned], maps=[maps]
    )
    section = bare(provenance_section(facts, {}, table_html))
    tuned_cells = [
        str(tuned),
        f"finetuned (dx, from {pretrained})",
        tuned_sha,
        "n/a",
        "n/a",
        "n/a",
        "n/a",
        "task-autism_attention.parquet",
        "same sha256",
    ]
    assert "<tr><td>" + "</td><td>".join(tuned_cells) + "</td></tr>" in section
    maps_cells = [str(maps), "bei-linear ridge maps (1 BEI variable(s))", maps_sha]
    assert "<tr><td>" + "</td><td>".join(maps_cells) + "</td>" in section
    assert f"<td>{first.name}</td><td>same sha256</td>" in section
    # Through the command: both are inputs of the page, named in its sidecar.
    out = run_report(
        recorded["inputs"],
        tmp_path / "out",
        ["--checkpoint", str(pretrained), str(tuned), "--bei-maps", str(maps)],
    )
    page = out["html"].read_text()
    for text in (str(tuned), tuned_sha, str(maps), maps_sha):
        assert text in page
    sources = json.loads(out["html"].with_suffix(".json").read_text())["Sources"]
    assert str(tuned / "model.json") in sources and str(maps) in sources


def test_the_variables_the_ridge_maps_left_out_are_named_with_their_counts(
    recorded: dict, tmp_path: Path
) -> None:
    """bei-linear reads only the variables that have a ridge map: through `lcm report`, the
    Provenance section names those the maps left out, each with its count of training
    subjects and the threshold (the maps' own record, read by lcm.train.bei_maps), and the
    variables mapped, so a reader of bei-linear's numbers knows which BEI variables it used."""
    rng = np.random.default_rng(0)
    n = 40
    fc = np.tanh(rng.normal(size=(n, 4, 4)) * 0.3)
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    variables = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "rare": np.where(np.arange(n) < 6, rng.normal(size=n), np.nan),
            "smoker": pd.Series(np.where(np.arange(n) < 4, "yes", "no"), dtype=object),
            "field": np.full(n, 3.0),
        }
    )
    pretrained = recorded["checkpoint"]
    fitted = fit_bei_maps(fc, variables, np.arange(n).astype(str))
    maps = fitted.save(pretrained / MAPS_FILE)
    assert set(fitted.left_out) == {"rare", "smoker=yes"} and fitted.min_values == 20
    assert fitted.constant == ["field"]
    out = run_report(
        recorded["inputs"],
        tmp_path / "out",
        ["--checkpoint", str(pretrained), "--bei-maps", str(maps)],
    )
    page = out["html"].read_text()
    section = bare(page.split('<h2 id="provenance">', 1)[1].split("<footer>", 1)[0])
    rare, smoker = fitted.left_out["rare"], fitted.left_out["smoker=yes"]
    assert (
        f"{maps} maps {', '.join(fitted.names)}; it left out rare ({rare}), smoker=yes "
        f"({smoker}): fewer than 20 training subjects with a value" in section
    )
    assert "lcm bei-maps --min-values" in section
    assert (
        "(<code>evaluate.bei_linear_min_values</code>); and field: one value in every run. "
        "bei-linear reads the variables mapped only." in section
    )
    # Maps of no variable (every one too rare for the threshold) say so, and that bei-linear
    # was skipped.
    none = fit_bei_maps(fc, variables, np.arange(n).astype(str), min_values=1000)
    none.save(maps)
    out = run_report(
        recorded["inputs"],
        tmp_path / "none",
        ["--checkpoint", str(pretrained), "--bei-maps", str(maps)],
    )
    section = bare(out["html"].read_text().split('<h2 id="provenance">', 1)[1])
    assert f"{maps} maps no variable; it left out age ({none.left_out['age']})" in section
    assert "fewer than 1000 training subjects" in section
    assert "bei-linear reads the variables mapped only, so it was skipped." in section


def test_every_stages_log_folder_is_listed(recorded: dict, tmp_path: Path) -> None:
    """Not only the folders of the report's direct inputs (evaluate/ here): the stages whose
    outputs reach the page through others (finetune, splits, ingest, fMRIPrep, synth) too."""
    logs = tmp_path / "results" / "logs"
    stages = ["connectome", "embed", "evaluate", "finetune", "fmriprep", "ingest", "pretrain"]
    stages += ["report", "splits", "store", "synth"]
    for stage in stages:
        (logs / stage).mkdir(parents=True)
        (logs / stage / "job.log").write_text("")
    (logs / ".hidden").mkdir()
    facts = collect_provenance(recorded["inputs"]["metrics"], logs_dir=logs)
    section = provenance_section(facts, {}, table_html)
    (line,) = [x for x in section.split("<li>") if x.startswith("Logs: ")]
    for stage in stages:
        assert f"<code>{logs}/{stage}/</code>" in line, stage
    assert ".hidden" not in line
    # As the sidecars name them (relative to the workflow's folder), and through the command.
    assert "<code>results/logs/evaluate/</code>" in line
    out = run_report(recorded["inputs"], tmp_path / "out", ["--logs", str(logs)])
    assert f"<code>{logs}/finetune/</code>" in out["html"].read_text()


def test_inputs_made_under_other_configs_are_named(recorded: dict) -> None:
    first, second = recorded["inputs"]["metrics"]
    write_record(second, "f" * 64, "results/logs/evaluate/autism.log", {})
    facts = collect_provenance([first, second], [], recorded["configs"])
    section = provenance_section(facts, {}, table_html)
    assert 'class="warn">Config sha256: the 2 recorded inputs do <b>not</b> agree' in section
    assert f"<li>{recorded['sha']}: 1 input(s): {first}</li>" in section
    assert f"<li>{'f' * 64}: 1 input(s): {second}</li>" in section
    assert f"No copy of config {'f' * 12}" in section
    assert "No checkpoint was given to the report" in section


def test_each_verbs_code_hash_is_shown_beside_the_commit(recorded: dict) -> None:
    """Outside an LCM checkout no commit is recorded: the code is named by the hash each verb
    records of the code it ran (verbs differ from one another, which is no disagreement)."""
    first, second = recorded["inputs"]["metrics"]
    evaluate = {"verb": "evaluate", "log_file": "results/logs/evaluate/a.log"}
    write_record(first, None, "", {}, git_commit=None, code_sha256="d" * 64, params=evaluate)
    write_record(second, None, "", {}, git_commit=None, code_sha256="d" * 64, params=evaluate)
    facts = collect_provenance([first, second])
    section = provenance_section(facts, {}, table_html)
    assert "LCM 0.1.0, git unknown commit &mdash; all 2 recorded inputs agree" in section
    assert f"<li>lcm evaluate: {'d' * 64} (2 input(s))</li>" in section
    write_record(second, None, "", {}, code_sha256="e" * 64, params=evaluate)
    section = provenance_section(collect_provenance([first, second]), {}, table_html)
    assert "lcm evaluate: its inputs were made by 2 versions of its code" in section
    assert f"<li>{'e' * 64}: 1 input(s): {second}</li>" in section


def test_an_edited_config_copy_is_named_as_changed_not_as_absent(recorded: dict) -> None:
    """It said "No copy of config ... (outputs of a workflow run before LCM kept the
    validated config there)" of a copy that was there, edited."""
    copy = recorded["configs"] / f"{recorded['sha']}.json"
    copy.write_text(json.dumps({**CONFIG, "seed": 2}))
    facts = collect_provenance(recorded["inputs"]["metrics"], [], recorded["configs"])
    section = provenance_section(facts, {}, table_html)
    now = config_hash({**CONFIG, "seed": 2})
    assert (
        f"The copy of config {recorded['sha']} was changed since it was written (it re-hashes "
        f"to {now}): <code>{copy}</code> is not shown"
    ) in section
    assert "No copy of config" not in section and "<details>" not in section


def test_a_checkpoint_changed_after_the_metrics_is_flagged(recorded: dict) -> None:
    meta = json.loads((recorded["checkpoint"] / "model.json").read_text())
    meta["weights_sha256"] = "cd" * 32
    (recorded["checkpoint"] / "model.json").write_text(json.dumps(meta))
    metrics = recorded["inputs"]["metrics"]
    facts = collect_provenance(metrics, [recorded["checkpoint"] / "model.json"])
    task_meta = {"autism": {"checkpoint": str(recorded["checkpoint"])}}
    assert "DIFFERENT sha256" in provenance_section(facts, task_meta, table_html)


def test_the_config_copy_rehashes_to_its_name_and_is_never_rewritten(tmp_path: Path) -> None:
    path = write_config_copy(str(tmp_path), CONFIG)
    assert path == tmp_path / "configs" / f"{config_hash(CONFIG)}.json"
    assert read_config_copy(path) == (CONFIG, config_hash(CONFIG))
    path.write_text("kept\n")  # a file already at that name is left alone
    assert write_config_copy(str(tmp_path), CONFIG) == path and path.read_text() == "kept\n"


def _meta(n: int) -> dict:
    subjects = [f"abidelike/s{i:03d}" for i in range(n)]
    return {
        "label": "age",
        "runs_dropped": [
            {
                "reason_code": "no_label",
                "reason": "no 'age' value",
                "n_runs": n + 1,
                "n_subjects": n,
                "runs": [f"{s}/run-1" for s in subjects] + [f"{subjects[0]}/run-2"],
                "subjects": subjects,
            }
        ],
    }


def test_runs_dropped_for_a_missing_label_are_listed_with_their_ids() -> None:
    n = MAX_LISTED_IDS + 7
    rows = dropped_rows({"age": _meta(n), "autism": {"n_runs_dropped_no_label": 0}})
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["task"], row["reason"], row["runs"], row["subjects"]) == (
        "age",
        "no 'age' value",
        n + 1,
        n,
    )
    assert row["subject IDs"].startswith("abidelike/s000, abidelike/s001")
    assert row["subject IDs"].endswith(f"abidelike/s{MAX_LISTED_IDS - 1:03d} and 7 more")
    assert row["run IDs"].endswith(" and 8 more")


def test_the_page_lists_dropped_runs_in_the_protocol_part(inputs: dict, tmp_path: Path) -> None:
    """The demo's age task: 27 runs without an age, and metrics of an older LCM (count only)."""
    metas = [_meta(3), {"task": "x", "n_runs_dropped_no_label": 27}]
    tasks = [Path(path).name.split("_")[0] for path in inputs["metrics"]]
    records = [{**m, "task": t, "label": "age"} for m, t in zip(metas, tasks, strict=True)]
    copies = with_records(inputs, tmp_path, records)
    assert json.loads(pq.read_schema(copies["metrics"][1]).metadata[b"lcm"])["task"] == "alzheimers"
    page = run_report(copies, tmp_path / "out")["html"].read_text()
    part = page.split('id="protocol"', 1)[1].split('<h2 id="provenance">', 1)[0]
    assert "Runs dropped before evaluation" in part
    assert (
        "<tr><td>autism</td><td>no &#x27;age&#x27; value</td><td>4</td><td>3</td>"
        "<td>abidelike/s000, abidelike/s001, abidelike/s002</td>"
    ) in part
    assert "<tr><td>alzheimers</td><td>no &#x27;age&#x27; value</td><td>27</td><td>n/a</td>" in part
    assert "not recorded (metrics of an older LCM" in part


def test_the_protocol_table_counts_the_dropped_runs_where_it_said_none() -> None:
    """ "not scored: none" beside a table of dropped runs read as if every run was scored."""
    tasks = {
        "age": _meta(3),
        "old": {"label": "age", "n_runs_dropped_no_label": 27},
        "clean": {"label": "age", "runs_dropped": []},
        "older": {"label": "age", "n_runs_dropped_no_label": 0},
        "site": {**_meta(1), "sites_not_tested": {"NYU": {"subjects": 5}}},
    }
    page = bare(provenance_summary(tasks, table_html))
    cells = {
        row.split("</td>", 1)[0]: row.rsplit("<td>", 2)[1].split("</td>", 1)[0]
        for row in page.split("<tr><td>")[1:]
    }
    see = " dropped before evaluation (see Runs dropped before evaluation)"
    assert cells == {
        "age": f"4 runs of 3 subjects (no &#x27;age&#x27; value){see}",
        "old": f"27 runs (no &#x27;age&#x27; value){see}",
        "clean": "none",
        "older": "none",
        "site": f"2 runs of 1 subject (no &#x27;age&#x27; value){see}; site NYU not tested "
        "(5 subjects)",
    }


def test_the_protocol_table_says_when_a_site_split_fell_back_to_subject_folds() -> None:
    """split: site on runs naming fewer than two sites runs subject folds: only a log line
    said so, and the table read "subject" beside a config asking for "site"."""
    tasks = {
        "fell": {"label": "age", "settings": {"split": "site"}, "split_used": "subject"},
        "asked": {"label": "age", "settings": {"split": "site"}, "split_used": "site"},
    }
    page = bare(provenance_summary(tasks, table_html))
    assert (
        "<td>subject (site asked: the runs name fewer than two sites, or some name none)</td>"
        in page
    )
    assert "<td>site</td>" in page


def test_the_protocol_section_says_why_each_skipped_model_was_skipped() -> None:
    """The table's ``skipped`` column names models only: a default baseline skipped (bei-linear
    on maps of no variable) must say why, once per reason, naming the models and tasks."""
    maps_reason = "its ridge maps /ck/bei_linear.npz map no BEI variable: age 12"
    tasks = {
        "adhd": {"label": "adhd", "models_skipped": {"bei-linear": maps_reason}},
        "asd": {
            "label": "asd",
            "models_skipped": {"bei-linear": maps_reason, "cpm": "does not handle binary targets"},
        },
        "age": {"label": "age", "models_skipped": {}},
    }
    page = bare(provenance_summary(tasks, table_html))
    assert (
        "Not evaluated: bei-linear in tasks adhd, asd: its ridge maps /ck/bei_linear.npz map "
        "no BEI variable: age 12." in page
    )
    assert "Not evaluated: cpm in task asd: does not handle binary targets." in page
    assert page.count("Not evaluated:") == 2
    assert "Not evaluated" not in bare(provenance_summary({"age": tasks["age"]}, table_html))


def test_the_protocol_section_says_which_tasks_ran_fits_once_for_every_seed() -> None:
    """With split: site the folds do not change with the seed, so an older lcm evaluate fitted
    every model once at label fraction 1; the page said "5 x 3" and nothing about the
    initialisation variance the intervals then lack. Now only models that ignore their seed
    are fitted once (models_not_repeated), and their intervals need none."""
    tasks = {
        "asd": {"label": "asd", "split_used": "site", "n_fits_not_repeated": 12},
        "adhd": {"label": "adhd", "n_fits_not_repeated": 0},
        "age": {"label": "age", "n_fits_not_repeated": 4, "models_not_repeated": ["cpm"]},
    }
    page = bare(provenance_summary(tasks, table_html))
    # An older record (no models named): every model ran once, LCM's included.
    assert "asd: 12 fit(s) not repeated for later seeds" in page
    assert "no variance of the models' initialisation" in page
    assert "Rerun <code>lcm evaluate</code> to refit the models that depend on" in page
    # A current record: the seed-free models alone, which need no initialisation variance.
    assert "age: 4 fit(s) of cpm not repeated for later seeds" in page
    assert "these models ignore their seed, so a refit would be identical" in page
    assert page.count("no variance of the models' initialisation") == 1
    assert "adhd:" not in page


@pytest.mark.parametrize("text", ["[]", "{"])
def test_a_damaged_checkpoint_metadata_is_refused_naming_the_file(
    recorded: dict, text: str
) -> None:
    """model.json is read by its owner (lcm.model.checkpoint_meta): a JSON list crashed the
    report with an AttributeError traceback."""
    from lcm.exceptions import LCMError

    (recorded["checkpoint"] / "model.json").write_text(text)
    with pytest.raises(LCMError) as info:
        collect_provenance(recorded["inputs"]["metrics"], [recorded["checkpoint"]])
    assert str(recorded["checkpoint"] / "model.json") in info.value.message
    assert "lcm pretrain" in (info.value.hint or "")


def test_metrics_and_predictions_of_different_evaluations_are_refused(
    inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Means from one evaluation beside ROC curves, sites and bootstrap differences from
    another's predictions (4 folds and 5 on one page), two evaluations of a task merged, and
    a task without predictions called 'not evaluated' beside its means: all refused."""
    from lcm.cli import main

    tasks = [Path(path).name.split("_")[0] for path in inputs["metrics"]]
    a = with_records(inputs, tmp_path / "a", [{"task": t, "n_folds": 4} for t in tasks])
    b = with_records(inputs, tmp_path / "b", [{"task": t, "n_folds": 5} for t in tasks])
    out = tmp_path / "out"
    outputs = ["--out-metrics", str(out / "m.parquet"), "--out-summary", str(out / "s.tsv")]
    outputs += ["--out-html", str(out / "index.html")]

    def report(metrics: list, predictions: list) -> str:
        argv = ["report", "--metrics", *map(str, metrics), "--predictions", *map(str, predictions)]
        capsys.readouterr()
        assert main([*argv, *outputs]) == 3
        return capsys.readouterr().err

    err = report(a["metrics"], b["predictions"])
    assert f"{a['metrics'][0]} and {b['predictions'][0]} come from different runs" in err
    err = report([*a["metrics"], b["metrics"][0]], [*a["predictions"], b["predictions"][0]])
    assert f"are two evaluations of task {tasks[0]!r}" in err
    err = report(a["metrics"], a["predictions"][1:])
    assert f"Task {tasks[0]!r} has metrics ({a['metrics'][0]}) but no --predictions" in err
    assert not out.exists()


def test_the_tables_and_the_page_are_kept_only_together(
    inputs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the page left the new metrics and summary tables beside the last run's
    page, with no record; and a file where the page's folder goes was found only after every
    table was computed and written."""
    import lcm.commands.report as report_verb
    from lcm.exceptions import OutputOwnershipError

    in_the_way = tmp_path / "blocked"
    (in_the_way / "report").parent.mkdir(parents=True)
    (in_the_way / "report").write_text("a user's file")
    with pytest.raises(
        OutputOwnershipError, match=r"index.html cannot be written: .*report is a file"
    ):
        run_report(inputs, in_the_way)
    assert sorted(p.name for p in in_the_way.iterdir()) == ["report"]

    def full(path: str | Path, text: str) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(report_verb, "write_text", full)
    out = tmp_path / "full"
    with pytest.raises(OSError, match="No space left"):
        run_report(inputs, out)
    assert not [p for p in out.rglob("*") if p.is_file()]
