"""Owned output folders and one writer at a time (lcm.io.ownership, lcm.io.lock)."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcm.exceptions import OutputBusyError, OutputOwnershipError
from lcm.io.lock import exclusive_lock, lock_holder
from lcm.io.ownership import MARKER_NAME, claim_out_dir, claim_results, remove_owned
from lcm.io.paths import RESULTS_ENTRIES, inside
from lcm.io.provenance import write_sidecar

pytestmark = pytest.mark.hostile


def test_claim_refuses_folder_with_foreign_files(tmp_path: Path) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("years of work")
    with pytest.raises(OutputOwnershipError, match=r"thesis holds files LCM did not write"):
        claim_out_dir(out, "lcm pretrain", outputs=["model.*", "history.tsv"])
    assert (out / "chapter1.tex").read_text() == "years of work"
    assert not (out / MARKER_NAME).exists()


def test_claim_takes_new_empty_or_own_folders(tmp_path: Path) -> None:
    claim_out_dir(tmp_path / "new", "lcm pretrain")
    assert (tmp_path / "new" / MARKER_NAME).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    claim_out_dir(empty, "lcm pretrain")
    # A folder holding only a killed atomic write's temporary file (lcm.io.atomic's name).
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".bei_linear.npz.lcmtmp-host-123-0a1b2c3d").write_bytes(b"half")
    claim_out_dir(killed, "lcm pretrain")
    # An earlier LCM's outputs (no marker) are recognised by their provenance sidecars.
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"x")
    write_sidecar(old / "model.safetensors", [])
    claim_out_dir(old, "lcm pretrain", outputs=["model.*"])
    # Once claimed, the folder stays LCM's.
    (old / "notes.txt").write_text("mine")
    claim_out_dir(old, "lcm pretrain", outputs=["model.*"])


def test_a_users_file_with_an_output_name_is_not_taken(tmp_path: Path) -> None:
    """A user's model.json in an unmarked folder was taken as an earlier LCM run's and
    replaced; without LCM's provenance record for it, it is the user's."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.json").write_text('{"my": "notes"}')
    with pytest.raises(OutputOwnershipError, match=r"did not write \(model.json\)"):
        claim_out_dir(mine, "lcm pretrain", outputs=["model.json", "model.prov.json"])
    assert (mine / "model.json").read_text() == '{"my": "notes"}'
    assert not (mine / MARKER_NAME).exists()


def test_a_users_folder_with_a_state_folders_name_is_not_taken(tmp_path: Path) -> None:
    """A user's train_state/ was taken by name and its train_state.json deleted."""
    out = tmp_path / "out"
    (out / "train_state").mkdir(parents=True)
    (out / "train_state" / "train_state.json").write_text("mine")
    with pytest.raises(OutputOwnershipError, match=r"did not write \(train_state\)"):
        claim_out_dir(out, "lcm pretrain", outputs=["train_state"])
    assert (out / "train_state" / "train_state.json").read_text() == "mine"
    # A state LCM wrote (its JSON carries LCM's content digest) is recognised.
    (out / "train_state" / "train_state.json").write_text('{"content_sha256": "ab"}')
    claim_out_dir(out, "lcm pretrain", outputs=["train_state"])


def test_results_with_a_users_files_at_lcm_paths_are_refused(tmp_path: Path) -> None:
    """Snakemake replaces what sits at an output path: a results_dir holding a user's own
    report/ (or a file named like one of LCM's folders) is refused before any job runs."""
    results = tmp_path / "results"
    (results / "report").mkdir(parents=True)
    (results / "report" / "index.html").write_text("my report")
    with pytest.raises(OutputOwnershipError, match=r"report/index.html\); nothing was written"):
        claim_results(results, "the LCM workflow", RESULTS_ENTRIES)
    assert (results / "report" / "index.html").read_text() == "my report"
    assert not (results / MARKER_NAME).exists()
    (results / "report" / "index.html").unlink()
    (results / "models").write_text("a file, not a folder")
    with pytest.raises(OutputOwnershipError, match=r"results/models\)"):
        claim_results(results, "the LCM workflow", RESULTS_ENTRIES)
    with pytest.raises(OutputOwnershipError, match="is not a folder"):
        claim_results(results / "models", "the LCM workflow", RESULTS_ENTRIES)


def test_results_new_shared_or_earlier_lcm_are_claimed(tmp_path: Path) -> None:
    # New; then a BIDS derivatives/ folder shared with other pipelines (their entries are never
    # looked at) whose LCM entries are empty folders (Snakemake makes them before jobs).
    claim_results(tmp_path / "new", "the LCM workflow", RESULTS_ENTRIES)
    assert (tmp_path / "new" / MARKER_NAME).is_file()
    shared = tmp_path / "derivatives"
    (shared / "fmriprep" / "sub-01").mkdir(parents=True)
    (shared / "fmriprep" / "sub-01" / "anat.nii.gz").write_bytes(b"x")
    (shared / "logs" / "pretrain").mkdir(parents=True)
    claim_results(shared, "the LCM workflow", ["logs", "models"])
    assert (shared / MARKER_NAME).is_file()
    # An earlier LCM's results (no marker): a file there with LCM's provenance vouches.
    old = tmp_path / "old"
    (old / "logs").mkdir(parents=True)
    (old / "logs" / "ingest.log").write_text("log")
    (old / "store").mkdir()
    (old / "store" / "part-0.parquet").write_bytes(b"x")
    write_sidecar(old / "store" / "part-0.parquet", [])
    claim_results(old, "the LCM workflow", RESULTS_ENTRIES)
    assert (old / MARKER_NAME).is_file()
    # Once claimed, it stays LCM's: the workflow replaces its own outputs there.
    (old / "report").mkdir()
    (old / "report" / "index.html").write_text("an LCM report")
    claim_results(old, "the LCM workflow", RESULTS_ENTRIES)


def test_remove_owned_keeps_user_files(tmp_path: Path) -> None:
    state = tmp_path / "train_state"
    state.mkdir()
    (state / "train_state.json").write_text("{}")
    (state / "precious.npy").write_bytes(b"data")
    remove_owned(state, ["train_state.json", "train_state.safetensors"])
    assert (state / "precious.npy").read_bytes() == b"data"
    assert not (state / "train_state.json").exists()
    (state / "precious.npy").unlink()
    (state / "train_state.json").write_text("{}")
    remove_owned(state, ["train_state.json"])
    assert not state.exists()


def test_second_writer_refused_while_first_holds_lock(tmp_path: Path) -> None:
    lock = tmp_path / "out" / ".lcm.lock"
    with exclusive_lock(lock, "lcm pretrain"):
        # Another process, as a concurrent run would be.
        code = (
            "import sys; from lcm.io.lock import exclusive_lock\n"
            "from lcm.exceptions import OutputBusyError\n"
            f"try:\n    exclusive_lock({str(lock)!r}, 'lcm pretrain').__enter__()\n"
            "except OutputBusyError as e:\n    print(e); sys.exit(6)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 6, proc.stderr
        assert "being written by another lcm pretrain (pid" in proc.stdout
        assert len(proc.stdout.strip().splitlines()) == 2  # message + hint
    # Released: the next writer gets it.
    with exclusive_lock(lock, "lcm pretrain"):
        pass


def test_lock_released_when_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / ".lcm.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lcm.io.lock import exclusive_lock\n"
            f"with exclusive_lock({str(lock)!r}, 'x'):\n"
            "    print('held', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(OutputBusyError), exclusive_lock(lock, "x"):
        pass
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    with exclusive_lock(lock, "x"):
        pass


def _shared_holder(lock: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the shared flock :func:`lock_holder` takes to test the lock."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\n"
        f"print('held', flush=True); time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_starting_while_the_lock_is_checked_is_not_refused(tmp_path: Path) -> None:
    """`lcm prune-states` tests a writer's lock (lock_holder: a brief shared flock); a writer
    starting at that instant must wait for the check, not fail with exit 6 for nothing."""
    lock = tmp_path / "out" / ".lcm.lock"
    with exclusive_lock(lock, "lcm pretrain"):  # an earlier run, gone: its line stays
        pass
    assert lock_holder(lock) is None
    checker = _shared_holder(lock, 0.15)
    try:
        with exclusive_lock(lock, "lcm evaluate") as held:
            assert held == lock
            assert checker.poll() is not None  # granted once the check was over
            assert lock.read_text().startswith(f"pid {os.getpid()} ")
    finally:
        checker.kill()
        checker.wait()


def test_a_writer_is_still_refused_at_once_by_a_writer(tmp_path: Path) -> None:
    """The wait is for a checker only: a writer holding the lock refuses the next at once."""
    lock = tmp_path / "out" / ".lcm.lock"
    with exclusive_lock(lock, "lcm pretrain"):
        code = (
            "import sys, time; from lcm.io.lock import exclusive_lock\n"
            "from lcm.exceptions import OutputBusyError\n"
            "start = time.monotonic()\n"
            f"try:\n    exclusive_lock({str(lock)!r}, 'lcm pretrain').__enter__()\n"
            "except OutputBusyError:\n    print(time.monotonic() - start); sys.exit(6)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 6, proc.stderr
        assert float(proc.stdout) < 0.1


def test_a_check_that_never_ends_refuses_the_writer_in_bounded_time(tmp_path: Path) -> None:
    """A shared lock held long (not LCM's checker, which holds it for microseconds) refuses
    the writer after a short bounded wait, saying what holds it (not a stale writer's line)."""
    lock = tmp_path / "out" / ".lcm.lock"
    with exclusive_lock(lock, "lcm pretrain"):
        pass
    checker = _shared_holder(lock, 30)
    try:
        start = time.monotonic()
        with pytest.raises(OutputBusyError, match="a process reading its lock"):
            with exclusive_lock(lock, "lcm evaluate"):
                pass
        assert time.monotonic() - start < 2
    finally:
        checker.kill()
        checker.wait()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_left_alone(
    tmp_path: Path, dangling: bool
) -> None:
    """A writer stamps its pid into .lcm.lock: through a link it overwrote the file linked to
    (or created it, for a dangling link). LCM never makes that link: refused, nothing written."""
    thesis = tmp_path / "thesis.tex"
    if not dangling:
        thesis.write_text("years of work")
    lock = tmp_path / "out" / ".lcm.lock"
    lock.parent.mkdir()
    lock.symlink_to(thesis)
    with pytest.raises(OutputOwnershipError, match=r"out/\.lcm\.lock is a link") as info:
        with exclusive_lock(lock, "lcm pretrain"):
            pass
    assert "nothing was written" in info.value.message and "Remove the link" in info.value.hint
    if dangling:
        assert not thesis.exists()
    else:
        assert thesis.read_text() == "years of work"
    assert lock_holder(lock) is None and lock.is_symlink()


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_atomic_write_never_replaces_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    """`--out /dev/null` once turned the machine's /dev/null into a regular file (a rename swaps
    any directory entry): such a destination is refused, and stays what it was."""
    import os
    import stat

    from lcm.io.atomic import write_text

    if kind == "folder":
        target = tmp_path / "results"
        target.mkdir()
    elif kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    else:
        target = Path(os.devnull)
    before = target.stat().st_mode
    with pytest.raises(OutputOwnershipError, match="is not a regular file"):
        write_text(target, "data")
    assert target.stat().st_mode == before
    if kind == "device":
        assert stat.S_ISCHR(target.stat().st_mode)
    assert not [p for p in target.parent.iterdir() if ".lcmtmp-" in p.name]


def test_an_unwritable_destination_is_one_line(tmp_path: Path) -> None:
    """A read-only or impossible destination gave a PermissionError traceback (after training,
    for the state folder); now one line before anything runs. A file stands in the path here:
    as root, permission bits would not stop the write."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputOwnershipError, match=r"cannot write in .*a-file/out"):
        claim_out_dir(blocker / "out", "lcm pretrain")
    with pytest.raises(OutputOwnershipError, match=r"lcm store: cannot write in .*a-file"):
        with exclusive_lock(blocker / ".lcm.lock", "lcm store"):
            pass


def test_inside_resolves_both_paths(tmp_path: Path) -> None:
    """The one test of a folder inside another (the config's and the fMRIPrep stage's work
    folder check): the folder itself, a descendant through ``..`` and a symlink count."""
    bids = tmp_path / "bids"
    (bids / "code").mkdir(parents=True)
    (tmp_path / "link").symlink_to(bids)
    assert inside(bids, bids) and inside(bids / "code" / "work", bids)
    assert inside(tmp_path / "link" / "work", bids)
    assert inside(tmp_path / "x" / ".." / "bids" / "w", bids)
    assert not inside(tmp_path / "bids2", bids) and not inside(tmp_path, bids)


def test_folder_claimed_by_another_verb_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "model"
    claim_out_dir(out, "lcm pretrain")
    claim_out_dir(out, "lcm pretrain")  # a rerun of the same verb: its own folder
    with pytest.raises(OutputOwnershipError, match="holds the outputs of lcm pretrain"):
        claim_out_dir(out, "lcm finetune")
    assert (out / MARKER_NAME).read_text().startswith("Written by lcm pretrain:")


def test_an_output_recorded_under_an_earlier_sidecar_name_may_be_replaced(tmp_path: Path) -> None:
    """LCM versions that cut names at their first dot recorded emb.attn.parquet in emb.json:
    a rerun over such an output is LCM's own; a file no record names is not."""
    from lcm.io.ownership import check_replaceable

    out = tmp_path / "emb.attn.parquet"
    out.write_bytes(b"PAR1")
    with pytest.raises(OutputOwnershipError, match="rerun it under Snakemake"):
        check_replaceable([out], "lcm embed")
    record = {"Output": out.name, "Provenance": {"params": {"verb": "embed"}}, "Sha256": "0" * 64}
    (tmp_path / "emb.json").write_text(json.dumps(record))
    check_replaceable([out], "lcm embed")


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP])
def test_a_file_system_without_locks_is_written_unlocked_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """Lustre mounted without flock answers ENOSYS/ENOLCK: the writer goes on, warned (it
    failed before any work with a traceback: every lcm run and store on such scratch space)."""

    def no_locks(fd: int, op: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    lock = tmp_path / "out" / ".lcm.lock"
    with caplog.at_level(logging.WARNING), exclusive_lock(lock, "lcm store") as held:
        assert held == lock
    assert "offers no file locks" in caplog.text and "lcm store" in caplog.text


def test_another_flock_error_is_not_taken_for_a_file_system_without_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad_fd(fd: int, op: int) -> None:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(fcntl, "flock", bad_fd)
    with pytest.raises(OSError, match="Bad file descriptor"), exclusive_lock(tmp_path / "l", "x"):
        pass


def _recorded_by(verb: str, out: Path) -> Path:
    """``out`` written and recorded as ``lcm <verb>`` records its outputs."""
    import argparse

    from lcm.io.provenance import set_invocation

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"PAR1 " + verb.encode())
    set_invocation([verb, "--out", str(out)], argparse.Namespace(verb=verb, out=str(out)))
    try:
        write_sidecar(out, [])
    finally:
        set_invocation([], argparse.Namespace())
    return out


def test_an_output_another_verb_wrote_is_not_replaced(tmp_path: Path) -> None:
    """Any LCM record is not enough: only the verb that wrote a file replaces it (a rerun),
    and a record that names no verb is not taken as the verb's."""
    from lcm.io.ownership import check_replaceable

    theirs = _recorded_by("pretrain", tmp_path / "a" / "model.safetensors")
    with pytest.raises(OutputOwnershipError, match=r"written by lcm pretrain.*not by lcm embed"):
        check_replaceable([theirs], "lcm embed")
    own = _recorded_by("embed", tmp_path / "b" / "emb.parquet")
    check_replaceable([own], "lcm embed")  # a rerun replaces its own output
    unnamed = tmp_path / "c" / "emb.parquet"
    unnamed.parent.mkdir()
    unnamed.write_bytes(b"PAR1")
    record = {"Output": unnamed.name, "Provenance": {}, "Sha256": "0" * 64}
    (tmp_path / "c" / "emb.json").write_text(json.dumps(record))
    with pytest.raises(OutputOwnershipError, match="does not name"):
        check_replaceable([unnamed], "lcm embed")


def test_no_output_inside_a_store_or_another_verbs_folder(tmp_path: Path) -> None:
    """A path, new or existing, inside a feature store or a folder another verb claimed is
    refused; the workflow's results folder and the verb's own folder are not."""
    from lcm.io.ownership import STORE_STATE_DIR, check_replaceable

    store = tmp_path / "store"
    (store / STORE_STATE_DIR).mkdir(parents=True)
    part = store / "variables" / "dataset=x"
    part.mkdir(parents=True)
    for out in (part / "new.parquet", store / "metrics.parquet"):
        with pytest.raises(OutputOwnershipError, match="inside the feature store"):
            check_replaceable([out], "lcm evaluate")
    ckpt = claim_out_dir(tmp_path / "ckpt", "lcm pretrain")
    with pytest.raises(OutputOwnershipError, match="holds the outputs of lcm pretrain"):
        check_replaceable([ckpt / "state" / "emb.parquet"], "lcm embed")
    check_replaceable([ckpt / "maps.npz"], "lcm bei-maps", owner="lcm pretrain")
    results = claim_results(tmp_path / "results", "the LCM workflow", RESULTS_ENTRIES)
    check_replaceable([results / "metrics" / "m.parquet"], "lcm evaluate")
    # An output folder too (lcm finetune --out-dir <store partition>/ft was made, and the
    # store's readers then met its history.tsv); a pretraining's own folder is its own.
    for out in (part / "ft", store / "pt"):
        with pytest.raises(OutputOwnershipError, match="inside the feature store"):
            claim_out_dir(out, "lcm finetune")
        assert not out.exists()
    with pytest.raises(OutputOwnershipError, match="holds the outputs of lcm pretrain"):
        claim_out_dir(ckpt / "ft", "lcm finetune")
    claim_out_dir(tmp_path / "ckpt", "lcm pretrain")
    claim_out_dir(results / "models" / "ft", "lcm finetune")


def test_an_empty_marker_claims_nothing(tmp_path: Path) -> None:
    """A marker cut short (0 bytes: a full disk, a killed writer) names no verb: the folder is
    not LCM's on its word, so a user's file there is not taken, nor the folder removed."""
    from lcm.io.ownership import claim_scratch, remove_scratch

    out = tmp_path / "thesis"
    out.mkdir()
    (out / MARKER_NAME).write_text("")
    (out / "chapter1.tex").write_text("years of work")
    with pytest.raises(OutputOwnershipError, match=r"thesis holds files LCM did not write"):
        claim_out_dir(out, "lcm pretrain", outputs=["model.*"])
    assert claim_scratch(out, "lcm fmriprep") is False  # used, but not LCM's to remove
    assert remove_scratch(out) is not None and (out / "chapter1.tex").is_file()
    (out / "chapter1.tex").unlink()  # only the cut marker left: claimed again, named
    claim_out_dir(out, "lcm pretrain")
    assert (out / MARKER_NAME).read_text().startswith("Written by lcm pretrain: ")


def test_a_marker_write_cut_short_leaves_no_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker is written whole or not at all (lcm.io.atomic)."""

    def full_disk(self: Path, text: str, *args: object, **kwargs: object) -> int:
        os.truncate(self, 0) if self.exists() else self.touch()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OutputOwnershipError, match="No space left"):
        claim_out_dir(tmp_path / "new", "lcm pretrain")
    monkeypatch.undo()
    assert not (tmp_path / "new" / MARKER_NAME).exists()
    assert [p.name for p in (tmp_path / "new").iterdir()] == []
