"""Confound columns of each denoising strategy, read from fMRIPrep's confounds files.

Which columns a strategy regresses out, and the confounds JSON that names aCompCor components:
light code (no signal processing), so that ``lcm ingest`` can check a strategy against a
dataset's first confounds table before any run is processed without depending on the cleaning
code in :mod:`lcm.connectome.denoise`.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcm import reason_codes
from lcm.bids.sidecars import NotFetched, read_json_object
from lcm.exceptions import ExcludedRunError

log = logging.getLogger(__name__)

MOTION_6P = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
PHYSIO_3P = ("csf", "white_matter", "global_signal")
WM_CSF = ("csf", "white_matter")
GS = ("global_signal",)
# Cells read as missing in fMRIPrep's confounds and in ROI time-series TSVs: fMRIPrep's n/a,
# and what pandas writes for NaN (an empty cell; "NaN" with na_rep): a table read and saved
# again with pandas lost every run before ("non-numeric values").
MISSING_CELLS = ["n/a", "", "NaN", "nan"]
FD_COLUMN = "framewise_displacement"
DVARS_COLUMN = "std_dvars"
# fMRIPrep's one-hot ``non_steady_state_outlierXX`` columns: the first volumes, before the
# magnetisation reached steady state. fMRIPrep keeps them in the BOLD; nilearn's
# ``load_confounds`` (every strategy) and XCP-D's ``--dummy-scans auto`` leave them out.
NON_STEADY_PREFIX = "non_steady_state"
N_ACOMPCOR = 5
COSINE_PREFIX = "cosine"
ACOMPCOR_PREFIX = "a_comp_cor_"
# nilearn's scrub=5: continuous segments of kept volumes shorter than this are dropped too.
NILEARN_MIN_SEGMENT = 5


def _expand(base: tuple[str, ...]) -> list[str]:
    """Each column, its derivative, its square and the derivative's square (Satterthwaite)."""
    out = list(base)
    for suffix in ("_derivative1", "_power2", "_derivative1_power2"):
        out += [f"{c}{suffix}" for c in base]
    return out


def _motion_12p() -> list[str]:
    return [*MOTION_6P, *(f"{c}_derivative1" for c in MOTION_6P)]


@dataclass(frozen=True)
class Strategy:
    """A named denoising strategy.

    Attributes
    ----------
    columns : tuple of str
        Fixed fMRIPrep confound columns, all required.
    cosines : bool
        Add every ``cosine*`` column present: fMRIPrep's discrete-cosine high-pass basis
        (nilearn's ``high_pass`` component, XCP-D's ``^cosine_\\d+$``). Optional, as in
        nilearn, except with ``compcor`` and no ``high_pass`` filter (:func:`confound_columns`).
    compcor : str or None
        ``"first5"``: the first 5 aCompCor components of the combined WM+CSF mask (fewer
        when the confounds JSON retains fewer, as nilearn's ``n_compcor=5``; without it
        ``a_comp_cor_00`` .. ``_04`` are required);
        ``"combined"``: every one of them (at least one required). Which ``a_comp_cor_*``
        columns are of that mask: :func:`combined_compcor`.
    min_segment : int
        Kept segments shorter than this are scrubbed too (0: off).
    scrubs : bool
        Scrubbing is part of the strategy (nilearn's ``scrubbing`` presets): settings with
        both ``fd_threshold`` and ``dvars_threshold`` null are refused
        (:meth:`lcm.connectome.settings.DenoiseSettings.from_dict`).
    """

    columns: tuple[str, ...]
    cosines: bool = False
    compcor: str | None = None
    min_segment: int = 0
    scrubs: bool = False


# XCP-D's names (24P, 27P, 36P, acompcor, acompcor_gsr) and the Ciric et al. 6P / 9P; the
# nilearn ``load_confounds_strategy`` presets with their default parameters (motion "full";
# simple: wm_csf "basic"; scrubbing: wm_csf "full", scrub 5; compcor: anat_combined, all).
# XCP-D's acompcor takes 5 WM + 5 CSF components; ours take the 5 first combined-mask ones, as
# nilearn's load_confounds(compcor="anat_combined", n_compcor=5): fMRIPrep 1.4-20.x number the
# CSF, WM and combined components in one a_comp_cor_ series in mask order, so a_comp_cor_00 ..
# _04 may be CSF ones and the confounds JSON's Mask says which (combined_compcor). fMRIPrep
# computes aCompCor after a discrete-cosine high-pass filter, so every aCompCor strategy takes
# the cosine_XX columns too, as XCP-D's acompcor and nilearn's compcor (which requires
# high_pass) do.
STRATEGIES: dict[str, Strategy] = {
    "6P": Strategy(MOTION_6P),
    "9P": Strategy((*MOTION_6P, *PHYSIO_3P)),
    "24P": Strategy(tuple(_expand(MOTION_6P))),
    "27P": Strategy((*_expand(MOTION_6P), *PHYSIO_3P)),
    "36P": Strategy(tuple(_expand((*MOTION_6P, *PHYSIO_3P)))),
    "acompcor": Strategy(tuple(_motion_12p()), cosines=True, compcor="first5"),
    "acompcor_gsr": Strategy((*_motion_12p(), *GS), cosines=True, compcor="first5"),
    "simple": Strategy((*_expand(MOTION_6P), *WM_CSF), cosines=True),
    "simple_gsr": Strategy((*_expand(MOTION_6P), *WM_CSF, *GS), cosines=True),
    "scrubbing": Strategy(
        (*_expand(MOTION_6P), *_expand(WM_CSF)),
        cosines=True,
        min_segment=NILEARN_MIN_SEGMENT,
        scrubs=True,
    ),
    "scrubbing_gsr": Strategy(
        (*_expand(MOTION_6P), *_expand((*WM_CSF, *GS))),
        cosines=True,
        min_segment=NILEARN_MIN_SEGMENT,
        scrubs=True,
    ),
    "compcor": Strategy(tuple(_expand(MOTION_6P)), cosines=True, compcor="combined"),
}


def strategy_columns(strategy: str) -> list[str]:
    """Fixed fMRIPrep confound columns of a denoising strategy (cosines and aCompCor aside).

    ``6P`` = translations and rotations; ``9P`` = 6P + csf, white matter, global signal;
    ``24P`` = 6P with derivatives, squares and squared derivatives; ``27P`` = 24P + csf, white
    matter, global signal; ``36P`` = the expansion of 9P; ``acompcor`` = 6P + their derivatives
    (+ 5 combined-mask aCompCor components, + the ``cosine_XX`` present); ``acompcor_gsr`` =
    acompcor + global signal. For the nilearn presets see :data:`STRATEGIES`. The aCompCor
    components are named here as a table without a confounds JSON names them
    (``a_comp_cor_00`` .. ``_04``); :func:`confound_columns` picks a run's own by their mask.

    Parameters
    ----------
    strategy : str
        A strategy name, a key of :data:`STRATEGIES` (``denoise.strategy``).

    Raises
    ------
    ValueError
        An unknown strategy.
    """
    spec = _strategy(strategy)
    extra = [f"{ACOMPCOR_PREFIX}{i:02d}" for i in range(N_ACOMPCOR)]
    return [*spec.columns, *(extra if spec.compcor == "first5" else [])]


def _strategy(strategy: str) -> Strategy:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown denoising strategy {strategy!r}; expected one of {sorted(STRATEGIES)}."
        )
    return STRATEGIES[strategy]


def confound_columns(
    strategy: str,
    available_columns: list[str] | pd.Index,
    metadata: dict[str, Any] | None = None,
    *,
    high_pass: float | None = None,
    source: str | None = None,
) -> list[str]:
    """Columns of ``strategy``, checked against those a confounds table holds.

    A strategy's fixed and aCompCor columns are required. Its ``cosine*`` columns are taken
    when present; a table without any is accepted (as nilearn's ``load_confounds`` does) unless
    the strategy regresses aCompCor components and ``high_pass`` is ``None``: fMRIPrep computes
    those components after a discrete-cosine high-pass filter, and then nothing would remove
    the slow drifts they were made blind to (fMRIPrep's documentation; nilearn refuses
    ``compcor`` without ``high_pass``).

    Parameters
    ----------
    strategy : str
        A key of :data:`STRATEGIES`.
    available_columns : sequence of str
        Header of the fMRIPrep ``desc-confounds_timeseries.tsv``.
    metadata : dict, optional
        The confounds JSON (fMRIPrep's per-column metadata); picks the combined-mask aCompCor
        components of the ``compcor`` preset.
    high_pass : float or None, optional
        ``denoise.high_pass`` (Hz): the temporal filter that stands in for missing cosines.
        ``None`` (the default) means no high-pass filter, the strictest check.
    source : str, optional
        The confounds file (its name), named by the error.

    Returns
    -------
    list of str
        The strategy's columns, in a fixed order.

    Raises
    ------
    ExcludedRunError
        Naming the file, every missing column, and the fix: the strategies the table serves,
        or, for a table of fMRIPrep < 1.2's column names (``X``, ``RotX``,
        ``FramewiseDisplacement`` ...), a current fMRIPrep.
    """
    have = list(available_columns)
    columns, missing, drifts = _strategy_fit(strategy, have, metadata, high_pass)
    if not missing:
        return columns
    table = f"confounds {source}" if source else "confounds"
    if _strategy(strategy).compcor is not None and combined_compcor(have, metadata) is None:
        side = source.replace(".tsv", ".json") if source else "the confounds JSON"
        raise ExcludedRunError(
            f"{table} have {len(_acompcor(have))} a_comp_cor_* columns and no confounds JSON "
            "(none, or one that is not a readable JSON object): "
            "fMRIPrep 1.4-20.x number the CSF, WM and combined-mask aCompCor components in one "
            "a_comp_cor_ series, so which are of the combined mask strategy "
            f"{strategy!r} regresses is unknown (the first may be CSF ones)",
            hint=f"Put the confounds JSON fMRIPrep wrote beside the table ({side}; its Mask "
            "names each component's mask; the log says when it is there but unreadable), or "
            "use a strategy without aCompCor (e.g. 24P).",
            code=reason_codes.CONFOUNDS_COMPCOR_MASK_UNKNOWN,
        )
    if drifts:
        # fMRIPrep's aCompCor components are blind to what its cosine high-pass removed.
        raise ExcludedRunError(
            f"{table} lack the columns {missing} needed by strategy {strategy!r} with "
            "denoise.high_pass null: fMRIPrep computed the aCompCor components after a "
            "high-pass filter (its cosine_XX columns), and nothing else would remove those "
            "frequencies",
            hint="Set denoise.high_pass (e.g. 0.01 Hz), or use a strategy without aCompCor "
            "(e.g. 24P).",
            code=reason_codes.CONFOUNDS_MISSING_COLUMNS,
        )
    old = old_fmriprep_columns(have)
    if old:
        raise ExcludedRunError(
            f"{table} lack the columns {missing} needed by strategy {strategy!r}: the table "
            f"looks like fMRIPrep < 1.2's (columns {old[:4]}), which named them otherwise "
            "(X for trans_x, RotX for rot_x, FramewiseDisplacement ...)",
            hint="Rerun a current fMRIPrep on this subject (its confounds follow the BIDS "
            "Derivatives names since 1.2): LCM reads no older derivatives.",
            code=reason_codes.CONFOUNDS_MISSING_COLUMNS,
        )
    usable = supported_strategies(have, metadata, high_pass)
    raise ExcludedRunError(
        f"{table} lack the columns {missing} needed by strategy {strategy!r}",
        hint=f"Set denoise.strategy to one of these confounds support, e.g. {', '.join(usable)}, "
        "or regenerate them with fMRIPrep."
        if usable
        else "Regenerate them with fMRIPrep: they serve no strategy.",
        code=reason_codes.CONFOUNDS_MISSING_COLUMNS,
    )


def _strategy_fit(
    strategy: str, have: list[str], metadata: dict[str, Any] | None, high_pass: float | None
) -> tuple[list[str], list[str], bool]:
    """``(columns, missing, drifts)`` of ``strategy`` on a table of columns ``have``:
    ``drifts`` when an aCompCor strategy lacks cosines with no high-pass filter."""
    spec = _strategy(strategy)
    wanted = list(spec.columns)
    missing = [c for c in wanted if c not in set(have)]
    comps = combined_compcor(have, metadata) if spec.compcor else []
    if comps is None:
        missing.append(f"{ACOMPCOR_PREFIX}* (combined mask: no confounds JSON to tell)")
    elif spec.compcor == "combined":
        if not comps:
            missing.append(f"{ACOMPCOR_PREFIX}* (combined mask)")
        wanted += comps
    elif spec.compcor == "first5" and metadata:
        # As nilearn's n_compcor=5: fewer when fMRIPrep retained fewer (50 % of the variance).
        if not comps:
            missing.append(f"{ACOMPCOR_PREFIX}* (combined mask)")
        wanted += comps[:N_ACOMPCOR]
    elif spec.compcor == "first5":
        # No JSON, every a_comp_cor_* of the combined mask: the 5 first by their names.
        first = [f"{ACOMPCOR_PREFIX}{i:02d}" for i in range(N_ACOMPCOR)]
        missing += [c for c in first if c not in set(have)]
        wanted += first
    cosines = [c for c in have if c.startswith(COSINE_PREFIX)] if spec.cosines else []
    drifts = spec.compcor is not None and spec.cosines and not cosines and high_pass is None
    if drifts:
        missing.append(f"{COSINE_PREFIX}_XX")
    return wanted + cosines, missing, drifts


def supported_strategies(
    columns: list[str] | pd.Index,
    metadata: dict[str, Any] | None = None,
    high_pass: float | None = None,
) -> list[str]:
    """The strategies (:data:`STRATEGIES` order) whose columns a confounds table holds.

    Parameters
    ----------
    columns : sequence of str
        The confounds table's header.
    metadata : dict, optional
        Its JSON (:func:`read_confounds_metadata`).
    high_pass : float or None, optional
        ``denoise.high_pass``, as :func:`confound_columns` takes it.
    """
    have = list(columns)
    return [s for s in STRATEGIES if not _strategy_fit(s, have, metadata, high_pass)[1]]


# Column names of fMRIPrep before 1.2, when its confounds took the BIDS Derivatives names
# (nipreps/fmriprep#1343): X for trans_x, RotX for rot_x, aCompCor00 for a_comp_cor_00 ...
_OLD_COLUMNS = frozenset(
    {
        "X",
        "Y",
        "Z",
        "RotX",
        "RotY",
        "RotZ",
        "FramewiseDisplacement",
        "stdDVARS",
        "non-stdDVARS",
        "vx-wisestdDVARS",
        "GlobalSignal",
        "WhiteMatter",
        "CSF",
    }
)
_OLD_PREFIXES = ("aCompCor", "tCompCor", "Cosine", "NonSteadyStateOutlier", "AROMAAggrComp")


def old_fmriprep_columns(columns: list[str] | pd.Index) -> list[str]:
    """The columns of a confounds table named as fMRIPrep < 1.2 named them (none: ``[]``).

    Parameters
    ----------
    columns : list of str or pandas.Index
        A confounds table's column names.
    """
    return [c for c in columns if c in _OLD_COLUMNS or str(c).startswith(_OLD_PREFIXES)]


# fMRIPrep >= 21 names the CSF and WM components c_comp_cor_XX and w_comp_cor_XX, leaving
# a_comp_cor_XX to the combined mask; fMRIPrep < 1.4 wrote 6 combined-mask ones (00 .. 05) only.
SPLIT_COMPCOR_PREFIXES = ("c_comp_cor_", "w_comp_cor_")
N_ACOMPCOR_BEFORE_1_4 = 6


def _acompcor(columns: list[str]) -> list[str]:
    return [c for c in columns if str(c).startswith(ACOMPCOR_PREFIX)]


def combined_compcor(columns: list[str], metadata: dict[str, Any] | None) -> list[str] | None:
    """The ``a_comp_cor_*`` columns of the combined WM+CSF mask, in table order.

    With the confounds JSON: those whose ``Mask`` is ``combined`` (and ``Retained`` true where
    the key is there), as nilearn's ``load_confounds(compcor="anat_combined")`` picks them.
    Without it, every ``a_comp_cor_*`` column when the table is of fMRIPrep >= 21 (it has
    ``c_comp_cor_`` or ``w_comp_cor_`` columns: ``a_`` is the combined mask only) or holds at
    most fMRIPrep < 1.4's six; ``None`` (unknown) for more without either: fMRIPrep 1.4-20.x
    number CSF, WM and combined components in one ``a_comp_cor_`` series, in mask order.

    Parameters
    ----------
    columns : list of str
        The confounds table's column names.
    metadata : dict or None
        The confounds JSON (:func:`read_confounds_metadata`), None when there is none.

    Returns
    -------
    list of str or None
        The columns; None when the table alone cannot tell which they are.
    """
    comps = _acompcor(columns)
    if not metadata:
        split = any(str(c).startswith(SPLIT_COMPCOR_PREFIXES) for c in columns)
        return comps if split or len(comps) <= N_ACOMPCOR_BEFORE_1_4 else None
    return [
        c
        for c in comps
        if isinstance(metadata.get(c), dict)
        and metadata[c].get("Mask") == "combined"
        and metadata[c].get("Retained", True)
    ]


def read_confounds_metadata(path: str | Path) -> dict[str, Any] | None:
    """The confounds JSON beside a confounds TSV (``None`` if absent or unreadable).

    Read by the one reader of sidecars (:func:`lcm.bids.sidecars.read_json_object`). One that
    is there but unreadable (truncated, not JSON, not an object) is read as absent with a
    warning naming it: its CompCor masks are then unknown or inferred from the column names,
    which the user would otherwise not know. One DataLad has not fetched (an unlocked file's
    git-annex pointer, or a symlink to absent content) is said so, with the ``datalad get``
    to run: it was "not JSON", or absent without a word.

    Parameters
    ----------
    path : str or Path
        The confounds TSV; the JSON is the same name ending ``.json``.
    """
    side = Path(path).with_name(Path(path).name.replace(".tsv", ".json"))
    if not side.is_file():
        if side.is_symlink():  # a locked annex file not fetched
            _not_fetched(side, "a symlink to content that is not present")
        return None
    value = read_json_object(str(side))
    if isinstance(value, NotFetched):
        _not_fetched(side, "a git-annex pointer, not its content")
        return None
    if isinstance(value, str):
        _unreadable_json(side, value)
        return None
    return value


def _not_fetched(side: Path, state: str) -> None:
    log.warning(
        "confounds JSON %s is %s (a DataLad/git-annex file not fetched); read as absent "
        "(aCompCor masks are taken from the column names where they tell, else unknown). Run "
        "`datalad get %s` and run lcm again.",
        side,
        state,
        shlex.quote(str(side)),
    )


def _unreadable_json(side: Path, why: str) -> None:
    log.warning(
        "unreadable confounds JSON %s: %s; read as absent (aCompCor masks are taken from the "
        "column names where they tell, else unknown). Restore the JSON fMRIPrep wrote.",
        side,
        why,
    )
