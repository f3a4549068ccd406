"""A verb whose provenance record could not be written is refused before it writes anything.

Where the record of an output would go, a JSON that LCM did not write (a user's notes, a tool's
sidecar) is never overwritten. The refusal comes before the verb runs: no output is left
without its record, and none of hours of work is spent first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import verb_parsers

from lcm.cli import main
from lcm.io.provenance import provenance_path

pytestmark = pytest.mark.hostile

# Every command writing files with provenance records, with the options naming them.
RECORDED = {
    "ingest": ("out",),
    "fmriprep": ("out",),
    "connectome run": ("qc_out",),
    "connectome settings": ("out",),
    "connectome dataset": ("qc_table",),
    "connectome timeseries": ("qc_table",),
    "connectome import": ("qc_table",),
    "connectome collect": ("out",),
    "splits": ("out",),
    "evaluate": ("out", "predictions"),
    "report": (
        "out_metrics",
        "out_predictions",
        "out_summary",
        "out_headline",
        "out_contrasts",
        "out_html",
    ),
    "embed": ("out", "attention_out"),
}
# Values that pass the command line's own checks (labels, run keys, choices).
VALUES = {"run_key": "sub-01_task-rest"}
SUFFIXES = {"qc_out": ".json", "out_html": ".html", "out_summary": ".tsv", "out_headline": ".tsv"}


def test_every_recording_command_declares_its_outputs() -> None:
    declared = {
        cmd: parser._defaults["recorded"]
        for cmd, parser in verb_parsers().items()
        if parser._defaults.get("recorded")
    }
    assert declared == RECORDED


@pytest.mark.parametrize("command", sorted(RECORDED))
def test_a_users_json_in_a_records_place_stops_the_command_first(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = verb_parsers()[command]
    outputs = {
        dest: tmp_path / "out 'q'" / f"{dest}{SUFFIXES.get(dest, '.parquet')}"
        for dest in RECORDED[command]
    }
    argv = command.split()
    for action in parser._actions:
        if action.dest in outputs:
            argv += [action.option_strings[0], str(outputs[action.dest])]
        elif action.required and action.option_strings:
            value = action.choices[0] if action.choices else VALUES.get(action.dest, "x1")
            argv += [action.option_strings[0], value]
    last = outputs[RECORDED[command][-1]]
    users = provenance_path(last)
    users.parent.mkdir()
    users.write_text(json.dumps({"RepetitionTime": 2.0}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{users} exists and is not an LCM provenance record" in err
    assert json.loads(users.read_text()) == {"RepetitionTime": 2.0}
    assert [p.name for p in users.parent.iterdir()] == [users.name]  # nothing written


def _argv(command: str, outputs: dict[str, Path]) -> list[str]:
    """``command``'s command line with ``outputs`` and placeholder required options."""
    argv = command.split()
    for action in verb_parsers()[command]._actions:
        if action.dest in outputs:
            argv += [action.option_strings[0], str(outputs[action.dest])]
        elif action.required and action.option_strings:
            value = action.choices[0] if action.choices else VALUES.get(action.dest, "x1")
            argv += [action.option_strings[0], value]
    return argv


def _recorded_by(verb: str, out: Path) -> str:
    """Write ``out`` with the record ``lcm <verb>`` gives it; its sha256."""
    import argparse

    from lcm.io.provenance import set_invocation, sha256_file, write_sidecar

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"weights of " + verb.encode())
    set_invocation([verb], argparse.Namespace(verb=verb))
    try:
        write_sidecar(out, [])
    finally:
        set_invocation([], argparse.Namespace())
    return sha256_file(out)


@pytest.mark.parametrize("marked", [True, False])
def test_embed_never_replaces_a_pretrained_models_weights(
    marked: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`lcm embed --out <checkpoint>/model.safetensors` once replaced pretraining's weights
    (any LCM record let a file be replaced): refused now, by the folder's owner marker and,
    without one, by the record naming lcm pretrain; a rerun of embed replaces its own table."""
    import lcm.commands.embed
    from lcm.io.ownership import claim_out_dir
    from lcm.io.provenance import sha256_file

    ckpt = tmp_path / "pre"
    if marked:
        claim_out_dir(ckpt, "lcm pretrain")
    weights = ckpt / "model.safetensors"
    digest = _recorded_by("pretrain", weights)
    record = provenance_path(weights).read_bytes()
    ran: list[str] = []
    monkeypatch.setattr(lcm.commands.embed, "run", lambda args: ran.append(args.out) or 0)
    assert main(_argv("embed", {"out": weights})) == 6
    assert "nothing was written" in capsys.readouterr().err
    assert sha256_file(weights) == digest and provenance_path(weights).read_bytes() == record
    assert ran == []
    own = tmp_path / "emb" / "emb.parquet"
    _recorded_by("embed", own)
    assert main(_argv("embed", {"out": own})) == 0
    assert ran == [str(own)]


def test_evaluate_never_writes_into_a_feature_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lcm evaluate --out <store>/variables/dataset=X/part-0.parquet` once replaced the
    partition with metrics (the store's record vouched for it): refused now, and so is a new
    file in a partition folder (readers of the store would take it as part of it)."""
    from lcm.io.provenance import sha256_file

    store = tmp_path / "store"
    (store / "_lcm" / "dataset=clinic").mkdir(parents=True)
    part = store / "variables" / "dataset=clinic" / "part-0.parquet"
    digest = _recorded_by("store", part)
    for out in (part, part.with_name("metrics.parquet")):
        argv = _argv("evaluate", {"out": out, "predictions": tmp_path / "p.parquet"})
        assert main(argv) == 6
        assert "inside the feature store" in capsys.readouterr().err
    assert sha256_file(part) == digest
    assert sorted(p.name for p in part.parent.iterdir()) == ["_part-0.prov.json", "part-0.parquet"]
    assert not (tmp_path / "p.parquet").exists()


def test_store_refuses_a_users_json_where_a_partition_record_goes_before_it_commits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lcm store committed the dataset's new partitions, then refused the record: the new
    variables stood beside a user's JSON and no record, the connectomes' record updated."""
    import pandas as pd
    from helpers.model import CLI_CATALOGUE, add_store_dataset, write_catalogue

    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 12, seed=0)
    variables = store / "variables" / "dataset=alpha" / "part-0.parquet"
    users = provenance_path(variables)
    users.write_text(json.dumps({"note": "mine"}))
    folder = tmp_path / "alpha-toy"
    pheno = pd.read_csv(folder / "pheno.tsv", sep="\t")
    pheno.loc[0, "AGE"] = 55  # an edit: the dataset is stored again
    pheno.to_csv(folder / "pheno.tsv", sep="\t", index=False, na_rep="n/a")
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    capsys.readouterr()
    argv = ["store", "--dataset", "alpha", "--qc-table", str(folder / "qc.tsv")]
    argv += ["--phenotype", str(folder / "pheno.tsv"), "--catalogue", str(catalogue)]
    assert main([*argv, "--atlas", "toy", "--store-dir", str(store)]) == 2
    assert f"{users} exists and is not an LCM provenance record" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
