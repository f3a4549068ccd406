"""Which runs of a dataset to use: include/exclude lists per entity, from config.

In the spirit of snakebids' ``pybids_inputs`` filters, ``ingest.select.<dataset>`` holds, for
``participants``, ``sessions``, ``runs``, ``acq``, ``dir``, ``echo`` and ``space``, an
``include`` list (empty: everything) and an ``exclude`` list. The task is chosen by
``datasets.<name>.task``. Runs left out stay in the manifest with ``included=False`` and
reason code ``not_selected``, so the summary says what the selection removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lcm.bids.dataset import part_of
from lcm.bids.rows import (
    DUPLICATE,
    NOT_SELECTED,
    OTHER_ATLAS,
    OTHER_ECHO,
    OTHER_PART,
    OUTPUTS_MISSING,
)
from lcm.exceptions import ConfigError
from lcm.hints import set_to
from lcm.reason_codes import split_fix, with_fix

# Selection key -> (manifest column, BIDS entity prefix that may be written before labels).
SELECTION_KEYS = {
    "participants": ("subject", "sub"),
    "sessions": ("session", "ses"),
    "runs": ("run", "run"),
    "acq": ("acq", "acq"),
    "dir": ("dir", "dir"),
    "echo": ("echo", "echo"),
    "space": ("space", "space"),
}
_INDEX_KEYS = ("runs", "echo")  # compared as numbers: run-01 is run 1
# How the reason of a run left out begins, the key's column named: participants_kept reads
# it, whatever name the selection is given by (--select's, ingest.select.<dataset>'s).
_LEFT_OUT = "not selected: {column} "


@dataclass(frozen=True)
class Selection:
    """Include/exclude labels per selection key (see the module docstring)."""

    include: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any] | None,
        source: str = "select",
        task: str = "datasets.<name>.task",
    ) -> Selection:
        """Parse ``{key: {include: [...], exclude: [...]}}``; labels may carry their prefix.

        Parameters
        ----------
        config : dict or None
            The selection, by key (``participants``, ``sessions``, ``runs`` ...); None selects all.
        source : str, default "select"
            Where it was set (``ingest.select.<dataset>``, ``--select``), named in errors.
        task : str, default "datasets.<name>.task"
            How the user sets the task (``--task``), named in the hint of an unknown key.

        Raises
        ------
        ConfigError
            On an unknown key or a value that is not a list of labels.
        """
        include: dict[str, tuple[str, ...]] = {}
        exclude: dict[str, tuple[str, ...]] = {}
        for key, spec in (config or {}).items():
            if key not in SELECTION_KEYS:
                raise ConfigError(
                    f"{source}: unknown selection key {key!r}; expected one of "
                    f"{sorted(SELECTION_KEYS)}.",
                    hint=f"The task is set by {task}.",
                )
            if not isinstance(spec, dict) or set(spec) - {"include", "exclude"}:
                raise ConfigError(
                    f"{part_of(source, key)}: expected {{include: [...], exclude: [...]}}, "
                    f"received {spec!r}."
                )
            prefix = SELECTION_KEYS[key][1]
            for which, target in (("include", include), ("exclude", exclude)):
                values = spec.get(which) or []
                if not isinstance(values, list):
                    raise ConfigError(
                        f"{part_of(source, f'{key}.{which}')}: expected a list of labels, "
                        f"received {values!r}."
                    )
                labels = tuple(_normal(key, str(v).removeprefix(f"{prefix}-")) for v in values)
                if labels:
                    target[key] = labels
        return cls(include=include, exclude=exclude)

    def is_empty(self) -> bool:
        """Whether the selection keeps every run."""
        return not self.include and not self.exclude

    def subjects_left_out(self, folders: list[str]) -> list[str]:
        """The subject folders (``sub-<label>``) of ``folders`` that the participant selection
        leaves out: none without one. What the BIDS validator is told to ignore.

        Parameters
        ----------
        folders : list of str
            Subject folder names, ``sub-<label>``.
        """
        include = self.include.get("participants")
        exclude = self.exclude.get("participants", ())
        out = []
        for folder in folders:
            label = _normal("participants", folder.removeprefix("sub-"))
            if (include is not None and label not in include) or label in exclude:
                out.append(folder)
        return out

    def to_dict(self) -> dict[str, dict[str, list[str]]]:
        """JSON-ready form, for the summary."""
        keys = sorted(set(self.include) | set(self.exclude))
        return {
            k: {"include": list(self.include.get(k, ())), "exclude": list(self.exclude.get(k, ()))}
            for k in keys
        }

    def check_matches(
        self, manifest: pd.DataFrame, subject_folders: Sequence[str], where: str
    ) -> None:
        """Refuse labels that match nothing in the dataset, as fMRIPrep's --participant-label.

        An exclude list's ``1`` for ``sub-01`` kept the subject, an include list's dropped
        it, both silently.

        Parameters
        ----------
        manifest : pandas.DataFrame
            Every row of the dataset, excluded ones included, before the selection.
        subject_folders : sequence of str
            The dataset's ``sub-<label>`` folders (a subject without a run of the task is one).
        where : str
            The setting, for the message (``ingest.select.<dataset>``, ``--select``).

        Raises
        ------
        ConfigError
            Naming the labels, what the dataset has and the closest one.
        """
        for key, (column, prefix) in SELECTION_KEYS.items():
            listed = [*self.include.get(key, ()), *self.exclude.get(key, ())]
            if not listed or key == "space":  # space: set from fmriprep.output_space too
                continue
            cells = manifest[column] if column in manifest.columns else pd.Series(dtype=str)
            present = {_normal(key, str(v)) for v in cells if str(v)}
            if key == "participants":
                present |= {_normal(key, f.removeprefix("sub-")) for f in subject_folders}
            unknown = [v for v in dict.fromkeys(listed) if v not in present]
            if not unknown:
                continue
            close = {v: _closest(v, present) for v in unknown}
            said = "; ".join(
                f"{prefix}-{v}" + (f" (did you mean {prefix}-{c}?)" if c else "")
                for v, c in close.items()
            )
            some = ", ".join(f"{prefix}-{v}" for v in sorted(present)[:8])
            raise ConfigError(
                f"{part_of(where, key)} names {said}, which no file of the dataset has (it has "
                f"{some or 'none'}{' ...' if len(present) > 8 else ''}): an exclude list would "
                "keep what it meant to leave out, an include list drop what it meant to keep.",
                hint=f"Write the labels as the file names spell them, e.g. "
                f"{next((c for c in close.values() if c), sorted(present)[0] if present else '01')}"
                f" (in {part_of(where, key)}).",
            )

    def apply(self, manifest: pd.DataFrame, where: str) -> pd.DataFrame:
        """Exclude the runs this selection leaves out (``reason_code`` ``not_selected``).

        Parameters
        ----------
        manifest : pandas.DataFrame
            The manifest; returned as it is when nothing is selected or it is empty.
        where : str
            The selection's name as the user gave it, named in the reasons: ``--select`` or
            ``ingest.select.<dataset>`` (:func:`lcm.bids.dataset.setting_names`).

        Returns
        -------
        pandas.DataFrame
            A copy, each run left out excluded with the key and value that left it out.
        """
        if self.is_empty() or manifest.empty:
            return manifest
        df = manifest.copy()
        reason = pd.Series("", index=df.index, dtype=object)
        # (values, whether a listed value is kept, the reason's verb, the fix's verb and
        # preposition, the list's name)
        lists = (
            (self.include, True, "is not in", "add", "to", "include"),
            (self.exclude, False, "is in", "remove", "from", "exclude"),
        )
        for key, (column, _) in SELECTION_KEYS.items():
            values = df[column].map(lambda v, k=key: _normal(k, str(v)))
            for chosen, keeps, verb, fix, prep, name in lists:
                if key not in chosen:
                    continue
                out = (values.isin(chosen[key]) != keeps) & (reason == "")
                listed = part_of(where, f"{key}.{name}")
                reason[out] = [
                    with_fix(
                        f"{_LEFT_OUT.format(column=column)}{v} {verb} {listed}",
                        f"to keep it, {fix} {v} {prep} {listed}",
                    )
                    for v in df.loc[out, column].astype(str)
                ]
        hit = reason != ""
        df.loc[hit, "included"] = False
        df.loc[hit, "reason_code"] = NOT_SELECTED
        df.loc[hit, "reason"] = reason[hit]
        return df


def keep_space(manifest: pd.DataFrame, space: str, name: str, source: str) -> pd.DataFrame:
    """Exclude the runs of another space than ``space`` (``reason_code`` ``not_selected``).

    The space of an entry whose runs may be in any (ROI time series, :class:`lcm.entries.
    TreeIndex` ``space="optional"``), asked for by its own setting (``lcm ingest --space``):
    the reasons name that setting, not the selection's ``space.include`` the user never wrote.

    Parameters
    ----------
    manifest : pandas.DataFrame
        The manifest, after the selection; returned as it is when empty.
    space : str
        The space to keep, as the files' ``space-`` entity spells it.
    name : str
        The setting's name as the user gave it (``--space``,
        :func:`lcm.bids.dataset.setting_names`).
    source : str
        The listing or folder indexed, named when no run is in ``space``.

    Returns
    -------
    pandas.DataFrame
        A copy, each run of another space excluded with the space that left it out.

    Raises
    ------
    ConfigError
        When no run is in ``space``: each was left out one by one, the spaces there unsaid.
    """
    if manifest.empty:
        return manifest
    spaces = manifest["space"].astype(str)
    found = sorted(set(spaces) - {""})
    if not (spaces == space).any():
        given = f"their spaces: {', '.join(found)}" if found else "no file name gives one"
        others = " or ".join(set_to(name, s) for s in found)
        raise ConfigError(
            f"{set_to(name, space)}: no run of {source} is in space {space} ({given}).",
            hint=f"Set {others}, or leave {name} out to keep every space."
            if found
            else f"Leave {name} out: a file is in a space when its name says so (space-<label>).",
        )
    df = manifest.copy()
    out = spaces != space
    df.loc[out, "included"] = False
    df.loc[out, "reason_code"] = NOT_SELECTED
    df.loc[out, "reason"] = [_other_space(v, space, name) for v in spaces[out]]
    return df


def _other_space(value: str, space: str, name: str) -> str:
    """The reason of a run in space ``value`` (``""``: its name gives none) that ``name``'s
    ``space`` left out."""
    if not value:
        return with_fix(
            f"{_LEFT_OUT.format(column='space')}none (its file name gives no space-<label>) is "
            f"not {set_to(name, space)}",
            f"to keep it, leave {name} out to keep every space",
        )
    return with_fix(
        f"{_LEFT_OUT.format(column='space')}{value} is not {set_to(name, space)}",
        f"to keep it, set {set_to(name, value)}, or leave {name} out to keep every space",
    )


def participants_kept(manifest: pd.DataFrame) -> set[str]:
    """The subjects of ``manifest`` that its participant selection kept.

    A subject is kept unless every run of it was left out by ``participants`` (include or
    exclude, :meth:`Selection.apply`); runs left out by another key or excluded for another
    reason still make it one of the dataset's selected participants. Read by the reason's
    beginning, which names the key's column (``subject``) and not the selection's name, so
    manifests of ``lcm ingest --select`` and of a workflow rule, new or old, read alike.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest after :meth:`Selection.apply`.
    """
    if manifest.empty:
        return set()
    left_out = _LEFT_OUT.format(column=SELECTION_KEYS["participants"][0])
    by_participants = (manifest["reason_code"] == NOT_SELECTED) & manifest["reason"].astype(
        str
    ).str.startswith(left_out)
    return set(manifest.loc[~by_participants, "subject"].astype(str))


def _closest(label: str, present: set[str]) -> str | None:
    """The label of ``present`` ``label`` most likely meant: the same number (``1`` for ``01``),
    the same letters in another case, else the nearest spelling; None when none is near."""
    import difflib

    for other in sorted(present):
        if label.isdigit() and other.isdigit() and int(label) == int(other):
            return other
        if label.lower() == other.lower():
            return other
    near = difflib.get_close_matches(label, sorted(present), n=1)
    return near[0] if near else None


def _normal(key: str, label: str) -> str:
    """Labels compared as written, except run and echo indices (``01`` equals ``1``)."""
    if key in _INDEX_KEYS and label.isdigit():
        return str(int(label))
    return label


def seg_label(name: str) -> str:
    """A parcellation label as compared with ``seg-`` entities: alphanumerics, lower case.

    Parameters
    ----------
    name : str
        An atlas name or ``seg-`` label (``4S156Parcels``, ``fours156``).
    """
    return "".join(ch for ch in str(name) if ch.isalnum()).lower()


def select_parcellation(manifest: pd.DataFrame, atlas: str, seg: str | None = None) -> pd.DataFrame:
    """Keep the runs of the configured atlas among files of several parcellations.

    A file whose ``seg`` entity names another parcellation is excluded (reason code
    ``other_atlas``); files without ``seg`` stay, unless the same run also has a file of the
    configured atlas, which is then preferred (the other is a ``duplicate``). Labels compare
    case-insensitively on their letters and digits (``seg-Schaefer100`` matches atlas
    ``schaefer100``).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows (a ``seg`` column; manifests without one are returned unchanged).
    atlas : str
        The configured atlas name.
    seg : str, optional
        The ``seg-`` label the files use for that atlas when it differs from its name
        (XCP-D's ``4S156Parcels`` for a 4S atlas configured as ``fours156``, say).

    Returns
    -------
    pandas.DataFrame
        A copy with the rows of other parcellations excluded, each with its reason.
    """
    if manifest.empty or "seg" not in manifest.columns:
        return manifest
    df = manifest.copy()
    wanted = {seg_label(atlas), *([seg_label(seg)] if seg else [])}
    labels = df["seg"].fillna("").astype(str)
    other = df["included"] & (labels != "") & ~labels.map(seg_label).isin(wanted)
    names = df["path"].astype(str).map(lambda p: p.replace("\\", "/").rsplit("/", 1)[-1])
    df.loc[other, "included"] = False
    df.loc[other, "reason_code"] = OTHER_ATLAS
    df.loc[other, "reason"] = [
        with_fix(
            f"{name} is of parcellation seg-{seg}, not of the configured atlas {atlas!r}",
            f"if it is that atlas under another name, set atlas.seg: {seg} (--atlas-seg {seg}); "
            f"else none needed (to read these instead, set atlas to their parcellation)",
        )
        for name, seg in zip(names[other], labels[other], strict=True)
    ]
    # A run with a file of the configured atlas drops its files without seg- (ambiguous).
    matched = df["included"] & (labels != "")
    keys = set(df.loc[matched, "run_key"])
    loose = df["included"] & (labels == "") & df["run_key"].isin(keys)
    if loose.any():
        chosen = dict(zip(df.loc[matched, "run_key"], names[matched], strict=False))
        df.loc[loose, "included"] = False
        df.loc[loose, "reason_code"] = DUPLICATE
        df.loc[loose, "reason"] = [
            with_fix(
                f"duplicate of {chosen[k]} for run {k} (that file names the atlas: seg-)",
                "none needed: the file naming the atlas is read; give this one a seg- entity "
                "if it is of another parcellation",
            )
            for k in df.loc[loose, "run_key"]
        ]
    return df


def without_echo(key: str) -> str:
    """A run key without its ``echo-`` entity (``part-`` may follow it).

    Parameters
    ----------
    key : str
        A run key (:func:`lcm.io.bids_names.run_key`).
    """
    return "_".join(p for p in key.split("_") if not p.startswith("echo-"))


def exclude_other_parts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Exclude the phase (and real, imaginary) series of complex-valued BOLD runs.

    fMRIPrep preprocesses the magnitude only (``part-mag``, or no ``part-``), keeping
    ``part-mag`` in its output names; the other parts are excluded (``other_part``), not read
    as runs of their own.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows with a ``part`` column (returned unchanged without one).

    Returns
    -------
    pandas.DataFrame
        A copy, the other parts' rows excluded with their reason.
    """
    if manifest.empty or "part" not in manifest.columns:
        return manifest
    part = manifest["part"].fillna("").astype(str)
    other = manifest["included"] & ~part.isin(["", "mag"])
    if not other.any():
        return manifest
    df = manifest.copy()
    df.loc[other, "included"] = False
    df.loc[other, "reason_code"] = OTHER_PART
    df.loc[other, "reason"] = [
        with_fix(
            f"the part-{p} series {key}: fMRIPrep preprocesses the magnitude (part-mag) of "
            "complex-valued BOLD only",
            "none needed: the run's part-mag series is read",
        )
        for p, key in zip(part[other], df.loc[other, "run_key"], strict=True)
    ]
    return df


def combine_echoes(manifest: pd.DataFrame, derivatives: bool) -> pd.DataFrame:
    """One row per multi-echo run: the series fMRIPrep makes of all its echoes.

    fMRIPrep preprocesses a run's echoes together and writes one optimally combined series,
    named without ``echo-``. In a raw dataset the first included echo's row stands for the run
    (its ``run_key`` and ``echo`` without the echo); the other echoes are excluded
    (``other_echo``). A raw run one of whose echoes is excluded for its file (not fetched, a
    bad header, another TR ...) is excluded whole, with that echo's code and fix: fMRIPrep
    reads every echo of the run, and failed on the missing one. In fMRIPrep derivatives the
    per-echo series (``--me-output-echos``) are excluded; the combined series is the run, and
    a run whose combined series is not there is excluded as ``fmriprep_outputs_missing``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        Manifest rows with ``echo`` and ``run_key`` columns.
    derivatives : bool
        Whether the rows are fMRIPrep outputs (else raw BOLD files).

    Returns
    -------
    pandas.DataFrame
        A copy; unchanged when no included row has an echo.
    """
    if manifest.empty or "echo" not in manifest.columns:
        return manifest
    if not derivatives:
        manifest = _exclude_runs_missing_an_echo(manifest)
    echo = manifest["included"] & (manifest["echo"].fillna("").astype(str) != "")
    if not echo.any():
        return manifest
    df = manifest.copy()
    runs = df.loc[echo, "run_key"].astype(str).map(without_echo)
    if derivatives:
        drop = echo
        df.loc[drop, "reason"] = [
            with_fix(
                f"per-echo series of {run} (fMRIPrep --me-output-echos)",
                f"none needed: the combined series {run}_space-..._desc-preproc_bold is the "
                "run, and is read",
            )
            for run in runs
        ]
    else:
        number = pd.to_numeric(df.loc[echo, "echo"], errors="coerce")
        first = number.groupby(runs).transform("min") == number
        keep = first[first].index
        first_of = dict(zip(runs[keep], df.loc[keep, "echo"], strict=True))
        df.loc[keep, "run_key"] = runs[keep]
        df.loc[keep, "echo"] = ""
        drop = echo & ~df.index.isin(keep)
        df.loc[drop, "reason"] = [
            with_fix(
                f"echo {e} of multi-echo run {run}: fMRIPrep combines the echoes into one "
                f"series (the run is listed by echo {first_of[run]})",
                f"none needed: fMRIPrep reads every echo of {run} from its raw folder",
            )
            for e, run in zip(df.loc[drop, "echo"], runs[drop], strict=True)
        ]
    df.loc[drop, "included"] = False
    df.loc[drop, "reason_code"] = OTHER_ECHO
    if derivatives:
        _exclude_runs_without_combined_series(df, runs)
    return df


def _exclude_runs_without_combined_series(df: pd.DataFrame, runs: pd.Series) -> None:
    """Exclude, as its fMRIPrep outputs missing, a run of which derivatives hold per-echo
    series only (the combined series not fetched or not copied): its echoes were excluded as
    ``other_echo``, "none needed: the combined series is read", and the run vanished.

    The first echo's row stands for the run (its key without the echo, as in raw datasets);
    ``df``'s echo rows are excluded already (``other_echo``); their code and reason are replaced.
    """
    combined = set(df.loc[df["echo"].fillna("").astype(str) == "", "run_key"].astype(str))
    lone = runs[~runs.isin(combined)]
    if lone.empty:
        return
    number = pd.to_numeric(df.loc[lone.index, "echo"], errors="coerce")
    first = number.groupby(lone).transform("min") == number
    for index, run in lone.items():
        series = f"{run}_space-..._desc-preproc_bold"
        if first[index]:
            df.loc[index, ["run_key", "echo", "reason_code"]] = [run, "", OUTPUTS_MISSING]
            df.loc[index, "reason"] = with_fix(
                f"fMRIPrep derivatives hold per-echo series of {run} (--me-output-echos) but "
                f"not its combined series {series}, the run read",
                "copy the combined series fMRIPrep wrote beside the echoes with them, or run "
                "fMRIPrep for the subject again",
            )
        else:
            df.loc[index, "reason"] = with_fix(
                f"per-echo series of {run} (fMRIPrep --me-output-echos)",
                f"none needed for the echo: see {run}, excluded for want of its combined series",
            )


# Exclusions of an echo that leave its run whole: the user's selection, a second copy of the
# same echo (.nii beside .nii.gz), another part of it, an echo already folded into its run.
_ECHO_KEPT = frozenset({NOT_SELECTED, DUPLICATE, OTHER_PART, OTHER_ECHO})


def _echo_number(value: Any) -> int | str:
    text = str(value)
    return int(text) if text.isdigit() else text


def _exclude_runs_missing_an_echo(manifest: pd.DataFrame) -> pd.DataFrame:
    """Exclude the included echoes of raw multi-echo runs that have an echo excluded for its
    file (no included copy of that echo left), with the first such echo's code and fix."""
    has_echo = manifest["echo"].fillna("").astype(str) != ""
    codes = manifest["reason_code"].fillna("").astype(str)
    broken = has_echo & ~manifest["included"] & ~codes.isin(_ECHO_KEPT)
    if not broken.any():
        return manifest
    runs = manifest["run_key"].astype(str).map(without_echo)
    numbers = manifest["echo"].map(_echo_number)
    present = set(zip(runs[manifest["included"]], numbers[manifest["included"]], strict=True))
    cause: dict[str, int] = {}  # run -> row index of its lowest broken echo
    for i in sorted(broken[broken].index, key=lambda i: (runs[i], str(numbers[i]).zfill(9))):
        if (runs[i], numbers[i]) not in present:
            cause.setdefault(runs[i], i)
    hit = has_echo & manifest["included"] & runs.isin(cause)
    if not hit.any():
        return manifest
    df = manifest.copy()
    reasons, hit_codes = [], []
    for i in hit[hit].index:
        bad = df.loc[cause[runs[i]]]
        problem, fix = split_fix(str(bad["reason"]))
        reasons.append(
            with_fix(
                f"echo {bad['echo']} of multi-echo run {runs[i]}, which fMRIPrep preprocesses "
                f"with this echo {df.at[i, 'echo']}, is excluded ({bad['reason_code']}): {problem}",
                fix or "correct that echo's file, or leave the run out",
            )
        )
        hit_codes.append(bad["reason_code"])
    df.loc[hit, "included"] = False
    df.loc[hit, "reason_code"] = hit_codes
    df.loc[hit, "reason"] = reasons
    return df
