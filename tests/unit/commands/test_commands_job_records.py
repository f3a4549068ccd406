"""Files no later step reads are named by the records of their job's other outputs.

A checkpoint's history and BEI table, a finetuned model's history, the report's page: nothing
reads them, so deleted together with their records no record named them and ``lcm provenance
verify`` said nothing. Each record of a job now lists the job's other outputs as its products.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.model import (
    CLI_CATALOGUE,
    add_store_dataset,
    finetune_argv,
    pretrain_argv,
    pretrained_store,
    write_catalogue,
)
from helpers.report import run_report, write_report_inputs

from lcm.cli import main
from lcm.io.lineage import audit, verify
from lcm.io.ownership import claim_out_dir
from lcm.io.provenance import provenance_path


def _delete_with_record(path: Path) -> None:
    path.unlink()
    provenance_path(path).unlink()


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """A pretrained checkpoint and a model finetuned from it (one epoch each)."""
    store, catalogue, pre = pretrained_store(tmp_path, 20, 20)
    ft = tmp_path / "ft"
    assert main(finetune_argv(store, catalogue, pre, ft)) == 0
    return pre, ft


@pytest.mark.parametrize("name", ["history.tsv", "bei_eval.tsv", "model.safetensors"])
def test_verify_reports_a_pretraining_file_deleted_with_its_record(
    trained: tuple[Path, Path], name: str
) -> None:
    """Nothing reads a pretraining's history or BEI table (nor its weights before a finetune):
    deleted with its record, verify said nothing. The checkpoint's other records name it."""
    pre, _ = trained
    assert verify(pre) == []  # healthy: nothing reported
    _delete_with_record(pre / name)
    problems = audit(pre).problems
    assert [(p.path, p.kind) for p in problems] == [(str(pre / name), "product missing")]


def test_verify_reports_a_finetuned_models_history_deleted_with_its_record(
    trained: tuple[Path, Path],
) -> None:
    """A finetuned model's history is read by nothing: deleted with its record, verify said
    nothing. The model's records name it."""
    _, ft = trained
    assert verify(ft) == []
    _delete_with_record(ft / "history.tsv")
    problems = audit(ft).problems
    assert [(p.path, p.kind) for p in problems] == [(str(ft / "history.tsv"), "product missing")]


def test_a_checkpoints_records_keep_the_pretrainings_own_keys(trained: tuple[Path, Path]) -> None:
    """The records list their siblings and still say which processes trained (DataParallel)."""
    pre, _ = trained
    record = json.loads(provenance_path(pre / "history.tsv").read_text())
    assert "DataParallel" in record
    assert set(record["Products"]) == {
        str(pre / n) for n in ("model.safetensors", "model.json", "bei_eval.tsv")
    }


def test_verify_reports_the_report_page_deleted_with_its_record(tmp_path: Path) -> None:
    """Nothing reads the report's page: deleted with its record, verify said nothing. The
    records of the tables written beside it name it."""
    inputs = write_report_inputs(tmp_path / "in")
    out = tmp_path / "out"
    outputs = run_report(inputs, out)
    assert verify(out) == []
    page = outputs["html"]
    record = json.loads(provenance_path(page).read_text())
    assert "readouts" in record  # the page's own keys are kept
    _delete_with_record(page)
    problems = audit(out).problems
    assert [(p.path, p.kind) for p in problems] == [(str(page), "product missing")]


def test_a_product_many_records_name_is_reported_once(tmp_path: Path) -> None:
    """Every table of the report names the summary: deleted with its record, it is one problem,
    not one per record; deleted alone, its own record says so and no product line repeats it."""
    inputs = write_report_inputs(tmp_path / "in")
    out = tmp_path / "out"
    outputs = run_report(inputs, out, ["--out-headline", str(out / "metrics" / "headline.tsv")])
    summary = outputs["summary"]
    kept = summary.rename(tmp_path / "summary.tsv")
    assert [(p.path, p.kind) for p in audit(out).problems] == [(str(summary), "output missing")]
    kept.rename(summary)
    _delete_with_record(summary)
    assert [(p.path, p.kind) for p in audit(out).problems] == [(str(summary), "product missing")]


@pytest.mark.parametrize("name", ["history.json", "model.safetensors.prov.json"])
def test_a_users_json_where_a_checkpoint_record_goes_stops_training_before_it_replaces_anything(
    trained: tuple[Path, Path], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's JSON where a record of the claimed folder goes passed the claim (its name is
    one LCM writes): the rerun trained, replaced the earlier model, then refused its records,
    leaving new weights beside the records of the old. Refused now before training."""
    pre, _ = trained
    users = pre / name
    users.write_text(json.dumps({"note": "mine"}))
    command = json.loads(provenance_path(pre / "model.json").read_text())["Provenance"]["command"]
    files = sorted(p for p in pre.iterdir() if p.is_file() and not p.name.startswith("."))
    before = {p.name: p.read_bytes() for p in files}
    capsys.readouterr()
    assert main([*command[1:], "--seed", "5"]) == 2  # another run, into the same folder
    assert f"{users} exists and is not an LCM provenance record" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in files} == before  # nothing replaced, the JSON kept


def test_a_jobs_records_read_each_file_once(tmp_path: Path, monkeypatch) -> None:
    """Every record of a job lists its siblings and the job's sources: each file was hashed
    once per record, so a pretraining read its gigabytes of weights four times at the end."""
    import collections

    from lcm.commands import _outputs
    from lcm.io import provenance

    files = [tmp_path / name for name in ("model.safetensors", "history.tsv", "bei_eval.tsv")]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * (1000 + i))
    source = tmp_path / "store.parquet"
    source.write_bytes(b"store")
    real, reads = provenance.sha256_file, collections.Counter()

    def counted(path):
        reads[Path(path).name] += 1
        return real(path)

    monkeypatch.setattr(provenance, "sha256_file", counted)
    monkeypatch.setattr(_outputs, "sha256_file", counted)
    sides = _outputs.record_together(files, [source], DataParallel=None)
    assert reads == dict.fromkeys([*(p.name for p in files), source.name], 1)
    for path, side in zip(files, sides, strict=True):
        record = json.loads(side.read_text())
        assert record["Sha256"] == real(path)
        assert record["SourcesSha256"] == {str(source): real(source)}
        assert record["ProductsSha256"] == {str(p): real(p) for p in files if p != path}


@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
def test_a_users_json_where_a_checkpoint_record_goes_is_refused_before_the_cohort_is_loaded(
    tmp_path: Path, verb: str, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check that a checkpoint's records can be written ran under the folder's claim, after
    the cohort's load: a user's history.json cost the whole load before its refusal."""
    import lcm.store.read

    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 20, seed=0)
    out = claim_out_dir(tmp_path / "model", f"lcm {verb}")  # an earlier run's folder
    users = out / "history.json"
    users.write_text(json.dumps({"note": "mine"}))
    loads: list[str] = []
    for name in ("load_cohort", "load_streamed_cohort"):
        monkeypatch.setattr(lcm.store.read, name, lambda *a, name=name, **k: loads.append(name))
    if verb == "pretrain":
        argv = pretrain_argv(store, catalogue, out, '{"epochs": 1, "batch_size": 8}')
    else:
        argv = ["finetune", "--store", str(store), "--catalogue", str(catalogue), "--atlas"]
        argv += ["toy", "--checkpoint", str(tmp_path / "pre"), "--dataset", "alpha"]
        argv += ["--label", "dx", "--positive", "patient", "--out-dir", str(out), "--threads", "1"]
    capsys.readouterr()
    assert main(argv) == 2
    assert f"{users} exists and is not an LCM provenance record" in capsys.readouterr().err
    assert loads == []  # refused before the load
    assert json.loads(users.read_text()) == {"note": "mine"}
