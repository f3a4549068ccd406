"""A full disk inside one of a verb's atomic writes, and the checks that its set of files was
left as the last run's (:func:`lcm.io.output_set.written_together`)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

import lcm.io.atomic as atomic
from lcm.io.lock import LOCK_NAME
from lcm.io.output_set import PREVIOUS_SUFFIX


def output_files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` but the lock (which names the run holding it, and when)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK_NAME}


def full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Fail the atomic write of the file called ``name`` as a full disk fails it: within the
    write (its temporary removed, the error naming the output), the outputs before it written."""
    real_atomic_path = atomic.atomic_path

    @contextlib.contextmanager
    def full_at(path, *args, **kwargs):
        with real_atomic_path(path, *args, **kwargs) as tmp:
            if Path(path).name == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            yield tmp

    monkeypatch.setattr(atomic, "atomic_path", full_at)


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
