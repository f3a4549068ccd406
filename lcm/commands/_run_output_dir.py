"""``lcm run``'s OUTPUT_DIR: one call at a time, and only a folder of its own.

OUTPUT_DIR is held by one ``lcm run`` while it writes there, refused while Snakemake's own lock
holds it, and refused where LCM's outputs would mix with the user's data: inside BIDS_DIR (but
its ``derivatives/``), in or around fMRIPrep's derivatives, or over files lcm run did not write.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lcm.catalogue import RUN_MARK
from lcm.exceptions import ConfigError, OutputBusyError
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.io.ownership import MARKER_NAME
from lcm.schema_errors import excerpt

log = logging.getLogger(__name__)


# Held by each `lcm run` on its OUTPUT_DIR while it writes there (lcm.io.lock: the kernel
# releases it when the process ends, even on kill -9).
RUN_LOCK = LOCK_NAME


ONE_AT_A_TIME = (
    "Snakemake runs one workflow in a folder at a time: run the calls one after another; or, "
    "instead of one call per participant (a SLURM array of lcm run into one OUTPUT_DIR), run "
    "`participant` once with every label (--participant-label 01 02 ...): with --profile "
    "slurm that one call submits each participant's jobs to SLURM, side by side."
)


@contextlib.contextmanager
def output_dir_held(out: Path) -> Iterator[None]:
    """Hold OUTPUT_DIR for one ``lcm run`` at a time, or refuse it at once.

    Two calls into one OUTPUT_DIR (a SLURM array of ``--participant-label`` calls): the second
    replaced ``config.yaml`` of the first, then Snakemake refused it with a ``LockException``
    that advised ``--unlock``, which would have let both write the same manifest and store.
    A folder this call created and left holding only the lock (and the results marker) is
    removed.

    Parameters
    ----------
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    """
    created = not out.exists()
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(exclusive_lock(out / RUN_LOCK, "`lcm run`"))
    except OutputBusyError:
        try:
            holder = (out / RUN_LOCK).read_text(errors="replace").strip() or "holder unknown"
        except OSError:
            holder = "holder unknown"
        raise OutputBusyError(
            f"OUTPUT_DIR {out} is in use by another `lcm run` ({holder}); nothing was written.",
            hint=ONE_AT_A_TIME,
        ) from None
    try:
        with stack:
            yield
    finally:
        # (The results marker too: claim_results wrote it, and the call wrote nothing else.)
        # A folder removed meanwhile (by hand, or another job's cleanup) leaves nothing to do:
        # listing it raised FileNotFoundError over the run's own outcome.
        left = {p.name for p in out.iterdir()} if created and out.is_dir() else set()
        if created and RUN_LOCK in left and left <= {RUN_LOCK, MARKER_NAME}:
            for name in left:
                (out / name).unlink()
            out.rmdir()


def check_snakemake_lock(out: Path, args: argparse.Namespace) -> None:
    """Refuse an OUTPUT_DIR that Snakemake's own lock holds, before anything is written.

    No other ``lcm run`` holds it (:func:`output_dir_held`): the lock is a ``snakemake`` run
    started by hand, or one killed before it could unlock.

    Parameters
    ----------
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    args : argparse.Namespace
        ``lcm run``'s arguments.
    """
    locks = out / ".snakemake" / "locks"
    if "--unlock" in args.snakemake_args or not locks.is_dir() or not any(locks.iterdir()):
        return
    raise OutputBusyError(
        f"OUTPUT_DIR {out} is locked by Snakemake ({locks}): a `snakemake` run in it started "
        "outside lcm run, or one killed before it could unlock (a kill signal, a SLURM job "
        "past its time limit); nothing was written.",
        hint="If such a snakemake is running, wait for it to end. If none is, add `-- --unlock` "
        "to this command once (it only removes the lock), then run it again. " + ONE_AT_A_TIME,
    )


def check_results_dir(given: Any, cwd: Path, out: Path, source: str) -> None:
    """Warn when the config file's ``results_dir`` is not OUTPUT_DIR, which replaces it.

    OUTPUT_DIR is the BIDS App's output folder, so it wins; a config file written for
    Snakemake directly (``results_dir: /scratch/old``) had it replaced without a word, and
    its user looked for the outputs there.

    Parameters
    ----------
    given : object
        The config file's ``results_dir`` (None when it has none).
    cwd : pathlib.Path
        The folder ``lcm run`` is called from: relative paths are read from it.
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    source : str
        What the configuration came from, named in messages (``lcm run --config-file FILE``).
    """
    if given is None:
        return
    where = Path(cwd, given).resolve() if isinstance(given, str) and given else None
    if where == out:
        return
    shown = str(where) if where else excerpt(given)
    log.warning(
        "results_dir %s of %s is not OUTPUT_DIR: OUTPUT_DIR %s is used (lcm run writes "
        "every output there). Remove results_dir from the config file, or give that folder "
        "as OUTPUT_DIR.",
        shown,
        source,
        out,
    )


def check_output_place(bids: Path, derivatives: Path | None, out: Path) -> None:
    """Refuse an OUTPUT_DIR in BIDS_DIR (but its ``derivatives/lcm``-like folders), in or
    above the ``--derivatives`` folder, or whose ``config.yaml``/``variables.yaml`` are not
    lcm run's.

    Parameters
    ----------
    bids : pathlib.Path
        BIDS_DIR, resolved.
    derivatives : pathlib.Path or None
        The ``--derivatives`` folder, resolved, if given.
    out : pathlib.Path
        OUTPUT_DIR, absolute.
    """
    _check_output_dir(bids, out)
    if derivatives is not None:
        _check_output_outside(derivatives, bids, out)
    for written in ("config.yaml", "variables.yaml"):
        _check_own_file(out / written)


def _check_output_outside(derivatives: Path, bids: Path, out: Path) -> None:
    """Refuse an OUTPUT_DIR that is the ``--derivatives`` folder, inside it, or holds it.

    LCM's outputs went into fMRIPrep's derivative dataset, beside (and mixed with) the
    subject folders it reads. An OUTPUT_DIR holding it (``/scratch`` for ``/scratch/fmriprep``)
    put fMRIPrep's dataset inside LCM's results folder, LCM's own folders (``fmriprep/``
    among them) written around it.
    """
    resolved = out.resolve()
    own = derivatives.parent / "lcm"
    if own.is_relative_to(bids) and not own.is_relative_to(bids / "derivatives"):
        own = bids / "derivatives" / "lcm"
    if resolved != derivatives and derivatives.is_relative_to(resolved):
        raise ConfigError(
            f"OUTPUT_DIR {resolved} holds the --derivatives folder {derivatives}, fMRIPrep's "
            "derivative dataset: it would be inside LCM's results folder, LCM's outputs "
            "written around it.",
            hint=f"Use a folder of its own, e.g. {own} (beside it), or a new folder outside "
            "it (OUTPUT_DIR is made if it does not exist).",
        )
    if not resolved.is_relative_to(derivatives):
        return
    where = "is the" if resolved == derivatives else "is inside the"
    raise ConfigError(
        f"OUTPUT_DIR {out} {where} --derivatives folder {derivatives}, fMRIPrep's derivative "
        "dataset: LCM's outputs would be written into it.",
        hint=f"Use a folder of its own, e.g. {own} (beside it), or a folder outside it.",
    )


def _check_output_dir(bids: Path, out: Path) -> None:
    """Refuse an OUTPUT_DIR inside BIDS_DIR but outside its ``derivatives/``, or above it.

    The BIDS validator reads everything under BIDS_DIR but ``derivatives/``: LCM's outputs
    there made the dataset invalid (its own ingest failed, and every later run until the
    folder was removed by hand). An OUTPUT_DIR holding BIDS_DIR (``lcm run /d/study /d``) put
    the dataset inside LCM's results folder, its marker and outputs written beside it.
    """
    resolved = out.resolve()
    if resolved != bids and bids.is_relative_to(resolved):
        raise ConfigError(
            f"OUTPUT_DIR {resolved} holds BIDS_DIR {bids}: the dataset would be inside LCM's "
            "results folder, LCM's outputs written beside it.",
            hint=f"Use a folder of its own, e.g. {bids / 'derivatives' / 'lcm'}, or a new "
            "folder outside BIDS_DIR (OUTPUT_DIR is made if it does not exist).",
        )
    if resolved == bids / "derivatives":
        raise ConfigError(
            f"OUTPUT_DIR {out} is BIDS_DIR's derivatives folder itself, which holds other "
            "pipelines' outputs (fMRIPrep's).",
            hint=f"Use a folder of its own, e.g. {bids / 'derivatives' / 'lcm'}.",
        )
    if resolved.is_relative_to(bids) and not resolved.is_relative_to(bids / "derivatives"):
        where = "is BIDS_DIR itself" if resolved == bids else f"is inside BIDS_DIR {bids}"
        raise ConfigError(
            f"OUTPUT_DIR {out} {where}, where the BIDS validator would read LCM's outputs as "
            "part of the dataset.",
            hint=f"Use {bids / 'derivatives' / 'lcm'} or a folder outside BIDS_DIR.",
        )


def _check_own_file(path: Path) -> None:
    """Refuse to replace a file at ``path`` that ``lcm run`` did not write (its first line).

    OUTPUT_DIR's ``config.yaml`` and ``variables.yaml`` are rewritten by every ``lcm run``;
    a user's own files of those names were replaced, even by a dry run.
    """
    if not path.exists():
        return
    try:
        with path.open(errors="replace") as handle:
            first = handle.readline()
    except OSError:
        first = ""
    if not first.startswith(RUN_MARK):
        raise ConfigError(
            f"{path} exists and was not written by lcm run; nothing was written.",
            hint="Choose a new OUTPUT_DIR (or one an earlier lcm run wrote), or move the file.",
        )
