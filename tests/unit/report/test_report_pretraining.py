"""The report's pretraining curves: the held-out loss beside its own quantity on training runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from helpers.report import run_report
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lcm.io.atomic import write_tsv
from lcm.report.epoch import OVERFIT_MARGIN, checkpoint_epoch, epoch_fragment, lowest_held_out
from lcm.report.html import pretraining_section
from lcm.report.plots import loss_figure
from lcm.report.provenance_section import checkpoint_beside, checkpoint_summary


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


# The checkpoint's epoch: read from its model.json, stated in the text, marked on the curves.

# Held-out loss of ten epochs, lowest at epoch 4 (0.5), then rising to 0.75 at the last.
_RISING = [1.0, 0.8, 0.6, 0.5, 0.55, 0.6, 0.65, 0.7, 0.72, 0.75]


def _bottoming(val_loss: list[float]) -> pd.DataFrame:
    """A history whose training-run loss keeps falling while ``val_loss`` is as given."""
    epochs = np.arange(1, len(val_loss) + 1)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "loss_total": 2.0 / epochs,
            "train_eval_loss": 0.9 / epochs,
            "val_loss": val_loss,
            "lr": 0.001,
        }
    )


def _checkpoint(folder: Path, training: dict, selected_epoch: int | None = None) -> dict:
    """The summary the report reads of a model.json written as lcm pretrain writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "pretrained", "training": training, "selected_epoch": selected_epoch}
    (folder / "model.json").write_text(json.dumps(meta))
    return checkpoint_summary(folder / "model.json")


def _checkpoint_lines(fig: Figure) -> list[Line2D]:
    return [line for line in fig.axes[0].lines if line.get_label().startswith("checkpoint")]


def test_a_last_checkpoint_past_the_held_out_minimum_is_warned_of(tmp_path: Path) -> None:
    last = _checkpoint(tmp_path, {"epochs": 10, "select_epoch": "last"})
    text = pretraining_section(_bottoming(_RISING), checkpoint=last)
    assert "The checkpoint holds the weights of epoch 10, the last" in text
    (warning,) = re.findall(r'<p class="warn">.*?</p>', text)
    assert "lowest at epoch 4 (0.5000), 33 % below its 0.7500 at epoch 10" in warning
    assert "<code>pretrain.select_epoch: heldout</code> would keep" in warning
    assert "the dotted line marks epoch 10, the checkpoint&#x27;s" in text  # the alt text


def test_no_warning_when_the_held_out_loss_is_lowest_at_the_last_epoch(tmp_path: Path) -> None:
    last = _checkpoint(tmp_path, {"epochs": 10, "select_epoch": "last"})
    falling = sorted(_RISING, reverse=True)
    text = pretraining_section(_bottoming(falling), checkpoint=last)
    assert "epoch 10, the last" in text and 'class="warn"' not in text


def test_the_warning_needs_a_minimum_more_than_the_margin_below(tmp_path: Path) -> None:
    """A dip within OVERFIT_MARGIN of the last epoch's loss is the curve's wobble: unnamed."""
    last = _checkpoint(tmp_path, {"epochs": 4, "select_epoch": "last"})
    within = [1.0, 0.8 * (1 - OVERFIT_MARGIN) + 0.001, 0.9, 0.8]
    beyond = [1.0, 0.8 * (1 - OVERFIT_MARGIN) - 0.001, 0.9, 0.8]
    assert 'class="warn"' not in epoch_fragment(_bottoming(within), last)
    assert "lowest at epoch 2 (0.7590)" in epoch_fragment(_bottoming(beyond), last)


def test_a_heldout_checkpoint_states_its_chosen_epoch(tmp_path: Path) -> None:
    chosen = _checkpoint(tmp_path, {"epochs": 10, "select_epoch": "heldout"}, selected_epoch=4)
    text = pretraining_section(_bottoming(_RISING), checkpoint=chosen)
    assert (
        "holds the weights of epoch 4, chosen by <code>pretrain.select_epoch: heldout</code>: "
        "the lowest mean BEI loss on held-out runs (0.5000)"
    ) in text
    assert 'class="warn"' not in text and "the last" not in text
    (line,) = _checkpoint_lines(
        loss_figure(_bottoming(_RISING), checkpoint_epoch(_bottoming(_RISING), chosen))
    )
    assert list(line.get_xdata()) == [4, 4]
    unchosen = _checkpoint(tmp_path / "one", {"epochs": 10, "select_epoch": "heldout"})
    assert "epoch 10, the last: <code>pretrain.select_epoch: heldout</code> chose no epoch" in (
        pretraining_section(_bottoming(_RISING), checkpoint=unchosen)
    )


def test_nothing_new_without_val_loss_or_a_checkpoint_record(tmp_path: Path) -> None:
    """Histories before val_loss, checkpoints before select_epoch, no checkpoint: as before."""
    last = _checkpoint(tmp_path, {"epochs": 10, "select_epoch": "last"})
    older = _checkpoint(tmp_path / "older", {"epochs": 10})
    plain = pretraining_section(_bottoming(_RISING))
    assert "checkpoint" not in plain and 'class="warn"' not in plain
    assert pretraining_section(_bottoming(_RISING), checkpoint=older) == plain
    no_val = _bottoming(_RISING).drop(columns="val_loss")
    assert pretraining_section(no_val, checkpoint=last) == pretraining_section(no_val)
    assert (
        checkpoint_epoch(no_val, last) is None
        and checkpoint_epoch(_bottoming(_RISING), older) is None
    )


def test_the_curves_mark_the_checkpoints_epoch_in_the_legend() -> None:
    fig = loss_figure(_bottoming(_RISING), checkpoint_epoch=10)
    (line,) = _checkpoint_lines(fig)
    assert list(line.get_xdata()) == [10, 10] and line.get_linestyle() == ":"
    (legend,) = fig.legends
    assert "checkpoint (epoch 10)" in [t.get_text() for t in legend.get_texts()]
    assert not _checkpoint_lines(loss_figure(_bottoming(_RISING)))


def test_the_report_reads_the_checkpoint_beside_the_history(inputs: dict, tmp_path: Path) -> None:
    """lcm report ties --history to the --checkpoint of its folder (the workflow's layout),
    not to another checkpoint given."""
    folder = tmp_path / "models" / "pretrain"
    _checkpoint(folder, {"epochs": 10, "select_epoch": "last"})
    other = _checkpoint(tmp_path / "models" / "pretrain-ssl", {"epochs": 3, "select_epoch": "last"})
    write_tsv(folder / "history.tsv", _bottoming(_RISING))
    out = run_report(
        {**inputs, "history": folder / "history.tsv"},
        tmp_path / "out",
        ["--checkpoint", other["folder"], str(folder)],
    )
    section = out["html"].read_text().split('<h2 id="pretraining">', 1)[1].split("<h2", 1)[0]
    assert "holds the weights of epoch 10, the last" in section
    assert "lowest at epoch 4 (0.5000)" in section
    assert checkpoint_beside([other], folder / "history.tsv") is None


def test_the_curves_circle_the_lowest_held_out_loss() -> None:
    """The distance from the circle to the checkpoint's dotted line is how far past its
    held-out optimum the checkpoint is; a history without val_loss gets no circle."""
    history = _bottoming(_RISING)
    assert lowest_held_out(history) == (4, 0.5)
    fig = loss_figure(history, checkpoint_epoch=10)
    (circle,) = [
        line
        for line in fig.axes[0].get_lines()
        if str(line.get_label()).startswith("lowest held-out loss")
    ]
    assert list(circle.get_xdata()) == [4] and list(circle.get_ydata()) == [0.5]
    assert circle.get_marker() == "o" and circle.get_linestyle() == "None"
    (legend,) = fig.legends
    assert "lowest held-out loss (epoch 4)" in [t.get_text() for t in legend.get_texts()]
    assert lowest_held_out(history.drop(columns="val_loss")) is None
    bare = loss_figure(history.drop(columns="val_loss"))
    assert not [line for line in bare.axes[0].get_lines() if "lowest" in str(line.get_label())]
    text = pretraining_section(history)
    assert "the circle marks the lowest held-out loss, 0.5000 at epoch 4" in text
