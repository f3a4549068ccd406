"""`lcm embed` as a user runs it: a tiny pretrained checkpoint over its own and new subjects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers.model import (
    CLI_CATALOGUE,
    add_store_dataset,
    pretrain_argv,
    pretrained_store,
    write_catalogue,
)

from lcm.catalogue import load_catalogue
from lcm.cli import main
from lcm.exceptions import AtlasError
from lcm.model.export import (
    FINETUNED,
    HELD_OUT,
    TRAINED,
    UNSEEN,
    attention_frame,
    pretraining_roles,
)
from lcm.model.targets import QueryLayout
from lcm.model.training_data import training_data
from lcm.store.read import load_cohort


def test_embeddings_say_which_runs_the_checkpoint_was_pretrained_on(tmp_path: Path) -> None:
    """Embeddings of the checkpoint's own training subjects sat beside new subjects' with
    nothing telling them apart, though model.json records both; a copy of the training data
    under another dataset name is recognised by content."""
    gamma = CLI_CATALOGUE + CLI_CATALOGUE.split("  beta:\n", 1)[1].join(["  gamma:\n", ""])
    catalogue = write_catalogue(tmp_path, gamma)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    # alpha's connectomes again, as a second release under another name.
    add_store_dataset(tmp_path, store, catalogue, "gamma", "toy", 30, seed=0)
    pre = tmp_path / "pre"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    heldout = set(json.loads((pre / "model.json").read_text())["data"]["heldout_subjects"])
    out, att = tmp_path / "emb.parquet", tmp_path / "att.parquet"
    argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--atlas", "toy"]
    argv += ["--catalogue", str(catalogue), "--datasets", "alpha", "beta", "gamma"]
    assert main([*argv, "--out", str(out), "--attention-out", str(att)]) == 0
    table = pd.read_parquet(out)
    keys = table["dataset"] + "/" + table["subject"]
    alpha = table["dataset"] == "alpha"
    expected = np.where(keys.isin(heldout), HELD_OUT, TRAINED)
    assert (table.loc[alpha, "pretraining"] == expected[alpha.to_numpy()]).all()
    assert set(table.loc[alpha, "pretraining"]) == {TRAINED, HELD_OUT}
    assert (table.loc[table["dataset"] == "beta", "pretraining"] == UNSEEN).all()
    assert (table.loc[table["dataset"] == "gamma", "pretraining"] == TRAINED).all()
    assert pq.read_schema(out).field("pretraining").type in ("string", "large_string")
    attention = pd.read_parquet(att)
    assert list(attention.columns).index("pretraining") < list(attention.columns).index("query")
    first = out.read_bytes()
    # The same command again: the same bytes.
    assert main([*argv, "--out", str(out), "--attention-out", str(att)]) == 0
    assert out.read_bytes() == first


def test_finetuned_embeddings_say_which_runs_it_was_finetuned_and_pretrained_on(
    tmp_path: Path,
) -> None:
    """A finetuned model.json recorded no training data, so the pretraining column of the
    workflow's own (finetuned) embeddings stayed null and no one could tell from the checkpoint
    which subjects it was finetuned on."""
    gamma = CLI_CATALOGUE + CLI_CATALOGUE.split("  beta:\n", 1)[1].join(["  gamma:\n", ""])
    catalogue = write_catalogue(tmp_path, gamma)
    store = tmp_path / "store"
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0)
    add_store_dataset(tmp_path, store, catalogue, "beta", "toy", 20, seed=1)
    add_store_dataset(tmp_path, store, catalogue, "gamma", "toy", 12, seed=2)
    pre, tuned = tmp_path / "pre", tmp_path / "tuned"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    common = ["--store", str(store), "--atlas", "toy", "--catalogue", str(catalogue)]
    finetune = ["finetune", "--checkpoint", str(pre), *common, "--dataset", "beta"]
    finetune += ["--label", "dx", "--positive", "patient", "--seed", "0", "--threads", "1"]
    settings = '{"epochs": 1, "batch_size": 8}'
    assert main([*finetune, "--settings", settings, "--out-dir", str(tuned)]) == 0
    pretrained = json.loads((pre / "model.json").read_text())
    meta = json.loads((tuned / "model.json").read_text())
    # Its own data in the pretrained record's format, and the pretraining it started from.
    assert meta["data"]["datasets"] == ["beta"] and meta["data"]["heldout_subjects"] == []
    assert (meta["data"]["n_runs"], meta["data"]["n_subjects"]) == (20, 20)
    assert set(meta["data"]) == set(pretrained["data"]) - {"selection_subjects"}
    assert meta["pretrained_data"] == pretrained["data"]
    # One format: the pretrained record is training_data's of the same runs.
    cohort = load_cohort(store, "toy", ["alpha"], load_catalogue(catalogue))
    heldout = pretrained["data"]["heldout_subjects"]
    assert training_data(cohort.groups, cohort.fc, heldout) == {
        k: v for k, v in pretrained["data"].items() if k != "selection_subjects"
    }
    out = tmp_path / "emb.parquet"
    argv = ["embed", "--checkpoint", str(tuned), *common, "--out", str(out)]
    assert main([*argv, "--datasets", "alpha", "beta", "gamma"]) == 0
    table = pd.read_parquet(out)
    role = dict(zip(table["dataset"] + "/" + table["subject"], table["pretraining"], strict=True))
    assert {role[k] for k in role if k.startswith("beta/")} == {FINETUNED}
    assert {role[k] for k in role if k.startswith("gamma/")} == {UNSEEN}
    assert {k for k in role if role[k] == HELD_OUT} == set(heldout)
    assert {role[k] for k in role if k.startswith("alpha/")} == {TRAINED, HELD_OUT}


def test_a_checkpoint_recording_no_runs_leaves_pretraining_null_as_a_string_column() -> None:
    """A model.json naming no runs (finetuned before LCM recorded them): nothing is claimed,
    and the column stays typed string (a null-typed column does not union with another
    table's); one finetuned from scratch has no pretraining runs to mark."""
    fc = np.zeros((2, 4, 4), dtype=np.float32)
    groups = np.array(["a/1", "b/2"])
    assert pretraining_roles({"kind": "finetuned", "pretrained_from": "x"}, fc, groups) is None
    scratch = {"kind": "finetuned", "data": {"datasets": ["b"], "heldout_subjects": []}}
    assert pretraining_roles(scratch, fc, groups).tolist() == [UNSEEN, FINETUNED]
    assert pretraining_roles({"kind": "pretrained", "data": "edited"}, fc, groups) is None
    roles = pretraining_roles(
        {"kind": "pretrained", "data": {"datasets": ["a"], "heldout_subjects": []}}, fc, groups
    )
    assert roles.tolist() == [TRAINED, UNSEEN]


@pytest.mark.hostile
def test_a_checkpoint_without_weights_is_refused_before_the_store_is_read(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A checkpoint folder missing model.safetensors was refused only after every connectome
    of the datasets was loaded (minutes and gigabytes on a real store)."""
    import lcm.store.read

    store, catalogue, pre = pretrained_store(tmp_path, 30, 12)
    loads: list = []
    original = lcm.store.read.load_cohort
    monkeypatch.setattr(
        lcm.store.read, "load_cohort", lambda *a, **k: loads.append(a) or original(*a, **k)
    )
    argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--catalogue"]
    argv += [str(catalogue), "--datasets", "alpha", "--out", str(tmp_path / "emb.parquet")]
    assert main([*argv, "--atlas", "toy2"]) == 5  # another atlas: said before reading
    err = capsys.readouterr().err
    # The store named: the fix may be there (another --atlas, a store of the checkpoint's).
    assert f"trained on atlas 'toy', the data (store {store}) use 'toy2'" in err, err
    assert not loads
    (pre / "model.safetensors").unlink()
    assert main([*argv, "--atlas", "toy"]) == 5
    assert "lacks model.safetensors" in capsys.readouterr().err
    assert not loads and not (tmp_path / "emb.parquet").exists()


@pytest.mark.hostile
def test_an_roi_named_like_an_identifier_column_is_refused_before_the_store_is_read(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """An atlas ROI named 'session' gave the attention table two 'session' columns, which
    pyarrow refused with a raw ValueError once every run was embedded."""
    import lcm.store.read

    catalogue = write_catalogue(tmp_path, CLI_CATALOGUE)
    store = tmp_path / "store"
    rename = {"roi2": "session", "roi5": "query"}
    add_store_dataset(tmp_path, store, catalogue, "alpha", "toy", 30, seed=0, rename=rename)
    pre = tmp_path / "pre"
    assert main(pretrain_argv(store, catalogue, pre, '{"epochs": 1, "batch_size": 8}')) == 0
    loads: list = []
    original = lcm.store.read.load_cohort
    monkeypatch.setattr(
        lcm.store.read, "load_cohort", lambda *a, **k: loads.append(a) or original(*a, **k)
    )
    out, att = tmp_path / "emb.parquet", tmp_path / "att.parquet"
    argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--atlas", "toy"]
    argv += ["--catalogue", str(catalogue), "--datasets", "alpha", "--out", str(out)]
    capsys.readouterr()
    assert main([*argv, "--attention-out", str(att)]) == 3
    err = capsys.readouterr().err
    assert "Atlas 'toy' has ROI(s) named ['session', 'query']" in err
    assert "--attention-out" in err and "session_roi" in err  # the fix
    assert not loads and not out.exists() and not att.exists()
    # The embeddings alone have no ROI columns: written.
    assert main(argv) == 0
    assert len(pd.read_parquet(out)) == 30


def test_attention_frame_refuses_an_roi_named_like_one_of_its_run_columns() -> None:
    """The table's own check covers run columns the store does not name (a 'cohort' column)."""
    ids = pd.DataFrame({"dataset": ["a", "a"], "cohort": ["x", "y"]})
    layout = QueryLayout().append("age", "continuous")
    attention = np.full((2, 1, 3), 1 / 3, dtype=np.float32)
    assert attention_frame(ids, attention, layout, ["r0", "r1", "r2"]).shape == (2, 6)
    with pytest.raises(AtlasError, match=r"ROI\(s\) named \['cohort'\]"):
        attention_frame(ids, attention, layout, ["r0", "cohort", "r2"])


def test_verify_reports_embeddings_deleted_with_their_record(tmp_path: Path) -> None:
    """Nothing reads the embeddings: deleted together with their record, no record named them
    and lcm provenance verify said nothing. The attention table's record names them."""
    from lcm.io.lineage import verify
    from lcm.io.provenance import provenance_path

    store, catalogue, pre = pretrained_store(tmp_path, 20, 12)
    folder = tmp_path / "embeddings"
    out, att = folder / "task-a_embeddings.parquet", folder / "task-a_attention.parquet"
    argv = ["embed", "--checkpoint", str(pre), "--store", str(store), "--atlas", "toy"]
    argv += ["--catalogue", str(catalogue), "--datasets", "alpha"]
    assert main([*argv, "--out", str(out), "--attention-out", str(att)]) == 0
    assert verify(folder) == []  # healthy: nothing reported
    out.unlink()
    provenance_path(out).unlink()
    problems = verify(folder)
    assert [p.split(": ")[0] for p in problems] == [str(out)]
    assert f"a product of the job of {provenance_path(att)}, missing" in problems[0]
