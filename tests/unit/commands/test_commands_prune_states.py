"""`lcm prune-states`: the saved states of finished runs go, those of unfinished runs stay.

Pretraining keeps train_state/ (weights and AdamW moments: several times the weights) and
`lcm evaluate` its fits after their outputs are written, and nothing ever removed them: a
user on an HPC quota deleted them by hand, unable to tell a finished run's from one a rerun
would resume. The states here are written by the real writers (a killed and a finished tiny
pretraining, an evaluation's saved fits); the verb runs as a user runs it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.model import TINY, make_catalogue, pretrain_cohort

from lcm.cli import main
from lcm.evaluate.resume import open_state, state_folder
from lcm.io.lock import LOCK_NAME
from lcm.train import objective
from lcm.train.outputs import PRETRAIN_FILES
from lcm.train.pretrain import STATE_DIR, pretrain

pytestmark = pytest.mark.slow

SETTINGS = {"epochs": 3, "batch_size": 16, "lr": 0.003, "checkpoint_every": 4}


def _job(n_train: int) -> object:
    from lcm.evaluate.parallel import FitJob
    from lcm.evaluate.registry import ModelContext

    rows = np.arange(8)
    context = ModelContext(label="autism", levels=("control", "autism"), finetune={}, seed=0)
    return FitJob(
        "logreg", context, rows[:n_train], rows[6:], np.zeros(n_train), None, rows[:n_train]
    )


def _evaluation(
    metrics: Path, saved: int, jobs: int = 2, written: bool = True, run: str | None = None
) -> Path:
    """An evaluation of ``jobs`` fits that saved ``saved`` of them (its tables ``written``, as
    lcm evaluate writes them: recorded in its state)."""
    folder = state_folder(metrics)
    all_jobs = [_job(3 + i) for i in range(jobs)]
    with open_state(folder, {"run": run or metrics.name}) as state:
        state.load(all_jobs)
        for job in all_jobs[:saved]:
            state.save(job, (np.array([0.25, 0.75]), 1.5, None))
        if written:
            metrics.write_bytes(f"metrics of {run or metrics.name}".encode())
            state.wrote(metrics)
    return folder


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished pretraining's folder and a killed one's (real states), to copy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("pretrained")
    catalogue, cohort = make_catalogue(tmp), pretrain_cohort(40)
    pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp / "done")
    original, calls = objective.PretrainObjective.forward, []

    def dying_forward(self, fc, shard):
        calls.append(1)
        if len(calls) == 6:  # after the state of step 4
            raise KeyboardInterrupt("killed")
        return original(self, fc, shard)

    objective.PretrainObjective.forward = dying_forward
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(cohort, catalogue, TINY, SETTINGS, seed=4, out_dir=tmp / "killed")
    finally:
        objective.PretrainObjective.forward = original
        torch.set_num_threads(before)
    return {"done": tmp / "done", "killed": tmp / "killed"}


def _copy(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


def _results(tmp_path: Path, pretrained: dict[str, Path]) -> dict[str, Path]:
    """A results folder: a finished and a killed pretraining, a finished and an unfinished
    evaluation, a finished evaluation whose metrics were never written."""
    results = tmp_path / "results"
    (results / "metrics").mkdir(parents=True)
    done = _copy(pretrained["done"], results / "models" / "pretrain")
    killed = _copy(pretrained["killed"], results / "models" / "pretrain-ssl")
    metrics = results / "metrics"
    return {
        "results": results,
        "done": done / STATE_DIR,
        "killed": killed / STATE_DIR,
        "evaluated": _evaluation(metrics / "task-a_metrics.parquet", saved=2),
        "half": _evaluation(metrics / "task-b_metrics.parquet", saved=1, written=False),
        "unwritten": _evaluation(metrics / "task-c_metrics.parquet", saved=2, written=False),
    }


def _lines(out: str) -> dict[str, str]:
    """The verb's line of each state folder, by folder."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        for word in words:
            if word.endswith(":") and ("state" in word):
                found[word.rstrip(":")] = line
    return found


def test_finished_states_are_listed_then_removed_with_apply_and_unfinished_ones_kept(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    states = _results(tmp_path, pretrained)
    before = {p: sorted(q.name for q in p.iterdir()) for p in states.values() if p.is_dir()}
    assert main(["prune-states", str(states["results"])]) == 0
    out = capsys.readouterr().out
    lines = _lines(out)
    assert lines[str(states["done"])].startswith("would remove")
    assert "finished (step " in lines[str(states["done"])]
    assert "its model is written" in lines[str(states["done"])]
    assert lines[str(states["evaluated"])].startswith("would remove")
    assert "finished (2 of 2 fits saved; task-a_metrics.parquet written)" in out
    assert lines[str(states["killed"])].startswith("keep")
    assert "unfinished (step 4 of " in lines[str(states["killed"])]
    assert "unfinished (1 of 2 fits saved): kept to resume it" in lines[str(states["half"])]
    assert "task-c_metrics.parquet not written" in lines[str(states["unwritten"])]
    assert "2 of 5 state(s) finished" in out and "--apply" in out
    # A dry run: nothing removed, nothing written.
    assert before == {p: sorted(q.name for q in p.iterdir()) for p in before}

    assert main(["prune-states", str(states["results"]), "--apply"]) == 0
    out = first_apply = capsys.readouterr().out
    assert _lines(out)[str(states["done"])].startswith("removed")
    assert not states["done"].exists() and not states["evaluated"].exists()
    for kept in ("killed", "half", "unwritten"):
        assert sorted(q.name for q in states[kept].iterdir()) == before[states[kept]], kept
    model = states["done"].parent
    assert all((model / name).is_file() for name in PRETRAIN_FILES)  # the model stays
    assert not [p for p in states["results"].rglob(".*removing*")]  # nothing left aside
    # Run again: nothing left to remove.
    assert main(["prune-states", str(states["results"]), "--apply"]) == 0
    out = capsys.readouterr().out
    assert "0 state(s) removed, 0 B freed; 3 kept" in out
    assert "2 state(s) removed" in first_apply and "; 3 kept" in first_apply


def test_a_state_with_a_users_file_or_not_lcms_is_kept(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    (done / "notes.txt").write_text("mine")
    mine = results / "metrics" / "mine_evaluate_state"  # a user's folder of that name
    mine.mkdir(parents=True)
    (mine / "evaluate_state.json").write_text("{}")
    assert main(["prune-states", str(results), "--apply"]) == 0
    out = capsys.readouterr().out
    assert "holds files LCM did not write (notes.txt): kept" in _lines(out)[str(done)]
    assert "not a state lcm evaluate wrote (no marker naming lcm evaluate): kept" in out
    assert (done / "notes.txt").read_text() == "mine" and (done / "train_state.json").is_file()
    assert (mine / "evaluate_state.json").read_text() == "{}"


def test_a_state_whose_json_is_cut_short_is_kept_but_not_said_resumable(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """A train_state.json cut short (a full disk, a copy interrupted): lcm pretrain refuses
    it, yet the listing said "kept to resume it"."""
    killed = _copy(pretrained["killed"], tmp_path / "results" / "pretrain") / STATE_DIR
    meta = killed / "train_state.json"
    meta.write_bytes(meta.read_bytes()[:500])
    assert main(["prune-states", str(tmp_path / "results"), "--apply"]) == 0
    line = _lines(capsys.readouterr().out)[str(killed)]
    assert line.startswith("keep") and "kept to resume it" not in line
    assert "unreadable (its train_state.json cannot be read): lcm pretrain cannot resume" in line
    assert meta.stat().st_size == 500


def test_a_lock_file_that_is_a_link_is_never_written_through(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """--apply holds the writer's lock while removing, and the lock stamps a pid into its
    file: a .lcm.lock that is a link (LCM makes none) had the user's file it points to
    overwritten. Such a state is kept, and said, and the file is left as it was."""
    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    evaluated = _evaluation(results / "metrics" / "task-a_metrics.parquet", saved=2)
    theses = []
    for i, lock in enumerate((done.parent / LOCK_NAME, evaluated / LOCK_NAME)):
        thesis = tmp_path / f"thesis-{i}.tex"
        thesis.write_text("years of work")
        lock.unlink(missing_ok=True)
        lock.symlink_to(thesis)
        theses.append(thesis)
    assert main(["prune-states", str(results), "--apply"]) == 0
    out = capsys.readouterr().out
    for folder in (done, evaluated):
        line = _lines(out)[str(folder)]
        assert line.startswith("keep") and ".lcm.lock" in line and "link" in line, line
        assert folder.is_dir()
    assert [t.read_text() for t in theses] == ["years of work"] * 2


def test_a_state_file_that_is_a_link_is_not_taken_for_lcms(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """LCM writes no link: a state's tensors file or fit file that is one (a user's moved to
    another disk and linked back) makes the folder a user's, kept whole."""
    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    evaluated = _evaluation(results / "metrics" / "task-a_metrics.parquet", saved=2)
    elsewhere = tmp_path / "other-disk"
    elsewhere.mkdir()
    for folder, pattern in ((done, "*.safetensors"), (evaluated, "fit-*.npz")):
        file = sorted(folder.glob(pattern))[0]
        file.rename(elsewhere / file.name)
        file.symlink_to(elsewhere / file.name)
    assert main(["prune-states", str(results), "--apply"]) == 0
    out = capsys.readouterr().out
    for folder, pattern in ((done, "*.safetensors"), (evaluated, "fit-*.npz")):
        line = _lines(out)[str(folder)]
        assert line.startswith("keep") and "holds files LCM did not write" in line, line
        assert sorted(folder.glob(pattern))[0].resolve().parent == elsewhere.resolve()
    assert len(list(elsewhere.iterdir())) == 2


def test_the_writers_lock_is_held_for_the_rename_only_not_the_deletion(
    tmp_path: Path, pretrained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state is renamed aside under its writer's lock; deleting its files (GBs, slow on a
    cluster's file system) then needs no lock: a job starting meanwhile (a Snakemake retry)
    must not be refused (exit 6) for as long as the deletion takes."""
    from lcm.io import ownership
    from lcm.io.lock import lock_holder

    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    evaluated = _evaluation(results / "metrics" / "task-a_metrics.parquet", saved=2)
    real, held = ownership.remove_owned, []

    def deleting(folder: Path, names: list[str]) -> None:
        # The training's lock (its model folder's), the evaluation's (moved aside with it).
        held.append((lock_holder(done.parent / LOCK_NAME), lock_holder(folder / LOCK_NAME)))
        real(folder, names)

    monkeypatch.setattr(ownership, "remove_owned", deleting)
    assert main(["prune-states", str(results), "--apply"]) == 0
    assert not done.exists() and not evaluated.exists()
    assert held == [(None, None)] * 2


def test_a_state_that_changed_since_it_was_listed_is_judged_again_and_kept(
    tmp_path: Path, pretrained
) -> None:
    """A run between the listing and the removal (a rerun with other settings, killed) leaves
    an unfinished state where a finished one was listed: it is judged again under the lock."""
    import shutil

    from lcm.commands.prune_states import examine, remove

    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    listed = examine(done)
    assert listed.finished
    shutil.rmtree(done)
    _copy(pretrained["killed"] / STATE_DIR, done)
    why = remove(listed)
    assert why is not None and why.startswith("changed since it was listed (unfinished"), why
    assert (done / "train_state.json").is_file()


def test_a_state_whose_writer_runs_is_kept_until_it_ends(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished state whose folder a live process has locked (a rerun resuming from it, a
    retry writing the outputs again) is left alone, naming the holder; once it has ended, it
    goes."""
    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    evaluated = _evaluation(results / "metrics" / "task-a_metrics.parquet", saved=2)
    holders = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; from lcm.io.lock import exclusive_lock\n"
                f"with exclusive_lock({str(lock)!r}, 'lcm pretrain'):\n"
                "    print('held', flush=True); time.sleep(120)\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for lock in (done.parent / LOCK_NAME, evaluated / LOCK_NAME)
    ]
    try:
        for holder in holders:
            assert holder.stdout.readline().strip() == "held"
        assert main(["prune-states", str(results), "--apply"]) == 0
        out = capsys.readouterr().out
        for folder, holder in zip((done, evaluated), holders, strict=True):
            line = _lines(out)[str(folder)]
            assert line.startswith("keep"), line
            assert f"its writer is running (pid {holder.pid} on" in line
            assert folder.is_dir()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert main(["prune-states", str(results), "--apply"]) == 0
    assert not done.exists() and not evaluated.exists()


def test_a_removal_cut_short_is_finished_and_the_verb_runs_from_any_folder(
    tmp_path: Path, pretrained
) -> None:
    """A state renamed aside by a removal killed before its files were deleted is removed next
    time; the verb as a user types it, from a folder outside the repository."""
    results = tmp_path / "results"
    done = _copy(pretrained["done"], results / "models" / "pretrain") / STATE_DIR
    aside = done.with_name(f".{STATE_DIR}.removing-12345")
    done.rename(aside)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    proc = subprocess.run(
        [sys.executable, "-m", "lcm", "prune-states", os.path.relpath(results, cwd), "--apply"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "left by a removal cut short" in proc.stdout
    assert not aside.exists() and (done.parent / "model.json").is_file()

    missing = subprocess.run(
        [sys.executable, "-m", "lcm", "prune-states", "nowhere"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 3
    assert "lcm prune-states: nowhere is not a folder" in missing.stderr
    assert "results_dir" in missing.stderr


def test_a_finished_state_that_cannot_be_removed_exits_1_naming_the_error(
    tmp_path: Path, pretrained, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exit status the epilog documents: 1 when a finished state could not be removed
    whole (here its rename aside fails, as on a file system refusing it), the state kept where
    it was; 0 when states are only kept for a reason (unfinished, locked)."""
    states = _results(tmp_path, pretrained)
    real_replace = os.replace

    def refuse(src, dst):  # the training state's rename only
        if Path(src) == states["done"]:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    assert main(["prune-states", str(states["results"]), "--apply"]) == 1
    line = _lines(capsys.readouterr().out)[str(states["done"])]
    assert line.startswith("keep") and "could not be removed" in line
    assert "Invalid cross-device link" in line
    assert (states["done"] / "train_state.json").is_file()  # kept whole, where it was
    assert not states["evaluated"].exists()  # the other finished state still went


def test_a_finished_state_beside_another_runs_model_is_kept_naming_the_mismatch(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """Run by hand into the same folder, a run with other settings killed after its final step
    but before writing its model sits beside the earlier run's model: not finished."""
    import json

    import torch

    from lcm.train import pretrain as pretrain_module

    out = _copy(pretrained["done"], tmp_path / "pretrain")
    old_model = (out / "model.json").read_text()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before writing its model")

    monkeypatch.setattr(pretrain_module, "save_checkpoint", killed)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        catalogue, cohort = make_catalogue(tmp_path), pretrain_cohort(40)
        with pytest.raises(KeyboardInterrupt):
            pretrain(cohort, catalogue, TINY, {**SETTINGS, "lr": 0.002}, seed=4, out_dir=out)
    finally:
        torch.set_num_threads(before)
    assert (out / "model.json").read_text() == old_model  # the earlier run's model
    state = json.loads((out / STATE_DIR / "train_state.json").read_text())
    assert state["step"] == state["total_steps"]  # the new run's state, at its final step

    assert main(["prune-states", str(out), "--apply"]) == 0
    line = _lines(capsys.readouterr().out)[str(out / STATE_DIR)]
    assert line.startswith("keep"), line
    assert "model.json is another run's (fingerprint" in line and "kept to write" in line
    assert (out / STATE_DIR / "train_state.json").is_file()


def test_a_model_json_of_an_earlier_lcm_without_the_runs_fingerprint_keeps_the_state(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from lcm.model.checkpoint import RUN_KEY

    out = _copy(pretrained["done"], tmp_path / "pretrain")
    meta = json.loads((out / "model.json").read_text())
    assert isinstance(meta.pop(RUN_KEY), str)  # written by this LCM
    (out / "model.json").write_text(json.dumps(meta))

    assert main(["prune-states", str(out), "--apply"]) == 0
    line = _lines(capsys.readouterr().out)[str(out / STATE_DIR)]
    assert line.startswith("keep"), line
    assert "model.json records no run fingerprint (an earlier LCM wrote it)" in line
    assert (out / STATE_DIR).is_dir()


def test_a_finished_evaluation_state_beside_another_runs_metrics_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "task-a_metrics.parquet"
    _evaluation(metrics, saved=2, run="earlier")  # finished, its table written
    table = metrics.read_bytes()
    # Another run (other settings) fits everything, and is killed before writing its table.
    folder = _evaluation(metrics, saved=2, written=False, run="other")
    assert metrics.read_bytes() == table
    # An evaluation state of an earlier LCM (no record of its table) beside its table.
    older = tmp_path / "task-b_metrics.parquet"
    _evaluation(older, saved=2, written=False)
    older.write_bytes(b"metrics")

    assert main(["prune-states", str(tmp_path), "--apply"]) == 0
    lines = _lines(capsys.readouterr().out)
    line = lines[str(folder)]
    assert line.startswith("keep"), line
    said = "fitted (2 of 2 fits saved) but task-a_metrics.parquet is not recorded as its run's"
    assert said in line
    assert lines[str(state_folder(older))].startswith("keep")
    assert folder.is_dir() and state_folder(older).is_dir()
    # A table recorded, then replaced by other bytes: not its run's either.
    replaced = tmp_path / "task-c_metrics.parquet"
    _evaluation(replaced, saved=2)
    replaced.write_bytes(b"another table")
    assert main(["prune-states", str(state_folder(replaced))]) == 0
    line = _lines(capsys.readouterr().out)[str(state_folder(replaced))]
    assert line.startswith("keep") and "task-c_metrics.parquet is another run's" in line

    # The same run as the table's again (a retry): finished, removed.
    _evaluation(metrics, saved=2, run="other")
    assert main(["prune-states", str(tmp_path), "--apply"]) == 0
    assert _lines(capsys.readouterr().out)[str(folder)].startswith("removed")
    assert not folder.exists() and metrics.is_file()


def test_a_finished_state_beside_a_model_changed_since_is_kept(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its weights cut short (a full disk, a copy): the state is what writes the model again
    without training, and --apply removed it."""
    out = _copy(pretrained["done"], tmp_path / "pretrain")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["prune-states", str(out), "--apply"]) == 0
    line = _lines(capsys.readouterr().out)[str(out / STATE_DIR)]
    assert line.startswith("keep"), line
    assert "model.safetensors changed since written" in line and "kept to write" in line
    assert (out / STATE_DIR / "train_state.json").is_file()


def state_step(state: Path) -> int:
    """The step a state's JSON records."""
    import json

    return json.loads((state / "train_state.json").read_text())["step"]


def _cut_tensors(state: Path) -> Path:
    """Cut the state's tensors file short (a full disk, a copy interrupted), its JSON intact."""
    (tensors,) = state.glob("train_state.step-*.safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-100])
    return tensors


def test_a_state_whose_tensors_are_cut_short_is_said_unusable_not_resumable(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its train_state.json intact, its tensors not: lcm pretrain refuses to resume from it,
    yet the listing said "kept to resume it" (and a finished one whose model is gone "kept
    to write them", which it cannot)."""
    results = tmp_path / "results"
    killed = _copy(pretrained["killed"], results / "pretrain-killed") / STATE_DIR
    done = _copy(pretrained["done"], results / "pretrain-done") / STATE_DIR
    (done.parent / "model.safetensors").unlink()
    cut = {state: _cut_tensors(state) for state in (killed, done)}
    sizes = {state: tensors.stat().st_size for state, tensors in cut.items()}
    assert main(["prune-states", str(results), "--apply"]) == 0
    lines = _lines(capsys.readouterr().out)
    for state, tensors in cut.items():
        line = lines[str(state)]
        assert line.startswith("keep") and "kept to resume it" not in line, line
        assert "kept to write" not in line, line
        assert f"unusable (step {state_step(state)} of " in line, line
        assert f"but {tensors}: cut short: tensor " in line, line
        assert "lcm pretrain cannot resume from it" in line, line
        assert f"delete {state}, then rerun lcm pretrain" in line, line
        assert tensors.stat().st_size == sizes[state]  # never removed: not known finished


def test_a_finished_state_whose_tensors_are_cut_short_goes_once_its_model_is_written(
    tmp_path: Path, pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing needs a finished run's state once its model is written: one cut short goes
    as a whole one does."""
    done = _copy(pretrained["done"], tmp_path / "pretrain") / STATE_DIR
    _cut_tensors(done)
    assert main(["prune-states", str(done.parent), "--apply"]) == 0
    line = _lines(capsys.readouterr().out)[str(done)]
    assert line.startswith("removed"), line
    assert not done.exists()
