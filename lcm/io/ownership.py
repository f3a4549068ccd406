"""Owned output folders: LCM writes only into folders it created or was given empty.

A verb that writes several files into an ``--out-dir`` (a model, its history, its training
state) first claims the folder. A folder LCM claimed carries a marker; a new or empty folder is
claimed by writing one; a folder with someone else's files is refused before anything is
written, so a mistyped ``--out-dir`` never overwrites or deletes a user's files. Cleaning up
removes only names LCM knows it wrote, never a whole tree.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lcm.exceptions import OutputOwnershipError
from lcm.io.atomic import TMP_TAG, write_text
from lcm.io.provenance import provenance_path, read_record

log = logging.getLogger(__name__)

MARKER_NAME = ".lcm-owned"
# Who claims the workflow's results_dir (:func:`claim_results`), as its marker names it.
RESULTS_OWNER = "the LCM workflow"
# The folder marking a feature store's root (its journal and locks; lcm.store.commit's
# STATE_DIR): no other verb writes anywhere below such a folder.
STORE_STATE_DIR = "_lcm"
# Written by LCM itself in any folder it uses (lock files: a folder's and the ridge maps' in a
# pretraining checkpoint's folder; temp files of atomic writes, as lcm.io.atomic names them
# and as earlier versions did).
_ALWAYS_OURS = (MARKER_NAME, ".lcm.lock", ".lcm-*.lock", f".*.{TMP_TAG}-*", ".*.tmp*")


def claim_out_dir(
    folder: str | os.PathLike[str],
    verb: str,
    outputs: Iterable[str] = (),
    owner: str | None = None,
) -> Path:
    """Make ``folder`` an LCM output folder, or refuse it if it holds others' files.

    Parameters
    ----------
    folder : path-like
        The output folder (created if missing).
    verb : str
        The command claiming it, named in messages (e.g. ``"lcm pretrain"``).
    outputs : iterable of str
        Names or glob patterns of the verb's own outputs. In a folder without the marker (one
        written by an LCM version without markers, or by Snakemake creating it) an entry
        matching these is taken as LCM's when LCM's provenance says so (its sidecar records
        it, or it is such a sidecar); anything else makes the folder someone else's: a user's
        ``model.json`` is not replaced because LCM would write one of that name.
    owner : str, optional
        The verb the folder is claimed for, as its marker names it, when not ``verb``: ``lcm
        bei-maps`` writes into the folder of ``lcm pretrain``'s checkpoint and claims it in
        that name, while its refusals name the command the user ran.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputOwnershipError
        The folder exists, lacks the marker and holds entries that are not the verb's outputs.

    See Also
    --------
    check_claimable : The same refusals, writing nothing (before a long load).
    """
    path = Path(folder)
    owner = owner or verb
    if _claimable(path, verb, tuple(outputs), owner):
        return path
    return _mark(path, owner, verb)


def check_claimable(
    folder: str | os.PathLike[str],
    verb: str,
    outputs: Iterable[str] = (),
    owner: str | None = None,
) -> None:
    """Refuse what :func:`claim_out_dir` would refuse, writing nothing.

    For a verb that loads its inputs for long before it claims its folder (``lcm pretrain``
    loads a whole cohort): a folder holding someone else's files is refused before the load,
    and left exactly as it was; a new folder is not created. The claim repeats the check.

    Parameters
    ----------
    folder : path-like
        The output folder (it may not exist yet).
    verb : str
        The command that will claim it, named in messages.
    outputs : iterable of str
        Names or glob patterns of the verb's own outputs, as :func:`claim_out_dir` takes them.
    owner : str, optional
        The verb the folder will be claimed for, when not ``verb``.

    Raises
    ------
    OutputOwnershipError
        As :func:`claim_out_dir` would raise it.
    """
    _claimable(Path(folder), verb, tuple(outputs), owner or verb)


def _claimable(path: Path, verb: str, outputs: tuple[str, ...], owner: str) -> bool:
    """Refuse ``path`` as :func:`claim_out_dir` does, reading only; True when it is already
    claimed for ``owner`` (its marker says so), False when the claim has still to mark it."""
    # As check_replaceable places output files: a model folder inside a store partition broke
    # every reader of the store (pd.read_parquet of its partition met history.tsv).
    _check_owned_place(path, verb, owner)
    if _is_marked(path, verb, hint="Choose another --out-dir.", owner=owner):
        return True
    foreign = sorted(
        entry.name
        for entry in (path.iterdir() if path.is_dir() else ())
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in _ALWAYS_OURS)
        and not (
            any(fnmatch.fnmatchcase(entry.name, p) for p in outputs) and _written_by_lcm(entry)
        )
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise OutputOwnershipError(
            f"{verb}: output folder {path} holds files LCM did not write ({shown}); "
            "nothing was written.",
            hint="Choose a new or empty --out-dir, or move those files elsewhere.",
        )
    return False


def marker_owner(folder: str | os.PathLike[str]) -> str | None:
    """The verb that claimed ``folder`` (its marker's ``Written by <verb>:``), else ``None``.

    ``None`` too for a folder without the marker, or one whose marker names no verb.

    Parameters
    ----------
    folder : path-like
        The folder whose marker (:data:`MARKER_NAME`) is read; a missing or unreadable marker
        gives None.

    Returns
    -------
    str or None
        The verb as the marker names it (``lcm pretrain``, or the workflow's
        :data:`RESULTS_OWNER`).
    """
    try:
        text = (Path(folder) / MARKER_NAME).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    found = re.match(r"Written by (.+?): ", text)
    return found.group(1) if found else None


def _marked(folder: Path) -> bool:
    """Whether ``folder``'s marker names the verb that claimed it. A marker that names none
    (0 bytes: a write cut short before markers were written atomically) vouches for nothing."""
    return marker_owner(folder) is not None


def claimed_results(path: str | os.PathLike[str]) -> Path | None:
    """The results folder the workflow claimed (:func:`claim_results`) at or above ``path``.

    Parameters
    ----------
    path : path-like
        A file or folder; a relative path is made absolute against the current folder.

    Returns
    -------
    pathlib.Path or None
        That folder, as an absolute path (symbolic links kept); None when no folder at or
        above ``path`` carries the workflow's marker.
    """
    start = Path(os.path.abspath(path))
    for folder in (start, *start.parents):
        if marker_owner(folder) == RESULTS_OWNER:
            return folder
    return None


def check_replaceable(
    outputs: Iterable[str | os.PathLike[str]],
    verb: str,
    *,
    writers: Iterable[str] = (),
    owner: str | None = None,
) -> None:
    """Refuse output files that ``verb`` may not write, before anything is written.

    An existing output is ``verb``'s to replace (a rerun) only when its provenance sidecar
    names it and says ``verb`` wrote it. A file LCM did not write (a user's ``results.tsv``
    given as ``--out`` by mistake, or an output whose record is gone) is left alone, and so is
    one another verb wrote: ``lcm embed --out <checkpoint>/model.safetensors`` never replaces
    the weights ``lcm pretrain`` wrote. A record that names no verb (none LCM writes) is taken
    as not ``verb``'s. A path, new or not, is refused inside a folder another verb claimed
    (its :data:`MARKER_NAME` names that verb; one folder has one owner) and anywhere inside a
    feature store (a folder holding :data:`STORE_STATE_DIR`): a file added to a store
    partition breaks every reader of the store.

    Parameters
    ----------
    outputs : iterable of path-like
        The output files.
    verb : str
        The command writing them (``"lcm embed"``), named in messages.
    writers : iterable of str, optional
        Other verbs whose outputs ``verb`` replaces (``lcm bei-maps`` those ``lcm pretrain``
        wrote before it had a verb of its own).
    owner : str, optional
        The verb whose claimed folders ``verb`` writes into, when not ``verb`` itself.

    Raises
    ------
    OutputOwnershipError
        Naming the file, with what to do.
    """
    allowed = {verb, *writers}
    for out in map(Path, outputs):
        if out.is_dir():
            raise OutputOwnershipError(
                f"{verb}: output {out} is a folder; nothing was written.",
                hint="Give a file path for the output.",
            )
        _check_owned_place(out, verb, owner or verb)
        if not (out.exists() or out.is_symlink()):
            continue
        record = _lcm_record(out)
        if record is None:
            raise OutputOwnershipError(
                f"{verb}: output {out} exists and LCM did not write it (no provenance record "
                f"{provenance_path(out).name} names it); nothing was written.",
                hint=f"Choose another output path, or move or delete {out} if it may go (an "
                "output of a run killed before its record was written: rerun it under Snakemake, "
                "which removes it, or delete it).",
            )
        writer = record_verb(record)
        if writer not in allowed:
            who = writer or "a command its record does not name"
            raise OutputOwnershipError(
                f"{verb}: output {out} exists and was written by {who} (its provenance record "
                f"says so), not by {verb}; nothing was written.",
                hint=f"Choose another output path: {verb} replaces only outputs {verb} wrote.",
            )


def record_verb(record: dict) -> str | None:
    """The verb (``"lcm embed"``) that wrote the output a provenance record describes.

    The ``verb`` of the record's ``Provenance.params`` (as ``lcm`` parsed its command line);
    ``None`` when it names none (a record no ``lcm`` verb wrote): the command line itself is
    not read, since an option's value (``--rule store``) may come before the verb.

    Parameters
    ----------
    record : dict
        A parsed provenance record.

    Returns
    -------
    str or None
        ``"lcm <verb>"``, or None.
    """
    prov = record.get("Provenance")
    params = prov.get("params") if isinstance(prov, dict) else None
    verb = params.get("verb") if isinstance(params, dict) else None
    return f"lcm {verb}" if isinstance(verb, str) and verb else None


def _check_owned_place(out: Path, verb: str, owner: str) -> None:
    """Refuse ``out`` inside a feature store, or inside a folder another verb claimed.

    The nearest folder above ``out`` with LCM's marker decides: ``owner``'s, or the workflow's
    results folder (every verb writes there), is fine; another verb's is refused. Any folder
    above holding the store's :data:`STORE_STATE_DIR` is a feature store, refused.
    """
    parents: list[Path] = []
    for start in (Path(os.path.abspath(out)).parent, Path(os.path.realpath(out.parent))):
        for folder in (start, *start.parents):
            if folder not in parents:
                parents.append(folder)
    for folder in parents:
        if (folder / STORE_STATE_DIR).is_dir():
            raise OutputOwnershipError(
                f"{verb}: output {out} is inside the feature store {folder} (it holds "
                f"{STORE_STATE_DIR}/); nothing was written.",
                hint="Choose another output path, outside the store: only `lcm store` writes in "
                "a store, and its readers take every file there as part of it.",
            )
    claimed = next((f for f in parents if _marked(f)), None)
    found = marker_owner(claimed) if claimed is not None else None
    if found is not None and found not in (owner, RESULTS_OWNER):
        raise OutputOwnershipError(
            f"{verb}: output {out} is inside {claimed}, which holds the outputs of {found} "
            f"({claimed / MARKER_NAME} says so); nothing was written.",
            hint=f"Choose another output path: a folder has one owner, and {verb} does not "
            f"write into {found}'s.",
        )


def _is_marked(path: Path, verb: str, hint: str, owner: str | None = None) -> bool:
    """Whether ``path`` carries LCM's marker naming a verb; a file (not a folder) there is
    refused, and so is a folder another verb claimed: one folder has one owner, so ``lcm
    finetune`` never replaces the model ``lcm pretrain`` wrote there (a rerun of the same verb
    is its own). ``owner``: the verb ``verb`` claims folders for (itself unless given)."""
    owner = owner or verb
    found = marker_owner(path)
    if found is not None:
        if found != owner:
            own = "of its own" if owner == verb else f"of {owner}'s"
            raise OutputOwnershipError(
                f"{verb}: output folder {path} holds the outputs of {found} "
                f"({path / MARKER_NAME} says so); nothing was written.",
                hint=f"{hint} A folder has one owner: {verb} writes into a folder {own}.",
            )
        return True
    if path.exists() and not path.is_dir():
        raise OutputOwnershipError(
            f"{verb}: output folder {path} exists and is not a folder.", hint=hint
        )
    return False


def _mark(path: Path, owner: str, verb: str | None = None) -> Path:
    """Create ``path`` if needed and write its marker, naming ``owner`` (``verb``, named in
    messages, claims it in that name; ``owner`` itself unless given)."""
    verb = verb or owner
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a cut write must not leave a marker that names no owner.
        write_text(path / MARKER_NAME, f"Written by {owner}: LCM may replace its outputs here.\n")
    except OSError as exc:  # a read-only parent or folder: one line, not a traceback
        raise OutputOwnershipError(
            f"{verb}: cannot write in {path} ({exc.strerror}); nothing was written.",
            hint="Choose an --out-dir this user can write to, or fix its permissions.",
        ) from None
    return path


def claim_tree(
    folder: str | os.PathLike[str], verb: str, vouch: Callable[[Path], bool] | None = None
) -> Path:
    """Make ``folder`` an LCM-owned tree, or refuse it if any file below it is someone else's.

    For writers that fill a whole tree of fixed names (a synthetic consortium's ``rawdata/``,
    ``derivatives/``): a marked folder is LCM's; an absent one, or one holding only empty
    folders (made by Snakemake before a job), is claimed by writing the marker before any
    file. Any file below an unmarked folder (a real dataset at that path) refuses it. Jobs
    filling one tree at once each claim it: the marker, written first, is looked for again
    before refusing. ``vouch(folder)`` may take an unmarked tree as LCM's (one written before
    LCM marked trees) from a file only LCM writes there.

    Parameters
    ----------
    folder : path-like
        The tree's top folder (created if missing).
    verb : str
        Who claims it, named in the marker and in messages.
    vouch : callable, optional
        Takes the unmarked folder and returns whether a file only LCM writes is there; None
        vouches for nothing.

    Returns
    -------
    pathlib.Path
        ``folder``, now carrying the marker.

    Raises
    ------
    OutputOwnershipError
        The folder lacks the marker and holds files.
    """
    path = Path(folder)
    if _is_marked(path, verb, hint="Choose another output folder."):
        return path
    found = next((Path(d, f) for d, _, files in os.walk(path) for f in files), None)
    mine = _marked(path) or (vouch is not None and vouch(path))
    if found is not None and not mine:
        raise OutputOwnershipError(
            f"{verb}: {path} holds files LCM did not write (e.g. {found}); nothing was written.",
            hint="Point synth.out_dir at a new or empty folder, or move those files elsewhere.",
        )
    return _mark(path, verb)


def claim_results(folder: str | os.PathLike[str], verb: str, entries: Iterable[str]) -> Path:
    """Make the workflow's results folder LCM's, or refuse one with others' files at LCM's paths.

    The workflow writes only below ``entries`` of ``folder`` (:data:`lcm.io.paths.RESULTS_ENTRIES`)
    and replaces what it finds at its output paths. A marked folder is LCM's; an absent one, or
    one with nothing below those entries, is claimed by writing the marker; one whose files there
    include an output LCM's provenance vouches for is the results of an earlier LCM (before
    markers) and is claimed too. Files below those entries and none of LCM's refuse the folder:
    a ``results_dir`` pointed at a user's own ``models/`` or ``report/`` leaves them untouched.
    Other entries (a BIDS ``derivatives/`` folder's other pipelines) are never looked at.

    Parameters
    ----------
    folder : path-like
        The ``results_dir``.
    verb : str
        Who claims it, for messages.
    entries : iterable of str
        Names below ``folder`` that LCM writes into.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputOwnershipError
        ``folder`` is a file, or holds others' files below ``entries`` and none of LCM's.
    """
    path = Path(folder)
    hint = "Set results_dir to a new or empty folder (or one LCM wrote), or move those files."
    if _is_marked(path, verb, hint=hint):
        return path
    first = None
    for found in _files_below(path / name for name in entries):
        if _written_by_lcm(found):
            log.info("%s: taking %s as the results of an earlier LCM run", verb, path)
            return _mark(path, verb)
        first = first or found
    if first is not None:
        raise OutputOwnershipError(
            f"{verb}: results folder {path} holds files LCM did not write where LCM writes "
            f"its outputs (e.g. {first}); nothing was written.",
            hint=hint,
        )
    return _mark(path, verb)


def _files_below(tops: Iterable[Path]) -> Iterator[Path]:
    """Every file (or link) at or below each of ``tops``, in a stable order."""
    for top in tops:
        if top.is_symlink() or top.is_file():
            yield top
        elif top.is_dir():
            for folder, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    yield Path(folder, name)


def _written_by_lcm(entry: Path) -> bool:
    """Whether LCM's provenance vouches for ``entry`` of an unmarked folder: a folder holding
    a training state LCM wrote (its JSON carries LCM's content digest), a file whose sidecar
    names it, or such a sidecar itself."""
    if entry.is_dir():
        return any(
            isinstance(record := _json(p), dict) and "content_sha256" in record
            for p in entry.glob("*.json")
        )
    return _lcm_record(entry) is not None


def _lcm_record(entry: Path) -> dict | None:
    """The provenance record that names the file ``entry`` (its sidecar, or ``entry`` itself
    when it is such a record), else ``None``."""
    # The record's name now, the entry itself (a sidecar), and the name an LCM version that cut
    # names at their first dot gave it (emb.attn.parquet -> emb.json).
    earlier = entry.with_name(entry.name.split(".", 1)[0] + ".json")
    for record_path in (provenance_path(entry), entry, earlier):
        if record_path.suffix != ".json" or not record_path.is_file():
            continue
        record = read_record(record_path)
        if record is not None and (record_path == entry or record["Output"] == entry.name):
            return record
    return None


def _json(path: Path) -> object:
    """A JSON file's content, ``None`` when unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def remove_owned(folder: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Delete the files ``names`` (LCM's own) in ``folder``, then the folder if it is empty.

    Anything else found there is left in place with a warning: a user's file is never deleted.

    Parameters
    ----------
    folder : path-like
        The output folder; nothing happens when it is not a folder.
    names : iterable of str
        The file names LCM wrote there. Its marker and lock file are removed too.
    """
    path = Path(folder)
    if not path.is_dir():
        return
    for name in (*names, MARKER_NAME, ".lcm.lock"):
        target = path / name
        if target.is_file() or target.is_symlink():
            target.unlink()
    left = sorted(p.name for p in path.iterdir())
    if left:
        log.warning("kept %s: it holds files LCM did not write (%s)", path, ", ".join(left[:5]))
        return
    path.rmdir()


def claim_scratch(folder: str | os.PathLike[str], verb: str) -> bool:
    """Claim a scratch folder that a tool LCM runs fills (fMRIPrep's work folder), if it can be.

    Unlike :func:`claim_out_dir`, a folder with others' files is used, not refused (a work
    folder a user pointed fMRIPrep at by hand is for fMRIPrep to reuse), but it is not LCM's:
    :func:`remove_scratch` leaves it.

    Parameters
    ----------
    folder : path-like
        The folder (created if missing).
    verb : str
        Who claims it, for messages.

    Returns
    -------
    bool
        Whether the folder is LCM's: it carried the marker, or was absent or empty and now does.
    """
    path = Path(folder)
    if _is_marked(path, verb, hint="Choose another work folder."):
        return True
    if path.is_dir() and any(path.iterdir()):
        return False
    _mark(path, verb)
    return True


def remove_scratch(folder: str | os.PathLike[str]) -> str | None:
    """Delete a scratch tree LCM claimed (:func:`claim_scratch`); leave any other.

    The folder is first renamed aside, so that it vanishes at once: a half-deleted work folder
    never stays where the tool would resume from it.

    Parameters
    ----------
    folder : path-like
        The scratch folder, as given to :func:`claim_scratch`.

    Returns
    -------
    str or None
        None once removed; else why it was kept (not LCM's, or a file there could not be
        deleted: a container that ran as root writes files this user cannot remove).
    """
    path = Path(folder)
    if not path.is_dir():
        return f"{path} is not there"
    if not _marked(path):
        return f"{path} was not created by LCM (no {MARKER_NAME} marker naming LCM in it)"
    doomed = path.with_name(f".{path.name}.removing-{os.getpid()}")
    try:
        os.replace(path, doomed)
    except OSError as exc:
        return f"{path} could not be moved aside ({exc.strerror})"
    failed: list[str] = []
    # onerror, not onexc: Python 3.11 is supported.
    shutil.rmtree(doomed, onerror=lambda _f, name, _e: failed.append(name))
    if failed:
        return (
            f"{len(failed)} entries of {doomed} could not be deleted (e.g. {failed[0]}): "
            "remove them as their owner"
        )
    return None
