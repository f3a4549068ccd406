"""`lcm evaluate` stopped by SIGTERM or SIGKILL, or losing a worker (finding: killed evaluate).

SIGTERM exits through every clean-up: the temporary copy of the connectomes is removed and
no worker process survives. A folder a SIGKILLed run left is removed by the next run on this
host; a worker killed (the OOM killer) is one error naming the fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lcm.evaluate.parallel import FitJob, run_fits
from lcm.evaluate.registry import ModelContext
from lcm.exceptions import WorkerKilledError
from lcm.io.atomic import _host
from lcm.signals import SigtermExit

pytestmark = pytest.mark.hostile

MODELS = ("ridge", "logreg")  # built-in: the pool runs them

# A run of the pool whose fits take long: two workers, the connectomes copied to $TMPDIR.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_evaluate_kill import slow_fit, jobs
    from lcm.evaluate.parallel import run_fits
    from lcm.signals import SigtermExit
    with SigtermExit():
        run_fits(jobs(), np.zeros((8, 5, 5)), slow_fit, workers=2, on_done=print)
    """
)


def slow_fit(name, context, fc_train, y, variables, groups, fc_test):
    time.sleep(120)
    return np.zeros(len(fc_test)), 0.0


def _crash_fit(name, context, fc_train, y, variables, groups, fc_test):
    os._exit(9)  # as the OOM killer's SIGKILL leaves the pool: a worker gone mid-task


def jobs() -> list[FitJob]:
    rows = np.arange(8)
    return [
        FitJob(name, _context(seed), rows[:6], rows[6:], np.zeros(6), None, rows[:6])
        for name in MODELS
        for seed in (0, 1)
    ]


def _context(seed: int) -> ModelContext:
    return ModelContext(label="autism", levels=("control", "autism"), finetune={}, seed=seed)


def _descendants(pid: int) -> set[int]:
    """Live processes descending from ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _ours(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("lcm-evaluate-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_evaluation_leaves_no_folder_and_no_worker(tmp_path: Path, sig) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    script = SCRIPT.format(tests=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_descendants(proc.pid)) < 3 and time.monotonic() < deadline:  # server, workers
            time.sleep(0.2)
        time.sleep(1.0)  # the workers started their fits
        children = _descendants(proc.pid)
        assert len(children) >= 3 and len(_ours(tmp)) == 1
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
        deadline = time.monotonic() + 5
        while {p for p in children if Path(f"/proc/{p}").exists()} and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = {p for p in children if _running(p)}
        assert not alive, f"processes outlived the evaluation: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGTERM:
        assert _ours(tmp) == []
    else:  # SIGKILL runs no clean-up: the next run on this host removes its folder
        (left,) = _ours(tmp)
        assert f"lcm-evaluate-{_host()}-{proc.pid}-" in left.name
        _run_pool_here(tmp)
        assert _ours(tmp) == []


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _run_pool_here(tmp: Path) -> None:
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        run_fits(jobs(), np.zeros((8, 5, 5)), _fast_fit, workers=2)
    finally:
        tempfile.tempdir = before


def _fast_fit(name, context, fc_train, y, variables, groups, fc_test):
    return np.zeros(len(fc_test)), 0.0


def test_a_dead_processes_folder_is_swept_a_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    planted = tmp_path / f"lcm-evaluate-{_host()}-{pid}-ab_c9"
    alive = tmp_path / f"lcm-evaluate-{_host()}-{os.getppid()}-xyz"
    other_host = tmp_path / f"lcm-evaluate-elsewhere-{pid}-xyz"
    for folder in (planted, alive, other_host):
        folder.mkdir()
        (folder / "fc.npy").write_bytes(b"x")
    _run_pool_here(tmp_path)
    assert sorted(p.name for p in _ours(tmp_path)) == sorted([alive.name, other_host.name])


def test_a_killed_worker_names_memory_and_the_fix(monkeypatch) -> None:
    with pytest.raises(WorkerKilledError, match=r"raise the rule's mem_mb or lower --threads"):
        run_fits(jobs(), np.zeros((8, 5, 5)), _crash_fit, workers=2)
    assert WorkerKilledError.exit_code != 1


def test_a_sigterm_inside_deferred_waits_for_the_block_and_its_bookkeeping() -> None:
    """Training saves its state and then records the step it names: a SIGTERM between the two
    said "no training state was saved" beside a state on disk. Deferred, it waits for both."""
    said: list[int] = []

    class Stop(SigtermExit):
        step = 0

        def say(self) -> None:
            said.append(self.step)

    with pytest.raises(SystemExit) as stopped, Stop() as stop:
        with stop.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run: only flagged
            assert said == []
            stop.step = 2  # the bookkeeping the message reads
        raise AssertionError("SIGTERM was not raised at the block's end")
    assert stopped.value.code == 143 and said == [2]


# A cluster's per-job TMPDIR can be long; the fork server's socket lives below it.
LONG_TMPDIR_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_evaluate_kill import _fast_fit, jobs
    from lcm.evaluate.parallel import run_fits
    results = run_fits(jobs(), np.zeros((8, 5, 5)), _fast_fit, workers=2)
    print(len(results))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="AF_UNIX path limit of Linux")
def test_the_pool_runs_under_a_tmpdir_too_long_for_a_socket(tmp_path: Path) -> None:
    tmp = tmp_path / ("slurm-job-" + "x" * 40) / ("localscratch-" + "y" * 40)
    tmp.mkdir(parents=True)
    assert len(str(tmp)) + len("/pymp-xxxxxxxx/listener-xxxxxxxx") > 107
    script = LONG_TMPDIR_SCRIPT.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == str(len(jobs()))
    assert _ours(tmp) == []  # the connectomes' copy was made in TMPDIR and removed
