"""The label fractions as run: the share of each training fold's subjects that kept a label,
and the pseudo-labels as run: what each LCM fit's pseudo-labelling made of the rest.

Each class keeps at least 2 labelled subjects (:func:`lcm.evaluate.splits.labeled_subsets`), so
in small training folds the fraction labelled is larger than the nominal one, and the labelled
subjects' class balance is not the fold's: of 5 positives and 12 negatives, fractions 0.05 and
0.1 both label 2 + 2 subjects, 24 % of the fold, half of them positive where the fold has 29 %.
``lcm evaluate`` records the counts of every fit (``labelled_subjects`` in its metadata); this
section sets the fraction labelled beside the nominal one. It also records what each LCM fit's
pseudo-labelling did (``pseudo_labels``): the pseudo-label gain (lcm − lcm-no-pseudo) rests on
it, and where lcm pseudo-labelled none of the unlabelled subjects the report says that the
contrast measures at most the BEI pseudo-targets (nothing but noise when those filled nothing).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lcm.report.boxes import box

# A fraction labelled more than this many times the nominal one is warned about.
EFFECTIVE_OVER_NOMINAL = 2.0


def effective_fractions(meta: dict[str, Any]) -> pd.DataFrame:
    """Per nominal label fraction: the subjects labelled per class and the share labelled.

    Parameters
    ----------
    meta : dict
        A task's ``lcm evaluate`` metadata (:func:`lcm.evaluate.record.read_evaluation_records`).

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
                # Folds of 9.9 % and 10.1 % read "10 % (10 %–10 %)": a range only as written.
                if _percent(r.effective_min) == _percent(r.effective_max)
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
        which = [
            f"{r.label_fraction:g}: {_percent(r.effective)} labelled"
            + (
                f", {_percent(r.balance_labelled)} of them {html.escape(list(r.training)[-1])} "
                f"(training folds: {_percent(r.balance_training)})"
                if binary
                else ""
            )
            for r in over.itertuples(index=False)
        ]
        parts.append(
            box(
                f"Label fraction(s) labelled more than {EFFECTIVE_OVER_NOMINAL:g} times their "
                "nominal share of the training subjects:",
                which,
                "Each class keeps at least 2 labelled subjects, so their results are those of "
                "the larger labelled sets (and fractions that label the same subjects repeat "
                "each other's results). Read them at the effective fraction.",
            )
        )
    return "\n".join(parts)


def pseudo_label_counts(meta: dict[str, Any]) -> pd.DataFrame:
    """Per model and label fraction: what the LCM fits' pseudo-labelling did.

    Parameters
    ----------
    meta : dict
        A task's ``lcm evaluate`` metadata; its ``pseudo_labels`` hold one entry per fit of an
        LCM variant (:attr:`lcm.evaluate.protocol.EvaluationResult.pseudo_labels`).

    Returns
    -------
    pandas.DataFrame
        ``model, label_fraction, n_fits, statuses, pseudo_labelled, unlabeled, share,
        n_pseudo_labelled_total, thresholds, bei_filled``: ``statuses`` maps each diagnosis
        status (``made``, ``off``, ``no_unlabeled``, ``one_class``, ``continuous``) to its
        fits, ``pseudo_labelled`` and ``unlabeled`` are the medians over the fits of the
        subjects pseudo-labelled and of the unlabelled subjects, ``share`` the median of their
        ratio (NaN without unlabelled subjects), ``thresholds`` maps ``fixed 0.95`` /
        ``inner`` to fits, ``bei_filled`` is the median over fits of the BEI target values
        pseudo-filled (NaN when switched off). Empty when the metadata records none (no LCM
        model, or metrics of an older ``lcm evaluate``).
    """
    columns = [
        "model",
        "label_fraction",
        "n_fits",
        "statuses",
        "pseudo_labelled",
        "unlabeled",
        "share",
        "n_pseudo_labelled_total",
        "thresholds",
        "bei_filled",
    ]
    fits = meta.get("pseudo_labels") or []
    rows = []
    for model, fraction in sorted({(str(f["model"]), float(f["label_fraction"])) for f in fits}):
        at = [
            f
            for f in fits
            if f["model"] == model and np.isclose(float(f["label_fraction"]), fraction)
        ]
        diagnosis = [f.get("diagnosis") or {} for f in at]
        labelled = np.array([d.get("n_pseudo_labelled", 0) for d in diagnosis], float)
        # NaN where unrecorded (a regression's fits of an earlier LCM): never "0 unlabelled".
        unlabeled = np.array([d.get("n_unlabeled", np.nan) for d in diagnosis], float)
        statuses: dict[str, int] = {}
        thresholds: dict[str, int] = {}
        for d in diagnosis:
            status = str(d.get("status", "unknown"))
            statuses[status] = statuses.get(status, 0) + 1
            if status == "made":
                source = d.get("threshold_source")
                name = (
                    f"fixed {d['threshold']:g}"
                    if source == "fixed" and d.get("threshold") is not None
                    else str(source)
                )
                thresholds[name] = thresholds.get(name, 0) + 1
        filled = [f.get("bei_targets_filled") for f in at]
        bei = [sum(x.values()) for x in filled if isinstance(x, dict)]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(unlabeled > 0, labelled / unlabeled, np.nan)
        rows.append(
            {
                "model": model,
                "label_fraction": fraction,
                "n_fits": len(at),
                "statuses": statuses,
                "pseudo_labelled": float(np.median(labelled)),
                "unlabeled": float(np.nanmedian(unlabeled))
                if np.isfinite(unlabeled).any()
                else np.nan,
                "share": float(np.nanmedian(share)) if np.isfinite(share).any() else np.nan,
                "n_pseudo_labelled_total": int(labelled.sum()),
                "thresholds": thresholds,
                "bei_filled": float(np.median(bei)) if bei else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=columns)


# How each diagnosis status reads in the report.
_STATUS_WORDS = {
    "made": "made",
    "off": "switched off",
    "no_unlabeled": "no unlabelled subject",
    "one_class": "labelled subjects of one class",
    "continuous": "none (continuous target)",
}


def _tally(counts: dict[str, int], words: dict[str, str] | None = None) -> str:
    """``made 4, switched off 1`` (fits per value; plain text, escaped where it is placed)."""
    words = words or {}
    return ", ".join(f"{words.get(k, k)} {n}" for k, n in counts.items()) or "—"


def _number(x: float) -> str:
    return f"{x:.0f}" if x == round(x) else f"{x:.1f}"


def pseudo_label_fragment(meta: dict[str, Any], table_html: Callable[[pd.DataFrame], str]) -> str:
    """The pseudo-labels each LCM fit made, warning where lcm's labelled nobody.

    The pseudo-label gain (lcm − lcm-no-pseudo) measures what the pseudo-labels add; where the
    diagnosis pseudo-labelling labelled none of the unlabelled subjects in any fit of a label
    fraction, it measures at most the BEI pseudo-targets, and nothing but noise when those
    filled nothing either.

    Parameters
    ----------
    meta : dict
        The task's ``lcm evaluate`` metadata.
    table_html : callable
        Renders a data frame as an HTML table.

    Returns
    -------
    str
        An HTML fragment; ``""`` without metadata or without LCM models; a note when the
        metadata predates the record.
    """
    if not meta:
        return ""
    table = pseudo_label_counts(meta)
    if table.empty:
        models = (meta.get("settings") or {}).get("models") or meta.get("models_evaluated") or []
        if "pseudo_labels" in meta or not any(str(m).startswith("lcm") for m in models):
            return ""
        return (
            '<p class="note">The pseudo-labels of the LCM fits are not recorded in these '
            "metrics (written by an older <code>lcm evaluate</code>): how many unlabelled "
            "subjects lcm pseudo-labelled is not shown.</p>"
        )
    shown = pd.DataFrame(
        {
            "model": table["model"].tolist(),
            "label fraction": [f"{f:g}" for f in table["label_fraction"]],
            "diagnosis pseudo-labels (fits)": [_tally(s, _STATUS_WORDS) for s in table["statuses"]],
            "pseudo-labelled of unlabelled (median)": [
                (
                    "none made"
                    + ("" if np.isnan(r.unlabeled) else f" ({_number(r.unlabeled)} unlabelled)")
                )
                if not set(r.statuses) - {"off", "continuous"}
                else f"{_number(r.pseudo_labelled)} of {_number(r.unlabeled)}"
                + ("" if np.isnan(r.share) else f" ({_percent(r.share)})")
                for r in table.itertuples(index=False)
            ],
            "threshold (fits)": [_tally(t) for t in table["thresholds"]],
            "BEI values pseudo-filled (median)": [
                "off" if np.isnan(x) else _number(x) for x in table["bei_filled"]
            ],
            "fits": table["n_fits"].astype(int).tolist(),
        }
    )
    parts = [
        '<p class="note">Pseudo-labels as run: per LCM model and label fraction, whether each '
        "fit's confident diagnosis pseudo-labelling ran (or why not), the unlabelled training "
        "subjects it labelled (medians over seeds &times; folds), its confidence threshold "
        "(chosen on an inner validation split, or fixed when that split is too small), and the "
        "missing BEI variable values the pretrained heads filled. The pseudo-label gain "
        "(lcm &minus; lcm-no-pseudo) measures what these add.</p>",
        table_html(shown),
    ]
    # A fraction where pseudo-labelling could run (unlabelled subjects) but labelled nobody.
    idle = table[
        (table["n_pseudo_labelled_total"] == 0)
        & table["statuses"].map(lambda s: bool({"made", "one_class"} & set(s)) and "off" not in s)
    ]
    for r in idle.itertuples(index=False):
        measures = (
            "nothing but noise (no BEI value was pseudo-filled either)"
            if np.isnan(r.bei_filled) or r.bei_filled == 0
            else "the BEI pseudo-targets only"
        )
        contrast = (
            f"lcm &minus; lcm-no-pseudo at label fraction {r.label_fraction:g} measures {measures}"
            if r.model == "lcm"
            else f"its contrasts at label fraction {r.label_fraction:g} measure {measures}"
        )
        parts.append(
            f'<p class="warn">{html.escape(r.model)} at label fraction {r.label_fraction:g}: '
            f"its diagnosis pseudo-labelling labelled none of the unlabelled subjects in any of "
            f"its {r.n_fits} fit(s) (median {_number(r.unlabeled)} unlabelled; "
            f"{html.escape(_tally(r.statuses, _STATUS_WORDS))}): {contrast}. Read no "
            "pseudo-label gain there as evidence for or against the pseudo-labels.</p>"
        )
    return "\n".join(parts)
