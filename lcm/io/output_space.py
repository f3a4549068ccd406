"""The output space of fMRIPrep derivatives, as fMRIPrep's ``--output-spaces`` spells it.

``MNI152NLin2009cAsym`` names a template; ``MNI152NLin2009cAsym:res-2`` one of its
resolutions, ``MNI152NLin2009cAsym:res-native`` the BOLD's own (the file without ``res-``),
``MNIPediatricAsym:cohort-1:res-2`` a cohort too. fMRIPrep writes such a space as
entities of the file name (``space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz``). This
module is the one that parses the setting (``fmriprep.output_space``) and says which file names
it selects; the config schema checks its form, the fMRIPrep stage, ingest and the output paths
call it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lcm.exceptions import ConfigError

# fMRIPrep's spatial modifiers of a volumetric template that reach file names, cohort and res
# (``res-native``, fMRIPrep's spelling of the BOLD's own resolution, writes no res entity).
# The schema's (kept equal by a test): each modifier once, cohort first, as in file names.
PATTERN = r"^[A-Za-z0-9]+(:cohort-[0-9]+)?(:res-([0-9]+|native))?$"
NATIVE = "native"
_PATTERN = re.compile(PATTERN)


@dataclass(frozen=True)
class OutputSpace:
    """A template label and the modifiers fMRIPrep names its files with.

    Attributes
    ----------
    label : str
        The ``space-`` label (e.g. ``MNI152NLin2009cAsym``).
    modifiers : tuple of (str, str)
        ``(entity, value)`` pairs, in BIDS entity order (``cohort`` before ``res``), as
        written in the setting (``("res", "native")`` too).
    """

    label: str
    modifiers: tuple[tuple[str, str], ...] = ()

    @property
    def native(self) -> bool:
        """``:res-native``: the file without a ``res`` entity, only."""
        return ("res", NATIVE) in self.modifiers

    @property
    def entities(self) -> dict[str, str]:
        """``space`` and the modifiers as file-name entities (``res-native`` names none)."""
        return {"space": self.label, **{k: v for k, v in self.modifiers if v != NATIVE}}

    @property
    def name_part(self) -> str:
        """The file-name fragment, e.g. ``space-MNI152NLin2009cAsym_res-2``."""
        return "_".join(f"{key}-{value}" for key, value in self.entities.items())

    def selects(self, entities: dict[str, str]) -> bool:
        """Whether a file with these entities is in this space.

        Without modifiers every version of the template's space is (fMRIPrep's resolutions of
        it: the caller chooses); a modifier must be there with the same number (``res-02`` is
        ``res-2``); ``res-native`` selects the files without ``res``.

        Parameters
        ----------
        entities : dict of str to str
            A file name's entities (:func:`~lcm.io.bids_names.parse_entities`).

        Returns
        -------
        bool
            True when ``space`` is this label and every modifier matches.
        """
        if entities.get("space") != self.label:
            return False
        for key, value in self.modifiers:
            found = entities.get(key, "")
            if value == NATIVE:
                if found:
                    return False
                continue
            if not found.isdigit() or int(found) != int(value):
                return False
        return True

    def __str__(self) -> str:
        return ":".join([self.label, *(f"{k}-{v}" for k, v in self.modifiers)])


@functools.lru_cache(maxsize=64)  # asked once per file by the index
def parse_output_space(text: str) -> OutputSpace:
    """Parse ``fmriprep.output_space`` (``label[:cohort-<n>][:res-<n>|:res-native]``).

    Parameters
    ----------
    text : str
        The setting, e.g. ``MNI152NLin2009cAsym:res-2``.

    Returns
    -------
    OutputSpace
        The label and its modifiers in the order written.

    Raises
    ------
    ValueError
        When ``text`` is not of that form (the config schema refuses it first).
    """
    if not _PATTERN.fullmatch(text):
        raise ValueError(
            f"output space {text!r}: expected a template label, then optionally :cohort-<n>, "
            "then optionally :res-<n> or :res-native, e.g. MNI152NLin2009cAsym:res-2"
        )
    label, *parts = text.split(":")
    return OutputSpace(label, tuple(tuple(part.split("-", 1)) for part in parts))  # type: ignore[misc]


def space_of(entities: dict[str, str]) -> str:
    """The space of a file's entities, spelled as ``fmriprep.output_space`` takes it.

    ``space-MNI152NLin2009cAsym_res-2`` is ``MNI152NLin2009cAsym:res-2``; a file without
    ``res-`` (fMRIPrep's native resolution) is ``MNI152NLin2009cAsym:res-native``: a bare
    label would read any resolution.

    Parameters
    ----------
    entities : dict of str to str
        A file name's entities; ``space`` is read, with ``cohort`` and ``res`` when present.

    Returns
    -------
    str
        The setting that selects exactly this file's space.
    """
    parts = [entities.get("space", "")]
    if entities.get("cohort"):
        parts.append(f"cohort-{entities['cohort']}")
    parts.append(f"res-{entities.get('res') or NATIVE}")
    return ":".join(parts)


def space_entities(space: str | None) -> dict[str, str | None]:
    """File-name entities of an output space setting (``{"space": None}`` for none).

    Parameters
    ----------
    space : str or None
        An ``fmriprep.output_space`` setting; None or empty for data without a space.

    Returns
    -------
    dict of str to str or None
        ``space`` and the modifiers' entities (``res``, ``cohort``), ready for
        :func:`~lcm.io.bids_names.build_name`.

    Raises
    ------
    ValueError
        When ``space`` is not of the setting's form.
    """
    return {"space": None} if not space else dict(parse_output_space(space).entities)


# Spaces sampled on a cortical surface, as niworkflows (fMRIPrep's spaces) tells them apart:
# fsnative, fsaverage[3-6], fsLR (CIFTI .dtseries.nii and GIFTI .func.gii outputs).
SURFACE_SPACE_PREFIX = "fs"


def is_surface_space(space: str) -> bool:
    """Whether ``space`` is a surface space (fsLR, fsaverage, fsnative ...).

    A voxel-level entry parcellates volumetric BOLD (``desc-preproc_bold.nii.gz``) with an
    atlas image, so a surface space can never give it a connectome; surface-parcellated data
    (XCP-D's ``space-fsLR`` time series) enters as ``roi_timeseries``, whose space is free.

    Parameters
    ----------
    space : str
        A space label or setting (``fsLR:den-32k`` too); only its start is read.

    Returns
    -------
    bool
        True for a label starting with ``fs``.
    """
    return space.startswith(SURFACE_SPACE_PREFIX)


def surface_space_fix(space: str, setting: str, roi_entry: str, roi_space: str) -> str:
    """The hint given when a voxel-level dataset is asked for surface space ``space``.

    Each setting is named as the user gives it, one form: options on the command line, the
    config's keys with the dataset's name filled in when a workflow rule ran the verb
    (:func:`lcm.bids.dataset.setting_names`; this layer imports none of it).

    Parameters
    ----------
    space : str
        The surface space asked for, named in the hint.
    setting : str
        The setting the user gave it by, named as the one to change: an option (``--space``
        of ``lcm ingest``) or a config key (``fmriprep.output_space``).
    roi_entry : str
        How the user enters the dataset as ROI time series: ``--entry roi_timeseries``,
        ``datasets.<name>.entry: roi_timeseries`` (:func:`lcm.hints.set_to`).
    roi_space : str
        The setting that keeps one space of ROI time series: ``--space``,
        ``ingest.select.<name>.space.include``.

    Returns
    -------
    str
        The hint: set a volumetric template, or bring surface time series as ROI time series.
    """
    return (
        f"Set {setting} to a volumetric template, the atlas's (MNI152NLin2009cAsym, the "
        "default, for the registry atlases). Data already parcellated on the surface "
        f"({space} time series from XCP-D) enter as ROI time series, {roi_entry}, which keeps "
        f"any space ({roi_space} chooses one)."
    )


# fMRIPrep's nonstandard spaces (niworkflows' ``NONSTANDARD_REFERENCES``, with ``boldref``):
# a subject's own anatomy (T1w, T2w, anat), BOLD run or session reference (func, run, boldref,
# sbref, session) or surface (fsnative). Each subject's images are in a space of their own,
# no template's: one atlas image cannot parcellate them all.
NATIVE_SPACES = frozenset(
    {"T1w", "T2w", "anat", "func", "run", "boldref", "sbref", "session", "individual", "fsnative"}
)


def is_native_space(space: str) -> bool:
    """Whether ``space`` (a setting such as ``T1w:res-native``, or a label) is a subject's own.

    LCM parcellates every subject with one atlas image, in a template's space: BOLD in a
    subject's own space (:data:`NATIVE_SPACES`) would be cut with regions that are not its own.

    Parameters
    ----------
    space : str
        A setting or a bare label; only the label before the first ``:`` is read.

    Returns
    -------
    bool
        True for one of :data:`NATIVE_SPACES`.
    """
    return space.split(":", 1)[0] in NATIVE_SPACES


def check_output_space(text: str, option: str = "--output-space") -> OutputSpace:
    """Parse an output space given on the command line (the config schema checks its own).

    Parameters
    ----------
    text : str
        The space as given, e.g. ``MNI152NLin2009cAsym:res-2``.
    option : str
        The option or setting that gave it, named in the message.

    Returns
    -------
    OutputSpace
        The parsed space.

    Raises
    ------
    ConfigError
        Naming ``option`` and the expected form.
    """
    try:
        return parse_output_space(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option}: {exc}.",
            hint="Write it as fMRIPrep's --output-spaces does: MNI152NLin2009cAsym, or "
            "MNI152NLin2009cAsym:res-2 for one resolution (:res-native for the BOLD's own).",
        ) from exc


# Why a surface space is refused, said by default: the voxel-level entries' parcellation.
_VOXEL_WHY = (
    "LCM parcellates volumetric BOLD (desc-preproc_bold.nii.gz) with the atlas image, so no run "
    "could give a connectome in it"
)


def check_volumetric_space(
    text: str,
    option: str,
    why: str = _VOXEL_WHY,
    setting: str | None = None,
    *,
    roi_entry: str,
    roi_space: str,
) -> OutputSpace:
    """Parse an output space a voxel-level dataset is read in, refusing a surface space.

    The one refusal of a surface space (the config, ingest and the fMRIPrep stage call it),
    found before fMRIPrep runs for hours or every run is excluded.

    Parameters
    ----------
    text : str
        The space, as ``fmriprep.output_space`` takes it.
    option : str
        The setting or option that gave it, named in the message.
    why : str
        Why no run could be read in a surface space, after ``but`` (the config names the
        voxel-level datasets).
    setting : str, optional
        The setting the hint tells the user to change, when ``option`` is more than its name
        (the config's message starts with the config file); ``option`` by default.
    roi_entry, roi_space : str
        How the user enters the dataset as ROI time series and keeps one of their spaces, as
        :func:`surface_space_fix` names them.

    Returns
    -------
    OutputSpace
        The parsed space.

    Raises
    ------
    ConfigError
        For another form (naming ``option``), or for a surface space (naming ``option``, the
        hint :func:`surface_space_fix` naming ``setting``).
    """
    # Before the form's check: fMRIPrep's own fsLR:den-32k was refused as malformed, its fix
    # "write it as fMRIPrep's --output-spaces does", which it was.
    if is_surface_space(text):
        raise ConfigError(
            f"{option} {text!r} is a surface space, but {why}.",
            hint=surface_space_fix(text, setting or option, roi_entry, roi_space),
        )
    return check_output_space(text, option)
