"""The plausible span of an fMRI repetition time in seconds, and how a TR outside it is refused.

One rule for every way a TR comes in: a sidecar's ``RepetitionTime`` or a NIfTI header at
ingest (:mod:`lcm.bids.timing`, :mod:`lcm.bids.fast_index`, :mod:`lcm.bids.file_entries`) and
a dataset's ``repetition_time`` setting when the config is loaded (:mod:`lcm.config`), which
sits below the BIDS layer: so the rule lives in this leaf module, which imports nothing of
``lcm``.
"""

from __future__ import annotations

# An fMRI TR in seconds: 0.05 to 30 (sub-second multiband to sparse designs); above it is
# milliseconds written as seconds. A pixdim[4] whose xyzt_units names no time unit is read in
# whichever of seconds and milliseconds (50 to 30000) it is plausible in
# (lcm.bids.timing.compare_header_tr): the spans do not overlap, so that is never a guess.
PLAUSIBLE_TR_S = (0.05, 30.0)


def set_tr_fix(what: str) -> str:
    """The fix of an unusable repetition time: set ``what`` to the TR in seconds.

    Parameters
    ----------
    what : str
        Where the TR was given: ``RepetitionTime of <sidecar>``, a listing's cell, or the
        dataset's setting as the user names it (``--repetition-time``, a config key).

    Returns
    -------
    str
    """
    return f"set {what} to the repetition time in seconds, e.g. 2.0 (not 2000 ms)"


def implausible_tr(t_r: float, what: str, value: object) -> str:
    """Why a TR in seconds is no fMRI repetition time (milliseconds as seconds), else ``""``.

    The one plausibility check of every way in (a dataset's ``repetition_time`` when the
    config is loaded, :mod:`lcm.config`; at ingest :mod:`lcm.bids.file_entries`, and
    :mod:`lcm.bids.fast_index` for raw BIDS, fMRIPrep derivatives and XCP-D alike): a TR
    above :data:`PLAUSIBLE_TR_S` is refused. 2000 (milliseconds) read as seconds was excluded
    later for a high-pass 'above Nyquist', with the fix to lower the filter, or, for a BOLD
    whose header a converter wrote with the same 2000 in ``sec``, included with a TR of
    2000 s: the header's agreement (:func:`lcm.bids.timing.compare_header_tr`) proves
    nothing then.

    Parameters
    ----------
    t_r : float
        The TR read, a positive number.
    what : str
        Where it was given, as :func:`set_tr_fix` names it.
    value : object
        The value as given, for the reason.

    Returns
    -------
    str
        The reason (without its fix: :func:`set_tr_fix`,
        :func:`lcm.bids.timing.header_unit_fix`), ``""`` when plausible.
    """
    high = PLAUSIBLE_TR_S[1]
    if t_r <= high:
        return ""
    return (
        f"{what} is {value!r}: above {high:g} s, no fMRI repetition time in seconds (in "
        f"milliseconds it is {t_r / 1000:g} s)"
    )
