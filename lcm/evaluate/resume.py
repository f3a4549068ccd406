"""The finished fits of an evaluation, kept across a kill: one module reads and writes them.

``lcm evaluate`` runs many fits (models x folds x seeds x label fractions), hours of them on a
cluster. Each fit's result (its test predictions, its fit seconds and its pseudo-label record)
is saved as it finishes, atomically, in a state folder LCM owns (:func:`state_folder`, beside
the metrics); the same command run again after a kill (time limit, preemption, OOM, Ctrl-C)
reuses every saved fit and runs only the rest, and writes the same bytes as an uninterrupted
run.

The folder holds ``evaluate_state.json`` (what every fit depends on: the inputs' sha256, the
task, the settings, the master seed, the data fingerprint and the code; :func:`run_fields`)
and one ``fit-<sha256>.npz`` per finished fit, named by the hash of that fit's own rows,
targets, model and seed (:func:`fit_key`) and holding the digest of its content. A state of
other inputs, settings or code is ignored with a warning naming what differs, and its fits
removed; a fit file that cannot be read or whose digest differs is fitted again. Nothing is
unpickled.

One evaluation writes a state at a time, as one training writes its output folder: the run
holds the folder's lock (:func:`lcm.io.lock.exclusive_lock`, ``.lcm.lock``, naming its pid and
host) from opening it (creating it when there is none), before any fit, until its tables are
written. A second run of the same ``--out`` (a rerun by hand while the SLURM job still runs,
a second Snakemake, two started at once) is refused then, before any fit, having written
nothing. A run that saves no fit in a folder it created (refused after opening it) removes
it. The kernel releases the lock with its holder, even on ``kill -9``: the lock file a killed
run leaves blocks no rerun.

The state also records what its LCM fits computed with (torch version and device,
``computed_with``): a fit on another GPU differs by rounding, so a resumption with another
is warned, naming both, and goes on.

The state is kept once the outputs are written, as pretraining's ``train_state/`` is: a job
killed after writing them (its time limit striking while Snakemake's wrapper still runs) is
retried with its outputs deleted, and the retry writes them again from the state without
fitting. It is small (predictions only). The state records how many fits its run has
(``n_fits``, when they are loaded): one holding them all is of a finished evaluation
(:func:`progress`), which ``lcm prune-states`` removes once its run's metrics table is written
(the table's sha256 recorded in the state: :func:`written`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lcm.evaluate.parallel import FitJob
from lcm.exceptions import OutputBusyError, OutputOwnershipError
from lcm.io.atomic import TMP_TAG, atomic_path, write_json
from lcm.io.lock import LOCK_NAME, exclusive_lock
from lcm.io.ownership import MARKER_NAME, claim_out_dir, remove_owned
from lcm.io.provenance import sha256_file

log = logging.getLogger(__name__)

VERB = "lcm evaluate"
META_NAME = "evaluate_state.json"
FORMAT_VERSION = 1
# The end of a state folder's name: <metrics file's stem>_evaluate_state, beside it.
FOLDER_SUFFIX = "_evaluate_state"
_FIT_RE = re.compile(r"fit-[0-9a-f]{64}\.npz")
OUTPUTS = (META_NAME, "fit-*.npz")  # what the folder holds: ownership checks go by these
# The state's record of what its fits computed with (not a run field: it changes no fit's
# inputs, only its rounding, so another is warned, not a reason to fit again).
COMPUTE_KEY = "computed_with"
# The number of fits of the run (a function of its fields, recorded once its jobs are known):
# a state holding that many is of a finished evaluation.
FITS_KEY = "n_fits"
# The sha256 of the metrics table its run wrote (recorded once written, dropped when another
# run takes the folder): a finished state is finished only beside its own run's table.
OUTPUT_KEY = "metrics_sha256"
# The npz members of a fit file (no object arrays: read with allow_pickle=False).
_MEMBERS = ("key", "predictions", "fit_seconds", "record", "digest")


def state_folder(out: str | os.PathLike[str]) -> Path:
    """The state folder of the evaluation writing the metrics table ``out``.

    Parameters
    ----------
    out : path-like
        The metrics Parquet (``--out``), e.g. ``results/metrics/task-autism_metrics.parquet``.

    Returns
    -------
    pathlib.Path
        ``results/metrics/task-autism_metrics_evaluate_state`` for that example: not a declared
        output of the workflow, so Snakemake does not delete it when the job fails.
    """
    path = Path(out)
    return path.with_name(f"{path.name.removesuffix('.parquet')}{FOLDER_SUFFIX}")


def metrics_path(folder: str | os.PathLike[str]) -> Path:
    """The metrics table (``--out``) of the evaluation whose state folder is ``folder``.

    Parameters
    ----------
    folder : path-like
        A state folder (:func:`state_folder`).

    Returns
    -------
    pathlib.Path
        ``results/metrics/task-autism_metrics.parquet`` for
        ``results/metrics/task-autism_metrics_evaluate_state``.
    """
    path = Path(folder)
    return path.with_name(f"{path.name.removesuffix(FOLDER_SUFFIX)}.parquet")


def run_fields(
    *,
    task: dict[str, Any],
    settings: dict[str, Any],
    master_seed: int,
    data: str,
    inputs: dict[str, str],
    splits: str | None,
    code: dict[str, Any],
) -> dict[str, Any]:
    """What every fit of an evaluation depends on besides its own rows (stored with the state,
    so that another run's state is ignored with a warning naming what differs).

    Parameters
    ----------
    task : dict
        The task's name, label, levels and kind.
    settings : dict
        The ``evaluate`` settings, every key (``control_permutations`` included).
    master_seed : int
    data : str
        The cohort's data fingerprint (:func:`lcm.io.run_digests.data_fingerprint`).
    inputs : dict
        ``path -> sha256`` of every input file (store, catalogue, splits table, checkpoints).
    splits : str or None
        sha256 of the splits table's rows as read (None: folds drawn here).
    code : dict
        ``lcm_version`` and ``code_sha256`` (the hash of the verb's code, when known).

    Returns
    -------
    dict
        Plain JSON types.
    """
    fields = {
        "format_version": FORMAT_VERSION,
        "task": task,
        "settings": settings,
        "master_seed": master_seed,
        "data": data,
        "inputs": inputs,
        "splits": splits,
        "code": code,
    }
    return json.loads(json.dumps(fields, sort_keys=True, default=str))


def fit_key(job: FitJob) -> str:
    """sha256 of what one fit depends on beyond :func:`run_fields`: model, seed, rows, targets.

    The training variables are a function of the training rows and of which of them keep their
    label (``y_fit``), both hashed here, given the data the state's fields fix.

    Parameters
    ----------
    job : FitJob
        The fit.

    Returns
    -------
    str
        Hex digest; the fit's file is ``fit-<key>.npz``.
    """
    digest = hashlib.sha256()
    digest.update(f"{job.name}\0{job.context.seed}\0".encode())
    for array in (job.train, job.test, job.y_fit, job.groups):
        values = np.ascontiguousarray(np.asarray(array))
        kind = values.dtype.str if values.dtype != object else "object"
        digest.update(f"{kind}{values.shape}\0".encode())
        digest.update(
            values.tobytes() if values.dtype != object else repr(values.tolist()).encode()
        )
    return digest.hexdigest()


class FitState:
    """The saved fits of one evaluation (:func:`open_state` opens one), and the lock on them.

    Used as a context manager: the lock it holds is released at the end of the block (or by
    :meth:`close`).

    Parameters
    ----------
    folder : pathlib.Path
        The state folder, claimed by ``lcm evaluate``.
    fields : dict
        This run's :func:`run_fields`, as its JSON holds them.
    compute : dict, optional
        What this run's LCM fits compute with (``torch`` version, ``device``); None when it
        runs none.
    """

    def __init__(
        self, folder: Path, fields: dict[str, Any], compute: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.fields = fields
        self.compute = compute
        self.n_saved = 0
        self._lock = contextlib.ExitStack()
        self._held = False
        self._created = False  # whether this run created the folder (removed if left unused)

    def __enter__(self) -> FitState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's lock (a second evaluation may then open it).

        A folder this run created and saved no fit in (a run refused after opening it) is
        removed first, LCM's files only: a run refused before its first fit leaves none.
        """
        if self._held and self._created and not any(_FIT_RE.fullmatch(n) for n in _names(self)):
            remove_owned(self.folder, [META_NAME])
        self._lock.close()
        self._held = False
        self._created = False

    def load(self, jobs: Sequence[FitJob]) -> dict[int, tuple[Any, ...]]:
        """The saved result of each of ``jobs`` that has one, by index in ``jobs``.

        A fit file that cannot be read, or whose content differs from its digest, is left out
        with a warning (that fit runs again and replaces it).

        Parameters
        ----------
        jobs : sequence of FitJob
            The evaluation's fits.

        Returns
        -------
        dict of int to tuple
            ``(predictions, fit seconds, record)`` by index in ``jobs``.
        """
        found: dict[int, tuple[Any, ...]] = {}
        if not self._held:
            return found
        _record_fits(self.folder, len(jobs))
        for index, job in enumerate(jobs):
            key = fit_key(job)
            path = self.folder / f"fit-{key}.npz"
            if not path.is_file():
                continue
            result = _read_fit(path, key)
            if result is not None:
                found[index] = result
        return found

    def save(self, job: FitJob, result: tuple[Any, ...]) -> None:
        """Save one finished fit's ``(predictions, fit seconds, record)`` atomically.

        A record that would not read back as the same JSON (a type JSON does not keep) is not
        saved, with a warning: reused, it would change the outputs' bytes.

        Parameters
        ----------
        job : FitJob
            The fit.
        result : tuple
            ``(predictions, fit seconds, record)``, as the fit returned it.
        """
        predictions, fit_seconds, record = result
        try:  # plain JSON only (no numpy scalars), so that it reads back as the same record
            text = json.dumps(record, sort_keys=True)
        except (TypeError, ValueError):
            log.warning(
                "fit of %s not saved for resumption: its record is not plain JSON", job.name
            )
            return
        key = fit_key(job)
        values = np.asarray(predictions, dtype=float)
        members = {
            "key": np.array(key),
            "predictions": values,
            "fit_seconds": np.array(float(fit_seconds)),
            "record": np.array(text),
        }
        members["digest"] = np.array(_digest(members))
        buffer = io.BytesIO()
        np.savez(buffer, **members)
        with atomic_path(self.folder / f"fit-{key}.npz") as tmp:
            tmp.write_bytes(buffer.getvalue())
        self.n_saved += 1

    def wrote(self, out: str | os.PathLike[str]) -> None:
        """Record that this run wrote its metrics table ``out`` (its sha256, :func:`written`).

        Call once the tables are written, before :meth:`close`: ``lcm prune-states`` removes a
        state holding every fit only beside the table its own run wrote, not another run's.

        Parameters
        ----------
        out : path-like
            The metrics table (``--out``), beside the state folder.
        """
        if not self._held:
            return
        meta_path = self.folder / META_NAME
        meta = json.loads(meta_path.read_text())
        write_json(meta_path, {**meta, OUTPUT_KEY: sha256_file(out)})

    def _take(self) -> None:
        """Claim the folder (created if missing), hold its lock until :meth:`close`, and make its
        record this run's (another evaluation's fits removed, with a warning naming what
        differs)."""
        created = not self.folder.exists()
        _claim(self.folder)
        try:
            self._lock.enter_context(exclusive_lock(self.folder / LOCK_NAME, VERB))
        except OutputBusyError as exc:
            raise OutputBusyError(
                f"{exc.message} It is where lcm evaluate keeps its finished fits for "
                f"resumption, named after --out (<--out without .parquet>{FOLDER_SUFFIX}); "
                "nothing was written.",
                hint="Wait for that evaluation to end (the same command run then reuses its "
                "fits), or choose another --out.",
            ) from None
        self._held = True
        self._created = created
        try:
            _reconcile(self.folder, self.fields, self.compute)
        except BaseException:
            self.close()
            raise


def open_state(
    folder: str | os.PathLike[str],
    fields: dict[str, Any],
    compute: dict[str, str] | None = None,
) -> FitState:
    """Claim ``folder`` for ``lcm evaluate``, lock it, and open its saved fits for ``fields``.

    A state written for other inputs, settings, seed or code is ignored with a warning naming
    what differs, and its fit files are removed; the folder then records ``fields``. Saved
    fits computed with another torch or device than ``compute`` are reused, with a warning
    naming both.

    Parameters
    ----------
    folder : path-like
        The state folder (:func:`state_folder`); created if missing, and locked now, before
        any fit: a second evaluation started at once is refused before it fits anything.
        Removed at :meth:`FitState.close` when this run created it and saved no fit in it.
    fields : dict
        :func:`run_fields` of this run.
    compute : dict, optional
        What this run's LCM fits compute with: ``{"torch": version, "device": name}``; None
        when it runs none (recorded in the state, never a reason to fit again).

    Returns
    -------
    FitState
        Holding the folder's lock: use it as a context manager, or call
        :meth:`FitState.close`, to release it.

    Raises
    ------
    lcm.exceptions.OutputOwnershipError
        The folder holds files LCM did not write, or another verb's outputs.
    lcm.exceptions.OutputBusyError
        Another evaluation holds the folder's lock (nothing is written).
    """
    state = FitState(Path(folder), fields, compute)
    # Locked before any fit, the folder created if need be: two runs started at once on a new
    # state both fitted, the second refused only when saving its first fit (its compute lost).
    state._take()
    return state


def _names(state: FitState) -> list[str]:
    """The names in the state's folder (none when it is gone)."""
    try:
        return os.listdir(state.folder)
    except OSError:
        return []


def _reconcile(path: Path, fields: dict[str, Any], compute: dict[str, str] | None) -> None:
    """Make the locked state folder's record this run's: remove another evaluation's fits
    (warned), and warn where the fits kept were computed with another torch or device."""
    meta_path = path / META_NAME
    saved: Any = None
    if meta_path.is_file():
        try:
            saved = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            saved = "unreadable"
    run = saved
    computed: Any = []
    n_fits = None
    output = None
    if isinstance(saved, dict):
        run = {k: v for k, v in saved.items() if k not in (COMPUTE_KEY, FITS_KEY, OUTPUT_KEY)}
        computed = saved.get(COMPUTE_KEY, [])
        n_fits = saved.get(FITS_KEY)
        output = saved.get(OUTPUT_KEY)
    fits = sorted(n for n in os.listdir(path) if _FIT_RE.fullmatch(n))
    if run != fields and (run is not None or fits):
        log.warning(
            "ignoring the %d saved fit(s) in %s: they belong to another evaluation (%s); every "
            "fit runs again",
            len(fits),
            path,
            what_differs(run, fields),
        )
        for name in fits:
            (path / name).unlink(missing_ok=True)
        fits = []
    if run != fields or not isinstance(computed, list):
        computed = []
    if run != fields:  # (the table beside it, if any, is the other run's)
        n_fits, output = None, None
    if compute is not None and compute not in computed:
        if fits and computed:
            log.warning(
                "the %d saved fit(s) in %s were computed with %s; this run computes with %s: "
                "they are reused, but the metrics will differ in rounding from those of an "
                "uninterrupted run (delete the folder to fit them all again here)",
                len(fits),
                path,
                " and ".join(map(_described, computed)),
                _described(compute),
            )
        computed = [*computed, compute]
    meta = {**fields, COMPUTE_KEY: computed} if computed else dict(fields)
    if n_fits is not None:
        meta[FITS_KEY] = n_fits
    if output is not None:
        meta[OUTPUT_KEY] = output
    if saved != meta:
        write_json(meta_path, meta)


def _record_fits(path: Path, n_fits: int) -> None:
    """Record in the locked state's JSON how many fits its run has (:func:`progress`)."""
    meta_path = path / META_NAME
    meta = json.loads(meta_path.read_text())
    if meta.get(FITS_KEY) != n_fits:
        write_json(meta_path, {**meta, FITS_KEY: n_fits})


def progress(folder: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether the state in ``folder`` holds every fit of its evaluation.

    The evaluation writes its tables once it has every fit's result; a state holding them all
    (as many fit files as its JSON records fits, each named by its fit: fits of another run are
    removed when the folder is opened) is of a finished one. A state whose JSON records no
    number (of an LCM version that did not, or of a run killed before it listed its fits) is
    not.

    Parameters
    ----------
    folder : path-like
        A state folder (:func:`state_folder`).

    Returns
    -------
    bool
        Whether every fit of the run is saved.
    str
        ``"24 of 24 fits saved"``, or why it is not known.
    """
    path = Path(folder)
    try:
        meta = json.loads((path / META_NAME).read_text())
    except FileNotFoundError:
        return False, f"no {META_NAME}"
    except (OSError, UnicodeDecodeError, ValueError):
        return False, f"its {META_NAME} cannot be read"
    n_fits = meta.get(FITS_KEY) if isinstance(meta, dict) else None
    saved = sum(1 for name in os.listdir(path) if _FIT_RE.fullmatch(name))
    if not isinstance(n_fits, int) or isinstance(n_fits, bool):
        return False, f"{saved} fit(s) saved, how many its run has not recorded"
    return saved >= n_fits, f"{saved} of {n_fits} fits saved"


def written(folder: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether the metrics table beside the state in ``folder`` is the one its run wrote.

    The run records its table's sha256 once written (:meth:`FitState.wrote`); another run
    taking the folder drops it. A table of another run (one with other settings killed before
    writing its own leaves the earlier run's there), or of an LCM version that recorded none,
    is not.

    Parameters
    ----------
    folder : path-like
        A state folder (:func:`state_folder`).

    Returns
    -------
    bool
        Whether :func:`metrics_path` exists and is the state's run's.
    str
        ``"task-a_metrics.parquet written"``, or why not.
    """
    metrics = metrics_path(folder)
    if not metrics.is_file():
        return False, f"{metrics.name} not written"
    try:
        meta = json.loads((Path(folder) / META_NAME).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False, f"its {META_NAME} cannot be read"
    recorded = meta.get(OUTPUT_KEY) if isinstance(meta, dict) else None
    if not isinstance(recorded, str):
        return False, (
            f"{metrics.name} is not recorded as its run's (another run's, or one of an earlier "
            "LCM that recorded none)"
        )
    try:
        actual = sha256_file(metrics)
    except OSError as exc:
        return False, f"{metrics.name} cannot be read ({exc})"
    if actual != recorded:
        return False, f"{metrics.name} is another run's (its sha256 is not the one its run wrote)"
    return True, f"{metrics.name} written"


def own_entries(folder: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The entries of a state folder LCM wrote there, and the others.

    Parameters
    ----------
    folder : path-like
        A state folder.

    Returns
    -------
    list of str
        Its record, fit files, marker, lock and temporaries of atomic writes (regular files,
        not links).
    list of str
        Anything else (a user's file put there): such a folder is never deleted whole.
    """
    path = Path(folder)
    names = sorted(os.listdir(path))
    ours = [
        n
        for n in names
        if _plain_file(path / n)
        and (
            n in (META_NAME, MARKER_NAME, LOCK_NAME)
            or _FIT_RE.fullmatch(n)
            or (n.startswith(".") and TMP_TAG in n)
        )
    ]
    return ours, [n for n in names if n not in ours]


def _plain_file(path: Path) -> bool:
    """A regular file, not a link (LCM writes no link: one is a user's)."""
    return path.is_file() and not path.is_symlink()


def _described(compute: Any) -> str:
    """``torch 2.5.1 on cuda (NVIDIA H100 80GB HBM3)``: one entry of ``computed_with``."""
    if not isinstance(compute, dict):
        return repr(compute)
    return f"torch {compute.get('torch')} on {compute.get('device')}"


def _claim(folder: Path) -> Path:
    """Claim the state folder, a refusal naming it as the state of ``--out`` and the fix: the
    user named ``--out``, never this folder (and lcm evaluate has no ``--out-dir``)."""
    try:
        return claim_out_dir(folder, VERB, OUTPUTS)
    except OutputOwnershipError as exc:
        raise OutputOwnershipError(
            f"{exc.message} It is where lcm evaluate keeps its finished fits for resumption, "
            f"named after --out (<--out without .parquet>{FOLDER_SUFFIX}).",
            hint=f"Move those files out of {folder}, or choose another --out.",
        ) from exc


def what_differs(saved: Any, fields: dict[str, Any]) -> str:
    """The fields of this run that differ from those a saved state recorded, in words.

    Parameters
    ----------
    saved : object
        The saved state's JSON (``None`` when it has none, ``"unreadable"`` when it could not
        be read).
    fields : dict
        This run's :func:`run_fields`.

    Returns
    -------
    str
        E.g. ``"settings.n_folds 3 -> 4, inputs: store/.../part-0.parquet changed"``.
    """
    if not isinstance(saved, dict):
        return f"its {META_NAME} is missing or unreadable"
    changes = []
    for key in sorted(set(saved) | set(fields)):
        was, now = saved.get(key), fields.get(key)
        if was == now:
            continue
        if key == "inputs" and isinstance(was, dict) and isinstance(now, dict):
            for path in sorted(set(was) | set(now)):
                if path not in was:
                    changes.append(f"inputs: {path} added")
                elif path not in now:
                    changes.append(f"inputs: {path} no longer read")
                elif was[path] != now[path]:
                    changes.append(f"inputs: {path} changed")
        elif key == "data":
            changes.append("the task's runs or variables")
        elif isinstance(was, dict) and isinstance(now, dict):
            changes += [
                f"{key}.{k} {was.get(k)!r} -> {now.get(k)!r}"
                for k in sorted(set(was) | set(now))
                if was.get(k) != now.get(k)
            ]
        else:
            changes.append(f"{key} {was!r} -> {now!r}")
    return "differs in " + ", ".join(changes)


def _digest(members: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in ("key", "predictions", "fit_seconds", "record"):
        value = members[name]
        digest.update(f"{name}\0{value.dtype.str}{value.shape}\0".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _read_fit(path: Path, key: str) -> tuple[Any, ...] | None:
    """``(predictions, fit seconds, record)`` of a saved fit; None (warned) when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            members = {name: npz[name] for name in _MEMBERS}
        own = str(members["key"]) == key
        ok = own and str(members["digest"]) == _digest(members)
        record = json.loads(str(members["record"])) if ok else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("saved fit %s cannot be read (%s): it runs again", path, exc)
        return None
    if not own:  # a fit file copied or renamed in from another fit or evaluation
        log.warning("saved fit %s holds the fit of another job: this one runs again", path)
        return None
    if not ok:
        log.warning("saved fit %s differs from its recorded digest: it runs again", path)
        return None
    return members["predictions"], float(members["fit_seconds"]), record
