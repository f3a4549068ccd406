"""A full disk inside one of a verb's atomic writes, and the checks that its set of files was
left as the last run's (:func:`lcm.io.output_set.written_together`).

Each verb's test file gives its set and its runs (a :class:`VerbSet`); the checks here are
shared: a full disk at each file of the set after the first, a SIGTERM at a record, a first run
cut short.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

import lcm.io.atomic as atomic
import lcm.io.provenance as provenance
from lcm.exceptions import OutputSpaceError
from lcm.io.lock import LOCK_NAME
from lcm.io.output_set import PREVIOUS_SUFFIX
from lcm.io.provenance import provenance_path


def output_files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` but the lock (which names the run holding it, and when)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK_NAME}


def _patch_everywhere(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, replacement: Callable
) -> None:
    """Set ``name`` to ``replacement`` in its ``owner`` module and in every loaded ``lcm``
    module that bound the original by name (``from lcm.io.atomic import atomic_path``): patched
    in its owner alone, those went on calling the original (``lcm embed``'s tables).

    A module first imported within the test binds ``replacement`` from its owner and keeps it
    after the test: ``replacement`` must call the original once the test is over
    (:func:`_while_patched`).
    """
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, replacement)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("lcm.") and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, replacement)


def _while_patched(monkeypatch: pytest.MonkeyPatch) -> Callable[[], bool]:
    """True until ``monkeypatch`` undoes its changes (the test's end)."""
    flag = {"on": False}
    monkeypatch.setitem(flag, "on", True)
    return lambda: flag["on"]


def full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Fail the atomic write of the file called ``name`` as a full disk fails it: within the
    write (its temporary removed, the error naming the output), the outputs before it written.

    Every loaded ``lcm`` module holding ``atomic_path`` by name is patched too.
    """
    real_atomic_path = atomic.atomic_path
    active = _while_patched(monkeypatch)

    @contextlib.contextmanager
    def full_at(path, *args, **kwargs):
        with real_atomic_path(path, *args, **kwargs) as tmp:
            if active() and Path(path).name == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            yield tmp

    _patch_everywhere(monkeypatch, atomic, "atomic_path", full_at)


def assert_last_runs_set(
    out: Path, before: dict[str, bytes], err: str, files: Sequence[str], failing: str
) -> None:
    """``out`` holds the last run's files byte for byte, nothing kept aside, and the log says
    which of this run's files were removed and that the last run's were put back."""
    assert f"could not write {out / failing}" in err and "No space left on device" in err
    after = output_files(out)
    assert after == before, sorted(k for k in after if after.get(k) != before.get(k))
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    replaced = files[: list(files).index(failing)]
    assert f"this run's {', '.join(replaced)} removed" in err, err
    assert f"the earlier run's {', '.join(files)} put back as they were" in err, err


@contextlib.contextmanager
def sigterm_at_record(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[None]:
    """Within the block, send this process a SIGTERM (as SLURM's time limit does) as the
    provenance record called ``name`` is about to be written, the records before it written.

    Where the verb installs no handler, the default action ended the test run: a handler of the
    block's stands in for it, raising ``AssertionError`` (not the verb's ``SystemExit``).
    Every loaded ``lcm`` module holding ``write_sidecar`` by name is patched.
    """
    real_write_sidecar = provenance.write_sidecar
    active = _while_patched(monkeypatch)

    def stopped_at(output, *args, **kwargs):
        if active() and provenance_path(output).name == name:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_write_sidecar(output, *args, **kwargs)

    def unhandled(signum, frame):
        raise AssertionError(f"SIGTERM at {name}: the verb installed no handler")

    _patch_everywhere(monkeypatch, provenance, "write_sidecar", stopped_at)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def with_records(files: Sequence[str]) -> tuple[str, ...]:
    """A verb's set in the order it is written: its ``files``, then their provenance records."""
    return (*files, *(provenance_path(Path(name)).name for name in files))


@dataclass(frozen=True)
class VerbSet:
    """One verb's set of files and two runs of it into a folder.

    Attributes
    ----------
    verb : str
        The verb's name, as its log says it (``lcm <verb>: ...``).
    files : tuple of str
        The set, in the order it is written (:func:`with_records`).
    first : callable
        ``first(out)`` runs the verb into ``out`` and returns its exit code.
    second : callable
        ``second(out)`` runs it again with other inputs or settings, so that each of its files
        differs from the first run's byte for byte.
    """

    verb: str
    files: tuple[str, ...]
    first: Callable[[Path], int]
    second: Callable[[Path], int]


def check_full_disk_at(
    verb: VerbSet,
    out: Path,
    failing: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A full disk at ``failing`` in the second run exits with the output-space code and leaves
    ``out`` as the first run left it (:func:`assert_last_runs_set`)."""
    assert verb.first(out) == 0
    before = output_files(out)
    assert set(verb.files) <= set(before)

    full_disk_at(monkeypatch, failing)
    capfd.readouterr()
    code = verb.second(out)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert_last_runs_set(out, before, err, verb.files, failing)


def check_sigterm_at_record(
    verb: VerbSet,
    out: Path,
    record: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A SIGTERM at ``record`` in the second run exits 143 and leaves ``out`` as the first run
    left it, the log saying the verb was stopped and the last run's set put back."""
    assert verb.first(out) == 0
    before = output_files(out)
    capfd.readouterr()
    with sigterm_at_record(monkeypatch, record), pytest.raises(SystemExit) as stopped:
        verb.second(out)
    err = capfd.readouterr().err
    assert stopped.value.code == 128 + signal.SIGTERM, err
    assert output_files(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert f"lcm {verb.verb}: stopped by SIGTERM while writing its outputs" in err, err
    assert f"the earlier run's {', '.join(verb.files)} put back as they were" in err, err


def check_first_run_cut_short(
    verb: VerbSet,
    out: Path,
    module: ModuleType,
    failing: str,
    removed: Sequence[str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A full disk at the TSV ``failing`` (``module``'s ``write_tsv``) in a first run leaves no
    file of the set, the log naming this run's ``removed`` files and no earlier set."""
    real_write_tsv = module.write_tsv

    def full_at(path, *args, **kwargs) -> None:
        if Path(path).name == failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write_tsv(path, *args, **kwargs)

    monkeypatch.setattr(module, "write_tsv", full_at)
    capfd.readouterr()
    code = verb.first(out)
    err = capfd.readouterr().err
    assert code == OutputSpaceError.exit_code, err
    assert not set(verb.files) & {p.name for p in out.iterdir()}
    assert f"this run's {', '.join(removed)} removed" in err, err
    assert f"no {', '.join(verb.files)} (none before this run)" in err, err
