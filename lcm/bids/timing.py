"""Repetition time: the sidecar value cross-checked against the NIfTI header."""

from __future__ import annotations

import math

import nibabel as nib

# Header and sidecar disagree when they differ by more than this (seconds); rounding in
# converters (e.g. 2.0 vs 1.99999) stays below it.
TR_TOLERANCE_S = 1e-3

_TIME_UNIT_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def header_tr(img: nib.spatialimages.SpatialImage) -> float | None:
    """TR in seconds from the header's ``pixdim[4]``, or ``None`` when absent.

    Parameters
    ----------
    img : nibabel image
        A loaded (lazily) NIfTI image.

    Returns
    -------
    float or None
        ``None`` for 3D images and when ``pixdim[4]`` is 0 or not finite. Units ``msec`` and
        ``usec`` are converted; ``unknown`` units are taken as seconds, as most tools do.
    """
    zooms = img.header.get_zooms()
    if len(zooms) < 4:
        return None
    value = float(zooms[3])
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        _, t_unit = img.header.get_xyzt_units()
    except AttributeError:  # non-NIfTI headers
        t_unit = "unknown"
    return value * _TIME_UNIT_SECONDS.get(t_unit, 1.0)


def tr_mismatch(sidecar_tr: float, header: float | None, source: str) -> str:
    """Reason text when header and sidecar TR disagree, else ``""``.

    Parameters
    ----------
    sidecar_tr : float
        ``RepetitionTime`` from the JSON sidecar (seconds).
    header : float or None
        TR from :func:`header_tr`; ``None`` means nothing to check.
    source : str
        File name for the message.
    """
    if header is None or abs(header - sidecar_tr) <= TR_TOLERANCE_S:
        return ""
    return (
        f"TR mismatch in {source}: sidecar RepetitionTime is {sidecar_tr:g} s but the NIfTI "
        f"header pixdim[4] says {header:g} s"
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
