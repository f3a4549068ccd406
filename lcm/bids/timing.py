"""Repetition time: the sidecar value cross-checked against the NIfTI header.

The header's TR in seconds is read by :mod:`lcm.bids.nifti_header` alone
(:attr:`~lcm.bids.nifti_header.BoldHeader.t_r`); here it is compared.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from lcm.bids.nifti_header import BoldHeader
from lcm.reason_codes import with_fix
from lcm.repetition_time import PLAUSIBLE_TR_S

# Header and sidecar disagree when they differ by more than this (seconds); rounding in
# converters (e.g. 2.0 vs 1.99999) stays below it.
TR_TOLERANCE_S = 1e-3

# What nibabel, and writers built on it, leave in pixdim[4] with no time unit when no TR was
# set: a placeholder, not a TR.
_DEFAULT_PIXDIM = 1.0


def set_unit_fix(pixdim_t: float | None = None) -> str:
    """How to name a header's time unit, in the unit its ``pixdim[4]`` is plausibly in.

    The call names the spatial unit too: nibabel's ``set_xyzt_units(t=...)`` alone resets it to
    unknown. A fix saying ``t='sec'`` to a header whose ``pixdim[4]`` is 2000 (milliseconds)
    would make its TR 2000 s: the unit offered is the one :func:`compare_header_tr` reads the
    value in.

    Parameters
    ----------
    pixdim_t : float or None
        The header's ``pixdim[4]`` as written (:attr:`~lcm.bids.nifti_header.BoldHeader.pixdim_t`);
        ``None`` when not known to the caller: both units are named.

    Returns
    -------
    str
        ``name its time unit (nibabel: ...)``, to follow "where pixdim[4] is the TR, ".
    """
    reading = None if pixdim_t is None else _unknown_unit_reading(pixdim_t)
    if reading is None:
        call = (
            "img.header.set_xyzt_units(xyz='mm', t='sec'), or t='msec' where it is in milliseconds"
        )
    else:
        call = (
            "img.header.set_xyzt_units(xyz='mm', t='msec')"
            if reading[0] == "milliseconds"
            else "img.header.set_xyzt_units(xyz='mm', t='sec')"
        )
    return f"name its time unit (nibabel: {call})"


class HeaderTR(NamedTuple):
    """A sidecar TR compared with a BOLD header (:func:`compare_header_tr`).

    Attributes
    ----------
    mismatch : str
        Why the two disagree (the file, both values and, for a header of unknown time unit,
        how it was read), ``""`` when they do not.
    unchecked : str
        Why the header does not confirm the sidecar's TR in seconds though it does not
        contradict it (no ``pixdim[4]``, or a time unit ``xyzt_units`` does not name),
        ``""`` when it confirms it or contradicts it.
    """

    mismatch: str
    unchecked: str


def _unknown_unit_reading(value: float) -> tuple[str, float] | None:
    """``(unit, seconds)`` a ``pixdim[4]`` of unknown unit plausibly means, else ``None``."""
    low, high = PLAUSIBLE_TR_S
    if value == _DEFAULT_PIXDIM:
        return None
    if low <= value <= high:
        return "seconds", value
    if 1e3 * low <= value <= 1e3 * high:
        return "milliseconds", value * 1e-3
    return None


def compare_header_tr(sidecar_tr: float, header: BoldHeader, source: str) -> HeaderTR:
    """Compare a sidecar's ``RepetitionTime`` with a BOLD header's ``pixdim[4]``.

    A header whose ``xyzt_units`` names its time unit gives a TR in seconds
    (:attr:`lcm.bids.nifti_header.BoldHeader.t_r`), compared as such. One whose unit is
    unknown (time bits 0, or a code that is no time unit) is a number of unknown unit:
    nibabel's ``get_zooms()`` reports it as written, fMRIPrep trusts the sidecar and the BIDS
    validator only warns. It is compared only where it is a plausible TR in seconds or in
    milliseconds (:data:`lcm.repetition_time.PLAUSIBLE_TR_S`, the two spans disjoint), read
    in that unit, and never confirms the sidecar (``unchecked`` says how it was read); nibabel's
    default ``pixdim[4]`` of 1 and implausible values are not compared. Every text says when
    the header's unit is unknown.

    Parameters
    ----------
    sidecar_tr : float
        ``RepetitionTime`` from the JSON sidecar (seconds).
    header : BoldHeader
        The BOLD's header (:func:`lcm.bids.nifti_header.read_bold_header` or
        :func:`lcm.bids.nifti_header.parse_header`).
    source : str
        File name for the texts.

    Returns
    -------
    HeaderTR
        The mismatch reason, or why the header does not confirm the TR, or neither.
    """
    value = header.pixdim_t
    if value is None:
        return HeaderTR("", "no TR in the NIfTI header (pixdim[4])")
    if header.t_r is not None:
        if abs(header.t_r - sidecar_tr) <= TR_TOLERANCE_S:
            return HeaderTR("", "")
        return HeaderTR(
            with_fix(
                f"TR mismatch in {source}: sidecar RepetitionTime is {sidecar_tr:g} s but the "
                f"NIfTI header pixdim[4] says {header.t_r:g} s",
                "correct the one that is wrong, the acquisition protocol saying which: "
                "RepetitionTime in the JSON sidecar, or pixdim[4] in the header",
            ),
            "",
        )
    unknown = f"the NIfTI header of {source} names no time unit (xyzt_units)"
    reading = _unknown_unit_reading(value)
    if reading is None:
        low, high = PLAUSIBLE_TR_S
        return HeaderTR(
            "",
            f"{unknown} and its pixdim[4] {value:g} is no TR to compare (not {low:g} to "
            f"{high:g} seconds, nor milliseconds, or the default 1 of a header with no TR set)",
        )
    unit, seconds = reading
    if abs(seconds - sidecar_tr) <= TR_TOLERANCE_S:
        return HeaderTR(
            "",
            f"{unknown}; its pixdim[4] {value:g} agrees with RepetitionTime {sidecar_tr:g} s "
            f"if read as {unit}",
        )
    return HeaderTR(
        with_fix(
            f"TR mismatch in {source}: sidecar RepetitionTime is {sidecar_tr:g} s but the NIfTI "
            f"header pixdim[4] says {value:g} and its xyzt_units names no time unit (read as "
            f"{unit}: {seconds:g} s)",
            f"where pixdim[4] is the TR, {set_unit_fix(value)}, or correct the sidecar, the "
            "acquisition protocol saying which is right",
        ),
        "",
    )


def sidecar_tr(metadata: dict, source: str) -> tuple[float | None, str]:
    """``RepetitionTime`` of a resolved sidecar as ``(t_r, reason)``; reason is ``""`` if valid.

    Parameters
    ----------
    metadata : dict
        The run's merged sidecar metadata.
    source : str
        The data file's name, named in the reason.
    """
    value = metadata.get("RepetitionTime")
    if value is None:
        return None, f"RepetitionTime missing from the JSON sidecar of {source}"
    try:
        t_r = float(value)
    except (TypeError, ValueError):
        return None, f"RepetitionTime of {source} is not a number: {value!r}"
    if not math.isfinite(t_r) or t_r <= 0:
        return None, f"RepetitionTime of {source} must be a positive number of seconds: {value!r}"
    return t_r, ""


def header_tr_name(header: BoldHeader, source: str) -> str:
    """How a reason names a BOLD header's TR: ``pixdim[4] of the NIfTI header of <source>
    (xyzt_units: <unit>)``, for :func:`lcm.repetition_time.implausible_tr` where the header
    gave the TR.

    Parameters
    ----------
    header : BoldHeader
        The header, its time unit known.
    source : str
        The image's file name.
    """
    return f"pixdim[4] of the NIfTI header of {source} (xyzt_units: {header.t_unit_name})"


def header_unit_fix(header: BoldHeader) -> str:
    """The fix of a header whose TR in seconds is implausible too, else ``""``.

    A converter that wrote ``RepetitionTime: 2000`` often wrote ``pixdim[4]`` 2000 in ``sec``:
    the sidecar corrected alone would then disagree with it (``tr_mismatch``) at the next
    ingest. A header in ``msec`` (2000 is 2 s), or of unknown unit (2000 reads as
    milliseconds), is right and not named.

    Parameters
    ----------
    header : BoldHeader
        The BOLD's header.

    Returns
    -------
    str
        ``its NIfTI header's pixdim[4] says ... s too: ...``, to follow a fix after ``; and``.
    """
    t_r = header.t_r
    if t_r is None or t_r <= PLAUSIBLE_TR_S[1]:
        return ""
    return (
        f"its NIfTI header's pixdim[4] says {t_r:g} s too: where pixdim[4] is the TR, "
        f"{set_unit_fix(header.pixdim_t)}"
    )


def series_tr_missing(problem: str, tr_name: str, metadata: dict | None = None) -> str:
    """Why an XCP-D time series has no TR, and its fix: the dataset's TR setting first.

    XCP-D's ``*_timeseries.json`` holds no ``RepetitionTime``: it writes
    ``SamplingFrequency: "TR"``, a placeholder with no value (``ds_timeseries`` in XCP-D's
    ``xcp_d/workflows/bold/outputs.py``), so neither key gives the TR. Editing every sidecar
    XCP-D wrote is no remedy; the dataset's ``repetition_time`` is (all runs of a dataset
    usually share one TR), the value being the BOLD's ``RepetitionTime`` in fMRIPrep's
    ``*_desc-preproc_bold.json``.

    Parameters
    ----------
    problem : str
        What is missing, naming the file (``no JSON sidecar <name>``, ``RepetitionTime missing
        from the JSON sidecar of <name>``).
    tr_name : str
        The dataset's TR setting as the user names it (``--repetition-time``, a config key).
    metadata : dict, optional
        The series' merged sidecar metadata: a ``SamplingFrequency`` it holds is said to be
        no TR.

    Returns
    -------
    str
        The reason, :func:`lcm.reason_codes.with_fix` worded.
    """
    frequency = (metadata or {}).get("SamplingFrequency")
    if frequency is not None:  # XCP-D's "TR", or a value: not read as the TR either way
        problem += f" (its SamplingFrequency {frequency!r} is not read as a TR)"
    return with_fix(
        problem,
        f"set {tr_name} to the repetition time of the runs in seconds (XCP-D writes none "
        "beside its time series; fMRIPrep's *_desc-preproc_bold.json gives it as "
        "RepetitionTime), or add RepetitionTime (seconds) to the series' JSON sidecar",
    )
