"""One dataset's partitions of the feature store commit as a whole.

``lcm store`` writes a dataset's connectome partition (of one atlas), its variables partition and
its missingness report. A writer killed between them must not leave new connectomes beside stale
variables, so the files are committed together:

1. Under a per-(store, dataset) advisory lock (``<store>/_lcm/dataset=<D>/.lcm.lock``; other
   datasets write in parallel), every file is written to a hidden *staged* sibling of its
   destination (``.<name>.lcmstaged-<host>-<pid>-<hex>``: it never matches ``*.parquet``).
2. A journal (``<store>/_lcm/dataset=<D>/journal.json``, written atomically) lists the renames.
3. The staged files are renamed onto their destinations, then the journal is removed.

A staged file whose content equals its committed destination's (the same rows and metadata, the
commit id and the writing host's facts aside: :func:`same_content`) is not renamed: the
committed file keeps its bytes and commit id (only its mtime is refreshed), so a rerun with the
same inputs leaves everything downstream of it current (``lcm provenance verify``). When every file
is unchanged no journal is written and the log says so.

A journal left by a killed writer is *rolled forward* (its remaining renames done) by the next
writer or by LCM's readers (:func:`recover`), and leftover temporary or staged files of the
dataset are removed. Each Parquet partition also carries ``lcm.variables_id``, a hash of the
variables it was written with: readers refuse a connectome partition whose variables partition
holds other variables (a mix no journal explains), naming both files and the fix. Stores written
before this scheme carry no id and read as before.

The writer can be paused at a named point for tests (``LCM_STORE_PAUSE_AT=<point>``, see
:func:`pause_point`); nothing else reads that variable.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lcm.docstrings import fill_doc
from lcm.exceptions import InputDataError, OutputBusyError, OutputOwnershipError
from lcm.io.atomic import STAGED_TAG, TMP_TAG, fsync_path, temporary_name, write_json
from lcm.io.disk_full import no_room_errno
from lcm.io.lock import exclusive_lock
from lcm.io.ownership import STORE_STATE_DIR
from lcm.io.paths import dataset_partitions, missingness_path
from lcm.io.provenance import provenance_path

log = logging.getLogger(__name__)

COMMIT_KEY = "lcm.commit"
VARIABLES_ID_KEY = "lcm.variables_id"
# "_lcm": readers (pyarrow, pandas, DuckDB globs) skip it: "_" prefix, no .parquet. Its
# presence marks a store's root, where other verbs write nothing (lcm.io.ownership).
STATE_DIR = STORE_STATE_DIR
PAUSE_ENV = "LCM_STORE_PAUSE_AT"
# Keys of a partition's ``lcm.provenance`` that describe the writing process, not the content
# (lcm.io.provenance.environment and the writer's library versions): a rerun elsewhere with the
# same inputs writes the same content.
PROCESS_KEYS = frozenset(
    {"lcm_version", "python", "host", "slurm_job_id", "slurm_allocation"}
    | {"numpy_version", "pyarrow_version"}
)
# How long a reader waits for a live writer to finish its renames before giving up.
WAIT_S = 10.0


class MixedStoreError(InputDataError):
    """A dataset's connectome and variables partitions come from different ``lcm store`` runs."""


@fill_doc
def state_dir(store: str | Path, dataset: str) -> Path:
    """Folder of ``dataset``'s lock and journal inside ``store``.

    Parameters
    ----------
    %(store)s
    %(dataset)s

    Returns
    -------
    pathlib.Path
        ``<store>/<STATE_DIR>/dataset=<dataset>``; not created here.
    """
    return Path(store) / STATE_DIR / f"dataset={dataset}"


@fill_doc
def journal_path(store: str | Path, dataset: str) -> Path:
    """The journal of ``dataset``'s commit in progress (absent when none is).

    Parameters
    ----------
    %(store)s
    %(dataset)s

    Returns
    -------
    pathlib.Path
    """
    return state_dir(store, dataset) / "journal.json"


@fill_doc
def lock_path(store: str | Path, dataset: str) -> Path:
    """The advisory lock file held while ``dataset`` is written or recovered.

    Parameters
    ----------
    %(store)s
    %(dataset)s

    Returns
    -------
    pathlib.Path
    """
    return state_dir(store, dataset) / ".lcm.lock"


@fill_doc
def rerun_hint(dataset: str, atlas: str | None = None) -> str:
    """How to rewrite ``dataset``'s partitions (of ``atlas``, when one is stale).

    The variables partition is shared by a dataset's atlases: storing the dataset for one
    atlas leaves its other atlases' connectomes paired with the old variables until they are
    stored again too.

    In the workflow the store job is named, forced: Snakemake puts a killed store job's old
    partitions back with a new modification time (``update()`` outputs), and a plain rerun can
    call them current, doing nothing.

    Parameters
    ----------
    %(dataset)s
    atlas : str, optional
        The atlas whose partition is stale; None names no atlas in the command.

    Returns
    -------
    str
        The hint sentence, for an :class:`~lcm.exceptions.InputDataError`.
    """
    which = f" --atlas {atlas}" if atlas else ""
    return (
        f"Rerun `lcm store --dataset {dataset}{which} ...` to rewrite its partitions (in the "
        "workflow: `snakemake --forcerun store`; a plain rerun can take partitions Snakemake "
        "put back after a killed store job for current); storing a dataset for one atlas "
        "leaves its other atlases to be stored again."
    )


_PAUSED: set[str] = set()


def pause_point(point: str) -> None:
    """Test hook: stop here when ``LCM_STORE_PAUSE_AT`` names ``point``.

    Points: ``staged`` (all files staged, no journal yet), ``journal`` (journal written, nothing
    renamed), ``renamed-1`` (the first partition renamed, the others not). The process writes
    ``LCM_STORE_PAUSED <point>`` to stderr and sleeps until killed, so that a test can ``kill -9``
    it in exactly that state. Each point pauses once per process.

    Parameters
    ----------
    point : str
        The point reached: ``staged``, ``journal`` or ``renamed-1``.
    """
    if os.environ.get(PAUSE_ENV) == point and point not in _PAUSED:
        _PAUSED.add(point)  # once: an interrupted commit passes the point again to finish
        sys.stderr.write(f"LCM_STORE_PAUSED {point}\n")
        sys.stderr.flush()
        time.sleep(3600)


class DatasetCommit:
    """The staged files of one ``lcm store`` run of a dataset, made visible together.

    Create it with :func:`commit_dataset`; writers stage each file with :meth:`stage`, then the
    caller calls :meth:`apply`.

    Attributes
    ----------
    id : str
        Unique identity of this commit (``lcm.commit`` in the Parquet key-value metadata).
    variables_id : str
        Hash of the variables written (``lcm.variables_id``).
    """

    def __init__(self, store: str | Path, dataset: str, variables_id: str) -> None:
        self.store = Path(store)
        self.dataset = dataset
        self.id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}"
        self.variables_id = variables_id
        self.moves: list[tuple[Path, Path]] = []
        self.applied = False
        # Set once the journal is written: from then on the commit is finished, never undone.
        self.journaled = False

    def metadata(self) -> dict[str, str]:
        """Key-value metadata every Parquet partition of this commit carries."""
        return {COMMIT_KEY: self.id, VARIABLES_ID_KEY: self.variables_id}

    @contextlib.contextmanager
    def stage(self, final: str | Path) -> Iterator[Path]:
        """Yield a hidden staged sibling of ``final`` to write; it is renamed at :meth:`apply`.

        Parameters
        ----------
        final : path-like
            Destination of the file (its folder is created).

        Yields
        ------
        pathlib.Path
            The staged file (umask-governed mode), removed if the block raises.
        """
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = temporary_name(final, STAGED_TAG)
        os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        try:
            yield staged
        except BaseException as exc:
            staged.unlink(missing_ok=True)
            # Out of room: pyarrow's error names no file, and the verb named the store's
            # folder; say which partition it was (as atomic_path does).
            code = no_room_errno(exc) if isinstance(exc, Exception) else None
            if code is None:
                raise
            raise OSError(code, os.strerror(code), str(final)) from exc
        self.moves.append((staged, final))

    def apply(self) -> None:
        """Make every staged file visible: flush them, write the journal, rename, drop it.

        A staged file with the content of its committed destination (:func:`same_content`) is
        dropped instead, leaving the committed file's bytes as they are (its mtime is refreshed,
        so that make-like tools see it as made by this run); with every file unchanged no
        journal is written.
        """
        kept = [(s, f) for s, f in self.moves if same_content(s, f)]
        for staged, final in kept:
            staged.unlink(missing_ok=True)
            os.utime(final)
        self.moves = [m for m in self.moves if m not in kept]
        if kept:
            names = ", ".join(os.path.relpath(f, self.store) for _, f in kept)
            if not self.moves:
                log.info(
                    "%s: %s unchanged (the same content as committed); kept its files (%s) and "
                    "their commit %s",
                    self.store,
                    self.dataset,
                    names,
                    _commit_of(kept[0][1]),
                )
                self.applied = True
                return
            log.info("%s: %s: unchanged, kept as committed: %s", self.store, self.dataset, names)
        for staged, _ in self.moves:
            fsync_path(staged)
        pause_point("staged")
        journal = {
            "commit": self.id,
            "dataset": self.dataset,
            "moves": [
                [os.path.relpath(s, self.store), os.path.relpath(f, self.store)]
                for s, f in self.moves
            ],
        }
        write_json(journal_path(self.store, self.dataset), journal)
        self.journaled = True
        fsync_path(journal_path(self.store, self.dataset).parent)
        pause_point("journal")
        _roll_forward(self.store, self.dataset)
        self.applied = True

    def discard(self) -> None:
        """Remove the staged files of a commit that will not happen."""
        for staged, _ in self.moves:
            staged.unlink(missing_ok=True)
        self.moves = []


def same_content(staged: Path, final: Path) -> bool:
    """Whether ``staged`` holds what the committed ``final`` holds.

    Parquet partitions compare by schema, rows and key-value metadata, leaving out the commit id
    (:data:`COMMIT_KEY`) and the writing process's facts in ``lcm.provenance``
    (:data:`PROCESS_KEYS`); any other file compares byte for byte. A missing or unreadable
    ``final`` differs.

    Parameters
    ----------
    staged : pathlib.Path
        The file staged by this commit.
    final : pathlib.Path
        The committed file it would replace.

    Returns
    -------
    bool
    """
    if not final.is_file():
        return False
    if final.suffix != ".parquet":
        return filecmp.cmp(staged, final, shallow=False)
    try:
        new, old = pq.ParquetFile(staged), pq.ParquetFile(final)
        if _content_metadata(new.schema_arrow) != _content_metadata(old.schema_arrow):
            return False
        if not new.schema_arrow.remove_metadata().equals(old.schema_arrow.remove_metadata()):
            return False
        if new.metadata.num_rows != old.metadata.num_rows:
            return False
        if new.metadata.num_row_groups != old.metadata.num_row_groups:
            return False
        # One row group at a time: memory stays at the writer's row-group size.
        for g in range(new.metadata.num_row_groups):
            if not _same_table(new.read_row_group(g), old.read_row_group(g)):
                return False
    except (pa.ArrowException, OSError, ValueError):
        return False
    return True


def _same_table(a: pa.Table, b: pa.Table) -> bool:
    """Column by column; NaN equals NaN (a QC value not measured is NaN in both)."""
    for x, y in zip(a.columns, b.columns, strict=True):
        if pa.types.is_floating(x.type):
            xs, ys = x.to_numpy(), y.to_numpy()  # nulls read as NaN, as written
            if not np.array_equal(xs, ys, equal_nan=True) or x.null_count != y.null_count:
                return False
        elif not x.equals(y):
            return False
    return True


def _content_metadata(schema: pa.Schema) -> dict[bytes, object]:
    """A partition's key-value metadata without its commit id and writing process's facts."""
    meta = {k: v for k, v in (schema.metadata or {}).items() if k != COMMIT_KEY.encode()}
    raw = meta.get(b"lcm.provenance")
    if raw is not None:
        try:
            record = json.loads(raw)
        except ValueError:
            return meta
        if isinstance(record, dict):
            meta[b"lcm.provenance"] = {
                k: v
                for k, v in record.items()
                if k not in PROCESS_KEYS and not str(k).startswith("git_")
            }
    return meta


def _commit_of(path: Path) -> str:
    """The ``lcm.commit`` of a Parquet partition ("none" for another file or none recorded)."""
    if path.suffix != ".parquet":
        return "none"
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError):
        return "none"
    return meta.get(COMMIT_KEY.encode(), b"none").decode()


@fill_doc
@contextlib.contextmanager
def commit_dataset(
    store: str | Path,
    dataset: str,
    variables_id: str,
    destinations: Iterable[str | Path] = (),
) -> Iterator[DatasetCommit]:
    """Hold ``dataset``'s lock, recover a killed writer's state, and yield a new commit.

    The caller stages its files (:meth:`DatasetCommit.stage`) and calls
    :meth:`DatasetCommit.apply`; anything staged but not applied when the block ends (an error)
    is removed. The lock is held until the block ends, so files written after ``apply`` (the
    provenance sidecars) are written by this writer alone.

    Parameters
    ----------
    %(store)s
    dataset : str
    variables_id : str
        Hash of the variables to be written (:func:`lcm.store.writer.variables_id`).
    destinations : iterable of path-like, optional
        The files the commit will stage; on the dataset's first commit in ``store``, one there
        already that LCM did not write is refused (:func:`refuse_foreign`).

    Yields
    ------
    DatasetCommit

    Raises
    ------
    OutputBusyError
        Another process writes ``dataset`` into ``store``.
    OutputOwnershipError
        A destination holds a file LCM did not write.
    """
    what = f"`lcm store --dataset {dataset}` (feature store {store})"
    if not state_dir(store, dataset).is_dir():  # taking the lock makes it
        refuse_foreign(destinations, dataset)
    with exclusive_lock(lock_path(store, dataset), what):
        recover(store, dataset, locked=True)
        commit = DatasetCommit(store, dataset, variables_id)
        try:
            yield commit
        finally:
            if commit.journaled and not commit.applied:
                # Interrupted (Ctrl-C) between the journal and its last rename: finished as
                # a killed writer's is; discarded, its staged files went and the renames done
                # left new partitions beside old ones.
                _roll_forward(store, dataset)
            elif not commit.applied:
                commit.discard()


def refuse_foreign(destinations: Iterable[str | Path], dataset: str) -> None:
    """Refuse destinations of a dataset's first commit that hold files LCM did not write.

    Before the dataset's first commit no lock of LCM's guards them, so a file there is a
    user's (another tool's ``part-0.parquet``, notes named like the report), replaced before
    without a word. A Parquet partition LCM wrote says so in its metadata (stores of LCM
    versions before the commit journal too); another file needs its provenance record.

    Parameters
    ----------
    destinations : iterable of path-like
        The files the commit will stage.
    dataset : str
        The dataset, for the message.

    Raises
    ------
    OutputOwnershipError
        Naming the first such file, with the fix.
    """
    for path in map(Path, destinations):
        if not (path.exists() or path.is_symlink()) or _written_by_lcm(path):
            continue
        raise OutputOwnershipError(
            f"lcm store --dataset {dataset}: {path} exists and LCM did not write it (not a "
            "partition with LCM's metadata, nor a file with its provenance record); nothing "
            "was written.",
            hint=f"Move or delete {path} if it may go, or give another --store-dir.",
        )


def _written_by_lcm(path: Path) -> bool:
    """Whether the file at ``path`` (no link) is one an ``lcm store`` wrote."""
    if path.is_symlink() or not path.is_file():
        return False
    if path.suffix == ".parquet":
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException):
            return False
        return b"lcm.schema_version" in meta
    return provenance_path(path).is_file()


@fill_doc
def recover(store: str | Path, dataset: str, *, locked: bool = False) -> None:
    """Finish (roll forward) a commit of ``dataset`` whose writer died; remove its leftovers.

    Readers call this before reading a dataset: it costs one ``stat`` when no journal is
    pending. With a journal pending, the lock is taken (waiting up to :data:`WAIT_S` seconds
    for a live writer to finish), the journal's remaining renames are done, and the dataset's
    leftover temporary and staged files are removed.

    Parameters
    ----------
    %(store)s
    dataset : str
    locked : bool
        The caller already holds the dataset's lock (a writer): recover unconditionally.

    Raises
    ------
    InputDataError
        A journal is pending but the store cannot be written here (read-only), or a writer
        holds the lock for longer than :data:`WAIT_S` seconds.
    """
    if locked:
        _roll_forward(store, dataset)
        _remove_leftovers(store, dataset)
        return
    journal = journal_path(store, dataset)
    deadline = time.monotonic() + WAIT_S
    while journal.exists():
        try:
            with exclusive_lock(lock_path(store, dataset), f"`lcm store --dataset {dataset}`"):
                _roll_forward(store, dataset)
                _remove_leftovers(store, dataset)
            return
        except OutputBusyError:
            # A live writer is between its renames; it removes the journal when done.
            if time.monotonic() > deadline:
                raise InputDataError(
                    f"Feature store {store}: dataset {dataset!r} is being written by another "
                    f"`lcm store` (its commit journal {journal} stays pending).",
                    hint="Wait for that run to finish, then read again.",
                ) from None
            time.sleep(0.1)
        except OSError as exc:  # a read-only store: no lock file, no rename
            raise InputDataError(
                f"Feature store {store}: an `lcm store` of dataset {dataset!r} stopped before "
                f"finishing its commit ({journal}), and this process cannot complete it "
                f"({exc.strerror}: {exc.filename}).",
                hint=rerun_hint(dataset) + " Or read once with write access to the store.",
            ) from None


def _roll_forward(store: str | Path, dataset: str) -> bool:
    """Do the renames a journal lists that are not done yet; remove it. Lock held."""
    store = Path(store)
    journal = journal_path(store, dataset)
    try:
        record = json.loads(journal.read_text())
        moves = [(store / s, store / f) for s, f in record["moves"]]
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The journal is written atomically, so this is damage from outside: the renames it
        # would list cannot be known. The staged files are left for the clean-up; the
        # partitions stay as they were, and the commit-id check refuses any mix.
        log.warning("%s: unreadable commit journal (%s); discarded", journal, exc)
        journal.unlink(missing_ok=True)
        return False
    # A partition renamed into place and then replaced from outside (Snakemake puts its backup
    # of an update() output back when the job fails) no longer carries this commit: the commit
    # was undone, and finishing it would pair the old partition with new ones. Dropped instead:
    # its staged files go with the leftovers, the job stays due (its plain output deleted).
    undone = [
        final
        for staged, final in moves
        if not staged.exists()
        and final.suffix == ".parquet"
        and final.is_file()
        and _commit_of(final) not in (record.get("commit"), "none")
    ]
    if undone:
        log.warning(
            "%s: commit %s of %s was undone from outside (%s holds another commit); its "
            "remaining renames are dropped",
            store,
            record.get("commit"),
            dataset,
            undone[0],
        )
        moves = []
    for i, (staged, final) in enumerate(moves):
        if staged.exists():
            os.replace(staged, final)
        if i == 0:
            pause_point("renamed-1")
    for folder in {f.parent for _, f in moves}:
        fsync_path(folder)
    journal.unlink(missing_ok=True)
    if record.get("commit"):
        log.info("%s: commit %s of %s complete", store, record["commit"], dataset)
    return True


def _remove_leftovers(store: str | Path, dataset: str) -> list[Path]:
    """Remove the temporary and staged files of ``dataset``'s destinations. Lock held.

    Under the lock no other ``lcm store`` writes these destinations, and a pending journal was
    just rolled forward, so every such file is left over from a killed writer (including the
    ``.part-0.parquet.XXXX.tmp.parquet`` files of LCM versions before the staged commit);
    nothing else is touched.
    """
    store = Path(store)
    folders = dataset_partitions(store, dataset)
    # Only LCM's own names: its tags, or the partition temporaries of older versions; a user's
    # ".notes.tmp" beside a partition was deleted on every run.
    leftover = re.compile(
        rf"^\..+\.({TMP_TAG}|{STAGED_TAG})-|^\.part-0\.parquet\.[A-Za-z0-9_]+\.tmp\.parquet$"
    )
    report = missingness_path(store, dataset)
    own_report = re.compile(rf"^\.{re.escape(report.stem)}\.(tsv|json)\.({TMP_TAG}|{STAGED_TAG})-")
    candidates = [p for folder in folders if folder.is_dir() for p in folder.iterdir()]
    reports = report.parent
    if reports.is_dir():
        candidates += [p for p in reports.iterdir() if own_report.match(p.name)]
    removed = []
    for path in candidates:
        if path.is_file() and leftover.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d leftover file(s) of a killed writer: %s", len(removed), removed[:5])
    return removed
