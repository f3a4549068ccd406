"""What the report's findings share: the label fraction where pretraining is meant to help,
the names of its p columns, and how a label fraction or a difference is said.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lcm.report.tables import with_ci

LOW_LABELS = 0.1  # "≤ 10 % labels": where pretraining and pseudo-labels are meant to help

# The headline's p: the larger of the paired bootstrap's and the corrected resampled t's
# (lcm.evaluate.compare.headline_difference), so both must agree for a small one.
P_HEADLINE = "p (larger of bootstrap and corrected t)"
# Each table's p values Holm-adjusted over its rows (lcm.evaluate.compare.holm): the verdicts
# rest on the unadjusted 95 % intervals, so the adjusted p says what survives their number.
P_HOLM = "p, Holm-adjusted over the table's rows"


def at_labels(fraction: float) -> str:
    """Where a label fraction is read, in words: ``at 0.1 of the labels``, ``with every
    label`` for 1 (``at 1 of the labels`` read as one label).

    Parameters
    ----------
    fraction : float
        A label fraction in (0, 1].

    Returns
    -------
    str
    """
    if np.isclose(fraction, 1.0):
        return "with every label"
    return f"at {fraction:g} of the labels"


def gain_text(r: Any) -> str:
    """A contrast row's difference with its interval, signed: ``+0.050 [-0.010, +0.110]``.

    Parameters
    ----------
    r : row
        A row (``difference, ci_low, ci_high``) of the contrast or headline tables.

    Returns
    -------
    str
    """
    return f"{with_ci(r.difference, r.ci_low, r.ci_high, signed=True)}"


def fractions_text(fractions: Any) -> str:
    """``label fraction 1`` or ``label fractions 0.1 and 1``.

    Parameters
    ----------
    fractions : iterable of float
        Label fractions (repeats and order do not matter).

    Returns
    -------
    str
    """
    done = sorted({float(f) for f in fractions})
    if len(done) == 1:
        return f"label fraction {done[0]:g}"
    return "label fractions " + ", ".join(f"{f:g}" for f in done[:-1]) + f" and {done[-1]:g}"
