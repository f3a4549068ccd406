"""`lcm evaluate` killed after k of N fits and run again: it fits only the N - k others and
writes the same bytes as an uninterrupted run (finding: a killed evaluation kept no fit).

Run as a user would: the ``lcm`` command line in a process of its own, from a folder outside the
repository, killed by SIGTERM or SIGKILL from inside its (k + 1)-th fit of a model that counts
its fits in a folder; ``logreg`` beside it runs in the worker pool.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lcm.catalogue import load_catalogue
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.store.writer import write_connectomes, write_variables

pytestmark = [pytest.mark.slow, pytest.mark.hostile]

N_ROIS = 5
N_SUBJECTS = 24
SETTINGS = {"n_folds": 3, "seeds": [0, 1], "label_fractions": [0.5, 1.0]}
N_COUNTED = 3 * 2 * 2  # folds x seeds x fractions: the fits of each model
# Where the fits are kept: beside the metrics, named after them (lcm.evaluate.resume).
STATE = "task-asd_metrics_evaluate_state"

# Registers "counted" (a nearest-class-mean model that writes one file per fit into $COUNT_DIR
# and, at fit $KILL_AT, sends itself $KILL_SIG), then runs the lcm command line.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import numpy as np
    from lcm.cli import main
    from lcm.evaluate.registry import register_model

    class Counted:
        def fit(self, fc, y, variables):
            folder = Path(os.environ["COUNT_DIR"])
            n = len(list(folder.iterdir())) + 1
            hold = os.environ.get("HOLD_DIR")
            if hold and n == 1:  # a slow first fit: say so, then wait to be released
                Path(hold, "holding").touch()
                for _ in range(1200):
                    if Path(hold, "release").exists():
                        break
                    time.sleep(0.1)
            if n == int(os.environ.get("KILL_AT", "0")):
                os.kill(os.getpid(), getattr(signal, os.environ["KILL_SIG"]))
                time.sleep(30)
            (folder / str(n)).touch()
            x = fc.reshape(len(fc), -1)
            self.means_ = [x[y == c].mean(axis=0) for c in (0, 1)]
            return self

        def predict_proba(self, fc):
            x = fc.reshape(len(fc), -1)
            d = [((x - m) ** 2).sum(axis=1) for m in self.means_]
            p = 1 / (1 + np.exp(d[1] - d[0]))
            return np.column_stack([1 - p, p])

    register_model("counted", lambda ctx: Counted(), kinds=("binary",))
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store of 24 subjects (one run each) of 'toyds' with an autism label (read only: one
    for the module, so that an evaluation's state copied from a shared run keys the same
    inputs)."""
    tmp_path = tmp_path_factory.mktemp("store")
    catalogue = tmp_path / "variables.yaml"
    catalogue.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "variables": {
                    "autism": {
                        "kind": "binary",
                        "domain": "clinical",
                        "levels": ["control", "autism"],
                    }
                },
                "datasets": {"toyds": {"id_column": "SUB_ID", "columns": {"autism": "DX"}}},
            }
        )
    )
    rng = np.random.default_rng(0)
    names = [f"R{i}" for i in range(N_ROIS)]
    qc_rows, pheno = [], []
    for s in range(N_SUBJECTS):
        ts = rng.normal(size=(40, N_ROIS))
        ts[:, :2] += (1.0 if s % 2 else 0.2) * rng.normal(size=(40, 1))
        relmat = tmp_path / f"sub-{s:02d}_relmat.tsv"
        frame = pd.DataFrame(np.corrcoef(ts.T), index=pd.Index(names, name="Node"), columns=names)
        frame.to_csv(relmat, sep="\t")
        qc_rows.append(
            {
                "subject": f"{s:02d}",
                "session": "",
                "task": "rest",
                "run": "1",
                "run_key": f"sub-{s:02d}_task-rest",
                "included": True,
                "relmat": str(relmat),
                "n_volumes": 40,
                "n_volumes_kept": 40,
                "mean_fd": 0.1,
                "t_r": 2.0,
            }
        )
        pheno.append({"subject": f"{s:02d}", "site": "A", "autism": ("control", "autism")[s % 2]})
    root = tmp_path / "store"
    write_connectomes(root, "toy", "toyds", pd.DataFrame(qc_rows), pd.DataFrame(pheno))
    write_variables(root, "toyds", pd.DataFrame(pheno), load_catalogue(catalogue))
    return {"root": root, "catalogue": catalogue}


def _evaluate(
    store: dict[str, Path],
    out: Path,
    counts: Path,
    settings: dict | None = None,
    kill_at: int = 0,
    sig: str = "SIGKILL",
    relative: bool = False,
    hold: Path | None = None,
    start: bool = False,
) -> subprocess.CompletedProcess | subprocess.Popen:
    """``lcm evaluate`` of "counted" and logreg, run from a folder outside the repository
    (``relative``: the store and catalogue named relative to it). ``hold``: its first fit of
    "counted" touches ``hold/holding`` and waits for ``hold/release``; ``start``: returned
    running (a Popen), not waited for."""
    counts.mkdir(parents=True, exist_ok=True)
    cwd = out.parent / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    name = (lambda p: os.path.relpath(p, cwd)) if relative else str
    argv = [
        "evaluate",
        "--store",
        name(store["root"]),
        "--atlas",
        "toy",
        "--catalogue",
        name(store["catalogue"]),
        "--task",
        "asd",
        "--dataset",
        "toyds",
        "--label",
        "autism",
        "--positive",
        "autism",
        "--settings",
        json.dumps({**SETTINGS, "models": ["counted", "logreg"], **(settings or {})}),
        "--seed",
        "3",
        "--threads",
        "2",
        "--out",
        str(out / "task-asd_metrics.parquet"),
        "--predictions",
        str(out / "task-asd_predictions.parquet"),
    ]
    env = {**os.environ, "COUNT_DIR": str(counts), "KILL_AT": str(kill_at), "KILL_SIG": sig}
    if hold is not None:
        env["HOLD_DIR"] = str(hold)
    if start:
        command = [sys.executable, "-c", SCRIPT, *argv]
        return subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        n: (out / n).read_bytes()
        for n in ("task-asd_metrics.parquet", "task-asd_predictions.parquet")
    }


def _sidecar(out: Path, name: str) -> dict:
    """A sidecar without what differs between any two runs (time, process, command line), its
    sibling table (``Products``) named by file name: the two runs write to other folders."""
    side = json.loads((out / name).read_text())
    side.pop("Provenance", None)
    side["Products"] = [Path(p).name for p in side["Products"]]
    side["ProductsSha256"] = {Path(p).name: h for p, h in side["ProductsSha256"].items()}
    return side


def _copied(run: dict, tmp_path: Path) -> tuple[Path, Path]:
    """A shared run's output folder and fit counts, copied for a test to change them."""
    out, counts = tmp_path / "out", tmp_path / "count"
    shutil.copytree(run["out"], out)
    shutil.copytree(run["counts"], counts)
    return out, counts


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, store) -> dict:
    """One uninterrupted evaluation (its outputs, state and fit counts), run once for the
    module: the reference of the killed runs and the first run of the tests that rerun it."""
    tmp = tmp_path_factory.mktemp("whole")
    out, counts = tmp / "out", tmp / "count"
    proc = _evaluate(store, out, counts)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "counts": counts, "stderr": proc.stderr}


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_killed_evaluation_resumes_from_its_finished_fits(
    tmp_path: Path, store, whole, sig
) -> None:
    assert len(list(whole["counts"].iterdir())) == N_COUNTED
    n_jobs = 2 * N_COUNTED

    k = 5  # fits of "counted" finished before the kill, and saved (logreg's run after them)
    out, counts = tmp_path / "killed", tmp_path / "count-killed"
    killed = _evaluate(store, out, counts, kill_at=k + 1, sig=sig)
    assert killed.returncode == (143 if sig == "SIGTERM" else -signal.SIGKILL), killed.stderr
    assert not (out / "task-asd_metrics.parquet").exists()
    saved = len(list((out / STATE).glob("fit-*.npz")))

    # The same command again: the k saved fits are reused, only the N - k others run.
    (counts / str(k + 1)).unlink(missing_ok=True)
    before = len(list(counts.iterdir()))
    resumed = _evaluate(store, out, counts)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(list(counts.iterdir())) - before == N_COUNTED - k
    assert _outputs(out) == _outputs(whole["out"])
    assert saved == k
    assert f"0 of {n_jobs} fit(s) reused" in whole["stderr"]
    assert f"{k} of {n_jobs} fit(s) reused" in resumed.stderr
    assert f"{n_jobs - k} to run" in resumed.stderr
    for name in ("task-asd_metrics.json", "task-asd_predictions.json"):
        assert _sidecar(out, name) == _sidecar(whole["out"], name)


def test_a_retry_after_the_outputs_were_written_fits_nothing(tmp_path: Path, store, whole) -> None:
    """Snakemake deletes a failed job's outputs, not the state: the retry writes them again from
    it, the same bytes, without a fit (logreg's fits came from the worker pool)."""
    out, counts = _copied(whole, tmp_path)
    first = _outputs(out)
    for path in out.glob("task-asd_*.*"):
        path.unlink()
    again = _evaluate(store, out, counts)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(counts.iterdir())) == N_COUNTED  # none more
    assert _outputs(out) == first
    assert f"{2 * N_COUNTED} of {2 * N_COUNTED} fit(s) reused" in again.stderr


def test_the_same_files_named_by_another_path_keep_the_saved_fits(tmp_path: Path, store) -> None:
    """The store named relative to the folder the command runs in, then absolute (a job script
    run from elsewhere): the same files, so the same state. The state keyed its inputs by the
    path as typed, and discarded every fit ("inputs: ... added, ... no longer read")."""
    out, counts = tmp_path / "out", tmp_path / "count"
    assert _evaluate(store, out, counts, relative=True).returncode == 0
    again = _evaluate(store, out, counts)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "belong to another evaluation" not in again.stderr
    assert f"{2 * N_COUNTED} of {2 * N_COUNTED} fit(s) reused" in again.stderr


def test_a_state_of_other_settings_is_ignored_naming_what_differs(
    tmp_path: Path, store, whole
) -> None:
    out, counts = _copied(whole, tmp_path)
    other = _evaluate(store, out, counts, {"seeds": [0]})
    assert other.returncode == 0, other.stderr[-3000:]
    assert "belong to another evaluation" in other.stderr
    assert "settings.seeds [0, 1] -> [0]" in other.stderr
    assert "0 of 12 fit(s) reused" in other.stderr
    state = out / STATE
    assert json.loads((state / "evaluate_state.json").read_text())["settings"]["seeds"] == [0]
    assert len(list(state.glob("fit-*.npz"))) == 12  # the other run's fits removed


def test_an_unreadable_fit_is_fitted_again_and_a_foreign_file_refuses_the_folder(
    tmp_path: Path, store, whole
) -> None:
    out, counts = _copied(whole, tmp_path)
    first = _outputs(out)
    state = out / STATE
    damaged = sorted(state.glob("fit-*.npz"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    again = _evaluate(store, out, counts)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"saved fit {damaged} cannot be read" in again.stderr
    assert f"{2 * N_COUNTED - 1} of {2 * N_COUNTED} fit(s) reused" in again.stderr
    assert _outputs(out) == first

    # A folder of the user's at the state's path is refused before any fit.
    mine, counted = tmp_path / "mine", tmp_path / "count-mine"
    (mine / STATE).mkdir(parents=True)
    (mine / STATE / "notes.txt").write_text("mine")
    refused = _evaluate(store, mine, counted)
    assert refused.returncode != 0
    assert "holds files LCM did not write (notes.txt)" in refused.stderr
    assert (mine / STATE / "notes.txt").read_text() == "mine"
    assert list(counted.iterdir()) == []


def test_the_lcm_fits_are_saved_and_reused_with_their_pseudo_label_records(tmp_path: Path) -> None:
    """The fits worth keeping are LCM's (minutes each): their pseudo-label records must be plain
    JSON, or a fit is not saved (warned). Reused, they give the same tables and records."""
    from helpers.evaluate import TASK, make_cohort
    from test_evaluate_lcm import _pretrain

    from lcm.evaluate.protocol import EvaluationSettings, evaluate_task
    from lcm.evaluate.resume import open_state

    checkpoint = _pretrain(tmp_path / "ckpt")
    settings = EvaluationSettings.from_dict(
        {"n_folds": 2, "label_fractions": [0.5], "models": ["lcm"], "finetune": {"epochs": 1}}
    )
    cohort, fields = make_cohort(n_subjects=16, n_unlabeled=2), {"run": 1}

    def run(state):
        return evaluate_task(cohort, TASK, settings, 1, checkpoint, state=state)

    with open_state(tmp_path / "state", fields) as first_state:
        first = run(first_state)
    assert first_state.n_saved == 2 and len(first.pseudo_labels) == 2
    with open_state(tmp_path / "state", fields) as again_state:
        assert len(again_state.load([])) == 0
        again = run(again_state)
    assert again_state.n_saved == 0  # both reused
    pd.testing.assert_frame_equal(again.metrics, first.metrics)
    pd.testing.assert_frame_equal(again.predictions, first.predictions)
    assert json.dumps(again.pseudo_labels, sort_keys=True) == json.dumps(
        first.pseudo_labels, sort_keys=True
    )


def _sleepy_fit(name, context, fc_train, y, variables, groups, fc_test):
    time.sleep(4.0 if len(fc_train) == 6 else 0.0)
    return np.zeros((1, len(fc_test))), 0.0, None


def test_each_lcm_fit_comes_back_from_the_pool_as_it_ends() -> None:
    """A pool task's fits come back (and are saved) together: a fold's LCM fits, minutes each,
    were one task, and a kill lost those finished before its last."""
    from lcm.evaluate.parallel import FitJob, run_fits
    from lcm.evaluate.registry import ModelContext

    rows = np.arange(8)
    context = ModelContext(label="autism", levels=("control", "autism"), finetune={}, seed=0)
    # One fold, two label fractions: a quick fit and a slow one (4 s).
    jobs = [
        FitJob("lcm", context, rows[:5], rows[6:], np.zeros(5), None, rows[:5]),
        FitJob("lcm", context, rows[:6], rows[6:], np.zeros(6), None, rows[:6]),
    ]
    ended: dict[int, float] = {}
    run_fits(
        jobs,
        np.zeros((8, 5, 5)),
        _sleepy_fit,
        workers=2,
        on_result=lambda i, result: ended.setdefault(i, time.monotonic()),
    )
    assert ended[1] - ended[0] > 2.0  # the quick fit was handed back (saved) 4 s earlier


def test_the_ridge_maps_count_only_for_a_task_that_reads_them(tmp_path: Path) -> None:
    """``lcm bei-maps`` rewrites bei_linear.npz on its own: a task without bei-linear keeps its
    saved fits; one with it starts over (its fits read the maps)."""
    from helpers.evaluate import TASK, make_cohort

    from lcm.commands.evaluate import _state_fields
    from lcm.evaluate.protocol import EvaluationSettings
    from lcm.evaluate.resume import what_differs

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("model.safetensors", "model.json", "bei_linear.npz"):
        (ckpt / name).write_text(name)
    cohort = make_cohort(n_subjects=8, n_unlabeled=0)

    def fields(models: list[str]) -> dict:
        settings = EvaluationSettings.from_dict({"models": models})
        return _state_fields(cohort, TASK, settings, 1, None, None, [], ckpt, None)

    before = {m: fields([m, "logreg"]) for m in ("lcm", "bei-linear")}
    (ckpt / "bei_linear.npz").write_text("maps fitted again")
    assert fields(["lcm", "logreg"]) == before["lcm"]
    after = fields(["bei-linear", "logreg"])
    assert what_differs(before["bei-linear"], after) == (
        f"differs in inputs: {ckpt / 'bei_linear.npz'} changed"
    )


def test_a_refused_state_folder_is_named_as_the_state_of_out_with_the_fix(tmp_path: Path) -> None:
    """The user named --out, not the state folder: the refusal says which folder it is, that
    lcm evaluate made it from --out, and the fix (lcm evaluate has no --out-dir)."""
    from lcm.evaluate.resume import open_state, state_folder
    from lcm.exceptions import OutputOwnershipError

    folder = state_folder(tmp_path / "task-asd_metrics.parquet")
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputOwnershipError) as refused:
        open_state(folder, {"task": "asd"})
    message = f"{refused.value} {refused.value.hint}"
    assert "--out-dir" not in message
    assert "where lcm evaluate keeps its finished fits" in message
    assert "another --out" in refused.value.hint and "notes.txt" in str(refused.value)
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_fit_file_of_another_fit_renamed_is_named_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fit file copied in under another fit's name is refitted, and the warning says it holds
    another fit (its digest is intact: it said "differs from its recorded digest")."""
    import logging

    from lcm.evaluate.resume import _digest, _read_fit

    members = {
        "key": np.array("a" * 64),
        "predictions": np.zeros(3),
        "fit_seconds": np.array(1.0),
        "record": np.array("null"),
    }
    members["digest"] = np.array(_digest(members))
    path = tmp_path / f"fit-{'b' * 64}.npz"
    np.savez(path, **members)
    with caplog.at_level(logging.WARNING, logger="lcm"):
        assert _read_fit(path, "b" * 64) is None
    assert "holds the fit of another job" in caplog.text
    assert "digest" not in caplog.text


@pytest.fixture(scope="module")
def killed_once(tmp_path_factory: pytest.TempPathFactory, store) -> dict:
    """A first evaluation's state: killed (SIGKILL) after 3 fits of "counted" were saved (run
    once for the module; :func:`_killed_state` copies it)."""
    tmp = tmp_path_factory.mktemp("killed")
    out, counts = tmp / "out", tmp / "count"
    killed = _evaluate(store, out, counts, kill_at=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (counts / "4").unlink(missing_ok=True)
    assert len(list((out / STATE).glob("fit-*.npz"))) == 3
    return {"out": out, "counts": counts}


def _killed_state(tmp_path: Path, killed_once: dict) -> tuple[Path, Path]:
    """A copy of the killed evaluation's state and fit counts, for a test to resume."""
    return _copied(killed_once, tmp_path)


def _contents(folder: Path) -> dict[str, bytes]:
    """What a folder holds, but its lock file (whose holder line a test's lock rewrites)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != LOCK_NAME}


def test_a_second_evaluation_is_refused_while_the_first_holds_its_state(
    tmp_path: Path, store, killed_once
) -> None:
    """A rerun by hand while the SLURM job still runs (or a second snakemake): both wrote the
    same state folder, each removing the other's fits as "another evaluation" when their
    settings differed. The second is now refused before any fit, naming the folder, the
    first's pid and host and what to do, and writes nothing."""
    out, counts = _killed_state(tmp_path, killed_once)
    state = out / STATE
    before, counted = _contents(state), sorted(counts.iterdir())
    with exclusive_lock(state / LOCK_NAME, "lcm evaluate"):  # the first run, still fitting
        second = _evaluate(store, out, counts, {"seeds": [0]})
    assert second.returncode == 6, second.stderr[-3000:]
    assert (
        f"{state} is being written by another lcm evaluate "
        f"(pid {os.getpid()} on {socket.gethostname()} since" in second.stderr
    )
    assert "where lcm evaluate keeps its finished fits" in second.stderr
    assert "hint: Wait for that evaluation to end" in second.stderr
    assert _contents(state) == before  # neither its record nor a fit touched
    assert sorted(counts.iterdir()) == counted  # no fit ran
    assert not list(out.glob("task-asd_*.*"))  # neither table nor sidecar


def test_the_lock_of_a_dead_evaluation_does_not_block_the_rerun(
    tmp_path: Path, store, killed_once
) -> None:
    """A job killed with SIGKILL (OOM, a node lost) leaves its lock file, naming it: the kernel
    released the lock with the process, so the rerun takes it over and resumes."""
    out, counts = _killed_state(tmp_path, killed_once)
    lock = out / STATE / LOCK_NAME
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, time; from lcm.io.lock import exclusive_lock\n"
            f"with exclusive_lock({str(lock)!r}, 'lcm evaluate'):\n"
            "    print(os.getpid(), flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    dead = holder.stdout.readline().strip()
    holder.kill()
    holder.wait()
    assert f"pid {dead} on" in lock.read_text()  # stale: its holder is gone
    rerun = _evaluate(store, out, counts)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"3 of {2 * N_COUNTED} fit(s) reused" in rerun.stderr
    # The rerun held it (and recorded itself as its holder).
    assert lock.read_text().startswith("pid ") and f"pid {dead} on" not in lock.read_text()


def _job(n_train: int) -> object:
    from lcm.evaluate.parallel import FitJob
    from lcm.evaluate.registry import ModelContext

    rows = np.arange(8)
    context = ModelContext(label="autism", levels=("control", "autism"), finetune={}, seed=0)
    return FitJob("lcm", context, rows[:n_train], rows[6:], np.zeros(n_train), None, rows[:n_train])


RESULT = (np.array([0.25, 0.75]), 1.5, None)


def test_two_evaluations_started_at_once_on_a_new_state_keep_one_writer(tmp_path: Path) -> None:
    """Started at once, neither finds a state folder: the first to open it takes the folder and
    its lock; the other is refused at once, before any fit, having written nothing."""
    from lcm.evaluate.resume import open_state
    from lcm.exceptions import OutputBusyError

    folder, fields = tmp_path / "task-asd_metrics_evaluate_state", {"run": 1}
    with open_state(folder, fields) as first:
        opened = _contents(folder)
        with pytest.raises(OutputBusyError, match=f"{folder} is being written by another lcm"):
            open_state(folder, fields)
        assert _contents(folder) == opened
        first.save(_job(5), RESULT)
    # Released at the end of each run: the next one takes the folder and reuses the fit.
    with open_state(folder, fields) as again:
        assert list(again.load([_job(5), _job(6)])) == [0]


def test_a_run_refused_before_its_first_fit_leaves_no_state_folder(tmp_path: Path) -> None:
    """The folder is created (and locked) when opened; a run that saves no fit in a folder it
    created (a checkpoint of other ROIs, a bad task, refused after opening) removes it."""
    from lcm.evaluate.resume import open_state

    folder = tmp_path / "task-asd_metrics_evaluate_state"
    with pytest.raises(RuntimeError), open_state(folder, {"run": 1}):
        assert folder.is_dir()
        raise RuntimeError("refused before any fit")
    assert not folder.exists()
    with open_state(folder, {"run": 1}) as state:  # a folder with a fit is kept, as before
        state.save(_job(5), RESULT)
    with open_state(folder, {"run": 1}):
        pass
    assert len(list(folder.glob("fit-*.npz"))) == 1


def test_a_second_evaluation_started_on_a_new_state_is_refused_before_fitting(
    tmp_path: Path, store
) -> None:
    """Two `lcm evaluate` of one --out started at once (a rerun by hand beside the SLURM job),
    no state yet: the second one computed every fit and was refused only when it saved its
    first, its compute wasted (or, the first still in its first fit, took the folder from it).
    Now the first holds the folder's lock from the start, and the second is refused before any
    fit, exit code 6, naming the first's pid; the first then finishes."""
    out = tmp_path / "out"
    hold = tmp_path / "hold"
    hold.mkdir()
    first = _evaluate(store, out, tmp_path / "count-1", hold=hold, start=True)
    try:
        for _ in range(1200):  # the first is inside its first fit (slow): it has saved nothing
            if (hold / "holding").exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert (hold / "holding").exists(), first.communicate()[1][-3000:]
        assert not list((out / STATE).glob("fit-*.npz"))
        second = _evaluate(store, out, tmp_path / "count-2")
    finally:
        (hold / "release").touch()
        _, first_err = first.communicate(timeout=300)
    assert second.returncode == 6, second.stderr[-3000:]
    assert f"{out / STATE} is being written by another lcm evaluate (pid {first.pid} on" in (
        second.stderr
    )
    assert list((tmp_path / "count-2").iterdir()) == []  # no fit ran
    assert first.returncode == 0, first_err[-3000:]
    assert len(list((tmp_path / "count-1").iterdir())) == N_COUNTED


def test_a_resumption_on_another_device_or_torch_is_warned_naming_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The saved LCM fits were computed on one GPU and torch; resumed with others, they are
    reused (minutes each), but the tables will differ in rounding from an uninterrupted run's:
    a warning names both, and the state records each."""
    from lcm.evaluate.resume import META_NAME, open_state

    folder, fields = tmp_path / "state", {"run": 1}
    h100 = {"device": "cuda (NVIDIA H100 80GB HBM3)", "torch": "2.5.1"}
    cpu = {"device": "cpu", "torch": "2.6.0"}
    with open_state(folder, fields, h100) as first:
        first.save(_job(5), RESULT)
    with caplog.at_level(logging.WARNING, logger="lcm"), open_state(folder, fields, h100) as same:
        assert list(same.load([_job(5)])) == [0]
    assert "computed with" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="lcm"), open_state(folder, fields, cpu) as other:
        assert list(other.load([_job(5)])) == [0]  # reused, not refused
    assert (
        "were computed with torch 2.5.1 on cuda (NVIDIA H100 80GB HBM3); this run computes "
        "with torch 2.6.0 on cpu" in caplog.text
    )
    assert "belong to another evaluation" not in caplog.text
    assert json.loads((folder / META_NAME).read_text())["computed_with"] == [h100, cpu]


def test_the_state_records_what_the_lcm_fits_compute_with_only_when_there_are_some() -> None:
    import torch

    from lcm.commands.evaluate import fit_compute
    from lcm.evaluate.protocol import EvaluationSettings

    assert fit_compute(EvaluationSettings.from_dict({"models": ["logreg", "svm"]})) is None
    compute = fit_compute(EvaluationSettings.from_dict({"models": ["logreg", "lcm"]}))
    assert compute is not None and compute["torch"] == torch.__version__
    expected = "cpu" if not torch.cuda.is_available() else "cuda ("
    assert compute["device"].startswith(expected)


def test_the_state_says_when_it_holds_every_fit_of_its_evaluation(tmp_path: Path) -> None:
    """The number of fits is recorded when they are loaded: a state holding them all is of a
    finished evaluation (what `lcm prune-states` removes), one of another run's fields is not
    counted with this run's, and a state that never listed its fits is not finished."""
    from lcm.evaluate.resume import META_NAME, metrics_path, open_state, progress, state_folder

    folder = state_folder(tmp_path / "task-asd_metrics.parquet")
    assert metrics_path(folder) == tmp_path / "task-asd_metrics.parquet"
    jobs = [_job(4), _job(5), _job(6)]
    with open_state(folder, {"run": 1}) as state:
        assert progress(folder) == (False, "0 fit(s) saved, how many its run has not recorded")
        state.load(jobs)
        state.save(jobs[0], RESULT)
    assert progress(folder) == (False, "1 of 3 fits saved")
    with open_state(folder, {"run": 1}) as state:
        assert list(state.load(jobs)) == [0]
        for job in jobs[1:]:
            state.save(job, RESULT)
    assert progress(folder) == (True, "3 of 3 fits saved")
    assert json.loads((folder / META_NAME).read_text())["n_fits"] == 3
    with open_state(folder, {"run": 2}):  # another evaluation: its fits removed, no count
        assert progress(folder) == (False, "0 fit(s) saved, how many its run has not recorded")
