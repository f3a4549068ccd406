"""A write that failed for want of room (a full disk, a quota, a file-size limit), told plainly.

Every output LCM writes goes through a temporary renamed into place
(:mod:`lcm.io.atomic`), so a write that runs out of room leaves the earlier outputs as they
were. The error the writer raises says neither (``OSError: [Errno 28] Error writing bytes to
file``, safetensors' ``SafetensorError: ... os error 28``); :func:`disk_full_error` turns it,
wherever it is in the chain of causes, into an :class:`~lcm.exceptions.OutputSpaceError` that
names the output, the room left there and the fix.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from lcm.exceptions import OutputSpaceError

# No space left on device, disk quota exceeded, file too large (a ulimit or the file system's).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

# Rust writers (safetensors) report the OS error in the message only, as Rust's io::Error
# displays it ("No space left on device (os error 28)") or debug-prints it ("Os { code: 28, ...").
_OS_ERROR = re.compile(r"\bos error (\d+)|\bOs \{ code: (\d+)")


def no_room_errno(exc: BaseException) -> int | None:
    """The errno of ``exc`` or of an error it was raised from, when it is one of :data:`NO_ROOM`.

    Follows ``__cause__`` and ``__context__``; an error with no ``errno`` attribute whose message
    carries ``os error <n>`` (safetensors' ``SafetensorError``) counts too.

    Parameters
    ----------
    exc : BaseException
        The error a write raised.

    Returns
    -------
    int or None
        ``ENOSPC``, ``EDQUOT`` or ``EFBIG``; None when no error in the chain is one of them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "errno", None)
        if code in NO_ROOM:
            return code
        for match in _OS_ERROR.finditer(str(current)):
            if int(found := match.group(1) or match.group(2)) in NO_ROOM:
                return int(found)
        current = current.__cause__ or current.__context__
    return None


def _failed_file(exc: BaseException) -> str | None:
    """The file name an ``OSError`` in ``exc``'s chain names, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.filename:
            return os.fsdecode(current.filename)
        current = current.__cause__ or current.__context__
    return None


def _free_space(path: str) -> str:
    """The room left on the file system holding ``path`` (its nearest existing folder)."""
    place = Path(path).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return "unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if free < 1024 or unit == "TiB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TiB"  # pragma: no cover - the loop returns


def disk_full_error(
    exc: BaseException, outputs: Iterable[str], verb: str, option: str | None = None
) -> OutputSpaceError | None:
    """The error to report for ``exc`` when it is a write that ran out of room, else None.

    Parameters
    ----------
    exc : BaseException
        What the verb raised.
    outputs : iterable of str
        The verb's output files or folders, named when the error names no file.
    verb : str
        The command, e.g. ``"lcm pretrain"``.
    option : str, optional
        The option the output was given with (``--out-dir``), named in the fix.
    """
    code = no_room_errno(exc)
    if code is None:
        return None
    outputs = [str(o) for o in outputs if o]
    target = _failed_file(exc) or (outputs[0] if outputs else os.getcwd())
    reason = os.strerror(code)
    where = f" (output {', '.join(outputs)})" if outputs and target not in outputs else ""
    point = f"point results_dir (or {option}) " if option else "point results_dir "
    return OutputSpaceError(
        f"{verb}: could not write {target}{where}: {reason}; {_free_space(target)} free there. "
        "Outputs written earlier are intact (LCM writes each file to a temporary and renames "
        "it into place), and the partial file was removed.",
        hint=f"Free space, or {point}to a file system with room, then rerun.",
    )
