"""``lcm prune-states``: free the disk space of the saved states of finished runs.

Pretraining keeps ``train_state/`` beside its model (weights and AdamW moments: several times
the weights' size) and ``lcm evaluate`` keeps ``<metrics stem>_evaluate_state/`` beside its
metrics, after their outputs are written, so that a job killed then is retried without training
again. Once a run has finished, its state only takes room. This verb lists every state folder
under a folder, says whether its run finished, and with ``--apply`` removes those of finished
runs; the state of an unfinished run (needed to resume it) is always kept.

A run has finished when its final outputs exist and its state says so itself, by the rule the
verb that wrote it resumes by: a training state at its final step (:func:`lcm.train.state.
progress`), an evaluation state holding every fit of its run (:func:`lcm.evaluate.resume.
progress`). The outputs must be that run's: ``model.json`` records the fingerprint its state
resumes by (:func:`lcm.model.checkpoint.run_of`, :func:`lcm.train.state.run_of`), an evaluation
state the sha256 of the metrics table its run wrote (:func:`lcm.evaluate.resume.written`). A
run with other settings killed before writing its own sits beside an earlier run's: kept.
Only a folder LCM wrote, and nothing but LCM's files, is removed; one whose writer
still runs (its lock held) is kept. A folder is judged again and renamed aside under its
writer's lock, then deleted with the lock released: a removal cut short never leaves a
half-deleted state where a resumption would read it, and a job starting during the deletion
is not refused.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lcm.commands._path_text import path_text
from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError, OutputBusyError, OutputOwnershipError

log = logging.getLogger(__name__)

VERB = "lcm prune-states"

EXAMPLE = """examples:
  lcm prune-states results              list the states, what each takes, which may go
  lcm prune-states results --apply      remove the states of finished runs
  lcm prune-states results/models/pretrain

exit status: 0, also when states are kept (unfinished, locked, holding another's files); 1 when
a finished state could not be removed whole (a file system error, named in its line).

output: one line per state folder found:
  <what is done>  <size>  <folder>: <finished or not, and why>
  removed (without --apply: would remove): its run finished;
  keep: its run has not finished (needed to resume it), the outputs beside it are another
  run's, its writer still runs (lock held), or it holds files LCM did not write (a link among
  them, or its lock file a link); unreadable or unusable: its train_state.json, or the tensors
  file it names, is cut short or missing (lcm pretrain cannot resume from it: delete it).

Finished: pretraining's train_state/ at its final step, with model.safetensors, model.json,
history.tsv and bei_eval.tsv beside it, model.json written by the state's run (it records the
run's fingerprint; one of an earlier LCM does not: kept); lcm evaluate's
<metrics stem>_evaluate_state/ holding every fit of its run, with the metrics table its run
wrote beside it (the state records its sha256; another run's table: kept). Neither folder
is an output of the workflow: Snakemake reruns nothing once they are gone. A rerun with other
settings starts from step 0 (or fits everything) anyway; the same run retried after its
outputs were deleted then trains (or fits) again.
"""

# A state folder renamed aside for removal (a removal cut short leaves it, finished next time).
_DOOMED = re.compile(r"\.(?P<name>.+)\.removing-\d+")


@fill_doc
def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``prune-states`` verb.

    Parameters
    ----------
    %(sub)s
    """
    p = sub.add_parser(
        "prune-states",
        help="List saved training and evaluation states; remove those of finished runs.",
        description="Find every state folder below FOLDER (pretraining's train_state/, lcm "
        "evaluate's *_evaluate_state/), and print its size and whether its run finished: its "
        "outputs are written, by its run (not an earlier one's), and its state is at its final "
        "step (every fit saved). A dry run "
        "unless --apply: then the states of finished runs are removed (renamed aside, then "
        "deleted), and only those LCM wrote, holding no other file, whose writer is not "
        "running. The states of unfinished runs are kept: the same command resumes from them.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "folder",
        type=path_text,
        metavar="FOLDER",
        help="The workflow's results_dir, or any folder below it.",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="Remove the states of finished runs (default: only list them).",
    )
    p.set_defaults(func=run)


@dataclass
class Found:
    """One state folder and what becomes of it.

    Attributes
    ----------
    path : pathlib.Path
        The state folder.
    size : int
        Bytes of its files.
    finished : bool
        Whether its run finished and it may go.
    why : str
        Why it may go, or why it is kept, in words.
    lock : pathlib.Path or None
        The lock its writer holds while it runs.
    ours : list of str
        Its files LCM wrote (the only ones removed).
    """

    path: Path
    size: int
    finished: bool
    why: str
    lock: Path | None = None
    ours: list[str] | None = None


@fill_doc
def run(args: argparse.Namespace) -> int:
    """Run ``lcm prune-states``.

    Parameters
    ----------
    %(args)s

    Returns
    -------
    int
        0; 1 when a state to remove could not be removed whole.

    Raises
    ------
    lcm.exceptions.InputDataError
        FOLDER is not a folder.
    """
    top = Path(args.folder)
    if not top.is_dir():
        raise InputDataError(
            f"{VERB}: {top} is not a folder.",
            hint="Give the workflow's results_dir (results_dir in the config), or a folder "
            "below it such as results/models/pretrain.",
        )
    found = [examine(path) for path in find_states(top)]
    freed, removed, failed = 0, 0, 0
    for state in found:
        done = "would remove" if state.finished else "keep"
        why = state.why
        if state.finished and args.apply:
            problem = remove(state)
            if problem is None:
                done, freed, removed = "removed", freed + state.size, removed + 1
            else:
                done, why = "keep", problem
                failed += 0 if problem.startswith(("locked", "changed")) else 1
        print(f"{done:<12}  {_size(state.size):>9}  {state.path}: {why}")
    finished = [s for s in found if s.finished]
    total = sum(s.size for s in finished)
    if not found:
        print(f"no saved state below {top}")
    elif args.apply:
        print(f"{removed} state(s) removed, {_size(freed)} freed; {len(found) - removed} kept")
    else:
        print(
            f"{len(finished)} of {len(found)} state(s) finished ({_size(total)}): run again with "
            "--apply to remove them"
        )
    return 1 if failed else 0


def find_states(top: Path) -> Iterator[Path]:
    """Every state folder at or below ``top`` (links not followed), in a stable order.

    Parameters
    ----------
    top : pathlib.Path
        The folder searched.

    Yields
    ------
    pathlib.Path
        ``train_state/`` folders, ``*_evaluate_state/`` folders, and such folders renamed aside
        by a removal cut short.
    """
    if _is_state_name(top.name):
        yield top
        return
    for folder, dirs, _ in os.walk(top):
        dirs.sort()
        for name in list(dirs):
            if _is_state_name(name) or (
                (doomed := _DOOMED.fullmatch(name)) and _is_state_name(doomed["name"])
            ):
                dirs.remove(name)  # its files are the state's: not searched
                yield Path(folder, name)


def _is_state_name(name: str) -> bool:
    from lcm.evaluate.resume import FOLDER_SUFFIX
    from lcm.train.outputs import STATE_DIR

    return name == STATE_DIR or (name.endswith(FOLDER_SUFFIX) and name != FOLDER_SUFFIX)


def examine(path: Path) -> Found:
    """Size a state folder and say whether its run finished and it may go.

    Parameters
    ----------
    path : pathlib.Path
        A folder :func:`find_states` found.

    Returns
    -------
    Found
    """
    from lcm.io.lock import lock_holder

    found = _judge(path)
    if found.lock is not None and found.lock.is_symlink():  # removal takes it: never through
        found.finished = False
        found.why = f"its lock file {found.lock} is a link, not LCM's (remove the link): kept"
        return found
    holder = lock_holder(found.lock) if found.lock is not None else None
    if holder is not None:  # its writer runs: the state changes under it
        found.finished, found.why = False, f"its writer is running ({holder}): kept"
    return found


def _judge(path: Path) -> Found:
    """:func:`examine` but for the lock: what the state's files say of it."""
    from lcm.train.outputs import STATE_DIR

    if path.is_symlink():
        return Found(path, 0, False, "a link, not a folder LCM wrote: kept")
    size = sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() or f.is_symlink())
    if _DOOMED.fullmatch(path.name) is not None:
        return _doomed(path, size)
    if path.name == STATE_DIR:
        return _training(path, size)
    return _evaluation(path, size)


def _doomed(path: Path, size: int) -> Found:
    """A state renamed aside by a removal cut short: its run finished (it was being removed)."""
    from lcm.evaluate.resume import own_entries as eval_entries

    ours, others = eval_entries(path)
    if others:
        ours, others = _training_entries(path)
    if others:
        return Found(path, size, False, _foreign(others))
    return Found(path, size, True, "left by a removal cut short", None, ours)


def _training_entries(path: Path) -> tuple[list[str], list[str]]:
    from lcm.train.state import own_entries

    return own_entries(path)


def _training(path: Path, size: int) -> Found:
    """A pretraining's ``train_state/``: finished at its final step with its model written."""
    from lcm.io.lock import LOCK_NAME
    from lcm.io.ownership import marker_owner
    from lcm.train.outputs import PRETRAIN_VERB
    from lcm.train.state import META_NAME as STATE_META
    from lcm.train.state import progress, unusable
    from lcm.train.state import run_of as state_run

    lock = path.parent / LOCK_NAME  # lcm pretrain holds its output folder's lock
    owner = marker_owner(path.parent)
    if owner not in (None, PRETRAIN_VERB):  # (None: a folder of an LCM without markers)
        return Found(path, size, False, f"in a folder of {owner}, not of lcm pretrain: kept")
    ours, others = _training_entries(path)
    if others:
        return Found(path, size, False, _foreign(others), lock)
    complete, where = progress(path)
    if not complete and (path / STATE_META).is_file() and state_run(path) is None:
        # A cut or edited train_state.json: lcm pretrain refuses it (it said "kept to resume
        # it", which it cannot); never removed here, since it is not known to be finished.
        return Found(
            path,
            size,
            False,
            f"unreadable ({where}): lcm pretrain cannot resume from it; kept (delete it to "
            "train from step 0)",
            lock,
        )
    found = _trained(path, size, complete, where, lock, ours)
    broken = unusable(path)
    if broken is not None and not found.finished:
        step = where.partition(", but ")[0]  # (progress says a missing file too: said once)
        # Its JSON intact, its tensors not (a full disk, a copy interrupted): lcm pretrain
        # refuses it, yet it was listed "kept to resume it". Removed only once its model is
        # written (then nothing needs it); else never here, the user decides.
        return Found(
            path,
            size,
            False,
            f"unusable ({step}, but {broken}): lcm pretrain cannot resume from it; kept "
            f"(delete {path}, then rerun lcm pretrain: it trains from step 0)",
            lock,
        )
    return found


def _trained(
    path: Path, size: int, complete: bool, where: str, lock: Path, ours: list[str]
) -> Found:
    """:func:`_training` of a state whose JSON is intact: finished when at its final step with
    its own run's model written, unchanged since."""
    from lcm.model.checkpoint import META_NAME as MODEL_META
    from lcm.model.checkpoint import run_of as model_run
    from lcm.train.outputs import PRETRAIN_FILES
    from lcm.train.state import run_of as state_run

    if not complete:
        return Found(path, size, False, f"unfinished ({where}): kept to resume it", lock)
    missing = [n for n in PRETRAIN_FILES if not (path.parent / n).is_file()]
    if missing:
        return Found(
            path,
            size,
            False,
            f"trained ({where}) but {', '.join(missing)} not written: kept to write them",
            lock,
        )
    written = model_run(path.parent)
    if written is None:
        return Found(
            path,
            size,
            False,
            f"trained ({where}) but {MODEL_META} records no run fingerprint (an earlier LCM "
            "wrote it): kept, as nothing says the model is this state's run's (remove it by "
            "hand once you know it is)",
            lock,
        )
    if written != state_run(path):
        return Found(
            path,
            size,
            False,
            f"trained ({where}) but {MODEL_META} is another run's (fingerprint "
            f"{written[:12]}, the state's {str(state_run(path))[:12]}): kept to write its model",
            lock,
        )
    changed = _changed_outputs(path.parent, PRETRAIN_FILES)
    if changed:
        # The state is what writes them again without training: a model truncated or edited
        # since would otherwise need a retraining.
        return Found(
            path,
            size,
            False,
            f"trained ({where}) but {', '.join(changed)} changed since written (another "
            "sha256 than recorded): kept to write them again",
            lock,
        )
    return Found(path, size, True, f"finished ({where}; its model is written)", lock, ours)


def _changed_outputs(folder: Path, names: tuple[str, ...]) -> list[str]:
    """The files of ``names`` in ``folder`` changed since written: the weights against the
    sha256 ``model.json`` records of them, each file with a provenance record (the command's
    and the workflow's runs write them) against that record's."""
    import json

    from lcm.io.provenance import provenance_path, read_record, sha256_file
    from lcm.model.checkpoint_meta import META_NAME, WEIGHTS_NAME

    changed = []
    try:
        meta = json.loads((folder / META_NAME).read_text())
    except (OSError, ValueError):
        meta = None
    recorded = meta.get("weights_sha256") if isinstance(meta, dict) else None
    if meta is None or (recorded and sha256_file(folder / WEIGHTS_NAME) != recorded):
        changed.append(META_NAME if meta is None else WEIGHTS_NAME)
    for name in names:
        side = provenance_path(folder / name)
        if name in changed or not side.exists():
            continue
        record = read_record(side)
        if record is None or record.get("Sha256") != sha256_file(folder / name):
            changed.append(name)
    return changed


def _evaluation(path: Path, size: int) -> Found:
    """An ``lcm evaluate`` state: finished holding every fit, with its metrics table written."""
    from lcm.evaluate.resume import VERB as EVALUATE
    from lcm.evaluate.resume import own_entries, progress, written
    from lcm.io.lock import LOCK_NAME
    from lcm.io.ownership import marker_owner

    lock = path / LOCK_NAME
    owner = marker_owner(path)
    if owner != EVALUATE:
        said = f"claimed by {owner}" if owner else "no marker naming lcm evaluate"
        return Found(path, size, False, f"not a state lcm evaluate wrote ({said}): kept", lock)
    ours, others = own_entries(path)
    if others:
        return Found(path, size, False, _foreign(others), lock)
    complete, where = progress(path)
    if not complete:
        return Found(path, size, False, f"unfinished ({where}): kept to resume it", lock)
    beside, said = written(path)
    if not beside:
        return Found(path, size, False, f"fitted ({where}) but {said}: kept", lock)
    return Found(path, size, True, f"finished ({where}; {said})", lock, ours)


def _foreign(names: list[str]) -> str:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"holds files LCM did not write ({shown}): kept"


def remove(state: Found) -> str | None:
    """Remove a finished state: judged again and renamed aside under its writer's lock, then
    its files deleted (the lock released).

    Parameters
    ----------
    state : Found
        A state :func:`examine` found finished.

    Returns
    -------
    str or None
        None once removed; else why it was kept (its writer runs, a file could not go).
    """
    from lcm.io.lock import exclusive_lock
    from lcm.io.ownership import remove_owned

    hold: Callable[[], contextlib.AbstractContextManager]
    if state.lock is not None and state.lock.parent.is_dir():
        lock = state.lock
        hold = lambda: exclusive_lock(lock, VERB)  # noqa: E731
    else:
        hold = contextlib.nullcontext
    try:
        doomed, ours = state.path, state.ours or []
        if _DOOMED.fullmatch(state.path.name) is None:
            with hold():
                # Judged again under the lock: a run between the listing and now changed it.
                again = _judge(state.path)
                if not again.finished:
                    return f"changed since it was listed ({again.why})"
                ours = again.ours or []
                # Gone at once from where a resumption looks: never half there.
                doomed = state.path.with_name(f".{state.path.name}.removing-{os.getpid()}")
                os.replace(state.path, doomed)
        # Aside, its files go without the writer's lock: a job starting while they are deleted
        # (GBs, slow on a cluster's file system) is not refused.
        remove_owned(doomed, ours)
    except OutputBusyError as exc:
        return f"locked: {exc.message.split(' is being written by ', 1)[-1]}"
    except (OSError, OutputOwnershipError) as exc:
        return f"could not be removed ({exc}): kept"
    if doomed.exists():
        return f"renamed {doomed.name}: it holds files that appeared meanwhile, kept"
    return None


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # (not reached)
