"""Figures of the report, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built from :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state), so the
module works headless, in threads and in tests, and never opens a window.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from PIL import Image
from sklearn.metrics import roc_curve

from lcm.docstrings import fill_doc
from lcm.evaluate.motion import MOTION_MODEL
from lcm.evaluate.registry import model_names
from lcm.io.qc_table import INCLUDED, MEAN_FD
from lcm.report.epoch import lowest_held_out
from lcm.report.tables import first_permutation, metric_name

_FPR_GRID = np.linspace(0.0, 1.0, 101)
# ROC panels: at most three a row, each this many inches square (the page and an A4 column).
_ROC_COLUMNS = 3
_PANEL_IN = 3.0
# Sharp in print; each PNG is stored with a 256-colour palette, so a report page stays near
# 1 MB (the demo's: 1.9 MB at 100 dpi in full colour, 3.2 MB at 150, 1.1 MB at 150 in 256).
DPI = 150


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes, 256 colours (no timestamp, so output is reproducible).

    A figure's flat colours and their anti-aliased edges fit a 256-colour palette: a third of
    the size of full colour, which the page carries as base64.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; drawn here on an Agg canvas (no display needed).
    dpi : int
        Resolution, also recorded in the PNG.

    Returns
    -------
    bytes
        The paletted PNG.
    """
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    # Pillow comes with matplotlib (one of its dependencies); the figures are opaque.
    image = Image.open(buffer).convert("RGB")
    paletted = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    paletted.save(out, format="png", optimize=True, dpi=(dpi, dpi))
    return out.getvalue()


# Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), black first.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
_CONTROL_GREY = "#999999"


@dataclass(frozen=True)
class ModelStyle:
    """How one model is drawn in every figure: colour, line style and marker."""

    color: str
    linestyle: str | tuple[int, tuple[int, ...]]
    marker: str

    def kwargs(self) -> dict:
        """Keyword arguments of ``Axes.plot``."""
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}


# One row per model of lcm.evaluate.registry and motion-fd (a test keeps them in step), so a
# model looks the same in every figure whichever models a task ran. LCM variants solid, each its
# own colour and marker (never two told apart by red against green alone); baselines dashed or
# dash-dotted; the shuffled-label controls grey and dotted. Eight colours for thirteen models: a
# colour two models share comes with another line style and marker.
_OI = OKABE_ITO
MODEL_STYLES: dict[str, ModelStyle] = {
    "lcm": ModelStyle(_OI["vermillion"], "-", "o"),
    "lcm-no-pseudo": ModelStyle(_OI["blue"], "-", "s"),
    "lcm-ssl": ModelStyle(_OI["reddish purple"], "-", "^"),
    "lcm-scratch": ModelStyle(_OI["bluish green"], "-", "D"),
    "logreg": ModelStyle(_OI["sky blue"], "--", "v"),
    "svm": ModelStyle(_OI["orange"], "--", "<"),
    "ridge": ModelStyle(_OI["black"], "--", ">"),
    "tangent-logreg": ModelStyle(_OI["sky blue"], "-.", "P"),
    "cpm": ModelStyle(_OI["orange"], "-.", "X"),
    "bei-linear": ModelStyle(_OI["black"], "-.", "h"),
    "shuffled-labels": ModelStyle(_CONTROL_GREY, ":", "x"),
    "shuffled-lcm": ModelStyle(_CONTROL_GREY, ":", "+"),
    # Head motion alone, which the report adds to every binary task: drawn by its name's digest,
    # it took lcm-scratch's green, the comparator it is read beside. Reddish purple is shared
    # with lcm-ssl only, a model the default tasks do not run.
    MOTION_MODEL: ModelStyle(_OI["reddish purple"], (0, (1, 1)), "p"),
}
# A model registered by a user: a line style no built-in model uses, colour and marker from its
# name's digest (not ``hash``, which Python salts per process), so it too is fixed across figures.
_FALLBACK_LINESTYLE = (0, (5, 1, 1, 1, 1, 1))
_FALLBACK_MARKERS = ("*", "p", "d", "H", "8")


def model_style(model: str) -> ModelStyle:
    """The fixed style of ``model`` (:data:`MODEL_STYLES`, else one derived from its name).

    Parameters
    ----------
    model : str
        The model's name, as in the metrics' ``model`` column.

    Returns
    -------
    ModelStyle
        The same for a name in every figure and every run.
    """
    if model in MODEL_STYLES:
        return MODEL_STYLES[model]
    digest = int.from_bytes(hashlib.sha256(model.encode()).digest()[:8], "big")
    colours = list(OKABE_ITO.values())
    colour = colours[digest % len(colours)]
    marker = _FALLBACK_MARKERS[(digest // len(colours)) % len(_FALLBACK_MARKERS)]
    return ModelStyle(colour, _FALLBACK_LINESTYLE, marker)


def mean_roc(predictions: pd.DataFrame) -> np.ndarray:
    """Mean out-of-fold ROC curve over seeds, on a fixed false-positive-rate grid.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Rows of one task, model and label fraction (columns ``seed, y_true, prediction``).

    Returns
    -------
    numpy.ndarray
        True-positive rates at ``numpy.linspace(0, 1, 101)``; NaN where every seed's predictions
        hold one class only.
    """
    tprs = []
    for _, group in predictions.groupby("seed"):
        y, p = group["y_true"].to_numpy(), group["prediction"].to_numpy()
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        curve = np.interp(_FPR_GRID, fpr, tpr)
        curve[0] = 0.0
        tprs.append(curve)
    if not tprs:
        return np.full_like(_FPR_GRID, np.nan)
    return np.mean(tprs, axis=0)


def _in_model_order(models: Iterable[object]) -> list[str]:
    """``models`` in the registry's order (LCM variants, baselines, controls), others after."""
    known = {name: i for i, name in enumerate(model_names())}
    return sorted((str(m) for m in models), key=lambda m: (known.get(m, len(known)), m))


def wrapped(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches (a long task name is not cut off).

    Each line is measured in the figures' font, not counted in characters: a task name of
    capitals, wider than the average character, ran off the figure's edge.

    Parameters
    ----------
    text : str
        The text (a title).
    width_in : float
        The width available, in inches.
    fontsize : float
        The font size in points.

    Returns
    -------
    str
        Lines joined by newlines, broken at spaces; a word wider than a line is broken
        inside (at least one character a line, however narrow the width).
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    font, measure = FontProperties(size=fontsize), TextToPath()
    limit = 0.95 * width_in * 72  # points; the margin: Agg's hinted glyphs draw a little wider

    def fits(line: str) -> bool:
        return measure.get_text_width_height_descent(line, font, ismath=False)[0] <= limit

    lines: list[str] = []
    line = ""
    for word in text.split():
        if fits(f"{line} {word}" if line else word):
            line = f"{line} {word}" if line else word
            continue
        if line:
            lines.append(line)
        while not fits(word) and len(word) > 1:
            cut = max(k for k in range(1, len(word)) if k == 1 or fits(word[:k]))
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return "\n".join([*lines, line] if line else lines)


def _plain(legend: Legend) -> None:
    """A legend's labels as plain text: a ``$`` in a model or dataset name is not mathtext."""
    for text in legend.get_texts():
        text.set_parse_math(False)


def roc_figure(predictions: pd.DataFrame, task: str) -> Figure:
    """ROC curves of every model, one panel per label fraction, at most three panels a row.

    The legend, one for all panels, lies outside them; it names no AUC (the task's table gives
    the fold-mean AUC with its interval; a curve pools each seed's folds).

    Parameters
    ----------
    predictions : pandas.DataFrame
        The tidy predictions table (any tasks; rows of ``task`` are used).
    task : str
    """
    rows = predictions[predictions["task"] == task]
    fractions = sorted(rows["label_fraction"].unique())
    models = _in_model_order(rows["model"].unique())
    ncols = min(len(fractions), _ROC_COLUMNS)
    nrows = -(-len(fractions) // ncols)
    # The legend under the panels, a column per panel (two under a single panel).
    legend_columns = max(ncols, 2)
    width = _PANEL_IN * legend_columns + 0.3
    height = _PANEL_IN * nrows + 0.8 + 0.2 * -(-len(models) // legend_columns)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, fraction in zip(axes, fractions, strict=False):
        at = rows[rows["label_fraction"] == fraction]
        for model in models:
            group = at[at["model"] == model]
            if group.empty:
                continue
            style = model_style(model).kwargs()
            ax.plot(
                _FPR_GRID,
                mean_roc(group),
                label=first_permutation(model),
                markevery=10,
                markersize=4,
                **style,
            )
        ax.plot([0, 1], [0, 1], color="0.8", linewidth=0.8)
        ax.set(
            title=f"label fraction {fraction:g}",
            xlabel="false-positive rate",
            ylabel="true-positive rate",
            xlim=(0, 1),
            ylim=(0, 1),
            aspect="equal",
        )
    for ax in axes[len(fractions) :]:
        ax.remove()
    handles = {}
    for ax in axes[: len(fractions)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    legend = fig.legend(
        handles.values(),
        handles.keys(),
        loc="outside lower center",
        ncols=legend_columns,
        fontsize=8,
    )
    _plain(legend)
    title = wrapped(f"{task}: out-of-fold ROC (mean over seeds)", width, 11)
    fig.suptitle(title, fontsize=11, parse_math=False)
    return fig


def fraction_figure(summary: pd.DataFrame, task: str, metric: str = "auc") -> Figure:
    """``metric`` against label fraction per model, with its 95 % interval as an error bar.

    Label fractions are evenly spaced categories; each model's points are shifted a little
    sideways so that its interval does not hide another's. The legend lies outside the axes.

    Parameters
    ----------
    summary : pandas.DataFrame
        The summary table (``task, model, label_fraction, metric, mean, ci_low, ci_high, n``).
    task : str
    metric : str, default "auc"
    """
    rows = summary[(summary["task"] == task) & (summary["metric"] == metric)]
    fig = Figure(figsize=(7.4, 3.8), layout="constrained")
    ax = fig.subplots()
    fractions = sorted(rows["label_fraction"].unique())
    position = {f: i for i, f in enumerate(fractions)}
    models = _in_model_order(rows["model"].unique())
    step = min(0.6 / max(len(models), 1), 0.1)
    for k, model in enumerate(models):
        group = rows[rows["model"] == model].sort_values("label_fraction")
        x = group["label_fraction"].map(position).to_numpy() + (k - (len(models) - 1) / 2) * step
        mean = group["mean"].to_numpy(dtype=float)
        style = model_style(model)
        ax.plot(x, mean, label=model, markersize=5, **style.kwargs())
        low = mean - group["ci_low"].to_numpy(dtype=float)
        high = group["ci_high"].to_numpy(dtype=float) - mean
        ax.errorbar(x, mean, yerr=[low, high], fmt="none", ecolor=style.color, elinewidth=1)
    if metric in ("auc", "balanced_accuracy"):
        ax.axhline(0.5, color="0.8", linewidth=0.8)
    ax.set_xticks(range(len(fractions)), [f"{f:g}" for f in fractions])
    ax.set_xlim(-0.5, len(fractions) - 0.5)
    name = metric_name(metric)
    ax.set(xlabel="label fraction of the training fold", ylabel=name)
    _plain(fig.legend(loc="outside right upper", fontsize=8))
    # The title over the axes alone, wrapped to their width once the legend has taken its own.
    fig.draw_without_rendering()
    width = ax.get_window_extent().width / fig.dpi
    title = wrapped(f"{task}: {name} vs label fraction (95 % CI)", width, 10)
    ax.set_title(title, fontsize=10, parse_math=False)
    return fig


def _best(summary: pd.DataFrame, task: str, metric: str) -> str:
    """Which model scores highest at the lowest and the largest label fraction, in words."""
    rows = summary[(summary["task"] == task) & (summary["metric"] == metric)]
    rows = rows[np.isfinite(pd.to_numeric(rows["mean"], errors="coerce"))]
    name = metric_name(metric)
    if rows.empty:
        return f"no {name} was measured"
    fractions = sorted(rows["label_fraction"].unique())
    said = []
    for fraction in dict.fromkeys([fractions[0], fractions[-1]]):
        at = rows[rows["label_fraction"] == fraction]
        top = at.loc[at["mean"].astype(float).idxmax()]
        said.append(f"at label fraction {fraction:g}, {top['model']} ({name} {top['mean']:.3f})")
    return "highest mean " + name + " " + "; ".join(said)


@fill_doc
def fraction_alt(summary: pd.DataFrame, task: str, metric: str = "auc") -> str:
    """Alt text of :func:`fraction_figure`: what it plots, its best models, its numbers' table.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` (``task, model, label_fraction, metric, mean``).
    %(task)s
    metric : str
        The metric plotted (``auc``, or ``pearson_r`` for a regression task).

    Returns
    -------
    str
        Plain text (escaped where it is placed).
    """
    rows = summary[(summary["task"] == task) & (summary["metric"] == metric)]
    fractions = ", ".join(f"{f:g}" for f in sorted(rows["label_fraction"].unique()))
    return (
        f"{task}: {metric_name(metric)} against label fraction ({fractions}) for "
        f"{rows['model'].nunique()} models, mean over folds and seeds with 95 % intervals; "
        f"{_best(summary, task, metric)}. The numbers are in the task's table above "
        "(summary.tsv)."
    )


@fill_doc
def roc_alt(predictions: pd.DataFrame, summary: pd.DataFrame, task: str) -> str:
    """Alt text of :func:`roc_figure`, quoting the table's fold-mean AUC (not a pooled one).

    Parameters
    ----------
    predictions : pandas.DataFrame
        Out-of-fold predictions (``task, model, label_fraction``), for the models and
        fractions drawn.
    summary : pandas.DataFrame
        :func:`lcm.evaluate.metrics.summarise` (the AUCs quoted).
    %(task)s

    Returns
    -------
    str
        Plain text (escaped where it is placed).
    """
    rows = predictions[predictions["task"] == task]
    fractions = ", ".join(f"{f:g}" for f in sorted(rows["label_fraction"].unique()))
    return (
        f"{task}: out-of-fold ROC curves, mean over seeds, of {rows['model'].nunique()} models, "
        f"one panel per label fraction ({fractions}); {_best(summary, task, 'auc')}, fold mean "
        "as in the task's table above (summary.tsv)."
    )


def loss_figure(history: pd.DataFrame, checkpoint_epoch: int | None = None) -> Figure:
    """Pretraining loss curves (``loss_*`` columns) and the learning rate.

    ``train_eval_loss`` (solid) and ``val_loss`` (dashed) are one quantity, the mean
    per-variable BEI loss, on training and held-out runs, drawn alike; ``loss_total`` is the
    weighted training objective (with the self-supervised term), labelled as such.

    Parameters
    ----------
    history : pandas.DataFrame
        A pretraining history: ``epoch``, ``loss_*`` columns, optionally ``train_eval_loss``,
        ``val_loss`` and ``lr``.
    checkpoint_epoch : int, optional
        The epoch whose weights the checkpoint holds: a vertical dotted line on the losses,
        named in the legend.

    Notes
    -----
    The lowest ``val_loss`` (:func:`lcm.report.epoch.lowest_held_out`) is circled on its
    curve and named in the legend, so that a checkpoint past it shows as the distance between
    the circle and the dotted line.

    Returns
    -------
    matplotlib.figure.Figure
        Losses (log scale when all positive) beside the learning rate.
    """
    fig = Figure(figsize=(9.0, 4.6), layout="constrained")
    ax_loss, ax_lr = fig.subplots(1, 2, width_ratios=[2, 1])
    epoch = history["epoch"].to_numpy()
    monitored = {
        "train_eval_loss": ("-", "mean BEI loss, training runs"),
        "val_loss": ("--", "mean BEI loss, held-out runs"),
    }
    losses = [c for c in history.columns if c.startswith("loss_") or c in monitored]
    for col in losses:
        if col == "loss_total":
            style: dict = {
                "linewidth": 2.2,
                "color": "black",
                "label": "training objective (weighted, + SSL)",
            }
        elif col in monitored:
            line, label = monitored[col]
            style = {"linewidth": 2.2, "color": "crimson", "linestyle": line, "label": label}
        else:
            style = {"linewidth": 1, "label": col.removeprefix("loss_")}
        ax_loss.plot(epoch, history[col], **style)
    values = history[losses].to_numpy(dtype=float)
    if losses and np.nanmin(values) > 0:
        ax_loss.set_yscale("log")
    lowest = lowest_held_out(history)
    if lowest is not None:
        ax_loss.plot(
            [lowest[0]],
            [lowest[1]],
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="crimson",
            markeredgewidth=1.5,
            label=f"lowest held-out loss (epoch {lowest[0]})",
        )
    if checkpoint_epoch is not None:
        # Black, the palette's first colour, as the objective's curve; dotted and vertical, it
        # reads as a mark on the axis, not as one more loss.
        ax_loss.axvline(
            checkpoint_epoch,
            color=OKABE_ITO["black"],
            linestyle=":",
            linewidth=1.5,
            label=f"checkpoint (epoch {checkpoint_epoch})",
        )
    ax_loss.set(xlabel="epoch", ylabel="loss", title="pretraining losses")
    # Under the panels, not on the curves.
    _plain(
        fig.legend(
            *ax_loss.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=7
        )
    )
    if "lr" in history:
        ax_lr.plot(epoch, history["lr"], color="tab:purple")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    return fig


def fd_histogram(qc: pd.DataFrame) -> Figure:
    """Histogram of mean framewise displacement, included and excluded runs stacked.

    Parameters
    ----------
    qc : pandas.DataFrame
        The QC tables concatenated (``included`` as bool, mean FD per run); runs without a
        mean FD are left out.

    Returns
    -------
    matplotlib.figure.Figure
        Empty axes when no run has a mean FD.
    """
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.subplots()
    fd = pd.to_numeric(qc[MEAN_FD], errors="coerce")
    included = qc[INCLUDED].to_numpy(dtype=bool)
    finite = fd.notna().to_numpy()
    data = [fd[included & finite].to_numpy(), fd[~included & finite].to_numpy()]
    if finite.any():
        bins = np.histogram_bin_edges(fd[finite].to_numpy(), bins=20)
        ax.hist(
            data,
            bins=bins,
            stacked=True,
            label=["included", "excluded"],
            color=["tab:blue", "tab:red"],
        )
        ax.legend(fontsize=7)
    ax.set(xlabel="mean framewise displacement (mm)", ylabel="runs", title="head motion")
    return fig


def scrubbing_figure(scrub: pd.DataFrame) -> Figure:
    """Per dataset: % of volumes scrubbed and volumes retained, one point per included run.

    Parameters
    ----------
    scrub : pandas.DataFrame
        :func:`lcm.report.tables.scrubbing_table` (``dataset, retained, pct_scrubbed``).
        A run's n/a ``pct_scrubbed`` (nothing could be scrubbed) is no point; a dataset
        without any is marked n/a.
    """
    datasets = sorted(scrub["dataset"].unique())
    fig = Figure(figsize=(max(5.2, 1.1 * len(datasets) + 3.0), 3.6), layout="constrained")
    ax_pct, ax_kept = fig.subplots(1, 2)
    jitter = np.random.default_rng(0)  # fixed: the page is reproducible
    for ax, col, label in (
        (ax_pct, "pct_scrubbed", "volumes scrubbed (%)"),
        (ax_kept, "retained", "volumes retained"),
    ):
        values = [scrub.loc[scrub["dataset"] == d, col].to_numpy(float) for d in datasets]
        values = [v[np.isfinite(v)] for v in values]
        ax.boxplot(values, showfliers=False, widths=0.6)
        for i, v in enumerate(values, start=1):
            ax.scatter(i + jitter.uniform(-0.18, 0.18, v.size), v, s=6, alpha=0.5, color="tab:blue")
            if not v.size:  # not scrubbed (ROI series denoised elsewhere): no 0 % to plot
                ax.text(i, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center")
        ax.set_xticks(
            range(1, len(datasets) + 1), datasets, rotation=30, ha="right", parse_math=False
        )
        ax.set(ylabel=label, title=label + " per run")
    ax_pct.set_ylim(bottom=0)
    return fig


def parcel_figure(emptiness: pd.DataFrame, top: int = 25) -> Figure:
    """Parcels most often empty (poor coverage or flat signal), share of included runs.

    Parameters
    ----------
    emptiness : pandas.DataFrame
        :func:`lcm.report.tables.parcel_emptiness` (``dataset, parcel, share``), not empty.
    top : int
        Parcels shown (the most often empty over all datasets).
    """
    worst = emptiness.groupby("parcel")["share"].max().sort_values(ascending=False).head(top)
    parcels = list(worst.index)[::-1]  # most often empty at the top
    datasets = sorted(emptiness["dataset"].unique())
    fig = Figure(figsize=(6.4, 1.2 + 0.22 * len(parcels)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(datasets)
    y = np.arange(len(parcels))
    for k, dataset in enumerate(datasets):
        share = emptiness[emptiness["dataset"] == dataset].set_index("parcel")["share"]
        ax.barh(y + k * height, [share.get(p, 0.0) for p in parcels], height=height, label=dataset)
    ax.set_yticks(y + 0.4 - height / 2, parcels, fontsize=7, parse_math=False)
    ax.set(
        xlabel="share of included runs where the parcel is empty",
        xlim=(0, 1),
        title="parcel coverage: most often empty parcels",
    )
    if len(datasets) > 1:
        _plain(ax.legend(fontsize=7))
    return fig
