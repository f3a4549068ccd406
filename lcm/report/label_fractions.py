"""The label fractions as run: the share of each training fold's subjects that kept a label.

Each class keeps at least 2 labelled subjects (:func:`lcm.evaluate.splits.labeled_subsets`), so
in small training folds the fraction labelled is larger than the nominal one, and the labelled
subjects' class balance is not the fold's: of 5 positives and 12 negatives, fractions 0.05 and
0.1 both label 2 + 2 subjects, 24 % of the fold, half of them positive where the fold has 29 %.
``lcm evaluate`` records the counts of every fit (``labelled_subjects`` in its metadata); this
section sets the fraction labelled beside the nominal one.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# A fraction labelled more than this many times the nominal one is warned about.
EFFECTIVE_OVER_NOMINAL = 2.0


def effective_fractions(meta: dict[str, Any]) -> pd.DataFrame:
    """Per nominal label fraction: the subjects labelled per class and the share labelled.

    Parameters
    ----------
    meta : dict
        A task's ``lcm evaluate`` metadata (:func:`lcm.report.tables.read_task_meta`).

    Returns
    -------
    pandas.DataFrame
        ``label_fraction, labelled, training, effective, effective_min, effective_max,
        balance_labelled, balance_training, n_fits``: ``labelled`` and ``training`` map each
        class (in the order of the task's ``levels``, else by name) to its mean subjects over
        the fits, ``effective`` is the mean share of the training fold's subjects labelled
        (min and max over fits), ``balance_*`` the share of the last class (a binary task's
        positive level) among the labelled and the training subjects. Empty when the
        metadata records no counts (metrics of an older ``lcm evaluate``).
    """
    columns = [
        "label_fraction",
        "labelled",
        "training",
        "effective",
        "effective_min",
        "effective_max",
        "balance_labelled",
        "balance_training",
        "n_fits",
    ]
    fits = meta.get("labelled_subjects") or []
    rows = []
    for fraction in sorted({float(f["label_fraction"]) for f in fits}):
        at = [f for f in fits if np.isclose(float(f["label_fraction"]), fraction)]
        # In the task's order of levels (negative, positive): the metadata's JSON sorts keys.
        classes = sorted(at[0]["training"])
        levels = [level for level in meta.get("levels") or [] if level in classes]
        classes = levels if len(levels) == len(classes) else classes
        labelled = np.array([[f["labelled"].get(c, 0) for c in classes] for f in at], float)
        training = np.array([[f["training"].get(c, 0) for c in classes] for f in at], float)
        share = labelled.sum(axis=1) / np.maximum(training.sum(axis=1), 1)
        rows.append(
            {
                "label_fraction": fraction,
                "labelled": dict(zip(classes, labelled.mean(axis=0), strict=True)),
                "training": dict(zip(classes, training.mean(axis=0), strict=True)),
                "effective": float(share.mean()),
                "effective_min": float(share.min()),
                "effective_max": float(share.max()),
                "balance_labelled": float(labelled[:, -1].sum() / max(labelled.sum(), 1)),
                "balance_training": float(training[:, -1].sum() / max(training.sum(), 1)),
                "n_fits": len(at),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _counts(per_class: dict[str, float]) -> str:
    """``control 2, autism 2`` (means over fits, to one decimal where not whole)."""
    return ", ".join(
        f"{name} {n:.0f}" if n == round(n) else f"{name} {n:.1f}" for name, n in per_class.items()
    )


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def label_fraction_fragment(
    meta: dict[str, Any], table_html: Callable[[pd.DataFrame], str], binary: bool = True
) -> str:
    """The nominal and effective label fractions of one task, warning where they differ.

    Parameters
    ----------
    meta : dict
        The task's ``lcm evaluate`` metadata.
    table_html : callable
        Renders a data frame as an HTML table (:func:`lcm.report.html.table_html`).
    binary : bool, default True
        Whether the classes are a binary task's levels (its balance is then named); a
        continuous task's are the halves of its target.

    Returns
    -------
    str
        An HTML fragment; a note when the metadata records no counts, ``""`` without
        metadata.
    """
    if not meta:
        return ""
    table = effective_fractions(meta)
    if table.empty:
        return (
            '<p class="note">The subjects labelled in each training fold are not recorded '
            "in these metrics (written by an older <code>lcm evaluate</code>): the fraction "
            "actually labelled is not shown.</p>"
        )
    shown = pd.DataFrame(
        {
            "label fraction (nominal)": [f"{f:g}" for f in table["label_fraction"]],
            "labelled (effective)": [
                _percent(r.effective)
                if np.isclose(r.effective_min, r.effective_max)
                else f"{_percent(r.effective)} ({_percent(r.effective_min)}–"
                f"{_percent(r.effective_max)})"
                for r in table.itertuples(index=False)
            ],
            "labelled subjects per class": [_counts(c) for c in table["labelled"]],
            "training subjects per class": [_counts(c) for c in table["training"]],
            "fits": table["n_fits"].astype(int).tolist(),
        }
    )
    parts = [
        '<p class="note">Label fractions as run: the share of each training fold\'s subjects '
        "that kept a label (mean over seeds &times; folds, range in brackets where folds "
        "differ) and the subjects per class behind it, means over the fits. Each class keeps "
        "at least 2 labelled subjects.</p>",
        table_html(shown),
    ]
    over = table[table["effective"] > EFFECTIVE_OVER_NOMINAL * table["label_fraction"]]
    if len(over):
        which = "; ".join(
            f"{r.label_fraction:g}: {_percent(r.effective)} labelled"
            + (
                f", {_percent(r.balance_labelled)} of them {html.escape(list(r.training)[-1])} "
                f"(training folds: {_percent(r.balance_training)})"
                if binary
                else ""
            )
            for r in over.itertuples(index=False)
        )
        parts.append(
            f'<p class="warn">Label fraction(s) labelled more than {EFFECTIVE_OVER_NOMINAL:g} '
            f"times their nominal share of the training subjects ({which}): each class keeps at "
            "least 2 labelled subjects, so their results are those of the larger labelled "
            "sets (and fractions that label the same subjects repeat each other's results). "
            "Read them at the effective fraction.</p>"
        )
    return "\n".join(parts)
