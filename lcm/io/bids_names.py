"""BIDS-derivative file names, built in one place.

File names come from :func:`build_name`, so they are always valid BIDS-style and follow XCP-D's
convention for connectivity outputs, e.g.
``sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_seg-aal116_stat-pearsoncorrelation_relmat.tsv``.
Where the workflow's outputs live (folders and these names together) is :mod:`lcm.io.paths`.
"""

from __future__ import annotations

import re
from pathlib import Path

from lcm.exceptions import InputDataError

# Order of entities in a file name (BIDS specification order, then XCP-D's ``stat``).
ENTITY_ORDER = (
    "sub",
    "ses",
    "task",
    "acq",
    "ce",
    "rec",
    "dir",
    "run",
    "echo",
    "part",
    "space",
    "cohort",
    "res",
    "den",
    "seg",
    "desc",
    "stat",
)
# Entities that identify an acquisition, in BIDS order: a run key joins them (``part``: the
# magnitude, ``part-mag``, of complex-valued BOLD, which fMRIPrep keeps in its output names).
RUN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
# What an entity labels, for the fix of an invalid label.
_ENTITY_WORDS = {"sub": "participant", "ses": "session", "task": "task", "run": "run"}
_ENTITY_RE = re.compile(r"(?:^|_)([a-zA-Z]+)-([^_/]+)")


def check_label(entity: str, value: object, source: str = "") -> str:
    """Return ``value`` as a BIDS label, or raise if it is not alphanumeric.

    For labels a user types (config keys, command-line options, ``participants.tsv``), where
    ``sub-01`` means ``01``: a leading ``<entity>-`` is stripped, then the rest is checked as
    :func:`check_name_label` does. Labels read from file names go to that function directly.

    Parameters
    ----------
    entity : str
        Entity name, for the message (``sub``, ``ses``, ...).
    value : object
        Proposed label; a leading ``<entity>-`` prefix is stripped.
    source : str, optional
        File or config key the label came from, for the message.
    """
    label = str(value)
    if label.startswith(f"{entity}-"):
        label = label[len(entity) + 1 :]
    return _checked(entity, label, value, source)


def check_name_label(entity: str, value: object, source: str = "") -> str:
    """Return ``value`` as a BIDS label as written in a file or folder name, or raise.

    Labels reach file names and shell commands, so anything but ``[A-Za-z0-9]`` (spaces, ``..``,
    ``;``, ``$``) is refused. Nothing is stripped: ``sub-sub-01`` has the label ``sub-01``,
    refused, not the subject ``01`` of another folder.

    Parameters
    ----------
    entity : str
        Entity name, for the message (``sub``, ``ses``, ...).
    value : object
        The label.
    source : str, optional
        File the label came from, for the message.
    """
    return _checked(entity, str(value), value, source)


def _checked(entity: str, label: str, value: object, source: str) -> str:
    if not _LABEL_RE.fullmatch(label):  # fullmatch: '$' alone lets a final newline in
        where = f" in {source}" if source else ""
        what = _ENTITY_WORDS.get(entity, f"{entity}- entity")
        # The label's own rename goes in the message; the hint is one text per entity, so that
        # a table of many bad labels (a phenotype file) gives it once.
        clean = re.sub(r"[^A-Za-z0-9]", "", label)
        example = f", e.g. {entity}-{clean} for {entity}-{label}" if clean else ""
        if label.startswith(f"{entity}-"):  # sub-sub-01: the entity written twice
            example = (
                f" ({entity}-{label} writes '{entity}-' twice: {label} if it is that {what}, "
                "else a label of its own)"
            )
        hint = (
            f"Rename the {what} so its label is alphanumeric, letters and digits only (A-Z, "
            "a-z, 0-9: no spaces, '_', '-', '.' or shell characters), the same in every file "
            "and folder name and table (participants.tsv, a listing) that spells it."
        )
        if re.fullmatch(r"[0-9]+\.0+", label):  # a spreadsheet wrote the number as a float
            example = ""
            hint = (
                f"{label} is the number {label.split('.')[0]} written as a decimal (a "
                "spreadsheet saved the column as numbers): save it as text, without '.0'."
            )
        raise InputDataError(
            f"Invalid BIDS {entity!r} label {value!r}{where}: expected letters and digits "
            f"only{example}.",
            hint=hint,
        )
    return label


def parse_entities(name: str, has_extension: bool = True) -> dict[str, str]:
    """Parse the ``key-value`` entities of a BIDS file name (folders are ignored).

    Parameters
    ----------
    name : str
        A file name or path; only the part before the first dot of its last component is read.
    has_extension : bool, default True
        False for a stem whose extension is already cut: a dot left in it is a label's
        (``sub-0.2``), kept whole for the label check to refuse, never cut to another
        subject (``sub-0``).

    Returns
    -------
    dict of str to str
        Entity name to label, in the order they appear (``sub-01_task-rest_bold.nii.gz`` gives
        ``{"sub": "01", "task": "rest"}``). Labels are not checked.
    """
    stem = Path(name).name
    stem = stem.split(".")[0] if has_extension else stem
    return {k: v for k, v in _ENTITY_RE.findall(stem)}


def build_name(entities: dict[str, object], suffix: str, extension: str) -> str:
    """Build a BIDS file name from entities (``None`` values are skipped).

    Parameters
    ----------
    entities : dict
        Entity name to label, e.g. ``{"sub": "01", "task": "rest", "run": 1}``.
    suffix : str
        BIDS suffix, e.g. ``"relmat"``.
    extension : str
        Extension with its dot, e.g. ``".tsv"``.
    """
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"Unknown BIDS entities {sorted(unknown)}; known: {ENTITY_ORDER}")
    parts = [
        f"{key}-{check_name_label(key, entities[key])}"
        for key in ENTITY_ORDER
        if entities.get(key) not in (None, "")
    ]
    return "_".join([*parts, suffix]) + extension


def subject_dir(entities: dict[str, object]) -> Path:
    """Folder of a run inside a BIDS tree: ``sub-X[/ses-Y]``.

    Parameters
    ----------
    entities : dict
        The run's entities; ``sub`` is required, ``ses`` is used when present and not empty.

    Returns
    -------
    pathlib.Path
        The relative folder.

    Raises
    ------
    lcm.exceptions.InputDataError
        When the subject or session label is not alphanumeric.
    """
    path = Path(f"sub-{check_name_label('sub', entities['sub'])}")
    if entities.get("ses") not in (None, ""):
        path = path / f"ses-{check_name_label('ses', entities['ses'])}"
    return path


def derivative_path(
    root: str | Path,
    entities: dict[str, object],
    suffix: str,
    extension: str,
    datatype: str = "func",
) -> Path:
    """Full path of a derivative file: ``root/sub-X[/ses-Y]/datatype/<name>``.

    Parameters
    ----------
    root : str or pathlib.Path
        The derivatives folder the BIDS tree starts in.
    entities : dict
        Entity name to label; ``sub`` is required.
    suffix : str
        BIDS suffix, e.g. ``"timeseries"``.
    extension : str
        Extension with its dot, e.g. ``".tsv"``.
    datatype : str
        The datatype folder under the subject (and session) folder.

    Returns
    -------
    pathlib.Path
        The path (nothing is created).

    Raises
    ------
    lcm.exceptions.InputDataError
        When a label is not alphanumeric.
    ValueError
        When ``entities`` holds an entity BIDS does not know.
    """
    return Path(root) / subject_dir(entities) / datatype / build_name(entities, suffix, extension)


def run_key(entities: dict[str, object]) -> str:
    """Identifier of one run, e.g. ``sub-01_ses-1_task-rest_run-1`` (acquisition entities only).

    Parameters
    ----------
    entities : dict
        The run's entities; ``sub`` is required to make a usable key, the others are used when
        present and not empty. Derivative entities (``space``, ``desc``, ...) are ignored.

    Returns
    -------
    str
        The key, entities in BIDS order.

    Raises
    ------
    lcm.exceptions.InputDataError
        When a label is not alphanumeric.
    """
    return "_".join(
        f"{k}-{check_name_label(k, entities[k])}"
        for k in RUN_ENTITIES
        if entities.get(k) not in (None, "")
    )
