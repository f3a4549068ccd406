"""Locate and check the fMRIPrep derivatives of one run."""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from lcm import reason_codes
from lcm.bids.dataset import CONFIG_KEYS, part_of, read_dataset_description
from lcm.bids.fmriprep_version import subject_fmriprep_version
from lcm.bids.nifti_header import UnreadableHeader, read_bold_header, sniff_image
from lcm.bids.rows import CIFTI_ENDING, OUTPUTS_MISSING, cifti_only, not_in_space
from lcm.bids.runs import RunIds
from lcm.bids.sidecars import UNREADABLE, NotFetched, entities_of, read_json_object
from lcm.bids.timing import TR_TOLERANCE_S, compare_header_tr, set_unit_fix, sidecar_tr
from lcm.exceptions import BIDSError, InputDataError
from lcm.hints import set_to
from lcm.io.bids_names import subject_dir
from lcm.io.output_space import parse_output_space, space_of

log = logging.getLogger(__name__)


# The files of a run's entry in the record (:class:`RunDerivatives`), as given: relative when
# ``--derivatives`` was.
RUN_PATHS = ("bold", "mask", "confounds", "sidecar")


@dataclass(frozen=True)
class RunDerivatives:
    """Paths (as strings) and TR of one preprocessed run, as stored in the fMRIPrep record."""

    run_key: str
    sub: str
    ses: str
    task: str
    run: str
    bold: str
    mask: str
    confounds: str
    sidecar: str
    t_r: float
    # The space of the BOLD read, as fmriprep.output_space spells it, its resolution always
    # named (MNI152NLin2009cAsym:res-2, or :res-native for the file without res-): a bare
    # setting may read different resolutions in different runs.
    space_read: str = ""
    # Where t_r came from (TR_FROM_PREPROC; TR_FROM_RAW, TR_FROM_INHERITED or TR_FROM_HEADER
    # when the preprocessed sidecar gave none) and, for a fallback, what was read and how it
    # was checked; for the sidecar's own TR, why the BOLD header did not confirm it ("" when
    # it did).
    t_r_source: str = ""
    t_r_note: str = ""

    def to_record(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> RunDerivatives:
        """Inverse of :meth:`to_record`; a record without ``mask`` (a run without a brain mask)
        gets ``""``, and parcel coverage falls back on live voxels; one written before
        ``space_read`` (or ``t_r_source``) gets ``""``.

        Parameters
        ----------
        record : dict
            A run's entry of an fMRIPrep record (:meth:`to_record`).
        """
        optional = ("mask", "space_read", "t_r_source", "t_r_note")
        return cls(
            **{
                k: record.get(k, "") if k in optional else record[k]
                for k in cls.__dataclass_fields__
            }
        )


# fMRIPrep 20.2 and later name a run's confounds table ``_desc-confounds_timeseries.tsv``;
# 1.4 to 20.1 named the same table (same columns, same JSON beside it) ``_regressors.tsv``.
CONFOUNDS_SUFFIXES = ("_desc-confounds_timeseries.tsv", "_desc-confounds_regressors.tsv")

# Reason codes of the runs an fMRIPrep record excludes (its ``excluded[].reason_code``); the
# connectome stage copies them to its QC table, where summaries count runs per code
# (OUTPUTS_MISSING is shared with ingest's rows of fMRIPrep derivatives, lcm.bids.rows).
OUTPUTS_AMBIGUOUS = reason_codes.OUTPUTS_AMBIGUOUS
FMRIPREP_FAILED = reason_codes.FMRIPREP_FAILED


class AmbiguousDerivativesError(InputDataError):
    """Derivatives of one run exist under two names: two spellings of its index (``run-1``,
    ``run-01``), or the confounds tables of two fMRIPrep versions."""


# Where a run's TR came from (the record's and QC's ``t_r_source``): its preprocessed BOLD's
# JSON sidecar, as fMRIPrep writes it, or, where that is missing or names no RepetitionTime,
# the raw run's sidecars by BIDS inheritance, as ingest resolved them (what fMRIPrep itself
# read, and what XCP-D users expect a pipeline to fall back on).
TR_FROM_PREPROC = "preproc_sidecar"
TR_FROM_RAW = "raw_sidecar"
# A dataset entering as derivatives: a sidecar its run inherits in the derivatives tree (a
# top-level ``task-rest_..._bold.json``), as ingest resolved it.
TR_FROM_INHERITED = "inherited_sidecar"
# No sidecar gives it (a derivatives dataset shared without any): the BOLD header's pixdim[4]
# in the time unit its xyzt_units names, as ingest read it (lcm.bids.rows.TR_FROM_HEADER).
TR_FROM_HEADER = "header"
TR_MISMATCH = reason_codes.TR_MISMATCH


@dataclass(frozen=True)
class FallbackTR:
    """A run's TR from outside its preprocessed sidecar, and where it was read.

    Parameters
    ----------
    t_r : float
        Seconds.
    source : str
        Where it was read, for the log and the record (e.g. ``raw BIDS sidecar(s) of
        /data/raw/sub-01/func/sub-01_task-rest_bold.nii.gz, by BIDS inheritance``).
    code : str
        The record's ``t_r_source``: :data:`TR_FROM_RAW`, :data:`TR_FROM_INHERITED` or
        :data:`TR_FROM_HEADER`.
    """

    t_r: float
    source: str
    code: str = TR_FROM_RAW


# The fix of a run whose preprocessed sidecar names no TR and whose raw run lends none, or one
# its BOLD header contradicts.
RESTORE_SIDECAR_FIX = (
    "Restore the preprocessed BOLD's JSON sidecar from the fMRIPrep output folder it was copied "
    "from (fMRIPrep writes RepetitionTime in it), or set the raw run's RepetitionTime (in its "
    "JSON sidecar or one it inherits) and header pixdim[4] to the acquisition protocol's TR."
)


@dataclass(frozen=True)
class RefusedTR:
    """Why no other source lends a run a TR: ingest excluded it for its TR (the raw sidecar's
    RepetitionTime disagreeing with the raw header's, or absent; for a dataset entering as
    derivatives, no inherited sidecar and no header ``pixdim[4]`` in a time unit).

    Parameters
    ----------
    code : str
        Ingest's reason code (:data:`TR_MISMATCH` or ``no_repetition_time``).
    reason : str
        Ingest's reason, naming the file and the values read.
    derivatives : bool
        Ingest indexed the derivatives folder itself (no raw run): the fix is the
        preprocessed BOLD's own sidecar or header.
    """

    code: str
    reason: str
    derivatives: bool = False

    def refusal(self) -> str:
        """What lends no TR, and why, for a message (ingest's fix left to :meth:`hint`)."""
        why = f"{self.code}: {reason_codes.split_fix(self.reason)[0]}"
        if self.derivatives:
            return f"no sidecar it inherits nor its header gives a TR ({why})"
        return f"the raw run lends no TR: ingest refuses it ({why})"

    def hint(self) -> str:
        """The fix of a run refused for want of a TR."""
        if self.derivatives:
            return (
                "Add RepetitionTime (seconds) to the preprocessed BOLD's JSON sidecar (fMRIPrep "
                "writes it there: restore it from the fMRIPrep output folder it was copied "
                f"from), or, where the BOLD header's pixdim[4] is the TR, {set_unit_fix()}."
            )
        return RESTORE_SIDECAR_FIX


class TRMismatchError(InputDataError):
    """Two sources of a run's TR disagree: which one is right cannot be told from the files."""


class FallbackTRMismatchError(TRMismatchError):
    """The fallback TR disagrees with the preprocessed BOLD's header: neither is trusted."""


class PreprocTRMismatchError(TRMismatchError):
    """The preprocessed sidecar's TR disagrees with its BOLD header's, or with the raw run's."""


class FallbackTRRefusedError(InputDataError):
    """The preprocessed sidecar gives no TR, and ingest refuses the run's other sources
    (:class:`RefusedTR`); ``code`` is ingest's reason code."""

    def __init__(self, message: str, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def confounds_file(func: str | Path, run_key: str) -> Path:
    """A run's fMRIPrep confounds table in ``func``: the current name, else the pre-20.2 one.

    Returns the current name when neither exists (the file a missing-file message names).

    Parameters
    ----------
    func : str or Path
        The run's fMRIPrep ``func`` folder.
    run_key : str
        The run key as fMRIPrep spelled it (:func:`derivative_run_key`).

    Raises
    ------
    AmbiguousDerivativesError
        When both names exist: two fMRIPrep versions wrote into one folder (a newer one rerun
        over an older one's outputs), and the table of one would clean the BOLD of the other.
    """
    found = [Path(func) / f"{run_key}{s}" for s in CONFOUNDS_SUFFIXES]
    present = [p for p in found if p.is_file()]
    if len(present) > 1:
        raise AmbiguousDerivativesError(
            f"fMRIPrep outputs of run {run_key} are ambiguous in {func}: both {present[0].name} "
            f"(fMRIPrep >= 20.2) and {present[1].name} (fMRIPrep < 20.2) are there, left by two "
            "fMRIPrep versions, and which one belongs to the BOLD read cannot be told (a BOLD "
            "cleaned with another version's confounds would be silently wrong)",
            hint="Remove the stale set from the older fMRIPrep (its "
            f"{CONFOUNDS_SUFFIXES[1][1:]}, .json and the BOLD, mask and sidecar it wrote), or "
            "point the dataset's derivatives at a folder holding one fMRIPrep version's outputs.",
        )
    return present[0] if present else found[0]


def generated_by(deriv_root: str | Path, subject: str | None = None) -> dict:
    """Which fMRIPrep made the derivatives in ``deriv_root``, from its ``dataset_description.json``.

    BIDS 1.4 and later (fMRIPrep 20.2 on) name it in ``GeneratedBy`` (the entry named like
    fMRIPrep, else the first); earlier fMRIPrep wrote ``PipelineDescription``. A description
    missing, unreadable or naming neither gives ``name`` and ``version`` null and ``reason``
    saying why, with a warning: the derivatives are still checked and used.

    The description names the version of whichever run wrote it last; with ``subject``, the
    version that made that subject is read from its own logs too
    (:func:`lcm.bids.fmriprep_version.subject_fmriprep_version`), and a version other than
    the description's (or a subject rerun with another version) is warned of, naming both.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    subject : str, optional
        A subject's label, without ``sub-``.

    Returns
    -------
    dict
        ``{name, version, container, description, reason}``: ``container`` as the
        description gives it (``{Type, Tag}`` or ``{Type, URI}``; null when it names none),
        ``description`` the file read, ``reason`` null when the version is known. With
        ``subject``, also ``subject``: ``{version, config, earlier_versions, reason}`` of
        its logs.
    """
    path = Path(deriv_root) / "dataset_description.json"
    made: dict = {"name": None, "version": None, "container": None, "description": str(path)}
    try:
        desc = read_dataset_description(deriv_root)
    except BIDSError as exc:
        desc, reason = {}, str(exc)
    else:
        entries = desc.get("GeneratedBy")
        entries = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        named = [e for e in entries if "fmriprep" in str(e.get("Name", "")).lower()]
        old = desc.get("PipelineDescription")
        entry = (named or entries or [old if isinstance(old, dict) else {}])[0]
        for key in ("name", "version"):
            value = entry.get(key.capitalize())
            made[key] = str(value) if isinstance(value, str | int | float) and value != "" else None
        container = entry.get("Container")
        made["container"] = container if isinstance(container, dict | str) else None
        reason = None
        if not made["version"]:
            reason = (
                f"{path} names no GeneratedBy[].Version (nor the PipelineDescription.Version "
                "of fMRIPrep before 20.2)"
            )
    made["reason"] = reason
    if reason:
        log.warning("fMRIPrep version of %s unknown (recorded so): %s", deriv_root, reason)
    if subject is not None:
        made["subject"] = _subject_version(deriv_root, subject, made["version"])
    return made


def _subject_version(deriv_root: str | Path, subject: str, folder_version: str | None) -> dict:
    """The subject's own fMRIPrep version (:func:`generated_by`), warned of where it is not
    the folder's: a confound the description alone hid."""
    own = subject_fmriprep_version(deriv_root, subject)
    versions = [own["version"], *own["earlier_versions"]]
    other = [v for v in versions if v and folder_version and v != folder_version]
    if other or own["earlier_versions"]:
        log.warning(
            "sub-%s was made by fMRIPrep %s (%s)%s, but %s names %s: subjects of %s made by "
            "different fMRIPrep versions differ in their outputs (confounds, resampling, "
            "masks). Rerun it with the version of the other subjects, or accept the mix (the "
            "fMRIPrep record keeps each subject's version, generated_by.subject)",
            subject,
            own["version"],
            own["config"],
            f", after earlier runs of {', '.join(own['earlier_versions'])}"
            if own["earlier_versions"]
            else "",
            Path(deriv_root) / "dataset_description.json",
            folder_version or "no version",
            deriv_root,
        )
    return own


def subject_derivative_stats(deriv_root: str | Path, subject: str) -> list[str]:
    """``name<TAB>size<TAB>mtime_ns`` of a subject's fMRIPrep ``func`` files, and its folders'.

    What the workflow hashes to rerun a subject whose existing derivatives changed (a rerun
    of fMRIPrep, a confounds table replaced): preprocessed BOLD, masks, sidecars and
    confounds, in ``sub-<label>/func`` and ``sub-<label>/ses-*/func``; a dangling symlink
    (DataLad content not fetched) with size ``absent``. Empty without the subject's folder.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    subject : str
        Subject label, without ``sub-``.
    """
    found: list[str] = []
    folders = [os.path.join(deriv_root, f"sub-{subject}")]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
            found.append(f"{folder}\t-1\t{os.stat(folder).st_mtime_ns}")
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and (entry.name == "func" or entry.name.startswith("ses-")):
                folders.append(entry.path)
            elif os.path.basename(folder) == "func" and entry.is_file():
                st = entry.stat()
                found.append(f"{entry.path}\t{st.st_size}\t{st.st_mtime_ns}")
            elif os.path.basename(folder) == "func" and not os.path.exists(entry.path):
                # Not fetched (DataLad): listed as absent, so that `datalad get` reruns the subject.
                found.append(
                    f"{entry.path}\tabsent\t{entry.stat(follow_symlinks=False).st_mtime_ns}"
                )
    return sorted(found)


def _bold_pattern(run_key: str, space: str | None = None) -> re.Pattern[str]:
    # fMRIPrep may insert cohort/res/den between space and desc (e.g. res-2); any space's
    # volumetric BOLD without ``space``.
    label = re.escape(space) if space else "[A-Za-z0-9]+"
    return re.compile(
        rf"^{re.escape(run_key)}_space-{label}"
        r"((?:_(?:cohort|res|den)-[A-Za-z0-9]+)*)_desc-preproc_bold\.nii(?:\.gz)?$"
    )


# Index entities compared as numbers: fMRIPrep 20.2.x writes run-1 for a raw run-01
# (nipreps/fmriprep#2666), as pybids and ingest.select compare them.
_INDEX_ENTITIES = ("run", "echo")


def derivative_run_key(func: str | Path, ids: RunIds) -> str:
    """The run key as fMRIPrep spelled it in ``func``: the raw one up to index zero padding.

    ``run-01`` and ``run-1`` are the same run; the raw key stays the run's identity, this one
    only names its derivative files. The raw key when ``func`` holds no file of the run.

    Parameters
    ----------
    func : str or Path
        The run's fMRIPrep ``func`` folder.
    ids : RunIds
        The run's identifiers (:class:`lcm.bids.runs.RunIds`), its raw key among them.

    Raises
    ------
    AmbiguousDerivativesError
        When files of the run exist under more than one spelling (a choice would be a guess).
    """
    parts = [
        f"{key}-0*{int(value)}"
        if key in _INDEX_ENTITIES and value.isdigit()
        else f"{key}-{re.escape(value)}"
        for key, value in ids.entities.items()
    ]
    # Only the run's own files: its key followed by space- (BOLD, mask, sidecar) or the
    # confounds, not the files of a run whose key merely starts the same.
    pattern = re.compile(rf"^({'_'.join(parts)})_(?:space-|desc-confounds_)")
    try:
        names = os.listdir(func)
    except OSError:
        return ids.run_key
    keys = sorted({m.group(1) for name in names if (m := pattern.match(name))})
    if len(keys) > 1:
        raise AmbiguousDerivativesError(
            f"fMRIPrep outputs of run {ids.run_key} are ambiguous in {func}: files named "
            f"{' and '.join(repr(k + '_*') for k in keys)} are the same run (the index is "
            "compared as a number) and only one set can be used.",
            hint="Remove or move away the stale set (e.g. from an older fMRIPrep version).",
        )
    return keys[0] if keys else ids.run_key


def find_run_derivatives(
    deriv_root: str | Path,
    ids: RunIds,
    space: str,
    fallback: FallbackTR | RefusedTR | None = None,
) -> tuple[RunDerivatives | None, list[str]]:
    """Find the preprocessed BOLD, mask, sidecar and confounds of one run.

    The run index is matched as a number (:func:`derivative_run_key`): a raw ``run-01`` is
    found as fMRIPrep 20.2.x's ``run-1``; the record keeps the raw run key.

    Parameters
    ----------
    deriv_root : path-like
        fMRIPrep output folder (holding ``sub-*``).
    ids : RunIds
        The run.
    space : str
        Output space (``space-<space>`` entity).
    fallback : FallbackTR, optional
        The TR to use where the preprocessed BOLD's JSON sidecar is absent or names no
        ``RepetitionTime`` (the raw run's, or for derivatives alone an inherited sidecar's or
        the header's, :func:`lcm.preprocess.subject_runs.ingest_run_trs`):
        checked against the BOLD header's ``pixdim[4]``
        (:func:`lcm.bids.timing.compare_header_tr`), logged
        as a warning naming the file and the source, and recorded (``t_r_source``
        :data:`TR_FROM_RAW`, ``t_r_note``). A sidecar that is not fetched (a dangling
        symlink or an annex pointer), unreadable, not JSON (read as ingest reads it:
        :func:`lcm.bids.sidecars.read_json_object`), or whose RepetitionTime is no positive
        number is still missing, with why.
        A :class:`RefusedTR` (ingest excluded the raw run for its TR) lends none: the run is
        refused with ingest's reason. Where the sidecar gives the TR, a :class:`FallbackTR`
        of the raw run (:data:`TR_FROM_RAW`) is what it is checked against
        (:func:`check_preproc_tr`).

    Returns
    -------
    (RunDerivatives or None, list of str)
        The run's files, or ``None`` and the list of what is missing (each entry names the
        expected file and, for a sidecar, the missing key).

    A run without its brain mask is found with ``mask=""`` (coverage then counts live voxels,
    with a warning); a mask that is a dangling symlink (DataLad content not fetched) is missing.

    Raises
    ------
    AmbiguousDerivativesError
        When the run's files exist under two spellings of its index, or beside both the
        current and the pre-20.2 confounds table (two fMRIPrep versions in one folder).
    FallbackTRMismatchError
        When the fallback TR and the BOLD header's disagree.
    PreprocTRMismatchError
        When the sidecar's TR disagrees with the BOLD header's or the raw run's
        (:func:`check_preproc_tr`).
    FallbackTRRefusedError
        When the sidecar gives no TR, nothing else is missing, and ``fallback`` is a
        :class:`RefusedTR`.
    """
    func = Path(deriv_root) / subject_dir(ids.entities) / "func"
    key = derivative_run_key(func, ids)
    wanted = parse_output_space(space)
    pattern = _bold_pattern(key, wanted.label)
    # The versions of the space fMRIPrep wrote; with :res-<n> (or :cohort-<n>) only that one.
    candidates = sorted(
        p
        for p in func.glob(f"{key}_space-*")
        if pattern.match(p.name) and wanted.selects(entities_of(p.name))
    )
    missing: list[str] = []
    if not candidates:
        expected = func / f"{key}_{wanted.name_part}_desc-preproc_bold{NIFTI_EXTENSIONS[0]}"
        missing.append(f"{expected} (or {NIFTI_EXTENSIONS[1]})")
        extension = NIFTI_EXTENSIONS[0]
        middle = "".join(f"_{k}-{v}" for k, v in wanted.entities.items() if k != "space")
    else:
        # Prefer the file without res/den entities, then the uncompressed one (a .nii beside
        # its .nii.gz, faster to read), then the first by name.
        middles = {p: pattern.match(p.name).group(1) for p in candidates}  # type: ignore[union-attr]
        bold = min(candidates, key=lambda p: (len(middles[p]), len(p.name), p.name))
        middle = middles[bold]
        if len(set(middles.values())) > 1:  # several resolutions of one space: said
            log.warning(
                "%s: fMRIPrep wrote %d versions of space %s (%s); using %s. Name the one "
                "wanted in fmriprep.output_space (e.g. %s:res-2, or %s:res-native for the file "
                "without res-), the same for every run.",
                ids.run_key,
                len(candidates),
                space,
                ", ".join(p.name for p in candidates),
                bold.name,
                wanted.label,
                wanted.label,
            )
        if not bold.is_file():  # listed, but a dangling symlink
            missing.append(_lacking(bold))
        extension = _nifti_extension(bold.name)
    stem = f"{key}_space-{wanted.label}{middle}"
    mask = _companion_image(func, f"{stem}_desc-brain_mask", extension)
    side = func / f"{stem}_desc-preproc_bold.json"
    confounds = confounds_file(func, key)
    mask_found = str(mask)
    if mask.is_symlink() and not mask.is_file():  # DataLad content not fetched: get it
        other = next(e for e in NIFTI_EXTENSIONS if e != extension)
        missing.append(f"{_lacking(mask)} (or {other})")
    elif not mask.is_file():
        # Shared derivatives often come without masks: parcel coverage then counts the voxels
        # whose signal varies (QC coverage_rule live_voxels, config/README.md), not a reason
        # to drop a run whose BOLD and confounds are there.
        mask_found = ""
    t_r, t_r_source, t_r_note = None, TR_FROM_PREPROC, ""
    # Why the sidecar gives no TR where another source may ("" when it gives one or is broken).
    no_tr = ""
    if side.is_symlink() and not side.is_file():  # not fetched: `datalad get` is the fix
        missing.append(_lacking(side))
    elif not side.is_file():
        no_tr = "no JSON sidecar"
        if fallback is None:
            missing.append(str(side))
    if not confounds.is_file():
        missing.append(f"{_lacking(confounds)} (or {CONFOUNDS_SUFFIXES[1][1:]} of fMRIPrep < 20.2)")
    # Unlocked git-annex files not fetched are short text pointers: read as a table or an
    # image, the run was excluded later for what the text is not (a confounds table of 0
    # rows "from another run"), never with `datalad get`.
    for found in ([bold] if candidates else []) + [mask, confounds]:
        if found.is_file() and sniff_image(found) == "annex_pointer":
            missing.append(
                f"{found} (a git-annex pointer, its content not fetched: run "
                f"`datalad get {shlex.quote(str(found))}`)"
            )
    if side.is_file():
        # Ingest's reader: UTF-8 whatever the locale, a byte-order mark skipped (a sidecar
        # ingest accepted was refused here), an unreadable file said so, not a traceback.
        meta = read_json_object(str(side))
        if isinstance(meta, NotFetched):  # an unlocked annex file: `datalad get` is the fix
            missing.append(
                f"{side} (a git-annex pointer, its content not fetched: run "
                f"`datalad get {shlex.quote(str(side))}`)"
            )
        elif isinstance(meta, str):
            missing.append(f"{side} ({meta})")
        else:
            t_r, reason = sidecar_tr(meta, side.name)
            if meta.get("RepetitionTime") is None:
                no_tr = "its JSON sidecar names no RepetitionTime"
            if reason and not (no_tr and fallback is not None):
                missing.append(f"{side} (RepetitionTime: {reason})")
    if no_tr and isinstance(fallback, RefusedTR):
        said = f"{side} absent" if no_tr == "no JSON sidecar" else f"{side}: {no_tr}"
        if missing:  # other files lacking too: the sidecar is one of them, and why is said
            missing.append(f"{said} (and {fallback.refusal()})")
        else:
            raise FallbackTRRefusedError(
                f"{said}, and {fallback.refusal()}", fallback.code, hint=fallback.hint()
            )
    if missing:
        return None, missing
    if no_tr and isinstance(fallback, FallbackTR):
        t_r, t_r_source = fallback.t_r, fallback.code
        t_r_note = _fallback_note(bold, side, no_tr, fallback)
        log.warning("%s: %s", ids.run_key, t_r_note)
    if t_r is None:
        return None, missing
    if t_r_source == TR_FROM_PREPROC:
        t_r_note = check_preproc_tr(bold, side, t_r, fallback)
    if not mask_found:
        log.warning(
            "%s: no brain mask (looked for %s); parcel coverage will count the voxels whose "
            "signal varies over time (QC coverage_rule: live_voxels)",
            ids.run_key,
            mask,
        )
    found = RunDerivatives(
        run_key=ids.run_key,
        sub=ids.subject,
        ses=ids.session,
        task=ids.task,
        run=ids.run,
        bold=str(bold),
        mask=mask_found,
        confounds=str(confounds),
        # "" when absent (its TR from the raw run): no file to hash as a product.
        sidecar=str(side) if side.is_file() else "",
        t_r=t_r,
        space_read=space_of(entities_of(bold.name)),
        t_r_source=t_r_source,
        t_r_note=t_r_note,
    )
    return found, []


def check_preproc_tr(
    bold: Path, side: Path, t_r: float, fallback: FallbackTR | RefusedTR | None = None
) -> str:
    """Check the TR a preprocessed BOLD's sidecar gives against its header and the raw run's.

    fMRIPrep copies the raw run's TR into the BOLD's header and its sidecar alike: a
    disagreement is a BOLD resampled in time or edited by hand, or a sidecar copied from
    another run. The header is compared as ingest compares a raw run's
    (:func:`lcm.bids.timing.compare_header_tr`: a ``pixdim[4]`` whose ``xyzt_units`` names
    no time unit is compared only where it is a plausible TR in seconds or milliseconds, and
    never confirms it); then, when ``fallback`` is the raw run's TR (:data:`TR_FROM_RAW`: the
    manifest's, or ingest's reading of the raw folder), the two within
    :data:`lcm.bids.timing.TR_TOLERANCE_S`. A derivatives dataset's own TR
    (:data:`TR_FROM_INHERITED`, :data:`TR_FROM_HEADER`) was read from these very files and is
    not compared again. An unreadable header is left to the connectome stage, which reads it.

    Parameters
    ----------
    bold : Path
        The preprocessed BOLD.
    side : Path
        Its JSON sidecar, which gave ``t_r``.
    t_r : float
        The sidecar's ``RepetitionTime`` (seconds).
    fallback : FallbackTR or RefusedTR, optional
        The run's TR from ingest (:func:`find_run_derivatives`).

    Returns
    -------
    str
        The record's ``t_r_note``: ``""`` when the header confirms the TR, else why it does
        not (``TR not checked: ...``), logged.

    Raises
    ------
    PreprocTRMismatchError
        When the header or the raw run's TR disagrees, naming the files, both values and the fix.
    """
    note = ""
    try:
        header = read_bold_header(bold)
    except UnreadableHeader as exc:
        note = f"TR not checked: the NIfTI header of {bold.name} is unreadable ({exc})"
    else:
        compared = compare_header_tr(t_r, header, str(bold))
        if compared.mismatch:
            problem, fix = reason_codes.split_fix(compared.mismatch)
            raise PreprocTRMismatchError(
                f"{problem} (sidecar {side})",
                hint="Restore the preprocessed BOLD and its sidecar from the fMRIPrep output "
                "folder they were copied from (fMRIPrep writes the raw run's TR in both), or "
                "rerun fMRIPrep for the subject; for a BOLD resampled in time, " + fix,
            )
        if compared.unchecked:  # no pixdim[4], or one of unknown time unit: no confirmation
            note = f"TR not checked: {compared.unchecked}"
    if isinstance(fallback, FallbackTR) and fallback.code == TR_FROM_RAW:
        if abs(fallback.t_r - t_r) > TR_TOLERANCE_S:
            raise PreprocTRMismatchError(
                f"TR mismatch in {side}: the preprocessed sidecar's RepetitionTime is {t_r:g} s "
                f"but {fallback.source} give {fallback.t_r:g} s, and fMRIPrep keeps the raw "
                "run's TR",
                hint="Restore the preprocessed BOLD and its sidecar from the fMRIPrep output "
                "folder they were copied from, or rerun fMRIPrep for the subject; where the raw "
                "sidecar's RepetitionTime is the wrong one, correct it and rerun lcm ingest, the "
                "acquisition protocol saying which is right.",
            )
    if note:
        log.info("%s: sidecar TR %g s, %s", bold.name, t_r, note)
    return note


def _fallback_note(bold: Path, side: Path, no_tr: str, fallback: FallbackTR) -> str:
    """What the record and the log say of a TR taken from ``fallback``, once checked against
    the BOLD header's ``pixdim[4]`` (:func:`lcm.bids.timing.compare_header_tr`: a number of
    unknown time unit is compared only where it is a plausible TR, and proves nothing).

    Raises
    ------
    FallbackTRMismatchError
        When the header's TR disagrees: which one is right cannot be told from the files.
    """
    try:
        header = read_bold_header(bold)
    except UnreadableHeader as exc:
        check = f"not checked: the NIfTI header of {bold.name} is unreadable ({exc})"
    else:
        compared = compare_header_tr(fallback.t_r, header, bold.name)
        if compared.mismatch:
            reason = reason_codes.split_fix(compared.mismatch)[0]
            reason = reason.replace("sidecar RepetitionTime", "fallback")
            raise FallbackTRMismatchError(
                f"{bold}: {no_tr} ({side.name}), and the TR of {fallback.source} disagrees "
                f"with the BOLD header ({reason})",
                hint=RESTORE_SIDECAR_FIX,
            )
        if compared.unchecked:  # no pixdim[4], or one of unknown time unit: no proof
            check = f"not checked: {compared.unchecked}"
        elif fallback.code == TR_FROM_HEADER:  # the same header: only a file changed since
            check = "no sidecar to check it against"
        else:
            check = f"the NIfTI header of {bold.name} agrees (pixdim[4] {header.t_r:g} s)"
    return (
        f"{side} absent" if no_tr == "no JSON sidecar" else f"{side}: {no_tr}"
    ) + f"; TR {fallback.t_r:g} s taken from {fallback.source}; {check}"


# A NIfTI image's file endings, gzip-compressed first (fMRIPrep's); a dataset gunzipped to load
# faster holds ``.nii``, its BOLD and masks alike (or not: each is looked for under both).
NIFTI_EXTENSIONS = (".nii.gz", ".nii")


def _nifti_extension(name: str) -> str:
    """The NIfTI ending of a file name (``.nii.gz`` or ``.nii``)."""
    return next(e for e in NIFTI_EXTENSIONS if name.endswith(e))


def _companion_image(func: Path, stem: str, extension: str) -> Path:
    """The image ``stem`` with the BOLD's ``extension``, else with the other ending; the one
    with ``extension`` (the name a missing-file message gives) when neither exists."""
    first = func / f"{stem}{extension}"
    if first.is_file():
        return first
    for other in NIFTI_EXTENSIONS:
        if other != extension and (func / f"{stem}{other}").is_file():
            return func / f"{stem}{other}"
    return first


def other_spaces(deriv_root: str | Path, ids: RunIds, space: str) -> list[str]:
    """The spaces of a run's preprocessed BOLD when none is in ``space``, else ``[]``.

    The spaces (as :func:`lcm.io.output_space.space_of` spells them) that make a run lacking
    its BOLD in ``space`` :data:`~lcm.bids.rows.NOT_IN_SPACE`, as ingest of fMRIPrep
    derivatives says it; ``[]`` when a BOLD in ``space`` is there (something else is missing)
    or there is none in any space (fMRIPrep stopped before writing it).

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    ids : RunIds
        The run's identifiers.
    space : str
        The output space asked for (``fmriprep.output_space``).
    """
    func = Path(deriv_root) / subject_dir(ids.entities) / "func"
    key = derivative_run_key(func, ids)
    pattern = _bold_pattern(key)
    try:
        found = [entities_of(name) for name in os.listdir(func) if pattern.match(name)]
    except OSError:
        return []
    wanted = parse_output_space(space)
    if any(wanted.selects(ents) for ents in found):
        return []
    return sorted({space_of(ents) for ents in found})


def cifti_outputs(deriv_root: str | Path, ids: RunIds) -> list[str]:
    """The names of a run's CIFTI BOLD files (``*_bold.dtseries.nii``), sorted; ``[]`` if none.

    They tell a run fMRIPrep preprocessed into grayordinates only (``--cifti-output`` without
    a volumetric template space) from one where it stopped before writing any BOLD.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    ids : RunIds
        The run's identifiers.
    """
    func = Path(deriv_root) / subject_dir(ids.entities) / "func"
    try:
        prefix = f"{derivative_run_key(func, ids)}_space-"
        names = os.listdir(func)
    except (OSError, AmbiguousDerivativesError):
        return []
    return sorted(n for n in names if n.startswith(prefix) and n.endswith(f"_bold{CIFTI_ENDING}"))


def _lacking(path: Path) -> str:
    """A missing file for the reason; a dangling symlink is DataLad content not fetched."""
    if path.is_symlink():
        return f"{path} (a symlink to absent content: run `datalad get {shlex.quote(str(path))}`)"
    return str(path)


def check_subject_derivatives(
    deriv_root: str | Path,
    runs: list[RunIds],
    space: str,
    fallback_trs: dict[str, FallbackTR | RefusedTR] | None = None,
    names: Mapping[str, str] | None = None,
) -> tuple[list[RunDerivatives], dict[str, tuple[str, str]]]:
    """Derivatives of every run, and why each run without complete ones is excluded.

    A subject whose fMRIPrep failed for a run (or for every run) is common in a cohort: its
    runs are excluded with the files they lack, the other runs and subjects go on.
    ``fallback_trs`` maps a run key to the TR used where its preprocessed sidecar gives none
    (:func:`find_run_derivatives`); one that disagrees with the BOLD header excludes the run
    (:data:`TR_MISMATCH`), and so does a :class:`RefusedTR` (with ingest's code and reason).
    A sidecar TR that disagrees with its BOLD header, or with the raw run's TR
    (:func:`check_preproc_tr`), excludes the run as :data:`TR_MISMATCH` too.

    Parameters
    ----------
    deriv_root : str or Path
        The fMRIPrep derivatives root.
    runs : list of RunIds
        The subject's runs to look for.
    space : str
        The output space read (``fmriprep.output_space``).
    fallback_trs : dict, optional
        ``{run_key: FallbackTR or RefusedTR}``, the TR of runs whose preprocessed sidecar
        gives none, or why the raw run lends none.
    names : mapping of str to str, optional
        The dataset's settings as the user gave them, named in the fixes
        (:func:`lcm.bids.dataset.setting_names` of the dataset: ``lcm fmriprep``'s options, or
        the config's keys under a workflow rule); by default ``fmriprep.output_space``, and no
        setting named for the derivatives or the selection.

    Returns
    -------
    (list of RunDerivatives, dict)
        The complete runs, and ``{run_key: (reason_code, reason)}`` of the others (the code
        :data:`OUTPUTS_MISSING`, :data:`OUTPUTS_AMBIGUOUS`, or ``not_in_space`` with the spaces
        fMRIPrep wrote, as ingest says it; each reason names the files and
        the fixes).
    """
    keys = {"space": CONFIG_KEYS["space"], **(names or {})}
    found: list[RunDerivatives] = []
    excluded: dict[str, tuple[str, str]] = {}
    for ids in runs:
        fallback = (fallback_trs or {}).get(ids.run_key)
        try:
            deriv, lacking = find_run_derivatives(deriv_root, ids, space, fallback)
        except AmbiguousDerivativesError as exc:
            excluded[ids.run_key] = (OUTPUTS_AMBIGUOUS, exc.one_line())
            continue
        except TRMismatchError as exc:
            excluded[ids.run_key] = (TR_MISMATCH, exc.one_line())
            continue
        except FallbackTRRefusedError as exc:
            excluded[ids.run_key] = (exc.code, exc.one_line())
            continue
        if deriv is not None:
            found.append(deriv)
            continue
        if elsewhere := other_spaces(deriv_root, ids, space):
            excluded[ids.run_key] = not_in_space(space, elsewhere, keys["space"])
            continue
        cifti = cifti_outputs(deriv_root, ids)
        reason = _missing_reason(deriv_root, space, lacking, cifti, keys)
        excluded[ids.run_key] = (OUTPUTS_MISSING, reason)
    return found, excluded


def _missing_reason(
    deriv_root: str | Path,
    space: str,
    lacking: list[str],
    cifti: list[str] | None,
    keys: Mapping[str, str],
) -> str:
    """The exclusion reason of a run lacking files, its fix fitting what is missing: with the
    BOLD in ``space`` there, rerunning fMRIPrep for that space is not the fix. ``cifti``, the
    run's CIFTI files, says why a BOLD fMRIPrep did write is not read. ``keys`` names the
    settings as the user gave them (:func:`check_subject_derivatives`): the fix named
    ``ingest.select.<dataset>`` unfilled and ``--derivatives`` to either user."""
    what = f"fMRIPrep outputs for space {space!r} missing in {deriv_root}: {'; '.join(lacking)}"
    # A BOLD there but not fetched (its item names `datalad get`) is no BOLD to make again.
    no_bold = any("_desc-preproc_bold.nii" in i and "datalad get" not in i for i in lacking)
    if cifti and no_bold:
        what += f"; {cifti_only(cifti[0])}"
    leave_out = "or leave the subject out" + (
        f" ({part_of(keys['select'], 'participants.exclude')})" if "select" in keys else ""
    )
    legacy = Path(deriv_root) / "fmriprep"
    if no_bold and legacy.is_dir():
        # fMRIPrep's legacy layout (<out>/fmriprep/sub-X): the outputs are one folder down.
        point = f" ({set_to(keys['derivatives'], legacy)})" if "derivatives" in keys else ""
        fix = (
            f"{legacy} is there, fMRIPrep's legacy output layout: point the dataset's "
            f"derivatives at it{point}, {leave_out}"
        )
    elif no_bold:
        # fMRIPrep writes both when asked: the CIFTI outputs need not be given up.
        both = " (--cifti-output may stay: fMRIPrep writes both)" if cifti else ""
        fix = (
            f"Run fMRIPrep for this run with --output-spaces {space}{both}, point the dataset's "
            f"derivatives at the folder that holds them, {leave_out}"
        )
    elif any(f" {UNREADABLE} (" in item for item in lacking):
        fix = (
            "Give the user running lcm read access to the file(s) named above (e.g. chmod a+r, "
            f"or run as their owner), {leave_out}"
        )
    else:
        fix = (
            f"The BOLD in space {space!r} is there; restore the file(s) named above from the "
            "fMRIPrep output folder they were copied from (`datalad get` where a symlink has "
            f"no content: each is written by fMRIPrep beside the BOLD), {leave_out}"
        )
    return reason_codes.with_fix(what, fix)
