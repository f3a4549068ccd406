"""Manifest rows: an empty row from a file name, and the checks that include or exclude a run.

Both indexers (the fast scandir one and the tests' pybids reference) build rows here, so a run
gets the same verdict whichever found it.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lcm import reason_codes
from lcm.bids.dataset import CONFIG_KEYS
from lcm.bids.nifti_header import UnreadableHeader, header_problem, read_bold_header, sniff_image
from lcm.bids.timing import compare_header_tr, header_tr_name, set_unit_fix, sidecar_tr
from lcm.docstrings import fill_doc
from lcm.entries import entry_type
from lcm.io.bids_names import parse_entities
from lcm.io.output_space import is_native_space
from lcm.reason_codes import with_fix
from lcm.repetition_time import implausible_tr

log = logging.getLogger(__name__)

# Short, stable codes of the exclusion reasons (the summary counts runs per code): the
# names of lcm.reason_codes, which lists them all.
INVALID_NAME = reason_codes.INVALID_NAME
INVALID_LABEL = reason_codes.INVALID_LABEL
BAD_SIDECAR = reason_codes.BAD_SIDECAR
NO_REPETITION_TIME = reason_codes.NO_REPETITION_TIME
NOT_4D = reason_codes.NOT_4D
BAD_HEADER = reason_codes.BAD_HEADER
TR_MISMATCH = reason_codes.TR_MISMATCH
DUPLICATE = reason_codes.DUPLICATE
NOT_SELECTED = reason_codes.NOT_SELECTED
OTHER_ATLAS = reason_codes.OTHER_ATLAS
OTHER_ECHO = reason_codes.OTHER_ECHO
OTHER_PART = reason_codes.OTHER_PART
NOT_FETCHED = reason_codes.NOT_FETCHED
NOT_IN_SPACE = reason_codes.NOT_IN_SPACE
OUTPUTS_MISSING = reason_codes.OUTPUTS_MISSING
VALIDATOR = reason_codes.VALIDATOR

# tr_check values of included runs.
TR_CHECKED = "ok"
TR_NOT_CHECKED = "not checked"
UNREADABLE = "NIfTI header unreadable"  # tr_check of an included run whose header was not read
# tr_check of a derivatives run whose TR no sidecar gives: its BOLD header's pixdim[4], in the
# time unit xyzt_units names (:func:`header_repetition_time`); the fMRIPrep stage records it
# as t_r_source "header".
TR_FROM_HEADER = "from the NIfTI header pixdim[4] (no sidecar RepetitionTime)"


@fill_doc
def base_row(
    dataset: str, entry: str, path: str | Path, ents: dict[str, str] | None = None
) -> dict[str, Any]:
    """A manifest row for ``path``, not yet included, entities parsed loosely from its name.

    Parameters
    ----------
    %(dataset)s
    entry : str
        The dataset's entry (:mod:`lcm.entries`).
    path : str or Path
        The run's data file.
    ents : dict, optional
        Its entities when the caller parsed them already; else parsed from the file name.
    """
    if ents is None:
        ents = parse_entities(os.path.basename(path))
    return {
        "dataset": dataset,
        "subject": ents.get("sub", ""),
        "session": ents.get("ses", ""),
        "task": ents.get("task", ""),
        "run": ents.get("run", ""),
        "acq": ents.get("acq", ""),
        "dir": ents.get("dir", ""),
        "echo": ents.get("echo", ""),
        "part": ents.get("part", ""),
        "space": ents.get("space", ""),
        # XCP-D before 0.7 named the parcellation atlas-, not seg-.
        "seg": ents.get("seg") or ents.get("atlas") or "",
        "run_key": "",
        "entry": entry,
        "path": str(path),
        "t_r": None,
        "tr_check": "",
        "included": False,
        "reason_code": "",
        "reason": "",
    }


def invalid_name_reason(name: str) -> str:
    """Why a raw BOLD file of a name BIDS does not allow is out (``invalid_name``), and the fix.

    Parameters
    ----------
    name : str
        The file's name.
    """
    return with_fix(
        f"{name} is not a valid BIDS file name (skipped by the BIDS index)",
        # BIDS's func entities in BIDS's order: a name with rec, dir, echo or part was told a
        # pattern without them, as if they were what made it invalid.
        "rename it sub-<label>[_ses-<label>]_task-<label>[_acq-<label>][_ce-<label>]"
        "[_rec-<label>][_dir-<label>][_run-<index>][_echo-<index>][_part-<mag|phase|real|imag>]"
        "_bold.nii[.gz] in sub-<label>/[ses-<label>/]func/ (entities in this order; labels of "
        "letters and digits only), or move it out of the dataset",
    )


def excluded(row: dict[str, Any], code: str, reason: str) -> dict[str, Any]:
    """``row`` excluded with a reason code and message.

    Parameters
    ----------
    row : dict
        A manifest row (:func:`base_row`); not modified.
    code : str
        The reason code (:mod:`lcm.reason_codes`).
    reason : str
        The message: what is wrong and the fix.
    """
    return {**row, "included": False, "reason_code": code, "reason": reason}


# The fix of a sidecar that is no JSON object.
FIX_SIDECAR_JSON = (
    "correct that sidecar's JSON (`python -m json.tool <sidecar>` names the line and column "
    'of the error); it must hold one object, e.g. {"RepetitionTime": 2.0}'
)
# The fix of a run whose sidecar cannot be opened (permissions): its JSON may be fine.
FIX_SIDECAR_READ = (
    "give the user running lcm read access to that sidecar (e.g. chmod a+r), or run lcm as its "
    "owner"
)
# The fix of a run whose sidecars give no usable RepetitionTime.
SET_REPETITION_TIME = (
    'set "RepetitionTime" (seconds, a positive number) in the run\'s JSON sidecar, or in one '
    "it inherits (e.g. task-<task>_bold.json at the dataset's top)"
)


# The words before the spaces a not_in_space reason lists (spaces_found reads them back).
_WROTE = "wrote this run's in "


def not_in_space(
    wanted: str, spaces: Iterable[str], setting: str = CONFIG_KEYS["space"]
) -> tuple[str, str]:
    """``(NOT_IN_SPACE, reason)`` of a run whose preprocessed BOLD is in other spaces only.

    The one wording, whichever entry found the run: ingest of fMRIPrep derivatives (entry
    fmriprep) and the fMRIPrep stage's record (entry bids, runner existing or a container).

    A space of the subject's own (``T1w``, ``func`` ...) is never suggested: one atlas image
    parcellates every subject, in a template's space (:func:`lcm.io.output_space.is_native_space`).

    Parameters
    ----------
    wanted : str
        The space asked for.
    spaces : iterable of str
        The spaces of the run's other ``desc-preproc`` BOLD files, as the setting spells them
        (:func:`lcm.io.output_space.space_of`); at least one.
    setting : str, default ``fmriprep.output_space``
        The setting that asked for ``wanted``, as the user gave it: ``lcm ingest --space``,
        ``lcm fmriprep --output-space``, or the config's key under a workflow rule
        (:func:`lcm.bids.dataset.setting_names`). A command-line user was told to set the
        config's key and two options at once.
    """
    found = sorted(set(spaces))
    templates = [s for s in found if not is_native_space(s)]
    if is_native_space(wanted):
        fix = (
            f"{wanted} is the subject's own space, which no atlas parcellates (one atlas image "
            f"serves every subject): set {setting} to the atlas's template"
            + (f", e.g. {templates[0]}" if templates else "")
            + ", and run fMRIPrep with it in --output-spaces"
        )
    elif templates:
        fix = (
            f"Set {setting} to the one to read, e.g. {templates[0]}, the same for every run, "
            f"or run fMRIPrep with --output-spaces {wanted}"
        )
    else:
        fix = (
            f"{'These are' if len(found) > 1 else 'This is'} the subject's own space, which no "
            f"atlas parcellates (one atlas image serves every subject): run fMRIPrep with "
            f"--output-spaces {wanted}"
        )
    return NOT_IN_SPACE, with_fix(
        f"no preprocessed BOLD in space {wanted} ({setting}); fMRIPrep {_WROTE}{', '.join(found)}",
        fix,
    )


# The ending of fMRIPrep's CIFTI BOLD (``--cifti-output``: space-fsLR_den-91k_bold.dtseries.nii).
CIFTI_ENDING = ".dtseries.nii"


def cifti_only(name: str) -> str:
    """Why a run whose only fMRIPrep BOLD is CIFTI has none LCM reads, naming one such file.

    fMRIPrep run with ``--cifti-output`` and no volumetric template in ``--output-spaces``
    writes grayordinates (surface vertices and subcortical voxels) only; an atlas image
    parcellates volumes. The one wording of ingest (entry fmriprep) and the fMRIPrep stage.

    Parameters
    ----------
    name : str
        One of the run's CIFTI files (``*_bold.dtseries.nii``), as the reason shows it.
    """
    return (
        f"this run has only CIFTI (grayordinate) outputs, e.g. {name} (fMRIPrep's "
        "--cifti-output), which LCM does not read: an atlas parcellates a volumetric BOLD in a "
        "template space"
    )


def spaces_found(reason: str) -> list[str]:
    """The spaces a :func:`not_in_space` reason names (those of the run's preprocessed BOLD).

    Parameters
    ----------
    reason : str
        A manifest row's reason; ``[]`` when it is not a :func:`not_in_space` reason.
    """
    tail = reason.partition(_WROTE)[2]
    return tail.split(". ", 1)[0].split(", ") if tail else []


def not_fetched_reason(path: str | Path, what: str = "", pointer: bool = False) -> str:
    """Why a run whose file (``what``: e.g. ``"its sidecar "``) is not fetched is out: a
    dangling symlink (a locked git-annex file), or with ``pointer`` an unlocked file's pointer.

    The ``datalad get`` command is shell-quoted: paste it as it is, whatever the path holds.

    Parameters
    ----------
    path : str or Path
        The file not fetched.
    what : str, default ""
        What it is to the run, prefixed to the message (``"its sidecar "``); ``""`` for the run's
        own file.
    pointer : bool, default False
        Whether it is an unlocked file's pointer rather than a dangling symlink.
    """
    state = (
        "a git-annex pointer file, not its content (an unlocked DataLad/git-annex file "
        if pointer
        else "a symlink to content that is not present (a DataLad/git-annex file "
    )
    get = f"datalad get {shlex.quote(str(path))}"
    return with_fix(f"{what}{path} is {state}not fetched)", f"run `{get}` and ingest again")


def check_repetition_time(row: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """Set ``t_r`` from resolved sidecar metadata, or exclude the run when it is unusable.

    Parameters
    ----------
    row : dict
        A manifest row (:func:`base_row`).
    metadata : dict
        Its sidecars' merged metadata (:meth:`lcm.bids.sidecars.SidecarReader.resolve`).

    Returns
    -------
    dict
        A copy, included with its ``t_r``, or excluded as ``no_repetition_time``.
    """
    t_r, reason = sidecar_tr(metadata, os.path.basename(row["path"]))
    if reason:
        return excluded(row, NO_REPETITION_TIME, with_fix(reason, SET_REPETITION_TIME))
    return {**row, "t_r": t_r, "included": True}


def header_repetition_time(row: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    """Set ``t_r`` from the sidecars, else from the BOLD header: a derivatives run's TR.

    fMRIPrep outputs shared without raw BIDS may come without any sidecar naming
    ``RepetitionTime``; their BOLD header still holds ``pixdim[4]``, which nilearn and XCP-D
    read as the TR. It is used when ``xyzt_units`` names its time unit (seconds, or
    milliseconds and microseconds, converted), with a warning naming the file, and
    ``tr_check`` :data:`TR_FROM_HEADER`. A header of unknown time unit (``xyzt_units`` time
    bits 0), a ``pixdim[4]`` that is no positive number, a TR above 30 s (2000 milliseconds
    written in ``sec``: :func:`lcm.repetition_time.implausible_tr`), or a header that cannot be
    read keeps the run excluded as ``no_repetition_time``, the reason saying which.

    Parameters
    ----------
    row : dict
        A manifest row (:func:`base_row`) of a derivatives dataset's BOLD.
    metadata : dict
        Its sidecars' merged metadata (:meth:`lcm.bids.sidecars.SidecarReader.resolve`).

    Returns
    -------
    dict
        A copy, included with its ``t_r``, or excluded.
    """
    if metadata.get("RepetitionTime") is not None:  # a sidecar's value, valid or not, decides
        return check_repetition_time(row, metadata)
    path = row["path"]
    name = os.path.basename(path)
    missing = f"RepetitionTime missing from the JSON sidecars of {name}"
    # Not datasets.<name>.repetition_time: ingest applies it to ROI series only.
    fix = "add a JSON sidecar with RepetitionTime (seconds) beside it"
    try:
        header = read_bold_header(path)
    except UnreadableHeader as exc:
        if sniff_image(path) == "annex_pointer":
            return excluded(row, NOT_FETCHED, not_fetched_reason(path, pointer=True))
        why = f"its NIfTI header is unreadable ({exc})"
    else:
        fix += f", or, where the header's pixdim[4] is the TR, {set_unit_fix(header.pixdim_t)}"
        if header.pixdim_t is None:
            why = "its NIfTI header's pixdim[4] is no positive number"
        elif header.t_r is None:
            why = (
                f"its NIfTI header's pixdim[4] ({header.pixdim_t:g}) has no time unit "
                "(xyzt_units time bits 0 or not a time unit), so it is no TR to trust"
            )
        elif problem := implausible_tr(header.t_r, header_tr_name(header, name), header.pixdim_t):
            return excluded(row, NO_REPETITION_TIME, with_fix(problem, fix))  # 2000 ms as sec
        else:
            log.warning(
                "%s: no JSON sidecar names RepetitionTime; TR %g s taken from its NIfTI "
                "header (pixdim[4], in the time unit its xyzt_units names)",
                path,
                header.t_r,
            )
            return {**row, "t_r": header.t_r, "included": True, "tr_check": TR_FROM_HEADER}
    return excluded(row, NO_REPETITION_TIME, with_fix(f"{missing}, and {why}", fix))


def _intact_copy(row: dict[str, Any], raw: str = "download or convert it again") -> str:
    """Where an intact copy of a run's image comes from: a raw run's from its source or
    DICOMs; an fMRIPrep output's from fMRIPrep's output folder, or a rerun of fMRIPrep."""
    if entry_type(row["entry"]).raw:
        return raw
    return (
        "re-copy it from the fMRIPrep output folder it came from (`datalad get` it again where "
        f"it is a DataLad dataset), or rerun fMRIPrep for sub-{row['subject']}"
    )


def check_bold_header(row: dict[str, Any], size: int | None = None) -> dict[str, Any]:
    """Cross-check an included BOLD row's TR and dimensions with its NIfTI header.

    A file that is no image at all excludes the run: a git-annex pointer (an unlocked file
    not fetched) as ``not_fetched`` with its ``datalad get``, anything else that is neither
    gzip nor NIfTI (for its name) as ``bad_header``. A header that cannot be read but may be
    later (an empty placeholder, a truncated gzip or NIfTI: a download in progress) does not
    exclude the run: the sidecar TR stands, ``tr_check`` records why it was not checked (the
    ingest log warns about such runs), and fMRIPrep will report a broken image. A readable
    header that is not 4D (or 4D of one volume) or disagrees on the TR excludes the run
    (:func:`lcm.bids.timing.compare_header_tr`: a ``pixdim[4]`` whose ``xyzt_units`` names
    no time unit is compared only where it is a plausible TR in seconds or milliseconds, and
    never counts as a check: ``tr_check`` then says so), and so do absurd dimensions
    or a file too small for the data its header claims, a ``.nii.gz`` cut short included
    (:func:`lcm.bids.nifti_header.header_problem`): a corrupt header would otherwise
    size arrays of terabytes downstream. ``size`` (bytes, when the caller has it) spares
    opening empty files and a second ``stat``.

    Parameters
    ----------
    row : dict
        An included manifest row with its ``t_r`` (:func:`check_repetition_time`).
    size : int, optional
        The file's size in bytes.

    Returns
    -------
    dict
        A copy: ``tr_check`` set, or excluded with its reason.
    """
    path = row["path"]
    name = os.path.basename(path)
    if size == 0:
        return {**row, "tr_check": f"{TR_NOT_CHECKED}: {UNREADABLE} (empty file)"}
    try:
        header = read_bold_header(path)
    except UnreadableHeader as exc:
        content = sniff_image(path)
        if content == "annex_pointer":
            return excluded(row, NOT_FETCHED, not_fetched_reason(path, pointer=True))
        expected = "gzip" if name.endswith(".gz") else "nifti"
        if content == "other" or (content in ("gzip", "nifti") and content != expected):
            what = "gzip-compressed NIfTI" if expected == "gzip" else "NIfTI"
            return excluded(
                row,
                BAD_HEADER,
                with_fix(
                    f"{name} is not a {what} image ({exc})",
                    f"replace it with the real {what} image: {_intact_copy(row)}",
                ),
            )
        return {**row, "tr_check": f"{TR_NOT_CHECKED}: {UNREADABLE} ({exc})"}
    if header.ndim != 4 or header.shape[3] == 1:
        # A 4D image of one volume (x, y, z, 1) is no series either: fMRIPrep skips it, and
        # the connectome stage failed on it after the cohort was planned with it.
        what = f"{header.ndim}D" if header.ndim != 4 else f"4D with one volume {header.shape}"
        return excluded(
            row,
            NOT_4D,
            with_fix(
                f"{name} is {what}; a 4D BOLD series is expected",
                "replace it with the run's 4D series (x, y, z, volumes), e.g. "
                f"{_intact_copy(row, raw='converted again from its DICOMs')}; a single volume "
                "is no run to correlate",
            ),
        )
    problem = header_problem(path, header, size)
    if problem:
        return excluded(
            row,
            BAD_HEADER,
            with_fix(
                f"{name}: {problem}",
                f"replace it with an intact copy: {_intact_copy(row)}",
            ),
        )
    compared = compare_header_tr(row["t_r"], header, name)
    if compared.mismatch:
        return excluded(row, TR_MISMATCH, compared.mismatch)
    if compared.unchecked:  # no pixdim[4], or one of unknown time unit: no confirmation
        return {**row, "tr_check": f"{TR_NOT_CHECKED}: {compared.unchecked}"}
    # A TR read from this header agrees with it by construction: where it came from is kept.
    from_header = row.get("tr_check") == TR_FROM_HEADER
    return {**row, "tr_check": TR_FROM_HEADER if from_header else TR_CHECKED}
