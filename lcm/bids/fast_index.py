"""A fast BIDS indexer: one ``os.scandir`` pass per folder, sidecars resolved by inheritance.

pybids builds a full SQL index of every file and takes hours on a 40,000-subject tree; the
workflow only needs one entry level's BOLD runs (or ROI time series) of one task. This indexer
walks ``sub-*/[ses-*/]func`` once, reads each sidecar once, checks each NIfTI header with a
540-byte read, and reports per subject the files and folders it looked at (with sizes and
mtimes) so that :mod:`lcm.bids.index_cache` can skip unchanged subjects next time. In a raw
dataset that is every file and folder of the subject's tree, whatever its datatype (``anat/``,
``fmap/``, ``*_scans.tsv`` ...): the BIDS validator and fMRIPrep read them all, so an edit there
changes the subject's validator verdict and reruns its fMRIPrep job. A derivatives tree records
only the files the index reads.
In DataLad (git-annex) datasets, files whose content was not fetched are symlinks to absent
targets: such a data file is an excluded row (``not_fetched``, naming ``datalad get``), and
so is every run such a sidecar applies to, never a run with a farther sidecar's metadata.
pybids stays the reference: on small trees both give the same rows
(tests/helpers/pybids_index.py, tests/unit/bids/test_bids_fast_index.py).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from stat import S_ISDIR
from typing import Any

from lcm.bids.dataset import setting_names
from lcm.bids.manifest import exclude_duplicates
from lcm.bids.nifti_header import UnreadableHeader, read_bold_header
from lcm.bids.rows import (
    BAD_SIDECAR,
    CIFTI_ENDING,
    FIX_SIDECAR_JSON,
    FIX_SIDECAR_READ,
    INVALID_LABEL,
    INVALID_NAME,
    NO_REPETITION_TIME,
    NOT_FETCHED,
    OUTPUTS_MISSING,
    TR_FROM_HEADER,
    base_row,
    check_bold_header,
    check_repetition_time,
    cifti_only,
    excluded,
    header_repetition_time,
    invalid_name_reason,
    not_fetched_reason,
    not_in_space,
)
from lcm.bids.runs import RunIds, run_ids_from_name
from lcm.bids.sidecars import UNREADABLE, NotFetched, Sidecar, SidecarReader, entities_of
from lcm.bids.timing import header_unit_fix, series_tr_missing
from lcm.entries import TreeIndex, entry_type
from lcm.exceptions import InputDataError
from lcm.io.bids_names import RUN_ENTITIES, check_name_label
from lcm.io.output_space import parse_output_space, space_of
from lcm.reason_codes import with_fix
from lcm.repetition_time import implausible_tr, set_tr_fix

_L = r"[a-zA-Z0-9]+"
_LABEL_RE = re.compile(r"[A-Za-z0-9]+")
# Raw BOLD file names allowed by the BIDS specification (func datatype, bold suffix).
_RAW_BOLD_RE = re.compile(
    rf"^sub-(?P<sub>{_L})(?:_ses-(?P<ses>{_L}))?_task-{_L}(?:_acq-{_L})?(?:_ce-{_L})?"
    rf"(?:_rec-{_L})?(?:_dir-{_L})?(?:_run-[0-9]+)?(?:_echo-[0-9]+)?"
    r"(?:_part-(?:mag|phase|real|imag))?(?:_chunk-[0-9]+)?_bold\.nii(?:\.gz)?$"
)
DEFAULT_SPACE = "MNI152NLin2009cAsym"
# fMRIPrep outputs of a run that tell it was processed (BOLD of every space, masks, boldrefs,
# confounds): a run with some of them but no data file in the asked space is a row, excluded.
_OUTPUT_ENDINGS = (".nii.gz", ".nii", ".tsv")

# A stat record: (path, size or -1 for a folder or ABSENT for a dangling link, mtime_ns).
Stat = tuple[str, int, int]
# Size recorded for a symlink whose target is absent (DataLad/git-annex content not fetched),
# with the link's own mtime: the cache sees the subject changed once the content is there.
ABSENT = -2
# Top-level folders of a raw dataset whose files the BIDS validator reads one by one (the
# schema's only non-opaque one besides the subjects'): recorded file by file, so that an edit
# in place reruns the validator. The opaque ones (code/, derivatives/, sourcedata/, stimuli/
# ...) and any other folder are recorded by their own mtime only.
VALIDATED_TOP_FOLDERS = ("phenotype",)


@dataclass(frozen=True)
class IndexSpec:
    """What to index in one dataset.

    Parameters
    ----------
    dataset : str
        Dataset name written in each row.
    entry : str
        An entry of :mod:`lcm.entries` with a tree index (raw BOLD runs, fMRIPrep
        ``desc-preproc`` runs in ``space``, ROI time-series TSVs): its
        :class:`lcm.entries.TreeIndex` says which files, suffix and entities.
    task : str
        Task label of the runs to index.
    space : str or None
        Output space (a required space defaults to MNI152NLin2009cAsym, and may name a
        resolution, ``MNI152NLin2009cAsym:res-2``: :mod:`lcm.io.output_space`; an optional
        one, None, keeps any).
    repetition_time : float or None
        Entries that need a TR from sidecars: TR (seconds) of runs whose sidecars give none.
    repetition_time_name : str or None
        How the user gives that TR (``--repetition-time``, or a config key), named in the fix
        of a run with none; None: the config's ``datasets.<dataset>.repetition_time``.
    space_name : str or None
        How the user gives ``space`` (``--space``, or a config key), named in the reason of a
        run in other spaces only (``not_in_space``); None: the config's key.
    names : tuple of (str, str)
        How the user gave the dataset's settings, the ``names`` of
        :func:`lcm.bids.dataset.setting_names` as pairs (the command line's options); empty:
        the config's keys. Named in the duplicate reason's fix (:meth:`duplicate_hint`).
    """

    dataset: str
    entry: str
    task: str = "rest"
    space: str | None = None
    repetition_time: float | None = None
    repetition_time_name: str | None = None
    space_name: str | None = None
    names: tuple[tuple[str, str], ...] = ()

    @property
    def tree(self) -> TreeIndex:
        """The entry's tree traits (:class:`lcm.entries.TreeIndex`)."""
        tree = entry_type(self.entry).tree
        if tree is None:
            raise ValueError(f"entry {self.entry!r} is not indexed as a BIDS tree")
        return tree

    @property
    def suffix(self) -> str:
        """BIDS suffix of the data files (whose sidecars are inherited)."""
        return self.tree.suffix

    def wants(self, name: str) -> dict[str, str] | None:
        """Entities of ``name`` when it is a data file of this spec, else ``None``.

        Parameters
        ----------
        name : str
            A file name in a subject's folder (no directory).
        """
        tree = self.tree
        if not name.endswith(tree.endings):
            return None
        ents = entities_of(name)
        if ents.get("task") != self.task:
            return None
        if any(ents.get(k) != v for k, v in tree.entities):
            return None
        if tree.one_of and not any(ents.get(k) for k in tree.one_of):
            return None
        if tree.space == "required":
            if not parse_output_space(self.space or DEFAULT_SPACE).selects(ents):
                return None
        elif tree.space == "optional" and self.space and ents.get("space") != self.space:
            return None
        return ents

    @functools.cached_property
    def _task_part(self) -> str:
        return f"_task-{self.task}_"

    def other_output(self, name: str) -> dict[str, str] | None:
        """Entities of ``name`` when it is another output of a run of this task, else ``None``.

        Asked for a required space only (fMRIPrep derivatives): its preprocessed BOLD in other
        spaces or resolutions, its masks and confounds, which :meth:`wants` leaves out; a run
        with these alone is excluded with the spaces found, never dropped unseen.

        Parameters
        ----------
        name : str
            A file name in a subject's folder (no directory), one :meth:`wants` left out.
        """
        # Asked of every file a folder's data files leave, so plain string tests first.
        if not name.endswith(_OUTPUT_ENDINGS) or self._task_part not in name:
            return None
        ents = entities_of(name)
        return ents if ents.get("task") == self.task and "sub" in ents else None

    def duplicate_hint(self) -> str:
        """How the user keeps one file per run, for the duplicate reason: the entry's
        :attr:`lcm.entries.TreeIndex.duplicate_hint`, its settings named as the user gives
        them."""
        return self.tree.duplicate_hint.format_map(setting_names(self.dataset, dict(self.names)))

    @property
    def whole_tree(self) -> bool:
        """Whether every file of a subject's tree is recorded: a raw dataset's, which the
        validator and fMRIPrep read whole (a derivatives tree: the files the index reads)."""
        return entry_type(self.entry).raw


@dataclass
class SubjectIndex:
    """Rows of one subject folder and the stats of everything they were derived from."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    stats: list[Stat] = field(default_factory=list)


def root_sidecars(
    root: str, whole_tree: bool = False
) -> tuple[list[Sidecar], list[str], list[Stat], list[Stat]]:
    """Top-level JSON sidecars, subject folder names, the root's own stats and its listing.

    The root's stats are its JSON files (inherited by everyone); adding a subject changes the
    listing, which is re-read every time anyway. The listing is every other root entry too
    (``participants.tsv``, ``README``, ``.bidsignore``, ``CHANGES``, folders such as
    ``phenotype/`` or ``derivatives/``), with size and mtime: the BIDS validator reads them, so
    a change reruns it (:mod:`lcm.bids.index_cache`). With ``whole_tree`` (a raw dataset), the
    files of :data:`VALIDATED_TOP_FOLDERS` are in it one by one, as the validator reads them.
    Subject folders are not in it: their names are ``subjects`` and their files the subjects'
    own stats.

    Parameters
    ----------
    root : str
        The dataset's top folder.
    whole_tree : bool, default False
        Whether the validator reads the whole tree (a raw dataset): then the files of
        :data:`VALIDATED_TOP_FOLDERS` are listed one by one instead of as one entry.

    Returns
    -------
    sidecars : list of Sidecar
        The root's JSON sidecars (not ``dataset_description.json``), a dangling link as absent.
    subjects : list of str
        The ``sub-*`` folder names, sorted.
    stats : list of Stat
        ``(path, size, mtime_ns)`` of the root's JSON files, sorted.
    listing : list of Stat
        Every other root entry's stat, sorted.
    """
    sidecars, subjects, stats, listing = [], [], [], []
    with os.scandir(root) as it:
        for entry in it:
            name = entry.name
            if name.startswith("sub-") and entry.is_dir():
                subjects.append(name)
                continue
            if name.endswith(".json") and entry.is_file():
                st = entry.stat()
                stats.append((entry.path, st.st_size, st.st_mtime_ns))
                if name != "dataset_description.json":
                    sidecars.append(Sidecar.from_path(entry.path))
            elif name.endswith(".json") and _dangling(entry):
                stats.append(_absent_stat(entry))
                if name != "dataset_description.json":
                    sidecars.append(Sidecar.from_name(entry.path, name, present=False))
            if whole_tree and name in VALIDATED_TOP_FOLDERS:
                _record_entry(entry, listing)
            else:
                listing.append(_root_entry_stat(entry))
    subjects.sort()
    return sidecars, subjects, sorted(stats), sorted(listing)


def _root_entry_stat(entry: os.DirEntry) -> Stat:
    """A root entry's stat record: a folder's size is -1, a dangling link's ``ABSENT``."""
    if _dangling(entry):
        return _absent_stat(entry)
    st = entry.stat()
    return (entry.path, -1 if entry.is_dir() else st.st_size, st.st_mtime_ns)


def index_subject(
    spec: IndexSpec,
    root: str,
    subject_dir: str,
    top: list[Sidecar],
    reader: SidecarReader,
) -> SubjectIndex:
    """Index one ``sub-*`` folder.

    Parameters
    ----------
    spec : IndexSpec
    root : str
        Dataset root.
    subject_dir : str
        Name of the subject folder (``sub-<label>``).
    top : list of Sidecar
        Top-level sidecars from :func:`root_sidecars`.
    reader : SidecarReader
        Shared sidecar cache (top-level files are read once per indexing run).
    """
    out = SubjectIndex()
    every = spec.whole_tree
    sub_path = os.path.join(root, subject_dir)
    sub_json, children = _list_folder(sub_path, out.stats, dirs=_is_func_or_session, every=every)
    sub_levels = [top, sub_json]
    folders: list[tuple[str, list[list[Sidecar]]]] = []
    for child in children:
        if child == "func":
            folders.append((os.path.join(sub_path, child), sub_levels))
        else:  # ses-<label>
            ses_path = os.path.join(sub_path, child)
            ses_json, ses_children = _list_folder(ses_path, out.stats, dirs=_is_func, every=every)
            if ses_children:
                folders.append((os.path.join(ses_path, "func"), [*sub_levels, ses_json]))
    others: list[tuple[str, str, dict[str, str]]] | None = (
        [] if spec.tree.space == "required" else None
    )
    for func_path, levels in folders:
        func_json, data = _list_folder(func_path, out.stats, spec=spec, others=others, every=every)
        levels = [*levels, func_json]
        absent = [side for level in levels for side in level if not side.present]
        for path, name, ents, size in data:
            out.rows.append(_data_row(spec, path, name, ents, size, levels, absent, reader))
        if others:
            out.rows += _runs_not_in_space(spec, others, data)
            others.clear()
    if len(out.rows) > 1:
        out.rows = exclude_duplicates(out.rows, hint=spec.duplicate_hint())
    return out


def index_one_subject(
    dataset: str,
    entry: str,
    root: str | os.PathLike,
    subject: str,
    task: str = "rest",
    space: str | None = None,
) -> list[dict[str, Any]]:
    """Manifest rows of one subject's runs, as ingest makes them (no cache, no selection).

    Sidecars resolved by inheritance from the root down, each included BOLD's TR checked
    against its header: what ingest says of the subject, for a caller that needs one subject
    (the fMRIPrep stage's TR of a run without ingest's manifest,
    :func:`lcm.preprocess.subject_runs.ingest_run_trs`). ``[]`` when the subject has no folder.

    Parameters
    ----------
    dataset : str
        Dataset name, written into each row.
    entry : str
        The dataset's entry (:mod:`lcm.entries`), which says which files are its runs.
    root : path-like
        The dataset's top folder.
    subject : str
        Subject label, without ``sub-``.
    task : str, default "rest"
        The task whose runs are indexed.
    space : str, optional
        Output space of an entry that has one (:class:`IndexSpec`).

    Returns
    -------
    list of dict
        One manifest row per run, included or excluded with its reason.
    """
    root = os.fspath(root)
    if not os.path.isdir(os.path.join(root, f"sub-{subject}")):
        return []
    spec = IndexSpec(dataset=dataset, entry=entry, task=task, space=space)
    top, _, _, _ = root_sidecars(root, whole_tree=False)
    return index_subject(spec, root, f"sub-{subject}", top, SidecarReader()).rows


def _is_func_or_session(name: str) -> bool:
    return name == "func" or name.startswith("ses-")


def _is_func(name: str) -> bool:
    return name == "func"


def _list_folder(
    folder: str,
    stats: list[Stat],
    dirs: Callable[[str], bool] | None = None,
    spec: IndexSpec | None = None,
    others: list[tuple[str, str, dict[str, str]]] | None = None,
    every: bool = False,
) -> tuple[list[Sidecar], list[Any]]:
    """Sidecars of ``folder`` and either its sub-folder names ``dirs`` keeps or its data files
    of ``spec``.

    Data files are ``(path, name, entities, size)``, size ``None`` for a dangling symlink.
    ``others`` receives ``(path, name, entities)`` of the other outputs of runs
    (:meth:`IndexSpec.other_output`); their names alone matter, so they add no stats (the
    folder's mtime changes when one is added or removed). With ``every``, every other entry
    is recorded too, folders with all they hold (:func:`_record_entry`): the sub-folders
    returned are not, their own listing records them.
    """
    sidecars: list[Sidecar] = []
    found: list[Any] = []
    try:
        st = os.stat(folder)
    except OSError:
        return sidecars, found
    stats.append((folder, -1, st.st_mtime_ns))
    with os.scandir(folder) as it:
        for entry in it:
            name = entry.name
            if name.endswith(".json"):
                if entry.is_file():
                    est = entry.stat()
                    stats.append((entry.path, est.st_size, est.st_mtime_ns))
                    sidecars.append(Sidecar.from_name(entry.path, name))
                    continue
                if _dangling(entry):
                    stats.append(_absent_stat(entry))
                    sidecars.append(Sidecar.from_name(entry.path, name, present=False))
                    continue
            elif dirs is not None:
                if dirs(name) and entry.is_dir():
                    found.append(name)
                    continue
            elif spec is not None:
                ents = spec.wants(name)
                if ents is not None:
                    if entry.is_file():
                        est = entry.stat()
                        stats.append((entry.path, est.st_size, est.st_mtime_ns))
                        found.append((entry.path, name, ents, est.st_size))
                        continue
                    if _dangling(entry):
                        stats.append(_absent_stat(entry))
                        found.append((entry.path, name, ents, None))
                        continue
                elif others is not None and (other := spec.other_output(name)) is not None:
                    others.append((entry.path, name, other))
            if every:
                _record_entry(entry, stats)
    found.sort()  # unique names and paths: data tuples never compare beyond the path
    return sidecars, found


def _record_entry(entry: os.DirEntry, stats: list[Stat]) -> None:
    """Record ``entry`` and, for a folder, everything below it.

    A file or a link to one: its (target's) size and mtime; a dangling link: ``ABSENT`` with
    the link's own mtime (the cache sees its content arrive); a folder: -1 and its mtime (a
    file added, removed or renamed in it), then its entries. A link to a folder is recorded
    but not followed (as ``os.walk`` does, and a link cycle ends here).
    """
    try:
        st = entry.stat()
    except FileNotFoundError:  # a dangling link (or a file gone while listed)
        if entry.is_symlink():
            stats.append(_absent_stat(entry))
        return
    except OSError:  # unreadable: its folder's mtime stands for it
        return
    if not S_ISDIR(st.st_mode):
        stats.append((entry.path, st.st_size, st.st_mtime_ns))
        return
    stats.append((entry.path, -1, st.st_mtime_ns))
    if not entry.is_symlink():
        try:
            with os.scandir(entry.path) as it:
                for child in it:
                    _record_entry(child, stats)
        except OSError:
            return


def _run_stem(ents: dict[str, str]) -> tuple[str, ...]:
    """A run's acquisition entities, echo aside (per-echo outputs belong to the run)."""
    return tuple(ents.get(k, "") for k in RUN_ENTITIES if k != "echo")


def _runs_not_in_space(
    spec: IndexSpec, others: list[tuple[str, str, dict[str, str]]], data: list[Any]
) -> list[dict[str, Any]]:
    """Excluded rows of the runs of one folder with fMRIPrep outputs but no data file.

    ``not_in_space`` when the run's preprocessed BOLD is there in other spaces or resolutions
    (named, with the setting that reads one), ``fmriprep_outputs_missing`` when there is none
    in any space (fMRIPrep stopped before writing it, or wrote CIFTI only, said so): the same
    code as a raw dataset's run.
    """
    have = {_run_stem(ents) for _, _, ents, _ in data}
    runs: dict[tuple[str, ...], list[tuple[str, str, dict[str, str]]]] = {}
    for item in others:
        stem = _run_stem(item[2])
        if stem not in have:
            runs.setdefault(stem, []).append(item)
    wanted = spec.space or DEFAULT_SPACE
    rows = []
    for stem in sorted(runs):
        files = sorted(runs[stem])
        bold = [
            f
            for f in files
            if f[2].get("desc") == "preproc"
            and f[1].endswith(spec.tree.endings)
            and "space" in f[2]
        ]
        path, name, ents = (bold or files)[0]
        ents = {k: v for k, v in ents.items() if k != "echo"}
        row = base_row(spec.dataset, spec.entry, path, ents)
        try:
            ids = _run_ids(name, ents)
        except InputDataError as exc:
            rows.append(excluded(row, INVALID_LABEL, exc.one_line()))
            continue
        row.update(ids.row_fields())
        if bold:
            found = (space_of(f[2]) for f in bold)
            setting = spec.space_name or setting_names(spec.dataset)["space"]
            rows.append(excluded(row, *not_in_space(wanted, found, setting)))
        elif cifti := [f[1] for f in files if f[1].endswith(f"_bold{CIFTI_ENDING}")]:
            # fMRIPrep finished, into grayordinates only: its log tells nothing to fix.
            reason = with_fix(
                "no volumetric preprocessed BOLD (*_desc-preproc_bold.nii.gz) in any space: "
                + cifti_only(cifti[0]),
                f"rerun fMRIPrep on sub-{ids.subject} with --output-spaces {wanted} "
                "(--cifti-output may stay: fMRIPrep writes both)",
            )
            rows.append(excluded(row, OUTPUTS_MISSING, reason))
        else:
            shown = ", ".join(f[1] for f in files[:3]) + (" ..." if len(files) > 3 else "")
            rows.append(
                excluded(
                    row,
                    OUTPUTS_MISSING,
                    with_fix(
                        "fMRIPrep's outputs of this run are incomplete: no preprocessed BOLD "
                        f"(*_desc-preproc_bold.nii.gz) in any space, only {shown}",
                        f"rerun fMRIPrep on sub-{ids.subject} (its log says why it stopped)",
                    ),
                )
            )
    return rows


def _dangling(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a symlink to nothing (``is_file`` is False for it, like a folder)."""
    return entry.is_symlink() and not os.path.exists(entry.path)


def _absent_stat(entry: os.DirEntry) -> Stat:
    return (entry.path, ABSENT, entry.stat(follow_symlinks=False).st_mtime_ns)


def _data_row(
    spec: IndexSpec,
    path: str,
    name: str,
    ents: dict[str, str],
    size: int | None,
    levels: list[list[Sidecar]],
    absent: list[Sidecar],
    reader: SidecarReader,
) -> dict[str, Any]:
    """The row of one data file (``size`` ``None``: a dangling symlink); ``absent``: the
    dangling sidecars of ``levels``."""
    row = base_row(spec.dataset, spec.entry, path, ents)
    try:
        ids = _run_ids(name, ents)
    except InputDataError as exc:
        return excluded(row, INVALID_LABEL, exc.one_line())
    tree = spec.tree
    if entry_type(spec.entry).raw and not _valid_raw_name(path, name):
        # Same verdict as pybids' validating index, which skips such files.
        row.update(subject=ids.subject, session=ids.session, task=ids.task, run=ids.run)
        return excluded(
            row,
            INVALID_NAME,
            invalid_name_reason(name),
        )
    row.update(ids.row_fields())
    if size is None:
        return excluded(row, NOT_FETCHED, not_fetched_reason(path))
    for side in absent:  # before resolving: never a farther sidecar's TR in its place
        if side.applies_to(ents, spec.suffix):
            return excluded(row, NOT_FETCHED, not_fetched_reason(side.path, "its sidecar "))
    metadata, sources, problem = reader.resolve(levels, ents, spec.suffix)
    if isinstance(problem, NotFetched):
        reason = not_fetched_reason(problem.path, "its sidecar ", pointer=True)
        return excluded(row, NOT_FETCHED, reason)
    if problem:
        fix = FIX_SIDECAR_READ if f" {UNREADABLE} (" in problem else FIX_SIDECAR_JSON
        return excluded(row, BAD_SIDECAR, with_fix(problem, fix))
    tr_name = spec.repetition_time_name or setting_names(spec.dataset)["repetition_time"]
    from_dataset = spec.repetition_time is not None and metadata.get("RepetitionTime") is None
    if from_dataset:
        metadata = {**metadata, "RepetitionTime": spec.repetition_time}  # dataset-level TR
        row["tr_check"] = "from dataset repetition_time"
    elif not tree.images and not sources:
        side = name.rsplit(".", 1)[0] + ".json"
        return excluded(row, BAD_SIDECAR, series_tr_missing(f"no JSON sidecar {side}", tr_name))
    elif not tree.images and metadata.get("RepetitionTime") is None:  # XCP-D writes none
        problem = f"RepetitionTime missing from the JSON sidecar of {name}"
        reason = series_tr_missing(problem, tr_name, metadata)
        return excluded(row, NO_REPETITION_TIME, reason)
    if tree.images and not entry_type(spec.entry).raw:  # derivatives: the header's TR next
        row = header_repetition_time(row, metadata)
    else:
        row = check_repetition_time(row, metadata)
    if not row["included"] and not tree.images:  # ROI series: the dataset's TR is a fix too
        row["reason"] += f"; or set {tr_name}"
    # 2000 ms as seconds, before the header is compared: it may say 2000 s too. A TR the
    # header gave was checked by header_repetition_time, which holds the header.
    if row["included"] and row.get("tr_check") != TR_FROM_HEADER:
        what = tr_name if from_dataset else _tr_sidecar(sources, reader)
        value = metadata["RepetitionTime"]
        reason = _implausible_tr(row["t_r"], what, value, path if tree.images else None)
        if reason:
            return excluded({**row, "t_r": None}, NO_REPETITION_TIME, reason)
    if row["included"] and tree.images:
        row = check_bold_header(row, size=size)
    return row


def _implausible_tr(t_r: float, what: str, value: object, bold: str | None) -> str:
    """:func:`lcm.repetition_time.implausible_tr` with its fix, ``""`` for a plausible TR; a BOLD
    header (``bold``) saying the same TR in seconds is named in the fix (read only then)."""
    problem = implausible_tr(t_r, what, value)
    if not problem:
        return ""
    fix = set_tr_fix(what)
    if bold is not None:
        try:
            also = header_unit_fix(read_bold_header(bold))
        except UnreadableHeader:  # check_bold_header would say why; the sidecar's fix stands
            also = ""
        if also:
            fix += f"; and {also}"
    return with_fix(problem, fix)


def _tr_sidecar(sources: list[str], reader: SidecarReader) -> str:
    """``RepetitionTime of <sidecar>``: the nearest of ``sources`` (farthest first) naming it,
    whose value the run took."""
    for source in reversed(sources):
        content = reader.read(source)  # cached: each was read by resolve
        if isinstance(content, dict) and "RepetitionTime" in content:
            return f"RepetitionTime of {os.path.basename(source)}"
    return "RepetitionTime of its JSON sidecar"


def _run_ids(name: str, ents: dict[str, str]) -> RunIds:
    """:func:`run_ids_from_name` without re-parsing when every label is plainly valid."""
    run_ents = {k: ents[k] for k in RUN_ENTITIES if k in ents}
    if "sub" not in run_ents:
        return run_ids_from_name(name)  # raises: no sub- entity
    for key, value in run_ents.items():
        if not _LABEL_RE.fullmatch(value):
            check_name_label(key, value, source=name)  # raises, naming the label
    return RunIds(entities=run_ents, run_key="_".join(f"{k}-{v}" for k, v in run_ents.items()))


def _valid_raw_name(path: str, name: str) -> bool:
    """BIDS name of a raw BOLD file, in the folders its entities name."""
    match = _RAW_BOLD_RE.match(name)
    if match is None:
        return False
    parts = path.replace(os.sep, "/").split("/")
    ses = match["ses"]
    expected = [f"sub-{match['sub']}", *([f"ses-{ses}"] if ses else []), "func"]
    return parts[-len(expected) - 1 : -1] == expected
