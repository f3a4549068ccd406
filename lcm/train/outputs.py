"""The output folder of a training verb: claimed, locked for the run, earlier outputs named.

``lcm pretrain`` and ``lcm finetune`` write a checkpoint, its history and (pretraining) a
training state into ``--out-dir``. A folder holding files LCM did not write is refused before
anything is written, and a second run into the same folder is refused while the first holds
the folder's lock (see :mod:`lcm.io.ownership` and :mod:`lcm.io.lock`). ``lcm bei-maps`` writes
the bei-linear baseline's ridge maps into a pretraining checkpoint's folder, beside the
checkpoint, under a lock of their own (:func:`maps_out_dir`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from lcm.exceptions import OutputOwnershipError
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.io.ownership import check_claimable, check_replaceable, claim_out_dir
from lcm.io.provenance import check_recordable, provenance_path
from lcm.model.checkpoint_meta import META_NAME, WEIGHTS_NAME

log = logging.getLogger(__name__)

# A checkpoint's own files are named by their owner (lcm.model.checkpoint_meta); the training
# verbs' others here. The rules take all four names from this module.
HISTORY_NAME = "history.tsv"
BEI_EVAL_NAME = "bei_eval.tsv"
CHECKPOINT_FILES = (WEIGHTS_NAME, META_NAME, HISTORY_NAME)
# The bei-linear baseline's ridge maps, beside a pretrained checkpoint.
MAPS_FILE = "bei_linear.npz"
# What a model's predictions depend on: the inputs an evaluation records (not the folder's
# lock, ownership mark, histories or sidecars, which change with every run).
MODEL_FILES = (WEIGHTS_NAME, META_NAME, MAPS_FILE)
PRETRAIN_FILES = (*CHECKPOINT_FILES, BEI_EVAL_NAME)
STATE_DIR = "train_state"
# A pretraining checkpoint's folder is lcm pretrain's (one folder, one owner): lcm bei-maps
# claims it in that name (its messages name itself). The maps have a lock of their own: the
# folder's is held by a pretraining for its whole run, and the two run side by side (neither
# reads the other).
PRETRAIN_VERB = "lcm pretrain"
MAPS_VERB = "lcm bei-maps"
MAPS_LOCK = ".lcm-maps.lock"


def own_names(files: tuple[str, ...], folders: tuple[str, ...] = ()) -> list[str]:
    """The names a training verb writes: its files, their provenance sidecars, its folders.

    Parameters
    ----------
    files : tuple of str
        File names of the verb's outputs.
    folders : tuple of str, default ()
        Folder names of its outputs.

    Returns
    -------
    list of str
    """
    return [*files, *(provenance_path(f).name for f in files), *folders]


def _is_main_process() -> bool:
    # Under torchrun every rank runs the verb; only rank 0 writes, so only it claims and locks.
    return int(os.environ.get("RANK", "0")) == 0


def check_out_dir(
    out_dir: str | os.PathLike[str],
    verb: str,
    files: tuple[str, ...],
    folders: tuple[str, ...] = (),
    beside: tuple[str, ...] = (),
) -> None:
    """Refuse, before the cohort is loaded, what :func:`training_out_dir` would refuse.

    Read-only: nothing is claimed or written, so a refused folder is left as it was and a
    refusal of the data that follows leaves no folder behind. :func:`training_out_dir` checks
    the same again when it claims the folder and under its lock.

    Parameters
    ----------
    out_dir : path-like
        The verb's ``--out-dir``.
    verb : str
        ``"lcm pretrain"`` or ``"lcm finetune"`` (named in messages).
    files, folders, beside : tuple of str
        The verb's own outputs and the files another verb writes beside them, as
        :func:`training_out_dir` takes them.

    Raises
    ------
    OutputOwnershipError
        The folder holds files LCM did not write or another verb's outputs, or a
        training-state folder's place is taken by a file or a link.
    ConfigError
        A file's record cannot be written (a user's JSON in its place).
    """
    if not _is_main_process():
        return
    out = Path(out_dir)
    _check_folders(out, verb, folders)
    # Found only at the claim, after the whole cohort's load: a mistyped --out-dir holding a
    # user's files cost that load before its refusal.
    check_claimable(out, verb, own_names((*files, *beside), folders))
    # Found under the lock only, the refusal came after the whole cohort's load.
    check_recordable([out / name for name in files])


def _check_folders(out: Path, verb: str, folders: tuple[str, ...]) -> None:
    for name in folders:
        # Before the claim: found at the first state save, training had run and the earlier
        # run's model was already replaced.
        path = out / name
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise OutputOwnershipError(
                f"{path} is {'a link' if path.is_symlink() else 'a file'}, not the folder "
                f"{verb} keeps its training state in; nothing was read, written or deleted.",
                hint=f"Move {path} away (LCM makes that folder itself), or give another --out-dir.",
            )


@contextlib.contextmanager
def training_out_dir(
    out_dir: str | os.PathLike[str],
    verb: str,
    files: tuple[str, ...],
    folders: tuple[str, ...] = (),
    beside: tuple[str, ...] = (),
) -> Iterator[Path]:
    """Claim ``out_dir`` for ``verb`` and hold its lock while the block runs.

    Parameters
    ----------
    out_dir : path-like
        The verb's ``--out-dir``.
    verb : str
        ``"lcm pretrain"`` or ``"lcm finetune"`` (named in messages and in the lock file).
    files, folders : tuple of str
        The verb's own outputs (their sidecars are added): in a folder an earlier LCM wrote
        without the ownership marker, these are the only entries tolerated.
    beside : tuple of str
        Files another verb writes into the folder (a pretraining's ridge maps): tolerated
        there too, and neither replaced nor named as this run's.

    Yields
    ------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputOwnershipError
        The folder holds files LCM did not write (nothing is written).
    ConfigError
        A file's record cannot be written (a user's JSON in its place): nothing is written.
    OutputBusyError
        Another run holds the folder's lock.
    """
    out = Path(out_dir)
    if not _is_main_process():
        yield out
        return
    _check_folders(out, verb, folders)
    claim_out_dir(out, verb, own_names((*files, *beside), folders))
    with exclusive_lock(out / LOCK_NAME, verb):
        # Again under the lock (check_out_dir ran before the load): the claim tolerates the
        # records' names, and a user's JSON under one (history.json) was found only after
        # training, the earlier run's model already replaced.
        check_recordable([out / name for name in files])
        earlier = [name for name in files if (out / name).exists()]
        if earlier:
            # Reruns replace the outputs they own; say so rather than overwrite without a word.
            log.warning("%s: replacing %s of an earlier run in %s", verb, ", ".join(earlier), out)
        yield out


@contextlib.contextmanager
def maps_out_dir(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Claim a pretraining checkpoint's folder for its ridge maps and hold the maps' lock.

    Called before the cohort is loaded: everything that would stop the maps being written
    and recorded is refused first, so that no maps are left without their record.

    Parameters
    ----------
    out_dir : path-like
        ``lcm bei-maps``'s ``--out-dir``: the checkpoint's folder (new or empty is fine: the
        checkpoint may be written after the maps).

    Yields
    ------
    pathlib.Path
        The folder.

    Raises
    ------
    OutputOwnershipError
        The folder holds files LCM did not write, or another verb's outputs (a finetuned
        model's), or maps LCM's provenance does not vouch for: nothing is written.
    ConfigError
        The maps' record cannot be written (a user's ``bei_linear.json`` in its place).
    OutputBusyError
        Another ``lcm bei-maps`` is writing the maps there.
    """
    out = Path(out_dir)
    claim_out_dir(
        out,
        MAPS_VERB,
        own_names((*PRETRAIN_FILES, MAPS_FILE), (STATE_DIR,)),
        owner=PRETRAIN_VERB,
    )
    with exclusive_lock(out / MAPS_LOCK, MAPS_VERB):
        maps = out / MAPS_FILE
        # As lcm.cli checks a verb's recorded outputs: the maps and their sidecar can be
        # written, and maps already there are LCM's to replace.
        check_recordable([maps])
        # Maps pretraining wrote (before lcm bei-maps did) are replaced too.
        check_replaceable([maps], MAPS_VERB, writers=(PRETRAIN_VERB,), owner=PRETRAIN_VERB)
        if maps.exists():
            log.warning("%s: replacing %s of an earlier run", MAPS_VERB, maps)
        yield out
