"""Hostile and careless input to training and checkpoints (issue 14).

Each test feeds one bad input: an out-dir holding a user's files, a second run into a busy
out-dir, a user's file in the training-state folder, an edited training state, edited
embeddings, a model.json claiming a huge model, a pickle named ``.safetensors``, and checks a
one-line error (or warning) with nothing written or lost; weights files follow the umask.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.model import CLI_CATALOGUE, TINY, add_store_dataset, pretrain_argv

from lcm.cli import main
from lcm.exceptions import CheckpointError
from lcm.io.lock import exclusive_lock
from lcm.io.ownership import MARKER_NAME
from lcm.io.provenance import sha256_file
from lcm.model.checkpoint import load_checkpoint, save_checkpoint
from lcm.model.config import LCMConfig
from lcm.model.lcm import LCM
from lcm.model.targets import QueryLayout
from lcm.train.loop import make_optimizer, warmup_cosine
from lcm.train.state import (
    DIGEST_KEY,
    META_NAME,
    LoopPosition,
    content_digest,
    load_state,
    save_state,
    unusable,
)

pytestmark = pytest.mark.hostile

SETTINGS = '{"epochs": 1, "batch_size": 8, "checkpoint_every": 1}'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny feature store (alpha: pretraining, beta: downstream) and its catalogue."""
    tmp = tmp_path_factory.mktemp("store")
    catalogue = tmp / "variables.yaml"
    catalogue.write_text(CLI_CATALOGUE)
    add_store_dataset(tmp, tmp / "store", catalogue, "alpha", "toy", 24, seed=0)
    add_store_dataset(tmp, tmp / "store", catalogue, "beta", "toy", 12, seed=1)
    return tmp / "store", catalogue


def _pretrain(store: tuple[Path, Path], out: Path, settings: str = SETTINGS) -> int:
    return main(pretrain_argv(store[0], store[1], out, settings, 1))


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "model"
    assert _pretrain(store, out) == 0
    return out


def _lines(capfd: pytest.CaptureFixture[str], level: str) -> list[str]:
    """Log lines of ``level`` written to stderr (the CLI's handler; ``lcm`` does not propagate)."""
    err = capfd.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if f" {level} " in line]


# -- out-dir ownership, locking, state folder --------------------------------------------------


def test_pretrain_refuses_out_dir_with_user_files(store, tmp_path: Path, capfd) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "history.tsv").write_text("my own history")  # an output name, but not LCM's folder
    (out / "chapter1.tex").write_text("years of work")
    assert _pretrain(store, out) == 6
    (message,) = _lines(capfd, "ERROR")
    # Both named: history.tsv has an output's name but no LCM provenance record.
    assert "did not write (chapter1.tex, history.tsv)" in message and "Traceback" not in message
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex", "history.tsv"]
    assert (out / "history.tsv").read_text() == "my own history"


def test_finetune_refuses_out_dir_with_user_files(store, pretrained, tmp_path, capfd) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("1,2,3")
    code = _finetune(store, pretrained, out)
    assert code == 6
    assert "holds files LCM did not write (data.csv)" in _lines(capfd, "ERROR")[0]
    assert [p.name for p in out.iterdir()] == ["data.csv"]


def _finetune(store: tuple[Path, Path], checkpoint: Path | str, out: Path | str) -> int:
    return main(
        [
            "finetune",
            *_checkpoint_and_store(store, checkpoint),
            "--dataset",
            "beta",
            "--label",
            "dx",
            "--positive",
            "patient",
            "--settings",
            '{"epochs": 1}',
            "--out-dir",
            str(out),
            "--threads",
            "1",
        ]
    )


def test_settings_refused_alone_leave_no_output_folder(store, pretrained, tmp_path, capfd):
    """finetune with epochs 0, and pretrain with bei_weight 0 and no self-supervised loss,
    were refused after the output folder was claimed: an empty folder of that verb stayed."""
    out = tmp_path / "ft"
    argv = ["finetune", *_checkpoint_and_store(store, pretrained), "--dataset", "beta"]
    argv += ["--label", "dx", "--positive", "patient", "--settings", '{"epochs": 0}']
    assert main([*argv, "--out-dir", str(out)]) == 2
    assert "epochs" in _lines(capfd, "ERROR")[0] and not out.exists()
    settings = '{"epochs": 1, "bei_weight": 0, "ssl_weight": 0}'
    assert _pretrain(store, tmp_path / "pre", settings) == 2
    assert "nothing would be learned" in _lines(capfd, "ERROR")[0]
    assert not (tmp_path / "pre").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_finetune_refuses_out_dir_that_is_the_checkpoint(store, pretrained, tmp_path, capfd):
    """The pretrained model is never replaced by the finetuned one, even in a folder without
    the marker (copied by hand) and spelled another way."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(pretrained, ckpt)
    (ckpt / MARKER_NAME).unlink()
    before = _snapshot(ckpt)
    assert _finetune(store, ckpt, tmp_path / "x" / ".." / "ckpt") == 6
    (message,) = _lines(capfd, "ERROR")
    assert "is the --checkpoint folder" in message and str(ckpt) in message
    assert _snapshot(ckpt) == before


def test_finetune_refuses_a_folder_pretrain_claimed(store, pretrained, tmp_path, capfd):
    """A folder has one owner: lcm finetune does not write over lcm pretrain's outputs."""
    other = tmp_path / "other-pretrained"
    shutil.copytree(pretrained, other)
    before = _snapshot(other)
    assert _finetune(store, pretrained, other) == 6
    (message,) = _lines(capfd, "ERROR")
    assert "holds the outputs of lcm pretrain" in message
    assert _snapshot(other) == before
    # A rerun of the same verb into its own folder is still its own.
    out = tmp_path / "tuned"
    assert _finetune(store, pretrained, out) == 0
    assert _finetune(store, pretrained, out) == 0
    assert any("replacing model.safetensors" in line for line in _lines(capfd, "WARNING"))


def test_second_concurrent_pretrain_is_refused(store, tmp_path: Path, capfd) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / MARKER_NAME).write_text("claimed by a first run\n")
    with exclusive_lock(out / ".lcm.lock", "lcm pretrain"):  # the first run, still training
        assert _pretrain(store, out) == 6
    (message,) = _lines(capfd, "ERROR")
    assert "being written by another lcm pretrain (pid" in message
    assert not (out / "model.json").exists() and not (out / "train_state").exists()


def _bei_maps(store: tuple[Path, Path], out: Path) -> int:
    argv = ["bei-maps", "--store", str(store[0]), "--atlas", "toy", "--catalogue", str(store[1])]
    return main([*argv, "--datasets", "alpha", "--seed", "1", "--out-dir", str(out)])


def test_the_ridge_maps_are_written_while_a_pretraining_holds_its_folder(
    store, tmp_path: Path, capfd
) -> None:
    """lcm bei-maps and lcm pretrain run side by side into one checkpoint folder (the
    workflow's two jobs): the maps are not refused for the pretraining's lock, nor the
    pretraining for the maps in the folder (a Snakemake-made folder, unmarked), while a
    second maps writer is refused, and so is a folder another verb owns."""
    out = tmp_path / "pre"
    with exclusive_lock(out / ".lcm.lock", "lcm pretrain"):  # a pretraining, still training
        assert _bei_maps(store, out) == 0
    assert (out / "bei_linear.npz").is_file() and (out / "bei_linear.json").is_file()
    (out / MARKER_NAME).unlink()  # as Snakemake leaves a folder it made: no marker
    assert _pretrain(store, out) == 0
    assert (out / "model.json").is_file() and (out / "bei_linear.npz").is_file()
    capfd.readouterr()
    with exclusive_lock(out / ".lcm-maps.lock", "lcm bei-maps"):
        assert _bei_maps(store, out) == 6
    (message,) = _lines(capfd, "ERROR")
    assert "being written by another lcm bei-maps (pid" in message
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / MARKER_NAME).write_text("Written by lcm finetune: LCM may replace its outputs here.\n")
    assert _bei_maps(store, tuned) == 6
    assert not (tuned / "bei_linear.npz").exists()


def _no_cohort(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading the cohort fail the test: a refusal comes before any data is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("the cohort was loaded before the refusal")

    monkeypatch.setattr("lcm.store.read.load_cohort", refuse)
    monkeypatch.setattr("lcm.store.read.load_streamed_cohort", refuse)  # lcm bei-maps's reader


def test_ridge_maps_whose_record_cannot_be_written_are_not_written(
    store, tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's bei_linear.json in a pretraining's folder (where the maps' record goes): the
    run is refused before the cohort loads, and no bei_linear.npz is left without a record."""
    out = tmp_path / "pre"
    out.mkdir()
    (out / MARKER_NAME).write_text("Written by lcm pretrain: LCM may replace its outputs here.\n")
    (out / "bei_linear.json").write_text('{"my": 1}\n')
    _no_cohort(monkeypatch)
    assert _bei_maps(store, out) == 2  # ConfigError
    (message,) = _lines(capfd, "ERROR")
    assert "bei_linear.json exists and is not an LCM provenance record" in message
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == ["bei_linear.json"]
    assert (out / "bei_linear.json").read_text() == '{"my": 1}\n'


def test_users_ridge_maps_are_not_replaced(
    store, tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bei_linear.npz no record names, in a folder LCM claimed, is left alone (as lcm embed
    leaves a user's --out): refused in lcm bei-maps's name, before the cohort loads."""
    out = tmp_path / "pre"
    out.mkdir()
    (out / MARKER_NAME).write_text("Written by lcm pretrain: LCM may replace its outputs here.\n")
    (out / "bei_linear.npz").write_bytes(b"mine")
    _no_cohort(monkeypatch)
    assert _bei_maps(store, out) == 6
    (message,) = _lines(capfd, "ERROR")
    assert "lcm bei-maps: output " in message
    assert "LCM did not write it" in message
    assert (out / "bei_linear.npz").read_bytes() == b"mine"
    assert not (out / "bei_linear.json").exists()


def test_ridge_maps_refusals_name_lcm_bei_maps(
    store, tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is claimed in lcm pretrain's name (its marker says so), but a refusal names
    the command the user ran: lcm bei-maps."""
    _no_cohort(monkeypatch)
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    assert _bei_maps(store, users) == 6
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / MARKER_NAME).write_text("Written by lcm finetune: LCM may replace its outputs here.\n")
    assert _bei_maps(store, tuned) == 6
    first, second = _lines(capfd, "ERROR")
    assert "lcm bei-maps: output folder" in first and "notes.txt" in first
    assert "lcm bei-maps: output folder" in second and "outputs of lcm finetune" in second
    assert "lcm pretrain:" not in first + second
    assert not (users / MARKER_NAME).exists() and not (tuned / "bei_linear.npz").exists()
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    assert _bei_maps(store, fresh) == 0
    assert (fresh / MARKER_NAME).read_text().startswith("Written by lcm pretrain: ")


def test_unmarked_folder_with_a_users_state_folder_is_refused(store, tmp_path: Path) -> None:
    """No marker, and a train_state/ LCM's provenance does not vouch for: someone else's."""
    out = tmp_path / "run"
    (out / "train_state").mkdir(parents=True)
    (out / "train_state" / "train_state.json").write_text("mine")
    assert _pretrain(store, out) == 6
    assert (out / "train_state" / "train_state.json").read_text() == "mine"


def test_user_file_in_state_folder_survives(store, tmp_path: Path, capfd) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER_NAME).write_text("Written by lcm pretrain: LCM may replace its outputs here.\n")
    (out / "train_state").mkdir()
    (out / "train_state" / "notes.txt").write_text("keep me")
    stale = out / "train_state" / ".train_state.json.lcmtmp-elsewhere-1-ab"  # a killed writer's
    stale.write_text("{")
    assert _pretrain(store, out) == 0
    assert (out / "model.json").is_file()
    assert (out / "train_state" / "notes.txt").read_text() == "keep me"
    assert not stale.exists()  # removed before training (no state of this run to resume)
    # The final step's state is kept beside the user's file (a retry writes the outputs from it).
    assert (out / "train_state" / META_NAME).is_file()
    assert len(list((out / "train_state").glob("*.safetensors"))) == 1
    assert any("notes.txt" in line for line in _lines(capfd, "WARNING"))
    # A rerun replaces its own outputs, and says so.
    assert _pretrain(store, out) == 0
    assert any("replacing model.safetensors" in line for line in _lines(capfd, "WARNING"))


# -- training-state integrity --------------------------------------------------------------------


def _training_objects(seed: int = 0):
    torch.manual_seed(seed)
    module = torch.nn.Linear(3, 2)
    optimizer = make_optimizer([module], 0.01, 0.0)
    scheduler = warmup_cosine(optimizer, 10)
    generator = torch.Generator().manual_seed(seed)
    return module, optimizer, scheduler, generator


def _saved_state(folder: Path) -> None:
    module, optimizer, scheduler, generator = _training_objects()
    module(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    save_state(folder, "fp", module, optimizer, scheduler, generator, LoopPosition(step=150))


def test_edited_state_json_is_refused(tmp_path: Path) -> None:
    _saved_state(tmp_path)
    assert load_state(tmp_path, "fp", *_training_objects()).step == 150  # untouched: resumes
    path = tmp_path / META_NAME
    path.write_text(path.read_text().replace('"step": 150', '"step": 720'))
    with pytest.raises(CheckpointError, match=r"train_state\.json: content differs") as info:
        load_state(tmp_path, "fp", *_training_objects())
    assert f"delete {tmp_path}" in info.value.hint and "\n" not in info.value.message


def test_a_kill_between_tensors_and_json_resumes_from_the_previous_step(tmp_path: Path) -> None:
    """Each step's tensors have a file of their own, named by the JSON written last: a run
    killed after writing step 151's tensors resumes from step 150 (the tensors replaced the
    file step 150's JSON described, and every rerun failed on the sha256)."""
    _saved_state(tmp_path)
    (tmp_path / "train_state.step-151.safetensors").write_bytes(b"half-written")
    assert load_state(tmp_path, "fp", *_training_objects()).step == 150
    module, optimizer, scheduler, generator = _training_objects()
    save_state(tmp_path, "fp", module, optimizer, scheduler, generator, LoopPosition(step=151))
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        "train_state.step-151.safetensors"
    ]
    assert load_state(tmp_path, "fp", *_training_objects()).step == 151


def test_pickle_named_train_state_safetensors_is_refused(tmp_path: Path) -> None:
    _saved_state(tmp_path)
    tensors = tmp_path / "train_state.step-150.safetensors"
    tensors.write_bytes(pickle.dumps({"module.weight": torch.zeros(2, 3)}))
    # Even with the recorded hashes made consistent, the pickle is never read as weights.
    meta = json.loads((tmp_path / META_NAME).read_text())
    meta["tensors_sha256"] = sha256_file(tensors)
    meta[DIGEST_KEY] = content_digest(meta)
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"train_state\.step-150\.safetensors: not a safe"):
        load_state(tmp_path, "fp", *_training_objects())


def test_a_state_whose_tensors_are_cut_short_is_said_unusable_and_not_resumed(
    tmp_path: Path,
) -> None:
    """Its JSON intact, its tensors cut short (a full disk, a copy interrupted): the listing
    (lcm prune-states) said it resumable. Found from the header and size alone, and refused."""
    _saved_state(tmp_path)
    tensors = tmp_path / "train_state.step-150.safetensors"
    assert unusable(tmp_path) is None  # as written: whole
    tensors.write_bytes(tensors.read_bytes()[:-7])
    said = unusable(tmp_path)
    assert said is not None and said.startswith(f"{tensors}: cut short: tensor "), said
    with pytest.raises(CheckpointError, match="names tensors that cannot be read") as info:
        load_state(tmp_path, "fp", *_training_objects())
    assert f"{tensors}: cut short" in info.value.message and "\n" not in info.value.message
    assert f"delete {tmp_path}" in info.value.hint
    tensors.unlink()
    assert unusable(tmp_path) == f"{tensors} is missing"


# -- checkpoints: bounds, format, mode ---------------------------------------------------------


def _tiny_checkpoint(out: Path) -> Path:
    layout = QueryLayout.from_list(
        [{"name": "age", "kind": "continuous", "levels": [], "start": 0}]
    )
    model = LCM(LCMConfig(n_rois=5, n_queries=1, d_model=8, n_heads=2, d_ffn=8))
    return save_checkpoint(out, model, layout, {"atlas": "toy", "n_rois": 5})


def _edit_meta(folder: Path, **config: int) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta["config"].update(config)
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("d_model", [65536, 4096])
def test_huge_config_is_refused_before_allocation(tmp_path: Path, d_model: int) -> None:
    folder = _tiny_checkpoint(tmp_path / "ckpt")
    _edit_meta(folder, d_model=d_model, d_ffn=d_model)
    started = time.perf_counter()
    match = r"above the limit" if d_model > 16384 else r"weights do not match the config"
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(folder)
    assert time.perf_counter() - started < 2.0  # no 51 GB model was built first
    assert "model" in info.value.message and "\n" not in info.value.message


def test_pickle_named_model_safetensors_is_refused(tmp_path: Path) -> None:
    folder = _tiny_checkpoint(tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    state = LCM(LCMConfig(n_rois=5, n_queries=1, d_model=8, n_heads=2, d_ffn=8)).state_dict()
    torch.save(state, weights)  # a zip of pickles
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "weights_sha256": sha256_file(weights)}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file"):
        load_checkpoint(folder)
    weights.write_bytes(pickle.dumps(state))  # a bare pickle
    meta["weights_sha256"] = sha256_file(weights)
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file"):
        load_checkpoint(folder)


def test_weights_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        folder = _tiny_checkpoint(tmp_path / "ckpt")
        _saved_state(tmp_path / "state")
    finally:
        os.umask(old)
    for path in (
        folder / "model.safetensors",
        tmp_path / "state" / "train_state.step-150.safetensors",
    ):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert (folder / "model.json").stat().st_mode & 0o777 == 0o644


# -- embeddings provenance ----------------------------------------------------------------------


def test_edited_embeddings_fail_provenance_verify(store, pretrained, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    out.mkdir()
    emb, att = out / "emb.parquet", out / "att.parquet"
    assert (
        main(
            [
                "embed",
                "--checkpoint",
                str(pretrained),
                "--store",
                str(store[0]),
                "--atlas",
                "toy",
                "--catalogue",
                str(store[1]),
                "--datasets",
                "beta",
                "--out",
                str(emb),
                "--attention-out",
                str(att),
            ]
        )
        == 0
    )
    assert (out / "emb.json").is_file() and (out / "att.json").is_file()
    assert main(["provenance", "verify", str(out)]) == 0
    data = bytearray(emb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    emb.write_bytes(bytes(data))
    assert main(["provenance", "verify", str(out)]) == 1
    shutil.rmtree(out)


def test_weights_files_are_byte_identical_across_saves(tmp_path: Path) -> None:
    """safetensors wrote its metadata map in hash order, which differs between processes: two
    identical runs gave weights of different sha256, which provenance reads as different."""
    code = (
        "import sys, torch; from lcm.model.weights import save_tensors; "
        "save_tensors({'b': torch.ones(3), 'a': torch.arange(4.0)}, sys.argv[1], "
        "metadata={'format': 'pt', 'format_version': '1', 'zeta': 'z', 'alpha': 'a'})"
    )
    digests = set()
    for i in range(4):  # a process each: the hash order is per process
        out = tmp_path / f"w{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
        digests.add(sha256_file(out))
    assert len(digests) == 1


def _checkpoint_and_store(store: tuple[Path, Path], checkpoint: Path | str) -> list[str]:
    """The options ``lcm finetune`` and ``lcm embed`` share: checkpoint, store, atlas."""
    return [
        *("--checkpoint", str(checkpoint), "--store", str(store[0])),
        *("--atlas", "toy", "--catalogue", str(store[1])),
    ]


def _embed(store: tuple[Path, Path], checkpoint: Path | str, out: Path | str) -> int:
    return main(
        [
            "embed",
            *_checkpoint_and_store(store, checkpoint),
            "--datasets",
            "beta",
            "--out",
            str(out),
        ]
    )


def test_embed_refuses_an_existing_out_lcm_did_not_write(store, pretrained, tmp_path, capfd):
    victim = tmp_path / "victim.tsv"
    victim.write_text("subject\tscore\ns1\t3\n")
    assert _embed(store, pretrained, victim) == 6
    (message,) = _lines(capfd, "ERROR")
    assert f"output {victim} exists and LCM did not write it" in message
    assert victim.read_text() == "subject\tscore\ns1\t3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.tsv"]


def test_embed_reruns_replace_their_own_out_with_an_absolute_checkpoint(
    store, pretrained, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    monkeypatch.chdir(pretrained.parent)
    out = tmp_path / "emb.parquet"
    assert _embed(store, pretrained.name, out) == 0
    assert _embed(store, pretrained.name, out) == 0  # its own output, recorded: replaced
    meta = pq.read_schema(out).metadata
    assert meta[b"lcm.checkpoint"].decode() == str(pretrained.resolve())


def _attention_table_fills_the_disk(monkeypatch) -> None:
    """Make ``lcm embed``'s attention table (``att.parquet``) hit a full disk, the embeddings
    written as usual."""
    from lcm.model import export_tables

    real = export_tables.write_export_table

    def full(frame, path, **recorded):
        if str(path).endswith("att.parquet"):
            raise OSError(28, "No space left on device")
        return real(frame, path, **recorded)

    monkeypatch.setattr(export_tables, "write_export_table", full)


def test_embed_writes_both_tables_or_neither(store, pretrained, tmp_path, capfd, monkeypatch):
    """--attention-out below a file: the embeddings were written, without a record, and the
    rerun refused them as a file LCM did not write. Refused first now; a failed second write
    (a full disk) takes the first table with it."""

    emb, blocked = tmp_path / "emb.parquet", tmp_path / "afile"
    blocked.write_text("")
    argv = ["embed", *_checkpoint_and_store(store, pretrained), "--datasets", "beta"]
    argv += ["--out", str(emb)]
    assert main([*argv, "--attention-out", str(blocked / "a.parquet")]) == 6  # as ingest's
    assert "afile is a file, not a folder; nothing was computed" in _lines(capfd, "ERROR")[0]
    assert not emb.exists()
    _attention_table_fills_the_disk(monkeypatch)
    assert main([*argv, "--attention-out", str(tmp_path / "att.parquet")]) != 0
    assert "No space left on device" in capfd.readouterr().err
    assert not emb.exists() and not (tmp_path / "emb.json").exists()


def test_embed_rerun_that_fails_keeps_the_previous_tables(
    store, pretrained, tmp_path, capfd, monkeypatch
):
    """A rerun whose attention table hits a full disk: its new embeddings, written first, were
    removed, and with them the previous run's (their record left naming a missing file),
    under a message saying earlier outputs were intact."""

    emb, att = tmp_path / "emb.parquet", tmp_path / "att.parquet"
    argv = ["embed", *_checkpoint_and_store(store, pretrained), "--datasets", "beta"]
    argv += ["--out", str(emb), "--attention-out", str(att)]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in (emb, att, tmp_path / "emb.json")}
    _attention_table_fills_the_disk(monkeypatch)
    assert main(argv) != 0
    assert "No space left on device" in capfd.readouterr().err
    assert {p.name: p.read_bytes() for p in (emb, att, tmp_path / "emb.json")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["emb.parquet", "emb.json", "att.parquet", "att.json"]
    )


def test_embed_refuses_weights_cut_short_before_loading_the_cohort(
    store, pretrained, tmp_path, capfd, monkeypatch
):
    """A model.safetensors cut short was refused (sha256) only once the whole cohort had been
    read from the store: minutes and gigabytes for a large one."""
    import shutil

    from lcm.store import read as store_read

    cut = shutil.copytree(pretrained, tmp_path / "cut")
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    def no_load(*args, **kwargs):
        raise AssertionError("the cohort was loaded")

    monkeypatch.setattr(store_read, "load_cohort", no_load)
    assert _embed(store, cut, tmp_path / "emb.parquet") == 5
    err = capfd.readouterr().err
    assert f"{weights}: cut short: tensor " in err and "(a copy or a write interrupted)" in err
    assert "Copy model.safetensors again from the original" in err and "Traceback" not in err
    assert not (tmp_path / "emb.parquet").exists()


def _read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` unwritable as a read-only mount is (root passes chmod 555)."""
    real = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == folder and mode & os.W_OK:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_embed_and_catalogue_out_refuse_a_read_only_folder_first(
    store, pretrained, tmp_path, capfd, monkeypatch
):
    """A read-only --out folder: the embeddings were computed, then the write raised a
    traceback (OSError: Read-only file system); model-info --catalogue-out did the same."""
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    assert _embed(store, pretrained, locked / "sub" / "emb.parquet") == 2
    error = _lines(capfd, "ERROR")[0]
    assert f"this user cannot write in {locked}" in error and "nothing was computed" in error
    argv = ["model-info", "--checkpoint", str(pretrained), "--catalogue-out"]
    assert main([*argv, str(locked / "vars.yaml")]) == 2
    assert f"this user cannot write in {locked}" in _lines(capfd, "ERROR")[0]
    assert list(locked.iterdir()) == []


def test_embed_beside_a_checkpoint_refuses_before_writing(store, pretrained, tmp_path, capfd):
    """--out model.parquet in the checkpoint folder: its record model.json is the checkpoint's
    metadata; refused before the table is written, not after."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(pretrained, ckpt)
    before = sorted(p.name for p in ckpt.iterdir())
    model_json = (ckpt / "model.json").read_bytes()
    assert _embed(store, ckpt, ckpt / "model.parquet") != 0
    assert "model.json exists and is not an LCM provenance record" in _lines(capfd, "ERROR")[0]
    assert sorted(p.name for p in ckpt.iterdir()) == before
    assert (ckpt / "model.json").read_bytes() == model_json


# -- SIGTERM ---------------------------------------------------------------------------------------


def test_sigterm_says_where_training_stopped_and_exits_143(store, tmp_path: Path) -> None:
    """SLURM's time limit sends SIGTERM: one line names the step and the state a rerun resumes
    from, and the exit status stays 143 (a failure to SLURM and Snakemake)."""
    out = tmp_path / "run"
    settings = '{"epochs": 200, "batch_size": 8, "checkpoint_every": 2}'
    cmd = [sys.executable, "-m", "lcm", "pretrain", "--store", str(store[0]), "--atlas", "toy"]
    cmd += ["--catalogue", str(store[1]), "--datasets", "alpha", "--model", json.dumps(TINY)]
    cmd += ["--settings", settings, "--seed", "1", "--out-dir", str(out), "--threads", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not (out / "train_state" / META_NAME).is_file() and proc.poll() is None:
            assert time.monotonic() < deadline, "no training state within 120 s"
            time.sleep(0.1)
        proc.terminate()  # SIGTERM
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    (line,) = [line for line in err.splitlines() if "stopped by SIGTERM" in line]
    assert "training state saved at step" in line and "lets the same command resume" in line
    assert "Traceback" not in err
