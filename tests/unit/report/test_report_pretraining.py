"""The report's pretraining curves: the held-out loss beside its own quantity on training runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcm.report.html import pretraining_section
from lcm.report.plots import loss_figure


def _history() -> pd.DataFrame:
    epochs = np.arange(1, 6)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "loss_total": 2.0 / epochs,
            "loss_age": 0.8 / epochs,
            "loss_ssl": 0.3 / epochs,
            "train_eval_loss": 0.5 + 0.1 / epochs,
            "val_loss": 0.6 + 0.1 / epochs,
            "lr": 0.001,
        }
    )


def test_curves_say_which_loss_is_which() -> None:
    """'validation' beside 'total (train)' compared the mean per-variable BEI loss with the
    weighted objective plus the self-supervised term: two different quantities."""
    (legend,) = loss_figure(_history()).legends  # under the panels, off the curves
    labels = [t.get_text() for t in legend.get_texts()]
    assert "mean BEI loss, training runs" in labels and "mean BEI loss, held-out runs" in labels
    assert "training objective (weighted, + SSL)" in labels
    assert "validation" not in labels and "total (train)" not in labels


def test_text_sets_the_held_out_loss_beside_the_training_one() -> None:
    text = pretraining_section(_history())
    assert "mean BEI loss: training runs 0.5200, held-out runs 0.6200" in text
    assert "final training objective (weighted, with the self-supervised term) 0.4000" in text
    older = pretraining_section(_history().drop(columns="train_eval_loss"))
    assert "mean BEI loss: held-out runs 0.6200" in older


def test_a_history_of_no_epoch_gives_a_note_not_a_crash() -> None:
    """A history TSV of its header alone has no last row to quote (IndexError before)."""
    text = pretraining_section(_history().iloc[:0], ssl_history=_history().iloc[:0])
    assert "The pretraining history lists no epoch." in text and "<img" not in text
    assert "(lcm-ssl) lists no epoch" in text
    text = pretraining_section(_history(), ssl_history=_history().iloc[:0])
    assert "(lcm-ssl) lists no epoch" in text and text.count("<img") == 1
