"""Advisory locks: one writer per output at a time.

Two ``lcm pretrain`` runs into one folder, or two ``lcm store`` runs of one dataset, would
interleave their files. Each writer holds an exclusive ``flock`` on a lock file for as long as
it writes; a second writer is refused at once with a message naming the holder. The kernel
releases the lock when its holder exits, even on ``kill -9``, so no stale lock needs cleaning.
:func:`lock_holder` tests a lock with a brief shared ``flock``: a writer finding only such
shared locks waits for them (half a second at most) instead of being refused.
A file system that offers no locks at all (Lustre mounted without ``flock``, some FUSE
mounts) answers ``flock`` with an error: the writer then goes on, warned that a second one
would not be refused, rather than failing before any work on a cluster's scratch space.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lcm.exceptions import OutputBusyError, OutputOwnershipError

LOCK_NAME = ".lcm.lock"

log = logging.getLogger(__name__)

# flock's answers on a file system without locks (not "held by another": that is EWOULDBLOCK).
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``lock_path`` while the block runs.

    Parameters
    ----------
    lock_path : path-like
        Lock file (created, with its parent folders, if missing; left in place afterwards).
    what : str
        What is being written, for the message a second writer gets (e.g. ``"lcm pretrain"``).

    Yields
    ------
    pathlib.Path
        The lock file.

    Raises
    ------
    OutputBusyError
        Another process holds the lock.
    OutputOwnershipError
        The folder cannot be written (read-only, no permission), or the lock file is a link.
    """
    path = Path(lock_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a link: the pid stamped below would overwrite (or create) its target.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:  # a read-only folder: one line, before any work (a traceback)
        if path.is_symlink():
            raise OutputOwnershipError(
                f"{what}: {path} is a link, not a lock file LCM made (it makes a plain file); "
                "nothing was written.",
                hint=f"Remove the link {path} (LCM writes its pid into its lock file, so it "
                "never writes through a link), or write to another folder.",
            ) from None
        raise OutputOwnershipError(
            f"{what}: cannot write in {path.parent} ({exc.strerror}); nothing was written.",
            hint="Use a folder this user can write to, or fix its permissions.",
        ) from None
    try:
        try:
            _take_exclusive(fd, path)
        except _Checked:
            raise OutputBusyError(
                f"{path.parent} is held by a process reading its lock (a shared lock held "
                f"over {_CHECK_WAIT:g} s, not an LCM writer's).",
                hint="Find it with `fuser -v` on the lock file and end it, or write to another "
                "folder.",
            ) from None
        except BlockingIOError:
            holder = _read_holder(fd)
            raise OutputBusyError(
                f"{path.parent} is being written by another {what} ({holder}).",
                hint="Wait for that run to finish, or write to another folder.",
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
            log.warning(
                "%s: the file system of %s offers no file locks (%s); going on unlocked, so a "
                "second writer into this folder would not be refused: run one at a time there",
                what,
                path.parent,
                exc.strerror,
            )
        # Who holds it, for the message a second writer gets (the lock itself is the flock).
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# How long a writer waits for shared locks (checkers, :func:`lock_holder`) to go.
_CHECK_WAIT = 0.5


class _Checked(Exception):
    """Only shared locks held the lock file for all of :data:`_CHECK_WAIT`."""


def _take_exclusive(fd: int, path: Path) -> None:
    """Take the exclusive flock on ``fd`` (open on ``path``), waiting only while checkers hold it.

    :func:`lock_holder` tests a lock with a brief shared flock, which refuses an exclusive one
    meanwhile: a writer starting at that instant would fail (exit 6) with no other writer. A
    refusal is told apart by a shared probe on a descriptor of its own: refused too, a writer
    holds the lock (raised at once); granted, only checkers do, and the writer retries for up
    to :data:`_CHECK_WAIT`.

    Raises
    ------
    BlockingIOError
        A writer (an exclusive lock) holds it.
    _Checked
        Shared locks held it for all of :data:`_CHECK_WAIT`.
    """
    deadline = time.monotonic() + _CHECK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        try:
            probe = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # (replaced meanwhile: not a checker's doing)
            raise BlockingIOError(errno.EWOULDBLOCK, "lock file not readable") from None
        try:  # (a dup of fd would share its lock: a descriptor of its own)
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(probe)  # raises BlockingIOError above when a writer holds it
        if time.monotonic() >= deadline:
            raise _Checked
        time.sleep(0.005)


def lock_holder(lock_path: str | os.PathLike[str]) -> str | None:
    """Who holds the lock on ``lock_path`` now, without taking it or writing anything.

    Parameters
    ----------
    lock_path : path-like
        A lock file :func:`exclusive_lock` uses.

    Returns
    -------
    str or None
        The holder's line (``pid 123 on node7 since ...``) while a live process holds the lock;
        None when none does, the file is missing, unreadable or a link, or the file system
        has no locks.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW)  # (a link: not a lock LCM made)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while an exclusive lock is held
    except BlockingIOError:
        return _read_holder(fd)
    except OSError:
        return None
    else:
        return None
    finally:
        os.close(fd)  # (releases the shared lock taken)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
