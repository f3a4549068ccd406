"""Which epoch's weights the pretrained checkpoint holds, said beside the pretraining curves.

``lcm pretrain`` keeps the last epoch's weights (``pretrain.select_epoch: last``) or those of
the epoch of lowest held-out BEI loss on half the held-out subjects (``heldout``), and its
``model.json`` records which (read by :func:`lcm.report.provenance_section.checkpoint_summary`).
With ``last``, a held-out loss that bottomed out well before the end means the weights used
downstream are past their held-out optimum: the page says so, and which setting would not be.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lcm.report.boxes import box

# The lowest held-out loss is named when it lies more than this fraction below the loss at
# the checkpoint's epoch: above the epoch-to-epoch wobble of a small hold-out (the demo's
# val_loss moves by a median 3.4 % from one epoch to the next), not every dip of the curve.
OVERFIT_MARGIN = 0.05


def checkpoint_epoch(history: pd.DataFrame, checkpoint: dict[str, Any] | None) -> int | None:
    """The epoch whose weights the checkpoint holds, as its ``model.json`` records it.

    Parameters
    ----------
    history : pandas.DataFrame
        The pretraining history the checkpoint ends (``epoch``, ``val_loss``, ...).
    checkpoint : dict or None
        Its summary (:func:`lcm.report.provenance_section.checkpoint_summary`).

    Returns
    -------
    int or None
        ``selected_epoch`` where ``heldout`` chose one, else the last (``epochs``); None
        without a checkpoint, without its ``select_epoch`` or ``epochs`` (checkpoints written
        before they were recorded), or for a history without ``val_loss``, whose checkpoint
        predates the choice.
    """
    if checkpoint is None or "val_loss" not in history:
        return None
    if checkpoint.get("select_epoch") not in ("last", "heldout"):
        return None
    chosen = checkpoint.get("selected_epoch")
    epoch = chosen if chosen is not None else checkpoint.get("epochs")
    return int(epoch) if epoch is not None else None


def lowest_held_out(history: pd.DataFrame) -> tuple[int, float] | None:
    """The epoch of the lowest ``val_loss`` (the mean BEI loss on held-out runs) and its value.

    Parameters
    ----------
    history : pandas.DataFrame
        A pretraining history (``epoch``, optionally ``val_loss``).

    Returns
    -------
    (int, float) or None
        The first epoch of the lowest finite ``val_loss``; None without one.
    """
    if "val_loss" not in history:
        return None
    val = pd.to_numeric(history["val_loss"], errors="coerce")
    if not val.notna().any():
        return None
    return int(history.loc[val.idxmin(), "epoch"]), float(val.min())  # idxmin skips NaN


def _val_at(history: pd.DataFrame, epoch: int) -> float:
    """``val_loss`` at ``epoch`` (NaN where the history lacks it)."""
    at = pd.to_numeric(history.loc[history["epoch"] == epoch, "val_loss"], errors="coerce")
    return float(at.iloc[-1]) if len(at) else math.nan


def epoch_fragment(history: pd.DataFrame, checkpoint: dict[str, Any] | None) -> str:
    """The checkpoint's epoch and how it was chosen; a warning when it is past its optimum.

    Parameters
    ----------
    history : pandas.DataFrame
        The pretraining history (``epoch``, ``val_loss``: the mean BEI loss on held-out runs).
    checkpoint : dict or None
        The summary of the checkpoint written with it
        (:func:`lcm.report.provenance_section.checkpoint_summary`).

    Returns
    -------
    str
        HTML; empty where :func:`checkpoint_epoch` is None. With ``select_epoch: last`` and a
        lowest ``val_loss`` more than :data:`OVERFIT_MARGIN` below the last epoch's, a warning
        names that epoch, both losses and ``pretrain.select_epoch: heldout``.
    """
    epoch = checkpoint_epoch(history, checkpoint)
    if epoch is None or checkpoint is None:
        return ""
    at = _val_at(history, epoch)
    setting = f"<code>pretrain.select_epoch: {checkpoint['select_epoch']}</code>"
    if checkpoint["select_epoch"] == "heldout":
        if checkpoint.get("selected_epoch") is None:
            return (
                f"<p>The checkpoint holds the weights of epoch {epoch}, the last: {setting} "
                "chose no epoch (no held-out subject left to choose with, or no finite "
                "held-out loss).</p>"
            )
        value = f" ({at:.4f})" if math.isfinite(at) else ""
        return (
            f"<p>The checkpoint holds the weights of epoch {epoch}, chosen by {setting}: the "
            f"lowest mean BEI loss on held-out runs{value}, those of half the held-out subjects; "
            "<code>bei_eval.tsv</code> scores the other half.</p>"
        )
    parts = [f"<p>The checkpoint holds the weights of epoch {epoch}, the last ({setting}).</p>"]
    lowest = lowest_held_out(history)
    if math.isfinite(at) and lowest is not None and lowest[1] < (1 - OVERFIT_MARGIN) * at:
        best, low = lowest
        below = 100 * (at - low) / at
        parts.append(
            box(
                "<b>Checkpoint past its held-out optimum</b>:",
                [
                    f"the mean BEI loss on held-out runs was lowest at epoch {best} "
                    f"({low:.4f}), "
                    f"{below:.0f} % below its {at:.4f} at epoch {epoch}, the checkpoint's; "
                    "<code>pretrain.select_epoch: heldout</code> would keep the epoch of lowest "
                    "held-out loss, chosen on half the held-out subjects (<code>bei_eval.tsv"
                    "</code> then scores the other half)"
                ],
            )
        )
    return "\n".join(parts)
