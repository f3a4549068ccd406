"""Which windows of a cleaned run become samples: each held to ``denoise.min_dof``.

``connectome.window.length`` cuts the run's kept (post-scrubbing) volumes into windows
(:func:`lcm.connectome.relmat.window_starts`), so every window keeps ``length`` volumes; what it
can lack is degrees of freedom. Each window's are counted as the run's are
(:func:`lcm.connectome.denoise.degrees_of_freedom` over its kept volumes, paying its share of
the regressors and the trend fitted over the run). A window under ``denoise.min_dof`` is left
out with a logged reason; the others are written
(:func:`lcm.connectome.matrices.write_run_matrices`) under their own index, so ``win002``
stays the third window of the run. QC counts both
(``n_windows``, ``n_windows_dropped``); a run left with no window is excluded
(``too_few_window_dof``) before any of its files is written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lcm import reason_codes
from lcm.connectome.denoise import (
    LIGHTER_STRATEGY,
    DegreesOfFreedom,
    degrees_of_freedom,
    dof_shortfall,
)
from lcm.connectome.relmat import window_starts
from lcm.connectome.settings import ConnectomeSettings, DenoiseSettings
from lcm.exceptions import ExcludedRunError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """One window kept: where it lies and the degrees of freedom it holds.

    Attributes
    ----------
    index : int
        Its place among the run's windows (``desc-win{index:03d}``).
    start, stop : int
        Its kept volumes, ``signals[start:stop]`` of the cleaned run.
    acquired : tuple of int
        The acquired volumes it spans: its first kept one, and one past its last.
    dof : float
        Its degrees of freedom left (:attr:`DegreesOfFreedom.residual`).
    """

    index: int
    start: int
    stop: int
    acquired: tuple[int, int]
    dof: float

    def sidecar(self) -> dict[str, Any]:
        """The window's sidecar fields."""
        return {
            "Window": self.index,
            "WindowVolumes": [self.start, self.stop],
            "WindowAcquiredVolumes": list(self.acquired),
            "DegreesOfFreedom": round(self.dof, 1),
        }


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one run: those kept, how many were left out, and a note.

    Attributes
    ----------
    kept : list of Window
        The windows written, in order.
    n_dropped : int
        Windows left out for too few degrees of freedom.
    note : str
        Why the run has no window at all when it is shorter than one (QC ``window_note``);
        ``""`` otherwise.
    """

    kept: list[Window]
    n_dropped: int = 0
    note: str = ""


def plan_windows(
    keep: np.ndarray,
    t_r: float,
    denoise: DenoiseSettings,
    connectome: ConnectomeSettings,
    facts: dict[str, Any],
    confounds: np.ndarray | None = None,
    source: str = "",
) -> WindowPlan | None:
    """The windows of a cleaned run to write, each with ``denoise.min_dof`` degrees of freedom.

    Parameters
    ----------
    keep : ndarray of int
        The run's kept volumes (:func:`lcm.connectome.denoise.scrub_mask`): row ``i`` of the
        cleaned signals is acquired volume ``keep[i]``.
    t_r : float
        Repetition time in seconds.
    denoise : DenoiseSettings
        Band, detrending and ``min_dof`` (``None``: every window is kept).
    connectome : ConnectomeSettings
        ``window_length`` and ``window_step``.
    facts : dict
        The run's QC record in the making: receives ``n_windows_dropped`` when no window is
        left (an included run's counts come with its matrices, :class:`RunMatrices`).
    confounds : ndarray, shape (T, C), optional
        The regressors of the run (voxel runs; ROI series have none).
    source : str, optional
        The run's file, named in the log.

    Returns
    -------
    WindowPlan or None
        ``None`` when windows are off.

    Raises
    ------
    ExcludedRunError
        ``too_few_window_dof``: the run has windows, and none keeps ``denoise.min_dof``.
    """
    length = connectome.window_length
    if not length:
        return None
    keep = np.asarray(keep, dtype=np.int64)
    starts = window_starts(keep.size, length, connectome.window_step)
    if not starts:
        note = f"{keep.size} kept volumes, fewer than one window of {length}: whole-run matrix only"
        return WindowPlan([], 0, note)
    kept: list[Window] = []
    counts: list[DegreesOfFreedom] = []
    dropped: list[str] = []
    for i, start in enumerate(starts):
        stop = start + length
        dof = degrees_of_freedom(keep, t_r, denoise, confounds, window=slice(start, stop))
        counts.append(dof)
        shortfall = dof_shortfall(dof, denoise)
        if shortfall is None:
            acquired = (int(keep[start]), int(keep[stop - 1]) + 1)
            kept.append(Window(i, start, stop, acquired, dof.residual))
        else:
            dropped.append(f"window {i} (kept volumes {start} to {stop - 1}): {shortfall}")
    if not kept:
        facts["n_windows_dropped"] = len(starts)
        raise _no_window_left(counts, length, denoise, source)
    if dropped:
        # One line per run, not per window: overlapping windows can number hundreds.
        log.warning(
            "%s: %d of %d windows left out for too few degrees of freedom; the first, %s",
            source,
            len(dropped),
            len(starts),
            dropped[0],
        )
    return WindowPlan(kept, len(dropped))


def _no_window_left(
    counts: list[DegreesOfFreedom], length: int, denoise: DenoiseSettings, source: str
) -> ExcludedRunError:
    """The exclusion of a run none of whose windows keeps ``denoise.min_dof``."""
    best = max(counts, key=lambda d: d.residual)
    # Degrees of freedom grow about in proportion to a window's length (its seconds, and its
    # share of the regressors): the length at which the best window would reach the floor.
    need = (
        f"about {math.ceil(length * denoise.min_dof / best.residual)}"
        if best.residual > 0 and denoise.min_dof is not None
        else "many more"
    )
    detail = dof_shortfall(best, denoise) or ""
    lighter = f"{LIGHTER_STRATEGY}, " if best.regressors else ""
    # A wider band helps only where the band, not the volume count, caps the window's count.
    band_caps = best.in_band < best.n_kept - 1
    wider = "widen the band (e.g. denoise.low_pass null), " if band_caps else ""
    return ExcludedRunError(
        f"{source + ': ' if source else ''}none of its {len(counts)} windows of {length} kept "
        f"volumes keeps enough degrees of freedom; the best has {detail}",
        hint=f"Lengthen connectome.window.length ({need} kept volumes would reach the floor "
        f"here), {wider}{lighter}or lower "
        "denoise.min_dof; with connectome.window.length null the run gives its whole-run "
        "matrix.",
        code=reason_codes.TOO_FEW_WINDOW_DOF,
    )
